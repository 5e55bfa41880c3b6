//! `chronusd worker`: a worker process, re-executed by the supervisor.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

pub fn run(slot: usize, fd: i32) -> ExitCode {
    // Workers log what the supervisor asked for, inherited through CHRONUS_LOG.
    // Until the worker knows its role, lines carry the slot it was started in.
    let filter = std::env::var("CHRONUS_LOG").unwrap_or_else(|_| "info".into());
    let label = format!("worker{{slot={slot} pid={}}}", std::process::id());
    let _ = crate::logging::init(&filter, label);
    // SAFETY: F_GETFD only inspects the descriptor table entry.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        tracing::error!(
            fd,
            "the region fd is not open: workers are started by chronusd, not by hand"
        );
        return ExitCode::from(64);
    }
    // SAFETY: the fd is open (checked above), was inherited for this purpose, and
    // nothing else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Only slot 1, the standby at startup: the supervisor keeps the active slot and
    // replaces the other when they disagree, so this makes the faulty one the victim.
    let var = chronus_config::TEST_DIVERGE_ENV;
    let corrupt_frame = match std::env::var(var) {
        Ok(value) if slot == 1 => match value.parse::<u64>() {
            Ok(frame) => Some(frame),
            Err(_) => {
                tracing::error!("{var}={value} is not a frame number");
                return ExitCode::from(64);
            }
        },
        _ => None,
    };
    match chronus_worker::run(fd, slot, corrupt_frame) {
        Ok(exit) => {
            tracing::debug!(?exit, "worker exiting");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            ExitCode::from(70)
        }
    }
}
