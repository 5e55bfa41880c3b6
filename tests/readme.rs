//! The README's examples run as written: every `oscsend` line in its code blocks is run
//! with liblo's real `oscsend` against a daemon (only host and port rewritten), and
//! none may be refused (the daemon plays through a private PulseAudio, whose null
//! sink's monitor is the input the speech recognition examples need);
//! `chronusctl set --help`'s example address exists. Run serially.

use chronus_e2e::pulse;
use chronus_e2e::*;
use chronus_osc::{OscMessage, OscType};
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

const README: &str = include_str!("../README.md");

/// The `oscsend` lines of the README's code blocks, as written.
fn oscsend_lines() -> Vec<&'static str> {
    let mut in_block = false;
    let mut lines = Vec::new();
    for line in README.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if in_block && line.trim_start().starts_with("oscsend ") {
            lines.push(line.trim());
        }
    }
    lines
}

fn oscsend_installed() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v oscsend"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "oscsend is not installed: scripts/deps.sh test installs liblo-tools"
        );
        eprintln!("SKIPPED: oscsend is not installed (run scripts/deps.sh test)");
    }
    found
}

/// Everything that arrives at `socket` within `wait`.
fn drain(socket: &UdpSocket, wait: Duration) -> Vec<OscMessage> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        if let Ok(packet) = chronus_osc::decode(&buf[..len], &Default::default()) {
            out.extend(chronus_osc::messages(packet));
        }
    }
    out
}

#[test]
fn every_oscsend_example_in_the_readme_is_accepted() {
    if !oscsend_installed() {
        return;
    }
    let lines = oscsend_lines();
    assert!(lines.len() >= 20, "found only {lines:?}");
    let dir = scratch("readme-files");
    let transcribe = dir.join("transcribe");
    std::fs::create_dir_all(&transcribe).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(transcribe.join("take.wav"), spec).unwrap();
    for _ in 0..1600 {
        wav.write_sample(0i16).unwrap();
    }
    wav.finalize().unwrap();
    // The speech recognition examples need an input: the sound server's null sink
    // monitor, as on a box without a microphone.
    let Some(pulse) = pulse::start(&dir) else {
        return;
    };
    pulse.hear_the_sink_as_default_source().unwrap();
    let d = Daemon::start(
        "readme",
        &[
            ("CHRONUS_AUDIO_BACKEND", "cpal".into()),
            ("CHRONUS_PULSE_SERVER", pulse.address().to_owned()),
            ("CHRONUS_BUFFER_SIZE", "2048".into()),
            ("CHRONUS_INPUT_DEVICE", "pulse".into()),
            ("HOME", dir.display().to_string()),
            (
                "CHRONUS_RECORDINGS_DIR",
                dir.join("takes").display().to_string(),
            ),
            (
                "CHRONUS_PATTERNS_DIR",
                dir.join("patterns").display().to_string(),
            ),
            (
                "CHRONUS_ASR_TRANSCRIBE_DIR",
                transcribe.display().to_string(),
            ),
            // A recogniser that hears "hello world" in anything.
            (
                "CHRONUS_ASR_COMMAND",
                "sh -c 'cat >/dev/null; echo hello world'".into(),
            ),
        ],
    );
    let watcher = UdpSocket::bind("127.0.0.1:0").unwrap();
    send_from(&watcher, d.osc, "/chronus/notify", vec![OscType::Int(1)]);
    expect_at(&watcher, "/chronus/done", "subscribed");

    let target = format!("127.0.0.1 {}", d.osc.port());
    let mut refused = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        assert!(line.contains("localhost 5005"), "{line}");
        // Through a shell, as a reader would paste it (quotes, trailing comments).
        let run = Command::new("sh")
            .args(["-c", &line.replace("localhost 5005", &target)])
            .output()
            .unwrap();
        assert!(run.status.success(), "{line}: {run:?}");
        let id = n as i32 + 1;
        send_from(&watcher, d.osc, "/chronus/sync", vec![OscType::Int(id)]);
        let mut events = drain(&watcher, Duration::from_millis(300));
        // Speech and files answer later than a sync.
        if line.contains("/chronus/tts/") || line.contains("/chronus/asr/") {
            events.extend(drain(&watcher, Duration::from_secs(2)));
        }
        for m in events
            .iter()
            .filter(|m| m.addr == chronus_osc::REFUSED_ADDR)
        {
            refused.push(format!("{line}\n    → {:?}", m.args));
        }
    }
    assert!(
        refused.is_empty(),
        "README examples refused:\n{}\nlog:\n{}",
        refused.join("\n"),
        d.log()
    );
    assert_eq!(long(&d.status(), "osc_errors"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn chronusctl_set_help_names_an_address_that_exists() {
    let ctl = chronusctl_exe();
    let help = Command::new(&ctl).args(["set", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let example = help
        .split("such as ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no example address in:\n{help}"));
    let d = Daemon::start(
        "readme-set-help",
        &[("CHRONUS_AUDIO_BACKEND", "null".into())],
    );
    let set = Command::new(&ctl)
        .args(["--port", &d.osc.port().to_string(), "set", example, "0.5"])
        .output()
        .unwrap();
    assert!(
        set.status.success(),
        "chronusctl set {example} 0.5: {}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(long(&d.status(), "osc_errors"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}
