//! Choosing and opening the output: cpal, or the timer-clocked null backend.

use crate::callback::SharedReader;
use crate::null::NullOutput;
use crate::record::Recorder;
use crate::take::{TakeTap, Takes};
use crate::{AudioError, OutputReader};
use chronus_shm::{CHANNELS, Region, realtime};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest device callback converted in one piece; larger ones are split.
const SCRATCH_FRAMES: usize = 8192;

/// Stream errors other than xruns, as the stream's thread saw them.
#[derive(Default)]
pub(crate) struct StreamErrors {
    count: AtomicU64,
    last_kind: AtomicU32,
    /// The audio thread could not get realtime scheduling.
    realtime_denied: AtomicBool,
    /// An error said the device or its server is gone.
    gone: AtomicBool,
}

impl StreamErrors {
    pub(crate) const HOST_UNAVAILABLE: u32 = 3;
    pub(crate) const UNSUPPORTED_CONFIG: u32 = 7;

    /// Counts an error of `kind` (see [`Output::stream_errors`]); wait-free.
    pub(crate) fn record(&self, kind: u32) {
        self.last_kind.store(kind, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        // Device not available, host unavailable, stream invalidated.
        if matches!(kind, 2 | 3 | 6) {
            self.gone.store(true, Ordering::Relaxed);
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.last_kind.load(Ordering::Relaxed) {
            1 => "device busy",
            2 => "device not available",
            3 => "host unavailable",
            4 => "invalid input",
            5 => "permission denied",
            6 => "stream invalidated",
            7 => "unsupported configuration",
            8 => "backend error",
            9 => "realtime scheduling denied",
            10 => "unsupported operation",
            11 => "resource exhausted",
            _ => "other",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// cpal, falling back to null with a warning when no device opens.
    Auto,
    Cpal,
    Null,
}

/// The sound system the device backend plays through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostChoice {
    /// JACK when a JACK server runs, else PipeWire when it runs, else PulseAudio
    /// when it runs, else ALSA.
    Auto,
    Alsa,
    Jack,
    PipeWire,
    PulseAudio,
}

#[derive(Clone, Debug)]
pub struct OutputOptions {
    pub backend: BackendChoice,
    pub host: HostChoice,
    /// The JACK client's name.
    pub jack_client_name: String,
    /// Output device name (as cpal lists it); the default device when `None`.
    pub device: Option<String>,
    pub sample_rate: u32,
    pub buffer_frames: u32,
    /// Where to record a WAV of the output.
    pub record: Option<PathBuf>,
}

#[expect(dead_code, reason = "held only so that dropping it stops the device")]
enum Backend {
    Cpal(cpal::Stream),
    Jack(crate::jack::JackOutput),
    Null(NullOutput),
}

/// A backend running, and what it plays through.
struct Opened {
    backend: Backend,
    host: &'static str,
    device: String,
}

/// What became of the device, as its thread reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The device or its sound server went away; the null clock plays on.
    Lost { reason: String },
    /// The device opened again; the music continues from the current frame.
    Back { host: &'static str, device: String },
}

/// The thread that owns the backend: opening, closing and reopening a device
/// happen there, never on the caller's thread.
struct DeviceThread {
    stop: Sender<()>,
    events: Receiver<DeviceEvent>,
    thread: Option<JoinHandle<()>>,
}

/// A running output. Dropping it stops the device; call [`Output::finish`] to
/// also finalize the recording.
pub struct Output {
    device_thread: DeviceThread,
    backend: &'static str,
    /// The sound system played through: `alsa`, `jack`, `pulseaudio` or `null`.
    host: &'static str,
    device: String,
    lost: bool,
    recorder: Option<Recorder>,
    takes: Takes,
    stream_errors: Arc<StreamErrors>,
    /// Why `Auto` fell back to null, for the caller to warn about once.
    pub fallback_reason: Option<String>,
}

impl Output {
    pub fn backend_name(&self) -> &'static str {
        self.backend
    }

    /// The sound system played through: `alsa`, `jack`, `pulseaudio` or `null`.
    pub fn host_name(&self) -> &'static str {
        self.host
    }

    pub fn device_name(&self) -> &str {
        &self.device
    }

    /// The device was lost and has not come back (the null clock plays meanwhile).
    pub fn device_lost(&self) -> bool {
        self.lost
    }

    /// What happened to the device since the last call; the names above follow.
    pub fn poll_device(&mut self) -> Vec<DeviceEvent> {
        let events: Vec<DeviceEvent> = self.device_thread.events.try_iter().collect();
        for event in &events {
            match event {
                DeviceEvent::Lost { .. } => self.lost = true,
                DeviceEvent::Back { host, device } => {
                    self.lost = false;
                    self.host = host;
                    self.device = device.clone();
                }
            }
        }
        events
    }

    /// Errors other than xruns the device stream reported, and the kind of the
    /// latest (counted on the stream's thread, named here).
    pub fn stream_errors(&self) -> (u64, &'static str) {
        (
            self.stream_errors.count.load(Ordering::Relaxed),
            self.stream_errors.kind_name(),
        )
    }

    /// Whether the device's audio thread was refused realtime scheduling.
    pub fn realtime_denied(&self) -> bool {
        self.stream_errors.realtime_denied.load(Ordering::Relaxed)
    }

    /// Recordings started and stopped at run time.
    pub fn takes(&self) -> &Takes {
        &self.takes
    }

    /// Stops the device, then finalizes the recording (returning the frames
    /// recorded and dropped) and any take still running (returning what became of it).
    pub fn finish(
        self,
    ) -> (
        Result<Option<crate::Recorded>, AudioError>,
        Option<crate::TakeEvent>,
    ) {
        drop(self.device_thread);
        let take = self.takes.finish();
        (self.recorder.map(Recorder::finish).transpose(), take)
    }
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How often the device thread looks at the stream's errors.
const DEVICE_POLL: Duration = Duration::from_millis(100);
/// Reopening a lost device is tried this often at first, backing off to the max.
const REOPEN_FIRST: Duration = Duration::from_secs(1);
const REOPEN_MAX: Duration = Duration::from_secs(5);

/// Opens the output chosen by `options`, reading from `region`, on a thread of its
/// own that also notices a lost device, plays on the null clock meanwhile and
/// reopens the device when it returns.
pub fn open(options: &OutputOptions, region: Arc<Region>) -> Result<Output, AudioError> {
    let (takes, tap) = start_takes(options)?;
    let (recorder, handle) = start_recorder(options)?.unzip();
    let reader = Arc::new(SharedReader::new(OutputReader::new(
        region.clone(),
        handle,
        Some(tap),
    )));
    let errors = Arc::<StreamErrors>::default();
    let (init_tx, init_rx) = crossbeam_channel::bounded(1);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    let spawned = std::thread::Builder::new()
        .name("audio-device".into())
        .spawn({
            let options = options.clone();
            let errors = errors.clone();
            move || {
                let device = Device {
                    options,
                    region,
                    reader,
                    errors,
                };
                device.run(init_tx, stop_rx, events_tx)
            }
        });
    let failed = |e: AudioError, recorder: Option<Recorder>| {
        if let Some(recorder) = recorder {
            let _ = recorder.finish();
        }
        Err(e)
    };
    let thread = match spawned {
        Ok(thread) => thread,
        Err(e) => return failed(AudioError::NullThread(e), recorder),
    };
    match init_rx.recv() {
        Ok(Ok((backend, host, device, fallback_reason))) => Ok(Output {
            device_thread: DeviceThread {
                stop: stop_tx,
                events: events_rx,
                thread: Some(thread),
            },
            backend,
            host,
            device,
            lost: false,
            recorder,
            takes,
            stream_errors: errors,
            fallback_reason,
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            failed(e, recorder)
        }
        Err(_) => {
            let _ = thread.join();
            failed(
                AudioError::Open {
                    device: options.device.clone().unwrap_or_default(),
                    reason: "the audio device thread ended".into(),
                },
                recorder,
            )
        }
    }
}

/// What the device thread needs to open backends.
struct Device {
    options: OutputOptions,
    region: Arc<Region>,
    reader: Arc<SharedReader>,
    errors: Arc<StreamErrors>,
}

type Started = (&'static str, &'static str, String, Option<String>);

impl Device {
    fn run(
        self,
        init: Sender<Result<Started, AudioError>>,
        stop: Receiver<()>,
        events: Sender<DeviceEvent>,
    ) {
        let named = self.options.device.is_some() || self.options.host != HostChoice::Auto;
        let first = match self.options.backend {
            BackendChoice::Null => self.open_null().map(|o| (o, None)),
            BackendChoice::Cpal => self.open_device().map(|o| (o, None)),
            // A device or sound system named is what the box must play on: only with
            // neither named does `auto` settle for the null clock (silence while
            // everything looks healthy).
            BackendChoice::Auto if named => self.open_device().map(|o| (o, None)),
            BackendChoice::Auto => match self.open_device() {
                Ok(o) => Ok((o, None)),
                Err(e) => self.open_null().map(|o| (o, Some(e.to_string()))),
            },
        };
        let (opened, fallback) = match first {
            Ok(first) => first,
            Err(e) => {
                let _ = init.send(Err(e));
                return;
            }
        };
        let backend = match opened.backend {
            Backend::Null(_) => "null",
            _ => "cpal",
        };
        let plays_a_device = backend == "cpal";
        let _ = init.send(Ok((backend, opened.host, opened.device.clone(), fallback)));
        if !plays_a_device {
            let _ = stop.recv();
            return;
        }
        let mut current = opened.backend;
        // Set while the device is gone: when to try it next, and the wait after that.
        let mut reopen: Option<(Instant, Duration)> = None;
        // The last refusal of a device that came back, not to be repeated every retry.
        let mut refused: Option<String> = None;
        let mut seen = self.errors.count.load(Ordering::Relaxed);
        // More errors in one poll than device periods while the device takes less
        // than half the frames its clock should: the stream spins on errors (see
        // `SpinCheck`).
        let burst = (DEVICE_POLL.as_secs_f64() * f64::from(self.options.sample_rate)
            / f64::from(self.options.buffer_frames.max(1))) as u64
            * 2
            + 16;
        let played = || {
            self.region
                .header()
                .clock
                .play_frame
                .load(Ordering::Acquire)
        };
        let mut progress = (played(), Instant::now());
        let mut check = SpinCheck::new(progress.1);
        loop {
            match stop.recv_timeout(DEVICE_POLL) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            match reopen {
                None => {
                    let count = self.errors.count.load(Ordering::Relaxed);
                    let (frame, at) = (played(), Instant::now());
                    let due = at.duration_since(progress.1).as_secs_f64()
                        * f64::from(self.options.sample_rate);
                    let running = self.region.header().clock.running.load(Ordering::Acquire) != 0;
                    let spinning = check.spinning(
                        at,
                        count - seen,
                        burst,
                        running,
                        frame.saturating_sub(progress.0),
                        due,
                    );
                    (seen, progress) = (count, (frame, at));
                    if self.errors.gone.swap(false, Ordering::Relaxed) || spinning {
                        let reason = self.errors.kind_name().to_owned();
                        drop(current);
                        current = match self.open_null() {
                            Ok(null) => null.backend,
                            Err(_) => return,
                        };
                        let _ = events.send(DeviceEvent::Lost { reason });
                        reopen = Some((Instant::now() + REOPEN_FIRST, REOPEN_FIRST));
                    }
                }
                Some((at, wait)) if Instant::now() >= at => {
                    // The clock pauses while the device opens: no frame is skipped.
                    drop(current);
                    match self.open_device() {
                        Ok(device) => {
                            current = device.backend;
                            seen = self.errors.count.load(Ordering::Relaxed);
                            progress = (played(), Instant::now());
                            check = SpinCheck::new(progress.1);
                            self.errors.gone.store(false, Ordering::Relaxed);
                            let _ = events.send(DeviceEvent::Back {
                                host: device.host,
                                device: device.device,
                            });
                            reopen = None;
                        }
                        Err(e) => {
                            // Still gone is expected; a device that is back but refused
                            // (a server at another rate) needs the operator: said once.
                            if matches!(e, AudioError::ServerRate { .. }) {
                                let reason = e.to_string();
                                if refused.as_ref() != Some(&reason) {
                                    tracing::warn!(
                                        "the audio device is back but refused: {reason}"
                                    );
                                    refused = Some(reason);
                                }
                            } else {
                                tracing::debug!(error = %e, "the audio device is still gone");
                            }
                            current = match self.open_null() {
                                Ok(null) => null.backend,
                                Err(_) => return,
                            };
                            let wait = (wait * 2).min(REOPEN_MAX);
                            reopen = Some((Instant::now() + wait, wait));
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }

    fn open_null(&self) -> Result<Opened, AudioError> {
        let null = NullOutput::start(
            self.reader.clone(),
            self.region.clone(),
            self.options.buffer_frames,
            self.options.sample_rate,
        )?;
        Ok(Opened {
            backend: Backend::Null(null),
            host: "null",
            device: "null".into(),
        })
    }

    fn open_device(&self) -> Result<Opened, AudioError> {
        if resolve_host(self.options.host) == HostChoice::Jack {
            let jack = crate::jack::open(
                &self.options.jack_client_name,
                self.options.sample_rate,
                self.reader.clone(),
                self.region.clone(),
                self.errors.clone(),
            )?;
            return Ok(Opened {
                device: format!("jack:{}", jack.name),
                backend: Backend::Jack(jack),
                host: "jack",
            });
        }
        open_cpal(
            &self.options,
            self.region.clone(),
            self.reader.clone(),
            self.errors.clone(),
        )
    }
}

fn start_recorder(
    options: &OutputOptions,
) -> Result<Option<(Recorder, crate::RecorderHandle)>, AudioError> {
    options
        .record
        .as_deref()
        .map(|p: &Path| Recorder::start(p, options.sample_rate))
        .transpose()
}

fn start_takes(options: &OutputOptions) -> Result<(Takes, TakeTap), AudioError> {
    Takes::start(options.sample_rate).map_err(AudioError::TakesThread)
}

/// The device named `wanted` (exactly, else the first whose name contains it), or
/// the default one; an input device when `input`.
pub(crate) fn find_device(
    host: &cpal::Host,
    wanted: Option<&str>,
    input: bool,
) -> Result<cpal::Device, AudioError> {
    let direction = if input { "input" } else { "output" };
    let Some(wanted) = wanted else {
        let default = if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        return default
            .ok_or_else(|| AudioError::NoDevice(format!("no default {direction} device")));
    };
    let devices: Vec<cpal::Device> = if input {
        host.input_devices().map(|d| d.collect())
    } else {
        host.output_devices().map(|d| d.collect())
    }
    .map_err(|e| AudioError::NoDevice(e.to_string()))?;
    // A device answers to its id (ALSA's PCM name such as `pulse` or `hw:0,0`), its
    // full id (`alsa:pulse`) or its description; exact matches first, then substrings.
    let names: Vec<(String, String, String)> = devices
        .iter()
        .map(|d| {
            let full = d.id().map(|id| id.to_string()).unwrap_or_default();
            let id = d.id().map(|id| id.id().to_owned()).unwrap_or_default();
            (id, full, d.to_string())
        })
        .collect();
    let exact = |(id, full, desc): &(String, String, String)| {
        id == wanted || full == wanted || desc == wanted
    };
    let index = names
        .iter()
        .position(exact)
        .or_else(|| names.iter().position(|(_, _, desc)| desc.contains(wanted)));
    match index {
        Some(i) => Ok(devices
            .into_iter()
            .nth(i)
            .expect("index from the same list")),
        None => Err(AudioError::DeviceNotFound {
            direction,
            wanted: wanted.to_owned(),
            available: if names.is_empty() {
                "  (none)".into()
            } else {
                names
                    .iter()
                    .map(|(id, _, desc)| format!("  {id} ({desc})"))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        }),
    }
}

/// The host `choice` resolves to on this box now: for `auto`, the first sound
/// system that answers.
pub fn resolve_host(choice: HostChoice) -> HostChoice {
    if choice != HostChoice::Auto {
        return choice;
    }
    if crate::jack::server_running() {
        return HostChoice::Jack;
    }
    if pipewire_running() {
        return HostChoice::PipeWire;
    }
    // cpal's PulseAudio host connects with a timeout.
    if cpal::host_from_id(cpal::HostId::PulseAudio).is_ok() {
        HostChoice::PulseAudio
    } else {
        HostChoice::Alsa
    }
}

/// Whether a PipeWire server answers on its socket (`PIPEWIRE_REMOTE` names it, in
/// `PIPEWIRE_RUNTIME_DIR` or `XDG_RUNTIME_DIR` otherwise).
fn pipewire_running() -> bool {
    let remote = std::env::var_os("PIPEWIRE_REMOTE").unwrap_or_else(|| "pipewire-0".into());
    let remote = PathBuf::from(remote);
    let socket = if remote.is_absolute() {
        Some(remote)
    } else {
        std::env::var_os("PIPEWIRE_RUNTIME_DIR")
            .or_else(|| std::env::var_os("XDG_RUNTIME_DIR"))
            .map(|dir| PathBuf::from(dir).join(&remote))
    };
    socket.is_some_and(|socket| std::os::unix::net::UnixStream::connect(socket).is_ok())
}

/// The device buffer a run asks of its sound system, unless set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostBuffer {
    pub frames: u32,
    /// Why that many, for the log.
    pub why: &'static str,
    /// The server decides (JACK's period): a set `audio.buffer_size` does not apply.
    pub fixed: bool,
}

/// The device buffer that plays clean on the sound system `choice` resolves to, on
/// a busy two-core box (BENCHMARKS.md, "Sound systems"): JACK's server period (it
/// decides), 2048 frames on PulseAudio, 1024 on PipeWire, 512 on ALSA unless the device
/// is a hardware one (`hw:`, `plughw:`), 256 on hardware. Known before the device
/// opens, so the rings and the lookahead are sized for it.
pub fn host_buffer(choice: HostChoice, device: Option<&str>) -> HostBuffer {
    let (frames, why, fixed) = match resolve_host(choice) {
        HostChoice::Jack => match crate::jack::server_period() {
            Some(period) => (period, "the JACK server's period", true),
            None => (256, "the JACK server did not answer", false),
        },
        HostChoice::PulseAudio => (2048, "PulseAudio", false),
        HostChoice::PipeWire => (1024, "PipeWire", false),
        HostChoice::Alsa | HostChoice::Auto => match device {
            Some(d) if d.starts_with("hw:") || d.starts_with("plughw:") => {
                (256, "an ALSA hardware device", false)
            }
            _ => (
                512,
                "ALSA's default or plugin device, often a sound server",
                false,
            ),
        },
    };
    HostBuffer { frames, why, fixed }
}

/// How long a freshly opened stream may flood errors without taking frames before it
/// counts as lost: ALSA's pulse plugin does so for a second or two after it opens, now
/// and then, and then plays (checked by hand: it played at the sample rate in every run
/// once left alone, and each reopen started the same flood again).
const START_GRACE: Duration = Duration::from_secs(5);

/// Tells a stream that spins on errors (ALSA's pulse plugin once its server died:
/// errors by the hundred a poll, no frame taken) from one that plays on through a flood
/// of errors, and from one still starting.
struct SpinCheck {
    opened: Instant,
    /// Whether the stream has taken frames at its rate in a poll since it opened.
    playing: bool,
}

impl SpinCheck {
    fn new(opened: Instant) -> SpinCheck {
        SpinCheck {
            opened,
            playing: false,
        }
    }

    /// One poll at `now`: more than `burst` errors while the timeline runs and the
    /// device took less than half of the `due` frames (`advanced`), once the stream has
    /// played or its start-up grace is over. Before the timeline starts no frame
    /// advances, whatever the device does.
    fn spinning(
        &mut self,
        now: Instant,
        errors: u64,
        burst: u64,
        running: bool,
        advanced: u64,
        due: f64,
    ) -> bool {
        let at_rate = (advanced as f64) >= due / 2.0;
        self.playing |= running && at_rate;
        let starting = !self.playing && now.duration_since(self.opened) < START_GRACE;
        errors > burst && running && !at_rate && !starting
    }
}

/// The cpal host for `choice` (resolved), and its name.
fn cpal_host(choice: HostChoice) -> Result<(cpal::Host, &'static str), AudioError> {
    let (id, name) = match choice {
        HostChoice::PulseAudio => (cpal::HostId::PulseAudio, "pulseaudio"),
        HostChoice::PipeWire => (cpal::HostId::PipeWire, "pipewire"),
        HostChoice::Jack => (cpal::HostId::Jack, "jack"),
        HostChoice::Alsa | HostChoice::Auto => (cpal::HostId::Alsa, "alsa"),
    };
    cpal::host_from_id(id)
        .map(|host| (host, name))
        .map_err(|e| AudioError::NoDevice(format!("the {name} sound system is not available: {e}")))
}

/// The device `wanted` (or the default one) on the host `requested` resolves to,
/// an input device when `input`. Under `auto` a device named by its ALSA name
/// (`pulse`, `hw:1,0`) is still found when a sound server runs: ALSA is the last
/// place looked.
pub(crate) fn pick_device(
    requested: HostChoice,
    wanted: Option<&str>,
    input: bool,
) -> Result<(&'static str, cpal::Device), AudioError> {
    let choice = resolve_host(requested);
    let on = |choice: HostChoice, wanted: Option<&str>| {
        let (host, name) = cpal_host(choice)?;
        Ok((name, find_device(&host, wanted, input)?))
    };
    match on(choice, wanted) {
        Err(AudioError::DeviceNotFound {
            direction,
            wanted,
            available,
        }) if requested == HostChoice::Auto && choice != HostChoice::Alsa => {
            on(HostChoice::Alsa, Some(&wanted)).map_err(|e| match e {
                AudioError::DeviceNotFound {
                    available: alsa, ..
                } => AudioError::DeviceNotFound {
                    direction,
                    wanted,
                    available: format!("{available}\n{alsa}"),
                },
                other => other,
            })
        }
        found => found,
    }
}

fn open_cpal(
    options: &OutputOptions,
    region: Arc<Region>,
    reader: Arc<SharedReader>,
    stream_errors: Arc<StreamErrors>,
) -> Result<Opened, AudioError> {
    let (host_name, device) = pick_device(options.host, options.device.as_deref(), false)?;
    let name = device.to_string();
    let open_err = |reason: String| AudioError::Open {
        device: name.clone(),
        reason,
    };
    let supported = device
        .supported_output_configs()
        .map_err(|e| open_err(e.to_string()))?
        .filter(|c| (c.min_sample_rate()..=c.max_sample_rate()).contains(&options.sample_rate))
        .filter(|c| {
            matches!(
                c.sample_format(),
                SampleFormat::F32 | SampleFormat::I16 | SampleFormat::I32
            )
        })
        // Prefer float, then the device's native stereo.
        .min_by_key(|c| {
            (
                c.sample_format() != SampleFormat::F32,
                c.channels() != CHANNELS as u16,
            )
        })
        .ok_or_else(|| {
            open_err(format!(
                "no f32/i16/i32 output configuration at {} Hz",
                options.sample_rate
            ))
        })?
        .with_sample_rate(options.sample_rate);
    let mut config = supported.config();
    config.buffer_size = cpal::BufferSize::Fixed(options.buffer_frames);
    let built = match supported.sample_format() {
        SampleFormat::F32 => build::<f32>(&device, &config, reader, region, stream_errors),
        SampleFormat::I16 => build::<i16>(&device, &config, reader, region, stream_errors),
        _ => build::<i32>(&device, &config, reader, region, stream_errors),
    };
    let stream = built
        .and_then(|s| s.play().map(|()| s))
        .map_err(|e| open_err(e.to_string()))?;
    Ok(Opened {
        backend: Backend::Cpal(stream),
        host: host_name,
        device: name,
    })
}

fn build<T: SizedSample + FromSample<f32>>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    reader: Arc<SharedReader>,
    region: Arc<Region>,
    stream_errors: Arc<StreamErrors>,
) -> Result<cpal::Stream, cpal::Error> {
    let device_channels = usize::from(config.channels).max(1);
    let mut scratch = vec![0.0f32; SCRATCH_FRAMES * CHANNELS];
    let mut promoted = false;
    let denied = stream_errors.clone();
    device.build_output_stream(
        *config,
        move |data: &mut [T], _info: &cpal::OutputCallbackInfo| {
            if !promoted {
                // Once, on the first callback: before the supervisor starts the
                // timeline, so this one syscall never delays a sample.
                promoted = true;
                if realtime::promote_current_thread(realtime::AUDIO_PRIORITY).is_err() {
                    denied.realtime_denied.store(true, Ordering::Relaxed);
                }
            }
            for piece in data.chunks_mut(SCRATCH_FRAMES * device_channels) {
                let frames = piece.len() / device_channels;
                let ours = &mut scratch[..frames * CHANNELS];
                reader.fill(ours);
                for (dev, src) in piece
                    .chunks_exact_mut(device_channels)
                    .zip(ours.chunks_exact(CHANNELS))
                {
                    if device_channels == 1 {
                        dev[0] = T::from_sample(0.5 * (src[0] + src[1]));
                    } else {
                        for (i, d) in dev.iter_mut().enumerate() {
                            *d = T::from_sample(src.get(i).copied().unwrap_or(0.0));
                        }
                    }
                }
            }
        },
        move |err: cpal::Error| {
            // Runs on the stream's thread: count, never log here.
            if err.kind() == cpal::ErrorKind::Xrun {
                OutputReader::count_xrun(&region);
            } else {
                let kind = match err.kind() {
                    cpal::ErrorKind::DeviceBusy => 1,
                    cpal::ErrorKind::DeviceNotAvailable => 2,
                    cpal::ErrorKind::HostUnavailable => 3,
                    cpal::ErrorKind::InvalidInput => 4,
                    cpal::ErrorKind::PermissionDenied => 5,
                    cpal::ErrorKind::StreamInvalidated => 6,
                    cpal::ErrorKind::UnsupportedConfig => 7,
                    cpal::ErrorKind::BackendError => 8,
                    cpal::ErrorKind::RealtimeDenied => 9,
                    cpal::ErrorKind::UnsupportedOperation => 10,
                    cpal::ErrorKind::ResourceExhausted => 11,
                    _ => 0,
                };
                stream_errors.record(kind);
            }
        },
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::{START_GRACE, SpinCheck};
    use std::time::{Duration, Instant};

    /// 100 ms at 48 kHz: 4,800 frames due.
    const DUE: f64 = 4_800.0;
    const POLL: Duration = Duration::from_millis(100);

    #[test]
    fn a_stream_playing_on_through_a_flood_of_errors_is_not_lost() {
        let t0 = Instant::now();
        let mut check = SpinCheck::new(t0);
        // ALSA's pulse plugin now and then: errors by the hundred, frames taken.
        assert!(!check.spinning(t0 + POLL, 500, 20, true, 4_096, DUE));
        // Before the timeline runs nothing advances: not a sign of a lost device.
        assert!(!check.spinning(t0 + POLL * 2, 500, 20, false, 0, DUE));
    }

    #[test]
    fn a_stream_still_starting_is_given_its_grace_then_judged() {
        let t0 = Instant::now();
        let mut check = SpinCheck::new(t0);
        // The same plugin just opened: a flood of errors and no frame, for a while.
        assert!(!check.spinning(t0 + POLL, 500, 20, true, 0, DUE));
        assert!(!check.spinning(t0 + START_GRACE - POLL, 500, 20, true, 0, DUE));
        // A stream that never starts is lost once the grace is over.
        assert!(check.spinning(t0 + START_GRACE, 500, 20, true, 0, DUE));
    }

    #[test]
    fn a_stream_spinning_on_errors_without_taking_frames_is_lost() {
        let t0 = Instant::now();
        let mut check = SpinCheck::new(t0);
        // Playing, then its server dies: errors, and no frame taken.
        assert!(!check.spinning(t0 + POLL, 0, 20, true, 4_800, DUE));
        assert!(check.spinning(t0 + POLL * 2, 500, 20, true, 0, DUE));
        assert!(check.spinning(t0 + POLL * 3, 21, 20, true, 2_000, DUE));
        // A few errors are not a spin.
        assert!(!check.spinning(t0 + POLL * 4, 20, 20, true, 0, DUE));
    }
}
