//! `/pattern/save|load|list` through the real daemon: slots as files, a load
//! landing on one bar line of the sequencer's timeline (read back from the
//! journal, which records the frame every command took effect at), and bad
//! requests refused without touching what plays.
//! Tests here share the machine's timing: run them serially (--test-threads=1).

use chronus_dsp::Command as Cmd;
use chronus_e2e::*;
use chronus_osc::{OscMessage, OscPacket, OscType, RequestError};
use chronus_supervisor::score;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// At 120 bpm and 48 kHz a 16th is 6000 frames, a bar 96 000.
const BAR_FRAMES: u64 = 96_000;

fn pattern_daemon(name: &str) -> (Daemon, PathBuf) {
    let dir = scratch(&format!("{name}-files"));
    let env = [
        ("CHRONUS_AUDIO_BACKEND", "null".to_owned()),
        (
            "CHRONUS_JOURNAL",
            dir.join("journal.osc").display().to_string(),
        ),
        (
            "CHRONUS_PATTERNS_DIR",
            dir.join("patterns").display().to_string(),
        ),
    ];
    (Daemon::start(name, &env), dir)
}

/// Sends a request and returns the arguments of its `/chronus/done` after the address.
fn ask(d: &Daemon, addr: &str, args: Vec<OscType>) -> Result<Vec<OscType>, String> {
    let packet = OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    });
    match chronus_osc::request(d.osc, &packet, "/chronus/done", Duration::from_secs(2)) {
        Ok(reply) => Ok(chronus_osc::done_args(&reply, addr)
            .unwrap_or_else(|| panic!("{addr}: unexpected reply {reply:?}"))
            .to_vec()),
        Err(RequestError::Rejected {
            address, reason, ..
        }) => {
            assert_eq!(address, addr);
            Err(reason)
        }
        Err(e) => panic!("{addr}: {e}"),
    }
}

fn sync(d: &Daemon) {
    let packet = OscPacket::Message(OscMessage {
        addr: "/chronus/sync".into(),
        args: vec![OscType::Int(1)],
    });
    chronus_osc::request(d.osc, &packet, "/chronus/synced", Duration::from_secs(5)).unwrap();
}

/// Every command the journal holds, with the frame it took effect at.
fn journal_commands(dir: &Path) -> Vec<(u64, Cmd)> {
    let defaults = score::Header::new(48_000, 4).unwrap();
    let score = score::read_score(&dir.join("journal.osc"), defaults).unwrap();
    score
        .events
        .iter()
        .filter_map(|(frame, m)| Some((*frame, score::message_command(m, 4).unwrap()?)))
        .collect()
}

fn s(text: &str) -> OscType {
    OscType::String(text.into())
}

#[test]
fn a_loaded_pattern_takes_effect_at_one_bar_line_and_immediate_does_not_wait() {
    let (mut d, dir) = pattern_daemon("pattern-bar");
    d.send("/seq/bpm", vec![OscType::Float(120.0)]);
    d.send("/seq/swing", vec![OscType::Float(0.2)]);
    d.send("/seq/add", vec![s("kick"), s("voice1"), s("X...x...")]);
    d.send(
        "/seq/add",
        vec![s("bass"), s("voice2"), s("x.x"), OscType::Float(55.0)],
    );
    d.send("/mod/voice2/filter/q", vec![OscType::Float(6.0)]);
    d.send("/seq/start", vec![]);
    sync(&d);
    assert_eq!(
        ask(&d, "/pattern/save", vec![OscType::Int(5)]),
        Ok(vec![OscType::Int(5)])
    );
    assert!(dir.join("patterns/005.json").is_file());
    assert_eq!(
        ask(&d, "/pattern/save", vec![OscType::Int(0)]),
        Ok(vec![OscType::Int(0)])
    );
    assert_eq!(
        ask(&d, "/pattern/list", vec![]),
        Ok(vec![OscType::Int(0), OscType::Int(5)])
    );

    // Something else plays; then slot 5 comes back at a bar line.
    d.send("/seq/clear", vec![]);
    d.send("/seq/add", vec![s("hats"), s("voice3"), s("xxxx")]);
    d.send("/mod/voice2/filter/q", vec![OscType::Float(1.0)]);
    sync(&d);
    let reply = ask(&d, "/pattern/load", vec![OscType::Int(5)]).unwrap();
    let [OscType::Int(5), ref frame] = reply[..] else {
        panic!("load reply {reply:?}");
    };
    let bar = chronus_osc::integer(frame).expect("the frame as decimal digits") as u64;
    assert!(bar > 0 && bar % BAR_FRAMES == 0, "{bar} is not a bar line");
    d.wait_until("the bar is played", Duration::from_secs(10), |s| {
        long(s, "frames") as u64 > bar + 4_800
    });
    let reply = ask(&d, "/pattern/load", vec![OscType::Int(5), s("immediate")]).unwrap();
    let [OscType::Int(5), ref frame] = reply[..] else {
        panic!("immediate load reply {reply:?}");
    };
    let at_once = chronus_osc::integer(frame).expect("the frame as decimal digits") as u64;
    sync(&d);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");

    let journal = journal_commands(&dir);
    let clears: Vec<u64> = journal
        .iter()
        .filter(|(_, c)| matches!(c, Cmd::SeqClear))
        .map(|(f, _)| *f)
        .collect();
    assert_eq!(clears.len(), 3, "our /seq/clear and two loads: {clears:?}");
    assert_eq!(clears[1], bar, "the load did not land on its bar line");
    // Immediate: no later than a block or two after the frame it named.
    assert!(
        (at_once..at_once + 2 * 256).contains(&clears[2]),
        "immediate load at {} (named {at_once})",
        clears[2]
    );
    // Every command of the load took effect at that one frame.
    let loaded: Vec<&Cmd> = journal
        .iter()
        .filter(|(f, _)| *f == bar)
        .map(|(_, c)| c)
        .collect();
    let tracks: Vec<String> = loaded
        .iter()
        .filter_map(|c| match c {
            Cmd::SeqAdd(t) => Some(t.name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(tracks, ["kick", "bass"]);
    assert!(loaded.iter().any(|c| matches!(
        c,
        Cmd::SetVoice { voice: 1, param: chronus_dsp::VoiceParam::FilterQ, value } if *value == 6.0
    )));
}

#[test]
fn bad_slots_and_missing_or_corrupt_files_fail_and_change_nothing() {
    let (d, dir) = pattern_daemon("pattern-bad");
    d.send("/seq/add", vec![s("kick"), s("voice1"), s("x...")]);
    d.send("/seq/start", vec![]);
    sync(&d);
    for (addr, args) in [
        ("/pattern/save", vec![OscType::Int(128)]),
        ("/pattern/load", vec![OscType::Int(-1)]),
        ("/pattern/load", vec![OscType::Float(2.5)]),
        ("/pattern/save", vec![]),
    ] {
        let reason = ask(&d, addr, args).unwrap_err();
        assert!(reason.contains("0..=127"), "{addr}: {reason}");
    }
    let reason = ask(&d, "/pattern/load", vec![OscType::Int(3), s("later")]).unwrap_err();
    assert!(reason.contains("\"immediate\""), "{reason}");
    let reason = ask(&d, "/pattern/load", vec![OscType::Int(3)]).unwrap_err();
    assert!(reason.contains("slot 3 is empty"), "{reason}");

    let patterns = dir.join("patterns");
    std::fs::create_dir_all(&patterns).unwrap();
    // Cut short, a foreign format, and one bad track after a good one.
    std::fs::write(patterns.join("009.json"), "{\"format\": 1, \"par").unwrap();
    std::fs::write(patterns.join("010.json"), "{\"format\": 7, \"params\": {}}").unwrap();
    std::fs::write(
        patterns.join("011.json"),
        r#"{"format": 1, "params": {"voices": [{}], "master_gain": 1.0, "seq": {"tracks": [
            {"name": "ok", "voice": 0, "pattern": "x..."},
            {"name": "bad", "voice": 0, "pattern": "x?x"}]}}}"#,
    )
    .unwrap();
    // A track on a voice the engine lacks: the whole pattern is refused.
    std::fs::write(
        patterns.join("012.json"),
        r#"{"format": 1, "params": {"voices": [{}], "master_gain": 1.0, "seq": {"tracks": [
            {"name": "far", "voice": 99, "pattern": "x..."}]}}}"#,
    )
    .unwrap();
    for slot in [9, 10, 11, 12] {
        let reason = ask(&d, "/pattern/load", vec![OscType::Int(slot)]).unwrap_err();
        assert!(
            reason.contains("is not a saved pattern"),
            "{slot}: {reason}"
        );
    }
    let reason = ask(&d, "/pattern/load", vec![OscType::Int(12)]).unwrap_err();
    assert!(reason.contains("voice: 99; accepted: 0..=7"), "{reason}");
    // Planted where a slot would be: never opened for blocking, read or written.
    nix::unistd::mkfifo(&patterns.join("013.json"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink("/dev/zero", patterns.join("014.json")).unwrap();
    for (addr, slot, expected) in [
        ("/pattern/load", 13, "is a FIFO; accepted: a regular file"),
        (
            "/pattern/load",
            14,
            "is a symbolic link to a character device; accepted: a regular file",
        ),
        (
            "/pattern/save",
            13,
            "is a FIFO; accepted: a regular file or nothing",
        ),
    ] {
        let reason = ask(&d, addr, vec![OscType::Int(slot)]).unwrap_err();
        assert!(reason.contains(expected), "{addr} {slot}: {reason}");
    }
    assert_eq!(
        ask(&d, "/pattern/list", vec![]),
        Ok(vec![
            OscType::Int(9),
            OscType::Int(10),
            OscType::Int(11),
            OscType::Int(12)
        ])
    );
    let s = d.status();
    assert_eq!(long(&s, "underrun_frames"), 0);
    sync(&d);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    // Nothing of a refused load reached the workers.
    let journal = journal_commands(&dir);
    assert!(
        !journal.iter().any(|(_, c)| matches!(c, Cmd::SeqClear)),
        "a refused load was applied: {journal:?}"
    );
}
