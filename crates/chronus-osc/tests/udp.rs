//! UdpEndpoint and request() over real loopback sockets.

use std::net::{SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chronus_osc::{
    DecodeError, Incoming, Limits, OscPacket, OscType, RequestError, UdpEndpoint, decode, encode,
    fail, message, request, status_reply,
};
use crossbeam_channel::Receiver;

const LOOPBACK: &str = "127.0.0.1:0";

fn loopback() -> SocketAddr {
    LOOPBACK.parse().unwrap()
}

fn endpoint_with_receiver(limits: Limits) -> (UdpEndpoint, Receiver<Incoming>, JoinHandle<()>) {
    let endpoint = UdpEndpoint::bind(loopback(), 1 << 20).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = endpoint.spawn_receiver(limits, tx).unwrap();
    (endpoint, rx, handle)
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind(LOOPBACK).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

#[test]
fn datagram_round_trips_through_the_endpoint() {
    let (endpoint, rx, _handle) = endpoint_with_receiver(Limits::default());
    let client = client();
    let sent = message(
        "/chronus/ping",
        vec![OscType::Int(7), OscType::String("x".into())],
    );
    let bytes = encode(&sent);
    let before = Instant::now();
    client.send_to(&bytes, endpoint.local_addr()).unwrap();

    let incoming = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(incoming.from, client.local_addr().unwrap());
    assert_eq!(incoming.len, bytes.len());
    assert!(incoming.received >= before);
    assert_eq!(incoming.packet, Ok(sent));

    let reply = message("/chronus/pong", vec![OscType::Bool(true)]);
    endpoint.send(incoming.from, &reply).unwrap();
    let mut buf = [0u8; 1024];
    let (len, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!(from, endpoint.local_addr());
    assert_eq!(decode(&buf[..len], &Limits::default()), Ok(reply));
}

#[test]
fn bad_datagrams_arrive_as_decode_errors_with_their_real_length() {
    let limits = Limits {
        max_packet: 64,
        ..Limits::default()
    };
    let (endpoint, rx, _handle) = endpoint_with_receiver(limits);
    let client = client();
    client.send_to(&[0u8; 100], endpoint.local_addr()).unwrap();
    client.send_to(b"junk", endpoint.local_addr()).unwrap();

    let oversize = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(oversize.len, 100);
    assert_eq!(
        oversize.packet,
        Err(DecodeError::TooLarge {
            len: 100,
            limit: 64
        })
    );
    let junk = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        matches!(junk.packet, Err(DecodeError::Truncated { .. })),
        "{:?}",
        junk.packet
    );
}

#[test]
fn shutdown_stops_the_receiver_promptly() {
    let (endpoint, _rx, handle) = endpoint_with_receiver(Limits::default());
    let started = Instant::now();
    endpoint.shutdown();
    handle.join().unwrap();
    // Woken by the shutdown itself: the blocking backstop is a second.
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn receiver_exits_when_the_channel_is_disconnected() {
    let (endpoint, rx, handle) = endpoint_with_receiver(Limits::default());
    drop(rx);
    // The receiver notices at the next datagram it tries to hand over.
    client()
        .send_to(&encode(&message("/x", vec![])), endpoint.local_addr())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !handle.is_finished() {
        assert!(Instant::now() < deadline, "receiver still running");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn kernel_drops_count_datagrams_lost_to_a_full_receive_buffer() {
    // Nobody reads this socket, and its buffer is as small as the kernel allows.
    let endpoint = UdpEndpoint::bind(loopback(), 1).unwrap();
    assert_eq!(endpoint.kernel_drops(), 0);
    let client = client();
    for _ in 0..200 {
        client.send_to(&[0u8; 1024], endpoint.local_addr()).unwrap();
    }
    assert!(endpoint.kernel_drops() > 0, "expected drops");
}

#[test]
fn requested_receive_buffer_is_applied() {
    let small = UdpEndpoint::bind(loopback(), 4096).unwrap();
    let large = UdpEndpoint::bind(loopback(), 65536).unwrap();
    assert!(small.recv_buffer_size().unwrap() < large.recv_buffer_size().unwrap());
}

/// Answers one datagram with `reply`, from the socket it was sent to.
fn responder(reply: Vec<u8>) -> (SocketAddr, JoinHandle<OscPacket>) {
    let socket = client();
    let addr = socket.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let (len, from) = socket.recv_from(&mut buf).unwrap();
        socket.send_to(&reply, from).unwrap();
        decode(&buf[..len], &Limits::default()).unwrap()
    });
    (addr, handle)
}

#[test]
fn request_returns_the_matching_reply_and_skips_others() {
    let noise = encode(&message("/chronus/other", vec![]));
    let wanted = status_reply(vec![("state", OscType::String("running".into()))]);
    // A bundle holding an unrelated message and then the reply.
    let bundle = OscPacket::Bundle(chronus_osc::OscBundle {
        timetag: (0, 1).into(),
        content: vec![decode(&noise, &Limits::default()).unwrap(), wanted.clone()],
    });
    let (addr, handle) = responder(encode(&bundle));
    let request_packet = message("/chronus/status", vec![]);
    let reply = request(
        addr,
        &request_packet,
        "/chronus/status.reply",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(OscPacket::Message(reply), wanted);
    assert_eq!(handle.join().unwrap(), request_packet);
}

#[test]
fn request_times_out_when_nobody_answers() {
    let silent = client();
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let err = request(
        silent.local_addr().unwrap(),
        &message("/x", vec![]),
        "/x.reply",
        timeout,
    )
    .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, RequestError::Timeout { .. }), "{err}");
    assert!(
        elapsed >= timeout && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "no reply from {} within 200 ms",
            silent.local_addr().unwrap()
        )
    );
}

#[test]
fn request_to_a_closed_port_is_refused() {
    let addr = client().local_addr().unwrap(); // bound, then closed at once
    let err = request(
        addr,
        &message("/x", vec![]),
        "/x.reply",
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(matches!(err, RequestError::Refused { .. }), "{err}");
}

#[test]
fn request_reports_a_fail_reply_as_rejected() {
    let (addr, _handle) = responder(encode(&fail("/chronus/set", "no such parameter")));
    let err = request(
        addr,
        &message("/chronus/set", vec![]),
        "/chronus/set.reply",
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{addr} rejected /chronus/set: no such parameter")
    );
}

#[test]
fn request_reports_an_undecodable_reply_as_malformed() {
    let (addr, _handle) = responder(b"nope".to_vec());
    let err = request(
        addr,
        &message("/x", vec![]),
        "/x.reply",
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(matches!(err, RequestError::Malformed { .. }), "{err}");
}
