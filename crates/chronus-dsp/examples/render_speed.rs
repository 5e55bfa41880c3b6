//! Non-real-time render speed of a full patch: 16 voices of every waveform,
//! the acid path, distortion, reverb, delay, both LFOs, the limiter and a
//! 16-track polymetric sequence with swing, all driven through the dialect.
//!
//! `cargo run --release -p chronus-dsp --example render_speed [seconds]`

use std::time::Instant;

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
    let mut send = |address: &str, args: &[Arg<'_>]| {
        let cmd = parse(address, args, VOICES).unwrap_or_else(|e| panic!("{e}"));
        engine.apply(&cmd);
    };
    let patterns = [
        "X...x...X...x...",
        "..x...x...x.x",
        "x.x.x.x.xx.x",
        "X..x..x..x.",
    ];
    for v in 1..=i64::from(VOICES) {
        let voice = format!("voice{v}");
        let float = |x: f64| [Arg::Float(x)];
        send(&format!("/mod/{voice}/osc/type"), &[Arg::Int(v % 6)]);
        send(
            &format!("/mod/{voice}/filter/freq"),
            &float(400.0 + 300.0 * v as f64),
        );
        send(
            &format!("/mod/{voice}/filter/q"),
            &float(0.7 + 0.4 * v as f64),
        );
        send(&format!("/mod/{voice}/amp"), &float(0.08));
        send(&format!("/mod/{voice}/send/reverb"), &float(0.3));
        send(&format!("/mod/{voice}/send/delay"), &float(0.2));
        send(&format!("/mod/{voice}/slide_time"), &float(0.05));
        let name = format!("t{v}");
        let pattern = patterns[v as usize % patterns.len()];
        send(
            "/seq/add",
            &[
                Arg::Str(&name),
                Arg::Str(&voice),
                Arg::Str(pattern),
                Arg::Float(55.0 * v as f64),
                Arg::Float(2000.0),
                Arg::Str("C3,Eb3,G3,Bb3,C4,220.0,57"),
            ],
        );
    }
    for (address, value) in [
        ("/mod/acid1/res", 0.8),
        ("/mod/acid1/accent", 0.7),
        ("/mod/dist1/drive", 0.5),
        ("/mod/dist1/mix", 0.3),
        ("/mod/reverb1/room", 0.8),
        ("/mod/delay1/time", 0.375),
        ("/mod/delay1/feedback", 0.5),
        ("/mod/lfo1/depth", 0.5),
        ("/mod/lfo2/depth", 0.5),
        ("/seq/bpm", 128.0),
        ("/seq/swing", 0.2),
    ] {
        send(address, &[Arg::Float(value)]);
    }
    send("/seq/start", &[]);

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
