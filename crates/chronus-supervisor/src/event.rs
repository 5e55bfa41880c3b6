//! Everything the daemon's loop waits on, as one closed enum, and the one place
//! that waits for it.

use crate::storage;
use crate::{SupervisorError, speech};
use chronus_osc::Incoming;
use chronus_speech::{SpawnJob, SpeechEvent};
use crossbeam_channel::{Receiver, Sender, never, select};
use std::time::{Duration, Instant};

/// Everything that wakes the loop.
pub enum Event {
    /// SIGTERM, SIGINT, SIGHUP or SIGCHLD, delivered by the signal thread.
    Signal(i32),
    /// A worker's pidfd became readable: it exited at `at`.
    WorkerExited { pid: u32, at: Instant, mono_ns: u64 },
    /// A packet (or a decoding failure) from a client.
    Osc(Incoming),
    /// A speech engine answered a request.
    Speech(speech::Answer),
    /// A speech engine reported on itself (transcripts, restarts, crashes).
    SpeechEngine(SpeechEvent),
    /// A speech engine needs a process spawned on this thread (see the invariant on
    /// the parent-death signal).
    Spawn(SpawnJob),
    /// The speech-recognition input was opened (its description) or could not be.
    Capture(Result<String, String>),
    /// File work done on the storage thread.
    Stored(storage::Done),
    /// Writing something to disk failed.
    Storage(StorageError),
    /// A metrics scrape wants the status figures as Prometheus text.
    Metrics(crossbeam_channel::Sender<String>),
    /// Periodic work is due.
    Tick(Instant),
}

/// A write that failed off the loop (journal, recording, take).
#[derive(Clone, Debug)]
pub struct StorageError {
    /// What was being written, e.g. "journal /var/lib/chronus/journal.osc".
    pub what: String,
    pub reason: String,
}

/// The channels the loop selects over.
pub struct Sources {
    events: Receiver<Event>,
    osc: Receiver<Incoming>,
    spawns: Receiver<SpawnJob>,
    speech: Receiver<SpeechEvent>,
    ticker: Receiver<Instant>,
    /// The tick's period now, and when the armed tick is due.
    interval: Duration,
    due: Instant,
}

impl Sources {
    /// `spawns` and `speech` are `None` when speech is off: a channel whose senders are
    /// gone is always ready, and selecting on it would spin.
    pub fn new(
        events: Receiver<Event>,
        osc: Receiver<Incoming>,
        spawns: Option<Receiver<SpawnJob>>,
        speech: Option<Receiver<SpeechEvent>>,
        tick: Duration,
    ) -> Sources {
        Sources {
            events,
            osc,
            spawns: spawns.unwrap_or_else(never),
            speech: speech.unwrap_or_else(never),
            ticker: crossbeam_channel::after(tick),
            interval: tick,
            due: Instant::now() + tick,
        }
    }

    /// Ticks every `interval` from now on; a shorter one than the armed tick's takes
    /// effect at once.
    pub fn set_tick(&mut self, interval: Duration) {
        if interval == self.interval {
            return;
        }
        self.interval = interval;
        let now = Instant::now();
        if now + interval < self.due {
            self.arm(now);
        }
    }

    fn arm(&mut self, now: Instant) {
        self.due = now + self.interval;
        self.ticker = crossbeam_channel::at(self.due);
    }

    /// Waits for the next event. A source whose senders are all gone is dropped from
    /// the wait (replaced by one that never fires) instead of firing forever.
    pub fn next(&mut self) -> Event {
        loop {
            select! {
                recv(self.events) -> e => match e {
                    Ok(e) => return e,
                    Err(_) => self.events = never(),
                },
                recv(self.osc) -> e => match e {
                    Ok(incoming) => return Event::Osc(incoming),
                    Err(_) => self.osc = never(),
                },
                recv(self.spawns) -> e => match e {
                    Ok(job) => return Event::Spawn(job),
                    Err(_) => self.spawns = never(),
                },
                recv(self.speech) -> e => match e {
                    Ok(event) => return Event::SpeechEngine(event),
                    Err(_) => self.speech = never(),
                },
                // The time it is handled, not the time the tick was due: after the
                // loop was held up (a device opening), a due time long past would make
                // every heartbeat look that old.
                recv(self.ticker) -> _ => {
                    let now = Instant::now();
                    self.arm(now);
                    return Event::Tick(now);
                }
            }
        }
    }
}

/// Delivers the signals the daemon handles as events, from a thread of their own.
pub fn spawn_signal_thread(tx: Sender<Event>) -> Result<(), SupervisorError> {
    use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGCHLD])
        .map_err(SupervisorError::Signals)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(Event::Signal(sig)).is_err() {
                    return;
                }
            }
        })
        .map_err(SupervisorError::Signals)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_handled_late_carries_the_time_it_is_handled() {
        let (_events_tx, events) = crossbeam_channel::unbounded();
        let (_osc_tx, osc) = crossbeam_channel::unbounded();
        let mut sources = Sources::new(events, osc, None, None, Duration::from_millis(2));
        // The loop is held up well past the tick's due time.
        std::thread::sleep(Duration::from_millis(50));
        let handled = Instant::now();
        match sources.next() {
            Event::Tick(now) => assert!(now >= handled, "the tick carried its due time"),
            _ => panic!("expected a tick"),
        }
    }
}
