//! The supervisor's view of each worker slot.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum State {
    /// No worker; restore when `retry_at` has passed.
    Dead { retry_at: Instant },
    /// Asked the worker in `source` to fork a copy into this slot.
    Forking {
        source: usize,
        since: Instant,
        old_pid: u32,
    },
    /// A worker exists but has not rendered yet.
    Starting { pid: u32, since: Instant },
    /// Rendering; not yet proven bit-identical to its peer.
    Syncing { pid: u32 },
    /// Rendering and proven bit-identical.
    Lockstep { pid: u32 },
}

impl State {
    pub fn pid(&self) -> Option<u32> {
        match *self {
            State::Starting { pid, .. } | State::Syncing { pid } | State::Lockstep { pid } => {
                Some(pid)
            }
            State::Dead { .. } | State::Forking { .. } => None,
        }
    }

    /// The names `/chronus/status` reports.
    pub fn name(&self) -> &'static str {
        match self {
            State::Dead { .. } => "dead",
            State::Forking { .. } | State::Starting { .. } => "starting",
            State::Syncing { .. } => "syncing",
            State::Lockstep { .. } => "lockstep",
        }
    }

    pub fn is_rendering(&self) -> bool {
        matches!(self, State::Syncing { .. } | State::Lockstep { .. })
    }
}

pub struct Slot {
    pub state: State,
    /// Last heartbeat value seen and when it last changed.
    pub heartbeat: (u64, Instant),
    /// When the loss that this slot is being restored from was noticed.
    pub restore_since: Option<Instant>,
    /// Consecutive deaths by fault or hang, for backoff; forgiven after a long life.
    pub faults: u32,
    /// When the current worker was adopted.
    pub born: Instant,
    /// Restart delay applied after the last loss.
    pub backoff: Duration,
    /// Blocks compared equal with the peer since this worker started.
    pub matches: u32,
    /// The callback may read this slot's ring only once the device has played
    /// up to this frame: 0 normally, raised when the ring held diverged blocks.
    /// Blocks left by a dead worker stay readable: they were proven when written.
    pub distrust_until: u64,
}

impl Slot {
    pub fn new(now: Instant) -> Slot {
        Slot {
            state: State::Dead { retry_at: now },
            heartbeat: (0, now),
            restore_since: None,
            faults: 0,
            born: now,
            backoff: Duration::ZERO,
            matches: 0,
            distrust_until: 0,
        }
    }
}
