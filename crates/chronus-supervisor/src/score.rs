//! Scores: files of int32-length-prefixed OSC bundles whose timetags are seconds
//! from the start (the layout scsynth's non-real-time mode reads). The daemon's
//! journal is such a score, and `chronusd render` plays any score offline with
//! the workers' own DSP code.

use crate::speech::AREA_SECONDS;
use chronus_config::{NUM_VOICES_MAX, NUM_VOICES_MIN, SAMPLE_RATE_MAX, SAMPLE_RATE_MIN};
use chronus_dsp::{CHANNELS, Command, Engine, LIMITER_CEILING_DB, LimiterParams, dialect};
use chronus_osc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// First message of a journal: `sample_rate i`, `num_voices i`, `format s`.
pub const JOURNAL_ADDR: &str = "/chronus/journal";
/// The engine was cold-started here from the parameters then in force.
pub const RESET_ADDR: &str = "/chronus/reset";
/// A command with no dialect form, as its encoded bytes.
pub const CMD_ADDR: &str = "/chronus/cmd";
/// The master limiter from here on: `on i` (0 or 1) and `ceiling_db f`. A journal has
/// one at frame 0, from the daemon's settings; a score without one renders with the
/// defaults.
pub const LIMITER_ADDR: &str = "/chronus/limiter";
/// Speech: `offset i`, `gain f`, `duck f` and a blob of little-endian `f32` mono
/// samples, played from `offset` of the speech area (see [`Command::Speak`]).
pub const SPEECH_ADDR: &str = "/chronus/speech";
/// Largest bundle a score may hold: speech carries its samples (a full speech area,
/// 60 s at 192 kHz, is 44 MiB).
const MAX_SCORE_PACKET: usize = 64 << 20;
/// Most memory a score's messages may take once read (an hour of nothing but speech at
/// 48 kHz takes about 660 MiB); a bigger score is refused, not read on.
pub const MAX_SCORE_MEMORY: usize = 1 << 30;
/// Longest render at once.
pub const MAX_RENDER_SECONDS: u64 = 3600;
/// Frames of stereo `f32` a WAV file can hold: its sizes are 32-bit, and hound's header
/// takes far less than 4 KiB of them.
const MAX_WAV_FRAMES: u64 = (u32::MAX as u64 - 4096) / (CHANNELS as u64 * 4);
/// Frames rendered and written at a time: the render's memory does not grow with its
/// length.
const CHUNK_FRAMES: usize = 4096;
/// Without a length, a render runs this long past the last event (release tails).
const TAIL_SECONDS: u64 = 2;
const FORMAT: &str = "chronus-journal-1";

/// The engine a score is played by, within what the daemon accepts: its sample rate
/// (which also turns timetags into frames) and its voices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    sample_rate: u32,
    num_voices: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error(
        "sample rate {0} is not accepted: expected an integer from {min} to {max} (Hz)",
        min = SAMPLE_RATE_MIN,
        max = SAMPLE_RATE_MAX
    )]
    SampleRate(i64),
    #[error(
        "voice count {0} is not accepted: expected an integer from {min} to {max}",
        min = NUM_VOICES_MIN,
        max = NUM_VOICES_MAX
    )]
    Voices(i64),
}

impl Header {
    /// The same bounds as `audio.sample_rate` and `engine.num_voices`, so every journal
    /// the daemon writes is accepted.
    pub fn new(sample_rate: i64, num_voices: i64) -> Result<Header, HeaderError> {
        let sample_rate = u32::try_from(sample_rate)
            .ok()
            .filter(|r| (SAMPLE_RATE_MIN..=SAMPLE_RATE_MAX).contains(r))
            .ok_or(HeaderError::SampleRate(sample_rate))?;
        let num_voices = u8::try_from(num_voices)
            .ok()
            .filter(|v| (NUM_VOICES_MIN..=NUM_VOICES_MAX).contains(v))
            .ok_or(HeaderError::Voices(num_voices))?;
        Ok(Header {
            sample_rate,
            num_voices,
        })
    }

    pub fn sample_rate(self) -> u32 {
        self.sample_rate
    }

    pub fn num_voices(self) -> u8 {
        self.num_voices
    }

    /// The longest render at this rate: [`MAX_RENDER_SECONDS`], or what a WAV file can
    /// hold if that is less (above about 149 kHz).
    pub fn max_frames(self) -> u64 {
        (MAX_RENDER_SECONDS * u64::from(self.sample_rate)).min(MAX_WAV_FRAMES)
    }

    /// Samples in the daemon's speech area at this rate.
    fn speech_area(self) -> u64 {
        u64::from(self.sample_rate) * AREA_SECONDS
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("cannot read score {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("score {path} is malformed at byte {offset}: {reason}")]
    Malformed {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("score {path}: the {JOURNAL_ADDR} header's {source}")]
    Header { path: String, source: HeaderError },
    #[error(
        "score {path} is too big: its messages up to byte {offset} take more than {} MiB of \
         memory, the most chronusd render reads",
        MAX_SCORE_MEMORY >> 20
    )]
    TooBig { path: String, offset: u64 },
    #[error("score {path}: command at {seconds:.6} s is not accepted: {reason}")]
    Command {
        path: String,
        seconds: f64,
        reason: String,
    },
    /// A default for scores without a header (`--sample-rate`, `--voices`).
    #[error("{flag}: {source}")]
    Default {
        flag: &'static str,
        source: HeaderError,
    },
    #[error("--duration {0:?} is not accepted: expected a number of seconds, 0 or more")]
    Duration(f64),
    #[error(
        "{what} is longer than chronusd renders at once: at most {} s ({limit} frames at \
         {rate} Hz)",
        (*.limit as f64 * 10.0 / f64::from(*.rate)).floor() / 10.0
    )]
    TooLong { what: String, limit: u64, rate: u32 },
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Converts an absolute frame to a timetag of seconds from the start, exactly
/// invertible by [`timetag_to_frame`] for any sample rate below 2^32.
pub fn frame_to_timetag(frame: u64, sample_rate: u32) -> OscTime {
    let sr = u64::from(sample_rate);
    let seconds = frame / sr;
    let rem = frame % sr;
    let fractional = ((u128::from(rem) << 32) + u128::from(sr) / 2) / u128::from(sr);
    OscTime {
        seconds: seconds as u32,
        fractional: fractional as u32,
    }
}

pub fn timetag_to_frame(time: OscTime, sample_rate: u32) -> u64 {
    let sr = u128::from(sample_rate);
    let whole = u128::from(time.seconds) * sr;
    let part = (u128::from(time.fractional) * sr + (1u128 << 31)) >> 32;
    (whole + part) as u64
}

/// Appends timestamped bundles to a score file.
pub struct ScoreWriter {
    out: BufWriter<std::fs::File>,
    sample_rate: u32,
}

impl ScoreWriter {
    pub fn create(path: &Path, sample_rate: u32, num_voices: u8) -> std::io::Result<ScoreWriter> {
        let mut writer = ScoreWriter {
            out: BufWriter::new(std::fs::File::create(path)?),
            sample_rate,
        };
        writer.write(
            0,
            OscMessage {
                addr: JOURNAL_ADDR.into(),
                args: vec![
                    OscType::Int(sample_rate as i32),
                    OscType::Int(i32::from(num_voices)),
                    OscType::String(FORMAT.into()),
                ],
            },
        )?;
        Ok(writer)
    }

    pub fn write(&mut self, frame: u64, message: OscMessage) -> std::io::Result<()> {
        let bundle = OscPacket::Bundle(OscBundle {
            timetag: frame_to_timetag(frame, self.sample_rate),
            content: vec![OscPacket::Message(message)],
        });
        let bytes = chronus_osc::encode(&bundle);
        self.out.write_all(&(bytes.len() as u32).to_be_bytes())?;
        self.out.write_all(&bytes)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A score read into memory and checked: every message is one the engine `header`
/// describes accepts, with its frame, in time order (file order within a frame).
#[derive(Debug)]
pub struct Score {
    pub header: Header,
    pub events: Vec<(u64, OscMessage)>,
    path: String,
}

/// How much of a score to render.
#[derive(Clone, Copy, Debug)]
pub enum Length {
    Frames(u64),
    Seconds(f64),
    /// Until 2 s after the last event, for release tails.
    PastLastEvent,
}

impl Score {
    /// The frames `length` stands for at the score's rate, at most [`Header::max_frames`].
    pub fn frames(&self, length: Length) -> Result<u64, ScoreError> {
        let rate = self.header.sample_rate;
        let limit = self.header.max_frames();
        let too_long = |what: String| ScoreError::TooLong { what, limit, rate };
        match length {
            Length::Frames(frames) if frames > limit => Err(too_long(format!("--frames {frames}"))),
            Length::Frames(frames) => Ok(frames),
            Length::Seconds(seconds) if !(seconds.is_finite() && seconds >= 0.0) => {
                Err(ScoreError::Duration(seconds))
            }
            Length::Seconds(seconds) => {
                // Compared as a float: the cast to frames saturates, the comparison does not.
                let exact = (seconds * f64::from(rate)).round();
                if exact > limit as f64 {
                    Err(too_long(format!("--duration {seconds:?}")))
                } else {
                    Ok(exact as u64)
                }
            }
            Length::PastLastEvent => {
                let last = self.events.last().map_or(0, |(frame, _)| *frame);
                match last.checked_add(TAIL_SECONDS * u64::from(rate)) {
                    Some(frames) if frames <= limit => Ok(frames),
                    _ => Err(too_long(format!(
                        "the score until {TAIL_SECONDS} s after its last event (at {:.3} s)",
                        last as f64 / f64::from(rate)
                    ))),
                }
            }
        }
    }
}

/// Reads and checks a whole score; `defaults` stands for the header when the score has
/// none. Bundles are read one at a time, each only once its length is accepted.
pub fn read_score(path: &Path, defaults: Header) -> Result<Score, ScoreError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ScoreError::Io {
        path: name.clone(),
        source,
    })?;
    parse(BufReader::new(file), name, defaults, MAX_SCORE_MEMORY)
}

fn parse(
    mut input: impl Read,
    path: String,
    defaults: Header,
    budget: usize,
) -> Result<Score, ScoreError> {
    let limits = chronus_osc::Limits {
        max_packet: MAX_SCORE_PACKET,
        ..chronus_osc::Limits::default()
    };
    // Made once the first bundle says whether the score has a header.
    let mut reading: Option<Reader> = None;
    let mut packet = Vec::new();
    let mut offset = 0u64;
    loop {
        let malformed = |reason: String| ScoreError::Malformed {
            path: path.clone(),
            offset,
            reason,
        };
        let io = |source| ScoreError::Io {
            path: path.clone(),
            source,
        };
        let mut prefix = [0u8; 4];
        let got = read_up_to(&mut input, &mut prefix).map_err(io)?;
        if got == 0 {
            break;
        }
        if got < prefix.len() {
            return Err(malformed(format!(
                "truncated length prefix: {got} of 4 bytes"
            )));
        }
        let len = u32::from_be_bytes(prefix);
        if len as usize > MAX_SCORE_PACKET {
            return Err(malformed(format!(
                "bundle length {len} is not accepted: a score's bundles hold at most \
                 {MAX_SCORE_PACKET} bytes"
            )));
        }
        packet.clear();
        // Grows only as far as the file really goes.
        (&mut input)
            .take(u64::from(len))
            .read_to_end(&mut packet)
            .map_err(io)?;
        if packet.len() < len as usize {
            return Err(malformed(format!(
                "bundle of {len} bytes runs past the end ({} bytes left)",
                packet.len()
            )));
        }
        let decoded =
            chronus_osc::decode(&packet, &limits).map_err(|e| malformed(e.to_string()))?;
        let OscPacket::Bundle(bundle) = decoded else {
            return Err(malformed("expected a bundle, found a bare message".into()));
        };
        let reader = match &mut reading {
            Some(reader) => reader,
            None => {
                let header = first_header(&bundle, &path, offset)?;
                reading.insert(Reader {
                    header: header.unwrap_or(defaults),
                    declared: header.is_some(),
                    events: Vec::new(),
                    used: 0,
                    budget,
                    path: &path,
                    offset,
                })
            }
        };
        reader.offset = offset;
        reader.bundle(bundle)?;
        offset += 4 + u64::from(len);
    }
    let (header, mut events) = match reading {
        Some(reader) => (reader.header, reader.events),
        None => (defaults, Vec::new()),
    };
    // Stable: commands at the same frame keep their file order.
    events.sort_by_key(|(frame, _)| *frame);
    Ok(Score {
        header,
        events,
        path,
    })
}

/// Fills `buf` unless the input ends first; returns how much it read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The header, if the first bundle starts with one.
fn first_header(bundle: &OscBundle, path: &str, offset: u64) -> Result<Option<Header>, ScoreError> {
    let Some(OscPacket::Message(m)) = bundle.content.first() else {
        return Ok(None);
    };
    if m.addr != JOURNAL_ADDR {
        return Ok(None);
    }
    let [
        OscType::Int(rate),
        OscType::Int(voices),
        OscType::String(format),
    ] = m.args.as_slice()
    else {
        return Err(ScoreError::Malformed {
            path: path.into(),
            offset,
            reason: format!(
                "the {JOURNAL_ADDR} header takes sample_rate i, num_voices i and format s \
                 \"{FORMAT}\""
            ),
        });
    };
    if format != FORMAT {
        return Err(ScoreError::Malformed {
            path: path.into(),
            offset,
            reason: format!(
                "the {JOURNAL_ADDR} header's format {format:?} is not accepted: expected \
                 \"{FORMAT}\""
            ),
        });
    }
    Header::new(i64::from(*rate), i64::from(*voices))
        .map(Some)
        .map_err(|source| ScoreError::Header {
            path: path.into(),
            source,
        })
}

/// Collects the messages of one score's bundles, checking each as it comes.
struct Reader<'a> {
    header: Header,
    /// The score's first message is its header.
    declared: bool,
    events: Vec<(u64, OscMessage)>,
    /// Bytes the events take, counted against `budget`.
    used: usize,
    budget: usize,
    path: &'a str,
    /// Of the bundle being read.
    offset: u64,
}

impl Reader<'_> {
    /// Nested bundles take their own timetags; their depth is bounded by the decoder.
    fn bundle(&mut self, bundle: OscBundle) -> Result<(), ScoreError> {
        let frame = timetag_to_frame(bundle.timetag, self.header.sample_rate);
        for packet in bundle.content {
            match packet {
                OscPacket::Message(m) => self.message(frame, m)?,
                OscPacket::Bundle(inner) => self.bundle(inner)?,
            }
        }
        Ok(())
    }

    fn message(&mut self, frame: u64, message: OscMessage) -> Result<(), ScoreError> {
        if message.addr == JOURNAL_ADDR && !(self.declared && self.events.is_empty()) {
            return Err(ScoreError::Malformed {
                path: self.path.into(),
                offset: self.offset,
                reason: format!(
                    "a {JOURNAL_ADDR} header is accepted only as the score's first message"
                ),
            });
        }
        event(&message, self.header).map_err(|reason| ScoreError::Command {
            path: self.path.into(),
            seconds: frame as f64 / f64::from(self.header.sample_rate),
            reason,
        })?;
        self.used = self.used.saturating_add(message_bytes(&message));
        if self.used > self.budget {
            return Err(ScoreError::TooBig {
                path: self.path.into(),
                offset: self.offset,
            });
        }
        self.events.push((frame, message));
        Ok(())
    }
}

/// Memory an event takes, near enough to bound the total.
fn message_bytes(message: &OscMessage) -> usize {
    std::mem::size_of::<(u64, OscMessage)>()
        + message.addr.capacity()
        + message.args.iter().map(arg_bytes).sum::<usize>()
}

fn arg_bytes(arg: &OscType) -> usize {
    std::mem::size_of::<OscType>()
        + match arg {
            OscType::String(s) => s.capacity(),
            OscType::Blob(b) => b.capacity(),
            OscType::Array(a) => a.content.iter().map(arg_bytes).sum(),
            _ => 0,
        }
}

/// Turns a score or journal message into the command it stands for. `None`
/// for the journal's own bookkeeping messages.
pub fn message_command(message: &OscMessage, num_voices: u8) -> Result<Option<Command>, String> {
    match message.addr.as_str() {
        JOURNAL_ADDR | RESET_ADDR => Ok(None),
        LIMITER_ADDR => limiter_args(message).map(|_| None),
        CMD_ADDR => match message.args.as_slice() {
            [OscType::Blob(bytes)] => Command::decode(bytes).map(Some).map_err(|e| e.to_string()),
            _ => Err(format!("{CMD_ADDR} takes one blob")),
        },
        SPEECH_ADDR => speech_args(message).map(|(command, _)| Some(command)),
        addr => {
            let args = crate::control::dialect_args(&message.args)?;
            dialect::parse(addr, &args, num_voices)
                .map(Some)
                .map_err(|e| e.to_string())
        }
    }
}

/// The journal's record of the limiter settings.
pub fn limiter_message(limiter: LimiterParams) -> OscMessage {
    OscMessage {
        addr: LIMITER_ADDR.into(),
        args: vec![
            OscType::Int(i32::from(limiter.on)),
            OscType::Float(limiter.ceiling_db),
        ],
    }
}

/// A limiter message's settings, held to what `audio.limiter_ceiling_db` accepts.
fn limiter_args(message: &OscMessage) -> Result<LimiterParams, String> {
    let (min, max) = (LIMITER_CEILING_DB.min, LIMITER_CEILING_DB.max);
    let usage = || {
        format!("{LIMITER_ADDR} takes on i (0 or 1) and ceiling_db f (from {min:.1} to {max:.1})")
    };
    match message.args.as_slice() {
        [OscType::Int(on @ (0 | 1)), OscType::Float(ceiling_db)]
            if (min..=max).contains(ceiling_db) =>
        {
            Ok(LimiterParams {
                on: *on == 1,
                ceiling_db: *ceiling_db,
            })
        }
        _ => Err(usage()),
    }
}

/// The journal's form of a [`Command::Speak`] playing `samples`.
pub fn speech_message(offset: u32, gain: f32, duck: f32, samples: &[f32]) -> OscMessage {
    OscMessage {
        addr: SPEECH_ADDR.into(),
        args: vec![
            OscType::Int(offset as i32),
            OscType::Float(gain),
            OscType::Float(duck),
            OscType::Blob(samples.iter().flat_map(|s| s.to_le_bytes()).collect()),
        ],
    }
}

/// A speech message's command and samples.
fn speech_args(message: &OscMessage) -> Result<(Command, Vec<f32>), String> {
    let usage =
        || format!("{SPEECH_ADDR} takes offset i, gain f, duck f and a blob of f32 samples");
    let [
        OscType::Int(offset),
        OscType::Float(gain),
        OscType::Float(duck),
        OscType::Blob(bytes),
    ] = message.args.as_slice()
    else {
        return Err(usage());
    };
    let offset = u32::try_from(*offset).map_err(|_| usage())?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "{SPEECH_ADDR}: a blob of {} bytes is not whole f32 samples",
            bytes.len()
        ));
    }
    let samples: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let command = Command::Speak {
        offset,
        frames: u32::try_from(samples.len()).map_err(|_| usage())?,
        gain: *gain,
        duck: *duck,
    };
    Ok((command, samples))
}

/// A checked score message, as the renderer applies it.
enum Event {
    /// The journal's header.
    Header,
    Reset,
    Limiter(LimiterParams),
    Command(Command),
    Speech {
        command: Command,
        offset: usize,
        samples: Vec<f32>,
    },
}

/// What `message` does to the engine `header` describes, or why it cannot.
fn event(message: &OscMessage, header: Header) -> Result<Event, String> {
    match message.addr.as_str() {
        RESET_ADDR => Ok(Event::Reset),
        LIMITER_ADDR => limiter_args(message).map(Event::Limiter),
        SPEECH_ADDR => {
            let (command, samples) = speech_args(message)?;
            let Command::Speak { offset, .. } = command else {
                return Err(format!("{SPEECH_ADDR} is not speech"));
            };
            let area = header.speech_area();
            if u64::from(offset) + samples.len() as u64 > area {
                return Err(format!(
                    "{SPEECH_ADDR}: {} samples at offset {offset} do not fit the speech area: \
                     it holds {area} samples ({AREA_SECONDS} s at {} Hz)",
                    samples.len(),
                    header.sample_rate
                ));
            }
            Ok(Event::Speech {
                command,
                offset: offset as usize,
                samples,
            })
        }
        _ => Ok(message_command(message, header.num_voices)?.map_or(Event::Header, Event::Command)),
    }
}

/// Renders `frames` frames of `score` with the workers' DSP, as fast as the CPU allows,
/// into a 32-bit float WAV at `out`. The samples are written as they are rendered, so the
/// memory it takes does not grow with `frames`.
pub fn render_wav(score: &Score, frames: u64, out: &Path) -> Result<(), ScoreError> {
    let limit = score.header.max_frames();
    if frames > limit {
        return Err(ScoreError::TooLong {
            what: format!("a render of {frames} frames"),
            limit,
            rate: score.header.sample_rate,
        });
    }
    let err = |e: hound::Error| ScoreError::Write {
        path: out.display().to_string(),
        reason: e.to_string(),
    };
    let spec = hound::WavSpec {
        channels: CHANNELS as u16,
        sample_rate: score.header.sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(out, spec).map_err(err)?;
    render(score, frames, |samples| {
        samples
            .iter()
            .try_for_each(|&s| writer.write_sample(s))
            .map_err(err)
    })?;
    writer.finalize().map_err(err)
}

/// Renders `frames` frames of `score`, handing them to `sink` a chunk at a time.
fn render(
    score: &Score,
    frames: u64,
    mut sink: impl FnMut(&[f32]) -> Result<(), ScoreError>,
) -> Result<(), ScoreError> {
    let header = score.header;
    let mut engine = Engine::new(header.sample_rate, header.num_voices);
    let mut chunk = vec![0.0f32; CHUNK_FRAMES * CHANNELS];
    // The speech area as far as the score has written it.
    let mut speech: Vec<f32> = Vec::new();
    let mut render_until = |engine: &mut Engine, speech: &Vec<f32>, until: u64| {
        while engine.frame() < until {
            let n = (until - engine.frame()).min(CHUNK_FRAMES as u64) as usize;
            let samples = &mut chunk[..n * CHANNELS];
            engine.render_with(samples, speech);
            // The device path clamps and flushes non-finite samples; do the same.
            for s in samples.iter_mut() {
                *s = if s.is_finite() {
                    s.clamp(-1.0, 1.0)
                } else {
                    0.0
                };
            }
            sink(samples)?;
        }
        Ok(())
    };
    for (frame, message) in &score.events {
        let frame = (*frame).min(frames);
        render_until(&mut engine, &speech, frame)?;
        let event = event(message, header).map_err(|reason| ScoreError::Command {
            path: score.path.clone(),
            seconds: frame as f64 / f64::from(header.sample_rate),
            reason,
        })?;
        match event {
            Event::Header => {}
            Event::Reset => {
                engine = Engine::from_params(header.sample_rate, &engine.params().clone(), frame);
            }
            Event::Limiter(limiter) => engine.set_limiter(limiter),
            Event::Command(command) => engine.apply(&command),
            Event::Speech {
                command,
                offset,
                samples,
            } => {
                // Within the speech area: `event` checked it.
                let end = offset + samples.len();
                if speech.len() < end {
                    speech.resize(end, 0.0);
                }
                speech[offset..end].copy_from_slice(&samples);
                engine.apply(&command);
            }
        }
    }
    render_until(&mut engine, &speech, frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timetags_round_trip_every_frame_exactly() {
        for rate in [8_000u32, 44_100, 48_000, 96_000, 192_000] {
            for frame in (0..3 * u64::from(rate))
                .step_by(997)
                .chain([u64::from(rate) * 3600 * 24 + 17])
            {
                assert_eq!(
                    timetag_to_frame(frame_to_timetag(frame, rate), rate),
                    frame,
                    "rate {rate} frame {frame}"
                );
            }
        }
    }

    const RATE: u32 = 8000;

    fn header() -> Header {
        Header::new(RATE.into(), 2).unwrap()
    }

    /// A journal with every kind of message the reader and renderer handle.
    fn valid_score() -> Vec<u8> {
        let message = |addr: &str, args: Vec<OscType>| {
            OscPacket::Message(OscMessage {
                addr: addr.into(),
                args,
            })
        };
        let bundle = |frame: u64, content: Vec<OscPacket>| OscBundle {
            timetag: frame_to_timetag(frame, RATE),
            content,
        };
        let mut gate = Vec::new();
        Command::Gate { voice: 1, on: true }.encode(&mut gate);
        let speech = speech_message(16, 1.0, 0.5, &[0.25; 64]);
        let bundles = [
            bundle(
                0,
                vec![message(
                    JOURNAL_ADDR,
                    vec![
                        OscType::Int(RATE as i32),
                        OscType::Int(2),
                        OscType::String(FORMAT.into()),
                    ],
                )],
            ),
            bundle(
                0,
                vec![OscPacket::Message(limiter_message(LimiterParams {
                    on: true,
                    ceiling_db: -3.0,
                }))],
            ),
            bundle(
                0,
                vec![
                    message("/mod/voice1/freq", vec![OscType::Float(330.0)]),
                    message("/gate/voice1", vec![OscType::Int(1)]),
                ],
            ),
            bundle(40, vec![message(CMD_ADDR, vec![OscType::Blob(gate)])]),
            bundle(
                80,
                vec![OscPacket::Bundle(bundle(
                    90,
                    vec![OscPacket::Message(speech)],
                ))],
            ),
            bundle(120, vec![message(RESET_ADDR, vec![])]),
            bundle(200, vec![message("/gate/voice2", vec![OscType::Int(0)])]),
        ];
        let mut bytes = Vec::new();
        for b in bundles {
            let encoded = chronus_osc::encode(&OscPacket::Bundle(b));
            bytes.extend((encoded.len() as u32).to_be_bytes());
            bytes.extend(encoded);
        }
        bytes
    }

    #[test]
    fn the_valid_score_is_read_whole_and_renders() {
        let score = parse(
            &valid_score()[..],
            "valid".into(),
            header(),
            MAX_SCORE_MEMORY,
        )
        .unwrap();
        assert_eq!(score.header, header());
        assert_eq!(score.events.len(), 8);
        let mut peak = 0.0f32;
        render(&score, 256, |samples| {
            peak = samples.iter().fold(peak, |m, s| m.max(s.abs()));
            Ok(())
        })
        .unwrap();
        assert!(peak > 0.0, "the score renders silence");
    }

    /// The score of a journal: its header, `first`, then two voices at full level.
    fn loud_score(first: OscMessage) -> Vec<u8> {
        let mut messages = vec![
            OscMessage {
                addr: JOURNAL_ADDR.into(),
                args: vec![
                    OscType::Int(RATE as i32),
                    OscType::Int(2),
                    OscType::String(FORMAT.into()),
                ],
            },
            first,
        ];
        for voice in 1..=2 {
            for (addr, value) in [("amp", 1.0), ("adsr/sustain", 1.0)] {
                messages.push(OscMessage {
                    addr: format!("/mod/voice{voice}/{addr}"),
                    args: vec![OscType::Float(value)],
                });
            }
            messages.push(OscMessage {
                addr: format!("/gate/voice{voice}"),
                args: vec![OscType::Int(1)],
            });
        }
        let mut bytes = Vec::new();
        for m in messages {
            let encoded = chronus_osc::encode(&OscPacket::Bundle(OscBundle {
                timetag: frame_to_timetag(0, RATE),
                content: vec![OscPacket::Message(m)],
            }));
            bytes.extend((encoded.len() as u32).to_be_bytes());
            bytes.extend(encoded);
        }
        bytes
    }

    fn render_peak(score: &Score) -> f32 {
        let mut peak = 0.0f32;
        render(score, u64::from(RATE), |samples| {
            peak = samples.iter().fold(peak, |m, s| m.max(s.abs()));
            Ok(())
        })
        .unwrap();
        peak
    }

    #[test]
    fn a_render_applies_the_journal_limiter_and_refuses_one_out_of_range() {
        for limiter in [
            LimiterParams {
                on: true,
                ceiling_db: -12.0,
            },
            LimiterParams::default(),
        ] {
            let bytes = loud_score(limiter_message(limiter));
            let score = parse(&bytes[..], "loud".into(), header(), MAX_SCORE_MEMORY).unwrap();
            let peak = render_peak(&score);
            assert!(
                peak <= limiter.ceiling(),
                "{peak} over {}",
                limiter.ceiling()
            );
            assert!(peak >= 0.99 * limiter.ceiling(), "{peak}");
        }
        let off = limiter_message(LimiterParams {
            on: false,
            ceiling_db: -12.0,
        });
        let bytes = loud_score(off);
        let score = parse(&bytes[..], "off".into(), header(), MAX_SCORE_MEMORY).unwrap();
        assert_eq!(render_peak(&score), 1.0);

        for args in [
            vec![OscType::Int(1), OscType::Float(-30.0)],
            vec![OscType::Int(1), OscType::Float(f32::NAN)],
            vec![OscType::Int(2), OscType::Float(-1.0)],
            vec![OscType::Float(-1.0)],
        ] {
            let bytes = loud_score(OscMessage {
                addr: LIMITER_ADDR.into(),
                args,
            });
            let err = parse(&bytes[..], "bad".into(), header(), MAX_SCORE_MEMORY).unwrap_err();
            assert!(
                err.to_string().contains(
                    "/chronus/limiter takes on i (0 or 1) and ceiling_db f (from -20.0 to 0.0)"
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn a_score_whose_messages_take_more_memory_than_its_budget_is_refused() {
        let bytes = valid_score();
        let err = parse(&bytes[..], "big".into(), header(), 256).unwrap_err();
        assert!(matches!(err, ScoreError::TooBig { .. }), "{err}");
        assert!(parse(&bytes[..], "big".into(), header(), 4096).is_ok());
    }

    #[test]
    fn mutated_scores_are_read_and_rendered_without_panicking() {
        // Values that sit on a bound somewhere: lengths, rates, voices, offsets.
        const EDGES: [u32; 10] = [
            0,
            1,
            4,
            16,
            8000,
            192_000,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fff0,
            u32::MAX,
        ];
        let valid = valid_score();
        let mut rng = fastrand::Rng::with_seed(0x00c4_1207);
        let (mut accepted, mut refused) = (0, 0);
        for case in 0..10_000 {
            let mut bytes = valid.clone();
            for _ in 0..rng.usize(1..=4) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.usize(..bytes.len());
                match rng.u8(..6) {
                    0 => bytes[at] ^= 1 << rng.u8(..8),
                    1 => bytes[at] = rng.u8(..),
                    2 => {
                        let at = at & !3;
                        let edge = EDGES[rng.usize(..EDGES.len())].to_be_bytes();
                        let end = (at + 4).min(bytes.len());
                        bytes[at..end].copy_from_slice(&edge[..end - at]);
                    }
                    3 => bytes.truncate(at),
                    4 => {
                        let len = rng.usize(..=64.min(bytes.len() - at));
                        let copy = bytes[at..at + len].to_vec();
                        let to = rng.usize(..=bytes.len());
                        bytes.splice(to..to, copy);
                    }
                    _ => {
                        let len = rng.usize(..=16.min(bytes.len() - at));
                        bytes.drain(at..at + len);
                    }
                }
            }
            let outcome = std::panic::catch_unwind(|| {
                parse(&bytes[..], "mutant".into(), header(), MAX_SCORE_MEMORY)
                    .and_then(|score| render(&score, 256, |_| Ok(())))
                    .is_ok()
            });
            match outcome {
                Ok(true) => accepted += 1,
                Ok(false) => refused += 1,
                Err(_) => panic!("case {case} panicked on {bytes:?}"),
            }
        }
        // Both paths were exercised: the mutations neither all break nor all spare the score.
        assert!(
            accepted > 100 && refused > 100,
            "{accepted} accepted, {refused} refused"
        );
    }
}
