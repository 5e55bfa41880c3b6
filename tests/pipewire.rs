//! End to end through a real PipeWire: a private server with a 48 kHz null sink and
//! WirePlumber linking streams, chronusd as a native PipeWire stream (found by
//! `audio.host = auto`), and `pw-record` recording the sink's monitor while workers
//! are killed and hung. Run serially with the other end-to-end tests.

use chronus_e2e::drill::*;
use chronus_e2e::pipewire;
use chronus_e2e::*;
use chronus_osc::OscType;
use std::time::Duration;

#[test]
fn tone_through_pipewire_natively_survives_kills_and_hangs_without_a_glitch() {
    let dir = scratch("pipewire-drill");
    let Some(pw) = pipewire::start(&dir) else {
        return;
    };
    // Recording from before the daemon joins: a node joining later makes the graph
    // settle anew, and the monitor can skip while it does.
    let wav = dir.join("monitor.wav");
    let mut rec = pw.record(&wav).unwrap();
    let mut d = Daemon::start(
        "pipewire-drill-daemon",
        &[
            pw.env(),
            ("CHRONUS_AUDIO_BACKEND", "cpal".into()),
            ("CHRONUS_AUDIO_DEVICE", "chronus".into()),
            ("CHRONUS_HANG_TIMEOUT_MS", "100".into()),
        ],
    );
    let s = d.status();
    assert_eq!(string(&s, "host"), "pipewire", "log:\n{}", d.log());
    assert_eq!(string(&s, "backend"), "cpal", "log:\n{}", d.log());
    play_tone(&d);
    // Let the attack, decay and pitch smoothing settle before the drill starts.
    std::thread::sleep(Duration::from_millis(700));
    // SIGINT: pw-record then finishes the WAV's header.
    drill_while_recording(&mut d, &mut rec, libc::SIGINT, Duration::from_millis(300));
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert!(
        log.contains("host=\"pipewire\"") && log.contains("device=\"Chronus sink\""),
        "the start line names the host and the node; log:\n{log}"
    );
    let (rate, samples) = read_wav(&wav);
    assert_eq!(rate, 48_000);
    let left: Vec<f32> = samples.chunks_exact(2).map(|f| f[0]).collect();
    let right: Vec<f32> = samples.chunks_exact(2).map(|f| f[1]).collect();
    // PipeWire carries floats end to end here.
    assert_continuous_tone(&left, &right, 1e-6);
}

/// The server crashes while music plays and comes back: the daemon carries the
/// timeline on its null clock, says so, reconnects, and the workers were never
/// touched.
#[test]
fn killing_and_restarting_pipewire_keeps_the_timeline_and_plays_on() {
    let dir = scratch("pipewire-restart");
    let Some(mut pw) = pipewire::start(&dir) else {
        return;
    };
    let mut d = Daemon::start(
        "pipewire-restart-daemon",
        &[
            pw.env(),
            ("CHRONUS_AUDIO_BACKEND", "cpal".into()),
            ("CHRONUS_AUDIO_HOST", "pipewire".into()),
            ("CHRONUS_AUDIO_DEVICE", "chronus".into()),
        ],
    );
    let events = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    send_from(&events, d.osc, "/chronus/notify", vec![OscType::Int(1)]);
    expect_at(&events, "/chronus/done", "the subscription");
    play_tone(&d);
    std::thread::sleep(Duration::from_millis(700));

    pw.kill_server();
    let lost = d.wait_until("the device lost", Duration::from_secs(10), |s| {
        long(s, "device_lost") == 1
    });
    expect_at(&events, "/chronus/device/lost", "the loss event");
    let frames = long(&lost, "frames");
    d.wait_until(
        "frames advancing on the null clock",
        Duration::from_secs(5),
        |s| long(s, "frames") > frames + 4800,
    );

    pw.restart_server().unwrap();
    let back = d.wait_until("the device back", Duration::from_secs(15), |s| {
        long(s, "device_lost") == 0
    });
    expect_at(&events, "/chronus/device/back", "the return event");
    assert_eq!(string(&back, "host"), "pipewire");
    let wav = dir.join("after.wav");
    let mut rec = pw.record(&wav).unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    signal(rec.id() as i32, libc::SIGINT);
    let _ = rec.wait();

    let s = d.status();
    assert_eq!(long(&s, "device_losses"), 1, "log:\n{}", d.log());
    assert_eq!(long(&s, "restores"), 0, "log:\n{}", d.log());
    assert_eq!(long(&s, "failovers"), 0);
    assert_eq!(long(&s, "underrun_frames"), 0, "log:\n{}", d.log());
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let (rate, samples) = read_wav(&wav);
    assert_eq!(rate, 48_000);
    let left: Vec<f32> = samples.chunks_exact(2).map(|f| f[0]).collect();
    assert!(
        left.iter().filter(|x| x.abs() > 0.1).count() > 48_000,
        "the tone plays on through the restarted server"
    );
}
