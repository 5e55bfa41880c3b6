//! The master safety limiter through the real daemon: two voices at full level never
//! pass the ceiling, through a fork and a cold start, and the live recording is bit
//! for bit the render of the journal. Run serially (--test-threads=1).

use chronus_dsp::LimiterParams;
use chronus_e2e::*;
use chronus_osc::OscType;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn recorded_daemon(name: &str, extra: &[(&str, &str)]) -> (Daemon, PathBuf) {
    let dir = scratch(&format!("{name}-files"));
    let mut env = vec![
        ("CHRONUS_AUDIO_BACKEND", "null".to_owned()),
        ("CHRONUS_RECORD", dir.join("out.wav").display().to_string()),
        (
            "CHRONUS_JOURNAL",
            dir.join("journal.osc").display().to_string(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    (Daemon::start(name, &env), dir)
}

/// Voices 1 and 2 at full amplitude, gated, at `freqs`.
fn two_loud_voices(d: &Daemon, freqs: [f32; 2]) {
    for (voice, freq) in [1, 2].into_iter().zip(freqs) {
        d.send(&format!("/mod/voice{voice}/amp"), vec![OscType::Float(1.0)]);
        d.send(
            &format!("/mod/voice{voice}/freq"),
            vec![OscType::Float(freq)],
        );
        d.send(&format!("/gate/voice{voice}"), vec![OscType::Int(1)]);
    }
}

fn play_for(d: &mut Daemon, frames: i64) -> Status {
    let from = long(&d.status(), "frames");
    d.wait_until("the voices playing", Duration::from_secs(10), |s| {
        long(s, "frames") > from + frames
    })
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, s| m.max(s.abs()))
}

fn float(s: &Status, key: &str) -> f32 {
    match s.get(key) {
        Some(OscType::Float(v)) => *v,
        other => panic!("status key {key} is {other:?}"),
    }
}

fn recording(dir: &Path) -> Vec<f32> {
    let (rate, live) = read_wav(&dir.join("out.wav"));
    assert_eq!(rate, 48_000);
    live
}

#[test]
fn two_voices_at_full_level_stay_under_the_default_ceiling_live_and_in_the_render() {
    let (mut d, dir) = recorded_daemon("limiter-default", &[]);
    let s = d.status();
    assert_eq!(long(&s, "limiter"), 1);
    assert_eq!(float(&s, "limiter_ceiling_db"), -1.0);
    assert_eq!(long(&s, "limited_samples"), 0, "silence was limited");
    two_loud_voices(&d, [440.0, 440.0]);
    let s = play_for(&mut d, 48_000);
    // A fork copy carries the limiter's state on mid-note.
    signal(active_pid(&s), libc::SIGKILL);
    d.wait_until("restored to lockstep", Duration::from_secs(10), |s| {
        long(s, "restores") >= 1 && both_lockstep(s)
    });
    d.send("/mod/voice2/freq", vec![OscType::Float(554.37)]);
    let s = play_for(&mut d, 48_000);
    assert!(
        long(&s, "limited_samples") > 0,
        "two voices at full level were never limited"
    );
    assert_eq!(long(&s, "underrun_frames"), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");

    let live = recording(&dir);
    let ceiling = LimiterParams::default().ceiling();
    assert!(peak(&live) <= ceiling, "{} over {ceiling}", peak(&live));
    // Held at the ceiling, not muted: 1.4 of full scale comes out at the ceiling.
    assert!(peak(&live) >= 0.99 * ceiling, "{}", peak(&live));
    let reference = render_journal(&dir, &dir.join("journal.osc"), &live);
    assert_eq!(altered_samples(&live, &reference), 0);
}

#[test]
fn a_configured_ceiling_reaches_the_workers_the_journal_and_a_cold_start() {
    let (mut d, dir) = recorded_daemon("limiter-6db", &[("CHRONUS_LIMITER_CEILING_DB", "-6")]);
    assert_eq!(float(&d.status(), "limiter_ceiling_db"), -6.0);
    two_loud_voices(&d, [220.0, 330.0]);
    let s = play_for(&mut d, 48_000);
    let (a, b) = (active_pid(&s), standby_pid(&s));
    // Both at once: the cold start rebuilds the engine from the supervisor's mirror.
    signal(a, libc::SIGSTOP);
    signal(b, libc::SIGSTOP);
    signal(a, libc::SIGKILL);
    signal(b, libc::SIGKILL);
    d.wait_until(
        "cold start back to lockstep",
        Duration::from_secs(10),
        |s| long(s, "cold_starts") == 1 && both_lockstep(s),
    );
    play_for(&mut d, 48_000);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");

    let live = recording(&dir);
    let ceiling = LimiterParams {
        on: true,
        ceiling_db: -6.0,
    }
    .ceiling();
    assert!(peak(&live) <= ceiling, "{} over {ceiling}", peak(&live));
    let after_cold_start = &live[live.len() - 48_000..];
    assert!(peak(after_cold_start) >= 0.99 * ceiling);
    // The render honours the journal's limiter: it too stays under -6 dB.
    let reference = render_journal(&dir, &dir.join("journal.osc"), &live);
    assert!(peak(&reference) <= ceiling, "{}", peak(&reference));
    assert_eq!(
        bits(&live[..48_000]),
        bits(&reference[..48_000]),
        "the first second differs from the render"
    );
}

#[test]
fn with_the_limiter_off_full_scale_clips_and_every_clip_is_counted() {
    let (mut d, dir) = recorded_daemon("limiter-off", &[("CHRONUS_LIMITER", "off")]);
    assert_eq!(long(&d.status(), "limiter"), 0);
    two_loud_voices(&d, [440.0, 440.0]);
    let s = play_for(&mut d, 48_000);
    assert!(long(&s, "limited_samples") > 0, "no clipped sample counted");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");

    let live = recording(&dir);
    assert_eq!(peak(&live), 1.0);
    let reference = render_journal(&dir, &dir.join("journal.osc"), &live);
    assert_eq!(altered_samples(&live, &reference), 0);
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|s| s.to_bits()).collect()
}
