//! Capturing the input device, for speech recognition. The device callback only
//! copies into a wait-free ring; a thread of its own hands the audio on.

use crate::AudioError;
use crate::device::{HostChoice, pick_device};
use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Seconds of audio the ring between the callback and the drain thread holds.
const RING_SECONDS: usize = 2;
/// Most samples handed on at once.
const CHUNK: usize = 4096;
/// How long the drain thread sleeps when the ring is empty.
const IDLE: Duration = Duration::from_millis(5);

/// A running capture. Dropping it stops the device and the drain thread.
pub struct Capture {
    stream: Option<cpal::Stream>,
    drain: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    device: String,
    rate: u32,
    channels: u16,
    dropped: Arc<AtomicU64>,
    captured: Arc<AtomicU64>,
}

impl Capture {
    /// Opens `device` of sound system `host` (by name as cpal lists it; the default
    /// input when `None`) in its default configuration and calls `sink` with interleaved samples, their
    /// rate and channel count, from a thread of its own.
    pub fn start(
        host: HostChoice,
        device: Option<&str>,
        mut sink: impl FnMut(&[f32], u32, u16) + Send + 'static,
    ) -> Result<Capture, AudioError> {
        let (_, device) = pick_device(host, device, true)?;
        let name = device.to_string();
        let open_err = |reason: String| AudioError::Open {
            device: name.clone(),
            reason,
        };
        let supported = device
            .default_input_config()
            .map_err(|e| open_err(e.to_string()))?;
        let config = supported.config();
        let (rate, channels) = (config.sample_rate, config.channels);
        let capacity = RING_SECONDS * rate as usize * usize::from(channels.max(1));
        let (producer, mut consumer) = rtrb::RingBuffer::<f32>::new(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let stream = match supported.sample_format() {
            SampleFormat::F32 => build::<f32>(&device, &config, producer, dropped.clone()),
            SampleFormat::I16 => build::<i16>(&device, &config, producer, dropped.clone()),
            SampleFormat::I32 => build::<i32>(&device, &config, producer, dropped.clone()),
            SampleFormat::U8 => build::<u8>(&device, &config, producer, dropped.clone()),
            other => {
                return Err(open_err(format!(
                    "input sample format {other} is not supported (f32, i16, i32 or u8)"
                )));
            }
        }
        .map_err(|e| open_err(e.to_string()))?;
        stream.play().map_err(|e| open_err(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let captured = Arc::new(AtomicU64::new(0));
        let (stopping, count) = (stop.clone(), captured.clone());
        let drain = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let mut chunk = Vec::with_capacity(CHUNK);
                while !stopping.load(Ordering::Acquire) {
                    let n = consumer.slots().min(CHUNK);
                    if n == 0 {
                        std::thread::sleep(IDLE);
                        continue;
                    }
                    chunk.clear();
                    if let Ok(read) = consumer.read_chunk(n) {
                        chunk.extend(read);
                    }
                    count.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    sink(&chunk, rate, channels);
                }
            })
            .map_err(|e| open_err(format!("cannot start the capture thread: {e}")))?;
        Ok(Capture {
            stream: Some(stream),
            drain: Some(drain),
            stop,
            device: name,
            rate,
            channels,
            dropped,
            captured,
        })
    }

    pub fn device_name(&self) -> &str {
        &self.device
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Samples lost because the drain thread fell behind, plus stream errors.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Samples handed on so far.
    pub fn captured(&self) -> u64 {
        self.captured.load(Ordering::Relaxed)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        drop(self.stream.take());
        self.stop.store(true, Ordering::Release);
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
    }
}

fn build<T: SizedSample>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut producer: rtrb::Producer<f32>,
    dropped: Arc<AtomicU64>,
) -> Result<cpal::Stream, cpal::Error>
where
    f32: FromSample<T>,
{
    let errors = dropped.clone();
    device.build_input_stream(
        *config,
        move |data: &[T], _info: &cpal::InputCallbackInfo| {
            // Runs on the device's thread: copy what fits, count the rest.
            let n = producer.slots().min(data.len());
            let written = producer.write_chunk_uninit(n).map_or(0, |chunk| {
                chunk.fill_from_iter(data.iter().map(|&s| f32::from_sample(s)))
            });
            if written < data.len() {
                dropped.fetch_add((data.len() - written) as u64, Ordering::Relaxed);
            }
        },
        move |_err: cpal::Error| {
            errors.fetch_add(1, Ordering::Relaxed);
        },
        None,
    )
}
