//! Spawning, watching, signalling and reaping child processes.
//! Invariant: only the supervisor's main thread spawns processes, so the
//! parent-death signal (tied to the spawning thread) fires only when the
//! supervisor itself exits.

use crossbeam_channel::Sender;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Environment a child must never inherit: only the supervisor talks to systemd.
const SCRUBBED_ENV: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// Makes this process the reaper of orphaned descendants, so workers forked by
/// workers become our children.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Re-executes `exe` as `worker --slot N --fd FD` in its own process group, with the
/// region fd inherited, dying with the supervisor.
pub fn spawn_worker(exe: &Path, region_fd: RawFd, slot: usize) -> io::Result<u32> {
    let supervisor = std::process::id();
    let mut cmd = Command::new(exe);
    cmd.arg("worker")
        .arg("--slot")
        .arg(slot.to_string())
        .arg("--fd")
        .arg(region_fd.to_string());
    cmd.stdin(Stdio::null());
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    // SAFETY: the closure runs between fork and exec in the child and makes only
    // async-signal-safe syscalls (prctl, getppid, setpgid, fcntl), no allocation.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The supervisor may have died before the prctl took effect.
            if libc::getppid() as u32 != supervisor {
                return Err(io::Error::other("supervisor exited during spawn"));
            }
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The memfd is close-on-exec in the supervisor; only this child keeps it.
            if libc::fcntl(region_fd, libc::F_SETFD, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // We reap by pid ourselves (waitpid); the std handle is not needed.
    Ok(child.id())
}

/// What a child exit means for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCause {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitCause {
    /// A fault of the worker's own (crash, abort, error exit), as opposed to being killed.
    pub fn is_fault(self) -> bool {
        match self {
            ExitCause::Code(code) => code != 0,
            ExitCause::Signal(sig) => sig != libc::SIGKILL && sig != libc::SIGTERM,
        }
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
                write!(f, "signal {s} ({name})")
            }
        }
    }
}

/// Reaps every exited child without blocking: first the `known` pids (the workers),
/// then whatever else exited (fork copies not yet announced, orphans reparented to us),
/// except speech engines, which their engines reap themselves.
pub fn reap_all(known: &[u32]) -> Vec<(u32, ExitCause)> {
    let mut out: Vec<(u32, ExitCause)> = known
        .iter()
        .filter_map(|&pid| reap(Pid::from_raw(pid as i32)))
        .collect();
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    // Peek before reaping: an exited engine is left for its engine (and, until that
    // reaps it, hides any child behind it; the next call gets to those).
    while let Ok(status) = waitid(Id::All, flags) {
        let Some(pid) = status.pid() else {
            break;
        };
        if chronus_speech::is_engine_process(pid.as_raw() as u32) {
            break;
        }
        match reap(pid) {
            Some(reaped) => out.push(reaped),
            None => break,
        }
    }
    out
}

fn reap(pid: Pid) -> Option<(u32, ExitCause)> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(pid, code)) => Some((pid.as_raw() as u32, ExitCause::Code(code))),
        Ok(WaitStatus::Signaled(pid, sig, _)) => {
            Some((pid.as_raw() as u32, ExitCause::Signal(sig as i32)))
        }
        _ => None,
    }
}

/// Sends `signal` to the process; harmless if it already exited.
pub fn signal(pid: u32, signal: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), signal);
}

/// Sends `signal` to the process group led by `pid` (each worker leads its own).
pub fn signal_group(pid: u32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pid as i32), signal);
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

/// Watches `pid` through a pidfd on a small thread and reports its exit on `tx`
/// the moment it happens, typically within tens of microseconds.
pub fn watch_exit<E: Send + 'static>(
    pid: u32,
    tx: Sender<E>,
    event: impl FnOnce(Instant, u64) -> E + Send + 'static,
) -> io::Result<()> {
    let raw =
        rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| io::Error::other("pid 0"))?;
    let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())?;
    std::thread::Builder::new()
        .name(format!("watch-{pid}"))
        .spawn(move || {
            let mut fds = [rustix::event::PollFd::new(
                &pidfd,
                rustix::event::PollFlags::IN,
            )];
            loop {
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => break,
                }
            }
            let _ = tx.send(event(Instant::now(), chronus_shm::monotonic_ns()));
        })?;
    Ok(())
}
