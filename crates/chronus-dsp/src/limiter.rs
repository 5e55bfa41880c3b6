//! The master safety limiter: the last stage before the device, after the
//! master gain and speech, so nothing the engine plays exceeds its ceiling.

use serde::{Deserialize, Serialize};

use crate::command::Bounds;

/// Range of the limiter's ceiling, in dB below full scale.
pub const LIMITER_CEILING_DB: Bounds = Bounds {
    min: -20.0,
    max: 0.0,
};

/// How long a peak holds the gain down before it recovers: a cycle at 50 Hz, so
/// the gain stays steady through the cycles of a held note instead of rising
/// between its crests and flattening each one.
const HOLD_SECONDS: f64 = 0.02;
/// How fast the gain then recovers: the held peak falls by a factor of e in
/// this time.
const RELEASE_SECONDS: f64 = 0.1;

/// Whether the limiter runs and its ceiling. Part of [`crate::Params`], so a cold
/// start and a fork copy keep it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimiterParams {
    pub on: bool,
    pub ceiling_db: f32,
}

impl Default for LimiterParams {
    /// On, 1 dB below full scale.
    fn default() -> LimiterParams {
        LimiterParams {
            on: true,
            ceiling_db: -1.0,
        }
    }
}

impl LimiterParams {
    /// The ceiling in range, or the default for a value that is not finite.
    pub(crate) fn sanitized(self) -> LimiterParams {
        LimiterParams {
            on: self.on,
            ceiling_db: if self.ceiling_db.is_finite() {
                LIMITER_CEILING_DB.clamp(self.ceiling_db)
            } else {
                LimiterParams::default().ceiling_db
            },
        }
    }

    /// The ceiling as the largest sample magnitude it lets through.
    pub fn ceiling(self) -> f32 {
        10f64.powf(f64::from(self.sanitized().ceiling_db) / 20.0) as f32
    }
}

/// Peak limiter with instant attack, a short hold and exponential release,
/// computed per frame from nothing but the samples, so it is deterministic and
/// independent of how rendering is split. Below the ceiling it changes nothing.
/// Off, it only clips at full scale as the device would.
#[derive(Clone, Debug)]
pub struct Limiter {
    on: bool,
    /// In `f32` first, so the limit holds after the output is narrowed to `f32`.
    ceiling: f32,
    /// Highest recent level above the ceiling, decaying; 0 when below it.
    peak: f64,
    /// Frames the peak is still held before it decays.
    hold_left: u32,
    hold: u32,
    /// Per-frame decay of the held peak.
    release: f64,
    /// Output samples (each channel) lowered by the gain or clipped.
    limited: u64,
}

impl Limiter {
    pub fn new(params: LimiterParams, sample_rate: u32) -> Limiter {
        let params = params.sanitized();
        Limiter {
            on: params.on,
            ceiling: if params.on { params.ceiling() } else { 1.0 },
            peak: 0.0,
            hold_left: 0,
            hold: (HOLD_SECONDS * f64::from(sample_rate)).round() as u32,
            release: (-1.0 / (RELEASE_SECONDS * f64::from(sample_rate.max(1)))).exp(),
            limited: 0,
        }
    }

    /// The output sample for one mono frame `x` played on `channels` channels:
    /// finite, and within the ceiling (within full scale when off). NaN and
    /// infinities become silence.
    #[inline]
    pub fn process(&mut self, x: f64, channels: usize) -> f32 {
        let x = if x.is_finite() { x } else { 0.0 };
        let ceiling = f64::from(self.ceiling);
        let mut lowered = false;
        let y = if self.on {
            let held = if self.hold_left > 0 {
                self.hold_left -= 1;
                self.peak
            } else {
                self.peak * self.release
            };
            if x.abs() > held {
                self.peak = x.abs();
                self.hold_left = self.hold;
            } else {
                self.peak = held;
            }
            if self.peak <= ceiling {
                self.peak = 0.0;
                x
            } else {
                lowered = x != 0.0;
                x * (ceiling / self.peak)
            }
        } else {
            x
        };
        let out = y as f32;
        // Narrowing can round a sample at the ceiling just past it.
        let clamped = out.clamp(-self.ceiling, self.ceiling);
        if lowered || clamped != out {
            self.limited += channels as u64;
        }
        clamped
    }

    /// Samples lowered or clipped so far (each channel counts).
    pub fn limited(&self) -> u64 {
        self.limited
    }
}
