//! Start/stop cycles: spawn → `READY=1` on the notify socket, then SIGTERM → exit,
//! with the exit status, `STOPPING=1` and the workers' disappearance checked.

use crate::daemon::{free_osc_port, query_status, signal};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the bench waits for READY, and for the exit after SIGTERM, before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A worker process as seen through `/chronus/status` and `/proc` before the stop.
struct Worker {
    slot: i64,
    pid: i32,
    /// Field 22 of `/proc/<pid>/stat`, so a reused pid is not taken for the worker.
    start_time: u64,
}

/// One start/stop cycle.
pub struct Cycle {
    pub pid: i32,
    /// `spawn()` called → datagram with the line `READY=1` received, ms.
    pub ready_ms: f64,
    /// The daemon's own `ready_ms` from its log: from its setup just before it spawns
    /// the workers (region made, OSC bound) to READY sent.
    pub daemon_ready_ms: Option<f64>,
    /// The first status after READY showed both slots in lockstep and frames > 0.
    pub lockstep_at_ready: bool,
    /// SIGTERM sent → datagram with the line `STOPPING=1` received, ms.
    pub stopping_ms: Option<f64>,
    /// SIGTERM sent → waitpid returned, ms.
    pub shutdown_ms: f64,
    pub exit: ExitStatus,
    /// Workers still present after the supervisor exited, described.
    pub workers_left: Vec<String>,
    pub workers_checked: usize,
}

pub struct LifecycleRun {
    pub cycles: Vec<Cycle>,
    pub settle: Duration,
    pub wall: Duration,
}

/// Kills and reaps the daemon if a cycle fails before it exits.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        bail!(
            "pidfd_open({pid}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits until one of `fds` is readable or `timeout` passes; which are readable.
fn poll_readable(fds: &[RawFd], timeout: Duration) -> Result<Vec<bool>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pollfds` is a valid array of `pollfds.len()` pollfd structs.
    let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        bail!("poll failed: {e}");
    }
    Ok(pollfds.iter().map(|p| p.revents != 0).collect())
}

/// Every datagram waiting on the (non-blocking) socket.
fn drain(sock: &UnixDatagram) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(out),
            Err(e) => return Err(e).context("reading the notify socket"),
        }
    }
}

fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

/// Field 22 (starttime) and field 3 (state) of `/proc/<pid>/stat`, or `None` when
/// there is no such process.
fn proc_start(pid: i32) -> Option<(u64, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((
        fields.get(22 - 3)?.parse().ok()?,
        fields.first()?.to_string(),
    ))
}

/// The daemon's `ready_ms=` on its "audio running" log line.
fn daemon_ready_ms(log: &str) -> Option<f64> {
    log.lines()
        .find(|l| l.contains("audio running, workers in lockstep"))?
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ready_ms="))?
        .parse()
        .ok()
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

pub fn run(exe: &Path, dir: &Path, cycles: usize, settle: Duration) -> Result<LifecycleRun> {
    let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("cycles.csv"))?);
    writeln!(
        csv,
        "cycle,pid,ready_ms,daemon_ready_ms,lockstep_at_ready,stopping_ms,shutdown_ms,exit,workers_left"
    )?;
    let mut notify_log = std::io::BufWriter::new(std::fs::File::create(dir.join("notify.log"))?);
    let started = Instant::now();
    let mut out = Vec::with_capacity(cycles);
    for i in 0..cycles {
        let c = cycle(exe, dir, i, settle, &mut notify_log)
            .with_context(|| format!("lifecycle cycle {i}"))?;
        writeln!(
            csv,
            "{i},{},{:.3},{},{},{},{:.3},{},{}",
            c.pid,
            c.ready_ms,
            c.daemon_ready_ms
                .map_or(String::new(), |v| format!("{v:.3}")),
            c.lockstep_at_ready,
            c.stopping_ms.map_or(String::new(), |v| format!("{v:.3}")),
            c.shutdown_ms,
            c.exit.code().map_or("signal".into(), |c| c.to_string()),
            c.workers_left.join(" ")
        )?;
        out.push(c);
        if (i + 1) % 10 == 0 {
            eprintln!("chronus-bench: {} cycles done", i + 1);
        }
    }
    csv.flush()?;
    notify_log.flush()?;
    Ok(LifecycleRun {
        cycles: out,
        settle,
        wall: started.elapsed(),
    })
}

fn cycle(
    exe: &Path,
    dir: &Path,
    i: usize,
    settle: Duration,
    notify_log: &mut impl Write,
) -> Result<Cycle> {
    let sock_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path)
        .with_context(|| format!("binding {}", sock_path.display()))?;
    sock.set_nonblocking(true)?;
    let port = free_osc_port()?;
    let log = dir.join(format!("chronusd-{i:03}.log"));
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CHRONUS_AUDIO_BACKEND", "null")
        .env("CHRONUS_OSC_PORT", port.to_string())
        .env("NOTIFY_SOCKET", &sock_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?,
        );

    let t_spawn = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let mut child = Reaper(child);
    let pid = child.0.id() as i32;
    let pidfd = pidfd_open(pid)?;
    let fds = [sock.as_raw_fd(), pidfd.as_raw_fd()];
    let mut note = |at: Instant, since: Instant, what: &str, msg: &str| {
        let _ = writeln!(
            notify_log,
            "cycle {i} pid {pid} {what}+{:.3}ms {}",
            (at - since).as_secs_f64() * 1e3,
            msg.replace('\n', " | ")
        );
    };

    // Spawn → READY=1.
    let t_ready = 'ready: loop {
        let left = READY_TIMEOUT.saturating_sub(t_spawn.elapsed());
        if left.is_zero() {
            bail!(
                "no READY=1 within {READY_TIMEOUT:?}; log:\n{}",
                log_tail(&log)
            );
        }
        let ready = poll_readable(&fds, left)?;
        if ready[0] {
            for msg in drain(&sock)? {
                let now = Instant::now();
                note(now, t_spawn, "spawn", &msg);
                if has_line(&msg, "STOPPING=1") {
                    bail!("STOPPING=1 before READY=1; log:\n{}", log_tail(&log));
                }
                if has_line(&msg, "READY=1") {
                    break 'ready now;
                }
            }
        }
        if ready[1] {
            let status = child.0.wait()?;
            bail!(
                "chronusd exited ({status}) before READY=1; log:\n{}",
                log_tail(&log)
            );
        }
    };
    let ready_ms = (t_ready - t_spawn).as_secs_f64() * 1e3;

    // The worker pids, and the state READY promised.
    let osc = SocketAddr::from(([127, 0, 0, 1], port));
    let status = loop {
        if let Some(s) = query_status(osc) {
            break s;
        }
        if t_ready.elapsed() > Duration::from_secs(5) {
            bail!(
                "no status reply within 5 s of READY; log:\n{}",
                log_tail(&log)
            );
        }
    };
    let lockstep_at_ready = status.both_lockstep()? && status.int("frames")? > 0;
    let mut workers = Vec::new();
    for slot in 0..2 {
        let pid = status.slot_pid(slot)?;
        let (start_time, _) = proc_start(pid)
            .with_context(|| format!("worker slot {slot} pid {pid} is not in /proc"))?;
        workers.push(Worker {
            slot,
            pid,
            start_time,
        });
    }

    // SIGTERM `settle` after READY arrived → exit.
    std::thread::sleep(settle.saturating_sub(t_ready.elapsed()));
    for msg in drain(&sock)? {
        note(Instant::now(), t_spawn, "spawn", &msg);
    }
    let t_term = Instant::now();
    signal(pid, libc::SIGTERM)?;
    let mut t_stopping = None;
    let (exit, t_exit) = loop {
        let left = EXIT_TIMEOUT.saturating_sub(t_term.elapsed());
        if left.is_zero() {
            bail!(
                "chronusd did not exit within {EXIT_TIMEOUT:?} of SIGTERM; log:\n{}",
                log_tail(&log)
            );
        }
        let ready = poll_readable(&fds, left)?;
        if ready[0] {
            for msg in drain(&sock)? {
                let now = Instant::now();
                note(now, t_term, "term", &msg);
                if t_stopping.is_none() && has_line(&msg, "STOPPING=1") {
                    t_stopping = Some(now);
                }
            }
        }
        if ready[1] {
            let status = child.0.wait()?;
            break (status, Instant::now());
        }
    };
    // Whatever was sent before the exit and not read yet.
    for msg in drain(&sock)? {
        note(Instant::now(), t_term, "term(after exit)", &msg);
        if t_stopping.is_none() && has_line(&msg, "STOPPING=1") {
            t_stopping = Some(t_exit);
        }
    }

    let workers_left = workers
        .iter()
        .filter_map(|w| match proc_start(w.pid) {
            Some((start, state)) if start == w.start_time => {
                Some(format!("slot{}:{}:{state}", w.slot, w.pid))
            }
            _ => None,
        })
        .collect();
    drop(sock);
    let _ = std::fs::remove_file(&sock_path);
    let daemon_log = std::fs::read_to_string(&log).unwrap_or_default();
    Ok(Cycle {
        pid,
        ready_ms,
        daemon_ready_ms: daemon_ready_ms(&daemon_log),
        lockstep_at_ready,
        stopping_ms: t_stopping.map(|t| (t - t_term).as_secs_f64() * 1e3),
        shutdown_ms: (t_exit - t_term).as_secs_f64() * 1e3,
        exit,
        workers_left,
        workers_checked: workers.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_daemons_ready_ms() {
        let log = "INFO supervisor: workers in lockstep; starting the timeline ready_ms=20.5\n\
                   INFO supervisor: audio running, workers in lockstep ready_ms=31.25\n";
        assert_eq!(daemon_ready_ms(log), Some(31.25));
        assert_eq!(daemon_ready_ms("nothing"), None);
    }

    #[test]
    fn reads_start_time_and_state_from_proc() {
        // A child we control has a known state: sleeping, then a zombie until reaped.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let sleeping = (0..500).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            proc_start(pid).filter(|(_, state)| state == "S")
        });
        let (start, _) = sleeping.expect("sleep(1) never showed state S");
        assert!(start > 0);
        child.kill().unwrap();
        let zombie = (0..500).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            proc_start(pid).filter(|(_, state)| state == "Z")
        });
        assert_eq!(
            zombie.map(|(s, _)| s),
            Some(start),
            "same process, now a zombie"
        );
        child.wait().unwrap();
        assert_eq!(proc_start(pid), None);
        assert_eq!(proc_start(i32::MAX), None);
    }

    #[test]
    fn notify_lines_match_whole_lines() {
        assert!(has_line("READY=1\nSTATUS=playing", "READY=1"));
        assert!(!has_line("RELOADING=1", "READY=1"));
        assert!(!has_line("STATUS=READY=1", "READY=1"));
    }
}
