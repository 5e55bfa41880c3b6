//! Helpers shared by the synthesis and sequencer tests.

use chronus_dsp::{CHANNELS, Command, Control, Engine, Pattern, Track, TrackName, VoiceParam};

pub fn set(voice: u8, param: VoiceParam, value: f32) -> Command {
    Command::SetVoice {
        voice,
        param,
        value,
    }
}

pub fn control(control: Control, value: f32) -> Command {
    Command::Set { control, value }
}

pub fn gate(voice: u8, on: bool) -> Command {
    Command::Gate { voice, on }
}

pub fn track(name: &str, voice: u8, pattern: &str) -> Track {
    Track::new(
        TrackName::new(name).unwrap(),
        voice,
        Pattern::parse(pattern).unwrap(),
    )
}

pub fn apply_all(engine: &mut Engine, commands: &[Command]) {
    for cmd in commands {
        engine.apply(cmd);
    }
}

/// Renders `frames` frames in chunks of `chunk` and returns one channel,
/// checking both are equal.
pub fn render_mono_chunked(engine: &mut Engine, frames: usize, chunk: usize) -> Vec<f32> {
    let mut buf = vec![f32::NAN; frames * CHANNELS];
    for part in buf.chunks_mut(chunk * CHANNELS) {
        engine.render(part);
    }
    let (left, right): (Vec<f32>, Vec<f32>) = buf.chunks(CHANNELS).map(|f| (f[0], f[1])).unzip();
    assert_eq!(bits(&left), bits(&right), "channels differ");
    left
}

pub fn render_mono(engine: &mut Engine, frames: usize) -> Vec<f32> {
    render_mono_chunked(engine, frames, frames.max(1))
}

pub fn bits(samples: &[f32]) -> Vec<u32> {
    samples.iter().map(|s| s.to_bits()).collect()
}

pub fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Amplitude of the component at `freq` (Hz), by correlation with a
/// Hann-windowed complex tone.
pub fn amplitude_at(x: &[f32], freq: f64, sample_rate: u32) -> f64 {
    let n = x.len() as f64;
    let (mut re, mut im, mut norm) = (0.0, 0.0, 0.0);
    for (i, &s) in x.iter().enumerate() {
        let w = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n).cos();
        let phase = std::f64::consts::TAU * freq * i as f64 / f64::from(sample_rate);
        re += f64::from(s) * w * phase.cos();
        im += f64::from(s) * w * phase.sin();
        norm += w;
    }
    2.0 * (re * re + im * im).sqrt() / norm
}

/// Frequency from interpolated upward zero crossings.
pub fn measured_freq(x: &[f32], sample_rate: u32) -> f64 {
    let crossings: Vec<f64> = x
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + f64::from(-w[0]) / f64::from(w[1] - w[0]))
        .collect();
    let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
    (crossings.len() - 1) as f64 * f64::from(sample_rate) / (last - first)
}

/// Frames where the output starts sounding after exact silence.
pub fn onsets(x: &[f32]) -> Vec<usize> {
    (0..x.len())
        .filter(|&i| x[i] != 0.0 && (i == 0 || x[i - 1] == 0.0))
        .collect()
}

/// Frames where the output falls to exact silence after sounding.
pub fn offsets(x: &[f32]) -> Vec<usize> {
    (1..x.len())
        .filter(|&i| x[i] == 0.0 && x[i - 1] != 0.0)
        .collect()
}

/// Every sample finite and within full scale.
pub fn assert_sane(x: &[f32], context: &str) {
    for (i, s) in x.iter().enumerate() {
        assert!(
            s.is_finite() && s.abs() <= 1.0,
            "{context}: sample {i} is {s}"
        );
    }
}

/// A voice that sounds exactly while its gate is open: no attack or release
/// ramps, a full sustain, white noise (never exactly zero) through a wide
/// filter, so gate edges show as exact silence edges in the output.
pub fn gate_probe(voice: u8) -> Vec<Command> {
    vec![
        set(voice, VoiceParam::Osc, 3.0),
        set(voice, VoiceParam::Attack, 0.0),
        set(voice, VoiceParam::Decay, 0.0),
        set(voice, VoiceParam::Sustain, 1.0),
        set(voice, VoiceParam::Release, 0.0),
        set(voice, VoiceParam::FilterFreq, 8000.0),
    ]
}
