//! The sequencer, measured from the output: every step on its exact frame,
//! gates, polymeter, notes, transport, and cold starts that carry on in time.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use chronus_dsp::{Command, Control, Engine, Notes, Params, Pattern, TrackName, VoiceParam};
use common::*;

/// Where step `k` must start, computed independently of the engine: the
/// nominal time in frames, rounded up (exact ties stay put).
fn expected_step_frame(k: u64, sample_rate: u32, bpm: f64, swing: f64) -> u64 {
    let step = 15.0 * f64::from(sample_rate) / bpm;
    let delay = if k % 2 == 1 { swing / 2.0 } else { 0.0 };
    let nominal = (k as f64 + delay) * step;
    if (nominal - nominal.round()).abs() < 1e-6 {
        nominal.round() as u64
    } else {
        nominal.ceil() as u64
    }
}

/// An engine whose voice1 sounds exactly while the sequencer holds its gate.
fn probe(sample_rate: u32, voices: u8) -> Engine {
    let mut e = Engine::new(sample_rate, voices);
    for v in 0..voices {
        apply_all(&mut e, &gate_probe(v));
    }
    e
}

#[test]
fn steps_start_exactly_on_their_frame_at_several_tempos_and_swings() {
    let cases = [
        (48_000, 120.0, 0.0),
        (48_000, 120.0, 0.5),
        (44_100, 133.0, 0.2),
        (44_100, 97.5, 0.6),
        (48_000, 300.0, 0.33),
        (22_050, 30.0, 0.1),
        (96_000, 174.0, 0.55),
    ];
    for (rate, bpm, swing) in cases {
        let mut e = probe(rate, 1);
        apply_all(
            &mut e,
            &[
                Command::SeqAdd(track("t", 0, "x")),
                control(Control::SeqBpm, bpm as f32),
                control(Control::SeqSwing, swing as f32),
                control(Control::SeqGateLength, 0.25),
                Command::SeqRun { on: true },
            ],
        );
        let steps = 24;
        let frames = expected_step_frame(steps, rate, bpm, swing) as usize;
        // Odd chunks: timing must not depend on where render calls split.
        let x = render_mono_chunked(&mut e, frames, 997);
        let expected: Vec<usize> = (0..steps)
            .map(|k| expected_step_frame(k, rate, bpm, swing) as usize)
            .collect();
        assert_eq!(onsets(&x), expected, "{rate} Hz, {bpm} bpm, swing {swing}");
        // Each gate closes a quarter step (rounded to a frame) after it opened.
        let hold = (0.25 * 15.0 * f64::from(rate) / bpm).round() as usize;
        let closes: Vec<usize> = expected.iter().map(|f| f + hold).collect();
        assert_eq!(offsets(&x), closes, "{rate} Hz, {bpm} bpm, swing {swing}");
    }
}

#[test]
fn swing_delays_odd_steps_without_changing_the_tempo() {
    let run = |swing: f32| {
        let mut e = probe(48_000, 1);
        apply_all(
            &mut e,
            &[
                Command::SeqAdd(track("t", 0, "x")),
                control(Control::SeqSwing, swing),
                control(Control::SeqGateLength, 0.1),
                Command::SeqRun { on: true },
            ],
        );
        onsets(&render_mono(&mut e, 48_000 * 2))
    };
    let (straight, swung) = (run(0.0), run(0.6));
    assert_eq!(straight.len(), swung.len());
    for (k, (s, w)) in straight.iter().zip(&swung).enumerate() {
        // 120 bpm: 6000 frames a step; odd steps 0.3 of a step late.
        let delay = if k % 2 == 1 { 1800 } else { 0 };
        assert_eq!(*w, s + delay, "step {k}");
    }
}

#[test]
fn tracks_of_different_lengths_make_polymeter() {
    let mut e = probe(48_000, 2);
    apply_all(
        &mut e,
        &[
            Command::SeqAdd(track("three", 0, "x..")),
            Command::SeqAdd(track("four", 1, "x...")),
            control(Control::SeqGateLength, 0.5),
            Command::SeqRun { on: true },
        ],
    );
    let x = render_mono(&mut e, 6000 * 25);
    let expected: Vec<usize> = (0..25)
        .filter(|k| k % 3 == 0 || k % 4 == 0)
        .map(|k| k * 6000)
        .collect();
    assert_eq!(onsets(&x), expected);
}

#[test]
fn accents_play_louder_than_hits() {
    let mut e = probe(48_000, 1);
    apply_all(
        &mut e,
        &[
            set(0, VoiceParam::Osc, 0.0),
            set(0, VoiceParam::Freq, 1000.0),
            Command::SeqAdd(track("t", 0, "Xx")),
            control(Control::SeqGateLength, 1.0),
            Command::SeqRun { on: true },
        ],
    );
    let x = render_mono(&mut e, 12_000);
    let (accent, hit) = (rms(&x[1000..5000]), rms(&x[7000..11_000]));
    assert!((hit / accent - 0.6).abs() < 0.01, "{accent} {hit}");
}

#[test]
fn notes_cycle_through_the_hits_and_set_the_pitch() {
    let mut e = Engine::new(48_000, 1);
    let mut t = track("melody", 0, "x");
    t.notes = Notes::parse("220.0,A4,C#5").unwrap();
    apply_all(
        &mut e,
        &[
            set(0, VoiceParam::Sustain, 1.0),
            set(0, VoiceParam::FilterFreq, 8000.0),
            Command::SeqAdd(t),
            control(Control::SeqGateLength, 1.0),
            Command::SeqRun { on: true },
        ],
    );
    let x = render_mono(&mut e, 6000 * 6);
    let pitches: Vec<f64> = (0..6)
        .map(|k| measured_freq(&x[k * 6000 + 2000..k * 6000 + 6000], 48_000))
        .collect();
    let expected = [220.0, 440.0, 554.365, 220.0, 440.0, 554.365];
    for (k, (p, e)) in pitches.iter().zip(expected).enumerate() {
        assert!((p / e - 1.0).abs() < 1e-3, "step {k}: {p} Hz, expected {e}");
    }
    // New notes replace the old ones.
    e.apply(&Command::SeqNotes {
        track: TrackName::new("melody").unwrap(),
        notes: Notes::parse("110.0").unwrap(),
    });
    let y = render_mono(&mut e, 6000 * 2);
    assert!((measured_freq(&y[8000..12_000], 48_000) / 110.0 - 1.0).abs() < 1e-3);
}

#[test]
fn track_filter_freq_is_set_on_each_hit_raised_on_accents() {
    let mut e = probe(48_000, 1);
    let mut t = track("t", 0, "Xx");
    t.filter_freq = Some(500.0);
    apply_all(&mut e, &[Command::SeqAdd(t), Command::SeqRun { on: true }]);
    let x = render_mono(&mut e, 12_000);
    // White noise through 1250 Hz (accent) is brighter than through 650 Hz.
    let bright = |x: &[f32]| {
        let d: Vec<f32> = x.windows(2).map(|w| w[1] - w[0]).collect();
        rms(&d) / rms(x)
    };
    assert!(bright(&x[1500..3000]) > 1.3 * bright(&x[7500..9000]));
}

#[test]
fn updating_a_pattern_takes_effect_at_the_next_step() {
    let mut e = probe(48_000, 1);
    apply_all(
        &mut e,
        &[
            Command::SeqAdd(track("t", 0, "x...")),
            control(Control::SeqGateLength, 0.1),
            Command::SeqRun { on: true },
        ],
    );
    let mut x = render_mono(&mut e, 6000 * 4);
    e.apply(&Command::SeqPattern {
        track: TrackName::new("t").unwrap(),
        pattern: Pattern::parse("xx").unwrap(),
    });
    x.extend(render_mono(&mut e, 6000 * 4));
    assert_eq!(onsets(&x), [0, 24_000, 30_000, 36_000, 42_000]);
    e.apply(&Command::SeqRemove {
        track: TrackName::new("t").unwrap(),
    });
    assert!(render_mono(&mut e, 12_000).iter().all(|&s| s == 0.0));
}

#[test]
fn stop_closes_every_gate_and_start_rejoins_the_timeline() {
    let mut e = probe(48_000, 3);
    apply_all(
        &mut e,
        &[
            Command::SeqAdd(track("t", 0, "x")),
            control(Control::SeqGateLength, 1.0),
            gate(2, true),
            Command::SeqRun { on: true },
        ],
    );
    render_mono(&mut e, 9000);
    e.apply(&Command::SeqRun { on: false });
    assert!(e.params().voices.iter().all(|v| !v.gate));
    assert!(!e.params().seq.running);
    assert!(render_mono(&mut e, 3000).iter().all(|&s| s == 0.0));
    // Started again 1000 frames before step 3 of the timeline: plays it.
    render_mono(&mut e, 5000);
    e.apply(&Command::SeqRun { on: true });
    let x = render_mono(&mut e, 7000);
    assert_eq!(onsets(&x), [1000]);
}

#[test]
fn tempo_change_relocks_onto_the_new_tempos_timeline() {
    let mut e = probe(48_000, 1);
    apply_all(
        &mut e,
        &[
            Command::SeqAdd(track("t", 0, "x")),
            control(Control::SeqGateLength, 0.1),
            Command::SeqRun { on: true },
        ],
    );
    render_mono(&mut e, 10_000);
    // At frame 10 000, 150 bpm: steps every 4800 frames, so the next is
    // step 3 at 14 400.
    e.apply(&control(Control::SeqBpm, 150.0));
    let x = render_mono(&mut e, 10_000);
    assert_eq!(onsets(&x), [4400, 9200]);
    assert_eq!(e.params().seq.step_from(10_000, 48_000), 3);
}

/// A patch with three polymetric tracks on three voices, running from frame 0.
fn session(sample_rate: u32) -> Engine {
    let mut e = probe(sample_rate, 3);
    let mut bass = track("bass", 1, "X.xx.x.");
    bass.notes = Notes::parse("A1,C2,E2,G2").unwrap();
    bass.gate = Some(0.8);
    apply_all(
        &mut e,
        &[
            Command::SeqAdd(track("kick", 0, "x...")),
            Command::SeqAdd(bass),
            Command::SeqAdd(track("hat", 2, "..x")),
            control(Control::SeqBpm, 137.0),
            control(Control::SeqSwing, 0.3),
            control(Control::SeqGateLength, 0.3),
            Command::SeqRun { on: true },
        ],
    );
    e
}

#[test]
fn cold_start_carries_on_at_exactly_the_right_step() {
    let rate = 44_100;
    for at in [7_000usize, 11_587, 54_321] {
        let mut live = session(rate);
        let head = render_mono_chunked(&mut live, at, 512);
        assert!(!onsets(&head).is_empty());
        // A cold start from the mirrored parameters, at the same frame.
        let mut cold = Engine::from_params(rate, live.params(), live.frame());
        let mut again = Engine::from_params(rate, live.params(), live.frame());
        let live_tail = render_mono_chunked(&mut live, 100_000, 700);
        let cold_tail = render_mono_chunked(&mut cold, 100_000, 333);
        assert_eq!(
            bits(&cold_tail),
            bits(&render_mono(&mut again, 100_000)),
            "cold starts differ"
        );
        // Notes sounding at the cold start are lost; every step from the
        // first one after it starts on the same frame, playing the same.
        let first = live
            .params()
            .seq
            .step_frame(live.params().seq.step_from(at as u64, rate), rate)
            as usize
            - at;
        assert_eq!(
            onsets(&cold_tail)
                .iter()
                .filter(|&&f| f >= first)
                .collect::<Vec<_>>(),
            onsets(&live_tail)
                .iter()
                .filter(|&&f| f >= first)
                .collect::<Vec<_>>(),
            "cold start at {at}"
        );
    }
}

#[test]
fn mirrored_params_rebuild_the_same_sequence_as_the_engine() {
    // The supervisor's mirror sees the commands but never the frames.
    let commands = [
        Command::SeqAdd(track("a", 0, "x.x")),
        control(Control::SeqBpm, 90.0),
        Command::SeqRun { on: true },
        Command::SeqAdd(track("b", 1, "X...")),
        control(Control::SeqSwing, 0.4),
        Command::SeqNotes {
            track: TrackName::new("a").unwrap(),
            notes: Notes::parse("60 62").unwrap(),
        },
    ];
    let mut engine = probe(48_000, 2);
    let mut mirror = engine.params().clone();
    for (i, cmd) in commands.iter().enumerate() {
        engine.apply(cmd);
        mirror.apply(cmd);
        render_mono(&mut engine, 1234 * (i + 1));
    }
    assert_eq!(engine.params(), &mirror);
    let frame = engine.frame();
    let mut from_mirror = Engine::from_params(48_000, &mirror, frame);
    let mut from_engine = Engine::from_params(48_000, engine.params(), frame);
    assert_eq!(
        bits(&render_mono(&mut from_mirror, 50_000)),
        bits(&render_mono(&mut from_engine, 50_000))
    );
}

#[test]
fn bar_lines_and_steps_can_be_found_from_the_params() {
    let mut p = Params::new(1);
    p.apply(&control(Control::SeqBpm, 120.0));
    let seq = &p.seq;
    assert_eq!(seq.step_frame(16, 48_000), 96_000);
    assert_eq!(seq.next_bar_frame(0, 48_000), 0);
    assert_eq!(seq.next_bar_frame(1, 48_000), 96_000);
    assert_eq!(seq.next_bar_frame(96_000, 48_000), 96_000);
    assert_eq!(seq.step_from(6001, 48_000), 2);
}

#[test]
fn seq_summary_describes_the_sequencer() {
    let mut p = Params::new(2);
    assert_eq!(
        p.seq_summary(),
        "stopped, 120 bpm, swing 0, gate 0.5, 0 tracks"
    );
    let mut bass = track("bass", 1, "X.x.");
    bass.base_freq = Some(55.0);
    bass.notes = Notes::parse("A1 C2").unwrap();
    for cmd in [
        Command::SeqAdd(track("kick", 0, "x...")),
        Command::SeqAdd(bass),
        Command::SeqRun { on: true },
        control(Control::SeqSwing, 0.25),
    ] {
        p.apply(&cmd);
    }
    assert_eq!(
        p.seq_summary(),
        "running, 120 bpm, swing 0.25, gate 0.5, 2 tracks: kick voice1 x... (4 steps); \
         bass voice2 X.x. (4 steps, 55 Hz, 2 notes)"
    );
}

#[test]
fn tracks_for_missing_voices_and_beyond_the_limit_are_ignored() {
    let mut e = Engine::new(48_000, 2);
    e.apply(&Command::SeqAdd(track("far", 5, "x")));
    assert!(e.params().seq.tracks.is_empty());
    for i in 0..40 {
        e.apply(&Command::SeqAdd(track(&format!("t{i}"), 0, "x")));
    }
    assert_eq!(e.params().seq.tracks.len(), chronus_dsp::seq::MAX_TRACKS);
    // Replacing an existing track still works when full.
    e.apply(&Command::SeqAdd(track("t3", 1, "X")));
    let t3 = e.params().seq.tracks[3];
    assert_eq!((t3.voice, t3.pattern.to_string()), (1, "X".to_owned()));
    e.apply(&Command::SeqClear);
    assert!(e.params().seq.tracks.is_empty());
}

#[test]
fn params_commands_rebuild_the_params_from_any_state() {
    let mut saved = session(48_000).params().clone();
    saved.apply(&set(2, VoiceParam::FilterQ, 7.0));
    saved.apply(&control(Control::ReverbRoom, 0.9));
    saved.apply(&gate(0, true));
    saved.apply(&Command::Fade {
        gain: 0.5,
        seconds: 3.0,
    });
    let mut other = Params::new(3);
    for cmd in [
        Command::SeqAdd(track("other", 1, "x")),
        control(Control::SeqBpm, 200.0),
        gate(1, true),
        set(1, VoiceParam::Osc, 5.0),
    ] {
        other.apply(&cmd);
    }
    for cmd in saved.commands() {
        other.apply(&cmd);
    }
    assert_eq!(other, saved);
    // Stopped and gated survives too: the gates follow the stop.
    saved.apply(&Command::SeqRun { on: false });
    saved.apply(&gate(2, true));
    let mut fresh = Params::new(3);
    for cmd in saved.commands() {
        fresh.apply(&cmd);
    }
    assert_eq!(fresh, saved);
}

#[test]
fn running_sequencer_survives_extreme_rates_and_the_end_of_the_frame_counter() {
    let mut params = Params::new(2);
    for cmd in [
        Command::SeqAdd(track("t", 0, "X.x")),
        Command::SeqAdd(track("u", 1, "xx")),
        control(Control::SeqBpm, 300.0),
        Command::SeqRun { on: true },
    ] {
        params.apply(&cmd);
    }
    for rate in [1, 7, 48_000, u32::MAX] {
        for frame in [0, 1 << 40, u64::MAX - 10_000, u64::MAX - 3] {
            let mut e = Engine::from_params(rate, &params, frame);
            let x = render_mono_chunked(&mut e, 20_000, 777);
            assert_sane(&x, &format!("rate {rate}, frame {frame}"));
            assert_eq!(e.frame(), frame.wrapping_add(20_000));
        }
    }
}
