//! The master safety limiter: alone (impulses, a sine far over the ceiling,
//! silence, repeatability) and as the engine's last stage (two voices at full
//! level, however rendering is split, through a cold start).

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use chronus_dsp::{
    CHANNELS, Engine, LIMITER_CEILING_DB, Limiter, LimiterParams, Params, VoiceParam,
};
use common::{apply_all, bits, gate, render_mono, render_mono_chunked, set};

const SR: u32 = 48_000;

fn limiter(ceiling_db: f32) -> Limiter {
    Limiter::new(
        LimiterParams {
            on: true,
            ceiling_db,
        },
        SR,
    )
}

fn run(limiter: &mut Limiter, input: &[f64]) -> Vec<f32> {
    input
        .iter()
        .map(|&x| limiter.process(x, CHANNELS))
        .collect()
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, s| m.max(s.abs()))
}

/// A sine of `amplitude` at 440 Hz for `frames` frames.
fn sine(amplitude: f64, frames: usize) -> Vec<f64> {
    (0..frames)
        .map(|i| amplitude * (std::f64::consts::TAU * 440.0 * i as f64 / f64::from(SR)).sin())
        .collect()
}

#[test]
fn impulses_come_out_at_the_ceiling_and_each_is_counted() {
    let ceiling = LimiterParams {
        on: true,
        ceiling_db: -6.0,
    }
    .ceiling();
    let mut l = limiter(-6.0);
    let mut input = vec![0.0; 48_000];
    input[100] = 4.0;
    input[20_000] = -10.0;
    let out = run(&mut l, &input);
    assert_eq!(out[100], ceiling);
    assert_eq!(out[20_000], -ceiling);
    // Only the two impulses were lowered: the silence around them stays exact zeros.
    assert_eq!(out.iter().filter(|s| **s != 0.0).count(), 2);
    assert_eq!(l.limited(), 2 * CHANNELS as u64);
}

#[test]
fn a_sine_12_db_over_full_scale_never_exceeds_the_ceiling() {
    for ceiling_db in [0.0, -1.0, -6.0, LIMITER_CEILING_DB.min] {
        let ceiling = LimiterParams {
            on: true,
            ceiling_db,
        }
        .ceiling();
        let mut l = limiter(ceiling_db);
        let out = run(&mut l, &sine(4.0, SR as usize));
        assert!(peak(&out) <= ceiling, "{} over {ceiling}", peak(&out));
        // Still loud: held at the ceiling, not muted.
        assert!(peak(&out[24_000..]) >= ceiling * 0.99, "{}", peak(&out));
        // Turned down, not clipped: at most a crest's sample reaches the ceiling
        // (a clipper flattens over three quarters of every cycle against it).
        let at_ceiling = out[24_000..].iter().filter(|s| s.abs() == ceiling).count();
        assert!(
            at_ceiling <= 2 * 440 / 2,
            "{at_ceiling} samples at the ceiling"
        );
        assert!(l.limited() > 0);
    }
}

#[test]
fn the_gain_comes_back_smoothly_once_the_peaks_are_gone() {
    let mut l = limiter(-1.0);
    run(&mut l, &sine(4.0, 4800));
    let quiet = sine(0.5, 2 * SR as usize);
    let out = run(&mut l, &quiet);
    // Just after the loud part the gain is still down, then rises without a jump...
    assert!(peak(&out[..480]) < 0.3, "{}", peak(&out[..480]));
    let window_peaks: Vec<f32> = out.chunks(480).map(peak).collect();
    assert!(
        window_peaks
            .windows(2)
            .all(|w| w[1] >= w[0] * 0.999 && w[1] <= w[0] * 1.5)
    );
    // ...until the quiet part passes untouched.
    let narrowed: Vec<f32> = quiet[SR as usize..].iter().map(|&x| x as f32).collect();
    assert_eq!(bits(&out[SR as usize..]), bits(&narrowed));
}

#[test]
fn silence_and_a_mix_under_the_ceiling_pass_bit_for_bit() {
    let mut l = limiter(-1.0);
    let silence = run(&mut l, &[0.0; 4096]);
    assert_eq!(bits(&silence), bits(&[0.0; 4096]));
    let quiet = sine(0.5, 4096);
    let out = run(&mut l, &quiet);
    let narrowed: Vec<f32> = quiet.iter().map(|&x| x as f32).collect();
    assert_eq!(bits(&out), bits(&narrowed));
    assert_eq!(l.limited(), 0);
}

#[test]
fn the_limiter_is_repeatable_bit_for_bit_and_a_copy_carries_on_exactly() {
    let input = sine(4.0, 30_000);
    let mut a = limiter(-1.0);
    let mut b = limiter(-1.0);
    let first = run(&mut a, &input[..10_000]);
    assert_eq!(bits(&first), bits(&run(&mut b, &input[..10_000])));
    // A fork copy mid-way carries the held peak and the count on.
    let mut copy = a.clone();
    let rest = run(&mut a, &input[10_000..]);
    assert_eq!(bits(&rest), bits(&run(&mut copy, &input[10_000..])));
    assert_eq!(a.limited(), copy.limited());
}

#[test]
fn with_the_limiter_off_only_full_scale_clips_and_each_clip_is_counted() {
    let mut l = Limiter::new(
        LimiterParams {
            on: false,
            ceiling_db: -6.0,
        },
        SR,
    );
    let out = run(&mut l, &[0.9, 1.5, -2.0, f64::NAN, f64::INFINITY, 0.25]);
    assert_eq!(out, [0.9, 1.0, -1.0, 0.0, 0.0, 0.25]);
    assert_eq!(l.limited(), 2 * CHANNELS as u64);
}

#[test]
fn a_ceiling_out_of_range_is_clamped_and_one_not_finite_is_the_default() {
    let at = |ceiling_db| {
        LimiterParams {
            on: true,
            ceiling_db,
        }
        .ceiling()
    };
    assert_eq!(at(-100.0), at(LIMITER_CEILING_DB.min));
    assert_eq!(at(6.0), 1.0);
    assert_eq!(at(f32::NAN), at(LimiterParams::default().ceiling_db));
    let out = run(&mut limiter(-100.0), &sine(4.0, 4800));
    assert!(peak(&out) <= at(LIMITER_CEILING_DB.min));
}

/// Two voices at full level and full sustain, at `freqs`.
fn two_loud_voices(e: &mut Engine, freqs: [f32; 2]) {
    for (voice, freq) in (0..).zip(freqs) {
        apply_all(
            e,
            &[
                set(voice, VoiceParam::Amp, 1.0),
                set(voice, VoiceParam::Sustain, 1.0),
                set(voice, VoiceParam::Freq, freq),
                gate(voice, true),
            ],
        );
    }
}

#[test]
fn two_voices_at_full_level_stay_under_the_default_ceiling_however_rendering_is_split() {
    let ceiling = LimiterParams::default().ceiling();
    for freqs in [[220.0, 220.0], [220.0, 330.0]] {
        let mut whole = Engine::new(SR, 2);
        two_loud_voices(&mut whole, freqs);
        let reference = render_mono(&mut whole, SR as usize);
        assert!(peak(&reference) <= ceiling, "{}", peak(&reference));
        assert!(peak(&reference) >= ceiling * 0.99, "{}", peak(&reference));
        assert!(whole.limited_samples() > 0);
        for chunk in [1, 7, 64, 333, 4096] {
            let mut e = Engine::new(SR, 2);
            two_loud_voices(&mut e, freqs);
            let x = render_mono_chunked(&mut e, SR as usize, chunk);
            assert_eq!(bits(&x), bits(&reference), "chunks of {chunk}");
            assert_eq!(e.limited_samples(), whole.limited_samples());
        }
    }
}

#[test]
fn a_cold_start_keeps_the_configured_ceiling_and_off_stays_off() {
    let mut params = Params::new(2);
    for v in &mut params.voices {
        v.amp = 1.0;
        v.sustain = 1.0;
        v.gate = true;
    }
    params.limiter = LimiterParams {
        on: true,
        ceiling_db: -12.0,
    };
    let mut e = Engine::from_params(SR, &params, 480_000);
    let x = render_mono(&mut e, 4800);
    assert!(peak(&x) <= params.limiter.ceiling());
    assert!(peak(&x) > 0.9 * params.limiter.ceiling());

    params.limiter.on = false;
    let mut e = Engine::from_params(SR, &params, 480_000);
    let x = render_mono(&mut e, 4800);
    assert_eq!(peak(&x), 1.0);
    assert!(e.limited_samples() > 0);
}

#[test]
fn set_limiter_takes_effect_from_the_next_frame() {
    let mut e = Engine::new(SR, 2);
    two_loud_voices(&mut e, [220.0, 330.0]);
    let loud = render_mono(&mut e, 4800);
    assert!(peak(&loud) <= LimiterParams::default().ceiling());
    let lower = LimiterParams {
        on: true,
        ceiling_db: -20.0,
    };
    e.set_limiter(lower);
    assert_eq!(e.params().limiter, lower);
    let x = render_mono(&mut e, 4800);
    assert!(peak(&x) <= lower.ceiling(), "{}", peak(&x));
}
