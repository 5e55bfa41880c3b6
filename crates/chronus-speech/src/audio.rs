//! Audio conversion: WAV from engines to f32, deterministic resampling, channel layout
//! and 16-bit PCM for engines that take raw audio.
//!
//! The resampler is a windowed-sinc interpolator (Blackman window, 16 zero crossings
//! each side of the centre, cutoff lowered to 0.95 of the lower Nyquist frequency when
//! downsampling). It is deterministic: its coefficients depend only on the two rates,
//! and an output sample depends only on the input samples, never on how the input was
//! split into chunks, so a stream resampled chunk by chunk is identical to the same
//! audio resampled at once (a flush never leaves a gap or a click).

use crate::error::AudioError;
use std::f64::consts::PI;
use std::io::Cursor;
use std::sync::Arc;

/// Highest sample rate accepted anywhere (engines and outputs).
pub const MAX_RATE: u32 = 384_000;

/// Zero crossings of the sinc on each side of the centre, at the passband cutoff.
const ZERO_CROSSINGS: usize = 16;

/// Most filter phases kept in the table; finer phases round down to one of these,
/// an error below 1/1024 of a sample (about -60 dB for speech-band content).
const MAX_PHASES: u64 = 1024;

/// Interleaved f32 samples at a sample rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm {
    pub rate: u32,
    pub channels: u16,
    /// Interleaved, full scale is ±1.0.
    pub samples: Vec<f32>,
}

impl Pcm {
    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// The channels averaged into one.
    pub fn to_mono(&self) -> Vec<f32> {
        let ch = usize::from(self.channels.max(1));
        if ch == 1 {
            return self.samples.clone();
        }
        self.samples
            .chunks_exact(ch)
            .map(|frame| frame.iter().sum::<f32>() / ch as f32)
            .collect()
    }
}

/// Synthesized speech ready for the output: interleaved stereo f32 at the output rate.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeechAudio {
    pub rate: u32,
    pub channels: u16,
    pub samples: Arc<[f32]>,
}

impl SpeechAudio {
    /// Converts engine audio to `channels` (1 or 2) at `rate`.
    pub fn from_pcm(pcm: &Pcm, rate: u32, channels: u16) -> Result<Self, AudioError> {
        let mono = resample(&pcm.to_mono(), pcm.rate, rate)?;
        let samples: Arc<[f32]> = match channels {
            1 => mono.into(),
            2 => mono_to_stereo(&mono).into(),
            n => {
                return Err(AudioError::Layout {
                    detail: format!("{n} output channels"),
                });
            }
        };
        Ok(SpeechAudio {
            rate,
            channels,
            samples,
        })
    }

    /// Bytes the samples occupy (what the cache counts).
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.samples)
    }

    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }
}

/// Decodes a WAV stream. A data chunk whose declared length runs past the end of the
/// stream is read up to the end: `espeak-ng --stdout` writes a placeholder length of
/// almost 2 GiB because it cannot seek back in a pipe.
pub fn parse_wav(bytes: &[u8]) -> Result<Pcm, AudioError> {
    let wav_err = |e: hound::Error| AudioError::Wav {
        detail: e.to_string(),
    };
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(wav_err)?;
    let spec = reader.spec();
    check_rate(spec.sample_rate)?;
    if spec.channels == 0 {
        return Err(AudioError::Wav {
            detail: "zero channels".into(),
        });
    }
    let declared = reader.len() as usize;
    let data_start = reader.into_inner().position() as usize;
    let bytes_per_sample = usize::from(spec.bits_per_sample).div_ceil(8);
    let present = (bytes.len() - data_start) / bytes_per_sample;
    let channels = usize::from(spec.channels);
    let count = declared.min(present) / channels * channels;
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(wav_err)?;
    let samples = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .take(count)
            .collect::<Result<Vec<_>, _>>()
            .map_err(wav_err)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .take(count)
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<Vec<_>, _>>()
                .map_err(wav_err)?
        }
    };
    Ok(Pcm {
        rate: spec.sample_rate,
        channels: spec.channels,
        samples,
    })
}

fn check_rate(rate: u32) -> Result<(), AudioError> {
    if rate == 0 || rate > MAX_RATE {
        return Err(AudioError::Rate {
            rate,
            max: MAX_RATE,
        });
    }
    Ok(())
}

/// Duplicates each mono sample into a left/right pair.
pub fn mono_to_stereo(mono: &[f32]) -> Vec<f32> {
    mono.iter().flat_map(|&s| [s, s]).collect()
}

/// Converts to 16-bit little-endian PCM, clamping to full scale (NaN becomes 0).
pub fn to_s16le(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&s| {
            let s = if s.is_nan() { 0.0 } else { s.clamp(-1.0, 1.0) };
            ((s * 32767.0).round() as i16).to_le_bytes()
        })
        .collect()
}

/// Decodes 16-bit little-endian PCM; a trailing odd byte is ignored.
pub fn from_s16le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// Resamples mono audio at once; identical to streaming it through a [`Resampler`].
pub fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    let mut r = Resampler::new(from, to)?;
    let mut out = Vec::with_capacity(r.output_len(input.len() as u64) as usize + 1);
    r.process(input, &mut out);
    r.finish(&mut out);
    Ok(out)
}

/// A streaming mono windowed-sinc resampler (see the module notes).
#[derive(Clone, Debug)]
pub struct Resampler {
    /// Input step per output sample is `up / down` input samples.
    up: u64,
    down: u64,
    /// Taps on each side of the centre.
    half: usize,
    phases: u64,
    /// `phases` rows of `2 * half` coefficients, row `p` for fractional offset p/phases.
    table: Vec<f32>,
    /// Input samples from absolute index `base` on.
    history: Vec<f32>,
    base: u64,
    /// Input samples received so far.
    received: u64,
    /// Next output sample to produce.
    next: u64,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Self, AudioError> {
        check_rate(from)?;
        check_rate(to)?;
        let g = gcd(u64::from(from), u64::from(to));
        let (up, down) = (u64::from(from) / g, u64::from(to) / g);
        let cutoff = if to < from {
            0.95 * f64::from(to) / f64::from(from)
        } else {
            1.0
        };
        let half = (ZERO_CROSSINGS as f64 / cutoff).ceil() as usize;
        let phases = down.min(MAX_PHASES);
        let mut table = Vec::with_capacity(phases as usize * 2 * half);
        for p in 0..phases {
            let frac = p as f64 / phases as f64;
            let start = table.len();
            // Tap j sits at input offset (j + 1 - half) from the integer position.
            for j in 0..2 * half {
                let t = (j as f64 + 1.0 - half as f64) - frac;
                table.push(kernel(t, cutoff, half as f64) as f32);
            }
            // Unity gain at DC for every phase.
            let sum: f32 = table[start..].iter().sum();
            table[start..].iter_mut().for_each(|c| *c /= sum);
        }
        Ok(Resampler {
            up,
            down,
            half,
            phases,
            table,
            history: Vec::new(),
            base: 0,
            received: 0,
            next: 0,
        })
    }

    /// Output samples that `input_len` input samples resample to.
    pub fn output_len(&self, input_len: u64) -> u64 {
        (input_len * self.down).div_ceil(self.up)
    }

    /// Appends every output sample the input so far fully determines.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.history.extend_from_slice(input);
        self.received += input.len() as u64;
        self.emit(self.received, out);
        self.trim();
    }

    /// Appends the remaining output, treating the input as followed by silence, and
    /// resets the stream.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        // Every output whose centre lies inside the input, and no more.
        let pad = self.half;
        self.history.extend(std::iter::repeat_n(0.0, pad));
        self.emit(self.received + pad as u64, out);
        self.history.clear();
        self.base = 0;
        self.received = 0;
        self.next = 0;
    }

    /// Emits outputs whose taps all lie below input index `available`.
    fn emit(&mut self, available: u64, out: &mut Vec<f32>) {
        let taps = 2 * self.half;
        loop {
            let pos = self.next * self.up;
            let centre = pos / self.down;
            let last_tap = centre + self.half as u64;
            if last_tap >= available {
                return;
            }
            let phase = (pos % self.down) * self.phases / self.down;
            let row = &self.table[phase as usize * taps..(phase as usize + 1) * taps];
            let first_tap = (centre + 1) as i64 - self.half as i64;
            let mut acc = 0.0f32;
            for (j, &c) in row.iter().enumerate() {
                let k = first_tap + j as i64;
                // Before the first sample the signal is silence.
                if k >= self.base as i64 {
                    acc += c * self.history[(k - self.base as i64) as usize];
                }
            }
            out.push(acc);
            self.next += 1;
        }
    }

    /// Drops input no future output needs.
    fn trim(&mut self) {
        let centre = self.next * self.up / self.down;
        let keep_from = (centre + 1).saturating_sub(self.half as u64);
        if keep_from > self.base {
            let drop = ((keep_from - self.base) as usize).min(self.history.len());
            self.history.drain(..drop);
            self.base += drop as u64;
        }
    }
}

/// Blackman-windowed sinc with cutoff `fc` (fraction of the input Nyquist rate),
/// zero beyond `half` samples.
fn kernel(t: f64, fc: f64, half: f64) -> f64 {
    if t.abs() >= half {
        return 0.0;
    }
    let x = PI * fc * t;
    let sinc = if x == 0.0 { 1.0 } else { x.sin() / x };
    let w = 0.42 + 0.5 * (PI * t / half).cos() + 0.08 * (2.0 * PI * t / half).cos();
    fc * sinc * w
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * PI * freq * i as f64 / f64::from(rate)).sin() as f32 * 0.5)
            .collect()
    }

    fn wav_bytes(spec: hound::WavSpec, samples: &[i16]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        buf.into_inner()
    }

    #[test]
    fn streaming_resample_is_independent_of_chunking() {
        let input = sine(440.0, 22_050, 5000);
        let whole = resample(&input, 22_050, 48_000).unwrap();
        let mut r = Resampler::new(22_050, 48_000).unwrap();
        let mut chunked = Vec::new();
        for chunk in input.chunks(37) {
            r.process(chunk, &mut chunked);
        }
        r.finish(&mut chunked);
        assert_eq!(whole.len(), chunked.len());
        assert!(
            whole
                .iter()
                .zip(&chunked)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }

    #[test]
    fn resample_length_and_sine_accuracy() {
        for (from, to) in [
            (22_050, 48_000),
            (48_000, 16_000),
            (22_050, 16_000),
            (16_000, 16_000),
        ] {
            let n = from as usize; // one second
            let out = resample(&sine(440.0, from, n), from, to).unwrap();
            assert_eq!(out.len(), to as usize, "{from}->{to}");
            let expect = sine(440.0, to, out.len());
            // Away from the edges the interpolation matches the ideal sine closely.
            let margin = to as usize / 20;
            let err = out[margin..out.len() - margin]
                .iter()
                .zip(&expect[margin..])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 2e-3, "{from}->{to}: max error {err}");
        }
    }

    #[test]
    fn downsampling_attenuates_above_the_new_nyquist() {
        // 12 kHz cannot exist at 16 kHz: it must not fold back as a 4 kHz alias.
        let out = resample(&sine(12_000.0, 48_000, 48_000), 48_000, 16_000).unwrap();
        let rms = (out[1000..15_000].iter().map(|s| s * s).sum::<f32>() / 14_000.0).sqrt();
        assert!(rms < 0.01, "alias rms {rms}");
    }

    #[test]
    fn wav_with_placeholder_length_reads_to_end_of_stream() {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 22_050,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut bytes = wav_bytes(spec, &[0, 16_384, -16_384, 32_767]);
        // What espeak-ng writes to a pipe: data length 0x7ffff000.
        let data = bytes.windows(4).position(|w| w == b"data").unwrap();
        bytes[data + 4..data + 8].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        let pcm = parse_wav(&bytes).unwrap();
        assert_eq!(pcm.rate, 22_050);
        assert_eq!(pcm.samples, vec![0.0, 0.5, -0.5, 32_767.0 / 32_768.0]);
    }

    #[test]
    fn truncated_or_garbage_wav_is_an_error_not_a_panic() {
        assert!(matches!(parse_wav(b"RIFF"), Err(AudioError::Wav { .. })));
        assert!(matches!(
            parse_wav(b"hello world, not audio"),
            Err(AudioError::Wav { .. })
        ));
        assert!(matches!(parse_wav(&[]), Err(AudioError::Wav { .. })));
    }

    #[test]
    fn stereo_output_and_s16_round_trip() {
        let pcm = Pcm {
            rate: 48_000,
            channels: 1,
            samples: vec![0.25, -0.5],
        };
        let audio = SpeechAudio::from_pcm(&pcm, 48_000, 2).unwrap();
        assert_eq!(audio.frames(), 2);
        assert_eq!(audio.bytes(), 16);
        let back = from_s16le(&to_s16le(&[0.25, -0.5, 2.0, f32::NAN]));
        assert_eq!(back[0], 8192.0 / 32768.0);
        assert!((back[2] - 1.0).abs() < 1e-4);
        assert_eq!(back[3], 0.0);
    }

    #[test]
    fn zero_rate_is_rejected() {
        assert!(matches!(
            Resampler::new(0, 48_000),
            Err(AudioError::Rate { rate: 0, .. })
        ));
    }
}
