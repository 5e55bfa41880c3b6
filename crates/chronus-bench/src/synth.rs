//! The live CPU cost of the full synth patch (`chronus_dsp::demo::full_patch`, the
//! patch `examples/render_speed.rs` renders offline): a fresh daemon with 16 voices
//! plays it, and the supervisor's and each worker's CPU is read from /proc.

use crate::daemon::Daemon;
use crate::steady::{clock_ticks_per_s, cpu_ticks};
use anyhow::{Context, Result, bail};
use chronus_dsp::demo::{Value, full_patch};
use chronus_osc::{Client, OscType, Transport};
use std::path::Path;
use std::time::{Duration, Instant};

/// The most voices chronusd runs (`engine.num_voices`), all of which the patch uses.
pub const VOICES: u8 = 16;
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SynthRun {
    pub messages: usize,
    pub warmup: Duration,
    pub window: Duration,
    pub clock_ticks_per_s: u64,
    /// (role, percent of one core over the window).
    pub cpu: Vec<(&'static str, f64)>,
    pub sample_rate: i64,
    /// Over the window, and since the daemon started.
    pub underrun_frames: (i64, i64),
    pub callback_max_us: f64,
}

impl SynthRun {
    pub fn total_cpu_percent(&self) -> f64 {
        self.cpu.iter().map(|(_, c)| c).sum()
    }
}

pub(crate) fn osc_arg(v: &Value) -> Result<OscType> {
    Ok(match v {
        Value::Int(i) => OscType::Int(i32::try_from(*i).context("int argument")?),
        // The daemon reads OSC floats as f32, as the offline example's f64s become.
        Value::Float(f) => OscType::Float(*f as f32),
        Value::Str(s) => OscType::String(s.clone()),
    })
}

/// Sends the patch, then waits until the daemon has played all of it (any
/// `/chronus/fail` on the way fails the request).
fn send_patch(d: &Daemon) -> Result<usize> {
    let mut client = Client::connect(d.osc_addr(), Transport::Udp, REPLY_TIMEOUT)?;
    let patch = full_patch(VOICES);
    for m in &patch {
        let args = m.args.iter().map(osc_arg).collect::<Result<Vec<_>>>()?;
        client.send(&chronus_osc::message(&m.address, args))?;
    }
    client
        .request(
            &chronus_osc::message(chronus_osc::SYNC_ADDR, vec![OscType::Int(1)]),
            chronus_osc::SYNCED_ADDR,
            REPLY_TIMEOUT,
        )
        .context("syncing after the patch")?;
    let status = client
        .request(
            &chronus_osc::message("/engine/status", vec![]),
            "/engine/status.reply",
            REPLY_TIMEOUT,
        )
        .context("/engine/status")?;
    let pairs = chronus_osc::status_pairs(&status)?;
    let field = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    if field("num_voices") != Some(OscType::Int(i32::from(VOICES))) {
        bail!("the daemon does not run {VOICES} voices: {status:?}");
    }
    if field("seq_running") != Some(OscType::Int(1)) {
        bail!("the sequencer is not running after the patch: {status:?}");
    }
    Ok(patch.len())
}

pub fn run(exe: &Path, dir: &Path, warmup: Duration, window: Duration) -> Result<SynthRun> {
    let mut d = Daemon::start_with_env(exe, dir, &[("CHRONUS_NUM_VOICES", VOICES.to_string())])?;
    let messages = send_patch(&d)?;
    std::thread::sleep(warmup);
    let before = d.status()?;
    if !before.both_lockstep()? {
        bail!("synth: the slots are not both in lockstep after the warm-up");
    }
    let pids = [
        ("supervisor", d.pid()),
        ("worker slot 0", before.slot_pid(0)?),
        ("worker slot 1", before.slot_pid(1)?),
    ];
    // No status requests inside the window: they would cost the supervisor CPU.
    let sample = || pids.map(|(_, pid)| cpu_ticks(pid));
    let t0 = Instant::now();
    let first = sample();
    std::thread::sleep(window);
    let last = sample();
    let elapsed = t0.elapsed();
    let hz = clock_ticks_per_s()?;
    let mut cpu = Vec::new();
    for ((&(role, _), first), last) in pids.iter().zip(first).zip(last) {
        let seconds = (last? - first?) as f64 / hz as f64;
        cpu.push((role, seconds / elapsed.as_secs_f64() * 100.0));
    }
    let after = d.status()?;
    for slot in 0..2 {
        if after.slot_pid(slot)? != before.slot_pid(slot)? {
            bail!("synth: worker slot {slot} was replaced during the window");
        }
    }
    let underruns = after.int("underrun_frames")?;
    let run = SynthRun {
        messages,
        warmup,
        window: elapsed,
        clock_ticks_per_s: hz,
        cpu,
        sample_rate: after.int("sample_rate")?,
        underrun_frames: (underruns - before.int("underrun_frames")?, underruns),
        callback_max_us: after.float("callback_max_us")?,
    };
    let exit = d.stop()?;
    if !exit.success() {
        bail!("synth: chronusd exited with {exit}");
    }
    Ok(run)
}
