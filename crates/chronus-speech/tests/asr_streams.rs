//! ASR stream sessions with scripted fake engines: one session per stream however
//! starts race, restarts after a crash, the crash-loop limit, and clean shutdown.

mod support;

use chronus_speech::{
    Asr, AsrConfig, EngineContext, EngineState, EventSink, RestartPolicy, SpeechEvent, StreamStart,
};
use crossbeam_channel::Receiver;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::{assert_no_children, children, serial};

/// An ASR "engine" that is a shell script: `script` reads 16 kHz s16le on stdin.
fn asr(script: &str, crash_limit: u32) -> (Asr, Receiver<SpeechEvent>) {
    // Not skippable: without a shell nothing else would run either.
    assert!(support::have("sh", "dash"));
    let mut config = AsrConfig::pocketsphinx(None);
    config.name = "fake".into();
    config.argv = vec!["sh".into(), "-c".into(), script.into()];
    config.restart = RestartPolicy {
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        jitter: 0.2,
        crash_limit,
        crash_window: Duration::from_secs(60),
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let ctx = EngineContext {
        events: EventSink::new(tx),
        ..EngineContext::default()
    };
    (Asr::start(config, ctx).unwrap(), rx)
}

fn wait_for(events: &Receiver<SpeechEvent>, what: impl Fn(&SpeechEvent) -> bool) -> SpeechEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match events.recv_deadline(deadline) {
            Ok(e) if what(&e) => return e,
            Ok(_) => {}
            Err(_) => panic!("event not seen within 10 s"),
        }
    }
}

/// A little over one second of 48 kHz stereo: over 16000 samples (32000 bytes) at
/// the engine, even with the resampler's look-ahead held back.
fn one_second() -> Vec<f32> {
    vec![0.25; 100_000]
}

#[test]
fn racing_starts_create_exactly_one_session_per_stream() {
    let _serial = serial();
    let (asr, events) = asr("exec cat >/dev/null", 5);
    let asr = Arc::new(asr);
    let barrier = Arc::new(Barrier::new(16));
    let starts: Vec<_> = (0..16)
        .map(|_| {
            let asr = asr.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                asr.start_stream("door").unwrap()
            })
        })
        .collect();
    let results: Vec<StreamStart> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == StreamStart::Started)
            .count(),
        1
    );
    wait_for(&events, |e| matches!(e, SpeechEvent::EngineStarted { .. }));
    assert_eq!(children().len(), 1, "one engine process");
    assert_eq!(asr.active_streams(), ["door"]);
    // Another stream is another session.
    assert_eq!(asr.start_stream("desk").unwrap(), StreamStart::Started);
    wait_for(&events, |e| matches!(e, SpeechEvent::EngineStarted { .. }));
    assert_eq!(children().len(), 2);
    asr.shutdown();
    assert!(
        events
            .try_iter()
            .all(|e| !matches!(e, SpeechEvent::EngineStarted { .. }))
    );
    assert_no_children();
}

#[test]
fn transcripts_arrive_as_events_and_the_last_one_after_stop() {
    let _serial = serial();
    // "Recognises" one phrase per second of audio, and one more at end of input.
    let (asr, events) = asr(
        "while head -c 32000 | wc -c | grep -q 32000; do echo 'good morning'; done; echo '{\"t\": \"stop\"}'",
        5,
    );
    asr.start_stream("mic").unwrap();
    asr.push_all(&one_second(), 48_000, 2);
    let e = wait_for(&events, |e| matches!(e, SpeechEvent::Transcript { .. }));
    assert_eq!(
        e,
        SpeechEvent::Transcript {
            stream: "mic".into(),
            text: "good morning".into(),
            is_final: true
        }
    );
    assert!(asr.stop_stream("mic"));
    let last = wait_for(&events, |e| matches!(e, SpeechEvent::Transcript { .. }));
    assert!(
        matches!(last, SpeechEvent::Transcript { ref text, .. } if text == "stop"),
        "{last:?}"
    );
    let exited = wait_for(&events, |e| matches!(e, SpeechEvent::EngineExited { .. }));
    assert!(matches!(
        exited,
        SpeechEvent::EngineExited { crash: false, .. }
    ));
    asr.shutdown();
    assert_no_children();
}

#[test]
fn crashed_session_restarts_and_a_crash_loop_fails_the_stream() {
    let _serial = serial();
    // Dies after a tenth of a second of audio.
    let (asr, events) = asr("head -c 3200 >/dev/null; exit 3", 3);
    asr.start_stream("mic").unwrap();
    let first = wait_for(&events, |e| matches!(e, SpeechEvent::EngineStarted { .. }));
    asr.push("mic", &one_second(), 48_000, 2).unwrap();
    let exited = wait_for(&events, |e| matches!(e, SpeechEvent::EngineExited { .. }));
    assert!(
        matches!(&exited, SpeechEvent::EngineExited { crash: true, cause, .. } if cause == "exit status 3"),
        "{exited:?}"
    );
    let second = wait_for(&events, |e| matches!(e, SpeechEvent::EngineStarted { .. }));
    assert_ne!(first, second);
    asr.push("mic", &one_second(), 48_000, 2).unwrap();
    wait_for(&events, |e| matches!(e, SpeechEvent::EngineExited { .. }));
    // Audio pushed while the session waits out its backoff is dropped: push only
    // once the third process is up.
    wait_for(&events, |e| matches!(e, SpeechEvent::EngineStarted { .. }));
    asr.push("mic", &one_second(), 48_000, 2).unwrap();
    let failed = wait_for(&events, |e| matches!(e, SpeechEvent::EngineFailed { .. }));
    assert_eq!(
        failed,
        SpeechEvent::EngineFailed {
            engine: "fake/mic".into(),
            crashes: 3
        }
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let s = asr.status().streams[0].clone();
        if s.engine.state == EngineState::Failed || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.engine.failed, "{status:?}");
    assert_eq!((status.engine.crashes, status.engine.restarts), (3, 2));
    // A failed stream still accepts (and counts as dropped) audio, and can be stopped.
    asr.push("mic", &one_second(), 48_000, 2).unwrap();
    assert_no_children();
    assert!(asr.stop_stream("mic"));
    asr.shutdown();
    assert_no_children();
}

#[test]
fn streams_beyond_the_limit_are_refused_and_unknown_streams_are_errors() {
    let _serial = serial();
    let (asr, _events) = asr("exec cat >/dev/null", 5);
    for i in 0..4 {
        asr.start_stream(&format!("s{i}")).unwrap();
    }
    assert!(matches!(
        asr.start_stream("s4"),
        Err(chronus_speech::SpeechError::Busy { capacity: 4, .. })
    ));
    assert!(asr.push("nope", &[0.0], 48_000, 1).is_err());
    assert!(!asr.stop_stream("nope"));
    let t = Instant::now();
    asr.shutdown();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(matches!(
        asr.start_stream("late"),
        Err(chronus_speech::SpeechError::ShuttingDown { .. })
    ));
    assert_no_children();
}
