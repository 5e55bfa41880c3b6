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

    /// Prepares `n` frames (at most [`BLOCK`]) for [`filter_voices`]: the send
    /// levels, gain, tuning and oscillator of each frame into `s`
    /// (`modulation` has one entry per frame). False if the voice is silent
    /// throughout: its output is then all 0 and nothing is left to filter.
    ///
    /// Stage by stage over the block rather than frame by frame, for speed:
    /// every value is computed exactly as frame by frame, and state that
    /// carries from frame to frame (phase, noise, filter) advances in order.
    pub(crate) fn oscillate(
        &mut self,
        p: &VoiceParams,
        sample_rate: u32,
        modulation: Modulation<'_>,
        n: usize,
        s: &mut VoiceScratch,
    ) -> bool {
        let n = n.min(BLOCK);
        if let Some((sends, freq)) = self.idle(modulation) {
            // What the stages below do for such a voice, without the frames of zeros.
            s.frames = n;
            s.sends = Some(sends);
            let dt = freq * self.frame_seconds;
            for _ in 0..n {
                self.phase = advance_phase(self.phase, dt);
            }
            self.filter.reset();
            return false;
        }
        s.frames = n;
        s.sends = match (self.send_reverb.settled(), self.send_delay.settled()) {
            (Some(reverb), Some(delay)) => Some([reverb, delay]),
            _ => {
                self.send_reverb.fill(&mut s.to_reverb[..n]);
                self.send_delay.fill(&mut s.to_delay[..n]);
                None
            }
        };
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
        s.steady = steady.is_some();
        if steady.is_none() {
            self.cutoff.fill(&mut s.cutoff[..n]);
            if let Modulation::Cutoff(m) = modulation {
                multiply(&mut s.cutoff[..n], m);
            }
            self.q.fill(&mut s.q[..n]);
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
            return false;
        }
        if let Some((cutoff, q)) = steady {
            self.filter.tune(cutoff, q, sample_rate);
        }
        let (x, phase) = (&mut s.x[..n], &mut self.phase);
        let (kind, prev, noise) = (self.osc, self.prev_osc, &mut self.noise);
        if crossfading {
            oscillate(phase, dt, gain, x, |t, phase, dt| {
                crossfaded(noise, kind, prev, phase, dt, fade[t])
            });
        } else {
            match kind {
                osc::SAW => oscillate(phase, dt, gain, x, |_, phase, dt| osc::saw(phase, dt)),
                osc::SQUARE => {
                    oscillate(phase, dt, gain, x, |_, phase, dt| osc::square(phase, dt));
                }
                osc::TRIANGLE => oscillate(phase, dt, gain, x, |_, phase, _| osc::triangle(phase)),
                osc::WHITE => oscillate(phase, dt, gain, x, |_, _, _| noise.white()),
                osc::PINK => oscillate(phase, dt, gain, x, |_, _, _| {
                    let w = noise.white();
                    noise.pink(w)
                }),
                osc::BROWN => oscillate(phase, dt, gain, x, |_, _, _| {
                    let w = noise.white();
                    noise.brown(w)
                }),
                _ => oscillate(phase, dt, gain, x, |_, phase, _| sin_cycles(phase)),
            }
        }
        true
    }

    /// The settled send levels and frequency of a voice that is silent throughout
    /// the block with nothing of its state moving but the phase: its envelope has
    /// finished and none of its parameters is ramping. `None` when the full stages
    /// must run.
    fn idle(&self, modulation: Modulation<'_>) -> Option<([f64; 2], f64)> {
        let still = self.env.is_idle()
            && !matches!(modulation, Modulation::Gain(_))
            && [
                &self.amp,
                &self.velocity,
                &self.freq,
                &self.cutoff,
                &self.q,
                &self.crossfade,
            ]
            .iter()
            .all(|r| r.is_settled());
        match (
            still,
            self.send_reverb.settled(),
            self.send_delay.settled(),
            self.freq.settled(),
        ) {
            (true, Some(reverb), Some(delay), Some(freq)) => Some(([reverb, delay], freq)),
            _ => None,
        }
    }

    /// This voice's part of a [`filter_voices`] pass over what
    /// [`Voice::oscillate`] left in `s`.
    pub(crate) fn filtering<'a>(&'a mut self, s: &'a mut VoiceScratch) -> Filtering<'a> {
        Filtering {
            filter: &mut self.filter,
            s,
        }
    }
}

/// Advances the phase frame by frame, writing `osc(frame, phase, dt)` for
/// the frames whose gain is not 0 (noise draws only for those).
#[inline(always)]
fn oscillate(
    phase: &mut f64,
    dt: &[f64],
    gain: &[f64],
    x: &mut [f64],
    mut osc: impl FnMut(usize, f64, f64) -> f64,
) {
    let mut now = *phase;
    for (t, ((x, &gain), &dt)) in x.iter_mut().zip(gain).zip(dt).enumerate() {
        if gain != 0.0 {
            *x = osc(t, now, dt);
        }
        now = advance_phase(now, dt);
    }
    *phase = now;
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

/// One voice's filter and the block [`Voice::oscillate`] prepared for it.
pub(crate) struct Filtering<'a> {
    filter: &'a mut Svf,
    s: &'a mut VoiceScratch,
}

/// Low-passes the oscillator of `a` (and of `b`) into its output at its gain,
/// two voices frame by frame side by side: each filter is a chain of
/// dependent operations, and side by side the two chains overlap.
pub(crate) fn filter_voices(a: Filtering<'_>, b: Option<Filtering<'_>>, sample_rate: u32) {
    // Local copies, so that the state stays in registers.
    let mut fa = a.filter.clone();
    match b {
        None => {
            for t in 0..a.s.frames {
                filter_frame(&mut fa, a.s, t, sample_rate);
            }
        }
        Some(b) => {
            let mut fb = b.filter.clone();
            for t in 0..a.s.frames.min(b.s.frames) {
                filter_frame(&mut fa, a.s, t, sample_rate);
                filter_frame(&mut fb, b.s, t, sample_rate);
            }
            *b.filter = fb;
        }
    }
    *a.filter = fa;
}

/// One frame of [`filter_voices`]: a frame at gain 0 (or whose output is not
/// finite) outputs 0 and resets the filter.
#[inline(always)]
fn filter_frame(filter: &mut Svf, s: &mut VoiceScratch, t: usize, sample_rate: u32) {
    let gain = s.gain[t];
    s.out[t] = if gain == 0.0 {
        filter.reset();
        0.0
    } else {
        if !s.steady {
            filter.tune(s.cutoff[t], s.q[t], sample_rate);
        }
        let y = filter.low_pass(s.x[t]) * gain;
        if y.is_finite() {
            y
        } else {
            filter.reset();
            0.0
        }
    };
}

/// `a[t] *= b[t]`.
fn multiply(a: &mut [f64], b: &[f64]) {
    a.iter_mut().zip(b).for_each(|(a, b)| *a *= b);
}

/// Per-block buffers of one voice, from [`Voice::oscillate`] to the mix.
#[derive(Clone, Debug)]
pub(crate) struct VoiceScratch {
    /// Frames in the block.
    frames: usize,
    gain: [f64; BLOCK],
    level: [f64; BLOCK],
    /// True when the filter is tuned for the whole block (`cutoff` and `q` unused).
    steady: bool,
    cutoff: [f64; BLOCK],
    q: [f64; BLOCK],
    fade: [f64; BLOCK],
    dt: [f64; BLOCK],
    x: [f64; BLOCK],
    /// The voice's output, from [`filter_voices`] (or the caller's zeros).
    pub(crate) out: [f64; BLOCK],
    /// Constant reverb and delay send levels, or `None` for each frame's in
    /// `to_reverb` and `to_delay`.
    pub(crate) sends: Option<[f64; 2]>,
    pub(crate) to_reverb: [f64; BLOCK],
    pub(crate) to_delay: [f64; BLOCK],
}

impl VoiceScratch {
    pub(crate) fn new() -> VoiceScratch {
        VoiceScratch {
            frames: 0,
            gain: [0.0; BLOCK],
            level: [0.0; BLOCK],
            steady: false,
            cutoff: [0.0; BLOCK],
            q: [0.0; BLOCK],
            fade: [0.0; BLOCK],
            dt: [0.0; BLOCK],
            x: [0.0; BLOCK],
            out: [0.0; BLOCK],
            sends: None,
            to_reverb: [0.0; BLOCK],
            to_delay: [0.0; BLOCK],
        }
    }
}

#[cfg(test)]
mod idle_tests {
    use super::*;

    /// Gain modulation by exactly 1.0 keeps a voice on the full stages (and changes
    /// no sample), so it is the reference for the idle shortcut.
    #[test]
    fn an_idle_voice_skips_its_stages_bit_exactly() {
        const RATE: u32 = 48_000;
        let mut p = VoiceParams {
            release: 0.01,
            ..VoiceParams::default()
        };
        let ones = [1.0; BLOCK];
        let mut fast = Voice::settled(&p, 0, RATE);
        let mut full = Voice::settled(&p, 0, RATE);
        let (mut a, mut b) = (VoiceScratch::new(), VoiceScratch::new());
        let mut shortcut_blocks = 0;
        // Sound, close (release), stay silent, retune while silent, sound again.
        for block in 0..60 {
            match block {
                0 => [&mut fast, &mut full].map(|v| v.gate(true, &p, RATE)),
                10 => [&mut fast, &mut full].map(|v| v.gate(false, &p, RATE)),
                30 => {
                    p.freq = 523.25;
                    [&mut fast, &mut full].map(|v| v.retarget(VoiceParam::Freq, &p, RATE))
                }
                45 => [&mut fast, &mut full].map(|v| v.gate(true, &p, RATE)),
                _ => [(), ()],
            };
            let n = if block % 7 == 3 { BLOCK / 3 } else { BLOCK };
            shortcut_blocks += usize::from(fast.idle(Modulation::None).is_some());
            let sounding = fast.oscillate(&p, RATE, Modulation::None, n, &mut a);
            let reference = full.oscillate(&p, RATE, Modulation::Gain(&ones[..n]), n, &mut b);
            assert_eq!(sounding, reference, "block {block}");
            assert_eq!(fast.phase.to_bits(), full.phase.to_bits(), "block {block}");
            if sounding {
                let bits =
                    |s: &VoiceScratch| s.x[..n].iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b), "block {block}");
            }
        }
        assert!(
            shortcut_blocks >= 10,
            "the shortcut ran in {shortcut_blocks} blocks"
        );
    }
}
