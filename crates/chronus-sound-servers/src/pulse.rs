//! A private PulseAudio: a 48 kHz float null sink named `chronus`, reached through
//! its own socket in the scratch directory.

use crate::child;
use crate::{RATE, SINK, ServerError};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running PulseAudio, stopped when dropped.
pub struct Pulse {
    child: Child,
    /// `unix:<socket>`, for `PULSE_SERVER` and `--server`.
    address: String,
    dir: PathBuf,
}

impl Pulse {
    /// Starts PulseAudio in `dir` and waits until `pactl` reaches it.
    pub fn start(dir: &Path) -> Result<Pulse, ServerError> {
        let socket = dir.join("native");
        let mut child = child::spawn(
            Command::new("pulseaudio")
                .args(["--daemonize=no", "--exit-idle-time=-1", "-n"])
                .args(["--use-pid-file=no", "--disallow-module-loading"])
                .arg(format!(
                    "--load=module-null-sink sink_name={SINK} rate={RATE} channels=2 \
                     format=float32le"
                ))
                .arg(format!(
                    "--load=module-native-protocol-unix socket={} auth-anonymous=1",
                    socket.display()
                ))
                .env("XDG_RUNTIME_DIR", dir)
                .env("HOME", dir),
            "pulseaudio",
            dir,
            "pulseaudio.log",
            Stdio::null(),
        )?;
        let address = format!("unix:{}", socket.display());
        let ready = child::wait_ready(
            std::slice::from_mut(&mut child),
            "pulseaudio",
            &dir.join("pulseaudio.log"),
            || {
                command(&address, dir, "pactl")
                    .arg("info")
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
        );
        let pulse = Pulse {
            child,
            address,
            dir: dir.to_owned(),
        };
        ready.map(|()| pulse)
    }

    /// `unix:<socket>`: what `PULSE_SERVER` (and chronusd's `audio.pulse_server`)
    /// names to reach this server.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The server's process, for signals (a test stops and continues it).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A command that reaches this server only.
    fn command(&self, program: &str) -> Command {
        command(&self.address, &self.dir, program)
    }

    /// Makes the sink's monitor the default source: an input opened on this server
    /// then hears what the sink plays (speech recognition tests listen to the
    /// daemon's own output this way).
    pub fn hear_the_sink_as_default_source(&self) -> Result<(), ServerError> {
        let status = self
            .command("pactl")
            .args(["set-default-source", &format!("{SINK}.monitor")])
            .status()
            .map_err(|source| ServerError::Spawn {
                program: "pactl".into(),
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(ServerError::Io {
                what: "the default source".into(),
                source: std::io::Error::other(format!("pactl set-default-source: {status}")),
            })
        }
    }

    /// Records the sink's monitor as raw interleaved stereo f32 (little-endian) at
    /// 48 kHz into `out` until the recorder is signalled.
    pub fn record(&self, out: &Path) -> Result<Child, ServerError> {
        let file = std::fs::File::create(out).map_err(|source| ServerError::Io {
            what: format!("the recording {}", out.display()),
            source,
        })?;
        child::spawn(
            self.command("parec")
                .args(["-d", &format!("{SINK}.monitor"), "--format=float32le"])
                .args([&format!("--rate={RATE}"), "--channels=2", "--raw"]),
            "parec",
            &self.dir,
            "parec.log",
            file.into(),
        )
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        child::kill(&mut self.child);
    }
}

fn command(address: &str, dir: &Path, program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("PULSE_SERVER", address)
        .env("HOME", dir)
        .stderr(Stdio::null());
    command
}

impl Drop for Pulse {
    fn drop(&mut self) {
        child::stop(&mut self.child);
    }
}
