//! The control surface with clients written elsewhere (liblo's oscsend, python-osc,
//! chronusctl) and with hostile input. Run serially.

mod common;

use chronus_osc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use common::*;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Values of `/mod/voiceN/freq`-style messages in a journal, in order.
fn journaled(path: &Path, addr: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if let Ok(OscPacket::Bundle(b)) =
            chronus_osc::decode(&bytes[pos + 4..pos + 4 + len], &Default::default())
        {
            for p in b.content {
                if let OscPacket::Message(m) = p
                    && m.addr == addr
                    && let [OscType::Float(v)] = m.args[..]
                {
                    out.push(v);
                }
            }
        }
        pos += 4 + len;
    }
    out
}

fn python() -> Option<PathBuf> {
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.test-venv/bin/python"
    ));
    if venv.exists() {
        return Some(venv);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "python-osc is missing: scripts/deps.sh test installs it"
    );
    eprintln!("SKIPPED: python-osc is missing (run scripts/deps.sh test)");
    None
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing: scripts/deps.sh test installs it"
        );
        eprintln!("SKIPPED: {tool} is missing (run scripts/deps.sh test)");
    }
    found
}

fn journal_daemon(name: &str) -> (Daemon, PathBuf) {
    let dir = scratch(&format!("{name}-files"));
    let d = Daemon::start(
        name,
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            (
                "CHRONUS_JOURNAL",
                dir.join("journal.osc").display().to_string(),
            ),
        ],
    );
    (d, dir)
}

#[test]
fn liblo_and_python_osc_drive_the_daemon_over_udp_and_tcp_in_both_framings() {
    let (d, dir) = journal_daemon("interop");
    let port = d.osc.port().to_string();
    if have("oscsend") {
        for url in [
            format!("osc.udp://127.0.0.1:{port}"),
            format!("osc.tcp://127.0.0.1:{port}"),
        ] {
            let value = if url.starts_with("osc.udp") {
                "301"
            } else {
                "302"
            };
            let out = Command::new("oscsend")
                .args([url.as_str(), "/mod/voice1/freq", "f", value])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "oscsend {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if let Some(python) = python() {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/python_osc_client.py"
        );
        for (transport, value) in [("udp", "401"), ("tcp1.0", "402"), ("tcp1.1", "403")] {
            let out = Command::new(&python)
                .args([script, transport, &port, value])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "python-osc {transport}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if transport != "udp" {
                assert!(
                    stdout.starts_with("status "),
                    "python-osc {transport} got no status reply: {stdout}"
                );
            }
        }
    }
    // Let the bundles' 200 ms pass and the journal catch up.
    std::thread::sleep(Duration::from_millis(500));
    let s = d.status();
    assert_eq!(long(&s, "osc_errors"), 0);
    assert_eq!(
        long(&s, "osc_late"),
        0,
        "a bundle 200 ms ahead must not be late"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let voice1 = journaled(&dir.join("journal.osc"), "/mod/voice1/freq");
    let voice2 = journaled(&dir.join("journal.osc"), "/mod/voice2/freq");
    for v in [301.0, 302.0, 401.0, 402.0, 403.0] {
        if (v < 400.0 && have("oscsend")) || (v >= 400.0 && python().is_some()) {
            assert!(
                voice1.contains(&v),
                "/mod/voice1/freq {v} never applied: {voice1:?}"
            );
        }
    }
    if python().is_some() {
        for v in [501.0, 502.0, 503.0] {
            assert!(
                voice2.contains(&v),
                "bundled /mod/voice2/freq {v} never applied: {voice2:?}"
            );
        }
    }
}

fn chronusctl(port: u16, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chronusd").replace("chronusd", "chronusctl"))
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn chronusctl_sets_syncs_watches_and_drills() {
    let mut d = Daemon::start("ctl", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let port = d.osc.port();
    let ok = chronusctl(port, &["set", "/mod/voice1/freq", "440.0"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = chronusctl(port, &["set", "/mod/voice9/freq", "440.0"]);
    assert_eq!(bad.status.code(), Some(65), "a rejected set exits 65");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("voice9"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    for transport in [&[][..], &["--tcp"][..], &["--slip"][..]] {
        let mut args = transport.to_vec();
        args.push("sync");
        let out = chronusctl(port, &args);
        assert!(
            out.status.success(),
            "sync {transport:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // watch prints events: a drill kill shows the failover and the worker states.
    let ctl = env!("CARGO_BIN_EXE_chronusd").replace("chronusd", "chronusctl");
    let watch = Command::new(ctl)
        .args(["--port", &port.to_string(), "watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let killed = chronusctl(port, &["kill-worker", "active"]);
    assert!(
        killed.status.success(),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let pid: i32 = String::from_utf8_lossy(&killed.stdout)
        .trim()
        .parse()
        .unwrap();
    d.wait_until("restore", Duration::from_secs(5), |s| {
        long(s, "restores") == 1 && both_lockstep(s)
    });
    assert!(!alive(pid));
    std::thread::sleep(Duration::from_millis(100));
    signal(watch.id() as i32, libc::SIGINT);
    let events = String::from_utf8_lossy(&watch.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        events.contains("/chronus/failover"),
        "watch saw no failover: {events}"
    );
    assert!(
        events.contains("/chronus/worker") && events.contains("lockstep"),
        "watch saw no worker states: {events}"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

/// The OSC type tag of a status value.
fn tag(value: &OscType) -> char {
    match value {
        OscType::Int(_) => 'i',
        OscType::Long(_) => 'h',
        OscType::Float(_) => 'f',
        OscType::Double(_) => 'd',
        OscType::String(_) => 's',
        OscType::Bool(true) => 'T',
        OscType::Bool(false) => 'F',
        other => panic!("unexpected status value {other:?}"),
    }
}

#[test]
fn status_reports_every_documented_key_with_its_osc_type() {
    let d = Daemon::start("status-keys", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let request = OscPacket::Message(OscMessage {
        addr: "/chronus/status".into(),
        args: vec![],
    });
    let reply = chronus_osc::request(
        d.osc,
        &request,
        "/chronus/status.reply",
        Duration::from_secs(2),
    )
    .unwrap();
    // A Vec, not the helpers' map: a key sent twice must not hide.
    let pairs = chronus_osc::status_pairs(&reply).unwrap();
    let documented = [
        ("version", 's'),
        ("uptime_s", 'f'),
        ("backend", 's'),
        ("sample_rate", 'i'),
        ("block_frames", 'i'),
        ("frames", 'h'),
        ("underrun_frames", 'h'),
        ("xruns", 'i'),
        ("failovers", 'i'),
        ("active_slot", 'i'),
        ("slot0_pid", 'i'),
        ("slot0_state", 's'),
        ("slot1_pid", 'i'),
        ("slot1_state", 's'),
        ("restores", 'i'),
        ("last_restore_ms", 'f'),
        ("divergences", 'i'),
        ("callback_max_us", 'f'),
        ("osc_received", 'h'),
        ("osc_errors", 'h'),
        ("osc_late", 'h'),
        ("osc_kernel_drops", 'h'),
        ("osc_rate_limited", 'h'),
    ];
    for (key, want) in documented {
        let found: Vec<char> = pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| tag(v))
            .collect();
        assert_eq!(found, [want], "status key {key}; reply: {pairs:?}");
    }
    let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    let count = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), count, "duplicate status keys: {pairs:?}");
    let s: Status = pairs.into_iter().collect();
    assert_eq!(string(&s, "version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(string(&s, "backend"), "null");
    assert_eq!(long(&s, "sample_rate"), 48_000);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

fn nested_bomb(depth: usize) -> Vec<u8> {
    // #bundle\0, timetag, then one element holding the next level, innermost empty.
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..depth {
        let mut b = b"#bundle\0".to_vec();
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        if !inner.is_empty() {
            b.extend_from_slice(&(inner.len() as u32).to_be_bytes());
            b.extend_from_slice(&inner);
        }
        inner = b;
    }
    inner
}

#[test]
fn hostile_input_is_counted_and_never_disturbs_the_audio() {
    let mut d = Daemon::start("hostile", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    let valid = chronus_osc::encode(&OscPacket::Message(OscMessage {
        addr: "/mod/voice1/freq".into(),
        args: vec![OscType::Float(440.0)],
    }));
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", valid[..valid.len() - 3].to_vec()),
        (
            "wrong type tag",
            b"/mod/voice1/freq\0\0\0\0,z\0\0\0\0\0\0".to_vec(),
        ),
        ("bundle bomb", nested_bomb(3000)),
        (
            "unknown address",
            chronus_osc::encode(&OscPacket::Message(OscMessage {
                addr: "/nope".into(),
                args: vec![],
            })),
        ),
        (
            "wrong argument",
            chronus_osc::encode(&OscPacket::Message(OscMessage {
                addr: "/mod/voice1/freq".into(),
                args: vec![OscType::String("loud".into())],
            })),
        ),
        (
            "bad bundle timetag",
            chronus_osc::encode(&OscPacket::Bundle(OscBundle {
                timetag: OscTime {
                    seconds: 1,
                    fractional: 0,
                },
                content: vec![],
            })),
        ),
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let len = (seed % 200) as usize + 1;
        let bytes = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        cases.push(("random", bytes));
    }
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (_, bytes) in &cases {
        socket.send_to(bytes, d.osc).unwrap();
    }
    // The same over TCP, length-prefixed, then an oversize frame that ends the connection.
    let mut tcp = TcpStream::connect(d.osc).unwrap();
    for (_, bytes) in &cases {
        tcp.write_all(&(bytes.len() as u32).to_be_bytes()).unwrap();
        tcp.write_all(bytes).unwrap();
    }
    tcp.write_all(&(10_000_000u32).to_be_bytes()).unwrap();
    let mut slip = TcpStream::connect(d.osc).unwrap();
    slip.write_all(&[0xC0, 0xDB, 0x01, 0x02, 0xC0]).unwrap();
    let s = d.wait_until(
        "every hostile packet counted",
        Duration::from_secs(10),
        |s| long(s, "osc_errors") as usize >= cases.len() * 2,
    );
    assert_eq!(
        long(&s, "underrun_frames"),
        0,
        "hostile input disturbed the audio"
    );
    assert!(both_lockstep(&s));
    // Valid messages still work afterwards.
    socket.send_to(&valid, d.osc).unwrap();
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}
