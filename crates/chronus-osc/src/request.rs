//! One-shot request/reply over UDP, for `chronusctl` and tests.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rosc::{OscMessage, OscPacket, OscType};

use crate::decode::{DecodeError, Limits, decode};
use crate::encode;
use crate::reply::FAIL_ADDR;

/// Why [`request`] got no usable reply.
#[derive(thiserror::Error, Debug)]
pub enum RequestError {
    #[error("no reply from {target} within {} ms", timeout.as_millis())]
    Timeout {
        target: SocketAddr,
        timeout: Duration,
    },
    #[error("{target} refused the request: nothing listens on that port")]
    Refused { target: SocketAddr },
    #[error("malformed reply from {target}: {error}")]
    Malformed {
        target: SocketAddr,
        error: DecodeError,
    },
    #[error("{target} rejected {address}: {reason}")]
    Rejected {
        target: SocketAddr,
        address: String,
        reason: String,
    },
    #[error("{action} {target}: {source}")]
    Io {
        action: &'static str,
        target: SocketAddr,
        source: io::Error,
    },
}

/// Sends `packet` to `target` from a fresh socket and waits up to `timeout` for a
/// message addressed `reply_addr` (also looked for inside bundles).
///
/// The socket is connected to `target`, so only its datagrams are read and a closed
/// port is reported at once as [`RequestError::Refused`]. A `/chronus/fail` reply ends
/// the wait as [`RequestError::Rejected`]; other well-formed messages are ignored.
pub fn request(
    target: SocketAddr,
    packet: &OscPacket,
    reply_addr: &str,
    timeout: Duration,
) -> Result<OscMessage, RequestError> {
    let io_error = |action| {
        move |source| RequestError::Io {
            action,
            target,
            source,
        }
    };
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).map_err(io_error("binding a socket to reach"))?;
    socket.connect(target).map_err(io_error("connecting to"))?;
    socket
        .send(&encode(packet))
        .map_err(io_error("sending to"))?;

    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(RequestError::Timeout { target, timeout });
        }
        socket
            .set_read_timeout(Some(remaining))
            .map_err(io_error("setting a timeout for"))?;
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => {
                    continue;
                }
                io::ErrorKind::ConnectionRefused => return Err(RequestError::Refused { target }),
                _ => return Err(io_error("receiving from")(e)),
            },
        };
        let reply = decode(&buf[..len], &Limits::default())
            .map_err(|error| RequestError::Malformed { target, error })?;
        for message in messages(reply) {
            if message.addr == reply_addr {
                return Ok(message);
            }
            if message.addr == FAIL_ADDR {
                return Err(rejection(target, message));
            }
        }
    }
}

/// The messages of a packet in order, bundles flattened.
fn messages(packet: OscPacket) -> Vec<OscMessage> {
    let mut pending = vec![packet];
    let mut found = Vec::new();
    while let Some(packet) = pending.pop() {
        match packet {
            OscPacket::Message(message) => found.push(message),
            OscPacket::Bundle(bundle) => pending.extend(bundle.content.into_iter().rev()),
        }
    }
    found
}

fn rejection(target: SocketAddr, fail: OscMessage) -> RequestError {
    match fail.args.as_slice() {
        [OscType::String(address), OscType::String(reason), ..] => RequestError::Rejected {
            target,
            address: address.clone(),
            reason: reason.clone(),
        },
        // Still a refusal, just not in the documented shape: pass on what it said.
        _ => RequestError::Rejected {
            target,
            address: String::new(),
            reason: fail.to_string(),
        },
    }
}
