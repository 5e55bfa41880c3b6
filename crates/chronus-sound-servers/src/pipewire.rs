//! A private PipeWire: its own session bus, `pipewire` with a 48 kHz null sink named
//! `chronus`, and `wireplumber` to link streams, all in a runtime directory of its
//! own; `pw-record` records the sink's monitor.

use crate::child::{self, log_file};
use crate::{RATE, ServerError};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const NULL_SINK: &str = r#"
context.properties = { default.clock.rate = 48000 }
context.objects = [
  { factory = adapter
    args = {
      factory.name = support.null-audio-sink
      node.name = chronus
      node.description = "Chronus sink"
      media.class = Audio/Sink
      object.linger = true
      audio.position = [ FL FR ]
      audio.rate = 48000
    }
  }
]
"#;

/// The bus, the server and the session manager, stopped (in reverse) when dropped.
pub struct PipeWire {
    /// The bus first, then the server and the session manager.
    children: Vec<Child>,
    bus: String,
    dir: PathBuf,
}

impl PipeWire {
    /// Starts the bus, the server and the session manager in `dir` and waits until
    /// the server lists the sink and WirePlumber shows up as its client.
    pub fn start(dir: &Path) -> Result<PipeWire, ServerError> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| ServerError::Io { what, source }
        };
        let conf = dir.join("config/pipewire/pipewire.conf.d");
        std::fs::create_dir_all(&conf).map_err(io("PipeWire's configuration"))?;
        std::fs::write(conf.join("chronus-null-sink.conf"), NULL_SINK)
            .map_err(io("PipeWire's configuration"))?;
        std::fs::create_dir_all(dir.join("runtime")).map_err(io("PipeWire's runtime"))?;
        // WirePlumber needs a session bus; a private one keeps the server to itself.
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(dir, "dbus.log")?)
            .spawn()
            .map_err(|source| ServerError::Spawn {
                program: "dbus-daemon".into(),
                source,
            })?;
        let mut line = String::new();
        if let Some(out) = bus.stdout.take() {
            std::io::BufReader::new(out)
                .read_line(&mut line)
                .map_err(io("the bus address"))?;
        }
        let mut pw = PipeWire {
            children: vec![bus],
            bus: line.trim().to_owned(),
            dir: dir.to_owned(),
        };
        if pw.bus.is_empty() {
            return Err(ServerError::NotReady {
                program: "dbus-daemon".into(),
                log: dir.join("dbus.log"),
            });
        }
        pw.start_server()?;
        Ok(pw)
    }

    /// Starts the server and the session manager and waits until both answer.
    fn start_server(&mut self) -> Result<(), ServerError> {
        for program in ["pipewire", "wireplumber"] {
            let log = format!("{program}.log");
            let child = child::spawn(
                &mut self.command(program),
                program,
                &self.dir,
                &log,
                Stdio::null(),
            )?;
            self.children.push(child);
            let (kind, sign) = if program == "pipewire" {
                ("Node", "node.name = \"chronus\"")
            } else {
                ("Client", "wireplumber")
            };
            let (bus, dir) = (self.bus.clone(), self.dir.clone());
            child::wait_ready(&mut self.children, program, &self.dir.join(&log), || {
                command(&bus, &dir, "pw-cli")
                    .args(["ls", kind])
                    .output()
                    .is_ok_and(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .to_lowercase()
                            .contains(sign)
                    })
            })?;
        }
        Ok(())
    }

    /// Kills the server and the session manager (the bus stays), as a crash would.
    pub fn kill_server(&mut self) {
        for mut child in self.children.drain(1..).rev() {
            child::kill(&mut child);
        }
    }

    /// Starts the server and the session manager again, on the same socket.
    pub fn restart_server(&mut self) -> Result<(), ServerError> {
        for stale in [
            "pipewire-0",
            "pipewire-0.lock",
            "pipewire-0-manager",
            "pipewire-0-manager.lock",
        ] {
            let _ = std::fs::remove_file(self.runtime_dir().join(stale));
        }
        self.start_server()
    }

    /// Where clients find the server's socket.
    fn runtime_dir(&self) -> PathBuf {
        self.dir.join("runtime")
    }

    /// The variable chronusd (or any client) needs to find this PipeWire.
    pub fn env(&self) -> (&'static str, String) {
        (
            "PIPEWIRE_RUNTIME_DIR",
            self.runtime_dir().display().to_string(),
        )
    }

    /// A command that reaches this PipeWire and this bus only.
    fn command(&self, program: &str) -> Command {
        command(&self.bus, &self.dir, program)
    }

    /// Records the sink's monitor into a 32-bit float stereo WAV at 48 kHz; stop it
    /// with SIGINT so that it finishes the file.
    pub fn record(&self, wav: &Path) -> Result<Child, ServerError> {
        child::spawn(
            self.command("pw-record")
                .args(["--target", crate::SINK, "--rate", &RATE.to_string()])
                .args(["--channels", "2", "--format", "f32"])
                .arg(wav),
            "pw-record",
            &self.dir,
            "pw-record.log",
            Stdio::null(),
        )
    }
}

fn command(bus: &str, dir: &Path, program: &str) -> Command {
    let runtime = dir.join("runtime");
    let mut command = Command::new(program);
    command
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("PIPEWIRE_RUNTIME_DIR", &runtime)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("HOME", dir)
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .env_remove("PIPEWIRE_REMOTE")
        .stderr(Stdio::null());
    command
}

impl Drop for PipeWire {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            child::stop(child);
        }
    }
}
