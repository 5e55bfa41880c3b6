//! The control loop never blocks: requests that name FIFOs, terminals, devices,
//! sockets or links to them are refused promptly, and the daemon keeps answering,
//! replacing workers and stopping on signals. Run serially (--test-threads=1).

use chronus_e2e::*;
use chronus_osc::OscType;
use std::net::UdpSocket;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

fn text(s: &str) -> OscType {
    OscType::String(s.into())
}

/// Sends `addr args` and returns the `/chronus/fail` it is answered with.
fn refused(d: &Daemon, socket: &UdpSocket, addr: &str, args: Vec<OscType>) -> String {
    send_from(socket, d.osc, addr, args.clone());
    let reply = recv_at(socket, "/chronus/fail", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{addr} {args:?} was not refused; log:\n{}", d.log()));
    assert_eq!(reply.args.first(), Some(&text(addr)), "{reply:?}");
    match &reply.args[..] {
        [_, OscType::String(reason)] => reason.clone(),
        other => panic!("a refusal carries the address and a reason: {other:?}"),
    }
}

/// A status answered within a second, from a fresh socket.
fn answers_within_a_second(d: &Daemon, after: &str) {
    let started = Instant::now();
    let status = d.status_from("127.0.0.1".parse().unwrap(), Duration::from_secs(1));
    assert!(
        status.is_some(),
        "no status within 1 s after {after} ({:?}); log:\n{}",
        started.elapsed(),
        d.log()
    );
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

#[test]
fn requests_naming_fifos_devices_and_links_never_freeze_the_control_loop() {
    let dir = scratch("control-loop-files");
    let (inbox, patterns) = (dir.join("transcribe"), dir.join("patterns"));
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&patterns).unwrap();
    mkfifo(&inbox.join("fifo.wav"));
    symlink("/dev/zero", inbox.join("zero.wav")).unwrap();
    symlink("/dev/ptmx", inbox.join("ptmx.wav")).unwrap();
    symlink("/etc", inbox.join("out")).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(inbox.join("sock.wav")).unwrap();
    mkfifo(&patterns.join("001.json"));
    symlink("/dev/zero", patterns.join("002.json")).unwrap();
    symlink("/dev/ptmx", patterns.join("003.json")).unwrap();

    let mut d = Daemon::start(
        "control-loop",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_ASR_TRANSCRIBE_DIR", inbox.display().to_string()),
            ("CHRONUS_PATTERNS_DIR", patterns.display().to_string()),
        ],
    );
    let rss_before = rss_kib(d.pid());
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let transcribe = "/chronus/asr/transcribe";
    for name in [
        "/dev/ptmx",
        "fifo.wav",
        "zero.wav",
        "ptmx.wav",
        "sock.wav",
        ".",
    ] {
        let reason = refused(&d, &socket, transcribe, vec![text(name)]);
        assert!(reason.contains(name), "{name}: {reason}");
        answers_within_a_second(&d, &format!("transcribe {name}"));
    }
    // Outside the directory, an existing file and a missing one get the same answer:
    // a client learns nothing about the rest of the file system.
    let shadow = refused(&d, &socket, transcribe, vec![text("/etc/shadow")]);
    let missing = refused(&d, &socket, transcribe, vec![text("/etc/no-such-file")]);
    assert_eq!(
        shadow.replace("/etc/shadow", "X"),
        missing.replace("/etc/no-such-file", "X")
    );
    for name in ["../../etc/shadow", "out/shadow", "out/no-such-file"] {
        let reason = refused(&d, &socket, transcribe, vec![text(name)]);
        assert!(reason.contains(name), "{name}: {reason}");
    }
    for slot in 1..=3 {
        let reason = refused(&d, &socket, "/pattern/load", vec![OscType::Int(slot)]);
        assert!(reason.contains(&format!("{slot:03}.json")), "{reason}");
        answers_within_a_second(&d, &format!("/pattern/load {slot}"));
    }
    let reason = refused(&d, &socket, "/pattern/save", vec![OscType::Int(1)]);
    assert!(reason.contains("001.json"), "{reason}");
    answers_within_a_second(&d, "/pattern/save 1");
    // Nothing read /dev/zero: the supervisor did not grow.
    let grown = rss_kib(d.pid()).saturating_sub(rss_before);
    assert!(grown < 64 << 10, "the supervisor grew by {grown} KiB");

    // The loop still replaces a killed worker...
    let before = d.status();
    let restores = long(&before, "restores");
    signal(active_pid(&before), libc::SIGKILL);
    d.wait_until("a replaced worker", Duration::from_secs(10), |s| {
        long(s, "restores") > restores && both_lockstep(s)
    });
    // ...and stops on SIGTERM.
    let (status, took, log) = d.stop();
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
}

#[test]
fn a_journal_that_cannot_be_written_is_reported_as_it_happens() {
    let mut d = Daemon::start(
        "journal-full",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_JOURNAL", "/dev/full".into()),
        ],
    );
    let watcher = UdpSocket::bind("127.0.0.1:0").unwrap();
    send_from(&watcher, d.osc, "/chronus/notify", vec![OscType::Int(1)]);
    expect_at(&watcher, "/chronus/done", "subscribed");
    for i in 0..50 {
        d.send("/mod/voice1/freq", vec![OscType::Float(200.0 + i as f32)]);
    }
    let event = expect_at(&watcher, "/chronus/storage/error", "a storage error event");
    assert!(
        matches!(&event.args[..], [OscType::String(what), OscType::String(reason), OscType::String(quieted)]
            if what.contains("/dev/full") && !reason.is_empty() && quieted.parse::<u64>().is_ok()),
        "{event:?}"
    );
    let s = d.wait_until("journal errors counted", Duration::from_secs(5), |s| {
        long(s, "journal_errors") > 0 && long(s, "storage_errors") > 0
    });
    assert!(both_lockstep(&s));
    let log = d.log();
    assert!(
        log.contains("storage failure") && log.contains("/dev/full"),
        "the failure is logged when it happens:\n{log}"
    );
    // Logged at most once a second, not once per command.
    assert!(log.matches("storage failure").count() <= 3, "{log}");
}
