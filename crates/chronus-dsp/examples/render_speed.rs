//! Non-real-time render speed of a full patch ([`chronus_dsp::demo::full_patch`]):
//! 16 voices of every waveform, the acid path, distortion, reverb, delay, both
//! LFOs, the limiter and a 16-track polymetric sequence with swing, all driven
//! through the dialect.
//!
//! `cargo run --release -p chronus-dsp --example render_speed [seconds]`

use std::time::Instant;

use chronus_dsp::demo::{Value, full_patch};
use chronus_dsp::dialect::{Arg, parse};
use chronus_dsp::{CHANNELS, Engine};

const SAMPLE_RATE: u32 = 48_000;
const VOICES: u8 = 16;
const BLOCK_FRAMES: usize = 256;

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map_or(60, |s| s.parse().expect("seconds must be a whole number"));
    let mut engine = Engine::new(SAMPLE_RATE, VOICES);
    for m in full_patch(VOICES) {
        let args: Vec<Arg<'_>> = m.args.iter().map(Value::arg).collect();
        let cmd = parse(&m.address, &args, VOICES).unwrap_or_else(|e| panic!("{e}"));
        engine.apply(&cmd);
    }

    let frames = seconds * u64::from(SAMPLE_RATE);
    let mut block = vec![0.0f32; BLOCK_FRAMES * CHANNELS];
    let mut peak = 0.0f32;
    let start = Instant::now();
    for _ in 0..frames / BLOCK_FRAMES as u64 {
        engine.render(&mut block);
        peak = block.iter().fold(peak, |m, s| m.max(s.abs()));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rendered =
        (frames / BLOCK_FRAMES as u64 * BLOCK_FRAMES as u64) as f64 / f64::from(SAMPLE_RATE);
    println!(
        "rendered {rendered:.1} s of {VOICES} voices with every effect and the sequencer \
         at {SAMPLE_RATE} Hz in {elapsed:.3} s on one core: {:.1}x real time (peak {peak:.3})",
        rendered / elapsed
    );
}
