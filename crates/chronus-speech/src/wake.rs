//! Wake-word detection by a running Wyoming service (`wyoming-openwakeword` and
//! the like): the input is streamed to it for as long as the daemon runs, and each
//! detection becomes a [`SpeechEvent::Wake`](crate::SpeechEvent::Wake).

use crate::asr::{Chunk, StreamShared, StreamStatus, push_chunk};
use crate::engine::EngineContext;
use crate::link::Endpoint;
use crate::listen::{Listen, Role};
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Wake-word settings.
#[derive(Clone, Debug)]
pub struct WakeConfig {
    pub endpoint: Endpoint,
    /// Wake words to detect; empty for every one the service offers.
    pub names: Vec<String>,
    /// The rate sent to the service (openWakeWord takes 16 kHz).
    pub rate: u32,
    /// Audio chunks buffered before pushes are dropped (and counted).
    pub buffer: usize,
}

impl WakeConfig {
    pub fn new(endpoint: Endpoint, names: Vec<String>) -> Self {
        WakeConfig {
            endpoint,
            names,
            rate: 16_000,
            buffer: 256,
        }
    }
}

/// The wake-word stream.
pub struct Wake {
    audio: Mutex<Option<Sender<Chunk>>>,
    shared: Arc<StreamShared>,
    buffer: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
    shut: Arc<AtomicBool>,
}

impl Wake {
    pub fn start(config: WakeConfig, ctx: EngineContext) -> std::io::Result<Self> {
        let (audio, audio_rx) = crossbeam_channel::bounded(config.buffer);
        let shared = Arc::new(StreamShared::new("wake".into()));
        shared.figures().endpoint = Some(config.endpoint.to_string());
        let shut = Arc::new(AtomicBool::new(false));
        let listen = Listen {
            stream: "wake".into(),
            shared: shared.clone(),
            endpoint: config.endpoint,
            rate: config.rate,
            role: Role::Wake {
                names: config.names,
            },
            ctx,
            audio: audio_rx,
            cancel: shut.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("wake".into())
            .spawn(move || listen.run())?;
        Ok(Wake {
            audio: Mutex::new(Some(audio)),
            shared,
            buffer: config.buffer,
            thread: Mutex::new(Some(thread)),
            shut,
        })
    }

    /// Feeds interleaved input audio, never blocking.
    pub fn push(&self, samples: &[f32], rate: u32, channels: u16) {
        let audio = self.audio.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = audio.as_ref() {
            push_chunk(tx, &self.shared, samples, rate, channels);
        }
    }

    /// `transcripts` counts detections.
    pub fn status(&self) -> StreamStatus {
        let buffered = self
            .audio
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, Sender::len);
        self.shared.status(buffered, self.buffer)
    }

    /// Ends the stream and waits for its thread (at most a connection attempt).
    pub fn shutdown(&self) {
        self.shut.store(true, Ordering::Release);
        self.audio.lock().unwrap_or_else(|e| e.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread
            && t.join().is_err()
        {
            tracing::error!("wake-word thread panicked");
        }
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        self.shutdown();
    }
}
