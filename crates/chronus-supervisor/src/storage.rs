//! The storage thread: every file the daemon reads or writes on a client's request
//! (pattern slots, transcription input) is handled here, off the loop, with sizes
//! bounded before reading and only regular files accepted. The loop hands over a
//! job and carries on; the answer comes back as [`Event::Stored`].

use crate::clients::ClientKey;
use crate::event::Event;
use crate::patterns;
use chronus_dsp::Params;
use chronus_osc::Peer;
use chronus_speech::Pcm;
use crossbeam_channel::{Sender, TrySendError};
use std::collections::HashMap;
use std::path::PathBuf;

/// Jobs waiting for the storage thread, from every client together.
const QUEUE: usize = 32;
/// Jobs one client may have waiting or running.
const PER_CLIENT: usize = 4;

/// File work the loop asks for.
pub enum Job {
    SavePattern {
        dir: PathBuf,
        slot: u32,
        params: Box<Params>,
    },
    LoadPattern {
        dir: PathBuf,
        slot: u32,
        num_voices: u8,
        immediate: bool,
    },
    ListPatterns {
        dir: PathBuf,
    },
    /// Reads and decodes a WAV file for `/chronus/asr/transcribe`; `path` is already
    /// confined to the transcription directory, `name` is what the client sent.
    ReadWav {
        path: PathBuf,
        name: String,
        max_bytes: u64,
    },
}

/// What came of a job.
pub enum Outcome {
    PatternSaved {
        slot: u32,
        result: Result<(), String>,
    },
    PatternLoaded {
        slot: u32,
        immediate: bool,
        result: Result<Box<Params>, String>,
    },
    PatternsListed(Result<Vec<u32>, String>),
    WavRead {
        name: String,
        result: Result<Pcm, String>,
    },
}

pub struct Done {
    pub from: Peer,
    pub outcome: Outcome,
}

/// The loop's handle on the storage thread.
pub struct Storage {
    tx: Sender<(Peer, Job)>,
    in_flight: HashMap<ClientKey, usize>,
    /// Jobs refused because the queue or the client's share was full.
    pub busy: u64,
}

impl Storage {
    pub fn start(events: Sender<Event>) -> std::io::Result<Storage> {
        let (tx, rx) = crossbeam_channel::bounded::<(Peer, Job)>(QUEUE);
        std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || {
                for (from, job) in rx {
                    let outcome = run(job);
                    if events.send(Event::Stored(Done { from, outcome })).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Storage {
            tx,
            in_flight: HashMap::new(),
            busy: 0,
        })
    }

    /// Hands `job` to the storage thread; refused when its queue or the client's
    /// share of it is full.
    pub fn submit(&mut self, from: Peer, job: Job) -> Result<(), String> {
        let key = ClientKey::of_peer(&from);
        let mine = self.in_flight.get(&key).copied().unwrap_or(0);
        if mine >= PER_CLIENT {
            self.busy += 1;
            return Err(format!(
                "busy: {PER_CLIENT} file requests from this client are still running"
            ));
        }
        match self.tx.try_send((from, job)) {
            Ok(()) => {
                *self.in_flight.entry(key).or_default() += 1;
                Ok(())
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.busy += 1;
                Err(format!("busy: {QUEUE} file requests are already waiting"))
            }
        }
    }

    /// A job of `from`'s came back.
    pub fn finished(&mut self, from: &Peer) {
        let key = ClientKey::of_peer(from);
        if let Some(n) = self.in_flight.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&key);
            }
        }
    }
}

fn run(job: Job) -> Outcome {
    match job {
        Job::SavePattern { dir, slot, params } => Outcome::PatternSaved {
            slot,
            result: patterns::save(&dir, slot, &params).map_err(|e| e.to_string()),
        },
        Job::LoadPattern {
            dir,
            slot,
            num_voices,
            immediate,
        } => Outcome::PatternLoaded {
            slot,
            immediate,
            result: patterns::load(&dir, slot, num_voices)
                .map(Box::new)
                .map_err(|e| e.to_string()),
        },
        Job::ListPatterns { dir } => {
            Outcome::PatternsListed(patterns::list(&dir).map_err(|e| e.to_string()))
        }
        Job::ReadWav {
            path,
            name,
            max_bytes,
        } => {
            let result = read_regular(&path, max_bytes).and_then(|bytes| {
                chronus_speech::audio::parse_wav(&bytes)
                    .map_err(|e| format!("{name} is not a WAV file this reads: {e}"))
            });
            Outcome::WavRead { name, result }
        }
    }
}

fn read_regular(path: &std::path::Path, max: u64) -> Result<Vec<u8>, String> {
    crate::files::read_regular(path, max).map_err(|e| e.to_string())
}
