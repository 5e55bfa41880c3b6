//! Small DSP building blocks shared by the voices and the effects.

use std::f64::consts::PI;

use crate::lanes::{F64x2, Mask};

/// Values this small (−300 dB) are flushed to zero wherever a signal decays
/// in a feedback loop: subnormal floats are slow on most CPUs, and a decaying
/// tail would otherwise spend minutes among them before reaching zero.
const FLUSH_BELOW: f64 = 1e-15;

#[inline]
pub(crate) fn flush(x: f64) -> f64 {
    if x.abs() < FLUSH_BELOW { 0.0 } else { x }
}

/// [`flush`] in each lane: |x| < b is -b < x < b (both false for NaN, kept).
#[inline(always)]
pub(crate) fn flush_lanes(x: F64x2) -> F64x2 {
    let tiny = x.lt(F64x2::splat(FLUSH_BELOW)) & F64x2::splat(-FLUSH_BELOW).lt(x);
    x.or_zero(tiny.not())
}

/// A cheap tanh-like saturator (a Padé approximant, exactly ±1 beyond ±3):
/// bounded, so nothing feeding on it can run away.
#[inline]
pub(crate) fn soft_clip(x: f64) -> f64 {
    if x >= 3.0 {
        1.0
    } else if x <= -3.0 {
        -1.0
    } else {
        let x2 = x * x;
        x * (27.0 + x2) / (27.0 + 9.0 * x2)
    }
}

/// sin(2π·phase) for a phase in [0, 1), within 2e-9 of the true value: an
/// odd polynomial on the quarter wave. Several times cheaper than libm's
/// `sin`, and the same on every machine.
#[inline]
pub(crate) fn sin_cycles(phase: f64) -> f64 {
    // Fold onto [-1/4, 1/4], where sin(2πx) is odd and smooth.
    let x = if phase < 0.25 {
        phase
    } else if phase < 0.75 {
        0.5 - phase
    } else {
        phase - 1.0
    };
    let z = 2.0 * PI * x;
    let z2 = z * z;
    // Taylor terms to z^15; the remainder on |z| <= π/2 is below 2e-9.
    z * (1.0
        + z2 * (-1.0 / 6.0
            + z2 * (1.0 / 120.0
                + z2 * (-1.0 / 5040.0
                    + z2 * (1.0 / 362_880.0
                        + z2 * (-1.0 / 39_916_800.0
                            + z2 * (1.0 / 6_227_020_800.0 + z2 * (-1.0 / 1_307_674_368_000.0))))))))
}

/// tan(π·x) for x in [0, 0.45] (the bilinear prewarp of a cutoff at
/// x = cutoff / sample rate): the [5/4] Padé approximant, for one division.
/// Relative error below 1e-9 up to a fifth of the sample rate (every cutoff
/// at 44.1 kHz and above), 3e-5 at the top of the range.
#[inline]
pub(crate) fn tan_pi(x: f64) -> f64 {
    let z = PI * x;
    let z2 = z * z;
    z * (945.0 - z2 * (105.0 - z2)) / (945.0 - z2 * (420.0 - 15.0 * z2))
}

/// `phase + step` wrapped into [0, 1) (both in cycles, `step` >= 0).
/// Subtracting 1 is exact; fract() (a libm call) is needed only for steps of
/// a cycle or more, at tiny sample rates.
#[inline]
pub(crate) fn advance_phase(phase: f64, step: f64) -> f64 {
    let next = phase + step;
    if next < 1.0 {
        next
    } else if next < 2.0 {
        next - 1.0
    } else {
        next.fract()
    }
}

/// Filter cutoffs stay below this fraction of the sample rate, where the
/// bilinear-transform coefficients are finite and well-behaved.
pub(crate) fn max_cutoff(sample_rate: u32) -> f64 {
    0.45 * f64::from(sample_rate)
}

/// Delay lines are sized for at most this rate, so an absurd sample rate
/// cannot demand gigabytes; above it, delay and reverb times shrink.
const BUFFER_RATE_CAP: u32 = 384_000;

/// Frames of delay-line memory for `seconds` at `sample_rate` (at least 1).
pub(crate) fn buffer_frames(seconds: f64, sample_rate: u32) -> usize {
    ((seconds * f64::from(sample_rate.min(BUFFER_RATE_CAP))).ceil() as usize).max(1)
}

/// Two-pole low-pass in state-variable (TPT) form: the same response as the
/// RBJ cookbook biquad (a bilinear transform of 1/(s² + s/Q + 1) prewarped at
/// the cutoff, so −3 dB exactly at the cutoff for Q = 1/√2), but it stays
/// well-behaved when the cutoff moves every sample.
#[derive(Clone, Debug)]
pub(crate) struct Svf {
    ic1: f64,
    ic2: f64,
    a1: f64,
    a2: f64,
    a3: f64,
    /// Cutoff and Q the coefficients were computed for.
    tuned: (f64, f64),
}

impl Svf {
    pub(crate) fn new() -> Svf {
        Svf {
            ic1: 0.0,
            ic2: 0.0,
            a1: 0.0,
            a2: 0.0,
            a3: 0.0,
            tuned: (f64::NAN, f64::NAN),
        }
    }

    /// Retunes, recomputing coefficients only when something changed (then
    /// true).
    #[inline]
    pub(crate) fn tune(&mut self, cutoff: f64, q: f64, sample_rate: u32) -> bool {
        if self.tuned == (cutoff, q) {
            return false;
        }
        self.tuned = (cutoff, q);
        let fc = cutoff.clamp(1e-3, max_cutoff(sample_rate));
        let g = tan_pi(fc / f64::from(sample_rate));
        let k = 1.0 / q;
        self.a1 = 1.0 / (1.0 + g * (g + k));
        self.a2 = g * self.a1;
        self.a3 = g * self.a2;
        true
    }

    /// One frame, as [`SvfLanes::low_pass`] computes it in each lane (the
    /// reference its tests compare it with).
    #[cfg(test)]
    pub(crate) fn low_pass(&mut self, x: f64) -> f64 {
        let v3 = x - self.ic2;
        let v1 = self.a1 * self.ic1 + self.a2 * v3;
        let v2 = self.ic2 + self.a2 * self.ic1 + self.a3 * v3;
        self.ic1 = 2.0 * v1 - self.ic1;
        self.ic2 = 2.0 * v2 - self.ic2;
        v2
    }

    pub(crate) fn reset(&mut self) {
        self.ic1 = 0.0;
        self.ic2 = 0.0;
    }
}

/// Filters run side by side, two to a [`F64x2`]: [`PAIRS`] independent chains
/// of packed operations, which the CPU overlaps.
pub(crate) const PAIRS: usize = 2;
pub(crate) const LANES: usize = 2 * PAIRS;

/// `f(pair)` for the first `P` pairs.
#[inline(always)]
pub(crate) fn pairs<T, const P: usize>(f: impl FnMut(usize) -> T) -> [T; P] {
    std::array::from_fn(f)
}

/// The state and coefficients of [`LANES`] [`Svf`]s, lane by lane (lane `l`
/// in pair `l / 2`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SvfLanes {
    ic1: [F64x2; PAIRS],
    ic2: [F64x2; PAIRS],
    a1: [F64x2; PAIRS],
    a2: [F64x2; PAIRS],
    a3: [F64x2; PAIRS],
}

fn set_lane(v: &mut [F64x2; PAIRS], lane: usize, x: f64) {
    let mut pair = v[lane / 2].to_array();
    pair[lane % 2] = x;
    v[lane / 2] = F64x2::new(pair);
}

impl SvfLanes {
    /// At rest, all coefficients 0 (a lane with no filter outputs 0 for any input).
    pub(crate) fn new() -> SvfLanes {
        let zero = [F64x2::splat(0.0); PAIRS];
        SvfLanes {
            ic1: zero,
            ic2: zero,
            a1: zero,
            a2: zero,
            a3: zero,
        }
    }

    /// Takes `filter`'s state and coefficients into `lane`.
    pub(crate) fn load(&mut self, lane: usize, filter: &Svf) {
        set_lane(&mut self.ic1, lane, filter.ic1);
        set_lane(&mut self.ic2, lane, filter.ic2);
        self.tuned_as(lane, filter);
    }

    /// Takes `filter`'s coefficients into `lane`.
    pub(crate) fn tuned_as(&mut self, lane: usize, filter: &Svf) {
        set_lane(&mut self.a1, lane, filter.a1);
        set_lane(&mut self.a2, lane, filter.a2);
        set_lane(&mut self.a3, lane, filter.a3);
    }

    /// Gives `lane`'s state back to `filter`.
    pub(crate) fn store(&self, lane: usize, filter: &mut Svf) {
        filter.ic1 = self.ic1[lane / 2].to_array()[lane % 2];
        filter.ic2 = self.ic2[lane / 2].to_array()[lane % 2];
    }

    /// [`Svf::low_pass`] in the lanes of the first `P` pairs. No denormal flush (it would lengthen
    /// the per-sample dependency chain): a voice resets its filter whenever it
    /// falls silent, and a sounding oscillator never rests at zero, so the
    /// state cannot decay that far.
    #[inline(always)]
    pub(crate) fn low_pass<const P: usize>(&mut self, x: [F64x2; P]) -> [F64x2; P] {
        let two = F64x2::splat(2.0);
        pairs(|p| {
            let (ic1, ic2) = (self.ic1[p], self.ic2[p]);
            let (a1, a2, a3) = (self.a1[p], self.a2[p], self.a3[p]);
            let v3 = x[p] - ic2;
            let v1 = a1 * ic1 + a2 * v3;
            let v2 = ic2 + a2 * ic1 + a3 * v3;
            self.ic1[p] = two * v1 - ic1;
            self.ic2[p] = two * v2 - ic2;
            v2
        })
    }

    /// [`Svf::reset`] in the lanes of the first `P` pairs where `keep` is false.
    #[inline(always)]
    pub(crate) fn reset_unless<const P: usize>(&mut self, keep: [Mask; P]) {
        for (p, keep) in keep.into_iter().enumerate() {
            self.ic1[p] = self.ic1[p].or_zero(keep);
            self.ic2[p] = self.ic2[p].or_zero(keep);
        }
    }
}

/// One-pole low-pass (6 dB/octave).
#[derive(Clone, Debug)]
pub(crate) struct OnePole {
    coef: f64,
    y: f64,
    tuned: f64,
}

impl OnePole {
    pub(crate) fn new() -> OnePole {
        OnePole {
            coef: 0.0,
            y: 0.0,
            tuned: f64::NAN,
        }
    }

    pub(crate) fn tune(&mut self, cutoff: f64, sample_rate: u32) {
        if self.tuned != cutoff {
            self.tuned = cutoff;
            let fc = cutoff.min(max_cutoff(sample_rate));
            self.coef = 1.0 - (-2.0 * PI * fc / f64::from(sample_rate)).exp();
        }
    }

    /// Whether its state is exactly zero (so zero in gives zero out).
    pub(crate) fn at_rest(&self) -> bool {
        self.y == 0.0
    }

    pub(crate) fn low_pass(&mut self, x: f64) -> f64 {
        self.y = flush(self.y + self.coef * (x - self.y));
        self.y
    }

    /// Everything the low-pass takes away.
    pub(crate) fn high_pass(&mut self, x: f64) -> f64 {
        x - self.low_pass(x)
    }

    pub(crate) fn reset(&mut self) {
        self.y = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_lanes_is_flush_in_each_lane() {
        let edge = FLUSH_BELOW;
        let values = [
            0.0,
            -0.0,
            edge,
            -edge,
            edge / 2.0,
            -edge / 2.0,
            1e-300,
            -1e-300,
            0.5,
            -0.5,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for pair in values.windows(2) {
            let got = flush_lanes(F64x2::new([pair[0], pair[1]])).to_array();
            for (got, &x) in got.iter().zip(pair) {
                assert_eq!(got.to_bits(), flush(x).to_bits(), "flush({x})");
            }
        }
    }

    #[test]
    fn sin_cycles_matches_libm_closely() {
        let worst = (0..100_000)
            .map(|i| {
                let phase = f64::from(i) / 100_000.0;
                (sin_cycles(phase) - (2.0 * PI * phase).sin()).abs()
            })
            .fold(0.0, f64::max);
        assert!(worst < 2e-9, "worst error {worst}");
        assert_eq!(sin_cycles(0.0), 0.0);
    }

    #[test]
    fn tan_pi_matches_libm_closely_up_to_the_highest_cutoff() {
        for i in 1..=4500 {
            let x = f64::from(i) / 10_000.0;
            let exact = (PI * x).tan();
            let relative = (tan_pi(x) - exact).abs() / exact;
            let allowed = if x <= 0.2 { 2e-9 } else { 3e-5 };
            assert!(relative < allowed, "tan(π·{x}) off by {relative}");
        }
    }
}
