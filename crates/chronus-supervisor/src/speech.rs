//! Speech in the daemon. A text-to-speech answer becomes a clip in the region's
//! speech area that both workers play from one frame-stamped [`Command::Speak`], so
//! speech is bit-identical on primary and standby and carries on through a failover.
//! One utterance plays at a time; the others wait their turn. Speech recognition
//! streams the input device to the recogniser; transcripts go to subscribers.

use crate::capture::Listeners;
use crate::status::Figure;
use chronus_config::{AsrSettings, ServiceUri, SpeechSettings, TtsProtocol, TtsSettings};
use chronus_osc::{OscType, Peer};
use chronus_speech::{
    AsrConfig, Endpoint, EngineContext, EngineStatus, EventSink, OneShotConfig, RequestId,
    SpawnJob, Spawner, Speech, SpeechConfig, SpeechError, SpeechEvent, SpeechResult, Timeouts,
    TtsBackend, TtsConfig, WakeConfig, WyomingConfig,
};
use crossbeam_channel::Receiver;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub const SAY_ADDR: &str = "/chronus/tts/say";
pub const STOP_ADDR: &str = "/chronus/tts/stop";
pub const START_REPLY_ADDR: &str = "/chronus/tts/start";
pub const DONE_REPLY_ADDR: &str = "/chronus/tts/done";
pub const ASR_START_ADDR: &str = "/chronus/asr/start";
pub const ASR_STOP_ADDR: &str = "/chronus/asr/stop";
pub const TRANSCRIBE_ADDR: &str = "/chronus/asr/transcribe";
pub const TRANSCRIPT_ADDR: &str = "/chronus/asr/transcript";
pub const STATUS_REPLY_ADDR: &str = "/chronus/speech/status.reply";
pub const WAKE_ADDR: &str = "/chronus/wake";

/// Seconds of speech the region's area holds: the longest utterance.
pub const AREA_SECONDS: u64 = 60;
/// Utterances being synthesized or waiting to play; more are answered "busy".
pub const MAX_UTTERANCES: usize = 16;
/// Speech events buffered for the event loop; more are dropped and counted.
const EVENT_BUFFER: usize = 256;
/// Frames a stopped utterance takes to fade out (10 ms at 48 kHz, rounded up).
pub const STOP_FADE_SECONDS: f64 = 0.011;

/// An answer from a speech engine, delivered to the event loop.
pub enum Answer {
    /// Speech a Wyoming engine returned so far for the request with `token`.
    Streamed { token: u64, samples: Vec<f32> },
    Said {
        request: RequestId,
        result: SpeechResult,
    },
    Transcribed {
        peer: Peer,
        path: String,
        result: Result<String, SpeechError>,
    },
}

/// Who asked for an utterance, and when.
#[derive(Clone)]
pub struct Asked {
    /// Names its streamed chunks before the engine's request id is known.
    pub token: u64,
    pub peer: Peer,
    pub id: OscType,
    pub at: Instant,
    /// `/chronus/tts/stop` came while it was being synthesized.
    pub cancelled: bool,
    /// Some of its speech has streamed in.
    pub streamed: bool,
}

pub struct Utterance {
    pub asked: Asked,
    pub samples: Arc<[f32]>,
}

pub struct Playing {
    pub asked: Asked,
    /// Frames the published `Speak` commands cover.
    pub frames: u64,
    /// Frames the speech was pushed back by chunks that came after the published
    /// ones had played: it ends at `stamp + delay + frames`.
    pub delay: u64,
    /// Ends with `/chronus/fail` rather than `/chronus/tts/done`.
    pub failed: Option<String>,
    /// The engine is still sending it.
    pub stream: Option<Stream>,
    /// Log sequence of its `Speak`, once published.
    pub seq: Option<u64>,
    pub stamp: Option<u64>,
    /// Log sequence of a `SpeakStop` that cuts it short.
    pub stop_seq: Option<u64>,
    pub started: bool,
}

/// An utterance that plays while its engine still sends it: each chunk is written
/// after the last in the speech area (where no published command reads yet) and
/// played by a `Speak` that takes over from the previous one at an exact frame, at
/// the sample that one has reached, so the chain plays as one `Speak` would.
pub struct Stream {
    pub request: u64,
    /// Samples in the speech area.
    pub written: u64,
    /// The whole answer has come.
    pub complete: bool,
    pub gain: f32,
    pub duck: f32,
    /// Every sample, for the journal's records of the continuations.
    pub journal: Option<Vec<f32>>,
}

#[derive(Default)]
pub struct SpeechCounters {
    pub requests: u64,
    pub spoken: u64,
    pub failed: u64,
    pub stopped: u64,
    pub transcripts: u64,
    /// Request to its first sample handed to the device, for the latest utterance.
    pub first_sample_ms: f64,
    /// Streamed utterances that paused because a chunk came after the speech before
    /// it had played.
    pub stream_gaps: u64,
}

/// The daemon's speech: engines and the utterance queue.
pub struct Desk {
    pub speech: Option<Speech>,
    pub settings: SpeechSettings,
    pub gain: f32,
    pub duck: f32,
    /// Requests being synthesized, by the engine's request id.
    pub asked: HashMap<u64, Asked>,
    pub queue: VecDeque<Utterance>,
    pub playing: Option<Playing>,
    pub counters: SpeechCounters,
    /// The next [`Asked::token`].
    pub next_token: u64,
    /// Listening for the utterance after a wake word, until then.
    pub wake_listen_until: Option<Instant>,
    /// Spawns the engines ask the main thread to run, and their events; `None`
    /// once handed to the loop, and when speech is off.
    receivers: Option<(Receiver<SpawnJob>, Receiver<SpeechEvent>)>,
}

impl Desk {
    /// Starts the configured engines; a failure leaves speech off, logged.
    pub fn start(settings: &SpeechSettings, sample_rate: u32) -> Desk {
        let (spawner, jobs) = Spawner::delegated();
        let (events_tx, events) = crossbeam_channel::bounded(EVENT_BUFFER);
        let ctx = EngineContext {
            spawner,
            events: EventSink::new(events_tx),
            ..EngineContext::default()
        };
        let config = SpeechConfig {
            tts: settings
                .tts
                .enabled
                .then(|| tts_config(&settings.tts, sample_rate)),
            asr: settings.asr.enabled.then(|| asr_config(&settings.asr)),
            wake: settings
                .wake
                .enabled
                .then(|| endpoint(&settings.wake.uri))
                .flatten()
                .map(|e| WakeConfig::new(e, settings.wake.names.clone())),
        };
        let speech = if config.tts.is_none() && config.asr.is_none() && config.wake.is_none() {
            None
        } else {
            match Speech::start(config, ctx) {
                Ok(speech) => Some(speech),
                Err(e) => {
                    tracing::error!(error = %e, "speech engines could not start; speech is off");
                    None
                }
            }
        };
        let speech_on = speech.is_some();
        Desk {
            speech,
            settings: settings.clone(),
            gain: settings.tts.gain,
            duck: settings.tts.duck,
            asked: HashMap::new(),
            queue: VecDeque::new(),
            playing: None,
            counters: SpeechCounters::default(),
            next_token: 0,
            wake_listen_until: None,
            receivers: speech_on.then_some((jobs, events)),
        }
    }

    /// The channels the loop waits on for the engines: `None` when speech is off,
    /// so the loop does not wait on channels nobody sends to.
    pub fn take_receivers(&mut self) -> Option<(Receiver<SpawnJob>, Receiver<SpeechEvent>)> {
        self.receivers.take()
    }

    /// Who the input device feeds.
    pub fn listeners(&self) -> Listeners {
        Listeners {
            asr: self.speech.as_ref().and_then(Speech::asr).cloned(),
            wake: self.speech.as_ref().and_then(Speech::wake).cloned(),
        }
    }

    /// Sets the speech level and the music's level under it, for utterances queued
    /// from now on (a reload).
    pub fn set_levels(&mut self, gain: f32, duck: f32) {
        self.gain = gain;
        self.duck = duck;
    }

    /// Moves the engines out, to stop them on another thread.
    pub fn take_engines(&mut self) -> Engines {
        Engines {
            speech: self.speech.take(),
        }
    }

    /// `/chronus/status` figures: `(key, value)` pairs.
    pub fn status_pairs(&self, capture_dropped: u64) -> Vec<(&'static str, Figure)> {
        let long = Figure::Count;
        let int = |v: usize| Figure::int(v as u64);
        let status = self.speech.as_ref().map(Speech::status);
        let tts = status.as_ref().and_then(|s| s.tts.as_ref());
        let asr = status.as_ref().and_then(|s| s.asr.as_ref());
        let cache = tts.map(|t| t.cache).unwrap_or_default();
        let mut engines: Vec<&EngineStatus> = Vec::new();
        if let Some(t) = tts {
            engines.extend(&t.engines);
        }
        if let Some(a) = asr {
            engines.extend(a.streams.iter().map(|s| &s.engine));
        }
        let engine_words: Vec<String> = engines
            .iter()
            .map(|e| match e.pid {
                Some(pid) => format!("{}:{}:{pid}", e.name, e.state.as_str()),
                None => format!("{}:{}", e.name, e.state.as_str()),
            })
            .collect();
        let c = &self.counters;
        vec![
            (
                "tts_state",
                Figure::Text(
                    tts.map_or("off", |t| {
                        t.engines.first().map_or("off", |e| e.state.as_str())
                    })
                    .into(),
                ),
            ),
            ("tts_requests", long(c.requests)),
            ("tts_spoken", long(c.spoken)),
            ("tts_failed", long(c.failed)),
            ("tts_stopped", long(c.stopped)),
            ("tts_queue", int(self.asked.len() + self.queue.len())),
            ("tts_playing", Figure::Flag(self.playing.is_some())),
            (
                "tts_first_sample_ms",
                Figure::Float(c.first_sample_ms as f32),
            ),
            ("tts_stream_gaps", long(c.stream_gaps)),
            ("tts_cache_entries", int(cache.entries)),
            ("tts_cache_bytes", long(cache.bytes as u64)),
            ("tts_cache_hits", long(cache.hits)),
            ("tts_cache_misses", long(cache.misses)),
            ("tts_cache_evictions", long(cache.evictions)),
            (
                "asr_state",
                Figure::Text(if asr.is_some() { "on" } else { "off" }.into()),
            ),
            ("asr_streams", int(asr.map_or(0, |a| a.streams.len()))),
            ("asr_transcripts", long(c.transcripts)),
            ("asr_capture_dropped", long(capture_dropped)),
            (
                "speech_engine_restarts",
                long(engines.iter().map(|e| e.restarts).sum()),
            ),
            ("speech_engines", Figure::Text(engine_words.join(","))),
            (
                "speech_events_dropped",
                long(status.as_ref().map_or(0, |s| s.events_dropped)),
            ),
        ]
    }
}

/// The speech engines, taken out of the [`Desk`] at shutdown.
pub struct Engines {
    speech: Option<Speech>,
}

impl Engines {
    /// Stops every engine (close stdin, grace, TERM, KILL, reap).
    pub fn shutdown(mut self) {
        if let Some(mut speech) = self.speech.take() {
            speech.shutdown();
        }
    }
}

/// The program's file name, as the engine's name in logs, events and status.
fn engine_name(argv: &[String]) -> String {
    argv.first()
        .map(|p| {
            Path::new(p)
                .file_name()
                .map_or(p.clone(), |n| n.to_string_lossy().into())
        })
        .unwrap_or_else(|| "engine".into())
}

fn tts_config(s: &TtsSettings, sample_rate: u32) -> TtsConfig {
    let timeout = std::time::Duration::from_millis(u64::from(s.timeout_ms));
    let timeouts = Timeouts {
        first_audio: timeout,
        complete: timeout,
    };
    let backend = match (endpoint(&s.uri), s.protocol) {
        (Some(endpoint), _) => {
            let mut c = WyomingConfig::connect("tts", endpoint);
            c.timeouts = timeouts;
            TtsBackend::Wyoming {
                config: c,
                engines: s.engines as usize,
            }
        }
        (None, TtsProtocol::OneShot) => {
            let mut c = OneShotConfig::new(&engine_name(&s.command), s.command.clone());
            c.timeouts = timeouts;
            TtsBackend::OneShot(c)
        }
        (None, TtsProtocol::Wyoming) => {
            let mut c = WyomingConfig::new(&engine_name(&s.command), s.command.clone());
            c.timeouts = timeouts;
            TtsBackend::Wyoming {
                config: c,
                engines: s.engines as usize,
            }
        }
    };
    let mut config = TtsConfig::new(backend);
    config.default_voice = Some(s.voice.clone());
    config.output_rate = sample_rate;
    // The speech area is mono: both output channels play it.
    config.output_channels = 1;
    config.cache_entries = s.cache_entries as usize;
    config.cache_bytes = (s.cache_mb as usize) << 20;
    config
}

fn asr_config(s: &AsrSettings) -> AsrConfig {
    let mut config = AsrConfig::pocketsphinx(None);
    config.name = engine_name(&s.command);
    config.argv = s.command.clone();
    if let Some(grammar) = &s.grammar {
        config.argv.push("-jsgf".into());
        config.argv.push(grammar.to_string_lossy().into_owned());
    }
    config.rate = s.rate;
    config.endpoint = endpoint(&s.uri);
    if config.endpoint.is_some() {
        // The command is not run: the engine is the service.
        config.name = "asr".into();
    }
    config.silence = std::time::Duration::from_millis(u64::from(s.silence_ms));
    config
}

/// The running service a setting names; `None` for a program to spawn.
pub fn endpoint(uri: &ServiceUri) -> Option<Endpoint> {
    match uri {
        ServiceUri::Stdio => None,
        ServiceUri::Tcp(addr) => Some(Endpoint::Tcp(addr.clone())),
        ServiceUri::Unix(path) => Some(Endpoint::Unix(path.clone())),
    }
}

/// An id as it reads in a message.
pub fn id_words(id: &OscType) -> String {
    match id {
        OscType::String(s) => s.clone(),
        OscType::Int(i) => i.to_string(),
        OscType::Long(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}
