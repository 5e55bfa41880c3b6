//! Speech recognition with a streaming program (`pocketsphinx_continuous`-style):
//! raw 16-bit mono PCM on stdin, one line per recognised utterance on stdout, either
//! plain text (pocketsphinx 0.8/5prealpha, Debian 12) or a JSON object with the text
//! in `"t"` (pocketsphinx 5's `pocketsphinx live`).
//!
//! Each named stream has exactly one engine session (process), however starts race;
//! audio is pushed without blocking and resampled continuously (the resampler keeps
//! its state across pushes, so chunk boundaries leave no gap); a session that crashes
//! is restarted with backoff up to the crash-loop limit. Single files are
//! transcribed by running the same program once over the whole file.

use crate::audio::{Pcm, Resampler, parse_wav, to_s16le};
use crate::engine::{
    CrashTracker, EngineContext, EngineState, EngineStatus, Figures, RequestId, RestartPolicy,
    SpeechEvent, Ticket, Timeouts, Verdict,
};
use crate::error::SpeechError;
use crate::link::Endpoint;
use crate::listen::{Listen, Role};
use crate::oneshot::{Job, OneShotConfig, OneShotEngine};
use crate::process::{Launch, Output, Proc};
use crate::server::{Reply, Request, WyomingConfig, WyomingEngine};
use crossbeam_channel::{Receiver, Sender, TrySendError, select};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest output line taken as one transcript; longer ones are cut.
const MAX_LINE: usize = 16 << 10;

/// How long a stopping session waits for its last transcript after the process exited.
const FINAL_OUTPUT_WAIT: Duration = Duration::from_millis(500);

/// Speech-recognition settings.
#[derive(Clone, Debug)]
pub struct AsrConfig {
    pub name: String,
    /// The program: reads raw s16le mono at `rate` on stdin, prints one line per
    /// utterance. Run directly, never through a shell.
    pub argv: Vec<String>,
    /// A running Wyoming recogniser to stream to instead of running `argv`.
    pub endpoint: Option<Endpoint>,
    /// With `endpoint`: the quiet after speech that ends an utterance.
    pub silence: Duration,
    pub rate: u32,
    pub restart: RestartPolicy,
    pub max_streams: usize,
    /// Audio chunks buffered per stream before pushes are dropped (and counted).
    pub stream_buffer: usize,
    /// For single files: `complete` bounds the whole run.
    pub file_timeouts: Timeouts,
    pub max_file_bytes: u64,
    pub file_queue: usize,
}

impl AsrConfig {
    /// Debian's `pocketsphinx_continuous` (packages pocketsphinx, pocketsphinx-en-us)
    /// reading stdin, optionally restricted to a JSGF grammar, which makes it reliable
    /// for a known set of phrases. Its log goes to /dev/null: it is hundreds of lines
    /// per start.
    pub fn pocketsphinx(grammar: Option<&Path>) -> Self {
        let mut argv: Vec<String> = [
            "pocketsphinx_continuous",
            "-infile",
            "/dev/stdin",
            "-logfn",
            "/dev/null",
        ]
        .map(String::from)
        .to_vec();
        if let Some(g) = grammar {
            argv.push("-jsgf".into());
            argv.push(g.to_string_lossy().into_owned());
        }
        AsrConfig {
            name: "pocketsphinx".into(),
            argv,
            endpoint: None,
            silence: Duration::from_millis(800),
            rate: 16_000,
            restart: RestartPolicy::default(),
            max_streams: 4,
            stream_buffer: 256,
            file_timeouts: Timeouts {
                first_audio: Duration::from_secs(60),
                complete: Duration::from_secs(60),
            },
            max_file_bytes: 64 << 20,
            file_queue: 4,
        }
    }
}

/// The transcript in one line of engine output, if any.
pub fn parse_transcript_line(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if line.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(line)
    {
        let text = map.get("t").and_then(|t| t.as_str()).unwrap_or("").trim();
        return (!text.is_empty()).then(|| text.to_string());
    }
    Some(line.to_string())
}

/// Whether a stream was started by this call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamStart {
    Started,
    /// A session for this stream already runs; none was added.
    AlreadyRunning,
}

/// One stream's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamStatus {
    pub stream: String,
    pub engine: EngineStatus,
    /// Samples pushed (at their own rate, per channel).
    pub frames_in: u64,
    /// Frames dropped: the buffer was full, or the engine was restarting.
    pub frames_dropped: u64,
    pub transcripts: u64,
}

/// Speech-recognition figures for status.
#[derive(Clone, Debug, PartialEq)]
pub struct AsrStatus {
    pub streams: Vec<StreamStatus>,
    /// The engine for single files.
    pub files: EngineStatus,
}

pub(crate) struct Chunk {
    pub(crate) samples: Vec<f32>,
    pub(crate) rate: u32,
    pub(crate) channels: u16,
}

pub(crate) struct StreamShared {
    pub(crate) name: String,
    figures: Mutex<Figures>,
    frames_in: AtomicU64,
    pub(crate) frames_dropped: AtomicU64,
    pub(crate) transcripts: AtomicU64,
}

impl StreamShared {
    pub(crate) fn new(name: String) -> Self {
        StreamShared {
            name,
            figures: Mutex::new(Figures::new()),
            frames_in: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            transcripts: AtomicU64::new(0),
        }
    }

    pub(crate) fn figures(&self) -> MutexGuard<'_, Figures> {
        // Plain counters: valid whatever a panicking holder left.
        self.figures.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn status(&self, buffered: usize, capacity: usize) -> StreamStatus {
        StreamStatus {
            stream: self.name.clone(),
            engine: self
                .figures()
                .snapshot(&self.name, "stream", buffered, capacity),
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_dropped: self.frames_dropped.load(Ordering::Relaxed),
            transcripts: self.transcripts.load(Ordering::Relaxed),
        }
    }
}

struct Stream {
    audio: Sender<Chunk>,
    shared: Arc<StreamShared>,
    thread: JoinHandle<()>,
}

/// Where single files are transcribed.
enum Files {
    OneShot(OneShotEngine),
    Wyoming(WyomingEngine),
}

impl Files {
    fn name(&self) -> &str {
        match self {
            Files::OneShot(e) => e.name(),
            Files::Wyoming(e) => e.name(),
        }
    }

    fn status(&self) -> EngineStatus {
        match self {
            Files::OneShot(e) => e.status(),
            Files::Wyoming(e) => e.status(),
        }
    }

    fn begin_shutdown(&self) {
        match self {
            Files::OneShot(e) => e.begin_shutdown(),
            Files::Wyoming(e) => e.begin_shutdown(),
        }
    }

    fn shutdown(&self) {
        match self {
            Files::OneShot(e) => e.shutdown(),
            Files::Wyoming(e) => e.shutdown(),
        }
    }
}

/// Speech recognition: named streams and single files.
pub struct Asr {
    config: AsrConfig,
    ctx: EngineContext,
    streams: Mutex<HashMap<String, Stream>>,
    /// Sessions told to stop, still finishing their last utterance.
    stopping: Mutex<Vec<JoinHandle<()>>>,
    files: Files,
    shut: Arc<AtomicBool>,
}

impl Asr {
    pub fn start(config: AsrConfig, ctx: EngineContext) -> std::io::Result<Self> {
        let name = format!("{}-file", config.name);
        let files = match &config.endpoint {
            Some(endpoint) => {
                let mut files = WyomingConfig::connect(&name, endpoint.clone());
                files.timeouts = config.file_timeouts;
                files.queue_capacity = config.file_queue;
                Files::Wyoming(WyomingEngine::start(files, ctx.clone())?)
            }
            None => {
                let mut files = OneShotConfig::new(&name, config.argv.clone());
                files.timeouts = config.file_timeouts;
                files.queue_capacity = config.file_queue;
                files.workers = 1;
                Files::OneShot(OneShotEngine::start(files, ctx.clone())?)
            }
        };
        Ok(Asr {
            config,
            ctx,
            streams: Mutex::new(HashMap::new()),
            stopping: Mutex::new(Vec::new()),
            files,
            shut: Arc::new(AtomicBool::new(false)),
        })
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<String, Stream>> {
        // The map is updated in single statements; a panicking holder leaves it valid.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.stopping.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session for `stream` unless one runs: exactly one per stream, however
    /// many starts race (the check and the insertion happen under one lock).
    pub fn start_stream(&self, stream: &str) -> Result<StreamStart, SpeechError> {
        if self.shut.load(Ordering::Acquire) {
            return Err(SpeechError::ShuttingDown {
                engine: self.config.name.clone(),
            });
        }
        let mut streams = self.streams();
        if streams.contains_key(stream) {
            return Ok(StreamStart::AlreadyRunning);
        }
        if streams.len() >= self.config.max_streams {
            return Err(SpeechError::Busy {
                engine: self.config.name.clone(),
                capacity: self.config.max_streams,
            });
        }
        let (audio, audio_rx) = crossbeam_channel::bounded(self.config.stream_buffer);
        let shared = Arc::new(StreamShared::new(format!("{}/{stream}", self.config.name)));
        let run: Box<dyn FnOnce() + Send> = match &self.config.endpoint {
            Some(endpoint) => {
                shared.figures().endpoint = Some(endpoint.to_string());
                let listen = Listen {
                    stream: stream.to_string(),
                    shared: shared.clone(),
                    endpoint: endpoint.clone(),
                    rate: self.config.rate,
                    role: Role::Recognise {
                        silence: self.config.silence,
                    },
                    ctx: self.ctx.clone(),
                    audio: audio_rx,
                    cancel: self.shut.clone(),
                };
                Box::new(move || listen.run())
            }
            None => {
                let session = Session {
                    stream: stream.to_string(),
                    shared: shared.clone(),
                    config: self.config.clone(),
                    ctx: self.ctx.clone(),
                    audio: audio_rx,
                    crashes: CrashTracker::new(self.config.restart),
                    cancel: self.shut.clone(),
                    generation: 0,
                };
                Box::new(move || session.run())
            }
        };
        let thread = std::thread::Builder::new()
            .name(format!("asr-{stream}"))
            .spawn(run)
            .map_err(|e| SpeechError::Spawn {
                engine: self.config.name.clone(),
                program: "asr session thread".into(),
                error: e.to_string(),
            })?;
        streams.insert(
            stream.to_string(),
            Stream {
                audio,
                shared,
                thread,
            },
        );
        Ok(StreamStart::Started)
    }

    /// Stops `stream`: its input is closed, its last utterance still arrives as a
    /// transcript event. False if no such stream runs.
    pub fn stop_stream(&self, stream: &str) -> bool {
        let Some(s) = self.streams().remove(stream) else {
            return false;
        };
        // Dropping the sender is the stop signal.
        drop(s.audio);
        self.stopping().push(s.thread);
        true
    }

    /// Names of the running streams.
    pub fn active_streams(&self) -> Vec<String> {
        let mut names: Vec<String> = self.streams().keys().cloned().collect();
        names.sort();
        names
    }

    /// Feeds interleaved audio to one stream, never blocking: if its buffer is full
    /// the audio is dropped and counted.
    pub fn push(
        &self,
        stream: &str,
        samples: &[f32],
        rate: u32,
        channels: u16,
    ) -> Result<(), SpeechError> {
        let streams = self.streams();
        let s = streams.get(stream).ok_or_else(|| {
            SpeechError::InvalidRequest(format!("no ASR stream named {stream:?} is running"))
        })?;
        feed(s, samples, rate, channels);
        Ok(())
    }

    /// Feeds the same audio (the input device) to every running stream.
    pub fn push_all(&self, samples: &[f32], rate: u32, channels: u16) {
        for s in self.streams().values() {
            feed(s, samples, rate, channels);
        }
    }

    /// Transcribes a whole recording; `respond` gets the utterances joined by spaces.
    pub fn transcribe(
        &self,
        audio: &Pcm,
        respond: impl FnOnce(RequestId, Result<String, SpeechError>) + Send + 'static,
    ) -> Result<RequestId, SpeechError> {
        let mono = crate::audio::resample(&audio.to_mono(), audio.rate, self.config.rate).map_err(
            |error| SpeechError::Audio {
                engine: self.files.name().to_string(),
                error,
            },
        )?;
        match &self.files {
            Files::OneShot(files) => files.submit(
                Job {
                    vars: Vec::new(),
                    stdin: to_s16le(&mono),
                },
                move |id, out| {
                    respond(
                        id,
                        out.map(|bytes| {
                            String::from_utf8_lossy(&bytes)
                                .lines()
                                .filter_map(parse_transcript_line)
                                .collect::<Vec<_>>()
                                .join(" ")
                        }),
                    )
                },
            ),
            Files::Wyoming(files) => files.submit(
                Request::Transcribe {
                    audio: Pcm {
                        rate: self.config.rate,
                        channels: 1,
                        samples: mono,
                    },
                },
                move |id, out| {
                    respond(
                        id,
                        out.and_then(|reply| match reply {
                            Reply::Transcript(text) => Ok(text.trim().to_string()),
                            other => Err(SpeechError::Protocol {
                                engine: "asr".into(),
                                detail: format!("a transcription was answered with {other:?}"),
                            }),
                        }),
                    )
                },
            ),
        }
    }

    /// [`transcribe`](Self::transcribe) with a ticket.
    pub fn transcribe_ticket(&self, audio: &Pcm) -> Result<Ticket<String>, SpeechError> {
        let (ticket, respond) = Ticket::pair();
        let id = self.transcribe(audio, respond)?;
        Ok(ticket.with_id(id))
    }

    /// Reads a WAV file (at most `max_file_bytes`) and transcribes it.
    pub fn transcribe_wav(&self, path: &Path) -> Result<Ticket<String>, SpeechError> {
        let (ticket, respond) = Ticket::pair();
        let id = self.transcribe_wav_with(path, respond)?;
        Ok(ticket.with_id(id))
    }

    /// [`transcribe_wav`](Self::transcribe_wav), answering through `respond` (see
    /// [`transcribe`](Self::transcribe)).
    pub fn transcribe_wav_with(
        &self,
        path: &Path,
        respond: impl FnOnce(RequestId, Result<String, SpeechError>) + Send + 'static,
    ) -> Result<RequestId, SpeechError> {
        let bytes = read_bounded(path, self.config.max_file_bytes)?;
        let pcm = parse_wav(&bytes).map_err(|error| SpeechError::Audio {
            engine: self.files.name().to_string(),
            error,
        })?;
        self.transcribe(&pcm, respond)
    }

    pub fn status(&self) -> AsrStatus {
        let mut streams: Vec<StreamStatus> = self
            .streams()
            .values()
            .map(|s| s.shared.status(s.audio.len(), self.config.stream_buffer))
            .collect();
        streams.sort_by(|a, b| a.stream.cmp(&b.stream));
        AsrStatus {
            streams,
            files: self.files.status(),
        }
    }

    /// Stops every stream and the file engine, and waits until every process is
    /// reaped (in parallel: as long as the slowest).
    pub fn shutdown(&self) {
        self.shut.store(true, Ordering::Release);
        self.files.begin_shutdown();
        let names: Vec<String> = self.streams().keys().cloned().collect();
        for name in names {
            self.stop_stream(&name);
        }
        let threads: Vec<_> = self.stopping().drain(..).collect();
        for t in threads {
            if t.join().is_err() {
                tracing::error!("ASR session thread panicked");
            }
        }
        self.files.shutdown();
    }
}

impl Drop for Asr {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn feed(s: &Stream, samples: &[f32], rate: u32, channels: u16) {
    push_chunk(&s.audio, &s.shared, samples, rate, channels);
}

/// Queues audio for a stream's thread without blocking; drops and counts it when
/// the stream's buffer is full.
pub(crate) fn push_chunk(
    to: &Sender<Chunk>,
    shared: &StreamShared,
    samples: &[f32],
    rate: u32,
    channels: u16,
) {
    let frames = (samples.len() / usize::from(channels.max(1))) as u64;
    shared.frames_in.fetch_add(frames, Ordering::Relaxed);
    let chunk = Chunk {
        samples: samples.to_vec(),
        rate,
        channels,
    };
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = to.try_send(chunk) {
        shared.frames_dropped.fetch_add(frames, Ordering::Relaxed);
    }
}

/// Input chunks as mono at one rate, whatever rate each arrives at: the resampler
/// keeps its state from chunk to chunk (nothing is lost at their boundaries) and
/// starts afresh when the input's rate changes.
pub(crate) struct ChunkResampler {
    to: u32,
    current: Option<(u32, Resampler)>,
}

impl ChunkResampler {
    pub(crate) fn new(to: u32) -> Self {
        ChunkResampler { to, current: None }
    }

    /// `None` when the chunk's rate cannot be resampled: it is dropped and counted.
    pub(crate) fn mono(&mut self, c: Chunk, shared: &StreamShared) -> Option<Vec<f32>> {
        let frames = c.samples.len() / usize::from(c.channels.max(1));
        let mono = Pcm {
            rate: c.rate,
            channels: c.channels,
            samples: c.samples,
        }
        .to_mono();
        if self
            .current
            .as_ref()
            .is_none_or(|(rate, _)| *rate != c.rate)
        {
            match Resampler::new(c.rate, self.to) {
                Ok(r) => self.current = Some((c.rate, r)),
                Err(e) => {
                    tracing::warn!(stream = %shared.name, error = %e, "audio dropped");
                    shared
                        .frames_dropped
                        .fetch_add(frames as u64, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let (_, r) = self.current.as_mut().expect("set above");
        let mut out = Vec::with_capacity(frames * self.to as usize / c.rate as usize + 1);
        r.process(&mono, &mut out);
        Some(out)
    }

    /// The output the last input still owes (the resampler's tail).
    pub(crate) fn finish(&mut self) -> Vec<f32> {
        let mut tail = Vec::new();
        if let Some((_, mut r)) = self.current.take() {
            r.finish(&mut tail);
        }
        tail
    }
}

/// The WAV file at `path`, if it is a regular file (or a link to one) of at most
/// `max` bytes. Anything else is refused without blocking: a FIFO or a terminal is
/// never waited on, a device never read.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, SpeechError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |e: std::io::Error| {
        SpeechError::InvalidRequest(format!("cannot read {}: {e}", path.display()))
    };
    let not_regular = |meta: &std::fs::Metadata| {
        (!meta.is_file()).then(|| {
            SpeechError::InvalidRequest(format!(
                "{} is not a regular file; accepted: regular WAV files",
                path.display()
            ))
        })
    };
    // Before opening too: opening a device can act on its own.
    if let Some(e) = not_regular(&std::fs::metadata(path).map_err(bad)?) {
        return Err(e);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(bad)?;
    // What was opened counts: the name may have been replaced since.
    let meta = file.metadata().map_err(bad)?;
    if let Some(e) = not_regular(&meta) {
        return Err(e);
    }
    let too_large = || {
        SpeechError::InvalidRequest(format!(
            "{} is larger than {max} bytes; accepted: WAV files up to that size",
            path.display()
        ))
    };
    if meta.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(bad)?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

enum Msg {
    Line(u64, String),
    End(u64),
    Exited(u64),
}

enum Next {
    Restart(Duration),
    Failed(u32),
    Stop,
}

/// One stream's engine session, on its own thread.
struct Session {
    stream: String,
    shared: Arc<StreamShared>,
    config: AsrConfig,
    ctx: EngineContext,
    audio: Receiver<Chunk>,
    crashes: CrashTracker,
    cancel: Arc<AtomicBool>,
    generation: u64,
}

impl Session {
    fn run(mut self) {
        let mut first = true;
        loop {
            if !first {
                self.shared.figures().restarts += 1;
            }
            first = false;
            match self.life() {
                Next::Stop => break,
                Next::Restart(delay) => {
                    self.ctx.events.emit(SpeechEvent::EngineRestarting {
                        engine: self.shared.name.clone(),
                        delay,
                    });
                    if !self.drop_audio_for(Some(delay)) {
                        break;
                    }
                }
                Next::Failed(crashes) => {
                    self.shared.figures().state = EngineState::Failed;
                    tracing::error!(stream = %self.stream, crashes, "ASR engine crash-looping; stream failed");
                    self.ctx.events.emit(SpeechEvent::EngineFailed {
                        engine: self.shared.name.clone(),
                        crashes,
                    });
                    self.drop_audio_for(None);
                    break;
                }
            }
        }
        let mut f = self.shared.figures();
        f.state = EngineState::Stopped;
        f.pid = None;
    }

    /// Drops (and counts) audio for `wait`, or until stopped; false if stopped.
    fn drop_audio_for(&self, wait: Option<Duration>) -> bool {
        if wait.is_some() {
            self.shared.figures().state = EngineState::Restarting;
        }
        let until = wait.map(|w| Instant::now() + w);
        loop {
            let left = until.map_or(Duration::from_secs(3600), |u| {
                u.saturating_duration_since(Instant::now())
            });
            if until.is_some() && left.is_zero() {
                return true;
            }
            select! {
                recv(self.audio) -> chunk => match chunk {
                    Ok(c) => {
                        let frames = c.samples.len() / usize::from(c.channels.max(1));
                        self.shared.frames_dropped.fetch_add(frames as u64, Ordering::Relaxed);
                    }
                    Err(_) => return false,
                },
                default(left) => {},
            }
        }
    }

    fn life(&mut self) -> Next {
        self.generation += 1;
        let generation = self.generation;
        self.shared.figures().state = EngineState::Starting;
        let (tx, msgs) = crossbeam_channel::unbounded();
        let exit_tx = tx.clone();
        let mut line = Vec::new();
        let spawned = Proc::spawn(
            Launch {
                name: &self.shared.name,
                argv: &self.config.argv,
                spawner: &self.ctx.spawner,
                cancel: &self.cancel,
            },
            move |out| match out {
                Output::Data(bytes) => {
                    for &b in bytes {
                        if b == b'\n' || line.len() >= MAX_LINE {
                            let text = String::from_utf8_lossy(&line).into_owned();
                            let _ = tx.send(Msg::Line(generation, text));
                            line.clear();
                        }
                        if b != b'\n' {
                            line.push(b);
                        }
                    }
                }
                Output::End => {
                    if !line.is_empty() {
                        let text = String::from_utf8_lossy(&line).into_owned();
                        let _ = tx.send(Msg::Line(generation, text));
                    }
                    let _ = tx.send(Msg::End(generation));
                }
            },
            move || {
                let _ = exit_tx.send(Msg::Exited(generation));
            },
        );
        let mut proc = match spawned {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(stream = %self.stream, error = %e, "ASR engine did not start");
                self.shared.figures().last_error = Some(e.to_string());
                return self.crashed();
            }
        };
        let pid = proc.pid();
        {
            let mut f = self.shared.figures();
            f.pid = Some(pid);
            f.state = EngineState::Ready;
        }
        self.ctx.events.emit(SpeechEvent::EngineStarted {
            engine: self.shared.name.clone(),
            pid,
        });
        let mut resampler = ChunkResampler::new(self.config.rate);
        loop {
            select! {
                recv(self.audio) -> chunk => match chunk {
                    Ok(c) => self.forward(&proc, &mut resampler, c),
                    Err(_) => {
                        // Stopped: flush the resampler's tail, then let the engine
                        // finish its last utterance.
                        let tail = resampler.finish();
                        if !tail.is_empty() {
                            proc.write(to_s16le(&tail));
                        }
                        proc.close_stdin();
                        let cause = proc.stop(self.ctx.stop);
                        self.final_output(&msgs, generation);
                        self.ctx.events.emit(SpeechEvent::EngineExited {
                            engine: self.shared.name.clone(),
                            pid,
                            cause: cause.to_string(),
                            crash: false,
                        });
                        return Next::Stop;
                    }
                },
                recv(msgs) -> msg => match msg {
                    Ok(Msg::Line(g, text)) if g == generation => self.transcript(&text),
                    // Only the exit ends a session: an engine may close stdout and
                    // still be consuming audio.
                    Ok(Msg::Exited(g)) if g == generation => {
                        let cause = proc.kill();
                        tracing::warn!(stream = %self.stream, pid, %cause, "ASR engine exited; restarting");
                        self.ctx.events.emit(SpeechEvent::EngineExited {
                            engine: self.shared.name.clone(),
                            pid,
                            cause: cause.to_string(),
                            crash: true,
                        });
                        self.shared.figures().pid = None;
                        return self.crashed();
                    }
                    _ => {}
                },
            }
        }
    }

    /// Resamples one chunk to the engine rate and queues it for the engine's stdin.
    fn forward(&self, proc: &Proc, resampler: &mut ChunkResampler, c: Chunk) {
        let frames = c.samples.len() / usize::from(c.channels.max(1));
        let Some(out) = resampler.mono(c, &self.shared) else {
            return;
        };
        if !proc.write(to_s16le(&out)) {
            self.shared
                .frames_dropped
                .fetch_add(frames as u64, Ordering::Relaxed);
        }
    }

    fn transcript(&self, line: &str) {
        if let Some(text) = parse_transcript_line(line) {
            self.shared.transcripts.fetch_add(1, Ordering::Relaxed);
            self.ctx.events.emit(SpeechEvent::Transcript {
                stream: self.stream.clone(),
                text,
                is_final: true,
            });
        }
    }

    /// Transcripts still in the pipe after the engine exited.
    fn final_output(&self, msgs: &Receiver<Msg>, generation: u64) {
        let deadline = Instant::now() + FINAL_OUTPUT_WAIT;
        while let Ok(msg) = msgs.recv_deadline(deadline) {
            match msg {
                Msg::Line(g, text) if g == generation => self.transcript(&text),
                Msg::End(g) if g == generation => return,
                _ => {}
            }
        }
    }

    fn crashed(&mut self) -> Next {
        self.shared.figures().crashes += 1;
        if self.cancel.load(Ordering::Acquire) {
            return Next::Stop;
        }
        match self.crashes.crash(Instant::now()) {
            Verdict::RestartAfter(d) => Next::Restart(d),
            Verdict::Fail { crashes } => Next::Failed(crashes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_lines_in_both_pocketsphinx_formats() {
        assert_eq!(
            parse_transcript_line("hello world\n"),
            Some("hello world".into())
        );
        assert_eq!(
            parse_transcript_line(r#"{"b":0.0,"d":1.1,"p":1.0,"t":"good morning","w":[]}"#),
            Some("good morning".into())
        );
        assert_eq!(parse_transcript_line(r#"{"b":0.0,"t":""}"#), None);
        assert_eq!(parse_transcript_line("   "), None);
    }

    /// `read_bounded` on its own thread, so one that blocks fails the test instead
    /// of hanging it.
    fn read_promptly(path: &Path, max: u64) -> Result<Vec<u8>, SpeechError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(read_bounded(&path, max));
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("read_bounded did not return within 5 s")
    }

    #[test]
    fn wav_files_that_are_fifos_devices_or_too_large_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("take.wav");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let zero = dir.path().join("zero.wav");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let large = dir.path().join("large.wav");
        std::fs::write(&large, [0u8; 101]).unwrap();
        for (path, expected) in [
            (&fifo, "is not a regular file"),
            (&zero, "is not a regular file"),
            (&dir.path().to_path_buf(), "is not a regular file"),
            (&large, "is larger than 100 bytes"),
        ] {
            match read_promptly(path, 100) {
                Err(SpeechError::InvalidRequest(reason)) => {
                    assert!(reason.contains(expected), "{reason}")
                }
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        assert_eq!(read_promptly(&large, 101).unwrap().len(), 101);
    }
}
