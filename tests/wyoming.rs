//! Speech through Wyoming services that already run, the Home Assistant way: TTS,
//! ASR and wake-word servers built on the official `wyoming` package
//! (`tests/wyoming/services.py`, wrapping espeak-ng and pocketsphinx) on loopback
//! TCP, found by `speech.*.uri`. Each is killed mid-request and started again:
//! every request gets one definite answer, the daemon reconnects, and the music
//! plays on bit for bit. Run serially with the other end-to-end tests.

use chronus_e2e::client::{Client, is};
use chronus_e2e::pulse;
use chronus_e2e::wyoming::Service;
use chronus_e2e::*;
use chronus_osc::{OscMessage, OscType};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const GRAMMAR: &str = "#JSGF V1.0;\ngrammar chronus;\n\
    public <phrase> = hello world | good morning | hello computer | stop the music;\n";

fn grammar(dir: &Path) -> String {
    let path = dir.join("phrases.jsgf");
    std::fs::write(&path, GRAMMAR).unwrap();
    path.display().to_string()
}

fn tone(d: &Daemon) {
    d.send("/mod/voice1/freq", vec![OscType::Float(440.0)]);
    d.send("/mod/voice1/amp", vec![OscType::Float(0.2)]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
}

fn speech_status(c: &Client) -> serde_json::Value {
    c.send("/chronus/speech/status", vec![]);
    let m = c.expect(
        "/chronus/speech/status.reply",
        Duration::from_secs(5),
        |m| m.addr == "/chronus/speech/status.reply",
    );
    let Some(OscType::String(json)) = m.args.first() else {
        panic!("status reply without JSON: {m:?}");
    };
    serde_json::from_str(json).unwrap()
}

fn connection(state: &'static str) -> impl Fn(&OscMessage) -> bool {
    move |m| {
        m.addr == "/chronus/speech/connection"
            && m.args.get(2) == Some(&OscType::String(state.into()))
    }
}

/// Waits until the engine at JSON `pointer` in the speech status is connected.
fn wait_ready(c: &Client, pointer: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = speech_status(c);
        if status
            .pointer(pointer)
            .is_some_and(|e| e["state"] == "ready")
        {
            return;
        }
        assert!(Instant::now() < deadline, "{pointer} not ready: {status:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The answers (`/chronus/tts/done` or `/chronus/fail`) to request `id` among `got`.
fn answers_for(got: &[OscMessage], id: &str) -> Vec<String> {
    got.iter()
        .filter(|m| m.addr == "/chronus/tts/done" || m.addr == "/chronus/fail")
        .filter(|m| {
            m.args.iter().any(|a| match a {
                OscType::String(s) => s == id || s.contains(&format!("request {id}:")),
                _ => false,
            })
        })
        .map(|m| format!("{} {:?}", m.addr, m.args))
        .collect()
}

#[test]
fn a_wyoming_tts_service_speaks_hello_world_and_a_wyoming_recogniser_hears_it() {
    let dir = scratch("wyoming-hello");
    let Some(tts) = Service::start(&dir, "tts", &[]) else {
        return;
    };
    let record = dir.join("out.wav");
    let d = Daemon::start(
        "wyoming-hello-daemon",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_TTS_URI", tts.uri()),
            ("CHRONUS_RECORD", record.display().to_string()),
        ],
    );
    let c = Client::new(&d);
    c.send("/chronus/notify", vec![OscType::Int(1)]);
    c.say("hello world", "greeting");
    c.expect(
        "/chronus/tts/done",
        Duration::from_secs(15),
        is("/chronus/tts/done", "greeting"),
    );
    let status = speech_status(&c);
    let engine = &status["tts"]["engines"][0];
    assert_eq!(engine["endpoint"], tts.uri(), "{status:#}");
    assert_eq!(engine["pid"], serde_json::Value::Null, "{status:#}");
    let voices = engine["offers"]["voices"].as_array().unwrap();
    assert!(voices.contains(&"en".into()), "{status:#}");
    assert_eq!(engine["offers"]["programs"][0], "espeak-ng", "{status:#}");
    let s = d.status();
    assert_eq!(long(&s, "tts_spoken"), 1);
    assert_eq!(long(&s, "underrun_frames"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let (_, samples) = read_wav(&record);
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.1, "the recording holds no speech (peak {peak})");

    let asr = Service::start(&dir, "asr", &["--grammar", &grammar(&dir)]).unwrap();
    let d = Daemon::start(
        "wyoming-hello-listen",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_ASR_URI", asr.uri()),
            ("CHRONUS_ASR_TRANSCRIBE_DIR", dir.display().to_string()),
        ],
    );
    let c = Client::new(&d);
    c.send(
        "/chronus/asr/transcribe",
        vec![OscType::String("out.wav".into())],
    );
    let reply = c.expect("a transcript", Duration::from_secs(30), |m| {
        m.addr == "/chronus/asr/transcript" || m.addr == "/chronus/fail"
    });
    assert_eq!(
        reply.args,
        vec![
            OscType::String("out.wav".into()),
            OscType::String("hello world".into()),
            OscType::Int(1)
        ],
        "service log:\n{}",
        asr.log()
    );
    let status = speech_status(&c);
    assert_eq!(
        status["asr"]["files"]["offers"]["models"][0], "pocketsphinx-en-us",
        "{status:#}"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn a_tts_service_killed_mid_request_gives_one_answer_reconnects_and_the_music_plays_on() {
    let dir = scratch("wyoming-tts-kill");
    let Some(mut tts) = Service::start(&dir, "tts", &[]) else {
        return;
    };
    let (record, journal) = (dir.join("out.wav"), dir.join("journal.osc"));
    let d = Daemon::start(
        "wyoming-tts-kill-daemon",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_TTS_URI", tts.uri()),
            ("CHRONUS_RECORD", record.display().to_string()),
            ("CHRONUS_JOURNAL", journal.display().to_string()),
        ],
    );
    tone(&d);
    let c = Client::new(&d);
    c.send("/chronus/notify", vec![OscType::Int(1)]);
    wait_ready(&c, "/tts/engines/0");
    c.say("[hang] this is never answered", "hung");
    std::thread::sleep(Duration::from_millis(300));
    tts.kill();
    let got = c.collect(Duration::from_secs(3));
    assert!(got.iter().any(connection("disconnected")), "{got:#?}");
    let answers = answers_for(&got, "hung");
    assert_eq!(answers.len(), 1, "{answers:#?}");
    assert!(answers[0].starts_with("/chronus/fail"), "{answers:#?}");
    // Down: a request waits for the service within its timeout.
    c.say("hello world", "while down");
    std::thread::sleep(Duration::from_millis(500));
    tts.restart();
    let got = c.collect(Duration::from_secs(10));
    assert!(got.iter().any(connection("connected")), "{got:#?}");
    let answers = answers_for(&got, "while down");
    assert_eq!(answers.len(), 1, "{answers:#?}");
    assert!(answers[0].starts_with("/chronus/tts/done"), "{answers:#?}");
    let s = d.status();
    assert_eq!(long(&s, "tts_spoken"), 1);
    assert_eq!(long(&s, "tts_failed"), 1);
    assert_eq!(long(&s, "underrun_frames"), 0);
    assert_eq!(long(&s, "divergences"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let (_, live) = read_wav(&record);
    let reference = render_journal(&dir, &journal, &live);
    assert_eq!(
        altered_samples(&live, &reference),
        0,
        "samples differ from the journal's render"
    );
}

#[test]
fn an_asr_service_killed_mid_request_gives_one_answer_and_the_restarted_one_transcribes() {
    let dir = scratch("wyoming-asr-kill");
    let grammar = grammar(&dir);
    let Some(mut asr) = Service::start(&dir, "asr", &["--grammar", &grammar, "--delay-s", "3"])
    else {
        return;
    };
    let wav = dir.join("hello.wav");
    let made = Command::new("espeak-ng")
        .args(["-w", &wav.display().to_string(), "hello world"])
        .status()
        .unwrap();
    assert!(made.success());
    let (record, journal) = (dir.join("out.wav"), dir.join("journal.osc"));
    let d = Daemon::start(
        "wyoming-asr-kill-daemon",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_ASR_URI", asr.uri()),
            ("CHRONUS_ASR_TRANSCRIBE_DIR", dir.display().to_string()),
            ("CHRONUS_RECORD", record.display().to_string()),
            ("CHRONUS_JOURNAL", journal.display().to_string()),
        ],
    );
    tone(&d);
    let c = Client::new(&d);
    c.send("/chronus/notify", vec![OscType::Int(1)]);
    wait_ready(&c, "/asr/files");
    let transcribe = || {
        c.send(
            "/chronus/asr/transcribe",
            vec![OscType::String("hello.wav".into())],
        )
    };
    transcribe();
    std::thread::sleep(Duration::from_millis(800));
    asr.kill();
    let first = c.expect("one answer", Duration::from_secs(5), |m| {
        m.addr == "/chronus/asr/transcript" || m.addr == "/chronus/fail"
    });
    assert_eq!(first.addr, "/chronus/fail", "{first:?}");
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.expect("a second answer", Duration::from_secs(2), |m| {
            m.addr == "/chronus/asr/transcript" || m.addr == "/chronus/fail"
        })
    }));
    assert!(again.is_err(), "two answers to one request: {again:?}");
    // Started again on the same port, without the delay: the daemon reconnects and
    // the same request now succeeds.
    asr.restart_with(&["--grammar", &grammar]);
    c.expect(
        "the reconnection",
        Duration::from_secs(10),
        connection("connected"),
    );
    transcribe();
    let reply = c.expect("a transcript", Duration::from_secs(30), |m| {
        m.addr == "/chronus/asr/transcript" || m.addr == "/chronus/fail"
    });
    assert_eq!(
        reply.args,
        vec![
            OscType::String("hello.wav".into()),
            OscType::String("hello world".into()),
            OscType::Int(1)
        ],
        "service log:\n{}",
        asr.log()
    );
    let s = d.status();
    assert_eq!(long(&s, "underrun_frames"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let (_, live) = read_wav(&record);
    let reference = render_journal(&dir, &journal, &live);
    assert_eq!(
        altered_samples(&live, &reference),
        0,
        "the music was touched: samples differ from the journal's render"
    );
}

/// Speech a Wyoming TTS returns in chunks plays from the first chunk: the service
/// holds its last chunk back until the test has heard `/chronus/tts/start`, so the
/// start cannot have waited for the whole utterance. The held chunk comes after the
/// speech before it has played (a pause, counted); the output is still the
/// journal's render bit for bit, continuations included.
#[test]
fn chunked_speech_starts_playing_on_its_first_chunk_and_plays_bit_exactly() {
    let dir = scratch("wyoming-chunks");
    let gate = dir.join("release");
    let gate_arg = gate.display().to_string();
    let Some(tts) = Service::start(&dir, "tts", &["--hold-until", &gate_arg]) else {
        return;
    };
    let (record, journal) = (dir.join("out.wav"), dir.join("journal.osc"));
    let d = Daemon::start(
        "wyoming-chunks-daemon",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_TTS_URI", tts.uri()),
            ("CHRONUS_RECORD", record.display().to_string()),
            ("CHRONUS_JOURNAL", journal.display().to_string()),
        ],
    );
    tone(&d);
    let c = Client::new(&d);
    wait_ready(&c, "/tts/engines/0");
    c.say(
        "the music keeps playing while this sentence arrives in pieces",
        "chunked",
    );
    c.expect(
        "/chronus/tts/start before the last chunk",
        Duration::from_secs(10),
        is("/chronus/tts/start", "chunked"),
    );
    assert!(
        !tts.log().contains("audio-stop sent"),
        "the service already finished: {}",
        tts.log()
    );
    // Longer than the sentence takes to say: everything before the held chunk has
    // played when it comes.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(d.status().get("tts_playing"), Some(&OscType::Int(1)));
    std::fs::write(&gate, b"").unwrap();
    c.expect(
        "/chronus/tts/done",
        Duration::from_secs(20),
        is("/chronus/tts/done", "chunked"),
    );
    let s = d.status();
    assert_eq!(long(&s, "tts_spoken"), 1);
    assert_eq!(long(&s, "tts_stream_gaps"), 1, "the held chunk came late");
    assert_eq!(long(&s, "underrun_frames"), 0);
    assert_eq!(long(&s, "divergences"), 0);

    // Unheld, a long sentence streams faster than it plays: no pause.
    std::fs::write(&gate, b"").unwrap();
    c.say(
        "and this longer sentence, spoken while the music plays on, streams in \
         faster than it is played, so it never has to wait for its next piece",
        "fast",
    );
    c.expect(
        "/chronus/tts/done",
        Duration::from_secs(30),
        is("/chronus/tts/done", "fast"),
    );
    let s = d.status();
    assert_eq!(long(&s, "tts_spoken"), 2);
    assert_eq!(long(&s, "tts_stream_gaps"), 1, "a pause in a fast stream");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let (_, live) = read_wav(&record);
    let reference = render_journal(&dir, &journal, &live);
    assert_eq!(
        altered_samples(&live, &reference),
        0,
        "samples differ from the journal's render"
    );
    let peak = live.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.3, "no speech above the tone (peak {peak})");
}

/// The daemon hears its own output: PulseAudio's null sink monitor is the default
/// input. A Wyoming wake-word service (pocketsphinx listening for "hello computer")
/// fires; with `then_listen` the next utterance goes to a Wyoming recogniser and its
/// transcript follows on the `wake` stream; `/chronus/asr/start` streams to the same
/// recogniser. The wake-word service killed and started again: the daemon
/// reconnects and hears the wake word again.
#[test]
fn a_wake_word_over_wyoming_fires_then_the_next_utterance_is_transcribed() {
    let dir = scratch("wyoming-wake");
    let Some(pulse) = pulse::start(&dir) else {
        return;
    };
    let grammar = grammar(&dir);
    let Some(mut wake) = Service::start(
        &dir,
        "wake",
        &[
            "--grammar",
            &grammar,
            "--wake-word",
            "hey_computer=hello computer",
        ],
    ) else {
        return;
    };
    let asr = Service::start(&dir, "asr", &["--grammar", &grammar]).unwrap();
    pulse.hear_the_sink_as_default_source().unwrap();
    let d = Daemon::start(
        "wyoming-wake-daemon",
        &[
            ("CHRONUS_AUDIO_BACKEND", "cpal".into()),
            ("CHRONUS_PULSE_SERVER", pulse.address().to_owned()),
            ("CHRONUS_BUFFER_SIZE", "2048".into()),
            ("CHRONUS_INPUT_DEVICE", "pulse".into()),
            ("CHRONUS_ASR_URI", asr.uri()),
            ("CHRONUS_WAKE_ENABLED", "true".into()),
            ("CHRONUS_WAKE_URI", wake.uri()),
            ("CHRONUS_WAKE_NAMES", "hey_computer".into()),
            ("CHRONUS_WAKE_THEN_LISTEN", "true".into()),
            ("HOME", dir.display().to_string()),
        ],
    );
    let c = Client::new(&d);
    c.send("/chronus/notify", vec![OscType::Int(1)]);
    wait_ready(&c, "/wake/engine");
    let status = speech_status(&c);
    assert_eq!(
        status["wake"]["engine"]["offers"]["wake_words"][0], "hey_computer",
        "{status:#}"
    );
    let heard = |what: &str, timeout: Duration| {
        c.expect(what, timeout, |m| {
            m.addr == "/chronus/wake"
                && m.args.first() == Some(&OscType::String("hey_computer".into()))
        })
    };
    // The recogniser and the detector hear a moment of silence first.
    std::thread::sleep(Duration::from_millis(500));
    c.say("hello computer", "wake");
    let woke = heard("/chronus/wake hey_computer", Duration::from_secs(30));
    assert!(
        matches!(woke.args.get(1), Some(OscType::Long(frame)) if *frame > 0),
        "{woke:?}"
    );
    c.say("good morning", "command");
    let transcript = c.expect(
        "the transcript after the wake word",
        Duration::from_secs(30),
        |m| m.addr == "/chronus/asr/transcript",
    );
    assert_eq!(
        transcript.args,
        vec![
            OscType::String("wake".into()),
            OscType::String("good morning".into()),
            OscType::Int(1)
        ],
        "asr log:\n{}",
        asr.log()
    );
    // One utterance: the stream ended with its transcript.
    let status = speech_status(&c);
    assert_eq!(status["asr"]["active_streams"], 0, "{status:#}");

    // A stream started by a client goes to the same recogniser, utterance by utterance.
    c.send("/chronus/asr/start", vec![]);
    c.expect(
        "/chronus/done /chronus/asr/start",
        Duration::from_secs(10),
        |m| {
            m.addr == "/chronus/done"
                && m.args.first() == Some(&OscType::String("/chronus/asr/start".into()))
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    c.say("hello world", "stream");
    c.expect("the stream's transcript", Duration::from_secs(30), |m| {
        m.addr == "/chronus/asr/transcript"
            && m.args
                == vec![
                    OscType::String("default".into()),
                    OscType::String("hello world".into()),
                    OscType::Int(1),
                ]
    });
    c.send("/chronus/asr/stop", vec![]);

    wake.kill();
    c.expect(
        "the lost wake-word service",
        Duration::from_secs(5),
        connection("disconnected"),
    );
    wake.restart();
    c.expect(
        "the wake-word service again",
        Duration::from_secs(10),
        connection("connected"),
    );
    std::thread::sleep(Duration::from_millis(300));
    c.say("hello computer", "again");
    heard("/chronus/wake after the restart", Duration::from_secs(30));
    let s = d.status();
    assert_eq!(long(&s, "underrun_frames"), 0, "log:\n{}", d.log());
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}
