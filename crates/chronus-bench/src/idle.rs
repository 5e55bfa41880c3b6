//! What a daemon costs while it plays one steady tone, with the optional features on and
//! then off in turn: a fresh daemon for each configuration, the CPU time and context
//! switches of each process and the CPU of each supervisor thread read from /proc over a
//! window with no requests in it, so that "a disabled feature costs nothing" is measured.

use crate::daemon::{Daemon, Recording};
use crate::steady::{clock_ticks_per_s, context_switches, cpu_between, sample_cpu};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

/// One daemon configuration: the settings turned off, and whether it journals and records.
pub struct Config {
    pub name: &'static str,
    /// Environment variables set to `0`.
    pub off: &'static [&'static str],
    /// `CHRONUS_JOURNAL` and `CHRONUS_RECORD` set to files in the run's directory.
    pub journal_and_recording: bool,
}

const SPEECH_OFF: &[&str] = &["CHRONUS_TTS_ENABLED", "CHRONUS_ASR_ENABLED"];
const SPEECH_AND_VIZ_OFF: &[&str] = &[
    "CHRONUS_TTS_ENABLED",
    "CHRONUS_ASR_ENABLED",
    "CHRONUS_VIZ_ENABLED",
];

/// The runs, in order: each turns off one more feature than the one before, and the
/// last turns the journal and the recording on over everything off.
pub const CONFIGS: [Config; 4] = [
    Config {
        name: "defaults",
        off: &[],
        journal_and_recording: false,
    },
    Config {
        name: "speech off",
        off: SPEECH_OFF,
        journal_and_recording: false,
    },
    Config {
        name: "speech and viz off",
        off: SPEECH_AND_VIZ_OFF,
        journal_and_recording: false,
    },
    Config {
        name: "speech and viz off, journal and recording on",
        off: SPEECH_AND_VIZ_OFF,
        journal_and_recording: true,
    },
];

/// The processes measured, in the order of [`IdleRun::processes`].
pub const ROLES: [&str; 3] = ["supervisor", "worker slot 0", "worker slot 1"];

pub struct Process {
    /// Percent of one core over the window, all threads.
    pub cpu_percent: f64,
    /// Voluntary plus involuntary context switches per second over the window, summed
    /// over the threads alive at both readings: how often the process sleeps and wakes.
    pub switches_per_s: f64,
}

pub struct IdleRun {
    pub config: &'static Config,
    pub window: Duration,
    /// In the order of [`ROLES`].
    pub processes: Vec<Process>,
    /// The supervisor's threads, busiest first: (name, percent of one core).
    pub threads: Vec<(String, f64)>,
    /// `underrun_frames` just after the window less just before it.
    pub underrun_frames: i64,
    pub sample_rate: i64,
    pub exit: ExitStatus,
}

impl IdleRun {
    pub fn total_cpu_percent(&self) -> f64 {
        self.processes.iter().map(|p| p.cpu_percent).sum()
    }
}

pub struct IdleBench {
    pub warmup: Duration,
    pub clock_ticks_per_s: u64,
    pub runs: Vec<IdleRun>,
}

impl IdleBench {
    /// How much the machine slowed or sped identical work during the benchmark, as a
    /// fraction: the workers render the same tone in every run, so the largest ratio of
    /// one worker's highest CPU across the runs to its lowest, less one. Load on a shared
    /// machine scales CPU time (contended caches and cores), so the noise is a fraction of
    /// what a process uses.
    pub fn worker_spread(&self) -> f64 {
        (1..ROLES.len())
            .map(|i| {
                let cpu = self.runs.iter().map(|r| r.processes[i].cpu_percent);
                let (lo, hi) = cpu.fold((f64::MAX, f64::MIN), |(lo, hi), c| (lo.min(c), hi.max(c)));
                if lo > 0.0 { hi / lo - 1.0 } else { 0.0 }
            })
            .fold(0.0, f64::max)
    }

    /// The shortest of the runs' windows: the one whose tick is the largest share of it.
    pub fn shortest_window(&self) -> Duration {
        self.runs.iter().map(|r| r.window).min().unwrap_or_default()
    }
}

/// Runs every configuration of [`CONFIGS`], each in a subdirectory of `dir`.
pub fn run(exe: &Path, dir: &Path, warmup: Duration, window: Duration) -> Result<IdleBench> {
    let hz = clock_ticks_per_s()?;
    let mut runs = Vec::new();
    for (i, config) in CONFIGS.iter().enumerate() {
        eprintln!(
            "chronus-bench: idle run {} ({}), {window:?} window",
            i + 1,
            config.name
        );
        let run_dir = dir.join(format!("run{}", i + 1));
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))?;
        runs.push(run_one(exe, &run_dir, config, warmup, window, hz)?);
    }
    Ok(IdleBench {
        warmup,
        clock_ticks_per_s: hz,
        runs,
    })
}

fn environment(config: &Config, dir: &Path) -> Result<Vec<(&'static str, String)>> {
    let mut env: Vec<(&str, String)> = config.off.iter().map(|&k| (k, "0".into())).collect();
    if config.journal_and_recording {
        let files = Recording::in_dir(dir);
        let path = |p: &Path| {
            p.to_str()
                .map(str::to_owned)
                .with_context(|| format!("{} is not UTF-8", p.display()))
        };
        env.push(("CHRONUS_JOURNAL", path(&files.journal)?));
        env.push(("CHRONUS_RECORD", path(&files.wav)?));
    }
    Ok(env)
}

fn run_one(
    exe: &Path,
    dir: &Path,
    config: &'static Config,
    warmup: Duration,
    window: Duration,
    hz: u64,
) -> Result<IdleRun> {
    let mut d = Daemon::start_with_env(exe, dir, &environment(config, dir)?)?;
    d.play_tone()?;
    std::thread::sleep(warmup);
    let before = d.status()?;
    if !before.both_lockstep()? {
        bail!(
            "idle ({}): the slots are not both in lockstep after the warm-up",
            config.name
        );
    }
    let pids = [d.pid(), before.slot_pid(0)?, before.slot_pid(1)?];
    // No status requests inside the window: they would cost the supervisor CPU.
    let sample = || -> Result<_> {
        let cpu = sample_cpu(&pids, pids[0])?;
        let switches = pids
            .iter()
            .map(|&pid| context_switches(pid))
            .collect::<Result<Vec<_>>>()?;
        Ok((cpu, switches))
    };
    let (cpu_first, switches_first) = sample()?;
    std::thread::sleep(window);
    let (cpu_last, switches_last) = sample()?;
    let cpu = cpu_between(&ROLES, &cpu_first, &cpu_last, hz);
    let seconds = cpu.window.as_secs_f64().max(1e-9);
    let processes = cpu
        .processes
        .iter()
        .zip(switches_first.iter().zip(&switches_last))
        .map(|((_, cpu_percent), (first, last))| Process {
            cpu_percent: *cpu_percent,
            switches_per_s: last.saturating_sub(*first) as f64 / seconds,
        })
        .collect();
    let after = d.status()?;
    for slot in 0..2 {
        if after.slot_pid(slot)? != before.slot_pid(slot)? {
            bail!(
                "idle ({}): worker slot {slot} was replaced during the window",
                config.name
            );
        }
    }
    Ok(IdleRun {
        config,
        window: cpu.window,
        processes,
        threads: cpu.threads,
        underrun_frames: after.int("underrun_frames")? - before.int("underrun_frames")?,
        sample_rate: after.int("sample_rate")?,
        exit: d.stop()?,
    })
}
