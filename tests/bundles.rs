//! Timetagged bundles become sample-accurate command frames through the device
//! clock, and a bundle's messages take effect together. Run serially.

use chronus_e2e::*;
use chronus_osc::{OscBundle, OscMessage, OscPacket, OscType};
use std::net::UdpSocket;
use std::time::{Duration, SystemTime};

#[test]
fn bundles_200_ms_ahead_land_on_their_frame_and_together() {
    let dir = scratch("bundles-files");
    let d = Daemon::start(
        "bundles",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_RECORD", dir.join("out.wav").display().to_string()),
            (
                "CHRONUS_JOURNAL",
                dir.join("journal.osc").display().to_string(),
            ),
        ],
    );
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    std::thread::sleep(Duration::from_millis(300));
    let (observed_at, frames_then) = device_clock_edge(&d);
    let target = observed_at + Duration::from_millis(200);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Two messages in one bundle, and a second bundle exactly 100 ms later.
    socket
        .send_to(
            &bundle_at(
                timetag(target),
                vec![
                    ("/mod/voice2/freq", vec![OscType::Float(330.0)]),
                    ("/gate/voice2", vec![OscType::Int(1)]),
                ],
            ),
            d.osc,
        )
        .unwrap();
    socket
        .send_to(
            &bundle_at(
                timetag(target + Duration::from_millis(100)),
                vec![("/gate/voice2", vec![OscType::Int(0)])],
            ),
            d.osc,
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let s = d.status();
    assert_eq!(long(&s, "osc_late"), 0);
    assert_eq!(long(&s, "underrun_frames"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");

    let journal = dir.join("journal.osc");
    let freq = journal_frames(&journal, "/mod/voice2/freq");
    let gates = journal_frames(&journal, "/gate/voice2");
    assert_eq!(freq.len(), 1);
    assert_eq!(gates.len(), 2);
    assert_eq!(
        freq[0], gates[0],
        "messages of one bundle took effect at different frames"
    );
    assert_eq!(
        gates[1] - gates[0],
        4_800,
        "bundles 100 ms apart are 4800 frames apart at 48 kHz"
    );
    let expected = frames_then as f64 + 0.2 * 48_000.0;
    let error = (gates[0] as f64 - expected).abs();
    // Within one block; the measurement's own uncertainty is under a millisecond (48 frames).
    assert!(
        error <= 256.0,
        "bundle landed {error} frames from its target frame"
    );

    // And the recording holds exactly what the journal says happened.
    let (_, live) = read_wav(&dir.join("out.wav"));
    let reference = render_journal(&dir, &journal, &live);
    assert_eq!(
        altered_samples(&live, &reference),
        0,
        "recording differs from the journal's render"
    );
}

/// A `/chronus/sync` inside a bundle answers once the bundle's commands have played,
/// not when the bundle arrives.
#[test]
fn a_sync_in_a_future_bundle_waits_for_the_bundles_commands() {
    let d = Daemon::start("bundle-sync", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let ahead = Duration::from_millis(300);
    let sent = std::time::Instant::now();
    let packet = bundle_at(
        timetag(SystemTime::now() + ahead),
        vec![
            ("/mod/voice1/freq", vec![OscType::Float(500.0)]),
            ("/chronus/sync", vec![OscType::Int(7)]),
        ],
    );
    socket.send_to(&packet, d.osc).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        let n = socket.recv(&mut buf).expect("a /chronus/synced reply");
        let reply = chronus_osc::decode(&buf[..n], &Default::default()).unwrap();
        if chronus_osc::messages(reply)
            .iter()
            .any(|m| m.addr == "/chronus/synced" && m.args == [OscType::Int(7)])
        {
            break;
        }
    }
    // A lower bound only: a loaded machine can make it later, never earlier.
    assert!(
        sent.elapsed() >= ahead - Duration::from_millis(50),
        "synced after {:?}, before the bundle's time",
        sent.elapsed()
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

/// Values of `addr`'s single float argument in the journal, in order.
fn journal_values(path: &std::path::Path, addr: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let mut values = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let packet =
            chronus_osc::decode(&bytes[pos + 4..pos + 4 + len], &Default::default()).unwrap();
        for m in chronus_osc::messages(packet) {
            if m.addr == addr
                && let [OscType::Float(v)] = m.args[..]
            {
                values.push(v);
            }
        }
        pos += 4 + len;
    }
    values
}

fn journal_daemon(name: &str, env: &[(&str, String)]) -> (Daemon, std::path::PathBuf) {
    let journal = scratch(&format!("{name}-files")).join("journal.osc");
    let mut env = env.to_vec();
    env.push(("CHRONUS_AUDIO_BACKEND", "null".into()));
    env.push(("CHRONUS_JOURNAL", journal.display().to_string()));
    (Daemon::start(name, &env), journal)
}

/// A subscriber socket that `/chronus/notify 1` has registered.
fn subscriber(d: &Daemon) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    send_from(&socket, d.osc, "/chronus/notify", vec![OscType::Int(1)]);
    expect_at(
        &socket,
        "/chronus/done",
        "the subscription was not confirmed",
    );
    socket
}

/// Sends a bundle stamped a second ago setting voice3's frequency to 777 Hz, and
/// checks it is counted and announced; returns the socket it came from.
fn send_late_bundle(d: &Daemon) -> UdpSocket {
    let events = subscriber(d);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let past = SystemTime::now() - Duration::from_secs(1);
    socket
        .send_to(
            &bundle_at(
                timetag(past),
                vec![("/mod/voice3/freq", vec![OscType::Float(777.0)])],
            ),
            d.osc,
        )
        .unwrap();
    let late = expect_at(&events, "/chronus/late", "a late bundle was not announced");
    assert!(
        matches!(late.args[..], [OscType::Float(s)] if s > 0.0),
        "/chronus/late carries the seconds late: {late:?}"
    );
    socket
}

/// `/chronus/sync` from `socket`, answered once every command before it has played.
fn sync(d: &Daemon, socket: &UdpSocket, id: i32) {
    send_from(socket, d.osc, "/chronus/sync", vec![OscType::Int(id)]);
    let synced = expect_at(socket, "/chronus/synced", "sync was not answered");
    assert_eq!(synced.args, [OscType::Int(id)]);
}

#[test]
fn late_bundles_run_at_once_by_default_counted_and_announced() {
    let (d, journal) = journal_daemon("late-run", &[]);
    let socket = send_late_bundle(&d);
    sync(&d, &socket, 1);
    assert_eq!(long(&d.status(), "osc_late"), 1);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert_eq!(journal_values(&journal, "/mod/voice3/freq"), [777.0]);
}

#[test]
fn late_bundles_are_dropped_with_a_fail_when_configured() {
    let (d, journal) = journal_daemon("late-drop", &[("CHRONUS_OSC_LATE_BUNDLES", "drop".into())]);
    let socket = send_late_bundle(&d);
    let fail = expect_at(&socket, "/chronus/fail", "a dropped bundle was not refused");
    assert!(
        matches!(&fail.args[..], [OscType::String(a), OscType::String(why)]
            if a == "/mod/voice3/freq" && why.contains("late")),
        "{fail:?}"
    );
    // Everything sent before the sync has played by the time it is answered.
    sync(&d, &socket, 2);
    assert_eq!(long(&d.status(), "osc_late"), 1);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert_eq!(
        journal_values(&journal, "/mod/voice3/freq"),
        [] as [f32; 0],
        "a dropped bundle took effect"
    );
}

/// Sends `count` single-command bundles `ahead` into the future on `client`, then
/// collects the `/chronus/fail` answers that `expected` of them get.
fn schedule(
    client: &mut chronus_osc::Client,
    count: usize,
    ahead: Duration,
    expected: usize,
) -> Vec<OscMessage> {
    let far = SystemTime::now() + ahead;
    for i in 0..count {
        let packet = OscPacket::Bundle(OscBundle {
            timetag: timetag(far + Duration::from_millis(i as u64)),
            content: vec![OscPacket::Message(OscMessage {
                addr: "/mod/voice1/amp".into(),
                args: vec![OscType::Float(0.25)],
            })],
        });
        client.send(&packet).unwrap();
    }
    // A version request behind them: its answer means every bundle before it was
    // handled, before another connection's bundles are sent.
    client
        .send(&chronus_osc::message("/chronus/version", vec![]))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut fails = Vec::new();
    let mut answered = false;
    while fails.len() < expected || !answered {
        match client.recv(deadline).unwrap() {
            Some(m) if m.addr == "/chronus/fail" => fails.push(m),
            Some(m) if m.addr == chronus_osc::VERSION_REPLY_ADDR => answered = true,
            Some(_) => {}
            None => panic!(
                "{} of {expected} schedule fails came for {count} bundles",
                fails.len()
            ),
        }
    }
    assert_eq!(fails.len(), expected, "refused: {fails:?}");
    fails
}

fn refused_because(fails: &[OscMessage], why: &str) {
    for fail in fails {
        assert!(
            matches!(&fail.args[..], [OscType::String(a), OscType::String(reason)]
                if a == "/mod/voice1/amp" && reason.starts_with(why)),
            "expected {why:?}: {fail:?}"
        );
    }
}

#[test]
fn the_schedule_is_shared_per_client_and_address_and_the_audio_plays_on() {
    // One client may hold a quarter of the 4096-command schedule, one address half.
    const SHARE: usize = 1024;
    const OVER: usize = 50;
    // The flood below is about the schedule: lift the per-sender rate limit out of its way.
    let (d, journal) = journal_daemon(
        "schedule-full",
        &[("CHRONUS_OSC_RATE_LIMIT", "1000000".into())],
    );
    // Over TCP, so no datagram is lost on the way: every bundle gets an answer or a
    // place. Each connection is a client of its own (its own source port).
    let connect = || {
        chronus_osc::Client::connect(
            d.osc,
            chronus_osc::Transport::Tcp(chronus_osc::Framing::LengthPrefix),
            Duration::from_secs(2),
        )
        .unwrap()
    };
    let (mut a, mut b, mut c) = (connect(), connect(), connect());
    let two_minutes = Duration::from_secs(120);
    let fails = schedule(&mut a, SHARE + OVER, two_minutes, OVER);
    refused_because(&fails, "schedule full for this client");
    let fails = schedule(&mut b, SHARE, two_minutes, 0);
    assert!(fails.is_empty());
    let fails = schedule(&mut c, OVER, two_minutes, OVER);
    refused_because(&fails, "schedule full for this address");
    // Beyond the horizon (600 s), nothing is scheduled at all.
    let fails = schedule(&mut c, 1, Duration::from_secs(700), 1);
    refused_because(&fails, "timetag too far ahead");
    // An immediate message still works; the status round trip after it proves it was read.
    d.send("/mod/voice1/freq", vec![OscType::Float(555.0)]);
    let s = d.status();
    assert_eq!(long(&s, "osc_schedule_share_full"), 2 * OVER as i64);
    assert_eq!(long(&s, "osc_schedule_horizon"), 1);
    assert_eq!(long(&s, "osc_schedule_full"), 0);
    assert_eq!(long(&s, "osc_scheduled"), 2 * SHARE as i64);
    assert_eq!(
        long(&s, "underrun_frames"),
        0,
        "the flood disturbed the audio"
    );
    assert!(both_lockstep(&s));
    for client in [&mut a, &mut b, &mut c] {
        assert!(
            client.recv(std::time::Instant::now()).unwrap().is_none(),
            "more answers than bundles refused"
        );
    }
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert_eq!(journal_values(&journal, "/mod/voice1/freq"), [555.0]);
    assert_eq!(
        journal_values(&journal, "/mod/voice1/amp"),
        [] as [f32; 0],
        "a bundle two minutes ahead took effect"
    );
}

#[test]
fn synced_arrives_only_once_the_command_before_it_has_played() {
    let (d, journal) = journal_daemon("sync-played", &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    send_from(
        &socket,
        d.osc,
        "/mod/voice1/freq",
        vec![OscType::Float(612.0)],
    );
    sync(&d, &socket, 9);
    let played = long(&d.status(), "frames") as u64;
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let frames = journal_frames(&journal, "/mod/voice1/freq");
    assert_eq!(frames.len(), 1);
    assert!(
        frames[0] < played,
        "synced came before the device played frame {} (it had played {played})",
        frames[0]
    );
}
