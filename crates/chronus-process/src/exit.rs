//! How children end: exit causes, reaping, and noticing an exit as it happens.

use crate::Signal;
use rustix::process::{Pid, WaitOptions, WaitStatus};
use std::io;

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCause {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Reaped by someone else (a `waitpid(-1)` elsewhere in the process), so its
    /// status is lost.
    Unknown,
}

impl ExitCause {
    /// A fault of the child's own (crash, abort, error exit), as opposed to being
    /// killed or stopped by us. An unknown end counts as a fault: nothing shows it
    /// was not one.
    pub fn is_fault(self) -> bool {
        match self {
            ExitCause::Code(code) => code != 0,
            ExitCause::Signal(sig) => sig != libc::SIGKILL && sig != libc::SIGTERM,
            ExitCause::Unknown => true,
        }
    }

    fn of(status: WaitStatus) -> Option<ExitCause> {
        status
            .exit_status()
            .map(ExitCause::Code)
            .or_else(|| status.terminating_signal().map(ExitCause::Signal))
    }
}

impl std::fmt::Display for ExitCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitCause::Code(c) => write!(f, "exit status {c}"),
            ExitCause::Signal(s) => {
                let name = Signal::try_from(*s)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown signal");
                write!(f, "killed by signal {s} ({name})")
            }
            ExitCause::Unknown => f.write_str("exit status unknown (reaped elsewhere)"),
        }
    }
}

fn child_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// Reaps `pid` if it has exited, without blocking. `None` if it is still running or
/// is not (or no longer) our child.
pub fn try_reap(pid: u32) -> Option<ExitCause> {
    let pid = child_pid(pid)?;
    match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
        Ok(Some((_, status))) => ExitCause::of(status),
        _ => None,
    }
}

/// Reaps `pid`, blocking until it exits. [`ExitCause::Unknown`] if someone else
/// reaped it first (or it is not our child).
pub fn wait(pid: u32) -> ExitCause {
    let Some(pid) = child_pid(pid) else {
        return ExitCause::Unknown;
    };
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(cause) = ExitCause::of(status) {
                    return cause;
                }
            }
            Ok(None) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return ExitCause::Unknown,
        }
    }
}

/// The pid of an exited child, left unreaped (`waitid` with `WNOWAIT`), if any.
fn peek_exited() -> Option<u32> {
    // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
    let rc = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: waitid filled in a child's siginfo, or left si_pid zero (no child had
    // exited); si_pid is valid to read for both.
    let pid = unsafe { info.si_pid() };
    u32::try_from(pid).ok().filter(|&p| p > 0)
}

/// Reaps every exited child without blocking: first the `known` pids, then whatever
/// else exited (children not yet announced, orphans reparented to a subreaper), except
/// those `leave` names: someone else reaps them. Such a child, while exited and
/// unreaped, hides any exited child behind it until its owner reaps it; a later call
/// gets to those.
pub fn reap_exited(known: &[u32], leave: impl Fn(u32) -> bool) -> Vec<(u32, ExitCause)> {
    let mut out: Vec<(u32, ExitCause)> = known
        .iter()
        .filter_map(|&pid| try_reap(pid).map(|cause| (pid, cause)))
        .collect();
    while let Some(pid) = peek_exited() {
        if leave(pid) {
            break;
        }
        match try_reap(pid) {
            Some(cause) => out.push((pid, cause)),
            None => break,
        }
    }
    out
}

/// Stack of a `watch-<pid>` thread.
const WATCH_STACK: usize = 256 * 1024;

/// Runs `on_exit` on a small thread (`watch-<pid>`) the moment `pid` exits, typically
/// within tens of microseconds, through a pidfd: no polling, no race with pid reuse.
/// `pid` must be an unreaped child (it is not reaped here).
pub fn watch_exit(pid: u32, on_exit: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let raw = child_pid(pid).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot watch pid {pid}: a pid is 1 to {}", i32::MAX),
        )
    })?;
    let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())?;
    std::thread::Builder::new()
        .name(format!("watch-{pid}"))
        // It polls, then sends: with memory locked (MCL_FUTURE) a default 2 MiB stack would
        // be resident for every worker the daemon ever starts.
        .stack_size(WATCH_STACK)
        .spawn(move || {
            let mut fds = [rustix::event::PollFd::new(
                &pidfd,
                rustix::event::PollFlags::IN,
            )];
            // Readable once the process has exited; any other error ends the watch,
            // which then reports the exit rather than never reporting it.
            while let Err(rustix::io::Errno::INTR) = rustix::event::poll(&mut fds, None) {}
            on_exit();
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    fn spawn_sh(script: &str) -> u32 {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]);
        crate::prepare(&mut cmd, &[]);
        cmd.spawn().unwrap().id()
    }

    #[test]
    fn exit_codes_and_signals_are_told_apart() {
        assert_eq!(wait(spawn_sh("exit 3")), ExitCause::Code(3));
        assert_eq!(wait(spawn_sh("exit 0")), ExitCause::Code(0));
        let pid = spawn_sh("exec sleep 10");
        crate::signal(pid, Signal::SIGTERM);
        assert_eq!(wait(pid), ExitCause::Signal(libc::SIGTERM));
    }

    #[test]
    fn faults_are_crashes_and_error_exits_not_our_kills() {
        assert!(ExitCause::Code(3).is_fault());
        assert!(ExitCause::Signal(libc::SIGSEGV).is_fault());
        assert!(ExitCause::Signal(libc::SIGABRT).is_fault());
        assert!(ExitCause::Unknown.is_fault());
        assert!(!ExitCause::Code(0).is_fault());
        assert!(!ExitCause::Signal(libc::SIGKILL).is_fault());
        assert!(!ExitCause::Signal(libc::SIGTERM).is_fault());
    }

    #[test]
    fn display_names_the_status_or_the_signal() {
        assert_eq!(ExitCause::Code(3).to_string(), "exit status 3");
        assert_eq!(
            ExitCause::Signal(libc::SIGSEGV).to_string(),
            "killed by signal 11 (SIGSEGV)"
        );
        assert_eq!(
            ExitCause::Signal(libc::SIGRTMIN() + 1).to_string(),
            format!("killed by signal {} (unknown signal)", libc::SIGRTMIN() + 1)
        );
    }

    #[test]
    fn try_reap_waits_for_nothing() {
        let pid = spawn_sh("exec sleep 10");
        assert_eq!(try_reap(pid), None, "still running");
        crate::signal(pid, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        let cause = loop {
            if let Some(cause) = try_reap(pid) {
                break cause;
            }
            assert!(Instant::now() < deadline, "{pid} not reaped");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(cause, ExitCause::Signal(libc::SIGKILL));
        assert_eq!(try_reap(pid), None, "already reaped");
        assert_eq!(wait(pid), ExitCause::Unknown, "already reaped");
    }

    #[test]
    fn a_signal_no_name_is_known_for_is_still_reported() {
        let pid = spawn_sh("exec sleep 10");
        let rt = libc::SIGRTMIN() + 1;
        // SAFETY: kill with integers; `pid` is our unreaped child.
        assert_eq!(unsafe { libc::kill(pid as i32, rt) }, 0);
        assert_eq!(wait(pid), ExitCause::Signal(rt));
    }

    #[test]
    fn watch_exit_reports_the_exit_and_leaves_the_child_unreaped() {
        let pid = spawn_sh("exec sleep 10");
        let (tx, rx) = crossbeam_channel::bounded(1);
        watch_exit(pid, move || tx.send(Instant::now()).unwrap()).unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "not exited yet"
        );
        crate::signal(pid, Signal::SIGKILL);
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
        assert_eq!(wait(pid), ExitCause::Signal(libc::SIGKILL));
    }

    #[test]
    fn watching_pid_zero_is_an_error() {
        let err = watch_exit(0, || {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
