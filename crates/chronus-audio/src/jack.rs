//! The JACK output: a client of its own (named by `audio.jack_client_name`) with
//! two output ports connected to the physical playback ports. JACK decides the
//! period; the rate must be the server's. cpal's JACK host names its client after
//! the process id and cannot be renamed, so this talks to libjack directly (loaded
//! at run time: a box without JACK still starts).

use crate::callback::SharedReader;
use crate::device::StreamErrors;
use crate::{AudioError, OutputReader};
use chronus_shm::{CHANNELS, Region};
use std::ffi::{CStr, c_char};
use std::sync::Arc;

/// Largest JACK period converted in one piece; larger ones are split.
const SCRATCH_FRAMES: usize = 8192;

pub(crate) struct JackOutput {
    // Dropping it deactivates and closes the client.
    _client: jack::AsyncClient<Notifications, Process>,
    pub(crate) name: String,
}

/// Whether a JACK server answers (without starting one). jackd2 keeps its sockets
/// in /dev/shm as `jack_<server>_<uid>_<n>`: without one, libjack is not even loaded.
pub(crate) fn server_running() -> bool {
    let server = std::env::var("JACK_DEFAULT_SERVER").unwrap_or_else(|_| "default".into());
    let prefix = format!("jack_{server}_");
    let socket = std::fs::read_dir("/dev/shm").is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
    });
    if !socket {
        return false;
    }
    route_messages();
    jack::Client::new("chronus-probe", jack::ClientOptions::NO_START_SERVER).is_ok()
}

/// The running JACK server's period in frames, read by a short-lived client.
pub(crate) fn server_period() -> Option<u32> {
    route_messages();
    let (client, _) =
        jack::Client::new("chronus-probe", jack::ClientOptions::NO_START_SERVER).ok()?;
    Some(client.buffer_size())
}

pub(crate) fn open(
    client_name: &str,
    sample_rate: u32,
    reader: Arc<SharedReader>,
    region: Arc<Region>,
    errors: Arc<StreamErrors>,
) -> Result<JackOutput, AudioError> {
    route_messages();
    let open_err = |reason: String| AudioError::Open {
        device: format!("jack:{client_name}"),
        reason,
    };
    let (client, _) = jack::Client::new(
        client_name,
        jack::ClientOptions::NO_START_SERVER | jack::ClientOptions::USE_EXACT_NAME,
    )
    .map_err(|e| {
        open_err(format!(
            "no JACK server answers, or the client name is taken ({e}); start jackd, or choose \
             audio.host (CHRONUS_AUDIO_HOST) or audio.jack_client_name"
        ))
    })?;
    if client.sample_rate() != sample_rate {
        return Err(AudioError::ServerRate {
            host: "JACK",
            server: client.sample_rate(),
            wanted: sample_rate,
        });
    }
    let ports = ["out_1", "out_2"].map(|name| {
        client
            .register_port(name, jack::AudioOut::default())
            .map_err(|e| open_err(format!("cannot register port {name}: {e}")))
    });
    let [left, right] = ports;
    let (left, right) = (left?, right?);
    let port_names = [left.name(), right.name()];
    let process = Process {
        reader,
        left,
        right,
        scratch: vec![0.0; SCRATCH_FRAMES * CHANNELS],
    };
    let notifications = Notifications {
        errors,
        region,
        rate: sample_rate,
    };
    let active = client
        .activate_async(notifications, process)
        .map_err(|e| open_err(format!("cannot activate the client: {e}")))?;
    let name = active.as_client().name().to_owned();
    let physical = active.as_client().ports(
        None,
        Some("32 bit float mono audio"),
        jack::PortFlags::IS_INPUT | jack::PortFlags::IS_PHYSICAL,
    );
    // Mono hardware gets the left channel; stereo and more, left and right.
    for (source, destination) in port_names.iter().zip(&physical) {
        if let Ok(source) = source {
            active
                .as_client()
                .connect_ports_by_name(source, destination)
                .map_err(|e| open_err(format!("cannot connect {source} to {destination}: {e}")))?;
        }
    }
    if physical.is_empty() {
        tracing::warn!(
            client = %name,
            "the JACK server has no physical playback ports; connect {name}:out_1 and out_2 yourself"
        );
    }
    Ok(JackOutput {
        _client: active,
        name,
    })
}

pub(crate) struct Process {
    reader: Arc<SharedReader>,
    left: jack::Port<jack::AudioOut>,
    right: jack::Port<jack::AudioOut>,
    scratch: Vec<f32>,
}

impl jack::ProcessHandler for Process {
    fn process(&mut self, _: &jack::Client, ps: &jack::ProcessScope) -> jack::Control {
        let left = self.left.as_mut_slice(ps);
        let right = self.right.as_mut_slice(ps);
        for (l, r) in left
            .chunks_mut(SCRATCH_FRAMES)
            .zip(right.chunks_mut(SCRATCH_FRAMES))
        {
            let ours = &mut self.scratch[..l.len() * CHANNELS];
            self.reader.fill(ours);
            for ((l, r), frame) in l
                .iter_mut()
                .zip(r.iter_mut())
                .zip(ours.chunks_exact(CHANNELS))
            {
                *l = frame[0];
                *r = frame[1];
            }
        }
        jack::Control::Continue
    }
}

pub(crate) struct Notifications {
    errors: Arc<StreamErrors>,
    region: Arc<Region>,
    rate: u32,
}

impl jack::NotificationHandler for Notifications {
    unsafe fn shutdown(&mut self, _status: jack::ClientStatus, _reason: &str) {
        self.errors.record(StreamErrors::HOST_UNAVAILABLE);
    }

    fn sample_rate(&mut self, _: &jack::Client, rate: jack::Frames) -> jack::Control {
        if rate != self.rate {
            self.errors.record(StreamErrors::UNSUPPORTED_CONFIG);
        }
        jack::Control::Continue
    }

    fn xrun(&mut self, _: &jack::Client) -> jack::Control {
        OutputReader::count_xrun(&self.region);
        jack::Control::Continue
    }
}

/// libjack's own messages ("Cannot connect to server socket" on every probe of a
/// box without JACK) go into the log at debug, not raw stderr.
fn route_messages() {
    jack::set_logger(jack::LoggerType::Custom {
        info: jack_message,
        error: jack_message,
    });
}

unsafe extern "C" fn jack_message(message: *const c_char) {
    if message.is_null() {
        return;
    }
    // SAFETY: libjack passes a NUL-terminated string valid for this call.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    tracing::debug!(target: "jack", "libjack: {text}");
}
