//! One voice: an oscillator (crossfading when its waveform changes) through
//! a resonant low-pass, then the amplitude (smoothed level × velocity × ADSR).
//! The filter comes before the envelope, as in a classic VCO → VCF → VCA
//! voice, so a closed envelope is exact silence.

use crate::command::VoiceParam;
use crate::dsp::{Svf, advance_phase, sin_cycles};
use crate::engine::BLOCK;
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

    /// The reverb and delay send levels of the next `out.len()` frames: the
    /// two levels if both are constant, else each frame's in `out`.
    pub(crate) fn sends(&mut self, out: [&mut [f64]; 2]) -> Option<[f64; 2]> {
        if let (Some(reverb), Some(delay)) = (self.send_reverb.settled(), self.send_delay.settled())
        {
            return Some([reverb, delay]);
        }
        let [reverb, delay] = out;
        self.send_reverb.fill(reverb);
        self.send_delay.fill(delay);
        None
    }

    /// Renders `out.len()` frames (at most [`BLOCK`]) into `out` (the send
    /// levels come from [`Voice::sends`]); `modulation` has one entry per
    /// frame. False if the voice was silent throughout (`out` is then all 0).
    ///
    /// Stage by stage over the block rather than frame by frame, for speed:
    /// every value is computed exactly as frame by frame, and state that
    /// carries from frame to frame (phase, noise, filter) advances in order.
    pub(crate) fn render(
        &mut self,
        p: &VoiceParams,
        sample_rate: u32,
        modulation: Modulation<'_>,
        out: &mut [f64],
        s: &mut VoiceScratch,
    ) -> bool {
        let n = out.len();
        let (gain, level) = (&mut s.gain[..n], &mut s.level[..n]);
        if let (Some(amp), Some(velocity)) = (self.amp.settled(), self.velocity.settled()) {
            let level = amp * velocity;
            self.env.fill(gain, p, sample_rate);
            gain.iter_mut().for_each(|g| *g *= level);
        } else {
            self.amp.fill(gain);
            self.velocity.fill(level);
            multiply(gain, level);
            self.env.fill(level, p, sample_rate);
            multiply(gain, level);
        }
        if let Modulation::Gain(m) = modulation {
            multiply(gain, m);
        }
        // With the cutoff and Q constant over the block, the filter is tuned once.
        let steady = match (self.cutoff.settled(), self.q.settled(), modulation) {
            (Some(cutoff), Some(q), Modulation::None | Modulation::Gain(_)) => Some((cutoff, q)),
            _ => None,
        };
        let (cutoff, q) = (&mut s.cutoff[..n], &mut s.q[..n]);
        if steady.is_none() {
            self.cutoff.fill(cutoff);
            if let Modulation::Cutoff(m) = modulation {
                multiply(cutoff, m);
            }
            self.q.fill(q);
        }
        let crossfading = !self.crossfade.is_settled();
        let fade = &mut s.fade[..n];
        if crossfading {
            self.crossfade.fill(fade);
        }
        let dt = &mut s.dt[..n];
        self.freq.fill(dt);
        dt.iter_mut().for_each(|dt| *dt *= self.frame_seconds);
        if gain.iter().all(|&g| g == 0.0) {
            for &dt in dt.iter() {
                self.phase = advance_phase(self.phase, dt);
            }
            self.filter.reset();
            out.fill(0.0);
            return false;
        }
        let tuning = steady.is_none().then_some((&*cutoff, &*q, sample_rate));
        // Local copies, so that the state stays in registers.
        let (mut phase, mut filter) = (self.phase, self.filter.clone());
        if let Some((cutoff, q)) = steady {
            filter.tune(cutoff, q, sample_rate);
        }
        let mut frames = Frames {
            phase: &mut phase,
            filter: &mut filter,
            dt,
            gain,
            tuning,
            out,
        };
        let (kind, prev, noise) = (self.osc, self.prev_osc, &mut self.noise);
        if crossfading {
            frames.run(|t, phase, dt| crossfaded(noise, kind, prev, phase, dt, fade[t]));
        } else {
            match kind {
                osc::SAW => frames.run(|_, phase, dt| osc::saw(phase, dt)),
                osc::SQUARE => frames.run(|_, phase, dt| osc::square(phase, dt)),
                osc::WHITE => frames.run(|_, _, _| noise.white()),
                osc::PINK => frames.run(|_, _, _| {
                    let w = noise.white();
                    noise.pink(w)
                }),
                osc::BROWN => frames.run(|_, _, _| {
                    let w = noise.white();
                    noise.brown(w)
                }),
                _ => frames.run(|_, phase, _| sin_cycles(phase)),
            }
        }
        (self.phase, self.filter) = (phase, filter);
        true
    }
}

/// The oscillator during a waveform crossfade from `prev` to `kind` (`fade`
/// < 1 until its last frame).
fn crossfaded(noise: &mut Noise, kind: u8, prev: u8, phase: f64, dt: f64, fade: f64) -> f64 {
    let crossfading = fade < 1.0;
    let noise = if osc::is_noise(kind) || (crossfading && osc::is_noise(prev)) {
        noise.next(kind, if crossfading { prev } else { kind })
    } else {
        [0.0; 3]
    };
    let x = osc::sample(kind, phase, dt, &noise);
    if crossfading {
        x * fade + osc::sample(prev, phase, dt, &noise) * (1.0 - fade)
    } else {
        x
    }
}

/// A block of one voice past its gain and pitch: the oscillator, the phase
/// and the filter, frame by frame in one pass so that their chains of
/// dependent operations overlap.
struct Frames<'a> {
    phase: &'a mut f64,
    filter: &'a mut Svf,
    /// Phase increment of each frame.
    dt: &'a [f64],
    gain: &'a [f64],
    /// Each frame's cutoff and Q, unless the filter is tuned for the block.
    tuning: Option<(&'a [f64], &'a [f64], u32)>,
    out: &'a mut [f64],
}

impl Frames<'_> {
    /// `osc(frame, phase, dt)` is called for the frames whose gain is not 0
    /// (noise draws only for those); a frame at gain 0 (or whose output is
    /// not finite) outputs 0 and resets the filter.
    #[inline(always)]
    fn run(&mut self, mut osc: impl FnMut(usize, f64, f64) -> f64) {
        let frames = self.out.iter_mut().zip(self.gain.iter().zip(self.dt));
        for (t, (out, (&gain, &dt))) in frames.enumerate() {
            let phase = *self.phase;
            *self.phase = advance_phase(phase, dt);
            *out = if gain == 0.0 {
                self.filter.reset();
                0.0
            } else {
                let x = osc(t, phase, dt);
                if let Some((cutoff, q, sample_rate)) = self.tuning {
                    self.filter.tune(cutoff[t], q[t], sample_rate);
                }
                let y = self.filter.low_pass(x) * gain;
                if y.is_finite() {
                    y
                } else {
                    self.filter.reset();
                    0.0
                }
            };
        }
    }
}

/// `a[t] *= b[t]`.
fn multiply(a: &mut [f64], b: &[f64]) {
    a.iter_mut().zip(b).for_each(|(a, b)| *a *= b);
}

/// Per-block buffers of [`Voice::render`], shared by all voices.
#[derive(Clone, Debug)]
pub(crate) struct VoiceScratch {
    gain: [f64; BLOCK],
    level: [f64; BLOCK],
    cutoff: [f64; BLOCK],
    q: [f64; BLOCK],
    fade: [f64; BLOCK],
    dt: [f64; BLOCK],
}

impl VoiceScratch {
    pub(crate) fn new() -> VoiceScratch {
        VoiceScratch {
            gain: [0.0; BLOCK],
            level: [0.0; BLOCK],
            cutoff: [0.0; BLOCK],
            q: [0.0; BLOCK],
            fade: [0.0; BLOCK],
            dt: [0.0; BLOCK],
        }
    }
}
