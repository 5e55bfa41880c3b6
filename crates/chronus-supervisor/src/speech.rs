//! Speech in the daemon. A text-to-speech answer becomes a clip in the region's
//! speech area that both workers play from one frame-stamped [`Command::Speak`], so
//! speech is bit-identical on primary and standby and carries on through a failover.
//! One utterance plays at a time; the others wait their turn. Speech recognition
//! streams the input device to the recogniser; transcripts go to subscribers.

use crate::control::Speech as Request;
use crate::{Event, Group, Supervisor, score};
use chronus_audio::Capture;
use chronus_config::{AsrSettings, SpeechSettings, TRANSCRIBE_MAX_BYTES, TtsProtocol, TtsSettings};
use chronus_dsp::Command;
use chronus_osc::{OscType, Peer};
use chronus_shm::UNSTAMPED;
use chronus_speech::{
    AsrConfig, EngineContext, EngineStatus, EventSink, OneShotConfig, RequestId, SpawnJob, Spawner,
    Speech, SpeechConfig, SpeechError, SpeechEvent, SpeechResult, Timeouts, TtsBackend, TtsConfig,
    WyomingConfig,
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

/// Seconds of speech the region's area holds: the longest utterance.
pub const AREA_SECONDS: u64 = 60;
/// Utterances being synthesized or waiting to play; more are answered "busy".
const MAX_UTTERANCES: usize = 16;
/// Speech events buffered for the event loop; more are dropped and counted.
const EVENT_BUFFER: usize = 256;
/// Frames a stopped utterance takes to fade out (10 ms at 48 kHz, rounded up).
const STOP_FADE_SECONDS: f64 = 0.011;

/// An answer from a speech engine, delivered to the event loop.
pub enum Answer {
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
struct Asked {
    peer: Peer,
    id: OscType,
    at: Instant,
    /// `/chronus/tts/stop` came while it was being synthesized.
    cancelled: bool,
}

struct Utterance {
    asked: Asked,
    samples: Arc<[f32]>,
}

struct Playing {
    asked: Asked,
    frames: u64,
    /// Log sequence of its `Speak`, once published.
    seq: Option<u64>,
    stamp: Option<u64>,
    /// Log sequence of a `SpeakStop` that cuts it short.
    stop_seq: Option<u64>,
    started: bool,
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
}

/// The daemon's speech: engines, the utterance queue and the capture.
pub struct Desk {
    speech: Option<Speech>,
    settings: SpeechSettings,
    gain: f32,
    duck: f32,
    /// Requests being synthesized, by the engine's request id.
    asked: HashMap<u64, Asked>,
    queue: VecDeque<Utterance>,
    playing: Option<Playing>,
    capture: Option<Capture>,
    pub counters: SpeechCounters,
    /// Spawns the engines ask the main thread to run.
    pub jobs: Receiver<SpawnJob>,
    pub events: Receiver<SpeechEvent>,
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
        };
        let speech = if config.tts.is_none() && config.asr.is_none() {
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
        Desk {
            speech,
            settings: settings.clone(),
            gain: settings.tts.gain,
            duck: settings.tts.duck,
            asked: HashMap::new(),
            queue: VecDeque::new(),
            playing: None,
            capture: None,
            counters: SpeechCounters::default(),
            jobs,
            events,
        }
    }

    /// Sets the speech level and the music's level under it, for utterances queued
    /// from now on (a reload).
    pub fn set_levels(&mut self, gain: f32, duck: f32) {
        self.gain = gain;
        self.duck = duck;
    }

    /// Moves the engines and the capture out, to stop them on another thread.
    pub fn take_engines(&mut self) -> Engines {
        Engines {
            speech: self.speech.take(),
            capture: self.capture.take(),
        }
    }

    /// `/chronus/status` figures: `(key, value)` pairs.
    pub fn status_pairs(&self) -> Vec<(&'static str, OscType)> {
        let long = |v: u64| OscType::Long(v as i64);
        let int = |v: usize| OscType::Int(v.min(i32::MAX as usize) as i32);
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
                OscType::String(
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
            ("tts_playing", OscType::Bool(self.playing.is_some())),
            (
                "tts_first_sample_ms",
                OscType::Float(c.first_sample_ms as f32),
            ),
            ("tts_cache_entries", int(cache.entries)),
            ("tts_cache_bytes", long(cache.bytes as u64)),
            ("tts_cache_hits", long(cache.hits)),
            ("tts_cache_misses", long(cache.misses)),
            ("tts_cache_evictions", long(cache.evictions)),
            (
                "asr_state",
                OscType::String(if asr.is_some() { "on" } else { "off" }.into()),
            ),
            ("asr_streams", int(asr.map_or(0, |a| a.streams.len()))),
            ("asr_transcripts", long(c.transcripts)),
            (
                "asr_capture_dropped",
                long(self.capture.as_ref().map_or(0, Capture::dropped)),
            ),
            (
                "speech_engine_restarts",
                long(engines.iter().map(|e| e.restarts).sum()),
            ),
            ("speech_engines", OscType::String(engine_words.join(","))),
            (
                "speech_events_dropped",
                long(status.as_ref().map_or(0, |s| s.events_dropped)),
            ),
        ]
    }
}

/// The speech engines and the input capture, taken out of the [`Desk`] at shutdown.
pub struct Engines {
    speech: Option<Speech>,
    capture: Option<Capture>,
}

impl Engines {
    /// Stops the capture and every engine (close stdin, grace, TERM, KILL, reap).
    pub fn shutdown(mut self) {
        self.capture = None;
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
    let name = engine_name(&s.command);
    let timeout = std::time::Duration::from_millis(u64::from(s.timeout_ms));
    let timeouts = Timeouts {
        first_audio: timeout,
        complete: timeout,
    };
    let backend = match s.protocol {
        TtsProtocol::OneShot => {
            let mut c = OneShotConfig::new(&name, s.command.clone());
            c.timeouts = timeouts;
            TtsBackend::OneShot(c)
        }
        TtsProtocol::Wyoming => {
            let mut c = WyomingConfig::new(&name, s.command.clone());
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
    config
}

impl Supervisor {
    pub(crate) fn on_speech(&mut self, from: Peer, request: Request) {
        match request {
            Request::Say { text, voice, id } => self.say(from, &text, voice.as_deref(), id),
            Request::StopSpeaking => self.stop_speaking(from),
            Request::StartStream(stream) => self.start_stream(from, stream),
            Request::StopStream(stream) => self.stop_stream(from, stream),
            Request::Transcribe(path) => self.transcribe(from, path),
            Request::Status => {
                let json = self
                    .desk
                    .speech
                    .as_ref()
                    .map_or_else(|| "null".to_owned(), |s| s.status().to_json().to_string());
                self.reply(
                    &from,
                    chronus_osc::message(STATUS_REPLY_ADDR, vec![OscType::String(json)]),
                );
            }
        }
    }

    fn say(&mut self, from: Peer, text: &str, voice: Option<&str>, id: Option<OscType>) {
        let Some(tts) = self.desk.speech.as_ref().and_then(Speech::tts) else {
            return self.reply(
                &from,
                chronus_osc::fail(SAY_ADDR, "text-to-speech is off (speech.tts.enabled)"),
            );
        };
        if self.desk.asked.len() + self.desk.queue.len() >= MAX_UTTERANCES {
            self.desk.counters.failed += 1;
            let reason = format!("busy: {MAX_UTTERANCES} utterances are already waiting");
            return self.reply(&from, chronus_osc::fail(SAY_ADDR, &reason));
        }
        let events = self.events.clone();
        let said = tts.say(text, voice, move |request, result| {
            let _ = events.send(Event::Speech(Answer::Said { request, result }));
        });
        match said {
            Ok(request) => {
                self.desk.counters.requests += 1;
                let asked = Asked {
                    peer: from,
                    id: id.unwrap_or(OscType::Long(request.0 as i64)),
                    at: Instant::now(),
                    cancelled: false,
                };
                self.desk.asked.insert(request.0, asked);
            }
            Err(e) => {
                self.desk.counters.failed += 1;
                self.reply(&from, chronus_osc::fail(SAY_ADDR, &e.to_string()));
            }
        }
    }

    pub(crate) fn on_speech_answer(&mut self, answer: Answer) {
        match answer {
            Answer::Said { request, result } => {
                let Some(asked) = self.desk.asked.remove(&request.0) else {
                    return;
                };
                match result {
                    _ if asked.cancelled => {
                        self.fail_utterance(&asked, "stopped by /chronus/tts/stop")
                    }
                    Err(e) => self.fail_utterance(&asked, &e.to_string()),
                    Ok(audio) => {
                        self.desk.queue.push_back(Utterance {
                            asked,
                            samples: audio.samples.clone(),
                        });
                        self.speak_next();
                    }
                }
            }
            Answer::Transcribed { peer, path, result } => match result {
                Ok(text) => {
                    self.desk.counters.transcripts += 1;
                    self.reply(
                        &peer,
                        chronus_osc::message(
                            TRANSCRIPT_ADDR,
                            vec![
                                OscType::String(path),
                                OscType::String(text),
                                OscType::Int(1),
                            ],
                        ),
                    );
                }
                Err(e) => self.reply(
                    &peer,
                    chronus_osc::fail(TRANSCRIBE_ADDR, &format!("{path}: {e}")),
                ),
            },
        }
    }

    fn fail_utterance(&mut self, asked: &Asked, reason: &str) {
        self.desk.counters.failed += 1;
        let reason = format!("request {}: {reason}", id_words(&asked.id));
        self.reply(&asked.peer, chronus_osc::fail(SAY_ADDR, &reason));
    }

    /// Starts the next utterance once nothing plays: its samples go into the speech
    /// area (free, since the last utterance has been played), then its command.
    fn speak_next(&mut self) {
        if self.desk.playing.is_some() || !self.backlog.is_empty() {
            return;
        }
        let Some(utterance) = self.desk.queue.pop_front() else {
            return;
        };
        let area = self.region.speech();
        let frames = utterance.samples.len() as u64;
        if frames > area.len() {
            let reason = format!(
                "the speech is {:.1} s long; at most {AREA_SECONDS} s is played",
                frames as f64 / f64::from(self.config.audio.sample_rate)
            );
            self.fail_utterance(&utterance.asked, &reason);
            return self.speak_next();
        }
        area.write(0, &utterance.samples);
        let (gain, duck) = (self.desk.gain, self.desk.duck);
        let speak = Command::Speak {
            offset: 0,
            frames: frames as u32,
            gain,
            duck,
        };
        // Only a journal needs the samples again, as its own copy.
        let journaled = self
            .config
            .journal
            .is_some()
            .then(|| score::speech_message(0, gain, duck, &utterance.samples));
        self.desk.playing = Some(Playing {
            asked: utterance.asked,
            frames,
            seq: None,
            stamp: None,
            stop_seq: None,
            started: false,
        });
        if let Err(reason) = self.submit(Group::now(vec![(speak, journaled)])) {
            if let Some(playing) = self.desk.playing.take() {
                self.fail_utterance(&playing.asked, reason);
            }
        }
    }

    /// A speech command was published to the log as record `seq`.
    pub(crate) fn speech_published(&mut self, command: &Command, seq: u64) {
        if let Some(playing) = &mut self.desk.playing {
            match command {
                Command::Speak { .. } => playing.seq = Some(seq),
                Command::SpeakStop => playing.stop_seq = Some(seq),
                _ => {}
            }
        }
    }

    fn stop_speaking(&mut self, from: Peer) {
        let queued: Vec<Utterance> = self.desk.queue.drain(..).collect();
        for utterance in queued {
            self.desk.counters.stopped += 1;
            self.fail_utterance(&utterance.asked, "stopped by /chronus/tts/stop");
        }
        for asked in self.desk.asked.values_mut() {
            asked.cancelled = true;
        }
        if self.desk.playing.is_some() {
            self.desk.counters.stopped += 1;
            let _ = self.submit(Group::now(vec![(Command::SpeakStop, None)]));
        }
        self.reply(&from, chronus_osc::done(STOP_ADDR, vec![]));
    }

    /// Follows the playing utterance through the device clock: `/chronus/tts/start`
    /// when its first sample is handed to the device, `/chronus/tts/done` after its last.
    pub(crate) fn speech_tick(&mut self, play: u64) {
        self.speak_next();
        let log = self.region.log();
        let rate = f64::from(self.config.audio.sample_rate);
        let Some(playing) = &mut self.desk.playing else {
            return;
        };
        let stamp_of = |seq: Option<u64>| {
            seq.and_then(|s| log.stamp_of(s))
                .filter(|&s| s != UNSTAMPED)
        };
        if playing.stamp.is_none() {
            playing.stamp = stamp_of(playing.seq);
        }
        let Some(stamp) = playing.stamp else {
            return;
        };
        let mut end = stamp + playing.frames;
        if let Some(stop) = stamp_of(playing.stop_seq) {
            end = end.min(stop.max(stamp) + (STOP_FADE_SECONDS * rate).ceil() as u64);
        }
        let mut replies = Vec::new();
        if play > stamp && !playing.started {
            playing.started = true;
            self.desk.counters.first_sample_ms = playing.asked.at.elapsed().as_secs_f64() * 1e3;
            replies.push(chronus_osc::message(
                START_REPLY_ADDR,
                vec![playing.asked.id.clone()],
            ));
        }
        let peer = playing.asked.peer;
        if play >= end {
            let playing = self.desk.playing.take().expect("checked above");
            if playing.stop_seq.is_none() {
                self.desk.counters.spoken += 1;
            }
            replies.push(chronus_osc::message(
                DONE_REPLY_ADDR,
                vec![playing.asked.id],
            ));
        }
        for reply in replies {
            self.reply(&peer, reply);
        }
        if self.desk.playing.is_none() {
            self.speak_next();
        }
    }

    fn start_stream(&mut self, from: Peer, stream: String) {
        let Some(asr) = self.desk.speech.as_ref().and_then(Speech::asr).cloned() else {
            return self.reply(
                &from,
                chronus_osc::fail(
                    ASR_START_ADDR,
                    "speech recognition is off (speech.asr.enabled)",
                ),
            );
        };
        if self.desk.capture.is_none() {
            let feed = asr.clone();
            let device = self.desk.settings.asr.input_device.as_deref();
            let started = Capture::start(device, move |samples, rate, channels| {
                feed.push_all(samples, rate, channels)
            });
            match started {
                Ok(capture) => {
                    tracing::info!(
                        device = capture.device_name(),
                        rate = capture.rate(),
                        channels = capture.channels(),
                        "capturing the input device for speech recognition"
                    );
                    self.desk.capture = Some(capture);
                }
                Err(e) => {
                    return self.reply(
                        &from,
                        chronus_osc::fail(ASR_START_ADDR, &format!("cannot capture: {e}")),
                    );
                }
            }
        }
        match asr.start_stream(&stream) {
            Ok(_) => self.reply(
                &from,
                chronus_osc::done(ASR_START_ADDR, vec![OscType::String(stream)]),
            ),
            Err(e) => self.reply(&from, chronus_osc::fail(ASR_START_ADDR, &e.to_string())),
        }
    }

    fn stop_stream(&mut self, from: Peer, stream: String) {
        let Some(asr) = self.desk.speech.as_ref().and_then(Speech::asr).cloned() else {
            return self.reply(
                &from,
                chronus_osc::fail(
                    ASR_STOP_ADDR,
                    "speech recognition is off (speech.asr.enabled)",
                ),
            );
        };
        if !asr.stop_stream(&stream) {
            let reason = format!("no stream named {stream:?} is running");
            return self.reply(&from, chronus_osc::fail(ASR_STOP_ADDR, &reason));
        }
        if asr.active_streams().is_empty() {
            self.desk.capture = None;
        }
        self.reply(
            &from,
            chronus_osc::done(ASR_STOP_ADDR, vec![OscType::String(stream)]),
        );
    }

    fn transcribe(&mut self, from: Peer, path: String) {
        let Some(asr) = self.desk.speech.as_ref().and_then(Speech::asr) else {
            return self.reply(
                &from,
                chronus_osc::fail(
                    TRANSCRIBE_ADDR,
                    "speech recognition is off (speech.asr.enabled)",
                ),
            );
        };
        // Only a regular file, named inside the one directory clients may read from.
        let dir = self.config.speech.asr.transcribe_dir();
        let pcm = crate::files::confine(&dir, Path::new(&path))
            .and_then(|file| crate::files::read_regular(&file, TRANSCRIBE_MAX_BYTES))
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                chronus_speech::parse_wav(&bytes).map_err(|e| format!("{path}: {e}"))
            });
        let pcm = match pcm {
            Ok(pcm) => pcm,
            Err(reason) => return self.reply(&from, chronus_osc::fail(TRANSCRIBE_ADDR, &reason)),
        };
        let events = self.events.clone();
        let answer_path = path.clone();
        let submitted = asr.transcribe(&pcm, move |_, result| {
            let _ = events.send(Event::Speech(Answer::Transcribed {
                peer: from,
                path: answer_path,
                result,
            }));
        });
        if let Err(e) = submitted {
            self.reply(
                &from,
                chronus_osc::fail(TRANSCRIBE_ADDR, &format!("{path}: {e}")),
            );
        }
    }

    /// Logs an engine event and tells subscribers what they may act on.
    pub(crate) fn on_speech_event(&mut self, event: SpeechEvent) {
        let string = |s: &str| OscType::String(s.into());
        let announce = match event {
            SpeechEvent::Transcript {
                stream,
                text,
                is_final,
            } => {
                self.desk.counters.transcripts += 1;
                tracing::info!(stream, text, "transcript");
                Some(chronus_osc::message(
                    TRANSCRIPT_ADDR,
                    vec![
                        string(&stream),
                        string(&text),
                        OscType::Int(i32::from(is_final)),
                    ],
                ))
            }
            SpeechEvent::EngineStarted { engine, pid } => {
                tracing::debug!(engine, pid, "speech engine started");
                Some(chronus_osc::message(
                    "/chronus/speech/engine",
                    vec![string(&engine), OscType::Int(pid as i32), string("started")],
                ))
            }
            SpeechEvent::EngineExited {
                engine,
                pid,
                cause,
                crash,
            } => {
                if crash {
                    tracing::warn!(engine, pid, cause, "speech engine crashed");
                } else {
                    tracing::debug!(engine, pid, cause, "speech engine exited");
                }
                Some(chronus_osc::message(
                    "/chronus/speech/engine",
                    vec![
                        string(&engine),
                        OscType::Int(pid as i32),
                        string(if crash { "crashed" } else { "exited" }),
                    ],
                ))
            }
            SpeechEvent::EngineRestarting { engine, delay } => {
                tracing::info!(
                    engine,
                    delay_ms = delay.as_millis() as u64,
                    "restarting speech engine"
                );
                None
            }
            SpeechEvent::EngineFailed { engine, crashes } => {
                tracing::error!(
                    engine,
                    crashes,
                    "speech engine keeps crashing; it is no longer restarted"
                );
                Some(chronus_osc::message(
                    "/chronus/speech/failed",
                    vec![string(&engine), OscType::Int(crashes as i32)],
                ))
            }
            SpeechEvent::ProtocolError {
                engine,
                pid,
                detail,
            } => {
                tracing::warn!(
                    engine,
                    pid,
                    detail,
                    "speech engine broke its protocol; restarting it"
                );
                Some(chronus_osc::message(
                    "/chronus/speech/error",
                    vec![string(&engine), string(&detail)],
                ))
            }
            SpeechEvent::Unresponsive {
                engine,
                pid,
                request,
            } => {
                tracing::warn!(engine, pid, %request, "speech engine hung on a request; restarting it");
                Some(chronus_osc::message(
                    "/chronus/speech/error",
                    vec![string(&engine), string("unresponsive")],
                ))
            }
            SpeechEvent::HealthCheckFailed { engine, detail } => {
                tracing::warn!(engine, detail, "speech engine failed its health check");
                None
            }
        };
        if let Some(event) = announce {
            self.broadcast(event);
        }
    }
}

/// An id as it reads in a message.
fn id_words(id: &OscType) -> String {
    match id {
        OscType::String(s) => s.clone(),
        OscType::Int(i) => i.to_string(),
        OscType::Long(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}
