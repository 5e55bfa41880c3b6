//! `/viz/levels` and `/viz/spectrum` from the real daemon, received on a test
//! socket: about ten of each a second, reflecting what plays.
//! Tests here share the machine's timing: run them serially (--test-threads=1).

use chronus_e2e::*;
use chronus_osc::{OscPacket, OscType};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Every `/viz/*` message received within `window`, as (address, float args).
fn receive(socket: &UdpSocket, window: Duration) -> Vec<(String, Vec<f32>)> {
    let deadline = Instant::now() + window;
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let packet = chronus_osc::decode(&buf[..n], &chronus_osc::Limits::default()).unwrap();
        let OscPacket::Message(m) = packet else {
            panic!("expected a message, got {packet:?}");
        };
        let floats = m
            .args
            .iter()
            .map(|a| match a {
                OscType::Float(f) => *f,
                other => panic!("{}: argument {other:?} is not a float", m.addr),
            })
            .collect();
        out.push((m.addr, floats));
    }
    out
}

/// Discards what was received before now.
fn drain(socket: &UdpSocket) {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    while socket.recv(&mut buf).is_ok() {}
    socket.set_nonblocking(false).unwrap();
}

fn of<'a>(messages: &'a [(String, Vec<f32>)], addr: &str) -> Vec<&'a [f32]> {
    messages
        .iter()
        .filter(|(a, _)| a == addr)
        .map(|(_, v)| v.as_slice())
        .collect()
}

fn viz_daemon(name: &str, extra: &[(&str, String)]) -> (Daemon, UdpSocket) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut env = vec![
        ("CHRONUS_AUDIO_BACKEND", "null".to_owned()),
        ("CHRONUS_VIZ_PORT", port.to_string()),
    ];
    env.extend(extra.iter().cloned());
    (Daemon::start(name, &env), socket)
}

#[test]
fn levels_and_spectrum_arrive_ten_times_a_second_and_follow_the_music() {
    let (mut d, socket) = viz_daemon("viz", &[]);
    drain(&socket);
    let silent = receive(&socket, Duration::from_secs(2));
    let (levels, spectra) = (of(&silent, "/viz/levels"), of(&silent, "/viz/spectrum"));
    // 20 of each are due in 2 s; a loaded machine may delay a few.
    assert!(levels.len() >= 12 && spectra.len() >= 12, "{silent:?}");
    assert!(levels.len() <= 22 && spectra.len() <= 22, "{silent:?}");
    assert!(
        levels
            .iter()
            .all(|l| l.len() == 4 && l.iter().all(|&x| x == 0.0))
    );
    assert!(
        spectra
            .iter()
            .all(|b| b.len() == 8 && b.iter().all(|&x| x == 0.0))
    );

    // A 1 kHz tone, unfiltered.
    d.send("/mod/voice1/filter/freq", vec![OscType::Float(8000.0)]);
    d.send("/mod/voice1/freq", vec![OscType::Float(1000.0)]);
    d.send("/mod/voice1/amp", vec![OscType::Float(0.5)]);
    d.send("/mod/voice1/adsr/sustain", vec![OscType::Float(1.0)]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    let frames = long(&d.status(), "frames");
    d.wait_until("the tone playing", Duration::from_secs(5), |s| {
        long(s, "frames") > frames + 24_000
    });
    drain(&socket);
    let playing = receive(&socket, Duration::from_secs(2));
    let (levels, spectra) = (of(&playing, "/viz/levels"), of(&playing, "/viz/spectrum"));
    assert!(levels.len() >= 12 && spectra.len() >= 12, "{playing:?}");
    for l in &levels {
        let [peak_l, rms_l, peak_r, rms_r] = l[..] else {
            panic!("{l:?}")
        };
        assert!(peak_l > 0.1 && peak_l == peak_r && rms_l == rms_r, "{l:?}");
        // A sine: RMS is the peak over √2.
        assert!((rms_l * 2f32.sqrt() / peak_l - 1.0).abs() < 0.05, "{l:?}");
    }
    for bands in &spectra {
        let loudest = (0..8)
            .max_by(|&a, &b| bands[a].total_cmp(&bands[b]))
            .unwrap();
        assert_eq!(loudest, 4, "1 kHz is not in the 1 kHz band: {bands:?}");
    }
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn viz_enabled_false_sends_nothing() {
    let (d, socket) = viz_daemon("viz-off", &[("CHRONUS_VIZ_ENABLED", "false".into())]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    let received = receive(&socket, Duration::from_secs(1));
    assert!(received.is_empty(), "{received:?}");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

/// With nothing listening the analysis pauses (loopback refuses the messages), and
/// a visualiser that starts later gets levels and spectra again within the pause.
#[test]
fn a_visualiser_started_after_the_daemon_is_served_after_the_quiet_pause() {
    let (d, socket) = viz_daemon("viz-late", &[]);
    let port = socket.local_addr().unwrap().port();
    drop(socket);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    // Several 10 Hz periods refused: the daemon is in its pause.
    std::thread::sleep(Duration::from_millis(1500));
    let socket = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let received = receive(&socket, Duration::from_secs(3));
    assert!(
        !of(&received, "/viz/levels").is_empty() && !of(&received, "/viz/spectrum").is_empty(),
        "{received:?}"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}
