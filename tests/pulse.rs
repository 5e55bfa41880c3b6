//! End to end through a real sound server: PulseAudio with a 48 kHz null sink in a
//! private runtime directory, chronusd playing through cpal (ALSA's pulse plugin),
//! and `parec` recording the sink's monitor while workers are killed and hung.
//! Run serially with the other end-to-end tests.

use chronus_e2e::drill::*;
use chronus_e2e::pulse;
use chronus_e2e::*;
use chronus_osc::OscType;
use chronus_sound_servers::recording::{self, Format};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

fn read_raw(path: &Path) -> Vec<f32> {
    recording::read(path, Format::RawF32).unwrap()
}

/// Waits until the raw float recording at `path` holds the tone.
fn wait_for_tone(path: &Path) {
    assert!(
        recording::wait_for_sound(path, Format::RawF32, Duration::from_secs(15)),
        "the tone never reached the recording"
    );
}

#[test]
fn tone_through_pulseaudio_survives_kills_and_hangs_without_a_glitch() {
    // By ALSA's PCM name, as an operator would pick it: under `audio.host = auto`
    // the running PulseAudio does not list it, and ALSA's pulse plugin plays it.
    tone_through_pulseaudio_drill("pulse", &[("CHRONUS_AUDIO_DEVICE", "pulse".into())], "alsa");
}

#[test]
fn tone_through_pulseaudio_natively_survives_kills_and_hangs_without_a_glitch() {
    // cpal's PulseAudio host, the sink chosen by its PulseAudio name.
    tone_through_pulseaudio_drill(
        "pulse-native",
        &[
            ("CHRONUS_AUDIO_HOST", "pulseaudio".into()),
            ("CHRONUS_AUDIO_DEVICE", "chronus".into()),
        ],
        "pulseaudio",
    );
}

fn tone_through_pulseaudio_drill(name: &str, extra: &[(&str, String)], host: &str) {
    let dir = scratch(&format!("{name}-server"));
    let Some(pulse) = pulse::start(&dir) else {
        return;
    };
    let mut env = vec![
        ("CHRONUS_AUDIO_BACKEND", "cpal".into()),
        ("CHRONUS_PULSE_SERVER", pulse.address().to_owned()),
        // Generous device buffering: this test is about failover, and a loaded
        // 2-core machine must not make the sound server itself run dry.
        ("CHRONUS_BUFFER_SIZE", "2048".into()),
        ("CHRONUS_HANG_TIMEOUT_MS", "100".into()),
        ("HOME", dir.display().to_string()),
    ];
    env.extend(extra.iter().cloned());
    let mut d = Daemon::start(name, &env);
    assert_eq!(string(&d.status(), "host"), host, "log:\n{}", d.log());
    assert_eq!(string(&d.status(), "backend"), "cpal", "log:\n{}", d.log());
    play_tone(&d);
    let raw = dir.join("monitor.raw");
    let mut parec = pulse.record(&raw).unwrap();
    // The tone reaches the recorder only once both streams have filled their buffers
    // (seconds, on a busy machine); the drill starts after it settled there.
    wait_for_tone(&raw);
    std::thread::sleep(Duration::from_millis(700));
    // parec hands on what it has in whole fragments: stop it well after the drill.
    drill_while_recording(
        &mut d,
        &mut parec,
        libc::SIGTERM,
        Duration::from_millis(1500),
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");

    let samples = read_raw(&raw);
    let left: Vec<f32> = samples.chunks_exact(2).map(|f| f[0]).collect();
    let right: Vec<f32> = samples.chunks_exact(2).map(|f| f[1]).collect();
    // Within quantization.
    assert_continuous_tone(&left, &right, 2.0 / 32768.0);
}

/// A stalled audio callback must stop the watchdog pings, so systemd restarts
/// the service. Stopping the sound server really stalls cpal's callback.
#[test]
fn watchdog_pings_stop_while_the_audio_callback_is_stalled() {
    let dir = scratch("pulse-stall");
    let Some(pulse) = pulse::start(&dir) else {
        return;
    };
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let d = Daemon::start(
        "pulse-stall-daemon",
        &[
            ("CHRONUS_AUDIO_BACKEND", "cpal".into()),
            ("CHRONUS_PULSE_SERVER", pulse.address().to_owned()),
            ("HOME", dir.display().to_string()),
            ("NOTIFY_SOCKET", path.display().to_string()),
            ("WATCHDOG_USEC", "300000".into()),
        ],
    );
    let count_pings = |window: Duration| {
        let started = Instant::now();
        let mut pings = 0;
        let mut buf = [0u8; 4096];
        while started.elapsed() < window {
            if let Ok(n) = sock.recv(&mut buf) {
                pings += usize::from(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .any(|l| l == "WATCHDOG=1"),
                );
            }
        }
        pings
    };
    // READY comes once the device consumes audio; pings follow while it does.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "no READY=1");
        if let Ok(n) = sock.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
        {
            break;
        }
    }
    // Pings flow while audio flows (a loaded machine may delay some of them).
    assert!(
        count_pings(Duration::from_millis(2000)) >= 3,
        "no pings while audio flows"
    );
    signal(pulse.pid(), libc::SIGSTOP);
    // Let the device buffers drain into the stall, then nothing may be pinged.
    count_pings(Duration::from_millis(500));
    let stalled = count_pings(Duration::from_millis(1000));
    signal(pulse.pid(), libc::SIGCONT);
    assert_eq!(
        stalled, 0,
        "the watchdog was pinged while the callback was stalled"
    );
    // The sound server's stream takes a moment to recover after SIGCONT.
    let resumed = Instant::now();
    let mut pings = 0;
    while pings < 3 && resumed.elapsed() < Duration::from_secs(10) {
        pings += count_pings(Duration::from_millis(200));
    }
    assert!(
        pings >= 3,
        "pings did not resume within 10 s of the stall ending"
    );
    assert!(
        d.log().contains("the audio callback has stalled"),
        "log:\n{}",
        d.log()
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

/// Speech goes out through the sound server and comes back in: the null sink's
/// monitor is the default input, the daemon streams it to pocketsphinx, and the
/// transcript reaches a subscriber over OSC.
#[test]
fn speech_through_pulseaudio_comes_back_as_a_transcript_event() {
    let dir = scratch("pulse-speech");
    let Some(pulse) = pulse::start(&dir) else {
        return;
    };
    pulse.hear_the_sink_as_default_source().unwrap();
    let grammar = dir.join("phrases.jsgf");
    std::fs::write(
        &grammar,
        "#JSGF V1.0;\ngrammar chronus;\npublic <phrase> = hello world | good morning | stop the music;\n",
    )
    .unwrap();
    let d = Daemon::start(
        "pulse-speech-daemon",
        &[
            ("CHRONUS_AUDIO_BACKEND", "cpal".into()),
            ("CHRONUS_PULSE_SERVER", pulse.address().to_owned()),
            ("CHRONUS_BUFFER_SIZE", "2048".into()),
            ("CHRONUS_ASR_GRAMMAR", grammar.display().to_string()),
            ("CHRONUS_INPUT_DEVICE", "pulse".into()),
            ("HOME", dir.display().to_string()),
        ],
    );
    assert_eq!(string(&d.status(), "backend"), "cpal", "log:\n{}", d.log());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let send = |addr: &str, args: Vec<OscType>| {
        let packet = chronus_osc::OscPacket::Message(chronus_osc::OscMessage {
            addr: addr.into(),
            args,
        });
        socket
            .send_to(&chronus_osc::encode(&packet), d.osc)
            .unwrap();
    };
    let receive_until =
        |what: &str, timeout: Duration, wanted: &dyn Fn(&chronus_osc::OscMessage) -> bool| {
            let deadline = Instant::now() + timeout;
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            while Instant::now() < deadline {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                if let Ok(packet) = chronus_osc::decode(&buf[..n], &chronus_osc::Limits::default())
                {
                    for m in chronus_osc::messages(packet) {
                        if wanted(&m) {
                            return;
                        }
                        seen.push(format!("{} {:?}", m.addr, m.args));
                    }
                }
            }
            panic!(
                "no {what} within {timeout:?}; received {seen:#?}; log:\n{}",
                d.log()
            );
        };
    send("/chronus/notify", vec![OscType::Int(1)]);
    send("/chronus/asr/start", vec![]);
    receive_until(
        "/chronus/done /chronus/asr/start",
        Duration::from_secs(10),
        &|m| {
            m.addr == "/chronus/done"
                && m.args.first() == Some(&OscType::String("/chronus/asr/start".into()))
        },
    );
    // The recogniser hears a moment of silence before the speech.
    std::thread::sleep(Duration::from_millis(500));
    send(
        "/chronus/tts/say",
        vec![OscType::String("hello world".into())],
    );
    receive_until("the transcript event", Duration::from_secs(30), &|m| {
        m.addr == "/chronus/asr/transcript"
            && m.args
                == vec![
                    OscType::String("default".into()),
                    OscType::String("hello world".into()),
                    OscType::Int(1),
                ]
    });
    let s = d.status();
    assert_eq!(long(&s, "asr_streams"), 1);
    assert_eq!(long(&s, "underrun_frames"), 0, "log:\n{}", d.log());
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

/// The sound server killed and started again while a tone plays: the timeline runs
/// on (the null clock), nothing a worker holds is lost, subscribers hear of both
/// edges, and after reconnection the server receives the same tone, unbroken. The
/// daemon's own recording, which holds every frame it handed out, is unbroken too.
#[test]
fn killing_and_restarting_pulseaudio_keeps_the_timeline_and_plays_on() {
    let dir = scratch("pulse-restart");
    let Some(mut pulse) = pulse::start(&dir) else {
        return;
    };
    let record = dir.join("daemon.wav");
    let mut d = Daemon::start(
        "pulse-restart-daemon",
        &[
            ("CHRONUS_AUDIO_BACKEND", "cpal".into()),
            ("CHRONUS_AUDIO_HOST", "pulseaudio".into()),
            ("CHRONUS_AUDIO_DEVICE", "chronus".into()),
            ("CHRONUS_PULSE_SERVER", pulse.address().to_owned()),
            ("CHRONUS_BUFFER_SIZE", "2048".into()),
            ("CHRONUS_RECORD", record.display().to_string()),
            ("HOME", dir.display().to_string()),
        ],
    );
    let events = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    send_from(&events, d.osc, "/chronus/notify", vec![OscType::Int(1)]);
    expect_at(&events, "/chronus/done", "the subscription");
    play_tone(&d);
    std::thread::sleep(Duration::from_millis(700));

    pulse.kill();
    let lost = d.wait_until("the device lost", Duration::from_secs(10), |s| {
        long(s, "device_lost") == 1
    });
    let lost_msg = expect_at(&events, "/chronus/device/lost", "the loss event");
    assert_eq!(long(&lost, "device_losses"), 1);
    // The timeline runs on without the server.
    let frames = long(&lost, "frames");
    d.wait_until(
        "frames advancing on the null clock",
        Duration::from_secs(5),
        |s| long(s, "frames") > frames + 4800,
    );

    let _ = std::fs::remove_file(dir.join("native"));
    let pulse = pulse::start(&dir).expect("PulseAudio starts again");
    let back = d.wait_until("the device back", Duration::from_secs(15), |s| {
        long(s, "device_lost") == 0
    });
    let back_msg = expect_at(&events, "/chronus/device/back", "the return event");
    assert_eq!(string(&back, "host"), "pulseaudio");
    let raw = dir.join("after.raw");
    let mut parec = pulse.record(&raw).unwrap();
    // PulseAudio starts a new stream only once its buffer is full: give it time.
    wait_for_tone(&raw);
    std::thread::sleep(Duration::from_millis(3000));
    signal(parec.id() as i32, libc::SIGTERM);
    let _ = parec.wait();

    let s = d.status();
    assert_eq!(long(&s, "device_losses"), 1, "log:\n{}", d.log());
    assert_eq!(
        long(&s, "restores"),
        0,
        "workers were replaced; log:\n{}",
        d.log()
    );
    assert_eq!(long(&s, "failovers"), 0);
    assert_eq!(long(&s, "underrun_frames"), 0, "log:\n{}", d.log());
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert!(
        log.contains("recording finalized") && !log.contains("with frames missing"),
        "the daemon's recording must hold every frame to be judged; log:\n{log}"
    );
    for (what, msg) in [("lost", &lost_msg), ("back", &back_msg)] {
        assert!(
            log.contains(&format!("id=\"chronus.device_{what}\"")),
            "one searchable line per edge; log:\n{log}"
        );
        assert!(!msg.args.is_empty(), "{what}: {msg:?}");
    }

    let samples = read_raw(&raw);
    let left: Vec<f32> = samples.chunks_exact(2).map(|f| f[0]).collect();
    let right: Vec<f32> = samples.chunks_exact(2).map(|f| f[1]).collect();
    assert_continuous_tone(&left, &right, 2.0 / 32768.0);
    let (_, recorded) = read_wav(&record);
    let left: Vec<f32> = recorded.chunks_exact(2).map(|f| f[0]).collect();
    let right: Vec<f32> = recorded.chunks_exact(2).map(|f| f[1]).collect();
    // Before the loss, on the null clock, and after: one unbroken tone.
    let checked = assert_continuous_tone(&left, &right, 1e-6);
    assert!(checked > 48_000 * 3, "checked only {checked} frames");
}
