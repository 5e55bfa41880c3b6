//! Supervised child processes: the one setup every child of the daemon gets (workers
//! and speech engines alike), and the calls to watch, signal and reap them.
//!
//! - [`prepare`] scrubs the environment systemd meant for the service alone and, in
//!   the child before exec, sets the parent-death signal, re-checks the parent, puts
//!   the child in its own process group and keeps chosen fds open across exec.
//! - [`ExitCause`] says how a child ended; [`try_reap`], [`reap_exited`] and [`wait`]
//!   reap; [`watch_exit`] notices an exit through a pidfd the moment it happens.
//! - [`signal`], [`signal_group`], [`is_live_child`] and [`become_subreaper`].
//!
//! The `unsafe` that spawning and reaping need lives here, not in the crates that
//! spawn. (A worker's fork copy is set up by `chronus-worker` itself: it forks
//! without exec, so none of this applies to it.)
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that spawned the child exits, not the
//! process: spawn from a thread that outlives the child (the daemon's main thread).

mod exit;
mod spawn;

pub use exit::{ExitCause, reap_exited, try_reap, wait, watch_exit};
pub use nix::sys::signal::Signal;
pub use spawn::{prepare, scrub_env};

use std::io;

/// A pid as the kernel takes it. Zero and values past `i32::MAX` are refused: `kill`
/// would read them as "our own group" or as a group id, not as one process.
fn kernel_pid(pid: u32) -> Option<nix::unistd::Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|&raw| raw > 0)
        .map(nix::unistd::Pid::from_raw)
}

/// Makes this process the reaper of orphaned descendants, so processes forked by our
/// children become our children when their own parent exits.
pub fn become_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    Ok(())
}

/// Sends `signal` to the process; harmless if it already exited.
pub fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = kernel_pid(pid) {
        let _ = nix::sys::signal::kill(pid, signal);
    }
}

/// Sends `signal` to the process group led by `pid` (every child [`prepare`]d leads its
/// own). Safe from pid reuse while the leader is unreaped.
pub fn signal_group(pid: u32, signal: Signal) {
    if let Some(pid) = kernel_pid(pid) {
        let _ = nix::sys::signal::killpg(pid, signal);
    }
}

/// Whether `pid` is a live (not yet exited) child of this process. Signalling such
/// a pid is safe from pid reuse: a child's pid is not reused until we reap it.
pub fn is_live_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name (field 2) may contain spaces: split after its ')'.
    let mut fields = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace())
        .into_iter()
        .flatten();
    let state = fields.next();
    let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
    state != Some("Z") && ppid == Some(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn is_live_child_tells_running_from_exited_and_foreign() {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let pid = child.id();
        assert!(is_live_child(pid));
        signal(pid, Signal::SIGKILL);
        // Exited but unreaped (a zombie) is no longer live.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while is_live_child(pid) {
            assert!(std::time::Instant::now() < deadline, "{pid} still live");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().unwrap();
        assert!(!is_live_child(1), "init is not our child");
    }

    #[test]
    fn pids_that_kill_reads_as_groups_are_refused() {
        // kill(0, …) is our own group and kill(-n, …) group n: never one process.
        for pid in [0, u32::MAX, i32::MAX as u32 + 1] {
            assert_eq!(kernel_pid(pid), None, "{pid}");
        }
        assert_eq!(kernel_pid(1), Some(nix::unistd::Pid::from_raw(1)));
        assert_eq!(
            kernel_pid(i32::MAX as u32),
            Some(nix::unistd::Pid::from_raw(i32::MAX))
        );
    }
}
