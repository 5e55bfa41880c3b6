//! The failover drill every sound-server test runs, and the check that a steady
//! tone came through it without a glitch.

use super::*;

/// 1 kHz at 48 kHz: a period of exactly 48 samples.
pub const TONE_PERIOD: usize = 48;
pub const ACTIVE_KILLS: i64 = 20;
pub const HANGS: i64 = 3;
pub const STANDBY_KILLS: i64 = 3;

/// Plays the 1 kHz tone on voice 1.
pub fn play_tone(d: &Daemon) {
    d.send("/mod/voice1/freq", vec![OscType::Float(1000.0)]);
    d.send("/gate/voice1", vec![OscType::Int(1)]);
}

/// Kills the active worker, hangs it, and kills the standby, interleaved, waiting
/// for both slots to be back in lockstep after each; then checks the counters.
pub fn kill_and_hang_drill(d: &mut Daemon) {
    let mut s = d.status();
    let failovers = long(&s, "failovers");
    let hangs = long(&s, "hangs");
    let mut restores = long(&s, "restores");
    let mut drill = Vec::new();
    drill.extend(std::iter::repeat_n("kill-active", ACTIVE_KILLS as usize));
    drill.extend(std::iter::repeat_n("hang-active", HANGS as usize));
    drill.extend(std::iter::repeat_n("kill-standby", STANDBY_KILLS as usize));
    // Interleave so hangs and standby kills happen between active kills.
    drill.sort_by_key(|step| match *step {
        "kill-active" => 0,
        _ => 1,
    });
    let order: Vec<&str> = (0..drill.len())
        .map(|i| drill[(i * 7) % drill.len()])
        .collect();
    for step in order {
        match step {
            "kill-active" => signal(active_pid(&s), libc::SIGKILL),
            "hang-active" => signal(active_pid(&s), libc::SIGSTOP),
            _ => signal(standby_pid(&s), libc::SIGKILL),
        }
        restores += 1;
        s = d.wait_until(
            &format!("{step}: restore #{restores}"),
            Duration::from_secs(10),
            |s| long(s, "restores") >= restores && both_lockstep(s),
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    let s = d.status();
    assert_eq!(long(&s, "failovers") - failovers, ACTIVE_KILLS + HANGS);
    assert_eq!(long(&s, "hangs") - hangs, HANGS);
}

/// Runs [`kill_and_hang_drill`] while `recorder` records what the server receives,
/// waits `tail` for the recorder to hand on what it holds, stops it with `stop_signal`
/// (before the daemon fades out) and checks the daemon missed nothing.
pub fn drill_while_recording(
    d: &mut Daemon,
    recorder: &mut std::process::Child,
    stop_signal: i32,
    tail: Duration,
) {
    kill_and_hang_drill(d);
    std::thread::sleep(tail);
    signal(recorder.id() as i32, stop_signal);
    let _ = recorder.wait();
    let s = d.status();
    assert_eq!(long(&s, "underrun_frames"), 0, "log:\n{}", d.log());
    assert_eq!(long(&s, "divergences"), 0);
}

/// Asserts that from `settle` frames after the tone appears to `tail` frames before
/// the end, every sample equals the one a tone period earlier within `tolerance`:
/// no gap, click or phase jump anywhere. Returns the number of frames checked.
pub fn assert_continuous_tone(left: &[f32], right: &[f32], tolerance: f32) -> usize {
    let first = left
        .iter()
        .position(|x| x.abs() > 0.05)
        .expect("the recording holds the tone");
    // Steady region: from well after the tone settled to just before recording stopped.
    let from = first + 24_000;
    let to = left.len().saturating_sub(4_800);
    assert!(
        to > from + 48_000,
        "recorded only {} steady frames",
        to.saturating_sub(from)
    );
    let peak = left[from..to].iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(peak > 0.1, "steady region is not the tone (peak {peak})");
    let mut worst = (0.0f32, 0usize);
    for n in from..to {
        for ch in [left, right] {
            let diff = (ch[n] - ch[n - TONE_PERIOD]).abs();
            if diff > worst.0 {
                worst = (diff, n);
            }
        }
    }
    assert!(
        worst.0 <= tolerance,
        "discontinuity of {} at frame {} ({:.3} s into the recording)",
        worst.0,
        worst.1,
        worst.1 as f64 / 48_000.0
    );
    to - from
}
