//! The daemon's loop: one thread, one closed [`Event`] enum, owners with narrow
//! interfaces. The loop never blocks: file I/O runs on the storage and journal
//! threads, device I/O on the audio and takes threads, and every client-facing
//! limit is shared per client.

use crate::clients::Clients;
use crate::event::{Event, Sources, StorageError};
use crate::notify::Notifier;
use crate::pool::{Loss, Pool, PoolConfig, PoolEvent, RegionHost, STARTUP_GRACE};
use crate::publisher::{Group, Publisher, Refusal};
use crate::router::{self, engine::Takes};
use crate::storage::{Outcome, Storage};
use crate::{RunOptions, SupervisorError, capture, limits, process, speech, viz};
use chronus_audio::{DeviceEvent, Output};
use chronus_config::Config;
use chronus_dsp::Command;
use chronus_osc::{OscType, TcpEndpoint, UdpEndpoint};
use chronus_shm::{Region, SLOTS};
use crossbeam_channel::Sender;
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const FADE_SECONDS: f32 = 0.05;
const STOP_GRACE: Duration = Duration::from_millis(300);
/// How often systemd's STATUS= line is refreshed.
const STATUS_INTERVAL: Duration = Duration::from_millis(250);
/// Storage failures of one kind are logged and announced at most this often.
const STORAGE_REPORT_INTERVAL: Duration = Duration::from_secs(1);

pub enum Phase {
    Starting {
        since: Instant,
    },
    Running,
    /// Fading out; stop when the device has played `until` (`None` while the fade
    /// waits behind other commands to be published) or at `deadline`.
    Stopping {
        until: Option<u64>,
        deadline: Instant,
    },
}

/// Storage failures: counted, and reported as they happen, at most once a second
/// per kind (the count of the quieted ones goes with the next report).
#[derive(Default)]
pub struct StorageErrors {
    count: u64,
    /// Per kind: when last reported, and how many failures since.
    reported: HashMap<String, (Instant, u64)>,
}

impl StorageErrors {
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Counts a failure; `Some(quieted)` when it should be reported now.
    fn record(&mut self, what: &str, now: Instant) -> Option<u64> {
        self.count += 1;
        match self.reported.get_mut(what) {
            Some((last, quieted)) if now - *last < STORAGE_REPORT_INTERVAL => {
                *quieted += 1;
                None
            }
            Some((last, quieted)) => {
                *last = now;
                Some(std::mem::take(quieted))
            }
            None => {
                self.reported.insert(what.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

/// The daemon's owners, and the state only the loop holds.
pub struct Daemon {
    pub config: Config,
    /// The device buffer asked of the sound system (see `timing`).
    pub buffer_frames: u32,
    pub options: RunOptions,
    pub region: Arc<Region>,
    pub region_fd: OwnedFd,
    /// For threads that report back (pidfd watchers, speech answers).
    pub events: Sender<Event>,
    pub pool: Pool,
    pub publisher: Publisher,
    pub clients: Clients,
    pub storage: Storage,
    pub desk: speech::Desk,
    /// The speech-recognition input device.
    pub input: capture::Input,
    pub takes: Takes,
    pub osc: UdpEndpoint,
    pub tcp: TcpEndpoint,
    pub gate: Arc<limits::SenderGate>,
    /// Every concrete audio address, for OSC address patterns.
    pub namespace: Vec<String>,
    pub started: Instant,
    pub phase: Phase,
    pub backend: &'static str,
    pub output: Option<Output>,
    pub storage_errors: StorageErrors,
    notifier: Notifier,
    ready_sent: bool,
    /// When STATUS= was last considered.
    status_sent: Instant,
    viz: viz::Viz,
    /// What subscribers were last told about each slot, and the underrun count.
    /// Each slot's last announced state and pid (a restore can replace a worker
    /// between two ticks: the new pid is announced even if the state name is the
    /// same), and the underrun count.
    announced: ([(&'static str, u32); SLOTS], u64),
    stream_errors: u64,
    /// When stream errors were last logged (at most once a second).
    stream_errors_logged: Option<Instant>,
    /// Times the audio device was lost.
    pub device_losses: u64,
    /// Why each speech engine last failed, for the line that restarts it.
    pub speech_faults: HashMap<String, String>,
    realtime_warned: bool,
}

/// The pool's hands, borrowed from the daemon's fields for one call.
macro_rules! host {
    ($d:expr) => {
        &mut RegionHost {
            region: &$d.region,
            publisher: &mut $d.publisher,
            worker_exe: &$d.options.worker_exe,
            region_fd: $d.region_fd.as_raw_fd(),
            events: &$d.events,
        }
    };
}

/// The owners `run` builds before the loop starts.
pub struct Parts {
    pub config: Config,
    pub buffer_frames: u32,
    pub options: RunOptions,
    pub region: Arc<Region>,
    pub region_fd: OwnedFd,
    pub events: Sender<Event>,
    pub publisher: Publisher,
    pub clients: Clients,
    pub storage: Storage,
    pub desk: speech::Desk,
    pub input: capture::Input,
    pub osc: UdpEndpoint,
    pub tcp: TcpEndpoint,
    pub gate: Arc<limits::SenderGate>,
}

/// Tells the workers how long they may sleep without a heartbeat: a quarter of the
/// hang timeout, from 2 to 50 ms (they are woken at once for anything else).
pub fn publish_heartbeat(config: &Config, region: &Region) {
    let us = (config.workers.hang_timeout_ms.saturating_mul(250)).clamp(2_000, 50_000);
    region.header().heartbeat_us.store(us, Ordering::Relaxed);
}

pub fn pool_config(config: &Config, region: &Region) -> PoolConfig {
    let bf = u64::from(region.geometry().block_frames);
    let w = &config.workers;
    PoolConfig {
        block_frames: bf,
        ring_frames: u64::from(region.geometry().ring_blocks) * bf,
        hang_timeout: Duration::from_millis(u64::from(w.hang_timeout_ms)),
        backoff_min: Duration::from_millis(u64::from(w.restart_backoff_min_ms)),
        backoff_max: Duration::from_millis(u64::from(w.restart_backoff_max_ms)),
    }
}

impl Daemon {
    pub fn new(parts: Parts) -> Daemon {
        let now = Instant::now();
        let pool = Pool::new(pool_config(&parts.config, &parts.region), now);
        publish_heartbeat(&parts.config, &parts.region);
        Daemon {
            namespace: crate::control::namespace(parts.config.engine.num_voices),
            config: parts.config,
            buffer_frames: parts.buffer_frames,
            options: parts.options,
            region: parts.region,
            region_fd: parts.region_fd,
            events: parts.events,
            pool,
            publisher: parts.publisher,
            clients: parts.clients,
            storage: parts.storage,
            desk: parts.desk,
            input: parts.input,
            takes: Takes::default(),
            osc: parts.osc,
            tcp: parts.tcp,
            gate: parts.gate,
            started: now,
            phase: Phase::Starting { since: now },
            backend: "none",
            output: None,
            storage_errors: StorageErrors::default(),
            notifier: Notifier::from_env(),
            ready_sent: false,
            status_sent: now,
            viz: viz::Viz::new(now),
            announced: ([("starting", 0); SLOTS], 0),
            stream_errors: 0,
            stream_errors_logged: None,
            device_losses: 0,
            speech_faults: HashMap::new(),
            realtime_warned: false,
        }
    }

    pub fn cold_start(&mut self) -> Result<(), SupervisorError> {
        let now = Instant::now();
        self.pool
            .cold_start(host!(self), now)
            .map_err(SupervisorError::Spawn)?;
        self.after_pool();
        Ok(())
    }

    /// Runs until the daemon should exit.
    pub fn run(&mut self, sources: &mut Sources) -> Result<(), SupervisorError> {
        loop {
            if let Some(result) = self.handle(sources.next()) {
                return result;
            }
            sources.set_tick(self.tick_interval());
        }
    }

    /// How often the loop needs its periodic work: often while something is under
    /// way that the tick drives (a restore, a start or stop, syncs or a backlog
    /// waiting, speech playing), seldom otherwise. Failover does not wait for a
    /// tick: a worker's exit is an event of its own.
    fn tick_interval(&self) -> Duration {
        let busy = !matches!(self.phase, Phase::Running)
            || self.pool.lockstep_count() < SLOTS
            || self.publisher.has_backlog()
            || self.publisher.has_syncs()
            || self.desk.playing.is_some()
            || !self.desk.queue.is_empty();
        if busy {
            crate::TICK
        } else {
            crate::idle_tick(Duration::from_millis(u64::from(
                self.config.workers.hang_timeout_ms,
            )))
        }
    }

    /// One event; `Some` when the daemon should exit.
    fn handle(&mut self, event: Event) -> Option<Result<(), SupervisorError>> {
        match event {
            Event::Signal(libc::SIGCHLD) => {
                self.pool.on_exit(host!(self), None, Instant::now());
                self.after_pool();
            }
            Event::Signal(libc::SIGHUP) => self.reload(),
            Event::Signal(sig) => {
                if self.is_stopping() {
                    tracing::warn!("second stop signal: exiting at once");
                    return Some(Ok(()));
                }
                tracing::info!(signal = sig, "stopping");
                self.begin_stop();
            }
            Event::WorkerExited { pid, at, mono_ns } => {
                self.pool
                    .on_exit(host!(self), Some((pid, at, mono_ns)), Instant::now());
                self.after_pool();
            }
            // A quit only starts the fade: the tick ends the loop once it has played.
            Event::Osc(incoming) => {
                router::on_osc(self, incoming);
            }
            Event::Speech(answer) => router::speech::answered(self, answer),
            Event::SpeechEngine(event) => router::speech::engine_event(self, event),
            // Engines' processes are spawned here, on the loop's thread.
            Event::Spawn(job) => job.run(),
            Event::Capture(result) => router::speech::input_opened(self, result),
            Event::Metrics(reply) => {
                let _ = reply.send(crate::metrics::render(&crate::status::figures(self)));
            }
            Event::Stored(done) => {
                self.storage.finished(&done.from);
                match done.outcome {
                    outcome @ Outcome::WavRead { .. } => {
                        router::speech::stored(self, done.from, outcome)
                    }
                    outcome => router::patterns::stored(self, done.from, outcome),
                }
            }
            Event::Storage(StorageError { what, reason }) => self.storage_failed(what, reason),
            Event::Tick(now) => return self.tick(now),
        }
        None
    }

    pub fn is_stopping(&self) -> bool {
        matches!(self.phase, Phase::Stopping { .. })
    }

    /// The slot the callback reads first.
    pub fn active_slot(&self) -> usize {
        self.region
            .header()
            .clock
            .active_slot
            .load(Ordering::Relaxed) as usize
    }

    /// The command-log cursors of the live workers.
    fn cursors(&self) -> Vec<u64> {
        self.pool
            .live_slots()
            .map(|i| self.region.slot(i).cmd_cursor.load(Ordering::Acquire))
            .collect()
    }

    /// The earliest frame a command published now is sure to take effect at
    /// exactly: past where commands are stamped from (workers render in any
    /// frame from there), with room for the publisher to get to it.
    pub fn earliest_exact_frame(&self) -> u64 {
        let bf = u64::from(self.region.geometry().block_frames);
        let margin = 2 * bf + u64::from(self.config.audio.sample_rate) / 100;
        self.region.stamp_base() + margin
    }

    /// Hands a group to the publisher.
    pub fn submit(&mut self, group: Group) -> Result<(), Refusal> {
        let cursors = self.cursors();
        let submitted = self.publisher.submit(group, &cursors);
        self.after_publish();
        submitted
    }

    fn after_publish(&mut self) {
        let speech = self.publisher.take_speech_published();
        if !speech.is_empty() {
            router::speech::published(self, &speech);
        }
    }

    /// Logs and announces what the pool did: each failover, loss, restore, divergence
    /// and cold start is one log line with a stable `id` and its reason, and the same
    /// event goes to subscribers.
    fn after_pool(&mut self) {
        let restoring = self.pool.lockstep_count() < SLOTS;
        self.region
            .header()
            .restoring
            .store(u32::from(restoring), Ordering::Relaxed);
        let int = |v: usize| OscType::Int(v as i32);
        // A failover follows the loss that caused it.
        let mut cause = String::from("unknown");
        for event in self.pool.drain_events() {
            match event {
                PoolEvent::Failover { from, to } => {
                    tracing::warn!(
                        id = "chronus.failover",
                        from,
                        to,
                        reason = cause,
                        "failover: the output now comes from slot {to}"
                    );
                    self.clients.broadcast(chronus_osc::message(
                        "/chronus/failover",
                        vec![int(from), int(to)],
                    ));
                }
                PoolEvent::Lost {
                    slot,
                    pid,
                    loss,
                    backoff,
                } => {
                    let backoff_ms = backoff.as_millis() as u64;
                    cause = match loss {
                        Loss::Exited(cause) => cause.to_string(),
                        Loss::Hung => "hung: no heartbeat".into(),
                        Loss::Diverged => "diverged from the active slot".into(),
                    };
                    let id = "chronus.worker_lost";
                    match loss {
                        Loss::Exited(_) if loss.is_fault() => {
                            tracing::warn!(
                                id,
                                slot,
                                pid,
                                reason = cause,
                                backoff_ms,
                                "worker crashed"
                            )
                        }
                        Loss::Exited(_) => {
                            tracing::info!(id, slot, pid, reason = cause, "worker exited")
                        }
                        Loss::Hung => {
                            tracing::warn!(
                                id,
                                slot,
                                pid,
                                reason = cause,
                                backoff_ms,
                                "worker hung; killed"
                            )
                        }
                        Loss::Diverged => tracing::warn!(
                            id,
                            slot,
                            pid,
                            reason = cause,
                            backoff_ms,
                            "diverged worker killed"
                        ),
                    }
                    self.clients.broadcast(chronus_osc::message(
                        "/chronus/worker_lost",
                        vec![
                            int(slot),
                            OscType::Int(pid as i32),
                            OscType::String(cause.clone()),
                        ],
                    ));
                }
                PoolEvent::Adopted { slot, pid } => tracing::debug!(slot, pid, "worker adopted"),
                PoolEvent::ForkStalled { slot } => {
                    tracing::warn!(slot, "forked worker never appeared; retrying")
                }
                PoolEvent::Restored { slot, pid, ms } => {
                    let restore_ms = (ms * 100.0).round() / 100.0;
                    tracing::info!(
                        id = "chronus.restored",
                        slot,
                        pid,
                        restore_ms,
                        "slot back in lockstep"
                    );
                    self.clients.broadcast(chronus_osc::message(
                        "/chronus/restored",
                        vec![
                            int(slot),
                            OscType::Int(pid as i32),
                            OscType::Float(ms as f32),
                        ],
                    ));
                }
                PoolEvent::Diverged {
                    frame,
                    active,
                    victim,
                } => {
                    tracing::error!(
                        id = "chronus.divergence",
                        frame,
                        active,
                        ?victim,
                        "slots diverged; replacing the standby"
                    );
                    self.clients.broadcast(chronus_osc::message(
                        "/chronus/divergence",
                        vec![
                            OscType::String(frame.to_string()),
                            int(active),
                            OscType::Int(victim.map_or(-1, |v| v as i32)),
                        ],
                    ));
                }
                PoolEvent::ColdStarted { start_frame } => {
                    if self.pool.counters.cold_starts > 0 {
                        tracing::warn!(
                            id = "chronus.cold_start",
                            start_frame,
                            reason = "every worker was gone",
                            "cold-started from the parameter mirror"
                        );
                        self.clients.broadcast(chronus_osc::message(
                            "/chronus/cold_start",
                            vec![OscType::String(start_frame.to_string())],
                        ));
                    } else {
                        tracing::info!(start_frame, "workers cold-started");
                    }
                }
                PoolEvent::ColdStartFailed { error } => {
                    tracing::error!(
                        id = "chronus.cold_start_failed",
                        error,
                        "cold start failed; retrying"
                    )
                }
                PoolEvent::StrayKilled { slot, pid } => tracing::warn!(
                    slot,
                    pid,
                    "killed a worker that claimed a slot it was not given"
                ),
                PoolEvent::Reaped { pid, cause } => tracing::debug!(pid, %cause, "reaped a child"),
            }
        }
    }

    /// A write failed off the loop: counted, logged and announced as it happens
    /// (at most once a second per kind).
    pub fn storage_failed(&mut self, what: String, reason: String) {
        let Some(quieted) = self.storage_errors.record(&what, Instant::now()) else {
            return;
        };
        tracing::error!(what, quieted, "storage failure: {reason}");
        self.clients.broadcast(chronus_osc::message(
            "/chronus/storage/error",
            vec![
                OscType::String(what),
                OscType::String(reason),
                chronus_osc::count(quieted),
            ],
        ));
    }

    // ---- the tick ----------------------------------------------------------

    /// Periodic work; `Some` when the daemon should exit.
    fn tick(&mut self, now: Instant) -> Option<Result<(), SupervisorError>> {
        self.pool.tick(host!(self), now);
        self.after_pool();
        let cursors = self.cursors();
        self.publisher.flush(&cursors);
        self.after_publish();
        let header = self.region.header();
        let play = header.clock.play_frame.load(Ordering::Acquire);
        for (peer, id) in self.publisher.settle(play) {
            self.clients.reply(
                &peer,
                chronus_osc::message(chronus_osc::SYNCED_ADDR, vec![id]),
            );
        }
        router::speech::tick(self, play);
        let active = self.active_slot();
        self.viz
            .tick(now, self.config.viz.target(), &self.region, active);
        self.clients.expire(now);
        self.announce();
        router::engine::poll_takes(self);
        self.watch_output(now);
        let header = self.region.header();
        match self.phase {
            Phase::Starting { since } => {
                let lockstep = self.pool.lockstep_count();
                if lockstep == SLOTS || (lockstep > 0 && now - since > Duration::from_secs(2)) {
                    header.clock.running.store(1, Ordering::Release);
                    self.phase = Phase::Running;
                    tracing::info!(
                        ready_ms = (now - self.started).as_millis() as u64,
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
                        ready_ms = (now - self.started).as_millis() as u64,
                        "audio running, workers in lockstep"
                    );
                    self.notifier.ready(words);
                    self.ready_sent = true;
                }
            }
            Phase::Stopping { until, deadline } => {
                let until = until.or_else(|| self.fade_played());
                self.phase = Phase::Stopping { until, deadline };
                if until.is_some_and(|until| play >= until)
                    || now >= deadline
                    || header.clock.running.load(Ordering::Relaxed) == 0
                {
                    return Some(Ok(()));
                }
            }
        }
        None
    }

    /// Stream errors, the device going and coming back, and the one realtime
    /// warning of a run.
    fn watch_output(&mut self, now: Instant) {
        let Some(output) = &mut self.output else {
            return;
        };
        // Once audio runs, every realtime thread has asked for SCHED_FIFO.
        if !self.realtime_warned && self.ready_sent {
            self.realtime_warned = warn_realtime_denied(&self.region, output);
        }
        let events = output.poll_device();
        let (errors, kind) = output.stream_errors();
        // A dying stream can report errors by the million: one line a second.
        if errors != self.stream_errors
            && self
                .stream_errors_logged
                .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            tracing::warn!(
                errors,
                new = errors - self.stream_errors,
                latest = kind,
                "the audio stream reported errors"
            );
            self.stream_errors = errors;
            self.stream_errors_logged = Some(now);
        }
        let frame = self
            .region
            .header()
            .clock
            .play_frame
            .load(Ordering::Relaxed);
        for event in events {
            match event {
                DeviceEvent::Lost { reason } => {
                    self.device_losses += 1;
                    tracing::warn!(
                        id = "chronus.device_lost",
                        reason,
                        frame,
                        "the audio device is gone; the timeline plays on the null clock until it returns"
                    );
                    self.clients.broadcast(chronus_osc::message(
                        "/chronus/device/lost",
                        vec![OscType::String(reason), OscType::String(frame.to_string())],
                    ));
                }
                DeviceEvent::Back { host, device } => {
                    tracing::info!(
                        id = "chronus.device_back",
                        host,
                        device,
                        frame,
                        "the audio device is back; playing on from the current frame"
                    );
                    self.clients.broadcast(chronus_osc::message(
                        "/chronus/device/back",
                        vec![
                            OscType::String(host.into()),
                            OscType::String(device),
                            OscType::String(frame.to_string()),
                        ],
                    ));
                }
            }
        }
    }

    /// Tells subscribers what changed since the last tick.
    fn announce(&mut self) {
        for slot in 0..SLOTS {
            let state = self.pool.state(slot);
            let now = (state.name(), state.pid().unwrap_or(0));
            if self.announced.0[slot] != now {
                self.announced.0[slot] = now;
                let pid = now.1 as i32;
                self.clients.broadcast(chronus_osc::message(
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
            self.clients.broadcast(chronus_osc::message(
                "/chronus/underrun",
                vec![chronus_osc::count(new)],
            ));
        }
    }

    // ---- lifecycle -----------------------------------------------------------

    pub fn begin_stop(&mut self) {
        self.notifier.stopping();
        self.osc.shutdown();
        self.tcp.shutdown();
        self.pool.begin_stop();
        let now = Instant::now();
        if self.region.header().clock.running.load(Ordering::Acquire) == 0 {
            self.phase = Phase::Stopping {
                until: Some(0),
                deadline: now,
            };
            return;
        }
        let fade = Command::Fade {
            gain: 0.0,
            seconds: FADE_SECONDS,
        };
        let _ = self.submit(Group::now(vec![(fade, None)]));
        self.phase = Phase::Stopping {
            until: self.fade_played(),
            deadline: now + Duration::from_millis(500),
        };
    }

    /// The frame by which the fade has played, once it is published (and so
    /// stamped, no later than where commands are stamped from now).
    fn fade_played(&self) -> Option<u64> {
        if self.publisher.has_backlog() {
            return None;
        }
        let rate = u64::from(self.config.audio.sample_rate);
        Some(
            self.region.stamp_base()
                + (FADE_SECONDS as f64 * rate as f64) as u64
                + u64::from(self.region.geometry().block_frames),
        )
    }

    /// TERM each worker's group, wait a grace, KILL what is left, and reap them all.
    pub fn stop_workers(&mut self) {
        let pids = self.pool.take_all(Instant::now());
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
    }

    /// systemd's STATUS= line: the live state in words.
    fn status_words(&self) -> String {
        let clock = &self.region.header().clock;
        let active = self.active_slot();
        let standby = (0..SLOTS).find(|&i| i != active).unwrap_or(active);
        format!(
            "playing via {}; active slot {active}; standby slot {standby} {}; {} failovers; {} underrun frames",
            match &self.output {
                Some(o) if o.device_lost() => "the null clock (device lost)",
                Some(o) => o.host_name(),
                None => self.backend,
            },
            self.pool.state(standby).name(),
            self.pool.counters.failovers,
            clock.underrun_frames.load(Ordering::Relaxed),
        )
    }

    /// SIGHUP: apply what can change live, name what needs a restart, and keep
    /// the running configuration if the new one is invalid.
    fn reload(&mut self) {
        self.notifier.reloading();
        match (self.options.reload_config)() {
            Err(e) => {
                tracing::error!(
                    id = "chronus.reload_failed",
                    "reload failed; keeping the running configuration: {e}"
                );
                self.clients.broadcast(chronus_osc::message(
                    "/chronus/reload_failed",
                    vec![OscType::String(e)],
                ));
            }
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
                tracing::info!(
                    id = "chronus.reload",
                    "configuration reloaded; applied live: {live}"
                );
                self.clients.broadcast(chronus_osc::message(
                    "/chronus/reloaded",
                    vec![OscType::String(live), OscType::String(restart.join(", "))],
                ));
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
            "speech.asr.transcribe_dir" => {
                c.speech
                    .asr
                    .transcribe_dir
                    .clone_from(&new.speech.asr.transcribe_dir);
            }
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
        if key.starts_with("workers.") {
            self.pool
                .set_config(pool_config(&self.config, &self.region));
            publish_heartbeat(&self.config, &self.region);
        }
        true
    }
}

/// The one warning of a run about threads refused SCHED_FIFO (the audio thread,
/// the workers' render loops); `true` once given.
fn warn_realtime_denied(region: &Region, output: &Output) -> bool {
    let mut denied = region.header().realtime_denied.load(Ordering::Relaxed);
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
