//! The private PulseAudio of `chronus-sound-servers`, started for a test.

pub use chronus_sound_servers::Pulse;
use std::path::Path;

/// Starts PulseAudio in `dir`, or returns None (skipping) when it is not installed
/// and not under CI.
pub fn start(dir: &Path) -> Option<Pulse> {
    super::installed_or_skip("pulseaudio")?;
    Some(Pulse::start(dir).unwrap_or_else(|e| panic!("{e}")))
}
