//! The daemon's UDP control endpoint.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use rosc::OscPacket;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::decode::{Limits, decode};
use crate::encode;
use crate::incoming::{Gate, Incoming, Peer, deliver};

/// How long the receiver thread blocks before looking at the shutdown flag: a
/// backstop, since [`UdpEndpoint::shutdown`] wakes it at once; an idle daemon's
/// receiver wakes once a second.
const WAKE_INTERVAL: Duration = Duration::from_secs(1);
/// How often a receiver held up by a full channel looks at the shutdown flag.
const DELIVER_WAKE_INTERVAL: Duration = Duration::from_millis(100);
/// Larger than any UDP payload, so a received length is always the datagram's real length.
const MAX_DATAGRAM: usize = 65536;
/// The longest a reply may wait for room in the socket's send buffer.
const SEND_TIMEOUT: Duration = Duration::from_millis(5);

/// A bound UDP socket with a receiver thread; replies go out from the same socket, so
/// they come from the address clients sent to.
#[derive(Debug)]
pub struct UdpEndpoint {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    /// The socket's inode, which identifies its row in /proc/net/udp{,6}.
    inode: Option<u64>,
}

impl UdpEndpoint {
    /// Binds `addr` with a receive buffer (SO_RCVBUF) of `recv_buffer_bytes`.
    ///
    /// The kernel doubles the request and caps it at `net.core.rmem_max`; see
    /// [`UdpEndpoint::recv_buffer_size`] for what was granted.
    pub fn bind(addr: SocketAddr, recv_buffer_bytes: usize) -> io::Result<UdpEndpoint> {
        // socket2 opens the socket close-on-exec, so re-executed workers do not inherit it.
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        // Sized before bind, so no datagram is ever queued against the default buffer.
        socket.set_recv_buffer_size(recv_buffer_bytes)?;
        socket.bind(&addr.into())?;
        let socket = UdpSocket::from(socket);
        socket.set_read_timeout(Some(WAKE_INTERVAL))?;
        // A reply must never hold up the daemon's loop for long.
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        let local = socket.local_addr()?;
        let inode = std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
            .map(|meta| meta.ino())
            .ok();
        Ok(UdpEndpoint {
            socket: Arc::new(socket),
            local,
            stop: Arc::new(AtomicBool::new(false)),
            inode,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The receive buffer the kernel actually granted, in bytes.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(&self.socket).recv_buffer_size()
    }

    /// Spawns the receiver thread: it decodes each datagram with `limits` and sends an
    /// [`Incoming`] on `tx`.
    ///
    /// It returns at once after [`UdpEndpoint::shutdown`], and when it finds
    /// `tx` disconnected (noticed at the next datagram). A full bounded channel blocks
    /// it, so an overloaded daemon sheds load in the kernel, where
    /// [`UdpEndpoint::kernel_drops`] counts it.
    pub fn spawn_receiver(
        &self,
        limits: Limits,
        tx: Sender<Incoming>,
    ) -> io::Result<JoinHandle<()>> {
        self.spawn_gated_receiver(limits, crate::open_gate(), tx)
    }

    /// [`UdpEndpoint::spawn_receiver`], dropping the datagrams of senders `gate` refuses.
    pub fn spawn_gated_receiver(
        &self,
        limits: Limits,
        gate: Gate,
        tx: Sender<Incoming>,
    ) -> io::Result<JoinHandle<()>> {
        let socket = Arc::clone(&self.socket);
        let stop = Arc::clone(&self.stop);
        std::thread::Builder::new()
            .name("chronus-osc-udp".into())
            .spawn(move || receive_loop(&socket, &stop, &limits, &gate, &tx))
    }

    pub fn send(&self, to: SocketAddr, packet: &OscPacket) -> io::Result<()> {
        send_datagram(&self.socket, to, packet)
    }

    /// The socket, shared with [`crate::Replier`].
    pub(crate) fn socket(&self) -> Arc<UdpSocket> {
        Arc::clone(&self.socket)
    }

    /// Makes receiver threads return at once.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        // Linux wakes a blocked receive when even an unconnected UDP socket is shut
        // down for reading (it answers ENOTCONN, and the receive returns 0); sending
        // is not affected.
        let _ = SockRef::from(&*self.socket).shutdown(std::net::Shutdown::Read);
    }

    /// Datagrams the kernel dropped for this socket, mostly because its receive buffer
    /// was full: the "drops" column of this socket's row in `/proc/net/udp` (or
    /// `/proc/net/udp6`), found by the socket's inode. Reads that file on every call;
    /// 0 where `/proc` is not available.
    pub fn kernel_drops(&self) -> u64 {
        let Some(inode) = self.inode else { return 0 };
        let table = match self.local {
            SocketAddr::V4(_) => "/proc/net/udp",
            SocketAddr::V6(_) => "/proc/net/udp6",
        };
        std::fs::read_to_string(table)
            .ok()
            .and_then(|text| drops_for_inode(&text, inode))
            .unwrap_or(0)
    }
}

impl Drop for UdpEndpoint {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn receive_loop(
    socket: &UdpSocket,
    stop: &AtomicBool,
    limits: &Limits,
    gate: &Gate,
    tx: &Sender<Incoming>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => {
                // Nothing else is expected from a bound UDP socket; pausing keeps a
                // persistent error from spinning a core, and keeps the endpoint alive.
                std::thread::sleep(WAKE_INTERVAL);
                continue;
            }
        };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if !gate(from) {
            continue;
        }
        let incoming = Incoming::new(Peer::Udp(from), decode(&buf[..len], limits), &buf[..len]);
        if !deliver(tx, incoming, stop, DELIVER_WAKE_INTERVAL) {
            return;
        }
    }
}

/// Sends `packet` as one datagram from `socket`.
pub(crate) fn send_datagram(
    socket: &UdpSocket,
    to: SocketAddr,
    packet: &OscPacket,
) -> io::Result<()> {
    let bytes = encode(packet);
    let sent = socket.send_to(&bytes, to)?;
    if sent != bytes.len() {
        return Err(io::Error::other(format!(
            "sent {sent} of {} bytes to {to}",
            bytes.len()
        )));
    }
    Ok(())
}

/// Finds the "drops" column (the last) of the row whose inode column (the tenth) is `inode`.
fn drops_for_inode(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let row_inode: u64 = fields.get(9)?.parse().ok()?;
        if row_inode != inode {
            return None;
        }
        fields.last()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::drops_for_inode;

    const TABLE: &str = "\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:138D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0
  456: 0100007F:9C40 00000000:0000 07 00000000:00001200 00:00000000 00000000     0        0 5151 2 0000000000000000 17
";

    #[test]
    fn drops_are_read_from_the_row_with_the_sockets_inode() {
        assert_eq!(drops_for_inode(TABLE, 5151), Some(17));
        assert_eq!(drops_for_inode(TABLE, 4242), Some(0));
        assert_eq!(drops_for_inode(TABLE, 999), None);
    }
}
