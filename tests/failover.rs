//! Failover through real processes and real signals, on the timer-clocked null
//! backend, checked sample by sample against an offline render of the journal.
//! Tests here share the machine's timing: run them serially (--test-threads=1).

use chronus_e2e::*;
use chronus_osc::{OscMessage, OscPacket, OscType};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const KILLS: i64 = 1000;

/// A null-backend daemon recording its output and journal into the returned directory.
fn recorded_daemon(name: &str, extra: &[(&str, String)]) -> (Daemon, PathBuf) {
    let dir = scratch(&format!("{name}-files"));
    let mut env = vec![
        ("CHRONUS_AUDIO_BACKEND", "null".to_owned()),
        ("CHRONUS_RECORD", dir.join("out.wav").display().to_string()),
        (
            "CHRONUS_JOURNAL",
            dir.join("journal.osc").display().to_string(),
        ),
    ];
    env.extend(extra.iter().cloned());
    (Daemon::start(name, &env), dir)
}

fn wait_restored(d: &mut Daemon, restores: i64) -> Status {
    d.wait_until(
        &format!("restore #{restores} and both slots in lockstep"),
        Duration::from_secs(10),
        |s| long(s, "restores") >= restores && both_lockstep(s),
    )
}

/// Renders the journal offline to as many frames as the live recording holds:
/// returns (live, reference), interleaved stereo.
fn live_and_reference(dir: &std::path::Path) -> (Vec<f32>, Vec<f32>) {
    let (rate, live) = read_wav(&dir.join("out.wav"));
    assert_eq!(rate, 48_000);
    let reference = render_journal(dir, &dir.join("journal.osc"), &live);
    (live, reference)
}

/// Renders the journal offline and demands the live recording be bit-identical.
fn assert_recording_matches_journal(dir: &std::path::Path) {
    let (live, reference) = live_and_reference(dir);
    let frames = live.len() / 2;
    assert!(frames > 4_800, "recording too short: {frames} frames");
    let altered = altered_samples(&live, &reference);
    let first = live
        .iter()
        .zip(&reference)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(
        altered, 0,
        "{altered} altered samples, first at sample {first:?}"
    );
    assert!(
        live.iter().any(|s| s.abs() > 0.1),
        "the recording is silent: the test would prove nothing"
    );
}

#[test]
fn thousand_kills_of_the_active_worker_alter_no_sample() {
    let (mut d, dir) = recorded_daemon("kills", &[]);
    d.send("/mod/voice1/freq", vec![OscType::Float(1000.0)]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    let mut s = d.status();
    let mut restore_ms = Vec::new();
    for i in 0..KILLS {
        if i % 100 == 50 {
            // Keep the journal interesting: a parameter change between kills.
            d.send("/mod/voice1/freq", vec![OscType::Float(300.0 + i as f32)]);
        }
        signal(active_pid(&s), libc::SIGKILL);
        s = wait_restored(&mut d, i + 1);
        if let Some(OscType::Float(ms)) = s.get("last_restore_ms") {
            restore_ms.push(*ms);
        }
    }
    assert_eq!(long(&s, "failovers"), KILLS);
    assert_eq!(long(&s, "underrun_frames"), 0, "underruns during failover");
    assert_eq!(long(&s, "divergences"), 0);
    assert_eq!(
        long(&s, "cold_starts"),
        0,
        "a kill of one worker must never need a cold start"
    );
    restore_ms.sort_by(f32::total_cmp);
    eprintln!(
        "restore ms p50 {} p99 {}",
        restore_ms[restore_ms.len() / 2],
        restore_ms[restore_ms.len() * 99 / 100]
    );
    let (status, _, log) = d.stop();
    assert!(
        status.success(),
        "chronusd exited with {status}; log:\n{log}"
    );
    assert_recording_matches_journal(&dir);
}

/// The low-latency setting: with 64-frame device periods (and the block and
/// lookahead auto picks for them: 32 and 256 frames), through kills and hangs of
/// the active worker between untimed commands, every frame the device got from a
/// worker is the journal's, bit for bit. A 1.3 ms period leaves little room on a
/// busy machine: a frame no worker had ready in time is silence, counted as
/// underrun; this test allows those (how many there are is a benchmark's figure,
/// in BENCHMARKS.md) but no other difference.
#[test]
fn kills_and_hangs_at_64_frame_periods_play_the_journal_or_counted_silence() {
    let (mut d, dir) = recorded_daemon(
        "kills-64",
        &[
            ("CHRONUS_BUFFER_SIZE", "64".into()),
            ("CHRONUS_LOOKAHEAD_BLOCKS", "auto".into()),
            ("CHRONUS_HANG_TIMEOUT_MS", "100".into()),
        ],
    );
    let s = d.status();
    assert_eq!(
        (
            long(&s, "buffer_frames"),
            long(&s, "block_frames"),
            long(&s, "lookahead_frames")
        ),
        (64, 32, 256)
    );
    d.send("/mod/voice1/freq", vec![OscType::Float(1000.0)]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    let mut s = d.status();
    let mut restores = 0;
    let mut hangs = 0;
    for i in 0..300 {
        // Untimed commands land inside what is rendered: keep them coming.
        d.send("/mod/voice1/freq", vec![OscType::Float(300.0 + i as f32)]);
        let victim = active_pid(&s);
        if i % 60 == 30 {
            hangs += 1;
            signal(victim, libc::SIGSTOP);
        } else {
            signal(victim, libc::SIGKILL);
        }
        restores += 1;
        s = wait_restored(&mut d, restores);
        assert_ne!(
            active_pid(&s),
            victim,
            "kill {i}: the victim is still active"
        );
    }
    assert_eq!(long(&s, "hangs"), hangs);
    assert_eq!(long(&s, "divergences"), 0);
    assert_eq!(long(&s, "cold_starts"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let underrun = long(&s, "underrun_frames");
    let (live, reference) = live_and_reference(&dir);
    assert!(
        live.iter().any(|x| x.abs() > 0.1),
        "the recording is silent"
    );
    let mut differing_frames = 0;
    for (n, (l, r)) in live.chunks(2).zip(reference.chunks(2)).enumerate() {
        if l.iter().zip(r).any(|(a, b)| a.to_bits() != b.to_bits()) {
            assert_eq!(
                l,
                [0.0, 0.0],
                "frame {n} differs from the journal and is not silence"
            );
            differing_frames += 1;
        }
    }
    assert!(
        differing_frames <= underrun,
        "{differing_frames} silent frames differ from the journal, {underrun} underrun frames counted"
    );
}

/// Sends `(address, args)` messages from one socket.
fn send_all(socket: &UdpSocket, to: std::net::SocketAddr, messages: &[(&str, Vec<OscType>)]) {
    for (addr, args) in messages {
        let packet = OscPacket::Message(OscMessage {
            addr: (*addr).into(),
            args: args.clone(),
        });
        socket.send_to(&chronus_osc::encode(&packet), to).unwrap();
    }
}

fn text(s: &str) -> OscType {
    OscType::String(s.into())
}

fn float(x: f32) -> OscType {
    OscType::Float(x)
}

#[test]
fn a_live_multi_voice_session_through_kills_plays_exactly_its_journal() {
    let (mut d, dir) = recorded_daemon(
        "session",
        &[(
            "CHRONUS_PATTERNS_DIR",
            scratch("session-patterns").display().to_string(),
        )],
    );
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Four oscillator types, acid on voice2, every effect fed, both LFOs.
    let setup: Vec<(&str, Vec<OscType>)> = vec![
        ("/mod/voice1/osc/type", vec![OscType::Int(0)]),
        ("/mod/voice2/osc/type", vec![OscType::Int(1)]),
        ("/mod/voice3/osc/type", vec![OscType::Int(2)]),
        ("/mod/voice4/osc/type", vec![OscType::Int(4)]),
        ("/mod/voice1/freq", vec![float(55.0)]),
        ("/mod/voice1/adsr/decay", vec![float(0.15)]),
        ("/mod/voice1/adsr/sustain", vec![float(0.0)]),
        ("/mod/voice2/amp", vec![float(0.4)]),
        ("/mod/voice3/amp", vec![float(0.2)]),
        ("/mod/voice3/slide_time", vec![float(0.05)]),
        ("/mod/voice4/amp", vec![float(0.15)]),
        ("/mod/voice4/adsr/release", vec![float(0.05)]),
        ("/mod/acid1/mix", vec![float(1.0)]),
        ("/mod/acid1/res", vec![float(0.8)]),
        ("/mod/acid1/env_amount", vec![float(0.7)]),
        ("/mod/acid1/drive", vec![float(0.5)]),
        ("/mod/voice2/send/delay", vec![float(0.4)]),
        ("/mod/voice3/send/reverb", vec![float(0.5)]),
        ("/mod/voice4/send/reverb", vec![float(0.3)]),
        ("/mod/delay1/time", vec![float(0.187)]),
        ("/mod/delay1/feedback", vec![float(0.5)]),
        ("/mod/delay1/mix", vec![float(0.3)]),
        ("/mod/reverb1/room", vec![float(0.8)]),
        ("/mod/reverb1/mix", vec![float(0.3)]),
        ("/mod/dist1/drive", vec![float(0.4)]),
        ("/mod/dist1/mix", vec![float(0.3)]),
        ("/mod/lfo1/rate", vec![float(0.5)]),
        ("/mod/lfo1/depth", vec![float(0.6)]),
        ("/mod/lfo2/rate", vec![float(3.0)]),
        ("/mod/lfo2/depth", vec![float(0.4)]),
        // Four tracks of 16, 8, 12 and 5 steps, with swing.
        ("/seq/bpm", vec![float(132.0)]),
        ("/seq/swing", vec![float(0.3)]),
        ("/seq/gate_length", vec![float(0.4)]),
        (
            "/seq/add",
            vec![text("kick"), text("voice1"), text("X...x...X...x.x.")],
        ),
        (
            "/seq/add",
            vec![
                text("bass"),
                text("voice2"),
                text("x.xX.x.x"),
                text("notes=A1 C2 E2 G2"),
            ],
        ),
        (
            "/seq/add",
            vec![
                text("lead"),
                text("voice3"),
                text("x..x..X..x.."),
                text("notes=A3 E4 C4"),
            ],
        ),
        (
            "/seq/add",
            vec![
                text("hats"),
                text("voice4"),
                text("x.xX."),
                text("gate=0.2"),
            ],
        ),
        ("/seq/start", vec![]),
        ("/pattern/save", vec![OscType::Int(42)]),
        // Slot 42 differs from what plays next.
        ("/seq/update/pattern", vec![text("bass"), text("X.......")]),
        ("/seq/remove", vec![text("hats")]),
    ];
    send_all(&socket, d.osc, &setup);

    // Parameter sweeps every 20 ms for as long as the kills go on.
    let stop = Arc::new(AtomicBool::new(false));
    let sweeper = {
        let (stop, to) = (stop.clone(), d.osc);
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let t = i as f32 * 0.02;
                let wave = (t * 0.7).sin();
                send_all(
                    &socket,
                    to,
                    &[
                        ("/mod/acid1/cutoff", vec![float(800.0 + 600.0 * wave)]),
                        (
                            "/mod/voice3/filter/freq",
                            vec![float(2000.0 - 1500.0 * wave)],
                        ),
                        (
                            "/mod/voice4/filter/freq",
                            vec![float(3000.0 + 2000.0 * wave)],
                        ),
                        ("/mod/delay1/feedback", vec![float(0.4 + 0.2 * wave)]),
                    ],
                );
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            i
        })
    };

    let mut s = d.status();
    let kills: i64 = 24;
    for i in 0..kills {
        if i == kills / 2 {
            // Back to the saved pattern at the next bar line, while the kills go on.
            send_all(&socket, d.osc, &[("/pattern/load", vec![OscType::Int(42)])]);
        }
        // Kill at varying phases of the sequencer's steps.
        std::thread::sleep(Duration::from_millis(30 + 13 * (i % 5) as u64));
        signal(active_pid(&s), libc::SIGKILL);
        s = wait_restored(&mut d, i + 1);
    }
    signal(standby_pid(&s), libc::SIGKILL);
    s = wait_restored(&mut d, kills + 1);
    // Let the loaded pattern's bar line pass before the end (a bar is under 2 s).
    let frames = long(&s, "frames");
    s = d.wait_until("two more seconds played", Duration::from_secs(10), |s| {
        long(s, "frames") > frames + 96_000
    });
    stop.store(true, Ordering::Relaxed);
    let sweeps = sweeper.join().unwrap();
    assert!(sweeps >= 50, "only {sweeps} sweep steps were sent");
    assert_eq!(long(&s, "failovers"), kills);
    assert_eq!(long(&s, "divergences"), 0);
    assert_eq!(long(&s, "underrun_frames"), 0);
    // The sweeps land inside frames the workers had rendered: rendered again.
    assert!(long(&s, "rewinds") > 0, "no command was rendered in again");
    assert_eq!(long(&s, "late_commands"), 0);
    assert_eq!(long(&s, "cold_starts"), 0);
    assert_eq!(
        long(&s, "osc_errors"),
        0,
        "a message was refused; log:\n{}",
        d.log()
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert!(log.contains("pattern loaded"), "log:\n{log}");
    assert_recording_matches_journal(&dir);
}

#[test]
fn standby_kills_and_hangs_are_inaudible() {
    let (mut d, dir) = recorded_daemon("hangs", &[("CHRONUS_HANG_TIMEOUT_MS", "100".into())]);
    d.send("/mod/voice1/freq", vec![OscType::Float(480.0)]);
    d.send("/gate/voice1", vec![OscType::String("on".into())]);
    let mut s = d.status();
    let mut restores = 0;
    for round in 0..5 {
        // The standby dies: replaced without any effect on the output.
        signal(standby_pid(&s), libc::SIGKILL);
        restores += 1;
        s = wait_restored(&mut d, restores);
        // The active worker hangs: the standby covers at once, the hung one is killed.
        let hung = active_pid(&s);
        signal(hung, libc::SIGSTOP);
        restores += 1;
        s = wait_restored(&mut d, restores);
        assert_ne!(
            active_pid(&s),
            hung,
            "round {round}: the hung worker is still active"
        );
        assert!(
            !alive(hung),
            "round {round}: the hung worker was not killed"
        );
    }
    assert_eq!(long(&s, "hangs"), 5);
    assert_eq!(long(&s, "underrun_frames"), 0);
    assert_eq!(long(&s, "divergences"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert_recording_matches_journal(&dir);
}

/// Upward zero crossings of the left channel: cycles of a plain tone.
fn cycles(stereo: &[f32]) -> usize {
    let left: Vec<f32> = stereo.iter().step_by(2).copied().collect();
    left.windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count()
}

#[test]
fn a_diverging_standby_is_caught_replaced_and_never_heard() {
    // Two seconds of audio in, long after startup; mid-block, on purpose.
    const AT: u64 = 96_017;
    let (mut d, dir) = recorded_daemon(
        "diverge",
        &[("CHRONUS_TEST_DIVERGE_AT_FRAME", AT.to_string())],
    );
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    let s = d.status();
    assert!(
        long(&s, "frames") < AT as i64 && long(&s, "divergences") == 0,
        "frame {AT} already played: the test would prove nothing"
    );
    // The fault is injected into slot 1: it must be the standby.
    assert_eq!(long(&s, "active_slot"), 0);
    let (active, standby) = (active_pid(&s), standby_pid(&s));
    let s = d.wait_until(
        "the divergence caught and slot 1 restored",
        Duration::from_secs(10),
        |s| long(s, "restores") == 1 && both_lockstep(s),
    );
    assert_eq!(long(&s, "divergences"), 1, "log:\n{}", d.log());
    assert_eq!(active_pid(&s), active, "the active worker must be kept");
    assert!(!alive(standby), "the diverged worker was not killed");
    assert_ne!(standby_pid(&s), standby);
    assert_eq!(long(&s, "failovers"), 0);
    let frames = long(&s, "frames");
    let s = d.wait_until("audio flowing on", Duration::from_secs(5), |s| {
        long(s, "frames") > frames + 48_000
    });
    // The replacement is a copy of the active worker: it agrees from the start.
    assert_eq!(long(&s, "divergences"), 1);
    assert_eq!(long(&s, "underrun_frames"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert!(log.contains("slots diverged"), "log:\n{log}");
    // The hook is known to the configuration, not reported as a stray variable.
    assert!(!log.contains("unknown environment variable"), "log:\n{log}");
    // The flipped bit stayed in the diverged ring: what played is the journal's render.
    assert_recording_matches_journal(&dir);
}

#[test]
fn both_workers_dying_at_once_gives_counted_silence_then_the_same_tone() {
    const FREQ: f32 = 750.0;
    let (mut d, dir) = recorded_daemon("both", &[]);
    d.send("/mod/voice1/freq", vec![OscType::Float(FREQ)]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    // Let both commands play, so they are in the parameter mirror, not in flight.
    let frames = long(&d.status(), "frames");
    let s = d.wait_until("the tone playing", Duration::from_secs(5), |s| {
        long(s, "frames") > frames + 24_000
    });
    let (a, b) = (active_pid(&s), standby_pid(&s));
    // Both stopped first, so that neither can serve a fork request for the other if
    // this thread is preempted between the kills: they die at once for the supervisor.
    signal(a, libc::SIGSTOP);
    signal(b, libc::SIGSTOP);
    signal(a, libc::SIGKILL);
    signal(b, libc::SIGKILL);
    let s = d.wait_until(
        "cold start back to lockstep",
        Duration::from_secs(10),
        |s| long(s, "cold_starts") == 1 && both_lockstep(s),
    );
    assert!(!alive(a) && !alive(b));
    // Regression: a fork request left for a dead worker reached its cold-started
    // successor, whose copy then fought the new worker for a slot.
    assert_eq!(long(&s, "hangs"), 0, "log:\n{}", d.log());
    let frames = long(&s, "frames");
    // Lockstep comes before the device reaches the cold start's first frame: read
    // the underrun count once the gap has surely played.
    let s = d.wait_until("audio flowing again", Duration::from_secs(5), |s| {
        long(s, "frames") > frames + 48_000
    });
    let underrun = long(&s, "underrun_frames");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");

    // The journal marks the cold start, so its render is the live output except in
    // the gap, where the old engine would have played on.
    let (live, reference) = live_and_reference(&dir);
    let differs = |i: &usize| live[*i].to_bits() != reference[*i].to_bits();
    let first = (0..live.len())
        .find(differs)
        .expect("no gap in the recording")
        / 2;
    let last = (0..live.len()).rfind(differs).unwrap() / 2;
    let gap = &live[first * 2..(last + 1) * 2];
    assert!(
        gap.iter().all(|s| s.to_bits() == 0),
        "the gap (frames {first}..={last}) is not silence"
    );
    assert_eq!(
        (last + 1 - first) as i64,
        underrun,
        "frames {first}..={last} are silent, but the underrun count differs"
    );
    // Half a second after the cold start: the frequency set before the kills.
    let after = &live[(last + 1) * 2..(last + 1 + 24_000) * 2];
    let expected = (FREQ * 0.5) as usize;
    let counted = cycles(after);
    assert!(
        counted.abs_diff(expected) <= 1,
        "{counted} cycles in 0.5 s after the cold start: not {FREQ} Hz"
    );
}

#[test]
fn sigterm_stops_cleanly_and_reaps_every_worker() {
    let d = Daemon::start("term", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let s = d.status();
    let workers = [active_pid(&s), standby_pid(&s)];
    let (status, took, log) = d.stop();
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    eprintln!("shutdown took {took:?}");
    // The promise: exit 0 within 2 s of SIGTERM.
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived the supervisor");
    }
}

/// Peaks of the last `blocks` blocks of `frames` frames of an interleaved stereo
/// recording, oldest first.
fn tail_peaks(samples: &[f32], frames: usize, blocks: usize) -> Vec<f32> {
    let tail = &samples[samples.len() - 2 * frames * blocks..];
    tail.chunks(2 * frames)
        .map(|block| block.iter().fold(0f32, |m, s| m.max(s.abs())))
        .collect()
}

#[test]
fn sigterm_fades_the_output_to_silence_without_a_click() {
    let (mut d, dir) = recorded_daemon("fade", &[]);
    // 1000 Hz: one period per 48-frame block, so block peaks follow the envelope.
    d.send("/mod/voice1/freq", vec![OscType::Float(1000.0)]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
    let frames = long(&d.status(), "frames");
    d.wait_until("the tone playing", Duration::from_secs(5), |s| {
        long(s, "frames") > frames + 9_600
    });
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let (_, live) = read_wav(&dir.join("out.wav"));
    let peaks = tail_peaks(&live, 48, 100);
    assert!(
        peaks[0] > 0.1,
        "the tone is not playing 100 ms before the end: {peaks:?}"
    );
    // The last 50 ms: a monotone decay ending in silence.
    let last = &peaks[50..];
    assert!(
        last.windows(2).all(|w| w[1] <= w[0]),
        "the envelope rises during the fade: {last:?}"
    );
    assert!(
        live[live.len() - 2 * 48..].iter().all(|s| s.abs() < 1e-4),
        "the recording ends in a click: {:?}",
        &live[live.len() - 8..]
    );
}

#[test]
fn workers_exit_within_a_second_of_a_supervisor_sigkill() {
    let mut d = Daemon::start("sigkill", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let s = d.status();
    let workers = [active_pid(&s), standby_pid(&s)];
    signal(d.pid(), libc::SIGKILL);
    let _ = d.child.wait();
    std::thread::sleep(Duration::from_secs(1));
    for pid in workers {
        assert!(
            !alive(pid),
            "worker {pid} survived its supervisor by a second"
        );
    }
}

#[test]
fn an_invalid_variable_stops_startup_naming_it() {
    for (var, value) in [
        ("CHRONUS_SAMPLE_RATE", "fast"),
        ("CHRONUS_OSC_PORT", "70000"),
        ("CHRONUS_AUDIO_BACKEND", "jack"),
    ] {
        let out = Command::new(chronusd_exe())
            .env_clear()
            .env(var, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(var) && stderr.contains(value),
            "{var}={value}: message does not name them: {stderr}"
        );
    }
}

#[test]
fn a_crash_looping_worker_is_restarted_with_growing_backoff() {
    let mut d = Daemon::start("crashloop", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let mut backoffs = Vec::new();
    for crash in 1..=5 {
        let s = d.status();
        // An unexpected signal is a crash, as SIGSEGV or a panic's exit would be.
        signal(standby_pid(&s), libc::SIGUSR1);
        let s = wait_restored(&mut d, crash);
        backoffs.push(long(&s, "restart_backoff_ms"));
        assert_eq!(long(&s, "faults"), crash);
    }
    assert_eq!(
        backoffs,
        [0, 10, 20, 40, 80],
        "restart delays after consecutive crashes"
    );
    let s = d.status();
    assert_eq!(
        long(&s, "underrun_frames"),
        0,
        "a crashing standby must be inaudible"
    );
    assert!(d.log().contains("worker crashed"), "crashes must be logged");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn a_failover_is_one_searchable_log_line_and_events_for_subscribers() {
    let mut d = Daemon::start("events", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let watcher = UdpSocket::bind("127.0.0.1:0").unwrap();
    send_from(&watcher, d.osc, "/chronus/notify", vec![OscType::Int(1)]);
    expect_at(&watcher, "/chronus/done", "subscribed");
    let s = d.status();
    let pid = active_pid(&s);
    signal(pid, libc::SIGKILL);
    let lost = expect_at(&watcher, "/chronus/worker_lost", "the loss announced");
    assert_eq!(lost.args[1], OscType::Int(pid));
    assert!(
        matches!(&lost.args[2], OscType::String(r) if r.contains("SIGKILL")),
        "{lost:?}"
    );
    expect_at(&watcher, "/chronus/failover", "the failover announced");
    let restored = expect_at(&watcher, "/chronus/restored", "the restore announced");
    assert!(
        matches!(restored.args[2], OscType::Float(ms) if ms > 0.0),
        "{restored:?}"
    );
    wait_restored(&mut d, 1);
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("id=\"chronus.failover\""))
        .unwrap_or_else(|| panic!("no failover line; log:\n{log}"));
    assert!(line.contains("WARN") && line.contains("SIGKILL"), "{line}");
    assert_eq!(log.matches("id=\"chronus.failover\"").count(), 1, "{log}");
    assert!(log.contains("id=\"chronus.restored\""), "{log}");
}
