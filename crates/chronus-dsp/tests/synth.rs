//! The synthesis beyond a bare voice: filter, waveforms, the acid path, the
//! master effects, the LFOs and the limiter, measured from the output; and
//! that no value, however extreme, breaks the engine.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::f32::consts::FRAC_1_SQRT_2;

use chronus_dsp::{Command, Control, Engine, Params, VoiceParam};
use common::*;

const SR: u32 = 48_000;

fn seconds(s: f64) -> usize {
    (s * f64::from(SR)) as usize
}

/// A held sine on voice1 at `freq` through its filter at `cutoff`, Q 1/√2:
/// the steady-state gain of the filter.
fn filter_gain(freq: f32, cutoff: f32) -> f64 {
    let mut e = Engine::new(SR, 1);
    apply_all(
        &mut e,
        &[
            set(0, VoiceParam::Freq, freq),
            set(0, VoiceParam::Amp, 0.5),
            set(0, VoiceParam::Sustain, 1.0),
            set(0, VoiceParam::FilterFreq, cutoff),
            set(0, VoiceParam::FilterQ, FRAC_1_SQRT_2),
            gate(0, true),
        ],
    );
    render_mono(&mut e, seconds(0.2));
    let x = render_mono(&mut e, seconds(0.5));
    rms(&x) * std::f64::consts::SQRT_2 / 0.5
}

#[test]
fn filter_minus_3_db_point_is_within_2_percent_of_the_cutoff() {
    for cutoff in [100.0f32, 500.0, 2000.0] {
        // Bisect for the frequency where the gain crosses 1/√2.
        let (mut lo, mut hi) = (cutoff / 2.0, cutoff * 2.0);
        for _ in 0..14 {
            let mid = (lo * hi).sqrt();
            if filter_gain(mid, cutoff) > std::f64::consts::FRAC_1_SQRT_2 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let minus_3_db = (lo * hi).sqrt();
        let off = (minus_3_db / cutoff - 1.0).abs();
        assert!(off < 0.02, "cutoff {cutoff}: −3 dB at {minus_3_db} Hz");
    }
    // Far below the cutoff the filter passes; far above it attenuates 12 dB/octave.
    assert!((filter_gain(100.0, 2000.0) - 1.0).abs() < 0.01);
    let octaves_up = filter_gain(4000.0, 1000.0) / filter_gain(2000.0, 1000.0);
    assert!((0.2..0.3).contains(&octaves_up), "{octaves_up}");
}

/// One second of voice1 held with `setup`, after it settled.
fn held(setup: &[Command]) -> Vec<f32> {
    let mut e = Engine::new(SR, 1);
    apply_all(&mut e, setup);
    apply_all(
        &mut e,
        &[
            set(0, VoiceParam::Sustain, 1.0),
            set(0, VoiceParam::FilterFreq, 8000.0),
            set(0, VoiceParam::FilterQ, FRAC_1_SQRT_2),
            gate(0, true),
        ],
    );
    render_mono(&mut e, seconds(0.1));
    render_mono(&mut e, SR as usize)
}

#[test]
fn saw_and_square_play_their_pitch_and_are_band_limited() {
    let freq = 1234.0;
    for osc in [1.0, 2.0] {
        let x = held(&[set(0, VoiceParam::Osc, osc), set(0, VoiceParam::Freq, freq)]);
        let fundamental = amplitude_at(&x, freq.into(), SR);
        assert!(fundamental > 0.1, "osc {osc}: fundamental {fundamental}");
        // Harmonic 37 (45 658 Hz) folds to 2342 Hz: a naive waveform leaves
        // it 1/37 of the fundamental (−31 dB); PolyBLEP removes most of it.
        let alias = amplitude_at(&x, 48_000.0 - 37.0 * f64::from(freq), SR);
        assert!(
            alias < fundamental * 0.003,
            "osc {osc}: alias {alias} vs fundamental {fundamental}"
        );
        assert!(
            (measured_freq(&x, SR) / f64::from(freq) - 1.0).abs() < 1e-3,
            "osc {osc}"
        );
    }
    // The square has no even harmonics, the saw does.
    let square = held(&[
        set(0, VoiceParam::Osc, 2.0),
        set(0, VoiceParam::Freq, 200.0),
    ]);
    let saw = held(&[
        set(0, VoiceParam::Osc, 1.0),
        set(0, VoiceParam::Freq, 200.0),
    ]);
    assert!(amplitude_at(&square, 400.0, SR) < 1e-3);
    assert!(amplitude_at(&saw, 400.0, SR) > 0.05);
}

/// Correlation of successive samples: 0 for white noise, near 1 for noise
/// whose energy is all at low frequencies.
fn lag1_correlation(x: &[f32]) -> f64 {
    let mean = x.iter().map(|&s| f64::from(s)).sum::<f64>() / x.len() as f64;
    let d: Vec<f64> = x.iter().map(|&s| f64::from(s) - mean).collect();
    let num: f64 = d.windows(2).map(|w| w[0] * w[1]).sum();
    num / d.iter().map(|v| v * v).sum::<f64>()
}

#[test]
fn noise_colours_differ_and_are_deterministic() {
    let noise = |osc: f32| held(&[set(0, VoiceParam::Osc, osc)]);
    let (white, pink, brown) = (noise(3.0), noise(4.0), noise(5.0));
    for x in [&white, &pink, &brown] {
        assert!(rms(x) > 0.01);
    }
    let (w, p, b) = (
        lag1_correlation(&white),
        lag1_correlation(&pink),
        lag1_correlation(&brown),
    );
    // Through the 8 kHz filter even white noise is correlated.
    assert!(w < 0.8 && p > w + 0.1 && b > p && b > 0.99, "{w} {p} {b}");
    assert_eq!(bits(&white), bits(&noise(3.0)), "noise must repeat exactly");
    // Each voice has its own generator.
    let mut e = Engine::new(SR, 2);
    for v in 0..2 {
        apply_all(&mut e, &[set(v, VoiceParam::Osc, 3.0), gate(v, true)]);
    }
    let mut solo = Engine::new(SR, 2);
    apply_all(&mut solo, &[set(0, VoiceParam::Osc, 3.0), gate(0, true)]);
    let both = render_mono(&mut e, 1000);
    let one = render_mono(&mut solo, 1000);
    let twice: Vec<f32> = one.iter().map(|s| s * 2.0).collect();
    assert_ne!(bits(&both), bits(&twice), "voices share a generator");
}

#[test]
fn waveform_switch_crossfades_without_a_click() {
    let mut e = Engine::new(SR, 1);
    apply_all(
        &mut e,
        &[
            set(0, VoiceParam::Freq, 100.0),
            set(0, VoiceParam::Sustain, 1.0),
            set(0, VoiceParam::FilterFreq, 8000.0),
            gate(0, true),
        ],
    );
    let steady_sine = render_mono(&mut e, seconds(0.2));
    let sine_step = max_step(&steady_sine);
    // Switch at a peak of the sine, where an instant change to the saw (at
    // the same phase) would jump the most.
    render_mono(&mut e, seconds(0.0025));
    e.apply(&set(0, VoiceParam::Osc, 1.0));
    let switch = render_mono(&mut e, seconds(0.05));
    let saw_step = max_step(&switch[seconds(0.02)..]);
    let switch_step = max_step(&switch[..seconds(0.015)]);
    assert!(
        switch_step <= sine_step.max(saw_step) * 1.5,
        "step {switch_step} during the crossfade; sine {sine_step}, saw {saw_step}"
    );
    assert_eq!(e.params().voices[0].osc, 1);
}

fn max_step(x: &[f32]) -> f32 {
    x.windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max)
}

/// Brightness: the level of the first difference relative to the level.
fn brightness(x: &[f32]) -> f64 {
    let diff: Vec<f32> = x.windows(2).map(|w| w[1] - w[0]).collect();
    rms(&diff) / rms(x)
}

/// voice2 with a 440 Hz saw through the acid path, gated on at frame 0.
fn acid_note(setup: &[Command]) -> Vec<f32> {
    let mut e = Engine::new(SR, 2);
    apply_all(&mut e, &acid_voice());
    apply_all(&mut e, setup);
    render_mono(&mut e, seconds(0.05));
    e.apply(&gate(1, true));
    render_mono(&mut e, seconds(0.5))
}

fn acid_voice() -> Vec<Command> {
    vec![
        set(1, VoiceParam::Osc, 1.0),
        set(1, VoiceParam::Freq, 440.0),
        set(1, VoiceParam::Sustain, 1.0),
        set(1, VoiceParam::FilterFreq, 8000.0),
        control(Control::AcidCutoff, 200.0),
        control(Control::AcidEnvAmount, 4000.0),
        control(Control::AcidDecay, 0.2),
        control(Control::AcidRes, 0.0),
    ]
}

/// The 4th harmonic relative to the fundamental, from `from` for 20 ms.
fn harmonic_4(x: &[f32], from: f64) -> f64 {
    let w = &x[seconds(from)..seconds(from + 0.02)];
    amplitude_at(w, 1760.0, SR) / amplitude_at(w, 440.0, SR)
}

#[test]
fn acid_envelope_sweeps_the_ladder_cutoff_down() {
    let x = acid_note(&[]);
    // 15 ms in the cutoff is near 3 kHz; 300 ms in it is back at 200 Hz.
    let (early, late) = (harmonic_4(&x, 0.015), harmonic_4(&x, 0.3));
    assert!(early > 0.05 && late < 0.002, "early {early}, late {late}");
    // Without envelope depth it stays closed; mixed out, voice2 is a plain saw.
    let closed = acid_note(&[control(Control::AcidEnvAmount, 0.0)]);
    assert!(harmonic_4(&closed, 0.015) < 0.002);
    let dry = acid_note(&[control(Control::AcidMix, 0.0)]);
    assert!((harmonic_4(&dry, 0.3) - 0.25).abs() < 0.02);
}

#[test]
fn acid_resonance_peaks_at_the_cutoff() {
    let peak = |res: f32| {
        let x = acid_note(&[
            control(Control::AcidCutoff, 1760.0),
            control(Control::AcidEnvAmount, 0.0),
            control(Control::AcidRes, res),
        ]);
        harmonic_4(&x, 0.3)
    };
    let (flat, resonant) = (peak(0.0), peak(0.9));
    assert!(resonant > 3.0 * flat, "res 0: {flat}, res 0.9: {resonant}");
}

#[test]
fn acid_gate_triggers_the_acid_envelope() {
    let by_voice = acid_note(&[]);
    let mut e = Engine::new(SR, 2);
    apply_all(&mut e, &acid_voice());
    render_mono(&mut e, seconds(0.05));
    let cmd = chronus_dsp::dialect::parse("/gate/acid1", &[chronus_dsp::dialect::Arg::Int(1)], 2)
        .unwrap();
    e.apply(&cmd);
    assert_eq!(bits(&render_mono(&mut e, seconds(0.5))), bits(&by_voice));
}

/// voice1 plays a 10 ms burst of white noise at frame 0 into `setup`'s
/// effects (applied 50 ms earlier, so that every glide has settled).
fn burst(setup: &[Command], frames: usize) -> Vec<f32> {
    let mut e = Engine::new(SR, 1);
    apply_all(&mut e, &gate_probe(0));
    apply_all(&mut e, setup);
    render_mono(&mut e, seconds(0.05));
    e.apply(&gate(0, true));
    let mut x = render_mono(&mut e, seconds(0.01));
    e.apply(&gate(0, false));
    x.extend(render_mono(&mut e, frames - x.len()));
    x
}

#[test]
fn delay_repeats_after_its_time_darker_and_quieter() {
    let x = burst(
        &[
            set(0, VoiceParam::SendDelay, 1.0),
            control(Control::DelayTime, 0.1),
            control(Control::DelayFeedback, 0.5),
            control(Control::DelayMix, 1.0),
            control(Control::ReverbMix, 0.0),
        ],
        seconds(0.35),
    );
    let window = |from: f64| rms(&x[seconds(from)..seconds(from + 0.01)]);
    let (dry, first, second) = (window(0.0), window(0.1), window(0.2));
    assert_eq!(
        rms(&x[seconds(0.011)..seconds(0.099)]),
        0.0,
        "silence between"
    );
    assert!(
        (first / dry - 1.0).abs() < 0.05,
        "first repeat {first} vs {dry}"
    );
    assert!(
        second < first * 0.5 && second > first * 0.2,
        "{second} vs {first}"
    );
    // The loop filters take the highs away from each repeat.
    let repeat = |from: f64| &x[seconds(from)..seconds(from + 0.01)];
    assert!(brightness(repeat(0.2)) < brightness(repeat(0.1)));
}

#[test]
fn reverb_tail_follows_the_send_and_room_size() {
    let tail = |room: f32, mix: f32| {
        let x = burst(
            &[
                set(0, VoiceParam::SendReverb, 1.0),
                control(Control::ReverbRoom, room),
                control(Control::ReverbMix, mix),
                control(Control::DelayMix, 0.0),
            ],
            seconds(1.0),
        );
        rms(&x[seconds(0.5)..])
    };
    let (small, large) = (tail(0.1, 1.0), tail(1.0, 1.0));
    assert!(
        small > 0.0 && large > 3.0 * small,
        "small {small}, large {large}"
    );
    assert_eq!(tail(1.0, 0.0), 0.0);
}

#[test]
fn distortion_mix_zero_is_bit_transparent_and_drive_adds_harmonics() {
    let tone = |setup: &[Command]| {
        let mut with = setup.to_vec();
        with.push(set(0, VoiceParam::Freq, 200.0));
        held(&with)
    };
    let clean = tone(&[]);
    assert_eq!(
        bits(&clean),
        bits(&tone(&[control(Control::DistDrive, 1.0)])),
        "drive without mix changed the sound"
    );
    let driven = tone(&[
        control(Control::DistDrive, 1.0),
        control(Control::DistMix, 1.0),
    ]);
    let third = |x: &[f32]| amplitude_at(x, 600.0, SR) / amplitude_at(x, 200.0, SR);
    assert!(third(&driven) > 0.1 && third(&clean) < 0.01);
}

#[test]
fn lfo2_swings_voice3s_amplitude_at_its_rate() {
    let mut e = Engine::new(SR, 3);
    apply_all(
        &mut e,
        &[
            set(2, VoiceParam::Freq, 1000.0),
            set(2, VoiceParam::Sustain, 1.0),
            control(Control::Lfo2Rate, 2.0),
            control(Control::Lfo2Depth, 1.0),
            gate(2, true),
        ],
    );
    let x = render_mono(&mut e, SR as usize);
    // 2 Hz from full to silence: quiet windows every 0.5 s, loud in between.
    let window = |at: f64| rms(&x[seconds(at)..seconds(at + 0.01)]);
    let (loud, quiet) = (window(0.12), window(0.37));
    assert!(quiet < loud * 0.05, "loud {loud}, quiet {quiet}");
    assert!(window(0.62) > loud * 0.9);
}

#[test]
fn lfo1_sweeps_voice2s_cutoff() {
    let brightness_over_time = |depth: f32| {
        let mut e = Engine::new(SR, 2);
        apply_all(
            &mut e,
            &[
                set(1, VoiceParam::Osc, 1.0),
                set(1, VoiceParam::Freq, 110.0),
                set(1, VoiceParam::FilterFreq, 800.0),
                set(1, VoiceParam::Sustain, 1.0),
                control(Control::AcidMix, 0.0),
                control(Control::Lfo1Rate, 1.0),
                control(Control::Lfo1Depth, depth),
                gate(1, true),
            ],
        );
        let x = render_mono(&mut e, SR as usize);
        [0.25, 0.75].map(|at| brightness(&x[seconds(at)..seconds(at + 0.05)]))
    };
    let [up, down] = brightness_over_time(1.0);
    assert!(up > 2.0 * down, "at the top {up}, at the bottom {down}");
    let [a, b] = brightness_over_time(0.0);
    assert!((a / b - 1.0).abs() < 0.05);
}

#[test]
fn limiter_holds_a_loud_mix_to_full_scale_and_lets_go() {
    let mut e = Engine::new(SR, 16);
    for v in 0..16 {
        apply_all(
            &mut e,
            &[
                set(v, VoiceParam::Amp, 1.0),
                set(v, VoiceParam::Sustain, 1.0),
                set(v, VoiceParam::Freq, 100.0 + f32::from(v)),
                set(v, VoiceParam::Release, 0.0),
                gate(v, true),
            ],
        );
    }
    let loud = render_mono(&mut e, seconds(0.5));
    assert_sane(&loud, "16 voices at full level");
    for v in 1..16 {
        e.apply(&gate(v, false));
    }
    e.apply(&set(0, VoiceParam::Amp, 0.1));
    render_mono(&mut e, seconds(1.0));
    // One quiet voice again plays at its own level, untouched.
    let quiet = render_mono(&mut e, seconds(0.2));
    let peak = quiet.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.08 && peak < 0.15, "{peak}");
}

#[test]
fn effect_tails_decay_to_exact_silence() {
    // Denormal floats in a decaying feedback loop are slow; the loops flush
    // them, so a tail ends in exact zeros rather than lingering.
    let rate = 8_000;
    let mut e = Engine::new(rate, 2);
    apply_all(&mut e, &gate_probe(0));
    apply_all(
        &mut e,
        &[
            set(0, VoiceParam::SendReverb, 1.0),
            set(0, VoiceParam::SendDelay, 1.0),
            set(1, VoiceParam::Osc, 1.0),
            set(1, VoiceParam::Release, 0.0),
            control(Control::ReverbRoom, 0.7),
            control(Control::DelayFeedback, 0.5),
            control(Control::DistMix, 1.0),
            control(Control::AcidRes, 0.98),
            gate(0, true),
            gate(1, true),
        ],
    );
    render_mono(&mut e, 800);
    apply_all(&mut e, &[gate(0, false), gate(1, false)]);
    let x = render_mono(&mut e, rate as usize * 20);
    let last_sound = x.iter().rposition(|&s| s != 0.0).unwrap_or(0);
    assert!(
        last_sound < x.len() - rate as usize,
        "still sounding {} s after the note",
        last_sound / rate as usize
    );
}

const EXTREMES: [f32; 14] = [
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    1e-45,
    -1e-45,
    0.0,
    -0.0,
    1e30,
    -1e30,
    1e-30,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
];

/// Everything on: every waveform, sends, acid, effects, LFOs and a sequence.
fn full_patch(voices: u8) -> Vec<Command> {
    let mut patch = Vec::new();
    for v in 0..voices {
        patch.extend([
            set(v, VoiceParam::Osc, f32::from(v % 6)),
            set(v, VoiceParam::SendReverb, 0.5),
            set(v, VoiceParam::SendDelay, 0.5),
            gate(v, true),
        ]);
        patch.push(Command::SeqAdd(track(&format!("t{v}"), v, "X.x.x")));
    }
    patch.extend([
        control(Control::DistMix, 0.5),
        control(Control::Lfo1Depth, 1.0),
        control(Control::Lfo2Depth, 1.0),
        Command::SeqRun { on: true },
    ]);
    patch
}

/// Voice1 audible again after everything was set back to sane values (at a
/// sample rate that can carry its tone).
fn assert_recovers(e: &mut Engine, context: &str) {
    let sane = Params::new(e.params().voices.len() as u8);
    for (i, v) in sane.voices.iter().enumerate() {
        let i = i as u8;
        for param in VoiceParam::ALL {
            e.apply(&set(i, param, v.get(param)));
        }
    }
    for c in Control::ALL {
        e.apply(&control(c, sane.control(c)));
    }
    e.apply(&Command::Fade {
        gain: 1.0,
        seconds: 0.0,
    });
    e.apply(&Command::SeqRun { on: false });
    e.apply(&gate(0, true));
    let rate = e.sample_rate() as usize;
    render_mono(e, rate);
    let x = render_mono(e, rate / 10 + 1);
    assert_sane(&x, context);
    assert!(rms(&x) > 0.01, "{context}: silent after recovery");
}

#[test]
fn extreme_values_for_every_parameter_never_break_the_engine() {
    for sample_rate in [1, 7, 8_000, 48_000, 192_000] {
        let mut e = Engine::new(sample_rate, 4);
        apply_all(&mut e, &full_patch(4));
        for (n, &value) in EXTREMES.iter().enumerate() {
            for param in VoiceParam::ALL {
                for voice in 0..4 {
                    e.apply(&set(voice, param, value));
                }
            }
            for c in Control::ALL {
                e.apply(&control(c, value));
            }
            let mut t = track("x", n as u8 % 4, "XxX.x");
            t.base_freq = Some(value);
            t.filter_freq = Some(value);
            t.gate = Some(value);
            t.notes = chronus_dsp::Notes::new(&[value, 1.0]).unwrap();
            e.apply(&Command::SeqAdd(t));
            e.apply(&Command::Fade {
                gain: value,
                seconds: EXTREMES[(n + 5) % EXTREMES.len()],
            });
            let context = format!("rate {sample_rate}, value {value}");
            let x = render_mono_chunked(&mut e, 2000, 333);
            assert_sane(&x, &context);
        }
        if sample_rate >= 8_000 {
            assert_recovers(&mut e, &format!("rate {sample_rate}"));
        }
    }
}

#[test]
fn every_parameter_at_each_end_of_its_range_stays_sane_and_recovers() {
    // Ranges' ends combined, e.g. the shortest delay at full feedback with the
    // narrowest loop filters, or full resonance at the lowest cutoff.
    for end in [0, 1] {
        let mut e = Engine::new(SR, 4);
        apply_all(&mut e, &full_patch(4));
        for c in Control::ALL {
            let b = c.bounds();
            e.apply(&control(c, if end == 0 { b.min } else { b.max }));
        }
        for v in 0..4 {
            for param in VoiceParam::ALL {
                let b = param.bounds();
                e.apply(&set(v, param, if end == 0 { b.min } else { b.max }));
            }
            e.apply(&gate(v, true));
        }
        let x = render_mono_chunked(&mut e, seconds(3.0), 4096);
        assert_sane(&x, &format!("end {end}"));
        assert_recovers(&mut e, &format!("end {end}"));
    }
}
