//! Which device buffer plays clean on which sound system while the machine is busy:
//! for each host (a private PulseAudio, PipeWire and JACK server the bench starts,
//! each with a 48 kHz null sink) and each buffer size, a release daemon plays a
//! steady 1 kHz tone for a while with every core kept busy by spinning threads, the
//! server's side is recorded (`parec`, `pw-record`, `jack_rec`), and every break in
//! the tone is counted.

use crate::daemon::{Daemon, signal};
use anyhow::{Context, Result, bail};
use chronus_sound_servers::jack::JackSettings;
use chronus_sound_servers::recording::{self, Format};
use chronus_sound_servers::{Jack, PipeWire, Pulse, RATE, SINK};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// 1 kHz at 48 kHz: the tone repeats every 48 samples.
const TONE_PERIOD: usize = 48;
/// A sample further than this from the one a period earlier is a break in the tone
/// (far above 16-bit quantization, far below any gap or click).
const GLITCH: f32 = 1e-3;

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

/// Waits until the tone reached the recording (streams start once buffers fill).
fn wait_for_tone(server: &Server, path: &Path) -> Result<()> {
    let (path, format) = server.recording(path);
    if !recording::wait_for_sound(&path, format, Duration::from_secs(20)) {
        bail!("the tone never reached {}", path.display());
    }
    Ok(())
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

/// A private sound server for one host (`chronus-sound-servers`), stopped when dropped.
pub(crate) struct Server {
    host: Host,
    running: Running,
}

enum Running {
    Pulse(Pulse),
    PipeWire(PipeWire),
    Jack(Jack),
}

impl Server {
    /// Starts the server `host` plays through in `dir`; JACK's period is `buffer`.
    pub(crate) fn start(host: Host, dir: &Path, buffer: u32) -> Result<Server> {
        let running = match host {
            Host::PulseAudio | Host::AlsaPulse => Running::Pulse(Pulse::start(dir)?),
            Host::PipeWire => Running::PipeWire(PipeWire::start(dir)?),
            // Realtime, as jackd runs on a studio box.
            Host::Jack => Running::Jack(Jack::start(
                dir,
                &JackSettings {
                    name: format!("chronus-bench-{}", std::process::id()),
                    rate: RATE,
                    period: buffer,
                    realtime: true,
                },
            )?),
        };
        Ok(Server { host, running })
    }

    /// jackd's process, when this is the JACK server.
    pub(crate) fn jackd_pid(&self) -> Option<i32> {
        match &self.running {
            Running::Jack(jack) => Some(jack.pid()),
            Running::Pulse(_) | Running::PipeWire(_) => None,
        }
    }

    pub(crate) fn daemon_env(&self) -> Vec<(&'static str, String)> {
        match (&self.running, self.host) {
            (Running::Pulse(pulse), Host::AlsaPulse) => vec![
                ("CHRONUS_AUDIO_HOST", "alsa".into()),
                ("CHRONUS_AUDIO_DEVICE", "pulse".into()),
                ("CHRONUS_PULSE_SERVER", pulse.address().to_owned()),
            ],
            (Running::Pulse(pulse), _) => vec![
                ("CHRONUS_AUDIO_HOST", "pulseaudio".into()),
                ("CHRONUS_AUDIO_DEVICE", SINK.into()),
                ("CHRONUS_PULSE_SERVER", pulse.address().to_owned()),
            ],
            (Running::PipeWire(pw), _) => vec![
                ("CHRONUS_AUDIO_HOST", "pipewire".into()),
                ("CHRONUS_AUDIO_DEVICE", SINK.into()),
                pw.env(),
            ],
            (Running::Jack(jack), _) => vec![("CHRONUS_AUDIO_HOST", "jack".into()), jack.env()],
        }
    }

    /// Records what the server receives from chronusd until SIGINT (a WAV beside
    /// `path` for PipeWire and JACK).
    fn record(&self, path: &Path) -> Result<Child> {
        Ok(match &self.running {
            Running::Pulse(pulse) => pulse.record(path)?,
            Running::PipeWire(pw) => pw.record(&path.with_extension("wav"))?,
            Running::Jack(jack) => jack.record(
                &path.with_extension("wav"),
                &["chronus:out_1", "chronus:out_2"],
            )?,
        })
    }

    /// The left channel of what [`Server::record`] wrote so far.
    fn read(&self, path: &Path) -> Result<Vec<f32>> {
        let (path, format) = self.recording(path);
        Ok(recording::left(&recording::read(&path, format)?))
    }

    /// Where [`Server::record`] writes for `path`, and how.
    fn recording(&self, path: &Path) -> (PathBuf, Format) {
        match self.running {
            Running::Pulse(_) => (path.to_owned(), Format::RawF32),
            Running::PipeWire(_) => (path.with_extension("wav"), Format::WavF32),
            Running::Jack(_) => (path.with_extension("wav"), Format::WavI32),
        }
    }
}
