//! `metrics.listen`: the Prometheus endpoint, scraped while the daemon plays, fails
//! over and is flooded, checked by the real `promtool`, and shared fairly between
//! scrapers. Run serially.

use chronus_e2e::*;
use chronus_osc::OscType;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn daemon(name: &str) -> (Daemon, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let d = Daemon::start(
        name,
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_METRICS_LISTEN", addr.to_string()),
        ],
    );
    (d, addr)
}

/// One HTTP exchange from `from`: the status line and the body.
fn http(from: [u8; 4], to: SocketAddr, request: &str) -> (String, String) {
    let mut stream = tcp_from(from, to);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

fn scrape(to: SocketAddr) -> String {
    let (status, body) = http(
        [127, 0, 0, 1],
        to,
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

fn promtool(scrape: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed: scripts/deps.sh test installs it"
        );
        eprintln!("SKIPPED promtool: not installed (run scripts/deps.sh test)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {out:?}\n{scrape}"
    );
}

fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_are_off_by_default_with_no_thread() {
    let d = Daemon::start("metrics-off", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", d.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("metrics")),
        "threads: {names:?}"
    );
    let (status, _, log) = d.stop();
    assert!(status.success());
    assert!(!log.contains("serving metrics"), "log:\n{log}");
}

#[test]
fn a_scrape_while_playing_and_after_a_failover_passes_promtool() {
    let (mut d, addr) = daemon("metrics-promtool");
    d.send("/mod/voice1/freq", vec![OscType::Float(440.0)]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    let before = scrape(addr);
    promtool(&before);
    assert_eq!(value(&before, "chronus_failovers_total"), 0.0);
    let s = d.status();
    signal(active_pid(&s), libc::SIGKILL);
    d.wait_until("restored", Duration::from_secs(10), |s| {
        long(s, "restores") >= 1 && both_lockstep(s)
    });
    let after = scrape(addr);
    promtool(&after);
    assert_eq!(value(&after, "chronus_failovers_total"), 1.0);
    let active = long(&d.status(), "active_slot");
    assert!(
        after.contains(&format!(
            "chronus_worker_state{{slot=\"{active}\",role=\"active\",state=\"lockstep\"}} 1"
        )),
        "{after}"
    );
    assert!(after.contains("chronus_info{version=\""), "{after}");
    assert!(after.contains("# HELP chronus_frames_total "), "{after}");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn a_hostile_scraper_cannot_lock_out_a_polite_one_and_bad_requests_are_answered() {
    let (d, addr) = daemon("metrics-fair");
    // Connections from 127.0.0.2 that never send a request, more than the cap.
    let held: Vec<_> = (0..12).map(|_| tcp_from([127, 0, 0, 2], addr)).collect();
    std::thread::sleep(Duration::from_millis(100));
    scrape(addr);
    drop(held);
    let local = [127, 0, 0, 1];
    assert_eq!(
        http(local, addr, "POST /metrics HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(
        http(local, addr, "GET /other HTTP/1.0\r\n\r\n").0,
        "HTTP/1.1 404 Not Found"
    );
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(
        http(local, addr, &huge).0,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn scrapes_during_a_50000_message_per_second_flood_leave_the_audio_untouched() {
    let (d, addr) = daemon("metrics-flood");
    let osc = d.osc;
    let flood = std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.2:0").unwrap();
        let packet = chronus_osc::encode(&chronus_osc::message(
            "/mod/voice1/amp",
            vec![OscType::Float(0.25)],
        ));
        let start = Instant::now();
        let mut sent = 0u64;
        // 500 every 10 ms: 50,000 a second, 150,000 in all (three seconds, longer
        // where this sender itself is slower: the count, not the time, is fixed).
        for batch in 1..=300u32 {
            for _ in 0..500 {
                if socket.send_to(&packet, osc).is_ok() {
                    sent += 1;
                }
            }
            let due = start + Duration::from_millis(10) * batch;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        sent
    });
    let mut scrapes = 0;
    while !flood.is_finished() {
        let body = scrape(addr);
        assert!(body.contains("chronus_osc_received_total"), "{body}");
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let sent = flood.join().unwrap();
    assert!(sent > 100_000, "the flood sent only {sent}");
    assert!(scrapes >= 10, "only {scrapes} scrapes were answered");
    let s = d.status();
    assert_eq!(long(&s, "underrun_frames"), 0, "log:\n{}", d.log());
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}
