//! Wyoming protocol framing over a byte stream.
//!
//! An event is a JSON header line `{"type": .., "data": {..}, "data_length": N,
//! "payload_length": M}` followed by N bytes of JSON data (merged over the header's
//! inline `data`) and M bytes of binary payload. [`Decoder`] reassembles events from
//! arbitrary read chunks and enforces caps on the header line and both lengths, so a
//! broken or hostile engine can cost at most the caps in memory and never a panic.

use crate::process::Output;
use serde_json::{Map, Value};

/// Caps on what an engine may send in one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Longest header line, newline excluded.
    pub max_header: usize,
    /// Largest `data_length`.
    pub max_data: usize,
    /// Largest `payload_length`.
    pub max_payload: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_header: 64 << 10,
            max_data: 1 << 20,
            max_payload: 4 << 20,
        }
    }
}

/// One Wyoming event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Vec<u8>,
}

impl Event {
    pub fn new(kind: &str, data: Value) -> Self {
        let data = match data {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Event {
            kind: kind.to_string(),
            data,
            payload: Vec::new(),
        }
    }

    pub fn with_payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = payload;
        self
    }

    /// The wire form: header line, data bytes, payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let data = if self.data.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(&self.data).expect("a JSON map always serializes")
        };
        let mut header = Map::new();
        header.insert("type".into(), Value::from(self.kind.as_str()));
        header.insert("version".into(), Value::from("1.0.0"));
        if !data.is_empty() {
            header.insert("data_length".into(), Value::from(data.len()));
        }
        if !self.payload.is_empty() {
            header.insert("payload_length".into(), Value::from(self.payload.len()));
        }
        let mut out = serde_json::to_vec(&header).expect("a JSON map always serializes");
        out.push(b'\n');
        out.extend_from_slice(&data);
        out.extend_from_slice(&self.payload);
        out
    }

    /// An unsigned integer field of the data, if present and in range.
    pub fn data_u32(&self, field: &str) -> Option<u32> {
        self.data
            .get(field)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    }

    /// A string field of the data.
    pub fn data_str(&self, field: &str) -> Option<&str> {
        self.data.get(field).and_then(Value::as_str)
    }
}

/// What a Wyoming service offers, from its `info` event: the programs and, in
/// them, the voices (TTS), models (ASR) and wake words, with their languages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offers {
    pub programs: Vec<String>,
    pub voices: Vec<String>,
    pub models: Vec<String>,
    pub wake_words: Vec<String>,
    pub languages: Vec<String>,
}

/// Most names kept per list: an `info` from a service with thousands of voices
/// must not bloat every status reply.
const MAX_OFFERED: usize = 64;

impl Offers {
    /// Reads `tts[].voices[]`, `asr[].models[]` and `wake[].models[]`; anything
    /// missing or of the wrong type is skipped.
    pub fn from_info(info: &Map<String, Value>) -> Offers {
        let mut offers = Offers::default();
        let add = |list: &mut Vec<String>, name: &str| {
            if list.len() < MAX_OFFERED && !list.iter().any(|n| n == name) {
                list.push(name.to_string());
            }
        };
        for (kind, items) in [("tts", "voices"), ("asr", "models"), ("wake", "models")] {
            let programs = info.get(kind).and_then(Value::as_array);
            for program in programs.into_iter().flatten() {
                if let Some(name) = program.get("name").and_then(Value::as_str) {
                    add(&mut offers.programs, name);
                }
                let artifacts = program.get(items).and_then(Value::as_array);
                for artifact in artifacts.into_iter().flatten() {
                    if let Some(name) = artifact.get("name").and_then(Value::as_str) {
                        let list = match kind {
                            "tts" => &mut offers.voices,
                            "asr" => &mut offers.models,
                            _ => &mut offers.wake_words,
                        };
                        add(list, name);
                    }
                    let languages = artifact.get("languages").and_then(Value::as_array);
                    for language in languages.into_iter().flatten().filter_map(Value::as_str) {
                        add(&mut offers.languages, language);
                    }
                }
            }
        }
        offers
    }
}

/// Broken framing: what was wrong, with the offending bytes escaped and truncated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {bytes}")]
pub struct FrameError {
    pub what: String,
    pub bytes: String,
}

/// Most offending bytes quoted in an error or a log line.
pub const QUOTE_LIMIT: usize = 200;

/// Printable ASCII as is, everything else escaped, at most `limit` input bytes
/// followed by how many more there were.
pub fn escape_bytes(bytes: &[u8], limit: usize) -> String {
    let shown = &bytes[..bytes.len().min(limit)];
    let mut out: String = shown.escape_ascii().to_string();
    if bytes.len() > limit {
        out.push_str(&format!("... ({} more bytes)", bytes.len() - limit));
    }
    out
}

/// What [`stream_reader`] hands on.
pub(crate) enum Decoded {
    Events(Vec<Event>),
    /// Broken framing; the rest of the stream is drained unread.
    Broken(FrameError),
    /// The stream ended; with the incomplete event it ended inside, if any.
    End(Option<FrameError>),
}

/// The callback for a process's stdout or a connection's reader: decodes what
/// arrives with `limits` and hands `deliver` the events, the first framing error,
/// and the end.
pub(crate) fn stream_reader(
    limits: FrameLimits,
    mut deliver: impl FnMut(Decoded) + Send + 'static,
) -> impl FnMut(Output<'_>) + Send + 'static {
    let mut decoder = Decoder::new(limits);
    let mut broken = false;
    move |out| match out {
        Output::Data(bytes) if !broken => {
            let mut events = Vec::new();
            let result = decoder.push(bytes, &mut events);
            if !events.is_empty() {
                deliver(Decoded::Events(events));
            }
            if let Err(e) = result {
                broken = true;
                deliver(Decoded::Broken(e));
            }
        }
        Output::Data(_) => {}
        Output::End => {
            let truncated = if broken { None } else { decoder.finish().err() };
            deliver(Decoded::End(truncated));
        }
    }
}

enum State {
    Header,
    Body {
        kind: String,
        data: Map<String, Value>,
        data_len: usize,
        payload_len: usize,
    },
}

/// Reassembles events from a byte stream fed in arbitrary chunks. After an error it
/// stays failed: framing cannot be trusted to resynchronise.
pub struct Decoder {
    limits: FrameLimits,
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned for a newline.
    scanned: usize,
    state: State,
    failed: bool,
}

impl Decoder {
    pub fn new(limits: FrameLimits) -> Self {
        Decoder {
            limits,
            buf: Vec::new(),
            scanned: 0,
            state: State::Header,
            failed: false,
        }
    }

    /// Feeds a chunk; appends every event it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), FrameError> {
        if self.failed {
            return Err(FrameError {
                what: "framing already broken".into(),
                bytes: escape_bytes(chunk, QUOTE_LIMIT),
            });
        }
        self.buf.extend_from_slice(chunk);
        let result = self.drain(out);
        if result.is_err() {
            self.failed = true;
            self.buf = Vec::new();
        }
        result
    }

    /// The incomplete event at end of stream, as an error, if there is one.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        Err(FrameError {
            what: "stream ended inside an event".into(),
            bytes: escape_bytes(&self.buf, QUOTE_LIMIT),
        })
    }

    fn drain(&mut self, out: &mut Vec<Event>) -> Result<(), FrameError> {
        loop {
            match &self.state {
                State::Header => {
                    let Some(nl) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                        self.scanned = self.buf.len();
                        if self.buf.len() > self.limits.max_header {
                            return Err(FrameError {
                                what: format!(
                                    "header line longer than {} bytes",
                                    self.limits.max_header
                                ),
                                bytes: escape_bytes(&self.buf, QUOTE_LIMIT),
                            });
                        }
                        return Ok(());
                    };
                    let end = self.scanned + nl;
                    let line: Vec<u8> = self.buf.drain(..=end).collect();
                    self.scanned = 0;
                    let line = &line[..end];
                    if line.len() > self.limits.max_header {
                        return Err(FrameError {
                            what: format!(
                                "header line longer than {} bytes",
                                self.limits.max_header
                            ),
                            bytes: escape_bytes(line, QUOTE_LIMIT),
                        });
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    self.state = self.parse_header(line)?;
                }
                State::Body {
                    data_len,
                    payload_len,
                    ..
                } => {
                    let need = data_len + payload_len;
                    if self.buf.len() < need {
                        return Ok(());
                    }
                    let State::Body {
                        kind,
                        mut data,
                        data_len,
                        ..
                    } = std::mem::replace(&mut self.state, State::Header)
                    else {
                        unreachable!("matched Body above");
                    };
                    let body: Vec<u8> = self.buf.drain(..need).collect();
                    if data_len > 0 {
                        let extra = parse_object(&body[..data_len], "event data")?;
                        data.extend(extra);
                    }
                    out.push(Event {
                        kind,
                        data,
                        payload: body[data_len..].to_vec(),
                    });
                }
            }
        }
    }

    fn parse_header(&self, line: &[u8]) -> Result<State, FrameError> {
        let mut header = parse_object(line, "header line")?;
        let bad = |what: &str| FrameError {
            what: what.to_string(),
            bytes: escape_bytes(line, QUOTE_LIMIT),
        };
        let kind = match header.remove("type") {
            Some(Value::String(kind)) if !kind.is_empty() => kind,
            _ => return Err(bad("header without a non-empty string \"type\"")),
        };
        let data = match header.remove("data") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(bad("header \"data\" is not an object")),
        };
        let length = |field: &str, max: usize| -> Result<usize, FrameError> {
            match header.get(field) {
                None | Some(Value::Null) => Ok(0),
                Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n <= max => Ok(n),
                    Some(n) => Err(bad(&format!("{field} {n} exceeds the cap of {max}"))),
                    None => Err(bad(&format!("{field} is not a non-negative integer"))),
                },
            }
        };
        let data_len = length("data_length", self.limits.max_data)?;
        let payload_len = length("payload_length", self.limits.max_payload)?;
        Ok(State::Body {
            kind,
            data,
            data_len,
            payload_len,
        })
    }
}

fn parse_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, FrameError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(FrameError {
            what: format!("{what} is JSON but not an object"),
            bytes: escape_bytes(bytes, QUOTE_LIMIT),
        }),
        Err(e) => Err(FrameError {
            what: format!("{what} is not valid JSON ({e})"),
            bytes: escape_bytes(bytes, QUOTE_LIMIT),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_all(bytes: &[u8], chunk: usize) -> Result<Vec<Event>, FrameError> {
        let mut d = Decoder::new(FrameLimits::default());
        let mut out = Vec::new();
        for c in bytes.chunks(chunk.max(1)) {
            d.push(c, &mut out)?;
        }
        d.finish()?;
        Ok(out)
    }

    fn sample_stream() -> Vec<u8> {
        let mut bytes = Event::new(
            "audio-start",
            json!({"rate": 22050, "width": 2, "channels": 1}),
        )
        .encode();
        bytes.extend(
            Event::new(
                "audio-chunk",
                json!({"rate": 22050, "width": 2, "channels": 1}),
            )
            .with_payload(vec![1, 2, 3, 4, b'\n', 0])
            .encode(),
        );
        bytes.extend(Event::new("audio-stop", json!({})).encode());
        bytes
    }

    #[test]
    fn events_reassemble_across_every_chunk_size() {
        let bytes = sample_stream();
        let whole = decode_all(&bytes, bytes.len()).unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[1].payload, vec![1, 2, 3, 4, b'\n', 0]);
        assert_eq!(whole[0].data_u32("rate"), Some(22050));
        for chunk in 1..bytes.len() {
            assert_eq!(
                decode_all(&bytes, chunk).unwrap(),
                whole,
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn inline_data_and_data_bytes_are_merged() {
        let mut bytes =
            br#"{"type":"transcript","data":{"text":"old","language":"en"},"data_length":15}"#
                .to_vec();
        bytes.push(b'\n');
        bytes.extend_from_slice(br#"{"text":"new"} "#);
        let ev = decode_all(&bytes, 7).unwrap();
        assert_eq!(ev[0].data_str("text"), Some("new"));
        assert_eq!(ev[0].data_str("language"), Some("en"));
    }

    #[test]
    fn invalid_json_header_is_an_error_quoting_the_bytes() {
        let err = decode_all(b"this is \x01 not json\n", 3).unwrap_err();
        assert!(err.what.contains("not valid JSON"), "{err}");
        assert!(err.bytes.contains("this is \\x01 not json"), "{err}");
    }

    #[test]
    fn oversized_header_line_is_refused_before_the_newline_arrives() {
        let mut d = Decoder::new(FrameLimits {
            max_header: 16,
            ..FrameLimits::default()
        });
        let mut out = Vec::new();
        assert!(d.push(b"{\"type\":\"aaaa", &mut out).is_ok());
        let err = d.push(b"aaaaaaaaaaaaaaaa", &mut out).unwrap_err();
        assert!(err.what.contains("longer than 16"), "{err}");
        // Once broken, always broken: no resynchronisation on garbage.
        assert!(d.push(b"{\"type\":\"x\"}\n", &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn payload_length_over_the_cap_is_refused_without_allocating() {
        let err = decode_all(
            b"{\"type\":\"audio-chunk\",\"payload_length\":999999999999}\n",
            64,
        )
        .unwrap_err();
        assert!(err.what.contains("payload_length"), "{err}");
        let err =
            decode_all(b"{\"type\":\"audio-chunk\",\"payload_length\":-1}\n", 64).unwrap_err();
        assert!(err.what.contains("non-negative"), "{err}");
    }

    #[test]
    fn truncated_event_is_reported_at_end_of_stream() {
        let bytes = sample_stream();
        let err = decode_all(&bytes[..bytes.len() - 30], 5).unwrap_err();
        assert!(err.what.contains("ended inside"), "{err}");
    }

    #[test]
    fn header_without_type_or_with_bad_data_is_an_error() {
        assert!(decode_all(b"{\"data\":{}}\n", 4).is_err());
        assert!(decode_all(b"[1,2]\n", 4).is_err());
        assert!(decode_all(b"{\"type\":\"x\",\"data\":3}\n", 4).is_err());
        let mut bytes = b"{\"type\":\"x\",\"data_length\":3}\n".to_vec();
        bytes.extend_from_slice(b"[1]");
        assert!(decode_all(&bytes, 4).is_err());
    }

    #[test]
    fn offers_are_read_from_an_info_event_and_bad_parts_skipped() {
        let info = json!({
            "tts": [{"name": "piper", "voices": [
                {"name": "en_US-lessac-medium", "languages": ["en_US"]},
                {"name": "de_DE-thorsten-low", "languages": ["de_DE"]},
                {"languages": "not a list"}
            ]}],
            "asr": [{"name": "faster-whisper", "models": [{"name": "tiny-int8", "languages": ["en", "de"]}]}],
            "wake": [{"name": "openwakeword", "models": [{"name": "ok_nabu", "languages": ["en"]}]}],
            "handle": 3
        });
        let Value::Object(map) = info else {
            unreachable!()
        };
        let offers = Offers::from_info(&map);
        assert_eq!(offers.programs, ["piper", "faster-whisper", "openwakeword"]);
        assert_eq!(offers.voices, ["en_US-lessac-medium", "de_DE-thorsten-low"]);
        assert_eq!(offers.models, ["tiny-int8"]);
        assert_eq!(offers.wake_words, ["ok_nabu"]);
        assert_eq!(offers.languages, ["en_US", "de_DE", "en", "de"]);
        assert_eq!(Offers::from_info(&Map::new()), Offers::default());
    }

    #[test]
    fn escape_truncates_long_garbage() {
        let s = escape_bytes(&[0xff; 500], 4);
        assert_eq!(s, "\\xff\\xff\\xff\\xff... (496 more bytes)");
    }
}
