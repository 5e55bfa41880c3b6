//! What every engine kind shares: request ids and answers, the bounded request queue,
//! restart policy and crash accounting, status and events.

use crate::error::SpeechError;
use crate::process::{Spawner, StopTimings};
use crate::wyoming::Offers;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A request's internal id, unique within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

impl RequestId {
    pub(crate) fn next() -> Self {
        RequestId(NEXT_REQUEST.fetch_add(1, Ordering::Relaxed))
    }
}

/// Request timeouts, both counted from submission (queue time included), so every
/// request is answered within `complete` of being accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Until the first audio (synthesis) arrives.
    pub first_audio: Duration,
    /// Until the answer is complete.
    pub complete: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            first_audio: Duration::from_secs(5),
            complete: Duration::from_secs(30),
        }
    }
}

/// Restart with exponential backoff and jitter; `crash_limit` crashes within
/// `crash_window` mark the engine failed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RestartPolicy {
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Each delay is scaled by a random factor in `1 ± jitter`, so engines that crashed
    /// together do not restart in lockstep.
    pub jitter: f64,
    pub crash_limit: u32,
    pub crash_window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            jitter: 0.2,
            crash_limit: 5,
            crash_window: Duration::from_secs(60),
        }
    }
}

/// What to do after an engine process ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    RestartAfter(Duration),
    Fail { crashes: u32 },
}

/// Crash accounting for one engine.
pub(crate) struct CrashTracker {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
    /// Crashes since the engine last proved healthy; drives the backoff.
    consecutive: u32,
}

impl CrashTracker {
    pub(crate) fn new(policy: RestartPolicy) -> Self {
        CrashTracker {
            policy,
            recent: VecDeque::new(),
            consecutive: 0,
        }
    }

    /// A crash at `now`: restart after a backoff, or give up.
    pub(crate) fn crash(&mut self, now: Instant) -> Verdict {
        self.recent.push_back(now);
        while let Some(&first) = self.recent.front() {
            if now.duration_since(first) > self.policy.crash_window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() as u32 >= self.policy.crash_limit {
            return Verdict::Fail {
                crashes: self.recent.len() as u32,
            };
        }
        self.consecutive += 1;
        let doubling = self.consecutive.saturating_sub(1).min(30);
        let base = self
            .policy
            .backoff_initial
            .saturating_mul(1 << doubling)
            .min(self.policy.backoff_max);
        Verdict::RestartAfter(self.jittered(base))
    }

    /// An exit that is not a crash (the engine reported an error, then exited):
    /// restart after the initial delay without counting it.
    pub(crate) fn clean_exit(&self) -> Duration {
        self.jittered(self.policy.backoff_initial)
    }

    /// The engine answered a request: the next crash starts the backoff afresh.
    pub(crate) fn healthy(&mut self) {
        self.consecutive = 0;
    }

    /// Forget everything (after a manual reset of a failed engine).
    pub(crate) fn reset(&mut self) {
        self.recent.clear();
        self.consecutive = 0;
    }

    fn jittered(&self, d: Duration) -> Duration {
        let factor = 1.0 + self.policy.jitter * (2.0 * fastrand::f64() - 1.0);
        d.mul_f64(factor.max(0.0))
    }
}

/// Settings every engine kind shares.
#[derive(Clone, Debug)]
pub struct EngineContext {
    pub spawner: Spawner,
    pub events: EventSink,
    pub stop: StopTimings,
}

impl Default for EngineContext {
    fn default() -> Self {
        EngineContext {
            spawner: Spawner::Inline,
            events: EventSink::none(),
            stop: StopTimings::default(),
        }
    }
}

/// Something the daemon may want to log, count or announce.
#[derive(Clone, Debug, PartialEq)]
pub enum SpeechEvent {
    EngineStarted {
        engine: String,
        pid: u32,
    },
    /// An engine process ended. `crash` is false when it was asked to stop, or when it
    /// reported an error and then exited.
    EngineExited {
        engine: String,
        pid: u32,
        cause: String,
        crash: bool,
    },
    EngineRestarting {
        engine: String,
        delay: Duration,
    },
    /// Crash-loop limit reached: the engine is no longer restarted.
    EngineFailed {
        engine: String,
        crashes: u32,
    },
    /// Connected to a running service (`tcp://…`, `unix://…`) and it answered
    /// `describe`.
    Connected {
        engine: String,
        endpoint: String,
    },
    /// The connection to a service ended; it is reconnected with backoff.
    Disconnected {
        engine: String,
        endpoint: String,
        reason: String,
    },
    /// Broken framing or invalid JSON; `detail` quotes the offending bytes, escaped.
    ProtocolError {
        engine: String,
        /// `None` for a service it connects to.
        pid: Option<u32>,
        detail: String,
    },
    /// A request hung past its timeout; the engine is restarted.
    Unresponsive {
        engine: String,
        /// `None` for a service it connects to.
        pid: Option<u32>,
        request: RequestId,
    },
    HealthCheckFailed {
        engine: String,
        detail: String,
    },
    /// A wake-word service detected `name` in the input.
    Wake {
        name: String,
    },
    /// Recognised speech on an ASR stream.
    Transcript {
        stream: String,
        text: String,
        is_final: bool,
    },
}

/// Where events go: the daemon's channel, never blocking; events that do not fit are
/// dropped and counted.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: Option<Sender<SpeechEvent>>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    pub fn new(tx: Sender<SpeechEvent>) -> Self {
        EventSink {
            tx: Some(tx),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Events are only logged.
    pub fn none() -> Self {
        EventSink {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn emit(&self, event: SpeechEvent) {
        tracing::debug!(?event, "speech event");
        if let Some(tx) = &self.tx
            && let Err(TrySendError::Full(_)) = tx.try_send(event)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the daemon's channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The callback that receives a request's answer.
type Respond<T> = Box<dyn FnOnce(RequestId, Result<T, SpeechError>) + Send>;

/// Delivers a request's answer exactly once. Dropped unanswered (an engine thread
/// that ended abnormally), it answers with an error, so no caller waits forever.
pub(crate) struct Responder<T> {
    id: RequestId,
    engine: Arc<str>,
    f: Option<Respond<T>>,
}

impl<T> Responder<T> {
    pub(crate) fn new(
        id: RequestId,
        engine: Arc<str>,
        f: impl FnOnce(RequestId, Result<T, SpeechError>) + Send + 'static,
    ) -> Self {
        Responder {
            id,
            engine,
            f: Some(Box::new(f)),
        }
    }

    pub(crate) fn respond(mut self, result: Result<T, SpeechError>) {
        if let Some(f) = self.f.take() {
            f(self.id, result);
        }
    }
}

impl<T> Drop for Responder<T> {
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            f(
                self.id,
                Err(SpeechError::ShuttingDown {
                    engine: self.engine.to_string(),
                }),
            );
        }
    }
}

/// The answer to one request, to wait for.
pub struct Ticket<T> {
    id: RequestId,
    rx: Receiver<Result<T, SpeechError>>,
}

impl<T: Send + 'static> Ticket<T> {
    /// A ticket and the callback that answers it; the id is set once known.
    pub(crate) fn pair() -> (
        Ticket<T>,
        impl FnOnce(RequestId, Result<T, SpeechError>) + Send + 'static,
    ) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        (
            Ticket {
                id: RequestId(0),
                rx,
            },
            move |_, result| {
                let _ = tx.send(result);
            },
        )
    }
}

impl<T> Ticket<T> {
    pub(crate) fn with_id(mut self, id: RequestId) -> Self {
        self.id = id;
        self
    }

    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Blocks until the answer. Every accepted request is answered (at the latest
    /// when its completion timeout expires, or at shutdown).
    pub fn wait(self) -> Result<T, SpeechError> {
        self.rx.recv().unwrap_or_else(|_| {
            Err(SpeechError::ShuttingDown {
                engine: "speech".into(),
            })
        })
    }

    /// The answer if it arrives within `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<T, SpeechError>> {
        match self.rx.recv_timeout(timeout) {
            Ok(result) => Some(result),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Err(SpeechError::ShuttingDown {
                engine: "speech".into(),
            })),
        }
    }
}

/// A request waiting in a queue.
pub(crate) struct Pending<R, T> {
    pub(crate) id: RequestId,
    pub(crate) request: R,
    pub(crate) submitted: Instant,
    pub(crate) respond: Responder<T>,
}

impl<R, T> Pending<R, T> {
    pub(crate) fn first_audio_deadline(&self, t: &Timeouts) -> Instant {
        self.submitted + t.first_audio
    }

    pub(crate) fn deadline(&self, t: &Timeouts) -> Instant {
        self.submitted + t.complete
    }
}

struct QueueInner<R, T> {
    items: VecDeque<Pending<R, T>>,
    /// Set when the queue refuses requests (shutdown, failed engine).
    refusing: Option<SpeechError>,
}

/// A bounded FIFO of requests with a doorbell for the engine thread.
pub(crate) struct RequestQueue<R, T> {
    engine: Arc<str>,
    capacity: usize,
    inner: Mutex<QueueInner<R, T>>,
    doorbell: Sender<()>,
}

impl<R, T> RequestQueue<R, T> {
    /// The queue and the receiver the engine thread waits on for new requests.
    pub(crate) fn new(engine: Arc<str>, capacity: usize) -> (Self, Receiver<()>) {
        let (doorbell, bell) = crossbeam_channel::bounded(1);
        (
            RequestQueue {
                engine,
                capacity,
                inner: Mutex::new(QueueInner {
                    items: VecDeque::new(),
                    refusing: None,
                }),
                doorbell,
            },
            bell,
        )
    }

    fn lock(&self) -> MutexGuard<'_, QueueInner<R, T>> {
        // Updates complete before anything that could panic; the data stays valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accepts a request, or refuses it at once (busy, shutting down, failed).
    pub(crate) fn push(
        &self,
        request: R,
        respond: impl FnOnce(RequestId, Result<T, SpeechError>) + Send + 'static,
    ) -> Result<RequestId, SpeechError> {
        let mut inner = self.lock();
        if let Some(reason) = &inner.refusing {
            return Err(reason.clone());
        }
        if inner.items.len() >= self.capacity {
            return Err(SpeechError::Busy {
                engine: self.engine.to_string(),
                capacity: self.capacity,
            });
        }
        let id = RequestId::next();
        inner.items.push_back(Pending {
            id,
            request,
            submitted: Instant::now(),
            respond: Responder::new(id, self.engine.clone(), respond),
        });
        drop(inner);
        // A full doorbell already rings.
        let _ = self.doorbell.try_send(());
        Ok(id)
    }

    pub(crate) fn pop(&self) -> Option<Pending<R, T>> {
        let mut inner = self.lock();
        let item = inner.items.pop_front();
        let more = !inner.items.is_empty();
        drop(inner);
        // One ring wakes one thread: pass it on while requests remain, so every idle
        // thread of a multi-threaded engine gets to them instead of waiting.
        if more {
            let _ = self.doorbell.try_send(());
        }
        item
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Answers every queued request whose deadline (by `deadline_of`) has passed
    /// with the error `expired` makes; returns the earliest remaining deadline.
    pub(crate) fn expire(
        &self,
        now: Instant,
        deadline_of: impl Fn(&Pending<R, T>) -> Instant,
        expired: impl Fn(&Pending<R, T>) -> SpeechError,
    ) -> Option<Instant> {
        let mut gone = Vec::new();
        let next = {
            let mut inner = self.lock();
            let mut kept = VecDeque::with_capacity(inner.items.len());
            for p in inner.items.drain(..) {
                if deadline_of(&p) <= now {
                    gone.push(p);
                } else {
                    kept.push_back(p);
                }
            }
            inner.items = kept;
            inner.items.iter().map(&deadline_of).min()
        };
        // Answer outside the lock: a callback may submit again.
        for p in gone {
            let err = expired(&p);
            p.respond.respond(Err(err));
        }
        next
    }

    /// Refuses new requests with `reason` and answers every queued one with it.
    pub(crate) fn refuse(&self, reason: SpeechError) {
        let drained: Vec<_> = {
            let mut inner = self.lock();
            inner.refusing = Some(reason.clone());
            inner.items.drain(..).collect()
        };
        for p in drained {
            p.respond.respond(Err(reason.clone()));
        }
    }

    /// Accepts requests again (a failed engine was reset).
    pub(crate) fn accept(&self) {
        self.lock().refusing = None;
    }
}

/// The lifecycle state of an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineState {
    /// The process is starting (or not yet answering its handshake).
    Starting,
    /// Running and idle.
    Ready,
    /// Running a request.
    Busy,
    /// Waiting out a restart backoff.
    Restarting,
    /// Crash-loop limit reached; not restarted until reset.
    Failed,
    /// Shut down.
    Stopped,
}

impl EngineState {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineState::Starting => "starting",
            EngineState::Ready => "ready",
            EngineState::Busy => "busy",
            EngineState::Restarting => "restarting",
            EngineState::Failed => "failed",
            EngineState::Stopped => "stopped",
        }
    }
}

/// One engine's figures, as of the moment [`status`](crate::WyomingEngine::status)
/// was called.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineStatus {
    pub name: String,
    /// `wyoming`, `oneshot` or `stream`.
    pub kind: &'static str,
    pub state: EngineState,
    pub pid: Option<u32>,
    /// Processes started after the first.
    pub restarts: u64,
    /// Exits and hangs counted as crashes.
    pub crashes: u64,
    pub failed: bool,
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub completed: u64,
    /// Requests answered with an error (timeouts included).
    pub errors: u64,
    pub timeouts: u64,
    pub last_error: Option<String>,
    pub health: Option<HealthStatus>,
    /// The running service it connects to (`tcp://…`, `unix://…`); `None` for a
    /// program it spawns.
    pub endpoint: Option<String>,
    /// What the engine offered in its latest `info`.
    pub offers: Option<Offers>,
}

/// The latest health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthStatus {
    pub ok: bool,
    /// How long the check took (to the answer, or to its timeout).
    pub latency: Duration,
    /// How long ago it finished, at the time of the status call.
    pub age: Duration,
}

/// Figures an engine thread updates and `status()` reads.
#[derive(Debug)]
pub(crate) struct Figures {
    pub(crate) state: EngineState,
    pub(crate) pid: Option<u32>,
    pub(crate) restarts: u64,
    pub(crate) crashes: u64,
    pub(crate) completed: u64,
    pub(crate) errors: u64,
    pub(crate) timeouts: u64,
    pub(crate) last_error: Option<String>,
    /// (ok, latency, finished at)
    pub(crate) health: Option<(bool, Duration, Instant)>,
    pub(crate) endpoint: Option<String>,
    pub(crate) offers: Option<Offers>,
}

impl Figures {
    pub(crate) fn new() -> Self {
        Figures {
            state: EngineState::Starting,
            pid: None,
            restarts: 0,
            crashes: 0,
            completed: 0,
            errors: 0,
            timeouts: 0,
            last_error: None,
            health: None,
            endpoint: None,
            offers: None,
        }
    }

    /// Counts one answered request.
    pub(crate) fn answered<T>(&mut self, result: &Result<T, SpeechError>) {
        match result {
            Ok(_) => self.completed += 1,
            Err(e) => {
                self.errors += 1;
                if matches!(
                    e,
                    SpeechError::Timeout { .. } | SpeechError::FirstAudioTimeout { .. }
                ) {
                    self.timeouts += 1;
                }
                self.last_error = Some(e.to_string());
            }
        }
    }

    pub(crate) fn snapshot(
        &self,
        name: &str,
        kind: &'static str,
        queue_depth: usize,
        queue_capacity: usize,
    ) -> EngineStatus {
        EngineStatus {
            name: name.to_string(),
            kind,
            state: self.state,
            pid: self.pid,
            restarts: self.restarts,
            crashes: self.crashes,
            failed: self.state == EngineState::Failed,
            queue_depth,
            queue_capacity,
            completed: self.completed,
            errors: self.errors,
            timeouts: self.timeouts,
            last_error: self.last_error.clone(),
            health: self.health.map(|(ok, latency, at)| HealthStatus {
                ok,
                latency,
                age: at.elapsed(),
            }),
            endpoint: self.endpoint.clone(),
            offers: self.offers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(350),
            jitter: 0.0,
            crash_limit: 4,
            crash_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_when_healthy() {
        let mut t = CrashTracker::new(RestartPolicy {
            crash_limit: 100,
            ..policy()
        });
        let now = Instant::now();
        let delays: Vec<_> = (0..4).map(|_| t.crash(now)).collect();
        let ms = |v: u64| Verdict::RestartAfter(Duration::from_millis(v));
        assert_eq!(delays, [ms(100), ms(200), ms(350), ms(350)]);
        t.healthy();
        assert_eq!(t.crash(now), ms(100));
    }

    #[test]
    fn crash_loop_limit_counts_only_crashes_within_the_window() {
        let mut t = CrashTracker::new(policy());
        let start = Instant::now();
        for i in 0..3 {
            assert!(matches!(
                t.crash(start + Duration::from_secs(i * 40)),
                Verdict::RestartAfter(_)
            ));
        }
        // Crashes at 0, 40, 80 s: the first fell out of the 60 s window.
        assert!(matches!(
            t.crash(start + Duration::from_secs(81)),
            Verdict::RestartAfter(_)
        ));
        assert_eq!(
            t.crash(start + Duration::from_secs(82)),
            Verdict::Fail { crashes: 4 }
        );
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let t = CrashTracker::new(RestartPolicy {
            jitter: 0.2,
            ..policy()
        });
        for _ in 0..1000 {
            let d = t.clean_exit();
            assert!(
                d >= Duration::from_millis(80) && d <= Duration::from_millis(120),
                "{d:?}"
            );
        }
    }

    #[test]
    fn full_queue_answers_busy_and_refusal_answers_everyone() {
        let (q, _bell) = RequestQueue::<(), ()>::new("e".into(), 2);
        let (tx, rx) = crossbeam_channel::unbounded();
        for _ in 0..2 {
            let tx = tx.clone();
            q.push((), move |id, r| tx.send((id, r)).unwrap()).unwrap();
        }
        assert!(matches!(
            q.push((), |_, _| {}),
            Err(SpeechError::Busy { capacity: 2, .. })
        ));
        q.refuse(SpeechError::ShuttingDown { engine: "e".into() });
        let answers: Vec<_> = rx.try_iter().collect();
        assert_eq!(answers.len(), 2);
        assert!(
            answers
                .iter()
                .all(|(_, r)| matches!(r, Err(SpeechError::ShuttingDown { .. })))
        );
        assert!(matches!(
            q.push((), |_, _| {}),
            Err(SpeechError::ShuttingDown { .. })
        ));
    }

    #[test]
    fn dropped_request_still_gets_an_answer() {
        let (ticket, respond) = Ticket::<()>::pair();
        drop(Responder::new(RequestId(7), "e".into(), respond));
        assert!(matches!(
            ticket.wait(),
            Err(SpeechError::ShuttingDown { .. })
        ));
    }
}
