//! A private JACK server: jackd2 with the dummy driver under a server name of its
//! own (so nothing else on the box is touched), and `jack_rec` recording ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running jackd, killed when dropped.
pub struct Jack {
    pub child: Child,
    /// The server's name, for JACK_DEFAULT_SERVER.
    pub name: String,
    dir: PathBuf,
}

impl Jack {
    /// Starts jackd at 48 kHz with `period` frames, or returns None (skipping) when
    /// it is not installed and not under CI.
    pub fn start(dir: &Path, period: u32) -> Option<Jack> {
        Jack::start_at(dir, 48_000, period)
    }

    /// As [`Jack::start`], at `rate` Hz.
    pub fn start_at(dir: &Path, rate: u32, period: u32) -> Option<Jack> {
        if Command::new("jackd").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "jackd is not installed: scripts/deps.sh test installs it"
            );
            eprintln!("SKIPPED: jackd is not installed (run scripts/deps.sh test)");
            return None;
        }
        let name = format!("chronus-test-{}", std::process::id());
        let child = Command::new("jackd")
            .args(["--no-realtime", "-n", &name, "-d", "dummy"])
            .args(["-r", &rate.to_string(), "-p", &period.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("jackd.log")).unwrap())
            .spawn()
            .expect("jackd starts");
        let jack = Jack {
            child,
            name,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !jack.ports().iter().any(|p| p == "system:playback_1") {
            assert!(
                Instant::now() < deadline,
                "jackd did not come up; see {}",
                dir.join("jackd.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(jack)
    }

    /// The environment a client of this server needs.
    pub fn env(&self) -> (&'static str, String) {
        ("JACK_DEFAULT_SERVER", self.name.clone())
    }

    /// Every port's name, as `jack_lsp` prints them.
    pub fn ports(&self) -> Vec<String> {
        self.lsp(&[])
    }

    /// `jack_lsp ARGS` output lines.
    pub fn lsp(&self, args: &[&str]) -> Vec<String> {
        Command::new("jack_lsp")
            .args(args)
            .env("JACK_DEFAULT_SERVER", &self.name)
            .env("JACK_NO_START_SERVER", "1")
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records `ports` as 32-bit WAV with `jack_rec` until the child is signalled.
    pub fn record(&self, out: &Path, ports: &[&str]) -> Child {
        Command::new("jack_rec")
            .arg("-f")
            .arg(out)
            .args(["-b", "32", "-d", "3600"])
            .args(ports)
            .env("JACK_DEFAULT_SERVER", &self.name)
            .env("JACK_NO_START_SERVER", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("jack_rec.log")).unwrap())
            .spawn()
            .expect("jack_rec starts")
    }
}

/// The frames of a WAV `jack_rec` wrote (32-bit integer PCM), as (left, right).
/// Stopped by a signal, jack_rec leaves the header's sizes at zero: the samples run
/// from the data chunk to the end of the file.
pub fn read_jack_rec(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let data = bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("a data chunk")
        + 8;
    let samples: Vec<f32> = bytes[data..]
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32 / 2_147_483_648.0)
        .collect();
    let left = samples.chunks_exact(2).map(|f| f[0]).collect();
    let right = samples.chunks_exact(2).map(|f| f[1]).collect();
    (left, right)
}

impl Jack {
    /// Stops jackd with SIGTERM, as a service manager does: it unregisters itself.
    /// A SIGKILLed jackd leaves its entry in JACK's shared registry, which holds a few
    /// servers only ("Too many servers already active" after enough of them).
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        super::signal(self.child.id() as i32, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

impl Drop for Jack {
    fn drop(&mut self) {
        self.stop();
    }
}
