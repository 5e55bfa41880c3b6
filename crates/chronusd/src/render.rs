//! `chronusd render`: non-real-time rendering of a score with the workers' DSP.

use crate::cli::RenderArgs;
use chronus_supervisor::score;
use std::process::ExitCode;

/// Longest render: an hour of stereo f32 at 48 kHz is 1.4 GB of memory.
const MAX_RENDER_SECONDS: u64 = 3600;

pub fn run(args: &RenderArgs) -> ExitCode {
    match render(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chronusd render: {e:#}");
            ExitCode::from(65)
        }
    }
}

fn render(args: &RenderArgs) -> anyhow::Result<()> {
    let parsed = score::read_score(&args.score, args.sample_rate)?;
    let rate = parsed.sample_rate.unwrap_or(args.sample_rate);
    let frames = match (args.frames, args.duration) {
        (Some(frames), _) => frames,
        (None, Some(seconds)) if seconds.is_finite() && seconds >= 0.0 => {
            (seconds * f64::from(rate)).round() as u64
        }
        (None, Some(seconds)) => anyhow::bail!(
            "--duration {seconds} is invalid: expected a non-negative number of seconds"
        ),
        (None, None) => parsed.events.last().map_or(0, |(frame, _)| *frame) + 2 * u64::from(rate),
    };
    // The whole render is held in memory before it is written.
    let limit = MAX_RENDER_SECONDS * u64::from(rate);
    if frames > limit {
        anyhow::bail!(
            "{frames} frames is more than chronusd renders at once: at most \
             {MAX_RENDER_SECONDS} s ({limit} frames at {rate} Hz)"
        );
    }
    let samples = score::render_score(&args.score, &parsed, rate, args.voices, frames)?;
    score::write_wav(&args.out, &samples, rate)?;
    Ok(())
}
