//! The Music Chronus reply addresses, over UDP to the real daemon:
//! `/engine/status|list|schema`, `/seq/status` and `/engine/record/*`.

use chronus_e2e::*;
use chronus_osc::{Client, OscMessage, OscPacket, OscType, RequestError, Transport};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

fn client(d: &Daemon) -> Client {
    Client::connect(d.osc, Transport::Udp, TIMEOUT).unwrap()
}

fn packet(addr: &str, args: Vec<OscType>) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    })
}

/// Sends `addr` and returns the reply addressed `reply`.
fn ask(d: &Daemon, addr: &str, args: Vec<OscType>, reply: &str) -> OscMessage {
    client(d)
        .request(&packet(addr, args), reply, TIMEOUT)
        .unwrap_or_else(|e| panic!("{addr}: {e}; log:\n{}", d.log()))
}

/// A `/*.reply` of alternating keys and values, as a map.
fn ask_pairs(d: &Daemon, addr: &str) -> HashMap<String, OscType> {
    let reply = ask(d, addr, vec![], &format!("{addr}.reply"));
    chronus_osc::status_pairs(&reply)
        .unwrap()
        .into_iter()
        .collect()
}

/// Sends `addr` and returns the arguments of its `/chronus/done`, or the refusal.
fn done(d: &Daemon, addr: &str, args: Vec<OscType>) -> Result<Vec<OscType>, String> {
    let mut c = client(d);
    c.send(&packet(addr, args)).unwrap();
    match c.wait_for(TIMEOUT, |m| chronus_osc::done_args(m, addr).is_some()) {
        Ok(m) => Ok(m.args[1..].to_vec()),
        Err(RequestError::Rejected {
            address, reason, ..
        }) => {
            assert_eq!(address, addr, "the refusal names another address");
            Err(reason)
        }
        Err(e) => panic!("{addr}: {e}; log:\n{}", d.log()),
    }
}

/// Waits until every command sent before has been played.
fn sync(d: &Daemon) {
    ask(d, "/chronus/sync", vec![OscType::Int(7)], "/chronus/synced");
}

fn send(d: &Daemon, addr: &str, args: Vec<OscType>) {
    client(d).send(&packet(addr, args)).unwrap();
}

fn text(v: &OscType) -> &str {
    match v {
        OscType::String(s) => s,
        other => panic!("expected a string, got {other:?}"),
    }
}

fn float(v: &OscType) -> f32 {
    match v {
        OscType::Float(x) => *x,
        other => panic!("expected a float, got {other:?}"),
    }
}

fn int(v: &OscType) -> i64 {
    chronus_osc::integer(v).unwrap_or_else(|| panic!("expected an integer, got {v:?}"))
}

fn null_daemon(name: &str, extra: &[(&str, String)]) -> Daemon {
    let mut env = vec![("CHRONUS_AUDIO_BACKEND", "null".to_owned())];
    env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    Daemon::start(name, &env)
}

#[test]
fn engine_status_list_and_schema_describe_the_engine() {
    let d = null_daemon("engine-status", &[]);
    let s = ask_pairs(&d, "/engine/status");
    assert_eq!(text(&s["state"]), "running");
    assert_eq!(int(&s["sample_rate"]), 48_000);
    assert_eq!(int(&s["num_voices"]), 8);
    assert_eq!(text(&s["gates"]), "00000000");
    assert_eq!(int(&s["seq_running"]), 0);
    assert_eq!(float(&s["bpm"]), 120.0);

    send(&d, "/gate/voice3", vec![OscType::Int(1)]);
    send(&d, "/engine/stop", vec![]);
    sync(&d);
    let s = ask_pairs(&d, "/engine/status");
    assert_eq!(text(&s["state"]), "stopped");
    assert_eq!(float(&s["master_gain"]), 0.0);
    assert_eq!(
        (int(&s["active_voices"]), text(&s["gates"])),
        (1, "00100000")
    );
    send(&d, "/engine/start", vec![]);
    sync(&d);
    assert_eq!(text(&ask_pairs(&d, "/engine/status")["state"]), "running");

    let list = ask(&d, "/engine/list", vec![], "/engine/list.reply");
    let modules: Vec<&str> = list.args.iter().map(text).collect();
    assert_eq!(
        modules,
        [
            "voice1", "voice2", "voice3", "voice4", "voice5", "voice6", "voice7", "voice8",
            "acid1", "dist1", "reverb1", "delay1", "lfo1", "lfo2", "seq"
        ]
    );

    let schema = ask(&d, "/engine/schema", vec![], "/engine/schema.reply");
    let [OscType::String(json)] = &schema.args[..] else {
        panic!("schema reply is not one string: {schema:?}");
    };
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    let freq = json["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == "/mod/voiceN/freq")
        .expect("the schema lists /mod/voiceN/freq");
    assert_eq!(
        (freq["min"].as_f64(), freq["max"].as_f64()),
        (Some(20.0), Some(5000.0))
    );
    assert_eq!(freq["unit"], "Hz");
    assert_eq!(long(&d.status(), "osc_errors"), 0);
}

#[test]
fn seq_status_reports_the_tracks_tempo_and_transport_that_were_set() {
    let d = null_daemon("seq-status", &[]);
    let s = ask_pairs(&d, "/seq/status");
    assert_eq!((int(&s["running"]), int(&s["tracks"])), (0, 0));
    let add = ["bass", "voice2", "X.x.", "55", "800", "A1,C2"]
        .map(|a| OscType::String(a.into()))
        .to_vec();
    send(&d, "/seq/add", add);
    send(
        &d,
        "/seq/add",
        vec![
            OscType::String("hat".into()),
            OscType::Int(3),
            OscType::String("x.".into()),
            OscType::String("gate=0.25".into()),
        ],
    );
    send(&d, "/seq/bpm", vec![OscType::Float(140.0)]);
    send(&d, "/seq/swing", vec![OscType::Float(0.2)]);
    send(&d, "/seq/start", vec![]);
    sync(&d);
    let s = ask_pairs(&d, "/seq/status");
    assert_eq!(int(&s["running"]), 1);
    assert_eq!(float(&s["bpm"]), 140.0);
    assert_eq!(float(&s["swing"]), 0.2);
    assert_eq!(float(&s["gate_length"]), 0.5);
    assert_eq!(int(&s["tracks"]), 2);
    assert_eq!(text(&s["track1_name"]), "bass");
    assert_eq!(text(&s["track1_voice"]), "voice2");
    assert_eq!(text(&s["track1_pattern"]), "X.x.");
    let notes: Vec<f32> = text(&s["track1_notes"])
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(notes.len(), 2);
    assert!((notes[0] - 55.0).abs() < 1e-3, "A1 is {}", notes[0]);
    assert_eq!(float(&s["track1_base_freq"]), 55.0);
    assert_eq!(float(&s["track1_filter_freq"]), 800.0);
    assert!(!s.contains_key("track1_gate"));
    assert_eq!(text(&s["track2_name"]), "hat");
    assert_eq!(text(&s["track2_voice"]), "voice3");
    assert_eq!(text(&s["track2_notes"]), "");
    assert_eq!(float(&s["track2_gate"]), 0.25);
    assert_eq!(int(&ask_pairs(&d, "/engine/status")["seq_running"]), 1);
}

#[test]
fn a_take_is_bit_identical_to_the_full_recording_for_its_frames() {
    let dir = scratch("take-files");
    let takes = dir.join("takes");
    let d = null_daemon(
        "take",
        &[
            ("CHRONUS_RECORD", dir.join("out.wav").display().to_string()),
            ("CHRONUS_RECORDINGS_DIR", takes.display().to_string()),
        ],
    );
    send(&d, "/mod/voice1/freq", vec![OscType::Float(440.0)]);
    send(&d, "/gate/voice1", vec![OscType::Int(1)]);
    sync(&d);
    let started = done(
        &d,
        "/engine/record/start",
        vec![OscType::String("tone".into())],
    )
    .unwrap();
    let path = PathBuf::from(text(&started[0]));
    assert_eq!(path, takes.join("tone.wav"));
    let start_frame = int(&started[1]) as usize;
    assert!(start_frame > 0, "the take starts at frame {start_frame}");

    let again = done(&d, "/engine/record/start", vec![]).unwrap_err();
    assert!(again.contains("already recording"), "{again}");
    std::thread::sleep(Duration::from_millis(300));
    let s = ask_pairs(&d, "/engine/record/status");
    assert_eq!(int(&s["recording"]), 1);
    assert_eq!(text(&s["file"]), path.display().to_string());
    assert_eq!(int(&s["start_frame"]) as usize, start_frame);
    assert!(int(&s["frames_written"]) > 0, "nothing written yet: {s:?}");
    assert_eq!(int(&ask_pairs(&d, "/engine/status")["recording"]), 1);

    let stopped = done(&d, "/engine/record/stop", vec![]).unwrap();
    assert_eq!(text(&stopped[0]), path.display().to_string());
    let (frames, dropped) = (int(&stopped[1]) as usize, int(&stopped[2]));
    assert_eq!(dropped, 0);
    assert!(
        frames >= 48_000 / 5,
        "a 300 ms take holds only {frames} frames"
    );
    let s = ask_pairs(&d, "/engine/record/status");
    assert_eq!(int(&s["recording"]), 0);
    assert_eq!(int(&s["frames_written"]) as usize, frames);
    let refused = done(&d, "/engine/record/stop", vec![]).unwrap_err();
    assert!(refused.contains("no recording"), "{refused}");

    let (exit, _, log) = d.stop();
    assert!(exit.success(), "{log}");
    let (rate, take) = read_wav(&path);
    let (_, full) = read_wav(&dir.join("out.wav"));
    assert_eq!(rate, 48_000);
    assert_eq!(take.len(), frames * 2);
    let same = &full[start_frame * 2..(start_frame + frames) * 2];
    assert!(
        take.iter()
            .zip(same)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "the take differs from the full recording at its frames"
    );
    let peak = take.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(
        peak > 0.05,
        "the take is silent (peak {peak}): the test would prove nothing"
    );
}

#[test]
fn recording_names_with_paths_are_refused_and_counted() {
    let dir = scratch("take-names-files");
    let takes = dir.join("takes");
    let d = null_daemon(
        "take-names",
        &[("CHRONUS_RECORDINGS_DIR", takes.display().to_string())],
    );
    let bad = [
        "../escape.wav",
        "/tmp/absolute.wav",
        "..",
        "a/b.wav",
        ".hidden",
    ];
    for name in bad {
        let reason = done(
            &d,
            "/engine/record/start",
            vec![OscType::String(name.into())],
        )
        .unwrap_err();
        assert!(
            reason.contains(name) && reason.contains("accepted"),
            "{name}: {reason}"
        );
    }
    let wrong_type = done(&d, "/engine/record/start", vec![OscType::Int(3)]).unwrap_err();
    assert!(wrong_type.contains("file name"), "{wrong_type}");
    assert_eq!(long(&d.status(), "osc_errors"), bad.len() as i64 + 1);
    assert!(
        !takes.exists(),
        "a refused name created the recordings directory"
    );
    assert!(!dir.join("escape.wav").exists());

    // A timestamped default name, and never over an existing file.
    let started = done(&d, "/engine/record/start", vec![]).unwrap();
    let path = PathBuf::from(text(&started[0]));
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("chronus-") && name.ends_with(".wav") && path.parent() == Some(&takes),
        "{}",
        path.display()
    );
    done(&d, "/engine/record/stop", vec![]).unwrap();
    let exists = done(&d, "/engine/record/start", vec![OscType::String(name)]).unwrap_err();
    assert!(exists.contains("exists"), "{exists}");
}

#[test]
fn a_take_that_cannot_be_created_names_the_recordings_dir_setting() {
    let d = null_daemon(
        "take-unwritable",
        &[("CHRONUS_RECORDINGS_DIR", "/dev/null/takes".into())],
    );
    let reason = done(
        &d,
        "/engine/record/start",
        vec![OscType::String("x".into())],
    )
    .expect_err("a take under /dev/null cannot start");
    assert!(
        reason.contains("engine.recordings_dir = /dev/null/takes"),
        "{reason}"
    );
}
