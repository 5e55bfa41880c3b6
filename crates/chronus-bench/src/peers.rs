//! Side by side with SuperCollider: scsynth on jackd2's dummy driver, then chronusd
//! on its null clock, at the same rate and period, each playing the same music (one
//! tone; 16 voices), with the CPU and wake-ups of each process tree over the same
//! window and the round trip of each one's status request.
//!
//! The SynthDefs scsynth plays are written by this module in the SynthDef2 file
//! format (SuperCollider's "Synth Definition File Format" help file) and sent with
//! `/d_recv`: nothing is downloaded.

use crate::daemon::Daemon;
use crate::hosts::{Host, Server};
use crate::steady::{clock_ticks_per_s, context_switches, cpu_ticks, runtime_ns};
use crate::synth::osc_arg;
use anyhow::{Context, Result, bail};
use chronus_dsp::demo::{Message, Value, held_pitch, held_voices};
use chronus_osc::{OscMessage, OscPacket, OscType};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const RATE: u32 = 48_000;
pub const PERIOD: u32 = 256;
/// The one tone's pitch, on both sides.
const TONE_HZ: f32 = 440.0;
/// Round trips of the status request timed for each peer.
const ROUND_TRIPS: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Music {
    /// One 440 Hz sine.
    Tone,
    /// Sixteen voices, each an oscillator through a resonant low-pass at its own pitch.
    Voices16,
}

impl Music {
    pub const ALL: [Music; 2] = [Music::Tone, Music::Voices16];

    pub fn name(self) -> &'static str {
        match self {
            Music::Tone => "one tone",
            Music::Voices16 => "16 voices",
        }
    }
}

/// One process's share of a window.
pub struct ProcessCpu {
    pub name: String,
    /// From the scheduler's run time of every thread (exact).
    pub cpu_percent: f64,
    /// From utime + stime (sampled at the timer tick).
    pub tick_percent: f64,
    pub wakeups_per_s: f64,
}

/// One peer playing one piece of music.
pub struct PeerRun {
    pub processes: Vec<ProcessCpu>,
    /// CPU time the machine's host took from it over the window (`steal` of
    /// `/proc/stat`, all CPUs), in % of one core.
    pub steal_percent: f64,
    /// Median and largest status round trip, in milliseconds.
    pub status_rtt_ms: (f64, f64),
    /// chronusd's underrun frames and failovers over the window (scsynth reports
    /// neither).
    pub glitches: Option<(i64, i64)>,
}

impl PeerRun {
    pub fn cpu_percent(&self) -> f64 {
        self.processes.iter().map(|p| p.cpu_percent).sum()
    }

    pub fn tick_percent(&self) -> f64 {
        self.processes.iter().map(|p| p.tick_percent).sum()
    }

    pub fn wakeups_per_s(&self) -> f64 {
        self.processes.iter().map(|p| p.wakeups_per_s).sum()
    }
}

pub struct PeersRow {
    /// From 1.
    pub round: u32,
    pub music: Music,
    pub scsynth: PeerRun,
    pub chronus: PeerRun,
}

pub struct PeersBench {
    pub rows: Vec<PeersRow>,
    pub warmup: Duration,
    pub window: Duration,
    pub scsynth_version: String,
}

pub fn run(
    exe: &Path,
    dir: &Path,
    warmup: Duration,
    window: Duration,
    rounds: u32,
) -> Result<PeersBench> {
    let scsynth_version = scsynth_version()?;
    let mut rows = Vec::new();
    for round in 1..=rounds {
        for music in Music::ALL {
            let name = format!("{}-{round}", music.name().replace(' ', "-"));
            let sc_dir = dir.join(format!("scsynth-{name}"));
            let ch_dir = dir.join(format!("chronusd-{name}"));
            std::fs::create_dir_all(&sc_dir)?;
            std::fs::create_dir_all(&ch_dir)?;
            let scsynth = || {
                eprintln!(
                    "chronus-bench: round {round}, scsynth on jackd, {}",
                    music.name()
                );
                measure_scsynth(&sc_dir, music, warmup, window)
            };
            let chronus = || {
                eprintln!("chronus-bench: round {round}, chronusd, {}", music.name());
                measure_chronusd(exe, &ch_dir, music, warmup, window)
            };
            // Who goes first alternates, so that a drift of the machine over a round
            // does not always favour the same side.
            let (scsynth, chronus) = if round % 2 == 1 {
                let sc = scsynth()?;
                (sc, chronus()?)
            } else {
                let ch = chronus()?;
                (scsynth()?, ch)
            };
            rows.push(PeersRow {
                round,
                music,
                scsynth,
                chronus,
            });
        }
    }
    Ok(PeersBench {
        rows,
        warmup,
        window,
        scsynth_version,
    })
}

impl PeersBench {
    /// Per piece: the median of the rounds' CPU ratios (chronusd / scsynth + jackd),
    /// the lowest and the highest.
    pub fn ratios(&self, music: Music) -> Option<(f64, f64, f64)> {
        let mut r: Vec<f64> = self
            .rows
            .iter()
            .filter(|row| row.music == music)
            .map(PeersRow::ratio)
            .collect();
        r.sort_by(f64::total_cmp);
        Some((median(&r)?, *r.first()?, *r.last()?))
    }
}

impl PeersRow {
    pub fn ratio(&self) -> f64 {
        self.chronus.cpu_percent() / self.scsynth.cpu_percent().max(1e-9)
    }
}

/// The middle of sorted `v` (the mean of the two middle values for an even count).
fn median(v: &[f64]) -> Option<f64> {
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn scsynth_version() -> Result<String> {
    let out = Command::new("scsynth")
        .arg("-v")
        .output()
        .context("running scsynth -v (scripts/deps.sh bench installs supercollider-server)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("scsynth").trim().to_owned())
}

/// scsynth killed and reaped when dropped.
struct Scsynth {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Scsynth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn measure_scsynth(
    dir: &Path,
    music: Music,
    warmup: Duration,
    window: Duration,
) -> Result<PeerRun> {
    let jack = Server::start(Host::Jack, dir, PERIOD)?;
    let port = crate::daemon::free_osc_port()?;
    let mut cmd = Command::new("scsynth");
    cmd.args([
        "-u",
        &port.to_string(),
        "-i",
        "0",
        "-o",
        "2",
        "-R",
        "0",
        "-l",
        "1",
    ])
    .args(["-S", &RATE.to_string(), "-Z", &PERIOD.to_string()])
    .envs(
        jack.daemon_env()
            .into_iter()
            .filter(|(k, _)| k.starts_with("JACK_")),
    )
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(dir.join("scsynth.log"))?)
    .stderr(std::fs::File::create(dir.join("scsynth.err"))?);
    let mut sc = Scsynth {
        child: cmd.spawn().context("starting scsynth")?,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sc_request(&socket, sc.addr, "/status", vec![], "/status.reply").is_err() {
        if let Some(status) = sc.child.try_wait()? {
            bail!(
                "scsynth exited with {status}: {}",
                std::fs::read_to_string(dir.join("scsynth.err")).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!("scsynth never answered /status");
        }
    }
    sc_request(
        &socket,
        sc.addr,
        "/d_recv",
        vec![OscType::Blob(synthdefs())],
        "/done",
    )?;
    for (i, freq) in voices(music).into_iter().enumerate() {
        let (def, mut args) = match music {
            Music::Tone => ("chronus-tone", vec![]),
            Music::Voices16 => (
                "chronus-voice",
                vec![OscType::String("cutoff".into()), OscType::Float(2000.0)],
            ),
        };
        args.splice(
            0..0,
            [
                OscType::String(def.into()),
                OscType::Int(1000 + i as i32),
                OscType::Int(0),
                OscType::Int(0),
                OscType::String("freq".into()),
                OscType::Float(freq),
                OscType::String("amp".into()),
                OscType::Float(amp(music)),
            ],
        );
        send(&socket, sc.addr, "/s_new", args)?;
    }
    // /sync waits for the /s_new before it: the synths exist when the window opens.
    sc_request(&socket, sc.addr, "/sync", vec![OscType::Int(1)], "/synced")?;
    std::thread::sleep(warmup);
    let jackd = jack.jackd_pid().context("jackd has no pid")?;
    let pids = [("jackd", jackd), ("scsynth", sc.child.id() as i32)];
    let (processes, steal_percent) = window_of(&pids, window)?;
    let status_rtt_ms =
        round_trips(|| sc_request(&socket, sc.addr, "/status", vec![], "/status.reply").map(drop))?;
    if let Some(status) = sc.child.try_wait()? {
        bail!("scsynth exited during the window with {status}");
    }
    Ok(PeerRun {
        processes,
        steal_percent,
        status_rtt_ms,
        glitches: None,
    })
}

fn measure_chronusd(
    exe: &Path,
    dir: &Path,
    music: Music,
    warmup: Duration,
    window: Duration,
) -> Result<PeerRun> {
    let env = [
        ("CHRONUS_SAMPLE_RATE", RATE.to_string()),
        ("CHRONUS_BUFFER_SIZE", PERIOD.to_string()),
        ("CHRONUS_NUM_VOICES", "16".to_string()),
    ];
    let mut d = Daemon::start_with_env(exe, dir, &env)?;
    let piece = match music {
        Music::Tone => vec![
            message("/mod/voice1/freq", Value::Float(TONE_HZ.into())),
            message("/mod/voice1/amp", Value::Float(amp(music).into())),
            message("/gate/voice1", Value::Int(1)),
        ],
        Music::Voices16 => held_voices(16, amp(music)),
    };
    for m in piece {
        let args = m.args.iter().map(osc_arg).collect::<Result<_>>()?;
        d.send(&m.address, args)?;
    }
    std::thread::sleep(warmup);
    let s = d.status()?;
    let pids = [
        ("chronusd supervisor", d.pid()),
        ("worker", s.slot_pid(0)?),
        ("worker", s.slot_pid(1)?),
    ];
    let (processes, steal_percent) = window_of(&pids, window)?;
    let osc = d.osc_addr();
    let status_rtt_ms = round_trips(|| {
        crate::daemon::query_status(osc)
            .map(drop)
            .context("no /chronus/status reply")
    })?;
    let after = d.status()?;
    // Counted and reported, not fatal: a host stealing both CPUs for a period can
    // starve both workers, and the rounds before are worth keeping.
    let glitches = (
        after.int("underrun_frames")? - s.int("underrun_frames")?,
        after.int("failovers")? - s.int("failovers")?,
    );
    d.stop()?;
    Ok(PeerRun {
        processes,
        steal_percent,
        status_rtt_ms,
        glitches: Some(glitches),
    })
}

/// The pitches scsynth plays: those of chronusd's piece.
fn voices(music: Music) -> Vec<f32> {
    match music {
        Music::Tone => vec![TONE_HZ],
        Music::Voices16 => (0..16).map(held_pitch).collect(),
    }
}

fn message(address: &str, value: Value) -> Message {
    Message {
        address: address.to_owned(),
        args: vec![value],
    }
}

fn amp(music: Music) -> f32 {
    match music {
        Music::Tone => 0.3,
        Music::Voices16 => 0.05,
    }
}

/// Each process's CPU (all its threads) and context switches over `window`, and the
/// CPU time the host took from the machine meanwhile (% of one core).
fn window_of(pids: &[(&str, i32)], window: Duration) -> Result<(Vec<ProcessCpu>, f64)> {
    let hz = clock_ticks_per_s()?;
    let sample = || -> Result<Vec<(u64, u64, u64)>> {
        pids.iter()
            .map(|&(_, pid)| Ok((runtime_ns(pid)?, cpu_ticks(pid)?, context_switches(pid)?)))
            .collect()
    };
    let (a, steal, started) = (sample()?, crate::machine::Steal::now(), Instant::now());
    std::thread::sleep(window);
    let (b, secs) = (sample()?, started.elapsed().as_secs_f64());
    let processes = pids
        .iter()
        .zip(a.iter().zip(&b))
        .map(|(&(name, _), (a, b))| ProcessCpu {
            name: name.to_owned(),
            cpu_percent: (b.0 - a.0) as f64 / 1e9 / secs * 100.0,
            tick_percent: (b.1 - a.1) as f64 / hz as f64 / secs * 100.0,
            wakeups_per_s: (b.2 - a.2) as f64 / secs,
        })
        .collect();
    let steal_percent = steal.since().map_or(0.0, |s| s / secs * 100.0);
    Ok((processes, steal_percent))
}

/// (median, max) of `ROUND_TRIPS` timed calls, in milliseconds.
fn round_trips(mut call: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    let mut ms = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        call()?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(20));
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], ms[ms.len() - 1]))
}

fn send(socket: &UdpSocket, to: SocketAddr, addr: &str, args: Vec<OscType>) -> Result<()> {
    let packet = OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    });
    socket.send_to(&chronus_osc::encode(&packet), to)?;
    Ok(())
}

/// Sends a message and waits (up to 5 s) for a reply at `reply`.
fn sc_request(
    socket: &UdpSocket,
    to: SocketAddr,
    addr: &str,
    args: Vec<OscType>,
    reply: &str,
) -> Result<OscMessage> {
    send(socket, to, addr, args)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        let Ok((n, _)) = socket.recv_from(&mut buf) else {
            if addr == "/status" {
                bail!("no /status.reply yet");
            }
            continue;
        };
        if let Ok(OscPacket::Message(m)) =
            chronus_osc::decode(&buf[..n], &chronus_osc::Limits::default())
        {
            if m.addr == reply {
                return Ok(m);
            }
            if m.addr == "/fail" {
                bail!("scsynth refused {addr}: {:?}", m.args);
            }
        }
    }
    bail!("scsynth did not answer {addr} with {reply}")
}

// ---- SynthDef2 ----------------------------------------------------------------

/// Both SynthDefs in one SynthDef2 file.
pub fn synthdefs() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"SCgf");
    out.extend_from_slice(&2i32.to_be_bytes());
    out.extend_from_slice(&2i16.to_be_bytes());
    tone_def(&mut out);
    voice_def(&mut out);
    out
}

const CONTROL: u8 = 1;
const AUDIO: u8 = 2;

/// An input: the output `1` of unit generator `0`, or constant `1` when `0` is -1.
type Input = (i32, i32);
const fn constant(index: i32) -> Input {
    (-1, index)
}

struct UGen {
    class: &'static str,
    rate: u8,
    inputs: Vec<Input>,
    outputs: Vec<u8>,
    special: i16,
}

fn pstring(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn def(out: &mut Vec<u8>, name: &str, constants: &[f32], params: &[(&str, f32)], ugens: &[UGen]) {
    pstring(out, name);
    out.extend_from_slice(&(constants.len() as i32).to_be_bytes());
    for c in constants {
        out.extend_from_slice(&c.to_be_bytes());
    }
    out.extend_from_slice(&(params.len() as i32).to_be_bytes());
    for (_, value) in params {
        out.extend_from_slice(&value.to_be_bytes());
    }
    out.extend_from_slice(&(params.len() as i32).to_be_bytes());
    for (i, (name, _)) in params.iter().enumerate() {
        pstring(out, name);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    }
    out.extend_from_slice(&(ugens.len() as i32).to_be_bytes());
    for u in ugens {
        pstring(out, u.class);
        out.push(u.rate);
        out.extend_from_slice(&(u.inputs.len() as i32).to_be_bytes());
        out.extend_from_slice(&(u.outputs.len() as i32).to_be_bytes());
        out.extend_from_slice(&u.special.to_be_bytes());
        for (ugen, index) in &u.inputs {
            out.extend_from_slice(&ugen.to_be_bytes());
            out.extend_from_slice(&index.to_be_bytes());
        }
        out.extend_from_slice(&u.outputs);
    }
    // No variants.
    out.extend_from_slice(&0i16.to_be_bytes());
}

/// `Out.ar(0, SinOsc.ar(freq) * amp ! 2)`.
fn tone_def(out: &mut Vec<u8>) {
    let ugens = [
        UGen {
            class: "Control",
            rate: CONTROL,
            inputs: vec![],
            outputs: vec![CONTROL, CONTROL],
            special: 0,
        },
        UGen {
            class: "SinOsc",
            rate: AUDIO,
            inputs: vec![(0, 0), constant(0)],
            outputs: vec![AUDIO],
            special: 0,
        },
        // BinaryOpUGen special index 2 is multiplication.
        UGen {
            class: "BinaryOpUGen",
            rate: AUDIO,
            inputs: vec![(1, 0), (0, 1)],
            outputs: vec![AUDIO],
            special: 2,
        },
        UGen {
            class: "Out",
            rate: AUDIO,
            inputs: vec![constant(0), (2, 0), (2, 0)],
            outputs: vec![],
            special: 0,
        },
    ];
    def(
        out,
        "chronus-tone",
        &[0.0],
        &[("freq", 440.0), ("amp", 0.1)],
        &ugens,
    );
}

/// `Out.ar(0, RLPF.ar(Saw.ar(freq), cutoff, 0.5) * amp ! 2)`: an oscillator through
/// a resonant filter, like one of chronusd's voices.
fn voice_def(out: &mut Vec<u8>) {
    let ugens = [
        UGen {
            class: "Control",
            rate: CONTROL,
            inputs: vec![],
            outputs: vec![CONTROL, CONTROL, CONTROL],
            special: 0,
        },
        UGen {
            class: "Saw",
            rate: AUDIO,
            inputs: vec![(0, 0)],
            outputs: vec![AUDIO],
            special: 0,
        },
        UGen {
            class: "RLPF",
            rate: AUDIO,
            inputs: vec![(1, 0), (0, 2), constant(1)],
            outputs: vec![AUDIO],
            special: 0,
        },
        UGen {
            class: "BinaryOpUGen",
            rate: AUDIO,
            inputs: vec![(2, 0), (0, 1)],
            outputs: vec![AUDIO],
            special: 2,
        },
        UGen {
            class: "Out",
            rate: AUDIO,
            inputs: vec![constant(0), (3, 0), (3, 0)],
            outputs: vec![],
            special: 0,
        },
    ];
    def(
        out,
        "chronus-voice",
        &[0.0, 0.5],
        &[("freq", 440.0), ("amp", 0.1), ("cutoff", 2000.0)],
        &ugens,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_and_an_even_count() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, 2.0, 9.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 3.0, 9.0]), Some(2.5));
    }

    #[test]
    fn the_synthdef_file_starts_with_its_header_and_names_both_defs() {
        let file = synthdefs();
        assert_eq!(&file[..4], b"SCgf");
        assert_eq!(i32::from_be_bytes(file[4..8].try_into().unwrap()), 2);
        assert_eq!(i16::from_be_bytes(file[8..10].try_into().unwrap()), 2);
        assert_eq!(file[10] as usize, "chronus-tone".len());
        assert_eq!(&file[11..23], b"chronus-tone");
        let text = String::from_utf8_lossy(&file);
        for name in ["chronus-voice", "SinOsc", "RLPF", "Saw", "Out", "Control"] {
            assert!(text.contains(name), "{name}");
        }
    }
}
