//! Deterministic synthesis engine for Chronus workers and the offline renderer.
//!
//! Two engines built from the same state and fed the same commands at the same
//! absolute frames produce bit-identical output, however rendering is split into
//! [`Engine::render`] calls: everything is processed per sample, nothing reads a
//! clock, spawns a thread or draws a random number, and all state is plain values
//! (so a forked worker carries on exactly where its parent was).

mod command;
pub mod dialect;
mod engine;
mod envelope;
mod params;
mod smoother;
mod voice;

pub use command::{Bounds, Command, CommandDecodeError, FADE_SECONDS, MASTER_GAIN, VoiceParam};
pub use engine::Engine;
pub use params::{Params, VoiceParams};

/// Output is interleaved stereo `f32`.
pub const CHANNELS: usize = 2;

/// [`Command::encode`] never appends more than this many bytes.
pub const MAX_ENCODED_COMMAND: usize = 240;
