//! Chronus audio output.
//!
//! [`OutputReader`] is the realtime half: it fills device buffers from the worker
//! rings by absolute frame. Around it: the cpal backend (ALSA, PipeWire and
//! PulseAudio through it), the JACK client, the timer-clocked `null` backend for
//! machines without a sound device, and the [`Recorder`] that writes what was
//! handed to the device to a WAV file from its own thread, and [`Takes`],
//! recordings started and stopped at run time.

mod alsa_log;
mod callback;
mod capture;
mod device;
mod frame_clock;
mod jack;
mod null;
mod record;
mod take;

pub use alsa_log::route_library_errors;
pub use callback::OutputReader;
pub use capture::Capture;
pub use device::{
    BackendChoice, DeviceEvent, HostBuffer, HostChoice, Output, OutputOptions, host_buffer, open,
    resolve_host,
};
pub use record::{Recorded, Recorder, RecorderHandle};
pub use take::{TakeEvent, TakeTap, Takes};

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("no audio device is available (cpal: {0})")]
    NoDevice(String),
    #[error(
        "audio device `{wanted}` not found (audio.device, CHRONUS_AUDIO_DEVICE); available {direction} devices:\n{available}"
    )]
    DeviceNotFound {
        direction: &'static str,
        wanted: String,
        available: String,
    },
    #[error(
        "the {host} server runs at {server} Hz and audio.sample_rate is {wanted} Hz: set \
         audio.sample_rate = {server} (CHRONUS_SAMPLE_RATE)"
    )]
    ServerRate {
        host: &'static str,
        server: u32,
        wanted: u32,
    },
    #[error("cannot open audio device `{device}`: {reason}")]
    Open { device: String, reason: String },
    #[error("cannot start the null output thread: {0}")]
    NullThread(#[source] std::io::Error),
    #[error("cannot create recording {path}: {reason}")]
    Record { path: String, reason: String },
    #[error("cannot start the recordings thread: {0}")]
    TakesThread(#[source] std::io::Error),
}
