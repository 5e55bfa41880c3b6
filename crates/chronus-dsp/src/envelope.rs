//! Linear ADSR envelope.

use crate::params::VoiceParams;
use crate::smoother::{Ramp, SMOOTHING_SECONDS, frames};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Idle,
    Attack,
    Decay,
    Sustain,
    Release,
}

/// Each segment takes its set time from wherever the level is when it starts,
/// reading the times when the segment starts (a change applies to the next one).
#[derive(Clone, Debug)]
pub(crate) struct Envelope {
    stage: Stage,
    level: Ramp,
}

impl Envelope {
    /// Where the envelope rests for these parameters: at sustain when gated.
    pub(crate) fn settled(p: &VoiceParams) -> Envelope {
        if p.gate {
            Envelope {
                stage: Stage::Sustain,
                level: Ramp::at(p.sustain.into()),
            }
        } else {
            Envelope {
                stage: Stage::Idle,
                level: Ramp::at(0.0),
            }
        }
    }

    /// Opens (attack from the current level) or closes (release) the gate.
    pub(crate) fn gate(&mut self, on: bool, p: &VoiceParams, sample_rate: u32) {
        if on {
            self.stage = Stage::Attack;
            self.level.set_target(1.0, frames(p.attack, sample_rate));
        } else if matches!(self.stage, Stage::Attack | Stage::Decay | Stage::Sustain) {
            self.stage = Stage::Release;
            self.level.set_target(0.0, frames(p.release, sample_rate));
        }
    }

    /// Fills `out` with the levels of the next `out.len()` calls to
    /// [`Envelope::next`], bit for bit: ramps are filled in runs, and every
    /// frame at which the stage may change goes through next() itself.
    /// Closed and finished: every frame it fills is 0 until the gate opens.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.stage, Stage::Idle) && self.level.settled() == Some(0.0)
    }

    pub(crate) fn fill(&mut self, out: &mut [f64], p: &VoiceParams, sample_rate: u32) {
        let mut t = 0;
        while t < out.len() {
            if self.is_steady(p) {
                self.level.fill(&mut out[t..]);
                return;
            }
            // Only the frame on which the ramp lands can change the stage (in
            // Sustain, the next frame retargets the ramp).
            let run = if self.stage == Stage::Sustain {
                1
            } else {
                usize::try_from(self.level.remaining()).map_or(usize::MAX, |r| r.max(1))
            }
            .min(out.len() - t);
            let (body, last) = out[t..t + run].split_at_mut(run - 1);
            self.level.fill(body);
            last[0] = self.next(p, sample_rate);
            t += run;
        }
    }

    /// In a stage that lasts until the gate changes (idle, or sustain at the
    /// set level), where the level ramps at most to its target.
    fn is_steady(&self, p: &VoiceParams) -> bool {
        match self.stage {
            Stage::Idle => true,
            Stage::Sustain => self.level.target() == f64::from(p.sustain),
            Stage::Attack | Stage::Decay | Stage::Release => false,
        }
    }

    /// The level every frame [`Envelope::fill`] would fill has, if they are
    /// all one (steady and not ramping); filling them would change nothing else.
    pub(crate) fn held(&self, p: &VoiceParams) -> Option<f64> {
        self.level.settled().filter(|_| self.is_steady(p))
    }

    /// Advances one frame and returns the level.
    #[inline]
    pub(crate) fn next(&mut self, p: &VoiceParams, sample_rate: u32) -> f64 {
        let level = self.level.next();
        match self.stage {
            // Follow sustain changes, smoothed so they do not click.
            Stage::Sustain if self.level.target() != f64::from(p.sustain) => self
                .level
                .set_target(p.sustain.into(), frames(SMOOTHING_SECONDS, sample_rate)),
            Stage::Sustain => {}
            _ if !self.level.is_settled() => {}
            Stage::Attack => {
                self.stage = Stage::Decay;
                self.level
                    .set_target(p.sustain.into(), frames(p.decay, sample_rate));
            }
            Stage::Decay => self.stage = Stage::Sustain,
            Stage::Release => self.stage = Stage::Idle,
            Stage::Idle => {}
        }
        level
    }
}
