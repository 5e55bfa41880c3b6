//! Which device buffer plays clean on which sound system while the machine is busy:
//! for each host (a private PulseAudio, PipeWire and JACK server the bench starts,
//! each with a 48 kHz null sink) and each buffer size, a release daemon plays a
//! steady 1 kHz tone for a while with every core kept busy by spinning threads, the
//! server's side is recorded (`parec`, `pw-record`, `jack_rec`), and every break in
//! the tone is counted.

use crate::daemon::{Daemon, signal};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// 1 kHz at 48 kHz: the tone repeats every 48 samples.
const TONE_PERIOD: usize = 48;
/// A sample further than this from the one a period earlier is a break in the tone
/// (far above 16-bit quantization, far below any gap or click).
const GLITCH: f32 = 1e-3;
const RATE: u32 = 48_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    PulseAudio,
    PipeWire,
    /// ALSA's `pulse` PCM: the ALSA host on a box whose ALSA default is a sound server.
    AlsaPulse,
    Jack,
}

impl Host {
    pub const ALL: [Host; 4] = [
        Host::PulseAudio,
        Host::PipeWire,
        Host::AlsaPulse,
        Host::Jack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Host::PulseAudio => "pulseaudio",
            Host::PipeWire => "pipewire",
            Host::AlsaPulse => "alsa (pulse PCM)",
            Host::Jack => "jack",
        }
    }
}

/// One host at one buffer size.
pub struct HostRun {
    pub host: Host,
    pub buffer: u32,
    /// Seconds of steady tone judged in the server's recording.
    pub judged_s: f64,
    /// Separate breaks in the tone (samples within a tone period count once).
    pub glitches: usize,
    pub underrun_frames: i64,
    pub xruns: i64,
    /// CPU seconds the machine's host took from it while the tone was judged.
    pub steal_s: Option<f64>,
}

pub struct HostsBench {
    pub runs: Vec<HostRun>,
    pub play: Duration,
    pub load_threads: usize,
    /// Hosts whose server could not be started here, with the reason.
    pub skipped: Vec<(Host, String)>,
}

pub fn run(
    exe: &Path,
    dir: &Path,
    buffers: &[u32],
    play: Duration,
    load_threads: usize,
) -> Result<HostsBench> {
    let mut bench = HostsBench {
        runs: Vec::new(),
        play,
        load_threads,
        skipped: Vec::new(),
    };
    for host in Host::ALL {
        for &buffer in buffers {
            let run_dir = dir.join(format!(
                "{}-{buffer}",
                host.name().replace([' ', '(', ')'], "")
            ));
            std::fs::create_dir_all(&run_dir)?;
            eprintln!("chronus-bench: {} at {buffer} frames", host.name());
            let server = match Server::start(host, &run_dir, buffer) {
                Ok(server) => server,
                Err(e) => {
                    bench.skipped.push((host, format!("{e:#}")));
                    break;
                }
            };
            bench.runs.push(play_once(
                exe,
                &run_dir,
                &server,
                buffer,
                play,
                load_threads,
            )?);
        }
    }
    Ok(bench)
}

fn play_once(
    exe: &Path,
    dir: &Path,
    server: &Server,
    buffer: u32,
    play: Duration,
    load_threads: usize,
) -> Result<HostRun> {
    let mut env = server.daemon_env();
    env.push(("CHRONUS_AUDIO_BACKEND", "cpal".into()));
    env.push(("CHRONUS_BUFFER_SIZE", buffer.to_string()));
    env.push(("HOME", dir.display().to_string()));
    let mut d = Daemon::start_with_env(exe, dir, &env)?;
    d.play_tone()?;
    let recording = dir.join("server.rec");
    let mut recorder = server.record(&recording)?;
    wait_for_tone(server, &recording)?;
    let before = d.status()?;
    let steal = crate::machine::Steal::now();
    let load = Load::start(load_threads);
    std::thread::sleep(play);
    drop(load);
    let steal_s = steal.since();
    let after = d.status()?;
    // The recorders hand on what they hold in whole fragments: stop well after.
    std::thread::sleep(Duration::from_millis(1500));
    signal(recorder.id() as i32, libc::SIGINT)?;
    let _ = recorder.wait();
    d.stop()?;
    let samples = server.read(&recording)?;
    let (judged, glitches) = count_glitches(&samples)?;
    Ok(HostRun {
        host: server.host,
        buffer,
        judged_s: judged as f64 / f64::from(RATE),
        glitches,
        underrun_frames: after.int("underrun_frames")? - before.int("underrun_frames")?,
        xruns: after.int("xruns")? - before.int("xruns")?,
        steal_s,
    })
}

/// Polls the recording until the tone reached it (streams start once buffers fill).
fn wait_for_tone(server: &Server, path: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if server
            .read(path)
            .is_ok_and(|s| s.iter().any(|x| x.abs() > 0.05))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the tone never reached {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// From half a second after the tone appears to the end: (frames judged, breaks).
fn count_glitches(left: &[f32]) -> Result<(usize, usize)> {
    let first = left
        .iter()
        .position(|x| x.abs() > 0.05)
        .context("the recording holds no tone")?;
    let from = first + RATE as usize / 2;
    let to = left.len().saturating_sub(RATE as usize / 10);
    if to <= from + RATE as usize {
        bail!("the recording holds under a second of steady tone");
    }
    let mut glitches = 0;
    let mut last: Option<usize> = None;
    for n in from..to {
        if (left[n] - left[n - TONE_PERIOD]).abs() > GLITCH {
            if last.is_none_or(|l| n - l > TONE_PERIOD) {
                glitches += 1;
            }
            last = Some(n);
        }
    }
    Ok((to - from, glitches))
}

/// Threads that keep every core busy until dropped: a box doing other work.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(n: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A private sound server and what it took to start it, stopped when dropped.
pub(crate) struct Server {
    host: Host,
    dir: PathBuf,
    children: Vec<Child>,
    /// PulseAudio's socket, PipeWire's session bus, JACK's server name.
    address: String,
}

const PIPEWIRE_NULL_SINK: &str = r#"
context.properties = { default.clock.rate = 48000 }
context.objects = [
  { factory = adapter
    args = {
      factory.name = support.null-audio-sink
      node.name = chronus
      node.description = "Chronus bench sink"
      media.class = Audio/Sink
      object.linger = true
      audio.position = [ FL FR ]
      audio.rate = 48000
    }
  }
]
"#;

impl Server {
    pub(crate) fn start(host: Host, dir: &Path, buffer: u32) -> Result<Server> {
        let log = |name: &str| -> Result<std::fs::File> {
            std::fs::File::create(dir.join(name)).with_context(|| format!("creating {name}"))
        };
        let mut server = Server {
            host,
            dir: dir.to_owned(),
            children: Vec::new(),
            address: String::new(),
        };
        match host {
            Host::PulseAudio | Host::AlsaPulse => {
                let socket = dir.join("native");
                server.children.push(
                    Command::new("pulseaudio")
                        .args(["--daemonize=no", "--exit-idle-time=-1", "-n"])
                        .args(["--use-pid-file=no", "--disallow-module-loading"])
                        .arg(
                            "--load=module-null-sink sink_name=chronus rate=48000 channels=2 \
                             format=float32le",
                        )
                        .arg(format!(
                            "--load=module-native-protocol-unix socket={} auth-anonymous=1",
                            socket.display()
                        ))
                        .env("XDG_RUNTIME_DIR", dir)
                        .env("HOME", dir)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(log("pulseaudio.log")?)
                        .spawn()
                        .context("starting pulseaudio (scripts/deps.sh test installs it)")?,
                );
                server.address = format!("unix:{}", socket.display());
                server.wait_ready(|s| s.command("pactl").arg("info").output())?;
            }
            Host::PipeWire => {
                let conf = dir.join("config/pipewire/pipewire.conf.d");
                std::fs::create_dir_all(&conf)?;
                std::fs::write(conf.join("chronus-null-sink.conf"), PIPEWIRE_NULL_SINK)?;
                std::fs::create_dir_all(dir.join("runtime"))?;
                let mut bus = Command::new("dbus-daemon")
                    .args(["--session", "--nofork", "--print-address=1"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(log("dbus.log")?)
                    .spawn()
                    .context("starting dbus-daemon (scripts/deps.sh test installs it)")?;
                let mut line = String::new();
                std::io::BufRead::read_line(
                    &mut std::io::BufReader::new(bus.stdout.take().context("bus stdout")?),
                    &mut line,
                )?;
                server.children.push(bus);
                server.address = line.trim().to_owned();
                for program in ["pipewire", "wireplumber"] {
                    let child = server
                        .command(program)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(log(&format!("{program}.log"))?)
                        .spawn()
                        .with_context(|| {
                            format!("starting {program} (scripts/deps.sh test installs it)")
                        })?;
                    server.children.push(child);
                    let what = if program == "pipewire" {
                        ("Node", "node.name = \"chronus\"")
                    } else {
                        ("Client", "wireplumber")
                    };
                    server.wait_ready(|s| {
                        let out = s.command("pw-cli").args(["ls", what.0]).output()?;
                        if String::from_utf8_lossy(&out.stdout)
                            .to_lowercase()
                            .contains(what.1)
                        {
                            Ok(out)
                        } else {
                            Err(std::io::Error::other("not yet"))
                        }
                    })?;
                }
            }
            Host::Jack => {
                server.address = format!("chronus-bench-{}", std::process::id());
                // Realtime, as jackd runs on a studio box.
                server.children.push(
                    Command::new("jackd")
                        .args(["-R", "-n", &server.address, "-d", "dummy"])
                        .args(["-r", &RATE.to_string(), "-p", &buffer.to_string()])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(log("jackd.log")?)
                        .spawn()
                        .context("starting jackd (scripts/deps.sh test installs it)")?,
                );
                server.wait_ready(|s| {
                    let out = s.command("jack_lsp").output()?;
                    if String::from_utf8_lossy(&out.stdout).contains("system:playback_1") {
                        Ok(out)
                    } else {
                        Err(std::io::Error::other("not yet"))
                    }
                })?;
            }
        }
        Ok(server)
    }

    /// A command that reaches this server only.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("HOME", &self.dir).stderr(Stdio::null());
        match self.host {
            Host::PulseAudio | Host::AlsaPulse => {
                command.env("PULSE_SERVER", &self.address);
            }
            Host::PipeWire => {
                let runtime = self.dir.join("runtime");
                command
                    .env("XDG_RUNTIME_DIR", &runtime)
                    .env("PIPEWIRE_RUNTIME_DIR", &runtime)
                    .env("XDG_CONFIG_HOME", self.dir.join("config"))
                    .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                    .env_remove("PIPEWIRE_REMOTE");
            }
            Host::Jack => {
                command
                    .env("JACK_DEFAULT_SERVER", &self.address)
                    .env("JACK_NO_START_SERVER", "1");
            }
        }
        command
    }

    fn wait_ready(
        &mut self,
        ready: impl Fn(&Server) -> std::io::Result<std::process::Output>,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready(self).is_ok_and(|o| o.status.success()) {
            for child in &mut self.children {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "the {} server exited ({status}); see its log in {}",
                        self.host.name(),
                        self.dir.display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the {} server did not come up; see its log in {}",
                    self.host.name(),
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The server process (for JACK, jackd; for PipeWire, the bus comes first).
    pub(crate) fn first_pid(&self) -> Option<i32> {
        self.children.first().map(|c| c.id() as i32)
    }

    pub(crate) fn daemon_env(&self) -> Vec<(&'static str, String)> {
        match self.host {
            Host::PulseAudio => vec![
                ("CHRONUS_AUDIO_HOST", "pulseaudio".into()),
                ("CHRONUS_AUDIO_DEVICE", "chronus".into()),
                ("CHRONUS_PULSE_SERVER", self.address.clone()),
            ],
            Host::AlsaPulse => vec![
                ("CHRONUS_AUDIO_HOST", "alsa".into()),
                ("CHRONUS_AUDIO_DEVICE", "pulse".into()),
                ("CHRONUS_PULSE_SERVER", self.address.clone()),
            ],
            Host::PipeWire => vec![
                ("CHRONUS_AUDIO_HOST", "pipewire".into()),
                ("CHRONUS_AUDIO_DEVICE", "chronus".into()),
                (
                    "PIPEWIRE_RUNTIME_DIR",
                    self.dir.join("runtime").display().to_string(),
                ),
            ],
            Host::Jack => vec![
                ("CHRONUS_AUDIO_HOST", "jack".into()),
                ("JACK_DEFAULT_SERVER", self.address.clone()),
            ],
        }
    }

    /// Records what the server receives from chronusd until SIGINT.
    fn record(&self, path: &Path) -> Result<Child> {
        let out = std::fs::File::create(path)?;
        let mut command = match self.host {
            Host::PulseAudio | Host::AlsaPulse => {
                let mut c = self.command("parec");
                c.args([
                    "-d",
                    "chronus.monitor",
                    "--format=float32le",
                    "--rate=48000",
                ])
                .args(["--channels=2", "--raw"])
                .stdout(out);
                c
            }
            Host::PipeWire => {
                let mut c = self.command("pw-record");
                c.args(["--target", "chronus", "--rate", "48000", "--channels", "2"])
                    .args(["--format", "f32"])
                    .arg(path.with_extension("wav"))
                    .stdout(Stdio::null());
                c
            }
            Host::Jack => {
                let mut c = self.command("jack_rec");
                c.arg("-f")
                    .arg(path.with_extension("wav"))
                    .args(["-b", "32", "-d", "3600", "chronus:out_1", "chronus:out_2"])
                    .stdout(Stdio::null());
                c
            }
        };
        command
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting the {} recorder", self.host.name()))
    }

    /// The left channel of a recording, as floats.
    fn read(&self, path: &Path) -> Result<Vec<f32>> {
        let (bytes, int) = match self.host {
            Host::PulseAudio | Host::AlsaPulse => (std::fs::read(path)?, false),
            // pw-record writes a float WAV, jack_rec a 32-bit integer one; stopped by a
            // signal either may leave the header's sizes unset: read to the end.
            Host::PipeWire | Host::Jack => {
                let bytes = std::fs::read(path.with_extension("wav"))?;
                let data = bytes
                    .windows(4)
                    .position(|w| w == b"data")
                    .context("no data chunk yet")?
                    + 8;
                (
                    bytes[data.min(bytes.len())..].to_vec(),
                    self.host == Host::Jack,
                )
            }
        };
        Ok(bytes
            .chunks_exact(8)
            .map(|frame| {
                let b: [u8; 4] = frame[..4].try_into().expect("four bytes");
                if int {
                    i32::from_le_bytes(b) as f32 / 2_147_483_648.0
                } else {
                    f32::from_le_bytes(b)
                }
            })
            .collect())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            // SIGTERM first: jackd then leaves JACK's shared registry.
            let _ = signal(child.id() as i32, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
