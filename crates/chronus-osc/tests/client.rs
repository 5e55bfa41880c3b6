//! Client over UDP and both TCP framings, against the real endpoints.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use chronus_osc::{
    Client, Framing, Limits, OscType, Replier, RequestError, TcpEndpoint, Transport, UdpEndpoint,
    done, done_args, fail, message,
};

const WAIT: Duration = Duration::from_secs(5);

/// A daemon stand-in on both transports: answers `/echo` with `/echo.reply` carrying the
/// same arguments (in a bundle with noise before it), `/bad` with a fail, `/notify` with
/// done plus two events.
fn echo_server() -> (SocketAddr, SocketAddr, TcpEndpoint, UdpEndpoint) {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let udp = UdpEndpoint::bind(loopback, 1 << 16).unwrap();
    let tcp = TcpEndpoint::bind(loopback).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    udp.spawn_receiver(Limits::default(), tx.clone()).unwrap();
    tcp.spawn_acceptor(Limits::default(), tx).unwrap();
    let replier = Replier::new().with_udp(&udp).with_tcp(&tcp);
    std::thread::spawn(move || {
        for incoming in rx {
            let Ok(chronus_osc::OscPacket::Message(m)) = incoming.packet else {
                continue;
            };
            let replies = match m.addr.as_str() {
                "/echo" => vec![chronus_osc::OscPacket::Bundle(chronus_osc::OscBundle {
                    timetag: chronus_osc::IMMEDIATELY,
                    content: vec![message("/noise", vec![]), message("/echo.reply", m.args)],
                })],
                "/bad" => vec![fail("/bad", "bad on purpose")],
                "/notify" => vec![
                    done("/notify", vec![]),
                    message("/event", vec![OscType::Int(1)]),
                    message("/event", vec![OscType::Int(2)]),
                ],
                _ => vec![],
            };
            for reply in replies {
                replier.send(&incoming.peer, &reply).unwrap();
            }
        }
    });
    (udp.local_addr(), tcp.local_addr(), tcp, udp)
}

fn transports(udp: SocketAddr, tcp: SocketAddr) -> Vec<(SocketAddr, Transport)> {
    vec![
        (udp, Transport::Udp),
        (tcp, Transport::Tcp(Framing::LengthPrefix)),
        (tcp, Transport::Tcp(Framing::Slip)),
    ]
}

#[test]
fn requests_work_over_every_transport() {
    let (udp, tcp, _t, _u) = echo_server();
    for (target, transport) in transports(udp, tcp) {
        let mut client = Client::connect(target, transport, WAIT).unwrap();
        let args = vec![OscType::Int(42), OscType::String("hi".into())];
        let reply = client
            .request(&message("/echo", args.clone()), "/echo.reply", WAIT)
            .unwrap();
        assert_eq!(reply.args, args, "{transport:?}");

        let err = client
            .request(&message("/bad", vec![]), "/bad.reply", WAIT)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{target} rejected /bad: bad on purpose"),
            "{transport:?}"
        );

        client.send(&message("/notify", vec![])).unwrap();
        let ack = client
            .wait_for(WAIT, |m| done_args(m, "/notify").is_some())
            .unwrap();
        assert_eq!(done_args(&ack, "/notify"), Some(&[][..]));
        let deadline = Instant::now() + WAIT;
        let events: Vec<_> = (0..2)
            .map(|_| client.recv(deadline).unwrap().unwrap().args)
            .collect();
        assert_eq!(events, vec![vec![OscType::Int(1)], vec![OscType::Int(2)]]);
        // Nothing more: recv gives None at the deadline.
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(client.recv(soon).unwrap(), None);
    }
}

#[test]
fn tcp_connection_refused_and_closed_are_reported() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Client::connect(port, Transport::Tcp(Framing::Slip), WAIT).unwrap_err();
    assert!(matches!(err, RequestError::Refused { .. }), "{err}");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let mut client = Client::connect(target, Transport::Tcp(Framing::LengthPrefix), WAIT).unwrap();
    drop(listener.accept().unwrap());
    let err = client.recv(Instant::now() + WAIT).unwrap_err();
    assert!(matches!(err, RequestError::Closed { .. }), "{err}");
    assert_eq!(err.to_string(), format!("{target} closed the connection"));
}
