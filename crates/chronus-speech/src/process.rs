//! Engine processes: spawning (with `chronus_process`'s setup: own process group,
//! parent-death signal, scrubbed environment; never through a shell), draining
//! stdout and stderr concurrently, writing stdin without ever blocking the caller,
//! noticing exit through a pidfd, and stopping (close stdin, grace, SIGTERM to the
//! group, grace, SIGKILL, reap).
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that spawned the child exits, not the
//! process. Each engine spawns from its own long-lived thread, which reaps its child
//! before it ends, so the signal can only fire when the daemon dies. A daemon that
//! keeps the rule "only the main thread spawns" passes a [`Spawner::delegated`] and
//! runs the [`SpawnJob`]s it receives on that thread.

pub use chronus_process::ExitCause;

use chronus_process::Signal;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Engine processes not yet reaped by their engine. Their group signals rely on the
/// leader staying unreaped (so its pid, the group id, cannot be reused), and their exit
/// status tells a crash from a clean exit: a daemon that also reaps with `waitpid(-1)`
/// must leave these alone (see [`is_engine_process`]).
static UNREAPED: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn unreaped() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    // The set stays consistent whatever panicked while holding it.
    UNREAPED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `pid` is an engine process its engine will reap. Registered before the
/// spawning call returns, so a daemon's reaper on the spawning thread never sees an
/// engine's exit before it is registered.
pub fn is_engine_process(pid: u32) -> bool {
    unreaped().contains(&pid)
}

/// Spawns `cmd` and registers the child as an engine process.
fn spawn_engine(cmd: &mut Command) -> io::Result<Child> {
    let child = cmd.spawn()?;
    unreaped().insert(child.id());
    Ok(child)
}

/// Reaps an engine process (blocking) and forgets it.
fn wait_engine(pid: u32) -> ExitCause {
    let cause = chronus_process::wait(pid);
    unreaped().remove(&pid);
    cause
}

/// Longest stderr line logged as one record; longer lines are cut into pieces.
const STDERR_LINE_LIMIT: usize = 1024;

/// Bytes queued for an engine's stdin (30 s of 16 kHz audio); beyond this a write is
/// refused, not queued, unless nothing is pending.
const STDIN_MAX_PENDING: usize = 1 << 20;

/// How long an engine thread waits for a delegated spawn to be run.
const DELEGATED_SPAWN_WAIT: Duration = Duration::from_secs(5);

/// Grace periods of the stop sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopTimings {
    /// After closing stdin, before SIGTERM to the group.
    pub after_close: Duration,
    /// After SIGTERM, before SIGKILL to the group.
    pub after_term: Duration,
}

impl Default for StopTimings {
    fn default() -> Self {
        StopTimings {
            after_close: Duration::from_secs(2),
            after_term: Duration::from_secs(1),
        }
    }
}

/// A spawn to run on the daemon's spawning thread (see [`Spawner::delegated`]).
pub struct SpawnJob(Box<dyn FnOnce() + Send>);

impl SpawnJob {
    /// Spawns the process on the calling thread and hands it to the engine that asked.
    /// If that engine gave up waiting, the process is killed and reaped here.
    pub fn run(self) {
        (self.0)()
    }
}

impl std::fmt::Debug for SpawnJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpawnJob")
    }
}

/// Which thread spawns engine processes (and so owns their parent-death signal).
#[derive(Clone, Debug, Default)]
pub enum Spawner {
    /// The engine's own long-lived thread spawns.
    #[default]
    Inline,
    /// Spawns are sent as jobs to a thread that runs them (the daemon's main thread).
    Delegated(Sender<SpawnJob>),
}

impl Spawner {
    /// A spawner that sends jobs to the returned receiver; its owner must call
    /// [`SpawnJob::run`] on each promptly (within 5 s), from the thread that should
    /// be the parent of record.
    pub fn delegated() -> (Spawner, Receiver<SpawnJob>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Spawner::Delegated(tx), rx)
    }

    fn spawn(&self, mut cmd: Command, cancel: &AtomicBool) -> io::Result<Child> {
        let Spawner::Delegated(jobs) = self else {
            return spawn_engine(&mut cmd);
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job = SpawnJob(Box::new(move || {
            let spawned = spawn_engine(&mut cmd);
            if let Err(crossbeam_channel::SendError(Ok(child))) = tx.send(spawned) {
                // Nobody is waiting for it any more.
                chronus_process::signal_group(child.id(), Signal::SIGKILL);
                wait_engine(child.id());
            }
        }));
        jobs.send(job)
            .map_err(|_| io::Error::other("the spawning thread is gone"))?;
        let deadline = Instant::now() + DELEGATED_SPAWN_WAIT;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(result) => return result,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other(
                        "the spawn job was dropped without running",
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if cancel.load(Ordering::Acquire) {
                        return Err(io::Error::other("cancelled by shutdown"));
                    }
                    if Instant::now() >= deadline {
                        return Err(io::Error::other(
                            "the spawning thread did not run the spawn job within 5 s",
                        ));
                    }
                }
            }
        }
    }
}

/// What the stdout drain thread hands to its consumer.
pub enum Output<'a> {
    Data(&'a [u8]),
    /// End of stream (or a read error, which ends it too).
    End,
}

/// A running (or exited but not yet reaped) engine process.
pub struct Proc {
    name: Arc<str>,
    pid: u32,
    stdin: Option<Sender<Vec<u8>>>,
    stdin_pending: Arc<AtomicUsize>,
    /// Disconnected once the process has exited (its watcher dropped the sender).
    exited: Receiver<()>,
    reaped: Option<ExitCause>,
}

/// How the process is started.
pub struct Launch<'a> {
    /// Engine name, for logs.
    pub name: &'a str,
    pub argv: &'a [String],
    pub spawner: &'a Spawner,
    /// Set when the owner shuts down, to stop waiting for a delegated spawn.
    pub cancel: &'a AtomicBool,
}

/// The command for `argv`: no shell, piped stdio, and the supervised-child setup
/// (scrubbed environment, own process group, parent-death signal).
fn command(argv: &[String]) -> io::Result<Command> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::other("empty argv"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    chronus_process::prepare(&mut cmd, &[]);
    Ok(cmd)
}

impl Proc {
    /// Spawns `argv` and its drain threads. `on_stdout` receives stdout as it arrives
    /// (on the stdout thread); `on_exit` runs on the watcher thread once the process
    /// has exited (before it is reaped).
    pub fn spawn(
        launch: Launch<'_>,
        mut on_stdout: impl FnMut(Output<'_>) + Send + 'static,
        on_exit: impl FnOnce() + Send + 'static,
    ) -> io::Result<Proc> {
        let cmd = command(launch.argv)?;
        let mut child = launch.spawner.spawn(cmd, launch.cancel)?;
        let pid = child.id();
        let name: Arc<str> = launch.name.into();
        let stdin_pending = Arc::new(AtomicUsize::new(0));
        // From here on a failure must not leave the child running or unreaped.
        let started = (|| -> io::Result<(Sender<Vec<u8>>, Receiver<()>)> {
            let (exit_tx, exited) = crossbeam_channel::bounded::<()>(0);
            chronus_process::watch_exit(pid, move || {
                drop(exit_tx);
                on_exit();
            })?;
            let mut stdout = child.stdout.take().expect("stdout is piped");
            thread(&format!("stdout-{pid}"), move || {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match stdout.read(&mut buf) {
                        Ok(n) if n > 0 => on_stdout(Output::Data(&buf[..n])),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        _ => {
                            on_stdout(Output::End);
                            return;
                        }
                    }
                }
            })?;
            let stderr = child.stderr.take().expect("stderr is piped");
            let label = name.clone();
            thread(&format!("stderr-{pid}"), move || {
                drain_stderr(stderr, &label, pid)
            })?;
            let (stdin_tx, stdin_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
            let stdin = child.stdin.take().expect("stdin is piped");
            let pending = stdin_pending.clone();
            thread(&format!("stdin-{pid}"), move || {
                write_stdin(stdin, stdin_rx, &pending)
            })?;
            Ok((stdin_tx, exited))
        })();
        match started {
            Ok((stdin, exited)) => {
                tracing::debug!(engine = %name, pid, "engine process started");
                Ok(Proc {
                    name,
                    pid,
                    stdin: Some(stdin),
                    stdin_pending,
                    exited,
                    reaped: None,
                })
            }
            Err(e) => {
                chronus_process::signal_group(pid, Signal::SIGKILL);
                let _ = child.kill();
                wait_engine(pid);
                Err(e)
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Queues bytes for stdin without blocking. False if stdin is closed or too much
    /// is already pending (the engine is not reading).
    pub fn write(&self, bytes: Vec<u8>) -> bool {
        let Some(tx) = &self.stdin else {
            return false;
        };
        let len = bytes.len();
        let pending = self.stdin_pending.load(Ordering::Acquire);
        if pending > 0 && pending + len > STDIN_MAX_PENDING {
            return false;
        }
        self.stdin_pending.fetch_add(len, Ordering::AcqRel);
        if tx.send(bytes).is_err() {
            self.stdin_pending.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Closes stdin once the pending writes are done: the polite way to ask a
    /// stdio engine to finish.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn wait_exit(&self, timeout: Duration) -> bool {
        self.reaped.is_some()
            || matches!(
                self.exited.recv_timeout(timeout),
                Err(RecvTimeoutError::Disconnected)
            )
    }

    /// The graceful stop: close stdin, wait, SIGTERM the group, wait, SIGKILL the
    /// group, then always reap. At most `after_close + after_term` plus the time a
    /// SIGKILLed process takes to die.
    pub fn stop(mut self, timings: StopTimings) -> ExitCause {
        self.close_stdin();
        if !self.wait_exit(timings.after_close) {
            tracing::debug!(engine = %self.name, pid = self.pid, "engine ignored end of input; SIGTERM");
            self.signal_group(Signal::SIGTERM);
            if !self.wait_exit(timings.after_term) {
                tracing::warn!(engine = %self.name, pid = self.pid, "engine ignored SIGTERM; SIGKILL");
            }
        }
        self.reap()
    }

    /// SIGKILLs the group and reaps: for an engine that is hung or broke protocol.
    pub fn kill(mut self) -> ExitCause {
        self.reap()
    }

    /// Reaps the process, SIGKILLing its group first so neither it nor a helper it
    /// started outlives this call. The leader is not reaped until its group has been
    /// signalled, so the group id cannot have been reused by then.
    fn reap(&mut self) -> ExitCause {
        if let Some(cause) = self.reaped {
            return cause;
        }
        self.close_stdin();
        self.signal_group(Signal::SIGKILL);
        let cause = wait_engine(self.pid);
        self.reaped = Some(cause);
        tracing::debug!(engine = %self.name, pid = self.pid, %cause, "engine process reaped");
        cause
    }

    fn signal_group(&self, signal: Signal) {
        // Unreaped, the leader keeps its pid (the group id) reserved: no reuse race.
        chronus_process::signal_group(self.pid, signal);
    }
}

impl Drop for Proc {
    /// Never leave a process running or a zombie behind, whatever path dropped us.
    fn drop(&mut self) {
        if self.reaped.is_none() {
            self.reap();
        }
    }
}

fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map(drop)
}

fn write_stdin(mut stdin: ChildStdin, rx: Receiver<Vec<u8>>, pending: &AtomicUsize) {
    for bytes in rx {
        if stdin
            .write_all(&bytes)
            .and_then(|()| stdin.flush())
            .is_err()
        {
            // The engine closed its input or died; its exit is noticed elsewhere.
            return;
        }
        pending.fetch_sub(bytes.len(), Ordering::AcqRel);
    }
}

fn drain_stderr(mut stderr: impl Read, name: &str, pid: u32) {
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    let flush = |line: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::info!(engine = name, pid, stderr = %text.escape_debug(), "engine stderr");
        }
        line.clear();
    };
    loop {
        let n = match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                flush(&mut line);
            } else {
                line.push(b);
                if line.len() >= STDERR_LINE_LIMIT {
                    flush(&mut line);
                }
            }
        }
    }
    flush(&mut line);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch<'a>(argv: &'a [String], spawner: &'a Spawner, cancel: &'a AtomicBool) -> Launch<'a> {
        Launch {
            name: "test",
            argv,
            spawner,
            cancel,
        }
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn stop_closes_stdin_and_a_cooperative_engine_exits_at_once() {
        let argv = sh("cat >/dev/null; exit 3");
        let cancel = AtomicBool::new(false);
        let p = Proc::spawn(launch(&argv, &Spawner::Inline, &cancel), |_| {}, || {}).unwrap();
        let t = Instant::now();
        assert_eq!(p.stop(StopTimings::default()), ExitCause::Code(3));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn stop_escalates_to_sigterm_then_sigkill() {
        let cancel = AtomicBool::new(false);
        let timings = StopTimings {
            after_close: Duration::from_millis(100),
            after_term: Duration::from_millis(100),
        };
        let argv = sh("exec sleep 30");
        let p = Proc::spawn(launch(&argv, &Spawner::Inline, &cancel), |_| {}, || {}).unwrap();
        assert_eq!(p.stop(timings), ExitCause::Signal(Signal::SIGTERM as i32));
        let argv = sh("trap '' TERM; while :; do sleep 0.01; done");
        let p = Proc::spawn(launch(&argv, &Spawner::Inline, &cancel), |_| {}, || {}).unwrap();
        let t = Instant::now();
        assert_eq!(p.stop(timings), ExitCause::Signal(Signal::SIGKILL as i32));
        assert!(t.elapsed() < Duration::from_millis(1000));
    }

    #[test]
    fn engine_runs_in_its_own_group() {
        let argv = sh("ps -o pgid= -p $$ | tr -d ' '; echo $$");
        let (tx, rx) = crossbeam_channel::unbounded();
        let cancel = AtomicBool::new(false);
        let mut out = Vec::new();
        let p = Proc::spawn(
            launch(&argv, &Spawner::Inline, &cancel),
            move |o| match o {
                Output::Data(d) => out.extend_from_slice(d),
                Output::End => tx.send(std::mem::take(&mut out)).unwrap(),
            },
            || {},
        )
        .unwrap();
        let text = String::from_utf8(rx.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [p.pid().to_string(), p.pid().to_string()],
            "pgid, pid"
        );
        p.stop(StopTimings::default());
    }

    #[test]
    fn engines_never_inherit_systemd_variables() {
        let cmd = command(&["true".to_string()]).unwrap();
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            assert!(
                removed.iter().any(|r| r == var),
                "{var} not removed: {removed:?}"
            );
        }
    }

    #[test]
    fn delegated_spawn_runs_on_the_job_thread() {
        let (spawner, jobs) = Spawner::delegated();
        let runner = std::thread::spawn(move || {
            for job in jobs {
                job.run();
            }
        });
        let cancel = AtomicBool::new(false);
        let argv = sh("exit 0");
        let p = Proc::spawn(launch(&argv, &spawner, &cancel), |_| {}, || {}).unwrap();
        assert_eq!(p.stop(StopTimings::default()), ExitCause::Code(0));
        drop(spawner);
        runner.join().unwrap();
    }

    #[test]
    fn delegated_spawn_gives_up_when_cancelled() {
        let (spawner, _jobs) = Spawner::delegated(); // nobody runs the jobs
        let cancel = AtomicBool::new(true);
        let argv = sh("exit 0");
        let err = Proc::spawn(launch(&argv, &spawner, &cancel), |_| {}, || {})
            .err()
            .unwrap();
        assert!(err.to_string().contains("cancelled"), "{err}");
    }

    #[test]
    fn stderr_flood_does_not_stall_stdout() {
        // 1 MiB on stderr first: far beyond a pipe's 64 KiB, so an undrained stderr
        // would block the engine before it writes its stdout.
        let argv = sh("head -c 1048576 /dev/zero >&2; head -c 1048576 /dev/zero");
        let (tx, rx) = crossbeam_channel::unbounded();
        let cancel = AtomicBool::new(false);
        let mut n = 0;
        let p = Proc::spawn(
            launch(&argv, &Spawner::Inline, &cancel),
            move |o| match o {
                Output::Data(d) => n += d.len(),
                Output::End => tx.send(n).unwrap(),
            },
            || {},
        )
        .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(1 << 20));
        assert_eq!(p.stop(StopTimings::default()), ExitCause::Code(0));
    }

    #[test]
    fn child_dies_with_its_spawning_thread() {
        // PR_SET_PDEATHSIG follows the spawning thread: this is why engines spawn
        // from threads that outlive their children, or delegate to the main thread.
        let argv = sh("exec sleep 30");
        let pid = std::thread::spawn(move || {
            let cancel = AtomicBool::new(false);
            let p = Proc::spawn(launch(&argv, &Spawner::Inline, &cancel), |_| {}, || {}).unwrap();
            let pid = p.pid();
            // Leave it unreaped: the thread's exit alone must end it.
            std::mem::forget(p);
            pid
        })
        .join()
        .unwrap();
        assert_eq!(
            chronus_process::wait(pid),
            ExitCause::Signal(Signal::SIGKILL as i32)
        );
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let cancel = AtomicBool::new(false);
        let argv = vec!["/nonexistent/chronus-engine".to_string()];
        assert!(Proc::spawn(launch(&argv, &Spawner::Inline, &cancel), |_| {}, || {}).is_err());
    }
}
