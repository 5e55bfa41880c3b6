//! The private jackd of `chronus-sound-servers`, started for a test.

pub use chronus_sound_servers::Jack;
use chronus_sound_servers::jack::JackSettings;
use chronus_sound_servers::recording::{self, Format};
use std::path::Path;

/// Starts jackd at 48 kHz with `period` frames, or returns None (skipping) when it
/// is not installed and not under CI.
pub fn start(dir: &Path, period: u32) -> Option<Jack> {
    start_at(dir, 48_000, period)
}

/// As [`start`], at `rate` Hz. Without realtime scheduling, which test machines
/// seldom grant.
pub fn start_at(dir: &Path, rate: u32, period: u32) -> Option<Jack> {
    super::installed_or_skip("jackd")?;
    let settings = JackSettings {
        name: format!("chronus-test-{}", std::process::id()),
        rate,
        period,
        realtime: false,
    };
    Some(Jack::start(dir, &settings).unwrap_or_else(|e| panic!("{e}")))
}

/// The frames of a WAV `jack_rec` wrote, as (left, right).
pub fn read_jack_rec(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let samples = recording::read(path, Format::WavI32).unwrap();
    let left = samples.chunks_exact(2).map(|f| f[0]).collect();
    let right = samples.chunks_exact(2).map(|f| f[1]).collect();
    (left, right)
}
