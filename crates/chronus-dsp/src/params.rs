//! Parameter state: what the supervisor mirrors and a cold start rebuilds from.

use serde::{Deserialize, Serialize};

use crate::command::{Bounds, Command, MASTER_GAIN, VoiceParam};

/// Targets of one voice (not where its smoothers and envelope currently are).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoiceParams {
    pub freq: f32,
    pub amp: f32,
    pub slide_time: f32,
    pub attack: f32,
    pub decay: f32,
    pub sustain: f32,
    pub release: f32,
    pub gate: bool,
}

impl Default for VoiceParams {
    fn default() -> VoiceParams {
        VoiceParams {
            freq: 440.0,
            amp: 0.3,
            slide_time: 0.0,
            attack: 0.01,
            decay: 0.1,
            sustain: 0.7,
            release: 0.5,
            gate: false,
        }
    }
}

impl VoiceParams {
    pub fn get(&self, param: VoiceParam) -> f32 {
        match param {
            VoiceParam::Freq => self.freq,
            VoiceParam::Amp => self.amp,
            VoiceParam::SlideTime => self.slide_time,
            VoiceParam::Attack => self.attack,
            VoiceParam::Decay => self.decay,
            VoiceParam::Sustain => self.sustain,
            VoiceParam::Release => self.release,
        }
    }

    fn get_mut(&mut self, param: VoiceParam) -> &mut f32 {
        match param {
            VoiceParam::Freq => &mut self.freq,
            VoiceParam::Amp => &mut self.amp,
            VoiceParam::SlideTime => &mut self.slide_time,
            VoiceParam::Attack => &mut self.attack,
            VoiceParam::Decay => &mut self.decay,
            VoiceParam::Sustain => &mut self.sustain,
            VoiceParam::Release => &mut self.release,
        }
    }
}

/// The whole parameter state: every voice's targets and gate, and the master gain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub voices: Vec<VoiceParams>,
    pub master_gain: f32,
}

impl Params {
    /// `num_voices` voices at their defaults, gates closed, master gain 1.
    pub fn new(num_voices: u8) -> Params {
        Params {
            voices: vec![VoiceParams::default(); usize::from(num_voices)],
            master_gain: 1.0,
        }
    }

    /// Applies `cmd` exactly as [`crate::Engine::apply`] does to its parameters:
    /// values clamped, non-finite commands and unknown voices ignored.
    pub fn apply(&mut self, cmd: &Command) {
        let Some(cmd) = cmd.normalized() else {
            return;
        };
        match cmd {
            Command::SetVoice {
                voice,
                param,
                value,
            } => {
                if let Some(v) = self.voices.get_mut(usize::from(voice)) {
                    *v.get_mut(param) = value;
                }
            }
            Command::Gate { voice, on } => {
                if let Some(v) = self.voices.get_mut(usize::from(voice)) {
                    v.gate = on;
                }
            }
            Command::Fade { gain, .. } => self.master_gain = gain,
        }
    }

    /// A copy whose values are all finite and in range (NaN/Inf become the
    /// default), for parameters that came from a snapshot or another process.
    pub fn sanitized(&self) -> Params {
        let defaults = VoiceParams::default();
        let mut out = self.clone();
        for v in &mut out.voices {
            for param in VoiceParam::ALL {
                let value = v.get_mut(param);
                *value = sanitize(*value, param.bounds(), defaults.get(param));
            }
        }
        out.master_gain = sanitize(self.master_gain, MASTER_GAIN, 1.0);
        out
    }
}

fn sanitize(value: f32, bounds: Bounds, default: f32) -> f32 {
    if value.is_finite() {
        bounds.clamp(value)
    } else {
        default
    }
}
