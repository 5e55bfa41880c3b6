//! The peers the daemon answers: replies on each sender's own transport, and events
//! to `/chronus/notify` subscribers. Nothing here waits on a client.

use chronus_dsp::dialect::Clamp;
use chronus_osc::{OscPacket, OscType, Peer, Replier, Subscribers, SubscribersFull};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Most subscribers at once.
const SUBSCRIBER_LIMIT: usize = 64;
/// At most one `/chronus/clamped` per address in this long: a fader swept past its
/// end sends dozens a second.
const CLAMP_NOTICE_EVERY: Duration = Duration::from_secs(1);

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
    /// Numbers clamped into range (each one, announced or not).
    pub clamped: u64,
}

pub struct Clients {
    replier: Replier,
    subscribers: Subscribers,
    /// When each address last had a clamp announced. Only addresses the dialect
    /// accepted get here, so it is bounded by the dialect's namespace.
    clamp_notices: HashMap<String, Instant>,
    pub counters: OscCounters,
}

impl Clients {
    pub fn new(replier: Replier) -> Clients {
        Clients {
            replier,
            subscribers: Subscribers::new(SUBSCRIBER_LIMIT),
            clamp_notices: HashMap::new(),
            counters: OscCounters::default(),
        }
    }

    pub fn reply(&self, to: &Peer, packet: OscPacket) {
        if let Err(e) = self.replier.send(to, &packet) {
            tracing::debug!(%to, error = %e, "cannot send OSC reply");
        }
    }

    /// Answers `/chronus/fail addr reason`, counted as an error, and tells subscribers
    /// (`/chronus/refused addr reason sender`): a sender that never reads replies
    /// (oscsend, most patches) can still be debugged with `chronusctl watch`.
    pub fn fail(&mut self, to: &Peer, addr: &str, reason: &str) {
        self.counters.errors += 1;
        self.reply(to, chronus_osc::fail(addr, reason));
        self.broadcast(chronus_osc::message(
            chronus_osc::REFUSED_ADDR,
            vec![
                OscType::String(addr.to_owned()),
                OscType::String(reason.to_owned()),
                OscType::String(to.addr().to_string()),
            ],
        ));
    }

    /// A number `from` sent to `addr` was clamped into range: counted, and told to
    /// subscribers as `/chronus/clamped addr sent used sender`, at most once a second
    /// per address.
    pub fn clamped(&mut self, from: &Peer, addr: &str, clamp: Clamp, now: Instant) {
        self.counters.clamped += 1;
        if self.subscribers.is_empty() {
            return;
        }
        if let Some(last) = self.clamp_notices.get(addr)
            && now.duration_since(*last) < CLAMP_NOTICE_EVERY
        {
            return;
        }
        self.clamp_notices.insert(addr.to_owned(), now);
        self.broadcast(chronus_osc::message(
            chronus_osc::CLAMPED_ADDR,
            vec![
                OscType::String(addr.to_owned()),
                OscType::Float(clamp.sent as f32),
                OscType::Float(clamp.used),
                OscType::String(from.addr().to_string()),
            ],
        ));
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
