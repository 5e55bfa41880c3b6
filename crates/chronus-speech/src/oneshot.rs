//! One-shot engines: a program run once per request, from an argv template whose
//! placeholders (`{text}`, `{voice}`, ...) are replaced by the request's values, each
//! as exactly one argument and never through a shell; optional bytes on stdin; the
//! answer is everything it writes to stdout (for TTS, a WAV stream).
//!
//! There is no process to restart between requests, so there is no crash-loop state:
//! each run stands alone, and a run that exits unsuccessfully fails its request and
//! is counted as a crash in status.

use crate::engine::{
    EngineContext, EngineState, EngineStatus, Figures, Pending, RequestId, RequestQueue, Ticket,
    Timeouts,
};
use crate::error::SpeechError;
use crate::process::{ExitCause, Launch, Output, Proc};
use crossbeam_channel::{Receiver, Sender, select};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long stdout may stay open after the program exited (a helper it started and
/// that escaped its process group may hold it).
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// How a one-shot engine is run.
#[derive(Clone, Debug)]
pub struct OneShotConfig {
    pub name: String,
    /// The argv template, e.g. `["espeak-ng", "--stdout", "-v", "{voice}", "{text}"]`.
    pub argv: Vec<String>,
    /// `first_audio` is counted to the first byte on stdout.
    pub timeouts: Timeouts,
    pub queue_capacity: usize,
    /// Programs run at the same time.
    pub workers: usize,
    pub max_output_bytes: usize,
}

impl OneShotConfig {
    pub fn new(name: &str, argv: Vec<String>) -> Self {
        OneShotConfig {
            name: name.to_string(),
            argv,
            timeouts: Timeouts::default(),
            queue_capacity: 16,
            workers: 2,
            max_output_bytes: 64 << 20,
        }
    }
}

/// One run: the placeholder values and what to write to stdin (closed after it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Job {
    /// (placeholder name without braces, value)
    pub vars: Vec<(String, String)>,
    pub stdin: Vec<u8>,
}

/// Replaces each `{name}` in the template by its value. An argument that is exactly
/// one placeholder and whose value starts with `-` gets a leading space, so request
/// text can never be parsed as an option (`-w FILE` would make espeak-ng write a file).
pub fn substitute(template: &[String], vars: &[(String, String)]) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            for (name, value) in vars {
                if arg.len() == name.len() + 2
                    && arg.starts_with('{')
                    && arg.ends_with('}')
                    && &arg[1..arg.len() - 1] == name
                {
                    return if value.starts_with('-') {
                        format!(" {value}")
                    } else {
                        value.clone()
                    };
                }
            }
            substitute_inside(arg, vars)
        })
        .collect()
}

/// Single pass, so a value containing `{voice}` is not substituted again.
fn substitute_inside(arg: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    'scan: while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        for (name, value) in vars {
            if let Some(after) = tail
                .strip_prefix('{')
                .and_then(|t| t.strip_prefix(name.as_str()))
                .and_then(|t| t.strip_prefix('}'))
            {
                out.push_str(value);
                rest = after;
                continue 'scan;
            }
        }
        out.push('{');
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

struct Shared {
    name: Arc<str>,
    queue: RequestQueue<Job, Vec<u8>>,
    figures: Mutex<Figures>,
    stopping: AtomicBool,
    /// Dropped at shutdown: every worker sees the disconnect.
    stop: Mutex<Option<Sender<()>>>,
}

impl Shared {
    fn figures(&self) -> MutexGuard<'_, Figures> {
        // Plain counters: valid whatever a panicking holder left.
        self.figures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A one-shot engine with its queue and worker threads.
pub struct OneShotEngine {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl OneShotEngine {
    /// Starts the worker threads (which spawn the programs; see
    /// [`Spawner`](crate::process::Spawner)).
    pub fn start(config: OneShotConfig, ctx: EngineContext) -> std::io::Result<Self> {
        let name: Arc<str> = config.name.as_str().into();
        let (queue, bell) = RequestQueue::new(name.clone(), config.queue_capacity);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let mut figures = Figures::new();
        figures.state = EngineState::Ready;
        let shared = Arc::new(Shared {
            name,
            queue,
            figures: Mutex::new(figures),
            stopping: AtomicBool::new(false),
            stop: Mutex::new(Some(stop_tx)),
        });
        let engine = OneShotEngine {
            shared: shared.clone(),
            threads: Mutex::new(Vec::new()),
        };
        for i in 0..config.workers.max(1) {
            let worker = Worker {
                shared: shared.clone(),
                config: config.clone(),
                ctx: ctx.clone(),
                bell: bell.clone(),
                stop: stop_rx.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("speech-{}-{i}", shared.name))
                .spawn(move || worker.run())?;
            engine.threads().push(thread);
        }
        Ok(engine)
    }

    fn threads(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Queues a run; `respond` receives the program's stdout, exactly once.
    pub fn submit(
        &self,
        job: Job,
        respond: impl FnOnce(RequestId, Result<Vec<u8>, SpeechError>) + Send + 'static,
    ) -> Result<RequestId, SpeechError> {
        self.shared.queue.push(job, respond)
    }

    pub fn call(&self, job: Job) -> Result<Ticket<Vec<u8>>, SpeechError> {
        let (ticket, respond) = Ticket::pair();
        let id = self.submit(job, respond)?;
        Ok(ticket.with_id(id))
    }

    pub fn status(&self) -> EngineStatus {
        let s = &self.shared;
        s.figures()
            .snapshot(&s.name, "oneshot", s.queue.len(), s.queue.capacity())
    }

    /// Refuses new runs, answers queued ones, and asks running programs to stop.
    pub fn begin_shutdown(&self) {
        let s = &self.shared;
        if s.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        s.queue.refuse(SpeechError::ShuttingDown {
            engine: s.name.to_string(),
        });
        s.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Shuts down and waits until every program is reaped.
    pub fn shutdown(&self) {
        self.begin_shutdown();
        let threads: Vec<_> = self.threads().drain(..).collect();
        for t in threads {
            if t.join().is_err() {
                tracing::error!(engine = %self.shared.name, "worker thread panicked");
            }
        }
        let mut f = self.shared.figures();
        f.state = EngineState::Stopped;
        f.pid = None;
    }
}

impl Drop for OneShotEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

enum Msg {
    Data(Vec<u8>),
    End,
    Exited,
}

struct Worker {
    shared: Arc<Shared>,
    config: OneShotConfig,
    ctx: EngineContext,
    bell: Receiver<()>,
    stop: Receiver<()>,
}

impl Worker {
    fn run(self) {
        loop {
            let now = Instant::now();
            let t = self.config.timeouts;
            let name = self.shared.name.clone();
            let next = self.shared.queue.expire(
                now,
                |p| p.first_audio_deadline(&t),
                |_| SpeechError::FirstAudioTimeout {
                    engine: name.to_string(),
                    limit: t.first_audio,
                },
            );
            if let Some(pending) = self.shared.queue.pop() {
                if !self.run_one(pending) {
                    return;
                }
                continue;
            }
            let timeout = next.map_or(Duration::from_secs(3600), |n| n - now);
            select! {
                recv(self.stop) -> _ => return,
                recv(self.bell) -> _ => {},
                default(timeout) => {},
            }
        }
    }

    /// Runs one request; false if shutdown interrupted it.
    fn run_one(&self, pending: Pending<Job, Vec<u8>>) -> bool {
        let argv = substitute(&self.config.argv, &pending.request.vars);
        let (tx, rx) = crossbeam_channel::unbounded();
        let exit_tx = tx.clone();
        let spawned = Proc::spawn(
            Launch {
                name: &self.shared.name,
                argv: &argv,
                spawner: &self.ctx.spawner,
                cancel: &self.shared.stopping,
            },
            move |out| {
                let _ = tx.send(match out {
                    Output::Data(d) => Msg::Data(d.to_vec()),
                    Output::End => Msg::End,
                });
            },
            move || {
                let _ = exit_tx.send(Msg::Exited);
            },
        );
        let mut proc = match spawned {
            Ok(p) => p,
            Err(e) => {
                let err = SpeechError::Spawn {
                    engine: self.shared.name.to_string(),
                    program: argv.first().cloned().unwrap_or_default(),
                    error: e.to_string(),
                };
                self.answer(pending, Err(err));
                return true;
            }
        };
        {
            let mut f = self.shared.figures();
            f.pid = Some(proc.pid());
            f.state = EngineState::Busy;
        }
        if !pending.request.stdin.is_empty() {
            proc.write(pending.request.stdin.clone());
        }
        proc.close_stdin();
        let t = self.config.timeouts;
        let first_deadline = pending.first_audio_deadline(&t).min(pending.deadline(&t));
        let deadline = pending.deadline(&t);
        let mut out = Vec::new();
        let (mut ended, mut exited) = (false, false);
        let mut exited_at: Option<Instant> = None;
        let result = loop {
            if ended && exited {
                break None;
            }
            let now = Instant::now();
            let limit = match exited_at {
                Some(at) => (at + OUTPUT_GRACE).min(deadline),
                None if out.is_empty() => first_deadline,
                None => deadline,
            };
            if now >= limit {
                break if exited {
                    // Output held open by an escaped helper: take what arrived.
                    None
                } else if out.is_empty() && now < deadline {
                    Some(SpeechError::FirstAudioTimeout {
                        engine: self.shared.name.to_string(),
                        limit: t.first_audio,
                    })
                } else {
                    Some(SpeechError::Timeout {
                        engine: self.shared.name.to_string(),
                        limit: t.complete,
                    })
                };
            }
            select! {
                recv(self.stop) -> _ => {
                    let cause = proc.stop(self.ctx.stop);
                    tracing::debug!(engine = %self.shared.name, %cause, "run stopped at shutdown");
                    self.answer(pending, Err(SpeechError::ShuttingDown {
                        engine: self.shared.name.to_string(),
                    }));
                    return false;
                },
                recv(rx) -> msg => match msg {
                    Ok(Msg::Data(d)) => {
                        if out.len() + d.len() > self.config.max_output_bytes {
                            break Some(SpeechError::Protocol {
                                engine: self.shared.name.to_string(),
                                detail: format!("more than {} bytes of output", self.config.max_output_bytes),
                            });
                        }
                        out.extend_from_slice(&d);
                    }
                    Ok(Msg::End) => ended = true,
                    Ok(Msg::Exited) => {
                        exited = true;
                        exited_at = Some(Instant::now());
                    }
                    // Both drain threads gone (they send End and Exited first).
                    Err(_) => (ended, exited) = (true, true),
                },
                default(limit - now) => {},
            }
        };
        // Reap (SIGKILLing the group first: nothing of this run outlives it).
        let cause = proc.kill();
        let answer = match result {
            Some(err) => {
                tracing::warn!(engine = %self.shared.name, %err, "run abandoned");
                Err(err)
            }
            // Unknown: a `waitpid(-1)` elsewhere in the daemon took the status; the
            // output is complete (stdout ended) and its parser judges it.
            None if matches!(cause, ExitCause::Code(0) | ExitCause::Unknown) => Ok(out),
            None => {
                self.shared.figures().crashes += 1;
                Err(SpeechError::EngineExited {
                    engine: self.shared.name.to_string(),
                    cause: cause.to_string(),
                })
            }
        };
        self.answer(pending, answer);
        true
    }

    fn answer(&self, pending: Pending<Job, Vec<u8>>, answer: Result<Vec<u8>, SpeechError>) {
        {
            let mut f = self.shared.figures();
            f.answered(&answer);
            f.pid = None;
            f.state = EngineState::Ready;
        }
        pending.respond.respond(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn text_is_one_argument_and_never_an_option() {
        let t = argv(&["espeak-ng", "--stdout", "-v", "{voice}", "{text}"]);
        let v = vars(&[("text", "-w /etc/passwd; rm -rf ~"), ("voice", "en")]);
        assert_eq!(
            substitute(&t, &v),
            argv(&[
                "espeak-ng",
                "--stdout",
                "-v",
                "en",
                " -w /etc/passwd; rm -rf ~"
            ])
        );
    }

    /// Requests queued together reach every idle worker, not just the first one the
    /// queue's doorbell woke: a slow run must not hold up a quick one behind it.
    #[test]
    fn requests_queued_together_run_on_every_worker() {
        let mut config =
            OneShotConfig::new("sh", argv(&["sh", "-c", "sleep $0; echo done", "{t}"]));
        config.workers = 2;
        let engine = OneShotEngine::start(config, EngineContext::default()).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        for t in ["3", "0"] {
            let tx = tx.clone();
            let job = Job {
                vars: vars(&[("t", t)]),
                stdin: Vec::new(),
            };
            engine
                .submit(job, move |_, out| {
                    let _ = tx.send((t, out.is_ok()));
                })
                .unwrap();
        }
        // The quick run answers first, while the slow one still sleeps.
        assert_eq!(rx.recv().unwrap(), ("0", true));
        assert_eq!(rx.recv().unwrap(), ("3", true));
        engine.shutdown();
    }

    #[test]
    fn placeholders_inside_arguments_are_replaced_once() {
        let t = argv(&["tts", "--text={text}", "--voice={voice}", "{literal}"]);
        let v = vars(&[("text", "say {voice}"), ("voice", "de")]);
        assert_eq!(
            substitute(&t, &v),
            argv(&["tts", "--text=say {voice}", "--voice=de", "{literal}"])
        );
    }
}
