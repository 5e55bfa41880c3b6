//! Speech through the daemon with its default engine (espeak-ng run once per
//! request): request to the first speech sample handed to the device, uncached and
//! cached, and the daemon's memory across 10,000 requests; then the same first-sample
//! figure through a Wyoming TTS service on loopback TCP (the tests' service on the
//! official `wyoming` package, wrapping the same espeak-ng and sending its audio in
//! chunks as it is synthesised), which the daemon plays from the first chunk.
//!
//! "First sample at the output" is the daemon's `/chronus/tts/start`, sent on the tick
//! after the device's play position passed the utterance's first frame; the client
//! times it from just before sending `/chronus/tts/say`.

use crate::daemon::Daemon;
use anyhow::{Context, Result, bail};
use chronus_osc::{OscMessage, OscPacket, OscType};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

/// Replies a request may take at most (synthesis, queue and playback).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests sent together in the memory run: what the daemon's queue holds.
pub const WINDOW: usize = 16;

pub struct SpeechRun {
    /// Say → `/chronus/tts/start`, a new phrase each time (espeak-ng runs).
    pub uncached_ms: Vec<f64>,
    /// The same, for a phrase the cache holds.
    pub cached_ms: Vec<f64>,
    /// The daemon's own figure for the last uncached request (`tts_first_sample_ms`).
    pub daemon_first_sample_ms: f64,
    /// Say → start for a new long sentence (about 6 s of speech), one-shot espeak-ng.
    pub long_ms: Vec<f64>,
    /// The same two measures through the Wyoming TCP service.
    pub wyoming: Option<WyomingRun>,
    pub requests: usize,
    /// (requests answered, VmRSS of the supervisor, its threads) about every
    /// `rss_every` requests.
    pub rss_kb: Vec<(usize, u64, u64)>,
    pub rss_every: usize,
    /// Of the memory run's requests: spoken, stopped (failed by `/chronus/tts/stop`), other failures.
    pub answered: (u64, u64, u64),
    pub cache: (i64, i64, i64, i64),
    pub underrun_frames: i64,
    pub engine_restarts: i64,
}

pub struct WyomingRun {
    pub uncached_ms: Vec<f64>,
    pub long_ms: Vec<f64>,
    pub stream_gaps: i64,
    pub underrun_frames: i64,
}

/// A short phrase, new each time.
fn short_phrase(i: usize) -> String {
    format!("announcement number {i}")
}

/// A long sentence, new each time.
fn long_sentence(i: usize) -> String {
    format!(
        "announcement number {i}: the next set begins in a few minutes, so please take \
         your seats, keep the aisles clear, and enjoy the music while we get ready"
    )
}

struct Client {
    socket: UdpSocket,
    to: SocketAddr,
}

impl Client {
    fn new(to: SocketAddr) -> Result<Client> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(Client { socket, to })
    }

    fn send(&self, addr: &str, args: Vec<OscType>) -> Result<()> {
        let packet = OscPacket::Message(OscMessage {
            addr: addr.into(),
            args,
        });
        self.socket
            .send_to(&chronus_osc::encode(&packet), self.to)
            .context("sending to chronusd")?;
        Ok(())
    }

    fn say(&self, text: &str, id: i32) -> Result<()> {
        self.send(
            "/chronus/tts/say",
            vec![
                OscType::String(text.into()),
                OscType::String(String::new()),
                OscType::Int(id),
            ],
        )
    }

    /// The next message for which `wanted` holds.
    fn expect(&self, what: &str, wanted: impl Fn(&OscMessage) -> bool) -> Result<OscMessage> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let Ok(packet) = chronus_osc::decode(&buf[..n], &chronus_osc::Limits::default()) else {
                continue;
            };
            for m in chronus_osc::messages(packet) {
                if m.addr == "/chronus/fail" && !wanted(&m) {
                    bail!("{what}: chronusd refused: {:?}", m.args);
                }
                if wanted(&m) {
                    return Ok(m);
                }
            }
        }
        bail!("no {what} within {REPLY_TIMEOUT:?}")
    }
}

fn reply_for(addr: &'static str, id: i32) -> impl Fn(&OscMessage) -> bool {
    move |m| m.addr == addr && m.args.first() == Some(&OscType::Int(id))
}

/// Say `text`, time the first sample, then cut it short and wait for its end.
fn first_sample(c: &Client, text: &str, id: i32) -> Result<f64> {
    let t = Instant::now();
    c.say(text, id)?;
    c.expect("/chronus/tts/start", reply_for("/chronus/tts/start", id))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    c.send("/chronus/tts/stop", vec![])?;
    c.expect("/chronus/tts/done", reply_for("/chronus/tts/done", id))?;
    Ok(ms)
}

/// [`first_sample`] of `n` new texts, with ids from `first_id` on.
fn first_samples(
    c: &Client,
    n: usize,
    text: fn(usize) -> String,
    first_id: i32,
) -> Result<Vec<f64>> {
    (0..n)
        .map(|i| first_sample(c, &text(i), first_id + i as i32))
        .collect()
}

/// VmRSS in KiB and the thread count, from `/proc/<pid>/status`.
fn memory(pid: i32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{path}: no {key}"))
    };
    Ok((field("VmRSS:")?, field("Threads:")?))
}

pub fn run(exe: &Path, dir: &Path, samples: usize, requests: usize) -> Result<SpeechRun> {
    let mut d = Daemon::start(exe, dir, None)?;
    d.play_tone()?;
    let c = Client::new(d.osc_addr())?;
    // Warm the page cache and espeak-ng's data files.
    first_sample(&c, "warm up", 0)?;

    let uncached_ms = first_samples(&c, samples, short_phrase, 1000)?;
    let daemon_first_sample_ms = d.status()?.float("tts_first_sample_ms")?;
    let long_ms = first_samples(&c, samples, long_sentence, 2000)?;
    let mut cached_ms = Vec::with_capacity(samples);
    for i in 0..samples {
        cached_ms.push(first_sample(&c, "announcement number 7", 5000 + i as i32)?);
    }

    // Memory: windows of requests over 100 phrases (the cache holds 50, so about half
    // are misses that run espeak-ng and evict); each window is cut short by a stop.
    let rss_every = requests / 10;
    let (kb, threads) = memory(d.pid())?;
    let mut rss_kb = vec![(0, kb, threads)];
    let (mut spoken, mut stopped, mut failed) = (0u64, 0u64, 0u64);
    let mut sent = 0;
    while sent < requests {
        let n = WINDOW.min(requests - sent);
        let ids: Vec<i32> = (0..n).map(|k| 100_000 + (sent + k) as i32).collect();
        for (k, &id) in ids.iter().enumerate() {
            c.say(&format!("phrase {}", (sent + k) % 100), id)?;
        }
        c.expect("/chronus/tts/start", |m| m.addr == "/chronus/tts/start")?;
        c.send("/chronus/tts/stop", vec![])?;
        let mut left: std::collections::HashSet<i32> = ids.into_iter().collect();
        while !left.is_empty() {
            let m = c.expect("an answer", |m| {
                m.addr == "/chronus/tts/done" || m.addr == "/chronus/fail"
            })?;
            let id = match (m.addr.as_str(), m.args.as_slice()) {
                ("/chronus/tts/done", [OscType::Int(id)]) => {
                    spoken += 1;
                    *id
                }
                ("/chronus/fail", [_, OscType::String(reason)]) => {
                    if reason.contains("stopped") {
                        stopped += 1;
                    } else {
                        failed += 1;
                    }
                    reason
                        .strip_prefix("request ")
                        .and_then(|r| r.split(':').next())
                        .and_then(|id| id.parse().ok())
                        .context("a failure that names no request")?
                }
                _ => continue,
            };
            left.remove(&id);
        }
        let before = sent;
        sent += n;
        if sent / rss_every != before / rss_every {
            let (kb, threads) = memory(d.pid())?;
            rss_kb.push((sent, kb, threads));
        }
    }
    let s = d.status()?;
    let run = SpeechRun {
        uncached_ms,
        cached_ms,
        daemon_first_sample_ms,
        long_ms,
        wyoming: None,
        requests,
        rss_kb,
        rss_every,
        answered: (spoken, stopped, failed),
        cache: (
            s.int("tts_cache_entries")?,
            s.int("tts_cache_hits")?,
            s.int("tts_cache_misses")?,
            s.int("tts_cache_evictions")?,
        ),
        underrun_frames: s.int("underrun_frames")?,
        engine_restarts: s.int("speech_engine_restarts")?,
    };
    let exit = d.stop()?;
    if !exit.success() {
        bail!("chronusd exited with {exit} after the speech run");
    }
    let wyoming = run_wyoming(exe, dir, samples)?;
    Ok(SpeechRun {
        wyoming: Some(wyoming),
        ..run
    })
}

/// The tests' Wyoming services, run by the tests' venv (`scripts/deps.sh bench`
/// makes it).
const SERVICES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/wyoming/services.py"
);
const VENV_PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.test-venv/bin/python");

/// A Wyoming TTS service on loopback TCP, killed when dropped.
struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_wyoming(exe: &Path, dir: &Path, samples: usize) -> Result<WyomingRun> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let uri = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("wyoming-tts.log"))?;
    let _service = Service(
        std::process::Command::new(VENV_PYTHON)
            .args([SERVICES, "tts", "--uri", &uri])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {SERVICES} with {VENV_PYTHON} (scripts/deps.sh bench makes the venv)"
                )
            })?,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the Wyoming TTS service did not listen on {uri}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let wyoming_dir = dir.join("wyoming");
    std::fs::create_dir_all(&wyoming_dir)?;
    let mut d = Daemon::start_with_env(exe, &wyoming_dir, &[("CHRONUS_TTS_URI", uri)])?;
    d.play_tone()?;
    let c = Client::new(d.osc_addr())?;
    first_sample(&c, "warm up", 0)?;
    let uncached_ms = first_samples(&c, samples, short_phrase, 1000)?;
    let long_ms = first_samples(&c, samples, long_sentence, 2000)?;
    let s = d.status()?;
    let run = WyomingRun {
        uncached_ms,
        long_ms,
        stream_gaps: s.int("tts_stream_gaps")?,
        underrun_frames: s.int("underrun_frames")?,
    };
    let exit = d.stop()?;
    if !exit.success() {
        bail!("chronusd exited with {exit} after the Wyoming speech run");
    }
    Ok(run)
}
