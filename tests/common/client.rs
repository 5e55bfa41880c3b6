//! A client socket that sends requests and waits for the answers meant for it.

use super::Daemon;
use chronus_osc::{OscMessage, OscPacket, OscType};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// One client socket: what it sends is answered to it.
pub struct Client {
    socket: UdpSocket,
    to: std::net::SocketAddr,
}

impl Client {
    pub fn new(d: &Daemon) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Client { socket, to: d.osc }
    }

    pub fn send(&self, addr: &str, args: Vec<OscType>) {
        let packet = OscPacket::Message(OscMessage {
            addr: addr.into(),
            args,
        });
        self.socket
            .send_to(&chronus_osc::encode(&packet), self.to)
            .unwrap();
    }

    /// Every message that arrives within `window`.
    pub fn collect(&self, window: Duration) -> Vec<OscMessage> {
        let deadline = Instant::now() + window;
        let mut all = Vec::new();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            if let Ok(packet) = chronus_osc::decode(&buf[..n], &chronus_osc::Limits::default()) {
                all.extend(chronus_osc::messages(packet));
            }
        }
        all
    }

    /// The next message for which `wanted` holds, within `timeout`; others are skipped.
    pub fn expect(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&OscMessage) -> bool,
    ) -> OscMessage {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let Ok(packet) = chronus_osc::decode(&buf[..n], &chronus_osc::Limits::default()) else {
                continue;
            };
            for m in chronus_osc::messages(packet) {
                if wanted(&m) {
                    return m;
                }
                seen.push(format!("{} {:?}", m.addr, m.args));
            }
        }
        panic!("no {what} within {timeout:?}; received instead: {seen:#?}");
    }

    pub fn say(&self, text: &str, id: &str) {
        self.send(
            "/chronus/tts/say",
            vec![
                OscType::String(text.into()),
                OscType::String(String::new()),
                OscType::String(id.into()),
            ],
        );
    }
}

pub fn is(addr: &'static str, first: &'static str) -> impl Fn(&OscMessage) -> bool {
    move |m| m.addr == addr && m.args.first() == Some(&OscType::String(first.into()))
}
