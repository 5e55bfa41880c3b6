//! The peers that asked for events (`/chronus/notify 1`), each holding a lease.
//!
//! A subscription lasts [`SUBSCRIPTION_LEASE`] from its last `/chronus/notify 1`: a
//! subscriber renews it by sending that again (`chronusctl watch` does every 20 s), and
//! one that stops is forgotten, so subscriptions from throwaway sockets cannot hold the
//! places for good. Places are shared fairly between IP addresses (on loopback too: the
//! throwaway sockets of one program differ only by port): one address holds at most
//! [`SUBSCRIPTIONS_PER_ADDRESS`], and when every place is taken a newcomer takes the place
//! of the least recently renewed subscription of the address holding the most, if that
//! address holds at least two more than the newcomer's.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rosc::OscPacket;

use crate::incoming::Peer;
use crate::replier::Replier;

/// How long a subscription lasts without being renewed.
pub const SUBSCRIPTION_LEASE: Duration = Duration::from_secs(60);
/// Most subscriptions one IP address holds at once.
pub const SUBSCRIPTIONS_PER_ADDRESS: usize = 4;

/// A bounded set of peers, without duplicates, in subscription order.
#[derive(Clone, Debug)]
pub struct Subscribers {
    subscriptions: Vec<Subscription>,
    capacity: usize,
    refused: u64,
    evicted: u64,
    expired: u64,
}

#[derive(Clone, Copy, Debug)]
struct Subscription {
    peer: Peer,
    /// The address the subscription counts against (IPv4-mapped IPv6 as IPv4).
    ip: IpAddr,
    renewed: Instant,
}

/// What a successful [`Subscribers::subscribe`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscribed {
    /// A new subscription in a free place.
    Added,
    /// The peer was subscribed: its lease starts again.
    Renewed,
    /// A new subscription in the place of this peer's, which ended to make room.
    Displaced(Peer),
}

/// Why a peer could not subscribe.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SubscribersFull {
    #[error(
        "too many subscriptions from {ip}: at most {per_address} at once from one address; \
         a subscription not renewed within {} s ends",
        SUBSCRIPTION_LEASE.as_secs()
    )]
    PerAddress { ip: IpAddr, per_address: usize },
    #[error(
        "all {capacity} subscriptions are taken, and no address holds two more than {ip} \
         does: try again later"
    )]
    Full { ip: IpAddr, capacity: usize },
}

/// What one [`Subscribers::broadcast`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Broadcast {
    /// Peers the packet was sent (or queued) to.
    pub sent: usize,
    /// Peers it could not be sent to this time (not reading, send buffer full).
    pub dropped: usize,
    /// Peers removed because they are gone (their TCP connection closed).
    pub removed: usize,
}

impl Subscribers {
    /// At most `capacity` subscriptions, [`SUBSCRIPTIONS_PER_ADDRESS`] from one address.
    pub fn new(capacity: usize) -> Subscribers {
        Subscribers {
            subscriptions: Vec::new(),
            capacity,
            refused: 0,
            evicted: 0,
            expired: 0,
        }
    }

    /// Subscribes `peer`, or renews its subscription, at `now`; leases that ended by
    /// then are expired first. Refusals and evictions are counted.
    pub fn subscribe(&mut self, peer: Peer, now: Instant) -> Result<Subscribed, SubscribersFull> {
        self.expire(now);
        if let Some(held) = self.subscriptions.iter_mut().find(|s| s.peer == peer) {
            held.renewed = now;
            return Ok(Subscribed::Renewed);
        }
        let ip = peer.addr().ip().to_canonical();
        let held = self.subscriptions.iter().filter(|s| s.ip == ip).count();
        if held >= SUBSCRIPTIONS_PER_ADDRESS {
            self.refused += 1;
            return Err(SubscribersFull::PerAddress {
                ip,
                per_address: SUBSCRIPTIONS_PER_ADDRESS,
            });
        }
        let mut outcome = Subscribed::Added;
        if self.subscriptions.len() >= self.capacity {
            let Some(displaced) = self.make_room(held) else {
                self.refused += 1;
                return Err(SubscribersFull::Full {
                    ip,
                    capacity: self.capacity,
                });
            };
            self.evicted += 1;
            outcome = Subscribed::Displaced(displaced);
        }
        self.subscriptions.push(Subscription {
            peer,
            ip,
            renewed: now,
        });
        Ok(outcome)
    }

    /// For a newcomer whose address holds `held`: removes the least recently renewed
    /// subscription of the address holding the most, if that is at least two more (so
    /// two addresses never take a place back and forth), and returns its peer.
    fn make_room(&mut self, held: usize) -> Option<Peer> {
        let count = |ip: IpAddr| self.subscriptions.iter().filter(|s| s.ip == ip).count();
        let most = self.subscriptions.iter().map(|s| count(s.ip)).max()?;
        if most < held + 2 {
            return None;
        }
        let index = self
            .subscriptions
            .iter()
            .enumerate()
            .filter(|(_, s)| count(s.ip) == most)
            .min_by_key(|(_, s)| s.renewed)
            .map(|(i, _)| i)?;
        Some(self.subscriptions.remove(index).peer)
    }

    /// Ends the subscriptions not renewed within [`SUBSCRIPTION_LEASE`] of `now`, and
    /// returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.subscriptions.len();
        self.subscriptions
            .retain(|s| now.saturating_duration_since(s.renewed) < SUBSCRIPTION_LEASE);
        let expired = before - self.subscriptions.len();
        self.expired += expired as u64;
        expired
    }

    /// Removes `peer`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, peer: &Peer) -> bool {
        let before = self.subscriptions.len();
        self.subscriptions.retain(|s| s.peer != *peer);
        self.subscriptions.len() != before
    }

    pub fn contains(&self, peer: &Peer) -> bool {
        self.subscriptions.iter().any(|s| s.peer == *peer)
    }

    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.subscriptions.iter().map(|s| &s.peer)
    }

    /// Subscriptions refused: their address held its share, or no place could be made.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Subscriptions ended to make room for one from an address holding fewer.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Subscriptions ended because they were not renewed within [`SUBSCRIPTION_LEASE`].
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// Sends `packet` to every subscriber without blocking, and forgets the ones that
    /// are gone.
    pub fn broadcast(&mut self, replier: &Replier, packet: &OscPacket) -> Broadcast {
        let mut outcome = Broadcast::default();
        self.subscriptions.retain(
            |s| match replier.send(&s.peer, packet).map_err(|e| e.kind()) {
                Ok(()) => {
                    outcome.sent += 1;
                    true
                }
                Err(io::ErrorKind::NotConnected | io::ErrorKind::ConnectionRefused) => {
                    outcome.removed += 1;
                    false
                }
                Err(_) => {
                    outcome.dropped += 1;
                    true
                }
            },
        );
        outcome
    }

    /// Forgets peers whose TCP connection has closed.
    pub fn remove_unreachable(&mut self, replier: &Replier) -> usize {
        let before = self.subscriptions.len();
        self.subscriptions.retain(|s| replier.is_reachable(&s.peer));
        before - self.subscriptions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn udp(addr: &str) -> Peer {
        Peer::Udp(addr.parse().unwrap())
    }

    /// `count` peers on `ip`, on ports from 40000.
    fn peers(ip: &str, count: u16) -> Vec<Peer> {
        (0..count)
            .map(|i| Peer::Udp(SocketAddr::new(ip.parse().unwrap(), 40000 + i)))
            .collect()
    }

    #[test]
    fn throwaway_sockets_of_one_address_get_its_share_and_no_more() {
        let mut subscribers = Subscribers::new(64);
        let t0 = Instant::now();
        let hostile = peers("127.0.0.2", 80);
        let outcomes: Vec<_> = hostile
            .iter()
            .map(|p| subscribers.subscribe(*p, t0))
            .collect();
        assert!(outcomes[..4].iter().all(|o| *o == Ok(Subscribed::Added)));
        assert!(
            outcomes[4..]
                .iter()
                .all(|o| matches!(o, Err(SubscribersFull::PerAddress { per_address: 4, .. })))
        );
        assert_eq!(subscribers.len(), 4);
        assert_eq!(subscribers.refused(), 76);
        assert_eq!(
            subscribers.subscribe(udp("127.0.0.1:5000"), t0),
            Ok(Subscribed::Added),
            "another address still subscribes"
        );
        let error = subscribers.subscribe(hostile[79], t0).unwrap_err();
        assert_eq!(
            error.to_string(),
            "too many subscriptions from 127.0.0.2: at most 4 at once from one address; \
             a subscription not renewed within 60 s ends"
        );
        assert_eq!(
            subscribers.subscribe(udp("[::ffff:127.0.0.2]:6000"), t0),
            Err(SubscribersFull::PerAddress {
                ip: "127.0.0.2".parse().unwrap(),
                per_address: 4
            }),
            "an IPv4-mapped address is the IPv4 address"
        );
    }

    #[test]
    fn a_lease_not_renewed_expires_and_a_renewed_one_does_not() {
        let mut subscribers = Subscribers::new(64);
        let t0 = Instant::now();
        let (renewing, silent) = (udp("127.0.0.1:5000"), udp("127.0.0.1:5001"));
        assert_eq!(subscribers.subscribe(renewing, t0), Ok(Subscribed::Added));
        assert_eq!(subscribers.subscribe(silent, t0), Ok(Subscribed::Added));
        let t20 = t0 + Duration::from_secs(20);
        assert_eq!(
            subscribers.subscribe(renewing, t20),
            Ok(Subscribed::Renewed)
        );
        assert_eq!(
            subscribers.expire(t0 + SUBSCRIPTION_LEASE - Duration::from_millis(1)),
            0
        );
        assert_eq!(subscribers.expire(t0 + SUBSCRIPTION_LEASE), 1);
        assert!(!subscribers.contains(&silent));
        assert!(subscribers.contains(&renewing));
        assert_eq!(subscribers.expired(), 1);
        assert_eq!(subscribers.expire(t20 + SUBSCRIPTION_LEASE), 1);
        assert!(subscribers.is_empty());
        assert_eq!(subscribers.expired(), 2);
    }

    #[test]
    fn expired_leases_free_their_address_share_for_new_subscribers() {
        let mut subscribers = Subscribers::new(64);
        let t0 = Instant::now();
        for peer in peers("127.0.0.2", 4) {
            subscribers.subscribe(peer, t0).unwrap();
        }
        let newcomer = udp("127.0.0.2:7000");
        assert!(subscribers.subscribe(newcomer, t0).is_err());
        assert_eq!(
            subscribers.subscribe(newcomer, t0 + SUBSCRIPTION_LEASE),
            Ok(Subscribed::Added)
        );
        assert_eq!(subscribers.len(), 1);
        assert_eq!(subscribers.expired(), 4);
    }

    #[test]
    fn a_full_table_makes_room_from_the_address_holding_the_most() {
        let mut subscribers = Subscribers::new(6);
        let t0 = Instant::now();
        let many = peers("10.0.0.1", 4);
        for (i, peer) in many.iter().enumerate() {
            let renewed = t0 + Duration::from_secs(i as u64);
            subscribers.subscribe(*peer, renewed).unwrap();
        }
        // The first of them renews, so the second is now the least recently renewed.
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(subscribers.subscribe(many[0], t10), Ok(Subscribed::Renewed));
        for peer in peers("10.0.0.2", 2) {
            subscribers.subscribe(peer, t10).unwrap();
        }
        assert_eq!(subscribers.len(), 6);
        assert_eq!(
            subscribers.subscribe(udp("10.0.0.3:1"), t10),
            Ok(Subscribed::Displaced(many[1]))
        );
        assert!(!subscribers.contains(&many[1]));
        assert_eq!(subscribers.evicted(), 1);
        // Now 10.0.0.1 holds 3, 10.0.0.2 holds 2, 10.0.0.3 holds 1: a second newcomer
        // from 10.0.0.3 takes from 10.0.0.1, then nobody holds two more than it does.
        assert_eq!(
            subscribers.subscribe(udp("10.0.0.3:2"), t10),
            Ok(Subscribed::Displaced(many[2]))
        );
        assert_eq!(
            subscribers.subscribe(udp("10.0.0.3:3"), t10),
            Err(SubscribersFull::Full {
                ip: "10.0.0.3".parse().unwrap(),
                capacity: 6
            })
        );
        // A newcomer from an address holding none takes from one holding two.
        assert_eq!(
            subscribers.subscribe(udp("10.0.0.4:1"), t10),
            Ok(Subscribed::Displaced(many[3]))
        );
        assert_eq!(subscribers.refused(), 1);
        assert_eq!(subscribers.evicted(), 3);
    }
}
