//! The engine: parameters, per-voice DSP state and the absolute frame counter.

use crate::CHANNELS;
use crate::command::Command;
use crate::params::Params;
use crate::smoother::{Ramp, frames};
use crate::voice::Voice;

/// Renders interleaved stereo from [`Command`]s, deterministically: the output
/// depends only on the starting state and on which commands were applied before
/// which frame, never on how rendering is split into [`Engine::render`] calls.
#[derive(Clone, Debug)]
pub struct Engine {
    sample_rate: u32,
    params: Params,
    voices: Vec<Voice>,
    master: Ramp,
    frame: u64,
}

impl Engine {
    /// Frame 0, default parameters. A sample rate of 0 is taken as 1 Hz.
    pub fn new(sample_rate: u32, num_voices: u8) -> Engine {
        Engine::from_params(sample_rate, &Params::new(num_voices), 0)
    }

    /// Cold start at `frame`: smoothers already at their targets, oscillators at
    /// phase 0, envelopes of gated voices at sustain. Values out of range are
    /// clamped and NaN/Inf replaced by defaults (see [`Params::sanitized`]).
    pub fn from_params(sample_rate: u32, params: &Params, frame: u64) -> Engine {
        let params = params.sanitized();
        Engine {
            sample_rate: sample_rate.max(1),
            voices: params.voices.iter().map(Voice::settled).collect(),
            master: Ramp::at(params.master_gain.into()),
            params,
            frame,
        }
    }

    /// Applies `cmd` before the next rendered frame. Values are clamped into range;
    /// commands with NaN/Inf values or for voices this engine lacks are ignored.
    pub fn apply(&mut self, cmd: &Command) {
        let Some(cmd) = cmd.normalized() else {
            return;
        };
        self.params.apply(&cmd);
        let sample_rate = self.sample_rate;
        match cmd {
            Command::SetVoice { voice, param, .. } => {
                if let Some((v, p)) = self.voice(voice) {
                    v.retarget(param, p, sample_rate);
                }
            }
            Command::Gate { voice, .. } => {
                if let Some((v, p)) = self.voice(voice) {
                    v.gate(p, sample_rate);
                }
            }
            Command::Fade { gain, seconds } => self
                .master
                .set_target(gain.into(), frames(seconds, sample_rate)),
        }
    }

    fn voice(&mut self, index: u8) -> Option<(&mut Voice, &crate::VoiceParams)> {
        let i = usize::from(index);
        Some((self.voices.get_mut(i)?, self.params.voices.get(i)?))
    }

    /// Fills `out` with whole interleaved frames and advances the frame counter
    /// by that many. Samples are finite and within [-1, 1]. A trailing partial
    /// frame (if `out.len()` is not a multiple of [`CHANNELS`]) is zeroed.
    /// Never allocates.
    pub fn render(&mut self, out: &mut [f32]) {
        let mut frames = out.chunks_exact_mut(CHANNELS);
        for frame in &mut frames {
            let mut sum = 0.0;
            for (voice, p) in self.voices.iter_mut().zip(&self.params.voices) {
                sum += voice.next(p, self.sample_rate);
            }
            frame.fill(sanitize((sum * self.master.next()) as f32));
            self.frame = self.frame.wrapping_add(1);
        }
        frames.into_remainder().fill(0.0);
    }

    /// The absolute frame the next [`Engine::render`] starts at.
    pub fn frame(&self) -> u64 {
        self.frame
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
}

/// Flushes NaN/Inf to silence and clips to full scale, so nothing a command does
/// can send garbage to the device.
fn sanitize(sample: f32) -> f32 {
    if sample.is_finite() {
        sample.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}
