//! The daemon with the music environments people drive it from: Pure Data (headless
//! `pd`, a patch using `[oscformat]`, `[netsend -u -b]` and `[oscparse]`) and
//! SuperCollider's `sclang` (`sendMsg`, `sendBundle`, `OSCFunc`), both from Debian
//! (scripts/deps.sh test). Each sends a note the daemon must play and reads a status
//! reply. Run serially (--test-threads=1).

use chronus_e2e::*;
use chronus_osc::{OscMessage, OscPacket, OscType};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `tool` is on PATH; outside CI a missing one skips the test, saying why.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing: scripts/deps.sh test installs it"
        );
        eprintln!("SKIPPED: {tool} is missing (run scripts/deps.sh test)");
    }
    found
}

fn journal_daemon(name: &str) -> (Daemon, PathBuf) {
    let dir = scratch(&format!("{name}-files"));
    let env = [
        ("CHRONUS_AUDIO_BACKEND", "null".to_owned()),
        (
            "CHRONUS_JOURNAL",
            dir.join("journal.osc").display().to_string(),
        ),
    ];
    (Daemon::start(name, &env), dir)
}

/// Runs `cmd` to completion within `limit` (killed past it); returns its stdout
/// and stderr together.
fn run(mut cmd: Command, limit: Duration) -> String {
    let dir = scratch("interop-output");
    let out = dir.join("out.txt");
    let file = std::fs::File::create(&out).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert!(
        status.is_some(),
        "{cmd:?} ran past {limit:?}; it printed:\n{text}"
    );
    text
}

/// `/engine/status` from this test's own client, as pairs.
fn engine_status(d: &Daemon) -> Vec<(String, OscType)> {
    let request = OscPacket::Message(OscMessage {
        addr: "/engine/status".into(),
        args: vec![],
    });
    let reply = chronus_osc::request(
        d.osc,
        &request,
        "/engine/status.reply",
        Duration::from_secs(2),
    )
    .unwrap();
    chronus_osc::status_pairs(&reply).unwrap()
}

fn gates(d: &Daemon) -> String {
    match engine_status(d).into_iter().find(|(k, _)| k == "gates") {
        Some((_, OscType::String(g))) => g,
        other => panic!("gates is {other:?}"),
    }
}

/// The journal's messages, each as its address and arguments in text.
fn journaled(dir: &Path) -> Vec<String> {
    let bytes = std::fs::read(dir.join("journal.osc")).unwrap();
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let packet = chronus_osc::decode(&rest[4..4 + len], &Default::default()).unwrap();
        for m in chronus_osc::messages(packet) {
            out.push(format!("{} {:?}", m.addr, m.args));
        }
        rest = &rest[4 + len..];
    }
    out
}

/// A Pd patch: on load it connects a `[netsend -u -b]` to the daemon, sends
/// `/mod/voice1/freq 330` and `/gate/voice1 1` through `[oscformat]`, then asks for
/// `/{family}/status`; `[oscparse]` decodes the reply that comes back on the same
/// socket, printed whole and its value at `field` (counting the two words of the
/// address) alone as `SAMPLE_RATE`; then Pd quits.
fn pd_patch(port: u16, family: &str, field: usize) -> String {
    let lines = [
        "#N canvas 0 0 600 400 12;",
        "#X obj 10 10 loadbang;",                             // 0
        &format!("#X msg 10 40 connect 127.0.0.1 {port};"),   // 1
        "#X obj 10 300 netsend -u -b;",                       // 2
        "#X msg 200 40 330;",                                 // 3
        "#X obj 200 70 oscformat mod voice1 freq;",           // 4
        "#X obj 10 250 list prepend send;",                   // 5
        "#X obj 10 275 list trim;",                           // 6
        "#X msg 350 40 1;",                                   // 7
        "#X obj 350 70 oscformat gate voice1;",               // 8
        "#X obj 10 100 delay 300;",                           // 9
        "#X msg 10 130 list;",                                // 10
        &format!("#X obj 10 160 oscformat {family} status;"), // 11
        "#X obj 10 330 oscparse;",                            // 12
        "#X obj 10 360 print REPLY;",                         // 13
        &format!("#X obj 200 360 list split {field};"),       // 14
        "#X obj 200 390 list split 1;",                       // 15
        "#X obj 200 420 print SAMPLE_RATE;",                  // 16
        "#X obj 400 100 delay 1500;",                         // 17
        "#X msg 400 130 \\; pd quit;",                        // 18
        "#X obj 10 50 t b b b b;",                            // 19
    ];
    let connections = [
        (0, 0, 19, 0),
        (19, 3, 1, 0),
        (19, 2, 3, 0),
        (19, 1, 7, 0),
        (19, 0, 9, 0),
        (0, 0, 17, 0),
        (1, 0, 2, 0),
        (3, 0, 4, 0),
        (4, 0, 5, 0),
        (7, 0, 8, 0),
        (8, 0, 5, 0),
        (9, 0, 10, 0),
        (10, 0, 11, 0),
        (11, 0, 5, 0),
        (5, 0, 6, 0),
        (6, 0, 2, 0),
        (2, 1, 12, 0),
        (12, 0, 13, 0),
        (12, 0, 14, 0),
        (14, 1, 15, 0),
        (15, 0, 16, 0),
        (17, 0, 18, 0),
    ];
    let mut patch = lines.join("\n");
    for (from, outlet, to, inlet) in connections {
        patch.push_str(&format!("\n#X connect {from} {outlet} {to} {inlet};"));
    }
    patch.push('\n');
    patch
}

fn pd(dir: &Path, patch: &str) -> String {
    let file = dir.join("chronus.pd");
    std::fs::write(&file, patch).unwrap();
    let mut cmd = Command::new("pd");
    cmd.args(["-nogui", "-noaudio", "-nomidi", "-stderr"])
        .arg(&file);
    run(cmd, Duration::from_secs(30))
}

#[test]
fn pure_data_plays_a_note_and_reads_the_engine_status_reply() {
    if !have("pd") {
        return;
    }
    let (d, dir) = journal_daemon("interop-pd");
    assert_eq!(gates(&d), "00000000");
    // engine status.reply state running master_gain G sample_rate R ...
    let printed = pd(&dir, &pd_patch(d.osc.port(), "engine", 7));
    assert!(
        printed.contains("SAMPLE_RATE: 48000"),
        "pd did not print the status reply's sample_rate; it printed:\n{printed}"
    );
    assert!(!printed.contains("error"), "pd printed:\n{printed}");
    // The note Pd sent plays: voice1's gate is open, and the journal holds what Pd sent.
    assert_eq!(gates(&d), "10000000");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let journal = journaled(&dir);
    assert!(
        journal.contains(&"/mod/voice1/freq [Float(330.0)]".to_owned())
            && journal.contains(&"/gate/voice1 [Float(1.0)]".to_owned()),
        "journal: {journal:#?}"
    );
}

/// sclang, headless: Qt offscreen, and QtWebEngine's sandbox off (it refuses to start
/// as root with it). Sends the note as a message and a bundle, then prints the
/// value of `key` in `/{family}/status.reply` and exits.
fn sclang(dir: &Path, port: u16, family: &str, key: &str) -> String {
    let script = format!(
        r#"(
var daemon = NetAddr("127.0.0.1", {port});
OSCFunc({{ |msg|
    var at = msg.indexOf('{key}');
    ("{key} is " ++ msg[at + 1]).postln;
    0.exit;
}}, '/{family}/status.reply');
daemon.sendMsg('/mod/voice2/freq', 220.0);
daemon.sendBundle(0.0, ['/gate/voice2', 1]);
AppClock.sched(0.3, {{ daemon.sendMsg('/{family}/status'); nil }});
AppClock.sched(10, {{ "NO REPLY".postln; 1.exit }});
)
"#
    );
    let file = dir.join("chronus.scd");
    std::fs::write(&file, script).unwrap();
    let mut cmd = Command::new("sclang");
    cmd.arg(&file)
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("QTWEBENGINE_DISABLE_SANDBOX", "1")
        .current_dir(dir);
    run(cmd, Duration::from_secs(60))
}

#[test]
fn supercollider_plays_a_note_and_reads_the_engine_status_reply() {
    if !have("sclang") {
        return;
    }
    let (d, dir) = journal_daemon("interop-sclang");
    let printed = sclang(&dir, d.osc.port(), "engine", "sample_rate");
    assert!(
        printed.contains("sample_rate is 48000"),
        "sclang did not print the status reply's sample_rate; it printed:\n{printed}"
    );
    assert_eq!(gates(&d), "01000000");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let journal = journaled(&dir);
    assert!(
        journal.contains(&"/mod/voice2/freq [Float(220.0)]".to_owned())
            && journal.contains(&"/gate/voice2 [Int(1)]".to_owned()),
        "journal: {journal:#?}"
    );
}

#[test]
fn pure_data_reads_the_chronus_status_reply() {
    if !have("pd") {
        return;
    }
    let (d, dir) = journal_daemon("interop-pd-status");
    // chronus status.reply version V uptime_s U backend B sample_rate R ...
    let printed = pd(&dir, &pd_patch(d.osc.port(), "chronus", 9));
    // Pd says `oscparse: unknown tag ...` for a type it cannot read.
    assert!(
        printed.contains("SAMPLE_RATE: 48000") && !printed.contains("oscparse:"),
        "pd printed:\n{printed}"
    );
}

#[test]
fn supercollider_reads_the_chronus_status_reply() {
    if !have("sclang") {
        return;
    }
    let (d, dir) = journal_daemon("interop-sclang-status");
    // A value after the first int64 (`frames`).
    let printed = sclang(&dir, d.osc.port(), "chronus", "slot0_state");
    assert!(
        printed.contains("slot0_state is lockstep"),
        "sclang printed:\n{printed}"
    );
}
