//! The Chronus supervisor: owns the shared region, the audio output and the
//! control surface, runs worker processes in lockstep, and keeps the output
//! playing through any worker's death.
//!
//! [`run`] is the daemon: one event loop over a closed [`Event`] enum (signals,
//! worker exits, OSC packets, ticks), selected with crossbeam.

mod control;
mod engine;
mod ledger;
mod limits;
mod notify;
mod patterns;
mod process;
pub mod score;
mod slots;
mod speech;
mod status;
mod viz;

use chronus_audio::{BackendChoice, Output, OutputOptions, TakeEvent};
use chronus_config::Config;
use chronus_dsp::Command;
use chronus_osc::{
    Incoming, OscMessage, OscPacket, OscType, Peer, Replier, Subscribers, TcpEndpoint, UdpEndpoint,
};
use chronus_shm::{CMD_CAPACITY, Geometry, Region, SLOTS, futex_wake};
use crossbeam_channel::{Receiver, Sender, select};
use ledger::Ledger;
use nix::sys::signal::Signal;
use process::ExitCause;
use slots::{Slot, State};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Shm(#[from] chronus_shm::ShmError),
    #[error(transparent)]
    Audio(#[from] chronus_audio::AudioError),
    #[error("cannot bind OSC on {addr}: {source}")]
    OscBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start worker processes: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("no worker reached lockstep within {0:?} of startup")]
    StartupTimeout(Duration),
}

/// How the daemon is started, beyond its configuration.
pub struct RunOptions {
    /// The binary to re-execute as `worker` (normally the running executable).
    pub worker_exe: PathBuf,
    /// Reads the configuration again (SIGHUP); the error says what is wrong with it.
    pub reload_config: ReloadConfig,
    /// Replaces the log filter; the error says why the filter is not accepted.
    pub set_log_filter: SetLogFilter,
}

pub type ReloadConfig = Box<dyn FnMut() -> Result<Config, String>>;
pub type SetLogFilter = Box<dyn Fn(&str) -> Result<(), String>>;

/// Everything that wakes the event loop.
enum Event {
    Signal(i32),
    /// A worker's pidfd became readable: it exited.
    ChildExited {
        pid: u32,
        at: Instant,
        mono_ns: u64,
    },
    /// A speech engine answered a request.
    Speech(speech::Answer),
}

const TICK: Duration = Duration::from_millis(2);
const STARTUP_GRACE: Duration = Duration::from_secs(5);
const FORK_TIMEOUT: Duration = Duration::from_secs(1);
const LOCKSTEP_MATCHES: u32 = 2;
const FADE_SECONDS: f32 = 0.05;
const STOP_GRACE: Duration = Duration::from_millis(300);
const BACKLOG_LIMIT: usize = 8192;
/// Most commands waiting for a future timetag (published or queued, not yet played).
/// Each worker holds the ones it has read until their frame, so this bounds it too.
const SCHEDULE_LIMIT: usize = 4096;
const SUBSCRIBER_LIMIT: usize = 64;
/// How often systemd's STATUS= line is refreshed.
const STATUS_INTERVAL: Duration = Duration::from_millis(250);
/// A worker that lived this long before faulting starts a fresh crash count.
const FAULT_AMNESTY: Duration = Duration::from_secs(10);

/// Counters reported by `/chronus/status`.
#[derive(Default)]
struct Counters {
    failovers: u64,
    restores: u64,
    last_restore_ms: f64,
    last_exit_mono_ns: u64,
    divergences: u64,
    cold_starts: u64,
    hangs: u64,
    faults: u64,
    osc_received: u64,
    osc_errors: u64,
    backlog_full: u64,
    osc_late: u64,
    schedule_full: u64,
}

enum Phase {
    Starting {
        since: Instant,
    },
    Running,
    /// Fading out; stop when the device has played `until` or at `deadline`.
    Stopping {
        until: u64,
        deadline: Instant,
    },
}

struct Supervisor {
    config: Config,
    options: RunOptions,
    region: Arc<Region>,
    region_fd: OwnedFd,
    slots: [Slot; SLOTS],
    ledger: Ledger,
    /// Commands waiting for room in the log, with the message they came from.
    backlog: VecDeque<Group>,
    osc: UdpEndpoint,
    tcp: TcpEndpoint,
    replier: Replier,
    subscribers: Subscribers,
    /// Every concrete audio address, for OSC address patterns.
    namespace: Vec<String>,
    gate: Arc<limits::SenderGate>,
    /// `/chronus/sync` requests waiting for the commands before them to play.
    syncs: Vec<(Peer, OscType, u64)>,
    /// What subscribers were last told about each slot, and the underrun count.
    announced: ([&'static str; SLOTS], u64),
    events: Sender<Event>,
    counters: Counters,
    started: Instant,
    phase: Phase,
    /// Next block start to compare between slots.
    compare_from: u64,
    backend: &'static str,
    notifier: notify::Notifier,
    ready_sent: bool,
    /// When STATUS= was last considered.
    status_sent: Instant,
    desk: speech::Desk,
    viz: viz::Viz,
    /// The audio output, once open.
    output: Option<Output>,
    takes: TakeState,
}

/// What the supervisor knows of `/engine/record/*`.
#[derive(Default)]
struct TakeState {
    /// Requests the takes writer has not answered yet, in order, with their address.
    pending: VecDeque<(Peer, &'static str)>,
    /// The running take's file.
    current: Option<PathBuf>,
    /// The latest take's file and first frame, running or not.
    last: Option<(PathBuf, u64)>,
}

/// Runs the daemon until SIGTERM, SIGINT or `/chronus/quit`.
pub fn run(config: Config, options: RunOptions) -> Result<(), SupervisorError> {
    process::become_subreaper().map_err(SupervisorError::Spawn)?;
    match chronus_shm::realtime::lock_memory() {
        Ok(()) => tracing::debug!("memory locked"),
        Err(e) => {
            tracing::warn!(error = %e, "memory not locked; page faults may delay the audio thread")
        }
    }
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    spawn_signal_thread(events_tx.clone())?;

    let audio = &config.audio;
    let bf = u64::from(audio.block_frames);
    // Workers keep between lookahead - 1 block and lookahead rendered; the device
    // must always find what it takes in one go: when the timeline starts, ALSA
    // fills its whole buffer (two periods of `buffer_size`) at once.
    let wanted = u64::from(audio.lookahead_blocks) * bf;
    let lookahead = wanted.max((2 * u64::from(audio.buffer_size)).div_ceil(bf) * bf + 2 * bf);
    if lookahead != wanted {
        tracing::warn!(
            lookahead_frames = lookahead,
            "audio.lookahead_blocks is too short for a {}-frame device buffer; raised",
            audio.buffer_size
        );
    }
    // The ring holds the lookahead, the largest device callback and slack.
    let ring_blocks =
        ((lookahead + u64::from(audio.buffer_size) * 2) / u64::from(audio.block_frames) + 8) as u32;
    let geometry = Geometry {
        sample_rate: audio.sample_rate,
        block_frames: audio.block_frames,
        ring_blocks: ring_blocks.max(16),
        lookahead_frames: lookahead,
        speech_samples: u64::from(audio.sample_rate) * speech::AREA_SECONDS,
    };
    let (region, region_fd) = Region::create(geometry, std::process::id())?;
    let region = Arc::new(region);

    let osc_addr = SocketAddr::new(config.osc.host, config.osc.port);
    let bind_err = |source| SupervisorError::OscBind {
        addr: osc_addr,
        source,
    };
    let osc = UdpEndpoint::bind(osc_addr, 4 << 20).map_err(bind_err)?;
    let tcp = TcpEndpoint::bind(osc_addr).map_err(bind_err)?;
    let (osc_tx, osc_rx) = crossbeam_channel::bounded(4096);
    let limits = chronus_osc::Limits::default();
    // Senders are filtered on the receiving threads, before their packets are decoded or
    // take a place in the channel every sender shares.
    let gate = Arc::new(limits::SenderGate::new(
        config.osc.allow.clone(),
        config.osc.rate_limit,
    ));
    let admit = |gate: &Arc<limits::SenderGate>| -> chronus_osc::Gate {
        let gate = Arc::clone(gate);
        Arc::new(move |ip| gate.admit(ip))
    };
    osc.spawn_gated_receiver(limits, admit(&gate), osc_tx.clone())
        .map_err(bind_err)?;
    tcp.spawn_gated_acceptor(limits, admit(&gate), osc_tx)
        .map_err(bind_err)?;
    let replier = Replier::new().with_udp(&osc).with_tcp(&tcp);
    if !config.osc.host.is_loopback() && config.osc.allow.is_empty() {
        tracing::warn!(
            host = %config.osc.host,
            "OSC is reachable beyond this machine and osc.allow (CHRONUS_OSC_ALLOW) is empty: any sender can control the daemon"
        );
    }

    let journal = match &config.journal {
        Some(path) => Some(
            score::ScoreWriter::create(path, audio.sample_rate, config.engine.num_voices).map_err(
                |source| SupervisorError::Journal {
                    path: path.to_path_buf(),
                    source,
                },
            )?,
        ),
        None => None,
    };
    let now = Instant::now();
    let namespace = control::namespace(config.engine.num_voices);
    let desk = speech::Desk::start(&config.speech, audio.sample_rate);
    let mut sup = Supervisor {
        ledger: Ledger::new(config.engine.num_voices, journal),
        config,
        options,
        region: region.clone(),
        region_fd,
        slots: std::array::from_fn(|_| Slot::new(now)),
        backlog: VecDeque::new(),
        osc,
        tcp,
        replier,
        subscribers: Subscribers::new(SUBSCRIBER_LIMIT),
        namespace,
        gate,
        syncs: Vec::new(),
        announced: (["starting"; SLOTS], 0),
        events: events_tx,
        counters: Counters::default(),
        started: now,
        phase: Phase::Starting { since: now },
        compare_from: 0,
        backend: "none",
        notifier: notify::Notifier::from_env(),
        ready_sent: false,
        status_sent: now,
        desk,
        output: None,
        takes: TakeState::default(),
        viz: viz::Viz::new(now),
    };
    sup.cold_start()?;

    let output = match chronus_audio::open(&sup.output_options(), region) {
        Ok(output) => output,
        Err(e) => {
            // The workers already run: reap them, as on every other exit.
            sup.stop_workers();
            return Err(e.into());
        }
    };
    if let Some(reason) = &output.fallback_reason {
        tracing::warn!(
            "no audio device could be opened ({reason}); playing into the timer-clocked null output instead: nothing will be audible"
        );
    }
    sup.backend = output.backend_name();
    tracing::info!(backend = sup.backend, device = output.device_name(), osc = %sup.osc.local_addr(), "chronusd started");
    sup.output = Some(output);

    let result = sup.event_loop(&events_rx, &osc_rx);
    sup.osc.shutdown();
    sup.tcp.shutdown();
    // Speech engines stop (close stdin, grace, TERM, KILL) while the workers do.
    let engines = sup.desk.take_engines();
    let speech_stopped = std::thread::Builder::new()
        .name("speech-stop".into())
        .spawn(move || engines.shutdown());
    let (recording, take) = match sup.output.take() {
        Some(output) => output.finish(),
        None => (Ok(None), None),
    };
    match recording {
        Ok(Some(frames)) => tracing::info!(frames, "recording finalized"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "recording could not be finalized"),
    }
    match take {
        Some(TakeEvent::Stopped { path, frames, .. }) => {
            tracing::info!(path = %path.display(), frames, "take finalized on shutdown")
        }
        Some(TakeEvent::Failed { reason } | TakeEvent::Aborted { reason, .. }) => {
            tracing::error!("take could not be finalized on shutdown: {reason}")
        }
        Some(TakeEvent::Started { .. }) | None => {}
    }
    sup.stop_workers();
    match speech_stopped {
        Ok(handle) => {
            let _ = handle.join();
        }
        Err(e) => tracing::error!(error = %e, "cannot stop the speech engines on a thread"),
    }
    sup.ledger.flush();
    result
}

fn spawn_signal_thread(tx: Sender<Event>) -> Result<(), SupervisorError> {
    use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGCHLD])
        .map_err(SupervisorError::Signals)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(Event::Signal(sig)).is_err() {
                    return;
                }
            }
        })
        .map_err(SupervisorError::Signals)?;
    Ok(())
}

impl Supervisor {
    fn output_options(&self) -> OutputOptions {
        let audio = &self.config.audio;
        OutputOptions {
            backend: match audio.backend {
                chronus_config::Backend::Auto => BackendChoice::Auto,
                chronus_config::Backend::Cpal => BackendChoice::Cpal,
                chronus_config::Backend::Null => BackendChoice::Null,
            },
            device: audio.device.clone(),
            sample_rate: audio.sample_rate,
            buffer_frames: audio.buffer_size,
            record: self.config.record.clone(),
        }
    }

    fn event_loop(
        &mut self,
        events: &Receiver<Event>,
        osc: &Receiver<Incoming>,
    ) -> Result<(), SupervisorError> {
        let ticker = crossbeam_channel::tick(TICK);
        let (spawn_jobs, speech_events) = (self.desk.jobs.clone(), self.desk.events.clone());
        let mut stream_errors = 0;
        let mut realtime_warned = false;
        loop {
            select! {
                recv(events) -> event => match event {
                    Ok(Event::Signal(sig)) => {
                        if sig == libc::SIGCHLD {
                            self.reap();
                        } else if sig == libc::SIGHUP {
                            self.reload();
                        } else if matches!(self.phase, Phase::Stopping { .. }) {
                            tracing::warn!("second stop signal: exiting at once");
                            return Ok(());
                        } else {
                            tracing::info!(signal = sig, "stopping");
                            self.begin_stop();
                        }
                    }
                    Ok(Event::ChildExited { pid, at, mono_ns }) => {
                        self.on_exit_noticed(pid, at, mono_ns);
                    }
                    Ok(Event::Speech(answer)) => self.on_speech_answer(answer),
                    Err(_) => return Ok(()),
                },
                // Speech engines' processes are spawned here, on the main thread.
                recv(spawn_jobs) -> job => {
                    if let Ok(job) = job {
                        job.run();
                    }
                },
                recv(speech_events) -> event => {
                    if let Ok(event) = event {
                        self.on_speech_event(event);
                    }
                },
                recv(osc) -> incoming => {
                    if let Ok(incoming) = incoming {
                        self.on_osc(incoming);
                    }
                },
                recv(ticker) -> _ => {
                    if let Some(result) = self.tick() {
                        return result;
                    }
                    self.takes_tick();
                    let Some(output) = &self.output else { continue };
                    // Once audio runs, every realtime thread has asked for SCHED_FIFO.
                    if !realtime_warned && self.ready_sent {
                        realtime_warned = self.warn_realtime_denied(output);
                    }
                    let (errors, kind) = output.stream_errors();
                    if errors != stream_errors {
                        tracing::warn!(errors, latest = kind, "the audio stream reported errors");
                        stream_errors = errors;
                    }
                },
            }
        }
    }

    /// The one warning of a run about threads refused SCHED_FIFO (the audio thread,
    /// the workers' render loops); `true` once given.
    fn warn_realtime_denied(&self, output: &Output) -> bool {
        let mut denied = self.region.header().realtime_denied.load(Ordering::Relaxed);
        if output.realtime_denied() {
            denied |= chronus_shm::REALTIME_DENIED_AUDIO;
        }
        let threads = match denied {
            0 => return false,
            chronus_shm::REALTIME_DENIED_AUDIO => "the audio thread",
            chronus_shm::REALTIME_DENIED_WORKER => "the workers' render loops",
            _ => "the audio thread and the workers' render loops",
        };
        tracing::warn!(
            "no realtime scheduling (SCHED_FIFO) for {threads}; running at normal priority (needs CAP_SYS_NICE or LimitRTPRIO)"
        );
        true
    }

    // ---- worker lifecycle -------------------------------------------------

    /// Starts fresh workers in every slot from the parameter mirror.
    fn cold_start(&mut self) -> Result<(), SupervisorError> {
        let header = self.region.header();
        let log = self.region.log();
        let frontier = header.frontier.frame.load(Ordering::SeqCst);
        self.ledger.stamp_all(&log, frontier);
        let bf = u64::from(self.config.audio.block_frames);
        let play = header.clock.play_frame.load(Ordering::Acquire);
        let running = header.clock.running.load(Ordering::Acquire) != 0;
        // Leave the new workers time to exec before the device needs their first block.
        let margin = if running {
            header.lookahead_frames.load(Ordering::Relaxed)
                + u64::from(self.config.audio.sample_rate) / 50
        } else {
            0
        };
        let start = (frontier.max(play + margin)).div_ceil(bf) * bf;
        let snapshot = self.ledger.cold_snapshot(start, log.tail());
        self.region.write_snapshot(&snapshot.to_bytes())?;
        self.compare_from = start;
        let now = Instant::now();
        for slot in 0..SLOTS {
            // A request left for a dead worker must not reach its successor.
            self.region
                .slot(slot)
                .fork_request
                .store(0, Ordering::Release);
            self.region.slot(slot).pid.store(0, Ordering::Release);
            let pid =
                process::spawn_worker(&self.options.worker_exe, self.region_fd.as_raw_fd(), slot)
                    .map_err(SupervisorError::Spawn)?;
            self.adopt(slot, pid, State::Starting { pid, since: now });
        }
        tracing::info!(start_frame = start, "workers cold-started");
        Ok(())
    }

    fn adopt(&mut self, slot: usize, pid: u32, state: State) {
        let events = self.events.clone();
        if let Err(e) = process::watch_exit(pid, events, move |at, mono_ns| Event::ChildExited {
            pid,
            at,
            mono_ns,
        }) {
            tracing::warn!(pid, error = %e, "cannot watch worker through a pidfd; relying on SIGCHLD");
        }
        let s = &mut self.slots[slot];
        s.state = state;
        s.heartbeat = (
            self.region.slot(slot).heartbeat.load(Ordering::Relaxed),
            Instant::now(),
        );
        s.matches = 0;
        s.born = Instant::now();
        tracing::debug!(slot, pid, "worker adopted");
    }

    fn slot_of(&self, pid: u32) -> Option<usize> {
        (0..SLOTS).find(|&i| self.slots[i].state.pid() == Some(pid))
    }

    /// SIGCHLD: reap whatever exited.
    fn reap(&mut self) {
        self.reap_noticed(None);
    }

    /// A worker's pidfd reported its exit at `at`.
    fn on_exit_noticed(&mut self, pid: u32, at: Instant, mono_ns: u64) {
        if self.slot_of(pid).is_some() {
            self.counters.last_exit_mono_ns = mono_ns;
        }
        self.reap_noticed(Some((pid, at)));
    }

    /// Reaps every exited child and handles each lost worker among them.
    fn reap_noticed(&mut self, noticed: Option<(u32, Instant)>) {
        let workers: Vec<u32> = self.slots.iter().filter_map(|s| s.state.pid()).collect();
        for (pid, cause) in process::reap_all(&workers) {
            let Some(slot) = self.slot_of(pid) else {
                tracing::debug!(pid, %cause, "reaped a child");
                continue;
            };
            let at = match noticed {
                Some((watched, at)) if watched == pid => at,
                // SIGCHLD, or another pidfd, beat this worker's watcher.
                _ => {
                    self.counters.last_exit_mono_ns = chronus_shm::monotonic_ns();
                    Instant::now()
                }
            };
            self.worker_lost(slot, Some(cause), at);
        }
    }

    /// A worker died or was declared hung at `at`: fail over, then restore.
    fn worker_lost(&mut self, slot: usize, cause: Option<ExitCause>, at: Instant) {
        let Some(pid) = self.slots[slot].state.pid() else {
            return;
        };
        let fault = cause.is_none_or(ExitCause::is_fault);
        if matches!(self.phase, Phase::Stopping { .. }) {
            self.slots[slot].state = State::Dead {
                retry_at: at + Duration::from_secs(3600),
            };
            return;
        }
        let s = &mut self.slots[slot];
        if at.duration_since(s.born) > FAULT_AMNESTY {
            s.faults = 0;
        }
        s.faults = if fault { s.faults + 1 } else { 0 };
        let backoff = self.backoff(self.slots[slot].faults);
        self.slots[slot].backoff = backoff;
        let s = &mut self.slots[slot];
        s.state = State::Dead {
            retry_at: at + backoff,
        };
        s.restore_since = Some(at);
        let clock = &self.region.header().clock;
        if self.active_slot() == slot
            && let Some(next) =
                (0..SLOTS).find(|&i| matches!(self.slots[i].state, State::Lockstep { .. }))
        {
            clock.active_slot.store(next as u32, Ordering::Release);
            self.counters.failovers += 1;
            self.broadcast(chronus_osc::message(
                "/chronus/failover",
                vec![OscType::Int(slot as i32), OscType::Int(next as i32)],
            ));
        }
        self.refresh_readable();
        self.region
            .slot(slot)
            .fork_request
            .store(0, Ordering::Release);
        // A fork requested from the lost worker will never arrive.
        for other in &mut self.slots {
            if let State::Forking { source, .. } = other.state
                && source == slot
            {
                other.state = State::Dead { retry_at: at };
            }
        }
        match cause {
            Some(cause) if fault => {
                self.counters.faults += 1;
                tracing::warn!(slot, pid, %cause, backoff_ms = backoff.as_millis() as u64, "worker crashed")
            }
            Some(cause) => tracing::info!(slot, pid, %cause, "worker exited"),
            None => tracing::warn!(
                slot,
                pid,
                backoff_ms = backoff.as_millis() as u64,
                "worker hung; killed"
            ),
        }
        self.restore();
    }

    fn backoff(&self, faults: u32) -> Duration {
        if faults < 2 {
            return Duration::ZERO;
        }
        let min = u64::from(self.config.workers.restart_backoff_min_ms);
        let max = u64::from(self.config.workers.restart_backoff_max_ms);
        Duration::from_millis(min.saturating_mul(1 << (faults - 2).min(20)).min(max))
    }

    /// Brings dead slots back: a fork of a lockstep survivor, or a cold start of all.
    fn restore(&mut self) {
        let now = Instant::now();
        let all_dead = self
            .slots
            .iter()
            .all(|s| matches!(s.state, State::Dead { .. }));
        if all_dead {
            let ready = self
                .slots
                .iter()
                .all(|s| matches!(s.state, State::Dead { retry_at } if retry_at <= now));
            if ready {
                self.counters.cold_starts += 1;
                tracing::warn!("every worker is gone: cold-starting from the parameter mirror");
                if let Err(e) = self.cold_start() {
                    tracing::error!(error = %e, "cold start failed; retrying");
                    for s in &mut self.slots {
                        s.state = State::Dead {
                            retry_at: now + Duration::from_millis(100),
                        };
                    }
                }
            }
            return;
        }
        for slot in 0..SLOTS {
            let State::Dead { retry_at } = self.slots[slot].state else {
                continue;
            };
            if retry_at > now {
                continue;
            }
            let Some(source) =
                (0..SLOTS).find(|&i| matches!(self.slots[i].state, State::Lockstep { .. }))
            else {
                continue;
            };
            let old_pid = self.region.slot(slot).pid.load(Ordering::Acquire);
            let src = self.region.slot(source);
            src.fork_request.store(slot as u32 + 1, Ordering::Release);
            src.wake.fetch_add(1, Ordering::Release);
            futex_wake(&src.wake);
            self.slots[slot].state = State::Forking {
                source,
                since: now,
                old_pid,
            };
        }
    }

    /// SIGKILLs a worker we consider lost; its exit is reaped later.
    fn kill_worker(&self, pid: u32) {
        process::signal(pid, Signal::SIGKILL);
    }

    fn stop_workers(&mut self) {
        let pids: Vec<u32> = self.slots.iter().filter_map(|s| s.state.pid()).collect();
        for &pid in &pids {
            process::signal_group(pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        let mut left: Vec<u32> = pids.clone();
        while !left.is_empty() && Instant::now() < deadline {
            let reaped = process::reap_all(&left);
            left.retain(|p| !reaped.iter().any(|(r, _)| r == p));
            std::thread::sleep(Duration::from_millis(2));
        }
        for &pid in &left {
            tracing::warn!(pid, "worker ignored SIGTERM; killing");
            process::signal_group(pid, Signal::SIGKILL);
        }
        // Always reap: wait for each remaining child without WNOHANG.
        for &pid in &left {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
        }
        process::reap_all(&[]);
        for s in &mut self.slots {
            s.state = State::Dead {
                retry_at: Instant::now(),
            };
        }
    }

    // ---- the tick ----------------------------------------------------------

    /// Periodic work; returns `Some` when the daemon should exit.
    fn tick(&mut self) -> Option<Result<(), SupervisorError>> {
        let now = Instant::now();
        self.observe_slots(now);
        self.compare_slots(now);
        self.restore();
        self.refresh_readable();
        self.flush_backlog();
        let region = self.region.clone();
        let header = region.header();
        let play = header.clock.play_frame.load(Ordering::Acquire);
        self.ledger.observe_stamps(&self.region.log());
        self.ledger.settle(play);
        self.speech_tick(play);
        let active = self.active_slot();
        self.viz
            .tick(now, self.config.viz.target(), &region, active);
        self.subscribers.expire(now);
        self.announce();
        match self.phase {
            Phase::Starting { since } => {
                let lockstep = self
                    .slots
                    .iter()
                    .filter(|s| matches!(s.state, State::Lockstep { .. }))
                    .count();
                if lockstep == SLOTS || (lockstep > 0 && now - since > Duration::from_secs(2)) {
                    header.clock.running.store(1, Ordering::Release);
                    self.phase = Phase::Running;
                    tracing::info!(
                        ready_ms = (now - self.started).as_secs_f64() * 1e3,
                        "workers in lockstep; starting the timeline"
                    );
                } else if now - since > STARTUP_GRACE * 2 {
                    return Some(Err(SupervisorError::StartupTimeout(STARTUP_GRACE * 2)));
                }
            }
            Phase::Running => {
                let frames = header.clock.frames_out.load(Ordering::Relaxed);
                if self.ready_sent {
                    self.notifier.watchdog(now, frames);
                    if now - self.status_sent >= STATUS_INTERVAL {
                        self.status_sent = now;
                        let words = self.status_words();
                        self.notifier.status(words);
                    }
                } else if frames > 0 {
                    let words = self.status_words();
                    // The device has taken audio: only now is the service ready.
                    tracing::info!(
                        ready_ms = (now - self.started).as_secs_f64() * 1e3,
                        "audio running, workers in lockstep"
                    );
                    self.notifier.ready(words);
                    self.ready_sent = true;
                }
            }
            Phase::Stopping { until, deadline } => {
                if play >= until
                    || now >= deadline
                    || header.clock.running.load(Ordering::Relaxed) == 0
                {
                    return Some(Ok(()));
                }
            }
        }
        None
    }

    /// Notices new pids from forks, first blocks, and hangs.
    fn observe_slots(&mut self, now: Instant) {
        let hang_timeout = Duration::from_millis(u64::from(self.config.workers.hang_timeout_ms));
        for slot in 0..SLOTS {
            let shm = self.region.slot(slot);
            self.evict_stray(slot);
            match self.slots[slot].state {
                State::Forking { since, old_pid, .. } => {
                    let pid = shm.pid.load(Ordering::Acquire);
                    if pid != 0 && pid != old_pid {
                        self.adopt(slot, pid, State::Syncing { pid });
                    } else if now - since > FORK_TIMEOUT {
                        tracing::warn!(slot, "forked worker never appeared; retrying");
                        self.slots[slot].state = State::Dead { retry_at: now };
                    }
                }
                State::Starting { pid, since } => {
                    if shm.pid.load(Ordering::Acquire) == pid
                        && shm.phase() == chronus_shm::SlotPhase::Rendering
                    {
                        self.slots[slot].state = State::Syncing { pid };
                        self.slots[slot].heartbeat = (shm.heartbeat.load(Ordering::Relaxed), now);
                    } else if now - since > STARTUP_GRACE {
                        self.kill_worker(pid);
                        self.counters.hangs += 1;
                        self.worker_lost(slot, None, now);
                    }
                }
                State::Syncing { pid } | State::Lockstep { pid } => {
                    let beat = shm.heartbeat.load(Ordering::Relaxed);
                    if beat != self.slots[slot].heartbeat.0 {
                        self.slots[slot].heartbeat = (beat, now);
                    } else if now - self.slots[slot].heartbeat.1 > hang_timeout {
                        self.kill_worker(pid);
                        self.counters.hangs += 1;
                        self.worker_lost(slot, None, now);
                    }
                }
                State::Dead { .. } => {}
            }
        }
    }

    /// Kills a process that claims `slot` without the supervisor having given it
    /// the slot (a fork copy whose request was overtaken by its source's death):
    /// two writers must never share a ring.
    fn evict_stray(&self, slot: usize) {
        let claimed = self.region.slot(slot).pid.load(Ordering::Acquire);
        let expected = match self.slots[slot].state {
            State::Forking { .. } => return,
            state => state.pid(),
        };
        if claimed == 0 || Some(claimed) == expected || self.slot_of(claimed).is_some() {
            return;
        }
        if process::is_live_child(claimed) {
            tracing::warn!(
                slot,
                pid = claimed,
                "killing a worker that claimed a slot it was not given"
            );
            self.kill_worker(claimed);
        }
    }

    /// Compares block checksums of the rendering slots: proof of lockstep.
    fn compare_slots(&mut self, now: Instant) {
        let rendering: Vec<usize> = (0..SLOTS)
            .filter(|&i| self.slots[i].state.is_rendering())
            .collect();
        let bf = u64::from(self.config.audio.block_frames);
        if let [a, b] = rendering[..] {
            let (sa, sb) = (self.region.slot(a), self.region.slot(b));
            let first = sa
                .first_frame
                .load(Ordering::Acquire)
                .max(sb.first_frame.load(Ordering::Acquire));
            let to = sa
                .rendered
                .load(Ordering::Acquire)
                .min(sb.rendered.load(Ordering::Acquire));
            let ring_frames = self.region.geometry().ring_blocks as u64 * bf;
            let mut frame = self
                .compare_from
                .max(first)
                .max(to.saturating_sub(ring_frames / 2));
            frame = frame.div_ceil(bf) * bf;
            while frame + bf <= to {
                if let (Some(x), Some(y)) = (
                    self.region.ring(a).checksum(frame),
                    self.region.ring(b).checksum(frame),
                ) {
                    if x == y {
                        for i in [a, b] {
                            self.slots[i].matches += 1;
                        }
                    } else {
                        self.diverged(frame);
                        return;
                    }
                }
                frame += bf;
            }
            self.compare_from = frame;
            for i in [a, b] {
                self.promote_if_proven(i, now);
            }
        } else if let [only] = rendering[..]
            && self
                .slots
                .iter()
                .all(|s| s.state.is_rendering() || matches!(s.state, State::Dead { .. }))
        {
            // A lone worker whose peer died has nobody to match.
            let s = self.region.slot(only);
            let rendered =
                s.rendered.load(Ordering::Acquire) - s.first_frame.load(Ordering::Acquire);
            if rendered >= bf * u64::from(LOCKSTEP_MATCHES) {
                self.slots[only].matches = LOCKSTEP_MATCHES;
                self.promote_if_proven(only, now);
            }
        }
    }

    fn promote_if_proven(&mut self, slot: usize, now: Instant) {
        let s = &mut self.slots[slot];
        if let State::Syncing { pid } = s.state
            && s.matches >= LOCKSTEP_MATCHES
        {
            s.state = State::Lockstep { pid };
            if s.distrust_until == u64::MAX {
                // Diverged blocks end where this proven occupant's own begin.
                s.distrust_until = self.region.slot(slot).first_frame.load(Ordering::Acquire);
            }
            if let Some(since) = s.restore_since.take() {
                self.counters.restores += 1;
                self.counters.last_restore_ms = (now - since).as_secs_f64() * 1e3;
                tracing::info!(
                    slot,
                    pid,
                    restore_ms = self.counters.last_restore_ms,
                    "slot back in lockstep"
                );
            }
            self.refresh_readable();
        }
    }

    /// Two slots disagree on a block: keep the active one, replace the other.
    fn diverged(&mut self, frame: u64) {
        self.counters.divergences += 1;
        let active = self.active_slot();
        let victim = (0..SLOTS).find(|&i| i != active && self.slots[i].state.pid().is_some());
        tracing::error!(
            frame,
            active,
            ?victim,
            "slots diverged; replacing the standby"
        );
        if let Some(victim) = victim
            && let Some(pid) = self.slots[victim].state.pid()
        {
            self.slots[victim].distrust_until = u64::MAX;
            self.kill_worker(pid);
            self.worker_lost(victim, None, Instant::now());
        }
    }

    /// Publishes which rings the callback may fall back to, and keeps the active
    /// slot on a worker in lockstep.
    fn refresh_readable(&self) {
        let header = self.region.header();
        let play = header.clock.play_frame.load(Ordering::Acquire);
        let mask = (0..SLOTS)
            .filter(|&i| play >= self.slots[i].distrust_until)
            .fold(0u32, |m, i| m | 1 << i);
        header.readable_slots.store(mask, Ordering::Release);
        let active = header.clock.active_slot.load(Ordering::Relaxed) as usize;
        if !self.slots[active].state.is_rendering()
            && let Some(next) =
                (0..SLOTS).find(|&i| matches!(self.slots[i].state, State::Lockstep { .. }))
        {
            header
                .clock
                .active_slot
                .store(next as u32, Ordering::Release);
        }
    }

    // ---- commands ----------------------------------------------------------

    /// Queues commands for every worker, taking effect together no earlier than `min_frame`.
    fn submit(&mut self, group: Group) -> Result<(), &'static str> {
        if self.backlog.len() >= BACKLOG_LIMIT {
            self.counters.backlog_full += 1;
            return Err("command queue full: the workers are not keeping up");
        }
        let frontier = self.region.header().frontier.frame.load(Ordering::Acquire);
        if group.min_frame > frontier {
            let queued: usize = self
                .backlog
                .iter()
                .filter(|g| g.min_frame > frontier)
                .map(|g| g.commands.len())
                .sum();
            if self.ledger.scheduled() + queued + group.commands.len() > SCHEDULE_LIMIT {
                self.counters.schedule_full += 1;
                return Err(
                    "schedule full: too many commands already wait for a future timetag; send it again once some have played",
                );
            }
        }
        self.backlog.push_back(group);
        self.flush_backlog();
        Ok(())
    }

    fn flush_backlog(&mut self) {
        let region = self.region.clone();
        let log = region.log();
        let live_cursors = (0..SLOTS)
            .filter(|&i| self.slots[i].state.pid().is_some())
            .map(|i| self.region.slot(i).cmd_cursor.load(Ordering::Acquire));
        let oldest_needed = live_cursors.chain(self.ledger.oldest_unstamped()).min();
        while let Some(group) = self.backlog.front() {
            let seq = log.tail();
            let end = seq + group.commands.len() as u64;
            if oldest_needed.is_some_and(|oldest| end - oldest >= CMD_CAPACITY as u64 - 1) {
                return;
            }
            let group = self.backlog.pop_front().expect("front exists");
            let encoded: Vec<Vec<u8>> = group
                .commands
                .iter()
                .map(|(command, _)| {
                    let mut bytes = Vec::new();
                    command.encode(&mut bytes);
                    bytes
                })
                .collect();
            let payloads: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            log.publish_group(seq, group.min_frame, &payloads);
            let frontier = region.header().frontier.frame.load(Ordering::Acquire);
            let scheduled = group.min_frame > frontier;
            for (i, ((command, message), bytes)) in
                group.commands.into_iter().zip(encoded).enumerate()
            {
                if matches!(command, Command::Speak { .. } | Command::SpeakStop) {
                    self.speech_published(&command, seq + i as u64);
                }
                self.ledger
                    .record(seq + i as u64, command, bytes, message, scheduled);
            }
        }
    }

    /// The frame a bundle's timetag names, through the device clock: the frame
    /// being handed to the device at that moment. `None` for "immediately".
    fn timetag_frame(&self, time: chronus_osc::OscTime) -> Option<u64> {
        if chronus_osc::is_immediate(time) {
            return None;
        }
        let (anchor_frame, anchor_ns) = self.region.header().anchor.get()?;
        let target = chronus_osc::timetag_to_system_time(time)?;
        let now_sys = std::time::SystemTime::now();
        let now_ns = chronus_shm::monotonic_ns() as i128;
        let offset_ns = match target.duration_since(now_sys) {
            Ok(ahead) => ahead.as_nanos() as i128,
            Err(behind) => -(behind.duration().as_nanos() as i128),
        };
        let since_anchor = now_ns + offset_ns - anchor_ns as i128;
        let frames = since_anchor * i128::from(self.config.audio.sample_rate) / 1_000_000_000;
        Some((anchor_frame as i128 + frames).max(0) as u64)
    }

    fn begin_stop(&mut self) {
        self.notifier.stopping();
        self.osc.shutdown();
        self.tcp.shutdown();
        let now = Instant::now();
        if self.region.header().clock.running.load(Ordering::Acquire) == 0 {
            self.phase = Phase::Stopping {
                until: 0,
                deadline: now,
            };
            return;
        }
        let fade = Command::Fade {
            gain: 0.0,
            seconds: FADE_SECONDS,
        };
        let _ = self.submit(Group::now(vec![(fade, None)]));
        let header = self.region.header();
        let play = header.clock.play_frame.load(Ordering::Acquire);
        let rate = u64::from(self.config.audio.sample_rate);
        let until = play
            + header.lookahead_frames.load(Ordering::Relaxed)
            + (FADE_SECONDS as f64 * rate as f64) as u64
            + u64::from(self.config.audio.block_frames);
        self.phase = Phase::Stopping {
            until,
            deadline: now + Duration::from_millis(500),
        };
    }

    /// The slot the callback reads first.
    fn active_slot(&self) -> usize {
        self.region
            .header()
            .clock
            .active_slot
            .load(Ordering::Relaxed) as usize
    }

    /// systemd's STATUS= line: the live state in words.
    fn status_words(&self) -> String {
        let clock = &self.region.header().clock;
        let active = self.active_slot();
        let standby = (0..SLOTS).find(|&i| i != active).unwrap_or(active);
        format!(
            "playing via {}; active slot {active}; standby slot {standby} {}; {} failovers; {} underrun frames",
            self.backend,
            self.slots[standby].state.name(),
            self.counters.failovers,
            clock.underrun_frames.load(Ordering::Relaxed),
        )
    }

    /// SIGHUP: apply what can change live, name what needs a restart, and keep
    /// the running configuration if the new one is invalid.
    fn reload(&mut self) {
        self.notifier.reloading();
        match (self.options.reload_config)() {
            Err(e) => tracing::error!("reload failed; keeping the running configuration: {e}"),
            Ok(new) => {
                let old_log = self.config.log.clone();
                let (mut live, mut restart) = (Vec::new(), Vec::new());
                for key in chronus_config::changed_keys(&self.config, &new) {
                    if self.apply_live(key, &new) {
                        live.push(key);
                    } else {
                        restart.push(key);
                    }
                }
                if self.config.log != old_log {
                    let filter = self.config.log.directive();
                    if let Err(e) = (self.options.set_log_filter)(&filter) {
                        tracing::error!(
                            "reload: log filter {filter:?} rejected, keeping the old one: {e}"
                        );
                        self.config.log = old_log;
                        live.retain(|key| !key.starts_with("log."));
                    }
                }
                if !restart.is_empty() {
                    tracing::warn!(
                        "reload: {} changed but need a restart to take effect; running on the old values",
                        restart.join(", ")
                    );
                }
                let live = if live.is_empty() {
                    "nothing".to_owned()
                } else {
                    live.join(", ")
                };
                tracing::info!("configuration reloaded; applied live: {live}");
            }
        }
        self.notifier.reloaded();
    }

    /// Takes `key`'s value from `new` if it can change while running; `false` if it
    /// needs a restart. The one list of live settings.
    fn apply_live(&mut self, key: &str, new: &Config) -> bool {
        let c = &mut self.config;
        match key {
            // The filter itself is replaced once all keys are in (see `reload`).
            "log.verbose" => c.log.verbose = new.log.verbose,
            "log.filter" => c.log.filter.clone_from(&new.log.filter),
            "osc.allow" => {
                c.osc.allow.clone_from(&new.osc.allow);
                self.gate.set_allow(new.osc.allow.clone());
            }
            "osc.late_bundles" => c.osc.late_bundles = new.osc.late_bundles,
            "engine.recordings_dir" => {
                c.engine
                    .recordings_dir
                    .clone_from(&new.engine.recordings_dir);
            }
            "engine.patterns_dir" => c.engine.patterns_dir.clone_from(&new.engine.patterns_dir),
            "viz.enabled" | "viz.host" | "viz.port" => c.viz.clone_from(&new.viz),
            "osc.rate_limit" => {
                c.osc.rate_limit = new.osc.rate_limit;
                self.gate.set_rate(new.osc.rate_limit);
            }
            "workers.hang_timeout_ms" => c.workers.hang_timeout_ms = new.workers.hang_timeout_ms,
            "workers.restart_backoff_min_ms" => {
                c.workers.restart_backoff_min_ms = new.workers.restart_backoff_min_ms;
            }
            "workers.restart_backoff_max_ms" => {
                c.workers.restart_backoff_max_ms = new.workers.restart_backoff_max_ms;
            }
            "speech.tts.gain" | "speech.tts.duck" => {
                c.speech.tts.gain = new.speech.tts.gain;
                c.speech.tts.duck = new.speech.tts.duck;
                self.desk
                    .set_levels(new.speech.tts.gain, new.speech.tts.duck);
            }
            _ => return false,
        }
        true
    }

    // ---- OSC -----------------------------------------------------------------

    fn on_osc(&mut self, incoming: Incoming) {
        self.counters.osc_received += 1;
        if matches!(self.phase, Phase::Stopping { .. }) {
            return;
        }
        let peer = incoming.peer;
        match incoming.packet {
            Err(e) => {
                self.counters.osc_errors += 1;
                let addr = incoming.address.as_deref();
                let addr = addr.unwrap_or(chronus_osc::UNDECODABLE_ADDR);
                self.reply(&peer, chronus_osc::fail(addr, &e.to_string()));
            }
            Ok(OscPacket::Message(message)) => self.on_messages(peer, None, vec![message]),
            Ok(OscPacket::Bundle(bundle)) => self.on_bundle(peer, bundle),
        }
    }

    /// A bundle's messages take effect together at its timetag's frame; nested
    /// bundles carry their own timetags.
    fn on_bundle(&mut self, from: Peer, bundle: chronus_osc::OscBundle) {
        let mut min_frame = self.timetag_frame(bundle.timetag);
        let frontier = self.region.header().frontier.frame.load(Ordering::Acquire);
        let mut late_s = None;
        if let Some(frame) = min_frame
            && frame < frontier
        {
            // Too late to be sample-accurate: say so, then run it at once or drop it.
            self.counters.osc_late += 1;
            let late = (frontier - frame) as f64 / f64::from(self.config.audio.sample_rate);
            self.broadcast(chronus_osc::message(
                chronus_osc::LATE_ADDR,
                vec![OscType::Float(late as f32)],
            ));
            min_frame = None;
            late_s = Some(late);
        }
        let mut messages = Vec::new();
        for packet in bundle.content {
            match packet {
                OscPacket::Message(m) => messages.push(m),
                OscPacket::Bundle(inner) => self.on_bundle(from, inner),
            }
        }
        if let Some(late) = late_s
            && self.config.osc.late_bundles == chronus_config::LateBundles::Drop
        {
            let reason =
                format!("bundle arrived {late:.3} s late; dropped (osc.late_bundles = drop)");
            for m in messages {
                self.reply(&from, chronus_osc::fail(&m.addr, &reason));
            }
            return;
        }
        self.on_messages(from, min_frame, messages);
    }

    /// Handles messages that arrived together: system requests at once, audio
    /// commands as one group.
    fn on_messages(&mut self, from: Peer, min_frame: Option<u64>, messages: Vec<OscMessage>) {
        let mut group = Group {
            min_frame: min_frame.unwrap_or(0),
            commands: Vec::new(),
        };
        // A sync waits for the commands that came with it, so it is handled after them.
        let mut syncs = Vec::new();
        for message in messages {
            let requests =
                match control::parse(&message, self.config.engine.num_voices, &self.namespace) {
                    Ok(requests) => requests,
                    Err(reason) => {
                        self.counters.osc_errors += 1;
                        self.reply(&from, chronus_osc::fail(&message.addr, &reason));
                        continue;
                    }
                };
            for request in requests {
                match request {
                    control::Request::Command(command, address) => {
                        // Journaled under the address it reached, so a journal replays.
                        let journaled = match address {
                            Some(addr) => OscMessage {
                                addr,
                                args: message.args.clone(),
                            },
                            None => message.clone(),
                        };
                        group.commands.push((*command, Some(journaled)))
                    }
                    sync @ control::Request::Sync(_) => syncs.push((message.clone(), sync)),
                    other => {
                        if self.on_system(from, &message, other) {
                            return;
                        }
                    }
                }
            }
        }
        if !group.commands.is_empty() {
            let addresses: Vec<String> = group
                .commands
                .iter()
                .filter_map(|(_, m)| m.as_ref().map(|m| m.addr.clone()))
                .collect();
            if let Err(reason) = self.submit(group) {
                for addr in addresses {
                    self.reply(&from, chronus_osc::fail(&addr, reason));
                }
            }
        }
        for (message, sync) in syncs {
            self.on_system(from, &message, sync);
        }
    }

    /// The `/chronus/*` namespace. Returns true when the daemon is stopping.
    fn on_system(&mut self, from: Peer, message: &OscMessage, request: control::Request) -> bool {
        match request {
            control::Request::Status => {
                let reply = status::reply(self);
                self.reply(&from, reply);
            }
            control::Request::Version => self.reply(
                &from,
                chronus_osc::message(
                    chronus_osc::VERSION_REPLY_ADDR,
                    vec![OscType::String(env!("CARGO_PKG_VERSION").into())],
                ),
            ),
            control::Request::Notify(on) => {
                let result = if on {
                    self.subscribers.subscribe(from, Instant::now()).map(|_| ())
                } else {
                    self.subscribers.unsubscribe(&from);
                    Ok(())
                };
                match result {
                    Ok(()) => {
                        self.reply(&from, chronus_osc::done(chronus_osc::NOTIFY_ADDR, vec![]))
                    }
                    Err(e) => self.reply(
                        &from,
                        chronus_osc::fail(chronus_osc::NOTIFY_ADDR, &e.to_string()),
                    ),
                }
            }
            control::Request::Sync(id) => {
                // Every command accepted before this one, published or still queued.
                let queued: usize = self.backlog.iter().map(|g| g.commands.len()).sum();
                let through = self.region.log().tail() + queued as u64;
                self.syncs.push((from, id, through));
            }
            control::Request::KillWorker(which) => {
                let active = self.active_slot();
                let slot = match which {
                    control::Which::Active => active,
                    control::Which::Standby => (0..SLOTS).find(|&i| i != active).unwrap_or(active),
                };
                match self.slots[slot].state.pid() {
                    Some(pid) => {
                        tracing::info!(slot, pid, "killing a worker on request (drill)");
                        process::signal(pid, Signal::SIGKILL);
                        self.reply(
                            &from,
                            chronus_osc::done(
                                chronus_osc::KILL_WORKER_ADDR,
                                vec![OscType::Int(pid as i32)],
                            ),
                        );
                    }
                    None => self.reply(
                        &from,
                        chronus_osc::fail(&message.addr, "that slot has no worker right now"),
                    ),
                }
            }
            control::Request::Quit => {
                // Only from this machine, or from a sender the allowlist names.
                let ip = from.addr().ip();
                if ip.is_loopback() || self.config.osc.allow.iter().any(|net| net.contains(ip)) {
                    tracing::info!(%from, "stopping on /chronus/quit");
                    self.begin_stop();
                    return true;
                }
                self.reply(
                    &from,
                    chronus_osc::fail(
                        &message.addr,
                        "quit is accepted only from this machine or from osc.allow",
                    ),
                );
            }
            control::Request::Speech(request) => self.on_speech(from, request),
            control::Request::Engine(request) => self.on_engine(from, request),
            control::Request::Pattern(request) => self.on_pattern(from, request),
            control::Request::Command(..) => unreachable!("commands are grouped by the caller"),
        }
        false
    }

    /// `/engine/*` queries and recording, and `/seq/status`.
    fn on_engine(&mut self, from: Peer, request: control::Engine) {
        let mirror = self.ledger.mirror();
        let reply = match request {
            control::Engine::Status => engine::status(
                mirror,
                self.config.audio.sample_rate,
                self.takes.current.is_some(),
            ),
            control::Engine::List => engine::list(self.config.engine.num_voices),
            control::Engine::Schema => engine::schema(),
            control::Engine::SeqStatus => engine::seq_status(mirror),
            control::Engine::RecordStatus => {
                let (written, dropped) = self.output.as_ref().map_or((0, 0), |o| {
                    (o.takes().written_frames(), o.takes().dropped_frames())
                });
                let last = self.takes.last.as_ref();
                engine::record_status(
                    self.takes.current.is_some(),
                    last.map(|(path, _)| path.as_path()),
                    last.map_or(0, |(_, start)| *start),
                    written,
                    dropped,
                )
            }
            control::Engine::RecordStart(name) => {
                let Some(output) = &self.output else {
                    return self.reply(
                        &from,
                        chronus_osc::fail(
                            engine::RECORD_START_ADDR,
                            "the audio output is not open yet",
                        ),
                    );
                };
                match engine::recording_name(name.as_deref(), std::time::SystemTime::now()) {
                    Ok(name) => {
                        output
                            .takes()
                            .request_start(self.config.engine.recordings_dir.join(name));
                        self.takes
                            .pending
                            .push_back((from, engine::RECORD_START_ADDR));
                    }
                    Err(reason) => {
                        self.counters.osc_errors += 1;
                        self.reply(&from, chronus_osc::fail(engine::RECORD_START_ADDR, &reason));
                    }
                }
                return;
            }
            control::Engine::RecordStop => {
                match &self.output {
                    Some(output) => {
                        output.takes().request_stop();
                        self.takes
                            .pending
                            .push_back((from, engine::RECORD_STOP_ADDR));
                    }
                    None => self.reply(
                        &from,
                        chronus_osc::fail(engine::RECORD_STOP_ADDR, "no recording is running"),
                    ),
                }
                return;
            }
        };
        self.reply(&from, reply);
    }

    /// Answers `/engine/record/start|stop` as the takes writer reports on them.
    fn takes_tick(&mut self) {
        while let Some(event) = self.output.as_ref().and_then(|o| o.takes().poll()) {
            let answer = match event {
                TakeEvent::Aborted { path, reason } => {
                    tracing::error!(path = %path.display(), "recording stopped: cannot write: {reason}");
                    self.takes.current = None;
                    continue;
                }
                TakeEvent::Started { path, start_frame } => {
                    tracing::info!(path = %path.display(), start_frame, "recording started");
                    let done = vec![
                        OscType::String(path.display().to_string()),
                        OscType::Long(start_frame as i64),
                    ];
                    self.takes.last = Some((path.clone(), start_frame));
                    self.takes.current = Some(path);
                    Ok(done)
                }
                TakeEvent::Stopped {
                    path,
                    frames,
                    dropped,
                    ..
                } => {
                    tracing::info!(path = %path.display(), frames, dropped, "recording stopped");
                    self.takes.current = None;
                    Ok(vec![
                        OscType::String(path.display().to_string()),
                        OscType::Long(frames as i64),
                        OscType::Long(dropped as i64),
                    ])
                }
                TakeEvent::Failed { reason } => Err(reason),
            };
            let Some((peer, addr)) = self.takes.pending.pop_front() else {
                continue;
            };
            match answer {
                Ok(args) => self.reply(&peer, chronus_osc::done(addr, args)),
                Err(reason) => {
                    self.counters.osc_errors += 1;
                    self.reply(&peer, chronus_osc::fail(addr, &reason));
                }
            }
        }
    }

    fn reply(&self, to: &Peer, packet: OscPacket) {
        if let Err(e) = self.replier.send(to, &packet) {
            tracing::debug!(%to, error = %e, "cannot send OSC reply");
        }
    }

    /// Pushes an event to every `/chronus/notify` subscriber.
    fn broadcast(&mut self, event: OscPacket) {
        if !self.subscribers.is_empty() {
            self.subscribers.broadcast(&self.replier, &event);
        }
    }

    /// Tells subscribers what changed since the last tick, and answers syncs
    /// whose commands have all been played.
    fn announce(&mut self) {
        for slot in 0..SLOTS {
            let state = self.slots[slot].state;
            if self.announced.0[slot] != state.name() {
                self.announced.0[slot] = state.name();
                let pid = state.pid().unwrap_or(0) as i32;
                self.broadcast(chronus_osc::message(
                    "/chronus/worker",
                    vec![
                        OscType::Int(slot as i32),
                        OscType::Int(pid),
                        OscType::String(state.name().into()),
                    ],
                ));
            }
        }
        let underrun = self
            .region
            .header()
            .clock
            .underrun_frames
            .load(Ordering::Relaxed);
        if underrun != self.announced.1 {
            let new = underrun - self.announced.1;
            self.announced.1 = underrun;
            self.broadcast(chronus_osc::message(
                "/chronus/underrun",
                vec![OscType::Long(new as i64)],
            ));
        }
        let settled_below = self
            .ledger
            .oldest_unsettled()
            .unwrap_or(self.region.log().tail());
        // Queued commands get sequence numbers at or past the tail, so this also
        // waits for them.
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.syncs)
            .into_iter()
            .partition(|(_, _, through)| settled_below >= *through);
        self.syncs = waiting;
        for (peer, id, _) in done {
            self.reply(
                &peer,
                chronus_osc::message(chronus_osc::SYNCED_ADDR, vec![id]),
            );
        }
    }
}

/// Commands published together: one frame for all of them.
struct Group {
    min_frame: u64,
    commands: Vec<(Command, Option<OscMessage>)>,
}

impl Group {
    fn now(commands: Vec<(Command, Option<OscMessage>)>) -> Group {
        Group {
            min_frame: 0,
            commands,
        }
    }
}
