//! What the endpoints hand to the daemon: a decoded packet and who to answer.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};
use rosc::OscPacket;

use crate::decode::{DecodeError, leading_address};

/// Where a packet came from, and so where its replies go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A UDP sender: replies go to this address from the endpoint's socket.
    Udp(SocketAddr),
    /// A TCP connection: replies go back on it, in the framing it uses. `id` is unique
    /// for the life of the endpoint, so a reconnecting client is a new peer.
    Tcp { id: u64, addr: SocketAddr },
}

impl Peer {
    /// The remote address.
    pub fn addr(&self) -> SocketAddr {
        match *self {
            Peer::Udp(addr) | Peer::Tcp { addr, .. } => addr,
        }
    }

    pub fn is_tcp(&self) -> bool {
        matches!(self, Peer::Tcp { .. })
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Udp(addr) => write!(f, "udp:{addr}"),
            Peer::Tcp { id, addr } => write!(f, "tcp#{id}:{addr}"),
        }
    }
}

/// One received packet (a UDP datagram or one TCP frame), handed to the daemon's event loop.
#[derive(Debug)]
pub struct Incoming {
    /// The sender's address; the same as `peer.addr()`.
    pub from: SocketAddr,
    /// Who to reply to, with [`crate::Replier::send`].
    pub peer: Peer,
    pub received: Instant,
    /// The decoded packet, or why it was rejected (the sender deserves a `/chronus/fail`).
    pub packet: Result<OscPacket, DecodeError>,
    /// Size of the datagram or frame in bytes (for a TCP frame, without its framing).
    pub len: usize,
    /// For a rejected packet, the address it starts with if that could be read (see
    /// [`crate::leading_address`]); `None` for a decoded one.
    pub address: Option<String>,
}

impl Incoming {
    /// `bytes` is what `packet` was decoded from.
    pub(crate) fn new(peer: Peer, packet: Result<OscPacket, DecodeError>, bytes: &[u8]) -> Self {
        let address = match packet {
            Ok(_) => None,
            Err(_) => leading_address(bytes).map(str::to_owned),
        };
        Incoming {
            from: peer.addr(),
            peer,
            received: Instant::now(),
            packet,
            len: bytes.len(),
            address,
        }
    }
}

/// Hands `incoming` to the daemon, waiting while the channel is full. Returns false when
/// the receiver is gone or `stop` was set, and the calling thread should end.
pub(crate) fn deliver(
    tx: &Sender<Incoming>,
    mut incoming: Incoming,
    stop: &AtomicBool,
    wake: Duration,
) -> bool {
    loop {
        match tx.send_timeout(incoming, wake) {
            Ok(()) => return true,
            Err(SendTimeoutError::Disconnected(_)) => return false,
            Err(SendTimeoutError::Timeout(unsent)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                incoming = unsent;
            }
        }
    }
}

/// Decides, on the receiving thread and before anything is decoded or queued for the
/// daemon, whether a packet from the sender at this address (and port: on one machine,
/// each program has its own) goes any further: a sender refused here cannot fill the
/// channel every other sender shares.
pub type Gate = std::sync::Arc<dyn Fn(SocketAddr) -> bool + Send + Sync>;

/// A gate that admits every sender.
pub fn open_gate() -> Gate {
    std::sync::Arc::new(|_| true)
}
