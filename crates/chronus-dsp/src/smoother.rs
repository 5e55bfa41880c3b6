//! Linear ramps that land exactly on their target.

use crate::lanes::F64x2;

/// Time the frequency (without slide) and amplitude take to reach a new value,
/// long enough to avoid zipper noise and clicks.
pub(crate) const SMOOTHING_SECONDS: f32 = 0.02;

/// Whole number of frames closest to `seconds` (which is finite and >= 0).
pub(crate) fn frames(seconds: f32, sample_rate: u32) -> u64 {
    // Saturating float-to-int cast: absurd products cannot wrap.
    (f64::from(seconds) * f64::from(sample_rate)).round() as u64
}

/// Moves from its current value to a target over a whole number of frames.
///
/// Each value is computed from the ramp's start and position rather than by
/// accumulating increments, so the last step is exactly the target and a
/// settled ramp stays bit-for-bit constant (a settled tone is exactly periodic).
#[derive(Clone, Debug)]
pub(crate) struct Ramp {
    start: f64,
    /// Change per frame, so that a step costs a multiplication, not a division.
    step: f64,
    target: f64,
    value: f64,
    len: u64,
    pos: u64,
}

impl Ramp {
    /// A ramp already settled at `value`.
    pub(crate) fn at(value: f64) -> Ramp {
        Ramp {
            start: value,
            step: 0.0,
            target: value,
            value,
            len: 0,
            pos: 0,
        }
    }

    /// Heads for `target` from the current value, arriving after `frames` more
    /// calls to [`Ramp::next`] (at once for 0).
    pub(crate) fn set_target(&mut self, target: f64, frames: u64) {
        self.start = self.value;
        self.target = target;
        self.len = frames;
        self.pos = 0;
        if frames == 0 {
            self.value = target;
        } else {
            self.step = (target - self.start) / frames as f64;
        }
    }

    /// Advances one frame and returns the new value.
    #[inline]
    pub(crate) fn next(&mut self) -> f64 {
        if self.pos < self.len {
            self.pos += 1;
            self.value = if self.pos == self.len {
                self.target
            } else {
                self.start + self.step * self.pos as f64
            };
        }
        self.value
    }

    /// Fills `out` with the values of the next `out.len()` calls to
    /// [`Ramp::next`], bit for bit, at a fraction of their cost.
    pub(crate) fn fill(&mut self, out: &mut [f64]) {
        let ramping = usize::try_from(self.len - self.pos).map_or(out.len(), |r| r.min(out.len()));
        let (ramp, rest) = out.split_at_mut(ramping);
        if let Some((last, body)) = ramp.split_last_mut() {
            // `pos as f64` is exact below 2^53 frames, and so is adding a
            // small whole number to it; the sum then equals next()'s.
            if self.len < 1 << 53 {
                // Two frames at a time in lanes; the counts pos + k stay
                // whole numbers below 2^53, so adding 2 to them is exact too.
                let (start, step, base) = (self.start, self.step, self.pos as f64);
                let (starts, steps) = (F64x2::splat(start), F64x2::splat(step));
                let mut count = F64x2::new([base + 1.0, base + 2.0]);
                let mut pairs = body.chunks_exact_mut(2);
                for pair in &mut pairs {
                    pair.copy_from_slice(&(starts + steps * count).to_array());
                    count = count + F64x2::splat(2.0);
                }
                if let [o] = pairs.into_remainder() {
                    *o = start + step * count.to_array()[0];
                }
                self.pos += body.len() as u64;
            } else {
                body.iter_mut().for_each(|o| *o = self.next());
            }
            *last = self.next();
        }
        rest.fill(self.value);
    }

    /// The value every further [`Ramp::next`] returns, if it has landed.
    pub(crate) fn settled(&self) -> Option<f64> {
        self.is_settled().then_some(self.value)
    }

    /// Frames until the ramp lands on its target.
    pub(crate) fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    pub(crate) fn target(&self) -> f64 {
        self.target
    }

    pub(crate) fn is_settled(&self) -> bool {
        self.pos == self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_lands_exactly_on_target_after_its_length() {
        let mut r = Ramp::at(0.1);
        r.set_target(0.7, 3);
        assert_eq!([r.next(), r.next()].map(|v| v < 0.7), [true, true]);
        assert_eq!(r.next().to_bits(), 0.7f64.to_bits());
        assert!(r.is_settled());
        assert_eq!(r.next().to_bits(), 0.7f64.to_bits());
    }

    #[test]
    fn ramp_of_zero_frames_jumps_at_once() {
        let mut r = Ramp::at(1.0);
        r.set_target(0.0, 0);
        assert!(r.is_settled());
        assert_eq!(r.next(), 0.0);
    }

    #[test]
    fn retargeting_mid_ramp_starts_from_the_current_value() {
        let mut r = Ramp::at(0.0);
        r.set_target(1.0, 4);
        assert_eq!(r.next(), 0.25);
        r.set_target(0.0, 1);
        assert_eq!([r.next(), r.next()], [0.0, 0.0]);
        r.set_target(1.0, 2);
        assert_eq!([r.next(), r.next()], [0.5, 1.0]);
    }

    #[test]
    fn fill_matches_next_bit_for_bit() {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (from, to, len) in [
            (0.1, 0.7, 3),
            (1.0, 0.0, 0),
            (0.3, -2.5, 100),
            (5.0, 5.0, 7),
        ] {
            for chunk in [1, 2, 5, 64] {
                let mut a = Ramp::at(from);
                a.set_target(to, len);
                let mut b = a.clone();
                for _ in 0..4 {
                    let mut out = vec![0.0; chunk];
                    a.fill(&mut out);
                    let expected: Vec<f64> = (0..chunk).map(|_| b.next()).collect();
                    assert_eq!(bits(&out), bits(&expected));
                    assert_eq!(a.is_settled(), b.is_settled());
                }
            }
        }
    }

    #[test]
    fn frames_rounds_and_saturates() {
        assert_eq!(frames(0.02, 48_000), 960);
        assert_eq!(frames(0.0106, 1000), 11);
        assert_eq!(frames(f32::MAX, u32::MAX), u64::MAX);
    }
}
