//! The input streamed to a running Wyoming service: a recogniser (`transcribe`,
//! then each utterance as `audio-start`/`audio-chunk`/`audio-stop`, answered by
//! `transcript`) or a wake-word detector (`detect`, then audio until a
//! `detection`). One connection per stream, on its own thread; a lost connection is
//! reconnected with backoff while audio is dropped and counted.
//!
//! Utterances for a recogniser are cut here, since a Wyoming recogniser transcribes
//! when its audio stops: an energy endpointer opens an utterance at the first loud
//! 20 ms frame (with the 300 ms before it, so the onset is not clipped) and closes
//! it after the configured quiet, or after 30 s. The frame after the one that closed
//! an utterance is already judged for the next: nothing is lost between them.

use crate::asr::{Chunk, ChunkResampler, StreamShared};
use crate::audio::to_s16le;
use crate::engine::{EngineContext, EngineState, SpeechEvent};
use crate::link::{Backoff, Conn, Endpoint};
use crate::wyoming::{Decoded, Event, FrameLimits, Offers, stream_reader};
use crossbeam_channel::{Receiver, select};
use serde_json::json;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// For the connection and the `info` answer to `describe`.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// How long a stopped recogniser waits for the transcript of its last utterance,
/// and at shutdown, which must stay prompt.
const FINAL_TRANSCRIPT_WAIT: Duration = Duration::from_secs(10);
const SHUTDOWN_TRANSCRIPT_WAIT: Duration = Duration::from_millis(500);

/// Endpointer frame length, in milliseconds.
const FRAME_MS: u32 = 20;
/// A frame louder than this (RMS, full scale 1.0; about -40 dBFS) is speech.
const SPEECH_RMS: f32 = 0.01;
/// Audio kept from before the first loud frame.
const PRE_ROLL_MS: u32 = 300;
/// Longest utterance; a longer one is cut and transcribed in parts.
const MAX_UTTERANCE_MS: u32 = 30_000;
/// Detections closer than this to the last one are not passed on: one wake word
/// reported twice, or a service flooding detections, is one `/chronus/wake`.
const WAKE_REFRACTORY: Duration = Duration::from_secs(1);

/// What the service does with the audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Transcribe utterances, each ended by `silence` of quiet after speech.
    Recognise { silence: Duration },
    /// Detect wake words; an empty list asks for every one the service has.
    Wake { names: Vec<String> },
}

/// One stream's session.
pub(crate) struct Listen {
    pub stream: String,
    pub shared: Arc<StreamShared>,
    pub endpoint: Endpoint,
    /// The rate sent to the service.
    pub rate: u32,
    pub role: Role,
    pub ctx: EngineContext,
    pub audio: Receiver<Chunk>,
    pub cancel: Arc<AtomicBool>,
}

enum Msg {
    Events(Vec<Event>),
    Broken(String),
    End,
}

enum Outcome {
    Stopped,
    /// The connection went; `up` if it had answered `describe`.
    Lost {
        reason: String,
        up: bool,
    },
}

impl Listen {
    pub(crate) fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            match self.connection() {
                Outcome::Stopped => break,
                Outcome::Lost { reason, up } => {
                    let endpoint = self.endpoint.to_string();
                    if up {
                        backoff.reset();
                        tracing::warn!(stream = %self.stream, %endpoint, %reason, "speech service connection lost; reconnecting");
                        self.ctx.events.emit(SpeechEvent::Disconnected {
                            engine: self.shared.name.clone(),
                            endpoint,
                            reason: reason.clone(),
                        });
                    } else if backoff.is_first() {
                        // Once per outage: the retries that follow are at debug.
                        tracing::warn!(stream = %self.stream, %endpoint, %reason, "speech service not reachable; retrying with backoff");
                    } else {
                        tracing::debug!(stream = %self.stream, %endpoint, %reason, "speech service not reachable");
                    }
                    {
                        let mut f = self.shared.figures();
                        f.last_error = Some(reason);
                        f.crashes += 1;
                        f.restarts += 1;
                        f.state = EngineState::Restarting;
                    }
                    if self.cancel.load(Ordering::Acquire) || !self.drop_audio_for(backoff.next()) {
                        break;
                    }
                }
            }
        }
        self.shared.figures().state = EngineState::Stopped;
    }

    /// Drops (and counts) audio for `wait`; false if the stream was stopped.
    fn drop_audio_for(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            select! {
                recv(self.audio) -> chunk => match chunk {
                    Ok(c) => self.dropped(&c),
                    Err(_) => return false,
                },
                default(left) => {},
            }
        }
    }

    fn dropped(&self, c: &Chunk) {
        let frames = c.samples.len() / usize::from(c.channels.max(1));
        self.shared
            .frames_dropped
            .fetch_add(frames as u64, Ordering::Relaxed);
    }

    fn connection(&mut self) -> Outcome {
        self.shared.figures().state = EngineState::Starting;
        let (tx, msgs) = crossbeam_channel::unbounded();
        let on_data = stream_reader(FrameLimits::default(), move |decoded| {
            let _ = tx.send(match decoded {
                Decoded::Events(events) => Msg::Events(events),
                Decoded::Broken(e) => Msg::Broken(e.to_string()),
                Decoded::End(_) => Msg::End,
            });
        });
        let conn = match Conn::connect(&self.endpoint, Duration::from_secs(2), on_data) {
            Ok(conn) => conn,
            Err(e) => {
                return Outcome::Lost {
                    reason: format!("cannot connect to {}: {e}", self.endpoint),
                    up: false,
                };
            }
        };
        if let Err(reason) = self.handshake(&conn, &msgs) {
            return Outcome::Lost { reason, up: false };
        }
        let endpoint = self.endpoint.to_string();
        tracing::info!(stream = %self.stream, %endpoint, "connected to speech service");
        self.ctx.events.emit(SpeechEvent::Connected {
            engine: self.shared.name.clone(),
            endpoint,
        });
        self.shared.figures().state = EngineState::Ready;
        let mut cutter = Cutter::new(&self.role, self.rate);
        if let Role::Wake { names } = &self.role {
            arm(&conn, names, self.rate);
        }
        let mut resampler = ChunkResampler::new(self.rate);
        loop {
            select! {
                recv(self.audio) -> chunk => match chunk {
                    Ok(c) => {
                        let Some(mono) = resampler.mono(c, &self.shared) else { continue };
                        let bytes = cutter.feed(&mono);
                        if !bytes.is_empty() && !conn.write(bytes) {
                            return Outcome::Lost {
                                reason: "the service stopped reading audio".into(),
                                up: true,
                            };
                        }
                    }
                    Err(_) => {
                        let (bytes, waiting) = cutter.finish();
                        conn.write(bytes);
                        self.final_answers(&msgs, waiting);
                        conn.close();
                        return Outcome::Stopped;
                    }
                },
                recv(msgs) -> msg => match msg {
                    Ok(Msg::Events(events)) => {
                        for e in events {
                            self.answer(&conn, &e, &mut cutter);
                        }
                    }
                    Ok(Msg::Broken(detail)) => {
                        self.ctx.events.emit(SpeechEvent::ProtocolError {
                            engine: self.shared.name.clone(),
                            pid: None,
                            detail: detail.clone(),
                        });
                        return Outcome::Lost { reason: format!("protocol error: {detail}"), up: true };
                    }
                    Ok(Msg::End) | Err(_) => {
                        return Outcome::Lost {
                            reason: "the service closed the connection".into(),
                            up: true,
                        };
                    }
                },
            }
        }
    }

    /// `describe`, answered by `info` (what the service offers, for status).
    fn handshake(&self, conn: &Conn, msgs: &Receiver<Msg>) -> Result<(), String> {
        if !conn.write(Event::new("describe", json!({})).encode()) {
            return Err("the connection closed at once".into());
        }
        let deadline = Instant::now() + HANDSHAKE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            select! {
                recv(msgs) -> msg => match msg {
                    Ok(Msg::Events(events)) => {
                        if let Some(info) = events.iter().find(|e| e.kind == "info") {
                            self.shared.figures().offers = Some(Offers::from_info(&info.data));
                            return Ok(());
                        }
                    }
                    Ok(Msg::Broken(detail)) => return Err(format!("protocol error: {detail}")),
                    Ok(Msg::End) | Err(_) => {
                        return Err("the service closed the connection before answering describe".into());
                    }
                },
                recv(self.audio) -> chunk => match chunk {
                    Ok(c) => self.dropped(&c),
                    Err(_) => return Err("stopped".into()),
                },
                default(left) => return Err(format!("no info within {HANDSHAKE:?} of describe")),
            }
        }
    }

    fn answer(&self, conn: &Conn, e: &Event, cutter: &mut Cutter) {
        match (e.kind.as_str(), &self.role) {
            ("transcript", Role::Recognise { .. }) => {
                cutter.answered();
                self.transcript(e);
            }
            ("detection", Role::Wake { names }) => {
                let name = e.data_str("name").unwrap_or_default().to_string();
                let now = Instant::now();
                if cutter
                    .last_detection
                    .is_some_and(|at| now.duration_since(at) < WAKE_REFRACTORY)
                {
                    tracing::debug!(stream = %self.stream, name, "repeated detection ignored");
                } else {
                    cutter.last_detection = Some(now);
                    self.shared.transcripts.fetch_add(1, Ordering::Relaxed);
                    self.shared.figures().completed += 1;
                    tracing::info!(stream = %self.stream, name, "wake word detected");
                    self.ctx.events.emit(SpeechEvent::Wake { name });
                }
                // Detectors report once per `detect`: ask again for the next one.
                conn.write(Event::new("audio-stop", json!({})).encode());
                arm(conn, names, self.rate);
            }
            ("error", _) => {
                let text = e.data_str("text").unwrap_or("(no text)").to_string();
                tracing::warn!(stream = %self.stream, %text, "speech service reported an error");
                let mut f = self.shared.figures();
                f.errors += 1;
                f.last_error = Some(text);
                drop(f);
                cutter.answered();
            }
            (kind, _) => tracing::debug!(stream = %self.stream, kind, "event ignored"),
        }
    }

    /// A `transcript` event's text to subscribers, unless it is empty.
    fn transcript(&self, e: &Event) {
        let text = e.data_str("text").unwrap_or_default().trim();
        if text.is_empty() {
            return;
        }
        self.shared.transcripts.fetch_add(1, Ordering::Relaxed);
        self.shared.figures().completed += 1;
        self.ctx.events.emit(SpeechEvent::Transcript {
            stream: self.stream.clone(),
            text: text.to_string(),
            is_final: true,
        });
    }

    /// After the stream stopped: the transcripts of utterances already sent.
    fn final_answers(&self, msgs: &Receiver<Msg>, mut waiting: usize) {
        let wait = if self.cancel.load(Ordering::Acquire) {
            SHUTDOWN_TRANSCRIPT_WAIT
        } else {
            FINAL_TRANSCRIPT_WAIT
        };
        let deadline = Instant::now() + wait;
        while waiting > 0 {
            let Ok(Msg::Events(events)) = msgs.recv_deadline(deadline) else {
                return;
            };
            for e in events {
                if e.kind == "transcript" || e.kind == "error" {
                    waiting -= 1;
                }
                if e.kind == "transcript" {
                    self.transcript(&e);
                }
            }
        }
    }
}

fn format(rate: u32) -> serde_json::Value {
    json!({ "rate": rate, "width": 2, "channels": 1 })
}

/// `detect` and `audio-start`: listening for the wake words from here on.
fn arm(conn: &Conn, names: &[String], rate: u32) {
    let detect = if names.is_empty() {
        json!({})
    } else {
        json!({ "names": names })
    };
    let mut bytes = Event::new("detect", detect).encode();
    bytes.extend(Event::new("audio-start", format(rate)).encode());
    conn.write(bytes);
}

/// Cuts the input into what the service is sent: every sample for a wake-word
/// detector; utterances for a recogniser.
struct Cutter {
    rate: u32,
    endpointed: Option<Endpointer>,
    /// When the last detection was passed on (wake-word detectors).
    last_detection: Option<Instant>,
}

struct Endpointer {
    silence_frames: u32,
    frame: usize,
    /// Samples not yet a whole frame.
    partial: Vec<f32>,
    pre_roll: VecDeque<Vec<f32>>,
    pre_roll_frames: usize,
    /// In an utterance: its length and the quiet at its end, in frames.
    open: Option<(u32, u32)>,
    /// Utterances sent and not yet answered.
    waiting: usize,
}

impl Cutter {
    fn new(role: &Role, rate: u32) -> Cutter {
        let frame = (rate * FRAME_MS / 1000) as usize;
        Cutter {
            rate,
            last_detection: None,
            endpointed: match role {
                Role::Wake { .. } => None,
                Role::Recognise { silence } => Some(Endpointer {
                    silence_frames: (silence.as_millis() as u32).div_ceil(FRAME_MS).max(1),
                    frame,
                    partial: Vec::with_capacity(frame),
                    pre_roll: VecDeque::new(),
                    pre_roll_frames: (PRE_ROLL_MS / FRAME_MS) as usize,
                    open: None,
                    waiting: 0,
                }),
            },
        }
    }

    /// What to send for `mono`.
    fn feed(&mut self, mono: &[f32]) -> Vec<u8> {
        let rate = self.rate;
        let Some(ep) = &mut self.endpointed else {
            return chunk_event(rate, mono);
        };
        let mut bytes = Vec::new();
        let mut send: Vec<f32> = Vec::new();
        for &s in mono {
            ep.partial.push(s);
            if ep.partial.len() < ep.frame {
                continue;
            }
            let frame = std::mem::replace(&mut ep.partial, Vec::with_capacity(ep.frame));
            let loud = rms(&frame) > SPEECH_RMS;
            match &mut ep.open {
                None if loud => {
                    bytes.extend(Event::new("transcribe", json!({})).encode());
                    bytes.extend(Event::new("audio-start", format(rate)).encode());
                    for f in ep.pre_roll.drain(..) {
                        send.extend(f);
                    }
                    send.extend(frame);
                    ep.open = Some((1, 0));
                }
                None => {
                    ep.pre_roll.push_back(frame);
                    if ep.pre_roll.len() > ep.pre_roll_frames {
                        ep.pre_roll.pop_front();
                    }
                }
                Some((length, quiet)) => {
                    send.extend(frame);
                    *length += 1;
                    *quiet = if loud { 0 } else { *quiet + 1 };
                    if *quiet >= ep.silence_frames || *length >= MAX_UTTERANCE_MS / FRAME_MS {
                        bytes.extend(chunk_event(rate, &std::mem::take(&mut send)));
                        bytes.extend(Event::new("audio-stop", json!({})).encode());
                        ep.open = None;
                        ep.waiting += 1;
                    }
                }
            }
        }
        bytes.extend(chunk_event(rate, &send));
        bytes
    }

    fn answered(&mut self) {
        if let Some(ep) = &mut self.endpointed {
            ep.waiting = ep.waiting.saturating_sub(1);
        }
    }

    /// The stream stopped: what closes an open utterance (or the detection), and
    /// the answers still due.
    fn finish(&mut self) -> (Vec<u8>, usize) {
        let rate = self.rate;
        let stop = Event::new("audio-stop", json!({})).encode();
        let Some(ep) = &mut self.endpointed else {
            return (stop, 0);
        };
        let mut bytes = Vec::new();
        if ep.open.take().is_some() {
            bytes = chunk_event(rate, &std::mem::take(&mut ep.partial));
            bytes.extend(stop);
            ep.waiting += 1;
        }
        (bytes, ep.waiting)
    }
}

fn chunk_event(rate: u32, samples: &[f32]) -> Vec<u8> {
    if samples.is_empty() {
        return Vec::new();
    }
    Event::new("audio-chunk", format(rate))
        .with_payload(to_s16le(samples))
        .encode()
}

fn rms(frame: &[f32]) -> f32 {
    (frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wyoming::Decoder;

    fn events(bytes: &[u8]) -> Vec<Event> {
        let mut d = Decoder::new(FrameLimits::default());
        let mut out = Vec::new();
        d.push(bytes, &mut out).unwrap();
        out
    }

    fn kinds(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.kind.as_str()).collect()
    }

    fn samples(events: &[Event]) -> usize {
        events.iter().map(|e| e.payload.len() / 2).sum()
    }

    /// 16 kHz: 320 samples a frame.
    fn tone(frames: usize) -> Vec<f32> {
        (0..frames * 320)
            .map(|i| 0.3 * (i as f32 * 0.1).sin())
            .collect()
    }

    #[test]
    fn utterances_open_on_speech_with_the_pre_roll_and_close_after_the_quiet() {
        let mut c = Cutter::new(
            &Role::Recognise {
                silence: Duration::from_millis(100),
            },
            16_000,
        );
        // A second of quiet sends nothing.
        assert!(c.feed(&vec![0.0; 16_000]).is_empty());
        // Speech opens an utterance holding the 300 ms before it.
        let sent = events(&c.feed(&tone(10)));
        assert_eq!(kinds(&sent), ["transcribe", "audio-start", "audio-chunk"]);
        assert_eq!(samples(&sent), 15 * 320 + 10 * 320);
        // Five quiet frames (100 ms) close it; the frames after are the next one's.
        let sent = events(&c.feed(&vec![0.0; 6 * 320]));
        assert_eq!(kinds(&sent), ["audio-chunk", "audio-stop"]);
        assert_eq!(samples(&sent), 5 * 320);
        let sent = events(&c.feed(&tone(1)));
        assert_eq!(kinds(&sent), ["transcribe", "audio-start", "audio-chunk"]);
        assert_eq!(
            samples(&sent),
            2 * 320,
            "the quiet frame after the stop is pre-roll"
        );
        // Stopping the stream closes the open utterance; two answers are due.
        let (bytes, waiting) = c.finish();
        assert_eq!(kinds(&events(&bytes)), ["audio-stop"]);
        assert_eq!(waiting, 2);
        c.answered();
        c.answered();
        assert_eq!(c.finish().1, 0);
    }

    #[test]
    fn chunk_boundaries_do_not_change_what_is_sent() {
        let mut input = vec![0.0; 8_000];
        input.extend(tone(40));
        input.extend(vec![0.0; 16_000]);
        input.extend(tone(7));
        let run = |chunk: usize| {
            let mut c = Cutter::new(
                &Role::Recognise {
                    silence: Duration::from_millis(200),
                },
                16_000,
            );
            let mut all = Vec::new();
            for part in input.chunks(chunk) {
                all.extend(events(&c.feed(part)));
            }
            let (last, _) = c.finish();
            all.extend(events(&last));
            let pcm: Vec<u8> = all.iter().flat_map(|e| e.payload.clone()).collect();
            (
                kinds(&all)
                    .iter()
                    .filter(|k| **k != "audio-chunk")
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>(),
                pcm,
            )
        };
        let whole = run(input.len());
        assert_eq!(
            whole.0,
            [
                "transcribe",
                "audio-start",
                "audio-stop",
                "transcribe",
                "audio-start",
                "audio-stop"
            ]
        );
        for chunk in [1, 7, 320, 1000] {
            assert_eq!(run(chunk), whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_wake_word_detector_is_sent_every_sample() {
        let mut c = Cutter::new(&Role::Wake { names: vec![] }, 16_000);
        let sent = events(&c.feed(&vec![0.0; 1000]));
        assert_eq!(kinds(&sent), ["audio-chunk"]);
        assert_eq!(samples(&sent), 1000);
        let (bytes, waiting) = c.finish();
        assert_eq!(kinds(&events(&bytes)), ["audio-stop"]);
        assert_eq!(waiting, 0);
    }
}
