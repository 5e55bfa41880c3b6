//! Deterministic block rendering from the command log.
//!
//! A command may be stamped inside frames this worker has already rendered (the
//! log stamps from the device's position, not from how far workers have got; see
//! `CmdLog`). The renderer keeps checkpoints of the engine at block boundaries
//! and the commands applied since the oldest one: it goes back to the latest
//! checkpoint at or before the stamp and renders again up to where it was,
//! writing the blocks from the stamp's on into the ring again.

use crate::{Snapshot, WorkerError};
use chronus_dsp::{CHANNELS, Checkpoint, Command, Engine, SpeechSource};
use chronus_shm::{CMD_PAYLOAD, Geometry, Region, SlotPhase, SpeechArea, block_checksum};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;

/// A command applied since the oldest checkpoint, kept to apply again.
struct Applied {
    key: (u64, u64),
    /// The frame it was applied before (its stamp, unless it came late).
    at: u64,
    command: Command,
}

pub struct Renderer {
    engine: Engine,
    /// Commands read from the log, keyed by (stamp, seq): the order of application.
    pending: BTreeMap<(u64, u64), Command>,
    /// Applied commands in the order applied, back to the oldest checkpoint.
    applied: VecDeque<Applied>,
    /// Engine states at every block start, oldest first (a save costs a copy of
    /// the engine's small state), and spares to save into.
    checkpoints: VecDeque<Checkpoint>,
    spare: Vec<Checkpoint>,
    max_checkpoints: usize,
    /// Blocks before this were counted in the slot's statistics already.
    counted_to: u64,
    cursor: u64,
    block_frames: u64,
    block: Vec<f32>,
    scratch: [u8; CMD_PAYLOAD],
    /// Test-only fault: the frame whose first sample gets one bit flipped.
    corrupt_frame: Option<u64>,
}

impl Renderer {
    pub fn from_snapshot(geometry: Geometry, snapshot: Snapshot) -> Result<Renderer, WorkerError> {
        let block_frames = u64::from(geometry.block_frames);
        if snapshot.start_frame % block_frames != 0 {
            return Err(WorkerError::Snapshot(format!(
                "start frame {} is not on a {block_frames}-frame block boundary",
                snapshot.start_frame
            )));
        }
        let mut pending = BTreeMap::new();
        for p in snapshot.pending {
            let cmd =
                Command::decode(&p.bytes).map_err(|e| WorkerError::Snapshot(e.to_string()))?;
            pending.insert((p.stamp, p.seq), cmd);
        }
        // A stamp is past the play position, and this worker at most the lookahead
        // and a block past it: checkpoints reach back that far, and the delay lines
        // keep what rendering again from the oldest reads.
        let reach = geometry.lookahead_frames + block_frames;
        let max_checkpoints = reach.div_ceil(block_frames) as usize + 2;
        let mut engine =
            Engine::from_params(geometry.sample_rate, &snapshot.params, snapshot.start_frame);
        engine.keep_history(
            (max_checkpoints as u64 * block_frames + geometry.lookahead_frames + block_frames)
                as usize,
        );
        Ok(Renderer {
            engine,
            pending,
            applied: VecDeque::new(),
            checkpoints: VecDeque::with_capacity(max_checkpoints + 1),
            spare: Vec::with_capacity(max_checkpoints + 1),
            max_checkpoints,
            counted_to: snapshot.start_frame,
            cursor: snapshot.cursor,
            block_frames,
            block: vec![0.0; geometry.block_samples()],
            scratch: [0; CMD_PAYLOAD],
            corrupt_frame: None,
        })
    }

    /// The next frame to render.
    pub fn frame(&self) -> u64 {
        self.engine.frame()
    }

    /// Test-only fault injection: flips the lowest bit of the sample at `frame` (first
    /// channel) once, after rendering and before the checksum, as a miscomputing worker
    /// would. The engine state stays right, so only that block differs.
    pub fn corrupt_at(&mut self, frame: u64) {
        self.corrupt_frame = Some(frame);
    }

    /// Announces this renderer as the occupant of `slot`.
    pub fn take_slot(&self, region: &Region, slot: usize) {
        let me = region.slot(slot);
        me.pid.store(std::process::id(), Ordering::Release);
        me.first_frame.store(self.frame(), Ordering::Release);
        me.rendered.store(self.frame(), Ordering::Release);
        me.cmd_cursor.store(self.cursor, Ordering::Release);
        me.set_phase(SlotPhase::Rendering);
    }

    /// Reads new log records, stamping them by the log's protocol; returns the
    /// earliest stamp among them that falls in frames already rendered.
    fn ingest(
        &mut self,
        region: &Region,
        slot: usize,
        block_end: u64,
    ) -> Result<Option<u64>, WorkerError> {
        let header = region.header();
        let log = region.log();
        header.frontier.frame.fetch_max(block_end, Ordering::SeqCst);
        let tail = log.tail();
        if self.cursor == tail {
            return Ok(None);
        }
        let base = region.stamp_base();
        let mut earliest = None::<u64>;
        while self.cursor < tail {
            let seq = self.cursor;
            let (len, _) = log
                .read(seq, &mut self.scratch)
                .ok_or(WorkerError::Lapped(seq))?;
            let stamp = log.stamp(seq, base).ok_or(WorkerError::Lapped(seq))?;
            match Command::decode(&self.scratch[..len]) {
                Ok(cmd) => {
                    self.pending.insert((stamp, seq), cmd);
                    earliest = Some(earliest.map_or(stamp, |e| e.min(stamp)));
                }
                // Every worker skips the same record, so lockstep holds.
                Err(e) => tracing::warn!(seq, error = %e, "skipping undecodable command"),
            }
            self.cursor += 1;
        }
        region
            .slot(slot)
            .cmd_cursor
            .store(self.cursor, Ordering::Release);
        Ok(earliest.filter(|&stamp| stamp < self.frame()))
    }

    /// Reads log records published since the last block, without starting one, and
    /// renders again whatever a command among them is stamped inside.
    pub fn ingest_waiting(&mut self, region: &Region, slot: usize) -> Result<(), WorkerError> {
        if let Some(stamp) = self.ingest(region, slot, self.frame())? {
            self.rewind(region, slot, stamp);
        }
        Ok(())
    }

    /// Renders the next block into `slot`'s ring, applying each command exactly
    /// at its stamped frame.
    pub fn render_block(&mut self, region: &Region, slot: usize) -> Result<(), WorkerError> {
        let end = self.frame() + self.block_frames;
        if let Some(stamp) = self.ingest(region, slot, end)? {
            self.rewind(region, slot, stamp);
        }
        self.render_next(region, slot, true);
        let end = self.frame();
        region.slot(slot).rendered.fetch_max(end, Ordering::Release);
        Ok(())
    }

    /// Goes back to the latest checkpoint at or before `stamp` and renders again to
    /// where rendering stood. Blocks before the one holding `stamp` come out as
    /// they were and are not written again: the device may be reading them.
    fn rewind(&mut self, region: &Region, slot: usize, stamp: u64) {
        let stood = self.frame();
        while self.checkpoints.back().is_some_and(|cp| cp.frame() > stamp) {
            self.spare.extend(self.checkpoints.pop_back());
        }
        let Some(checkpoint) = self.checkpoints.back() else {
            // Nothing to go back to (a worker just started): applied late.
            return;
        };
        self.engine.restore(checkpoint);
        let from = checkpoint.frame();
        region.slot(slot).rewinds.fetch_add(1, Ordering::Relaxed);
        while self.applied.back().is_some_and(|a| a.at >= from) {
            let a = self.applied.pop_back().expect("back exists");
            self.pending.insert(a.key, a.command);
        }
        let changed = stamp - stamp % self.block_frames;
        while self.frame() < stood {
            let write = self.frame() >= changed;
            self.render_next(region, slot, write);
        }
    }

    /// Renders the block at the engine's frame (saving a checkpoint first), and
    /// publishes it in the ring if `write`.
    fn render_next(&mut self, region: &Region, slot: usize, write: bool) {
        let start = self.frame();
        let end = start + self.block_frames;
        self.checkpoint(start);
        let limited_before = self.engine.limited_samples();
        let late = self.render_frames(start, end, &Speech(region.speech()));
        if let Some(frame) = self.corrupt_frame
            && (start..end).contains(&frame)
        {
            let i = (frame - start) as usize * CHANNELS;
            self.block[i] = f32::from_bits(self.block[i].to_bits() ^ 1);
            self.corrupt_frame = None;
        }
        if start >= self.counted_to {
            self.counted_to = end;
            let me = region.slot(slot);
            if late > 0 {
                me.late_commands.fetch_add(late, Ordering::Relaxed);
            }
            let limited = self.engine.limited_samples() - limited_before;
            if limited > 0 {
                me.limited_samples.fetch_add(limited, Ordering::Relaxed);
            }
        }
        if write {
            region
                .ring(slot)
                .write(start, &self.block, block_checksum(&self.block), self.cursor);
        }
    }

    /// Saves the engine at `frame` unless it holds that state already (the one a
    /// rewind restored), dropping the oldest (and the commands applied before it)
    /// beyond the number kept.
    fn checkpoint(&mut self, frame: u64) {
        if self
            .checkpoints
            .back()
            .is_some_and(|cp| cp.frame() >= frame)
        {
            return;
        }
        match self.spare.pop() {
            Some(mut cp) => {
                self.engine.save(&mut cp);
                self.checkpoints.push_back(cp);
            }
            None => self.checkpoints.push_back(self.engine.checkpoint()),
        }
        if self.checkpoints.len() > self.max_checkpoints {
            self.spare.extend(self.checkpoints.pop_front());
        }
        if let Some(oldest) = self.checkpoints.front().map(Checkpoint::frame) {
            while self.applied.front().is_some_and(|a| a.at < oldest) {
                self.applied.pop_front();
            }
        }
    }

    /// Renders `start..end` into the block buffer; returns commands applied late.
    fn render_frames(&mut self, start: u64, end: u64, speech: &Speech<'_>) -> u64 {
        let mut late = 0;
        let mut pos = start;
        while pos < end {
            while let Some(entry) = self.pending.first_entry() {
                let stamp = entry.key().0;
                if stamp > pos {
                    break;
                }
                if stamp < pos {
                    late += 1;
                }
                let key = *entry.key();
                let command = entry.remove();
                self.engine.apply(&command);
                self.applied.push_back(Applied {
                    key,
                    at: pos,
                    command,
                });
            }
            let until = self
                .pending
                .first_key_value()
                .map_or(end, |(&(stamp, _), _)| stamp.min(end));
            let from = ((pos - start) as usize) * CHANNELS;
            let to = ((until - start) as usize) * CHANNELS;
            self.engine.render_with(&mut self.block[from..to], speech);
            pos = until;
        }
        late
    }
}

/// The region's speech area as the engine reads it.
struct Speech<'a>(SpeechArea<'a>);

impl SpeechSource for Speech<'_> {
    fn sample(&self, index: u64) -> f32 {
        self.0.sample(index)
    }
}

#[cfg(test)]
mod rewind_tests {
    use super::*;
    use crate::PendingCommand;
    use chronus_dsp::demo::{Value, full_patch};
    use chronus_dsp::dialect::parse;
    use chronus_dsp::{Params, demo::Message};

    const VOICES: u8 = 4;
    const BF: u64 = 128;

    fn geometry() -> Geometry {
        Geometry {
            sample_rate: 48_000,
            block_frames: BF as u32,
            ring_blocks: 64,
            lookahead_frames: 4 * BF,
            speech_samples: 4096,
        }
    }

    fn command(m: &Message) -> Command {
        let args: Vec<_> = m.args.iter().map(Value::arg).collect();
        parse(&m.address, &args, VOICES).expect("parses")
    }

    /// A renderer starting at frame 0 with the full patch applied.
    fn renderer() -> Renderer {
        let pending = full_patch(VOICES)
            .iter()
            .enumerate()
            .map(|(seq, m)| {
                let mut bytes = Vec::new();
                command(m).encode(&mut bytes);
                PendingCommand {
                    stamp: 0,
                    seq: seq as u64,
                    bytes,
                }
            })
            .collect();
        let snapshot = Snapshot {
            start_frame: 0,
            cursor: 0,
            params: Params::new(VOICES),
            pending,
        };
        Renderer::from_snapshot(geometry(), snapshot).unwrap()
    }

    fn render_to(r: &mut Renderer, region: &Region, slot: usize, to: u64) {
        while r.frame() < to {
            r.render_block(region, slot).unwrap();
        }
    }

    #[test]
    fn a_command_stamped_inside_rendered_blocks_renders_as_if_it_was_always_there() {
        let (region, _fd) = Region::create(geometry(), std::process::id()).unwrap();
        let mut ahead = renderer();
        render_to(&mut ahead, &region, 0, 16 * BF);
        let before: Vec<_> = (0..16)
            .map(|b| region.ring(0).checksum(b * BF).unwrap())
            .collect();
        // The device is being handed frames up to 10.5 blocks: the command is
        // stamped a callback later, inside what `ahead` has rendered.
        let stamp = 11 * BF + BF / 2;
        region
            .header()
            .clock
            .stamp_from
            .store(stamp, Ordering::SeqCst);
        assert!(stamp < ahead.frame());
        let mut bytes = Vec::new();
        command(&Message {
            address: "/gate/voice4".into(),
            args: vec![Value::Int(1)],
        })
        .encode(&mut bytes);
        region.log().publish(0, 0, &bytes);
        ahead.ingest_waiting(&region, 0).unwrap();
        assert_eq!(
            ahead.frame(),
            16 * BF,
            "rendered again up to where it stood"
        );
        assert_eq!(region.log().stamp_of(0), Some(stamp));
        assert_eq!(region.slot(0).rewinds.load(Ordering::Relaxed), 1);

        // A worker that read the command before rendering those frames.
        let mut behind = renderer();
        render_to(&mut behind, &region, 1, 16 * BF);
        assert_eq!(region.slot(1).rewinds.load(Ordering::Relaxed), 0);
        let changed = stamp / BF * BF;
        for b in 0..16 {
            let frame = b * BF;
            let (again, cursor) = region.ring(0).checksum(frame).unwrap();
            let (straight, _) = region.ring(1).checksum(frame).unwrap();
            assert_eq!(again, straight, "block at {frame}");
            if frame < changed {
                assert_eq!((again, cursor), before[b as usize], "rewritten at {frame}");
            } else {
                assert_ne!(again, before[b as usize].0, "unchanged at {frame}");
                assert_eq!(cursor, 1);
            }
        }
        // And on, past a delay line's length of frames, still alike.
        for to in (32..=400).step_by(16) {
            render_to(&mut ahead, &region, 0, to * BF);
            render_to(&mut behind, &region, 1, to * BF);
            for b in to - 16..to {
                assert_eq!(
                    region.ring(0).checksum(b * BF),
                    region.ring(1).checksum(b * BF),
                    "block at {}",
                    b * BF
                );
            }
        }
        for slot in 0..2 {
            assert_eq!(region.slot(slot).late_commands.load(Ordering::Relaxed), 0);
        }
    }
}
