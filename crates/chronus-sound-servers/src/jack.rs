//! A private JACK server: jackd2 with the dummy driver under a server name of its
//! own (so that no other JACK server on the box is touched), and `jack_rec`
//! recording ports.

use crate::ServerError;
use crate::child;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// How a [`Jack`] is started.
#[derive(Clone, Debug)]
pub struct JackSettings {
    /// The server's name (`jackd -n`), what `JACK_DEFAULT_SERVER` names.
    pub name: String,
    pub rate: u32,
    /// Frames per period.
    pub period: u32,
    /// `-R` as on a studio box; without it jackd runs at normal priority.
    pub realtime: bool,
}

/// A running jackd, stopped with SIGTERM when dropped.
pub struct Jack {
    child: Child,
    name: String,
    dir: PathBuf,
}

impl Jack {
    /// Starts jackd in `dir` and waits until it lists its playback ports.
    pub fn start(dir: &Path, settings: &JackSettings) -> Result<Jack, ServerError> {
        let mut jackd = Command::new("jackd");
        jackd
            .arg(if settings.realtime {
                "-R"
            } else {
                "--no-realtime"
            })
            .args(["-n", &settings.name, "-d", "dummy"])
            .args(["-r", &settings.rate.to_string()])
            .args(["-p", &settings.period.to_string()]);
        let mut jack = Jack {
            child: child::spawn(&mut jackd, "jackd", dir, "jackd.log", Stdio::null())?,
            name: settings.name.clone(),
            dir: dir.to_owned(),
        };
        let name = jack.name.clone();
        child::wait_ready(
            std::slice::from_mut(&mut jack.child),
            "jackd",
            &dir.join("jackd.log"),
            || lsp(&name, &[]).iter().any(|p| p == "system:playback_1"),
        )?;
        Ok(jack)
    }

    /// jackd's process.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The variable a client of this server needs.
    pub fn env(&self) -> (&'static str, String) {
        ("JACK_DEFAULT_SERVER", self.name.clone())
    }

    /// `jack_lsp ARGS` output lines.
    pub fn lsp(&self, args: &[&str]) -> Vec<String> {
        lsp(&self.name, args)
    }

    /// Records `ports` with `jack_rec` into a 32-bit integer WAV until the recorder
    /// is signalled.
    pub fn record(&self, wav: &Path, ports: &[&str]) -> Result<Child, ServerError> {
        child::spawn(
            command(&self.name, "jack_rec")
                .arg("-f")
                .arg(wav)
                .args(["-b", "32", "-d", "3600"])
                .args(ports),
            "jack_rec",
            &self.dir,
            "jack_rec.log",
            Stdio::null(),
        )
    }

    /// Stops jackd with SIGTERM, as a service manager does, so that it leaves JACK's
    /// shared registry: a SIGKILLed jackd stays in it, and the registry holds a few
    /// servers only ("Too many servers already active" after enough of them).
    pub fn stop(&mut self) {
        child::stop(&mut self.child);
    }
}

fn command(name: &str, program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("JACK_DEFAULT_SERVER", name)
        .env("JACK_NO_START_SERVER", "1")
        .stderr(Stdio::null());
    command
}

fn lsp(name: &str, args: &[&str]) -> Vec<String> {
    command(name, "jack_lsp")
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Jack {
    fn drop(&mut self) {
        self.stop();
    }
}
