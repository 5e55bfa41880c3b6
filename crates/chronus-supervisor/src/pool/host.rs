//! The pool's hands in the real daemon: worker processes and the shared region.

use super::{Host, SlotView};
use crate::event::Event;
use crate::process::{self, ExitCause};
use crate::publisher::Publisher;
use chronus_shm::Region;
use crossbeam_channel::Sender;
use nix::sys::signal::Signal;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::atomic::Ordering;

/// Borrowed for one call into the pool.
pub struct RegionHost<'a> {
    pub region: &'a Region,
    /// Writes the cold-start snapshot from its ledger.
    pub publisher: &'a mut Publisher,
    pub worker_exe: &'a Path,
    pub region_fd: RawFd,
    pub events: &'a Sender<Event>,
}

impl Host for RegionHost<'_> {
    fn spawn(&mut self, slot: usize) -> io::Result<u32> {
        let shm = self.region.slot(slot);
        // A request left for a dead worker must not reach its successor.
        shm.fork_request.store(0, Ordering::Release);
        shm.pid.store(0, Ordering::Release);
        let pid = process::spawn_worker(self.worker_exe, self.region_fd, slot)?;
        self.watch(pid);
        Ok(pid)
    }

    fn prepare_cold_start(&mut self) -> io::Result<u64> {
        self.publisher
            .write_cold_snapshot()
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn watch(&mut self, pid: u32) {
        let events = self.events.clone();
        if let Err(e) = process::watch_exit(pid, events, move |at, mono_ns| Event::WorkerExited {
            pid,
            at,
            mono_ns,
        }) {
            tracing::warn!(pid, error = %e, "cannot watch worker through a pidfd; relying on SIGCHLD");
        }
    }

    fn kill(&mut self, pid: u32) {
        process::signal(pid, Signal::SIGKILL);
    }

    fn request_fork(&mut self, source: usize, target: usize) {
        let src = self.region.slot(source);
        src.fork_request.store(target as u32 + 1, Ordering::Release);
        src.wake_worker();
    }

    fn cancel_fork(&mut self, slot: usize) {
        self.region
            .slot(slot)
            .fork_request
            .store(0, Ordering::Release);
    }

    fn view(&self, slot: usize) -> SlotView {
        let s = self.region.slot(slot);
        SlotView {
            claimed_pid: s.pid.load(Ordering::Acquire),
            rendering: s.phase() == chronus_shm::SlotPhase::Rendering,
            heartbeat: s.heartbeat.load(Ordering::Relaxed),
            first_frame: s.first_frame.load(Ordering::Acquire),
            rendered: s.rendered.load(Ordering::Acquire),
        }
    }

    fn checksum(&self, slot: usize, frame: u64) -> Option<(u64, u64)> {
        self.region.ring(slot).checksum(frame)
    }

    fn fresh(&self, cursor: u64, end: u64) -> bool {
        let log = self.region.log();
        log.fresh(cursor, end, log.tail())
    }

    fn play_frame(&self) -> u64 {
        self.region
            .header()
            .clock
            .play_frame
            .load(Ordering::Acquire)
    }

    fn active_slot(&self) -> usize {
        self.region
            .header()
            .clock
            .active_slot
            .load(Ordering::Relaxed) as usize
    }

    fn set_active_slot(&mut self, slot: usize) {
        self.region
            .header()
            .clock
            .active_slot
            .store(slot as u32, Ordering::Release);
    }

    fn set_readable(&mut self, mask: u32) {
        self.region
            .header()
            .readable_slots
            .store(mask, Ordering::Release);
    }

    fn is_live_child(&self, pid: u32) -> bool {
        process::is_live_child(pid)
    }

    fn reap(&mut self, known: &[u32]) -> Vec<(u32, ExitCause)> {
        process::reap_all(known)
    }
}
