//! A private PipeWire: its own session bus, `pipewire` with a 48 kHz null sink named
//! `chronus`, and `wireplumber` to link streams, all in a scratch runtime directory
//! so nothing else on the box is touched; `pw-record` records the sink's monitor.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NULL_SINK: &str = r#"
context.properties = { default.clock.rate = 48000 }
context.objects = [
  { factory = adapter
    args = {
      factory.name = support.null-audio-sink
      node.name = chronus
      node.description = "Chronus test sink"
      media.class = Audio/Sink
      object.linger = true
      audio.position = [ FL FR ]
      audio.rate = 48000
    }
  }
]
"#;

/// The bus, the server and the session manager, killed (in reverse) when dropped.
pub struct PipeWire {
    children: Vec<Child>,
    bus: String,
    dir: PathBuf,
}

impl PipeWire {
    /// Starts them, or returns None (skipping) when PipeWire is not installed and
    /// not under CI.
    pub fn start(dir: &Path) -> Option<PipeWire> {
        if Command::new("pipewire").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "pipewire is not installed: scripts/deps.sh test installs it"
            );
            eprintln!("SKIPPED: pipewire is not installed (run scripts/deps.sh test)");
            return None;
        }
        let conf = dir.join("config/pipewire/pipewire.conf.d");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(conf.join("chronus-null-sink.conf"), NULL_SINK).unwrap();
        let runtime = dir.join("runtime");
        std::fs::create_dir_all(&runtime).unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        // WirePlumber needs a session bus; a private one keeps the test self-contained.
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log("dbus.log"))
            .spawn()
            .expect("dbus-daemon starts");
        let address = {
            use std::io::BufRead;
            let mut line = String::new();
            std::io::BufReader::new(bus.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            line.trim().to_owned()
        };
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        let mut pw = PipeWire {
            children: vec![bus],
            bus: address,
            dir: dir.to_owned(),
        };
        pw.start_server();
        Some(pw)
    }

    /// Starts the server and the session manager and waits until both answer.
    fn start_server(&mut self) {
        let log = |name: &str| std::fs::File::create(self.dir.join(name)).unwrap();
        for (program, log_name) in [
            ("pipewire", "pipewire.log"),
            ("wireplumber", "wireplumber.log"),
        ] {
            let child = self
                .command(program)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log(log_name))
                .spawn()
                .unwrap_or_else(|e| panic!("{program} starts: {e}"));
            self.children.push(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self.ready(program) {
                assert!(
                    Instant::now() < deadline,
                    "{program} did not come up; see {}",
                    self.dir.join(log_name).display()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Kills the server and the session manager (the bus stays), as a crash would.
    pub fn kill_server(&mut self) {
        for mut child in self.children.drain(1..).rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server and the session manager again, on the same socket.
    pub fn restart_server(&mut self) {
        for stale in [
            "pipewire-0",
            "pipewire-0.lock",
            "pipewire-0-manager",
            "pipewire-0-manager.lock",
        ] {
            let _ = std::fs::remove_file(self.dir.join("runtime").join(stale));
        }
        self.start_server();
    }

    /// A command that reaches this PipeWire and this bus only.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("XDG_RUNTIME_DIR", self.dir.join("runtime"))
            .env("PIPEWIRE_RUNTIME_DIR", self.dir.join("runtime"))
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("HOME", &self.dir)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env_remove("PIPEWIRE_REMOTE");
        command
    }

    /// The server answers and lists the sink; WirePlumber shows up as a client.
    fn ready(&self, program: &str) -> bool {
        let out = self
            .command("pw-cli")
            .args([
                "ls",
                if program == "pipewire" {
                    "Node"
                } else {
                    "Client"
                },
            ])
            .stderr(Stdio::null())
            .output();
        out.is_ok_and(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            if program == "pipewire" {
                text.contains("node.name = \"chronus\"")
            } else {
                text.to_lowercase().contains("wireplumber")
            }
        })
    }

    /// The environment chronusd needs to find this PipeWire.
    pub fn env(&self) -> (&'static str, String) {
        (
            "PIPEWIRE_RUNTIME_DIR",
            self.dir.join("runtime").display().to_string(),
        )
    }

    /// Records the sink's monitor into a 32-bit float stereo WAV at 48 kHz; stop it
    /// with SIGINT so it finishes the file.
    pub fn record(&self, wav: &Path) -> Child {
        self.command("pw-record")
            .args(["--target", "chronus", "--rate", "48000", "--channels", "2"])
            .args(["--format", "f32"])
            .arg(wav)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("pw-record.log")).unwrap())
            .spawn()
            .expect("pw-record starts")
    }
}

impl Drop for PipeWire {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
