//! Chronus speech: text-to-speech and speech-recognition engines run as supervised
//! subprocesses, with bounded request queues, timeouts, restarts, an engine pool and
//! a synthesis cache. The daemon integrates it; nothing here needs the daemon.
//!
//! # Wiring it into the daemon
//!
//! - Build a [`SpeechConfig`] (`TtsConfig::espeak_ng()` and
//!   `AsrConfig::pocketsphinx(grammar)` work out of the box on Debian) and an
//!   [`EngineContext`]: an [`EventSink`] around a channel the event loop selects on,
//!   and a [`Spawner`]. With [`Spawner::delegated`] the event loop receives
//!   [`SpawnJob`]s and must `run()` each promptly on the main thread, which keeps the
//!   rule that only the main thread spawns (and owns `PR_SET_PDEATHSIG`). With
//!   [`Spawner::Inline`] each engine's long-lived thread spawns its own processes; it
//!   reaps them before it ends, so the parent-death signal still only fires when the
//!   daemon dies.
//! - Requests never block the caller: [`Tts::say`] and the other `submit`-style calls
//!   answer at once with [`SpeechError::Busy`] (queue full), an invalid-request or a
//!   shutting-down error, or accept the request and later call the given closure
//!   exactly once, on an engine thread (at once for a cache hit). The closure should
//!   just send an event to the event loop.
//! - Engines reap their own children with `waitpid(pid)`. A daemon that also reaps
//!   other children must skip the pids [`is_engine_process`] names: their engines rely
//!   on the exit status and on the leader staying unreaped until its group is signalled.
//! - On shutdown call [`Speech::shutdown`] (from any thread; it does not need the
//!   spawning thread): at most about 3 s, under 1 s when engines exit on end of input.

// The process setup that needs `unsafe` lives in `chronus-process`.
#![forbid(unsafe_code)]

pub mod asr;
pub mod audio;
pub mod cache;
pub mod engine;
pub mod error;
pub mod link;
mod listen;
pub mod oneshot;
pub mod pool;
pub mod process;
pub mod server;
pub mod speech;
pub mod tts;
pub mod wake;
pub mod wyoming;

pub use asr::{Asr, AsrConfig, AsrStatus, StreamStart, StreamStatus};
pub use audio::{Pcm, Resampler, SpeechAudio, parse_wav};
pub use cache::{CacheKey, CacheStats, SpeechCache};
pub use engine::{
    EngineContext, EngineState, EngineStatus, EventSink, HealthStatus, RequestId, RestartPolicy,
    SpeechEvent, Ticket, Timeouts,
};
pub use error::{AudioError, SpeechError};
pub use link::Endpoint;
pub use oneshot::{Job, OneShotConfig, OneShotEngine};
pub use pool::{Lease, Pool, PoolError, PoolStats};
pub use process::{ExitCause, SpawnJob, Spawner, StopTimings, is_engine_process};
pub use server::{AudioSink, Reply, Request, WyomingConfig, WyomingEngine};
pub use speech::{Speech, SpeechConfig, SpeechStatus};
pub use tts::{OnSamples, SpeechResult, Tts, TtsBackend, TtsConfig, TtsStatus};
pub use wake::{Wake, WakeConfig};
pub use wyoming::Offers;
