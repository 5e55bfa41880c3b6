//! Sending replies and events to any [`Peer`], whichever endpoint it came in on.

use std::io;
use std::net::UdpSocket;
use std::sync::Arc;

use rosc::OscPacket;

use crate::incoming::Peer;
use crate::tcp::{TcpEndpoint, TcpShared};
use crate::udp::{UdpEndpoint, send_datagram};

/// Sends packets to peers over the endpoint they belong to. Cheap to clone, `Send` and
/// `Sync`; it never blocks for more than a few milliseconds (UDP: a 5 ms send timeout;
/// TCP: a non-blocking push onto the connection's bounded reply queue).
#[derive(Clone, Debug, Default)]
pub struct Replier {
    udp: Option<Arc<UdpSocket>>,
    tcp: Option<Arc<TcpShared>>,
}

impl Replier {
    /// A replier that can reach no peer yet; add endpoints with `with_udp`/`with_tcp`.
    pub fn new() -> Replier {
        Replier::default()
    }

    /// Replies to [`Peer::Udp`] go out from this endpoint's socket.
    pub fn with_udp(mut self, endpoint: &UdpEndpoint) -> Replier {
        self.udp = Some(endpoint.socket());
        self
    }

    /// Replies to [`Peer::Tcp`] go to this endpoint's connections.
    pub fn with_tcp(mut self, endpoint: &TcpEndpoint) -> Replier {
        self.tcp = Some(endpoint.shared());
        self
    }

    /// Sends `packet` to `peer`: a datagram, or one frame on its TCP connection in the
    /// framing the client uses.
    ///
    /// Errors: `NotConnected` when the TCP connection has closed (a subscriber to forget),
    /// `WouldBlock` when the packet was dropped because the peer is not reading (counted
    /// by [`TcpEndpoint::dropped_replies`] for TCP; a full UDP send buffer after 5 ms),
    /// `Unsupported` when this replier has no endpoint of the peer's kind.
    pub fn send(&self, peer: &Peer, packet: &OscPacket) -> io::Result<()> {
        match *peer {
            Peer::Udp(addr) => match &self.udp {
                Some(socket) => send_datagram(socket, addr, packet),
                None => Err(unsupported("UDP")),
            },
            Peer::Tcp { id, .. } => match &self.tcp {
                Some(shared) => shared.send(id, packet),
                None => Err(unsupported("TCP")),
            },
        }
    }

    /// Whether `peer` can still be reached: its TCP connection is open (UDP peers always
    /// count as reachable, as UDP cannot tell).
    pub fn is_reachable(&self, peer: &Peer) -> bool {
        match *peer {
            Peer::Udp(_) => self.udp.is_some(),
            Peer::Tcp { id, .. } => self.tcp.as_ref().is_some_and(|t| t.is_open(id)),
        }
    }
}

fn unsupported(kind: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("this replier has no {kind} endpoint"),
    )
}
