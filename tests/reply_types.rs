//! Every reply and event the daemon sends is readable by any OSC 1.0 client (Pure
//! Data's `[oscparse]`, sclang, TouchOSC): decoded here with a decoder that knows only
//! the core types i, f, s and b. Refusals and clamps reach subscribers. Run serially.

use chronus_e2e::*;
use chronus_osc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Decodes a datagram accepting only OSC 1.0 core type tags (i, f, s, b), in
/// messages and in bundles: anything else (h, d, t, T, F, N, I, c, r, m, arrays) is an
/// error naming the tag.
fn core_types_only(bytes: &[u8]) -> Result<Vec<OscMessage>, String> {
    let mut out = Vec::new();
    packet(bytes, &mut out)?;
    Ok(out)
}

fn packet(bytes: &[u8], out: &mut Vec<OscMessage>) -> Result<(), String> {
    if let Some(rest) = bytes.strip_prefix(b"#bundle\0") {
        let mut pos = 8; // the timetag
        while pos < rest.len() {
            let size = word(rest, pos)? as usize;
            let element = rest
                .get(pos + 4..pos + 4 + size)
                .ok_or("bundle element runs past the end")?;
            packet(element, out)?;
            pos += 4 + size;
        }
        return Ok(());
    }
    let (addr, mut pos) = string(bytes, 0)?;
    let (tags, next) = string(bytes, pos)?;
    pos = next;
    let tags = tags
        .strip_prefix(',')
        .ok_or_else(|| format!("{addr}: type tags {tags:?} do not start with ','"))?;
    let mut args = Vec::new();
    for tag in tags.chars() {
        let arg = match tag {
            'i' => OscType::Int(word(bytes, pos)? as i32),
            'f' => OscType::Float(f32::from_bits(word(bytes, pos)?)),
            's' => {
                let (s, next) = string(bytes, pos)?;
                pos = next;
                args.push(OscType::String(s));
                continue;
            }
            'b' => {
                let size = word(bytes, pos)? as usize;
                let blob = bytes
                    .get(pos + 4..pos + 4 + size)
                    .ok_or("blob runs past the end")?;
                pos += 4 + size.div_ceil(4) * 4;
                args.push(OscType::Blob(blob.to_vec()));
                continue;
            }
            other => return Err(format!("{addr}: type tag '{other}' is not i, f, s or b")),
        };
        pos += 4;
        args.push(arg);
    }
    if pos != bytes.len() {
        return Err(format!("{addr}: {} bytes left over", bytes.len() - pos));
    }
    out.push(OscMessage { addr, args });
    Ok(())
}

fn word(bytes: &[u8], pos: usize) -> Result<u32, String> {
    let b = bytes.get(pos..pos + 4).ok_or("truncated")?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A NUL-terminated string padded to 4 bytes, and the position after it.
fn string(bytes: &[u8], pos: usize) -> Result<(String, usize), String> {
    let rest = bytes.get(pos..).ok_or("truncated")?;
    let len = rest.iter().position(|&b| b == 0).ok_or("unterminated")?;
    let s = std::str::from_utf8(&rest[..len]).map_err(|e| e.to_string())?;
    Ok((s.to_owned(), pos + (len + 4) / 4 * 4))
}

#[test]
fn the_core_type_decoder_refuses_every_other_type() {
    let encoded = |args| {
        chronus_osc::encode(&OscPacket::Message(OscMessage {
            addr: "/x".into(),
            args,
        }))
    };
    let core = vec![
        OscType::Int(-3),
        OscType::Float(0.5),
        OscType::String("abc".into()),
        OscType::Blob(vec![1, 2, 3, 4, 5]),
    ];
    assert_eq!(
        core_types_only(&encoded(core.clone())).unwrap(),
        [OscMessage {
            addr: "/x".into(),
            args: core
        }]
    );
    for (arg, tag) in [
        (OscType::Long(1), 'h'),
        (OscType::Double(1.0), 'd'),
        (OscType::Bool(true), 'T'),
        (OscType::Bool(false), 'F'),
        (OscType::Nil, 'N'),
        (OscType::Char('c'), 'c'),
    ] {
        assert_eq!(
            core_types_only(&encoded(vec![OscType::Int(1), arg])).unwrap_err(),
            format!("/x: type tag '{tag}' is not i, f, s or b")
        );
    }
}

/// One UDP socket that subscribes, asks, and decodes everything it receives with
/// [`core_types_only`].
struct Listener {
    socket: UdpSocket,
    to: SocketAddr,
    /// Every message received so far, by address.
    seen: BTreeMap<String, Vec<OscMessage>>,
}

impl Listener {
    fn new(to: SocketAddr) -> Listener {
        Listener::on(UdpSocket::bind("127.0.0.1:0").unwrap(), to)
    }

    fn on(socket: UdpSocket, to: SocketAddr) -> Listener {
        Listener {
            socket,
            to,
            seen: BTreeMap::new(),
        }
    }

    fn send(&self, addr: &str, args: Vec<OscType>) {
        send_from(&self.socket, self.to, addr, args);
    }

    fn send_packet(&self, packet: &OscPacket) {
        self.socket
            .send_to(&chronus_osc::encode(packet), self.to)
            .unwrap();
    }

    /// Receives until a message at `addr` satisfying `pred` arrived (or had already).
    fn expect(&mut self, addr: &str, pred: impl Fn(&OscMessage) -> bool) -> OscMessage {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(m) = self
                .seen
                .get(addr)
                .and_then(|ms| ms.iter().find(|m| pred(m)))
            {
                return m.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {addr} within 20 s; received: {:?}",
                self.seen.keys().collect::<Vec<_>>()
            );
            self.receive(Duration::from_millis(50));
        }
    }

    /// Takes in whatever arrives within `wait`, decoding each datagram strictly.
    fn receive(&mut self, wait: Duration) {
        let mut buf = vec![0u8; 65536];
        self.socket.set_read_timeout(Some(wait)).unwrap();
        while let Ok(len) = self.socket.recv(&mut buf) {
            let messages = core_types_only(&buf[..len]).unwrap_or_else(|e| {
                panic!(
                    "not readable by an OSC 1.0 client: {e}; packet {:?}",
                    chronus_osc::decode(&buf[..len], &Default::default())
                )
            });
            for m in messages {
                self.seen.entry(m.addr.clone()).or_default().push(m);
            }
            self.socket
                .set_read_timeout(Some(Duration::from_millis(1)))
                .unwrap();
        }
    }
}

fn s(text: &str) -> OscType {
    OscType::String(text.into())
}

fn done_for(addr: &'static str) -> impl Fn(&OscMessage) -> bool {
    move |m| m.args.first() == Some(&s(addr))
}

/// `chronusctl watch`, ended however the test ends.
struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chronusctl(port: u16) -> Command {
    // Built alongside chronusd (the workspace builds every binary for its tests).
    let mut cmd = Command::new(chronusctl_exe());
    cmd.args(["--port", &port.to_string()]);
    cmd
}

#[test]
fn every_reply_and_event_uses_only_osc_1_0_core_types() {
    let dir = scratch("reply-types-files");
    let transcribe = dir.join("transcribe");
    std::fs::create_dir_all(&transcribe).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(transcribe.join("take.wav"), spec).unwrap();
    for _ in 0..1600 {
        wav.write_sample(0i16).unwrap();
    }
    wav.finalize().unwrap();
    let viz = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut d = Daemon::start(
        "reply-types",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            // Every journal write fails: storage error events.
            ("CHRONUS_JOURNAL", "/dev/full".into()),
            (
                "CHRONUS_RECORDINGS_DIR",
                dir.join("takes").display().to_string(),
            ),
            (
                "CHRONUS_PATTERNS_DIR",
                dir.join("patterns").display().to_string(),
            ),
            (
                "CHRONUS_ASR_TRANSCRIBE_DIR",
                transcribe.display().to_string(),
            ),
            // A recogniser that hears "hello world" in anything.
            (
                "CHRONUS_ASR_COMMAND",
                "sh -c 'cat >/dev/null; echo hello world'".into(),
            ),
            (
                "CHRONUS_VIZ_PORT",
                viz.local_addr().unwrap().port().to_string(),
            ),
        ],
    );
    let mut c = Listener::new(d.osc);
    c.send("/chronus/notify", vec![OscType::Int(1)]);
    c.expect("/chronus/done", done_for("/chronus/notify"));

    // Queries.
    for query in [
        "/chronus/status",
        "/chronus/status/json",
        "/chronus/version",
        "/chronus/speech/status",
        "/engine/status",
        "/engine/list",
        "/engine/schema",
        "/seq/status",
        "/engine/record/status",
    ] {
        c.send(query, vec![]);
        c.expect(&format!("{query}.reply"), |_| true);
    }
    let status = c.expect("/chronus/status.reply", |_| true);
    let pairs: Status = chronus_osc::status_pairs(&status)
        .unwrap()
        .into_iter()
        .collect();
    assert!(long(&pairs, "frames") > 0);
    assert_eq!(pairs.get("tts_playing"), Some(&OscType::Int(0)));

    // Commands, a clamp, a refusal and a sync.
    c.send("/mod/voice1/freq", vec![OscType::Float(440.0)]);
    c.send("/mod/voice1/amp", vec![OscType::Float(7.5)]);
    c.send("/gate/voice1", vec![OscType::Int(1)]);
    c.send("/mod/voice99/freq", vec![OscType::Float(440.0)]);
    c.send("/chronus/sync", vec![OscType::Int(7)]);
    c.expect("/chronus/synced", |m| m.args == [OscType::Int(7)]);
    c.expect("/chronus/fail", done_for("/mod/voice99/freq"));
    c.expect("/chronus/refused", done_for("/mod/voice99/freq"));
    c.expect("/chronus/clamped", done_for("/mod/voice1/amp"));
    c.expect("/chronus/storage/error", |_| true);

    // A bundle a second late.
    let late = OscPacket::Bundle(OscBundle {
        timetag: OscTime {
            seconds: 1,
            fractional: 0,
        },
        content: vec![OscPacket::Message(OscMessage {
            addr: "/mod/voice2/freq".into(),
            args: vec![OscType::Float(220.0)],
        })],
    });
    c.send_packet(&late);
    c.expect("/chronus/late", |_| true);

    // Takes and patterns.
    c.send("/engine/record/start", vec![s("take1")]);
    let started = c.expect("/chronus/done", done_for("/engine/record/start"));
    assert!(
        chronus_osc::integer(&started.args[2]).is_some(),
        "{started:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    c.send("/engine/record/stop", vec![]);
    c.expect("/chronus/done", done_for("/engine/record/stop"));
    c.send("/pattern/save", vec![OscType::Int(3)]);
    c.expect("/chronus/done", done_for("/pattern/save"));
    c.send("/pattern/load", vec![OscType::Int(3), s("immediate")]);
    let loaded = c.expect("/chronus/done", done_for("/pattern/load"));
    assert!(
        chronus_osc::integer(&loaded.args[2]).is_some(),
        "{loaded:?}"
    );
    c.send("/pattern/list", vec![]);
    c.expect("/chronus/done", done_for("/pattern/list"));

    // Speech: an utterance and a transcript.
    c.send("/chronus/tts/say", vec![s("hello"), s(""), s("greeting")]);
    c.expect("/chronus/tts/start", |m| m.args == [s("greeting")]);
    c.expect("/chronus/tts/done", |m| m.args == [s("greeting")]);
    c.send("/chronus/tts/say", vec![s("again")]);
    c.expect("/chronus/tts/done", |m| m.args != [s("greeting")]);
    c.send("/chronus/asr/transcribe", vec![s("take.wav")]);
    c.expect("/chronus/asr/transcript", |_| true);

    // Worker events: a drill kill, then both workers stopped (underrun, cold start).
    c.send("/chronus/kill_worker", vec![s("active")]);
    c.expect("/chronus/done", done_for("/chronus/kill_worker"));
    c.expect("/chronus/failover", |_| true);
    d.wait_until("lockstep again", Duration::from_secs(10), both_lockstep);
    let s0 = d.status();
    for pid in [active_pid(&s0), standby_pid(&s0)] {
        signal(pid, libc::SIGSTOP);
    }
    c.expect("/chronus/underrun", |_| true);
    c.expect("/chronus/worker", |m| m.args.get(2) == Some(&s("lockstep")));
    d.wait_until("cold started", Duration::from_secs(10), |s| {
        long(s, "cold_starts") > 0 && both_lockstep(s)
    });

    // Visualisation goes to its own port.
    let mut v = Listener::on(viz, d.osc);
    v.expect("/viz/levels", |_| true);
    v.expect("/viz/spectrum", |_| true);

    c.receive(Duration::from_millis(200));
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn status_counters_are_exact_decimal_strings_and_exact_json_numbers() {
    let d = Daemon::start(
        "reply-types-json",
        &[("CHRONUS_AUDIO_BACKEND", "null".into())],
    );
    let out = chronusctl(d.osc.port())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frames = json["frames"].as_u64().expect("frames as a JSON integer");
    assert!(frames > 0);
    assert_eq!(json["tts_playing"], serde_json::Value::Bool(false));
    let osc = d.status();
    let OscType::String(digits) = &osc["frames"] else {
        panic!("frames is {:?}", osc["frames"]);
    };
    let later: u64 = digits.parse().unwrap();
    assert!(later >= frames, "{later} < {frames}");
    let text = chronusctl(d.osc.port()).arg("status").output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("osc_errors:") && l.ends_with(" 0")),
        "{text}"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn a_subscriber_sees_other_clients_refusals_and_clamps_once_a_second() {
    let mut d = Daemon::start(
        "reply-types-refused",
        &[("CHRONUS_AUDIO_BACKEND", "null".into())],
    );
    let mut watcher = Listener::new(d.osc);
    watcher.send("/chronus/notify", vec![OscType::Int(1)]);
    watcher.expect("/chronus/done", done_for("/chronus/notify"));
    let mut watch = Watch(
        chronusctl(d.osc.port())
            .arg("watch")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    d.wait_until("chronusctl watch subscribed", Duration::from_secs(5), |s| {
        long(s, "osc_subscribers") == 2
    });

    // A fire-and-forget sender, as oscsend is.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let from = sender.local_addr().unwrap().to_string();
    send_from(
        &sender,
        d.osc,
        "/mod/voice99/freq",
        vec![OscType::Float(1.0)],
    );
    for _ in 0..5 {
        send_from(&sender, d.osc, "/mod/voice1/amp", vec![OscType::Float(7.5)]);
    }
    send_from(&sender, d.osc, "/mod/voice1/amp", vec![OscType::Float(0.5)]);
    send_from(&sender, d.osc, "/chronus/sync", vec![OscType::Int(1)]);
    expect_at(&sender, "/chronus/synced", "the sync");

    let refused = watcher.expect("/chronus/refused", |_| true);
    let [
        OscType::String(addr),
        OscType::String(reason),
        OscType::String(sent_from),
    ] = &refused.args[..]
    else {
        panic!("{refused:?}");
    };
    assert_eq!(
        (addr.as_str(), sent_from.as_str()),
        ("/mod/voice99/freq", from.as_str())
    );
    assert!(reason.contains("voice"), "{reason}");
    let clamped = watcher.expect("/chronus/clamped", |_| true);
    assert_eq!(
        clamped.args,
        [
            s("/mod/voice1/amp"),
            OscType::Float(7.5),
            OscType::Float(1.0),
            s(&from)
        ]
    );
    watcher.receive(Duration::from_millis(300));
    assert_eq!(watcher.seen["/chronus/refused"].len(), 1);
    assert_eq!(
        watcher.seen["/chronus/clamped"].len(),
        1,
        "five clamps within a second are announced once"
    );
    let s = d.status();
    assert_eq!(long(&s, "osc_clamped"), 5);
    assert_eq!(long(&s, "osc_errors"), 1);

    // A second later the next clamp is announced again.
    std::thread::sleep(Duration::from_millis(1100));
    send_from(
        &sender,
        d.osc,
        "/mod/voice1/amp",
        vec![OscType::Float(-2.0)],
    );
    watcher.expect("/chronus/clamped", |m| m.args[1] == OscType::Float(-2.0));

    signal(watch.0.id() as i32, libc::SIGINT);
    let mut printed = String::new();
    watch
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    assert!(
        printed.contains(&format!(
            "/chronus/refused /mod/voice99/freq from {from}: {reason}\n"
        )),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "/chronus/clamped /mod/voice1/amp from {from}: 7.5 is out of range, 1 used\n"
        )),
        "{printed}"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}
