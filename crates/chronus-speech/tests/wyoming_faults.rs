//! Fault tests of the supervised Wyoming engine with a scripted fake engine: every
//! request gets a definite answer, the engine is restarted, nothing leaks.

mod support;

use chronus_speech::{
    EngineContext, EngineState, EventSink, Reply, Request, RestartPolicy, SpeechError, SpeechEvent,
    Timeouts, WyomingConfig, WyomingEngine,
};
use crossbeam_channel::Receiver;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{assert_no_children, children, serial};

const FAKE: &str = include_str!("support/fake_wyoming.py");

struct Fake {
    _dir: tempfile::TempDir,
    script: PathBuf,
}

fn fake() -> Option<Fake> {
    if !support::have("python3", "python3") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake_wyoming.py");
    std::fs::write(&script, FAKE).unwrap();
    Some(Fake { _dir: dir, script })
}

fn config(fake: &Fake, args: &[&str]) -> WyomingConfig {
    let mut argv = vec![
        "python3".to_string(),
        fake.script.to_string_lossy().into_owned(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let mut c = WyomingConfig::new("fake", argv);
    c.timeouts = Timeouts {
        first_audio: Duration::from_millis(800),
        complete: Duration::from_secs(3),
    };
    c.startup_timeout = Duration::from_secs(3);
    c.restart = RestartPolicy {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        jitter: 0.2,
        crash_limit: 1000,
        crash_window: Duration::from_secs(60),
    };
    c.health_interval = None;
    c
}

fn start(config: WyomingConfig) -> (WyomingEngine, Receiver<SpeechEvent>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let ctx = EngineContext {
        events: EventSink::new(tx),
        ..EngineContext::default()
    };
    (WyomingEngine::start(config, ctx).unwrap(), rx)
}

fn say(engine: &WyomingEngine, text: &str) -> Result<Reply, SpeechError> {
    engine
        .call(Request::Synthesize {
            text: text.into(),
            voice: None,
        })
        .unwrap()
        .wait()
}

/// The audio the fake answers for `text`: its bytes times 100, at 22050 Hz.
fn expected(text: &str) -> Vec<f32> {
    text.bytes()
        .map(|b| f32::from(i16::from(b) * 100) / 32768.0)
        .collect()
}

fn assert_says(engine: &WyomingEngine, text: &str) {
    match say(engine, text) {
        Ok(Reply::Audio(pcm)) => {
            assert_eq!((pcm.rate, pcm.channels), (22_050, 1));
            assert_eq!(pcm.samples, expected(text), "audio for {text:?}");
        }
        other => panic!("{text:?}: {other:?}"),
    }
}

fn wait_for(events: &Receiver<SpeechEvent>, what: impl Fn(&SpeechEvent) -> bool) -> SpeechEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(e) if what(&e) => return e,
            Ok(_) => {}
            Err(_) => panic!("event not seen within 10 s"),
        }
    }
}

#[test]
fn synthesizes_and_reassembles_output_split_into_single_bytes() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let (engine, _events) = start(config(&fake, &[]));
    assert_says(&engine, "hello world");
    assert_says(&engine, "split");
    let with_voice = engine
        .call(Request::Synthesize {
            text: "hi".into(),
            voice: Some("v1".into()),
        })
        .unwrap()
        .wait();
    assert!(matches!(with_voice, Ok(Reply::Audio(p)) if p.samples == expected("hiv1")));
    let s = engine.status();
    assert_eq!(
        (s.state, s.restarts, s.crashes, s.completed),
        (EngineState::Ready, 0, 0, 3)
    );
    engine.shutdown();
    assert_no_children();
}

#[test]
fn transcribe_and_describe_round_trip() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let (engine, _events) = start(config(&fake, &[]));
    let audio = chronus_speech::Pcm {
        rate: 16_000,
        channels: 1,
        samples: vec![0.1; 5000],
    };
    let reply = engine.call(Request::Transcribe { audio }).unwrap().wait();
    assert_eq!(reply, Ok(Reply::Transcript("5000 samples".into())));
    let Ok(Reply::Info(info)) = engine.call(Request::Describe).unwrap().wait() else {
        panic!("no info");
    };
    assert!(info.contains_key("tts"));
    engine.shutdown();
    assert_no_children();
}

#[test]
fn crash_mid_request_fails_it_and_the_engine_restarts() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let (engine, events) = start(config(&fake, &[]));
    assert_says(&engine, "before");
    let first_pid = engine.status().pid.unwrap();
    assert!(matches!(
        say(&engine, "crash"),
        Err(SpeechError::EngineExited { .. })
    ));
    let exited = wait_for(&events, |e| matches!(e, SpeechEvent::EngineExited { .. }));
    assert!(
        matches!(&exited, SpeechEvent::EngineExited { pid, crash: true, cause, .. }
            if *pid == first_pid && cause == "exit status 1"),
        "{exited:?}"
    );
    assert_says(&engine, "after");
    let s = engine.status();
    assert_eq!((s.restarts, s.crashes), (1, 1));
    assert_ne!(s.pid, Some(first_pid));
    engine.shutdown();
    assert_no_children();
}

#[test]
fn garbage_output_is_a_protocol_error_quoting_the_bytes() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let (engine, events) = start(config(&fake, &[]));
    let err = say(&engine, "garbage").unwrap_err();
    let SpeechError::Protocol { detail, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        detail.contains("\\x00\\x01 this is not json {{{"),
        "{detail}"
    );
    let event = wait_for(&events, |e| matches!(e, SpeechEvent::ProtocolError { .. }));
    assert!(
        matches!(event, SpeechEvent::ProtocolError { detail, .. } if detail.contains("not valid JSON"))
    );
    assert_says(&engine, "recovered");
    // A header cut short by the engine's exit is a protocol error too.
    assert!(matches!(
        say(&engine, "truncated"),
        Err(SpeechError::Protocol { .. } | SpeechError::EngineExited { .. })
    ));
    assert_says(&engine, "recovered again");
    assert_eq!(engine.status().crashes, 2);
    engine.shutdown();
    assert_no_children();
}

#[test]
fn hung_engine_times_out_and_is_replaced() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let (engine, events) = start(config(&fake, &[]));
    for text in ["hang", "partial"] {
        let t = Instant::now();
        let err = say(&engine, text).unwrap_err();
        assert!(
            matches!(err, SpeechError::FirstAudioTimeout { .. }),
            "{text}: {err:?}"
        );
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        wait_for(&events, |e| matches!(e, SpeechEvent::Unresponsive { .. }));
        assert_says(&engine, "alive");
    }
    let s = engine.status();
    assert_eq!((s.crashes, s.timeouts), (2, 2));
    engine.shutdown();
    assert_no_children();
}

#[test]
fn late_reply_never_reaches_the_next_request() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let (engine, _events) = start(config(&fake, &[]));
    // "late" answers after 1.5 s, past the 0.8 s first-audio timeout. Neither the
    // next request nor any later one may receive that answer.
    assert!(matches!(
        say(&engine, "late"),
        Err(SpeechError::FirstAudioTimeout { .. })
    ));
    assert_says(&engine, "next");
    std::thread::sleep(Duration::from_millis(1000));
    assert_says(&engine, "after");
    engine.shutdown();
    assert_no_children();
}

#[test]
fn error_then_exit_restarts_without_counting_a_crash() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let (engine, events) = start(config(&fake, &[]));
    let err = say(&engine, "error").unwrap_err();
    assert!(
        matches!(&err, SpeechError::EngineError { message, .. } if message == "voice not found"),
        "{err:?}"
    );
    let exited = wait_for(&events, |e| matches!(e, SpeechEvent::EngineExited { .. }));
    assert!(
        matches!(exited, SpeechEvent::EngineExited { crash: false, .. }),
        "{exited:?}"
    );
    assert_says(&engine, "after");
    let s = engine.status();
    assert_eq!((s.restarts, s.crashes), (1, 0));
    // An error the engine survives keeps the process.
    let pid = s.pid;
    assert!(matches!(
        say(&engine, "soft"),
        Err(SpeechError::EngineError { .. })
    ));
    assert_says(&engine, "still here");
    assert_eq!(engine.status().pid, pid);
    engine.shutdown();
    assert_no_children();
}

#[test]
fn slow_start_queues_requests_until_ready() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let mut c = config(&fake, &["--slow-start", "0.5"]);
    c.timeouts.first_audio = Duration::from_secs(3);
    let (engine, _events) = start(c);
    let t = Instant::now();
    assert_eq!(engine.status().state, EngineState::Starting);
    assert_says(&engine, "patience");
    assert!(t.elapsed() >= Duration::from_millis(450));
    assert_eq!(engine.status().crashes, 0);
    engine.shutdown();
    assert_no_children();
}

#[test]
fn exit_at_once_reaches_the_crash_loop_limit_and_reset_revives() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let flag = fake._dir.path().join("broken");
    std::fs::write(&flag, "").unwrap();
    let mut c = config(&fake, &["--exit-at-once-if", flag.to_str().unwrap()]);
    c.restart.crash_limit = 3;
    c.timeouts.first_audio = Duration::from_secs(5);
    let (engine, events) = start(c);
    let queued = engine
        .call(Request::Synthesize {
            text: "queued".into(),
            voice: None,
        })
        .unwrap();
    let failed = wait_for(&events, |e| matches!(e, SpeechEvent::EngineFailed { .. }));
    assert_eq!(
        failed,
        SpeechEvent::EngineFailed {
            engine: "fake".into(),
            crashes: 3
        }
    );
    assert!(matches!(
        queued.wait(),
        Err(SpeechError::EngineFailed { crashes: 3, .. })
    ));
    let s = engine.status();
    assert!(s.failed && s.pid.is_none() && s.crashes == 3, "{s:?}");
    assert!(matches!(
        say_refused(&engine),
        SpeechError::EngineFailed { .. }
    ));
    assert_no_children();
    std::fs::remove_file(&flag).unwrap();
    engine.reset();
    wait_for(&events, |e| matches!(e, SpeechEvent::EngineStarted { .. }));
    assert_says(&engine, "revived");
    engine.shutdown();
    assert_no_children();
}

fn say_refused(engine: &WyomingEngine) -> SpeechError {
    engine
        .call(Request::Synthesize {
            text: "x".into(),
            voice: None,
        })
        .err()
        .expect("refused at once")
}

#[test]
fn full_queue_answers_busy() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let mut c = config(&fake, &[]);
    c.queue_capacity = 2;
    let (engine, _events) = start(c);
    assert_says(&engine, "ready");
    let in_flight = engine
        .call(Request::Synthesize {
            text: "hang".into(),
            voice: None,
        })
        .unwrap();
    // "hang" has left the queue and is in flight.
    while engine.status().state != EngineState::Busy || engine.status().queue_depth != 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let queued: Vec<_> = (0..2)
        .map(|_| {
            engine
                .call(Request::Synthesize {
                    text: "q".into(),
                    voice: None,
                })
                .unwrap()
        })
        .collect();
    assert!(matches!(
        say_refused(&engine),
        SpeechError::Busy { capacity: 2, .. }
    ));
    assert_eq!(engine.status().queue_depth, 2);
    assert!(in_flight.wait().is_err());
    for q in queued {
        // Definite answers: audio after the restart, or a timeout.
        let _ = q.wait();
    }
    engine.shutdown();
    assert_no_children();
}

#[test]
fn shutdown_answers_everything_and_is_prompt() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let (engine, _events) = start(config(&fake, &[]));
    assert_says(&engine, "ready");
    let in_flight = engine
        .call(Request::Synthesize {
            text: "hang".into(),
            voice: None,
        })
        .unwrap();
    let queued = engine
        .call(Request::Synthesize {
            text: "queued".into(),
            voice: None,
        })
        .unwrap();
    let t = Instant::now();
    engine.shutdown();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    assert!(matches!(
        in_flight.wait(),
        Err(SpeechError::ShuttingDown { .. })
    ));
    assert!(matches!(
        queued.wait(),
        Err(SpeechError::ShuttingDown { .. })
    ));
    assert!(matches!(
        say_refused(&engine),
        SpeechError::ShuttingDown { .. }
    ));
    assert_eq!(engine.status().state, EngineState::Stopped);
    assert_no_children();
}

#[test]
fn stubborn_engine_is_killed_within_the_worst_case_bound() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let (engine, events) = start(config(&fake, &["--stubborn"]));
    assert_says(&engine, "ready");
    let t = Instant::now();
    engine.shutdown();
    let took = t.elapsed();
    // Close stdin, 2 s, SIGTERM (ignored), 1 s, SIGKILL.
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let exited = wait_for(&events, |e| matches!(e, SpeechEvent::EngineExited { .. }));
    assert!(
        matches!(exited, SpeechEvent::EngineExited { ref cause, crash: false, .. } if cause.contains("SIGKILL")),
        "{exited:?}"
    );
    assert_no_children();
}

#[test]
fn health_check_replaces_an_engine_that_stops_answering() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let mut c = config(&fake, &["--info-once"]);
    c.health_interval = Some(Duration::from_millis(200));
    c.health_timeout = Duration::from_millis(200);
    let (engine, events) = start(c);
    let first = wait_for(&events, |e| matches!(e, SpeechEvent::EngineStarted { .. }));
    wait_for(&events, |e| {
        matches!(e, SpeechEvent::HealthCheckFailed { .. })
    });
    let second = wait_for(&events, |e| matches!(e, SpeechEvent::EngineStarted { .. }));
    assert_ne!(first, second);
    let s = engine.status();
    let health = s.health.expect("a health check ran");
    assert!(
        !health.ok && health.age < Duration::from_secs(2),
        "{health:?}"
    );
    assert!(s.crashes >= 1);
    engine.shutdown();
    assert_no_children();
}

#[test]
fn hundred_forced_restarts_leave_no_zombie() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    // A shell engine (fast to start) that answers the handshake and dies on the
    // first request.
    let script = fake._dir.path().join("crash.sh");
    std::fs::write(
        &script,
        "read -r describe\nprintf '{\"type\":\"info\"}\\n'\nread -r request\nexit 1\n",
    )
    .unwrap();
    let mut c = config(&fake, &[]);
    c.argv = vec!["sh".into(), script.to_string_lossy().into_owned()];
    c.restart.backoff_initial = Duration::from_millis(1);
    c.restart.backoff_max = Duration::from_millis(1);
    c.timeouts.first_audio = Duration::from_secs(5);
    let (engine, _events) = start(c);
    for i in 0..100 {
        let err = say(&engine, "die").unwrap_err();
        assert!(
            matches!(err, SpeechError::EngineExited { .. }),
            "round {i}: {err:?}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    // The answer precedes the restart: wait until the 100th restart is up.
    while engine.status().state != EngineState::Ready || engine.status().restarts < 100 {
        assert!(Instant::now() < deadline, "{:?}", engine.status());
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = engine.status();
    assert_eq!((s.restarts, s.crashes), (100, 100));
    let kids = children();
    assert_eq!(kids.len(), 1, "only the live engine: {kids:?}");
    assert_eq!(kids[0].0, s.pid.unwrap());
    assert_ne!(kids[0].1, "Z", "the live engine is no zombie");
    engine.shutdown();
    assert_no_children();
}

#[test]
fn pooled_wyoming_tts_gives_every_concurrent_request_its_own_audio() {
    let _serial = serial();
    let Some(fake) = fake() else { return };
    let mut tts_config = chronus_speech::TtsConfig::new(chronus_speech::TtsBackend::Wyoming {
        config: config(&fake, &[]),
        engines: 3,
    });
    // Keep the engine's rate so the audio can be compared with what the fake sent.
    tts_config.output_rate = 22_050;
    tts_config.output_channels = 1;
    tts_config.queue_capacity = 64;
    let mut tts = chronus_speech::Tts::start(tts_config, EngineContext::default()).unwrap();
    let texts: Vec<String> = (0..30).map(|i| format!("phrase {i}")).collect();
    let tickets: Vec<_> = texts
        .iter()
        .map(|t| tts.say_ticket(t, None).unwrap())
        .collect();
    for (text, ticket) in texts.iter().zip(tickets) {
        let audio = ticket.wait().unwrap();
        let want = expected(text);
        assert_eq!(audio.samples.len(), want.len(), "{text}");
        assert!(
            audio
                .samples
                .iter()
                .zip(&want)
                .all(|(a, b)| (a - b).abs() < 1e-5),
            "{text} got another request's audio"
        );
    }
    let s = tts.status();
    let pool = s.pool.unwrap();
    assert_eq!((pool.size, pool.in_use, pool.acquisitions), (3, 0, 30));
    assert_eq!(s.engines.len(), 3);
    assert_eq!(s.engines.iter().map(|e| e.completed).sum::<u64>(), 30);
    assert_eq!(s.cache.entries, 30);
    tts.shutdown();
    assert_no_children();
}
