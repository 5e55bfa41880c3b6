//! The journal's writer thread: the event loop hands it settled commands and never
//! waits for the disk. A full disk or a stalled one costs journal entries (counted,
//! reported as they happen), never the control loop.

use crate::event::{Event, StorageError};
use crate::score::{ScoreWriter, limiter_message};
use chronus_dsp::LimiterParams;
use chronus_osc::OscMessage;
use crossbeam_channel::{Sender, TrySendError};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

/// Entries waiting for the disk; beyond this they are dropped and counted.
const QUEUE: usize = 1 << 16;

pub struct Journal {
    tx: Option<Sender<(u64, OscMessage)>>,
    thread: Option<JoinHandle<()>>,
    /// Entries that could not be written: the writer's failures and the queue's drops.
    errors: Arc<AtomicU64>,
    events: Sender<Event>,
    what: String,
}

impl Journal {
    /// Creates the file (at startup, before the loop runs) and starts its writer.
    pub fn create(
        path: &Path,
        sample_rate: u32,
        num_voices: u8,
        limiter: LimiterParams,
        events: Sender<Event>,
    ) -> std::io::Result<Journal> {
        let mut writer = ScoreWriter::create(path, sample_rate, num_voices)?;
        // At frame 0, before any command: a render applies the same limiter.
        writer.write(0, limiter_message(limiter))?;
        let (tx, rx) = crossbeam_channel::bounded::<(u64, OscMessage)>(QUEUE);
        let errors = Arc::new(AtomicU64::new(0));
        let what = format!("journal {}", path.display());
        let (counted, told, name) = (Arc::clone(&errors), events.clone(), what.clone());
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                let fail = |e: std::io::Error| {
                    counted.fetch_add(1, Ordering::Relaxed);
                    let _ = told.send(Event::Storage(StorageError {
                        what: name.clone(),
                        reason: e.to_string(),
                    }));
                };
                while let Ok((frame, message)) = rx.recv() {
                    if let Err(e) = writer.write(frame, message) {
                        fail(e);
                    }
                    // Flushed whenever the queue runs dry, so the file follows what played.
                    if rx.is_empty()
                        && let Err(e) = writer.flush()
                    {
                        fail(e);
                    }
                }
                if let Err(e) = writer.flush() {
                    fail(e);
                }
            })?;
        Ok(Journal {
            tx: Some(tx),
            thread: Some(thread),
            errors,
            events,
            what,
        })
    }

    /// Queues one settled command; never blocks.
    pub fn write(&mut self, frame: u64, message: OscMessage) {
        let Some(tx) = &self.tx else { return };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            tx.try_send((frame, message))
        {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let _ = self.events.send(Event::Storage(StorageError {
                what: self.what.clone(),
                reason: format!("the writer is {QUEUE} entries behind; entry dropped"),
            }));
        }
    }

    /// Entries not written.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Writes what is queued and closes the file (at shutdown).
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the journal writer panicked");
        }
    }
}
