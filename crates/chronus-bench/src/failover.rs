//! Kills of the active worker: detection and restore times, then a bit-for-bit
//! comparison of the recording with an offline render of the journal.

use crate::daemon::{Daemon, Recording, monotonic_ns, signal};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// Per-kill measurements.
pub struct Kill {
    /// SIGKILL sent → the supervisor's pidfd watcher woke, µs.
    pub detect_us: f64,
    /// The supervisor noticed the death → that slot back in lockstep (`last_restore_ms`).
    pub supervisor_restore_ms: f64,
    /// SIGKILL sent → the bench saw `restores` increment (includes polling delay).
    pub observed_ms: f64,
}

impl Kill {
    /// Death to both slots in lockstep.
    pub fn restore_ms(&self) -> f64 {
        self.detect_us / 1e3 + self.supervisor_restore_ms
    }
}

/// The daemon's counters at the end of the run.
pub struct Counters {
    pub failovers: i64,
    pub restores: i64,
    pub cold_starts: i64,
    pub underrun_frames: i64,
    pub fallback_frames: i64,
    pub xruns: i64,
    pub divergences: i64,
    pub hangs: i64,
    pub faults: i64,
    pub late_commands: i64,
    pub callback_max_us: f64,
    /// `callback_max_us` just before the first kill (startup included).
    pub callback_max_us_before: f64,
    pub sample_rate: i64,
    pub block_frames: i64,
}

/// The live recording against the offline render of the journal.
pub struct Comparison {
    pub channels: u16,
    pub sample_rate: u32,
    pub live_samples: usize,
    pub reference_samples: usize,
    /// Samples whose bits differ, plus any length difference.
    pub altered: usize,
    pub first_altered: Option<usize>,
    pub peak: f32,
    /// Wall time of `chronusd render` (exec, journal, DSP, WAV writing).
    pub render_s: f64,
}

impl Comparison {
    pub fn frames(&self) -> usize {
        self.live_samples / usize::from(self.channels.max(1))
    }
}

pub struct FailoverRun {
    pub kills: Vec<Kill>,
    /// Restores beyond one per kill (a hang or fault the bench did not cause).
    pub extra_restores: i64,
    pub wall: Duration,
    pub counters: Counters,
    pub exit: ExitStatus,
    pub comparison: Comparison,
}

pub fn run(exe: &Path, dir: &Path, kills: usize, poll: Duration) -> Result<FailoverRun> {
    let recording = Recording::in_dir(dir);
    let mut d = Daemon::start(exe, dir, Some(&recording))?;
    d.play_tone()?;
    let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("kills.csv"))?);
    writeln!(
        csv,
        "kill,pid,t_kill_mono_ns,exit_mono_ns,detect_us,supervisor_restore_ms,restore_ms,observed_ms"
    )?;
    let started = Instant::now();
    let mut expected: i64 = 0;
    let mut extra_restores = 0;
    let mut out = Vec::with_capacity(kills);
    let mut callback_max_us_before = f64::NAN;
    for i in 0..kills {
        let s = d.wait_until(
            &format!("both slots in lockstep with {expected} restores before kill {i}"),
            Duration::from_secs(10),
            poll,
            |s| Ok(s.both_lockstep()? && s.int("restores")? == expected),
        )?;
        if i == 0 {
            callback_max_us_before = s.float("callback_max_us")?;
        }
        let pid = s.active_pid()?;
        let t_kill = monotonic_ns();
        signal(pid, libc::SIGKILL)?;
        let s = d.wait_until(
            &format!("restore after kill {i} of pid {pid}"),
            Duration::from_secs(10),
            poll,
            |s| Ok(s.int("restores")? > expected),
        )?;
        let observed_ns = monotonic_ns() - t_kill;
        let restores = s.int("restores")?;
        extra_restores += restores - expected - 1;
        expected = restores;
        let exit_ns = s.int("last_exit_mono_ns")? as u64;
        if exit_ns < t_kill {
            bail!(
                "kill {i}: last_exit_mono_ns {exit_ns} predates the kill at {t_kill}: \
                 the supervisor did not notice this death through its pidfd watcher"
            );
        }
        let kill = Kill {
            detect_us: (exit_ns - t_kill) as f64 / 1e3,
            supervisor_restore_ms: s.float("last_restore_ms")?,
            observed_ms: observed_ns as f64 / 1e6,
        };
        writeln!(
            csv,
            "{i},{pid},{t_kill},{exit_ns},{:.3},{:.3},{:.3},{:.3}",
            kill.detect_us,
            kill.supervisor_restore_ms,
            kill.restore_ms(),
            kill.observed_ms
        )?;
        out.push(kill);
        if (i + 1) % 100 == 0 {
            eprintln!("chronus-bench: {} kills done", i + 1);
        }
    }
    csv.flush()?;
    let wall = started.elapsed();
    // Let the last restore settle so the final counters describe a quiet daemon.
    let s = d.wait_until(
        "both slots in lockstep after the last kill",
        Duration::from_secs(10),
        poll,
        |s| s.both_lockstep(),
    )?;
    let counters = Counters {
        failovers: s.int("failovers")?,
        restores: s.int("restores")?,
        cold_starts: s.int("cold_starts")?,
        underrun_frames: s.int("underrun_frames")?,
        fallback_frames: s.int("fallback_frames")?,
        xruns: s.int("xruns")?,
        divergences: s.int("divergences")?,
        hangs: s.int("hangs")?,
        faults: s.int("faults")?,
        late_commands: s.int("late_commands")?,
        callback_max_us: s.float("callback_max_us")?,
        callback_max_us_before,
        sample_rate: s.int("sample_rate")?,
        block_frames: s.int("block_frames")?,
    };
    let exit = d.stop()?;
    let comparison = compare_with_render(exe, dir, &recording)?;
    Ok(FailoverRun {
        kills: out,
        extra_restores,
        wall,
        counters,
        exit,
        comparison,
    })
}

fn read_f32_wav(path: &Path) -> Result<(hound::WavSpec, Vec<f32>)> {
    let mut reader =
        hound::WavReader::open(path).with_context(|| format!("reading {}", path.display()))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Float || spec.bits_per_sample != 32 {
        bail!(
            "{}: expected 32-bit float samples, got {spec:?}",
            path.display()
        );
    }
    let samples = reader
        .samples::<f32>()
        .collect::<Result<Vec<f32>, _>>()
        .with_context(|| format!("decoding {}", path.display()))?;
    Ok((spec, samples))
}

/// Renders the journal offline for exactly the recorded frames and compares bits.
fn compare_with_render(exe: &Path, dir: &Path, recording: &Recording) -> Result<Comparison> {
    let (spec, live) = read_f32_wav(&recording.wav)?;
    let channels = spec.channels.max(1);
    let frames = live.len() / usize::from(channels);
    let reference = dir.join("ref.wav");
    let render_started = Instant::now();
    let status = Command::new(exe)
        .arg("render")
        .arg(&recording.journal)
        .arg("--out")
        .arg(&reference)
        .arg("--frames")
        .arg(frames.to_string())
        .status()
        .context("running chronusd render")?;
    let render_s = render_started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("chronusd render exited with {status}");
    }
    let (_, rendered) = read_f32_wav(&reference)?;
    let mut altered = live.len().abs_diff(rendered.len());
    let mut first_altered = (altered > 0).then_some(live.len().min(rendered.len()));
    for (i, (a, b)) in live.iter().zip(&rendered).enumerate() {
        if a.to_bits() != b.to_bits() {
            altered += 1;
            first_altered = Some(first_altered.map_or(i, |f| f.min(i)));
        }
    }
    Ok(Comparison {
        channels,
        sample_rate: spec.sample_rate,
        live_samples: live.len(),
        reference_samples: rendered.len(),
        altered,
        first_altered,
        peak: live.iter().fold(0.0f32, |m, s| m.max(s.abs())),
        render_s,
    })
}
