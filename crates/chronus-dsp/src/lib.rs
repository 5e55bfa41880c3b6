//! Deterministic synthesis engine for Chronus workers and the offline renderer.
//!
//! Voices (oscillator → resonant low-pass → ADSR, with effect sends), the acid
//! path on voice2, master effects (distortion, Freeverb, a feedback delay), two
//! LFOs, a step sequencer and a master safety limiter, all driven by [`Command`]s.
//! [`dialect::parse`] translates the Music Chronus OSC dialect into commands,
//! [`schema`] describes every parameter, and [`Params`] mirrors everything
//! commands set, so a cold start from it carries on where the music was.
//!
//! Two engines built from the same state and fed the same commands at the same
//! absolute frames produce bit-identical output, however rendering is split into
//! [`Engine::render`] calls: every frame is computed the same way whatever the
//! split, the sequencer's timeline is a function of the absolute frame (see
//! [`seq`]), nothing reads a clock or spawns a thread, noise comes from
//! generators seeded per voice, and all state is plain values (so a forked
//! worker carries on exactly where its parent was).

mod acid;
mod command;
pub mod demo;
pub mod dialect;
mod dsp;
mod engine;
mod envelope;
mod fx;
mod lanes;
mod limiter;
mod osc;
mod params;
mod schema;
pub mod seq;
mod smoother;
mod speech;
mod voice;

pub use command::{
    Bounds, Command, CommandDecodeError, Control, ControlSpec, FADE_SECONDS, GATE_LENGTH,
    MASTER_GAIN, SPEECH_DUCK, SPEECH_GAIN, VoiceParam,
};
pub use engine::{Checkpoint, Engine};
pub use limiter::{LIMITER_CEILING_DB, Limiter, LimiterParams};
pub use params::{
    AcidParams, DelayParams, DistParams, LfoParams, Params, ReverbParams, SeqParams, VoiceParams,
};
pub use schema::{modules, schema};
pub use seq::{Notes, Pattern, SeqError, Step, Track, TrackName};
pub use speech::{NoSpeech, SpeechSource};

/// Output is interleaved stereo `f32`.
pub const CHANNELS: usize = 2;

/// [`Command::encode`] never appends more than this many bytes.
pub const MAX_ENCODED_COMMAND: usize = 240;
