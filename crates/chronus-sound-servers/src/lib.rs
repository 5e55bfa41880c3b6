//! Private sound servers, started for one test or one benchmark run and stopped when
//! dropped: PulseAudio ([`Pulse`]), PipeWire with WirePlumber ([`PipeWire`]) and jackd2
//! with the dummy driver ([`Jack`]). Each lives in a scratch directory and is reached
//! only through the commands it builds, so nothing else on the box is touched; each
//! offers a sink or playback ports named `chronus` at [`RATE`], a recorder of what
//! reaches them, and [`recording`] reads what the recorders wrote.

mod child;
pub mod jack;
pub mod pipewire;
pub mod pulse;
pub mod recording;

pub use jack::Jack;
pub use pipewire::PipeWire;
pub use pulse::Pulse;

use std::path::PathBuf;
use std::process::{Command, ExitStatus};

/// The servers' sample rate (JACK's can be chosen).
pub const RATE: u32 = 48_000;

/// The sink (PulseAudio, PipeWire) the daemon is pointed at.
pub const SINK: &str = "chronus";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start {program} (scripts/deps.sh test installs it): {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} exited ({status}) while starting; see {}", log.display())]
    Exited {
        program: String,
        status: ExitStatus,
        log: PathBuf,
    },
    #[error("{program} did not come up within 10 s; see {}", log.display())]
    NotReady { program: String, log: PathBuf },
    #[error("preparing {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Whether `program` can be run (it answers `--version`).
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}
