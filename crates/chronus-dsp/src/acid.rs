//! The acid path on voice2 (`acid1`): drive into a four-pole resonant ladder
//! low-pass whose cutoff follows its own envelope, as on a TB-303.
//!
//! The ladder is the zero-delay-feedback form (Zavalishin, "The Art of VA
//! Filter Design"): four one-pole TPT stages with the feedback loop solved
//! per sample, stable for any cutoff the envelope sweeps to, with a soft
//! saturator at its input that keeps self-oscillation bounded.

use crate::command::Control;
use crate::dsp::{flush, max_cutoff, soft_clip, tan_pi};
use crate::params::AcidParams;
use crate::smoother::{Ramp, SMOOTHING_SECONDS, frames};

/// The filter envelope's attack: a short chirp.
const ATTACK_SECONDS: f32 = 0.001;
/// How fast the envelope falls when the gate closes.
const RELEASE_SECONDS: f64 = 0.01;
/// The envelope is over below this level.
const ENV_FLOOR: f64 = 1e-5;
/// Accented notes play this much louder at full accent.
const ACCENT_GAIN: f64 = 0.5;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    Idle,
    Attack,
    Decay,
    Release,
}

/// A 1 ms attack, then an exponential fall to −40 dB over the decay (or, once
/// the gate closes, the release) time.
#[derive(Clone, Debug)]
struct Envelope {
    stage: Stage,
    level: f64,
    attack_step: f64,
    /// Per-frame multiplier of the current decay or release.
    fall: f64,
}

impl Envelope {
    fn new() -> Envelope {
        Envelope {
            stage: Stage::Idle,
            level: 0.0,
            attack_step: 1.0,
            fall: 0.0,
        }
    }

    /// Attacks from the current level, then decays over `decay` seconds.
    fn trigger(&mut self, decay: f32, sample_rate: u32) {
        self.stage = Stage::Attack;
        self.attack_step = 1.0 / frames(ATTACK_SECONDS, sample_rate).max(1) as f64;
        // Down to 1 % (−40 dB) over the decay time.
        self.fall = 0.01f64.powf(1.0 / (f64::from(decay) * f64::from(sample_rate)).max(1.0));
    }

    fn release(&mut self, sample_rate: u32) {
        if self.stage != Stage::Idle {
            self.stage = Stage::Release;
            self.fall = 0.01f64.powf(1.0 / (RELEASE_SECONDS * f64::from(sample_rate)).max(1.0));
        }
    }

    fn next(&mut self) -> f64 {
        match self.stage {
            Stage::Idle => {}
            Stage::Attack => {
                self.level += self.attack_step;
                if self.level >= 1.0 {
                    self.level = 1.0;
                    self.stage = Stage::Decay;
                }
            }
            Stage::Decay | Stage::Release => {
                self.level *= self.fall;
                if self.level < ENV_FLOOR {
                    self.level = 0.0;
                    self.stage = Stage::Idle;
                }
            }
        }
        self.level
    }
}

/// Values of the smoothed controls at one frame.
#[derive(Clone, Copy, Debug)]
struct Knobs {
    base: f64,
    res: f64,
    env_amount: f64,
    drive: f64,
    mix: f64,
    vol_comp: f64,
    accent_gain: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct Acid {
    cutoff: Ramp,
    res: Ramp,
    env_amount: Ramp,
    drive: Ramp,
    mix: Ramp,
    vol_comp: Ramp,
    env: Envelope,
    /// The accent's own, shorter envelope (`accent_decay`).
    accent_env: Envelope,
    /// Accent of the note playing (0..1).
    accent: f64,
    /// Cutoff (Hz) and resonance the note's accent adds.
    accent_cutoff: f64,
    accent_res: f64,
    accent_gain: Ramp,
    stages: [f64; 4],
    /// Cutoff the coefficients were computed for, G = g/(1+g) and 1/(1+g).
    tuned: f64,
    big_g: f64,
    beta: f64,
    /// Drive the level trim after the saturator was computed for, and the trim.
    drive_tuned: f64,
    drive_trim: f64,
}

impl Acid {
    pub(crate) fn new(p: &AcidParams) -> Acid {
        Acid {
            cutoff: Ramp::at(p.cutoff.into()),
            res: Ramp::at(p.res.into()),
            env_amount: Ramp::at(p.env_amount.into()),
            drive: Ramp::at(p.drive.into()),
            mix: Ramp::at(p.mix.into()),
            vol_comp: Ramp::at(p.vol_comp.into()),
            env: Envelope::new(),
            accent_env: Envelope::new(),
            accent: 0.0,
            accent_cutoff: 0.0,
            accent_res: 0.0,
            accent_gain: Ramp::at(1.0),
            stages: [0.0; 4],
            tuned: f64::NAN,
            big_g: 0.0,
            beta: 0.0,
            drive_tuned: f64::NAN,
            drive_trim: 1.0,
        }
    }

    /// Reacts to a change of `control` (already stored in `p`).
    pub(crate) fn retarget(&mut self, control: Control, p: &AcidParams, sample_rate: u32) {
        let smooth = frames(SMOOTHING_SECONDS, sample_rate);
        let (ramp, value) = match control {
            Control::AcidCutoff => (&mut self.cutoff, p.cutoff),
            Control::AcidRes => (&mut self.res, p.res),
            Control::AcidEnvAmount => (&mut self.env_amount, p.env_amount),
            Control::AcidDrive => (&mut self.drive, p.drive),
            Control::AcidMix => (&mut self.mix, p.mix),
            Control::AcidVolComp => (&mut self.vol_comp, p.vol_comp),
            // Decay and the accent's controls are read when a note starts.
            _ => return,
        };
        ramp.set_target(value.into(), smooth);
    }

    /// Voice2's gate opened (`accent` 0 for a plain note) or closed.
    pub(crate) fn gate(&mut self, on: bool, accent: f64, p: &AcidParams, sample_rate: u32) {
        if on {
            self.env.trigger(p.decay, sample_rate);
            self.accent_env.trigger(p.accent_decay, sample_rate);
            self.accent = accent * f64::from(p.accent);
            self.accent_cutoff = self.accent * f64::from(p.cutoff_offset);
            self.accent_res = self.accent * f64::from(p.res_accent_boost);
            self.accent_gain.set_target(
                1.0 + ACCENT_GAIN * self.accent,
                frames(ATTACK_SECONDS, sample_rate),
            );
        } else {
            self.env.release(sample_rate);
            self.accent_env.release(sample_rate);
        }
    }

    /// Processes a block of voice2, in place.
    pub(crate) fn render(&mut self, block: &mut [f64], sample_rate: u32) {
        if let Some(knobs) = self.settled_knobs() {
            for x in block {
                *x = self.process(*x, knobs, sample_rate);
            }
        } else {
            for x in block {
                let knobs = self.knobs();
                *x = self.process(*x, knobs, sample_rate);
            }
        }
    }

    /// The knobs of every frame while none of them moves.
    fn settled_knobs(&self) -> Option<Knobs> {
        Some(Knobs {
            base: self.cutoff.settled()?,
            res: self.res.settled()?,
            env_amount: self.env_amount.settled()?,
            drive: self.drive.settled()?,
            mix: self.mix.settled()?,
            vol_comp: self.vol_comp.settled()?,
            accent_gain: self.accent_gain.settled()?,
        })
    }

    /// The knobs of the next frame.
    fn knobs(&mut self) -> Knobs {
        Knobs {
            base: self.cutoff.next(),
            res: self.res.next(),
            env_amount: self.env_amount.next(),
            drive: self.drive.next(),
            mix: self.mix.next(),
            vol_comp: self.vol_comp.next(),
            accent_gain: self.accent_gain.next(),
        }
    }

    #[inline(always)]
    fn process(&mut self, x: f64, knobs: Knobs, sample_rate: u32) -> f64 {
        // With no accent both terms are exactly 0, so a plain note is unchanged.
        let env = self.env.next() + self.accent_env.next() * self.accent;
        let Knobs {
            base,
            res,
            env_amount,
            drive,
            mix,
            vol_comp,
            accent_gain,
        } = knobs;
        if mix == 0.0 {
            return x;
        }
        if x == 0.0 && self.stages == [0.0; 4] {
            return 0.0;
        }
        let bounds = Control::AcidCutoff.bounds();
        let cutoff = (base + env * env_amount + self.accent_cutoff)
            .clamp(bounds.min.into(), bounds.max.into())
            .min(max_cutoff(sample_rate));
        // Less resonance at low cutoffs, standing in for the 303's high-pass
        // in the feedback path.
        let res_scale = (cutoff / 400.0).min(1.0) * 0.8 + 0.2;
        let k = 4.0 * (res * res_scale + self.accent_res).min(0.98);
        if cutoff != self.tuned {
            self.tuned = cutoff;
            let g = tan_pi(cutoff / f64::from(sample_rate));
            self.big_g = g / (1.0 + g);
            self.beta = 1.0 / (1.0 + g);
        }
        let (g1, s) = (self.big_g, &mut self.stages);
        if drive != self.drive_tuned {
            self.drive_tuned = drive;
            self.drive_trim = 1.0 / (1.0 + 0.8 * drive);
        }
        let driven = soft_clip(x * (1.0 + 4.0 * drive)) * self.drive_trim;
        // Each stage is y = G·in + β·s; solving the loop for the ladder input u.
        let g2 = g1 * g1;
        let sigma = self.beta * (g2 * g1 * s[0] + g2 * s[1] + g1 * s[2] + s[3]);
        let mut y = soft_clip((driven - k * sigma) / (1.0 + k * g2 * g2));
        for state in s.iter_mut() {
            let v = (y - *state) * g1;
            y = v + *state;
            *state = flush(y + v);
        }
        if !y.is_finite() {
            *s = [0.0; 4];
            return x;
        }
        // The ladder's passband drops by 1 + k; vol_comp makes that up.
        let wet = (y * (1.0 + k * vol_comp)).clamp(-0.98, 0.98) * accent_gain;
        x * (1.0 - mix) + wet * mix
    }
}
