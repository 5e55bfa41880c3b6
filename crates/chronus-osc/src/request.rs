//! Request/reply over UDP or TCP, for `chronusctl` and tests.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use rosc::{OscMessage, OscPacket, OscType};

use crate::decode::{DecodeError, Limits, decode};
use crate::encode;
use crate::frame::{Framing, StreamDecoder};
use crate::reply::FAIL_ADDR;

/// Largest reply read: a UDP datagram, or one TCP frame.
const MAX_REPLY: usize = 65536;

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
    #[error("{target} closed the connection")]
    Closed { target: SocketAddr },
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
    Client::connect(target, Transport::Udp, timeout)?.request(packet, reply_addr, timeout)
}

/// How a [`Client`] reaches the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// A TCP connection using this stream framing.
    Tcp(Framing),
}

/// A client connection to an OSC server over UDP (a connected socket) or TCP, for
/// `chronusctl` and tests: send packets, read the messages that come back.
#[derive(Debug)]
pub struct Client {
    target: SocketAddr,
    conn: Conn,
    /// Messages received and not yet handed out (a bundle or a read may carry several).
    pending: VecDeque<OscMessage>,
    buf: Vec<u8>,
}

#[derive(Debug)]
enum Conn {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        framing: Framing,
        decoder: StreamDecoder,
    },
}

impl Client {
    /// Opens a UDP socket connected to `target`, or a TCP connection to it (within
    /// `timeout`).
    pub fn connect(
        target: SocketAddr,
        transport: Transport,
        timeout: Duration,
    ) -> Result<Client, RequestError> {
        let conn = match transport {
            Transport::Udp => {
                let local: SocketAddr = match target {
                    SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                    SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                let socket = UdpSocket::bind(local)
                    .map_err(|e| io_error(target, "binding a socket to reach", e))?;
                socket
                    .connect(target)
                    .map_err(|e| io_error(target, "connecting to", e))?;
                Conn::Udp(socket)
            }
            Transport::Tcp(framing) => {
                let stream =
                    TcpStream::connect_timeout(&target, timeout).map_err(|e| match e.kind() {
                        io::ErrorKind::ConnectionRefused => RequestError::Refused { target },
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                            RequestError::Timeout { target, timeout }
                        }
                        _ => io_error(target, "connecting to", e),
                    })?;
                stream
                    .set_nodelay(true)
                    .map_err(|e| io_error(target, "connecting to", e))?;
                Conn::Tcp {
                    stream,
                    framing,
                    decoder: StreamDecoder::with_framing(framing, MAX_REPLY),
                }
            }
        };
        Ok(Client {
            target,
            conn,
            pending: VecDeque::new(),
            buf: vec![0u8; MAX_REPLY],
        })
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Sends one packet (a datagram, or one frame on the TCP stream).
    pub fn send(&mut self, packet: &OscPacket) -> Result<(), RequestError> {
        let target = self.target;
        let result = match &mut self.conn {
            Conn::Udp(socket) => socket.send(&encode(packet)).map(drop),
            Conn::Tcp {
                stream, framing, ..
            } => stream.write_all(&framing.encode(packet)),
        };
        result.map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => RequestError::Refused { target },
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => RequestError::Closed { target },
            _ => io_error(target, "sending to", e),
        })
    }

    /// The next message received (bundles are flattened), or `None` once `deadline`
    /// passes without one.
    pub fn recv(&mut self, deadline: Instant) -> Result<Option<OscMessage>, RequestError> {
        let target = self.target;
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Ok(Some(message));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(None);
            }
            let read = match &mut self.conn {
                Conn::Udp(socket) => socket
                    .set_read_timeout(Some(remaining))
                    .and_then(|()| socket.recv(&mut self.buf)),
                Conn::Tcp { stream, .. } => stream
                    .set_read_timeout(Some(remaining))
                    .and_then(|()| stream.read(&mut self.buf)),
            };
            let len = match read {
                Ok(len) => len,
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::ConnectionRefused => {
                        return Err(RequestError::Refused { target });
                    }
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                        return Err(RequestError::Closed { target });
                    }
                    _ => return Err(io_error(target, "receiving from", e)),
                },
            };
            let malformed = |error| RequestError::Malformed { target, error };
            match &mut self.conn {
                Conn::Udp(_) => {
                    let packet = decode(&self.buf[..len], &Limits::default()).map_err(malformed)?;
                    self.pending.extend(messages(packet));
                }
                Conn::Tcp { decoder, .. } => {
                    if len == 0 {
                        return Err(RequestError::Closed { target });
                    }
                    decoder.push(&self.buf[..len]);
                    while let Some(frame) = decoder.next_frame() {
                        let frame = frame.map_err(|e| malformed(e.into()))?;
                        let packet = decode(&frame, &Limits::default()).map_err(malformed)?;
                        self.pending.extend(messages(packet));
                    }
                }
            }
        }
    }

    /// Waits up to `timeout` for a message `wanted` accepts, skipping others; a
    /// `/chronus/fail` ends the wait as [`RequestError::Rejected`].
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut wanted: impl FnMut(&OscMessage) -> bool,
    ) -> Result<OscMessage, RequestError> {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(message) = self.recv(deadline)? else {
                return Err(RequestError::Timeout {
                    target: self.target,
                    timeout,
                });
            };
            if wanted(&message) {
                return Ok(message);
            }
            if message.addr == FAIL_ADDR {
                return Err(rejection(self.target, message));
            }
        }
    }

    /// Sends `packet` and waits up to `timeout` for a message addressed `reply_addr`.
    pub fn request(
        &mut self,
        packet: &OscPacket,
        reply_addr: &str,
        timeout: Duration,
    ) -> Result<OscMessage, RequestError> {
        self.send(packet)?;
        self.wait_for(timeout, |m| m.addr == reply_addr)
    }
}

fn io_error(target: SocketAddr, action: &'static str, source: io::Error) -> RequestError {
    RequestError::Io {
        action,
        target,
        source,
    }
}

/// The messages of a packet in order, bundles flattened (without recursion).
pub fn messages(packet: OscPacket) -> Vec<OscMessage> {
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
