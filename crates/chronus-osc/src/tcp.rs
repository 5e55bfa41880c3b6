//! The daemon's TCP control endpoint: OSC 1.0 length-prefixed and OSC 1.1 SLIP streams.
//!
//! Threads: one acceptor; per connection, a reader (reassembles and decodes frames, hands
//! them to the daemon) and a writer (drains that connection's bounded reply queue). The
//! daemon only ever queues replies with a non-blocking `try_send`, so a client that never
//! reads cannot hold up its loop: once its queue is full, replies to it are dropped and
//! counted, and a connection whose writes stall for 10 s is closed.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rosc::OscPacket;
use socket2::{Domain, Protocol, Socket, Type};

use crate::decode::{DecodeError, Limits, decode};
use crate::encode;
use crate::frame::{Framing, StreamDecoder};
use crate::incoming::{Gate, Incoming, Peer, deliver};

/// Connections served at once unless [`TcpEndpoint::bind_with_max_connections`] says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Replies queued per connection before further ones are dropped.
pub const REPLY_QUEUE_FRAMES: usize = 256;
/// How long threads block before looking at the shutdown flag.
const WAKE_INTERVAL: Duration = Duration::from_millis(100);
/// A connection whose writes stall this long is closed: its client stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the client's end of the stream (or a broken frame), replies to what it sent
/// still go out for this long before the connection is closed.
const LINGER: Duration = Duration::from_millis(250);
const READ_CHUNK: usize = 65536;
const THREAD_STACK: usize = 256 * 1024;

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
    max_connections: usize,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    accepted: AtomicU64,
    refused: AtomicU64,
    dropped_replies: AtomicU64,
}

#[derive(Debug)]
struct Connection {
    addr: SocketAddr,
    /// Kept to shut the socket down from other threads.
    stream: TcpStream,
    /// Told by the first byte the client sent; replies use the same framing.
    framing: OnceLock<Framing>,
    replies: Sender<Vec<u8>>,
}

impl TcpEndpoint {
    /// Binds and listens on `addr`, serving at most [`DEFAULT_MAX_CONNECTIONS`] at once.
    pub fn bind(addr: SocketAddr) -> io::Result<TcpEndpoint> {
        TcpEndpoint::bind_with_max_connections(addr, DEFAULT_MAX_CONNECTIONS)
    }

    /// Binds and listens on `addr`; connections beyond `max_connections` are accepted
    /// and closed at once, and counted by [`TcpEndpoint::refused_connections`].
    pub fn bind_with_max_connections(
        addr: SocketAddr,
        max_connections: usize,
    ) -> io::Result<TcpEndpoint> {
        // socket2 opens the socket close-on-exec, so re-executed workers do not inherit it.
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // A restarted daemon can bind again while old connections sit in TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(128)?;
        // On Linux, accept() honours SO_RCVTIMEO: the acceptor wakes to see the stop flag.
        socket.set_read_timeout(Some(WAKE_INTERVAL))?;
        let listener = TcpListener::from(socket);
        let local = listener.local_addr()?;
        Ok(TcpEndpoint {
            listener,
            local,
            shared: Arc::new(TcpShared {
                stop: AtomicBool::new(false),
                max_connections,
                next_id: AtomicU64::new(1),
                connections: Mutex::new(HashMap::new()),
                accepted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
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

    /// Connections open now (including ones lingering to flush replies).
    pub fn connections(&self) -> usize {
        self.shared.lock().len()
    }

    /// Connections accepted and served since bind.
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed at once because [`DEFAULT_MAX_CONNECTIONS`] (or the configured
    /// maximum) were open.
    pub fn refused_connections(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Replies dropped because their connection's queue was full (a client not reading).
    pub fn dropped_replies(&self) -> u64 {
        self.shared.dropped_replies.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection at once, and makes every thread return
    /// within about 100 ms.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
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

/// Counts a refused connection, then closes it: counted first, so whoever sees it
/// closed also sees it counted.
fn refuse(shared: &TcpShared, stream: &TcpStream) {
    shared.refused.fetch_add(1, Ordering::Relaxed);
    let _ = stream.shutdown(Shutdown::Both);
}

/// Registers the connection and starts its threads, or refuses it: too many
/// connections, shutting down, or no thread could be started.
fn open(
    shared: &Arc<TcpShared>,
    stream: TcpStream,
    addr: SocketAddr,
    limits: Limits,
    gate: &Gate,
    tx: &Sender<Incoming>,
) {
    let clones = configure(&stream).and_then(|()| Ok((stream.try_clone()?, stream.try_clone()?)));
    let Ok((reader, writer)) = clones else {
        return refuse(shared, &stream);
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (replies, queue) = crossbeam_channel::bounded(REPLY_QUEUE_FRAMES);
    let conn = {
        let mut map = shared.lock();
        if map.len() >= shared.max_connections || shared.stopping() {
            drop(map);
            return refuse(shared, &stream);
        }
        let conn = Arc::new(Connection {
            addr,
            stream,
            framing: OnceLock::new(),
            replies,
        });
        map.insert(id, Arc::clone(&conn));
        conn
    };
    let writer_thread = std::thread::Builder::new()
        .name(format!("chronus-osc-tcp-w{id}"))
        .stack_size(THREAD_STACK)
        .spawn(move || write_loop(writer, &queue));
    let reader_thread = writer_thread.and_then(|_| {
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
    if reader_thread.is_err() {
        shared.lock().remove(&id);
        // A writer that did start ends when the queue's sender, in `conn`, is dropped.
        return refuse(shared, &conn.stream);
    }
    shared.accepted.fetch_add(1, Ordering::Relaxed);
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
    let mut decoder = StreamDecoder::new(limits.max_packet);
    let mut buf = vec![0u8; READ_CHUNK];
    while !shared.stopping() {
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
    // The client is done sending (or broke the stream): no more reads, but the replies
    // to what it sent may still be on their way from the daemon.
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
