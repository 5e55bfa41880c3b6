//! A private PulseAudio server: a 48 kHz null sink named `chronus`, reached through its
//! own socket in a scratch directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PulseAudio, killed when dropped.
pub struct Pulse {
    pub child: Child,
    /// For PULSE_SERVER and `--server`.
    pub server: String,
    dir: PathBuf,
}

impl Pulse {
    /// Starts PulseAudio, or returns None (skipping) when it is not installed and not under CI.
    pub fn start(dir: &Path) -> Option<Pulse> {
        if Command::new("pulseaudio")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "pulseaudio is not installed: scripts/deps.sh test installs it"
            );
            eprintln!("SKIPPED: pulseaudio is not installed (run scripts/deps.sh test)");
            return None;
        }
        let socket = dir.join("native");
        let child = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "-n",
                "--use-pid-file=no",
                "--disallow-module-loading",
            ])
            .arg("--load=module-null-sink sink_name=chronus rate=48000 channels=2 format=float32le")
            .arg(format!(
                "--load=module-native-protocol-unix socket={} auth-anonymous=1",
                socket.display()
            ))
            .env("XDG_RUNTIME_DIR", dir)
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("pulseaudio.log")).unwrap())
            .spawn()
            .expect("pulseaudio starts");
        let pulse = Pulse {
            child,
            server: format!("unix:{}", socket.display()),
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pulse.pactl_ok() {
            assert!(
                Instant::now() < deadline,
                "PulseAudio did not come up; see {}",
                dir.join("pulseaudio.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(pulse)
    }

    fn pactl_ok(&self) -> bool {
        Command::new("pactl")
            .args(["--server", &self.server, "info"])
            .env("HOME", &self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn record(&self, out: &Path) -> Child {
        Command::new("parec")
            .args([
                "--server",
                &self.server,
                "-d",
                "chronus.monitor",
                "--format=float32le",
                "--rate=48000",
                "--channels=2",
                "--raw",
            ])
            .env("HOME", &self.dir)
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(std::fs::File::create(self.dir.join("parec.log")).unwrap())
            .spawn()
            .expect("parec starts")
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
