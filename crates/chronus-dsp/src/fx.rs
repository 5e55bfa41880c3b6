//! Master effects: distortion (insert on the dry mix), a Freeverb reverb bus
//! and a feedback delay bus (both fed by the voices' sends) and the LFOs. The
//! limiter comes after the master gain (`limiter.rs`).

use std::cell::Cell;

use crate::command::Control;
use crate::dsp::{
    OnePole, advance_phase, buffer_frames, flush, flush_lanes, sin_cycles, soft_clip,
};
use crate::lanes::F64x2;
use crate::params::{DelayParams, DistParams, LfoParams, Params, ReverbParams};
use crate::smoother::{Ramp, SMOOTHING_SECONDS, frames};

/// Master insert distortion: drive into a saturator, a tilt EQ for tone, and
/// a dry/wet mix. At mix 0 the dry signal passes bit for bit.
#[derive(Clone, Debug)]
pub(crate) struct Distortion {
    drive: Ramp,
    mix: Ramp,
    tone: f64,
    /// Splits the distorted signal for the tilt EQ.
    split: OnePole,
}

/// Where the tone control's tilt pivots.
const TILT_HZ: f64 = 800.0;

impl Distortion {
    fn new(p: &DistParams) -> Distortion {
        Distortion {
            drive: Ramp::at(p.drive.into()),
            mix: Ramp::at(p.mix.into()),
            tone: p.tone.into(),
            split: OnePole::new(),
        }
    }

    fn process(&mut self, x: f64, sample_rate: u32) -> f64 {
        let drive = self.drive.next();
        let mix = self.mix.next();
        if mix == 0.0 {
            return x;
        }
        // Up to +28 dB into the saturator, levelled back down so that more
        // drive means more grit rather than more volume.
        let wet = soft_clip(x * (1.0 + 24.0 * drive)) / (1.0 + 2.0 * drive);
        self.split.tune(TILT_HZ, sample_rate);
        let low = self.split.low_pass(wet);
        let tilt = self.tone - 0.5;
        let wet = low * (1.0 - tilt) + (wet - low) * (1.0 + tilt);
        x * (1.0 - mix) + wet * mix
    }
}

/// Freeverb's tunings at 44.1 kHz, scaled to the sample rate.
const COMB_TUNING: [usize; 8] = [1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617];
const ALLPASS_TUNING: [usize; 4] = [556, 441, 341, 225];

/// A delay line of `f32` (as in Freeverb; half the memory traffic of `f64`):
/// each frame reads what was written `delay` frames before. The buffer holds
/// [`Line::history`] frames more, written no later than the oldest `delay`,
/// so that a restored checkpoint finds the samples it reads still there.
#[derive(Clone, Debug)]
struct Line {
    buf: Vec<f32>,
    delay: usize,
    /// Where the next frame is written.
    pos: usize,
}

impl Line {
    fn new(delay: usize) -> Line {
        let delay = delay.max(1);
        Line {
            buf: vec![0.0; delay],
            delay,
            pos: 0,
        }
    }

    fn scaled(tuning: usize, sample_rate: u32) -> Line {
        Line::new(buffer_frames(tuning as f64 / 44_100.0, sample_rate))
    }

    /// Where the next frame reads: `delay` frames before `pos`.
    fn read_pos(&self) -> usize {
        if self.pos >= self.delay {
            self.pos - self.delay
        } else {
            self.pos + self.buf.len() - self.delay
        }
    }

    fn history(&self) -> usize {
        self.buf.len() - self.delay
    }

    /// Reallocates for `frames` frames of history, the latest samples (all
    /// that reads can reach) kept where reads find them.
    fn keep_history(&mut self, frames: usize) {
        let len = self.delay + frames;
        let mut buf = vec![0.0; len];
        // Oldest first, ending just before the new write position 0.
        let kept = len.min(self.buf.len());
        for back in 1..=kept {
            buf[len - back] = self.buf[(self.pos + self.buf.len() - back) % self.buf.len()];
        }
        self.buf = buf;
        self.pos = 0;
    }

    /// Back to write position `pos` after `frames` frames were rendered from
    /// there. The slots they wrote go back to zero rather than to what they
    /// held, which no read reaches (history permitting) before the slot is
    /// written again, except after a silent skip, which writes nothing for
    /// slots that rendering the skip would have left at zero.
    fn rewind(&mut self, pos: usize, frames: usize) {
        self.pos = pos;
        let frames = frames.min(self.buf.len());
        let (head, tail) = self.buf.split_at_mut(pos);
        let wrapped = frames.saturating_sub(tail.len());
        tail[..frames - wrapped].fill(0.0);
        head[..wrapped].fill(0.0);
    }

    /// The slots the next `n` frames read and write (wrapping in neither):
    /// the same slots without history, hence cells.
    fn frames(&mut self, n: usize) -> (&[Cell<f32>], &[Cell<f32>]) {
        let (read, write) = (self.read_pos(), self.pos);
        let cells = Cell::from_mut(&mut self.buf[..]).as_slice_of_cells();
        (&cells[read..read + n], &cells[write..write + n])
    }

    fn clear(&mut self) {
        self.buf.fill(0.0);
    }
}

/// Mono Freeverb (Jezar's): eight damped feedback combs in parallel, then
/// four allpasses in series.
#[derive(Clone, Debug)]
pub(crate) struct Reverb {
    combs: [Line; COMB_TUNING.len()],
    /// Each comb's damping low-pass state.
    kept: [f64; COMB_TUNING.len()],
    allpasses: [Line; ALLPASS_TUNING.len()],
    mix: Ramp,
    feedback: f64,
    damp: f64,
    /// Frames in a row that wrote nothing but zeros into every line: once it
    /// covers the longest line, the lines hold only zeros.
    silent_for: usize,
}

impl Reverb {
    fn new(p: &ReverbParams, sample_rate: u32) -> Reverb {
        let mut r = Reverb {
            combs: COMB_TUNING.map(|t| Line::scaled(t, sample_rate)),
            kept: [0.0; COMB_TUNING.len()],
            allpasses: ALLPASS_TUNING.map(|t| Line::scaled(t, sample_rate)),
            mix: Ramp::at(p.mix.into()),
            feedback: 0.0,
            damp: 0.0,
            silent_for: usize::MAX,
        };
        r.tune(p);
        r
    }

    /// Whether rendering `x` would only write and return zeros: the input, the
    /// lines and the damping states are all zero. Skipping such a block (advancing
    /// the lines and the mix as rendering would) gives bit for bit the same state
    /// and output, so every worker and a render agree whether they skip or not.
    fn is_silent_for(&self, x: &[f64]) -> bool {
        let longest = self
            .combs
            .iter()
            .chain(&self.allpasses)
            .map(|l| l.buf.len())
            .max()
            .unwrap_or(0);
        self.silent_for >= longest
            && self.kept.iter().all(|&k| k == 0.0)
            && x.iter().all(|&v| v == 0.0)
    }

    fn tune(&mut self, p: &ReverbParams) {
        self.feedback = f64::from(p.room) * 0.28 + 0.7;
        self.damp = f64::from(p.damp) * 0.4;
    }

    /// The reverb's return at its mix level for each frame of `x`, into `out`.
    fn render(&mut self, x: &[f64], out: &mut [f64]) {
        if self.is_silent_for(x) {
            for line in self.combs.iter_mut().chain(&mut self.allpasses) {
                line.pos = (line.pos + x.len()) % line.buf.len();
            }
            for out in out.iter_mut() {
                // What rendering computes: a wet signal of +0.0 times the mix.
                *out = 0.0 * self.mix.next();
            }
            self.silent_for = self.silent_for.saturating_add(x.len());
            return;
        }
        self.render_frames(x, out);
    }

    fn render_frames(&mut self, x: &[f64], out: &mut [f64]) {
        let mut t = 0;
        while t < x.len() {
            // Up to the first line's wrap (of a read or a write), so that no
            // frame checks for it.
            let run = self
                .combs
                .iter()
                .chain(&self.allpasses)
                .map(|line| line.buf.len() - line.pos.max(line.read_pos()))
                .fold(x.len() - t, usize::min);
            let (done, finite) = self.run(&x[t..t + run], &mut out[t..t + run]);
            for line in self.combs.iter_mut().chain(&mut self.allpasses) {
                line.pos += done;
                if line.pos == line.buf.len() {
                    line.pos = 0;
                }
            }
            if !finite {
                self.clear();
            }
            t += done;
        }
    }

    /// Frame by frame (the combs' chains of dependent operations overlap)
    /// through lines that do not wrap within `x` (neither their reads nor their
    /// writes, which are the same slots without history). Stops after a frame whose
    /// output is not finite: that frame is silent and the reverb is to be
    /// cleared before the next. Returns the frames done, and false if it
    /// stopped so.
    fn run(&mut self, x: &[f64], out: &mut [f64]) -> (usize, bool) {
        let (feedback, damp) = (self.feedback, self.damp);
        let n = x.len();
        let combs = self.combs.each_mut().map(|l| l.frames(n));
        let allpasses = self.allpasses.each_mut().map(|l| l.frames(n));
        // The combs' damping states two by two in lanes: they are independent.
        let mut kept: [F64x2; COMB_TUNING.len() / 2] =
            std::array::from_fn(|i| F64x2::new([self.kept[2 * i], self.kept[2 * i + 1]]));
        let (undamped, damping) = (F64x2::splat(1.0 - damp), F64x2::splat(damp));
        let feedback = F64x2::splat(feedback);
        for (t, (out, &x)) in out.iter_mut().zip(x).enumerate() {
            let mix = self.mix.next();
            let input = F64x2::splat(x * 0.015);
            let mut wet = 0.0;
            // Whether the combs write anything but +0.0 this frame: flushed, they
            // write +0.0 or at least 1e-15 in magnitude (so not 0 in f32) or NaN.
            let mut sounding = F64x2::splat(0.0).is_nonzero();
            // The bits of what the allpasses write: zero only if all is +0.0.
            let mut written = 0u32;
            for (pair, kept) in combs.chunks_exact(2).zip(&mut kept) {
                let [(read_a, write_a), (read_b, write_b)] = [pair[0], pair[1]];
                let (ya, yb) = (f64::from(read_a[t].get()), f64::from(read_b[t].get()));
                *kept = flush_lanes(F64x2::new([ya, yb]) * undamped + *kept * damping);
                let w = flush_lanes(input + *kept * feedback);
                sounding = sounding | w.is_nonzero();
                let [a, b] = w.to_array();
                write_a[t].set(a as f32);
                write_b[t].set(b as f32);
                wet += ya;
                wet += yb;
            }
            for (read, write) in allpasses {
                let delayed = f64::from(read[t].get());
                let w = flush(wet + delayed * 0.5) as f32;
                write[t].set(w);
                written |= w.to_bits();
                wet = delayed - wet;
            }
            self.silent_for = if written == 0 && !sounding.any() {
                self.silent_for.saturating_add(1)
            } else {
                0
            };
            let wet = wet * 3.0;
            if !wet.is_finite() {
                *out = 0.0;
                return (t + 1, false);
            }
            *out = wet * mix;
        }
        for (i, kept) in kept.iter().enumerate() {
            [self.kept[2 * i], self.kept[2 * i + 1]] = kept.to_array();
        }
        (n, true)
    }

    /// History included: restoring a checkpoint from before this (only ever
    /// after a NaN or an infinity) is not exact.
    fn clear(&mut self) {
        self.combs.iter_mut().for_each(Line::clear);
        self.kept = [0.0; COMB_TUNING.len()];
        self.allpasses.iter_mut().for_each(Line::clear);
    }

    fn checkpoint(&self) -> ReverbCheckpoint {
        let Reverb {
            combs,
            kept,
            allpasses,
            mix,
            feedback,
            damp,
            silent_for,
        } = self;
        ReverbCheckpoint {
            combs: combs.each_ref().map(|l| l.pos),
            kept: *kept,
            allpasses: allpasses.each_ref().map(|l| l.pos),
            mix: mix.clone(),
            feedback: *feedback,
            damp: *damp,
            silent_for: *silent_for,
        }
    }

    /// Back to `cp`, `frames` frames after it was saved (see [`Line::rewind`]).
    fn restore(&mut self, cp: &ReverbCheckpoint, frames: usize) {
        for (line, &pos) in self.combs.iter_mut().zip(&cp.combs) {
            line.rewind(pos, frames);
        }
        for (line, &pos) in self.allpasses.iter_mut().zip(&cp.allpasses) {
            line.rewind(pos, frames);
        }
        self.kept = cp.kept;
        self.mix.clone_from(&cp.mix);
        (self.feedback, self.damp, self.silent_for) = (cp.feedback, cp.damp, cp.silent_for);
    }
}

/// A [`Reverb`] but for its lines' samples: their write positions.
#[derive(Clone, Debug)]
struct ReverbCheckpoint {
    combs: [usize; COMB_TUNING.len()],
    kept: [f64; COMB_TUNING.len()],
    allpasses: [usize; ALLPASS_TUNING.len()],
    mix: Ramp,
    feedback: f64,
    damp: f64,
    silent_for: usize,
}

/// The longest delay time, in seconds.
const MAX_DELAY_SECONDS: f64 = 1.0;

/// Feedback delay whose loop runs through a high-pass (`lowcut`) and a
/// low-pass (`highcut`), so repeats thin out and darken.
#[derive(Clone, Debug)]
pub(crate) struct Delay {
    /// Its `delay` is the longest delay plus two spare frames for interpolation.
    line: Line,
    time: Ramp,
    feedback: Ramp,
    mix: Ramp,
    lowcut: OnePole,
    highcut: OnePole,
    /// Frames in a row that wrote +0.0 into the line: once it covers the line,
    /// the line holds only zeros.
    silent_for: usize,
}

impl Delay {
    fn new(p: &DelayParams, sample_rate: u32) -> Delay {
        Delay {
            line: Line::new(buffer_frames(MAX_DELAY_SECONDS, sample_rate) + 2),
            time: Ramp::at(p.time.into()),
            feedback: Ramp::at(p.feedback.into()),
            mix: Ramp::at(p.mix.into()),
            lowcut: OnePole::new(),
            highcut: OnePole::new(),
            silent_for: usize::MAX,
        }
    }

    /// Whether processing `x` would only write and return zeros (the input, the
    /// line and both filters are at zero): then [`Delay::skip`] stands in for
    /// [`Delay::process`], bit for bit.
    fn is_silent_for(&self, x: &[f64]) -> bool {
        self.silent_for >= self.line.buf.len()
            && self.lowcut.at_rest()
            && self.highcut.at_rest()
            && x.iter().all(|&v| v == 0.0)
    }

    /// One silent frame: the ramps move on as in `process`, the return is
    /// +0.0 at the mix level. The write position moves in [`Delay::skipped`].
    fn skip(&mut self) -> f64 {
        self.time.next();
        self.feedback.next();
        0.0 * self.mix.next()
    }

    fn skipped(&mut self, frames: usize) {
        self.line.pos = (self.line.pos + frames) % self.line.buf.len();
        self.silent_for = self.silent_for.saturating_add(frames);
    }

    /// The delay's return at its mix level.
    fn process(&mut self, x: f64, p: &DelayParams, sample_rate: u32) -> f64 {
        let len = self.line.buf.len();
        let longest = (self.line.delay - 2) as f64;
        let delay = (self.time.next() * f64::from(sample_rate)).clamp(1.0, longest);
        let feedback = self.feedback.next();
        let mix = self.mix.next();
        // Linear interpolation between the two frames around the read point.
        let back = delay.floor();
        let frac = delay - back;
        // `offset` is 1..len, so one subtraction wraps.
        let at = |offset: usize| {
            let i = self.line.pos + len - offset;
            if i >= len { i - len } else { i }
        };
        let a = f64::from(self.line.buf[at(back as usize)]);
        let b = f64::from(self.line.buf[at(back as usize + 1)]);
        let y = a + (b - a) * frac;
        self.lowcut.tune(p.lowcut.into(), sample_rate);
        self.highcut.tune(p.highcut.into(), sample_rate);
        let looped = self.highcut.low_pass(self.lowcut.high_pass(y));
        let w = flush(x + looped * feedback);
        if !w.is_finite() {
            // History included: restoring a checkpoint from before this (only
            // ever after a NaN or an infinity) is not exact.
            self.line.clear();
            self.lowcut.reset();
            self.highcut.reset();
            return 0.0;
        }
        self.line.buf[self.line.pos] = w as f32;
        self.silent_for = if (w as f32).to_bits() == 0 {
            self.silent_for.saturating_add(1)
        } else {
            0
        };
        self.line.pos = if self.line.pos + 1 == len {
            0
        } else {
            self.line.pos + 1
        };
        y * mix
    }
}

impl Delay {
    fn checkpoint(&self) -> DelayCheckpoint {
        let Delay {
            line,
            time,
            feedback,
            mix,
            lowcut,
            highcut,
            silent_for,
        } = self;
        DelayCheckpoint {
            pos: line.pos,
            time: time.clone(),
            feedback: feedback.clone(),
            mix: mix.clone(),
            lowcut: lowcut.clone(),
            highcut: highcut.clone(),
            silent_for: *silent_for,
        }
    }

    /// Back to `cp`, `frames` frames after it was saved (see [`Line::rewind`]).
    fn restore(&mut self, cp: &DelayCheckpoint, frames: usize) {
        self.line.rewind(cp.pos, frames);
        self.time.clone_from(&cp.time);
        self.feedback.clone_from(&cp.feedback);
        self.mix.clone_from(&cp.mix);
        self.lowcut.clone_from(&cp.lowcut);
        self.highcut.clone_from(&cp.highcut);
        self.silent_for = cp.silent_for;
    }
}

/// A [`Delay`] but for its line's samples: its write position.
#[derive(Clone, Debug)]
struct DelayCheckpoint {
    pos: usize,
    time: Ramp,
    feedback: Ramp,
    mix: Ramp,
    lowcut: OnePole,
    highcut: OnePole,
    silent_for: usize,
}

/// A sine LFO with a smoothed depth.
#[derive(Clone, Debug)]
pub(crate) struct Lfo {
    phase: f64,
    depth: Ramp,
}

impl Lfo {
    fn new(p: &LfoParams) -> Lfo {
        Lfo {
            phase: 0.0,
            depth: Ramp::at(p.depth.into()),
        }
    }

    /// Advances `out.len()` frames, writing `shape(sine, depth)` for each
    /// (1, no modulation, while the depth is 0); false if the depth was 0
    /// throughout, and `out` is then left as it was.
    pub(crate) fn render(
        &mut self,
        p: &LfoParams,
        sample_rate: u32,
        out: &mut [f64],
        shape: impl Fn(f64, f64) -> f64,
    ) -> bool {
        let step = f64::from(p.rate) / f64::from(sample_rate);
        if self.depth.is_settled() && self.depth.target() == 0.0 {
            // Frame by frame all the same, so the phase never depends on blocks.
            for _ in 0..out.len() {
                self.phase = advance_phase(self.phase, step);
            }
            return false;
        }
        for out in out {
            let depth = self.depth.next();
            *out = if depth == 0.0 {
                1.0
            } else {
                shape(sin_cycles(self.phase), depth)
            };
            self.phase = advance_phase(self.phase, step);
        }
        true
    }
}

/// Everything after the voices.
#[derive(Clone, Debug)]
pub(crate) struct Master {
    pub(crate) lfo1: Lfo,
    pub(crate) lfo2: Lfo,
    dist: Distortion,
    reverb: Reverb,
    delay: Delay,
}

/// A [`Master`] but for its delay lines' samples (see [`Master::checkpoint`]).
#[derive(Clone, Debug)]
pub(crate) struct MasterCheckpoint {
    lfo1: Lfo,
    lfo2: Lfo,
    dist: Distortion,
    reverb: ReverbCheckpoint,
    delay: DelayCheckpoint,
}

impl Master {
    pub(crate) fn new(p: &Params, sample_rate: u32) -> Master {
        Master {
            lfo1: Lfo::new(&p.lfo1),
            lfo2: Lfo::new(&p.lfo2),
            dist: Distortion::new(&p.dist),
            reverb: Reverb::new(&p.reverb, sample_rate),
            delay: Delay::new(&p.delay, sample_rate),
        }
    }

    /// Keeps `frames` frames of history in every delay line (see
    /// [`crate::Engine::keep_history`]).
    pub(crate) fn keep_history(&mut self, frames: usize) {
        let reverb = &mut self.reverb;
        for line in reverb.combs.iter_mut().chain(&mut reverb.allpasses) {
            line.keep_history(frames);
        }
        self.delay.line.keep_history(frames);
    }

    pub(crate) fn history(&self) -> usize {
        self.delay.line.history()
    }

    /// Everything but the delay lines' samples, which stay where they are for
    /// [`Master::restore`] to find (history permitting). No allocation.
    pub(crate) fn checkpoint(&self) -> MasterCheckpoint {
        let Master {
            lfo1,
            lfo2,
            dist,
            reverb,
            delay,
        } = self;
        MasterCheckpoint {
            lfo1: lfo1.clone(),
            lfo2: lfo2.clone(),
            dist: dist.clone(),
            reverb: reverb.checkpoint(),
            delay: delay.checkpoint(),
        }
    }

    /// Back to `cp`, saved `frames` frames ago: exact when that is at most
    /// [`Master::history`] and no line was cleared for a NaN since.
    pub(crate) fn restore(&mut self, cp: &MasterCheckpoint, frames: usize) {
        self.lfo1.clone_from(&cp.lfo1);
        self.lfo2.clone_from(&cp.lfo2);
        self.dist.clone_from(&cp.dist);
        self.reverb.restore(&cp.reverb, frames);
        self.delay.restore(&cp.delay, frames);
    }

    /// Reacts to a change of `control` (already stored in `p`).
    pub(crate) fn retarget(&mut self, control: Control, p: &Params, sample_rate: u32) {
        let smooth = frames(SMOOTHING_SECONDS, sample_rate);
        let (ramp, value) = match control {
            Control::DistDrive => (&mut self.dist.drive, p.dist.drive),
            Control::DistMix => (&mut self.dist.mix, p.dist.mix),
            Control::ReverbMix => (&mut self.reverb.mix, p.reverb.mix),
            Control::DelayTime => (&mut self.delay.time, p.delay.time),
            Control::DelayFeedback => (&mut self.delay.feedback, p.delay.feedback),
            Control::DelayMix => (&mut self.delay.mix, p.delay.mix),
            Control::Lfo1Depth => (&mut self.lfo1.depth, p.lfo1.depth),
            Control::Lfo2Depth => (&mut self.lfo2.depth, p.lfo2.depth),
            Control::DistTone => {
                self.dist.tone = p.dist.tone.into();
                return;
            }
            Control::ReverbRoom | Control::ReverbDamp => {
                self.reverb.tune(&p.reverb);
                return;
            }
            // The rest are read every frame or belong to other modules.
            _ => return,
        };
        ramp.set_target(value.into(), smooth);
    }

    /// Mixes the dry signal and the sends of each frame into `out`.
    pub(crate) fn render(
        &mut self,
        dry: &[f64],
        reverb_send: &[f64],
        delay_send: &[f64],
        out: &mut [f64],
        p: &Params,
        sample_rate: u32,
    ) {
        self.reverb.render(reverb_send, out);
        // Silent effects are skipped, deterministically (see `is_silent_for`).
        let delay_silent = self.delay.is_silent_for(delay_send);
        for ((out, &dry), &delay_send) in out.iter_mut().zip(dry).zip(delay_send) {
            let delayed = if delay_silent {
                self.delay.skip()
            } else {
                self.delay.process(delay_send, &p.delay, sample_rate)
            };
            *out = self.dist.process(dry, sample_rate) + *out + delayed;
        }
        if delay_silent {
            self.delay.skipped(delay_send.len());
        }
    }
}

#[cfg(test)]
mod skip_tests {
    use super::*;

    const RATE: u32 = 48_000;

    /// A reverb rung by an impulse and left until it has rested long enough to be
    /// skipped.
    fn rested_reverb() -> Reverb {
        let p = Params::new(4);
        let mut r = Reverb::new(&p.reverb, RATE);
        r.mix = Ramp::at(0.5);
        let mut x = vec![0.0; 64];
        x[0] = 1.0;
        let mut out = vec![0.0; 64];
        r.render(&x, &mut out);
        assert!(!r.is_silent_for(&[0.0; 64]));
        let quiet = vec![0.0; 4800];
        let mut out = vec![0.0; 4800];
        for _ in 0..2000 {
            r.render(&quiet, &mut out);
            if r.is_silent_for(&quiet) {
                return r;
            }
        }
        panic!("the reverb never came to rest");
    }

    #[test]
    fn a_skipped_silent_reverb_is_bit_for_bit_the_rendered_one() {
        let mut skipped = rested_reverb();
        let mut rendered = skipped.clone();
        let quiet = vec![0.0; 777];
        let (mut a, mut b) = (vec![1.0; 777], vec![1.0; 777]);
        skipped.render(&quiet, &mut a);
        rendered.render_frames(&quiet, &mut b);
        assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()));
        // Then a sound through both: the lines moved on alike.
        let mut x = vec![0.0; 3000];
        x[5] = 0.8;
        x[1200] = -0.3;
        let (mut a, mut b) = (vec![0.0; 3000], vec![0.0; 3000]);
        skipped.render(&x, &mut a);
        rendered.render_frames(&x, &mut b);
        assert!(a.iter().any(|&v| v != 0.0));
        assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn a_skipped_silent_delay_is_bit_for_bit_the_processed_one() {
        let mut p = Params::new(4).delay;
        p.time = 0.01;
        p.feedback = 0.9;
        p.mix = 0.7;
        let mut d = Delay::new(&p, RATE);
        d.process(1.0, &p, RATE);
        let mut frames = 0;
        while !d.is_silent_for(&[0.0]) {
            d.process(0.0, &p, RATE);
            frames += 1;
            assert!(frames < 60 * RATE as usize, "the delay never came to rest");
        }
        let mut skipped = d.clone();
        let mut processed = d;
        for _ in 0..500 {
            let a = skipped.skip();
            let b = processed.process(0.0, &p, RATE);
            assert_eq!(a.to_bits(), b.to_bits());
        }
        skipped.skipped(500);
        for n in 0..2000 {
            let x = if n == 3 { 0.5 } else { 0.0 };
            let a = skipped.process(x, &p, RATE);
            let b = processed.process(x, &p, RATE);
            assert_eq!(a.to_bits(), b.to_bits(), "frame {n}");
        }
    }
}
