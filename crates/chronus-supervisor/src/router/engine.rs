//! `/engine/status|list|schema`, `/seq/status` and the takes, `/engine/record/*`.

use crate::control::Engine;
use crate::daemon::Daemon;
use crate::engine;
use chronus_audio::{Output, TakeEvent};
use chronus_osc::{OscType, Peer};
use std::collections::VecDeque;
use std::path::PathBuf;

/// What the daemon knows of `/engine/record/*`.
#[derive(Default)]
pub struct Takes {
    /// Requests the takes writer has not answered yet, in order, with their address.
    pending: VecDeque<(Peer, &'static str)>,
    /// The running take's file and who started it.
    current: Option<(PathBuf, Option<Peer>)>,
    /// The latest take's file and first frame, running or not.
    last: Option<(PathBuf, u64)>,
    /// Why the latest take ended on its own, until a stop request hears it.
    aborted: Option<String>,
}

impl Takes {
    pub fn recording(&self) -> bool {
        self.current.is_some()
    }
}

pub fn handle(d: &mut Daemon, from: Peer, request: Engine) {
    let mirror = d.publisher.mirror();
    let reply = match request {
        Engine::Status => engine::status(mirror, d.config.audio.sample_rate, d.takes.recording()),
        Engine::List => engine::list(d.config.engine.num_voices),
        Engine::Schema => engine::schema(),
        Engine::SeqStatus => engine::seq_status(mirror),
        Engine::RecordStatus => {
            let (written, dropped) = d.output.as_ref().map_or((0, 0), |o| {
                (o.takes().written_frames(), o.takes().dropped_frames())
            });
            let last = d.takes.last.as_ref();
            engine::record_status(
                d.takes.recording(),
                last.map(|(path, _)| path.as_path()),
                last.map_or(0, |(_, start)| *start),
                written,
                dropped,
            )
        }
        Engine::RecordStart(name) => return record_start(d, from, name.as_deref()),
        Engine::RecordStop => return record_stop(d, from),
    };
    d.clients.reply(&from, reply);
}

fn record_start(d: &mut Daemon, from: Peer, name: Option<&str>) {
    let Some(output) = &d.output else {
        return d.clients.fail(
            &from,
            engine::RECORD_START_ADDR,
            "the audio output is not open yet",
        );
    };
    match engine::recording_name(name, std::time::SystemTime::now()) {
        Ok(name) => {
            output
                .takes()
                .request_start(d.config.engine.recordings_dir.join(name));
            d.takes.pending.push_back((from, engine::RECORD_START_ADDR));
        }
        Err(reason) => d.clients.fail(&from, engine::RECORD_START_ADDR, &reason),
    }
}

fn record_stop(d: &mut Daemon, from: Peer) {
    match &d.output {
        Some(output) if d.takes.aborted.is_none() => {
            output.takes().request_stop();
            d.takes.pending.push_back((from, engine::RECORD_STOP_ADDR));
        }
        _ => {
            let reason = d
                .takes
                .aborted
                .take()
                .unwrap_or_else(|| "no recording is running".into());
            d.clients.fail(&from, engine::RECORD_STOP_ADDR, &reason);
        }
    }
}

/// Answers `/engine/record/start|stop` as the takes writer reports on them, and
/// reports a take that ended on a write error to whoever started it.
pub fn poll_takes(d: &mut Daemon) {
    while let Some(event) = d.output.as_ref().and_then(|o: &Output| o.takes().poll()) {
        let answer = match event {
            TakeEvent::Aborted { path, reason } => {
                let reason = format!(
                    "the recording {} stopped: cannot write: {reason} (engine.recordings_dir)",
                    path.display()
                );
                if let Some((_, Some(starter))) = d.takes.current.take() {
                    d.clients.fail(&starter, engine::RECORD_START_ADDR, &reason);
                }
                d.takes.aborted = Some(reason.clone());
                d.storage_failed(format!("recording {}", path.display()), reason);
                continue;
            }
            TakeEvent::Started { path, start_frame } => {
                tracing::info!(path = %path.display(), start_frame, "recording started");
                let done = vec![
                    OscType::String(path.display().to_string()),
                    chronus_osc::count(start_frame),
                ];
                d.takes.last = Some((path.clone(), start_frame));
                d.takes.aborted = None;
                let starter = d.takes.pending.front().map(|(peer, _)| *peer);
                d.takes.current = Some((path, starter));
                Ok(done)
            }
            TakeEvent::Stopped {
                path,
                frames,
                dropped,
                ..
            } => {
                tracing::info!(path = %path.display(), frames, dropped, "recording stopped");
                d.takes.current = None;
                Ok(vec![
                    OscType::String(path.display().to_string()),
                    chronus_osc::count(frames),
                    chronus_osc::count(dropped),
                ])
            }
            TakeEvent::Failed { reason } => Err(reason),
        };
        let Some((peer, addr)) = d.takes.pending.pop_front() else {
            continue;
        };
        match answer {
            Ok(args) => d.clients.reply(&peer, chronus_osc::done(addr, args)),
            Err(reason) if addr == engine::RECORD_START_ADDR => {
                let dir = d.config.engine.recordings_dir.display().to_string();
                let reason = format!("{reason} (engine.recordings_dir = {dir})");
                d.clients.fail(&peer, addr, &reason)
            }
            Err(reason) => d.clients.fail(&peer, addr, &reason),
        }
    }
}
