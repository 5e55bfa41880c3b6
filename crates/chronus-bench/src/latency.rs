//! How long a note sent without a timetag takes to reach the device: OSC → the
//! audio callback handing its first sample to the sound system, per host and period.
//!
//! Each trial sends `/gate/voice1 1` untimed at a known instant, closes the gate,
//! then opens it again in a bundle timetagged a known instant ahead (twice the
//! lookahead and 10 ms). The daemon
//! places a timetag on the frame being handed to the device at that instant, so
//! the timed note's first frame in the daemon's own recording (`CHRONUS_RECORD`,
//! exactly what the callback handed over) ties frames to the clock; the untimed
//! note's first frame, counted from it, gives the instant that note reached the
//! device. Both notes start from silence with the same envelope, so the onset
//! detector's bias cancels. A reference note also comes before the first trial,
//! and each reference must land as far from the one before as their timetags are
//! apart: else the device's timeline stepped between them and the trial's tie is
//! broken (said so in the report, not hidden).

use crate::daemon::{Daemon, Recording};
use crate::hosts::{Host, Server};
use anyhow::{Context, Result, bail};
use chronus_osc::{OscBundle, OscMessage, OscPacket, OscType};
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, SystemTime};

const RATE: u32 = 48_000;
/// How far beyond twice the lookahead the timed reference note is scheduled: safely
/// past what is rendered, and close, because the daemon places a timetag by the
/// nominal rate and a device clock a few percent off would otherwise skew the tie.
const REFERENCE_MARGIN: Duration = Duration::from_millis(10);
/// How long each note is held and how long the release then has to reach silence.
const HOLD: Duration = Duration::from_millis(60);
const QUIET: Duration = Duration::from_millis(120);
/// A sample at or below this is silence; the first above it after silence is an onset
/// (the envelope's release ends at exactly zero).
const SILENT: f32 = 1e-7;

/// Where the daemon plays in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The built-in timer clock.
    Null,
    Server(Host),
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Null => "null (timer clock)",
            Target::Server(host) => host.name(),
        }
    }
}

/// jackd's own default period, which `auto` leaves JACK at.
const JACKD_DEFAULT_PERIOD: u32 = 1024;

/// One host at one period: what each untimed note took, in milliseconds.
pub struct LatencyRun {
    pub target: Target,
    /// The period asked for; `None` left `audio.buffer_size` at `auto`.
    pub asked: Option<u32>,
    /// The device buffer and lookahead the daemon chose (from its status).
    pub buffer_frames: i64,
    pub block_frames: i64,
    pub lookahead_frames: i64,
    pub latencies_ms: Vec<f64>,
    /// The same, to the start of the callback that handed the note's first frame over
    /// (callbacks taken to start every device buffer from frame 0, as on the null
    /// clock, ALSA and JACK; PulseAudio and PipeWire may call back with other sizes).
    pub handover_ms: Vec<f64>,
    /// Per note: whether a device callback came late (status `late_callbacks`) between
    /// the send and three periods and a millisecond after it, the longest a note
    /// may take.
    pub held_up: Vec<bool>,
    /// Per note: whether its reference did not land as far from the one before as
    /// their timetags are apart (within a period): the device's timeline stepped
    /// between them, and this note's figure does not measure it.
    pub tie_broken: Vec<bool>,
    pub underrun_frames: i64,
}

pub struct LatencyBench {
    pub runs: Vec<LatencyRun>,
    pub notes: usize,
    pub skipped: Vec<(Target, String)>,
}

pub fn run(exe: &Path, dir: &Path, periods: &[Option<u32>], notes: usize) -> Result<LatencyBench> {
    let mut bench = LatencyBench {
        runs: Vec::new(),
        notes,
        skipped: Vec::new(),
    };
    let targets = std::iter::once(Target::Null).chain(Host::ALL.into_iter().map(Target::Server));
    for target in targets {
        for &asked in periods {
            let label = asked.map_or("auto".to_string(), |p| p.to_string());
            let run_dir = dir.join(format!(
                "{}-{label}",
                target.name().replace([' ', '(', ')'], "")
            ));
            std::fs::create_dir_all(&run_dir)?;
            eprintln!(
                "chronus-bench: latency through {} at {label} frames",
                target.name()
            );
            let server_period = asked.unwrap_or(JACKD_DEFAULT_PERIOD);
            let server = match target {
                Target::Null => None,
                Target::Server(host) => match Server::start(host, &run_dir, server_period) {
                    Ok(server) => Some(server),
                    Err(e) => {
                        bench.skipped.push((target, format!("{e:#}")));
                        break;
                    }
                },
            };
            let mut env = server.as_ref().map(Server::daemon_env).unwrap_or_default();
            if server.is_some() {
                env.push(("CHRONUS_AUDIO_BACKEND", "cpal".into()));
            }
            if let Some(period) = asked {
                env.push(("CHRONUS_BUFFER_SIZE", period.to_string()));
            }
            env.push(("HOME", run_dir.display().to_string()));
            match measure(exe, &run_dir, target, asked, notes, &env) {
                Ok(run) => bench.runs.push(run),
                Err(e) => bench
                    .skipped
                    .push((target, format!("at {label} frames: {e:#}"))),
            }
        }
    }
    Ok(bench)
}

fn measure(
    exe: &Path,
    dir: &Path,
    target: Target,
    asked: Option<u32>,
    notes: usize,
    env: &[(&str, String)],
) -> Result<LatencyRun> {
    let recording = Recording::in_dir(dir);
    let mut d = Daemon::start_recording_with_env(exe, dir, &recording, env)?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let to = d.osc_addr();
    let send = |packet: &OscPacket| -> Result<()> {
        socket.send_to(&chronus_osc::encode(packet), to)?;
        Ok(())
    };
    let gate = |on: i32| {
        OscPacket::Message(OscMessage {
            addr: "/gate/voice1".into(),
            args: vec![OscType::Int(on)],
        })
    };
    // A short release, so that each note ends in silence well before the next.
    for (addr, value) in [
        ("/mod/voice1/freq", 440.0),
        ("/mod/voice1/adsr/attack", 0.005),
        ("/mod/voice1/adsr/release", 0.01),
    ] {
        send(&OscPacket::Message(OscMessage {
            addr: addr.into(),
            args: vec![OscType::Float(value)],
        }))?;
    }
    wait_for_real_time(&mut d)?;
    let before = d.status()?;
    let lookahead = before.int("lookahead_frames")? as f64 / f64::from(RATE);
    let reference_ahead = Duration::from_secs_f64(2.0 * lookahead) + REFERENCE_MARGIN;
    let buffer_frames = before.int("buffer_frames")?;
    let period = buffer_frames as f64 / f64::from(RATE);
    let bound = Duration::from_secs_f64(3.0 * period) + Duration::from_millis(1);
    // A note timetagged `reference_ahead` from now, held and released; returns its instant.
    let reference = || -> Result<SystemTime> {
        let at = SystemTime::now() + reference_ahead;
        send(&OscPacket::Bundle(OscBundle {
            timetag: chronus_osc::system_time_to_timetag(at).context("the clock is before 1900")?,
            content: vec![gate(1)],
        }))?;
        std::thread::sleep(reference_ahead + HOLD);
        send(&gate(0))?;
        std::thread::sleep(QUIET);
        Ok(at)
    };
    // Each trial's tie is checked against the one before it, the first against this.
    let first_reference = reference()?;
    // (untimed send instant, timed reference instant) per trial.
    let mut sent = Vec::with_capacity(notes);
    let mut held_up = Vec::with_capacity(notes);
    for _ in 0..notes {
        let late_before = d.status()?.int("late_callbacks")?;
        let untimed = SystemTime::now();
        send(&gate(1))?;
        std::thread::sleep(bound);
        held_up.push(d.status()?.int("late_callbacks")? > late_before);
        std::thread::sleep(HOLD.saturating_sub(bound));
        send(&gate(0))?;
        std::thread::sleep(QUIET);
        sent.push((untimed, reference()?));
    }
    let after = d.status()?;
    d.stop()?;
    let samples = read_left(&recording.wav)?;
    // A stream that calls back slower than the clock makes every figure meaningless.
    let played = after.int("frames")? - before.int("frames")?;
    let wall = after.float("uptime_s")? - before.float("uptime_s")?;
    let speed = played as f64 / f64::from(RATE) / wall;
    if !(0.95..=1.05).contains(&speed) {
        bail!(
            "the device took {played} frames in {wall:.2} s, {speed:.2} x real time: its clock \
             does not run at the period asked for"
        );
    }
    let onsets = onsets(&samples);
    if onsets.len() != 2 * notes + 1 {
        bail!(
            "found {} note onsets in {}, expected {}",
            onsets.len(),
            recording.wav.display(),
            2 * notes + 1
        );
    }
    // A trial's tie stands if its reference lands as far from the one before as their
    // timetags are apart, within a period: else the device's timeline stepped (a
    // stall it did not catch up on) somewhere between them, under the untimed note.
    let references = std::iter::once((first_reference, onsets[0]))
        .chain(
            sent.iter()
                .zip(onsets[2..].iter().step_by(2))
                .map(|(&(_, r), &o)| (r, o)),
        )
        .collect::<Vec<_>>();
    let tie_broken: Vec<bool> = references
        .windows(2)
        .map(|pair| {
            let ((t0, f0), (t1, f1)) = (pair[0], pair[1]);
            let apart = t1.duration_since(t0).map_or(0.0, |d| d.as_secs_f64());
            let frames = (f1 as f64 - f0 as f64) - apart * f64::from(RATE);
            frames.abs() > buffer_frames as f64
        })
        .collect();
    let latencies_ms: Vec<f64> = sent
        .iter()
        .zip(onsets[1..].chunks(2))
        .map(|(&(untimed, reference), pair)| {
            let between = reference
                .duration_since(untimed)
                .expect("the reference is later")
                .as_secs_f64();
            let frames = (pair[1] - pair[0]) as f64 / f64::from(RATE);
            (between - frames) * 1000.0
        })
        .collect();
    let handover_ms = latencies_ms
        .iter()
        .zip(onsets[1..].chunks(2))
        .map(|(ms, pair)| {
            let into_buffer = (pair[0] as i64 % buffer_frames.max(1)) as f64;
            ms - into_buffer * 1000.0 / f64::from(RATE)
        })
        .collect();
    Ok(LatencyRun {
        target,
        asked,
        buffer_frames,
        block_frames: after.int("block_frames")?,
        lookahead_frames: after.int("lookahead_frames")?,
        latencies_ms,
        handover_ms,
        held_up,
        tie_broken,
        underrun_frames: after.int("underrun_frames")? - before.int("underrun_frames")?,
    })
}

/// Streams may start late (a sound server's stream begins once its buffers fill):
/// waits until the device takes frames at the sample rate.
fn wait_for_real_time(d: &mut Daemon) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut last = (d.status()?.int("frames")?, std::time::Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = (d.status()?.int("frames")?, std::time::Instant::now());
        let speed =
            (now.0 - last.0) as f64 / f64::from(RATE) / now.1.duration_since(last.1).as_secs_f64();
        if (0.95..=1.05).contains(&speed) {
            return Ok(());
        }
        if now.1 > deadline {
            bail!("the device never took frames at the sample rate (last {speed:.2} x)");
        }
        last = now;
    }
}

/// The first channel of the daemon's float WAV.
fn read_left(path: &Path) -> Result<Vec<f32>> {
    let mut reader =
        hound::WavReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let channels = usize::from(reader.spec().channels);
    let samples: Vec<f32> = reader.samples::<f32>().collect::<Result<_, _>>()?;
    Ok(samples.chunks(channels).map(|f| f[0]).collect())
}

/// Frames where sound begins after at least `QUIET / 2` of silence.
fn onsets(left: &[f32]) -> Vec<usize> {
    let quiet = (QUIET.as_secs_f64() / 2.0 * f64::from(RATE)) as usize;
    let mut silent_run = 0;
    let mut found = Vec::new();
    for (n, &x) in left.iter().enumerate() {
        if x.abs() <= SILENT {
            silent_run += 1;
            continue;
        }
        if silent_run >= quiet {
            found.push(n);
        }
        silent_run = 0;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onsets_are_found_only_after_enough_silence() {
        let quiet = (QUIET.as_secs_f64() / 2.0 * f64::from(RATE)) as usize;
        let mut left = vec![0.0; quiet];
        left.extend([0.5, 0.0, 0.5]);
        left.extend(vec![0.0; quiet + 3]);
        left.push(-0.25);
        assert_eq!(onsets(&left), vec![quiet, 2 * quiet + 6]);
    }
}
