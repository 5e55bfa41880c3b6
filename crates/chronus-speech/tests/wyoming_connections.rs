//! A Wyoming engine connected to a running service (`tcp://`, `unix://`) against
//! scripted services that answer, talk garbage, hang up idle, vanish and come back:
//! every request gets one definite answer, the engine reconnects, and a dead
//! connection's late bytes never reach a later request.

use chronus_speech::{
    AudioSink, Endpoint, EngineContext, EngineState, EventSink, Reply, Request, SpeechError,
    SpeechEvent, Timeouts, WyomingConfig, WyomingEngine,
};
use crossbeam_channel::Receiver;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One Wyoming event read off a connection: its type and the text it carried.
fn read_event(r: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let header: serde_json::Value = serde_json::from_str(&line).ok()?;
    let mut data = header["data"].clone();
    let len = |k: &str| header[k].as_u64().unwrap_or(0) as usize;
    let mut body = vec![0u8; len("data_length") + len("payload_length")];
    r.read_exact(&mut body).ok()?;
    if len("data_length") > 0 {
        data = serde_json::from_slice(&body[..len("data_length")]).ok()?;
    }
    let text = data["text"].as_str().unwrap_or_default().to_string();
    Some((header["type"].as_str()?.to_string(), text))
}

fn event(kind: &str, data: serde_json::Value, payload: &[u8]) -> Vec<u8> {
    let data = serde_json::to_vec(&data).unwrap();
    let mut out = serde_json::to_vec(&serde_json::json!({
        "type": kind, "data_length": data.len(), "payload_length": payload.len(),
    }))
    .unwrap();
    out.push(b'\n');
    out.extend(data);
    out.extend(payload);
    out
}

fn info() -> Vec<u8> {
    event(
        "info",
        serde_json::json!({"tts": [{"name": "scripted", "voices": [{"name": "v1", "languages": ["en"]}]}]}),
        &[],
    )
}

/// Audio for `text`: two chunks of 100 samples at 16 kHz.
fn audio() -> Vec<u8> {
    let format = serde_json::json!({"rate": 16000, "width": 2, "channels": 1});
    let mut out = event("audio-start", format.clone(), &[]);
    out.extend(event("audio-chunk", format.clone(), &[1u8; 200]));
    out.extend(event("audio-chunk", format, &[2u8; 200]));
    out.extend(event("audio-stop", serde_json::json!({}), &[]));
    out
}

/// Serves each connection on its own thread: `describe` gets `info`; `synthesize`
/// is answered as the text says: "garbage" a line that is not JSON, "hangup" a
/// closed connection, "late" audio after 1.5 s, anything else audio at once. Counts
/// connections.
fn scripted(listener: TcpListener) -> Arc<AtomicUsize> {
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                while let Some((kind, text)) = read_event(&mut r) {
                    let reply = match (kind.as_str(), text.as_str()) {
                        ("describe", _) => info(),
                        (_, "garbage") => b"this is not json\n".to_vec(),
                        (_, "hangup") => return,
                        (_, "late") => {
                            std::thread::sleep(Duration::from_millis(1500));
                            audio()
                        }
                        _ => audio(),
                    };
                    if w.write_all(&reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    connections
}

fn start(endpoint: Endpoint) -> (WyomingEngine, Receiver<SpeechEvent>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let ctx = EngineContext {
        events: EventSink::new(tx),
        ..EngineContext::default()
    };
    let mut c = WyomingConfig::connect("svc", endpoint);
    c.timeouts = Timeouts {
        first_audio: Duration::from_millis(800),
        complete: Duration::from_secs(3),
    };
    c.health_interval = None;
    (WyomingEngine::start(c, ctx).unwrap(), rx)
}

fn say(e: &WyomingEngine, text: &str) -> Result<Reply, SpeechError> {
    e.call(Request::Synthesize {
        text: text.into(),
        voice: None,
    })
    .unwrap()
    .wait_timeout(Duration::from_secs(10))
    .expect("an answer within 10 s")
}

fn wait_for(e: &WyomingEngine, state: EngineState) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.status().state != state {
        assert!(Instant::now() < deadline, "{:?}", e.status());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_service_that_breaks_a_reply_gets_one_error_and_a_fresh_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = Endpoint::Tcp(listener.local_addr().unwrap().to_string());
    let connections = scripted(listener);
    let (e, events) = start(endpoint.clone());
    wait_for(&e, EngineState::Ready);
    let status = e.status();
    assert_eq!(status.endpoint, Some(endpoint.to_string()));
    assert_eq!(status.pid, None);
    assert_eq!(status.offers.unwrap().voices, ["v1"]);

    assert!(matches!(say(&e, "hello"), Ok(Reply::Audio(pcm)) if pcm.samples.len() == 200));
    assert!(matches!(
        say(&e, "garbage"),
        Err(SpeechError::Protocol { .. })
    ));
    assert!(matches!(
        say(&e, "hangup"),
        Err(SpeechError::EngineExited { .. })
    ));
    // The late reply would be taken for the next request's on the same connection.
    assert!(matches!(
        say(&e, "late"),
        Err(SpeechError::FirstAudioTimeout { .. })
    ));
    assert!(matches!(say(&e, "hello"), Ok(Reply::Audio(pcm)) if pcm.samples.len() == 200));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        4,
        "one per broken reply"
    );
    let disconnects = events
        .try_iter()
        .filter(|ev| matches!(ev, SpeechEvent::Disconnected { .. }))
        .count();
    assert_eq!(disconnects, 3);
    assert!(!e.status().failed);
    e.shutdown();
}

#[test]
fn a_service_that_is_down_is_retried_until_it_comes_up() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (e, _events) = start(Endpoint::Tcp(addr.to_string()));
    // Nothing listens: a request fails by its timeout, with one answer.
    assert!(matches!(
        say(&e, "hello"),
        Err(SpeechError::FirstAudioTimeout { .. })
    ));
    assert!(
        !e.status().failed,
        "a service that is down is never given up"
    );
    // The service comes up: the engine connects (backoff at most 5 s) and serves.
    let connections = scripted(TcpListener::bind(addr).unwrap());
    wait_for(&e, EngineState::Ready);
    assert!(matches!(say(&e, "hello"), Ok(Reply::Audio(_))));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    e.shutdown();
}

#[test]
fn streamed_audio_reaches_the_sink_chunk_by_chunk_then_an_end_marker_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tts.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    let header: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let len = |k: &str| header[k].as_u64().unwrap_or(0) as usize;
                    let mut body = vec![0u8; len("data_length") + len("payload_length")];
                    r.read_exact(&mut body).unwrap();
                    let reply = if header["type"] == "describe" {
                        info()
                    } else {
                        audio()
                    };
                    w.write_all(&reply).unwrap();
                    line.clear();
                }
            });
        }
    });
    let (e, _events) = start(Endpoint::Unix(path));
    let chunks = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = chunks.clone();
    let sink = AudioSink(Arc::new(move |pcm: &chronus_speech::Pcm| {
        seen.lock().unwrap().push(pcm.samples.len());
    }));
    let answer = e
        .call(Request::SynthesizeStreaming {
            text: "hello".into(),
            voice: None,
            sink,
        })
        .unwrap()
        .wait_timeout(Duration::from_secs(10))
        .unwrap();
    assert!(matches!(answer, Ok(Reply::Audio(pcm)) if pcm.samples.len() == 200));
    // The empty chunk ends the reply before its answer, for sinks holding a tail back.
    assert_eq!(*chunks.lock().unwrap(), [100, 100, 0]);
    e.shutdown();
}

#[test]
fn a_wake_word_service_flooding_detections_is_one_wake_event() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = Endpoint::Tcp(listener.local_addr().unwrap().to_string());
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        while let Some((kind, _)) = read_event(&mut r) {
            let reply = match kind.as_str() {
                "describe" => event(
                    "info",
                    serde_json::json!({"wake": [{"name": "flood", "models": [{"name": "ok_nabu"}]}]}),
                    &[],
                ),
                // Answers the first detect with a flood; the re-arming detects get nothing.
                "detect" => (0..50)
                    .flat_map(|_| event("detection", serde_json::json!({"name": "ok_nabu"}), &[]))
                    .collect(),
                _ => continue,
            };
            if w.write_all(&reply).is_err() {
                return;
            }
            if kind == "detect" {
                // Only the first detect floods.
                while read_event(&mut r).is_some() {}
                return;
            }
        }
    });
    let (tx, events) = crossbeam_channel::unbounded();
    let ctx = EngineContext {
        events: EventSink::new(tx),
        ..EngineContext::default()
    };
    let wake = chronus_speech::Wake::start(chronus_speech::WakeConfig::new(endpoint, vec![]), ctx)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut wakes = 0;
    while let Ok(ev) = events.recv_deadline(deadline) {
        if matches!(ev, SpeechEvent::Wake { .. }) {
            wakes += 1;
        }
    }
    assert_eq!(wakes, 1);
    assert_eq!(wake.status().transcripts, 1);
    wake.shutdown();
}
