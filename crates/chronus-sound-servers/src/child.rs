//! Starting, waiting for and stopping the servers' processes.

use crate::ServerError;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server has to answer after it was started.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long a server has to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A log file in the server's directory.
pub(crate) fn log_file(dir: &Path, name: &str) -> Result<std::fs::File, ServerError> {
    std::fs::File::create(dir.join(name)).map_err(|source| ServerError::Io {
        what: format!("the log {}", dir.join(name).display()),
        source,
    })
}

/// Spawns `command` (named `program`) with stdin closed, stdout to `stdout` and
/// stderr into `log` in `dir`.
pub(crate) fn spawn(
    command: &mut Command,
    program: &str,
    dir: &Path,
    log: &str,
    stdout: Stdio,
) -> Result<Child, ServerError> {
    command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log_file(dir, log)?)
        .spawn()
        .map_err(|source| ServerError::Spawn {
            program: program.to_owned(),
            source,
        })
}

/// Polls `ready` every 50 ms until it holds; fails when one of `children` exits
/// first or after [`READY_WITHIN`].
pub(crate) fn wait_ready(
    children: &mut [Child],
    program: &str,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) -> Result<(), ServerError> {
    let deadline = Instant::now() + READY_WITHIN;
    while !ready() {
        for child in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ServerError::Exited {
                    program: program.to_owned(),
                    status,
                    log: log.to_owned(),
                });
            }
        }
        if Instant::now() > deadline {
            return Err(ServerError::NotReady {
                program: program.to_owned(),
                log: log.to_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// SIGTERM, [`STOP_GRACE`], SIGKILL, and always reaped. jackd needs the SIGTERM to
/// leave JACK's shared registry, which holds a few servers only.
pub(crate) fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // SAFETY: kill(2) with plain integers, on a child not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_GRACE;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(child);
}

/// SIGKILL (as a crash would end it) and reaped.
pub(crate) fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
