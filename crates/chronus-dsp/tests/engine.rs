//! Sound of the engine, measured from its output.

use std::f32::consts::FRAC_1_SQRT_2;

use chronus_dsp::{CHANNELS, Command, Engine, LimiterParams, Params, VoiceParam};

const SR: u32 = 48_000;

fn set(voice: u8, param: VoiceParam, value: f32) -> Command {
    Command::SetVoice {
        voice,
        param,
        value,
    }
}

fn gate(voice: u8, on: bool) -> Command {
    Command::Gate { voice, on }
}

/// Renders `frames` frames and returns one channel, checking both are equal.
fn render_mono(engine: &mut Engine, frames: usize) -> Vec<f32> {
    let mut buf = vec![f32::NAN; frames * CHANNELS];
    engine.render(&mut buf);
    let (left, right): (Vec<f32>, Vec<f32>) = buf.chunks(CHANNELS).map(|f| (f[0], f[1])).unzip();
    assert_eq!(bits(&left), bits(&right), "channels differ");
    left
}

/// Opens a voice's low-pass wide (Butterworth at 8 kHz, −0.001 dB at 1 kHz),
/// for tests that measure the oscillator, envelope or fade rather than the
/// filter (whose default, 1 kHz at Q 2, boosts a 1 kHz tone twofold).
fn open_filter(engine: &mut Engine, voice: u8) {
    engine.apply(&set(voice, VoiceParam::FilterFreq, 8000.0));
    engine.apply(&set(voice, VoiceParam::FilterQ, FRAC_1_SQRT_2));
}

fn bits(samples: &[f32]) -> Vec<u32> {
    samples.iter().map(|s| s.to_bits()).collect()
}

fn seconds(s: f64) -> usize {
    (s * f64::from(SR)) as usize
}

/// Frequency from interpolated upward zero crossings.
fn measured_freq(x: &[f32], sample_rate: u32) -> f64 {
    let crossings: Vec<f64> = x
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + f64::from(-w[0]) / f64::from(w[1] - w[0]))
        .collect();
    let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
    (crossings.len() - 1) as f64 * f64::from(sample_rate) / (last - first)
}

fn cents(measured: f64, expected: f64) -> f64 {
    1200.0 * (measured / expected).log2()
}

#[test]
fn settled_tone_with_whole_sample_period_is_exactly_periodic() {
    let mut e = Engine::new(SR, 4);
    e.apply(&set(0, VoiceParam::Freq, 1000.0));
    e.apply(&gate(0, true));
    render_mono(&mut e, seconds(0.5)); // smoothing, attack and decay settle
    let x = render_mono(&mut e, seconds(2.0));
    assert!(x.iter().any(|s| s.abs() > 0.2), "tone is silent");
    for i in 48..x.len() {
        assert!(
            (x[i] - x[i - 48]).abs() <= 1e-6,
            "sample {i}: {} vs {} one period earlier",
            x[i],
            x[i - 48]
        );
    }
}

#[test]
fn pitch_is_within_one_cent() {
    for sample_rate in [44_100, 48_000] {
        for freq in [20.0, 55.0, 440.0, 1234.5, 4999.0] {
            let mut e = Engine::new(sample_rate, 2);
            e.apply(&set(1, VoiceParam::Freq, freq));
            e.apply(&gate(1, true));
            let settle = sample_rate as usize / 2;
            render_mono(&mut e, settle);
            let x = render_mono(&mut e, 4 * sample_rate as usize);
            let off = cents(measured_freq(&x, sample_rate), f64::from(freq));
            assert!(
                off.abs() < 1.0,
                "{freq} Hz at {sample_rate}: {off} cents off"
            );
        }
    }
}

#[test]
fn slide_time_glides_frequency_over_that_time() {
    let mut e = Engine::new(SR, 1);
    e.apply(&gate(0, true));
    e.apply(&set(0, VoiceParam::SlideTime, 0.5));
    render_mono(&mut e, seconds(0.5));
    e.apply(&set(0, VoiceParam::Freq, 880.0));
    let x = render_mono(&mut e, seconds(1.0));
    // Mid-glide (0.3..0.4 s in) the pitch is between start and target.
    let mid = measured_freq(&x[seconds(0.3)..seconds(0.4)], SR);
    assert!((700.0..800.0).contains(&mid), "mid-glide {mid} Hz");
    let end = measured_freq(&x[seconds(0.5)..], SR);
    assert!(cents(end, 880.0).abs() < 1.0, "after glide {end} Hz");
}

/// Per-period (48 frames at 1000 Hz) peak, the envelope as seen in the output.
fn peaks(x: &[f32]) -> Vec<f32> {
    x.chunks(48)
        .map(|w| w.iter().fold(0.0, |m: f32, s| m.max(s.abs())))
        .collect()
}

/// Frame at the end of the first period (from `from`) whose peak satisfies `pred`.
fn first_period_end(peaks: &[f32], from: usize, pred: impl Fn(f32) -> bool) -> usize {
    let i = (from..peaks.len())
        .find(|&i| pred(peaks[i]))
        .expect("never reached");
    (i + 1) * 48
}

#[test]
fn adsr_segments_take_their_requested_times() {
    let (attack, decay, sustain, release, amp) = (0.1, 0.2, 0.5, 0.3, 0.8);
    let mut e = Engine::new(SR, 1);
    for (param, value) in [
        (VoiceParam::Freq, 1000.0),
        (VoiceParam::Amp, amp),
        (VoiceParam::Attack, attack),
        (VoiceParam::Decay, decay),
        (VoiceParam::Sustain, sustain),
        (VoiceParam::Release, release),
        (VoiceParam::FilterFreq, 8000.0),
        (VoiceParam::FilterQ, FRAC_1_SQRT_2),
    ] {
        e.apply(&set(0, param, value));
    }
    render_mono(&mut e, seconds(0.1));
    e.apply(&gate(0, true));
    let gate_off = seconds(1.0);
    let mut x = render_mono(&mut e, gate_off);
    e.apply(&gate(0, false));
    x.extend(render_mono(&mut e, seconds(0.5)));
    let p = peaks(&x);
    // The sampled peak of a period is a little under `amp` but, with a whole
    // number of samples per period, the same in every period.
    let full = p.iter().fold(0.0, |m: f32, &v| m.max(v));
    assert!(full > amp * 0.99 && full <= amp);

    let tolerance = 256.0;
    let near = |measured: usize, expected: f32, what: &str| {
        let expected = f64::from(expected) * f64::from(SR);
        assert!(
            (measured as f64 - expected).abs() <= tolerance,
            "{what} ended at frame {measured}, expected {expected}"
        );
    };
    assert!(p[0] > 0.0, "attack must start at once");
    let attack_end = first_period_end(&p, 0, |v| v >= full * 0.999);
    near(attack_end, attack, "attack");
    let decay_end = first_period_end(&p, attack_end / 48, |v| v <= full * sustain * 1.001);
    near(decay_end, attack + decay, "decay");
    assert!(
        p[gate_off / 48 - 1] >= full * sustain * 0.999,
        "sustain held"
    );
    let release_end = first_period_end(&p, gate_off / 48, |v| v == 0.0);
    near(release_end, 1.0 + release, "release");
}

#[test]
fn fade_reaches_its_gain_at_the_requested_time() {
    let mut e = Engine::new(SR, 1);
    open_filter(&mut e, 0);
    e.apply(&set(0, VoiceParam::Freq, 1000.0));
    e.apply(&gate(0, true));
    render_mono(&mut e, seconds(0.5));
    e.apply(&Command::Fade {
        gain: 0.0,
        seconds: 0.1,
    });
    assert_eq!(e.params().master_gain, 0.0);
    let x = render_mono(&mut e, seconds(0.2));
    let p = peaks(&x);
    let full = 0.3 * 0.7;
    assert!((p[49] - full / 2.0).abs() < 0.01, "halfway peak {}", p[49]);
    let silent_from = (0..x.len()).rev().find(|&i| x[i] != 0.0).unwrap() + 1;
    assert!(
        silent_from.abs_diff(seconds(0.1)) <= 1,
        "silent from frame {silent_from}"
    );
    // Click-free: no step bigger than the tone itself makes.
    let max_step = x
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max);
    assert!(max_step < full * 0.14, "step {max_step}");
}

#[test]
fn cold_starts_from_the_same_params_are_bit_identical() {
    let mut e = Engine::new(SR, 3);
    for cmd in [
        set(0, VoiceParam::Freq, 330.0),
        gate(0, true),
        set(2, VoiceParam::SlideTime, 0.3),
        set(2, VoiceParam::Freq, 90.0),
        gate(2, true),
        Command::Fade {
            gain: 0.5,
            seconds: 1.0,
        },
    ] {
        e.apply(&cmd);
    }
    render_mono(&mut e, 1000);
    let params = e.params().clone();
    let mut a = Engine::from_params(SR, &params, e.frame());
    let mut b = Engine::from_params(SR, &params, e.frame());
    assert_eq!(a.frame(), 1000);
    assert_eq!(a.params(), &params);
    assert_eq!(
        bits(&render_mono(&mut a, 5000)),
        bits(&render_mono(&mut b, 5000))
    );
    assert_eq!(a.frame(), 6000);
}

#[test]
fn cold_start_plays_gated_voices_at_sustain_at_once() {
    let mut params = Params::new(2);
    params.voices[1].gate = true;
    params.voices[1].freq = 1000.0;
    params.voices[1].amp = 0.5;
    params.voices[1].sustain = 0.4;
    // Filter wide open and voice2's acid path bypassed (see `open_filter`).
    params.voices[1].filter_freq = 8000.0;
    params.voices[1].filter_q = FRAC_1_SQRT_2;
    params.acid.mix = 0.0;
    params.master_gain = 0.5;
    let mut e = Engine::from_params(SR, &params, 123);
    let x = render_mono(&mut e, 480);
    assert_eq!(x[0], 0.0, "oscillator starts at phase 0");
    let expected = 0.5 * 0.4 * 0.5;
    assert!(peaks(&x).iter().all(|p| (p - expected).abs() < 1e-3));
}

#[test]
fn cold_start_sanitizes_params_from_outside() {
    let mut params = Params::new(1);
    params.voices[0] = chronus_dsp::VoiceParams {
        freq: f32::NAN,
        amp: 7.0,
        slide_time: f32::INFINITY,
        attack: -1.0,
        decay: f32::NAN,
        sustain: 2.0,
        release: f32::NEG_INFINITY,
        gate: true,
        ..Default::default()
    };
    params.master_gain = f32::NAN;
    let e = Engine::from_params(SR, &params, 0);
    let p = &e.params().voices[0];
    assert_eq!(
        (
            p.freq,
            p.amp,
            p.slide_time,
            p.attack,
            p.decay,
            p.sustain,
            p.release
        ),
        (440.0, 1.0, 0.0, 0.0, 0.1, 1.0, 0.5)
    );
    assert_eq!(e.params().master_gain, 1.0);
}

#[test]
fn commands_for_missing_voices_and_non_finite_values_are_ignored() {
    let mut e = Engine::new(SR, 2);
    let before = e.params().clone();
    e.apply(&gate(2, true));
    e.apply(&set(200, VoiceParam::Amp, 1.0));
    e.apply(&set(0, VoiceParam::Freq, f32::NAN));
    e.apply(&Command::Fade {
        gain: 0.0,
        seconds: f32::INFINITY,
    });
    assert_eq!(e.params(), &before);
    assert!(render_mono(&mut e, 100).iter().all(|&s| s == 0.0));
}

#[test]
fn out_of_range_values_are_clamped_not_dropped() {
    let mut e = Engine::new(SR, 1);
    e.apply(&set(0, VoiceParam::Freq, 1e9));
    e.apply(&set(0, VoiceParam::Sustain, -3.0));
    e.apply(&Command::Fade {
        gain: 9.0,
        seconds: -1.0,
    });
    let p = e.params();
    assert_eq!(
        (p.voices[0].freq, p.voices[0].sustain, p.master_gain),
        (5000.0, 0.0, 1.0)
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

fn assert_sane(x: &[f32], context: &str) {
    for (i, s) in x.iter().enumerate() {
        assert!(
            s.is_finite() && s.abs() <= 1.0,
            "{context}: sample {i} is {s}"
        );
    }
}

#[test]
fn extreme_values_never_produce_non_finite_output() {
    for sample_rate in [0, 1, 7, 44_100, u32::MAX] {
        let mut e = Engine::new(sample_rate, 255);
        for voice in [0, 1, 254, 255] {
            e.apply(&gate(voice, true));
        }
        for (n, &value) in EXTREMES.iter().enumerate() {
            for param in VoiceParam::ALL {
                for voice in [0, 1, 254] {
                    e.apply(&set(voice, param, value));
                }
            }
            e.apply(&gate(n as u8 % 3, n % 2 == 0));
            e.apply(&Command::Fade {
                gain: value,
                seconds: EXTREMES[(n + 5) % EXTREMES.len()],
            });
            let x = render_mono(&mut e, 64);
            assert_sane(&x, &format!("rate {sample_rate}, value {value}"));
        }
    }
}

#[test]
fn extreme_cold_start_never_produces_non_finite_output() {
    let mut params = Params::new(255);
    for (v, value) in params.voices.iter_mut().zip(EXTREMES.iter().cycle()) {
        *v = chronus_dsp::VoiceParams {
            freq: *value,
            amp: *value,
            slide_time: *value,
            attack: *value,
            decay: *value,
            sustain: *value,
            release: *value,
            gate: true,
            ..Default::default()
        };
    }
    params.master_gain = f32::MAX;
    let mut e = Engine::from_params(1, &params, u64::MAX - 10);
    let x = render_mono(&mut e, 100);
    assert_sane(&x, "cold start");
    assert_eq!(e.frame(), 89, "frame counter wraps instead of panicking");
}

#[test]
fn loud_mix_is_clipped_to_full_scale_with_the_limiter_off() {
    let mut e = Engine::new(SR, 8);
    e.set_limiter(LimiterParams {
        on: false,
        ..LimiterParams::default()
    });
    for voice in 0..8 {
        e.apply(&set(voice, VoiceParam::Amp, 1.0));
        e.apply(&set(voice, VoiceParam::Sustain, 1.0));
        e.apply(&gate(voice, true));
    }
    let x = render_mono(&mut e, seconds(0.2));
    assert_sane(&x, "8 voices at full amplitude");
    assert!(x.contains(&1.0));
}

#[test]
fn render_zeroes_a_trailing_partial_frame() {
    let mut e = Engine::new(SR, 1);
    let mut buf = [f32::NAN; 5];
    e.render(&mut buf);
    assert_eq!(buf, [0.0; 5]);
    assert_eq!(e.frame(), 2);
}

#[test]
fn second_gate_off_does_not_restart_the_release() {
    let mut e = Engine::new(SR, 1);
    e.apply(&gate(0, true));
    render_mono(&mut e, seconds(0.5));
    e.apply(&gate(0, false));
    render_mono(&mut e, seconds(0.25));
    e.apply(&gate(0, false));
    let x = render_mono(&mut e, seconds(0.5));
    // The default 0.5 s release reaches 0 on its last frame, 0.25 s into this
    // render (not 0.5 s, as a restarted release would).
    let silent_from = (0..x.len())
        .rev()
        .find(|&i| x[i] != 0.0)
        .map_or(0, |i| i + 1);
    assert_eq!(silent_from, seconds(0.25) - 1);
}

#[test]
fn sustain_changes_while_held_are_followed() {
    let mut e = Engine::new(SR, 1);
    open_filter(&mut e, 0);
    e.apply(&set(0, VoiceParam::Freq, 1000.0));
    e.apply(&gate(0, true));
    render_mono(&mut e, seconds(0.5));
    e.apply(&set(0, VoiceParam::Sustain, 0.2));
    let p = peaks(&render_mono(&mut e, seconds(0.1)));
    let last = p[p.len() - 1];
    assert!((last - 0.3 * 0.2).abs() < 1e-3, "peak {last}");
}
