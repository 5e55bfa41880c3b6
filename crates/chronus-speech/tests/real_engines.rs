//! The real Debian engines end to end: espeak-ng speaks, pocketsphinx listens.
//! Missing engines fail the test under CI and skip it (with a notice) elsewhere.

mod support;

use chronus_speech::oneshot::{Job, OneShotConfig, OneShotEngine};
use chronus_speech::{EngineContext, SpeechAudio, SpeechError, Tts, TtsConfig, audio};
use std::sync::Arc;
use support::{assert_no_children, serial};

fn espeak() -> Option<Tts> {
    support::have("espeak-ng", "espeak-ng")
        .then(|| Tts::start(TtsConfig::espeak_ng(), EngineContext::default()).unwrap())
}

fn say(tts: &Tts, text: &str) -> Arc<SpeechAudio> {
    tts.say_ticket(text, None).unwrap().wait().unwrap()
}

#[test]
fn espeak_says_hello_world_at_22050_resampled_to_48k_deterministically() {
    let _serial = serial();
    let Some(mut tts) = espeak() else { return };
    let audio = say(&tts, "hello world");
    assert_eq!((audio.rate, audio.channels), (48_000, 2));
    // "hello world" takes espeak-ng about a second.
    assert!(audio.frames() > 24_000, "{} frames", audio.frames());
    let peak = audio.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.1, "peak {peak}");
    assert!(
        audio.samples.chunks_exact(2).all(|f| f[0] == f[1]),
        "mono in both channels"
    );
    tts.shutdown();

    // The engine's own output is 22050 Hz WAV, and resampling it is exact.
    let engine = OneShotEngine::start(
        OneShotConfig::new(
            "espeak-ng",
            ["espeak-ng", "--stdout", "{text}"]
                .map(String::from)
                .to_vec(),
        ),
        EngineContext::default(),
    )
    .unwrap();
    let wav = engine
        .call(Job {
            vars: vec![("text".into(), "hello world".into())],
            stdin: Vec::new(),
        })
        .unwrap()
        .wait()
        .unwrap();
    let pcm = audio::parse_wav(&wav).unwrap();
    assert_eq!((pcm.rate, pcm.channels), (22_050, 1));
    let expected_frames = (pcm.frames() as u64 * 48_000).div_ceil(22_050) as usize;
    assert_eq!(audio.frames(), expected_frames);
    engine.shutdown();

    // A fresh daemon (cold cache) produces the very same samples.
    let Some(mut again) = espeak() else { return };
    let second = say(&again, "hello world");
    assert!(
        audio.samples.len() == second.samples.len()
            && audio
                .samples
                .iter()
                .zip(second.samples.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
        "espeak-ng output differs between runs"
    );
    again.shutdown();
    assert_no_children();
}

#[test]
fn repeated_phrase_is_served_from_the_cache() {
    let _serial = serial();
    let Some(mut tts) = espeak() else { return };
    let first = say(&tts, "cached phrase");
    let t = std::time::Instant::now();
    let second = say(&tts, "cached phrase");
    let hit = t.elapsed();
    assert!(Arc::ptr_eq(&first, &second));
    let s = tts.status();
    assert_eq!((s.cache.hits, s.cache.misses, s.cache.entries), (1, 1, 1));
    assert_eq!(s.cache.bytes, first.bytes());
    println!("cache hit latency: {hit:?}");
    // Another voice is another phrase.
    let other = tts
        .say_ticket("cached phrase", Some("en-us"))
        .unwrap()
        .wait()
        .unwrap();
    assert!(!Arc::ptr_eq(&first, &other));
    tts.shutdown();
    assert_no_children();
}

#[test]
fn text_that_looks_like_an_option_is_spoken_not_obeyed() {
    let _serial = serial();
    let Some(mut tts) = espeak() else { return };
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("written");
    let text = format!("-w {}", target.display());
    let audio = say(&tts, &text);
    assert!(audio.frames() > 0);
    assert!(!target.exists(), "espeak-ng took the text as an option");
    tts.shutdown();
    assert_no_children();
}

#[test]
fn unknown_voice_fails_the_request_with_the_exit_status() {
    let _serial = serial();
    let Some(mut tts) = espeak() else { return };
    let err = tts
        .say_ticket("hello", Some("zzzz"))
        .unwrap()
        .wait()
        .map(|audio| audio.frames())
        .unwrap_err();
    assert!(
        matches!(&err, SpeechError::EngineExited { cause, .. } if cause == "exit status 1"),
        "{err:?}"
    );
    let s = tts.status();
    assert_eq!((s.engines[0].crashes, s.engines[0].errors), (1, 1));
    assert!(say(&tts, "still works").frames() > 0);
    assert!(matches!(
        tts.say_ticket("hi", Some("-v")).err(),
        Some(SpeechError::InvalidRequest(_))
    ));
    tts.shutdown();
    assert_no_children();
}

const GRAMMAR: &str = "#JSGF V1.0;\ngrammar g;\npublic <s> = hello world | good morning | stop;\n";

/// An ASR engine on pocketsphinx with the test grammar, or None (skipped).
fn pocketsphinx(
    dir: &tempfile::TempDir,
    events: Option<crossbeam_channel::Sender<chronus_speech::SpeechEvent>>,
) -> Option<chronus_speech::Asr> {
    if !support::have("pocketsphinx_continuous", "pocketsphinx pocketsphinx-en-us") {
        return None;
    }
    let grammar = dir.path().join("g.jsgf");
    std::fs::write(&grammar, GRAMMAR).unwrap();
    let mut config = chronus_speech::AsrConfig::pocketsphinx(Some(&grammar));
    config.stream_buffer = 4096;
    let ctx = EngineContext {
        events: events.map_or_else(
            chronus_speech::EventSink::none,
            chronus_speech::EventSink::new,
        ),
        ..EngineContext::default()
    };
    Some(chronus_speech::Asr::start(config, ctx).unwrap())
}

/// What the daemon would play: espeak-ng's "hello world" as 48 kHz stereo.
fn spoken_hello_world() -> Option<chronus_speech::Pcm> {
    let mut tts = espeak()?;
    let audio = say(&tts, "hello world");
    tts.shutdown();
    Some(chronus_speech::Pcm {
        rate: audio.rate,
        channels: audio.channels,
        samples: audio.samples.to_vec(),
    })
}

#[test]
fn pocketsphinx_recognises_espeak_hello_world() {
    let _serial = serial();
    let Some(speech) = spoken_hello_world() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(asr) = pocketsphinx(&dir, None) else {
        return;
    };
    // Through a WAV file, as /chronus/asr/transcribe receives it.
    let wav = dir.path().join("hello.wav");
    let spec = hound::WavSpec {
        channels: speech.channels,
        sample_rate: speech.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for s in &speech.samples {
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    let text = asr.transcribe_wav(&wav).unwrap().wait().unwrap();
    assert_eq!(text, "hello world");
    let direct = asr.transcribe_ticket(&speech).unwrap().wait().unwrap();
    assert_eq!(direct, "hello world");
    asr.shutdown();
    assert_no_children();
}

#[test]
fn streaming_asr_hears_speech_pushed_in_10_ms_chunks() {
    let _serial = serial();
    let Some(speech) = spoken_hello_world() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (tx, events) = crossbeam_channel::unbounded();
    let Some(asr) = pocketsphinx(&dir, Some(tx)) else {
        return;
    };
    assert_eq!(
        asr.start_stream("mic").unwrap(),
        chronus_speech::StreamStart::Started
    );
    let silence = vec![0.0f32; 48_000 * 2];
    let mut input = silence[..48_000].to_vec();
    input.extend_from_slice(&speech.samples);
    input.extend_from_slice(&silence);
    input.extend_from_slice(&silence);
    // 10 ms of 48 kHz stereo per push, like a capture callback.
    for chunk in input.chunks(960) {
        asr.push("mic", chunk, 48_000, 2).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let heard = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left) {
            Ok(chronus_speech::SpeechEvent::Transcript {
                stream,
                text,
                is_final,
            }) => {
                break (stream, text, is_final);
            }
            Ok(_) => {}
            Err(_) => panic!("no transcript within 30 s: {:?}", asr.status()),
        }
    };
    assert_eq!(heard, ("mic".to_string(), "hello world".to_string(), true));
    let status = asr.status();
    assert_eq!(status.streams.len(), 1);
    let s = &status.streams[0];
    assert_eq!((s.frames_dropped, s.transcripts), (0, 1));
    assert_eq!(s.frames_in, (input.len() / 2) as u64);
    assert!(asr.stop_stream("mic"));
    assert!(asr.active_streams().is_empty());
    asr.shutdown();
    assert_no_children();
}

#[test]
fn speech_status_shows_engines_cache_and_streams_and_shutdown_is_prompt() {
    let _serial = serial();
    if !support::have("espeak-ng", "espeak-ng")
        || !support::have("pocketsphinx_continuous", "pocketsphinx pocketsphinx-en-us")
    {
        return;
    }
    // The daemon's way: spawns run as jobs on "its main thread" (here, this one).
    let (spawner, jobs) = chronus_speech::Spawner::delegated();
    let (tx, _events) = crossbeam_channel::unbounded();
    let ctx = EngineContext {
        spawner,
        events: chronus_speech::EventSink::new(tx),
        ..EngineContext::default()
    };
    let config = chronus_speech::SpeechConfig {
        tts: Some(TtsConfig::espeak_ng()),
        asr: Some(chronus_speech::AsrConfig::pocketsphinx(None)),
        wake: None,
    };
    let mut speech = chronus_speech::Speech::start(config, ctx).unwrap();
    let ticket = speech.tts().unwrap().say_ticket("status", None).unwrap();
    let asr = speech.asr().unwrap();
    asr.start_stream("mic").unwrap();
    // Run spawn jobs until both engines are up and the speech is done.
    let audio = loop {
        while let Ok(job) = jobs.try_recv() {
            job.run();
        }
        if let Some(result) = ticket.wait_timeout(std::time::Duration::from_millis(5)) {
            break result.unwrap();
        }
    };
    assert!(audio.frames() > 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while speech.status().asr.unwrap().streams[0].engine.pid.is_none() {
        assert!(std::time::Instant::now() < deadline, "stream never started");
        while let Ok(job) = jobs.try_recv() {
            job.run();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let json = speech.status().to_json();
    assert_eq!(json["tts"]["engines"][0]["name"], "espeak-ng");
    assert_eq!(json["tts"]["cache"]["misses"], 1);
    assert_eq!(json["tts"]["cache"]["entries"], 1);
    assert_eq!(json["asr"]["active_streams"], 1);
    assert_eq!(json["asr"]["streams"][0]["engine"]["state"], "ready");
    assert!(json["asr"]["streams"][0]["engine"]["pid"].is_u64());
    let t = std::time::Instant::now();
    speech.shutdown();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        t.elapsed()
    );
    assert_no_children();
}
