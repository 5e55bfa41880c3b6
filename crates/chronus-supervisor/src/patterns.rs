//! `/pattern/save n`, `/pattern/load n [immediate]` and `/pattern/list`: the
//! parameter state in 128 slots, one JSON file each in `engine.patterns_dir`.
//!
//! A slot holds the sequencer (tracks, tempo, swing, gate length), the shared
//! modules and every voice's parameters and gate; not the master gain or
//! whether the sequencer runs, which belong to the performance. Loading
//! publishes the commands that recreate it as one group, so it takes effect at
//! one frame on every worker: the next bar line of the sequencer's timeline,
//! or at once with `immediate` or while the sequencer is stopped.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chronus_dsp::{Command, Params};
use chronus_osc::{OscMessage, OscType};

/// Slots are numbered `0..SLOTS`.
pub const SLOTS: u32 = 128;
/// Version of the file layout, checked on load.
const FORMAT: u64 = 1;
/// Larger files are not read: a full slot is a few tens of KiB.
const MAX_FILE_BYTES: u64 = 1 << 20;
pub const SAVE_ADDR: &str = "/pattern/save";
pub const LOAD_ADDR: &str = "/pattern/load";
pub const LIST_ADDR: &str = "/pattern/list";

pub enum Request {
    Save(u32),
    Load { slot: u32, immediate: bool },
    List,
}

/// Parses a `/pattern/*` message.
pub fn parse(message: &OscMessage) -> Result<Request, String> {
    let slot = |arg: &OscType| -> Result<u32, String> {
        let n = match arg {
            OscType::Int(n) => i64::from(*n),
            OscType::Long(n) => *n,
            OscType::Float(f) if f.fract() == 0.0 => *f as i64,
            other => return Err(format!("slot {other:?} is not a whole number 0..=127")),
        };
        u32::try_from(n)
            .ok()
            .filter(|&n| n < SLOTS)
            .ok_or_else(|| format!("slot {n} is out of range; slots are 0..=127"))
    };
    match (message.addr.as_str(), message.args.as_slice()) {
        (SAVE_ADDR, [n]) => Ok(Request::Save(slot(n)?)),
        (SAVE_ADDR, _) => Err("expected one argument, the slot 0..=127".into()),
        (LOAD_ADDR, [n]) => Ok(Request::Load {
            slot: slot(n)?,
            immediate: false,
        }),
        (LOAD_ADDR, [n, OscType::String(word)]) if word == "immediate" => Ok(Request::Load {
            slot: slot(n)?,
            immediate: true,
        }),
        (LOAD_ADDR, _) => {
            Err("expected the slot 0..=127, then optionally the string \"immediate\"".into())
        }
        (LIST_ADDR, []) => Ok(Request::List),
        (LIST_ADDR, _) => Err("expected no arguments".into()),
        (addr, _) => Err(format!(
            "{addr}: unknown address (accepted: {SAVE_ADDR} n, {LOAD_ADDR} n [immediate], {LIST_ADDR})"
        )),
    }
}

/// Why a slot could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("slot {slot} is empty (no {path})")]
    Empty { slot: u32, path: PathBuf },
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes; at most {MAX_FILE_BYTES} are read")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path} is not a saved pattern: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn slot_path(dir: &Path, slot: u32) -> PathBuf {
    dir.join(format!("{slot:03}.json"))
}

/// Writes `params` into `slot` atomically: a temporary file in the same
/// directory, flushed to disk, renamed over the slot, and the directory synced,
/// so a crash leaves either the old slot or the new one.
pub fn save(dir: &Path, slot: u32, params: &Params) -> Result<(), PatternError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| PatternError::Io { what, path, source }
    };
    fs::create_dir_all(dir).map_err(io("create the directory", dir))?;
    let path = slot_path(dir, slot);
    let tmp = dir.join(format!(".{slot:03}.json.{}.tmp", std::process::id()));
    let json = serde_json::json!({ "format": FORMAT, "params": params });
    let bytes = serde_json::to_vec_pretty(&json).map_err(|e| PatternError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let written = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        })
        .map_err(io("write", &tmp))
        .and_then(|()| fs::rename(&tmp, &path).map_err(io("rename into", &path)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync the directory", dir))
}

/// Reads `slot` for an engine with `num_voices` voices: validated and clamped,
/// voices beyond the engine's dropped (and their tracks with them).
pub fn load(dir: &Path, slot: u32, num_voices: u8) -> Result<Params, PatternError> {
    let path = slot_path(dir, slot);
    let io = |what| {
        let path = path.clone();
        move |source| PatternError::Io { what, path, source }
    };
    let size = match fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PatternError::Empty { slot, path });
        }
        Err(e) => return Err(io("read")(e)),
    };
    if size > MAX_FILE_BYTES {
        return Err(PatternError::TooLarge { path, size });
    }
    let bytes = fs::read(&path).map_err(io("read"))?;
    let corrupt = |reason: String| PatternError::Corrupt {
        path: path.clone(),
        reason,
    };
    let mut json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    match json.get("format").and_then(serde_json::Value::as_u64) {
        Some(FORMAT) => {}
        other => return Err(corrupt(format!("format {other:?}, expected {FORMAT}"))),
    }
    let mut params: Params = serde_json::from_value(json["params"].take())
        .map_err(|e| corrupt(format!("params: {e}")))?;
    params.voices.truncate(usize::from(num_voices));
    Ok(params.sanitized())
}

/// The slots that hold a file, in order.
pub fn list(dir: &Path) -> Result<Vec<u32>, PatternError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // Nothing saved yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PatternError::Io {
                what: "list",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut slots: Vec<u32> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            let stem = name.to_str()?.strip_suffix(".json")?;
            let slot: u32 = stem.parse().ok()?;
            (stem.len() == 3 && slot < SLOTS).then_some(slot)
        })
        .collect();
    slots.sort_unstable();
    Ok(slots)
}

/// What loading `params` publishes: everything [`Params::commands`] sets except
/// the transport and the master gain.
pub fn load_commands(params: &Params) -> Vec<Command> {
    params
        .commands()
        .into_iter()
        .filter(|c| !matches!(c, Command::SeqRun { .. } | Command::Fade { .. }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronus_dsp::seq::{Pattern, Track, TrackName};

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("chronus-patterns-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn msg(addr: &str, args: Vec<OscType>) -> OscMessage {
        OscMessage {
            addr: addr.into(),
            args,
        }
    }

    #[test]
    fn a_saved_slot_loads_back_equal_and_lists() {
        let dir = scratch("roundtrip");
        let mut params = Params::new(4);
        params.apply(&Command::SeqAdd(Track::new(
            TrackName::new("kick").unwrap(),
            3,
            Pattern::parse("X..x").unwrap(),
        )));
        params.voices[1].filter_q = 7.5;
        params.seq.swing = 0.3;
        save(&dir, 7, &params).unwrap();
        save(&dir, 127, &Params::new(4)).unwrap();
        assert_eq!(load(&dir, 7, 4).unwrap(), params);
        assert_eq!(list(&dir).unwrap(), [7, 127]);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        // Fewer voices: the extra voice and its track are dropped.
        let two = load(&dir, 7, 2).unwrap();
        assert_eq!((two.voices.len(), two.seq.tracks.len()), (2, 0));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_missing_and_foreign_files_are_errors() {
        let dir = scratch("corrupt");
        assert!(matches!(load(&dir, 3, 4), Err(PatternError::Empty { .. })));
        assert_eq!(list(&dir).unwrap(), Vec::<u32>::new());
        fs::create_dir_all(&dir).unwrap();
        for (slot, text) in [
            (1, "{\"format\": 1, \"params\": {\"voices\": [{\"freq\": 1"),
            (2, "{\"format\": 9, \"params\": {}}"),
            (
                3,
                "{\"format\": 1, \"params\": {\"voices\": [], \"master_gain\": 1.0, \"seq\": {\"tracks\": [{\"name\": \"\", \"voice\": 0, \"pattern\": \"x\"}]}}}",
            ),
            (4, "[1, 2]"),
        ] {
            fs::write(slot_path(&dir, slot), text).unwrap();
            assert!(
                matches!(load(&dir, slot, 4), Err(PatternError::Corrupt { .. })),
                "{text}"
            );
        }
        fs::write(dir.join("notes.txt"), "x").unwrap();
        fs::write(dir.join("200.json"), "{}").unwrap();
        assert_eq!(list(&dir).unwrap(), [1, 2, 3, 4]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn slots_outside_0_to_127_and_stray_arguments_are_refused() {
        for args in [
            vec![OscType::Int(128)],
            vec![OscType::Int(-1)],
            vec![OscType::Float(1.5)],
            vec![OscType::String("1".into())],
            vec![],
        ] {
            assert!(parse(&msg(SAVE_ADDR, args.clone())).is_err(), "{args:?}");
            assert!(parse(&msg(LOAD_ADDR, args.clone())).is_err(), "{args:?}");
        }
        assert!(
            parse(&msg(
                LOAD_ADDR,
                vec![OscType::Int(1), OscType::String("now".into())]
            ))
            .is_err()
        );
        assert!(parse(&msg(LIST_ADDR, vec![OscType::Int(1)])).is_err());
        assert!(parse(&msg("/pattern/delete", vec![OscType::Int(1)])).is_err());
        assert!(matches!(
            parse(&msg(
                LOAD_ADDR,
                vec![OscType::Int(127), OscType::String("immediate".into())]
            )),
            Ok(Request::Load {
                slot: 127,
                immediate: true
            })
        ));
    }

    #[test]
    fn loading_leaves_the_transport_and_master_gain_alone() {
        let commands = load_commands(&Params::new(2));
        assert!(matches!(commands[0], Command::SeqClear));
        assert!(
            !commands
                .iter()
                .any(|c| matches!(c, Command::SeqRun { .. } | Command::Fade { .. }))
        );
    }
}
