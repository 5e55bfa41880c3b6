//! Choosing and opening the output: cpal, or the timer-clocked null backend.

use crate::null::NullOutput;
use crate::record::Recorder;
use crate::take::{TakeTap, Takes};
use crate::{AudioError, OutputReader};
use chronus_shm::{CHANNELS, Region, realtime};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Largest device callback converted in one piece; larger ones are split.
const SCRATCH_FRAMES: usize = 8192;

/// Stream errors other than xruns, as the stream's thread saw them.
#[derive(Default)]
pub(crate) struct StreamErrors {
    count: AtomicU64,
    last_kind: AtomicU32,
    /// The audio thread could not get realtime scheduling.
    realtime_denied: AtomicBool,
}

impl StreamErrors {
    pub(crate) const HOST_UNAVAILABLE: u32 = 3;
    pub(crate) const UNSUPPORTED_CONFIG: u32 = 7;

    /// Counts an error of `kind` (see [`Output::stream_errors`]); wait-free.
    pub(crate) fn record(&self, kind: u32) {
        self.last_kind.store(kind, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
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

/// A running output. Dropping it stops the device; call [`Output::finish`] to
/// also finalize the recording.
pub struct Output {
    backend: Backend,
    /// The sound system played through: `alsa`, `jack`, `pulseaudio` or `null`.
    host: &'static str,
    device: String,
    recorder: Option<Recorder>,
    takes: Takes,
    stream_errors: Arc<StreamErrors>,
    /// Why `Auto` fell back to null, for the caller to warn about once.
    pub fallback_reason: Option<String>,
}

impl Output {
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Cpal(_) | Backend::Jack(_) => "cpal",
            Backend::Null(_) => "null",
        }
    }

    /// The sound system played through: `alsa`, `jack`, `pulseaudio` or `null`.
    pub fn host_name(&self) -> &'static str {
        self.host
    }

    pub fn device_name(&self) -> &str {
        &self.device
    }

    /// Errors other than xruns the device stream reported, and the kind of the
    /// latest (counted on the stream's thread, named here).
    pub fn stream_errors(&self) -> (u64, &'static str) {
        let kind = match self.stream_errors.last_kind.load(Ordering::Relaxed) {
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
        };
        (self.stream_errors.count.load(Ordering::Relaxed), kind)
    }

    /// Whether the device's audio thread was refused realtime scheduling.
    pub fn realtime_denied(&self) -> bool {
        self.stream_errors.realtime_denied.load(Ordering::Relaxed)
    }

    pub fn recording_dropped_frames(&self) -> u64 {
        self.recorder.as_ref().map_or(0, Recorder::dropped_frames)
    }

    /// Recordings started and stopped at run time.
    pub fn takes(&self) -> &Takes {
        &self.takes
    }

    /// Stops the device, then finalizes the recording (returning the frames
    /// recorded) and any take still running (returning what became of it).
    pub fn finish(self) -> (Result<Option<u64>, AudioError>, Option<crate::TakeEvent>) {
        drop(self.backend);
        let take = self.takes.finish();
        (self.recorder.map(Recorder::finish).transpose(), take)
    }
}

/// Opens the output chosen by `options`, reading from `region`.
pub fn open(options: &OutputOptions, region: Arc<Region>) -> Result<Output, AudioError> {
    match options.backend {
        BackendChoice::Null => open_null(options, region, None),
        BackendChoice::Cpal => open_cpal(options, region),
        // A device or sound system named is what the box must play on: only with
        // neither named does `auto` settle for the null clock (silence while
        // everything looks healthy).
        BackendChoice::Auto if options.device.is_some() || options.host != HostChoice::Auto => {
            open_cpal(options, region)
        }
        BackendChoice::Auto => match open_cpal(options, region.clone()) {
            Ok(output) => Ok(output),
            Err(e) => open_null(options, region, Some(e.to_string())),
        },
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

fn open_null(
    options: &OutputOptions,
    region: Arc<Region>,
    fallback_reason: Option<String>,
) -> Result<Output, AudioError> {
    let (takes, tap) = start_takes(options)?;
    let (recorder, handle) = start_recorder(options)?.unzip();
    let reader = OutputReader::new(region.clone(), handle, Some(tap));
    let null = NullOutput::start(reader, region, options.buffer_frames, options.sample_rate)?;
    Ok(Output {
        backend: Backend::Null(null),
        host: "null",
        device: "null".into(),
        recorder,
        takes,
        stream_errors: Arc::default(),
        fallback_reason,
    })
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
    // PipeWire serves PulseAudio clients (pipewire-pulse): either answers through
    // cpal's PulseAudio host, which connects with a timeout.
    if cpal::host_from_id(cpal::HostId::PulseAudio).is_err() {
        return HostChoice::Alsa;
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let pipewire = std::env::var_os("PIPEWIRE_REMOTE")
        .map(PathBuf::from)
        .or_else(|| Some(runtime?.join("pipewire-0")));
    if pipewire.is_some_and(|socket| std::os::unix::net::UnixStream::connect(socket).is_ok()) {
        HostChoice::PipeWire
    } else {
        HostChoice::PulseAudio
    }
}

/// The cpal host for `choice` (resolved), and its name.
fn cpal_host(choice: HostChoice) -> Result<(cpal::Host, &'static str), AudioError> {
    let (id, name) = match choice {
        HostChoice::PulseAudio => (cpal::HostId::PulseAudio, "pulseaudio"),
        // Served through its PulseAudio protocol (pipewire-pulse), which every
        // PipeWire desktop runs.
        HostChoice::PipeWire => (cpal::HostId::PulseAudio, "pipewire"),
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

fn open_cpal(options: &OutputOptions, region: Arc<Region>) -> Result<Output, AudioError> {
    if resolve_host(options.host) == HostChoice::Jack {
        return open_jack(options, region);
    }
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
    let stream_errors = Arc::<StreamErrors>::default();
    let (takes, tap) = start_takes(options)?;
    let (recorder, handle) = start_recorder(options)?.unzip();
    let reader = OutputReader::new(region.clone(), handle, Some(tap));
    let built = match supported.sample_format() {
        SampleFormat::F32 => build::<f32>(&device, &config, reader, region, stream_errors.clone()),
        SampleFormat::I16 => build::<i16>(&device, &config, reader, region, stream_errors.clone()),
        _ => build::<i32>(&device, &config, reader, region, stream_errors.clone()),
    };
    let stream = match built.and_then(|s| s.play().map(|()| s)) {
        Ok(stream) => stream,
        Err(e) => {
            if let Some(recorder) = recorder {
                let _ = recorder.finish();
            }
            return Err(open_err(e.to_string()));
        }
    };
    Ok(Output {
        backend: Backend::Cpal(stream),
        host: host_name,
        device: name,
        recorder,
        takes,
        stream_errors,
        fallback_reason: None,
    })
}

fn open_jack(options: &OutputOptions, region: Arc<Region>) -> Result<Output, AudioError> {
    let (takes, tap) = start_takes(options)?;
    let (recorder, handle) = start_recorder(options)?.unzip();
    let reader = OutputReader::new(region.clone(), handle, Some(tap));
    let stream_errors = Arc::<StreamErrors>::default();
    let jack = match crate::jack::open(
        &options.jack_client_name,
        options.sample_rate,
        reader,
        region,
        stream_errors.clone(),
    ) {
        Ok(jack) => jack,
        Err(e) => {
            if let Some(recorder) = recorder {
                let _ = recorder.finish();
            }
            return Err(e);
        }
    };
    Ok(Output {
        device: format!("jack:{}", jack.name),
        backend: Backend::Jack(jack),
        host: "jack",
        recorder,
        takes,
        stream_errors,
        fallback_reason: None,
    })
}

fn build<T: SizedSample + FromSample<f32>>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut reader: OutputReader,
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
