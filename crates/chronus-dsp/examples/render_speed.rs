//! Non-real-time render speed of a full patch ([`chronus_dsp::demo::full_patch`]):
//! 16 voices (or as many as asked for) of every waveform, the acid path, distortion, reverb, delay, both
//! LFOs, the limiter and a 16-track polymetric sequence with swing, all driven
//! through the dialect.
//!
//! `cargo run --release -p chronus-dsp --example render_speed [seconds] [voices] [patch] [history]`
//!
//! `patch` is `full` (the default) or `held`: [`chronus_dsp::demo::held_voices`],
//! the piece `scripts/bench peers` plays beside scsynth. With `history` (frames),
//! the engine keeps that much history for rewinds and saves a checkpoint before
//! every block, as a worker would; the saves' time is reported on its own.
//!
//! Prints the wall-clock multiple and, where Linux reports it, the time on a
//! CPU and the time spent waiting for one (other load on the machine).

use std::time::Instant;

use chronus_dsp::demo::{Value, full_patch, held_voices};
use chronus_dsp::dialect::{Arg, parse};
use chronus_dsp::{CHANNELS, Engine};

const SAMPLE_RATE: u32 = 48_000;
const DEFAULT_VOICES: u8 = 16;
const BLOCK_FRAMES: usize = 256;

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map_or(60, |s| s.parse().expect("seconds must be a whole number"));
    let voices: u8 = std::env::args().nth(2).map_or(DEFAULT_VOICES, |s| {
        s.parse().expect("voices must be 1..=255")
    });
    let (patch, what) = match std::env::args().nth(3).as_deref() {
        None | Some("full") => (full_patch(voices), "with every effect and the sequencer"),
        Some("held") => (held_voices(voices, 0.05), "held through their filters"),
        Some(other) => panic!("patch must be full or held, not {other:?}"),
    };
    let history: Option<usize> = std::env::args()
        .nth(4)
        .map(|s| s.parse().expect("history must be a whole number of frames"));
    let mut engine = Engine::new(SAMPLE_RATE, voices);
    if let Some(history) = history {
        engine.keep_history(history);
    }
    for m in patch {
        let args: Vec<Arg<'_>> = m.args.iter().map(Value::arg).collect();
        let cmd = parse(&m.address, &args, voices).unwrap_or_else(|e| panic!("{e}"));
        engine.apply(&cmd);
    }

    let frames = seconds * u64::from(SAMPLE_RATE);
    let mut block = vec![0.0f32; BLOCK_FRAMES * CHANNELS];
    let mut peak = 0.0f32;
    let mut checkpoint = history.map(|_| engine.checkpoint());
    let (mut saving, mut saves) = (0.0, 0u32);
    let sched = schedstat();
    let start = Instant::now();
    for _ in 0..frames / BLOCK_FRAMES as u64 {
        if let Some(checkpoint) = &mut checkpoint {
            let save = Instant::now();
            engine.save(checkpoint);
            saving += save.elapsed().as_secs_f64();
            saves += 1;
        }
        engine.render(&mut block);
        peak = block.iter().fold(peak, |m, s| m.max(s.abs()));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rendered =
        (frames / BLOCK_FRAMES as u64 * BLOCK_FRAMES as u64) as f64 / f64::from(SAMPLE_RATE);
    println!(
        "rendered {rendered:.1} s of {voices} voices {what} \
         at {SAMPLE_RATE} Hz in {elapsed:.3} s on one core: {:.1}x real time (peak {peak:.3})",
        rendered / elapsed
    );
    if saves > 0 {
        println!(
            "with {} frames of history, {saves} saves of a checkpoint took {:.0} ns each",
            engine.history(),
            saving / f64::from(saves) * 1e9
        );
    }
    if let (Some((run0, wait0)), Some((run1, wait1))) = (sched, schedstat()) {
        println!(
            "on a CPU {:.3} s ({:.1}x real time per CPU second), waiting for one {:.3} s",
            run1 - run0,
            rendered / (run1 - run0),
            wait1 - wait0
        );
    }
}

/// Seconds this thread has run on a CPU and waited for one (Linux's
/// /proc/thread-self/schedstat), so that a loaded machine shows as such.
fn schedstat() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut ns = stat.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (run, wait) = (ns.next()??, ns.next()??);
    Some((run as f64 / 1e9, wait as f64 / 1e9))
}
