//! A long-lived Wyoming engine: one process speaking the protocol over stdin/stdout,
//! or one connection to a service that already runs (`tcp://`, `unix://`),
//! supervised by its own thread, one request in flight at a time.
//!
//! The Wyoming protocol carries no request ids, so a late reply cannot be told apart
//! from the next request's reply. The engine therefore never sends a new request to a
//! process (or over a connection) whose previous request ended without its complete
//! reply (timeout, broken framing, unsupported audio): that process is killed, or that
//! connection closed, and a fresh one started, and every message carries the
//! generation of the process or connection it came from, so nothing a dead one wrote
//! can reach a later request. A service that cannot be reached is retried with
//! backoff for as long as the engine runs: it is never marked failed, since a
//! restart of the service is the expected way for it to come back.

use crate::audio::{MAX_RATE, Pcm, from_s16le, to_s16le};
use crate::engine::{
    CrashTracker, EngineContext, EngineState, EngineStatus, Figures, Pending, RequestId,
    RequestQueue, RestartPolicy, SpeechEvent, Ticket, Timeouts, Verdict,
};
use crate::error::SpeechError;
use crate::link::{Backoff, Conn, Endpoint};
use crate::process::{ExitCause, Launch, Proc};
use crate::wyoming::{Decoded, Event, FrameError, FrameLimits, Offers, stream_reader};
use crossbeam_channel::{Receiver, Sender, select};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Samples per `audio-chunk` sent for transcription (64 ms at 16 kHz).
const CHUNK_SAMPLES: usize = 1024;

/// How a Wyoming engine is run.
#[derive(Clone, Debug)]
pub struct WyomingConfig {
    /// Engine name, for logs, events and status.
    pub name: String,
    /// The program and its arguments; run directly, never through a shell.
    pub argv: Vec<String>,
    /// A running service to connect to instead of spawning `argv`.
    pub endpoint: Option<Endpoint>,
    pub timeouts: Timeouts,
    /// Until a new process answers `describe`.
    pub startup_timeout: Duration,
    pub restart: RestartPolicy,
    /// Between health checks of an idle engine (`describe`, expecting `info`).
    pub health_interval: Option<Duration>,
    pub health_timeout: Duration,
    pub limits: FrameLimits,
    pub queue_capacity: usize,
    /// Most audio bytes accepted in one reply.
    pub max_audio_bytes: usize,
}

impl WyomingConfig {
    pub fn new(name: &str, argv: Vec<String>) -> Self {
        WyomingConfig {
            name: name.to_string(),
            argv,
            endpoint: None,
            timeouts: Timeouts::default(),
            startup_timeout: Duration::from_secs(10),
            restart: RestartPolicy::default(),
            health_interval: Some(Duration::from_secs(30)),
            health_timeout: Duration::from_secs(2),
            limits: FrameLimits::default(),
            queue_capacity: 16,
            max_audio_bytes: 64 << 20,
        }
    }
}

impl WyomingConfig {
    /// An engine that connects to the service at `endpoint`.
    pub fn connect(name: &str, endpoint: Endpoint) -> Self {
        WyomingConfig {
            endpoint: Some(endpoint),
            ..WyomingConfig::new(name, Vec::new())
        }
    }
}

/// Why a process or connection ended that gave no other reason.
const EXITED: &str = "exited unexpectedly";

/// What a Wyoming engine is asked.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `describe`, answered by `info`.
    Describe,
    Synthesize {
        text: String,
        voice: Option<String>,
    },
    /// [`Synthesize`](Request::Synthesize), handing `sink` each `audio-chunk` as it
    /// arrives, before the whole reply is in.
    SynthesizeStreaming {
        text: String,
        voice: Option<String>,
        sink: AudioSink,
    },
    /// Any rate; sent as mono 16-bit PCM.
    Transcribe {
        audio: Pcm,
    },
}

/// Receives synthesized audio chunk by chunk, on the engine's thread; must not block.
/// An empty chunk ends the reply (before its whole audio is answered), so that a
/// sink holding samples back (a resampler's tail) hands them on at once.
#[derive(Clone)]
pub struct AudioSink(pub Arc<dyn Fn(&Pcm) + Send + Sync>);

impl std::fmt::Debug for AudioSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AudioSink")
    }
}

impl PartialEq for AudioSink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What it answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The `info` event's data: the engine's programs, voices and models.
    Info(serde_json::Map<String, serde_json::Value>),
    /// Synthesized audio, at the engine's rate and channel count.
    Audio(Pcm),
    Transcript(String),
}

enum Msg {
    Events(u64, Vec<Event>),
    Broken(u64, FrameError),
    /// Stdout closed.
    End(u64),
    Exited(u64),
}

enum Ctrl {
    Stop,
    Reset,
}

struct Shared {
    name: Arc<str>,
    queue: RequestQueue<Request, Reply>,
    figures: Mutex<Figures>,
    /// Set at shutdown; also cancels a delegated spawn in progress.
    stopping: AtomicBool,
    ctrl: Sender<Ctrl>,
}

impl Shared {
    fn figures(&self) -> MutexGuard<'_, Figures> {
        // Plain counters: valid whatever a panicking holder left.
        self.figures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A supervised Wyoming engine.
pub struct WyomingEngine {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl WyomingEngine {
    /// Starts the engine's thread, which starts the process (see
    /// [`Spawner`](crate::process::Spawner) for which thread actually spawns).
    pub fn start(config: WyomingConfig, ctx: EngineContext) -> std::io::Result<Self> {
        let name: Arc<str> = config.name.as_str().into();
        let (queue, bell) = RequestQueue::new(name.clone(), config.queue_capacity);
        let (ctrl_tx, ctrl) = crossbeam_channel::unbounded();
        let mut figures = Figures::new();
        figures.endpoint = config.endpoint.as_ref().map(Endpoint::to_string);
        let shared = Arc::new(Shared {
            name,
            queue,
            figures: Mutex::new(figures),
            stopping: AtomicBool::new(false),
            ctrl: ctrl_tx,
        });
        let (msgs_tx, msgs) = crossbeam_channel::unbounded();
        let runner = Runner {
            crashes: CrashTracker::new(config.restart),
            shared: shared.clone(),
            config,
            ctx,
            msgs_tx,
            msgs,
            bell,
            ctrl,
            generation: 0,
            error_reported: None,
            reconnect: Backoff::new(),
            sink: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("speech-{}", shared.name))
            .spawn(move || runner.run())?;
        Ok(WyomingEngine {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Queues a request; `respond` is called exactly once with its answer, on the
    /// engine's thread (or at once, on this one, if it is refused later at shutdown).
    /// Refused at once when the queue is full, the engine failed or it is stopping.
    pub fn submit(
        &self,
        request: Request,
        respond: impl FnOnce(RequestId, Result<Reply, SpeechError>) + Send + 'static,
    ) -> Result<RequestId, SpeechError> {
        self.shared.queue.push(request, respond)
    }

    /// Queues a request and returns a ticket to wait on.
    pub fn call(&self, request: Request) -> Result<Ticket<Reply>, SpeechError> {
        let (ticket, respond) = Ticket::pair();
        let id = self.submit(request, respond)?;
        Ok(ticket.with_id(id))
    }

    pub fn status(&self) -> EngineStatus {
        let s = &self.shared;
        s.figures()
            .snapshot(&s.name, "wyoming", s.queue.len(), s.queue.capacity())
    }

    /// Brings a failed engine back: forgets its crashes and starts it again.
    pub fn reset(&self) {
        let _ = self.shared.ctrl.send(Ctrl::Reset);
    }

    /// Stops accepting requests, answers the queued ones with
    /// [`SpeechError::ShuttingDown`] and asks the thread to stop the process.
    /// Returns at once; [`shutdown`](Self::shutdown) waits.
    pub fn begin_shutdown(&self) {
        let s = &self.shared;
        if s.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        s.queue.refuse(SpeechError::ShuttingDown {
            engine: s.name.to_string(),
        });
        let _ = s.ctrl.send(Ctrl::Stop);
    }

    /// Shuts down and waits until the process is reaped: under a second for an engine
    /// that exits when its input closes, at most about 3 s for one that does not.
    pub fn shutdown(&self) {
        self.begin_shutdown();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!(engine = %self.shared.name, "engine thread panicked");
        }
    }
}

impl Drop for WyomingEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Why a process's life ended.
enum End {
    Stop,
    /// Counted toward the crash-loop limit.
    Crash(String),
    /// Reported an error, then exited: restarted without counting.
    ErrorExit,
}

/// A request that did not get its reply: the error for the requester, and whether
/// the process must go.
struct Failure {
    error: SpeechError,
    end: Option<End>,
}

enum Next {
    Restart(Duration),
    Failed(u32),
    Stop,
}

#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Info,
    Audio,
    Transcript,
}

struct Runner {
    shared: Arc<Shared>,
    config: WyomingConfig,
    ctx: EngineContext,
    msgs_tx: Sender<Msg>,
    msgs: Receiver<Msg>,
    bell: Receiver<()>,
    ctrl: Receiver<Ctrl>,
    crashes: CrashTracker,
    generation: u64,
    /// The generation that answered a request with `error` (its exit is no crash).
    error_reported: Option<u64>,
    /// The waits before reconnecting to a service.
    reconnect: Backoff,
    /// Where the audio of the request in flight goes as it arrives.
    sink: Option<AudioSink>,
}

/// The process or connection an engine talks to.
enum Link {
    Proc(Proc),
    Conn(Conn),
}

impl Link {
    fn write(&self, bytes: Vec<u8>) -> bool {
        match self {
            Link::Proc(p) => p.write(bytes),
            Link::Conn(c) => c.write(bytes),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Link::Proc(p) => Some(p.pid()),
            Link::Conn(_) => None,
        }
    }
}

impl Runner {
    fn name(&self) -> String {
        self.shared.name.to_string()
    }

    fn set_state(&self, state: EngineState) {
        self.shared.figures().state = state;
    }

    fn run(mut self) {
        let mut first = true;
        loop {
            if self.shared.stopping.load(Ordering::Acquire) {
                break;
            }
            if !first {
                self.shared.figures().restarts += 1;
            }
            first = false;
            let next = self.life();
            let carry_on = match next {
                Next::Stop => false,
                Next::Restart(delay) => {
                    if self.config.endpoint.is_none() {
                        self.ctx.events.emit(SpeechEvent::EngineRestarting {
                            engine: self.name(),
                            delay,
                        });
                    }
                    self.backoff(delay)
                }
                Next::Failed(crashes) => self.failed(crashes),
            };
            if !carry_on {
                break;
            }
        }
        self.shared.queue.refuse(SpeechError::ShuttingDown {
            engine: self.name(),
        });
        let mut f = self.shared.figures();
        f.state = EngineState::Stopped;
        f.pid = None;
    }

    /// One process or connection, from its start to its end.
    fn life(&mut self) -> Next {
        self.generation += 1;
        let generation = self.generation;
        self.set_state(EngineState::Starting);
        let link = match self.open(generation) {
            Ok(link) => link,
            Err(error) => {
                if self.config.endpoint.is_some() {
                    // Once per outage: the retries that follow are at debug.
                    if self.reconnect.is_first() {
                        tracing::warn!(engine = %self.shared.name, %error, "speech service not reachable; retrying with backoff");
                    } else {
                        tracing::debug!(engine = %self.shared.name, %error, "speech service not reachable");
                    }
                } else {
                    tracing::error!(engine = %self.shared.name, %error, "engine did not start");
                }
                self.shared.figures().last_error = Some(error.to_string());
                return self.crashed(None);
            }
        };
        if let Some(pid) = link.pid() {
            self.shared.figures().pid = Some(pid);
            self.ctx.events.emit(SpeechEvent::EngineStarted {
                engine: self.name(),
                pid,
            });
        }
        let handshake = self.exchange(
            &link,
            Event::new("describe", json!({})).encode(),
            Expect::Info,
            None,
            Instant::now() + self.config.startup_timeout,
            None,
        );
        match handshake {
            Ok(Reply::Info(info)) => self.shared.figures().offers = Some(Offers::from_info(&info)),
            Ok(_) => {}
            Err(failure) => {
                let end = failure.end.unwrap_or(End::Crash(failure.error.to_string()));
                return self.ended(link, end);
            }
        }
        if let Some(endpoint) = &self.config.endpoint {
            self.reconnect.reset();
            tracing::info!(engine = %self.shared.name, %endpoint, "connected to speech service");
            self.ctx.events.emit(SpeechEvent::Connected {
                engine: self.name(),
                endpoint: endpoint.to_string(),
            });
        }
        self.set_state(EngineState::Ready);
        let mut next_health = self.config.health_interval.map(|d| Instant::now() + d);
        loop {
            let now = Instant::now();
            let next_expiry = self.expire_queue(now);
            if let Some(pending) = self.shared.queue.pop() {
                self.set_state(EngineState::Busy);
                if let Some(end) = self.serve(&link, pending) {
                    return self.ended(link, end);
                }
                next_health = self.config.health_interval.map(|d| Instant::now() + d);
                continue;
            }
            if let Some(due) = next_health
                && due <= now
            {
                if let Some(end) = self.health_check(&link) {
                    return self.ended(link, end);
                }
                next_health = self.config.health_interval.map(|d| Instant::now() + d);
                continue;
            }
            let wake = [next_expiry, next_health].into_iter().flatten().min();
            let timeout = wake.map_or(Duration::from_secs(3600), |w| w - now);
            select! {
                recv(self.ctrl) -> ctrl => match ctrl {
                    Ok(Ctrl::Stop) | Err(_) => return self.ended(link, End::Stop),
                    Ok(Ctrl::Reset) => {}
                },
                recv(self.bell) -> _ => {},
                recv(self.msgs) -> msg => {
                    let msg = msg.expect("the runner holds a sender");
                    if let Some(end) = self.idle_message(msg) {
                        return self.ended(link, end);
                    }
                },
                default(timeout) => {},
            }
        }
    }

    /// Spawns the program, or connects to the service.
    fn open(&mut self, generation: u64) -> Result<Link, SpeechError> {
        let tx = self.msgs_tx.clone();
        let on_output = stream_reader(self.config.limits, move |decoded| {
            let _ = match decoded {
                Decoded::Events(events) => tx.send(Msg::Events(generation, events)),
                Decoded::Broken(e) => tx.send(Msg::Broken(generation, e)),
                Decoded::End(truncated) => {
                    if let Some(e) = truncated {
                        let _ = tx.send(Msg::Broken(generation, e));
                    }
                    tx.send(Msg::End(generation))
                }
            };
        });
        if let Some(endpoint) = &self.config.endpoint {
            let timeout = self.config.startup_timeout.min(Duration::from_secs(2));
            return Conn::connect(endpoint, timeout, on_output)
                .map(Link::Conn)
                .map_err(|e| SpeechError::Connect {
                    engine: self.name(),
                    endpoint: endpoint.to_string(),
                    error: e.to_string(),
                });
        }
        let exit_tx = self.msgs_tx.clone();
        Proc::spawn(
            Launch {
                name: &self.shared.name,
                argv: &self.config.argv,
                spawner: &self.ctx.spawner,
                cancel: &self.shared.stopping,
            },
            on_output,
            move || {
                let _ = exit_tx.send(Msg::Exited(generation));
            },
        )
        .map(Link::Proc)
        .map_err(|e| SpeechError::Spawn {
            engine: self.name(),
            program: self.config.argv.first().cloned().unwrap_or_default(),
            error: e.to_string(),
        })
    }

    /// A message while no request is in flight.
    fn idle_message(&mut self, msg: Msg) -> Option<End> {
        match msg {
            Msg::Events(g, events) if g == self.generation => {
                for e in events {
                    tracing::debug!(engine = %self.shared.name, kind = %e.kind, "unsolicited event ignored");
                }
                None
            }
            Msg::Broken(g, e) if g == self.generation => Some(self.protocol_error(&e)),
            Msg::End(g) | Msg::Exited(g) if g == self.generation => Some(self.exit_end()),
            // From a process already gone.
            _ => None,
        }
    }

    /// An unexpected exit (or end of output) is a crash unless the process
    /// reported an error first.
    fn exit_end(&self) -> End {
        if self.error_reported == Some(self.generation) {
            End::ErrorExit
        } else {
            End::Crash(EXITED.into())
        }
    }

    fn protocol_error(&self, e: &FrameError) -> End {
        tracing::warn!(engine = %self.shared.name, error = %e, "engine broke the protocol; restarting it");
        self.ctx.events.emit(SpeechEvent::ProtocolError {
            engine: self.name(),
            pid: self.shared.figures().pid,
            detail: e.to_string(),
        });
        End::Crash(format!("protocol error: {e}"))
    }

    /// Answers queued requests that can no longer meet their deadline.
    fn expire_queue(&self, now: Instant) -> Option<Instant> {
        let t = self.config.timeouts;
        let name = self.shared.name.clone();
        self.shared.queue.expire(
            now,
            |p| match p.request {
                Request::Synthesize { .. } | Request::SynthesizeStreaming { .. } => {
                    p.first_audio_deadline(&t)
                }
                Request::Transcribe { .. } | Request::Describe => p.deadline(&t),
            },
            |p| match p.request {
                Request::Synthesize { .. } | Request::SynthesizeStreaming { .. } => {
                    SpeechError::FirstAudioTimeout {
                        engine: name.to_string(),
                        limit: t.first_audio,
                    }
                }
                Request::Transcribe { .. } | Request::Describe => SpeechError::Timeout {
                    engine: name.to_string(),
                    limit: t.complete,
                },
            },
        )
    }

    /// Runs one request; `Some` if the process must go.
    fn serve(&mut self, link: &Link, pending: Pending<Request, Reply>) -> Option<End> {
        let t = self.config.timeouts;
        let (bytes, expect, first_audio) = match &pending.request {
            Request::Synthesize { text, voice }
            | Request::SynthesizeStreaming { text, voice, .. } => {
                let mut data = json!({ "text": text });
                if let Some(voice) = voice {
                    data["voice"] = json!({ "name": voice });
                }
                (
                    Event::new("synthesize", data).encode(),
                    Expect::Audio,
                    Some(pending.first_audio_deadline(&t)),
                )
            }
            Request::Transcribe { audio } => (transcribe_bytes(audio), Expect::Transcript, None),
            Request::Describe => (
                Event::new("describe", json!({})).encode(),
                Expect::Info,
                None,
            ),
        };
        if let Request::SynthesizeStreaming { sink, .. } = &pending.request {
            self.sink = Some(sink.clone());
        }
        let result = self.exchange(
            link,
            bytes,
            expect,
            first_audio,
            pending.deadline(&t),
            Some(pending.id),
        );
        self.sink = None;
        let (answer, end) = match result {
            Ok(reply) => {
                self.crashes.healthy();
                (Ok(reply), None)
            }
            Err(Failure { error, end }) => (Err(error), end),
        };
        {
            let mut f = self.shared.figures();
            f.answered(&answer);
            // Status agrees with the answer by the time the requester sees it.
            if end.is_none() {
                f.state = EngineState::Ready;
            }
        }
        pending.respond.respond(answer);
        end
    }

    /// `describe`, expecting `info` within the health timeout.
    fn health_check(&mut self, link: &Link) -> Option<End> {
        let started = Instant::now();
        let result = self.exchange(
            link,
            Event::new("describe", json!({})).encode(),
            Expect::Info,
            None,
            started + self.config.health_timeout,
            None,
        );
        let ok = result.is_ok();
        self.shared.figures().health = Some((ok, started.elapsed(), Instant::now()));
        match result {
            Ok(Reply::Info(info)) => {
                self.shared.figures().offers = Some(Offers::from_info(&info));
                None
            }
            Ok(_) => None,
            Err(Failure { error, end }) => {
                tracing::warn!(engine = %self.shared.name, %error, "health check failed");
                self.ctx.events.emit(SpeechEvent::HealthCheckFailed {
                    engine: self.name(),
                    detail: error.to_string(),
                });
                end
            }
        }
    }

    /// Writes `bytes` and collects the reply `expect`ed, honouring both deadlines.
    fn exchange(
        &mut self,
        link: &Link,
        bytes: Vec<u8>,
        expect: Expect,
        mut first_audio: Option<Instant>,
        deadline: Instant,
        request: Option<RequestId>,
    ) -> Result<Reply, Failure> {
        if !link.write(bytes) {
            return Err(self.failure_exited("its input is closed"));
        }
        let mut audio = AudioCollector::new(self.config.max_audio_bytes);
        loop {
            let now = Instant::now();
            let (limit, first) = match first_audio {
                Some(f) if f < deadline => (f, true),
                _ => (deadline, false),
            };
            if now >= limit {
                return Err(self.unresponsive(link, request, first));
            }
            select! {
                recv(self.ctrl) -> ctrl => match ctrl {
                    Ok(Ctrl::Stop) | Err(_) => {
                        return Err(Failure {
                            error: SpeechError::ShuttingDown { engine: self.name() },
                            end: Some(End::Stop),
                        });
                    }
                    Ok(Ctrl::Reset) => {}
                },
                recv(self.msgs) -> msg => match msg.expect("the runner holds a sender") {
                    Msg::Events(g, events) if g == self.generation => {
                        for event in events {
                            if event.kind == "error" {
                                return Err(self.reported_error(&event));
                            }
                            match (expect, event.kind.as_str()) {
                                (Expect::Info, "info") => return Ok(Reply::Info(event.data)),
                                (Expect::Transcript, "transcript") => {
                                    let text = event.data_str("text").unwrap_or_default();
                                    return Ok(Reply::Transcript(text.to_string()));
                                }
                                (Expect::Audio, "audio-start" | "audio-chunk" | "audio-stop") => {
                                    match audio.add(&event) {
                                        Ok(Some(pcm)) => {
                                            if let Some(sink) = &self.sink {
                                                (sink.0)(&Pcm { rate: pcm.rate, channels: pcm.channels, samples: Vec::new() });
                                            }
                                            return Ok(Reply::Audio(pcm));
                                        }
                                        Ok(None) => {
                                            first_audio = None;
                                            if let (Some(sink), Some((rate, channels))) = (&self.sink, audio.format)
                                                && !event.payload.is_empty()
                                            {
                                                (sink.0)(&Pcm { rate, channels, samples: from_s16le(&event.payload) });
                                            }
                                        }
                                        Err(detail) => {
                                            return Err(self.bad_audio(detail));
                                        }
                                    }
                                }
                                (_, kind) => {
                                    tracing::debug!(engine = %self.shared.name, kind, "event ignored");
                                }
                            }
                        }
                    }
                    Msg::Broken(g, e) if g == self.generation => {
                        let end = self.protocol_error(&e);
                        return Err(Failure {
                            error: SpeechError::Protocol { engine: self.name(), detail: e.to_string() },
                            end: Some(end),
                        });
                    }
                    Msg::End(g) | Msg::Exited(g) if g == self.generation => {
                        let how = if self.config.endpoint.is_some() {
                            "the service closed the connection"
                        } else {
                            "it exited"
                        };
                        return Err(self.failure_exited(how));
                    }
                    _ => {}
                },
                default(limit - now) => {},
            }
        }
    }

    fn failure_exited(&self, how: &str) -> Failure {
        Failure {
            error: SpeechError::EngineExited {
                engine: self.name(),
                cause: how.to_string(),
            },
            end: Some(self.exit_end()),
        }
    }

    fn reported_error(&mut self, event: &Event) -> Failure {
        self.error_reported = Some(self.generation);
        let message = event
            .data_str("text")
            .or_else(|| event.data_str("message"))
            .unwrap_or("(no text)")
            .to_string();
        tracing::warn!(engine = %self.shared.name, %message, "engine reported an error");
        // The reply is complete: the process may serve the next request.
        Failure {
            error: SpeechError::EngineError {
                engine: self.name(),
                message,
            },
            end: None,
        }
    }

    fn bad_audio(&self, detail: String) -> Failure {
        tracing::warn!(engine = %self.shared.name, %detail, "unusable audio from engine; restarting it");
        Failure {
            error: SpeechError::Protocol {
                engine: self.name(),
                detail: detail.clone(),
            },
            // The rest of this reply must not reach the next request.
            end: Some(End::Crash(detail)),
        }
    }

    fn unresponsive(&self, link: &Link, request: Option<RequestId>, first: bool) -> Failure {
        let t = self.config.timeouts;
        let error = match (request, first) {
            (Some(_), true) => SpeechError::FirstAudioTimeout {
                engine: self.name(),
                limit: t.first_audio,
            },
            (Some(_), false) => SpeechError::Timeout {
                engine: self.name(),
                limit: t.complete,
            },
            (None, _) => SpeechError::Timeout {
                engine: self.name(),
                limit: if self.shared.figures().state == EngineState::Starting {
                    self.config.startup_timeout
                } else {
                    self.config.health_timeout
                },
            },
        };
        if let Some(request) = request {
            tracing::warn!(engine = %self.shared.name, %request, %error, "engine unresponsive; restarting it");
            self.ctx.events.emit(SpeechEvent::Unresponsive {
                engine: self.name(),
                pid: link.pid(),
                request,
            });
        }
        Failure {
            end: Some(End::Crash(error.to_string())),
            error,
        }
    }

    /// Ends the process or connection and decides what comes next.
    fn ended(&mut self, link: Link, end: End) -> Next {
        let proc = match link {
            Link::Proc(proc) => proc,
            Link::Conn(conn) => {
                conn.close();
                return self.disconnected(end);
            }
        };
        let pid = proc.pid();
        let (cause, crash) = match &end {
            End::Stop => (proc.stop(self.ctx.stop), false),
            End::Crash(_) => (proc.kill(), true),
            End::ErrorExit => (proc.kill(), false),
        };
        self.ctx.events.emit(SpeechEvent::EngineExited {
            engine: self.name(),
            pid,
            cause: cause.to_string(),
            crash,
        });
        self.shared.figures().pid = None;
        match end {
            End::Stop => Next::Stop,
            End::ErrorExit => {
                tracing::info!(engine = %self.shared.name, pid, %cause, "engine exited after reporting an error; restarting");
                Next::Restart(self.crashes.clean_exit())
            }
            End::Crash(reason) => {
                tracing::warn!(engine = %self.shared.name, pid, %cause, %reason, "engine crashed");
                self.crashed(Some(cause))
            }
        }
    }

    /// A connection closed: reconnect unless stopping. Only a connection that
    /// was up (it answered `describe`) is announced, so a service that stays down
    /// is one event, not one per attempt.
    fn disconnected(&mut self, end: End) -> Next {
        let reason = match end {
            End::Stop => return Next::Stop,
            End::ErrorExit => "the service closed the connection after an error".to_string(),
            End::Crash(reason) if reason == EXITED => "the service closed the connection".into(),
            End::Crash(reason) => reason,
        };
        let endpoint = self.endpoint_words();
        if self.shared.figures().state != EngineState::Starting {
            tracing::warn!(engine = %self.shared.name, %endpoint, %reason, "speech service connection lost; reconnecting");
            self.ctx.events.emit(SpeechEvent::Disconnected {
                engine: self.name(),
                endpoint,
                reason: reason.clone(),
            });
        } else {
            tracing::debug!(engine = %self.shared.name, %endpoint, %reason, "speech service not ready");
        }
        self.shared.figures().last_error = Some(reason);
        self.crashed(None)
    }

    fn endpoint_words(&self) -> String {
        self.config
            .endpoint
            .as_ref()
            .map_or_else(String::new, Endpoint::to_string)
    }

    fn crashed(&mut self, cause: Option<ExitCause>) -> Next {
        self.shared.figures().crashes += 1;
        if self.config.endpoint.is_some() {
            return Next::Restart(self.reconnect.next());
        }
        match self.crashes.crash(Instant::now()) {
            Verdict::RestartAfter(delay) => Next::Restart(delay),
            Verdict::Fail { crashes } => {
                tracing::error!(engine = %self.shared.name, crashes, last = ?cause, "engine crash-looping; marked failed");
                Next::Failed(crashes)
            }
        }
    }

    /// Waits out a restart delay; false if stopped meanwhile.
    fn backoff(&mut self, delay: Duration) -> bool {
        self.set_state(EngineState::Restarting);
        let until = Instant::now() + delay;
        loop {
            let now = Instant::now();
            if now >= until {
                return true;
            }
            let wake = self.expire_queue(now).map_or(until, |e| e.min(until));
            select! {
                recv(self.ctrl) -> ctrl => if matches!(ctrl, Ok(Ctrl::Stop) | Err(_)) {
                    return false;
                },
                default(wake.saturating_duration_since(now)) => {},
            }
        }
    }

    /// Refuses requests until reset (true) or stopped (false).
    fn failed(&mut self, crashes: u32) -> bool {
        self.set_state(EngineState::Failed);
        let reason = SpeechError::EngineFailed {
            engine: self.name(),
            crashes,
            window: self.config.restart.crash_window,
        };
        self.shared.figures().last_error = Some(reason.to_string());
        self.shared.queue.refuse(reason);
        self.ctx.events.emit(SpeechEvent::EngineFailed {
            engine: self.name(),
            crashes,
        });
        match self.ctrl.recv() {
            Ok(Ctrl::Reset) if !self.shared.stopping.load(Ordering::Acquire) => {
                tracing::info!(engine = %self.shared.name, "failed engine reset; starting it");
                self.crashes.reset();
                self.shared.queue.accept();
                true
            }
            _ => false,
        }
    }
}

/// The bytes of a `transcribe` request: the request, then the audio as mono 16-bit PCM.
fn transcribe_bytes(audio: &Pcm) -> Vec<u8> {
    let format = json!({ "rate": audio.rate, "width": 2, "channels": 1 });
    let mut bytes = Event::new("transcribe", json!({})).encode();
    bytes.extend(Event::new("audio-start", format.clone()).encode());
    for chunk in audio.to_mono().chunks(CHUNK_SAMPLES) {
        bytes.extend(
            Event::new("audio-chunk", format.clone())
                .with_payload(to_s16le(chunk))
                .encode(),
        );
    }
    bytes.extend(Event::new("audio-stop", json!({})).encode());
    bytes
}

/// Collects `audio-start`/`audio-chunk`/`audio-stop` into PCM.
struct AudioCollector {
    format: Option<(u32, u16)>,
    bytes: Vec<u8>,
    max_bytes: usize,
}

impl AudioCollector {
    fn new(max_bytes: usize) -> Self {
        AudioCollector {
            format: None,
            bytes: Vec::new(),
            max_bytes,
        }
    }

    /// `Ok(Some)` once the audio is complete; `Err` with a description of what is
    /// unusable.
    fn add(&mut self, event: &Event) -> Result<Option<Pcm>, String> {
        if event.kind == "audio-stop" {
            let (rate, channels) = self
                .format
                .ok_or_else(|| "audio-stop without audio-start".to_string())?;
            return Ok(Some(Pcm {
                rate,
                channels,
                samples: from_s16le(&self.bytes),
            }));
        }
        let format = audio_format(event)?;
        match (self.format, format) {
            (None, Some(f)) => self.format = Some(f),
            (None, None) => return Err(format!("{} without rate, width and channels", event.kind)),
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "audio format changed mid-stream from {a:?} to {b:?}"
                ));
            }
            _ => {}
        }
        if self.bytes.len() + event.payload.len() > self.max_bytes {
            return Err(format!("more than {} bytes of audio", self.max_bytes));
        }
        self.bytes.extend_from_slice(&event.payload);
        Ok(None)
    }
}

/// (rate, channels) of an audio event, if it states them; only 16-bit is accepted.
fn audio_format(event: &Event) -> Result<Option<(u32, u16)>, String> {
    let (Some(rate), Some(width), Some(channels)) = (
        event.data_u32("rate"),
        event.data_u32("width"),
        event.data_u32("channels"),
    ) else {
        return Ok(None);
    };
    if width != 2 {
        return Err(format!("{width}-byte samples; accepted: width 2 (16-bit)"));
    }
    if !(1..=2).contains(&channels) {
        return Err(format!("{channels} channels; accepted: 1 or 2"));
    }
    if rate == 0 || rate > MAX_RATE {
        return Err(format!("rate {rate} Hz; accepted: 1..={MAX_RATE}"));
    }
    Ok(Some((rate, channels as u16)))
}
