//! When each frame is handed to the device, as the device's steady pace puts it.
//! A sound server calls back late now and then and catches up with callbacks in a
//! row (PipeWire and PulseAudio at 64 frames on a busy box: 2 to 4 periods late at
//! worst), but hardly ever hands a frame over early (a stream's first fill aside,
//! which leaves the window within 100 ms). So the earliest time any
//! recent callback implies for frame 0 (its start time less its frame at the nominal
//! rate) is the steady pace, and a late callback does not move it: an OSC timetag
//! maps to the frame that pace hands over at that moment. Taken raw, each late
//! callback would move that frame by its lateness.
//!
//! "Recent" is between half a window and a window (50 to 100 ms), long enough to hold
//! callbacks on time around the late ones, short enough that a pace that moved later
//! (a server that resynchronised its clock after a stall) or a device clock off its
//! nominal rate is followed; a callback far later than the pace (a device reopened,
//! the null clock taking over, a stream that paused) starts the pace again from itself.
//!
//! Integer arithmetic only: the audio callback runs it.

/// How long a callback's pace is remembered: half of it at least, all of it at most.
/// A device clock 100 ppm off its rate moves 10 us in that time.
const WINDOW_NS: u64 = 100_000_000;
/// A callback later than the pace by this much (or by four of its spans, if more) is
/// more than jitter: the clock changed, and the pace starts again from that callback
/// (which still counts as late).
const RESTART_NS: u64 = 20_000_000;

/// What [`FrameClock::tick`] makes of a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// When the device's pace hands the callback's first frame over (CLOCK_MONOTONIC ns).
    pub at: u64,
    /// The callback started more than its own frames' time after that.
    pub late: bool,
}

/// The device's pace: frame 0's time on it, the earliest of the recent callbacks.
pub struct FrameClock {
    sample_rate: u64,
    /// The earliest frame-0 time (ns) of the callbacks in the current half window,
    /// and of the half window before it.
    current: Option<u64>,
    previous: Option<u64>,
    current_since: u64,
    last_frame: Option<u64>,
}

impl FrameClock {
    pub fn new(sample_rate: u32) -> FrameClock {
        FrameClock {
            sample_rate: u64::from(sample_rate.max(1)),
            current: None,
            previous: None,
            current_since: 0,
            last_frame: None,
        }
    }

    /// A callback starts handing `frames` frames from `frame` over at `now_ns`:
    /// returns the time the device's pace gives that frame (never later than
    /// `now_ns`), and whether the callback came more than its own frames' time late.
    pub fn tick(&mut self, frame: u64, frames: u64, now_ns: u64) -> Tick {
        let frame_ns = self.frames_to_ns(frame);
        let zero = now_ns.saturating_sub(frame_ns);
        let span_ns = self
            .last_frame
            .filter(|&last| frame > last)
            .map(|last| self.frames_to_ns(frame - last));
        self.last_frame = Some(frame);
        let pace = self.current.into_iter().chain(self.previous).min();
        match (span_ns, pace) {
            (Some(span), Some(pace)) if zero <= pace + RESTART_NS.max(4 * span) => {
                if now_ns.saturating_sub(self.current_since) >= WINDOW_NS / 2 {
                    self.previous = self.current;
                    self.current = Some(zero);
                    self.current_since = now_ns;
                } else {
                    self.current = self.current.map(|c| c.min(zero));
                }
            }
            (span, old) => {
                self.previous = None;
                self.current = Some(zero);
                self.current_since = now_ns;
                // A clock that stalled past the limit came late; a first callback
                // or a timeline started again did not.
                return Tick {
                    at: now_ns,
                    late: span.is_some() && old.is_some(),
                };
            }
        }
        let pace = self.current.into_iter().chain(self.previous).min();
        let at = pace.map_or(now_ns, |pace| (pace + frame_ns).min(now_ns));
        Tick {
            at,
            late: now_ns - at > self.frames_to_ns(frames),
        }
    }

    fn frames_to_ns(&self, frames: u64) -> u64 {
        (u128::from(frames) * 1_000_000_000 / u128::from(self.sample_rate)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const NS_PER_FRAME: f64 = 1e9 / RATE as f64;

    /// A small deterministic generator, so a failure repeats.
    struct Lcg(u64);
    impl Lcg {
        fn unit(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Feeds callbacks of `sizes` frames from a device whose frames last `ns_per_frame`,
    /// each starting `late(i)` ns after its steady time; returns, per callback after
    /// the first `settle` seconds, (filtered - steady, raw - steady) in ns.
    fn run(
        seconds: f64,
        ns_per_frame: f64,
        mut size: impl FnMut(usize) -> u64,
        mut late: impl FnMut(usize) -> f64,
        settle: f64,
    ) -> Vec<(f64, f64)> {
        let mut clock = FrameClock::new(RATE);
        let start = 1e12;
        let (mut frame, mut out, mut i) = (0u64, Vec::new(), 0);
        while (frame as f64) < seconds * f64::from(RATE) {
            let steady = start + frame as f64 * ns_per_frame;
            let raw = steady + late(i);
            let n = size(i);
            let filtered = clock.tick(frame, n, raw as u64).at as f64;
            if frame as f64 >= settle * f64::from(RATE) {
                out.push((filtered - steady, raw - steady));
            }
            frame += n;
            i += 1;
        }
        out
    }

    fn worst(errors: &[(f64, f64)], pick: impl Fn(&(f64, f64)) -> f64) -> f64 {
        errors.iter().map(|e| pick(e).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn late_and_bursty_callbacks_do_not_move_the_frame_clock() {
        // A 64-frame stream as PipeWire serves it on a busy box: up to 20 us of
        // jitter, and one callback in a hundred 1 to 4 periods late, the next ones
        // catching up.
        let mut rng = Lcg(7);
        let period = 64.0 * NS_PER_FRAME;
        let mut behind = 0.0f64;
        let errors = run(
            20.0,
            NS_PER_FRAME,
            |_| 64,
            |_| {
                behind = if rng.unit() < 0.01 {
                    period * (1.0 + 3.0 * rng.unit())
                } else {
                    (behind - 0.5 * period).max(0.0)
                };
                behind + rng.unit() * 20e3
            },
            0.5,
        );
        let raw = worst(&errors, |e| e.1);
        let filtered = worst(&errors, |e| e.0);
        assert!(raw > 2.0 * period, "the drill has late callbacks: {raw} ns");
        assert!(
            filtered < 20e3,
            "the frame clock strays {filtered} ns from the steady pace (raw: {raw} ns)"
        );
    }

    #[test]
    fn uneven_callback_sizes_keep_the_pace() {
        // PulseAudio asked for 64 frames hands 72 to 79 at a time.
        let mut rng = Lcg(11);
        let errors = run(
            10.0,
            NS_PER_FRAME,
            |_| 72 + (rng.unit() * 8.0) as u64,
            |_| 0.0,
            0.0,
        );
        assert!(worst(&errors, |e| e.0) < 1e3, "{:?}", errors.last());
    }

    #[test]
    fn a_device_clock_off_its_nominal_rate_is_followed() {
        // 0.1 % slow, ten times what a sound card is off by: 1 ms of drift a second.
        let errors = run(10.0, NS_PER_FRAME * 1.001, |_| 256, |_| 0.0, 1.0);
        assert!(worst(&errors, |e| e.0) < 110e3, "{:?}", errors.last());
    }

    #[test]
    fn a_clock_that_moved_later_is_followed() {
        // A server that resynchronised its clock 5 ms later after a stall: followed
        // once the earlier pace leaves the window; a stream that paused 300 ms (the
        // null clock taking over from a lost device) at once.
        let period = 256.0 * NS_PER_FRAME;
        for (step, within) in [(5e6, WINDOW_NS as f64), (300e6, 0.0)] {
            let mut i = 0usize;
            let errors = run(
                4.0,
                NS_PER_FRAME,
                |_| 256,
                |_| {
                    i += 1;
                    if i as f64 * period > 2e9 { step } else { 0.0 }
                },
                0.0,
            );
            let after = errors
                .iter()
                .enumerate()
                .filter(|(k, _)| *k as f64 * period > 2e9 + within + period)
                .map(|(_, e)| (e.0 - step).abs())
                .fold(0.0, f64::max);
            assert!(after < 1e3, "a step of {step} ns: {after} ns off after it");
        }
    }

    #[test]
    fn a_frame_that_does_not_move_forward_restarts_the_pace() {
        let mut clock = FrameClock::new(RATE);
        let period = (256.0 * NS_PER_FRAME) as u64;
        let mut now = 1_000_000_000_000u64;
        for i in 0..100 {
            clock.tick(i * 256, 256, now);
            now += period;
        }
        // A stream started again from frame 0 (the timeline before it starts).
        let at = |at| Tick { at, late: false };
        assert_eq!(clock.tick(0, 256, now), at(now));
        assert_eq!(clock.tick(256, 256, now + period + 7), at(now + period));
    }

    #[test]
    fn a_callback_is_late_when_it_starts_past_its_own_frames() {
        let mut clock = FrameClock::new(RATE);
        let period = (64.0 * NS_PER_FRAME) as u64;
        let mut now = 1_000_000_000_000u64;
        for i in 0..10 {
            assert!(!clock.tick(i * 64, 64, now).late);
            now += period;
        }
        // Within a period of the pace: on time. Past it: late, and the next one,
        // caught up, on time again.
        assert!(!clock.tick(640, 64, now + period - 1_000).late);
        assert!(clock.tick(704, 64, now + 2 * period + 1_000).late);
        assert!(!clock.tick(768, 64, now + 2 * period + 2_000).late);
        // A stall past the restart limit is late too.
        assert!(clock.tick(832, 64, now + 30_000_000).late);
    }
}
