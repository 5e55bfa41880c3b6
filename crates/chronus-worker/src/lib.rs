//! The Chronus worker: a single-threaded process that renders the engine's
//! blocks into its slot's ring, paced by the device clock in shared memory.
//!
//! [`Renderer`] is the deterministic part (also used to check recordings
//! offline); [`run`] is the process around it: heartbeats, pacing, watching
//! the supervisor, and forking a copy of itself into a vacated slot.

mod fork;
mod render;
mod snapshot;

pub use render::Renderer;
pub use snapshot::{PendingCommand, Snapshot};

use chronus_shm::{Region, SlotPhase, futex_wait};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Shm(#[from] chronus_shm::ShmError),
    #[error("cold-start snapshot is unreadable: {0}")]
    Snapshot(String),
    #[error("slot {0} does not exist (slots are 0 and 1)")]
    BadSlot(usize),
    #[error("command log record {0} was overwritten before this worker read it")]
    Lapped(u64),
}

/// Why the worker loop ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// The supervisor is gone: nobody will read the ring.
    Orphaned,
}

/// Longest sleep between loop turns when nothing wakes the worker, unless the
/// supervisor set another (`Header::heartbeat_us`): it bounds heartbeat gaps. The
/// device's callbacks, fork requests and new commands wake it at once.
const MAX_SLEEP: Duration = Duration::from_millis(5);

/// The span every log line of this worker carries: slot, role and pid, renewed
/// when the role changes or a fork copy takes another slot.
struct Label {
    current: (usize, bool),
    span: Option<tracing::span::EnteredSpan>,
}

impl Label {
    fn new(region: &Region, slot: usize) -> Label {
        let mut label = Label {
            current: (usize::MAX, false),
            span: None,
        };
        label.refresh(region, slot);
        label
    }

    fn refresh(&mut self, region: &Region, slot: usize) {
        let primary = region.header().clock.active_slot.load(Ordering::Relaxed) as usize == slot;
        if self.current != (slot, primary) {
            self.current = (slot, primary);
            // Leave the old span before entering the new one, so they do not nest.
            self.span.take();
            let role = if primary { "primary" } else { "standby" };
            self.span =
                Some(tracing::info_span!("worker", slot, role, pid = std::process::id()).entered());
        }
    }
}

/// Runs the worker for `slot` on the region behind `fd` until orphaned; with
/// `corrupt_frame` (tests only), one bit of that frame's output is flipped.
pub fn run(fd: OwnedFd, slot: usize, corrupt_frame: Option<u64>) -> Result<Exit, WorkerError> {
    if slot >= chronus_shm::SLOTS {
        return Err(WorkerError::BadSlot(slot));
    }
    let region = Region::open(fd)?;
    let mut label = Label::new(&region, slot);
    if let Err(e) =
        chronus_shm::realtime::promote_current_thread(chronus_shm::realtime::WORKER_PRIORITY)
    {
        // The supervisor warns once per run, not once per worker.
        tracing::debug!(error = %e, "no realtime scheduling for the render loop");
        region
            .header()
            .realtime_denied
            .fetch_or(chronus_shm::REALTIME_DENIED_WORKER, Ordering::Relaxed);
    }
    if let Err(e) = chronus_shm::realtime::lock_memory() {
        tracing::debug!(error = %e, "memory not locked");
    }
    let supervisor = region.header().supervisor_pid.load(Ordering::Relaxed);
    let me = region.slot(slot);
    me.pid.store(std::process::id(), Ordering::Release);
    me.set_phase(SlotPhase::Starting);
    let snapshot = Snapshot::from_bytes(&region.read_snapshot())?;
    let mut renderer = Renderer::from_snapshot(region.geometry(), snapshot)?;
    if let Some(frame) = corrupt_frame {
        tracing::warn!(
            frame,
            "test fault injection armed: this worker will diverge"
        );
        renderer.corrupt_at(frame);
    }
    let mut slot = slot;
    renderer.take_slot(&region, slot);
    tracing::debug!(slot, frame = renderer.frame(), "worker rendering");

    let lookahead = region.geometry().lookahead_frames;
    let mut intermediates = Vec::new();
    loop {
        label.refresh(&region, slot);
        let me = region.slot(slot);
        me.heartbeat.fetch_add(1, Ordering::Relaxed);
        if nix::unistd::getppid().as_raw() as u32 != supervisor {
            return Ok(Exit::Orphaned);
        }
        fork::reap_intermediates(&mut intermediates);
        let wake = me.wake.load(Ordering::Acquire);
        let request = me.fork_request.swap(0, Ordering::AcqRel);
        if request != 0 {
            let target = request as usize - 1;
            if let Some(new_slot) = fork::fork_into(&region, target, supervisor, &mut intermediates)
            {
                slot = new_slot;
                renderer.take_slot(&region, slot);
                tracing::debug!(
                    slot,
                    frame = renderer.frame(),
                    "forked worker took over the slot"
                );
            }
            continue;
        }
        let play = region.header().clock.play_frame.load(Ordering::Acquire);
        let next = renderer.frame();
        if next < play + lookahead {
            renderer.render_block(&region, slot)?;
            continue;
        }
        // Woken for a command: stamp it, and render it in if it falls inside what
        // is rendered already.
        renderer.ingest_waiting(&region, slot)?;
        // Sleep until the device takes frames (its callback wakes us), the
        // supervisor wakes us, or the heartbeat is due.
        let heartbeat = region.header().heartbeat_us.load(Ordering::Relaxed);
        let sleep = if heartbeat == 0 {
            MAX_SLEEP
        } else {
            Duration::from_micros(u64::from(heartbeat))
        };
        futex_wait(&me.wake, wake, sleep);
    }
}
