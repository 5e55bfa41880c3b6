//! The supervisor's children: workers spawned with `chronus_process`'s setup, and
//! reaping that leaves speech engines to their engines.
//! Invariant: only the supervisor's main thread spawns processes, so the
//! parent-death signal (tied to the spawning thread) fires only when the
//! supervisor itself exits.

pub use chronus_process::{ExitCause, become_subreaper, is_live_child, signal, signal_group};

use crossbeam_channel::Sender;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Re-executes `exe` as `worker --slot N --fd FD` in its own process group, with the
/// region fd inherited, dying with the supervisor.
pub fn spawn_worker(exe: &Path, region_fd: RawFd, slot: usize) -> io::Result<u32> {
    let mut cmd = Command::new(exe);
    cmd.arg("worker")
        .arg("--slot")
        .arg(slot.to_string())
        .arg("--fd")
        .arg(region_fd.to_string());
    cmd.stdin(Stdio::null());
    // The memfd is close-on-exec in the supervisor; only this child keeps it.
    chronus_process::prepare(&mut cmd, &[region_fd]);
    let child = cmd.spawn()?;
    // We reap by pid ourselves (waitpid); the std handle is not needed.
    Ok(child.id())
}

/// Reaps every exited child without blocking: first the `known` pids (the workers),
/// then whatever else exited (fork copies not yet announced, orphans reparented to us),
/// except speech engines, which their engines reap themselves.
pub fn reap_all(known: &[u32]) -> Vec<(u32, ExitCause)> {
    chronus_process::reap_exited(known, chronus_speech::is_engine_process)
}

/// Watches `pid` through a pidfd on a small thread and reports its exit on `tx`
/// the moment it happens, typically within tens of microseconds.
pub fn watch_exit<E: Send + 'static>(
    pid: u32,
    tx: Sender<E>,
    event: impl FnOnce(Instant, u64) -> E + Send + 'static,
) -> io::Result<()> {
    chronus_process::watch_exit(pid, move || {
        let _ = tx.send(event(Instant::now(), chronus_shm::monotonic_ns()));
    })
}
