//! `/pattern/save n`, `/pattern/load n [immediate]` and `/pattern/list`: the
//! parameter state in 128 slots, one JSON file each in `engine.patterns_dir`.
//!
//! A slot holds the sequencer (tracks, tempo, swing, gate length), the shared
//! modules and every voice's parameters and gate; not the master gain or
//! whether the sequencer runs, which belong to the performance. Loading
//! publishes the commands that recreate it as one group, so it takes effect at
//! one frame on every worker: the next bar line of the sequencer's timeline,
//! or at once with `immediate` or while the sequencer is stopped.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use chronus_dsp::seq::MAX_TRACKS;
use chronus_dsp::{Bounds, Command, Control, GATE_LENGTH, MASTER_GAIN, Params, VoiceParam};
use chronus_osc::{OscMessage, OscType};

use crate::files::{self, FileError};

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
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "cannot save slot {slot}: {path} is {kind}; accepted: a regular file or nothing at that path"
    )]
    Occupied {
        slot: u32,
        path: PathBuf,
        kind: &'static str,
    },
    #[error("{path} is not a saved pattern: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The file that holds `slot`.
pub fn slot_path(dir: &Path, slot: u32) -> PathBuf {
    dir.join(format!("{slot:03}.json"))
}

/// Writes `params` into `slot` atomically: a temporary file in the same
/// directory, flushed to disk, renamed over the slot, and the directory synced,
/// so a crash leaves either the old slot or the new one. Whatever else was
/// planted at the slot's path (a FIFO, a directory, a link) is left alone.
pub fn save(dir: &Path, slot: u32, params: &Params) -> Result<(), PatternError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| PatternError::Io { what, path, source }
    };
    fs::create_dir_all(dir).map_err(io("create the directory", dir))?;
    let path = slot_path(dir, slot);
    match fs::symlink_metadata(&path) {
        Ok(meta) if !meta.file_type().is_file() => {
            return Err(PatternError::Occupied {
                slot,
                kind: files::describe(meta.file_type()),
                path,
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspect", &path)(e)),
    }
    let json = serde_json::json!({ "format": FORMAT, "params": params });
    let bytes = serde_json::to_vec_pretty(&json).map_err(|e| PatternError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    // Saves in this process take turns, so a temporary file already at our
    // name is a leftover or planted, never another save's.
    let _turn = SAVING.lock().unwrap_or_else(PoisonError::into_inner);
    let tmp = dir.join(format!(".{slot:03}.json.{}.tmp", std::process::id()));
    let written = create_new(&tmp)
        .or_else(|e| {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            // Removing a link removes the link, not its target.
            fs::remove_file(&tmp)?;
            create_new(&tmp)
        })
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

static SAVING: Mutex<()> = Mutex::new(());

/// A new file, never through a link planted at its name.
fn create_new(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Reads and checks `slot` for an engine with `num_voices` voices: the
/// pattern as saved, or an error if any part of it could not be applied.
pub fn load(dir: &Path, slot: u32, num_voices: u8) -> Result<Params, PatternError> {
    let bytes = read(dir, slot)?;
    decode(&slot_path(dir, slot), &bytes, num_voices)
}

/// The bytes of `slot`'s file: only a regular file (or a link to one) of at
/// most [`MAX_FILE_BYTES`], read without blocking on anything else.
pub fn read(dir: &Path, slot: u32) -> Result<Vec<u8>, PatternError> {
    let path = slot_path(dir, slot);
    files::read_regular(&path, MAX_FILE_BYTES).map_err(|e| {
        if e.is_not_found() {
            PatternError::Empty { slot, path }
        } else {
            PatternError::File(e)
        }
    })
}

/// The pattern in `bytes` (read from `path`, named in errors) for an engine
/// with `num_voices` voices. It applies whole or not at all: a value out of
/// range or not finite, more voices than the engine has, a track on a voice it
/// lacks, too many tracks or two of one name make it [`PatternError::Corrupt`].
pub fn decode(path: &Path, bytes: &[u8], num_voices: u8) -> Result<Params, PatternError> {
    let corrupt = |reason: String| PatternError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    match json.get("format").and_then(serde_json::Value::as_u64) {
        Some(FORMAT) => {}
        other => return Err(corrupt(format!("format {other:?}, expected {FORMAT}"))),
    }
    let params: Params = serde_json::from_value(json["params"].take())
        .map_err(|e| corrupt(format!("params: {e}")))?;
    check(&params, num_voices).map_err(corrupt)?;
    Ok(params)
}

/// Why `params` cannot be applied whole to an engine with `num_voices`
/// voices: the field and what it accepts.
fn check(params: &Params, num_voices: u8) -> Result<(), String> {
    let voices = usize::from(num_voices);
    if params.voices.len() > voices {
        return Err(format!(
            "voices: {} given; accepted: at most {voices}, the engine's voices",
            params.voices.len()
        ));
    }
    for (i, voice) in params.voices.iter().enumerate() {
        for param in VoiceParam::ALL {
            in_bounds(
                &format!("voices[{i}].{}", voice_field(param)),
                voice.get(param),
                param.bounds(),
            )?;
        }
    }
    in_bounds("master_gain", params.master_gain, MASTER_GAIN)?;
    for control in Control::ALL {
        in_bounds(
            control_field(control),
            params.control(control),
            control.bounds(),
        )?;
    }
    let tracks = &params.seq.tracks;
    if tracks.len() > MAX_TRACKS {
        return Err(format!(
            "seq.tracks: {} given; accepted: at most {MAX_TRACKS}",
            tracks.len()
        ));
    }
    for (i, track) in tracks.iter().enumerate() {
        let field = |name: &str| format!("seq.tracks[{i}] ({}).{name}", track.name);
        if tracks[..i].iter().any(|t| t.name == track.name) {
            return Err(format!(
                "{}: a second track of that name; accepted: one track per name",
                field("name")
            ));
        }
        if usize::from(track.voice) >= voices {
            return Err(format!(
                "{}: {}; accepted: 0..={} (0-based, the engine's {voices} voices)",
                field("voice"),
                track.voice,
                voices.saturating_sub(1)
            ));
        }
        let optional = [
            ("base_freq", track.base_freq, VoiceParam::Freq.bounds()),
            (
                "filter_freq",
                track.filter_freq,
                VoiceParam::FilterFreq.bounds(),
            ),
            ("gate", track.gate, GATE_LENGTH),
        ];
        for (name, value, bounds) in optional {
            if let Some(value) = value {
                in_bounds(&field(name), value, bounds)?;
            }
        }
        for (n, &hz) in track.notes.as_slice().iter().enumerate() {
            in_bounds(
                &field(&format!("notes[{n}]")),
                hz,
                VoiceParam::Freq.bounds(),
            )?;
        }
    }
    Ok(())
}

fn in_bounds(field: &str, value: f32, bounds: Bounds) -> Result<(), String> {
    if value.is_finite() && (bounds.min..=bounds.max).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field}: {value}; accepted: a number in {}..={}",
            bounds.min, bounds.max
        ))
    }
}

/// The name of `param` in a saved voice.
fn voice_field(param: VoiceParam) -> &'static str {
    match param {
        VoiceParam::Freq => "freq",
        VoiceParam::Amp => "amp",
        VoiceParam::SlideTime => "slide_time",
        VoiceParam::Attack => "attack",
        VoiceParam::Decay => "decay",
        VoiceParam::Sustain => "sustain",
        VoiceParam::Release => "release",
        VoiceParam::Osc => "osc",
        VoiceParam::FilterFreq => "filter_freq",
        VoiceParam::FilterQ => "filter_q",
        VoiceParam::SendReverb => "send_reverb",
        VoiceParam::SendDelay => "send_delay",
    }
}

/// Where `control` is in saved parameters.
fn control_field(control: Control) -> &'static str {
    match control {
        Control::AcidCutoff => "acid.cutoff",
        Control::AcidRes => "acid.res",
        Control::AcidEnvAmount => "acid.env_amount",
        Control::AcidDecay => "acid.decay",
        Control::AcidDrive => "acid.drive",
        Control::AcidMix => "acid.mix",
        Control::AcidVolComp => "acid.vol_comp",
        Control::AcidAccent => "acid.accent",
        Control::AcidCutoffOffset => "acid.cutoff_offset",
        Control::AcidResAccentBoost => "acid.res_accent_boost",
        Control::AcidAccentDecay => "acid.accent_decay",
        Control::DistDrive => "dist.drive",
        Control::DistMix => "dist.mix",
        Control::DistTone => "dist.tone",
        Control::ReverbMix => "reverb.mix",
        Control::ReverbRoom => "reverb.room",
        Control::ReverbDamp => "reverb.damp",
        Control::DelayTime => "delay.time",
        Control::DelayFeedback => "delay.feedback",
        Control::DelayMix => "delay.mix",
        Control::DelayLowcut => "delay.lowcut",
        Control::DelayHighcut => "delay.highcut",
        Control::Lfo1Rate => "lfo1.rate",
        Control::Lfo1Depth => "lfo1.depth",
        Control::Lfo2Rate => "lfo2.rate",
        Control::Lfo2Depth => "lfo2.depth",
        Control::SeqBpm => "seq.bpm",
        Control::SeqSwing => "seq.swing",
        Control::SeqGateLength => "seq.gate_length",
    }
}

/// The slots that hold a regular file (or a link to one), in order. Entries
/// are only inspected, never opened, so a FIFO among them cannot block.
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
            let entry = e.ok()?;
            let name = entry.file_name();
            let stem = name.to_str()?.strip_suffix(".json")?;
            let slot: u32 = stem.parse().ok()?;
            let loadable = fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
            (stem.len() == 3 && slot < SLOTS && loadable).then_some(slot)
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
        // An engine with fewer voices cannot take it whole: refused, not cut down.
        let reason = corrupt_reason(load(&dir, 7, 2));
        assert!(
            reason.contains("voices: 4 given; accepted: at most 2"),
            "{reason}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    fn corrupt_reason(loaded: Result<Params, PatternError>) -> String {
        match loaded {
            Err(PatternError::Corrupt { reason, .. }) => reason,
            other => panic!("expected a corrupt pattern, got {other:?}"),
        }
    }

    /// A saved pattern of 4 voices with one track, its `params` edited by `edit`.
    fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut params = Params::new(4);
        params.apply(&Command::SeqAdd(Track::new(
            TrackName::new("kick").unwrap(),
            0,
            Pattern::parse("x...").unwrap(),
        )));
        let mut json = serde_json::json!({ "format": FORMAT, "params": params });
        edit(&mut json["params"]);
        serde_json::to_vec(&json).unwrap()
    }

    #[test]
    fn a_pattern_that_cannot_apply_whole_is_refused_naming_the_field_and_range() {
        let path = Path::new("/patterns/001.json");
        assert!(decode(path, &edited(|_| {}), 4).is_ok());
        let track = |p: &mut serde_json::Value| p["seq"]["tracks"][0].take();
        for (edit, expected) in [
            (
                Box::new(|p: &mut serde_json::Value| p["seq"]["tracks"][0]["voice"] = 99.into())
                    as Box<dyn FnOnce(&mut serde_json::Value)>,
                "seq.tracks[0] (kick).voice: 99; accepted: 0..=3",
            ),
            (
                Box::new(|p| {
                    let voice = p["voices"][0].clone();
                    p["voices"].as_array_mut().unwrap().push(voice);
                }),
                "voices: 5 given; accepted: at most 4",
            ),
            (
                // Beyond f32: it reads as infinite.
                Box::new(|p| p["voices"][2]["freq"] = 1e39.into()),
                "voices[2].freq: inf; accepted: a number in 20..=5000",
            ),
            (
                Box::new(|p| p["voices"][1]["filter_q"] = 11.0.into()),
                "voices[1].filter_q: 11; accepted: a number in 0.5..=10",
            ),
            (
                Box::new(|p| p["voices"][0]["osc"] = 7.into()),
                "voices[0].osc: 7; accepted: a number in 0..=6",
            ),
            (
                Box::new(|p| p["master_gain"] = (-1.0).into()),
                "master_gain: -1; accepted: a number in 0..=1",
            ),
            (
                Box::new(|p| p["seq"]["bpm"] = 1000.0.into()),
                "seq.bpm: 1000; accepted: a number in 30..=300",
            ),
            (
                Box::new(|p| p["lfo2"]["depth"] = 2.0.into()),
                "lfo2.depth: 2; accepted: a number in 0..=1",
            ),
            (
                Box::new(|p| p["seq"]["tracks"][0]["notes"] = serde_json::json!([110.0, 1e6])),
                "seq.tracks[0] (kick).notes[1]: 1000000; accepted: a number in 20..=5000",
            ),
            (
                Box::new(|p| p["seq"]["tracks"][0]["gate"] = 0.0.into()),
                "seq.tracks[0] (kick).gate: 0; accepted: a number in 0.01..=1",
            ),
            (
                Box::new(move |p| {
                    let kick = track(p);
                    p["seq"]["tracks"] = serde_json::json!([kick, kick]);
                }),
                "seq.tracks[1] (kick).name: a second track of that name",
            ),
            (
                Box::new(|p| {
                    let tracks: Vec<_> = (0..=MAX_TRACKS)
                        .map(|i| serde_json::json!({"name": format!("t{i}"), "voice": 0, "pattern": "x"}))
                        .collect();
                    p["seq"]["tracks"] = tracks.into();
                }),
                "seq.tracks: 33 given; accepted: at most 32",
            ),
        ] {
            let reason = corrupt_reason(decode(path, &edited(edit), 4));
            assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
        }
    }

    /// Runs `f` on its own thread, so a call that blocks fails the test
    /// instead of hanging it.
    fn promptly<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{what} did not return within 5 s: {e}"))
    }

    #[test]
    fn slot_files_that_are_fifos_devices_or_too_large_are_refused_without_blocking() {
        let dir = scratch("special");
        fs::create_dir_all(&dir).unwrap();
        nix::unistd::mkfifo(&slot_path(&dir, 1), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::os::unix::fs::symlink("/dev/zero", slot_path(&dir, 2)).unwrap();
        fs::write(slot_path(&dir, 3), vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
        fs::create_dir(slot_path(&dir, 4)).unwrap();
        save(&dir, 5, &Params::new(4)).unwrap();
        for (slot, expected) in [
            (1, "is a FIFO; accepted: a regular file"),
            (
                2,
                "is a symbolic link to a character device; accepted: a regular file",
            ),
            (3, "accepted: at most 1048576 bytes"),
            (4, "is a directory; accepted: a regular file"),
        ] {
            let d = dir.clone();
            match promptly(&format!("loading slot {slot}"), move || load(&d, slot, 4)) {
                Err(e @ PatternError::File(_)) => {
                    let message = e.to_string();
                    assert!(message.contains(expected), "{slot}: {message}");
                }
                other => panic!("{slot}: {other:?}"),
            }
        }
        let d = dir.clone();
        assert_eq!(promptly("listing", move || list(&d)).unwrap(), [3, 5]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saving_over_a_planted_fifo_directory_or_link_is_refused_and_leaves_it() {
        let dir = scratch("occupied");
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "keep").unwrap();
        nix::unistd::mkfifo(&slot_path(&dir, 1), nix::sys::stat::Mode::S_IRWXU).unwrap();
        fs::create_dir(slot_path(&dir, 2)).unwrap();
        std::os::unix::fs::symlink(&victim, slot_path(&dir, 3)).unwrap();
        for (slot, kind) in [(1, "a FIFO"), (2, "a directory"), (3, "a symbolic link")] {
            let d = dir.clone();
            let saved = promptly("saving", move || save(&d, slot, &Params::new(4)));
            match saved {
                Err(e @ PatternError::Occupied { .. }) => {
                    assert!(e.to_string().contains(&format!("is {kind};")), "{e}")
                }
                other => panic!("{slot}: {other:?}"),
            }
        }
        let kinds: Vec<bool> = (1..=3)
            .map(|slot| {
                fs::symlink_metadata(slot_path(&dir, slot))
                    .unwrap()
                    .is_file()
            })
            .collect();
        assert_eq!(kinds, [false, false, false], "a planted entry was replaced");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_link_planted_at_the_temporary_name_is_replaced_not_written_through() {
        let dir = scratch("tmp-link");
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "keep").unwrap();
        let tmp = dir.join(format!(".007.json.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        save(&dir, 7, &Params::new(4)).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(
            fs::symlink_metadata(&tmp).is_err(),
            "the link is still there"
        );
        assert!(fs::symlink_metadata(slot_path(&dir, 7)).unwrap().is_file());
        assert_eq!(load(&dir, 7, 4).unwrap(), Params::new(4));
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
