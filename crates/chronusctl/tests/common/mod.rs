//! A fake chronusd on loopback: UDP and TCP on one port (as chronusctl expects), built on
//! chronus-osc's real endpoints, answering with a test-supplied handler.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chronus_osc::{
    Incoming, Limits, OscMessage, OscPacket, Peer, Replier, TcpEndpoint, UdpEndpoint, messages,
};

/// One packet the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub peer: Peer,
    pub packet: OscPacket,
}

pub struct Fake {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    _udp: UdpEndpoint,
    _tcp: TcpEndpoint,
}

impl Fake {
    /// Starts a fake whose `handler` sees every message (bundles flattened) and may reply.
    pub fn start(handler: impl Fn(&Peer, &OscMessage, &Replier) + Send + 'static) -> Fake {
        let (udp, tcp) = bind_pair();
        let (tx, rx) = crossbeam_channel::unbounded::<Incoming>();
        udp.spawn_receiver(Limits::default(), tx.clone()).unwrap();
        tcp.spawn_acceptor(Limits::default(), tx).unwrap();
        let replier = Replier::new().with_udp(&udp).with_tcp(&tcp);
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for incoming in rx {
                let Ok(packet) = incoming.packet else {
                    continue;
                };
                log.lock().unwrap().push(Received {
                    at: incoming.received,
                    peer: incoming.peer,
                    packet: packet.clone(),
                });
                for message in messages(packet) {
                    handler(&incoming.peer, &message, &replier);
                }
            }
        });
        Fake {
            port: udp.local_addr().port(),
            received,
            _udp: udp,
            _tcp: tcp,
        }
    }

    /// A fake that never answers.
    pub fn silent() -> Fake {
        Fake::start(|_, _, _| {})
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits up to 5 s until `count` packets have arrived.
    pub fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.received();
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every message received, bundles flattened.
    pub fn messages(&self) -> Vec<OscMessage> {
        self.received()
            .into_iter()
            .flat_map(|r| messages(r.packet))
            .collect()
    }
}

/// UDP and TCP endpoints on the same loopback port.
fn bind_pair() -> (UdpEndpoint, TcpEndpoint) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    for _ in 0..50 {
        let udp = UdpEndpoint::bind(any, 1 << 20).unwrap();
        if let Ok(tcp) = TcpEndpoint::bind(udp.local_addr()) {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// The transport flags chronusctl takes, with a name for messages.
pub const TRANSPORTS: [&[&str]; 3] = [&[], &["--tcp"], &["--slip"]];

pub fn chronusctl(port: u16, flags: &[&str], args: &[&str]) -> Output {
    command(port, flags, args).output().unwrap()
}

pub fn command(port: u16, flags: &[&str], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chronusctl"));
    command
        .args(["--port", &port.to_string()])
        .args(flags)
        .args(args)
        .env_remove("CHRONUS_OSC_HOST")
        .env_remove("CHRONUS_OSC_PORT");
    command
}

pub fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// Whether `peer` arrived over the transport `flags` asked for.
pub fn peer_matches(peer: &Peer, flags: &[&str]) -> bool {
    peer.is_tcp() != flags.is_empty()
}
