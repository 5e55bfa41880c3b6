//! `chronusd render`: non-real-time rendering of a score with the workers' DSP.

use crate::cli::RenderArgs;
use chronus_supervisor::score::{self, Header, HeaderError, Length, ScoreError};
use std::process::ExitCode;

/// sysexits EX_DATAERR: the score, or what was asked of it, is not accepted.
const EX_DATAERR: u8 = 65;

pub fn run(args: &RenderArgs) -> ExitCode {
    match render(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chronusd render: {e}");
            ExitCode::from(EX_DATAERR)
        }
    }
}

fn render(args: &RenderArgs) -> Result<(), ScoreError> {
    let defaults = Header::new(args.sample_rate.into(), args.voices.into()).map_err(|source| {
        let flag = match source {
            HeaderError::SampleRate(_) => "--sample-rate",
            HeaderError::Voices(_) => "--voices",
        };
        ScoreError::Default { flag, source }
    })?;
    let parsed = score::read_score(&args.score, defaults)?;
    let length = match (args.frames, args.duration) {
        (Some(frames), _) => Length::Frames(frames),
        (None, Some(seconds)) => Length::Seconds(seconds),
        (None, None) => Length::PastLastEvent,
    };
    let frames = parsed.frames(length)?;
    score::render_wav(&parsed, frames, &args.out)
}
