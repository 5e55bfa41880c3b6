//! Everything speech in one handle for the daemon: TTS, ASR and wake-word
//! detection started together, one status, one shutdown.

use crate::asr::StreamStatus;
use crate::asr::{Asr, AsrConfig, AsrStatus};
use crate::engine::{EngineContext, EngineStatus};
use crate::tts::{Tts, TtsConfig, TtsStatus};
use crate::wake::{Wake, WakeConfig};
use serde_json::{Value, json};
use std::sync::Arc;

/// Which parts run; either may be off.
#[derive(Clone, Debug, Default)]
pub struct SpeechConfig {
    pub tts: Option<TtsConfig>,
    pub asr: Option<AsrConfig>,
    pub wake: Option<WakeConfig>,
}

/// Speech figures for the daemon's status.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeechStatus {
    pub tts: Option<TtsStatus>,
    pub asr: Option<AsrStatus>,
    /// `transcripts` counts detections.
    pub wake: Option<StreamStatus>,
    /// Events dropped because the daemon's channel was full.
    pub events_dropped: u64,
}

impl SpeechStatus {
    /// The figures as JSON, for `/chronus/status` and `chronusctl status --json`.
    pub fn to_json(&self) -> Value {
        let tts = self.tts.as_ref().map(|t| {
            json!({
                "engines": t.engines.iter().map(engine_json).collect::<Vec<_>>(),
                "queue_depth": t.queue_depth,
                "pool": t.pool.map(|p| json!({
                    "size": p.size, "in_use": p.in_use, "waiting": p.waiting,
                    "acquisitions": p.acquisitions, "timeouts": p.timeouts,
                })),
                "cache": {
                    "entries": t.cache.entries, "bytes": t.cache.bytes,
                    "max_entries": t.cache.max_entries, "max_bytes": t.cache.max_bytes,
                    "hits": t.cache.hits, "misses": t.cache.misses,
                    "evictions": t.cache.evictions, "rejected": t.cache.rejected,
                },
            })
        });
        let asr = self.asr.as_ref().map(|a| {
            json!({
                "active_streams": a.streams.len(),
                "streams": a.streams.iter().map(|s| json!({
                    "stream": s.stream,
                    "engine": engine_json(&s.engine),
                    "frames_in": s.frames_in,
                    "frames_dropped": s.frames_dropped,
                    "transcripts": s.transcripts,
                })).collect::<Vec<_>>(),
                "files": engine_json(&a.files),
            })
        });
        let wake = self.wake.as_ref().map(|w| {
            json!({
                "engine": engine_json(&w.engine),
                "frames_in": w.frames_in,
                "frames_dropped": w.frames_dropped,
                "detections": w.transcripts,
            })
        });
        json!({ "tts": tts, "asr": asr, "wake": wake, "events_dropped": self.events_dropped })
    }
}

fn engine_json(e: &EngineStatus) -> Value {
    json!({
        "name": e.name,
        "kind": e.kind,
        "state": e.state.as_str(),
        "pid": e.pid,
        "restarts": e.restarts,
        "crashes": e.crashes,
        "failed": e.failed,
        "queue_depth": e.queue_depth,
        "queue_capacity": e.queue_capacity,
        "completed": e.completed,
        "errors": e.errors,
        "timeouts": e.timeouts,
        "last_error": e.last_error,
        "health": e.health.map(|h| json!({
            "ok": h.ok,
            "latency_ms": h.latency.as_secs_f64() * 1e3,
            "age_ms": h.age.as_secs_f64() * 1e3,
        })),
        "endpoint": e.endpoint,
        "offers": e.offers.as_ref().map(|o| json!({
            "programs": o.programs,
            "voices": o.voices,
            "models": o.models,
            "wake_words": o.wake_words,
            "languages": o.languages,
        })),
    })
}

/// TTS and ASR, started and stopped together.
pub struct Speech {
    tts: Option<Tts>,
    /// Shared: the capture thread feeds streams while the event loop starts them.
    asr: Option<Arc<Asr>>,
    /// Shared like `asr`.
    wake: Option<Arc<Wake>>,
    ctx: EngineContext,
}

impl Speech {
    /// Starts the configured parts. Engine processes are spawned by the engines'
    /// threads or, with a delegated spawner, by whoever runs the spawn jobs.
    pub fn start(config: SpeechConfig, ctx: EngineContext) -> std::io::Result<Self> {
        let tts = config.tts.map(|c| Tts::start(c, ctx.clone())).transpose()?;
        let asr = config
            .asr
            .map(|c| Asr::start(c, ctx.clone()).map(Arc::new))
            .transpose()?;
        let wake = config
            .wake
            .map(|c| Wake::start(c, ctx.clone()).map(Arc::new))
            .transpose()?;
        Ok(Speech {
            tts,
            asr,
            wake,
            ctx,
        })
    }

    pub fn tts(&self) -> Option<&Tts> {
        self.tts.as_ref()
    }

    /// Clone the `Arc` for the thread that captures the input device.
    pub fn asr(&self) -> Option<&Arc<Asr>> {
        self.asr.as_ref()
    }

    /// Clone the `Arc` for the thread that captures the input device.
    pub fn wake(&self) -> Option<&Arc<Wake>> {
        self.wake.as_ref()
    }

    pub fn status(&self) -> SpeechStatus {
        SpeechStatus {
            tts: self.tts.as_ref().map(Tts::status),
            asr: self.asr.as_deref().map(Asr::status),
            wake: self.wake.as_deref().map(Wake::status),
            events_dropped: self.ctx.events.dropped(),
        }
    }

    /// Stops accepting requests, answers queued ones with "shutting down", stops
    /// every engine (close stdin, 2 s, SIGTERM, 1 s, SIGKILL, reap) in parallel and
    /// waits: under a second when engines exit on end of input, about 3 s at worst.
    pub fn shutdown(&mut self) {
        if let Some(tts) = &self.tts {
            tts.begin_shutdown();
        }
        if let Some(asr) = &self.asr {
            asr.shutdown();
        }
        if let Some(wake) = &self.wake {
            wake.shutdown();
        }
        if let Some(tts) = &mut self.tts {
            tts.shutdown();
        }
    }
}

impl Drop for Speech {
    fn drop(&mut self) {
        self.shutdown();
    }
}
