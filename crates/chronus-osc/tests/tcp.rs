//! TcpEndpoint and Replier over real loopback connections, in both stream framings.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chronus_osc::{
    DecodeError, FrameError, Framing, Incoming, Limits, OscPacket, OscType, Peer, Replier,
    StreamDecoder, TcpEndpoint, UdpEndpoint, encode, message,
};
use crossbeam_channel::Receiver;

const WAIT: Duration = Duration::from_secs(5);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Server {
    endpoint: TcpEndpoint,
    rx: Receiver<Incoming>,
    acceptor: JoinHandle<()>,
    replier: Replier,
}

fn server_with(limits: Limits, max_connections: usize) -> Server {
    let endpoint = TcpEndpoint::bind_with_max_connections(loopback(), max_connections).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let acceptor = endpoint.spawn_acceptor(limits, tx).unwrap();
    let replier = Replier::new().with_tcp(&endpoint);
    Server {
        endpoint,
        rx,
        acceptor,
        replier,
    }
}

fn server() -> Server {
    server_with(Limits::default(), 64)
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.endpoint.local_addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

fn ping(i: i32) -> OscPacket {
    message(
        "/chronus/ping",
        vec![OscType::Int(i), OscType::String("x".repeat(i as usize % 7))],
    )
}

impl Server {
    fn next(&self) -> Incoming {
        self.rx.recv_timeout(WAIT).expect("an incoming packet")
    }
}

/// Reads from `stream` until `count` frames have arrived.
fn read_frames(stream: &mut TcpStream, framing: Framing, count: usize) -> Vec<OscPacket> {
    let mut decoder = StreamDecoder::with_framing(framing, 65536);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < count {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed after {} frames", out.len());
        decoder.push(&buf[..n]);
        while let Some(frame) = decoder.next_frame() {
            out.push(chronus_osc::decode(&frame.unwrap(), &Limits::default()).unwrap());
        }
    }
    out
}

/// True once the server closed the stream (reads end of stream or a reset).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
    false
}

fn round_trip(framing: Framing) {
    let server = server();
    let mut client = connect(&server);
    let sent = ping(3);
    client.write_all(&framing.encode(&sent)).unwrap();
    let incoming = server.next();
    assert_eq!(incoming.packet, Ok(sent.clone()));
    assert_eq!(incoming.len, encode(&sent).len());
    assert_eq!(incoming.from, client.local_addr().unwrap());
    let Peer::Tcp { addr, .. } = incoming.peer else {
        panic!("expected a TCP peer, got {}", incoming.peer);
    };
    assert_eq!(addr, client.local_addr().unwrap());

    let reply = message("/chronus/pong", vec![OscType::Bool(true)]);
    server.replier.send(&incoming.peer, &reply).unwrap();
    assert_eq!(read_frames(&mut client, framing, 1), vec![reply]);
}

#[test]
fn length_prefixed_packet_round_trips_with_a_reply_on_the_same_connection() {
    round_trip(Framing::LengthPrefix);
}

#[test]
fn slip_packet_round_trips_with_a_slip_reply() {
    round_trip(Framing::Slip);
}

fn split_byte_by_byte(framing: Framing) {
    let server = server();
    let mut client = connect(&server);
    client.set_nodelay(true).unwrap();
    let packets: Vec<OscPacket> = (0..3).map(ping).collect();
    let stream: Vec<u8> = packets.iter().flat_map(|p| framing.encode(p)).collect();
    for byte in stream {
        client.write_all(&[byte]).unwrap();
        client.flush().unwrap();
    }
    for packet in packets {
        assert_eq!(server.next().packet, Ok(packet));
    }
}

#[test]
fn length_prefixed_stream_split_byte_by_byte_is_reassembled() {
    split_byte_by_byte(Framing::LengthPrefix);
}

#[test]
fn slip_stream_split_byte_by_byte_is_reassembled() {
    split_byte_by_byte(Framing::Slip);
}

#[test]
fn several_packets_in_one_write_arrive_in_order() {
    for framing in [Framing::LengthPrefix, Framing::Slip] {
        let server = server();
        let mut client = connect(&server);
        let packets: Vec<OscPacket> = (0..50).map(ping).collect();
        let stream: Vec<u8> = packets.iter().flat_map(|p| framing.encode(p)).collect();
        client.write_all(&stream).unwrap();
        let peer = server.next().peer;
        for packet in &packets[1..] {
            let incoming = server.next();
            assert_eq!(&incoming.packet.unwrap(), packet);
            assert_eq!(incoming.peer, peer, "one connection, one peer");
        }
    }
}

#[test]
fn oversize_length_prefix_is_reported_then_the_connection_closes() {
    let limits = Limits {
        max_packet: 64,
        ..Limits::default()
    };
    let server = server_with(limits, 64);
    let mut client = connect(&server);
    client.write_all(&100i32.to_be_bytes()).unwrap();
    client.write_all(&[0u8; 100]).unwrap();
    let incoming = server.next();
    assert_eq!(
        incoming.packet,
        Err(DecodeError::Frame(FrameError::BadLength {
            len: 100,
            limit: 64
        }))
    );
    // The fail reply still reaches the client before the connection is closed.
    let fail = chronus_osc::fail("", "too large");
    server.replier.send(&incoming.peer, &fail).unwrap();
    assert_eq!(
        read_frames(&mut client, Framing::LengthPrefix, 1),
        vec![fail]
    );
    assert!(closed_by_server(&mut client));
}

#[test]
fn oversize_slip_frame_is_reported_and_the_connection_goes_on() {
    let limits = Limits {
        max_packet: 64,
        ..Limits::default()
    };
    let server = server_with(limits, 64);
    let mut client = connect(&server);
    let big = message("/big", vec![OscType::Blob(vec![7; 200])]);
    client.write_all(&Framing::Slip.encode(&big)).unwrap();
    client.write_all(&Framing::Slip.encode(&ping(1))).unwrap();
    assert_eq!(
        server.next().packet,
        Err(DecodeError::Frame(FrameError::SlipTooLarge { limit: 64 }))
    );
    assert_eq!(server.next().packet, Ok(ping(1)));
}

#[test]
fn garbage_is_reported_and_never_crashes_the_endpoint() {
    let server = server();
    // Well framed but not OSC: a decode error, and the connection stays usable.
    let mut client = connect(&server);
    client
        .write_all(&Framing::LengthPrefix.frame(b"junkjunk"))
        .unwrap();
    client
        .write_all(&Framing::LengthPrefix.encode(&ping(2)))
        .unwrap();
    assert!(matches!(
        server.next().packet,
        Err(DecodeError::Truncated { .. })
    ));
    assert_eq!(server.next().packet, Ok(ping(2)));

    // Plain text: its first four bytes are a huge length, so the stream is broken.
    let mut text = connect(&server);
    text.write_all(b"hello there, this is not OSC\n").unwrap();
    assert!(matches!(
        server.next().packet,
        Err(DecodeError::Frame(FrameError::BadLength { .. }))
    ));
    assert!(closed_by_server(&mut text));

    // Random bytes in SLIP: whatever comes out, it is errors or packets, never a crash.
    let mut slip = connect(&server);
    let mut state = 0x1234_5678u32;
    let noise: Vec<u8> = std::iter::once(0xC0)
        .chain((0..20_000).map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        }))
        .collect();
    slip.write_all(&noise).unwrap();
    slip.write_all(&Framing::Slip.encode(&ping(4))).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "the packet after the noise never came"
        );
        if server.next().packet == Ok(ping(4)) {
            break;
        }
    }
    // The endpoint still serves new connections.
    round_trip_on(&server, Framing::LengthPrefix);
}

fn round_trip_on(server: &Server, framing: Framing) {
    let mut client = connect(server);
    client.write_all(&framing.encode(&ping(5))).unwrap();
    let incoming = server.next();
    assert_eq!(incoming.packet, Ok(ping(5)));
    server.replier.send(&incoming.peer, &ping(6)).unwrap();
    assert_eq!(read_frames(&mut client, framing, 1), vec![ping(6)]);
}

#[test]
fn a_client_that_never_reads_never_blocks_the_sender() {
    let server = server();
    let client = connect(&server);
    (&client)
        .write_all(&Framing::LengthPrefix.encode(&ping(1)))
        .unwrap();
    let peer = server.next().peer;
    // About 20 MB of replies: far more than the socket buffers and the queue hold.
    let reply = message("/chronus/event", vec![OscType::Blob(vec![0; 1000])]);
    let started = Instant::now();
    let mut dropped = 0;
    for _ in 0..20_000 {
        let before = Instant::now();
        if let Err(e) = server.replier.send(&peer, &reply) {
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
            dropped += 1;
        }
        assert!(before.elapsed() < Duration::from_millis(50), "send blocked");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(dropped > 0, "expected replies to be dropped");
    assert_eq!(server.endpoint.dropped_replies(), dropped);
    drop(client);
}

#[test]
fn connections_beyond_the_limit_are_refused_and_counted() {
    let server = server_with(Limits::default(), 2);
    let mut first = connect(&server);
    let second = connect(&server);
    first
        .write_all(&Framing::LengthPrefix.encode(&ping(1)))
        .unwrap();
    server.next();
    (&second)
        .write_all(&Framing::LengthPrefix.encode(&ping(2)))
        .unwrap();
    server.next();
    assert_eq!(server.endpoint.connections(), 2);

    let mut third = connect(&server);
    assert!(closed_by_server(&mut third));
    assert_eq!(server.endpoint.refused_connections(), 1);
    assert_eq!(server.endpoint.accepted_connections(), 2);

    // Once one closes, a new client is served again.
    drop(second);
    let deadline = Instant::now() + WAIT;
    while server.endpoint.connections() > 1 {
        assert!(
            Instant::now() < deadline,
            "closed connection never released"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    round_trip_on(&server, Framing::Slip);
    first
        .write_all(&Framing::LengthPrefix.encode(&ping(3)))
        .unwrap();
    assert_eq!(server.next().packet, Ok(ping(3)));
}

#[test]
fn replies_to_a_closed_connection_fail_with_not_connected() {
    let server = server();
    let client = connect(&server);
    (&client)
        .write_all(&Framing::LengthPrefix.encode(&ping(1)))
        .unwrap();
    let peer = server.next().peer;
    assert!(server.replier.is_reachable(&peer));
    drop(client);
    let deadline = Instant::now() + WAIT;
    while server.replier.is_reachable(&peer) {
        assert!(Instant::now() < deadline, "connection never noticed closed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let err = server.replier.send(&peer, &ping(2)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
}

#[test]
fn shutdown_closes_connections_and_stops_threads_promptly() {
    let server = server();
    let mut client = connect(&server);
    client.write_all(&Framing::Slip.encode(&ping(1))).unwrap();
    server.next();
    let started = Instant::now();
    server.endpoint.shutdown();
    server.acceptor.join().unwrap();
    assert!(closed_by_server(&mut client));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + WAIT;
    while server.endpoint.connections() > 0 {
        assert!(Instant::now() < deadline, "connections never released");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn replier_answers_udp_and_tcp_peers() {
    let udp = UdpEndpoint::bind(loopback(), 1 << 16).unwrap();
    let tcp = TcpEndpoint::bind(loopback()).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    udp.spawn_receiver(Limits::default(), tx.clone()).unwrap();
    tcp.spawn_acceptor(Limits::default(), tx).unwrap();
    let replier = Replier::new().with_udp(&udp).with_tcp(&tcp);

    let udp_client = UdpSocket::bind(loopback()).unwrap();
    udp_client.set_read_timeout(Some(WAIT)).unwrap();
    udp_client
        .send_to(&encode(&ping(1)), udp.local_addr())
        .unwrap();
    let from_udp = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(from_udp.peer, Peer::Udp(udp_client.local_addr().unwrap()));
    replier.send(&from_udp.peer, &ping(2)).unwrap();
    let mut buf = [0u8; 512];
    let (len, from) = udp_client.recv_from(&mut buf).unwrap();
    assert_eq!(from, udp.local_addr());
    assert_eq!(
        chronus_osc::decode(&buf[..len], &Limits::default()),
        Ok(ping(2))
    );

    let mut tcp_client = TcpStream::connect(tcp.local_addr()).unwrap();
    tcp_client.set_read_timeout(Some(WAIT)).unwrap();
    tcp_client
        .write_all(&Framing::Slip.encode(&ping(3)))
        .unwrap();
    let from_tcp = rx.recv_timeout(WAIT).unwrap();
    assert!(from_tcp.peer.is_tcp());
    replier.send(&from_tcp.peer, &ping(4)).unwrap();
    assert_eq!(
        read_frames(&mut tcp_client, Framing::Slip, 1),
        vec![ping(4)]
    );

    let udp_only = Replier::new().with_udp(&udp);
    let err = udp_only.send(&from_tcp.peer, &ping(5)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
}

#[test]
fn subscribers_are_deduplicated_bounded_and_forgotten_when_gone() {
    use chronus_osc::{Broadcast, Subscribers, SubscribersFull};
    let server = server();
    let udp = UdpEndpoint::bind(loopback(), 1 << 16).unwrap();
    let replier = server.replier.clone().with_udp(&udp);
    let mut subscribers = Subscribers::new(2);

    let mut staying = connect(&server);
    staying.write_all(&Framing::Slip.encode(&ping(1))).unwrap();
    let staying_peer = server.next().peer;
    let leaving = connect(&server);
    (&leaving)
        .write_all(&Framing::LengthPrefix.encode(&ping(2)))
        .unwrap();
    let leaving_peer = server.next().peer;

    assert_eq!(subscribers.subscribe(staying_peer), Ok(true));
    assert_eq!(subscribers.subscribe(staying_peer), Ok(false));
    assert_eq!(subscribers.subscribe(leaving_peer), Ok(true));
    let udp_peer = Peer::Udp(loopback());
    assert_eq!(
        subscribers.subscribe(udp_peer),
        Err(SubscribersFull { capacity: 2 })
    );

    let event = message("/chronus/underrun", vec![OscType::Int(64)]);
    assert_eq!(
        subscribers.broadcast(&replier, &event),
        Broadcast {
            sent: 2,
            dropped: 0,
            removed: 0
        }
    );
    assert_eq!(
        read_frames(&mut staying, Framing::Slip, 1),
        vec![event.clone()]
    );

    drop(leaving);
    let deadline = Instant::now() + WAIT;
    while replier.is_reachable(&leaving_peer) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        subscribers.broadcast(&replier, &event),
        Broadcast {
            sent: 1,
            dropped: 0,
            removed: 1
        }
    );
    assert_eq!(subscribers.len(), 1);
    assert!(subscribers.unsubscribe(&staying_peer));
    assert!(!subscribers.unsubscribe(&staying_peer));
    assert!(subscribers.is_empty());
}

#[test]
fn replier_and_peers_can_move_between_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    fn sendable<T: Send + 'static>() {}
    shareable::<Replier>();
    shareable::<Peer>();
    shareable::<chronus_osc::Subscribers>();
    sendable::<Incoming>();
}
