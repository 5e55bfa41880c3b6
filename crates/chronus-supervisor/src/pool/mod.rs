//! The worker pool: which worker holds which slot, and every decision about them
//! (spawn, reap, fail over, restore by fork, compare checksums, promote, cold start).
//!
//! The pool decides; a [`Host`] acts (processes, the shared region). Every decision
//! the rest of the daemon must know about comes out as a [`PoolEvent`], so the pool
//! can be driven as a state machine in tests without a process or a region.

mod host;
mod slots;
#[cfg(test)]
mod tests;

pub use host::RegionHost;
pub use slots::State;

use crate::process::ExitCause;
use chronus_shm::SLOTS;
use slots::Slot;
use std::io;
use std::time::{Duration, Instant};

/// A worker that lived this long before faulting starts a fresh crash count.
const FAULT_AMNESTY: Duration = Duration::from_secs(10);
/// A fresh worker must render its first block within this.
pub const STARTUP_GRACE: Duration = Duration::from_secs(5);
/// A fork copy must claim its slot within this.
const FORK_TIMEOUT: Duration = Duration::from_secs(1);
/// Blocks compared equal before a worker counts as in lockstep.
const LOCKSTEP_MATCHES: u32 = 2;

/// What the pool reads of a slot in the shared region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotView {
    /// The pid that last claimed the slot (0 for none).
    pub claimed_pid: u32,
    /// The claimant has rendered its first block.
    pub rendering: bool,
    pub heartbeat: u64,
    /// First frame the claimant rendered.
    pub first_frame: u64,
    /// Frames rendered up to (exclusive).
    pub rendered: u64,
}

/// Everything the pool does to the world, so tests can stand in for it.
pub trait Host {
    /// Starts a fresh worker in `slot` (from the cold-start snapshot) and watches it.
    fn spawn(&mut self, slot: usize) -> io::Result<u32>;
    /// Writes the cold-start snapshot; returns its block-aligned start frame.
    fn prepare_cold_start(&mut self) -> io::Result<u64>;
    /// Watches an adopted worker (a fork copy) for its exit.
    fn watch(&mut self, pid: u32);
    fn kill(&mut self, pid: u32);
    /// Asks the worker in `source` to fork a copy of itself into `target`.
    fn request_fork(&mut self, source: usize, target: usize);
    /// Withdraws a fork request left with the worker in `slot`.
    fn cancel_fork(&mut self, slot: usize);
    fn view(&self, slot: usize) -> SlotView;
    /// The checksum of the block at `frame` in `slot`'s ring and the command-log
    /// cursor it was rendered with, if the ring holds it.
    fn checksum(&self, slot: usize, frame: u64) -> Option<(u64, u64)>;
    /// Whether a block ending before `end`, rendered with `cursor`, holds every
    /// command published so far that is stamped inside it (see `CmdLog::fresh`).
    fn fresh(&self, cursor: u64, end: u64) -> bool;
    fn play_frame(&self) -> u64;
    fn active_slot(&self) -> usize;
    fn set_active_slot(&mut self, slot: usize);
    /// Which rings the callback may fall back to (bit per slot).
    fn set_readable(&mut self, mask: u32);
    fn is_live_child(&self, pid: u32) -> bool;
    /// Reaps exited children without blocking: `known` first, then any other.
    fn reap(&mut self, known: &[u32]) -> Vec<(u32, ExitCause)>;
}

/// Why a worker was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    Exited(ExitCause),
    /// Its heartbeat stopped (or it never rendered); killed.
    Hung,
    /// Its blocks disagreed with the active slot's; killed.
    Diverged,
}

impl Loss {
    /// A fault of the worker's own, counted towards its restart backoff.
    pub fn is_fault(self) -> bool {
        match self {
            Loss::Exited(cause) => cause.is_fault(),
            Loss::Hung | Loss::Diverged => true,
        }
    }
}

/// What the pool did, for logs, counters and subscribers.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolEvent {
    /// The callback now reads `to` first: `from` was lost.
    Failover {
        from: usize,
        to: usize,
    },
    Lost {
        slot: usize,
        pid: u32,
        loss: Loss,
        backoff: Duration,
    },
    /// A worker took `slot` (spawned, or a fork copy that claimed it).
    Adopted {
        slot: usize,
        pid: u32,
    },
    /// A fork copy never claimed `slot`; it will be asked again.
    ForkStalled {
        slot: usize,
    },
    /// `slot` is back in lockstep `ms` after its loss.
    Restored {
        slot: usize,
        pid: u32,
        ms: f64,
    },
    /// The slots disagreed at `frame`; `victim` (the standby) is replaced.
    Diverged {
        frame: u64,
        active: usize,
        victim: Option<usize>,
    },
    ColdStarted {
        start_frame: u64,
    },
    ColdStartFailed {
        error: String,
    },
    /// A process claimed `slot` without being given it, and was killed.
    StrayKilled {
        slot: usize,
        pid: u32,
    },
    /// A child that is not a worker was reaped.
    Reaped {
        pid: u32,
        cause: ExitCause,
    },
}

/// Counters reported in status.
#[derive(Clone, Debug, Default)]
pub struct PoolCounters {
    pub failovers: u64,
    pub restores: u64,
    pub last_restore_ms: f64,
    pub last_exit_mono_ns: u64,
    pub divergences: u64,
    pub cold_starts: u64,
    pub hangs: u64,
    pub faults: u64,
}

/// The settings the pool runs by; the worker ones change on reload.
#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    pub block_frames: u64,
    /// Frames each ring holds.
    pub ring_frames: u64,
    pub hang_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

pub struct Pool {
    slots: [Slot; SLOTS],
    config: PoolConfig,
    /// Next block start to compare between slots.
    compare_from: u64,
    /// Shutting down: lost workers are not replaced.
    stopping: bool,
    pub counters: PoolCounters,
    events: Vec<PoolEvent>,
}

impl Pool {
    pub fn new(config: PoolConfig, now: Instant) -> Pool {
        Pool {
            slots: std::array::from_fn(|_| Slot::new(now)),
            config,
            compare_from: 0,
            stopping: false,
            counters: PoolCounters::default(),
            events: Vec::new(),
        }
    }

    pub fn set_config(&mut self, config: PoolConfig) {
        self.config = config;
    }

    /// What happened since the last call.
    pub fn drain_events(&mut self) -> Vec<PoolEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn state(&self, slot: usize) -> State {
        self.slots[slot].state
    }

    pub fn pid(&self, slot: usize) -> Option<u32> {
        self.slots[slot].state.pid()
    }

    /// Slots with a worker process (alive as far as the pool knows).
    pub fn live_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..SLOTS).filter(|&i| self.slots[i].state.pid().is_some())
    }

    pub fn lockstep_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, State::Lockstep { .. }))
            .count()
    }

    /// The longest restart delay currently applied.
    pub fn backoff(&self) -> Duration {
        self.slots
            .iter()
            .map(|s| s.backoff)
            .max()
            .unwrap_or_default()
    }

    /// Starts fresh workers in every slot from the parameter mirror.
    pub fn cold_start(&mut self, host: &mut impl Host, now: Instant) -> io::Result<()> {
        let start = host.prepare_cold_start()?;
        self.compare_from = start;
        for slot in 0..SLOTS {
            let pid = host.spawn(slot)?;
            self.adopt(host, slot, State::Starting { pid, since: now }, now);
        }
        self.events
            .push(PoolEvent::ColdStarted { start_frame: start });
        Ok(())
    }

    fn adopt(&mut self, host: &impl Host, slot: usize, state: State, now: Instant) {
        let s = &mut self.slots[slot];
        s.state = state;
        s.heartbeat = (host.view(slot).heartbeat, now);
        s.matches = 0;
        s.born = now;
        if let Some(pid) = state.pid() {
            self.events.push(PoolEvent::Adopted { slot, pid });
        }
    }

    fn slot_of(&self, pid: u32) -> Option<usize> {
        (0..SLOTS).find(|&i| self.slots[i].state.pid() == Some(pid))
    }

    /// A worker's exit was noticed at `at` (its pidfd), or `None` for SIGCHLD:
    /// reaps every exited child and handles each lost worker among them.
    pub fn on_exit(
        &mut self,
        host: &mut impl Host,
        noticed: Option<(u32, Instant, u64)>,
        now: Instant,
    ) {
        if let Some((pid, _, mono_ns)) = noticed
            && self.slot_of(pid).is_some()
        {
            self.counters.last_exit_mono_ns = mono_ns;
        }
        let workers: Vec<u32> = self.live_slots().filter_map(|i| self.pid(i)).collect();
        for (pid, cause) in host.reap(&workers) {
            let Some(slot) = self.slot_of(pid) else {
                self.events.push(PoolEvent::Reaped { pid, cause });
                continue;
            };
            let at = match noticed {
                Some((watched, at, _)) if watched == pid => at,
                // SIGCHLD, or another pidfd, beat this worker's watcher.
                _ => {
                    self.counters.last_exit_mono_ns = chronus_shm::monotonic_ns();
                    now
                }
            };
            self.lost(host, slot, Loss::Exited(cause), at);
        }
    }

    /// A worker died, hung or diverged at `at`: fail over, then restore.
    fn lost(&mut self, host: &mut impl Host, slot: usize, loss: Loss, at: Instant) {
        let Some(pid) = self.slots[slot].state.pid() else {
            return;
        };
        if self.stopping {
            self.slots[slot].state = State::Dead {
                retry_at: at + Duration::from_secs(3600),
            };
            return;
        }
        let fault = loss.is_fault();
        let s = &mut self.slots[slot];
        if at.duration_since(s.born) > FAULT_AMNESTY {
            s.faults = 0;
        }
        s.faults = if fault { s.faults + 1 } else { 0 };
        let backoff = self.backoff_for(self.slots[slot].faults);
        let s = &mut self.slots[slot];
        s.backoff = backoff;
        s.state = State::Dead {
            retry_at: at + backoff,
        };
        s.restore_since = Some(at);
        match loss {
            Loss::Exited(cause) if cause.is_fault() => self.counters.faults += 1,
            Loss::Hung => self.counters.hangs += 1,
            _ => {}
        }
        self.events.push(PoolEvent::Lost {
            slot,
            pid,
            loss,
            backoff,
        });
        if host.active_slot() == slot
            && let Some(next) = self.lockstep_slot()
        {
            host.set_active_slot(next);
            self.counters.failovers += 1;
            self.events.push(PoolEvent::Failover {
                from: slot,
                to: next,
            });
        }
        self.refresh_readable(host);
        host.cancel_fork(slot);
        // A fork requested from the lost worker will never arrive.
        for other in &mut self.slots {
            if let State::Forking { source, .. } = other.state
                && source == slot
            {
                other.state = State::Dead { retry_at: at };
            }
        }
        self.restore(host, at);
    }

    fn lockstep_slot(&self) -> Option<usize> {
        (0..SLOTS).find(|&i| matches!(self.slots[i].state, State::Lockstep { .. }))
    }

    fn backoff_for(&self, faults: u32) -> Duration {
        if faults < 2 {
            return Duration::ZERO;
        }
        let min = self.config.backoff_min.as_millis() as u64;
        let max = self.config.backoff_max.as_millis() as u64;
        Duration::from_millis(min.saturating_mul(1 << (faults - 2).min(20)).min(max))
    }

    /// Brings dead slots back: a fork of a lockstep survivor, or a cold start of all.
    fn restore(&mut self, host: &mut impl Host, now: Instant) {
        if self.stopping {
            return;
        }
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
                if let Err(e) = self.cold_start(host, now) {
                    self.events.push(PoolEvent::ColdStartFailed {
                        error: e.to_string(),
                    });
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
            let Some(source) = self.lockstep_slot() else {
                continue;
            };
            let old_pid = host.view(slot).claimed_pid;
            host.request_fork(source, slot);
            self.slots[slot].state = State::Forking {
                source,
                since: now,
                old_pid,
            };
        }
    }

    /// Periodic work: notices forks, first blocks and hangs, compares the slots,
    /// restores what is due and publishes which rings are readable.
    pub fn tick(&mut self, host: &mut impl Host, now: Instant) {
        self.observe(host, now);
        self.compare(host, now);
        self.restore(host, now);
        self.refresh_readable(host);
    }

    fn observe(&mut self, host: &mut impl Host, now: Instant) {
        for slot in 0..SLOTS {
            let view = host.view(slot);
            self.evict_stray(host, slot, view.claimed_pid);
            match self.slots[slot].state {
                State::Forking { since, old_pid, .. } => {
                    let pid = view.claimed_pid;
                    if pid != 0 && pid != old_pid {
                        host.watch(pid);
                        self.adopt(host, slot, State::Syncing { pid }, now);
                    } else if now - since > FORK_TIMEOUT {
                        self.events.push(PoolEvent::ForkStalled { slot });
                        self.slots[slot].state = State::Dead { retry_at: now };
                    }
                }
                State::Starting { pid, since } => {
                    if view.claimed_pid == pid && view.rendering {
                        self.slots[slot].state = State::Syncing { pid };
                        self.slots[slot].heartbeat = (view.heartbeat, now);
                    } else if now - since > STARTUP_GRACE {
                        host.kill(pid);
                        self.lost(host, slot, Loss::Hung, now);
                    }
                }
                State::Syncing { pid } | State::Lockstep { pid } => {
                    if view.heartbeat != self.slots[slot].heartbeat.0 {
                        self.slots[slot].heartbeat = (view.heartbeat, now);
                    } else if now - self.slots[slot].heartbeat.1 > self.config.hang_timeout {
                        host.kill(pid);
                        self.lost(host, slot, Loss::Hung, now);
                    }
                }
                State::Dead { .. } => {}
            }
        }
    }

    /// Kills a process that claims `slot` without the pool having given it the slot
    /// (a fork copy whose request was overtaken by its source's death): two writers
    /// must never share a ring.
    fn evict_stray(&mut self, host: &mut impl Host, slot: usize, claimed: u32) {
        let expected = match self.slots[slot].state {
            State::Forking { .. } => return,
            state => state.pid(),
        };
        if claimed == 0 || Some(claimed) == expected || self.slot_of(claimed).is_some() {
            return;
        }
        if host.is_live_child(claimed) {
            host.kill(claimed);
            self.events
                .push(PoolEvent::StrayKilled { slot, pid: claimed });
        }
    }

    /// Compares block checksums of the rendering slots: proof of lockstep. Only
    /// blocks both fresh, judged after both are read: one worker may have rendered
    /// a block again for a command the other has not read yet.
    fn compare(&mut self, host: &mut impl Host, now: Instant) {
        let rendering: Vec<usize> = (0..SLOTS)
            .filter(|&i| self.slots[i].state.is_rendering())
            .collect();
        let bf = self.config.block_frames;
        if let [a, b] = rendering[..] {
            let (va, vb) = (host.view(a), host.view(b));
            let first = va.first_frame.max(vb.first_frame);
            let to = va.rendered.min(vb.rendered);
            let mut frame = self
                .compare_from
                .max(first)
                .max(to.saturating_sub(self.config.ring_frames / 2));
            frame = frame.div_ceil(bf) * bf;
            while frame + bf <= to {
                if let (Some((x, cx)), Some((y, cy))) =
                    (host.checksum(a, frame), host.checksum(b, frame))
                    && host.fresh(cx, frame + bf)
                    && host.fresh(cy, frame + bf)
                {
                    if x == y {
                        for i in [a, b] {
                            self.slots[i].matches += 1;
                        }
                    } else {
                        self.diverged(host, frame, now);
                        return;
                    }
                }
                frame += bf;
            }
            self.compare_from = frame;
            for i in [a, b] {
                self.promote_if_proven(host, i, now);
            }
        } else if let [only] = rendering[..]
            && self
                .slots
                .iter()
                .all(|s| s.state.is_rendering() || matches!(s.state, State::Dead { .. }))
        {
            // A lone worker whose peer died has nobody to match.
            let v = host.view(only);
            if v.rendered.saturating_sub(v.first_frame) >= bf * u64::from(LOCKSTEP_MATCHES) {
                self.slots[only].matches = LOCKSTEP_MATCHES;
                self.promote_if_proven(host, only, now);
            }
        }
    }

    fn promote_if_proven(&mut self, host: &mut impl Host, slot: usize, now: Instant) {
        let first_frame = host.view(slot).first_frame;
        let s = &mut self.slots[slot];
        if let State::Syncing { pid } = s.state
            && s.matches >= LOCKSTEP_MATCHES
        {
            s.state = State::Lockstep { pid };
            if s.distrust_until == u64::MAX {
                // Diverged blocks end where this proven occupant's own begin.
                s.distrust_until = first_frame;
            }
            if let Some(since) = s.restore_since.take() {
                let ms = (now - since).as_secs_f64() * 1e3;
                self.counters.restores += 1;
                self.counters.last_restore_ms = ms;
                self.events.push(PoolEvent::Restored { slot, pid, ms });
            }
            self.refresh_readable(host);
        }
    }

    /// Two slots disagree on a block: keep the active one, replace the other.
    fn diverged(&mut self, host: &mut impl Host, frame: u64, now: Instant) {
        self.counters.divergences += 1;
        let active = host.active_slot();
        let victim = (0..SLOTS).find(|&i| i != active && self.slots[i].state.pid().is_some());
        self.events.push(PoolEvent::Diverged {
            frame,
            active,
            victim,
        });
        if let Some(victim) = victim
            && let Some(pid) = self.slots[victim].state.pid()
        {
            self.slots[victim].distrust_until = u64::MAX;
            host.kill(pid);
            self.lost(host, victim, Loss::Diverged, now);
        }
    }

    /// Publishes which rings the callback may fall back to, and keeps the active
    /// slot on a worker in lockstep.
    fn refresh_readable(&self, host: &mut impl Host) {
        let play = host.play_frame();
        let mask = (0..SLOTS)
            .filter(|&i| play >= self.slots[i].distrust_until)
            .fold(0u32, |m, i| m | 1 << i);
        host.set_readable(mask);
        let active = host.active_slot();
        if !self.slots[active].state.is_rendering()
            && let Some(next) = self.lockstep_slot()
        {
            host.set_active_slot(next);
        }
    }

    /// From now on, lost workers are not replaced (the daemon is stopping).
    pub fn begin_stop(&mut self) {
        self.stopping = true;
    }

    /// The pids of every worker, for shutdown; every slot is dead afterwards.
    pub fn take_all(&mut self, now: Instant) -> Vec<u32> {
        self.stopping = true;
        let pids = self.live_slots().filter_map(|i| self.pid(i)).collect();
        for s in &mut self.slots {
            s.state = State::Dead { retry_at: now };
        }
        pids
    }
}
