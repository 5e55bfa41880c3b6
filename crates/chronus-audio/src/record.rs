//! `CHRONUS_RECORD`: a 32-bit float WAV of exactly the samples handed to the
//! device. The callback pushes into a lock-free SPSC ring; a writer thread
//! drains it to disk, so the callback never touches the file.

use crate::AudioError;
use chronus_shm::CHANNELS;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Seconds of audio the ring absorbs if the disk stalls.
const RING_SECONDS: usize = 4;

/// The callback's end: realtime-safe.
pub struct RecorderHandle {
    producer: rtrb::Producer<f32>,
    dropped: Arc<AtomicU64>,
}

impl RecorderHandle {
    /// Queues interleaved samples; if the ring is full the frames are counted as
    /// dropped from the recording (the device output is unaffected).
    pub fn push(&mut self, samples: &[f32]) {
        match self.producer.write_chunk_uninit(samples.len()) {
            Ok(chunk) => {
                chunk.fill_from_iter(samples.iter().copied());
            }
            Err(_) => {
                self.dropped
                    .fetch_add((samples.len() / CHANNELS) as u64, Ordering::Relaxed);
            }
        }
    }
}

/// What a finished recording holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// Frames in the file.
    pub frames: u64,
    /// Frames the callback handed out that the file misses (the disk fell behind).
    pub dropped: u64,
}

/// The writer thread's owner.
pub struct Recorder {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    thread: JoinHandle<Result<u64, String>>,
}

impl Recorder {
    /// Creates the file now, so a bad path fails at startup, and starts the writer.
    pub fn start(path: &Path, sample_rate: u32) -> Result<(Recorder, RecorderHandle), AudioError> {
        let spec = hound::WavSpec {
            channels: CHANNELS as u16,
            sample_rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let err = |reason: String| AudioError::Record {
            path: path.display().to_string(),
            reason,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| err(e.to_string()))?;
        let (producer, consumer) =
            rtrb::RingBuffer::new(sample_rate as usize * CHANNELS * RING_SECONDS);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn({
                let stop = stop.clone();
                move || drain(writer, consumer, &stop)
            })
            .map_err(|e| err(e.to_string()))?;
        let handle = RecorderHandle {
            producer,
            dropped: dropped.clone(),
        };
        Ok((
            Recorder {
                path: path.to_owned(),
                stop,
                dropped,
                thread,
            },
            handle,
        ))
    }

    /// Frames lost because the writer fell behind.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Drains what is queued, finalizes the WAV header and returns the frames written
    /// and the frames dropped because the writer fell behind. Call after the
    /// producer side has stopped pushing.
    pub fn finish(self) -> Result<Recorded, AudioError> {
        // The producer has stopped: the count is final.
        let dropped = self.dropped_frames();
        self.stop.store(true, Ordering::Release);
        let path = self.path.display().to_string();
        match self.thread.join() {
            Ok(Ok(frames)) => Ok(Recorded { frames, dropped }),
            Ok(Err(reason)) => Err(AudioError::Record { path, reason }),
            Err(_) => Err(AudioError::Record {
                path,
                reason: "recorder thread panicked".into(),
            }),
        }
    }
}

fn drain(
    mut writer: hound::WavWriter<BufWriter<File>>,
    mut consumer: rtrb::Consumer<f32>,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let mut written = 0u64;
    let mut last_flush = Instant::now();
    loop {
        // Read `stop` before draining so nothing pushed before it is missed.
        let stopping = stop.load(Ordering::Acquire);
        let n = consumer.slots();
        if n > 0 {
            let chunk = consumer.read_chunk(n).map_err(|e| e.to_string())?;
            let (a, b) = chunk.as_slices();
            for &s in a.iter().chain(b) {
                writer.write_sample(s).map_err(|e| e.to_string())?;
            }
            written += n as u64;
            chunk.commit_all();
        } else if stopping {
            break;
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Keep the header valid on disk, so even a killed daemon leaves a playable file.
        if last_flush.elapsed() > Duration::from_secs(1) {
            writer.flush().map_err(|e| e.to_string())?;
            last_flush = Instant::now();
        }
    }
    writer.finalize().map_err(|e| e.to_string())?;
    Ok(written / CHANNELS as u64)
}
