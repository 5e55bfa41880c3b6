//! Restoring redundancy by forking the survivor.
//!
//! The worker is single-threaded, so fork() is safe and the child carries the
//! exact engine state at a block boundary: it is in lockstep by construction.
//! A double fork makes the copy a child of the supervisor (a child subreaper),
//! so it is reaped there and can die with the supervisor like any worker.

use chronus_shm::Region;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getppid, setpgid};
use std::time::{Duration, Instant};

/// Forks a copy of this worker into `target`. Returns `Some(target)` in the copy,
/// `None` in the original (whether or not the fork succeeded). The original does
/// not wait for the intermediate process, which would stop its rendering for as
/// long as the second fork takes: it is added to `intermediates` for
/// [`reap_intermediates`].
pub fn fork_into(
    region: &Region,
    target: usize,
    supervisor: u32,
    intermediates: &mut Vec<Pid>,
) -> Option<usize> {
    if target >= chronus_shm::SLOTS {
        tracing::warn!(
            target,
            "ignoring fork request for a slot that does not exist"
        );
        return None;
    }
    // SAFETY: the worker is single-threaded (it never spawns a thread), so the
    // child may run arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => {
            tracing::warn!(error = %e, "fork for slot restore failed");
            None
        }
        Ok(ForkResult::Parent { child }) => {
            intermediates.push(child);
            None
        }
        Ok(ForkResult::Child) => {
            // SAFETY: as above; the intermediate only forks again and _exits.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    // The original's intermediates are not the copy's children.
                    intermediates.clear();
                    become_copy(region, target, supervisor)
                }
                // SAFETY: _exit skips atexit handlers and buffered-IO flushes that
                // belong to the original process.
                _ => unsafe { libc::_exit(0) },
            }
        }
    }
}

/// Reaps the intermediates of earlier forks that have exited (they exit at once),
/// so that no zombie stays behind; never waits.
pub fn reap_intermediates(intermediates: &mut Vec<Pid>) {
    intermediates.retain(|&pid| {
        matches!(
            waitpid(pid, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        )
    });
}

fn become_copy(region: &Region, target: usize, supervisor: u32) -> Option<usize> {
    // Wait for the intermediate's exit to reparent us to the supervisor.
    let deadline = Instant::now() + Duration::from_secs(1);
    while getppid().as_raw() as u32 != supervisor {
        if Instant::now() > deadline {
            // SAFETY: no state of ours needs flushing; the supervisor will see the slot stay empty.
            unsafe { libc::_exit(0) };
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // The supervisor may have died between the check and the prctl.
    if getppid().as_raw() as u32 != supervisor {
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    let _ = setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
    region
        .slot(target)
        .heartbeat
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(target)
}
