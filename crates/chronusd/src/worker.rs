//! `chronusd worker`: a worker process, re-executed by the supervisor.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

pub fn run(slot: usize, fd: i32) -> ExitCode {
    // Workers log what the supervisor asked for, inherited through CHRONUS_LOG.
    let _ = crate::logging::init(&std::env::var("CHRONUS_LOG").unwrap_or_else(|_| "info".into()));
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
    match chronus_worker::run(fd, slot) {
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
