//! One voice: an oscillator (crossfading when its waveform changes) through
//! a resonant low-pass, then the amplitude (smoothed level × velocity × ADSR).
//! The filter comes before the envelope, as in a classic VCO → VCF → VCA
//! voice, so a closed envelope is exact silence.

use crate::command::VoiceParam;
use crate::dsp::{Svf, advance_phase};
use crate::envelope::Envelope;
use crate::osc::{self, Noise};
use crate::params::VoiceParams;
use crate::smoother::{Ramp, SMOOTHING_SECONDS, frames};

/// How long a waveform change crossfades.
const OSC_CROSSFADE_SECONDS: f32 = 0.01;
/// How fast a sequencer hit's velocity takes over: short enough to shape the
/// attack, long enough not to click when a note is retriggered.
const VELOCITY_SECONDS: f32 = 0.002;

/// Per-frame modulation from an LFO, one multiplier per frame.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Modulation<'a> {
    None,
    /// Of the filter cutoff (lfo1 on voice2).
    Cutoff(&'a [f64]),
    /// Of the amplitude (lfo2 on voice3).
    Gain(&'a [f64]),
}

/// What a sequencer hit sets besides opening the gate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit {
    pub(crate) freq: Option<f32>,
    pub(crate) cutoff: Option<f32>,
    pub(crate) velocity: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct Voice {
    /// Oscillator phase in cycles, kept in [0, 1): f64 so that a tone whose
    /// period is a whole number of samples repeats exactly, for hours.
    phase: f64,
    freq: Ramp,
    amp: Ramp,
    velocity: Ramp,
    cutoff: Ramp,
    q: Ramp,
    send_reverb: Ramp,
    send_delay: Ramp,
    env: Envelope,
    osc: u8,
    /// The waveform being faded out, and how far the fade is (0 → 1).
    prev_osc: u8,
    crossfade: Ramp,
    noise: Noise,
    filter: Svf,
    /// 1 / sample rate.
    frame_seconds: f64,
}

impl Voice {
    /// Cold start: smoothers at their targets, phase 0, envelope at rest, the
    /// noise generator seeded by the voice's index.
    pub(crate) fn settled(p: &VoiceParams, index: usize, sample_rate: u32) -> Voice {
        Voice {
            phase: 0.0,
            freq: Ramp::at(p.freq.into()),
            amp: Ramp::at(p.amp.into()),
            velocity: Ramp::at(1.0),
            cutoff: Ramp::at(p.filter_freq.into()),
            q: Ramp::at(p.filter_q.into()),
            send_reverb: Ramp::at(p.send_reverb.into()),
            send_delay: Ramp::at(p.send_delay.into()),
            env: Envelope::settled(p),
            osc: p.osc,
            prev_osc: p.osc,
            crossfade: Ramp::at(1.0),
            noise: Noise::new(index as u64 + 1),
            filter: Svf::new(),
            frame_seconds: 1.0 / f64::from(sample_rate),
        }
    }

    /// Reacts to a change of `param` (already stored in `p`).
    pub(crate) fn retarget(&mut self, param: VoiceParam, p: &VoiceParams, sample_rate: u32) {
        let smooth = frames(SMOOTHING_SECONDS, sample_rate);
        match param {
            VoiceParam::Freq => self.glide_to(p.freq, p, sample_rate),
            VoiceParam::Amp => self.amp.set_target(p.amp.into(), smooth),
            VoiceParam::FilterFreq => self.cutoff.set_target(p.filter_freq.into(), smooth),
            VoiceParam::FilterQ => self.q.set_target(p.filter_q.into(), smooth),
            VoiceParam::SendReverb => self.send_reverb.set_target(p.send_reverb.into(), smooth),
            VoiceParam::SendDelay => self.send_delay.set_target(p.send_delay.into(), smooth),
            VoiceParam::Osc if p.osc != self.osc => {
                self.prev_osc = self.osc;
                self.osc = p.osc;
                self.crossfade = Ramp::at(0.0);
                self.crossfade
                    .set_target(1.0, frames(OSC_CROSSFADE_SECONDS, sample_rate));
            }
            // Read by the envelope and the next frequency change when they need them.
            VoiceParam::Osc
            | VoiceParam::SlideTime
            | VoiceParam::Attack
            | VoiceParam::Decay
            | VoiceParam::Sustain
            | VoiceParam::Release => {}
        }
    }

    fn glide_to(&mut self, freq: f32, p: &VoiceParams, sample_rate: u32) {
        let glide = if p.slide_time > 0.0 {
            p.slide_time
        } else {
            SMOOTHING_SECONDS
        };
        self.freq
            .set_target(freq.into(), frames(glide, sample_rate));
    }

    /// Opens or closes the gate by hand: a note at full velocity, whatever
    /// the sequencer last played.
    pub(crate) fn gate(&mut self, on: bool, p: &VoiceParams, sample_rate: u32) {
        if on {
            self.velocity
                .set_target(1.0, frames(VELOCITY_SECONDS, sample_rate));
        }
        self.env.gate(on, p, sample_rate);
    }

    /// A sequencer hit: takes its note, cutoff and velocity, then opens the gate.
    pub(crate) fn hit(&mut self, hit: Hit, p: &VoiceParams, sample_rate: u32) {
        if let Some(freq) = hit.freq {
            self.glide_to(freq, p, sample_rate);
        }
        if let Some(cutoff) = hit.cutoff {
            let cutoff = VoiceParam::FilterFreq.bounds().clamp(cutoff);
            self.cutoff
                .set_target(cutoff.into(), frames(SMOOTHING_SECONDS, sample_rate));
        }
        self.velocity
            .set_target(hit.velocity, frames(VELOCITY_SECONDS, sample_rate));
        self.env.gate(true, p, sample_rate);
    }

    /// Renders `out.len()` frames into `out`, with the reverb and delay send
    /// levels of each frame in `sends`; `modulation` has one entry per frame
    /// (or is empty for none).
    pub(crate) fn render(
        &mut self,
        p: &VoiceParams,
        sample_rate: u32,
        modulation: Modulation<'_>,
        out: &mut [f64],
        sends: &mut [[f64; 2]],
    ) {
        for (t, (out, sends)) in out.iter_mut().zip(sends).enumerate() {
            let (cutoff, gain) = match modulation {
                Modulation::None => (1.0, 1.0),
                Modulation::Cutoff(m) => (m[t], 1.0),
                Modulation::Gain(m) => (1.0, m[t]),
            };
            *out = self.next(p, sample_rate, cutoff, gain, sends);
        }
    }

    #[inline(always)]
    fn next(
        &mut self,
        p: &VoiceParams,
        sample_rate: u32,
        cutoff_mod: f64,
        gain_mod: f64,
        sends: &mut [f64; 2],
    ) -> f64 {
        let freq = self.freq.next();
        let cutoff = self.cutoff.next() * cutoff_mod;
        let level = self.amp.next() * self.velocity.next();
        let q = self.q.next();
        let fade = self.crossfade.next();
        *sends = [self.send_reverb.next(), self.send_delay.next()];
        let gain = level * self.env.next(p, sample_rate) * gain_mod;
        let dt = freq * self.frame_seconds;
        let phase = self.phase;
        self.phase = advance_phase(phase, dt);
        if gain == 0.0 {
            // Silent: skip the oscillator and start the filter afresh next time.
            self.filter.reset();
            return 0.0;
        }
        let crossfading = fade < 1.0;
        let noise = if osc::is_noise(self.osc) || (crossfading && osc::is_noise(self.prev_osc)) {
            let other = if crossfading { self.prev_osc } else { self.osc };
            self.noise.next(self.osc, other)
        } else {
            [0.0; 3]
        };
        let mut x = osc::sample(self.osc, phase, dt, &noise);
        if crossfading {
            x = x * fade + osc::sample(self.prev_osc, phase, dt, &noise) * (1.0 - fade);
        }
        self.filter.tune(cutoff, q, sample_rate);
        let out = self.filter.low_pass(x) * gain;
        if out.is_finite() {
            out
        } else {
            self.filter.reset();
            0.0
        }
    }
}
