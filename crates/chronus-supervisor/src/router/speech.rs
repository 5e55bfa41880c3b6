//! `/chronus/tts/*`, `/chronus/asr/*` and `/chronus/speech/status`: requests to the
//! speech engines, their answers, and the utterance that plays through the workers.

use crate::control::Speech as Request;
use crate::daemon::Daemon;
use crate::event::Event;
use crate::publisher::{Group, SpeechPublished};
use crate::router::ClientKey;
use crate::score;
use crate::speech::*;
use crate::storage::{Job, Outcome};
use chronus_config::TRANSCRIBE_MAX_BYTES;
use chronus_dsp::Command;
use chronus_osc::{OscType, Peer};
use chronus_shm::{CmdLog, UNSTAMPED};
use chronus_speech::{OnSamples, Speech, SpeechEvent, SpeechResult};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub fn handle(d: &mut Daemon, from: Peer, request: Request) {
    match request {
        Request::Say { text, voice, id } => say(d, from, &text, voice.as_deref(), id),
        Request::StopSpeaking => stop_speaking(d, from),
        Request::StartStream(stream) => start_stream(d, from, stream),
        Request::StopStream(stream) => stop_stream(d, from, stream),
        Request::Transcribe(path) => transcribe(d, from, path),
        Request::Status => {
            let json = d
                .desk
                .speech
                .as_ref()
                .map_or_else(|| "null".to_owned(), |s| s.status().to_json().to_string());
            d.clients.reply(
                &from,
                chronus_osc::message(STATUS_REPLY_ADDR, vec![OscType::String(json)]),
            );
        }
    }
}

fn say(d: &mut Daemon, from: Peer, text: &str, voice: Option<&str>, id: Option<OscType>) {
    let Some(tts) = d.desk.speech.as_ref().and_then(Speech::tts) else {
        return d.clients.fail(
            &from,
            SAY_ADDR,
            "text-to-speech is off (speech.tts.enabled)",
        );
    };
    if d.desk.asked.len() + d.desk.queue.len() >= MAX_UTTERANCES {
        d.desk.counters.failed += 1;
        let reason = format!("busy: {MAX_UTTERANCES} utterances are already waiting");
        return d.clients.fail(&from, SAY_ADDR, &reason);
    }
    let events = d.events.clone();
    let token = d.desk.next_token;
    d.desk.next_token += 1;
    let chunks = d.events.clone();
    let stream: OnSamples = Arc::new(move |samples: &[f32]| {
        let _ = chunks.send(Event::Speech(Answer::Streamed {
            token,
            samples: samples.to_vec(),
        }));
    });
    let said = tts.say_streaming(text, voice, Some(stream), move |request, result| {
        let _ = events.send(Event::Speech(Answer::Said { request, result }));
    });
    match said {
        Ok(request) => {
            d.desk.counters.requests += 1;
            let asked = Asked {
                token,
                peer: from,
                id: id.unwrap_or_else(|| chronus_osc::count(request.0)),
                at: Instant::now(),
                cancelled: false,
                streamed: false,
            };
            d.desk.asked.insert(request.0, asked);
        }
        Err(e) => {
            d.desk.counters.failed += 1;
            d.clients.fail(&from, SAY_ADDR, &e.to_string());
        }
    }
}

/// A speech engine answered.
pub fn answered(d: &mut Daemon, answer: Answer) {
    match answer {
        Answer::Streamed { token, samples } => streamed(d, token, &samples),
        Answer::Said { request, result } => {
            let Some(asked) = d.desk.asked.remove(&request.0) else {
                return;
            };
            if streaming(d, request.0) {
                return stream_answered(d, asked, result);
            }
            match result {
                _ if asked.cancelled => fail_utterance(d, &asked, "stopped by /chronus/tts/stop"),
                Err(e) => fail_utterance(d, &asked, &e.to_string()),
                Ok(audio) => {
                    d.desk.queue.push_back(Utterance {
                        asked,
                        samples: audio.samples.clone(),
                    });
                    speak_next(d);
                }
            }
        }
        Answer::Transcribed { peer, path, result } => match result {
            Ok(text) => {
                d.desk.counters.transcripts += 1;
                d.clients.reply(
                    &peer,
                    chronus_osc::message(
                        TRANSCRIPT_ADDR,
                        vec![
                            OscType::String(path),
                            OscType::String(text),
                            OscType::Int(1),
                        ],
                    ),
                );
            }
            Err(e) => d
                .clients
                .fail(&peer, TRANSCRIBE_ADDR, &format!("{path}: {e}")),
        },
    }
}

/// Whether `request` is the utterance playing while it streams.
fn streaming(d: &Daemon, request: u64) -> bool {
    d.desk
        .playing
        .as_ref()
        .and_then(|p| p.stream.as_ref())
        .is_some_and(|s| s.request == request)
}

/// Speech a Wyoming engine sent so far. The oldest request plays as it comes when
/// nothing else plays or waits; any other's chunks are left, and it plays whole
/// when its answer is complete.
fn streamed(d: &mut Daemon, token: u64, samples: &[f32]) {
    let Some((&request, asked)) = d.desk.asked.iter_mut().find(|(_, a)| a.token == token) else {
        return;
    };
    // Only its first chunk can start an utterance.
    let first = !std::mem::replace(&mut asked.streamed, true);
    if asked.cancelled {
        return;
    }
    if streaming(d, request) {
        append(d, samples);
        return extend(d);
    }
    let oldest = d.desk.asked.keys().all(|&r| r >= request);
    if !first
        || d.desk.playing.is_some()
        || !d.desk.queue.is_empty()
        || !oldest
        || d.publisher.has_backlog()
        || samples.is_empty()
    {
        return;
    }
    let asked = d.desk.asked[&request].clone();
    let (gain, duck) = (d.desk.gain, d.desk.duck);
    let area = d.region.speech();
    let frames = (samples.len() as u64).min(area.len());
    let samples = &samples[..frames as usize];
    area.write(0, samples);
    let journal = d.config.journal.is_some().then(|| samples.to_vec());
    let journaled = journal
        .as_ref()
        .map(|s| score::speech_message(0, gain, duck, s));
    d.desk.playing = Some(Playing {
        asked,
        frames,
        delay: 0,
        failed: None,
        stream: Some(Stream {
            request,
            written: frames,
            complete: false,
            gain,
            duck,
            journal,
        }),
        seq: None,
        stamp: None,
        stop_seq: None,
        started: false,
    });
    let speak = Command::Speak {
        offset: 0,
        frames: frames as u32,
        gain,
        duck,
    };
    if let Err(reason) = d.submit(Group::now(vec![(speak, journaled)])) {
        if let Some(playing) = d.desk.playing.take() {
            fail_utterance(d, &playing.asked, &reason.reason());
        }
    }
}

/// Writes streamed samples after the last ones; what does not fit in the speech
/// area is cut (the area holds the longest utterance).
fn append(d: &mut Daemon, samples: &[f32]) {
    let area = d.region.speech();
    let Some(stream) = d.desk.playing.as_mut().and_then(|p| p.stream.as_mut()) else {
        return;
    };
    let room = area.len().saturating_sub(stream.written);
    let n = (samples.len() as u64).min(room) as usize;
    if n < samples.len() {
        tracing::warn!("streamed speech longer than {AREA_SECONDS} s; the rest is cut");
    }
    area.write(stream.written, &samples[..n]);
    stream.written += n as u64;
    if let Some(copy) = &mut stream.journal {
        copy.extend_from_slice(&samples[..n]);
    }
}

/// Publishes a `Speak` for the streamed samples not yet published, taking over at
/// the first frame a command is sure to be applied at exactly, from the sample the
/// chain has reached there (or after a pause, if the speech before it has played).
fn extend(d: &mut Daemon) {
    let earliest = d.earliest_exact_frame();
    let log = d.region.log();
    let Some(playing) = &mut d.desk.playing else {
        return;
    };
    // Learnt here too, not only at the next tick: chunks that follow the first
    // closely continue it while it plays instead of after a pause.
    learn_stamp(playing, &log);
    let (Some(stream), Some(stamp)) = (&playing.stream, playing.stamp) else {
        return;
    };
    if stream.written == playing.frames || playing.stop_seq.is_some() || playing.failed.is_some() {
        return;
    }
    if earliest > stamp + playing.delay + playing.frames {
        let pause = earliest - stamp - playing.delay - playing.frames;
        tracing::info!(
            pause_frames = pause,
            played_frames = playing.frames,
            "streamed speech paused: its next chunk came after the speech before it had played"
        );
        playing.delay += pause;
        d.desk.counters.stream_gaps += 1;
    }
    let offset = earliest - stamp - playing.delay;
    let speak = Command::Speak {
        offset: offset as u32,
        frames: (stream.written - offset) as u32,
        gain: stream.gain,
        duck: stream.duck,
    };
    let journaled = stream.journal.as_ref().map(|all| {
        score::speech_message(
            offset as u32,
            stream.gain,
            stream.duck,
            &all[offset as usize..],
        )
    });
    playing.frames = stream.written;
    let group = Group {
        min_frame: earliest,
        commands: vec![(speak, journaled)],
        client: ClientKey::DAEMON,
    };
    if let Err(reason) = d.submit(group) {
        tracing::warn!(reason = %reason.reason(), "streamed speech could not be continued");
        if let Some(playing) = &mut d.desk.playing {
            playing.failed = Some(reason.reason());
        }
    }
}

/// The whole answer for the utterance playing as it streams: the resampler's tail
/// is appended, or a failure stops it (its requester then hears `/chronus/fail`).
fn stream_answered(d: &mut Daemon, asked: Asked, result: SpeechResult) {
    match result {
        _ if asked.cancelled => {}
        Ok(audio) => {
            let written = d
                .desk
                .playing
                .as_ref()
                .and_then(|p| p.stream.as_ref())
                .map_or(0, |s| s.written as usize);
            if audio.samples.len() > written {
                append(d, &audio.samples[written..]);
            }
        }
        Err(e) => {
            if let Some(playing) = &mut d.desk.playing {
                playing.failed = Some(e.to_string());
            }
            let _ = d.submit(Group::now(vec![(Command::SpeakStop, None)]));
        }
    }
    if let Some(stream) = d.desk.playing.as_mut().and_then(|p| p.stream.as_mut()) {
        stream.complete = true;
    }
    extend(d);
}

fn fail_utterance(d: &mut Daemon, asked: &Asked, reason: &str) {
    d.desk.counters.failed += 1;
    let reason = format!("request {}: {reason}", id_words(&asked.id));
    d.clients.fail(&asked.peer, SAY_ADDR, &reason);
}

/// Starts the next utterance once nothing plays: its samples go into the speech
/// area (free, since the last utterance has been played), then its command.
fn speak_next(d: &mut Daemon) {
    if d.desk.playing.is_some() || d.publisher.has_backlog() {
        return;
    }
    let Some(utterance) = d.desk.queue.pop_front() else {
        return;
    };
    let area = d.region.speech();
    let frames = utterance.samples.len() as u64;
    if frames > area.len() {
        let reason = format!(
            "the speech is {:.1} s long; at most {AREA_SECONDS} s is played",
            frames as f64 / f64::from(d.config.audio.sample_rate)
        );
        fail_utterance(d, &utterance.asked, &reason);
        return speak_next(d);
    }
    area.write(0, &utterance.samples);
    let (gain, duck) = (d.desk.gain, d.desk.duck);
    let speak = Command::Speak {
        offset: 0,
        frames: frames as u32,
        gain,
        duck,
    };
    // Only a journal needs the samples again, as its own copy.
    let journaled = d
        .config
        .journal
        .is_some()
        .then(|| score::speech_message(0, gain, duck, &utterance.samples));
    d.desk.playing = Some(Playing {
        asked: utterance.asked,
        frames,
        delay: 0,
        failed: None,
        stream: None,
        seq: None,
        stamp: None,
        stop_seq: None,
        started: false,
    });
    if let Err(reason) = d.submit(Group::now(vec![(speak, journaled)])) {
        if let Some(playing) = d.desk.playing.take() {
            fail_utterance(d, &playing.asked, &reason.reason());
        }
    }
}

/// Speech commands reached the log.
pub fn published(d: &mut Daemon, published: &[SpeechPublished]) {
    if let Some(playing) = &mut d.desk.playing {
        for p in published {
            if p.stop {
                playing.stop_seq = Some(p.seq);
            } else if playing.seq.is_none() {
                // A streamed utterance's continuations are timed from its first.
                playing.seq = Some(p.seq);
            }
        }
    }
}

fn stop_speaking(d: &mut Daemon, from: Peer) {
    let queued: Vec<Utterance> = d.desk.queue.drain(..).collect();
    for utterance in queued {
        d.desk.counters.stopped += 1;
        fail_utterance(d, &utterance.asked, "stopped by /chronus/tts/stop");
    }
    for asked in d.desk.asked.values_mut() {
        asked.cancelled = true;
    }
    if d.desk.playing.is_some() {
        d.desk.counters.stopped += 1;
        let _ = d.submit(Group::now(vec![(Command::SpeakStop, None)]));
    }
    d.clients.reply(&from, chronus_osc::done(STOP_ADDR, vec![]));
}

/// The frame a published command was stamped at, once a worker has stamped it.
fn stamp_of(log: &CmdLog<'_>, seq: Option<u64>) -> Option<u64> {
    seq.and_then(|s| log.stamp_of(s))
        .filter(|&s| s != UNSTAMPED)
}

/// Takes the frame the playing utterance's `Speak` was stamped at from the log.
fn learn_stamp(playing: &mut Playing, log: &CmdLog<'_>) {
    if playing.stamp.is_none() {
        playing.stamp = stamp_of(log, playing.seq);
    }
}

/// Follows the playing utterance through the device clock: `/chronus/tts/start`
/// when its first sample is handed to the device, `/chronus/tts/done` after its last.
pub fn tick(d: &mut Daemon, play: u64) {
    if d.desk
        .wake_listen_until
        .is_some_and(|until| Instant::now() >= until)
    {
        tracing::info!("no utterance after the wake word");
        end_wake_listen(d);
    }
    speak_next(d);
    extend(d);
    let log = d.region.log();
    let rate = f64::from(d.config.audio.sample_rate);
    let Some(playing) = &mut d.desk.playing else {
        return;
    };
    learn_stamp(playing, &log);
    let Some(stamp) = playing.stamp else {
        return;
    };
    let mut end = stamp + playing.delay + playing.frames;
    if let Some(stop) = stamp_of(&log, playing.stop_seq) {
        end = end.min(stop.max(stamp) + (STOP_FADE_SECONDS * rate).ceil() as u64);
    }
    let streamed = playing
        .stream
        .as_ref()
        .is_none_or(|s| s.complete && s.written == playing.frames)
        || playing.stop_seq.is_some();
    let mut replies = Vec::new();
    if play > stamp && !playing.started {
        playing.started = true;
        d.desk.counters.first_sample_ms = playing.asked.at.elapsed().as_secs_f64() * 1e3;
        replies.push(chronus_osc::message(
            START_REPLY_ADDR,
            vec![playing.asked.id.clone()],
        ));
    }
    let peer = playing.asked.peer;
    if play >= end && streamed {
        let playing = d.desk.playing.take().expect("checked above");
        if let Some(stream) = &playing.stream {
            // Stopped before its engine finished: this was its one answer.
            d.desk.asked.remove(&stream.request);
        }
        if let Some(reason) = &playing.failed {
            fail_utterance(d, &playing.asked, reason);
        } else {
            if playing.stop_seq.is_none() {
                d.desk.counters.spoken += 1;
            }
            replies.push(chronus_osc::message(
                DONE_REPLY_ADDR,
                vec![playing.asked.id],
            ));
        }
    }
    for reply in replies {
        d.clients.reply(&peer, reply);
    }
    if d.desk.playing.is_none() {
        speak_next(d);
    }
}

fn start_stream(d: &mut Daemon, from: Peer, stream: String) {
    let Some(asr) = d.desk.speech.as_ref().and_then(Speech::asr).cloned() else {
        return d.clients.fail(
            &from,
            ASR_START_ADDR,
            "speech recognition is off (speech.asr.enabled)",
        );
    };
    let device = d.desk.settings.asr.input_device.clone();
    let listeners = d.desk.listeners();
    if d.input
        .want(from, stream.clone(), device.as_deref(), &listeners)
    {
        start(d, &asr, from, stream);
    }
}

/// The input device was opened, or could not be: the streams waiting for it start
/// or are refused.
pub fn input_opened(d: &mut Daemon, result: Result<String, String>) {
    let waiting = d.input.opened(result.is_ok());
    let asr = d.desk.speech.as_ref().and_then(Speech::asr).cloned();
    if waiting.is_empty() {
        // Held open for wake-word detection.
        match &result {
            Ok(device) => tracing::info!(device, "capturing the input device for wake words"),
            Err(error) => tracing::error!(
                error,
                "cannot capture the input device: wake words are not heard"
            ),
        }
        return;
    }
    match (result, asr) {
        (Ok(device), Some(asr)) => {
            tracing::info!(device, "capturing the input device for speech recognition");
            for (from, stream) in waiting {
                start(d, &asr, from, stream);
            }
        }
        (result, _) => {
            let reason = match result {
                Err(e) => format!("cannot capture: {e}"),
                Ok(_) => "speech recognition is off (speech.asr.enabled)".into(),
            };
            for (from, _) in waiting {
                d.clients.fail(&from, ASR_START_ADDR, &reason);
            }
        }
    }
}

fn start(d: &mut Daemon, asr: &chronus_speech::Asr, from: Peer, stream: String) {
    match asr.start_stream(&stream) {
        Ok(_) => d.clients.reply(
            &from,
            chronus_osc::done(ASR_START_ADDR, vec![OscType::String(stream)]),
        ),
        Err(e) => d.clients.fail(&from, ASR_START_ADDR, &e.to_string()),
    }
}

fn stop_stream(d: &mut Daemon, from: Peer, stream: String) {
    let Some(asr) = d.desk.speech.as_ref().and_then(Speech::asr).cloned() else {
        return d.clients.fail(
            &from,
            ASR_STOP_ADDR,
            "speech recognition is off (speech.asr.enabled)",
        );
    };
    if !asr.stop_stream(&stream) {
        let reason = format!("no stream named {stream:?} is running");
        return d.clients.fail(&from, ASR_STOP_ADDR, &reason);
    }
    if asr.active_streams().is_empty() {
        d.input.close();
    }
    d.clients.reply(
        &from,
        chronus_osc::done(ASR_STOP_ADDR, vec![OscType::String(stream)]),
    );
}

/// The stream a detection starts with `speech.wake.then_listen`.
pub const WAKE_STREAM: &str = "wake";
/// How long it listens for the utterance after the wake word.
pub const WAKE_LISTEN: std::time::Duration = std::time::Duration::from_secs(10);

/// A wake word was heard: tell subscribers, and with `then_listen` recognise one
/// utterance on the `wake` stream (the input is open: detection holds it).
fn woke(d: &mut Daemon, name: String) -> chronus_osc::OscPacket {
    let frame = d
        .region
        .header()
        .clock
        .play_frame
        .load(std::sync::atomic::Ordering::Acquire);
    tracing::info!(id = "chronus.wake", name, frame, "wake word heard");
    if d.desk.settings.wake.then_listen
        && let Some(asr) = d.desk.speech.as_ref().and_then(Speech::asr).cloned()
    {
        match asr.start_stream(WAKE_STREAM) {
            Ok(_) => d.desk.wake_listen_until = Some(Instant::now() + WAKE_LISTEN),
            Err(error) => tracing::warn!(%error, "cannot listen after the wake word"),
        }
    }
    chronus_osc::message(
        WAKE_ADDR,
        vec![OscType::String(name), OscType::Long(frame as i64)],
    )
}

/// The utterance after a wake word was heard, or waited for long enough.
pub fn end_wake_listen(d: &mut Daemon) {
    d.desk.wake_listen_until = None;
    if let Some(asr) = d.desk.speech.as_ref().and_then(Speech::asr).cloned()
        && asr.stop_stream(WAKE_STREAM)
        && asr.active_streams().is_empty()
    {
        d.input.close();
    }
}

fn transcribe(d: &mut Daemon, from: Peer, name: String) {
    if d.desk.speech.as_ref().and_then(Speech::asr).is_none() {
        return d.clients.fail(
            &from,
            TRANSCRIBE_ADDR,
            "speech recognition is off (speech.asr.enabled)",
        );
    }
    let dir = d.config.speech.asr.transcribe_dir();
    let job = match crate::files::confine(&dir, Path::new(&name)) {
        Ok(path) => Job::ReadWav {
            path,
            name: name.clone(),
            max_bytes: TRANSCRIBE_MAX_BYTES,
        },
        Err(e) => {
            return d
                .clients
                .fail(&from, TRANSCRIBE_ADDR, &format!("{name}: {e}"));
        }
    };
    if let Err(reason) = d.storage.submit(from, job) {
        d.clients
            .fail(&from, TRANSCRIBE_ADDR, &format!("{name}: {reason}"));
    }
}

/// The storage thread read a file to transcribe.
pub fn stored(d: &mut Daemon, from: Peer, outcome: Outcome) {
    let Outcome::WavRead { name, result } = outcome else {
        return;
    };
    let Some(asr) = d.desk.speech.as_ref().and_then(Speech::asr) else {
        return d.clients.fail(
            &from,
            TRANSCRIBE_ADDR,
            "speech recognition is off (speech.asr.enabled)",
        );
    };
    let submitted = result.and_then(|pcm| {
        let events = d.events.clone();
        let path = name.clone();
        asr.transcribe(&pcm, move |_, result| {
            let _ = events.send(Event::Speech(Answer::Transcribed {
                peer: from,
                path,
                result,
            }));
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
    });
    if let Err(reason) = submitted {
        d.clients
            .fail(&from, TRANSCRIBE_ADDR, &format!("{name}: {reason}"));
    }
}

/// Logs an engine event and tells subscribers what they may act on.
pub fn engine_event(d: &mut Daemon, event: SpeechEvent) {
    let string = |s: &str| OscType::String(s.into());
    let announce = match event {
        SpeechEvent::Transcript {
            stream,
            text,
            is_final,
        } => {
            d.desk.counters.transcripts += 1;
            tracing::info!(stream, text, "transcript");
            if stream == WAKE_STREAM && d.desk.wake_listen_until.is_some() {
                end_wake_listen(d);
            }
            Some(chronus_osc::message(
                TRANSCRIPT_ADDR,
                vec![
                    string(&stream),
                    string(&text),
                    OscType::Int(i32::from(is_final)),
                ],
            ))
        }
        SpeechEvent::EngineStarted { engine, pid } => {
            tracing::debug!(engine, pid, "speech engine started");
            Some(chronus_osc::message(
                "/chronus/speech/engine",
                vec![string(&engine), OscType::Int(pid as i32), string("started")],
            ))
        }
        SpeechEvent::EngineExited {
            engine,
            pid,
            cause,
            crash,
        } => {
            if crash {
                tracing::warn!(engine, pid, cause, "speech engine crashed");
                d.speech_faults
                    .insert(engine.clone(), format!("crashed: {cause}"));
            } else {
                tracing::debug!(engine, pid, cause, "speech engine exited");
            }
            Some(chronus_osc::message(
                "/chronus/speech/engine",
                vec![
                    string(&engine),
                    OscType::Int(pid as i32),
                    string(if crash { "crashed" } else { "exited" }),
                ],
            ))
        }
        SpeechEvent::Wake { name } => Some(woke(d, name)),
        SpeechEvent::Connected { engine, endpoint } => {
            d.speech_faults.remove(&engine);
            Some(chronus_osc::message(
                "/chronus/speech/connection",
                vec![string(&engine), string(&endpoint), string("connected")],
            ))
        }
        SpeechEvent::Disconnected {
            engine,
            endpoint,
            reason,
        } => Some(chronus_osc::message(
            "/chronus/speech/connection",
            vec![
                string(&engine),
                string(&endpoint),
                string("disconnected"),
                string(&reason),
            ],
        )),
        SpeechEvent::EngineRestarting { engine, delay } => {
            let reason = d
                .speech_faults
                .remove(&engine)
                .unwrap_or_else(|| "exited".into());
            let delay_ms = delay.as_millis() as u64;
            tracing::warn!(
                id = "chronus.speech_restart",
                engine,
                reason,
                delay_ms,
                "restarting speech engine"
            );
            Some(chronus_osc::message(
                "/chronus/speech/restarted",
                vec![
                    string(&engine),
                    string(&reason),
                    OscType::Int(delay_ms.min(i32::MAX as u64) as i32),
                ],
            ))
        }
        SpeechEvent::EngineFailed { engine, crashes } => {
            tracing::error!(
                engine,
                crashes,
                "speech engine keeps crashing; it is no longer restarted"
            );
            Some(chronus_osc::message(
                "/chronus/speech/failed",
                vec![string(&engine), OscType::Int(crashes as i32)],
            ))
        }
        SpeechEvent::ProtocolError {
            engine,
            pid,
            detail,
        } => {
            tracing::warn!(
                engine,
                pid,
                detail,
                "speech engine broke its protocol; restarting it"
            );
            d.speech_faults
                .insert(engine.clone(), format!("broke its protocol: {detail}"));
            Some(chronus_osc::message(
                "/chronus/speech/error",
                vec![string(&engine), string(&detail)],
            ))
        }
        SpeechEvent::Unresponsive {
            engine,
            pid,
            request,
        } => {
            tracing::warn!(engine, pid, %request, "speech engine hung on a request; restarting it");
            d.speech_faults
                .insert(engine.clone(), format!("hung on request {request}"));
            Some(chronus_osc::message(
                "/chronus/speech/error",
                vec![string(&engine), string("unresponsive")],
            ))
        }
        SpeechEvent::HealthCheckFailed { engine, detail } => {
            tracing::warn!(engine, detail, "speech engine failed its health check");
            None
        }
    };
    if let Some(event) = announce {
        d.clients.broadcast(event);
    }
}
