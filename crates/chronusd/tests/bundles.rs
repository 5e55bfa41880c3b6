//! Timetagged bundles become sample-accurate command frames through the device
//! clock, and a bundle's messages take effect together. Run serially.

mod common;

use chronus_osc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use common::*;
use std::net::UdpSocket;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn timetag(at: SystemTime) -> OscTime {
    let since = at.duration_since(UNIX_EPOCH).unwrap();
    OscTime {
        seconds: (since.as_secs() + 2_208_988_800) as u32,
        fractional: ((u64::from(since.subsec_nanos()) << 32) / 1_000_000_000) as u32,
    }
}

fn bundle(at: SystemTime, messages: Vec<(&str, Vec<OscType>)>) -> Vec<u8> {
    let content = messages
        .into_iter()
        .map(|(addr, args)| {
            OscPacket::Message(OscMessage {
                addr: addr.into(),
                args,
            })
        })
        .collect();
    chronus_osc::encode(&OscPacket::Bundle(OscBundle {
        timetag: timetag(at),
        content,
    }))
}

/// Frames of the journal's entries for `addr`, from its score file.
fn journal_frames(path: &std::path::Path, addr: &str) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let packet =
            chronus_osc::decode(&bytes[pos + 4..pos + 4 + len], &Default::default()).unwrap();
        if let OscPacket::Bundle(b) = packet {
            let frame = (f64::from(b.timetag.seconds) * 48_000.0
                + f64::from(b.timetag.fractional) * 48_000.0 / 4_294_967_296.0)
                .round() as u64;
            for p in b.content {
                if matches!(&p, OscPacket::Message(m) if m.addr == addr) {
                    frames.push(frame);
                }
            }
        }
        pos += 4 + len;
    }
    frames
}

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
    // Where the device clock is now, measured from outside: frames handed out at a wall time.
    let before = SystemTime::now();
    let frames_then = long(&d.status(), "frames") as f64;
    let after = SystemTime::now();
    let observed_at = before + after.duration_since(before).unwrap() / 2;

    let target = observed_at + Duration::from_millis(200);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Two messages in one bundle, and a second bundle exactly 100 ms later.
    socket
        .send_to(
            &bundle(
                target,
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
            &bundle(
                target + Duration::from_millis(100),
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
    let expected = frames_then + 0.2 * 48_000.0;
    let error = (gates[0] as f64 - expected).abs();
    // One block of scheduling error, plus one device buffer of uncertainty in where the
    // frames counter stood when this test read it.
    assert!(
        error <= 256.0 + 256.0,
        "bundle landed {error} frames from its target frame"
    );

    // And the recording holds exactly what the journal says happened.
    let (_, live) = read_wav(&dir.join("out.wav"));
    let out = dir.join("reference.wav");
    let rendered = std::process::Command::new(env!("CARGO_BIN_EXE_chronusd"))
        .args([
            "render",
            journal.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--frames",
            &(live.len() / 2).to_string(),
        ])
        .status()
        .unwrap();
    assert!(rendered.success());
    let (_, reference) = read_wav(&out);
    assert!(
        live.iter()
            .zip(&reference)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
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
    let packet = bundle(
        SystemTime::now() + ahead,
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
