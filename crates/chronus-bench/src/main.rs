//! `chronus-bench`: measures the real release `chronusd` and prints a Markdown report.
//!
//! It starts the daemon itself (null backend, clean environment), kills the active
//! worker over and over, proves the recording bit-identical to an offline render of
//! the journal, then measures a fresh daemon's CPU and memory in steady state
//! (`failover`, the default). `lifecycle` starts and stops it over and over, timing
//! spawn → `READY=1` and SIGTERM → exit. `osc` floods it with paced control messages
//! over UDP and TCP, counting what it received, dropped and applied, and timing
//! `/chronus/status` and `/chronus/sync` round trips idle and during the flood.
//! `speech` times text-to-speech requests to the first sample at the output and
//! watches the daemon's memory across 10,000 of them. `synth` measures the CPU of
//! each process while a 16-voice daemon plays the full synth patch. `idle` measures
//! what a daemon playing one tone costs with its optional features on, then off, then
//! with the journal and a recording: CPU and wake-ups of each process, per-thread CPU.
//! `hosts` plays a tone through private PulseAudio, PipeWire and JACK servers at each
//! device buffer size while every core is kept busy, and counts the breaks the server
//! received. `latency` times a note sent without a timetag to its first sample at the
//! device, per host and period. `peers` runs scsynth on jackd2's dummy driver and
//! chronusd side by side on the same music and compares their CPU.
//! Progress goes to stderr, the report to stdout.

mod daemon;
mod failover;
mod hosts;
mod idle;
mod latency;
mod lifecycle;
mod machine;
mod osc;
mod peers;
mod report;
mod speech;
mod steady;
mod synth;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "chronus-bench",
    about = "Benchmarks the real chronusd: failover, integrity, callback time, CPU and memory; \
             startup and shutdown; an OSC flood; speech; the full synth patch's CPU; what each \
             feature costs while idle"
)]
struct Args {
    /// What to measure: each prints its own BENCHMARKS.md section.
    #[arg(value_enum, default_value_t = Area::Failover)]
    area: Area,
    /// Failover: SIGKILLs of the active worker (0 skips the kill run).
    #[arg(long, default_value_t = 1000)]
    kills: usize,
    /// The chronusd binary (default: `chronusd` next to this binary).
    #[arg(long, value_name = "PATH")]
    chronusd: Option<PathBuf>,
    /// Interval between status requests while waiting, in milliseconds.
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
    /// Failover, synth and idle: warm-up before the CPU window, in seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Failover, synth and idle: length of the CPU window, in seconds (0 skips it in
    /// failover; idle has one for each of its runs).
    #[arg(long, default_value_t = 10.0)]
    cpu_s: f64,
    /// Start/stop cycles of the lifecycle benchmark.
    #[arg(long, default_value_t = 50)]
    cycles: usize,
    /// Lifecycle: time from receiving READY=1 to sending SIGTERM, in milliseconds.
    #[arg(long, default_value_t = 200)]
    settle_ms: u64,
    /// OSC flood: messages a second the sender aims for.
    #[arg(long, default_value_t = 50_000)]
    rate: u32,
    /// OSC flood: length of each flood, in seconds.
    #[arg(long, default_value_t = 10.0)]
    flood_s: f64,
    /// OSC flood: round trips measured with no flood before each, in seconds.
    #[arg(long, default_value_t = 3.0)]
    idle_s: f64,
    /// OSC flood: interval between status (and sync) requests of the probes, in ms.
    #[arg(long, default_value_t = 10)]
    probe_ms: u64,
    /// OSC flood: `osc.rate_limit` for a second set of runs, if the daemon has that
    /// setting (0 skips them).
    #[arg(long, default_value_t = 200_000)]
    raised_limit: u32,
    /// Speech: timed requests of each kind (new phrase, cached phrase).
    #[arg(long, default_value_t = 100)]
    speech_samples: usize,
    /// Speech: requests of the memory run.
    #[arg(long, default_value_t = 10_000)]
    speech_requests: usize,
    /// Hosts: seconds each host plays at each buffer size under load.
    #[arg(long, default_value_t = 20.0)]
    hosts_s: f64,
    /// Hosts: device buffer sizes tried, in frames (JACK: the server's period).
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024,2048")]
    buffers: Vec<u32>,
    /// Latency: device periods tried, in frames (JACK: the server's period); `auto`
    /// leaves `audio.buffer_size` at its default for the host (jackd then runs at its
    /// own default period, 1024).
    #[arg(long, value_delimiter = ',', default_value = "auto,64,256")]
    periods: Vec<String>,
    /// Latency: untimed notes timed per host and period.
    #[arg(long, default_value_t = 20)]
    notes: usize,
    /// Peers: rounds of the comparison, each piece measured on both sides per round,
    /// who goes first alternating: on a machine whose host takes CPU time in bursts
    /// one round's ratio says little.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Hosts: threads spinning meanwhile (default: one per CPU).
    #[arg(long)]
    load_threads: Option<usize>,
    /// Scratch directory (default: a fresh one under the temporary directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the default scratch directory (recordings, journal, per-kill and round-trip
    /// CSVs, logs); one given with --dir is always kept.
    #[arg(long)]
    keep: bool,
    /// How the report names the command that produced it (scripts/bench sets it).
    #[arg(long, hide = true)]
    invoked_as: Option<String>,
    /// The source revision chronusd was built from (scripts/bench sets it).
    #[arg(long, hide = true)]
    revision: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Area {
    /// Kills of the active worker, integrity, callback time, CPU and memory.
    Failover,
    /// Start/stop cycles: spawn → READY=1, SIGTERM → exit.
    Lifecycle,
    /// A paced flood of control messages over UDP and TCP: counters and round trips.
    Osc,
    /// Text-to-speech through the daemon: request to first sample, memory over many requests.
    Speech,
    /// The full synth patch on 16 voices: CPU of each process, underruns.
    Synth,
    /// One tone with the features on and off in turn: CPU and wake-ups of each process.
    Idle,
    /// A tone through each sound server at each buffer size under load: breaks heard.
    Hosts,
    /// A note without a timetag, OSC → first sample at the device, per host and period.
    Latency,
    /// scsynth on jackd2's dummy driver and chronusd side by side: CPU, wake-ups, status.
    Peers,
    /// Failover, then lifecycle, then the OSC flood, then speech, then synth, then idle
    /// (not hosts, latency or peers, which need sound servers and scsynth).
    All,
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("chronus-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(args: &Args) -> Result<String> {
    let exe = match &args.chronusd {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no directory")?
            .join("chronusd"),
    };
    let exe = exe
        .canonicalize()
        .with_context(|| format!("chronusd binary {}", exe.display()))?;
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("chronus-bench-{}", std::process::id()))
    });
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("scratch directory {} is not empty", dir.display());
    }
    let subdir = |name: &str| -> Result<PathBuf> {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(d)
    };
    eprintln!(
        "chronus-bench: {} with scratch directory {}",
        exe.display(),
        dir.display()
    );
    let ctx_command = args
        .invoked_as
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    // In the order `all` runs them; hosts, latency and peers only when asked for.
    let areas: [(Area, bool, AreaRun); 9] = [
        (Area::Failover, true, run_failover),
        (Area::Lifecycle, true, run_lifecycle),
        (Area::Osc, true, run_osc),
        (Area::Speech, true, run_speech),
        (Area::Synth, true, run_synth),
        (Area::Idle, true, run_idle),
        (Area::Hosts, false, run_hosts),
        (Area::Latency, false, run_latency),
        (Area::Peers, false, run_peers),
    ];
    let mut report = String::new();
    for (area, in_all, run_area) in areas {
        if args.area == area || (in_all && args.area == Area::All) {
            if !report.is_empty() {
                report.push('\n');
            }
            report += &run_area(args, &exe, &subdir, &ctx_command)?;
        }
    }
    if args.keep || args.dir.is_some() {
        eprintln!("chronus-bench: kept {}", dir.display());
    } else {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(report)
}

/// When a benchmark area began: its report's date and the load before it.
struct Began {
    date: String,
    load_start: String,
    steal: machine::Steal,
    started: std::time::Instant,
}

impl Began {
    fn now() -> Began {
        Began {
            date: machine::utc_now(),
            load_start: machine::loadavg(),
            steal: machine::Steal::now(),
            started: std::time::Instant::now(),
        }
    }

    /// The report's context, with the load at its end.
    fn context(self, args: &Args, command: &str) -> report::Context {
        report::Context {
            command: command.to_owned(),
            machine: machine::Machine::describe(),
            date: self.date,
            load_start: self.load_start,
            load_end: machine::loadavg(),
            steal: self
                .steal
                .since()
                .map(|steal| (steal, self.started.elapsed().as_secs_f64())),
            poll_ms: args.poll_ms,
            revision: args.revision.clone(),
        }
    }
}

/// One benchmark area: its report section.
type AreaRun = fn(&Args, &Path, &dyn Fn(&str) -> Result<PathBuf>, &str) -> Result<String>;

fn run_peers(
    args: &Args,
    exe: &Path,
    subdir: &dyn Fn(&str) -> Result<PathBuf>,
    ctx_command: &str,
) -> Result<String> {
    let began = Began::now();
    let bench = peers::run(
        exe,
        &subdir("peers")?,
        Duration::from_secs_f64(args.warmup_s),
        Duration::from_secs_f64(args.cpu_s),
        args.rounds,
    )?;
    Ok(report::render_peers(
        &began.context(args, ctx_command),
        &bench,
    ))
}

fn run_failover(
    args: &Args,
    exe: &Path,
    subdir: &dyn Fn(&str) -> Result<PathBuf>,
    ctx_command: &str,
) -> Result<String> {
    let began = Began::now();
    let poll = Duration::from_millis(args.poll_ms);

    let failover = if args.kills > 0 {
        eprintln!("chronus-bench: {} kills of the active worker", args.kills);
        Some(failover::run(exe, &subdir("failover")?, args.kills, poll)?)
    } else {
        None
    };
    let mut steady = Vec::new();
    if args.cpu_s > 0.0 {
        let warmup = Duration::from_secs_f64(args.warmup_s);
        let window = Duration::from_secs_f64(args.cpu_s);
        for (name, recording) in [("steady-recording", true), ("steady-plain", false)] {
            eprintln!("chronus-bench: steady state ({name}), {:?} window", window);
            steady.push(steady::run(exe, &subdir(name)?, recording, warmup, window)?);
        }
    }

    let ctx = began.context(args, ctx_command);
    Ok(report::render(&ctx, failover.as_ref(), &steady))
}

fn run_lifecycle(
    args: &Args,
    exe: &Path,
    subdir: &dyn Fn(&str) -> Result<PathBuf>,
    ctx_command: &str,
) -> Result<String> {
    let began = Began::now();
    eprintln!("chronus-bench: {} start/stop cycles", args.cycles);
    let run = lifecycle::run(
        exe,
        &subdir("lifecycle")?,
        args.cycles,
        Duration::from_millis(args.settle_ms),
    )?;
    let ctx = began.context(args, ctx_command);
    Ok(report::render_lifecycle(&ctx, &run))
}

fn run_osc(
    args: &Args,
    exe: &Path,
    subdir: &dyn Fn(&str) -> Result<PathBuf>,
    ctx_command: &str,
) -> Result<String> {
    if args.rate == 0 || args.flood_s <= 0.0 || args.probe_ms == 0 {
        bail!("--rate, --flood-s and --probe-ms must be positive");
    }
    let began = Began::now();
    let settings = osc::Settings {
        rate: args.rate,
        flood: Duration::from_secs_f64(args.flood_s),
        idle: Duration::from_secs_f64(args.idle_s),
        probe_every: Duration::from_millis(args.probe_ms),
    };
    eprintln!(
        "chronus-bench: OSC flood at {}/s for {:?}",
        settings.rate, settings.flood
    );
    let run = osc::run(exe, &subdir("osc")?, &settings, args.raised_limit)?;
    let ctx = began.context(args, ctx_command);
    Ok(report::render_osc(&ctx, &run))
}

fn run_speech(
    args: &Args,
    exe: &Path,
    subdir: &dyn Fn(&str) -> Result<PathBuf>,
    ctx_command: &str,
) -> Result<String> {
    if args.speech_samples == 0 || args.speech_requests < 10 {
        bail!("--speech-samples must be positive and --speech-requests at least 10");
    }
    let began = Began::now();
    eprintln!(
        "chronus-bench: speech, {} timed requests of each kind, {} for memory",
        args.speech_samples, args.speech_requests
    );
    let run = speech::run(
        exe,
        &subdir("speech")?,
        args.speech_samples,
        args.speech_requests,
    )?;
    let ctx = began.context(args, ctx_command);
    Ok(report::render_speech(&ctx, &run))
}

fn run_synth(
    args: &Args,
    exe: &Path,
    subdir: &dyn Fn(&str) -> Result<PathBuf>,
    ctx_command: &str,
) -> Result<String> {
    if args.cpu_s <= 0.0 {
        bail!("--cpu-s must be positive for synth");
    }
    let began = Began::now();
    let warmup = Duration::from_secs_f64(args.warmup_s);
    let window = Duration::from_secs_f64(args.cpu_s);
    eprintln!(
        "chronus-bench: the full synth patch on {} voices, {window:?} window",
        synth::VOICES
    );
    let run = synth::run(exe, &subdir("synth")?, warmup, window)?;
    let ctx = began.context(args, ctx_command);
    Ok(report::render_synth(&ctx, &run))
}

fn run_hosts(
    args: &Args,
    exe: &Path,
    subdir: &dyn Fn(&str) -> Result<PathBuf>,
    ctx_command: &str,
) -> Result<String> {
    if args.hosts_s < 2.0 {
        bail!("--hosts-s must be at least 2 seconds");
    }
    if args.buffers.iter().any(|&b| !(16..=8192).contains(&b)) {
        bail!("--buffers: each size must be 16 to 8192 frames");
    }
    let began = Began::now();
    let threads = args.load_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    let bench = hosts::run(
        exe,
        &subdir("hosts")?,
        &args.buffers,
        Duration::from_secs_f64(args.hosts_s),
        threads,
    )?;
    let ctx = began.context(args, ctx_command);
    Ok(report::render_hosts(&ctx, &bench))
}

fn run_latency(
    args: &Args,
    exe: &Path,
    subdir: &dyn Fn(&str) -> Result<PathBuf>,
    ctx_command: &str,
) -> Result<String> {
    let periods = args
        .periods
        .iter()
        .map(|p| match p.as_str() {
            "auto" => Ok(None),
            n => n
                .parse()
                .ok()
                .filter(|n| (16..=8192).contains(n))
                .map(Some)
                .with_context(|| format!("--periods: {n} is neither auto nor 16 to 8192 frames")),
        })
        .collect::<Result<Vec<_>>>()?;
    if args.notes == 0 {
        bail!("--notes must be at least 1");
    }
    let began = Began::now();
    let bench = latency::run(exe, &subdir("latency")?, &periods, args.notes)?;
    let ctx = began.context(args, ctx_command);
    Ok(report::render_latency(&ctx, &bench))
}

fn run_idle(
    args: &Args,
    exe: &Path,
    subdir: &dyn Fn(&str) -> Result<PathBuf>,
    ctx_command: &str,
) -> Result<String> {
    if args.cpu_s <= 0.0 {
        bail!("--cpu-s must be positive for idle");
    }
    let began = Began::now();
    let run = idle::run(
        exe,
        &subdir("idle")?,
        Duration::from_secs_f64(args.warmup_s),
        Duration::from_secs_f64(args.cpu_s),
    )?;
    let ctx = began.context(args, ctx_command);
    Ok(report::render_idle(&ctx, &run))
}
