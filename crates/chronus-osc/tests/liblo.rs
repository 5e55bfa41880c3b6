//! Interoperability with liblo (`oscsend`/`oscdump` from liblo-tools), a client and server
//! written elsewhere, over TCP. Skipped (with a note) where liblo-tools is not installed.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use chronus_osc::{Client, Framing, Limits, OscType, TcpEndpoint, Transport, UdpEndpoint, message};

fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("note: {tool} (liblo-tools) is not installed; skipping");
    }
    found
}

#[test]
fn oscsend_over_tcp_reaches_the_endpoint() {
    if !have("oscsend") {
        return;
    }
    let endpoint = TcpEndpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    endpoint.spawn_acceptor(Limits::default(), tx).unwrap();
    let url = format!("osc.tcp://127.0.0.1:{}", endpoint.local_addr().port());
    let status = Command::new("oscsend")
        .args([&url, "/chronus/ping", "ifs", "7", "0.5", "hello"])
        .status()
        .unwrap();
    assert!(status.success());
    let incoming = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        incoming.packet,
        Ok(message(
            "/chronus/ping",
            vec![
                OscType::Int(7),
                OscType::Float(0.5),
                OscType::String("hello".into())
            ]
        ))
    );
    assert!(incoming.peer.is_tcp());
}

#[test]
fn oscsend_over_udp_reaches_the_endpoint() {
    if !have("oscsend") {
        return;
    }
    let endpoint = UdpEndpoint::bind("127.0.0.1:0".parse().unwrap(), 1 << 16).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    endpoint.spawn_receiver(Limits::default(), tx).unwrap();
    let status = Command::new("oscsend")
        .args([
            "127.0.0.1",
            &endpoint.local_addr().port().to_string(),
            "/x",
            "h",
            "5000000000",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let incoming = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        incoming.packet,
        Ok(message("/x", vec![OscType::Long(5_000_000_000)]))
    );
}

#[test]
fn oscdump_over_tcp_reads_our_frames_in_both_framings() {
    if !have("oscdump") {
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut dump = Command::new("oscdump")
        .args(["-L", &format!("osc.tcp://:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut lines = BufReader::new(dump.stdout.take().unwrap()).lines();
    for (i, framing) in [Framing::LengthPrefix, Framing::Slip]
        .into_iter()
        .enumerate()
    {
        // oscdump needs a moment to listen.
        let mut client = None;
        for _ in 0..100 {
            match Client::connect(target, Transport::Tcp(framing), Duration::from_secs(1)) {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let mut client = client.expect("oscdump never listened");
        client
            .send(&message(
                "/chronus/ping",
                vec![OscType::Int(i as i32), OscType::String("hi".into())],
            ))
            .unwrap();
        let line = lines.next().unwrap().unwrap();
        assert!(
            line.ends_with(&format!("/chronus/ping is {i} \"hi\"")),
            "{framing}: {line}"
        );
    }
    let _ = dump.kill();
    let _ = dump.wait();
}
