//! Oscillators: sine, band-limited saw and square (PolyBLEP), triangle, and
//! white, pink and brown noise from a seeded generator whose state lives in the
//! voice.

use crate::dsp::sin_cycles;

/// Waveform codes of [`crate::VoiceParam::Osc`].
pub(crate) const SAW: u8 = 1;
pub(crate) const SQUARE: u8 = 2;
pub(crate) const WHITE: u8 = 3;
pub(crate) const PINK: u8 = 4;
pub(crate) const BROWN: u8 = 5;
pub(crate) const TRIANGLE: u8 = 6;

/// PolyBLEP residual: subtracting it from a naive step around a discontinuity
/// at phase 0 rounds off the aliasing corner. `dt` is the phase increment.
fn blep(t: f64, dt: f64) -> f64 {
    if t < dt {
        let t = t / dt;
        t + t - t * t - 1.0
    } else if t > 1.0 - dt {
        let t = (t - 1.0) / dt;
        t * t + t + t + 1.0
    } else {
        0.0
    }
}

/// Above half a cycle per frame the waveform is all alias anyway; the clamp
/// keeps the BLEP's division finite at tiny sample rates.
#[inline]
pub(crate) fn clamp_dt(dt: f64) -> f64 {
    dt.clamp(1e-12, 0.5)
}

/// Band-limited saw at `phase` (cycles, in [0, 1)), `dt` cycles a frame.
#[inline]
pub(crate) fn saw(phase: f64, dt: f64) -> f64 {
    2.0 * phase - 1.0 - blep(phase, clamp_dt(dt))
}

/// Band-limited square at `phase`, `dt` cycles a frame.
#[inline]
pub(crate) fn square(phase: f64, dt: f64) -> f64 {
    let dt = clamp_dt(dt);
    let naive = if phase < 0.5 { 1.0 } else { -1.0 };
    // (phase + 0.5).fract(), without the libm call.
    let half = phase + 0.5;
    let half = if half < 1.0 { half } else { half - 1.0 };
    naive + blep(phase, dt) - blep(half, dt)
}

/// Triangle at `phase`, rising from -1 at phase 0 to 1 at phase 0.5. No BLEP:
/// its harmonics fall 12 dB an octave, so its corners alias little.
#[inline]
pub(crate) fn triangle(phase: f64) -> f64 {
    1.0 - 4.0 * (phase - 0.5).abs()
}

/// One sample of a periodic waveform at `phase` (cycles, in [0, 1)).
#[inline]
pub(crate) fn periodic(kind: u8, phase: f64, dt: f64) -> f64 {
    match kind {
        SAW => saw(phase, dt),
        SQUARE => square(phase, dt),
        TRIANGLE => triangle(phase),
        // Sine, the phase kept in f64 so that a tone whose period is a whole
        // number of samples repeats exactly.
        _ => sin_cycles(phase),
    }
}

/// Noise generator: xorshift64* (deterministic, seeded per voice) shaped
/// into pink (Paul Kellet's filter) or brown (a leaky integrator) noise.
#[derive(Clone, Debug)]
pub(crate) struct Noise {
    state: u64,
    pink: [f64; 7],
    brown: f64,
}

impl Noise {
    pub(crate) fn new(seed: u64) -> Noise {
        Noise {
            // Never zero, which would stick.
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            pink: [0.0; 7],
            brown: 0.0,
        }
    }

    /// White noise in (-1, 1), never exactly 0.
    pub(crate) fn white(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let bits = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        // Below 2^53, so the signed conversion (one instruction) is exact.
        (bits as i64 as f64 + 0.5) * (2.0 / (1u64 << 53) as f64) - 1.0
    }

    /// Pink noise from the white draw `w`.
    pub(crate) fn pink(&mut self, w: f64) -> f64 {
        let b = &mut self.pink;
        b[0] = 0.99886 * b[0] + w * 0.055_517_9;
        b[1] = 0.99332 * b[1] + w * 0.075_075_9;
        b[2] = 0.96900 * b[2] + w * 0.153_852_0;
        b[3] = 0.86650 * b[3] + w * 0.310_485_6;
        b[4] = 0.55000 * b[4] + w * 0.532_952_2;
        b[5] = -0.7616 * b[5] - w * 0.016_898_0;
        let pink = (b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362) * 0.11;
        b[6] = w * 0.115_926;
        pink
    }

    /// Brown noise from the white draw `w`.
    pub(crate) fn brown(&mut self, w: f64) -> f64 {
        self.brown = (self.brown + 0.02 * w) * (1.0 / 1.02);
        self.brown * 3.5
    }

    /// One draw of white noise and the colours of it that `kind` and `other`
    /// need (the rest stay 0 and their filters idle): one draw per frame
    /// whatever the colour, so a crossfade consumes the generator exactly as
    /// either colour alone.
    pub(crate) fn next(&mut self, kind: u8, other: u8) -> [f64; 3] {
        let w = self.white();
        let needs = |colour| kind == colour || other == colour;
        let pink = if needs(PINK) { self.pink(w) } else { 0.0 };
        let brown = if needs(BROWN) { self.brown(w) } else { 0.0 };
        [w, pink, brown]
    }
}

/// True for the noise waveforms.
pub(crate) fn is_noise(kind: u8) -> bool {
    matches!(kind, WHITE | PINK | BROWN)
}

/// The sample of `kind` given a phase and, for noise, the colours of this frame.
#[inline]
pub(crate) fn sample(kind: u8, phase: f64, dt: f64, noise: &[f64; 3]) -> f64 {
    match kind {
        WHITE => noise[0],
        PINK => noise[1],
        BROWN => noise[2],
        _ => periodic(kind, phase, dt),
    }
}
