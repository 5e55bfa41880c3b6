//! Failures and the sysexits(3) codes that tell them apart.

use std::process::ExitCode;

/// `status --check` found a problem.
pub const UNHEALTHY: u8 = 1;
/// The command line was wrong (clap's usage errors).
pub const USAGE: u8 = 64;
/// chronusd understood the request and refused it (`/chronus/fail`).
pub const DATAERR: u8 = 65;
/// An input file (a score) could not be read.
pub const NOINPUT: u8 = 66;
/// `--host` did not resolve.
pub const NOHOST: u8 = 68;
/// No reply: chronusd is not running, not listening there, or too slow.
pub const UNAVAILABLE: u8 = 69;
/// A local socket or stdout failed.
pub const IOERR: u8 = 74;
/// chronusd replied with something that is not the documented reply.
pub const PROTOCOL: u8 = 76;

#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code,
            error: error.into(),
        }
    }

    /// Prints the error with its causes on stderr and gives the exit code.
    pub fn report(self) -> ExitCode {
        eprintln!("chronusctl: {:#}", self.error);
        ExitCode::from(self.code)
    }
}

/// Prints clap's message; help and version are successes, anything else is a usage error.
pub fn usage(error: &clap::Error) -> ExitCode {
    // Nothing better to do if even stderr is gone.
    let _ = error.print();
    if error.use_stderr() {
        ExitCode::from(USAGE)
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes `text` to stdout, reporting a closed pipe instead of panicking as `print!` would.
pub fn write_stdout(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::new(IOERR, anyhow::Error::new(e).context("writing to stdout")))
}
