//! Deterministic block rendering from the command log.

use crate::{Snapshot, WorkerError};
use chronus_dsp::{CHANNELS, Command, Engine, SpeechSource};
use chronus_shm::{CMD_PAYLOAD, Geometry, Region, SlotPhase, SpeechArea, block_checksum};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

pub struct Renderer {
    engine: Engine,
    /// Commands read from the log, keyed by (stamp, seq): the order of application.
    pending: BTreeMap<(u64, u64), Command>,
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
        Ok(Renderer {
            engine: Engine::from_params(
                geometry.sample_rate,
                &snapshot.params,
                snapshot.start_frame,
            ),
            pending,
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

    /// Reads new log records, stamping them by the frontier protocol.
    fn ingest(&mut self, region: &Region, slot: usize, block_end: u64) -> Result<(), WorkerError> {
        let header = region.header();
        let log = region.log();
        // Claim the block before looking at the log (see CmdLog's protocol).
        header.frontier.frame.fetch_max(block_end, Ordering::SeqCst);
        let tail = log.tail();
        while self.cursor < tail {
            let seq = self.cursor;
            let (len, _) = log
                .read(seq, &mut self.scratch)
                .ok_or(WorkerError::Lapped(seq))?;
            let frontier = header.frontier.frame.load(Ordering::SeqCst);
            let stamp = log.stamp(seq, frontier).ok_or(WorkerError::Lapped(seq))?;
            match Command::decode(&self.scratch[..len]) {
                Ok(cmd) => {
                    self.pending.insert((stamp, seq), cmd);
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
        Ok(())
    }

    /// Reads log records published since the last block, without starting one:
    /// commands due now are stamped at the first frame not rendered yet (or later,
    /// where another worker has claimed), not a block later.
    pub fn ingest_waiting(&mut self, region: &Region, slot: usize) -> Result<(), WorkerError> {
        if region.log().tail() == self.cursor {
            return Ok(());
        }
        self.ingest(region, slot, self.frame())
    }

    /// Renders the next block into `slot`'s ring, applying each command exactly
    /// at its stamped frame.
    pub fn render_block(&mut self, region: &Region, slot: usize) -> Result<(), WorkerError> {
        let start = self.frame();
        let end = start + self.block_frames;
        self.ingest(region, slot, end)?;
        let limited_before = self.engine.limited_samples();
        let late = self.render_frames(start, end, &Speech(region.speech()));
        if let Some(frame) = self.corrupt_frame
            && (start..end).contains(&frame)
        {
            let i = (frame - start) as usize * CHANNELS;
            self.block[i] = f32::from_bits(self.block[i].to_bits() ^ 1);
            self.corrupt_frame = None;
        }
        if late > 0 {
            region
                .slot(slot)
                .late_commands
                .fetch_add(late, Ordering::Relaxed);
        }
        let limited = self.engine.limited_samples() - limited_before;
        if limited > 0 {
            region
                .slot(slot)
                .limited_samples
                .fetch_add(limited, Ordering::Relaxed);
        }
        region
            .ring(slot)
            .write(start, &self.block, block_checksum(&self.block));
        region.slot(slot).rendered.store(end, Ordering::Release);
        Ok(())
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
                let cmd = entry.remove();
                self.engine.apply(&cmd);
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
