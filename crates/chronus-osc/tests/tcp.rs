//! TcpEndpoint and Replier over real loopback connections, in both stream framings.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chronus_osc::{
    CONNECTION_ADDR, ConnectionLimits, DecodeError, FAIL_ADDR, FrameError, Framing, Incoming,
    Limits, OscPacket, OscType, Peer, Replier, StreamDecoder, TcpEndpoint, UdpEndpoint, encode,
    message,
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

fn server_with(limits: Limits, connections: ConnectionLimits) -> Server {
    let endpoint = TcpEndpoint::bind_with_limits(loopback(), connections).unwrap();
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
    server_with(Limits::default(), ConnectionLimits::default())
}

fn limited(max_connections: usize, per_address: usize, idle_timeout: Duration) -> Server {
    let connections = ConnectionLimits {
        max_connections,
        per_address,
        idle_timeout,
    };
    server_with(Limits::default(), connections)
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.endpoint.local_addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// A connection from the loopback address `ip` (any of 127.0.0.0/8 works on Linux).
fn connect_from(server: &Server, ip: [u8; 4]) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
    socket
        .connect(&server.endpoint.local_addr().into())
        .unwrap();
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// Sends a ping on `stream` and waits for the server to receive it.
fn ping_on(server: &Server, mut stream: &TcpStream, i: i32) -> Peer {
    stream
        .write_all(&Framing::LengthPrefix.encode(&ping(i)))
        .unwrap();
    let incoming = server.next();
    assert_eq!(incoming.packet, Ok(ping(i)));
    incoming.peer
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

/// Reads what the server sent before closing `stream`: its `/chronus/fail` reason for
/// the connection, or `None` if it closed without one or did not close within 5 s. The
/// framing is told by the first byte: the server answers a client that has not spoken
/// yet with a length prefix.
fn fail_then_close(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(_) => return None,
        }
    }
    let mut decoder = StreamDecoder::with_framing(Framing::detect(*received.first()?), 65536);
    decoder.push(&received);
    let mut reason = None;
    while let Some(frame) = decoder.next_frame() {
        let packet = chronus_osc::decode(&frame.unwrap(), &Limits::default()).unwrap();
        if let OscPacket::Message(m) = packet
            && m.addr == FAIL_ADDR
            && let [OscType::String(addr), OscType::String(why)] = &m.args[..]
            && addr == CONNECTION_ADDR
        {
            reason = Some(why.clone());
        }
    }
    reason
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
    let server = server_with(limits, ConnectionLimits::default());
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
    let server = server_with(limits, ConnectionLimits::default());
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
fn connections_beyond_the_limit_are_refused_with_a_fail_and_counted() {
    let server = limited(2, 8, Duration::from_secs(60));
    let mut first = connect(&server);
    let second = connect(&server);
    ping_on(&server, &first, 1);
    ping_on(&server, &second, 2);
    assert_eq!(server.endpoint.connections(), 2);

    // Nobody holds two more than this address does, so no place is made for it.
    let mut third = connect(&server);
    let reason = fail_then_close(&mut third);
    assert_eq!(
        reason.as_deref(),
        Some(
            "all 2 connections are taken, and no address holds two more than 127.0.0.1 \
             does: try again later"
        )
    );
    assert_eq!(server.endpoint.refused_full(), 1);
    assert_eq!(server.endpoint.refused_connections(), 1);
    assert_eq!(server.endpoint.accepted_connections(), 2);
    assert_eq!(server.endpoint.evicted_connections(), 0);

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
fn one_address_holds_at_most_its_share_and_the_rest_are_told_why() {
    let server = limited(64, 3, Duration::from_secs(60));
    let held: Vec<TcpStream> = (0..3)
        .map(|_| connect_from(&server, [127, 0, 0, 2]))
        .collect();
    for (i, stream) in held.iter().enumerate() {
        ping_on(&server, stream, i as i32);
    }
    // A client that spoke first, maybe before the server looked: told why either way.
    let mut slip = connect_from(&server, [127, 0, 0, 2]);
    slip.write_all(&Framing::Slip.encode(&ping(9))).unwrap();
    let reason = fail_then_close(&mut slip);
    assert_eq!(
        reason.as_deref(),
        Some("too many connections from 127.0.0.2: at most 3 at once from one address")
    );
    let mut silent = connect_from(&server, [127, 0, 0, 2]);
    assert!(fail_then_close(&mut silent).is_some());
    assert_eq!(server.endpoint.refused_per_address(), 2);
    assert_eq!(server.endpoint.refused_connections(), 2);
    // Another address, and the held connections, are served as before.
    let other = connect_from(&server, [127, 0, 0, 3]);
    ping_on(&server, &other, 10);
    ping_on(&server, &held[0], 11);
    assert_eq!(server.endpoint.connections(), 4);
    assert!(
        server.rx.try_recv().is_err(),
        "a refused connection's request reached the daemon"
    );
}

#[test]
fn a_full_table_closes_the_longest_idle_connection_of_the_address_holding_the_most() {
    let server = limited(4, 3, Duration::from_secs(60));
    let mut hog: Vec<TcpStream> = (0..3)
        .map(|_| connect_from(&server, [127, 0, 0, 2]))
        .collect();
    // hog[1] sends nothing after it is accepted: the longest idle once the others speak.
    std::thread::sleep(Duration::from_millis(20));
    let mut hog_peers = Vec::new();
    for i in [0, 2] {
        hog_peers.push(ping_on(&server, &hog[i], i as i32));
    }
    let polite = connect_from(&server, [127, 0, 0, 3]);
    ping_on(&server, &polite, 3);
    assert_eq!(server.endpoint.connections(), 4);

    let newcomer = connect_from(&server, [127, 0, 0, 4]);
    let newcomer_peer = ping_on(&server, &newcomer, 4);
    let reason = fail_then_close(&mut hog[1]);
    assert_eq!(
        reason.as_deref(),
        Some(
            "closed to make room for a client from another address: all 4 connections \
             were taken and 127.0.0.2 held the most (3)"
        )
    );
    assert_eq!(server.endpoint.evicted_connections(), 1);
    assert_eq!(server.endpoint.refused_connections(), 0);
    assert_eq!(server.endpoint.connections(), 4);
    server.replier.send(&newcomer_peer, &ping(5)).unwrap();
    for peer in &hog_peers {
        assert!(server.replier.is_reachable(peer), "only one was closed");
    }

    // 127.0.0.2 now holds two, as many as a newcomer from 127.0.0.4 would after taking
    // one of them: it is refused, not handed a place back and forth.
    let mut second = connect_from(&server, [127, 0, 0, 4]);
    assert!(fail_then_close(&mut second).is_some());
    assert_eq!(server.endpoint.refused_full(), 1);
    assert_eq!(server.endpoint.evicted_connections(), 1);
}

#[test]
fn a_connection_without_a_complete_frame_is_closed_when_idle_and_counted() {
    let idle = Duration::from_millis(400);
    let server = limited(64, 8, idle);
    let busy = connect(&server);
    let mut trickling = connect(&server);
    // Half a frame, a byte at a time: bytes alone do not keep a connection open.
    let frame = Framing::LengthPrefix.encode(&ping(1));
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < idle * 2 {
        ping_on(&server, &busy, 2);
        // Once the server closed it, writes may fail: the reads below tell why.
        if sent < frame.len() / 2 && trickling.write_all(&frame[sent..sent + 1]).is_ok() {
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let reason = fail_then_close(&mut trickling).expect("a fail");
    assert!(
        reason.starts_with("closed: no complete frame for 0.4 s"),
        "{reason}"
    );
    assert_eq!(server.endpoint.idle_closed(), 1);
    assert_eq!(
        server.endpoint.connections(),
        1,
        "the busy connection stays"
    );
    ping_on(&server, &busy, 3);
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
    // Woken by the shutdown itself: the blocking backstop is a second.
    assert!(
        started.elapsed() < Duration::from_millis(500),
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
    use chronus_osc::{Broadcast, Subscribed, Subscribers, SubscribersFull};
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

    let now = Instant::now();
    assert_eq!(
        subscribers.subscribe(staying_peer, now),
        Ok(Subscribed::Added)
    );
    assert_eq!(
        subscribers.subscribe(staying_peer, now),
        Ok(Subscribed::Renewed)
    );
    assert_eq!(
        subscribers.subscribe(leaving_peer, now),
        Ok(Subscribed::Added)
    );
    let udp_peer = Peer::Udp(loopback());
    assert_eq!(
        subscribers.subscribe(udp_peer, now),
        Err(SubscribersFull::Full {
            ip: loopback().ip(),
            capacity: 2
        })
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
