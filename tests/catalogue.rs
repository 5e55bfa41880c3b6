//! The original Music Chronus catalogue played against the daemon at its default
//! settings: nothing refused (neither to the sender nor to a `/chronus/notify`
//! subscriber), then every voice of the original's eight heard on its own.

#[path = "../crates/chronus-dsp/tests/fixtures/catalogue.rs"]
mod catalogue;
use catalogue::{ORIGINAL_VOICES, Value, entries};
use chronus_e2e::{
    Daemon, altered_samples, expect_at, long, read_wav, render_journal, scratch, send_from,
};
use chronus_osc::{OscMessage, OscPacket, OscType};
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

const RATE: f64 = 48_000.0;
/// How long each voice plays alone, and the silence after it.
const NOTE: Duration = Duration::from_millis(200);
/// A voice's window must be louder than this (RMS), the 50 ms before it quieter
/// than [`SILENCE`].
const AUDIBLE: f64 = 0.01;
const SILENCE: f64 = 0.001;

fn osc(value: &Value) -> OscType {
    match value {
        Value::Int(i) => OscType::Int(*i),
        Value::Float(f) => OscType::Float(*f),
        Value::Str(s) => OscType::String(s.clone()),
    }
}

/// Every message `socket` receives until `done` says it has seen enough, or
/// until `timeout` (a failure if `must_finish`).
fn collect(
    socket: &UdpSocket,
    timeout: Duration,
    must_finish: bool,
    mut done: impl FnMut(&OscMessage) -> bool,
) -> Vec<OscMessage> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let packet = chronus_osc::decode(&buf[..n], &Default::default()).unwrap();
        for m in chronus_osc::messages(packet) {
            let finished = done(&m);
            seen.push(m);
            if finished {
                return seen;
            }
        }
    }
    assert!(!must_finish, "timed out; received {seen:?}");
    seen
}

fn sync(socket: &UdpSocket, d: &Daemon, id: i32) -> Vec<OscMessage> {
    send_from(socket, d.osc, "/chronus/sync", vec![OscType::Int(id)]);
    collect(socket, Duration::from_secs(10), true, |m| {
        m.addr == "/chronus/synced" && m.args == [OscType::Int(id)]
    })
}

fn fails(messages: &[OscMessage]) -> Vec<&OscMessage> {
    messages
        .iter()
        .filter(|m| m.addr == chronus_osc::FAIL_ADDR)
        .collect()
}

/// Every message of the journal with the frame it took effect at.
fn journal(path: &Path) -> Vec<(u64, OscMessage)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let packet =
            chronus_osc::decode(&bytes[pos + 4..pos + 4 + len], &Default::default()).unwrap();
        if let OscPacket::Bundle(b) = packet {
            let frame = (f64::from(b.timetag.seconds) * RATE
                + f64::from(b.timetag.fractional) * RATE / 4_294_967_296.0)
                .round() as u64;
            for m in chronus_osc::messages(OscPacket::Bundle(b)) {
                out.push((frame, m));
            }
        }
        pos += 4 + len;
    }
    out
}

fn gate_is_on(m: &OscMessage) -> bool {
    match m.args.as_slice() {
        [OscType::Int(i)] => *i > 0,
        [OscType::Float(f)] => *f > 0.0,
        [OscType::Bool(b)] => *b,
        other => panic!("{}: gate {other:?}", m.addr),
    }
}

/// RMS of the interleaved stereo `samples` over frames `from..to`.
fn rms(samples: &[f32], from: u64, to: u64) -> f64 {
    let window = &samples[from as usize * 2..to as usize * 2];
    (window.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / window.len() as f64).sqrt()
}

#[test]
fn the_original_catalogue_plays_at_the_defaults_without_a_refusal_and_every_voice_sounds() {
    let dir = scratch("catalogue-files");
    let (wav, journal_path) = (dir.join("out.wav"), dir.join("journal.osc"));
    let d = Daemon::start(
        "catalogue",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_RECORD", wav.display().to_string()),
            ("CHRONUS_JOURNAL", journal_path.display().to_string()),
            (
                "CHRONUS_RECORDINGS_DIR",
                dir.join("takes").display().to_string(),
            ),
            (
                "CHRONUS_PATTERNS_DIR",
                dir.join("patterns").display().to_string(),
            ),
        ],
    );
    let events = UdpSocket::bind("127.0.0.1:0").unwrap();
    send_from(&events, d.osc, "/chronus/notify", vec![OscType::Int(1)]);
    expect_at(
        &events,
        "/chronus/done",
        "the subscription was not confirmed",
    );

    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let catalogue = entries();
    for entry in &catalogue {
        send_from(
            &sender,
            d.osc,
            &entry.address,
            entry.args.iter().map(osc).collect(),
        );
        // Paced, so that no datagram is lost to a full socket buffer.
        std::thread::sleep(Duration::from_millis(1));
    }
    // The pattern load answers from the storage thread, possibly after the sync.
    let (mut synced, mut loaded) = (false, false);
    send_from(&sender, d.osc, "/chronus/sync", vec![OscType::Int(1)]);
    let replies = collect(&sender, Duration::from_secs(10), true, |m| {
        synced |= m.addr == "/chronus/synced";
        loaded |= m.addr == "/chronus/done"
            && m.args.first() == Some(&OscType::String("/pattern/load".into()));
        synced && loaded
    });
    assert_eq!(
        fails(&replies),
        Vec::<&OscMessage>::new(),
        "the catalogue was refused"
    );
    let status = d.status();
    assert_eq!(long(&status, "osc_errors"), 0);
    assert_eq!(long(&status, "osc_rate_limited"), 0);
    assert_eq!(long(&status, "osc_kernel_drops"), 0);

    // Each voice alone: the effects' returns off so that nothing rings into the
    // next voice's window.
    let mut setup: Vec<(String, Vec<OscType>)> = [
        ("/seq/stop", vec![]),
        ("/seq/clear", vec![]),
        ("/mod/reverb1/mix", vec![OscType::Float(0.0)]),
        ("/mod/delay1/mix", vec![OscType::Float(0.0)]),
        ("/mod/dist1/mix", vec![OscType::Float(0.0)]),
        ("/mod/lfo1/depth", vec![OscType::Float(0.0)]),
        ("/mod/lfo2/depth", vec![OscType::Float(0.0)]),
        ("/engine/start", vec![]),
    ]
    .into_iter()
    .map(|(a, args)| (a.to_owned(), args))
    .collect();
    for v in 1..=ORIGINAL_VOICES {
        for (param, value) in [
            ("freq", OscType::Float(220.0)),
            ("amp", OscType::Float(0.5)),
            ("wave", OscType::String("saw".into())),
            ("filter/freq", OscType::Float(4000.0)),
            ("filter/q", OscType::Float(1.0)),
            ("slide_time", OscType::Float(0.0)),
            ("adsr/attack", OscType::Float(0.005)),
            ("adsr/sustain", OscType::Float(1.0)),
            ("adsr/release", OscType::Float(0.01)),
        ] {
            setup.push((format!("/mod/voice{v}/{param}"), vec![value]));
        }
    }
    for (address, args) in setup {
        send_from(&sender, d.osc, &address, args);
    }
    sync(&sender, &d, 2);
    // What the catalogue left ringing (the reverb's and delay's returns glide to 0,
    // the acid ladder at full resonance) dies away first. Its longest tail fades
    // over about 530 ms (a run beside a CPU hog): 500 ms left it inside the window
    // checked before the first gate once commands landed a period after arriving.
    std::thread::sleep(Duration::from_millis(800));
    for v in 1..=ORIGINAL_VOICES {
        let gate = format!("/gate/voice{v}");
        send_from(&sender, d.osc, &gate, vec![OscType::Int(1)]);
        std::thread::sleep(NOTE);
        send_from(&sender, d.osc, &gate, vec![OscType::Int(0)]);
        std::thread::sleep(NOTE);
    }
    let replies = sync(&sender, &d, 3);
    assert_eq!(fails(&replies), Vec::<&OscMessage>::new());
    let events = collect(&events, Duration::from_millis(200), false, |_| false);
    assert_eq!(
        fails(&events),
        Vec::<&OscMessage>::new(),
        "a subscriber heard of a refusal"
    );
    let (exit, _, log) = d.stop();
    assert!(exit.success(), "log:\n{log}");

    let (_, live) = read_wav(&wav);
    let played = journal(&journal_path);
    for v in 1..=ORIGINAL_VOICES {
        let gate = format!("/gate/voice{v}");
        let gates: Vec<(u64, bool)> = played
            .iter()
            .filter(|(_, m)| m.addr == gate)
            .map(|(frame, m)| (*frame, gate_is_on(m)))
            .collect();
        let [.., (on, true), (off, false)] = gates[..] else {
            panic!("{gate}: the journal ends with {gates:?}");
        };
        let loud = rms(&live, on, off);
        let before = rms(&live, on - (RATE * 0.05) as u64, on);
        assert!(loud > AUDIBLE, "voice{v} played at RMS {loud}");
        assert!(before < SILENCE, "before voice{v}: RMS {before}");
    }
    let reference = render_journal(&dir, &journal_path, &live);
    assert_eq!(
        altered_samples(&live, &reference),
        0,
        "the recording differs from the journal's render"
    );
}
