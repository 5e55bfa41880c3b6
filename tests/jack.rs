//! End to end through a real JACK server: jackd2 with the dummy driver under a
//! private server name, chronusd as the JACK client `chronus` (found by
//! `audio.host = auto`), and `jack_rec` recording its ports while workers are
//! killed and hung. Run serially with the other end-to-end tests.

use chronus_e2e::drill::*;
use chronus_e2e::jack::{self, Jack, read_jack_rec};
use chronus_e2e::*;
use std::time::Duration;

/// jackd runs here without realtime scheduling, and the test machine is busy: at a
/// 256-frame period its own graph misses deadlines ("Process error") and the recorder
/// hears gaps no client caused. The drills run at 2048 frames, as the PulseAudio ones
/// do, so what they judge is the daemon.
const DRILL_PERIOD: u32 = 2048;

fn daemon_on(jack: &Jack, name: &str, extra: &[(&str, String)]) -> Daemon {
    let mut env = vec![jack.env(), ("CHRONUS_AUDIO_BACKEND", "cpal".into())];
    env.extend(extra.iter().cloned());
    Daemon::start(name, &env)
}

#[test]
fn auto_finds_a_running_jack_server_and_plays_as_a_client_connected_to_the_playback_ports() {
    let dir = scratch("jack-auto");
    let Some(jack) = jack::start(&dir, 256) else {
        return;
    };
    let d = daemon_on(&jack, "jack-auto-daemon", &[]);
    let s = d.status();
    assert_eq!(string(&s, "host"), "jack", "log:\n{}", d.log());
    let connections = jack.lsp(&["-c"]);
    let connected = |from: &str, to: &str| {
        connections
            .iter()
            .position(|l| l == from)
            .is_some_and(|i| connections.get(i + 1).is_some_and(|l| l.trim() == to))
    };
    assert!(
        connected("chronus:out_1", "system:playback_1")
            && connected("chronus:out_2", "system:playback_2"),
        "ports: {connections:?}"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert!(
        log.contains("host=\"jack\"") && log.contains("device=\"jack:chronus\""),
        "the start line names the host and client; log:\n{log}"
    );
}

#[test]
fn tone_through_jack_survives_kills_and_hangs_without_a_glitch() {
    let dir = scratch("jack-drill");
    let Some(jack) = jack::start(&dir, DRILL_PERIOD) else {
        return;
    };
    let mut d = daemon_on(
        &jack,
        "jack-drill-daemon",
        &[
            ("CHRONUS_AUDIO_HOST", "jack".into()),
            ("CHRONUS_JACK_CLIENT_NAME", "chronus-drill".into()),
            ("CHRONUS_HANG_TIMEOUT_MS", "100".into()),
        ],
    );
    assert_eq!(string(&d.status(), "host"), "jack", "log:\n{}", d.log());
    play_tone(&d);
    let wav = dir.join("rec.wav");
    let mut rec = jack
        .record(&wav, &["chronus-drill:out_1", "chronus-drill:out_2"])
        .unwrap();
    // Let the attack, decay and pitch smoothing settle before the drill starts.
    std::thread::sleep(Duration::from_millis(700));
    drill_while_recording(&mut d, &mut rec, libc::SIGTERM, Duration::from_millis(300));
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let (left, right) = read_jack_rec(&wav);
    // JACK carries floats and jack_rec writes 32-bit integers: far below any glitch.
    assert_continuous_tone(&left, &right, 1e-6);
}

#[test]
fn a_jack_server_at_another_rate_is_refused_naming_the_setting() {
    let dir = scratch("jack-rate");
    let Some(jack) = jack::start(&dir, 256) else {
        return;
    };
    let port = free_udp_port().to_string();
    // Bounded: a daemon that kept running (on the null clock, say) fails the test.
    let out = std::process::Command::new("timeout")
        .arg("20")
        .arg(chronusd_exe())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(jack.env().0, jack.env().1)
        .env("CHRONUS_OSC_PORT", &port)
        .env("CHRONUS_AUDIO_HOST", "jack")
        .env("CHRONUS_SAMPLE_RATE", "44100")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "log:\n{log}");
    assert!(
        log.contains(
            "the JACK server runs at 48000 Hz and audio.sample_rate is 44100 Hz: set \
             audio.sample_rate = 48000 (CHRONUS_SAMPLE_RATE)"
        ),
        "log:\n{log}"
    );
}

/// jackd stopped and started again while a tone plays: the daemon survives on the
/// null clock, says so, comes back as the same client, connected again, and the
/// server hears the tone unbroken; the daemon's own recording is one unbroken tone.
#[test]
fn a_jack_server_restart_is_survived_and_the_timeline_plays_on() {
    let dir = scratch("jack-restart");
    let Some(mut jack) = jack::start(&dir, DRILL_PERIOD) else {
        return;
    };
    let record = dir.join("daemon.wav");
    let mut d = daemon_on(
        &jack,
        "jack-restart-daemon",
        &[
            ("CHRONUS_AUDIO_HOST", "jack".into()),
            ("CHRONUS_RECORD", record.display().to_string()),
        ],
    );
    play_tone(&d);
    std::thread::sleep(Duration::from_millis(500));
    // The server stopped under the daemon (SIGTERM: see `Jack::stop`).
    jack.stop();
    let lost = d.wait_until("the device lost", Duration::from_secs(10), |s| {
        long(s, "device_lost") == 1
    });
    let frames = long(&lost, "frames");
    d.wait_until(
        "frames advancing on the null clock",
        Duration::from_secs(5),
        |s| long(s, "frames") > frames + 4800,
    );
    drop(jack);
    let jack = jack::start(&dir, DRILL_PERIOD).expect("jackd starts again");
    d.wait_until("the device back", Duration::from_secs(15), |s| {
        long(s, "device_lost") == 0
    });
    let wav = dir.join("after.wav");
    let mut rec = jack
        .record(&wav, &["chronus:out_1", "chronus:out_2"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    signal(rec.id() as i32, libc::SIGTERM);
    let _ = rec.wait();
    let s = d.status();
    assert_eq!(long(&s, "device_losses"), 1, "log:\n{}", d.log());
    assert_eq!(long(&s, "restores"), 0, "log:\n{}", d.log());
    assert_eq!(long(&s, "underrun_frames"), 0, "log:\n{}", d.log());
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let (left, right) = read_jack_rec(&wav);
    assert_continuous_tone(&left, &right, 1e-6);
    let (_, recorded) = read_wav(&record);
    let left: Vec<f32> = recorded.chunks_exact(2).map(|f| f[0]).collect();
    let right: Vec<f32> = recorded.chunks_exact(2).map(|f| f[1]).collect();
    assert_continuous_tone(&left, &right, 1e-6);
}

/// jackd back at another rate: the daemon keeps the null clock and says once, at WARN,
/// which rate to set; it does not play at the wrong speed.
#[test]
fn a_jack_server_back_at_another_rate_is_refused_once_with_the_setting_to_change() {
    let dir = scratch("jack-rerate");
    let Some(mut jack) = jack::start(&dir, DRILL_PERIOD) else {
        return;
    };
    let mut d = daemon_on(
        &jack,
        "jack-rerate-daemon",
        &[("CHRONUS_AUDIO_HOST", "jack".into())],
    );
    jack.stop();
    d.wait_until("the device lost", Duration::from_secs(10), |s| {
        long(s, "device_lost") == 1
    });
    drop(jack);
    let _jack = jack::start_at(&dir, 44_100, DRILL_PERIOD).expect("jackd starts again");
    // Several retries (1 s, then 2 s, ...) while the server runs at the wrong rate.
    std::thread::sleep(Duration::from_millis(4500));
    let s = d.status();
    assert_eq!(long(&s, "device_lost"), 1, "log:\n{}", d.log());
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("the audio device is back but refused"))
        .collect();
    assert_eq!(refusals.len(), 1, "log:\n{log}");
    assert!(
        refusals[0].contains("WARN")
            && refusals[0]
                .contains("the JACK server runs at 44100 Hz and audio.sample_rate is 48000 Hz"),
        "{}",
        refusals[0]
    );
}
