//! The control surface with clients written elsewhere (liblo's oscsend, python-osc,
//! chronusctl) and with hostile input. Run serially.

use chronus_e2e::*;
use chronus_osc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
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
        "/../.test-venv/bin/python"
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
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python_osc_client.py");
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
    Command::new(chronusctl_exe())
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn chronusctl_query_prints_the_replies_and_named_requests_wrap_it() {
    let patterns = scratch("query-patterns");
    let d = Daemon::start(
        "query",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_PATTERNS_DIR", patterns.display().to_string()),
        ],
    );
    let port = d.osc.port();
    let stdout = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let out = chronusctl(port, &["engine", "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout(&out).starts_with("/engine/status.reply state running "),
        "{out:?}"
    );
    let out = chronusctl(port, &["pattern", "save", "3"]);
    assert_eq!(stdout(&out), "/chronus/done /pattern/save 3\n", "{out:?}");
    let out = chronusctl(port, &["query", "/pattern/list"]);
    assert_eq!(stdout(&out), "/chronus/done /pattern/list 3\n", "{out:?}");
    let out = chronusctl(port, &["record", "stop"]);
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/engine/record/stop refused: no recording is running"),
        "{out:?}"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let out = chronusctl(port, &["--timeout-ms", "200", "seq", "status"]);
    assert_eq!(out.status.code(), Some(69), "{out:?}");
}

#[test]
fn chronusctl_status_check_exits_0_when_healthy_and_1_naming_each_problem() {
    let d = Daemon::start(
        "status-check",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            // Stopped workers stay in their slots for the whole check.
            ("CHRONUS_HANG_TIMEOUT_MS", "60000".into()),
        ],
    );
    let port = d.osc.port();
    let out = chronusctl(port, &["status", "--check", "--window-ms", "300"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "healthy\n");

    let s = d.status();
    let workers = [active_pid(&s), standby_pid(&s)];
    for pid in workers {
        signal(pid, libc::SIGSTOP);
    }
    let out = chronusctl(port, &["status", "--check", "--window-ms", "300"]);
    for pid in workers {
        signal(pid, libc::SIGCONT);
    }
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("unhealthy: ")
                && l.ends_with(" underrun frames during the check")),
        "{stdout}"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");

    // Nothing listens: the scripts' "not running".
    let out = chronusctl(port, &["--timeout-ms", "200", "status", "--check"]);
    assert_eq!(out.status.code(), Some(69), "{out:?}");
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
    let ctl = chronusctl_exe();
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

/// The OSC type tag of a status value: only the OSC 1.0 core types every client reads.
fn tag(value: &OscType) -> char {
    match value {
        OscType::Int(_) => 'i',
        OscType::Float(_) => 'f',
        OscType::String(_) => 's',
        OscType::Blob(_) => 'b',
        other => panic!("status value {other:?} is not an OSC 1.0 core type"),
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
        ("frames", 's'),
        ("underrun_frames", 's'),
        ("xruns", 's'),
        ("late_callbacks", 's'),
        ("failovers", 's'),
        ("active_slot", 'i'),
        ("slot0_pid", 'i'),
        ("slot0_state", 's'),
        ("slot1_pid", 'i'),
        ("slot1_state", 's'),
        ("restores", 's'),
        ("last_restore_ms", 'f'),
        ("divergences", 's'),
        ("rewinds", 's'),
        ("callback_max_us", 'f'),
        ("osc_received", 's'),
        ("osc_errors", 's'),
        ("osc_late", 's'),
        ("osc_kernel_drops", 's'),
        ("osc_rate_limited", 's'),
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
    let (mut d, dir) = journal_daemon("hostile");
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
    // UDP carries at most 65,507 bytes, under the 64 KiB decode limit, so the largest
    // datagram stands in for an oversize one here (TCP below sends a larger frame).
    let mut largest = b"/mod/voice1/freq\0\0\0\0,b\0\0".to_vec();
    largest.resize(65_507, 0x55);
    cases.push(("largest datagram", largest));
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
    // A rejected packet's fail names its address when it can be read.
    let asker = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (bytes, addr) in [
        (&cases[0].1, "/mod/voice1/freq"),
        (&vec![0xff, 0x00, 0x12, 0x34], chronus_osc::UNDECODABLE_ADDR),
    ] {
        asker.send_to(bytes, d.osc).unwrap();
        let fail = expect_at(&asker, "/chronus/fail", "a rejected packet got no fail");
        assert!(
            matches!(&fail.args[..], [OscType::String(a), OscType::String(why)]
                if a == addr && !why.is_empty()),
            "{fail:?}"
        );
    }
    // Valid messages still work afterwards.
    let valid = chronus_osc::encode(&OscPacket::Message(OscMessage {
        addr: "/mod/voice1/freq".into(),
        args: vec![OscType::Float(441.0)],
    }));
    socket.send_to(&valid, d.osc).unwrap();
    let s = d.status();
    assert_eq!(long(&s, "underrun_frames"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert!(
        journaled(&dir.join("journal.osc"), "/mod/voice1/freq").contains(&441.0),
        "a valid message after the hostile ones was not applied"
    );
}

/// A UDP socket bound to `ip` (any port).
fn socket_on(ip: &str) -> UdpSocket {
    UdpSocket::bind((ip, 0)).unwrap()
}

#[test]
fn senders_outside_osc_allow_are_refused_and_change_nothing() {
    let dir = scratch("allow-files");
    let journal = dir.join("journal.osc");
    let mut d = Daemon::start(
        "allow",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_JOURNAL", journal.display().to_string()),
            ("CHRONUS_OSC_ALLOW", "127.0.0.1/32".into()),
        ],
    );
    // 127.0.0.2 is loopback too, but outside the allowlist.
    let outsider = socket_on("127.0.0.2");
    send_from(
        &outsider,
        d.osc,
        "/mod/voice1/freq",
        vec![OscType::Float(777.0)],
    );
    send_from(&outsider, d.osc, "/chronus/status", vec![]);
    send_from(&outsider, d.osc, "/chronus/quit", vec![]);
    d.wait_until("three refused packets", Duration::from_secs(5), |s| {
        long(s, "osc_refused") == 3
    });
    outsider.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1024];
    assert!(
        outsider.recv(&mut buf).is_err(),
        "a refused sender got an answer"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert_eq!(journaled(&journal, "/mod/voice1/freq"), [] as [f32; 0]);
}

/// An address of this machine other than loopback, if it has one.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let probe = UdpSocket::bind("0.0.0.0:0").ok()?;
    // Connecting a UDP socket sends nothing; it only picks the route's source address.
    probe.connect("198.51.100.1:9").ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn quit_is_refused_from_beyond_this_machine_and_obeyed_from_loopback() {
    let mut d = Daemon::start(
        "quit",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_OSC_HOST", "0.0.0.0".into()),
        ],
    );
    assert!(
        d.log()
            .contains("osc.allow (CHRONUS_OSC_ALLOW) is empty: any sender can control the daemon"),
        "binding 0.0.0.0 without an allowlist logged no warning; log:\n{}",
        d.log()
    );
    match non_loopback_ip() {
        Some(ip) => {
            let remote = UdpSocket::bind((ip, 0)).unwrap();
            let target = std::net::SocketAddr::new(ip, d.osc.port());
            send_from(&remote, target, "/chronus/quit", vec![]);
            let fail = expect_at(&remote, "/chronus/fail", "quit from beyond was not refused");
            assert!(
                matches!(&fail.args[..], [OscType::String(a), _] if a == "/chronus/quit"),
                "{fail:?}"
            );
            assert!(both_lockstep(&d.status()), "the daemon stopped anyway");
        }
        None => eprintln!("SKIPPED the non-loopback quit: this machine has no other address"),
    }
    let local = socket_on("127.0.0.1");
    send_from(&local, d.osc, "/chronus/quit", vec![]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/chronus/quit from loopback did not stop the daemon; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(0), "log:\n{}", d.log());
}

#[test]
fn a_flooding_sender_is_rate_limited_and_other_senders_are_not() {
    const RATE: u32 = 1000;
    let mut d = Daemon::start(
        "rate",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_OSC_RATE_LIMIT", RATE.to_string()),
        ],
    );
    let before = long(&d.status(), "osc_rate_limited");
    let flooder = socket_on("127.0.0.3");
    for _ in 0..5 * RATE {
        send_from(
            &flooder,
            d.osc,
            "/mod/voice1/amp",
            vec![OscType::Float(0.1)],
        );
    }
    let s = d.wait_until("the flood rate-limited", Duration::from_secs(5), |s| {
        long(s, "osc_rate_limited") > before
    });
    assert_eq!(long(&s, "underrun_frames"), 0);
    // Another sender has its own budget: every one of its requests is answered.
    let quiet = socket_on("127.0.0.2");
    for i in 0..50 {
        send_from(&quiet, d.osc, "/chronus/sync", vec![OscType::Int(i)]);
        let synced = expect_at(&quiet, "/chronus/synced", "a quiet sender was cut off");
        assert_eq!(synced.args, [OscType::Int(i)]);
    }
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn address_patterns_reach_every_matching_parameter_and_the_journal_replays() {
    let dir = scratch("patterns-files");
    let (journal, wav) = (dir.join("journal.osc"), dir.join("out.wav"));
    let d = Daemon::start(
        "patterns",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_JOURNAL", journal.display().to_string()),
            ("CHRONUS_RECORD", wav.display().to_string()),
        ],
    );
    let socket = socket_on("127.0.0.1");
    send_from(&socket, d.osc, "/gate/voice[1-4]", vec![OscType::Int(1)]);
    send_from(
        &socket,
        d.osc,
        "/mod/voice*/filter/freq",
        vec![OscType::Float(1234.0)],
    );
    send_from(
        &socket,
        d.osc,
        "/mod/{reverb1,delay1}/mix",
        vec![OscType::Float(0.5)],
    );
    send_from(&socket, d.osc, "/chronus/sync", vec![OscType::Int(1)]);
    expect_at(&socket, "/chronus/synced", "sync after the patterns");
    assert_eq!(long(&d.status(), "osc_errors"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    for v in 1..=4 {
        assert_eq!(
            journaled(&journal, &format!("/mod/voice{v}/filter/freq")),
            [1234.0],
            "voice{v}"
        );
    }
    for module in ["reverb1", "delay1"] {
        assert_eq!(journaled(&journal, &format!("/mod/{module}/mix")), [0.5]);
    }
    // The journal names the addresses the patterns reached, so it renders what played.
    let (_, live) = read_wav(&wav);
    let reference = render_journal(&dir, &journal, &live);
    assert_eq!(
        altered_samples(&live, &reference),
        0,
        "recording differs from the journal's render"
    );
}

#[test]
fn oscdump_receives_the_events_of_a_notify_subscription() {
    if !have("oscdump") {
        return;
    }
    let mut d = Daemon::start("oscdump", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    // oscdump cannot send, so subscribe from a port, then give that port to oscdump:
    // the daemon sends events to the address the subscription came from.
    let socket = socket_on("127.0.0.1");
    let port = socket.local_addr().unwrap().port();
    send_from(&socket, d.osc, "/chronus/notify", vec![OscType::Int(1)]);
    expect_at(
        &socket,
        "/chronus/done",
        "the subscription was not confirmed",
    );
    drop(socket);
    let mut dump = Command::new("oscdump")
        .args(["-L", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = dump.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    // oscdump holds the port once binding it here fails.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "oscdump never bound {port}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = chronusctl(d.osc.port(), &["kill-worker", "active"]);
    assert!(
        killed.status.success(),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("/chronus/failover"))
    {
        match lines.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("oscdump printed no /chronus/failover; it printed {seen:?}"),
        }
    }
    d.wait_until("restore", Duration::from_secs(5), both_lockstep);
    signal(dump.id() as i32, libc::SIGTERM);
    let _ = dump.wait();
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}
