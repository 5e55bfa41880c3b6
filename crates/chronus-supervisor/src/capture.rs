//! The speech input, opened and closed on a thread of its own: opening a device (or
//! connecting to a sound server) can wait, and the loop must not. The loop asks; the
//! answer comes back as [`Event::Capture`]. It feeds the running ASR streams and,
//! while wake-word detection is on, the wake-word stream, which holds it open.

use crate::event::Event;
use chronus_audio::{Capture, HostChoice};
use chronus_osc::Peer;
use chronus_speech::{Asr, Wake};
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the thread copies the capture's drop counter out for status.
const REFRESH: Duration = Duration::from_millis(250);
/// How long shutdown waits for the device to close.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

enum Msg {
    Open {
        device: Option<String>,
        feed: Listeners,
    },
    Close,
}

/// Who hears the input.
#[derive(Clone, Default)]
pub struct Listeners {
    pub asr: Option<Arc<Asr>>,
    pub wake: Option<Arc<Wake>>,
}

impl Listeners {
    fn push(&self, samples: &[f32], rate: u32, channels: u16) {
        if let Some(asr) = &self.asr {
            asr.push_all(samples, rate, channels);
        }
        if let Some(wake) = &self.wake {
            wake.push(samples, rate, channels);
        }
    }
}

/// Where the input stands, as the loop knows it.
enum State {
    Closed,
    /// Being opened; these `/chronus/asr/start` requests wait for it.
    Opening(Vec<(Peer, String)>),
    Open,
}

pub struct Input {
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    state: State,
    /// Wake-word detection keeps the input open whatever the ASR streams do.
    held: bool,
}

impl Input {
    /// Input devices are opened on sound system `host`.
    pub fn start(events: Sender<Event>, host: HostChoice) -> std::io::Result<Input> {
        let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
        let dropped = Arc::new(AtomicU64::new(0));
        let shown = Arc::clone(&dropped);
        let thread = std::thread::Builder::new()
            .name("capture-ctl".into())
            .spawn(move || {
                let mut capture: Option<Capture> = None;
                loop {
                    // The drop counter needs refreshing only while the input is open.
                    let msg = match &capture {
                        Some(_) => rx.recv_timeout(REFRESH),
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match msg {
                        Ok(Msg::Open { device, feed }) => {
                            capture = None;
                            let opened =
                                Capture::start(host, device.as_deref(), move |s, rate, ch| {
                                    feed.push(s, rate, ch)
                                });
                            let answer = match opened {
                                Ok(c) => {
                                    let what = format!(
                                        "{} at {} Hz, {} channels",
                                        c.device_name(),
                                        c.rate(),
                                        c.channels()
                                    );
                                    capture = Some(c);
                                    Ok(what)
                                }
                                Err(e) => Err(e.to_string()),
                            };
                            if events.send(Event::Capture(answer)).is_err() {
                                return;
                            }
                        }
                        Ok(Msg::Close) => capture = None,
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    if let Some(c) = &capture {
                        shown.store(c.dropped(), Ordering::Relaxed);
                    }
                }
            })?;
        Ok(Input {
            tx: Some(tx),
            thread: Some(thread),
            dropped,
            state: State::Closed,
            held: false,
        })
    }

    /// Samples the capture lost (its drain fell behind, or stream errors).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// `stream` from `from` wants the input: `true` if it is open already; otherwise
    /// the request waits for [`Input::opened`].
    pub fn want(
        &mut self,
        from: Peer,
        stream: String,
        device: Option<&str>,
        feed: &Listeners,
    ) -> bool {
        match &mut self.state {
            State::Open => return true,
            State::Opening(waiting) => waiting.push((from, stream)),
            State::Closed => {
                self.send(Msg::Open {
                    device: device.map(str::to_owned),
                    feed: feed.clone(),
                });
                self.state = State::Opening(vec![(from, stream)]);
            }
        }
        false
    }

    /// Opens the input for as long as the daemon runs (wake-word detection).
    pub fn hold(&mut self, device: Option<&str>, feed: &Listeners) {
        self.held = true;
        if matches!(self.state, State::Closed) {
            self.send(Msg::Open {
                device: device.map(str::to_owned),
                feed: feed.clone(),
            });
            self.state = State::Opening(Vec::new());
        }
    }

    /// The thread answered an open: the requests that waited for it.
    pub fn opened(&mut self, ok: bool) -> Vec<(Peer, String)> {
        let waiting = match std::mem::replace(&mut self.state, State::Closed) {
            State::Opening(waiting) => waiting,
            _ => Vec::new(),
        };
        if ok {
            self.state = State::Open;
        }
        waiting
    }

    /// No ASR stream needs the input any more: closed unless held.
    pub fn close(&mut self) {
        if !self.held && matches!(self.state, State::Open) {
            self.send(Msg::Close);
            self.state = State::Closed;
        }
    }

    fn send(&self, msg: Msg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }

    /// Closes the input (at shutdown), waiting a little for the device to let go.
    pub fn shutdown(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + CLOSE_GRACE;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!("the capture device did not close within {CLOSE_GRACE:?}");
            }
        }
    }
}
