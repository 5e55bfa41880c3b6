//! Linear ramps that land exactly on their target.

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
    fn frames_rounds_and_saturates() {
        assert_eq!(frames(0.02, 48_000), 960);
        assert_eq!(frames(0.0106, 1000), 11);
        assert_eq!(frames(f32::MAX, u32::MAX), u64::MAX);
    }
}
