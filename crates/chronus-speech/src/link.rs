//! Connections to Wyoming services that already run (`tcp://host:port`,
//! `unix:///path`), with the same shape as an engine process: bytes in through a
//! writer thread that never blocks the caller, bytes out to a callback on a reader
//! thread, and an end that is always noticed.

use crate::process::Output;
use crossbeam_channel::Sender;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Most bytes queued for a service that is not reading; more fail the write.
const MAX_PENDING: usize = 1 << 20;

/// A write that makes no progress for this long ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The wait before reconnecting to a service: 0.1 s, doubling to 5 s, and back to
/// the first once a connection came up.
pub(crate) struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub(crate) fn new() -> Backoff {
        Backoff(Backoff::FIRST)
    }

    /// No attempt has failed since the last connection (or the start).
    pub(crate) fn is_first(&self) -> bool {
        self.0 == Backoff::FIRST
    }

    /// This wait; the next one is twice as long, up to the longest.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (wait * 2).min(Backoff::MAX);
        wait
    }

    pub(crate) fn reset(&mut self) {
        self.0 = Backoff::FIRST;
    }
}

/// Where a running Wyoming service listens (the daemon's configuration parses and
/// checks the address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port`, as given.
    Tcp(String),
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// One open connection. Dropping it closes the socket, which ends the reader.
pub struct Conn {
    stream: Stream,
    writer: Option<Sender<Vec<u8>>>,
    pending: Arc<AtomicUsize>,
}

impl Conn {
    /// Connects within `timeout` (each resolved address of a TCP host is tried) and
    /// starts the reader, which hands every chunk to `on_data` and then
    /// [`Output::End`] once the service closes the connection or it breaks.
    pub fn connect(
        endpoint: &Endpoint,
        timeout: Duration,
        mut on_data: impl FnMut(Output<'_>) + Send + 'static,
    ) -> io::Result<Conn> {
        let stream = match endpoint {
            Endpoint::Tcp(addr) => {
                let mut last = io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{addr} resolves to no address"),
                );
                let mut connected = None;
                for a in addr.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&a, timeout) {
                        Ok(s) => {
                            connected = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = connected.ok_or(last)?;
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                Stream::Tcp(s)
            }
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                Stream::Unix(s)
            }
        };
        let mut reader = stream.try_clone()?;
        let mut writing = stream.try_clone()?;
        let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
        let pending = Arc::new(AtomicUsize::new(0));
        let counted = pending.clone();
        std::thread::Builder::new()
            .name("wyoming-write".into())
            .spawn(move || {
                for bytes in rx {
                    if writing.write_all(&bytes).is_err() {
                        // A service that stopped reading: the reader sees the end.
                        writing.shutdown();
                        return;
                    }
                    counted.fetch_sub(bytes.len(), Ordering::AcqRel);
                }
            })?;
        std::thread::Builder::new()
            .name("wyoming-read".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match reader.read(&mut buf) {
                        Ok(n) if n > 0 => on_data(Output::Data(&buf[..n])),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        _ => {
                            on_data(Output::End);
                            return;
                        }
                    }
                }
            })?;
        Ok(Conn {
            stream,
            writer: Some(tx),
            pending,
        })
    }

    /// Queues bytes without blocking. False once the connection is closed or when
    /// more than 1 MiB is already waiting (the service is not reading).
    pub fn write(&self, bytes: Vec<u8>) -> bool {
        let Some(tx) = &self.writer else {
            return false;
        };
        let len = bytes.len();
        let pending = self.pending.load(Ordering::Acquire);
        if pending > 0 && pending + len > MAX_PENDING {
            return false;
        }
        self.pending.fetch_add(len, Ordering::AcqRel);
        if tx.send(bytes).is_err() {
            self.pending.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Closes the connection at once: queued bytes are dropped, the reader ends.
    pub fn close(mut self) {
        self.writer = None;
        self.stream.shutdown();
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.stream.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnection_waits_double_to_five_seconds_and_start_again_after_a_connection() {
        let mut b = Backoff::new();
        assert!(b.is_first());
        let waits: Vec<u64> = (0..8).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert!(!b.is_first());
        b.reset();
        assert!(b.is_first());
        assert_eq!(b.next(), Duration::from_millis(100));
    }

    #[test]
    fn a_connection_delivers_bytes_both_ways_and_notices_the_end() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let conn = Conn::connect(
            &Endpoint::Tcp(addr.to_string()),
            Duration::from_secs(2),
            move |out| {
                let _ = tx.send(match out {
                    Output::Data(b) => Some(b.to_vec()),
                    Output::End => None,
                });
            },
        )
        .unwrap();
        assert!(conn.write(b"hello".to_vec()));
        let mut got = Vec::new();
        while let Some(bytes) = rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            got.extend(bytes);
        }
        assert_eq!(got, b"hello");
        server.join().unwrap();
        conn.close();
    }

    #[test]
    fn nothing_listening_is_a_prompt_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = Conn::connect(
            &Endpoint::Tcp(addr.to_string()),
            Duration::from_secs(2),
            |_| {},
        )
        .err()
        .expect("nothing listens");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Conn::connect(
                &Endpoint::Unix(dir.path().join("none.sock")),
                Duration::from_secs(2),
                |_| {}
            )
            .is_err()
        );
    }
}
