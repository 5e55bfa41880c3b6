//! One voice: an oscillator (crossfading when its waveform changes) through
//! a resonant low-pass, then the amplitude (smoothed level × velocity × ADSR).
//! The filter comes before the envelope, as in a classic VCO → VCF → VCA
//! voice, so a closed envelope is exact silence.

use crate::command::VoiceParam;
use crate::dsp::{LANES, PAIRS, Svf, SvfLanes, advance_phase, pairs, sin_cycles};
use crate::engine::BLOCK;
use crate::envelope::Envelope;
use crate::lanes::{F64x2, Mask};
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
        s.saw = None;
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
            if let Some(env) = self.env.held(p) {
                gain.fill(env * level);
            } else {
                self.env.fill(gain, p, sample_rate);
                gain.iter_mut().for_each(|g| *g *= level);
            }
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
        // A settled frequency steps the phase by the same amount every frame:
        // the oscillators then take it as a constant, and what depends on it
        // alone (the BLEP's clamp) is computed once for the block.
        let settled = self.freq.settled().map(|freq| freq * self.frame_seconds);
        let glide = &mut s.dt;
        if settled.is_none() {
            self.freq.fill(&mut glide[..n]);
            glide[..n]
                .iter_mut()
                .for_each(|dt| *dt *= self.frame_seconds);
        }
        let glide = &*glide;
        if gain.iter().all(|&g| g == 0.0) {
            let steps = match settled {
                Some(dt) => &[dt; BLOCK][..n],
                None => &glide[..n],
            };
            for &dt in steps {
                self.phase = advance_phase(self.phase, dt);
            }
            self.filter.reset();
            return false;
        }
        if let Some((cutoff, q)) = steady {
            self.filter.tune(cutoff, q, sample_rate);
        }
        let fade = crossfading.then_some(&*fade);
        match settled {
            Some(dt) if self.osc == osc::SAW && fade.is_none() => s.saw = Some(dt),
            Some(dt) => self.sound(|_| dt, gain, fade, &mut s.x[..n]),
            None => self.sound(|t| glide[t], gain, fade, &mut s.x[..n]),
        }
        true
    }

    /// Writes the oscillator of each frame into `x`, the phase stepping by
    /// `step(frame)` cycles: for every frame, though the filter ignores those
    /// at gain 0 (where the noise waveforms write 0 and draw nothing).
    #[inline(always)]
    fn sound(
        &mut self,
        step: impl Fn(usize) -> f64,
        gain: &[f64],
        fade: Option<&[f64]>,
        x: &mut [f64],
    ) {
        let (phase, noise) = (&mut self.phase, &mut self.noise);
        let (kind, prev) = (self.osc, self.prev_osc);
        let sounding = |t: usize| gain[t] != 0.0;
        if let Some(fade) = fade {
            oscillate(phase, step, x, |t, phase, dt| {
                if sounding(t) {
                    crossfaded(noise, kind, prev, phase, dt, fade[t])
                } else {
                    0.0
                }
            });
            return;
        }
        // Noise draws only at frames of gain > 0; in the usual block without
        // a frame at gain 0 it then draws at every frame, unchecked.
        let always = || !gain.iter().fold(false, |zero, &g| zero | (g == 0.0));
        match kind {
            osc::WHITE if always() => oscillate(phase, step, x, |_, _, _| noise.white()),
            osc::PINK if always() => oscillate(phase, step, x, |_, _, _| {
                let w = noise.white();
                noise.pink(w)
            }),
            osc::BROWN if always() => oscillate(phase, step, x, |_, _, _| {
                let w = noise.white();
                noise.brown(w)
            }),
            osc::SAW => oscillate(phase, step, x, |_, phase, dt| osc::saw(phase, dt)),
            osc::SQUARE => oscillate(phase, step, x, |_, phase, dt| osc::square(phase, dt)),
            osc::TRIANGLE => oscillate(phase, step, x, |_, phase, _| osc::triangle(phase)),
            osc::WHITE => oscillate(phase, step, x, |t, _, _| {
                if sounding(t) { noise.white() } else { 0.0 }
            }),
            osc::PINK => oscillate(phase, step, x, |t, _, _| {
                if sounding(t) {
                    let w = noise.white();
                    noise.pink(w)
                } else {
                    0.0
                }
            }),
            osc::BROWN => oscillate(phase, step, x, |t, _, _| {
                if sounding(t) {
                    let w = noise.white();
                    noise.brown(w)
                } else {
                    0.0
                }
            }),
            _ => oscillate(phase, step, x, |_, phase, _| sin_cycles(phase)),
        }
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
        Filtering { voice: self, s }
    }
}

/// Advances the phase frame by frame, by `step(frame)`, writing
/// `osc(frame, phase, step)` for each frame.
#[inline(always)]
fn oscillate(
    phase: &mut f64,
    step: impl Fn(usize) -> f64,
    x: &mut [f64],
    mut osc: impl FnMut(usize, f64, f64) -> f64,
) {
    let mut now = *phase;
    for (t, x) in x.iter_mut().enumerate() {
        let dt = step(t);
        *x = osc(t, now, dt);
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

/// One voice and the block [`Voice::oscillate`] prepared for it.
pub(crate) struct Filtering<'a> {
    voice: &'a mut Voice,
    s: &'a mut VoiceScratch,
}

/// Writes the saws [`Voice::oscillate`] left in `group`, two side by side.
fn sound_saws(group: &mut [Option<Filtering<'_>>; LANES]) {
    let mut saws = group
        .iter_mut()
        .flatten()
        .filter_map(|v| Some((v.s.saw.take()?, v)));
    while let Some((dt, a)) = saws.next() {
        let n = a.s.frames;
        match saws.next() {
            Some((other, b)) => saw_pair(
                [&mut a.voice.phase, &mut b.voice.phase],
                [dt, other],
                [&mut a.s.x[..n], &mut b.s.x[..n]],
            ),
            None => a.voice.sound(|_| dt, &a.s.gain[..n], None, &mut a.s.x[..n]),
        }
    }
}

/// [`osc::saw`] and [`advance_phase`] for two voices in the lanes of a
/// [`F64x2`], at constant phase steps `dt`: packed away from the wrap of
/// either, lane by lane near it (the same operations either way).
fn saw_pair(phase: [&mut f64; 2], dt: [f64; 2], x: [&mut [f64]; 2]) {
    let [xa, xb] = x;
    let saws = Saws::new(dt);
    let mut now = F64x2::new([*phase[0], *phase[1]]);
    for (xa, xb) in xa.iter_mut().zip(xb.iter_mut()) {
        let y = saws.next(&mut now);
        [*xa, *xb] = y.to_array();
    }
    [*phase[0], *phase[1]] = now.to_array();
}

/// Two saws at constant phase steps, in the lanes of a [`F64x2`].
#[derive(Clone, Copy)]
struct Saws {
    dt: [f64; 2],
    step: F64x2,
    /// What the BLEP compares the phase with.
    low: F64x2,
    high: F64x2,
}

impl Saws {
    fn new(dt: [f64; 2]) -> Saws {
        let low = F64x2::new(dt.map(osc::clamp_dt));
        Saws {
            dt,
            step: F64x2::new(dt),
            low,
            high: F64x2::splat(1.0) - low,
        }
    }

    /// [`osc::saw`] at the phases `now`, which then advance.
    #[inline(always)]
    fn next(&self, now: &mut F64x2) -> F64x2 {
        let one = F64x2::splat(1.0);
        let phase = *now;
        let next = phase + self.step;
        let y;
        (y, *now) = if (phase.lt(self.low) | self.high.lt(phase) | next.lt(one).not()).any() {
            Saws::near_wrap(phase, self.dt)
        } else {
            // The BLEP is 0 here, and subtracting 0 changes nothing.
            (phase + phase - one, next)
        };
        y
    }

    /// [`Saws::next`] lane by lane, out of the loop's way.
    #[cold]
    #[inline(never)]
    fn near_wrap(phase: F64x2, dt: [f64; 2]) -> (F64x2, F64x2) {
        let [a, b] = phase.to_array();
        (
            F64x2::new([osc::saw(a, dt[0]), osc::saw(b, dt[1])]),
            F64x2::new([advance_phase(a, dt[0]), advance_phase(b, dt[1])]),
        )
    }
}

/// Inputs of a lane without a voice: silent, so its output is 0.
static SILENT: [f64; BLOCK] = [0.0; BLOCK];

/// Low-passes the oscillators of the voices in `group` (up to [`LANES`], some
/// lanes empty) into their outputs at their gains, frame by frame side by
/// side: each filter is a chain of dependent operations, and side by side the
/// chains overlap and share packed instructions. A frame at gain 0 (or whose
/// output is not finite) outputs 0 and resets its voice's filter.
pub(crate) fn filter_voices(
    mut group: [Option<Filtering<'_>>; LANES],
    spare: &mut [[f64; BLOCK]; LANES],
    sample_rate: u32,
) {
    // Saws whose filters are steady, filling the lanes of one or two pairs,
    // oscillate in the filters' loop (their frames never stored).
    let steady_saw =
        |v: &Option<Filtering<'_>>| matches!(v, Some(v) if v.s.saw.is_some() && v.s.steady);
    let fused = match group.iter().position(Option::is_none) {
        None => group.iter().all(steady_saw),
        Some(2) => group[..2].iter().all(steady_saw) && group[2..].iter().all(Option::is_none),
        Some(_) => false,
    };
    if !fused {
        sound_saws(&mut group);
    }
    let mut saws = [(0.0, 0.0); LANES];
    let mut phases: [Option<&mut f64>; LANES] = Default::default();
    let mut lanes = Lanes {
        xs: [&SILENT; LANES],
        gains: [&SILENT; LANES],
        outs: spare.each_mut(),
        filters: Default::default(),
    };
    let mut svf = SvfLanes::new();
    let mut frames = BLOCK;
    let mut used = 0;
    for (l, voice) in group.into_iter().enumerate() {
        let Some(Filtering { voice, s }) = voice else {
            continue;
        };
        let Voice { filter, phase, .. } = voice;
        let VoiceScratch {
            frames: n,
            gain,
            steady,
            cutoff,
            q,
            x,
            saw,
            out,
            ..
        } = s;
        if fused {
            saws[l] = (*phase, saw.take().unwrap_or(0.0));
            phases[l] = Some(phase);
        }
        svf.load(l, filter);
        frames = frames.min(*n);
        // The lanes fill from the first, so that one pair often suffices.
        used = l + 1;
        (lanes.xs[l], lanes.gains[l], lanes.outs[l]) = (x, gain, out);
        lanes.filters[l] = Some((filter, (!*steady).then_some((&*cutoff, &*q))));
    }
    let (svf, filters) = match (fused, used <= 2) {
        (true, true) => lanes.run_saws::<1>(svf, &mut saws, frames),
        (true, false) => lanes.run_saws::<PAIRS>(svf, &mut saws, frames),
        (false, true) => lanes.run::<1>(svf, frames, sample_rate),
        (false, false) => lanes.run::<PAIRS>(svf, frames, sample_rate),
    };
    for (phase, (now, _)) in phases.into_iter().zip(saws) {
        if let Some(phase) = phase {
            *phase = now;
        }
    }
    for (l, filter) in filters.into_iter().enumerate() {
        if let Some((filter, _)) = filter {
            svf.store(l, filter);
        }
    }
}

/// The inputs and outputs of [`filter_voices`], lane by lane.
struct Lanes<'a> {
    xs: [&'a [f64; BLOCK]; LANES],
    gains: [&'a [f64; BLOCK]; LANES],
    outs: [&'a mut [f64; BLOCK]; LANES],
    /// The filter of each lane's voice.
    filters: [Option<(&'a mut Svf, Tuning<'a>)>; LANES],
}

/// The cutoff and Q of each frame, if they move during the block.
type Tuning<'a> = Option<(&'a [f64; BLOCK], &'a [f64; BLOCK])>;

impl<'a> Lanes<'a> {
    /// Filters `frames` frames in the first `P` pairs of lanes (the others
    /// empty), starting from `svf`, and returns where it ends and the filters.
    /// Everything by value, so that the state and the pointers stay in
    /// registers.
    #[inline(always)]
    fn run<const P: usize>(
        self,
        mut svf: SvfLanes,
        frames: usize,
        sample_rate: u32,
    ) -> (SvfLanes, [Option<(&'a mut Svf, Tuning<'a>)>; LANES]) {
        let Lanes {
            xs,
            gains,
            mut outs,
            mut filters,
        } = self;
        let mut frame = |svf: &mut SvfLanes, t: usize| {
            let lane_pairs = |of: &[&[f64; BLOCK]; LANES]| {
                pairs::<_, P>(|p| F64x2::new([of[2 * p][t], of[2 * p + 1][t]]))
            };
            let y = filter_frame(svf, lane_pairs(&xs), lane_pairs(&gains));
            for (outs, y) in outs.chunks_exact_mut(2).zip(y) {
                let [a, b] = y.to_array();
                outs[0][t] = a;
                outs[1][t] = b;
            }
        };
        // The lanes whose cutoff or Q moves during the block.
        let mut moving = [0; LANES];
        let mut count = 0;
        for (l, filter) in filters.iter().enumerate() {
            if let Some((_, Some(_))) = filter {
                moving[count] = l;
                count += 1;
            }
        }
        if count == 0 {
            // Apart from `svf`, which the retuning below takes by reference:
            // the state then stays in registers.
            let mut steady = svf;
            for t in 0..frames {
                frame(&mut steady, t);
            }
            return (steady, filters);
        }
        for t in 0..frames {
            // Retuning also at frames of gain 0, which the scalar filter
            // skips, changes nothing: the coefficients are a function of the
            // cutoff and Q alone.
            for &l in &moving[..count] {
                if let Some((filter, Some((cutoff, q)))) = &mut filters[l] {
                    if filter.tune(cutoff[t], q[t], sample_rate) {
                        svf.tuned_as(l, filter);
                    }
                }
            }
            frame(&mut svf, t);
        }
        (svf, filters)
    }
}

impl<'a> Lanes<'a> {
    /// [`Lanes::run`] for filters all steady whose inputs are the saws in
    /// `saws` (each lane's phase, advanced here, and phase step), written by
    /// [`Saws`] frame by frame as [`saw_pair`] would.
    #[inline(always)]
    fn run_saws<const P: usize>(
        self,
        mut svf: SvfLanes,
        saws: &mut [(f64, f64); LANES],
        frames: usize,
    ) -> (SvfLanes, [Option<(&'a mut Svf, Tuning<'a>)>; LANES]) {
        let Lanes {
            gains,
            mut outs,
            filters,
            ..
        } = self;
        let lanes = |p: usize, of: fn(&(f64, f64)) -> f64| [of(&saws[2 * p]), of(&saws[2 * p + 1])];
        let oscillators: [Saws; P] = pairs(|p| Saws::new(lanes(p, |s| s.1)));
        let mut now: [F64x2; P] = pairs(|p| F64x2::new(lanes(p, |s| s.0)));
        for t in 0..frames {
            let mut x = [F64x2::splat(0.0); P];
            for ((x, oscillator), now) in x.iter_mut().zip(&oscillators).zip(&mut now) {
                *x = oscillator.next(now);
            }
            let gain = pairs(|p| F64x2::new([gains[2 * p][t], gains[2 * p + 1][t]]));
            let y = filter_frame(&mut svf, x, gain);
            for (outs, y) in outs.chunks_exact_mut(2).zip(y) {
                let [a, b] = y.to_array();
                outs[0][t] = a;
                outs[1][t] = b;
            }
        }
        for (p, now) in now.iter().enumerate() {
            let [a, b] = now.to_array();
            (saws[2 * p].0, saws[2 * p + 1].0) = (a, b);
        }
        (svf, filters)
    }
}

/// One frame of [`filter_voices`] in the first `P` pairs of lanes: the output
/// of each lane at its gain.
#[inline(always)]
fn filter_frame<const P: usize>(svf: &mut SvfLanes, x: [F64x2; P], gain: [F64x2; P]) -> [F64x2; P] {
    let v = svf.low_pass(x);
    let y: [F64x2; P] = pairs(|p| v[p] * gain[p]);
    let keep: [Mask; P] = pairs(|p| gain[p].is_nonzero() & y[p].is_finite());
    svf.reset_unless(keep);
    pairs(|p| y[p].or_zero(keep[p]))
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
    /// The phase step of a plain saw whose frames [`Voice::oscillate`] left
    /// for [`filter_voices`], which oscillates saws two at a time (into `x`,
    /// or straight into the filters when it runs only such saws).
    saw: Option<f64>,
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
            saw: None,
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

#[cfg(test)]
mod lane_tests {
    use super::*;

    const RATE: u32 = 48_000;

    /// A frame of the filter as it ran voice by voice before the lanes: the
    /// reference [`filter_voices`] must equal bit for bit.
    fn scalar_frame(filter: &mut Svf, s: &mut VoiceScratch, t: usize) {
        let gain = s.gain[t];
        s.out[t] = if gain == 0.0 {
            filter.reset();
            0.0
        } else {
            if !s.steady {
                filter.tune(s.cutoff[t], s.q[t], RATE);
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

    /// Random blocks of every kind the lanes must get exactly right: groups of
    /// 1 to 4 voices in any lanes, blocks of any length, steady and moving
    /// cutoffs, gains at 0 mid-block, and inputs that drive the output to
    /// infinity or NaN (each resets its filter).
    #[test]
    fn the_lanes_filter_each_voice_bit_for_bit_as_alone() {
        let mut noise = Noise::new(7);
        let mut uniform = || (noise.white() + 1.0) / 2.0;
        let p = VoiceParams::default();
        let mut lanes: Vec<(Voice, VoiceScratch)> = (0..LANES)
            .map(|l| (Voice::settled(&p, l, RATE), VoiceScratch::new()))
            .collect();
        let mut alone: Vec<Svf> = (0..LANES).map(|_| Svf::new()).collect();
        let mut resets = 0;
        for block in 0..2000 {
            let n = if block % 3 == 0 {
                1 + (uniform() * (BLOCK - 1) as f64) as usize
            } else {
                BLOCK
            };
            let present: Vec<bool> = (0..LANES).map(|_| uniform() < 0.8).collect();
            for ((voice, s), reference) in lanes.iter_mut().zip(&mut alone) {
                s.frames = n;
                s.steady = uniform() < 0.5;
                let (cutoff, q) = (20.0 + uniform() * 30_000.0, 0.5 + uniform() * 20.0);
                if s.steady {
                    voice.filter.tune(cutoff, q, RATE);
                    reference.tune(cutoff, q, RATE);
                }
                let silent_from = (uniform() * 3.0 * n as f64) as usize;
                for t in 0..n {
                    s.cutoff[t] = cutoff * (1.0 + t as f64 / 10.0);
                    s.q[t] = q;
                    s.gain[t] = if (silent_from..silent_from + 5).contains(&t) {
                        0.0
                    } else {
                        uniform()
                    };
                    s.x[t] = match (uniform() * 400.0) as u32 {
                        0 => f64::NAN,
                        1 => 1e308,
                        2 => f64::INFINITY,
                        _ => uniform() * 2.0 - 1.0,
                    };
                }
            }
            let mut group = lanes
                .iter_mut()
                .zip(&present)
                .map(|((voice, s), &present)| present.then_some(Filtering { voice, s }));
            filter_voices(
                std::array::from_fn(|_| group.next().flatten()),
                &mut [[0.0; BLOCK]; LANES],
                RATE,
            );
            for (l, ((_, s), reference)) in lanes.iter_mut().zip(&mut alone).enumerate() {
                if !present[l] {
                    continue;
                }
                let lanes_out: Vec<u64> = s.out[..n].iter().map(|y| y.to_bits()).collect();
                for t in 0..n {
                    scalar_frame(reference, s, t);
                }
                resets += s.out[..n]
                    .iter()
                    .zip(&s.gain)
                    .filter(|(y, g)| **y == 0.0 && **g != 0.0)
                    .count();
                let alone_out: Vec<u64> = s.out[..n].iter().map(|y| y.to_bits()).collect();
                assert_eq!(lanes_out, alone_out, "block {block}, lane {l}");
            }
        }
        assert!(resets > 100, "only {resets} outputs reset");
    }

    /// Two saws side by side against each alone, for every kind of frame:
    /// near the wrap and away from it, phase steps the BLEP clamps (above half
    /// a cycle) and steps of a cycle or more (the phase's slow wrap).
    #[test]
    fn the_saws_side_by_side_are_each_saw_bit_for_bit() {
        let mut noise = Noise::new(11);
        let mut uniform = || (noise.white() + 1.0) / 2.0;
        let mut edges = 0;
        for case in 0..3000 {
            let mut step = || match case % 10 {
                0 => 0.4 + uniform() * 0.2,
                1 => 1.0 + uniform() * 2.0,
                2 => 1e-13,
                _ => uniform() * 0.05,
            };
            let dt = [step(), step()];
            let start = [uniform(), uniform()];
            let n = 1 + (uniform() * (BLOCK - 1) as f64) as usize;
            let (mut xa, mut xb) = ([0.0; BLOCK], [0.0; BLOCK]);
            let mut phase = start;
            let [pa, pb] = &mut phase;
            saw_pair([pa, pb], dt, [&mut xa[..n], &mut xb[..n]]);
            for (lane, x) in [xa, xb].iter().enumerate() {
                let mut alone = start[lane];
                for (t, &x) in x[..n].iter().enumerate() {
                    let dt = dt[lane];
                    let expected = osc::saw(alone, dt);
                    assert_eq!(x.to_bits(), expected.to_bits(), "case {case} frame {t}");
                    edges += usize::from(x != 2.0 * alone - 1.0);
                    alone = advance_phase(alone, dt);
                }
                assert_eq!(phase[lane].to_bits(), alone.to_bits(), "case {case}");
            }
        }
        assert!(edges > 1000, "only {edges} frames near the wrap");
    }
}
