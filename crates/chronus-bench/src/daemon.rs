//! Starting, querying, signalling and stopping the real `chronusd`.

use anyhow::{Context, Result, anyhow, bail};
use chronus_osc::{OscMessage, OscPacket, OscType};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One `/chronus/status` reply, by key.
pub struct Status(HashMap<String, OscType>);

impl Status {
    /// A `/chronus/status.reply`, or `None` when it is not keys and values.
    pub fn from_reply(reply: &OscMessage) -> Option<Status> {
        let pairs = chronus_osc::status_pairs(reply).ok()?;
        Some(Status(pairs.into_iter().collect()))
    }

    /// An `i`, or a counter's exact decimal digits.
    pub fn int(&self, key: &str) -> Result<i64> {
        let value = self.0.get(key);
        value.and_then(chronus_osc::integer).ok_or_else(|| {
            anyhow!("status key {key} is {value:?}, expected an integer or its decimal digits")
        })
    }

    pub fn float(&self, key: &str) -> Result<f64> {
        match self.0.get(key) {
            Some(OscType::Float(v)) => Ok(f64::from(*v)),
            other => Err(anyhow!("status key {key} is {other:?}, expected a float")),
        }
    }

    pub fn string(&self, key: &str) -> Result<&str> {
        match self.0.get(key) {
            Some(OscType::String(v)) => Ok(v),
            other => Err(anyhow!("status key {key} is {other:?}, expected a string")),
        }
    }

    pub fn both_lockstep(&self) -> Result<bool> {
        Ok(self.string("slot0_state")? == "lockstep" && self.string("slot1_state")? == "lockstep")
    }

    pub fn slot_pid(&self, slot: i64) -> Result<i32> {
        let pid = self.int(&format!("slot{slot}_pid"))?;
        i32::try_from(pid)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| anyhow!("slot {slot} has no worker (pid {pid})"))
    }

    pub fn active_pid(&self) -> Result<i32> {
        self.slot_pid(self.int("active_slot")?)
    }
}

/// A running `chronusd`, killed and reaped on drop if still alive.
pub struct Daemon {
    child: Child,
    osc: SocketAddr,
    log: PathBuf,
}

/// What a daemon records when asked to.
pub struct Recording {
    pub wav: PathBuf,
    pub journal: PathBuf,
}

impl Recording {
    pub fn in_dir(dir: &Path) -> Recording {
        Recording {
            wav: dir.join("out.wav"),
            journal: dir.join("journal.osc"),
        }
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (chronusd binds both on the OSC port).
pub fn free_osc_port() -> Result<u16> {
    for _ in 0..50 {
        let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both UDP and TCP after 50 tries")
}

/// One `/chronus/status` request to the daemon listening on `osc`, or `None` when
/// no reply came within 500 ms.
pub fn query_status(osc: SocketAddr) -> Option<Status> {
    let packet = OscPacket::Message(OscMessage {
        addr: chronus_osc::STATUS_ADDR.into(),
        args: vec![],
    });
    let reply = chronus_osc::request(
        osc,
        &packet,
        chronus_osc::STATUS_REPLY_ADDR,
        Duration::from_millis(500),
    )
    .ok()?;
    Status::from_reply(&reply)
}

impl Daemon {
    /// Starts `exe` on the null backend with an environment that is clean except for
    /// `PATH`, and waits until audio runs with both slots in lockstep.
    pub fn start(exe: &Path, dir: &Path, recording: Option<&Recording>) -> Result<Daemon> {
        Daemon::start_with_args(exe, dir, recording, &[])
    }

    /// [`Daemon::start`] with extra command-line arguments (e.g. `--set key=value`).
    pub fn start_with_args(
        exe: &Path,
        dir: &Path,
        recording: Option<&Recording>,
        args: &[String],
    ) -> Result<Daemon> {
        Daemon::spawn(exe, dir, recording, args, &[])
    }

    /// [`Daemon::start`] with extra environment variables (e.g. `CHRONUS_NUM_VOICES`).
    pub fn start_with_env(exe: &Path, dir: &Path, env: &[(&str, String)]) -> Result<Daemon> {
        Daemon::spawn(exe, dir, None, &[], env)
    }

    /// [`Daemon::start_with_env`] that also records (`CHRONUS_RECORD`, `CHRONUS_JOURNAL`).
    pub fn start_recording_with_env(
        exe: &Path,
        dir: &Path,
        recording: &Recording,
        env: &[(&str, String)],
    ) -> Result<Daemon> {
        Daemon::spawn(exe, dir, Some(recording), &[], env)
    }

    fn spawn(
        exe: &Path,
        dir: &Path,
        recording: Option<&Recording>,
        args: &[String],
        env: &[(&str, String)],
    ) -> Result<Daemon> {
        let port = free_osc_port()?;
        let log = dir.join("chronusd.log");
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CHRONUS_AUDIO_BACKEND", "null")
            // The bench's own `CHRONUS_*` settings reach every daemon it starts
            // (e.g. `CHRONUS_BUFFER_SIZE=64 scripts/bench`); each area's own win.
            .envs(
                std::env::vars_os()
                    .filter(|(k, _)| k.to_str().is_some_and(|k| k.starts_with("CHRONUS_"))),
            )
            .env("CHRONUS_OSC_PORT", port.to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .with_context(|| format!("creating {}", log.display()))?,
            );
        if let Some(r) = recording {
            cmd.env("CHRONUS_RECORD", &r.wav)
                .env("CHRONUS_JOURNAL", &r.journal);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut daemon = Daemon {
            child,
            osc: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        daemon.wait_until(
            "audio running with both slots in lockstep",
            Duration::from_secs(20),
            Duration::from_millis(5),
            |s| Ok(s.both_lockstep()? && s.int("frames")? > 0),
        )?;
        Ok(daemon)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Where the daemon listens for OSC (UDP and TCP).
    pub fn osc_addr(&self) -> SocketAddr {
        self.osc
    }

    /// Fails with the log's tail if the daemon has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(exit) = self.child.try_wait()? {
            bail!("chronusd exited ({exit}); log:\n{}", self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the daemon's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn try_status(&self) -> Option<Status> {
        query_status(self.osc)
    }

    pub fn status(&mut self) -> Result<Status> {
        self.wait_until(
            "a status reply",
            Duration::from_secs(5),
            Duration::ZERO,
            |_| Ok(true),
        )
    }

    /// Polls the status every `poll` until `cond` holds.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        poll: Duration,
        mut cond: impl FnMut(&Status) -> Result<bool>,
    ) -> Result<Status> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.child.try_wait()? {
                bail!(
                    "chronusd exited ({exit}) while waiting for {what}; log:\n{}",
                    self.log_tail()
                );
            }
            if let Some(s) = self.try_status()
                && cond(&s)?
            {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(poll);
        }
    }

    pub fn send(&self, addr: &str, args: Vec<OscType>) -> Result<()> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let packet = OscPacket::Message(OscMessage {
            addr: addr.into(),
            args,
        });
        socket.send_to(&chronus_osc::encode(&packet), self.osc)?;
        Ok(())
    }

    /// Plays a 1 kHz tone on voice 1.
    pub fn play_tone(&self) -> Result<()> {
        self.send("/mod/voice1/freq", vec![OscType::Float(1000.0)])?;
        self.send("/gate/voice1", vec![OscType::Int(1)])
    }

    /// Sends SIGTERM and waits up to 10 s for the exit status.
    pub fn stop(mut self) -> Result<ExitStatus> {
        signal(self.pid(), libc::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "chronusd did not exit within 10 s of SIGTERM; log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn signal(pid: i32, sig: i32) -> Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        bail!(
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of the daemon's `last_exit_mono_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_MONOTONIC is always available");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
