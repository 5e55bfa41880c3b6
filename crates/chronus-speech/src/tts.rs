//! Text to speech: request validation, the synthesis cache, and dispatch to either a
//! one-shot program or a pool of Wyoming engines; answers are converted to the output
//! format (f32 at the output rate, stereo by default) before they are cached.

use crate::audio::{Pcm, Resampler, SpeechAudio, mono_to_stereo, parse_wav};
use crate::cache::{CacheKey, CacheStats, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, SpeechCache};
use crate::engine::{
    EngineContext, EngineStatus, Pending, RequestId, RequestQueue, Ticket, Timeouts,
};
use crate::error::SpeechError;
use crate::oneshot::{Job, OneShotConfig, OneShotEngine};
use crate::pool::{Pool, PoolError, PoolStats};
use crate::server::{AudioSink, Reply, Request, WyomingConfig, WyomingEngine};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest voice name accepted.
const MAX_VOICE_LEN: usize = 64;

/// Where synthesis happens.
#[derive(Clone, Debug)]
pub enum TtsBackend {
    OneShot(OneShotConfig),
    /// `engines` copies of the same Wyoming server, pooled.
    Wyoming {
        config: WyomingConfig,
        engines: usize,
    },
}

/// Text-to-speech settings.
#[derive(Clone, Debug)]
pub struct TtsConfig {
    pub backend: TtsBackend,
    /// Used when a request names no voice.
    pub default_voice: Option<String>,
    pub output_rate: u32,
    /// 1 or 2.
    pub output_channels: u16,
    pub cache_entries: usize,
    pub cache_bytes: usize,
    pub max_text_bytes: usize,
    /// Requests waiting for a pooled Wyoming engine.
    pub queue_capacity: usize,
}

impl TtsConfig {
    /// Settings around `backend`, with the defaults.
    pub fn new(backend: TtsBackend) -> Self {
        TtsConfig {
            backend,
            default_voice: None,
            output_rate: 48_000,
            output_channels: 2,
            cache_entries: DEFAULT_MAX_ENTRIES,
            cache_bytes: DEFAULT_MAX_BYTES,
            max_text_bytes: 4096,
            queue_capacity: 16,
        }
    }

    /// What works out of the box on Debian: `espeak-ng --stdout`, voice `en`.
    pub fn espeak_ng() -> Self {
        let argv = ["espeak-ng", "--stdout", "-v", "{voice}", "{text}"]
            .map(String::from)
            .to_vec();
        let mut config = TtsConfig::new(TtsBackend::OneShot(OneShotConfig::new("espeak-ng", argv)));
        config.default_voice = Some("en".into());
        config
    }

    fn engine_name(&self) -> &str {
        match &self.backend {
            TtsBackend::OneShot(c) => &c.name,
            TtsBackend::Wyoming { config, .. } => &config.name,
        }
    }
}

/// Text-to-speech figures for status.
#[derive(Clone, Debug, PartialEq)]
pub struct TtsStatus {
    pub engines: Vec<EngineStatus>,
    pub cache: CacheStats,
    /// For a Wyoming backend.
    pub pool: Option<PoolStats>,
    /// Requests waiting for a pooled engine.
    pub queue_depth: usize,
}

/// The answer to a `say`: finished speech, shared with the cache.
pub type SpeechResult = Result<Arc<SpeechAudio>, SpeechError>;

struct SayJob {
    text: String,
    voice: Option<String>,
    key: CacheKey,
    stream: Option<OnSamples>,
}

/// Receives speech in the output format (rate and channels) as it is synthesized;
/// called on an engine thread, must not block.
pub type OnSamples = Arc<dyn Fn(&[f32]) + Send + Sync>;

/// The Wyoming side: a queue, a dispatcher thread and the pool it leases from.
struct Dispatch {
    queue: Arc<RequestQueue<SayJob, Arc<SpeechAudio>>>,
    pool: Pool<Arc<WyomingEngine>>,
    thread: Option<JoinHandle<()>>,
}

enum Backend {
    OneShot(OneShotEngine),
    Wyoming(Dispatch),
}

struct Convert {
    cache: Arc<SpeechCache>,
    rate: u32,
    channels: u16,
    engine: Arc<str>,
}

impl Convert {
    /// Engine WAV bytes to output audio, cached.
    fn wav(&self, key: CacheKey, wav: &[u8]) -> SpeechResult {
        let pcm = parse_wav(wav).map_err(|error| SpeechError::Audio {
            engine: self.engine.to_string(),
            error,
        })?;
        self.pcm(key, &pcm)
    }

    /// A sink converting engine chunks to the output format as they come: the same
    /// samples [`pcm`](Self::pcm) makes of the whole reply, the resampler's tail
    /// handed on when the reply ends (an empty chunk).
    fn streaming(&self, on_samples: OnSamples) -> AudioSink {
        let (rate, channels) = (self.rate, self.channels);
        let resampler: Mutex<Option<(u32, Resampler)>> = Mutex::new(None);
        AudioSink(Arc::new(move |pcm: &Pcm| {
            let mut slot = resampler.lock().unwrap_or_else(|e| e.into_inner());
            let mut mono = Vec::new();
            if pcm.samples.is_empty() {
                // The reply is complete: its tail now, not after the whole reply
                // is converted again (which takes a while for a long one).
                if let Some((_, r)) = slot.as_mut() {
                    r.finish(&mut mono);
                }
            } else {
                if slot.as_ref().is_none_or(|(r, _)| *r != pcm.rate) {
                    // A format change mid-reply fails the whole reply; stop streaming.
                    if slot.is_some() {
                        return;
                    }
                    match Resampler::new(pcm.rate, rate) {
                        Ok(r) => *slot = Some((pcm.rate, r)),
                        Err(_) => return,
                    }
                }
                let (_, r) = slot.as_mut().expect("set above");
                r.process(&pcm.to_mono(), &mut mono);
            }
            if mono.is_empty() {
                return;
            }
            match channels {
                1 => on_samples(&mono),
                _ => on_samples(&mono_to_stereo(&mono)),
            }
        }))
    }

    fn pcm(&self, key: CacheKey, pcm: &crate::audio::Pcm) -> SpeechResult {
        let audio = SpeechAudio::from_pcm(pcm, self.rate, self.channels).map_err(|error| {
            SpeechError::Audio {
                engine: self.engine.to_string(),
                error,
            }
        })?;
        let audio = Arc::new(audio);
        self.cache.insert(key, audio.clone());
        Ok(audio)
    }
}

/// Text to speech with a cache in front of its engine(s).
pub struct Tts {
    config: TtsConfig,
    convert: Arc<Convert>,
    backend: Backend,
    stopping: Arc<AtomicBool>,
}

impl Tts {
    /// Starts the engine(s). With a Wyoming backend, `engines` servers start now.
    pub fn start(config: TtsConfig, ctx: EngineContext) -> std::io::Result<Self> {
        let cache = Arc::new(SpeechCache::new(config.cache_entries, config.cache_bytes));
        let convert = Arc::new(Convert {
            cache,
            rate: config.output_rate,
            channels: config.output_channels,
            engine: config.engine_name().into(),
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let backend = match &config.backend {
            TtsBackend::OneShot(c) => Backend::OneShot(OneShotEngine::start(c.clone(), ctx)?),
            TtsBackend::Wyoming { config: c, engines } => {
                let mut servers = Vec::new();
                for i in 0..(*engines).max(1) {
                    let mut c = c.clone();
                    if *engines > 1 {
                        c.name = format!("{}-{i}", c.name);
                    }
                    servers.push(Arc::new(WyomingEngine::start(c, ctx.clone())?));
                }
                let pool = Pool::new(servers);
                let (queue, bell) =
                    RequestQueue::new(config.engine_name().into(), config.queue_capacity);
                let queue = Arc::new(queue);
                let dispatcher = Dispatcher {
                    queue: queue.clone(),
                    pool: pool.clone(),
                    bell,
                    convert: convert.clone(),
                    timeouts: c.timeouts,
                    stopping: stopping.clone(),
                };
                let thread = std::thread::Builder::new()
                    .name("speech-tts-dispatch".into())
                    .spawn(move || dispatcher.run())?;
                Backend::Wyoming(Dispatch {
                    queue,
                    pool,
                    thread: Some(thread),
                })
            }
        };
        Ok(Tts {
            config,
            convert,
            backend,
            stopping,
        })
    }

    /// Synthesizes `text` (in `voice`, or the default). `respond` gets the audio
    /// exactly once: at once on this thread for a cache hit, later on an engine
    /// thread otherwise. Refused at once if the request is invalid or the queue full.
    pub fn say(
        &self,
        text: &str,
        voice: Option<&str>,
        respond: impl FnOnce(RequestId, SpeechResult) + Send + 'static,
    ) -> Result<RequestId, SpeechError> {
        self.say_streaming(text, voice, None, respond)
    }

    /// [`say`](Self::say), with the speech also handed to `stream` as a Wyoming
    /// engine returns it, chunk by chunk, already in the output format. The chunks
    /// are a prefix of the audio `respond` gets, sample for sample (the resampler
    /// streams). A cache hit or a one-shot engine streams nothing: `respond` then
    /// carries all of it.
    pub fn say_streaming(
        &self,
        text: &str,
        voice: Option<&str>,
        stream: Option<OnSamples>,
        respond: impl FnOnce(RequestId, SpeechResult) + Send + 'static,
    ) -> Result<RequestId, SpeechError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(SpeechError::ShuttingDown {
                engine: self.convert.engine.to_string(),
            });
        }
        let text = validate_text(text, self.config.max_text_bytes)?;
        let voice = match voice {
            Some(v) => Some(validate_voice(v)?),
            None => self.config.default_voice.clone(),
        };
        let key = CacheKey {
            engine: self.convert.engine.to_string(),
            voice: voice.clone().unwrap_or_default(),
            text: text.clone(),
        };
        if let Some(audio) = self.convert.cache.get(&key) {
            let id = RequestId::next();
            respond(id, Ok(audio));
            return Ok(id);
        }
        match &self.backend {
            Backend::OneShot(engine) => {
                let mut vars = vec![("text".to_string(), text)];
                if let Some(v) = voice {
                    vars.push(("voice".to_string(), v));
                }
                let convert = self.convert.clone();
                engine.submit(
                    Job {
                        vars,
                        stdin: Vec::new(),
                    },
                    move |id, wav| respond(id, wav.and_then(|w| convert.wav(key, &w))),
                )
            }
            Backend::Wyoming(d) => d.queue.push(
                SayJob {
                    text,
                    voice,
                    key,
                    stream,
                },
                respond,
            ),
        }
    }

    /// [`say`](Self::say) with a ticket to wait on.
    pub fn say_ticket(
        &self,
        text: &str,
        voice: Option<&str>,
    ) -> Result<Ticket<Arc<SpeechAudio>>, SpeechError> {
        let (ticket, respond) = Ticket::pair();
        let id = self.say(text, voice, respond)?;
        Ok(ticket.with_id(id))
    }

    pub fn status(&self) -> TtsStatus {
        let cache = self.convert.cache.stats();
        match &self.backend {
            Backend::OneShot(e) => TtsStatus {
                engines: vec![e.status()],
                cache,
                pool: None,
                queue_depth: 0,
            },
            Backend::Wyoming(d) => TtsStatus {
                engines: d.pool.items().iter().map(|e| e.status()).collect(),
                cache,
                pool: Some(d.pool.stats()),
                queue_depth: d.queue.len(),
            },
        }
    }

    /// Brings failed engines back (Wyoming; one-shot engines never fail for good).
    pub fn reset(&self) {
        if let Backend::Wyoming(d) = &self.backend {
            d.pool.items().iter().for_each(|e| e.reset());
        }
    }

    /// Refuses new requests, answers queued ones and begins stopping every engine,
    /// without waiting.
    pub fn begin_shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        let reason = SpeechError::ShuttingDown {
            engine: self.convert.engine.to_string(),
        };
        match &self.backend {
            Backend::OneShot(e) => e.begin_shutdown(),
            Backend::Wyoming(d) => {
                d.queue.refuse(reason);
                d.pool.close();
                d.pool.items().iter().for_each(|e| e.begin_shutdown());
            }
        }
    }

    /// Shuts down and waits until every engine process is reaped (engines stop in
    /// parallel, so this takes as long as the slowest one).
    pub fn shutdown(&mut self) {
        self.begin_shutdown();
        match &mut self.backend {
            Backend::OneShot(e) => e.shutdown(),
            Backend::Wyoming(d) => {
                if let Some(t) = d.thread.take()
                    && t.join().is_err()
                {
                    tracing::error!("tts dispatcher panicked");
                }
                d.pool.items().iter().for_each(|e| e.shutdown());
            }
        }
    }
}

impl Drop for Tts {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Dispatcher {
    queue: Arc<RequestQueue<SayJob, Arc<SpeechAudio>>>,
    pool: Pool<Arc<WyomingEngine>>,
    bell: crossbeam_channel::Receiver<()>,
    convert: Arc<Convert>,
    timeouts: Timeouts,
    stopping: Arc<AtomicBool>,
}

impl Dispatcher {
    fn run(self) {
        while !self.stopping.load(Ordering::Acquire) {
            let now = Instant::now();
            let t = self.timeouts;
            let engine = self.convert.engine.clone();
            let next = self.queue.expire(
                now,
                |p| p.first_audio_deadline(&t),
                |_| SpeechError::FirstAudioTimeout {
                    engine: engine.to_string(),
                    limit: t.first_audio,
                },
            );
            if let Some(pending) = self.queue.pop() {
                self.dispatch(pending);
                continue;
            }
            let timeout = next.map_or(Duration::from_millis(500), |n| n - now);
            // Woken by a new request; the timeout also notices shutdown.
            let _ = self
                .bell
                .recv_timeout(timeout.min(Duration::from_millis(500)));
        }
    }

    /// Leases an engine for the request; the lease is released when the engine
    /// has answered (on its thread).
    fn dispatch(&self, pending: Pending<SayJob, Arc<SpeechAudio>>) {
        let left = pending
            .first_audio_deadline(&self.timeouts)
            .saturating_duration_since(Instant::now());
        // Skip failed engines while healthy ones remain.
        let mut skipped = Vec::new();
        let lease = loop {
            match self.pool.acquire(left) {
                Ok(lease)
                    if lease.status().failed && skipped.len() + 1 < self.pool.items().len() =>
                {
                    skipped.push(lease);
                }
                Ok(lease) => break lease,
                Err(e) => {
                    let err = match e {
                        PoolError::Closed => SpeechError::ShuttingDown {
                            engine: self.convert.engine.to_string(),
                        },
                        PoolError::Timeout(limit) => SpeechError::FirstAudioTimeout {
                            engine: self.convert.engine.to_string(),
                            limit,
                        },
                    };
                    pending.respond.respond(Err(err));
                    return;
                }
            }
        };
        drop(skipped);
        let SayJob {
            text,
            voice,
            key,
            stream,
        } = pending.request;
        let request = match stream {
            Some(on_samples) => Request::SynthesizeStreaming {
                text,
                voice,
                sink: self.convert.streaming(on_samples),
            },
            None => Request::Synthesize { text, voice },
        };
        // Shared by the callback and the refusal path below: answered exactly once.
        let respond = Arc::new(Mutex::new(Some(pending.respond)));
        let answer = respond.clone();
        let convert = self.convert.clone();
        let engine = Arc::clone(&lease);
        let submitted = engine.submit(request, move |_, reply| {
            // The engine is free again as soon as it has answered.
            drop(lease);
            let result = match reply {
                Ok(Reply::Audio(pcm)) => convert.pcm(key, &pcm),
                Ok(other) => Err(SpeechError::Protocol {
                    engine: convert.engine.to_string(),
                    detail: format!("unexpected reply to synthesize: {other:?}"),
                }),
                Err(e) => Err(e),
            };
            if let Some(r) = take(&answer) {
                r.respond(result);
            }
        });
        if let Err(e) = submitted
            && let Some(r) = take(&respond)
        {
            r.respond(Err(e));
        }
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Trims and checks request text: not empty, not too long, no NUL.
pub fn validate_text(text: &str, max_bytes: usize) -> Result<String, SpeechError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SpeechError::InvalidRequest(
            "empty text; say something".into(),
        ));
    }
    if text.len() > max_bytes {
        return Err(SpeechError::InvalidRequest(format!(
            "text of {} bytes; accepted: at most {max_bytes}",
            text.len()
        )));
    }
    if text.contains('\0') {
        return Err(SpeechError::InvalidRequest(
            "text contains a NUL byte; accepted: any other Unicode text".into(),
        ));
    }
    Ok(text.to_string())
}

/// Checks a voice name: letters, digits and `_ . + -`, not starting with `-`.
pub fn validate_voice(voice: &str) -> Result<String, SpeechError> {
    let ok = !voice.is_empty()
        && voice.len() <= MAX_VOICE_LEN
        && !voice.starts_with('-')
        && voice
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c));
    if ok {
        Ok(voice.to_string())
    } else {
        Err(SpeechError::InvalidRequest(format!(
            "voice {:?}; accepted: 1 to {MAX_VOICE_LEN} of A-Z a-z 0-9 _ . + -, not starting with -",
            voice.escape_debug().to_string()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_names_that_could_be_options_or_paths_are_refused() {
        for bad in [
            "-w",
            "../../etc/passwd",
            "en us",
            "",
            "x\0y",
            &"a".repeat(65),
        ] {
            assert!(validate_voice(bad).is_err(), "{bad:?}");
        }
        for good in ["en", "en-us", "mb-en1", "en_US-lessac-medium", "en+f3"] {
            assert_eq!(validate_voice(good).unwrap(), good);
        }
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(validate_text("  hello  ", 10).unwrap(), "hello");
        assert!(validate_text("   ", 10).is_err());
        assert!(validate_text("hello world", 5).is_err());
        assert!(validate_text("a\0b", 10).is_err());
    }
}
