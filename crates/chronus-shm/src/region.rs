//! Creating, sealing and mapping the memfd. All of the crate's pointer
//! arithmetic on the mapping lives here and in `ring.rs`.

use crate::layout::{
    BlockHeader, CHANNELS, Header, MAGIC, MAX_SNAPSHOT_BYTES, SLOTS, SlotHeader, VERSION, align64,
};
use crate::log::{CMD_CAPACITY, CmdLog, CmdRecord, RECORD_STRIDE};
use crate::ring::Ring;
use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use std::fs::File;
use std::mem::size_of;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Largest speech area a region may have: 2^26 samples (256 MiB), far beyond any
/// configuration, so a corrupt header cannot make a worker map absurd sizes.
pub const MAX_SPEECH_SAMPLES: u64 = 1 << 26;

/// Mono `f32` samples as bit patterns, addressed by absolute position modulo the
/// area's length (positions only ever grow, so a clip never moves).
#[derive(Clone, Copy)]
pub struct SpeechArea<'a> {
    words: &'a [AtomicU32],
}

impl SpeechArea<'_> {
    /// Samples the area holds.
    pub fn len(&self) -> u64 {
        self.words.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Stores `samples` from absolute position `at`, wrapping (supervisor). They
    /// become visible to a worker through the command that names them, which is
    /// published to the log with Release after these stores.
    pub fn write(&self, at: u64, samples: &[f32]) {
        let len = self.len();
        if len == 0 {
            return;
        }
        for (i, s) in samples.iter().enumerate() {
            self.words[((at + i as u64) % len) as usize].store(s.to_bits(), Ordering::Relaxed);
        }
    }

    /// The sample at absolute position `index` (wrapping; silence for an empty area).
    pub fn sample(&self, index: u64) -> f32 {
        match self.len() {
            0 => 0.0,
            len => f32::from_bits(self.words[(index % len) as usize].load(Ordering::Relaxed)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("cannot create the shared memory region: {0}")]
    Create(#[source] std::io::Error),
    #[error("cannot map the shared memory region: {0}")]
    Map(#[source] std::io::Error),
    #[error("the shared memory region is not a Chronus region (bad magic {0:#x})")]
    BadMagic(u64),
    #[error("the shared memory region has layout version {found}, this binary speaks {VERSION}")]
    BadVersion { found: u32 },
    #[error("the shared memory region is malformed: {0}")]
    Malformed(String),
    #[error("snapshot of {0} bytes exceeds the {MAX_SNAPSHOT_BYTES}-byte snapshot area")]
    SnapshotTooLarge(usize),
}

/// Sizes that fix the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub sample_rate: u32,
    pub block_frames: u32,
    pub ring_blocks: u32,
    pub lookahead_frames: u64,
    /// Mono samples of synthesized speech the region holds for workers to play.
    pub speech_samples: u64,
}

impl Geometry {
    /// Samples in one block, all channels.
    pub fn block_samples(&self) -> usize {
        self.block_frames as usize * CHANNELS
    }

    fn block_stride(&self) -> usize {
        align64(size_of::<BlockHeader>() + self.block_samples() * 4)
    }

    fn offsets(&self) -> Offsets {
        let slots = align64(size_of::<Header>());
        let log = slots + SLOTS * size_of::<SlotHeader>();
        let log_tail = log + CMD_CAPACITY * RECORD_STRIDE;
        let snapshot = log_tail + 64;
        let rings = snapshot + align64(MAX_SNAPSHOT_BYTES);
        let ring_len = self.ring_blocks as usize * self.block_stride();
        let speech = rings + SLOTS * ring_len;
        Offsets {
            slots,
            log,
            log_tail,
            snapshot,
            rings,
            ring_len,
            speech,
            total: speech + align64(self.speech_samples as usize * 4),
        }
    }
}

#[derive(Clone, Copy)]
struct Offsets {
    slots: usize,
    log: usize,
    log_tail: usize,
    snapshot: usize,
    rings: usize,
    ring_len: usize,
    speech: usize,
    total: usize,
}

/// A mapped region. Cheap to share by reference between threads: all fields are atomics.
pub struct Region {
    map: MmapRaw,
    geometry: Geometry,
    offsets: Offsets,
}

impl Region {
    /// Creates a sealed anonymous region (supervisor). Returns the mapping and the
    /// fd to hand to workers; it is close-on-exec until the spawner says otherwise.
    pub fn create(geometry: Geometry, supervisor_pid: u32) -> Result<(Region, OwnedFd), ShmError> {
        if geometry.block_frames == 0
            || geometry.ring_blocks < 4
            || geometry.speech_samples > MAX_SPEECH_SAMPLES
        {
            return Err(ShmError::Malformed(format!(
                "unusable geometry {geometry:?}"
            )));
        }
        let offsets = geometry.offsets();
        let fd = memfd_create(
            c"chronus",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| ShmError::Create(e.into()))?;
        let file = File::from(fd);
        file.set_len(offsets.total as u64)
            .map_err(ShmError::Create)?;
        let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
        fcntl(file.as_fd(), FcntlArg::F_ADD_SEALS(seals))
            .map_err(|e| ShmError::Create(e.into()))?;
        let map = MmapOptions::new()
            .len(offsets.total)
            .map_raw(&file)
            .map_err(ShmError::Map)?;
        let region = Region {
            map,
            geometry,
            offsets,
        };
        let h = region.header();
        h.version.store(VERSION, Ordering::Relaxed);
        h.channels.store(CHANNELS as u32, Ordering::Relaxed);
        h.sample_rate.store(geometry.sample_rate, Ordering::Relaxed);
        h.block_frames
            .store(geometry.block_frames, Ordering::Relaxed);
        h.ring_blocks.store(geometry.ring_blocks, Ordering::Relaxed);
        h.supervisor_pid.store(supervisor_pid, Ordering::Relaxed);
        h.region_len.store(offsets.total as u64, Ordering::Relaxed);
        h.lookahead_frames
            .store(geometry.lookahead_frames, Ordering::Relaxed);
        h.speech_samples
            .store(geometry.speech_samples, Ordering::Relaxed);
        for slot in 0..SLOTS {
            region.ring(slot).invalidate_all();
        }
        h.magic.store(MAGIC, Ordering::Release);
        Ok((region, OwnedFd::from(file)))
    }

    /// Maps a region created by the supervisor (worker), validating everything.
    pub fn open(fd: OwnedFd) -> Result<Region, ShmError> {
        let file = File::from(fd);
        let len = file.metadata().map_err(ShmError::Map)?.len() as usize;
        let seals =
            fcntl(file.as_fd(), FcntlArg::F_GET_SEALS).map_err(|e| ShmError::Map(e.into()))?;
        let needed = (SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW).bits();
        if seals & needed != needed {
            return Err(ShmError::Malformed(
                "region is not sealed against resizing".into(),
            ));
        }
        if len < size_of::<Header>() {
            return Err(ShmError::Malformed(format!(
                "region of {len} bytes is too small"
            )));
        }
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(ShmError::Map)?;
        // SAFETY: the mapping is at least one Header long and page-aligned; Header is
        // all atomics, valid for any bit pattern.
        let h = unsafe { &*(map.as_ptr() as *const Header) };
        let magic = h.magic.load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(ShmError::BadMagic(magic));
        }
        let found = h.version.load(Ordering::Relaxed);
        if found != VERSION {
            return Err(ShmError::BadVersion { found });
        }
        if h.channels.load(Ordering::Relaxed) as usize != CHANNELS {
            return Err(ShmError::Malformed("channel count differs".into()));
        }
        let geometry = Geometry {
            sample_rate: h.sample_rate.load(Ordering::Relaxed),
            block_frames: h.block_frames.load(Ordering::Relaxed),
            ring_blocks: h.ring_blocks.load(Ordering::Relaxed),
            lookahead_frames: h.lookahead_frames.load(Ordering::Relaxed),
            speech_samples: h.speech_samples.load(Ordering::Relaxed),
        };
        if geometry.block_frames == 0
            || geometry.block_frames > 1 << 16
            || geometry.ring_blocks > 1 << 16
            || geometry.speech_samples > MAX_SPEECH_SAMPLES
        {
            return Err(ShmError::Malformed(format!(
                "implausible geometry {geometry:?}"
            )));
        }
        let offsets = geometry.offsets();
        if offsets.total != len {
            return Err(ShmError::Malformed(format!(
                "region is {len} bytes, its geometry needs {}",
                offsets.total
            )));
        }
        Ok(Region {
            map,
            geometry,
            offsets,
        })
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// # Safety
    /// `offset + size_of::<T>() <= len`, `offset` aligned for `T`, and `T` made only
    /// of atomics (valid for any bit pattern and shareable across processes).
    unsafe fn at<T>(&self, offset: usize) -> &T {
        debug_assert!(offset + size_of::<T>() <= self.map.len());
        // SAFETY: upheld by the caller; the mapping lives as long as `self`.
        unsafe { &*(self.map.as_ptr().add(offset) as *const T) }
    }

    pub fn header(&self) -> &Header {
        // SAFETY: offset 0, checked against the length in create/open.
        unsafe { self.at(0) }
    }

    /// # Panics
    /// If `slot >= SLOTS` (a caller bug, never peer data).
    pub fn slot(&self, slot: usize) -> &SlotHeader {
        assert!(slot < SLOTS, "slot {slot} out of range");
        // SAFETY: within the slots area computed by `offsets`, 64-byte aligned.
        unsafe { self.at(self.offsets.slots + slot * size_of::<SlotHeader>()) }
    }

    pub fn log(&self) -> CmdLog<'_> {
        // SAFETY: CMD_CAPACITY records of RECORD_STRIDE (== size_of) bytes at a
        // 64-aligned offset, followed by the tail word; all atomics.
        unsafe {
            let first: *const CmdRecord = self.map.as_ptr().add(self.offsets.log).cast();
            CmdLog {
                tail: self.at(self.offsets.log_tail),
                records: std::slice::from_raw_parts(first, CMD_CAPACITY),
            }
        }
    }

    /// The frame a record revealed by a tail read just before is stamped from
    /// (before its own minimum frame): see [`Clock::stamp_from`].
    pub fn stamp_base(&self) -> u64 {
        self.header().clock.stamp_from.load(Ordering::SeqCst)
    }

    /// The block ring of `slot`.
    pub fn ring(&self, slot: usize) -> Ring<'_> {
        assert!(slot < SLOTS, "slot {slot} out of range");
        let offset = self.offsets.rings + slot * self.offsets.ring_len;
        // SAFETY: the ring's bytes lie inside the mapping (offsets.total == len) and
        // are borrowed for the region's lifetime.
        unsafe {
            Ring::new(
                self.map.as_ptr().add(offset),
                self.geometry.block_stride(),
                self.geometry.ring_blocks as usize,
                self.geometry.block_frames as usize,
            )
        }
    }

    /// The speech area: mono samples the supervisor writes and workers play.
    pub fn speech(&self) -> SpeechArea<'_> {
        // SAFETY: `speech_samples` words at a 64-aligned offset inside the mapping
        // (offsets.total == len); AtomicU32 is valid for any bit pattern.
        let words = unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(self.offsets.speech).cast(),
                self.geometry.speech_samples as usize,
            )
        };
        SpeechArea { words }
    }

    fn snapshot_words(&self) -> &[AtomicU64] {
        // SAFETY: the snapshot area is MAX_SNAPSHOT_BYTES long and 64-aligned.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(self.offsets.snapshot).cast(),
                MAX_SNAPSHOT_BYTES / 8,
            )
        }
    }

    /// Stores the cold-start snapshot (supervisor, while no worker is alive).
    pub fn write_snapshot(&self, bytes: &[u8]) -> Result<(), ShmError> {
        if bytes.len() > MAX_SNAPSHOT_BYTES {
            return Err(ShmError::SnapshotTooLarge(bytes.len()));
        }
        for (w, chunk) in self.snapshot_words().iter().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        self.header()
            .snapshot_len
            .store(bytes.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Reads the cold-start snapshot (worker, at start).
    pub fn read_snapshot(&self) -> Vec<u8> {
        let len =
            (self.header().snapshot_len.load(Ordering::Acquire) as usize).min(MAX_SNAPSHOT_BYTES);
        let mut out = Vec::with_capacity(len + 8);
        for w in self.snapshot_words().iter().take(len.div_ceil(8)) {
            out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
