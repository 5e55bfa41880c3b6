//! The daemon's TCP control endpoint: OSC 1.0 length-prefixed and OSC 1.1 SLIP streams.
//!
//! Threads: one acceptor; per connection, a reader (reassembles and decodes frames, hands
//! them to the daemon) and a writer (drains that connection's bounded reply queue). The
//! daemon only ever queues replies with a non-blocking `try_send`, so a client that never
//! reads cannot hold up its loop: once its queue is full, replies to it are dropped and
//! counted, and a connection whose writes stall for 10 s is closed.
//!
//! Connections are shared fairly between client addresses (see [`ConnectionLimits`]):
//! one address may hold only a few, a connection that sends no complete frame for a
//! while is closed, and when every place is taken a newcomer from an address holding
//! fewer takes the place of the longest-idle connection of the address holding the most.
//! A refused or closed connection is sent a `/chronus/fail` naming [`CONNECTION_ADDR`]
//! first, and every refusal and closing is counted by its cause.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rosc::OscPacket;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::decode::{DecodeError, Limits, decode};
use crate::encode;
use crate::frame::{Framing, StreamDecoder};
use crate::incoming::{Gate, Incoming, Peer, deliver};
use crate::reply::{CONNECTION_ADDR, fail};

/// Connections served at once unless [`ConnectionLimits`] say otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Connections served at once from one address unless [`ConnectionLimits`] say otherwise.
pub const DEFAULT_CONNECTIONS_PER_ADDRESS: usize = 8;
/// How long a connection may go without sending a complete frame, unless
/// [`ConnectionLimits`] say otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Replies queued per connection before further ones are dropped.
pub const REPLY_QUEUE_FRAMES: usize = 256;
/// How long connection threads block before looking at the shutdown flag and their
/// idle time.
const WAKE_INTERVAL: Duration = Duration::from_millis(100);
/// How long the acceptor blocks; [`TcpEndpoint::shutdown`] wakes it at once.
const ACCEPT_WAKE_INTERVAL: Duration = Duration::from_secs(1);
/// A connection whose writes stall this long is closed: its client stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the client's end of the stream (or a broken frame), replies to what it sent
/// still go out for this long before the connection is closed.
const LINGER: Duration = Duration::from_millis(250);
const READ_CHUNK: usize = 65536;
const THREAD_STACK: usize = 256 * 1024;
/// Most bytes a refused connection's early requests are read (and dropped) before it is
/// closed: a close with unread data resets the connection, which could discard the
/// `/chronus/fail` before the client reads it.
const REFUSED_DRAIN: usize = 65536;

/// How many connections a [`TcpEndpoint`] serves, and for how long.
///
/// Connections are counted per IP address, on loopback too: every connection has a
/// port of its own, so the port cannot tell one program from another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once from every address together.
    pub max_connections: usize,
    /// Connections served at once from one address; more are refused.
    pub per_address: usize,
    /// A connection that sends no complete frame for this long is closed. Frames the
    /// sender gate refuses do not count: they never reach the daemon.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            per_address: DEFAULT_CONNECTIONS_PER_ADDRESS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// A listening TCP socket; see the module documentation for its threads.
#[derive(Debug)]
pub struct TcpEndpoint {
    listener: TcpListener,
    local: SocketAddr,
    shared: Arc<TcpShared>,
}

/// State shared by the endpoint, its threads and every [`crate::Replier`].
#[derive(Debug)]
pub(crate) struct TcpShared {
    stop: AtomicBool,
    limits: ConnectionLimits,
    /// What connections' activity times are measured from.
    epoch: Instant,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    accepted: AtomicU64,
    refused_per_address: AtomicU64,
    refused_full: AtomicU64,
    /// Refused because no thread could be started or the endpoint was shutting down.
    refused_unserved: AtomicU64,
    evicted: AtomicU64,
    idle_closed: AtomicU64,
    dropped_replies: AtomicU64,
}

#[derive(Debug)]
struct Connection {
    addr: SocketAddr,
    /// The address connections are counted against (IPv4-mapped IPv6 as IPv4).
    ip: IpAddr,
    /// Kept to shut the socket down from other threads.
    stream: TcpStream,
    /// Told by the first byte the client sent; replies use the same framing.
    framing: OnceLock<Framing>,
    replies: Sender<Vec<u8>>,
    /// When the last complete frame the gate admitted arrived (or the connection was
    /// accepted), in microseconds since the endpoint's epoch.
    active_us: AtomicU64,
    /// Set when the endpoint closes the connection to make room: its reader stops.
    closing: AtomicBool,
}

/// Why a new connection was not served.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    PerAddress,
    Full,
    Unserved,
}

impl TcpEndpoint {
    /// Binds and listens on `addr` with the default [`ConnectionLimits`].
    pub fn bind(addr: SocketAddr) -> io::Result<TcpEndpoint> {
        TcpEndpoint::bind_with_limits(addr, ConnectionLimits::default())
    }

    /// Binds and listens on `addr`; connections beyond `limits` are sent a
    /// `/chronus/fail` and closed, or close another connection to make room (see the
    /// module documentation), and are counted by cause.
    pub fn bind_with_limits(addr: SocketAddr, limits: ConnectionLimits) -> io::Result<TcpEndpoint> {
        // socket2 opens the socket close-on-exec, so re-executed workers do not inherit it.
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // A restarted daemon can bind again while old connections sit in TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(128)?;
        // On Linux, accept() honours SO_RCVTIMEO: a backstop to the wake at shutdown.
        socket.set_read_timeout(Some(ACCEPT_WAKE_INTERVAL))?;
        let listener = TcpListener::from(socket);
        let local = listener.local_addr()?;
        Ok(TcpEndpoint {
            listener,
            local,
            shared: Arc::new(TcpShared {
                stop: AtomicBool::new(false),
                limits,
                epoch: Instant::now(),
                next_id: AtomicU64::new(1),
                connections: Mutex::new(HashMap::new()),
                accepted: AtomicU64::new(0),
                refused_per_address: AtomicU64::new(0),
                refused_full: AtomicU64::new(0),
                refused_unserved: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
                idle_closed: AtomicU64::new(0),
                dropped_replies: AtomicU64::new(0),
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Spawns the acceptor thread, which spawns a reader and a writer per connection.
    /// Readers decode each frame with `limits` (`limits.max_packet` also caps the frame
    /// size) and send an [`Incoming`] with a [`Peer::Tcp`] on `tx`; a frame that cannot
    /// be taken from the stream arrives as `Err(DecodeError::Frame(..))`, and when that
    /// error is fatal (a broken length prefix) the connection is closed after it.
    ///
    /// A full bounded channel blocks the reader, so TCP flow control slows that client.
    /// Every thread returns within about 100 ms of [`TcpEndpoint::shutdown`]; readers also
    /// return when they find `tx` disconnected.
    pub fn spawn_acceptor(
        &self,
        limits: Limits,
        tx: Sender<Incoming>,
    ) -> io::Result<JoinHandle<()>> {
        self.spawn_gated_acceptor(limits, crate::open_gate(), tx)
    }

    /// [`TcpEndpoint::spawn_acceptor`], dropping the frames of senders `gate` refuses.
    pub fn spawn_gated_acceptor(
        &self,
        limits: Limits,
        gate: Gate,
        tx: Sender<Incoming>,
    ) -> io::Result<JoinHandle<()>> {
        let listener = self.listener.try_clone()?;
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("chronus-osc-tcp".into())
            .spawn(move || accept_loop(&listener, &shared, limits, &gate, &tx))
    }

    /// Queues `packet` for the connection `id`; see [`crate::Replier::send`].
    pub fn send(&self, id: u64, packet: &OscPacket) -> io::Result<()> {
        self.shared.send(id, packet)
    }

    /// Connections open now: served, and not closed by the endpoint (a connection whose
    /// client ended its stream is counted while its last replies go out).
    pub fn connections(&self) -> usize {
        self.shared.lock().len()
    }

    /// Connections accepted and served since bind.
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed at once, for every cause: the sum of
    /// [`TcpEndpoint::refused_per_address`], [`TcpEndpoint::refused_full`], and those
    /// that arrived while shutting down or when no thread could be started for them.
    pub fn refused_connections(&self) -> u64 {
        self.refused_per_address()
            + self.refused_full()
            + self.shared.refused_unserved.load(Ordering::Relaxed)
    }

    /// Connections refused because their address already held
    /// [`ConnectionLimits::per_address`] connections.
    pub fn refused_per_address(&self) -> u64 {
        self.shared.refused_per_address.load(Ordering::Relaxed)
    }

    /// Connections refused because every place was taken and no address held two more
    /// connections than theirs.
    pub fn refused_full(&self) -> u64 {
        self.shared.refused_full.load(Ordering::Relaxed)
    }

    /// Connections closed to make room for a connection from an address holding fewer.
    pub fn evicted_connections(&self) -> u64 {
        self.shared.evicted.load(Ordering::Relaxed)
    }

    /// Connections closed because they sent no complete frame for
    /// [`ConnectionLimits::idle_timeout`].
    pub fn idle_closed(&self) -> u64 {
        self.shared.idle_closed.load(Ordering::Relaxed)
    }

    /// Replies dropped because their connection's queue was full (a client not reading).
    pub fn dropped_replies(&self) -> u64 {
        self.shared.dropped_replies.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection at once, and makes every thread return
    /// within about 100 ms.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Linux ends a blocked accept() when its listening socket is shut down.
        let _ = SockRef::from(&self.listener).shutdown(Shutdown::Read);
        for conn in self.shared.lock().values() {
            // Wakes the reader (end of stream) and the writer (broken pipe) at once.
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
    }

    pub(crate) fn shared(&self) -> Arc<TcpShared> {
        Arc::clone(&self.shared)
    }
}

impl Drop for TcpEndpoint {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl TcpShared {
    fn micros_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Counts a refusal, then tells the client why (if there is anything to tell) and
    /// closes it: counted first, so whoever sees it closed also sees it counted.
    fn refuse(&self, stream: &TcpStream, cause: Refusal, ip: IpAddr) {
        let limits = &self.limits;
        let (counter, reason) = match cause {
            Refusal::PerAddress => (
                &self.refused_per_address,
                Some(format!(
                    "too many connections from {ip}: at most {} at once from one address",
                    limits.per_address
                )),
            ),
            Refusal::Full => (
                &self.refused_full,
                Some(format!(
                    "all {} connections are taken, and no address holds two more than {ip} \
                     does: try again later",
                    limits.max_connections
                )),
            ),
            Refusal::Unserved => (&self.refused_unserved, None),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(reason) = reason {
            tell_refused(stream, &reason);
        }
        let _ = stream.shutdown(Shutdown::Both);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Queues `packet` for connection `id` without blocking.
    pub(crate) fn send(&self, id: u64, packet: &OscPacket) -> io::Result<()> {
        let conn = self.lock().get(&id).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                format!("TCP connection {id} is closed"),
            )
        })?;
        let framing = conn.framing.get().copied().unwrap_or(Framing::LengthPrefix);
        match conn.replies.try_send(framing.frame(&encode(packet))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.dropped_replies.fetch_add(1, Ordering::Relaxed);
                Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "reply to {} dropped: {REPLY_QUEUE_FRAMES} replies already wait for the client to read",
                        conn.addr
                    ),
                ))
            }
            Err(TrySendError::Disconnected(_)) => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("TCP connection {id} is closed"),
            )),
        }
    }

    /// Whether connection `id` is still open.
    pub(crate) fn is_open(&self, id: u64) -> bool {
        self.lock().contains_key(&id)
    }
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<TcpShared>,
    limits: Limits,
    gate: &Gate,
    tx: &Sender<Incoming>,
) {
    while !shared.stopping() {
        let (stream, addr) = match listener.accept() {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                ) =>
            {
                continue;
            }
            Err(_) => {
                // Out of file descriptors, mostly: pause rather than spin, stay alive.
                std::thread::sleep(WAKE_INTERVAL);
                continue;
            }
        };
        open(shared, stream, addr, limits, gate, tx);
    }
}
/// Sends a refused connection its `/chronus/fail`, without ever blocking the acceptor:
/// the frame fits the empty send buffer of a new socket, or is not sent. The framing is
/// the client's if its first byte has arrived, else the OSC 1.0 length prefix (as for
/// any reply before the client's first byte).
fn tell_refused(stream: &TcpStream, reason: &str) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut first = [0u8; 1];
    let framing = match stream.peek(&mut first) {
        Ok(1) => Framing::detect(first[0]),
        _ => Framing::LengthPrefix,
    };
    let mut writer = stream;
    let _ = writer.write_all(&framing.encode(&fail(CONNECTION_ADDR, reason)));
    let mut reader = stream;
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < REFUSED_DRAIN {
        match reader.read(&mut buf) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
}

/// Registers the connection and starts its threads, or refuses it: too many from its
/// address, no place left that it may take, shutting down, or no thread could be started.
fn open(
    shared: &Arc<TcpShared>,
    stream: TcpStream,
    addr: SocketAddr,
    limits: Limits,
    gate: &Gate,
    tx: &Sender<Incoming>,
) {
    let ip = addr.ip().to_canonical();
    let (replies, queue) = crossbeam_channel::bounded(REPLY_QUEUE_FRAMES);
    let conn = Arc::new(Connection {
        addr,
        ip,
        stream,
        framing: OnceLock::new(),
        replies,
        active_us: AtomicU64::new(shared.micros_since_epoch(Instant::now())),
        closing: AtomicBool::new(false),
    });
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let evicted = {
        let mut map = shared.lock();
        let held = map.values().filter(|c| c.ip == ip).count();
        let admission = if shared.stopping() {
            Err(Refusal::Unserved)
        } else if held >= shared.limits.per_address {
            Err(Refusal::PerAddress)
        } else if map.len() >= shared.limits.max_connections {
            make_room(&mut map, held).ok_or(Refusal::Full).map(Some)
        } else {
            Ok(None)
        };
        match admission {
            Ok(evicted) => {
                map.insert(id, Arc::clone(&conn));
                evicted
            }
            Err(cause) => {
                drop(map);
                return shared.refuse(&conn.stream, cause, ip);
            }
        }
    };
    if let Some((victim, most)) = evicted {
        shared.evicted.fetch_add(1, Ordering::Relaxed);
        victim.close_with(&format!(
            "closed to make room for a client from another address: all {} connections \
             were taken and {} held the most ({most})",
            shared.limits.max_connections, victim.ip
        ));
    }
    let clones = configure(&conn.stream)
        .and_then(|()| Ok((conn.stream.try_clone()?, conn.stream.try_clone()?)));
    let started = clones.and_then(|(reader, writer)| {
        std::thread::Builder::new()
            .name(format!("chronus-osc-tcp-w{id}"))
            .stack_size(THREAD_STACK)
            .spawn(move || write_loop(writer, &queue))?;
        let shared = Arc::clone(shared);
        let conn = Arc::clone(&conn);
        let tx = tx.clone();
        let gate = Gate::clone(gate);
        std::thread::Builder::new()
            .name(format!("chronus-osc-tcp-r{id}"))
            .stack_size(THREAD_STACK)
            .spawn(move || {
                read_loop(reader, &shared, &conn, id, limits, &gate, &tx);
                close(&shared, id, &conn);
            })
    });
    if started.is_err() {
        shared.lock().remove(&id);
        // A writer that did start ends when the queue's sender, in `conn`, is dropped.
        return shared.refuse(&conn.stream, Refusal::Unserved, ip);
    }
    shared.accepted.fetch_add(1, Ordering::Relaxed);
}

/// When every place is taken by a newcomer's address holding `held`: unregisters the
/// longest-idle connection of the address holding the most, if that is at least two more
/// (so that after the swap the newcomer's address still holds no more than it: two
/// addresses never take a place back and forth).
/// Returns it with how many that address held.
fn make_room(
    map: &mut HashMap<u64, Arc<Connection>>,
    held: usize,
) -> Option<(Arc<Connection>, usize)> {
    let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
    for conn in map.values() {
        *per_ip.entry(conn.ip).or_default() += 1;
    }
    let most = per_ip.values().copied().max()?;
    if most < held + 2 {
        return None;
    }
    let victim = map
        .iter()
        .filter(|(_, c)| per_ip[&c.ip] == most)
        .min_by_key(|(_, c)| c.active_us.load(Ordering::Relaxed))
        .map(|(id, _)| *id)?;
    map.remove(&victim).map(|conn| (conn, most))
}

impl Connection {
    /// Once the endpoint has unregistered it: queues a `/chronus/fail` saying why, then
    /// stops its reader; the reader lingers so the reply goes out, then closes.
    fn close_with(&self, reason: &str) {
        let framing = self.framing.get().copied().unwrap_or(Framing::LengthPrefix);
        let _ = self
            .replies
            .try_send(framing.frame(&encode(&fail(CONNECTION_ADDR, reason))));
        self.closing.store(true, Ordering::Relaxed);
        // Wakes a reader blocked in read() now rather than at its next timeout.
        let _ = self.stream.shutdown(Shutdown::Read);
    }
}

fn configure(stream: &TcpStream) -> io::Result<()> {
    // Replies are small and latency matters more than packing them.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(WAKE_INTERVAL))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))
}

fn read_loop(
    mut stream: TcpStream,
    shared: &TcpShared,
    conn: &Connection,
    id: u64,
    limits: Limits,
    gate: &Gate,
    tx: &Sender<Incoming>,
) {
    let peer = Peer::Tcp {
        id,
        addr: conn.addr,
    };
    let idle_us = shared.limits.idle_timeout.as_micros() as u64;
    let mut decoder = StreamDecoder::new(limits.max_packet);
    let mut buf = vec![0u8; READ_CHUNK];
    while !shared.stopping() && !conn.closing.load(Ordering::Relaxed) {
        let now_us = shared.micros_since_epoch(Instant::now());
        if now_us.saturating_sub(conn.active_us.load(Ordering::Relaxed)) >= idle_us {
            // Unregistered here, under the lock, unless the acceptor evicted it first:
            // a connection is counted closed for one cause only.
            if shared.lock().remove(&id).is_some() {
                shared.idle_closed.fetch_add(1, Ordering::Relaxed);
                conn.close_with(&format!(
                    "closed: no complete frame for {} s; send one (a status request, a \
                     renewed subscription) more often than that to stay connected",
                    shared.limits.idle_timeout.as_secs_f64()
                ));
            }
            break;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
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
            Err(_) => return,
        };
        decoder.push(&buf[..n]);
        if let Some(framing) = decoder.framing() {
            let _ = conn.framing.set(framing);
        }
        while let Some(frame) = decoder.next_frame() {
            if !gate(conn.addr) {
                continue;
            }
            conn.active_us
                .store(shared.micros_since_epoch(Instant::now()), Ordering::Relaxed);
            let incoming = match frame {
                Ok(bytes) => Incoming::new(peer, decode(&bytes, &limits), &bytes),
                Err(e) => Incoming::new(peer, Err(DecodeError::Frame(e)), &[]),
            };
            if !deliver(tx, incoming, &shared.stop, WAKE_INTERVAL) {
                return;
            }
        }
        if decoder.is_broken() {
            break;
        }
    }
    // The client is done sending (or broke the stream, or the endpoint closes it): no
    // more reads, but the replies to what it sent may still be on their way.
    let _ = stream.shutdown(Shutdown::Read);
    let until = Instant::now() + LINGER;
    while !shared.stopping() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Unregisters the connection and shuts the socket down. Replies already handed to the
/// kernel are still delivered before the FIN; a writer stalled on a client that does not
/// read fails at once, so no thread outlives its connection by more than a moment.
fn close(shared: &TcpShared, id: u64, conn: &Connection) {
    shared.lock().remove(&id);
    let _ = conn.stream.shutdown(Shutdown::Both);
}

fn write_loop(mut stream: TcpStream, queue: &Receiver<Vec<u8>>) {
    // Ends when every sender (held by the registered connection) is dropped.
    for frame in queue {
        if stream.write_all(&frame).is_err() {
            // A stalled or gone client: a partial frame leaves the stream unusable.
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}
