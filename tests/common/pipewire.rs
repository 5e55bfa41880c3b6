//! The private PipeWire of `chronus-sound-servers`, started for a test.

pub use chronus_sound_servers::PipeWire;
use std::path::Path;

/// Starts the bus, PipeWire and WirePlumber in `dir`, or returns None (skipping)
/// when PipeWire is not installed and not under CI.
pub fn start(dir: &Path) -> Option<PipeWire> {
    super::installed_or_skip("pipewire")?;
    Some(PipeWire::start(dir).unwrap_or_else(|e| panic!("{e}")))
}
