//! The peers that asked for events (`/chronus/notify 1`).

use std::io;

use rosc::OscPacket;

use crate::incoming::Peer;
use crate::replier::Replier;

/// A bounded set of peers, without duplicates, in subscription order.
#[derive(Clone, Debug)]
pub struct Subscribers {
    peers: Vec<Peer>,
    capacity: usize,
}

/// The set already holds its capacity of peers.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("too many subscribers: at most {capacity}")]
pub struct SubscribersFull {
    pub capacity: usize,
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
    pub fn new(capacity: usize) -> Subscribers {
        Subscribers {
            peers: Vec::new(),
            capacity,
        }
    }

    /// Adds `peer`; `Ok(false)` if it was already subscribed.
    pub fn subscribe(&mut self, peer: Peer) -> Result<bool, SubscribersFull> {
        if self.peers.contains(&peer) {
            return Ok(false);
        }
        if self.peers.len() >= self.capacity {
            return Err(SubscribersFull {
                capacity: self.capacity,
            });
        }
        self.peers.push(peer);
        Ok(true)
    }

    /// Removes `peer`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, peer: &Peer) -> bool {
        let before = self.peers.len();
        self.peers.retain(|p| p != peer);
        self.peers.len() != before
    }

    pub fn contains(&self, peer: &Peer) -> bool {
        self.peers.contains(peer)
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter()
    }

    /// Sends `packet` to every subscriber without blocking, and forgets the ones that
    /// are gone.
    pub fn broadcast(&mut self, replier: &Replier, packet: &OscPacket) -> Broadcast {
        let mut outcome = Broadcast::default();
        self.peers.retain(
            |peer| match replier.send(peer, packet).map_err(|e| e.kind()) {
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
        let before = self.peers.len();
        self.peers.retain(|peer| replier.is_reachable(peer));
        before - self.peers.len()
    }
}
