//! Takes: recordings of the output started and stopped at run time
//! (`/engine/record/start|stop`), each a 32-bit float WAV of exactly the
//! samples handed to the device from one callback buffer to another.
//!
//! The ring and the writer thread exist for the daemon's whole life. The
//! callback's [`TakeTap`] reads one atomic per buffer, the number of the take
//! wanted (0 for none); when it changes, the callback notes the frame it is at,
//! acknowledges the number, and from then on pushes (or counts as dropped)
//! every buffer until the number changes again. The writer thread waits for
//! that acknowledgement before it reports a take started or stopped, so the
//! ring holds samples of one take at a time and a file never gets a sample
//! from before its start or after its stop.

use chronus_shm::CHANNELS;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Seconds of audio the ring absorbs if the disk stalls.
const RING_SECONDS: usize = 4;
/// How long the writer waits for the callback to notice a start or a stop: many
/// device buffers, so only a callback that is not being called misses it.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Shared {
    /// The take the callback should record; 0 for none. Written by the writer.
    want: AtomicU64,
    /// The take the callback last acted on; stored (Release) after the frames below.
    seen: AtomicU64,
    /// The first frame of the take `seen` names.
    start_frame: AtomicU64,
    /// The frame the last take ended before (the first one not in it).
    end_frame: AtomicU64,
    /// Frames of the current take lost because the ring was full.
    dropped: AtomicU64,
    /// Frames of the current (or last) take written to its file.
    written: AtomicU64,
}

/// The callback's end: one atomic load per buffer, a copy while recording.
pub struct TakeTap {
    producer: rtrb::Producer<f32>,
    shared: Arc<Shared>,
    current: u64,
}

impl TakeTap {
    /// Offers the buffer that starts at `first_frame`; `samples` is empty while
    /// the timeline has not started (a start or stop is still acknowledged).
    pub(crate) fn offer(&mut self, first_frame: u64, samples: &[f32]) {
        let shared = &*self.shared;
        let want = shared.want.load(Ordering::Acquire);
        if want != self.current {
            if self.current != 0 {
                shared.end_frame.store(first_frame, Ordering::Relaxed);
            }
            if want != 0 {
                shared.start_frame.store(first_frame, Ordering::Relaxed);
                shared.dropped.store(0, Ordering::Relaxed);
            }
            self.current = want;
            shared.seen.store(want, Ordering::Release);
        }
        if self.current == 0 || samples.is_empty() {
            return;
        }
        match self.producer.write_chunk_uninit(samples.len()) {
            Ok(chunk) => {
                chunk.fill_from_iter(samples.iter().copied());
            }
            Err(_) => {
                shared
                    .dropped
                    .fetch_add((samples.len() / CHANNELS) as u64, Ordering::Relaxed);
            }
        }
    }
}

enum Request {
    Start(PathBuf),
    Stop,
}

/// What became of a request, one per request, in request order.
#[derive(Clone, Debug, PartialEq)]
pub enum TakeEvent {
    /// The file exists and holds the output from `start_frame` on.
    Started { path: PathBuf, start_frame: u64 },
    /// The file is finalized: `frames` frames from `start_frame`, after
    /// `dropped` frames were lost to a full ring.
    Stopped {
        path: PathBuf,
        start_frame: u64,
        frames: u64,
        dropped: u64,
    },
    /// The request was not carried out; the reason says why.
    Failed { reason: String },
    /// Not an answer: the running take at `path` ended on a write error.
    Aborted { path: PathBuf, reason: String },
}

/// The owner's end: requests in, [`TakeEvent`]s out, counters for status.
pub struct Takes {
    requests: Option<Sender<Request>>,
    events: Receiver<TakeEvent>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Option<TakeEvent>>>,
}

impl Takes {
    /// Creates the ring and starts the writer thread.
    pub fn start(sample_rate: u32) -> std::io::Result<(Takes, TakeTap)> {
        let (producer, consumer) =
            rtrb::RingBuffer::new(sample_rate as usize * CHANNELS * RING_SECONDS);
        let shared = Arc::new(Shared::default());
        let (requests, requests_rx) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let thread = std::thread::Builder::new().name("takes".into()).spawn({
            let writer = Writer {
                consumer,
                shared: shared.clone(),
                sample_rate,
                take: None,
                next_id: 1,
                events: events_tx,
            };
            move || writer.run(&requests_rx)
        })?;
        let tap = TakeTap {
            producer,
            shared: shared.clone(),
            current: 0,
        };
        Ok((
            Takes {
                requests: Some(requests),
                events,
                shared,
                thread: Some(thread),
            },
            tap,
        ))
    }

    /// Asks for a take into `path`, a file that must not exist yet (its
    /// directory is created). Answered by `Started` or `Failed`.
    pub fn request_start(&self, path: PathBuf) {
        self.send(Request::Start(path));
    }

    /// Asks to end the take. Answered by `Stopped` or `Failed`.
    pub fn request_stop(&self) {
        self.send(Request::Stop);
    }

    fn send(&self, request: Request) {
        if let Some(requests) = &self.requests {
            // The writer only exits when this sender is dropped.
            let _ = requests.send(request);
        }
    }

    /// The next answer, if one is ready; never blocks.
    pub fn poll(&self) -> Option<TakeEvent> {
        self.events.try_recv().ok()
    }

    /// Frames of the current (or last) take written to its file.
    pub fn written_frames(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Frames of the current (or last) take lost because the writer fell behind.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Finalizes a take still running; call once the callback no longer runs.
    /// Returns what became of that take.
    pub fn finish(mut self) -> Option<TakeEvent> {
        self.requests = None;
        self.thread.take().and_then(|t| t.join().ok()).flatten()
    }
}

impl Drop for Takes {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Take {
    path: PathBuf,
    writer: hound::WavWriter<BufWriter<File>>,
    start_frame: u64,
    last_flush: Instant,
}

struct Writer {
    consumer: rtrb::Consumer<f32>,
    shared: Arc<Shared>,
    sample_rate: u32,
    take: Option<Take>,
    next_id: u64,
    events: Sender<TakeEvent>,
}

impl Writer {
    fn run(mut self, requests: &Receiver<Request>) -> Option<TakeEvent> {
        loop {
            // Without a take nothing reaches the ring (a stop waits for the audio
            // thread to acknowledge it): sleep until the next request.
            let request = if self.take.is_some() {
                requests.recv_timeout(POLL)
            } else {
                requests.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            match request {
                Ok(Request::Start(path)) => {
                    let event = self.start(path);
                    let _ = self.events.send(event);
                }
                Ok(Request::Stop) => {
                    let event = self.stop();
                    let _ = self.events.send(event);
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The owner is finishing and the callback no longer runs.
                Err(RecvTimeoutError::Disconnected) => {
                    return self.take.is_some().then(|| self.finalize());
                }
            }
            if let Err(reason) = self.drain()
                && let Some(take) = self.take.take()
            {
                self.shared.want.store(0, Ordering::Release);
                let _ = self.events.send(TakeEvent::Aborted {
                    path: take.path,
                    reason,
                });
            }
        }
    }

    fn start(&mut self, path: PathBuf) -> TakeEvent {
        let failed = |reason: String| TakeEvent::Failed { reason };
        if let Some(take) = &self.take {
            return failed(format!(
                "already recording {}; stop it first",
                take.path.display()
            ));
        }
        if self.shared.seen.load(Ordering::Acquire) != 0 {
            return failed("the audio thread has not yet acknowledged the last stop".into());
        }
        // The callback is idle: whatever the ring holds is from an abandoned take.
        let stale = self.consumer.slots();
        if let Ok(chunk) = self.consumer.read_chunk(stale) {
            chunk.commit_all();
        }
        let writer = match create(&path, self.sample_rate) {
            Ok(writer) => writer,
            Err(reason) => return failed(format!("cannot create {}: {reason}", path.display())),
        };
        let id = self.next_id;
        self.next_id += 1;
        self.shared.written.store(0, Ordering::Relaxed);
        self.shared.want.store(id, Ordering::Release);
        if !self.acknowledged(id) {
            self.shared.want.store(0, Ordering::Release);
            drop(writer);
            let _ = std::fs::remove_file(&path);
            return failed(format!(
                "the audio output did not start the recording within {ACK_TIMEOUT:?}"
            ));
        }
        let start_frame = self.shared.start_frame.load(Ordering::Relaxed);
        self.take = Some(Take {
            path: path.clone(),
            writer,
            start_frame,
            last_flush: Instant::now(),
        });
        TakeEvent::Started { path, start_frame }
    }

    fn stop(&mut self) -> TakeEvent {
        if self.take.is_none() {
            return TakeEvent::Failed {
                reason: "no recording is running".into(),
            };
        }
        self.shared.want.store(0, Ordering::Release);
        // If the callback never answers, what reached the ring is all there is.
        self.acknowledged(0);
        self.finalize()
    }

    /// Waits for the callback to act on `want == id`.
    fn acknowledged(&self, id: u64) -> bool {
        let deadline = Instant::now() + ACK_TIMEOUT;
        while self.shared.seen.load(Ordering::Acquire) != id {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Writes the rest of the take and its header.
    fn finalize(&mut self) -> TakeEvent {
        let drained = self.drain();
        let Some(take) = self.take.take() else {
            return TakeEvent::Failed {
                reason: "no recording is running".into(),
            };
        };
        let path = take.path.clone();
        let finalized = drained.and_then(|()| take.writer.finalize().map_err(|e| e.to_string()));
        match finalized {
            Ok(()) => TakeEvent::Stopped {
                path,
                start_frame: take.start_frame,
                frames: self.shared.written.load(Ordering::Relaxed),
                dropped: self.shared.dropped.load(Ordering::Relaxed),
            },
            Err(reason) => TakeEvent::Failed {
                reason: format!("cannot finish {}: {reason}", path.display()),
            },
        }
    }

    /// Moves what the ring holds into the take's file.
    fn drain(&mut self) -> Result<(), String> {
        let Some(take) = &mut self.take else {
            return Ok(());
        };
        let n = self.consumer.slots();
        if n > 0 {
            let chunk = self.consumer.read_chunk(n).map_err(|e| e.to_string())?;
            let (a, b) = chunk.as_slices();
            for &s in a.iter().chain(b) {
                take.writer.write_sample(s).map_err(|e| e.to_string())?;
            }
            chunk.commit_all();
            self.shared
                .written
                .fetch_add((n / CHANNELS) as u64, Ordering::Relaxed);
        }
        // Keep the header valid on disk, so even a killed daemon leaves a playable file.
        if take.last_flush.elapsed() > Duration::from_secs(1) {
            take.writer.flush().map_err(|e| e.to_string())?;
            take.last_flush = Instant::now();
        }
        Ok(())
    }
}

/// A new WAV file at `path`, its directory created if missing; an existing file
/// is never overwritten.
fn create(path: &Path, sample_rate: u32) -> Result<hound::WavWriter<BufWriter<File>>, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let spec = hound::WavSpec {
        channels: CHANNELS as u16,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    hound::WavWriter::new(BufWriter::new(file), spec).map_err(|e| e.to_string())
}
