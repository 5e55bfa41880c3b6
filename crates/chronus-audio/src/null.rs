//! The built-in `null` output: a thread clocked by a real timer that consumes
//! buffers at the sample rate, for machines without a sound device.

use crate::callback::SharedReader;
use crate::{AudioError, OutputReader};
use chronus_shm::{CHANNELS, Region};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct NullOutput {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NullOutput {
    pub fn start(
        reader: Arc<SharedReader>,
        region: Arc<Region>,
        buffer_frames: u32,
        sample_rate: u32,
    ) -> Result<NullOutput, AudioError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("audio-null".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    // The supervisor warns about a denial, once.
                    if chronus_shm::realtime::promote_current_thread(
                        chronus_shm::realtime::AUDIO_PRIORITY,
                    )
                    .is_err()
                    {
                        region
                            .header()
                            .realtime_denied
                            .fetch_or(chronus_shm::REALTIME_DENIED_AUDIO, Ordering::Relaxed);
                    }
                    let mut buffer = vec![0.0f32; buffer_frames as usize * CHANNELS];
                    let period = Duration::from_nanos(
                        u64::from(buffer_frames) * 1_000_000_000 / u64::from(sample_rate),
                    );
                    // Deadlines are absolute, so timer jitter never accumulates into drift.
                    let mut deadline = Instant::now();
                    while !stop.load(Ordering::Acquire) {
                        reader.fill(&mut buffer);
                        deadline += period;
                        let now = Instant::now();
                        if now < deadline {
                            std::thread::sleep(deadline - now);
                        } else if now - deadline > period {
                            // A real device would have run dry here, and would then
                            // go on a period at a time, not in a burst the workers
                            // cannot keep up with: so does the clock.
                            OutputReader::count_xrun(&region);
                            deadline = now + period;
                            std::thread::sleep(period);
                        }
                    }
                }
            })
            .map_err(AudioError::NullThread)?;
        Ok(NullOutput {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for NullOutput {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
