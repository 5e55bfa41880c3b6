//! The setup of a supervised child: its environment and what it does before exec.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Variables systemd hands to the service process alone. A child that inherited them
/// could notify or ping the watchdog in the service's name, or take over its sockets.
/// `INVOCATION_ID` and `JOURNAL_STREAM` are kept on purpose: they describe the unit
/// run and where stderr goes, not something only the service may act on. A child
/// logging to the journal under the same invocation is fine, and a program must
/// compare `JOURNAL_STREAM` with its own stderr before trusting it, so a child whose
/// stderr is a pipe to us ignores it.
const SERVICE_ONLY: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// Every other watchdog variable, present or future, found by name.
const SERVICE_ONLY_PREFIX: &[u8] = b"WATCHDOG_";

fn is_service_only(var: &OsStr) -> bool {
    SERVICE_ONLY.iter().any(|v| OsStr::new(v) == var)
        || var.as_encoded_bytes().starts_with(SERVICE_ONLY_PREFIX)
}

/// Removes from `cmd`'s environment every variable systemd meant for the service
/// itself: `NOTIFY_SOCKET`, `LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES` and every
/// `WATCHDOG_*`, whether inherited from this process or set on `cmd`. The named ones
/// are removed even if absent now; other `WATCHDOG_*` as found when this is called.
pub fn scrub_env(cmd: &mut Command) {
    let set_on_cmd: Vec<OsString> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
    let inherited = std::env::vars_os().map(|(k, _)| k);
    let found: Vec<OsString> = inherited
        .chain(set_on_cmd)
        .filter(|k| is_service_only(k))
        .collect();
    for var in SERVICE_ONLY {
        cmd.env_remove(var);
    }
    for var in found {
        cmd.env_remove(var);
    }
}

/// Sets `cmd` up as a supervised child of this process:
///
/// - its environment scrubbed ([`scrub_env`]);
/// - its own process group, so it and anything it starts can be signalled as one
///   ([`signal_group`](crate::signal_group) with the child's pid);
/// - in the child before exec, `PR_SET_PDEATHSIG` = SIGKILL, then a check that this
///   process is still its parent (it may have died before the prctl took effect);
/// - the fds in `keep_open` inherited across exec (close-on-exec cleared in the child
///   only; the parent's copies keep the flag, so no other child inherits them). They
///   must stay open until `cmd` is spawned.
///
/// The parent-death signal is tied to the thread that calls `spawn`, so spawn from a
/// thread that outlives the child.
pub fn prepare(cmd: &mut Command, keep_open: &[RawFd]) {
    scrub_env(cmd);
    cmd.process_group(0);
    let parent = std::process::id();
    let keep_open = keep_open.to_vec();
    // Runs in the child between fork and exec, where only async-signal-safe calls are
    // allowed: raw syscalls on integers and a vector allocated before the fork; it
    // allocates nothing, takes no lock, and builds errors only from errno values.
    let setup = move || {
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
        // The parent may have died before the prctl took effect. Nobody is left to read
        // the error, so it only needs to stop the exec.
        if rustix::process::Pid::as_raw(rustix::process::getppid()) as u32 != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        for &fd in &keep_open {
            // SAFETY: fcntl on an integer fd touches no memory; a closed one is EBADF.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: `setup` is async-signal-safe (see above), as pre_exec requires.
    unsafe {
        cmd.pre_exec(setup);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn pgrp_of(pid: u32) -> u32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // Fields after the command name: state, ppid, pgrp.
        let (_, rest) = stat.rsplit_once(')').unwrap();
        rest.split_whitespace().nth(2).unwrap().parse().unwrap()
    }

    #[test]
    fn child_leads_its_own_process_group() {
        let mut cmd = Command::new("sleep");
        cmd.arg("10");
        prepare(&mut cmd, &[]);
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        // spawn returns once exec succeeded, so the setup has run.
        let pgrp = pgrp_of(pid);
        crate::signal_group(pid, crate::Signal::SIGKILL);
        child.wait().unwrap();
        assert_eq!(pgrp, pid);
        assert_ne!(pgrp, pgrp_of(std::process::id()));
    }

    #[test]
    fn kept_fd_reaches_the_child_and_others_do_not() {
        // std opens files close-on-exec.
        let kept = std::fs::File::open("/dev/null").unwrap();
        let other = std::fs::File::open("/dev/null").unwrap();
        let script = format!(
            "test -e /proc/self/fd/{} && ! test -e /proc/self/fd/{}",
            kept.as_raw_fd(),
            other.as_raw_fd()
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &script]);
        prepare(&mut cmd, &[kept.as_raw_fd()]);
        assert!(cmd.status().unwrap().success(), "{script}");
        let flags = rustix::io::fcntl_getfd(&kept).unwrap();
        assert!(
            flags.contains(rustix::io::FdFlags::CLOEXEC),
            "the parent's copy must stay close-on-exec"
        );
    }

    #[test]
    fn watchdog_variables_are_matched_by_prefix_and_journal_ones_kept() {
        for var in [
            "NOTIFY_SOCKET",
            "LISTEN_FDS",
            "LISTEN_PID",
            "LISTEN_FDNAMES",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "WATCHDOG_FOO",
        ] {
            assert!(is_service_only(OsStr::new(var)), "{var}");
        }
        for var in [
            "PATH",
            "INVOCATION_ID",
            "JOURNAL_STREAM",
            "WATCHDOG",
            "MY_WATCHDOG_USEC",
        ] {
            assert!(!is_service_only(OsStr::new(var)), "{var}");
        }
    }

    #[test]
    fn variables_set_on_the_command_are_scrubbed_too() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "env"])
            .env("WATCHDOG_FOO", "1")
            .env("NOTIFY_SOCKET", "/nonexistent")
            .env("CHRONUS_KEPT", "1");
        prepare(&mut cmd, &[]);
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        let env = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k)
            .collect();
        assert!(names.contains(&"CHRONUS_KEPT"), "{env}");
        assert!(!names.contains(&"WATCHDOG_FOO"), "{env}");
        assert!(!names.contains(&"NOTIFY_SOCKET"), "{env}");
    }
}
