//! Errors. Every request gets exactly one answer, and a failed one says which engine
//! failed and how; errors are `Clone` so one reason can fail a whole queue.

use std::time::Duration;

/// Why a speech request, or an engine operation, did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpeechError {
    /// The engine's queue already holds `capacity` requests.
    #[error("{engine}: busy: the request queue is full ({capacity} waiting); try again later")]
    Busy { engine: String, capacity: usize },
    /// The engine is shutting down; queued and new requests are refused.
    #[error("{engine}: shutting down; the request was not run")]
    ShuttingDown { engine: String },
    /// The engine crashed too often and is no longer restarted.
    #[error("{engine}: failed: {crashes} crashes within {window:?}; not restarted until reset")]
    EngineFailed {
        engine: String,
        crashes: u32,
        window: Duration,
    },
    /// No audio (or, for requests without audio, no reply) arrived in time.
    #[error("{engine}: no audio within {limit:?} of the request")]
    FirstAudioTimeout { engine: String, limit: Duration },
    /// The request did not complete in time (including time spent queued).
    #[error("{engine}: the request did not complete within {limit:?}")]
    Timeout { engine: String, limit: Duration },
    /// The engine process exited while the request was in flight.
    #[error("{engine}: the engine exited during the request ({cause})")]
    EngineExited { engine: String, cause: String },
    /// The engine broke the protocol: bad framing, invalid JSON, unexpected events
    /// or an unsupported audio format. `detail` holds the offending bytes, escaped.
    #[error("{engine}: protocol error: {detail}")]
    Protocol { engine: String, detail: String },
    /// The engine answered the request with an error of its own.
    #[error("{engine}: the engine reported an error: {message}")]
    EngineError { engine: String, message: String },
    /// The request itself is not acceptable (empty or oversized text, bad voice name).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The engine program could not be started.
    #[error("{engine}: cannot start `{program}`: {error}")]
    Spawn {
        engine: String,
        program: String,
        error: String,
    },
    /// The running service could not be reached.
    #[error("{engine}: cannot connect to {endpoint}: {error}")]
    Connect {
        engine: String,
        endpoint: String,
        error: String,
    },
    /// The engine's audio could not be decoded.
    #[error("{engine}: {error}")]
    Audio { engine: String, error: AudioError },
}

/// Audio that cannot be decoded or converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// Not a WAV stream hound can read.
    #[error(
        "invalid WAV audio ({detail}); accepted: RIFF/WAVE with 8/16/24/32-bit integer or 32-bit float PCM"
    )]
    Wav { detail: String },
    /// A sample rate of zero, or one above the supported maximum.
    #[error("unsupported sample rate {rate} Hz; accepted: 1..={max} Hz")]
    Rate { rate: u32, max: u32 },
    /// Raw PCM whose layout is not supported.
    #[error("unsupported PCM layout: {detail}; accepted: 16-bit little-endian, 1 or 2 channels")]
    Layout { detail: String },
}
