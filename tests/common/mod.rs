//! Drives the real chronusd binary: start, query, signal, stop. The library of the
//! end-to-end tests beside it; each test uses its own subset.

pub mod client;
pub mod drill;
pub mod jack;
pub mod pipewire;
pub mod pulse;
pub mod wyoming;

use chronus_osc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A binary of the workspace, built beside the test binaries (`target/<profile>/`).
fn workspace_binary(name: &str) -> String {
    let test = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash>
    let dir = test
        .parent()
        .and_then(Path::parent)
        .expect("a test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build -p chronusd -p chronusctl` first (scripts/test does)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// The daemon under test.
pub fn chronusd_exe() -> String {
    workspace_binary("chronusd")
}

/// Its control client.
pub fn chronusctl_exe() -> String {
    workspace_binary("chronusctl")
}

pub struct Daemon {
    pub child: Child,
    pub osc: SocketAddr,
    pub dir: PathBuf,
}

pub type Status = HashMap<String, OscType>;

/// How far workers render ahead in end-to-end tests (32 of the null clock's blocks of
/// 128 frames, 85 ms at 48 kHz), unless a test sets `CHRONUS_LOOKAHEAD_BLOCKS` itself.
pub const TEST_LOOKAHEAD_BLOCKS: &str = "32";

/// `Some(())` when `program` is installed; otherwise None (the test skips) outside
/// CI, and a failure under CI, where `scripts/deps.sh test` installs everything.
pub fn installed_or_skip(program: &str) -> Option<()> {
    if chronus_sound_servers::installed(program) {
        return Some(());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{program} is not installed: scripts/deps.sh test installs it"
    );
    eprintln!("SKIPPED: {program} is not installed (run scripts/deps.sh test)");
    None
}

/// A fresh scratch directory for this test run, left in place for inspection.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chronus-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port free for both UDP and TCP at the moment of asking (chronusd binds
/// OSC on both). Another process can still take it before the caller binds it.
pub fn free_udp_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Ports [`Daemon::start_with`] tries: one from [`free_udp_port`] is free when picked,
/// but any process on the machine may bind it before chronusd does, which then exits
/// saying so.
const OSC_PORT_ATTEMPTS: usize = 5;

impl Daemon {
    /// Starts chronusd with `env` on top of a hermetic environment, and waits
    /// until the audio runs with both slots in lockstep.
    pub fn start(name: &str, env: &[(&str, String)]) -> Daemon {
        Daemon::start_with(name, env, |_| {})
    }

    /// As [`Daemon::start`], with `configure` applied to the command last.
    pub fn start_with(
        name: &str,
        env: &[(&str, String)],
        configure: impl Fn(&mut Command),
    ) -> Daemon {
        let dir = scratch(name);
        for attempt in 1..=OSC_PORT_ATTEMPTS {
            let port = free_udp_port();
            let mut cmd = Command::new(chronusd_exe());
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("CHRONUS_OSC_PORT", port.to_string())
                .env("CHRONUS_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("chronusd.log")).unwrap());
            // Headroom: tests assert bit-equality and zero underruns, and must not depend on
            // the scheduler's mood on a busy machine. The tight figures are the benchmarks'.
            cmd.env("CHRONUS_LOOKAHEAD_BLOCKS", TEST_LOOKAHEAD_BLOCKS);
            for (k, v) in env {
                cmd.env(k, v);
            }
            configure(&mut cmd);
            let mut daemon = Daemon {
                child: cmd.spawn().expect("chronusd starts"),
                osc: SocketAddr::from(([127, 0, 0, 1], port)),
                dir: dir.clone(),
            };
            if attempt < OSC_PORT_ATTEMPTS && daemon.lost_its_port() {
                continue;
            }
            daemon.wait_until(
                "audio running with both slots in lockstep",
                Duration::from_secs(20),
                |s| both_lockstep(s) && long(s, "frames") > 0,
            );
            return daemon;
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Whether the daemon exited at startup because its OSC port was taken, rather
    /// than answering on it.
    fn lost_its_port(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.log().contains("cannot bind OSC");
            }
            if self.try_status().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("chronusd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn try_status(&self) -> Option<Status> {
        let packet = OscPacket::Message(OscMessage {
            addr: "/chronus/status".into(),
            args: vec![],
        });
        let reply = chronus_osc::request(
            self.osc,
            &packet,
            "/chronus/status.reply",
            Duration::from_millis(500),
        )
        .ok()?;
        let pairs = chronus_osc::status_pairs(&reply).ok()?;
        Some(pairs.into_iter().collect())
    }

    /// `/chronus/status` from a UDP socket bound to `source`, for tests that need
    /// the request to come from a particular loopback address.
    pub fn status_from(&self, source: IpAddr, timeout: Duration) -> Option<Status> {
        let socket = UdpSocket::bind((source, 0)).unwrap();
        socket.set_read_timeout(Some(timeout)).unwrap();
        let packet = OscPacket::Message(OscMessage {
            addr: "/chronus/status".into(),
            args: vec![],
        });
        socket
            .send_to(&chronus_osc::encode(&packet), self.osc)
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let Ok(n) = socket.recv(&mut buf) else {
                return None;
            };
            let Ok(packet) = chronus_osc::decode(&buf[..n], &chronus_osc::Limits::default()) else {
                continue;
            };
            if let Some(reply) = chronus_osc::messages(packet)
                .into_iter()
                .find(|m| m.addr == chronus_osc::STATUS_REPLY_ADDR)
            {
                return Some(
                    chronus_osc::status_pairs(&reply)
                        .ok()?
                        .into_iter()
                        .collect(),
                );
            }
        }
        None
    }

    pub fn status(&self) -> Status {
        self.try_status()
            .unwrap_or_else(|| panic!("no status reply; log:\n{}", self.log()))
    }

    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&Status) -> bool,
    ) -> Status {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "chronusd exited ({exit}) while waiting for {what}; log:\n{}",
                    self.log()
                );
            }
            if let Some(s) = self.try_status()
                && cond(&s)
            {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last status {:?}; log:\n{}",
                    self.try_status(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn send(&self, addr: &str, args: Vec<OscType>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let packet = OscPacket::Message(OscMessage {
            addr: addr.into(),
            args,
        });
        socket
            .send_to(&chronus_osc::encode(&packet), self.osc)
            .unwrap();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(self) -> (std::process::ExitStatus, Duration, String) {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `sig` and waits for the exit status.
    pub fn stop_with(mut self, sig: i32) -> (std::process::ExitStatus, Duration, String) {
        let started = Instant::now();
        signal(self.pid(), sig);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                return (status, started.elapsed(), log);
            }
            assert!(
                Instant::now() < deadline,
                "chronusd did not exit after signal {sig}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with plain integers.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

pub fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); look at its state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// An integer status figure: an `i`, or a counter's exact decimal digits.
pub fn long(s: &Status, key: &str) -> i64 {
    s.get(key)
        .and_then(chronus_osc::integer)
        .unwrap_or_else(|| panic!("status key {key} is {:?}", s.get(key)))
}

pub fn string(s: &Status, key: &str) -> String {
    match s.get(key) {
        Some(OscType::String(v)) => v.clone(),
        other => panic!("status key {key} is {other:?}"),
    }
}

pub fn both_lockstep(s: &Status) -> bool {
    string(s, "slot0_state") == "lockstep" && string(s, "slot1_state") == "lockstep"
}

pub fn active_pid(s: &Status) -> i32 {
    let active = long(s, "active_slot");
    long(s, &format!("slot{active}_pid")) as i32
}

pub fn standby_pid(s: &Status) -> i32 {
    let standby = 1 - long(s, "active_slot");
    long(s, &format!("slot{standby}_pid")) as i32
}

pub fn read_wav(path: &Path) -> (u32, Vec<f32>) {
    let mut reader =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = reader.spec().sample_rate;
    (rate, reader.samples::<f32>().map(Result::unwrap).collect())
}

/// Sends one message from `socket` to `to`.
pub fn send_from(socket: &UdpSocket, to: SocketAddr, addr: &str, args: Vec<OscType>) {
    let packet = OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    });
    socket.send_to(&chronus_osc::encode(&packet), to).unwrap();
}

/// The first message at `addr` that `socket` receives within `timeout` (bundles
/// flattened, other messages skipped), or `None`.
pub fn recv_at(socket: &UdpSocket, addr: &str, timeout: Duration) -> Option<OscMessage> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        let Ok(packet) = chronus_osc::decode(&buf[..len], &Default::default()) else {
            continue;
        };
        if let Some(m) = chronus_osc::messages(packet)
            .into_iter()
            .find(|m| m.addr == addr)
        {
            return Some(m);
        }
    }
}

/// Like [`recv_at`], panicking with `what` when nothing comes.
pub fn expect_at(socket: &UdpSocket, addr: &str, what: &str) -> OscMessage {
    recv_at(socket, addr, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no {addr} within 5 s: {what}"))
}

/// Renders `journal` with `chronusd render` into `dir` to exactly as many frames as the
/// interleaved stereo `live` recording holds; returns the reference samples.
pub fn render_journal(dir: &Path, journal: &Path, live: &[f32]) -> Vec<f32> {
    let out = dir.join("reference.wav");
    let rendered = Command::new(chronusd_exe())
        .arg("render")
        .arg(journal)
        .arg("--out")
        .arg(&out)
        .args(["--frames", &(live.len() / 2).to_string()])
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "chronusd render failed: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let (_, reference) = read_wav(&out);
    assert_eq!(
        reference.len(),
        live.len(),
        "the render is not as long as the recording"
    );
    reference
}

/// Samples that differ, bit for bit, between a recording and its reference.
pub fn altered_samples(live: &[f32], reference: &[f32]) -> usize {
    live.iter()
        .zip(reference)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count()
}

/// The OSC timetag of `at`.
pub fn timetag(at: SystemTime) -> OscTime {
    let since = at.duration_since(UNIX_EPOCH).unwrap();
    OscTime {
        seconds: (since.as_secs() + 2_208_988_800) as u32,
        fractional: ((u64::from(since.subsec_nanos()) << 32) / 1_000_000_000) as u32,
    }
}

/// A bundle of `messages`, encoded for one datagram.
pub fn bundle_at(timetag: OscTime, messages: Vec<(&str, Vec<OscType>)>) -> Vec<u8> {
    let content = messages
        .into_iter()
        .map(|(addr, args)| {
            OscPacket::Message(OscMessage {
                addr: addr.into(),
                args,
            })
        })
        .collect();
    chronus_osc::encode(&OscPacket::Bundle(OscBundle { timetag, content }))
}

/// Frames of the journal's entries for `addr`, from its score file (at 48 kHz).
pub fn journal_frames(path: &Path, addr: &str) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let packet =
            chronus_osc::decode(&bytes[pos + 4..pos + 4 + len], &Default::default()).unwrap();
        if let OscPacket::Bundle(b) = packet {
            let frame = (f64::from(b.timetag.seconds) * 48_000.0
                + f64::from(b.timetag.fractional) * 48_000.0 / 4_294_967_296.0)
                .round() as u64;
            for p in b.content {
                if matches!(&p, OscPacket::Message(m) if m.addr == addr) {
                    frames.push(frame);
                }
            }
        }
        pos += 4 + len;
    }
    frames
}

/// Where the device clock stands, measured from outside: a wall time and the frame the
/// device was handed then. `frames` steps when the device takes a buffer, and the first
/// frame of that buffer is the count before the step, so polling until it steps between
/// two quick round trips pins the moment to within one of them.
pub fn device_clock_edge(d: &Daemon) -> (SystemTime, u64) {
    let mut last: Option<(SystemTime, u64)> = None;
    for _ in 0..10_000 {
        let before = SystemTime::now();
        let frames = long(&d.status(), "frames") as u64;
        let after = SystemTime::now();
        if let Some((prev_before, prev_frames)) = last
            && frames != prev_frames
        {
            let window = after.duration_since(prev_before).unwrap();
            if window < Duration::from_millis(2) {
                return (prev_before + window / 2, prev_frames);
            }
        }
        last = Some((before, frames));
    }
    panic!("never caught the frames counter stepping between two quick status replies");
}

/// The resident set of process `pid`, in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A TCP connection from the loopback address `ip` (127.0.0.2 plays another client).
pub fn tcp_from(ip: [u8; 4], to: SocketAddr) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    std::net::TcpStream::from(socket)
}
