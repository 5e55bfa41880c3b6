//! Runs the real chronusctl binary against a fake chronusd that answers on loopback.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::Duration;

use chronus_osc::{Limits, OscPacket, OscType, decode, encode, message};

/// Answers each of the next `requests` datagrams with `reply`; returns what it was sent.
fn fake_chronusd(reply: OscPacket, requests: usize) -> (SocketAddr, JoinHandle<Vec<OscPacket>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let reply = encode(&reply);
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        (0..requests)
            .map(|_| {
                let (len, from) = socket.recv_from(&mut buf).unwrap();
                socket.send_to(&reply, from).unwrap();
                decode(&buf[..len], &Limits::default()).unwrap()
            })
            .collect()
    });
    (addr, handle)
}

/// What chronusd answers to `/chronus/status/json`: one JSON string, counters exact
/// beyond 2^53.
fn sample_status() -> OscPacket {
    message(
        "/chronus/status/json.reply",
        vec![OscType::String(
            r#"{"state":"running","workers":2,"frames_played":18446744073709551615,"cpu":0.25,"latency_ms":5.333,"lockstep":true,"degraded":false}"#.into(),
        )],
    )
}

fn chronusctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chronusctl"))
        .args(args)
        .env_remove("CHRONUS_OSC_HOST")
        .env_remove("CHRONUS_OSC_PORT")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn status_prints_aligned_key_value_lines() {
    let (addr, daemon) = fake_chronusd(sample_status(), 1);
    let port = addr.port().to_string();
    let out = chronusctl(&["--port", &port, "status"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "\
state:         running
workers:       2
frames_played: 18446744073709551615
cpu:           0.25
latency_ms:    5.333
lockstep:      true
degraded:      false
"
    );
    assert_eq!(
        daemon.join().unwrap(),
        vec![message("/chronus/status/json", vec![])]
    );
}

#[test]
fn status_json_prints_typed_values_in_reply_order() {
    let (addr, _daemon) = fake_chronusd(sample_status(), 1);
    let port = addr.port().to_string();
    let out = chronusctl(&["--port", &port, "status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "{\"state\":\"running\",\"workers\":2,\"frames_played\":18446744073709551615,\"cpu\":0.25,\
         \"latency_ms\":5.333,\"lockstep\":true,\"degraded\":false}\n"
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["workers"], serde_json::json!(2));
    assert_eq!(parsed["lockstep"], serde_json::json!(true));
}

#[test]
fn host_and_port_default_from_the_environment() {
    let (addr, _daemon) = fake_chronusd(sample_status(), 1);
    let out = Command::new(env!("CARGO_BIN_EXE_chronusctl"))
        .args(["status", "--json"])
        .env("CHRONUS_OSC_HOST", "127.0.0.1")
        .env("CHRONUS_OSC_PORT", addr.port().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
}

#[test]
fn no_reply_within_the_timeout_exits_69() {
    // Bound but silent, like a hung daemon.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let out = chronusctl(&["--port", &port, "--timeout-ms", "300", "status"]);
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(
        text(&out.stderr),
        format!("chronusctl: no reply from 127.0.0.1:{port} within 300 ms: is chronusd running?\n")
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn closed_port_exits_69() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let out = chronusctl(&["--port", &port, "status"]);
    assert_eq!(out.status.code(), Some(69), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).ends_with("is chronusd running?\n"));
}

#[test]
fn malformed_reply_exits_76() {
    let bad = message(
        "/chronus/status/json.reply",
        vec![OscType::String("orphan".into())],
    );
    let (addr, _daemon) = fake_chronusd(bad, 1);
    let port = addr.port().to_string();
    let out = chronusctl(&["--port", &port, "status"]);
    assert_eq!(out.status.code(), Some(76));
    assert_eq!(
        text(&out.stderr),
        "chronusctl: malformed /chronus/status/json.reply: the status is not one JSON object: \
         expected value at line 1 column 1\n"
    );
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    assert_eq!(chronusctl(&["frobnicate"]).status.code(), Some(64));
    assert_eq!(
        chronusctl(&["--port", "notaport", "status"]).status.code(),
        Some(64)
    );
    assert_eq!(
        chronusctl(&["--timeout-ms", "0", "status"]).status.code(),
        Some(64)
    );
    assert_eq!(chronusctl(&[]).status.code(), Some(64));
    let help = chronusctl(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("status"));
}
