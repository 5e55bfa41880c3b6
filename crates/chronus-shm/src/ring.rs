//! A slot's ring of blocks, each stamped with the absolute frame it holds and
//! the command-log cursor it was rendered with.
//!
//! Seqlock discipline: a writer marks the block invalid, writes the samples,
//! then publishes the frame stamp with Release; a reader loads the stamp with
//! Acquire, copies, and re-checks the stamp. A torn or overwritten block is seen
//! as missing, never as wrong samples. Samples are stored as `AtomicU32` bit
//! patterns (plain loads and stores on x86 and ARM) so the race is defined.

use crate::layout::{BlockHeader, CHANNELS};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering, fence};

const WRITING: u64 = u64::MAX;

#[derive(Clone, Copy)]
pub struct Ring<'a> {
    base: *const u8,
    stride: usize,
    blocks: usize,
    block_frames: usize,
    _region: PhantomData<&'a ()>,
}

// SAFETY: a Ring only hands out shared references to atomics inside a mapping
// that outlives 'a; those are Sync.
unsafe impl Send for Ring<'_> {}
// SAFETY: as above.
unsafe impl Sync for Ring<'_> {}

impl<'a> Ring<'a> {
    /// # Safety
    /// `base .. base + stride * blocks` is mapped for 'a, 64-byte aligned, and
    /// each stride holds a BlockHeader followed by `block_frames * CHANNELS` u32s.
    pub(crate) unsafe fn new(
        base: *const u8,
        stride: usize,
        blocks: usize,
        block_frames: usize,
    ) -> Self {
        Ring {
            base,
            stride,
            blocks,
            block_frames,
            _region: PhantomData,
        }
    }

    pub fn block_frames(&self) -> usize {
        self.block_frames
    }

    pub fn blocks(&self) -> usize {
        self.blocks
    }

    fn block(&self, block_start: u64) -> (&'a BlockHeader, &'a [AtomicU32]) {
        let index = ((block_start / self.block_frames as u64) % self.blocks as u64) as usize;
        // SAFETY: index < blocks, so the block lies inside the ring (see `new`).
        unsafe {
            let p = self.base.add(index * self.stride);
            let header = &*(p as *const BlockHeader);
            let samples = std::slice::from_raw_parts(
                p.add(size_of::<BlockHeader>()) as *const AtomicU32,
                self.block_frames * CHANNELS,
            );
            (header, samples)
        }
    }

    /// Marks every block as holding nothing.
    pub fn invalidate_all(&self) {
        for i in 0..self.blocks {
            self.block((i * self.block_frames) as u64)
                .0
                .frame
                .store(WRITING, Ordering::Release);
        }
    }

    /// Publishes the block starting at `block_start` (a multiple of block_frames),
    /// rendered with the command-log cursor `cursor`.
    pub fn write(&self, block_start: u64, samples: &[f32], checksum: u64, cursor: u64) {
        debug_assert_eq!(block_start % self.block_frames as u64, 0);
        let (header, words) = self.block(block_start);
        header.frame.store(WRITING, Ordering::Relaxed);
        fence(Ordering::Release);
        for (w, s) in words.iter().zip(samples) {
            w.store(s.to_bits(), Ordering::Relaxed);
        }
        header.checksum.store(checksum, Ordering::Relaxed);
        header.cursor.store(cursor, Ordering::Relaxed);
        header.frame.store(block_start, Ordering::Release);
    }

    /// Copies frames `offset..offset + out.len() / CHANNELS` of the block starting at
    /// `block_start` into `out`, returning the cursor it was rendered with, or
    /// `None` if the ring does not hold that block intact.
    /// Never allocates, locks or blocks: this runs in the audio callback.
    pub fn read(&self, block_start: u64, offset: usize, out: &mut [f32]) -> Option<u64> {
        let start = offset * CHANNELS;
        let (header, words) = self.block(block_start);
        let words = words.get(start..start + out.len())?;
        if header.frame.load(Ordering::Acquire) != block_start {
            return None;
        }
        let cursor = header.cursor.load(Ordering::Relaxed);
        for (o, w) in out.iter_mut().zip(words) {
            *o = f32::from_bits(w.load(Ordering::Relaxed));
        }
        fence(Ordering::Acquire);
        (header.frame.load(Ordering::Relaxed) == block_start).then_some(cursor)
    }

    /// The checksum and cursor of the block starting at `block_start`, if the ring
    /// holds it.
    pub fn checksum(&self, block_start: u64) -> Option<(u64, u64)> {
        let (header, _) = self.block(block_start);
        if header.frame.load(Ordering::Acquire) != block_start {
            return None;
        }
        let sum = header.checksum.load(Ordering::Relaxed);
        let cursor = header.cursor.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (header.frame.load(Ordering::Relaxed) == block_start).then_some((sum, cursor))
    }
}
