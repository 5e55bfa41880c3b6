//! One voice: a sine oscillator with smoothed frequency and amplitude, through
//! its ADSR envelope.

use std::f64::consts::TAU;

use crate::command::VoiceParam;
use crate::envelope::Envelope;
use crate::params::VoiceParams;
use crate::smoother::{Ramp, SMOOTHING_SECONDS, frames};

#[derive(Clone, Debug)]
pub(crate) struct Voice {
    /// Oscillator phase in cycles, kept in [0, 1): f64 so that a tone whose
    /// period is a whole number of samples repeats exactly, for hours.
    phase: f64,
    freq: Ramp,
    amp: Ramp,
    env: Envelope,
}

impl Voice {
    /// Cold start: smoothers at their targets, phase 0, envelope at rest.
    pub(crate) fn settled(p: &VoiceParams) -> Voice {
        Voice {
            phase: 0.0,
            freq: Ramp::at(p.freq.into()),
            amp: Ramp::at(p.amp.into()),
            env: Envelope::settled(p),
        }
    }

    /// Reacts to a change of `param` (already stored in `p`).
    pub(crate) fn retarget(&mut self, param: VoiceParam, p: &VoiceParams, sample_rate: u32) {
        match param {
            VoiceParam::Freq => {
                let glide = if p.slide_time > 0.0 {
                    p.slide_time
                } else {
                    SMOOTHING_SECONDS
                };
                self.freq
                    .set_target(p.freq.into(), frames(glide, sample_rate));
            }
            VoiceParam::Amp => self
                .amp
                .set_target(p.amp.into(), frames(SMOOTHING_SECONDS, sample_rate)),
            // Read by the envelope and the next frequency change when they need them.
            VoiceParam::SlideTime
            | VoiceParam::Attack
            | VoiceParam::Decay
            | VoiceParam::Sustain
            | VoiceParam::Release => {}
        }
    }

    /// Reacts to a change of `p.gate`.
    pub(crate) fn gate(&mut self, p: &VoiceParams, sample_rate: u32) {
        self.env.gate(p, sample_rate);
    }

    /// Renders one frame.
    pub(crate) fn next(&mut self, p: &VoiceParams, sample_rate: u32) -> f64 {
        let freq = self.freq.next();
        let gain = self.amp.next() * self.env.next(p, sample_rate);
        let out = (TAU * self.phase).sin() * gain;
        // fract() of a non-negative value is in [0, 1), also for increments of
        // more than a cycle (tiny sample rates).
        self.phase = (self.phase + freq / f64::from(sample_rate)).fract();
        out
    }
}
