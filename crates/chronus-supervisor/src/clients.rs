//! The peers the daemon answers: replies on each sender's own transport, and events
//! to `/chronus/notify` subscribers. Nothing here waits on a client.

use chronus_osc::{OscPacket, Peer, Replier, Subscribers, SubscribersFull};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Most subscribers at once.
const SUBSCRIBER_LIMIT: usize = 64;

/// Who a shared limit counts against: the sender's address, and on loopback its
/// source port too (every program on the box sends from 127.0.0.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    ip: IpAddr,
    port: u16,
}

impl ClientKey {
    /// The daemon itself (a fade on shutdown, a pattern's group).
    pub const DAEMON: ClientKey = ClientKey {
        ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        port: 0,
    };

    pub fn of(addr: SocketAddr) -> ClientKey {
        let ip = addr.ip();
        let port = if ip.is_loopback() { addr.port() } else { 0 };
        ClientKey { ip, port }
    }

    pub fn of_peer(peer: &Peer) -> ClientKey {
        ClientKey::of(peer.addr())
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

/// Counters of the control surface reported in status.
#[derive(Clone, Debug, Default)]
pub struct OscCounters {
    pub received: u64,
    pub errors: u64,
    pub late: u64,
}

pub struct Clients {
    replier: Replier,
    subscribers: Subscribers,
    pub counters: OscCounters,
}

impl Clients {
    pub fn new(replier: Replier) -> Clients {
        Clients {
            replier,
            subscribers: Subscribers::new(SUBSCRIBER_LIMIT),
            counters: OscCounters::default(),
        }
    }

    pub fn reply(&self, to: &Peer, packet: OscPacket) {
        if let Err(e) = self.replier.send(to, &packet) {
            tracing::debug!(%to, error = %e, "cannot send OSC reply");
        }
    }

    /// Answers `/chronus/fail addr reason`, counted as an error.
    pub fn fail(&mut self, to: &Peer, addr: &str, reason: &str) {
        self.counters.errors += 1;
        self.reply(to, chronus_osc::fail(addr, reason));
    }

    /// Pushes an event to every subscriber.
    pub fn broadcast(&mut self, event: OscPacket) {
        if !self.subscribers.is_empty() {
            self.subscribers.broadcast(&self.replier, &event);
        }
    }

    /// Subscribes `peer`, or renews its lease (see `chronus_osc::SUBSCRIPTION_LEASE`).
    pub fn subscribe(&mut self, peer: Peer, now: Instant) -> Result<(), SubscribersFull> {
        self.subscribers.subscribe(peer, now).map(|_| ())
    }

    /// Ends the subscriptions whose lease ran out.
    pub fn expire(&mut self, now: Instant) {
        self.subscribers.expire(now);
    }

    pub fn unsubscribe(&mut self, peer: &Peer) {
        self.subscribers.unsubscribe(peer);
    }

    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    pub fn subscriptions_refused(&self) -> u64 {
        self.subscribers.refused()
    }

    pub fn subscriptions_evicted(&self) -> u64 {
        self.subscribers.evicted()
    }

    pub fn subscriptions_expired(&self) -> u64 {
        self.subscribers.expired()
    }
}
