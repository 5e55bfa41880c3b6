//! The Music Chronus reply addresses: `/engine/status`, `/engine/list`,
//! `/engine/schema`, `/seq/status` and the names `/engine/record/start` accepts.
//! Everything here reads the parameter mirror: the state the device has played.

use chronus_dsp::Params;
use chronus_osc::{OscPacket, OscType, flag};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub const STATUS_REPLY_ADDR: &str = "/engine/status.reply";
pub const LIST_REPLY_ADDR: &str = "/engine/list.reply";
pub const SCHEMA_REPLY_ADDR: &str = "/engine/schema.reply";
pub const SEQ_STATUS_REPLY_ADDR: &str = "/seq/status.reply";
pub const RECORD_START_ADDR: &str = "/engine/record/start";
pub const RECORD_STOP_ADDR: &str = "/engine/record/stop";
pub const RECORD_STATUS_REPLY_ADDR: &str = "/engine/record/status.reply";

/// Longest file name `/engine/record/start` accepts, in bytes.
const MAX_NAME: usize = 200;

fn pairs(addr: &str, pairs: Vec<(&str, OscType)>) -> OscPacket {
    let args = pairs
        .into_iter()
        .flat_map(|(key, value)| [OscType::String(key.to_owned()), value])
        .collect();
    chronus_osc::message(addr, args)
}

/// `/engine/status.reply`: running (the master is not faded out), the rate,
/// the voices and the gates `/gate` holds open (sequencer hits are not
/// commands, so they are not counted), and the sequencer's transport.
pub fn status(params: &Params, sample_rate: u32, recording: bool) -> OscPacket {
    let gates: String = params
        .voices
        .iter()
        .map(|v| if v.gate { '1' } else { '0' })
        .collect();
    let open = params.voices.iter().filter(|v| v.gate).count();
    pairs(
        STATUS_REPLY_ADDR,
        vec![
            (
                "state",
                OscType::String(
                    if params.master_gain > 0.0 {
                        "running"
                    } else {
                        "stopped"
                    }
                    .into(),
                ),
            ),
            ("master_gain", OscType::Float(params.master_gain)),
            ("sample_rate", OscType::Int(sample_rate as i32)),
            ("num_voices", OscType::Int(params.voices.len() as i32)),
            ("active_voices", OscType::Int(open as i32)),
            ("gates", OscType::String(gates)),
            ("seq_running", flag(params.seq.running)),
            ("bpm", OscType::Float(params.seq.bpm)),
            ("recording", flag(recording)),
        ],
    )
}

/// `/engine/list.reply`: one string per module.
pub fn list(num_voices: u8) -> OscPacket {
    chronus_osc::message(
        LIST_REPLY_ADDR,
        chronus_dsp::modules(num_voices)
            .into_iter()
            .map(OscType::String)
            .collect(),
    )
}

/// `/engine/schema.reply`: the registry as one JSON string (about 8 KB, well
/// within one UDP datagram; a unit test in chronus-dsp keeps it so).
pub fn schema() -> OscPacket {
    chronus_osc::message(
        SCHEMA_REPLY_ADDR,
        vec![OscType::String(chronus_dsp::schema())],
    )
}

/// `/seq/status.reply`: transport and timing, then `trackK_*` keys for each
/// track in the order they were added (K from 1): name, voice, pattern, notes
/// (Hz, comma-separated, empty for none), and base_freq, filter_freq and gate
/// when the track sets them.
pub fn seq_status(params: &Params) -> OscPacket {
    let seq = &params.seq;
    let mut out: Vec<(String, OscType)> = vec![
        ("running".into(), flag(seq.running)),
        ("bpm".into(), OscType::Float(seq.bpm)),
        ("swing".into(), OscType::Float(seq.swing)),
        ("gate_length".into(), OscType::Float(seq.gate_length)),
        ("tracks".into(), OscType::Int(seq.tracks.len() as i32)),
    ];
    for (i, t) in seq.tracks.iter().enumerate() {
        let key = |what: &str| format!("track{}_{what}", i + 1);
        let mut notes = String::new();
        for (n, hz) in t.notes.as_slice().iter().enumerate() {
            let _ = write!(notes, "{}{hz}", if n == 0 { "" } else { "," });
        }
        out.extend([
            (key("name"), OscType::String(t.name.to_string())),
            (
                key("voice"),
                OscType::String(format!("voice{}", u16::from(t.voice) + 1)),
            ),
            (key("pattern"), OscType::String(t.pattern.to_string())),
            (key("notes"), OscType::String(notes)),
        ]);
        let optional = [
            ("base_freq", t.base_freq),
            ("filter_freq", t.filter_freq),
            ("gate", t.gate),
        ];
        for (what, value) in optional {
            if let Some(value) = value {
                out.push((key(what), OscType::Float(value)));
            }
        }
    }
    pairs(
        SEQ_STATUS_REPLY_ADDR,
        out.iter().map(|(k, v)| (k.as_str(), v.clone())).collect(),
    )
}

/// `/engine/record/status.reply`.
pub fn record_status(
    recording: bool,
    file: Option<&Path>,
    start_frame: u64,
    frames: u64,
    dropped: u64,
) -> OscPacket {
    let long = chronus_osc::count;
    pairs(
        RECORD_STATUS_REPLY_ADDR,
        vec![
            ("recording", flag(recording)),
            (
                "file",
                OscType::String(file.map(|p| p.display().to_string()).unwrap_or_default()),
            ),
            ("start_frame", long(start_frame)),
            ("frames_written", long(frames)),
            ("dropped_frames", long(dropped)),
        ],
    )
}

/// The file name a take is written to: `requested` (with `.wav` added unless
/// it ends so), or `chronus-YYYYMMDD-HHMMSS-mmm.wav` (UTC) of `now`. Names are
/// only names: no `/`, not starting with `.` (so no `..`), no control characters.
pub fn recording_name(requested: Option<&str>, now: SystemTime) -> Result<String, String> {
    let Some(name) = requested else {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (y, m, d) = civil_date(secs / 86_400);
        let t = secs % 86_400;
        return Ok(format!(
            "chronus-{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{:03}.wav",
            t / 3600,
            t / 60 % 60,
            t % 60,
            since.subsec_millis()
        ));
    };
    let refused = |why: &str| {
        Err(format!(
            "file name {name:?} {why} (accepted: a file name of at most {MAX_NAME} bytes, \
             without `/`, not starting with `.`, created in the recordings directory)"
        ))
    };
    if name.is_empty() {
        return refused("is empty");
    }
    if name.contains('/') {
        return refused("contains `/`: paths are not accepted");
    }
    if name.starts_with('.') {
        return refused("starts with `.`");
    }
    if name.chars().any(char::is_control) {
        return refused("contains control characters");
    }
    if name.len() > MAX_NAME {
        return refused("is too long");
    }
    if name.to_ascii_lowercase().ends_with(".wav") {
        Ok(name.to_owned())
    } else {
        Ok(format!("{name}.wav"))
    }
}

/// Year, month and day of the `days`-th day since 1970-01-01 (proleptic Gregorian).
fn civil_date(days: u64) -> (u64, u64, u64) {
    // Howard Hinnant's days_from_civil inverse, with eras of 400 years.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn recording_names_are_file_names_only() {
        let now = SystemTime::now();
        assert_eq!(recording_name(Some("take"), now).unwrap(), "take.wav");
        assert_eq!(recording_name(Some("a b.WAV"), now).unwrap(), "a b.WAV");
        assert_eq!(recording_name(Some("x..y"), now).unwrap(), "x..y.wav");
        for bad in [
            "",
            "..",
            ".",
            "../x.wav",
            "/tmp/x.wav",
            "a/b",
            ".hidden",
            "a\nb",
        ] {
            let err = recording_name(Some(bad), now).unwrap_err();
            assert!(err.contains("accepted"), "{bad:?}: {err}");
        }
        assert!(recording_name(Some(&"a".repeat(MAX_NAME + 1)), now).is_err());
    }

    #[test]
    fn the_default_recording_name_is_the_utc_time() {
        // 2024-02-29T23:59:58.250Z
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_198_250);
        assert_eq!(
            recording_name(None, t).unwrap(),
            "chronus-20240229-235958-250.wav"
        );
        assert_eq!(
            recording_name(None, UNIX_EPOCH).unwrap(),
            "chronus-19700101-000000-000.wav"
        );
    }

    #[test]
    fn seq_status_names_every_track_with_numbered_keys() {
        let mut params = Params::new(2);
        for cmd in [
            chronus_dsp::dialect::parse(
                "/seq/add",
                &[
                    chronus_dsp::dialect::Arg::Str("bass"),
                    chronus_dsp::dialect::Arg::Str("voice2"),
                    chronus_dsp::dialect::Arg::Str("X.x."),
                    chronus_dsp::dialect::Arg::Str("notes=110.0,220.0"),
                ],
                2,
            )
            .unwrap(),
            chronus_dsp::Command::SeqRun { on: true },
        ] {
            params.apply(&cmd);
        }
        let OscPacket::Message(m) = seq_status(&params) else {
            panic!("not a message");
        };
        let pairs: std::collections::HashMap<_, _> =
            chronus_osc::status_pairs(&m).unwrap().into_iter().collect();
        assert_eq!(pairs["running"], OscType::Int(1));
        assert_eq!(pairs["tracks"], OscType::Int(1));
        assert_eq!(pairs["track1_name"], OscType::String("bass".into()));
        assert_eq!(pairs["track1_voice"], OscType::String("voice2".into()));
        assert_eq!(pairs["track1_pattern"], OscType::String("X.x.".into()));
        assert_eq!(pairs["track1_notes"], OscType::String("110,220".into()));
        assert!(!pairs.contains_key("track1_gate"));
    }
}
