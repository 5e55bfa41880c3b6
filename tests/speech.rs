//! Speech end to end with the real engines: espeak-ng speaks through the daemon's
//! failover-safe output, pocketsphinx (with a small JSGF grammar) hears it; and
//! scripted fake engines that crash, hang or talk garbage. Run serially with the
//! other end-to-end tests.

use chronus_e2e::client::{Client, is};
use chronus_e2e::*;
use chronus_osc::OscType;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Phrases the recogniser may hear; a closed grammar makes pocketsphinx reliable.
const GRAMMAR: &str = "#JSGF V1.0;\ngrammar chronus;\n\
    public <phrase> = hello world | good morning | stop the music | play a tone;\n";

/// Whether the real engines are here; outside CI a missing one skips the test.
fn engines_installed() -> bool {
    let found = ["espeak-ng", "pocketsphinx_continuous"].iter().all(|p| {
        Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "espeak-ng or pocketsphinx is not installed: scripts/deps.sh test installs them"
        );
        eprintln!("SKIPPED: espeak-ng or pocketsphinx is not installed (run scripts/deps.sh test)");
    }
    found
}

fn grammar(dir: &Path) -> PathBuf {
    let path = dir.join("phrases.jsgf");
    std::fs::write(&path, GRAMMAR).unwrap();
    path
}

fn tone(d: &Daemon) {
    d.send("/mod/voice1/freq", vec![OscType::Float(440.0)]);
    d.send("/mod/voice1/amp", vec![OscType::Float(0.2)]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
}

fn null_daemon(name: &str, extra: &[(&str, String)]) -> Daemon {
    let mut env = vec![("CHRONUS_AUDIO_BACKEND", "null".to_owned())];
    env.extend(extra.iter().cloned());
    Daemon::start(name, &env)
}

#[test]
fn espeak_says_hello_world_and_pocketsphinx_recognises_the_recording() {
    if !engines_installed() {
        return;
    }
    let dir = scratch("speech-hello");
    let record = dir.join("out.wav");
    let d = null_daemon(
        "speech-hello-daemon",
        &[("CHRONUS_RECORD", record.display().to_string())],
    );
    let c = Client::new(&d);
    c.say("hello world", "greeting");
    c.expect(
        "/chronus/tts/start",
        Duration::from_secs(10),
        is("/chronus/tts/start", "greeting"),
    );
    c.expect(
        "/chronus/tts/done",
        Duration::from_secs(10),
        is("/chronus/tts/done", "greeting"),
    );
    let s = d.status();
    assert_eq!(long(&s, "tts_spoken"), 1);
    assert_eq!(long(&s, "underrun_frames"), 0);
    assert_eq!(long(&s, "divergences"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let (_, samples) = read_wav(&record);
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.1, "the recording holds no speech (peak {peak})");

    // A second daemon listens to the first one's output.
    let grammar = grammar(&dir);
    let d = null_daemon(
        "speech-hello-listen",
        &[
            ("CHRONUS_ASR_GRAMMAR", grammar.display().to_string()),
            ("CHRONUS_ASR_TRANSCRIBE_DIR", dir.display().to_string()),
        ],
    );
    let c = Client::new(&d);
    c.send(
        "/chronus/asr/transcribe",
        vec![OscType::String("out.wav".into())],
    );
    let reply = c.expect("a transcript", Duration::from_secs(30), |m| {
        m.addr == "/chronus/asr/transcript" || m.addr == "/chronus/fail"
    });
    assert_eq!(
        reply.args,
        vec![
            OscType::String("out.wav".into()),
            OscType::String("hello world".into()),
            OscType::Int(1)
        ]
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn speech_carries_on_bit_exactly_through_kills_of_the_active_worker_mid_sentence() {
    if !engines_installed() {
        return;
    }
    const KILLS: i64 = 10;
    let dir = scratch("speech-kills");
    let (record, journal) = (dir.join("out.wav"), dir.join("journal.osc"));
    let mut d = null_daemon(
        "speech-kills-daemon",
        &[
            ("CHRONUS_RECORD", record.display().to_string()),
            ("CHRONUS_JOURNAL", journal.display().to_string()),
        ],
    );
    tone(&d);
    let c = Client::new(&d);
    let sentence = "the quick brown fox jumps over the lazy dog, and the music keeps \
                    playing while its workers are killed one after another";
    c.say(sentence, "long");
    c.expect(
        "/chronus/tts/start",
        Duration::from_secs(10),
        is("/chronus/tts/start", "long"),
    );
    let before = long(&d.status(), "restores");
    for restores in before + 1..=before + KILLS {
        let s = d.status();
        signal(active_pid(&s), libc::SIGKILL);
        d.wait_until("restore", Duration::from_secs(10), |s| {
            long(s, "restores") >= restores && both_lockstep(s)
        });
    }
    let s = d.status();
    assert_eq!(
        s.get("tts_playing"),
        Some(&OscType::Int(1)),
        "the drill outlasted the sentence: make it longer"
    );
    c.expect(
        "/chronus/tts/done",
        Duration::from_secs(20),
        is("/chronus/tts/done", "long"),
    );
    let s = d.status();
    assert_eq!(long(&s, "failovers"), KILLS);
    assert_eq!(long(&s, "underrun_frames"), 0);
    assert_eq!(long(&s, "divergences"), 0);
    assert_eq!(long(&s, "cold_starts"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");

    let (_, live) = read_wav(&record);
    let reference = render_journal(&dir, &journal, &live);
    assert_eq!(
        altered_samples(&live, &reference),
        0,
        "samples differ from the journal's render"
    );
    // The render without the speech would differ: the speech is really in it.
    let peak = live.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.3, "no speech above the tone (peak {peak})");
}

/// The refusal `/chronus/asr/transcribe name` is answered with, within a second.
fn transcribe_refusal(c: &Client, name: &str) -> String {
    c.send(
        "/chronus/asr/transcribe",
        vec![OscType::String(name.into())],
    );
    let reply = c.expect(name, Duration::from_secs(1), |m| {
        m.addr == "/chronus/fail" || m.addr == "/chronus/asr/transcript"
    });
    match &reply.args[..] {
        [OscType::String(addr), OscType::String(reason)] if addr == "/chronus/asr/transcribe" => {
            reason.clone()
        }
        other => panic!("{name}: expected a refusal, got {} {other:?}", reply.addr),
    }
}

#[test]
fn transcribe_reads_only_regular_files_inside_its_directory_and_never_blocks() {
    let dir = scratch("speech-transcribe-files");
    let inside = dir.join("in");
    std::fs::create_dir_all(&inside).unwrap();
    // A recogniser that hears "hello world" in anything: no real engine needed.
    let hears = "sh -c 'cat >/dev/null; echo hello world'".to_owned();
    let d = null_daemon(
        "speech-transcribe-dir",
        &[
            ("CHRONUS_TTS_ENABLED", "false".into()),
            ("CHRONUS_ASR_COMMAND", hears),
            ("CHRONUS_ASR_TRANSCRIBE_DIR", inside.display().to_string()),
        ],
    );
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(inside.join("take.wav"), spec).unwrap();
    for _ in 0..1600 {
        wav.write_sample(0i16).unwrap();
    }
    wav.finalize().unwrap();
    nix::unistd::mkfifo(&inside.join("fifo.wav"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink("/dev/zero", inside.join("zero.wav")).unwrap();
    std::os::unix::fs::symlink("/", inside.join("root")).unwrap();
    std::fs::write(dir.join("outside.wav"), b"RIFF").unwrap();
    let c = Client::new(&d);

    for (name, expected) in [
        ("/dev/ptmx", "it is absolute"),
        ("/etc/shadow", "it is absolute"),
        ("../outside.wav", "it contains `..`"),
        ("fifo.wav", "is a FIFO; accepted: a regular file"),
        ("zero.wav", "names no file in"),
    ] {
        let reason = transcribe_refusal(&c, name);
        assert!(reason.contains(expected), "{name}: {reason}");
    }
    // Whether something exists outside the directory is not told.
    let anon = |name: &str| transcribe_refusal(&c, name).replace(name, "NAME");
    assert_eq!(anon("root/etc/shadow"), anon("root/etc/no-such-file"));
    assert_eq!(anon("root/etc/passwd"), anon("no-such-file.wav"));

    c.send(
        "/chronus/asr/transcribe",
        vec![OscType::String("take.wav".into())],
    );
    let reply = c.expect("a transcript", Duration::from_secs(10), |m| {
        m.addr == "/chronus/asr/transcript" || m.addr == "/chronus/fail"
    });
    assert_eq!(
        reply.args,
        vec![
            OscType::String("take.wav".into()),
            OscType::String("hello world".into()),
            OscType::Int(1)
        ]
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

/// A one-shot engine that misbehaves as its text says.
const FAKE_ENGINE: &str = r#"#!/bin/sh
case "$1" in
  crash) kill -SEGV $$ ;;
  garbage) echo "this is not a WAV file" ;;
  partial) espeak-ng --stdout partial | head -c 30 ;;
  hang) exec sleep 60 ;;
  nothing) exit 0 ;;
  error) echo "fake engine: cannot speak today" >&2; exit 3 ;;
  slow) sleep 0.5; exec espeak-ng --stdout slow ;;
  *) exec espeak-ng --stdout "$1" ;;
esac
"#;

/// Writes [`FAKE_ENGINE`] into `dir` as an executable; returns its path.
fn fake_engine(dir: &Path) -> PathBuf {
    let engine = dir.join("fake-tts");
    std::fs::write(&engine, FAKE_ENGINE).unwrap();
    std::fs::set_permissions(&engine, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    engine
}

/// Children of `pid` that are zombies, and all of them, from /proc.
fn children(pid: i32) -> (Vec<i32>, Vec<i32>) {
    let (mut zombies, mut all) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse().ok()) == Some(pid) {
            all.push(child);
            if fields[0] == "Z" {
                zombies.push(child);
            }
        }
    }
    (zombies, all)
}

#[test]
fn misbehaving_tts_engines_get_definite_answers_and_the_audio_carries_on() {
    if !engines_installed() {
        return;
    }
    let dir = scratch("speech-faults");
    let engine = fake_engine(&dir);
    let d = null_daemon(
        "speech-faults-daemon",
        &[
            (
                "CHRONUS_TTS_COMMAND",
                format!("{} {{text}}", engine.display()),
            ),
            ("CHRONUS_TTS_TIMEOUT_MS", "1500".into()),
        ],
    );
    tone(&d);
    let c = Client::new(&d);
    let faults = ["crash", "garbage", "partial", "hang", "nothing", "error"];
    for (i, fault) in faults.iter().enumerate() {
        c.say(fault, &format!("fault{i}"));
    }
    let frames_before = long(&d.status(), "frames");
    // Every request gets exactly one answer, a failure naming it, in whatever order
    // the engine's runs finish.
    let mut unanswered: Vec<String> = (0..faults.len()).map(|i| format!("fault{i}")).collect();
    while !unanswered.is_empty() {
        let reply = c.expect("a failure", Duration::from_secs(10), |m| {
            m.addr == "/chronus/fail"
        });
        assert_eq!(reply.args[0], OscType::String("/chronus/tts/say".into()));
        let Some(OscType::String(reason)) = reply.args.get(1) else {
            panic!("a failure without a reason: {reply:?}");
        };
        let id = reason
            .strip_prefix("request ")
            .and_then(|r| r.split(':').next())
            .unwrap_or_else(|| panic!("a failure that names no request: {reason}"));
        let before = unanswered.len();
        unanswered.retain(|u| u != id);
        assert_eq!(
            unanswered.len() + 1,
            before,
            "a second or unknown answer: {reason}"
        );
        // The engine, not the daemon's reaper, gets its process's exit status.
        match id {
            "fault0" => assert!(reason.contains("signal 11"), "{reason}"),
            "fault5" => assert!(reason.contains("exit status 3"), "{reason}"),
            _ => {}
        }
    }
    // The engine still serves good requests, a slow one among them.
    c.say("slow", "slow");
    c.say("good morning", "fine");
    // Both are spoken, in whichever order their syntheses finish.
    let mut done = Vec::new();
    while done.len() < 2 {
        let m = c.expect("speech done", Duration::from_secs(15), |m| {
            m.addr == "/chronus/tts/done"
        });
        done.push(m.args[0].clone());
    }
    done.sort_by_key(|id| format!("{id:?}"));
    assert_eq!(
        done,
        [
            OscType::String("fine".into()),
            OscType::String("slow".into())
        ]
    );
    let s = d.status();
    assert_eq!(long(&s, "underrun_frames"), 0);
    assert!(long(&s, "frames") > frames_before, "the audio stopped");
    assert_eq!(long(&s, "tts_spoken"), 2);
    assert_eq!(long(&s, "tts_failed"), faults.len() as i64);
    // Nothing is left behind: no zombie, no engine process, only the two workers.
    let (zombies, all) = children(d.pid());
    assert!(zombies.is_empty(), "zombie children {zombies:?}");
    assert_eq!(all.len(), 2, "children besides the workers: {all:?}");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

fn chronusctl(d: &Daemon, args: &[&str]) -> std::process::Output {
    // Built alongside chronusd (the workspace builds every binary for its tests).
    Command::new(chronusctl_exe())
        .args(["--port", &d.osc.port().to_string()])
        .args(args)
        .output()
        .expect("chronusctl runs")
}

#[test]
fn chronusctl_say_waits_for_the_speech_and_reports_refusals() {
    if !engines_installed() {
        return;
    }
    let d = null_daemon("speech-ctl", &[]);
    let said = chronusctl(&d, &["say", "good morning"]);
    assert!(said.status.success(), "{said:?}");
    assert_eq!(
        long(&d.status(), "tts_spoken"),
        1,
        "say returned before the speech ended"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");

    let d = null_daemon("speech-ctl-off", &[("CHRONUS_TTS_ENABLED", "false".into())]);
    let refused = chronusctl(&d, &["say", "good morning"]);
    assert_eq!(refused.status.code(), Some(65), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("text-to-speech is off"), "{stderr}");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn speech_engines_die_with_a_killed_supervisor_and_never_inherit_systemds_socket() {
    if !engines_installed() {
        return;
    }
    let dir = scratch("speech-orphans");
    let engine = fake_engine(&dir);
    let notify = dir.join("notify.sock");
    let _sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    let mut d = null_daemon(
        "speech-orphans-daemon",
        &[
            (
                "CHRONUS_TTS_COMMAND",
                format!("{} {{text}}", engine.display()),
            ),
            ("NOTIFY_SOCKET", notify.display().to_string()),
            ("WATCHDOG_USEC", "2000000".into()),
            ("WATCHDOG_FOO", "1".into()),
        ],
    );
    let c = Client::new(&d);
    c.say("hang", "stuck");
    let s = d.status();
    let workers = [active_pid(&s), standby_pid(&s)];
    let deadline = Instant::now() + Duration::from_secs(5);
    let engine_pid = loop {
        let (_, all) = children(d.pid());
        // Between fork and exec a child still shows the daemon's environment: wait
        // for the engine's own program.
        let engine = all.iter().copied().find(|p| {
            !workers.contains(p)
                && std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.starts_with(b"sleep\0"))
        });
        if let Some(pid) = engine {
            break pid;
        }
        assert!(Instant::now() < deadline, "the engine never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    let environ = std::fs::read(format!("/proc/{engine_pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for var in ["NOTIFY_SOCKET=", "WATCHDOG_"] {
        assert!(
            !environ.split('\0').any(|kv| kv.starts_with(var)),
            "the engine inherited {var}"
        );
    }
    signal(d.pid(), libc::SIGKILL);
    let _ = d.child.wait();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !alive(engine_pid),
        "speech engine {engine_pid} survived its supervisor by a second"
    );
    for pid in workers {
        assert!(
            !alive(pid),
            "worker {pid} survived its supervisor by a second"
        );
    }
}

/// A long-lived engine killed: one searchable WARN line with its reason and a
/// `/chronus/speech/restarted` event for subscribers, then a new engine.
#[test]
fn a_speech_engine_restart_is_one_searchable_line_and_an_event_with_its_reason() {
    let d = Daemon::start(
        "speech-restart",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_TTS_PROTOCOL", "wyoming".into()),
            // Long-lived and silent: enough to be started, killed and restarted.
            ("CHRONUS_TTS_COMMAND", "sleep 600".into()),
        ],
    );
    let events = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    send_from(&events, d.osc, "/chronus/notify", vec![OscType::Int(1)]);
    expect_at(&events, "/chronus/done", "the subscription");
    let engine = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            children_named(d.pid(), "sleep").first().copied()
        })
        .expect("the engine process");
    signal(engine, libc::SIGKILL);
    let restarted = expect_at(&events, "/chronus/speech/restarted", "the restart event");
    match restarted.args.as_slice() {
        [
            OscType::String(name),
            OscType::String(reason),
            OscType::Int(_),
        ] => {
            assert_eq!(name, "sleep");
            assert!(reason.contains("SIGKILL"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("id=\"chronus.speech_restart\""))
        .collect();
    assert_eq!(lines.len(), 1, "log:\n{log}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("reason=\"crashed: killed by signal 9"),
        "{}",
        lines[0]
    );
}

/// Pids of the children of `parent` whose command name is `name`.
fn children_named(parent: i32, name: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let (comm, rest) = stat.split_once(") ").unwrap_or(("", ""));
                comm.ends_with(&format!("({name}"))
                    && rest.split_whitespace().nth(1) == Some(&parent.to_string())
            })
        })
        .collect()
}
