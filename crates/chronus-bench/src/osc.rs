//! OSC flood: a sender paced to a fixed rate of `/mod/voice1/freq` messages over UDP
//! or one TCP connection, while `/chronus/status` and `/chronus/sync` round trips are
//! measured from other loopback addresses, idle and during the flood; the daemon's
//! counters are read before and after.

use crate::daemon::{Daemon, Status};
use crate::steady::{Cpu, clock_ticks_per_s, cpu_between, sample_cpu};
use anyhow::{Context, Result, anyhow, bail};
use chronus_osc::{
    Framing, Limits, OscMessage, OscPacket, OscType, StreamDecoder, Transport, decode, messages,
};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The flood comes from the address local clients use; the probes each come from an
/// address of their own, because the daemon's rate limiter keys on the sender's IP
/// address (every port of 127.0.0.1 shares one budget).
pub const FLOOD_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
pub const STATUS_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
pub const SYNC_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The flood's address in the daemon's namespace, and the frequencies it cycles through.
pub const FLOOD_ADDR: &str = "/mod/voice1/freq";
const FLOOD_FREQ_MIN: f32 = 220.0;
const FLOOD_FREQS: usize = 661;
/// The command the sync probe sends just before each `/chronus/sync`: it changes
/// nothing audible (voice 2 is never gated), but is a command like any other.
pub const SYNC_COMMAND: &str = "/mod/voice2/amp";
/// The sender wakes this often and sends what is due.
pub const SEND_TICK: Duration = Duration::from_millis(1);
/// How long a probe waits for its reply before counting it unanswered.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the counters are read while waiting for the daemon to finish the flood.
pub const SETTLE_POLL: Duration = Duration::from_millis(20);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PACKET: usize = 65536;

pub struct Settings {
    /// Messages a second the flood aims for.
    pub rate: u32,
    pub flood: Duration,
    /// Probes measured with no flood, before it.
    pub idle: Duration,
    /// Interval between the starts of two probe requests.
    pub probe_every: Duration,
}

/// The daemon's counters from one status reply.
#[derive(Clone, Copy, Default)]
pub struct Counters {
    pub received: i64,
    pub errors: i64,
    pub late: i64,
    pub kernel_drops: i64,
    pub rate_limited: i64,
    pub refused: i64,
    pub queue_full: i64,
    pub replies_dropped: i64,
    pub underrun_frames: i64,
    pub fallback_frames: i64,
    pub xruns: i64,
    pub late_commands: i64,
    pub frames: i64,
    pub callback_max_us: f64,
}

impl Counters {
    pub fn read(s: &Status) -> Result<Counters> {
        Ok(Counters {
            received: s.int("osc_received")?,
            errors: s.int("osc_errors")?,
            late: s.int("osc_late")?,
            kernel_drops: s.int("osc_kernel_drops")?,
            rate_limited: s.int("osc_rate_limited")?,
            refused: s.int("osc_refused")?,
            queue_full: s.int("osc_queue_full")?,
            replies_dropped: s.int("osc_replies_dropped")?,
            underrun_frames: s.int("underrun_frames")?,
            fallback_frames: s.int("fallback_frames")?,
            xruns: s.int("xruns")?,
            late_commands: s.int("late_commands")?,
            frames: s.int("frames")?,
            callback_max_us: s.float("callback_max_us")?,
        })
    }

    /// What changed since `before`; `callback_max_us` is this reading's (a maximum
    /// since startup, not a count).
    pub fn since(&self, before: &Counters) -> Counters {
        Counters {
            received: self.received - before.received,
            errors: self.errors - before.errors,
            late: self.late - before.late,
            kernel_drops: self.kernel_drops - before.kernel_drops,
            rate_limited: self.rate_limited - before.rate_limited,
            refused: self.refused - before.refused,
            queue_full: self.queue_full - before.queue_full,
            replies_dropped: self.replies_dropped - before.replies_dropped,
            underrun_frames: self.underrun_frames - before.underrun_frames,
            fallback_frames: self.fallback_frames - before.fallback_frames,
            xruns: self.xruns - before.xruns,
            late_commands: self.late_commands - before.late_commands,
            frames: self.frames - before.frames,
            callback_max_us: self.callback_max_us,
        }
    }
}

/// Round trips of one kind of request from one client.
#[derive(Default)]
pub struct Probe {
    pub rtt_ms: Vec<f64>,
    /// When each answered request was sent, beside `rtt_ms`.
    pub sent_at: Vec<Instant>,
    pub sent: u64,
    pub unanswered: u64,
    /// When each unanswered request was sent.
    pub unanswered_at: Vec<Instant>,
}

impl Probe {
    /// The requests sent before `at`, and the rest.
    pub fn split(&self, at: Instant) -> (Probe, Probe) {
        let (mut early, mut late) = (Probe::default(), Probe::default());
        for (&t, &rtt) in self.sent_at.iter().zip(&self.rtt_ms) {
            let p = if t < at { &mut early } else { &mut late };
            p.rtt_ms.push(rtt);
            p.sent_at.push(t);
            p.sent += 1;
        }
        for &t in &self.unanswered_at {
            let p = if t < at { &mut early } else { &mut late };
            p.unanswered_at.push(t);
            p.unanswered += 1;
            p.sent += 1;
        }
        (early, late)
    }

    /// Messages each request sends: the sync probe sends a command before its sync.
    fn messages(kind: ProbeKind) -> u64 {
        match kind {
            ProbeKind::Status => 1,
            ProbeKind::Sync => 2,
        }
    }
}

/// What the flood sender did.
pub struct Flood {
    pub sent: u64,
    /// First send → the last send returned.
    pub elapsed: Duration,
    /// Most messages sent in one wake-up (a catch-up after a late wake-up is larger).
    pub max_burst: u64,
    /// Replies that came back to the flood's socket, by kind.
    pub fail_replies: u64,
    pub first_fail: Option<String>,
    pub other_replies: u64,
}

impl Flood {
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub struct FloodRun {
    pub transport: Transport,
    /// `osc.rate_limit` given to the daemon; `None` for its default.
    pub rate_limit: Option<u32>,
    pub sample_rate: i64,
    pub block_frames: i64,
    pub idle_status: Probe,
    pub idle_sync: Probe,
    pub flood_status: Probe,
    pub flood_sync: Probe,
    pub flood: Flood,
    /// Read just before the flood starts and once the daemon has counted all of it.
    pub before: Counters,
    pub after: Counters,
    /// The bench's own messages (probes and counter reads) between the two readings,
    /// each counted in `osc_received` when it arrived. Answered ones arrived; unanswered
    /// ones are taken as dropped in the kernel over UDP (the daemon answers every status
    /// and sync it receives) and as received over TCP.
    pub bench_answered: u64,
    pub bench_unanswered_udp: u64,
    pub bench_unanswered_tcp: u64,
    /// CPU from just before the flood to the return of its last send.
    pub cpu: Cpu,
    /// The flood's first send: probes sent before `flood_started + 1 s` ran while the
    /// rate limiter's bucket (a second's worth) could still admit more than the rate.
    pub flood_started: Instant,
    /// The last flood message sent → `osc_received` seen to stop rising.
    pub settle: Duration,
    pub exit: ExitStatus,
}

impl FloodRun {
    pub fn counted(&self) -> Counters {
        self.after.since(&self.before)
    }

    /// Flood messages the daemon received: `osc_received` less the bench's messages.
    pub fn flood_received(&self) -> i64 {
        self.counted().received - (self.bench_answered + self.bench_unanswered_tcp) as i64
    }

    /// Flood datagrams the kernel dropped: `osc_kernel_drops` less the bench's.
    pub fn flood_kernel_drops(&self) -> i64 {
        self.counted().kernel_drops - self.bench_unanswered_udp as i64
    }

    pub fn bench_unanswered(&self) -> u64 {
        self.bench_unanswered_udp + self.bench_unanswered_tcp
    }

    /// Received and neither rate-limited, refused, malformed nor turned away for a
    /// full command queue: published to the workers.
    pub fn applied(&self) -> i64 {
        let c = self.counted();
        self.flood_received() - c.rate_limited - c.refused - c.errors - c.queue_full
    }
}

/// Whether the daemon takes `osc.rate_limit`, asked of `chronusd check-config`.
pub struct RaisedLimit {
    pub value: u32,
    pub accepted: bool,
    /// The first line of check-config's complaint when not accepted.
    pub detail: String,
}

pub struct OscRun {
    pub rate: u32,
    pub flood: Duration,
    pub idle: Duration,
    pub probe_every: Duration,
    pub raised: Option<RaisedLimit>,
    pub runs: Vec<FloodRun>,
}

/// Messages due `elapsed` into a flood at `rate` a second: floor(elapsed × rate).
pub fn due(elapsed: Duration, rate: u32) -> u64 {
    (elapsed.as_nanos() * u128::from(rate) / 1_000_000_000) as u64
}

/// From `elapsed` to the start of the next multiple of `tick`.
pub fn until_next_tick(elapsed: Duration, tick: Duration) -> Duration {
    let tick = tick.as_nanos().max(1);
    let e = elapsed.as_nanos();
    Duration::from_nanos(((e / tick + 1) * tick - e) as u64)
}

/// Keeps a flood on schedule: at each wake-up, how many messages to send now.
pub struct Pacer {
    rate: u32,
    total: u64,
    sent: u64,
}

impl Pacer {
    pub fn new(rate: u32, duration: Duration) -> Pacer {
        Pacer {
            rate,
            total: due(duration, rate),
            sent: 0,
        }
    }

    /// Messages to send `elapsed` after the start: those due and not yet sent, never
    /// past the total.
    pub fn burst(&mut self, elapsed: Duration) -> u64 {
        let due = due(elapsed, self.rate).min(self.total);
        let n = due.saturating_sub(self.sent);
        self.sent += n;
        n
    }

    pub fn done(&self) -> bool {
        self.sent >= self.total
    }
}

/// The flood's messages, encoded (and framed for a stream): `/mod/voice1/freq f`
/// with frequencies cycling from 220 Hz to 880 Hz in 1 Hz steps.
pub fn flood_messages(framing: Option<Framing>) -> Vec<Vec<u8>> {
    (0..FLOOD_FREQS)
        .map(|i| {
            let packet =
                chronus_osc::message(FLOOD_ADDR, vec![OscType::Float(FLOOD_FREQ_MIN + i as f32)]);
            match framing {
                Some(f) => f.encode(&packet),
                None => chronus_osc::encode(&packet),
            }
        })
        .collect()
}

/// A TCP connection to `to` from the local address `from` (std cannot bind before
/// connecting).
pub fn tcp_connect_from(from: Ipv4Addr, to: SocketAddrV4) -> Result<TcpStream> {
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) takes plain integers and touches no memory of ours.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!(
            "socket(AF_INET, SOCK_STREAM): {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let stream = TcpStream::from(fd);
    let local = sockaddr(from, 0);
    let remote = sockaddr(*to.ip(), to.port());
    // SAFETY: `local` is a valid sockaddr_in of `len` bytes for the duration of the call.
    let rc = unsafe {
        libc::bind(
            stream.as_raw_fd(),
            (&raw const local).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc != 0 {
        bail!(
            "binding a TCP socket to {from}: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: `remote` is a valid sockaddr_in of `len` bytes for the duration of the call.
    let rc = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            (&raw const remote).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc != 0 {
        bail!(
            "connecting from {from} to {to}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(stream)
}

fn v4(addr: SocketAddr) -> Result<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(a) => Err(anyhow!("the daemon listens on {a}, not IPv4")),
    }
}

/// A client connection from a chosen loopback address (`chronus_osc::Client` always
/// sends from the default one).
enum Conn {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        framing: Framing,
        decoder: StreamDecoder,
    },
}

impl Conn {
    fn open(transport: Transport, from: Ipv4Addr, to: SocketAddr) -> Result<Conn> {
        Ok(match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind((from, 0))
                    .with_context(|| format!("binding a UDP socket to {from}"))?;
                socket.connect(to)?;
                Conn::Udp(socket)
            }
            Transport::Tcp(framing) => {
                let stream = tcp_connect_from(from, v4(to)?)?;
                stream.set_nodelay(true)?;
                Conn::Tcp {
                    stream,
                    framing,
                    decoder: StreamDecoder::with_framing(framing, MAX_PACKET),
                }
            }
        })
    }

    fn send(&mut self, packet: &OscPacket) -> Result<()> {
        match self {
            Conn::Udp(socket) => socket.send(&chronus_osc::encode(packet)).map(drop),
            Conn::Tcp {
                stream, framing, ..
            } => stream.write_all(&framing.encode(packet)),
        }
        .context("sending a request to chronusd")
    }

    /// The next messages received before `deadline` (empty once it passes).
    fn recv(&mut self, deadline: Instant, buf: &mut [u8]) -> Result<Vec<OscMessage>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            let read = match self {
                Conn::Udp(socket) => socket
                    .set_read_timeout(Some(left))
                    .and_then(|()| socket.recv(buf)),
                Conn::Tcp { stream, .. } => stream
                    .set_read_timeout(Some(left))
                    .and_then(|()| stream.read(buf)),
            };
            let len = match read {
                Ok(len) => len,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e).context("reading from chronusd"),
            };
            let mut out = Vec::new();
            match self {
                Conn::Udp(_) => {
                    if let Ok(packet) = decode(&buf[..len], &Limits::default()) {
                        out.extend(messages(packet));
                    }
                }
                Conn::Tcp { decoder, .. } => {
                    if len == 0 {
                        bail!("chronusd closed the TCP connection");
                    }
                    decoder.push(&buf[..len]);
                    while let Some(frame) = decoder.next_frame() {
                        if let Ok(packet) = frame
                            .map_err(drop)
                            .and_then(|f| decode(&f, &Limits::default()).map_err(drop))
                        {
                            out.extend(messages(packet));
                        }
                    }
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Sends `packets` one after the other and waits up to `timeout` for a message
    /// `wanted` accepts: that message and the time from the first send, or `None`.
    fn request(
        &mut self,
        packets: &[OscPacket],
        timeout: Duration,
        buf: &mut [u8],
        wanted: impl Fn(&OscMessage) -> bool,
    ) -> Result<Option<(OscMessage, Duration)>> {
        let t0 = Instant::now();
        for packet in packets {
            self.send(packet)?;
        }
        let deadline = t0 + timeout;
        loop {
            let got = self.recv(deadline, buf)?;
            if got.is_empty() {
                return Ok(None);
            }
            if let Some(m) = got.into_iter().find(|m| wanted(m)) {
                return Ok(Some((m, t0.elapsed())));
            }
        }
    }
}

fn status_request() -> OscPacket {
    chronus_osc::message(chronus_osc::STATUS_ADDR, vec![])
}

#[derive(Clone, Copy)]
pub enum ProbeKind {
    Status,
    Sync,
}

/// Requests one at a time, starting one every `every`, until `stop`.
fn probe(conn: &mut Conn, kind: ProbeKind, every: Duration, stop: &AtomicBool) -> Result<Probe> {
    let mut out = Probe::default();
    let mut buf = vec![0u8; MAX_PACKET];
    let mut id: i32 = 0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        id = id.wrapping_add(1);
        let t0 = Instant::now();
        let reply = match kind {
            ProbeKind::Status => {
                conn.request(&[status_request()], STATUS_TIMEOUT, &mut buf, |m| {
                    m.addr == chronus_osc::STATUS_REPLY_ADDR
                })?
            }
            ProbeKind::Sync => conn.request(
                &[
                    chronus_osc::message(SYNC_COMMAND, vec![OscType::Float(0.0)]),
                    chronus_osc::message(chronus_osc::SYNC_ADDR, vec![OscType::Int(id)]),
                ],
                SYNC_TIMEOUT,
                &mut buf,
                |m| m.addr == chronus_osc::SYNCED_ADDR && m.args == [OscType::Int(id)],
            )?,
        };
        out.sent += 1;
        match reply {
            Some((_, rtt)) => {
                out.rtt_ms.push(rtt.as_secs_f64() * 1e3);
                out.sent_at.push(t0);
            }
            None => {
                out.unanswered += 1;
                out.unanswered_at.push(t0);
                // A status reply carries no id: let a late one arrive and be dropped
                // rather than be taken for the next request's.
                if matches!(kind, ProbeKind::Status) {
                    conn.recv(Instant::now() + STATUS_TIMEOUT, &mut buf)?;
                }
            }
        }
        next += every;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        std::thread::sleep(next - now);
    }
    Ok(out)
}

/// Status requests and sync requests in two threads, each on its own connection,
/// until `stop`; `during` runs meanwhile on this thread and then sets `stop`.
fn probe_while<T>(
    status: &mut Conn,
    sync: &mut Conn,
    every: Duration,
    during: impl FnOnce() -> Result<T>,
) -> Result<(T, Probe, Probe)> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let status_thread = s.spawn(|| probe(status, ProbeKind::Status, every, &stop));
        let sync_thread = s.spawn(|| probe(sync, ProbeKind::Sync, every, &stop));
        let result = during();
        stop.store(true, Ordering::Relaxed);
        let status = status_thread.join().expect("status probe panicked");
        let sync = sync_thread.join().expect("sync probe panicked");
        Ok((result?, status?, sync?))
    })
}

/// The flood's socket: a connected UDP socket or one TCP connection, from [`FLOOD_FROM`].
enum FloodSocket {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

impl FloodSocket {
    fn send_burst(
        &mut self,
        msgs: &[Vec<u8>],
        from: usize,
        n: u64,
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        let at = |k: u64| &msgs[(from + k as usize) % msgs.len()];
        match self {
            FloodSocket::Udp(socket) => {
                for k in 0..n {
                    socket.send(at(k)).context("sending the flood")?;
                }
            }
            FloodSocket::Tcp(stream) => {
                scratch.clear();
                for k in 0..n {
                    scratch.extend_from_slice(at(k));
                }
                stream.write_all(scratch).context("sending the flood")?;
            }
        }
        Ok(())
    }
}

/// Replies to the flood's socket, counted by a reader thread until `stop`.
#[derive(Default)]
struct FloodReplies {
    fails: AtomicU64,
    others: AtomicU64,
    first_fail: std::sync::Mutex<Option<String>>,
}

fn read_flood_replies(mut conn: Conn, replies: &FloodReplies, stop: &AtomicBool) {
    let mut buf = vec![0u8; MAX_PACKET];
    while !stop.load(Ordering::Relaxed) {
        let Ok(got) = conn.recv(Instant::now() + Duration::from_millis(100), &mut buf) else {
            return;
        };
        for m in got {
            if m.addr == chronus_osc::FAIL_ADDR {
                replies.fails.fetch_add(1, Ordering::Relaxed);
                let mut first = replies.first_fail.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| m.to_string());
            } else {
                replies.others.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

struct Sent {
    sent: u64,
    started: Instant,
    /// The return of the last send.
    ended: Instant,
    max_burst: u64,
}

/// Sends the paced flood.
fn send_flood(
    socket: &mut FloodSocket,
    msgs: &[Vec<u8>],
    rate: u32,
    duration: Duration,
) -> Result<Sent> {
    let mut pacer = Pacer::new(rate, duration);
    let mut scratch = Vec::new();
    let mut sent = 0u64;
    let mut max_burst = 0;
    let start = Instant::now();
    loop {
        let n = pacer.burst(start.elapsed());
        if n > 0 {
            socket.send_burst(msgs, (sent % msgs.len() as u64) as usize, n, &mut scratch)?;
            sent += n;
            max_burst = max_burst.max(n);
        }
        if pacer.done() {
            return Ok(Sent {
                sent,
                started: start,
                ended: Instant::now(),
                max_burst,
            });
        }
        std::thread::sleep(until_next_tick(start.elapsed(), SEND_TICK));
    }
}

/// Asks `chronusd check-config` whether `--set osc.rate_limit=<value>` is accepted.
pub fn check_rate_limit_setting(exe: &Path, value: u32) -> Result<RaisedLimit> {
    let out = Command::new(exe)
        .args(["--set", &format!("osc.rate_limit={value}"), "check-config"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CHRONUS_AUDIO_BACKEND", "null")
        .stdin(Stdio::null())
        .output()
        .context("running chronusd check-config")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    Ok(RaisedLimit {
        value,
        accepted: out.status.success(),
        detail: stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned(),
    })
}

pub fn run(exe: &Path, dir: &Path, settings: &Settings, raised_limit: u32) -> Result<OscRun> {
    let raised = if raised_limit > 0 {
        Some(check_rate_limit_setting(exe, raised_limit)?)
    } else {
        None
    };
    let mut limits = vec![None];
    if let Some(r) = raised.as_ref().filter(|r| r.accepted) {
        limits.push(Some(r.value));
    }
    let mut runs = Vec::new();
    for &limit in &limits {
        for transport in [
            Transport::Udp,
            Transport::Tcp(Framing::LengthPrefix),
            Transport::Tcp(Framing::Slip),
        ] {
            let name = run_name(transport, limit);
            eprintln!("chronus-bench: OSC flood, {name}");
            let sub = dir.join(name.replace([' ', ',', '='], "-"));
            std::fs::create_dir_all(&sub)?;
            runs.push(
                flood_run(exe, &sub, settings, transport, limit)
                    .with_context(|| format!("OSC flood, {name}"))?,
            );
        }
    }
    Ok(OscRun {
        rate: settings.rate,
        flood: settings.flood,
        idle: settings.idle,
        probe_every: settings.probe_every,
        raised,
        runs,
    })
}

pub fn transport_name(t: Transport) -> String {
    match t {
        Transport::Udp => "UDP".into(),
        Transport::Tcp(Framing::LengthPrefix) => "TCP, OSC 1.0 length prefix".into(),
        Transport::Tcp(Framing::Slip) => "TCP, OSC 1.1 SLIP".into(),
    }
}

pub fn run_name(t: Transport, limit: Option<u32>) -> String {
    match limit {
        None => format!("{}, default rate limit", transport_name(t)),
        Some(l) => format!("{}, osc.rate_limit={l}", transport_name(t)),
    }
}

fn flood_run(
    exe: &Path,
    dir: &Path,
    settings: &Settings,
    transport: Transport,
    rate_limit: Option<u32>,
) -> Result<FloodRun> {
    let args: Vec<String> = rate_limit
        .map(|l| vec!["--set".into(), format!("osc.rate_limit={l}")])
        .unwrap_or_default();
    let mut d = Daemon::start_with_args(exe, dir, None, &args)?;
    d.play_tone()?;
    let osc = d.osc_addr();
    let mut status_conn = Conn::open(transport, STATUS_FROM, osc)?;
    let mut sync_conn = Conn::open(transport, SYNC_FROM, osc)?;
    // Counters are read over UDP from the status probe's address, on a socket of their own.
    let mut counter_conn = Conn::open(Transport::Udp, STATUS_FROM, osc)?;
    let mut buf = vec![0u8; MAX_PACKET];
    // The bench's requests between the two readings: (answered, unanswered).
    let mut bench = (0u64, 0u64);
    let mut read_counters = |bench: &mut (u64, u64)| -> Result<(Status, Instant)> {
        for _ in 0..5 {
            let reply =
                counter_conn.request(&[status_request()], STATUS_TIMEOUT, &mut buf, |m| {
                    m.addr == chronus_osc::STATUS_REPLY_ADDR
                })?;
            match reply.and_then(|(m, _)| Status::from_reply(&m)) {
                Some(s) => {
                    bench.0 += 1;
                    return Ok((s, Instant::now()));
                }
                None => bench.1 += 1,
            }
        }
        bail!("no status reply to 5 requests in a row")
    };

    // Idle.
    let idle_start = Instant::now();
    let ((), idle_status, idle_sync) = probe_while(
        &mut status_conn,
        &mut sync_conn,
        settings.probe_every,
        || {
            std::thread::sleep(settings.idle);
            Ok(())
        },
    )?;
    d.check_alive()?;
    // This request is counted in the reading it returns, so it is not one of the bench's.
    let (s, _) = read_counters(&mut (0, 0))?;
    let before = Counters::read(&s)?;
    let sample_rate = s.int("sample_rate")?;
    let block_frames = s.int("block_frames")?;

    // The flood, probed.
    let (mut flood_socket, reply_conn) = match transport {
        Transport::Udp => {
            let socket = UdpSocket::bind((FLOOD_FROM, 0))?;
            socket.connect(osc)?;
            let reader = Conn::Udp(socket.try_clone()?);
            (FloodSocket::Udp(socket), reader)
        }
        Transport::Tcp(framing) => {
            let stream = tcp_connect_from(FLOOD_FROM, v4(osc)?)?;
            stream.set_nodelay(true)?;
            let reader = Conn::Tcp {
                stream: stream.try_clone()?,
                framing,
                decoder: StreamDecoder::with_framing(framing, MAX_PACKET),
            };
            (FloodSocket::Tcp(stream), reader)
        }
    };
    let msgs = flood_messages(match transport {
        Transport::Udp => None,
        Transport::Tcp(f) => Some(f),
    });
    let replies = FloodReplies::default();
    let stop_replies = AtomicBool::new(false);
    const ROLES: [&str; 4] = [
        "supervisor (all threads)",
        "worker slot 0",
        "worker slot 1",
        "the bench (sender, probes, readers)",
    ];
    let pids = [
        d.pid(),
        s.slot_pid(0)?,
        s.slot_pid(1)?,
        std::process::id() as i32,
    ];
    let hz = clock_ticks_per_s()?;
    let sent_flood = std::thread::scope(|s| {
        s.spawn(|| read_flood_replies(reply_conn, &replies, &stop_replies));
        let result = probe_while(
            &mut status_conn,
            &mut sync_conn,
            settings.probe_every,
            || {
                let cpu_before = sample_cpu(&pids, pids[0])?;
                let sent = send_flood(&mut flood_socket, &msgs, settings.rate, settings.flood)?;
                let cpu = cpu_between(&ROLES, &cpu_before, &sample_cpu(&pids, pids[0])?, hz);
                Ok((sent, cpu))
            },
        )
        .and_then(|((sent, cpu), flood_status, flood_sync)| {
            let (after, counted_at) = settle(&mut || read_counters(&mut bench))?;
            let settled = counted_at.saturating_duration_since(sent.ended);
            Ok((sent, cpu, flood_status, flood_sync, after, settled))
        });
        stop_replies.store(true, Ordering::Relaxed);
        result
    });
    let (sent, cpu, flood_status, flood_sync, after, settled) =
        sent_flood.map_err(|e| anyhow!("{e:#}; log:\n{}", d.log_tail()))?;
    let flood = Flood {
        sent: sent.sent,
        elapsed: sent.ended - sent.started,
        max_burst: sent.max_burst,
        fail_replies: replies.fails.load(Ordering::Relaxed),
        first_fail: replies
            .first_fail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        other_replies: replies.others.load(Ordering::Relaxed),
    };
    let after = Counters::read(&after)?;
    drop(flood_socket);
    let per = Probe::messages;
    let bench_answered = bench.0
        + flood_status.rtt_ms.len() as u64 * per(ProbeKind::Status)
        + flood_sync.rtt_ms.len() as u64 * per(ProbeKind::Sync);
    let probes_unanswered = flood_status.unanswered * per(ProbeKind::Status)
        + flood_sync.unanswered * per(ProbeKind::Sync);
    let (bench_unanswered_udp, bench_unanswered_tcp) = match transport {
        Transport::Udp => (bench.1 + probes_unanswered, 0),
        Transport::Tcp(_) => (bench.1, probes_unanswered),
    };
    let exit = d.stop()?;
    let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("round_trips.csv"))?);
    writeln!(csv, "phase,request,sent_ms,rtt_ms")?;
    let phases = [
        ("idle", "status", &idle_status),
        ("idle", "sync", &idle_sync),
        ("flood", "status", &flood_status),
        ("flood", "sync", &flood_sync),
    ];
    for (phase, request, probe) in phases {
        let origin = if phase == "idle" {
            idle_start
        } else {
            sent.started
        };
        for (at, rtt) in probe.sent_at.iter().zip(&probe.rtt_ms) {
            let sent_ms = at.saturating_duration_since(origin).as_secs_f64() * 1e3;
            writeln!(csv, "{phase},{request},{sent_ms:.3},{rtt:.3}")?;
        }
    }
    csv.flush()?;
    Ok(FloodRun {
        transport,
        rate_limit,
        sample_rate,
        block_frames,
        idle_status,
        idle_sync,
        flood_status,
        flood_sync,
        flood,
        before,
        after,
        bench_answered,
        bench_unanswered_udp,
        bench_unanswered_tcp,
        cpu,
        flood_started: sent.started,
        settle: settled,
        exit,
    })
}

/// Reads the counters every [`SETTLE_POLL`] until `osc_received` has risen by only the
/// reads themselves twice running; returns the last reading and when the first reading
/// with the final count was taken.
fn settle(read: &mut dyn FnMut() -> Result<(Status, Instant)>) -> Result<(Status, Instant)> {
    let started = Instant::now();
    let (first, at) = read()?;
    let mut prev = first.int("osc_received")?;
    let mut counted_at = at;
    let mut quiet = 0;
    loop {
        std::thread::sleep(SETTLE_POLL);
        let (s, at) = read()?;
        let received = s.int("osc_received")?;
        if received == prev + 1 {
            quiet += 1;
            if quiet == 2 {
                return Ok((s, counted_at));
            }
        } else {
            quiet = 0;
            counted_at = at;
        }
        prev = received;
        if started.elapsed() > SETTLE_TIMEOUT {
            bail!("osc_received still rising {SETTLE_TIMEOUT:?} after the flood");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_is_the_floor_of_elapsed_times_rate() {
        assert_eq!(due(Duration::ZERO, 50_000), 0);
        assert_eq!(due(Duration::from_millis(1), 50_000), 50);
        assert_eq!(due(Duration::from_micros(1_019), 50_000), 50);
        assert_eq!(due(Duration::from_micros(1_020), 50_000), 51);
        assert_eq!(due(Duration::from_secs(10), 50_000), 500_000);
        assert_eq!(
            due(Duration::from_secs(3600), u32::MAX),
            3600 * u64::from(u32::MAX)
        );
    }

    #[test]
    fn the_next_tick_is_never_now() {
        let ms = Duration::from_millis(1);
        assert_eq!(until_next_tick(Duration::ZERO, ms), ms);
        assert_eq!(
            until_next_tick(Duration::from_micros(2_300), ms),
            Duration::from_micros(700)
        );
        assert_eq!(until_next_tick(Duration::from_millis(5), ms), ms);
    }

    #[test]
    fn the_pacer_sends_what_is_due_and_catches_up_but_never_overshoots() {
        let mut p = Pacer::new(50_000, Duration::from_secs(10));
        assert_eq!(p.total, 500_000);
        assert_eq!(p.burst(Duration::ZERO), 0);
        assert_eq!(p.burst(Duration::from_millis(1)), 50);
        assert_eq!(p.burst(Duration::from_micros(1_500)), 25);
        // A wake-up that comes early or twice sends nothing more.
        assert_eq!(p.burst(Duration::from_micros(1_500)), 0);
        // A late one catches up on everything due.
        assert_eq!(p.burst(Duration::from_millis(11)), 475);
        assert!(!p.done());
        // Past the end: exactly the rest, then nothing.
        assert_eq!(p.burst(Duration::from_secs(12)), 500_000 - 550);
        assert!(p.done());
        assert_eq!(p.burst(Duration::from_secs(13)), 0);
    }

    #[test]
    fn one_ms_ticks_send_the_whole_flood_in_even_bursts() {
        let mut p = Pacer::new(50_000, Duration::from_secs(10));
        let bursts: Vec<u64> = (1..=10_000)
            .map(|ms| p.burst(Duration::from_millis(ms)))
            .collect();
        assert!(bursts.iter().all(|&b| b == 50));
        assert!(p.done());
        // A rate that does not divide into ticks still adds up.
        let mut p = Pacer::new(33_333, Duration::from_secs(2));
        let sum: u64 = (1..=2_000)
            .map(|ms| p.burst(Duration::from_millis(ms)))
            .sum();
        assert_eq!(sum, 66_666);
        assert!(p.done());
    }

    #[test]
    fn flood_messages_decode_as_voice1_freq_in_every_framing() {
        let check = |bytes: &[u8]| -> f32 {
            let packet = decode(bytes, &Limits::default()).unwrap();
            match messages(packet).as_slice() {
                [m] if m.addr == FLOOD_ADDR => match m.args.as_slice() {
                    [OscType::Float(f)] => *f,
                    other => panic!("arguments {other:?}"),
                },
                other => panic!("messages {other:?}"),
            }
        };
        let plain: Vec<f32> = flood_messages(None).iter().map(|m| check(m)).collect();
        assert_eq!(plain.len(), FLOOD_FREQS);
        assert_eq!(plain[0], 220.0);
        assert_eq!(plain[FLOOD_FREQS - 1], 880.0);
        for framing in [Framing::LengthPrefix, Framing::Slip] {
            let mut decoder = StreamDecoder::with_framing(framing, MAX_PACKET);
            for m in flood_messages(Some(framing)) {
                decoder.push(&m);
            }
            let framed: Vec<f32> = std::iter::from_fn(|| decoder.next_frame())
                .map(|f| check(&f.unwrap()))
                .collect();
            assert_eq!(framed, plain, "{framing}");
        }
    }

    #[test]
    fn counters_since_subtract_counts_but_keep_the_maximum() {
        let before = Counters {
            received: 10,
            rate_limited: 2,
            callback_max_us: 50.0,
            ..Counters::default()
        };
        let after = Counters {
            received: 110,
            rate_limited: 32,
            callback_max_us: 70.0,
            ..Counters::default()
        };
        let d = after.since(&before);
        assert_eq!((d.received, d.rate_limited), (100, 30));
        assert_eq!(d.callback_max_us, 70.0);
    }

    #[test]
    fn a_probe_splits_by_send_time_answered_or_not() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let probe = Probe {
            rtt_ms: vec![0.3, 9.0, 0.4],
            sent_at: vec![ms(10), ms(990), ms(1010)],
            sent: 5,
            unanswered: 2,
            unanswered_at: vec![ms(500), ms(2000)],
        };
        let (early, late) = probe.split(ms(1000));
        assert_eq!(
            (early.rtt_ms, early.sent, early.unanswered),
            (vec![0.3, 9.0], 3, 1)
        );
        assert_eq!((late.rtt_ms, late.sent, late.unanswered), (vec![0.4], 2, 1));
    }

    #[test]
    fn tcp_connects_from_the_chosen_loopback_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = v4(listener.local_addr().unwrap()).unwrap();
        let _client = tcp_connect_from(SYNC_FROM, to).unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V4(SYNC_FROM));
    }
}
