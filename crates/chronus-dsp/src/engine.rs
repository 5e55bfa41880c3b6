//! The engine: parameters, per-voice DSP state, the acid path, the master
//! effects, the sequencer and the absolute frame counter.

use crate::CHANNELS;
use crate::acid::Acid;
use crate::command::{Command, Control};
use crate::dsp::LANES;
use crate::fx::{Master, MasterCheckpoint};
use crate::limiter::{Limiter, LimiterParams};
use crate::params::{Params, VoiceParams};
use crate::seq::{ACCENT_CUTOFF_HZ, ACCENT_VELOCITY, HIT_VELOCITY, MAX_TRACKS, Sequencer, Step};
use crate::smoother::{Ramp, frames};
use crate::speech::{NoSpeech, SpeechPlayer, SpeechSource};
use crate::voice::{Hit, Modulation, Voice, VoiceScratch, filter_voices};

/// voice2 runs through the acid path and is swept by lfo1.
const ACID_VOICE: usize = 1;
/// voice3's amplitude follows lfo2.
const TREMOLO_VOICE: usize = 2;
/// lfo1 at full depth moves voice2's cutoff this many octaves either way.
const LFO1_OCTAVES: f64 = 2.0;
/// Most frames rendered voice by voice at a time: a bound on the scratch
/// buffers, not on timing (blocks also end wherever the sequencer acts).
pub(crate) const BLOCK: usize = 64;

/// Per-block buffers, allocated once.
#[derive(Clone, Debug)]
struct Scratch {
    dry: [f64; BLOCK],
    reverb: [f64; BLOCK],
    delay: [f64; BLOCK],
    mixed: [f64; BLOCK],
    /// Voices are filtered [`LANES`] side by side.
    voices: Box<[VoiceScratch; LANES]>,
    /// Where [`filter_voices`] writes the outputs of its empty lanes (never read).
    spare: Box<[[f64; BLOCK]; LANES]>,
    sweep: [f64; BLOCK],
    tremolo: [f64; BLOCK],
}

/// Renders interleaved stereo from [`Command`]s, deterministically: the output
/// depends only on the starting state and on which commands were applied before
/// which frame, never on how rendering is split into [`Engine::render`] calls.
#[derive(Clone, Debug)]
pub struct Engine {
    sample_rate: u32,
    params: Params,
    voices: Vec<Voice>,
    acid: Acid,
    fx: Master,
    seq: Sequencer,
    gain: Ramp,
    speech: SpeechPlayer,
    limiter: Limiter,
    frame: u64,
    scratch: Box<Scratch>,
}

/// An [`Engine`]'s state at a frame, for [`Engine::restore`] to return to: all
/// of it but the samples in its delay lines, which stay in the engine (see
/// [`Engine::keep_history`]), so a checkpoint is cheap to save.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    params: Params,
    voices: Vec<Voice>,
    acid: Acid,
    fx: MasterCheckpoint,
    seq: Sequencer,
    gain: Ramp,
    speech: SpeechPlayer,
    limiter: Limiter,
    frame: u64,
}

impl Checkpoint {
    /// The frame the saved engine was about to render.
    pub fn frame(&self) -> u64 {
        self.frame
    }
}

impl Engine {
    /// Frame 0, default parameters. A sample rate of 0 is taken as 1 Hz.
    pub fn new(sample_rate: u32, num_voices: u8) -> Engine {
        Engine::from_params(sample_rate, &Params::new(num_voices), 0)
    }

    /// Cold start at `frame`: smoothers already at their targets, oscillators at
    /// phase 0, envelopes of gated voices at sustain, effect tails silent, and a
    /// running sequencer at the first step of its timeline at or after `frame`
    /// (exactly where an engine that ran all along would be). Values out of
    /// range are clamped and NaN/Inf replaced by defaults (see
    /// [`Params::sanitized`]).
    pub fn from_params(sample_rate: u32, params: &Params, frame: u64) -> Engine {
        let params = params.sanitized();
        let sample_rate = sample_rate.max(1);
        Engine {
            sample_rate,
            voices: params
                .voices
                .iter()
                .enumerate()
                .map(|(i, p)| Voice::settled(p, i, sample_rate))
                .collect(),
            acid: Acid::new(&params.acid),
            fx: Master::new(&params, sample_rate),
            seq: Sequencer::new(&params.seq, params.voices.len(), sample_rate, frame),
            gain: Ramp::at(params.master_gain.into()),
            speech: SpeechPlayer::new(),
            limiter: Limiter::new(params.limiter, sample_rate),
            params,
            frame,
            scratch: Box::new(Scratch {
                dry: [0.0; BLOCK],
                reverb: [0.0; BLOCK],
                delay: [0.0; BLOCK],
                mixed: [0.0; BLOCK],
                voices: Box::new(std::array::from_fn(|_| VoiceScratch::new())),
                spare: Box::new([[0.0; BLOCK]; LANES]),
                sweep: [0.0; BLOCK],
                tremolo: [0.0; BLOCK],
            }),
        }
    }

    /// Applies `cmd` before the next rendered frame. Values are clamped into range;
    /// commands with NaN/Inf values or for voices this engine lacks are ignored.
    /// Never allocates.
    pub fn apply(&mut self, cmd: &Command) {
        let Some(cmd) = cmd.normalized() else {
            return;
        };
        self.params.apply(&cmd);
        let sample_rate = self.sample_rate;
        match cmd {
            Command::SetVoice { voice, param, .. } => {
                let i = usize::from(voice);
                if let (Some(v), Some(p)) = (self.voices.get_mut(i), self.params.voices.get(i)) {
                    v.retarget(param, p, sample_rate);
                }
            }
            Command::Gate { voice, on } => self.gate(usize::from(voice), on),
            Command::Fade { gain, seconds } => self
                .gain
                .set_target(gain.into(), frames(seconds, sample_rate)),
            Command::Set { control, .. } => {
                self.acid.retarget(control, &self.params.acid, sample_rate);
                self.fx.retarget(control, &self.params, sample_rate);
                if matches!(control, Control::SeqBpm | Control::SeqSwing) {
                    self.seq.resync(&self.params.seq, sample_rate, self.frame);
                }
            }
            Command::SeqRun { on: true } => {
                self.seq.resync(&self.params.seq, sample_rate, self.frame);
            }
            Command::SeqRun { on: false } => {
                self.seq.stop();
                for i in 0..self.voices.len() {
                    self.gate(i, false);
                }
            }
            Command::Speak {
                offset,
                frames,
                gain,
                duck,
            } => self.speech.start(offset, frames, gain, duck, sample_rate),
            Command::SpeakStop => self.speech.stop(sample_rate),
            // The sequencer reads its tracks from the parameters at each step.
            Command::SeqAdd(_)
            | Command::SeqRemove { .. }
            | Command::SeqClear
            | Command::SeqPattern { .. }
            | Command::SeqNotes { .. } => {}
        }
    }

    fn gate(&mut self, voice: usize, on: bool) {
        let Some((v, p)) = self
            .voices
            .get_mut(voice)
            .zip(self.params.voices.get(voice))
        else {
            return;
        };
        v.gate(on, p, self.sample_rate);
        if voice == ACID_VOICE {
            self.acid.gate(on, 0.0, &self.params.acid, self.sample_rate);
        }
    }

    /// Plays what the sequencer has due at the current frame.
    fn sequence(&mut self) {
        let (frame, sample_rate) = (self.frame, self.sample_rate);
        while let Some(voice) = self.seq.take_gate_off(frame) {
            self.gate(voice, false);
        }
        while let Some(step) = self.seq.take_step(frame) {
            let step_frames = self.seq.step_frames();
            for track in &self.params.seq.tracks {
                let accent = match track.pattern.at(step) {
                    Step::Rest => continue,
                    Step::Hit => false,
                    Step::Accent => true,
                };
                let i = usize::from(track.voice);
                let (Some(voice), Some(p)) = (self.voices.get_mut(i), self.params.voices.get(i))
                else {
                    continue;
                };
                let velocity = if accent {
                    ACCENT_VELOCITY
                } else {
                    HIT_VELOCITY
                };
                let hit = Hit {
                    freq: track.freq_at(step),
                    cutoff: track
                        .filter_freq
                        .map(|f| f + ACCENT_CUTOFF_HZ * (velocity as f32 - 0.5)),
                    velocity,
                };
                voice.hit(hit, p, sample_rate);
                if i == ACID_VOICE {
                    let accent = if accent { 1.0 } else { 0.0 };
                    self.acid.gate(true, accent, &self.params.acid, sample_rate);
                }
                let gate = track.gate.unwrap_or(self.params.seq.gate_length);
                let hold = (f64::from(gate) * step_frames).round().max(1.0) as u64;
                self.seq.gate_off_at(i, frame.saturating_add(hold));
            }
        }
        self.seq.update_next_event();
    }

    /// Fills `out` with whole interleaved frames and advances the frame counter
    /// by that many. Samples are finite and within the limiter's ceiling (within
    /// [-1, 1] with the limiter off). A trailing partial frame (if `out.len()` is
    /// not a multiple of [`CHANNELS`]) is zeroed.
    /// Never allocates.
    pub fn render(&mut self, out: &mut [f32]) {
        self.render_with(out, &NoSpeech);
    }

    /// [`Engine::render`], reading the samples of [`Command::Speak`] from `speech`.
    pub fn render_with(&mut self, out: &mut [f32], speech: &dyn SpeechSource) {
        let total = out.len() / CHANNELS;
        let (mut frames, rest) = out.split_at_mut(total * CHANNELS);
        rest.fill(0.0);
        while !frames.is_empty() {
            if self.frame >= self.seq.next_event() {
                self.sequence();
            }
            // Blocks end where the sequencer next acts, so it acts on its frame.
            let until_event = self.seq.next_event().saturating_sub(self.frame).max(1);
            let n = (frames.len() / CHANNELS)
                .min(BLOCK)
                .min(usize::try_from(until_event).unwrap_or(usize::MAX));
            let (block, tail) = frames.split_at_mut(n * CHANNELS);
            self.render_block(block, speech);
            frames = tail;
        }
    }

    /// Renders up to [`BLOCK`] frames in which the sequencer does nothing:
    /// voice by voice, then the master chain frame by frame. Every frame
    /// computes exactly what it would in any other split.
    fn render_block(&mut self, out: &mut [f32], source: &dyn SpeechSource) {
        let n = out.len() / CHANNELS;
        let sample_rate = self.sample_rate;
        let Engine {
            params,
            voices,
            acid,
            fx,
            scratch: s,
            gain,
            speech,
            limiter,
            ..
        } = self;
        let sweep = if fx.lfo1.render(
            &params.lfo1,
            sample_rate,
            &mut s.sweep[..n],
            |sin, depth| (LFO1_OCTAVES * sin * depth).exp2(),
        ) {
            Modulation::Cutoff(&s.sweep[..n])
        } else {
            Modulation::None
        };
        let tremolo = if fx.lfo2.render(
            &params.lfo2,
            sample_rate,
            &mut s.tremolo[..n],
            |sin, depth| 1.0 - depth * (1.0 - sin) / 2.0,
        ) {
            Modulation::Gain(&s.tremolo[..n])
        } else {
            Modulation::None
        };
        s.dry[..n].fill(0.0);
        s.reverb[..n].fill(0.0);
        s.delay[..n].fill(0.0);
        let buses = Buses {
            dry: &mut s.dry[..n],
            reverb: &mut s.reverb[..n],
            delay: &mut s.delay[..n],
        };
        let mut pending = Pending {
            buses,
            waiting: [0; LANES],
            count: 0,
            scratch: &mut s.voices,
            spare: &mut s.spare,
            acid,
            sample_rate,
        };
        for (i, p) in params.voices.iter().enumerate() {
            let modulation = match i {
                ACID_VOICE => sweep,
                TREMOLO_VOICE => tremolo,
                _ => Modulation::None,
            };
            pending.add(voices, i, p, modulation, n);
        }
        pending.flush(voices);
        let mixed = &mut s.mixed[..n];
        fx.render(
            &s.dry[..n],
            &s.reverb[..n],
            &s.delay[..n],
            mixed,
            params,
            sample_rate,
        );
        for (frame, &mixed) in out.chunks_exact_mut(CHANNELS).zip(mixed.iter()) {
            let mut mixed = mixed;
            if speech.is_live() {
                mixed = speech.mix(mixed, source, sample_rate);
            }
            frame.fill(limiter.process(mixed * gain.next(), CHANNELS));
        }
        self.frame = self.frame.wrapping_add(n as u64);
    }

    /// Keeps `frames` frames of history in every delay line beyond what its
    /// delay reads, so restoring a checkpoint saved at most `frames` frames
    /// before the engine's current frame is exact. Allocates; call once, right
    /// after construction (before rendering, as it invalidates checkpoints
    /// saved before). Never changes one output bit.
    pub fn keep_history(&mut self, frames: usize) {
        self.fx.keep_history(frames);
    }

    /// The history kept (0 unless [`Engine::keep_history`] was called).
    pub fn history(&self) -> usize {
        self.fx.history()
    }

    /// A checkpoint holding this engine's current state (allocates).
    pub fn checkpoint(&self) -> Checkpoint {
        let mut params = self.params.clone();
        // Room for any tracks a later save brings.
        params.seq.tracks.reserve(MAX_TRACKS);
        Checkpoint {
            params,
            voices: self.voices.clone(),
            acid: self.acid.clone(),
            fx: self.fx.checkpoint(),
            seq: self.seq.clone(),
            gain: self.gain.clone(),
            speech: self.speech.clone(),
            limiter: self.limiter.clone(),
            frame: self.frame,
        }
    }

    /// Saves the current state into `cp`, reusing its allocations: no
    /// allocation unless it last held an engine of another voice count. The
    /// delay lines' samples are not copied (see [`Engine::restore`]).
    pub fn save(&self, cp: &mut Checkpoint) {
        let Engine {
            sample_rate: _,
            params,
            voices,
            acid,
            fx,
            seq,
            gain,
            speech,
            limiter,
            frame,
            // Per block, never carried from one to the next.
            scratch: _,
        } = self;
        cp.params.clone_from(params);
        cp.voices.clone_from(voices);
        cp.acid.clone_from(acid);
        cp.fx = fx.checkpoint();
        cp.seq.clone_from(seq);
        cp.gain.clone_from(gain);
        cp.speech.clone_from(speech);
        cp.limiter.clone_from(limiter);
        cp.frame = *frame;
    }

    /// Returns to the state saved in `cp` (by this engine): afterwards
    /// `frame() == cp.frame()` and rendering (with any commands applied) gives
    /// bit for bit what an engine that was never rewound would give from that
    /// state. Exact when at most [`Engine::history`] frames were rendered since
    /// the save, on the timeline it was saved on (a checkpoint saved after the
    /// one last restored belongs to a discarded future), and no delay line was
    /// cleared since for a NaN or an infinity. Never allocates unless the
    /// voice count differs.
    pub fn restore(&mut self, cp: &Checkpoint) {
        let rendered = usize::try_from(self.frame.saturating_sub(cp.frame)).unwrap_or(usize::MAX);
        self.params.clone_from(&cp.params);
        self.voices.clone_from(&cp.voices);
        self.acid.clone_from(&cp.acid);
        self.fx.restore(&cp.fx, rendered);
        self.seq.clone_from(&cp.seq);
        self.gain.clone_from(&cp.gain);
        self.speech.clone_from(&cp.speech);
        self.limiter.clone_from(&cp.limiter);
        self.frame = cp.frame;
    }

    /// Turns the master limiter on or off and sets its ceiling, from the next
    /// frame; the limiter starts afresh, as at a cold start.
    pub fn set_limiter(&mut self, limiter: LimiterParams) {
        self.params.limiter = limiter.sanitized();
        self.limiter = Limiter::new(self.params.limiter, self.sample_rate);
    }

    /// Output samples the limiter has lowered or clipped since this engine was
    /// built (each channel counts). A fork copy carries the count on.
    pub fn limited_samples(&self) -> u64 {
        self.limiter.limited()
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

/// The sums every voice adds into.
struct Buses<'a> {
    dry: &'a mut [f64],
    reverb: &'a mut [f64],
    delay: &'a mut [f64],
}

impl Buses<'_> {
    /// Adds a voice's output at its send levels. A silent voice would add
    /// exact zeros, which change nothing (the sums start at +0 and so are
    /// never -0): it is skipped.
    fn mix(&mut self, s: &VoiceScratch) {
        let n = self.dry.len();
        let buses = self
            .dry
            .iter_mut()
            .zip(self.reverb.iter_mut())
            .zip(self.delay.iter_mut());
        let voice = s.out[..n].iter();
        if s.sends == Some([0.0, 0.0]) {
            // y * 0 is ±0, and adding ±0 to a sum that starts at +0 changes nothing.
            for (dry, &y) in self.dry.iter_mut().zip(voice) {
                *dry += y;
            }
        } else if let Some([to_reverb, to_delay]) = s.sends {
            for (((dry, reverb), delay), &y) in buses.zip(voice) {
                *dry += y;
                *reverb += y * to_reverb;
                *delay += y * to_delay;
            }
        } else {
            let sends = s.to_reverb[..n].iter().zip(&s.to_delay[..n]);
            for (((dry, reverb), delay), (&y, (to_reverb, to_delay))) in buses.zip(voice.zip(sends))
            {
                *dry += y;
                *reverb += y * to_reverb;
                *delay += y * to_delay;
            }
        }
    }
}

/// Groups the sounding voices of a block by [`LANES`], so that their filters
/// run side by side, and mixes them in voice order (the order of the sums).
struct Pending<'a> {
    buses: Buses<'a>,
    /// The sounding voices waiting for their group to fill, in voice order,
    /// their oscillators in `scratch` at the same places.
    waiting: [usize; LANES],
    count: usize,
    scratch: &'a mut [VoiceScratch; LANES],
    spare: &'a mut [[f64; BLOCK]; LANES],
    acid: &'a mut Acid,
    sample_rate: u32,
}

impl Pending<'_> {
    fn add(
        &mut self,
        voices: &mut [Voice],
        i: usize,
        p: &VoiceParams,
        modulation: Modulation<'_>,
        n: usize,
    ) {
        let slot = self.count;
        let Some(voice) = voices.get_mut(i) else {
            return;
        };
        if voice.oscillate(p, self.sample_rate, modulation, n, &mut self.scratch[slot]) {
            self.waiting[slot] = i;
            self.count += 1;
            if self.count == LANES {
                self.flush(voices);
            }
        } else if i == ACID_VOICE {
            // The acid path rings on after its voice falls silent.
            self.flush(voices);
            self.scratch[slot].out[..n].fill(0.0);
            self.finish(i, slot);
        }
    }

    /// Filters and mixes the voices left waiting, if any.
    fn flush(&mut self, voices: &mut [Voice]) {
        let waiting = &self.waiting[..self.count];
        if waiting.is_empty() {
            return;
        }
        // The waiting voices in order, each taken from the voices after the last.
        let (mut waiting, mut after, mut rest) = (waiting.iter(), 0, voices);
        let mut scratch = self.scratch.iter_mut();
        let group = std::array::from_fn(|_| {
            let &i = waiting.next()?;
            let (voice, tail) = std::mem::take(&mut rest)
                .get_mut(i - after..)?
                .split_first_mut()?;
            (after, rest) = (i + 1, tail);
            Some(voice.filtering(scratch.next()?))
        });
        filter_voices(group, self.spare, self.sample_rate);
        for slot in 0..self.count {
            self.finish(self.waiting[slot], slot);
        }
        self.count = 0;
    }

    /// Mixes voice `i` from the scratch at `slot`.
    fn finish(&mut self, i: usize, slot: usize) {
        let s = &mut self.scratch[slot];
        let n = self.buses.dry.len();
        if i == ACID_VOICE {
            self.acid.render(&mut s.out[..n], self.sample_rate);
        }
        self.buses.mix(s);
    }
}

#[cfg(test)]
mod bit_exact_tests {
    use super::*;
    use crate::demo::{Message, Value, full_patch, held_voices};
    use crate::dialect::{Arg, parse};

    const RATE: u32 = 48_000;

    /// FNV-1a over 64-bit words: stable across Rust releases, unlike std's hasher.
    fn fnv(hash: &mut u64, word: u64) {
        for byte in word.to_le_bytes() {
            *hash = (*hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// A hash of every bit the voices put on the buses (f64, before the
    /// output's rounding to f32 could hide a difference) and of the output,
    /// over `seconds` of `patch` on `voices` voices, keeping `history` frames
    /// of history. Blocks are split as [`Engine::render_with`] splits them.
    fn render_hash(patch: Vec<Message>, voices: u8, seconds: usize, history: usize) -> u64 {
        let mut engine = Engine::new(RATE, voices);
        if history > 0 {
            engine.keep_history(history);
        }
        for m in patch {
            let args: Vec<Arg<'_>> = m.args.iter().map(Value::arg).collect();
            engine.apply(&parse(&m.address, &args, voices).expect("the patch parses"));
        }
        let mut hash = 0xcbf2_9ce4_8422_2325;
        let mut out = [0.0f32; BLOCK * CHANNELS];
        let mut left = seconds * RATE as usize;
        while left > 0 {
            if engine.frame >= engine.seq.next_event() {
                engine.sequence();
            }
            let until_event = engine.seq.next_event().saturating_sub(engine.frame).max(1);
            let n = left
                .min(BLOCK)
                .min(usize::try_from(until_event).unwrap_or(usize::MAX));
            engine.render_block(&mut out[..n * CHANNELS], &NoSpeech);
            let s = &engine.scratch;
            for x in [&s.dry[..n], &s.reverb[..n], &s.delay[..n]]
                .into_iter()
                .flatten()
            {
                fnv(&mut hash, x.to_bits());
            }
            for x in &out[..n * CHANNELS] {
                fnv(&mut hash, x.to_bits().into());
            }
            left -= n;
        }
        hash
    }

    /// The voices' render is tuned for speed under the rule that not one bit of
    /// output changes (two workers' outputs are compared, and a journal
    /// re-render must equal the live output): these are the hashes of the
    /// render as it was before. They cover odd voice counts (a voice filtered
    /// alone), envelopes closing mid-block, lfo1 sweeping voice2's cutoff and
    /// lfo2 on voice3's amplitude (the full patch), and held saws (in groups
    /// of four and of two, oscillated in the filters' loop, and of three and one).
    #[test]
    fn the_render_is_bit_for_bit_what_it_was() {
        check_hashes(0);
    }

    /// Delay lines keeping history (for rewinds) render the same bits.
    #[test]
    fn the_render_with_history_is_bit_for_bit_what_it_was() {
        check_hashes(4096);
    }

    fn check_hashes(history: usize) {
        let cases = [
            (
                "full patch, 16 voices",
                full_patch(16),
                16,
                8,
                0x4cdf_3cf6_7b78_db9c,
            ),
            (
                "full patch, 3 voices",
                full_patch(3),
                3,
                8,
                0xcad7_fcb4_3ecd_9027,
            ),
            (
                "full patch, 1 voice",
                full_patch(1),
                1,
                4,
                0x653b_7c94_77cf_33fa,
            ),
            (
                "held, 16 voices",
                held_voices(16, 0.05),
                16,
                4,
                0xe406_483e_602c_86fd,
            ),
            (
                "held, 3 voices",
                held_voices(3, 0.05),
                3,
                4,
                0xef7f_0292_6163_6dbf,
            ),
            (
                "held, 2 voices",
                held_voices(2, 0.05),
                2,
                4,
                0x5664_0394_749a_0378,
            ),
            (
                "held, 6 voices",
                held_voices(6, 0.05),
                6,
                4,
                0xf4b5_fd7a_d4b7_c25f,
            ),
        ];
        for (what, patch, voices, seconds, expected) in cases {
            let hash = render_hash(patch, voices, seconds, history);
            assert_eq!(hash, expected, "{what}, history {history}: {hash:#018x}");
        }
    }
}

#[cfg(test)]
mod rewind_tests {
    use super::*;
    use crate::demo::{Value, full_patch};
    use crate::dialect::{Arg, parse};
    use crate::{Pattern, TrackName, VoiceParam};

    const RATE: u32 = 48_000;
    const VOICES: u8 = 16;
    const HISTORY: usize = 4096;

    /// The full patch, with voices 13 to 16 held open as well (beside the
    /// sequencer's hits) and the reverb and delay loud: `history` frames kept.
    fn patched(history: usize) -> Engine {
        let mut engine = Engine::new(RATE, VOICES);
        engine.keep_history(history);
        for m in full_patch(VOICES) {
            let args: Vec<Arg<'_>> = m.args.iter().map(Value::arg).collect();
            engine.apply(&parse(&m.address, &args, VOICES).expect("the patch parses"));
        }
        for voice in 12..16 {
            engine.apply(&Command::Gate { voice, on: true });
        }
        for (control, value) in [(Control::ReverbMix, 0.6), (Control::DelayMix, 0.6)] {
            engine.apply(&Command::Set { control, value });
        }
        engine
    }

    /// `frames` frames from the engine's frame in pieces of the sizes in
    /// `pieces` (in turn), each command of `commands` applied before its
    /// (absolute) frame.
    fn play(
        engine: &mut Engine,
        frames: usize,
        commands: &[(u64, Command)],
        pieces: &[usize],
    ) -> Vec<f32> {
        let end = engine.frame() + frames as u64;
        let mut out = vec![0.0; frames * CHANNELS];
        let mut done = 0;
        for piece in pieces.iter().cycle() {
            if engine.frame() == end {
                break;
            }
            let now = engine.frame();
            for (_, cmd) in commands.iter().filter(|(at, _)| *at == now) {
                engine.apply(cmd);
            }
            let next_command = commands
                .iter()
                .map(|&(at, _)| at)
                .filter(|&at| at > now)
                .fold(end, u64::min);
            let n = (*piece as u64).min(next_command - now) as usize;
            engine.render(&mut out[done * CHANNELS..(done + n) * CHANNELS]);
            done += n;
        }
        out
    }

    fn assert_same(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len());
        if let Some(i) = a
            .iter()
            .zip(b)
            .position(|(a, b)| a.to_bits() != b.to_bits())
        {
            panic!(
                "{what}: frame {} differs: {} vs {}",
                i / CHANNELS,
                a[i],
                b[i]
            );
        }
    }

    #[test]
    fn a_restored_engine_renders_what_it_rendered_before() {
        let mut engine = patched(HISTORY);
        play(&mut engine, RATE as usize, &[], &[256]);
        let cp = engine.checkpoint();
        let never_rewound = engine.clone();
        let first = play(&mut engine, HISTORY, &[], &[1, 63, 700, 128, 17]);
        engine.restore(&cp);
        assert_eq!(engine.frame(), cp.frame());
        let again = play(&mut engine, HISTORY, &[], &[256, 5]);
        assert_same(&first, &again, "rewound");
        // And on for seconds, past every delay line's length.
        let mut never_rewound = never_rewound;
        let straight = play(&mut never_rewound, HISTORY + 3 * RATE as usize, &[], &[64]);
        let on = play(&mut engine, 3 * RATE as usize, &[], &[333]);
        assert_same(&[first, on].concat(), &straight, "carried on");
        let mut quiet = patched(0);
        for control in [Control::ReverbMix, Control::DelayMix] {
            quiet.apply(&Command::Set {
                control,
                value: 0.0,
            });
        }
        play(&mut quiet, RATE as usize, &[], &[256]);
        let dry = play(&mut quiet, HISTORY, &[], &[256]);
        assert!(
            dry.iter().zip(&again).any(|(a, b)| a != b),
            "the reverb and the delay are audible"
        );
    }

    /// Engine A renders `rewind` frames from a checkpoint with `discarded`
    /// applied, restores and renders on with `kept` applied; engine B, from the
    /// same start, renders straight through with `kept`. Both from the start
    /// made by `setup` and `warm_up` frames.
    fn rewound_equals_straight(
        setup: &dyn Fn(usize) -> Engine,
        warm_up: usize,
        rewind: usize,
        discarded: &[(u64, Command)],
        kept: &[(u64, Command)],
        what: &str,
    ) {
        let mut a = setup(HISTORY);
        let mut b = setup(0);
        play(&mut a, warm_up, &[], &[200]);
        play(&mut b, warm_up, &[], &[100]);
        let at = |commands: &[(u64, Command)]| -> Vec<(u64, Command)> {
            let from = a.frame();
            commands
                .iter()
                .map(|(t, c)| (from + t, c.clone()))
                .collect()
        };
        let (discarded, kept) = (at(discarded), at(kept));
        let cp = a.checkpoint();
        play(&mut a, rewind, &discarded, &[77, 64, 1000]);
        a.restore(&cp);
        // Seconds on, as a corrupt delay line sounds a delay later.
        let frames = rewind + 3 * RATE as usize;
        let rewound = play(&mut a, frames, &kept, &[64, 13, 512]);
        let straight = play(&mut b, frames, &kept, &[256]);
        assert_same(&rewound, &straight, what);
    }

    #[test]
    fn a_rewound_engine_with_a_new_command_equals_one_that_had_it_all_along() {
        let track = TrackName::new("t3").expect("a track name");
        let cases = [
            ("a gate on", Command::Gate { voice: 4, on: true }),
            (
                "a cutoff change",
                Command::SetVoice {
                    voice: 1,
                    param: VoiceParam::FilterFreq,
                    value: 300.0,
                },
            ),
            (
                "a sequencer change",
                Command::SeqPattern {
                    track,
                    pattern: Pattern::parse("xxxx").expect("a pattern"),
                },
            ),
            (
                "a reverb mix change",
                Command::Set {
                    control: Control::ReverbMix,
                    value: 0.1,
                },
            ),
            (
                "a delay mix change",
                Command::Set {
                    control: Control::DelayMix,
                    value: 1.0,
                },
            ),
            (
                "a delay time change",
                Command::Set {
                    control: Control::DelayTime,
                    value: 0.05,
                },
            ),
        ];
        for (what, cmd) in cases {
            for (rewind, at) in [(HISTORY, 0), (HISTORY, 1000), (1500, 1499), (64, 7)] {
                rewound_equals_straight(
                    &patched,
                    RATE as usize,
                    rewind,
                    &[],
                    &[(at, cmd.clone())],
                    &format!("{what} at {at} of {rewind}"),
                );
            }
        }
    }

    /// A quiet engine skips its silent reverb and delay: the future it rewinds
    /// from sounded through them, the one it renders instead does not.
    #[test]
    fn a_rewind_to_silence_forgets_the_discarded_future() {
        let quiet = |history: usize| {
            let mut engine = Engine::new(RATE, 4);
            engine.keep_history(history);
            for (param, value) in [(VoiceParam::SendReverb, 0.8), (VoiceParam::SendDelay, 0.8)] {
                engine.apply(&Command::SetVoice {
                    voice: 0,
                    param,
                    value,
                });
            }
            for (control, value) in [(Control::DelayTime, 0.03), (Control::DelayMix, 0.7)] {
                engine.apply(&Command::Set { control, value });
            }
            engine
        };
        let gate = |on| Command::Gate { voice: 0, on };
        rewound_equals_straight(
            &quiet,
            RATE as usize,
            HISTORY,
            &[(10, gate(true)), (1500, gate(false))],
            &[],
            "silence kept",
        );
        rewound_equals_straight(
            &quiet,
            RATE as usize,
            HISTORY,
            &[(10, gate(true))],
            &[(2000, gate(true))],
            "a later gate",
        );
    }

    /// xorshift64*: deterministic and dependency-free.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }

        fn unit(&mut self) -> f32 {
            self.below(1001) as f32 / 1000.0
        }

        fn command(&mut self) -> Command {
            let voice = self.below(u64::from(VOICES)) as u8;
            match self.below(8) {
                0 => Command::Gate {
                    voice,
                    on: self.below(2) == 0,
                },
                1 => Command::SetVoice {
                    voice,
                    param: VoiceParam::FilterFreq,
                    value: 100.0 + 4000.0 * self.unit(),
                },
                2 => Command::SeqPattern {
                    track: TrackName::new(&format!("t{}", voice + 1)).expect("a track name"),
                    pattern: Pattern::parse(
                        ["x.x", "X...x", ".", "xxxxxxxX"][self.below(4) as usize],
                    )
                    .expect("a pattern"),
                },
                3 => Command::SeqRun {
                    on: self.below(3) != 0,
                },
                4 => Command::Fade {
                    gain: self.unit(),
                    seconds: 0.05 * self.unit(),
                },
                _ => Command::Set {
                    control: [
                        Control::ReverbMix,
                        Control::ReverbRoom,
                        Control::DelayMix,
                        Control::DelayTime,
                        Control::DelayFeedback,
                        Control::Lfo1Depth,
                    ][self.below(6) as usize],
                    value: self.unit(),
                },
            }
        }

        /// Up to three commands at frames below `frames`.
        fn commands(&mut self, frames: usize) -> Vec<(u64, Command)> {
            (0..self.below(4))
                .map(|_| (self.below(frames as u64), self.command()))
                .collect()
        }

        fn pieces(&mut self) -> [usize; 3] {
            [0; 3].map(|_| 1 + self.below(300) as usize)
        }
    }

    /// Rounds of: save (into one reused checkpoint), render a random future
    /// (random commands, up to the history), restore, render another, as an
    /// engine without history renders it straight.
    #[test]
    fn random_rewinds_render_what_straight_renders_do() {
        const HISTORY: usize = 2048;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut a = patched(HISTORY);
        let mut b = patched(0);
        play(&mut a, RATE as usize / 2, &[], &[256]);
        play(&mut b, RATE as usize / 2, &[], &[256]);
        let mut cp = a.checkpoint();
        for round in 0..300 {
            a.save(&mut cp);
            let from = a.frame();
            let shift = |commands: Vec<(u64, Command)>| -> Vec<(u64, Command)> {
                commands.into_iter().map(|(t, c)| (from + t, c)).collect()
            };
            let rewind = 1 + rng.below(HISTORY as u64) as usize;
            let discarded = shift(rng.commands(rewind));
            play(&mut a, rewind, &discarded, &rng.pieces());
            a.restore(&cp);
            let frames = 1 + rng.below(HISTORY as u64) as usize;
            let kept = shift(rng.commands(frames));
            let rewound = play(&mut a, frames, &kept, &rng.pieces());
            let straight = play(&mut b, frames, &kept, &rng.pieces());
            assert_same(&rewound, &straight, &format!("round {round}"));
        }
    }
}
