//! The audio callback's work. Invariant: nothing here allocates, locks, logs,
//! blocks or panics; it reads and swaps atomics, copies samples and makes one
//! system call, a futex wake (which never blocks) that tells the workers the device
//! moved on.

use crate::frame_clock::FrameClock;
use crate::record::RecorderHandle;
use crate::take::TakeTap;
use chronus_shm::{CHANNELS, CMD_CAPACITY, Region, SLOTS, monotonic_ns};
use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Fills device buffers from the worker rings, frame by absolute frame.
pub struct OutputReader {
    region: Arc<Region>,
    block_frames: u64,
    /// The next command-log record this reader has not stamped or seen stamped.
    log_cursor: u64,
    /// The device's pace, which timetags map through, and which callbacks came late.
    frame_clock: FrameClock,
    largest: LargestCallback,
    recorder: Option<RecorderHandle>,
    takes: Option<TakeTap>,
}

impl OutputReader {
    pub fn new(
        region: Arc<Region>,
        recorder: Option<RecorderHandle>,
        takes: Option<TakeTap>,
    ) -> OutputReader {
        let block_frames = u64::from(region.geometry().block_frames);
        let frame_clock = FrameClock::new(region.geometry().sample_rate);
        let largest = LargestCallback::new(region.geometry().sample_rate);
        OutputReader {
            region,
            block_frames,
            log_cursor: 0,
            frame_clock,
            largest,
            recorder,
            takes,
        }
    }

    /// Fills `out` (interleaved, `CHANNELS` per frame) with the next frames.
    ///
    /// For each block-sized piece: the block from the active slot, else from any
    /// slot the supervisor marked readable, else silence counted as underrun. A
    /// block rendered before a command stamped inside it arrived counts as missing.
    /// Until the supervisor starts the timeline, silence without advancing it.
    pub fn fill(&mut self, out: &mut [f32]) {
        let started = monotonic_ns();
        let clock = &self.region.header().clock;
        if clock.running.load(Ordering::Acquire) == 0 {
            out.fill(0.0);
            // Nothing is handed over yet: commands may land from the first frames.
            let play = clock.play_frame.load(Ordering::Relaxed);
            let frames = (out.len() / CHANNELS) as u64;
            let reach = self.largest.see(frames);
            clock
                .stamp_from
                .fetch_max(play + frames + reach, Ordering::SeqCst);
            if let Some(takes) = &mut self.takes {
                takes.offer(play, &[]);
            }
            return;
        }
        let readable = self.region.header().readable_slots.load(Ordering::Acquire);
        let active = clock.active_slot.load(Ordering::Acquire) as usize % SLOTS;
        let first_frame = clock.play_frame.load(Ordering::Relaxed);
        let frames = (out.len() / CHANNELS) as u64;
        // Claim these frames, then stamp what the log holds, so that no command is
        // stamped inside them after this (see CmdLog's protocol). A command is
        // stamped past them by the most a callback has asked for of late, so the next
        // callback cannot hand it over: the least time a woken worker has.
        let reach = self.largest.see(frames);
        let base = first_frame + frames + reach;
        clock.stamp_from.fetch_max(base, Ordering::SeqCst);
        let log = self.region.log();
        let tail = log.tail();
        self.log_cursor = self
            .log_cursor
            .max(tail.saturating_sub(CMD_CAPACITY as u64));
        while self.log_cursor < tail {
            // `None`: lapped, so long stamped and played.
            let _ = log.stamp(self.log_cursor, base);
            self.log_cursor += 1;
        }
        let (mut fallback, mut underrun) = (0u64, 0u64);
        let mut frame = first_frame;
        let mut pos = 0usize;
        while (pos as u64) < frames {
            let block_start = frame - frame % self.block_frames;
            let offset = frame - block_start;
            let n = (self.block_frames - offset).min(frames - pos as u64);
            let dst = &mut out[pos * CHANNELS..(pos + n as usize) * CHANNELS];
            let mut read = |slot: usize| {
                self.region
                    .ring(slot)
                    .read(block_start, offset as usize, dst)
                    .is_some_and(|cursor| log.fresh(cursor, frame + n, tail))
            };
            if !read(active) {
                let from_other = (0..SLOTS)
                    .any(|slot| slot != active && readable & (1 << slot) != 0 && read(slot));
                if from_other {
                    fallback += n;
                } else {
                    dst.fill(0.0);
                    underrun += n;
                }
            }
            frame += n;
            pos += n as usize;
        }
        // Peer data is untrusted: never hand the device NaN, Inf or overs.
        for s in out.iter_mut() {
            *s = if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            };
        }
        clock.play_frame.store(frame, Ordering::Release);
        // A worker renders the room made now, not when a timer next fires, once its
        // ring holds no more than the next callback may take: it then has a callback's
        // time to render on, and with a lookahead of more than two callbacks it wakes
        // for several at once. One that has not read the log to its end is woken too
        // (a command it has not rendered in may be due by the next callback), and
        // every one while a slot is restored: the blocks that prove the new worker
        // are the next ones both render.
        let restoring = self.region.header().restoring.load(Ordering::Relaxed) != 0;
        for slot in 0..SLOTS {
            let me = self.region.slot(slot);
            if restoring
                || me.rendered.load(Ordering::Relaxed) <= frame + reach
                || me.cmd_cursor.load(Ordering::Relaxed) < tail
            {
                me.wake_worker();
            }
        }
        let tick = self.frame_clock.tick(first_frame, frames, started);
        self.region.header().anchor.set(first_frame, tick.at);
        if tick.late {
            clock.late_callbacks.fetch_add(1, Ordering::Relaxed);
        }
        clock.frames_out.fetch_add(frames, Ordering::Relaxed);
        clock.callbacks.fetch_add(1, Ordering::Relaxed);
        if fallback > 0 {
            clock.fallback_frames.fetch_add(fallback, Ordering::Relaxed);
        }
        if underrun > 0 {
            clock.underrun_frames.fetch_add(underrun, Ordering::Relaxed);
        }
        if let Some(recorder) = &mut self.recorder {
            recorder.push(&out[..frames as usize * CHANNELS]);
        }
        if let Some(takes) = &mut self.takes {
            takes.offer(first_frame, &out[..frames as usize * CHANNELS]);
        }
        let took = monotonic_ns().saturating_sub(started);
        clock.callback_max_ns.fetch_max(took, Ordering::Relaxed);
    }

    /// Counts a device-reported underrun or overrun (from the stream's error path).
    pub fn count_xrun(region: &Region) {
        region.header().clock.xruns.fetch_add(1, Ordering::Relaxed);
    }
}

/// The most frames a callback has asked for of late. A sound server may ask for more
/// than the device buffer: PulseAudio asked for 64 frames hands over 72 to 79 at a
/// time, and 128 after a stall; asked for 2048, it fills twice that when the stream
/// starts. Remembered for 50 to 100 ms of audio: the catch-up after a stall comes in
/// a row, and a burst long past should not hold back every later command.
struct LargestCallback {
    current: u64,
    previous: u64,
    /// Frames handed over since `current` started, and how many it spans.
    counted: u64,
    span: u64,
}

impl LargestCallback {
    fn new(sample_rate: u32) -> LargestCallback {
        LargestCallback {
            current: 0,
            previous: 0,
            counted: 0,
            span: u64::from(sample_rate / 20).max(1),
        }
    }

    /// Counts a callback of `frames`; returns the most of late, these included.
    fn see(&mut self, frames: u64) -> u64 {
        if self.counted >= self.span {
            self.previous = self.current;
            self.current = 0;
            self.counted = 0;
        }
        self.counted += frames;
        self.current = self.current.max(frames);
        self.current.max(self.previous)
    }
}

/// The one reader of a run, handed from backend to backend: the device, the null
/// clock while the device is gone, the device again. One backend runs at a time
/// (the device thread stops one before it starts the next); the flag turns a
/// second caller into silence instead of a data race, without waiting.
pub struct SharedReader {
    busy: AtomicBool,
    reader: UnsafeCell<OutputReader>,
}

// SAFETY: the reader is only reached through `fill`, which holds `busy`: at most
// one thread at a time has the `&mut OutputReader`. OutputReader itself is Send.
unsafe impl Sync for SharedReader {}

impl SharedReader {
    pub fn new(reader: OutputReader) -> SharedReader {
        SharedReader {
            busy: AtomicBool::new(false),
            reader: UnsafeCell::new(reader),
        }
    }

    /// [`OutputReader::fill`], or silence if another backend's callback is inside.
    pub fn fill(&self, out: &mut [f32]) {
        if self.busy.swap(true, Ordering::Acquire) {
            out.fill(0.0);
            return;
        }
        // SAFETY: `busy` was clear and is now set by us: no other reference to the
        // reader exists until we clear it below.
        unsafe { &mut *self.reader.get() }.fill(out);
        self.busy.store(false, Ordering::Release);
    }
}
