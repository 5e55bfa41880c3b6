//! `#[repr(C)]` structures at fixed offsets in the region. Only atomics: every
//! process reads and writes them concurrently, and nothing holds a pointer.

use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// "CHRONUS\0": the first word of a region.
pub const MAGIC: u64 = u64::from_le_bytes(*b"CHRONUS\0");
/// Bumped whenever the layout changes; a worker refuses a region of another version.
pub const VERSION: u32 = 8;
/// Interleaved output channels in every ring block.
pub const CHANNELS: usize = 2;
/// Worker slots: slot 0 starts as primary, slot 1 as hot standby.
pub const SLOTS: usize = 2;
/// Room for the cold-start snapshot (parameters plus pending commands).
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 20;

/// Global header at offset 0.
#[repr(C, align(64))]
pub struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub channels: AtomicU32,
    pub sample_rate: AtomicU32,
    pub block_frames: AtomicU32,
    pub ring_blocks: AtomicU32,
    pub supervisor_pid: AtomicU32,
    pub region_len: AtomicU64,
    /// How far ahead of `play_frame` workers render.
    pub lookahead_frames: AtomicU64,
    /// Mono samples in the speech area.
    pub speech_samples: AtomicU64,
    pub clock: Clock,
    pub anchor: Anchor,
    pub frontier: Frontier,
    pub snapshot_len: AtomicU64,
    /// Bit `i` set: slot `i` is confirmed in lockstep and the callback may read it
    /// when the active slot lacks a block. Written by the supervisor.
    pub readable_slots: AtomicU32,
    /// Threads refused SCHED_FIFO, as [`REALTIME_DENIED_AUDIO`] and
    /// [`REALTIME_DENIED_WORKER`] bits; the supervisor warns once per run.
    pub realtime_denied: AtomicU32,
    /// Longest a worker sleeps between heartbeats when nothing wakes it, in
    /// microseconds (a fraction of the hang timeout; 0 until the supervisor sets it).
    pub heartbeat_us: AtomicU32,
    /// 1 while a slot is not in lockstep: the callback then wakes every worker
    /// every time, not only those that ran low. Written by the supervisor.
    pub restoring: AtomicU32,
}

/// [`Header::realtime_denied`]: the audio thread runs at normal priority.
pub const REALTIME_DENIED_AUDIO: u32 = 1;
/// [`Header::realtime_denied`]: a worker's render loop runs at normal priority.
pub const REALTIME_DENIED_WORKER: u32 = 2;

/// Written by the audio callback only; on cache lines of its own.
#[repr(C, align(64))]
pub struct Clock {
    /// The next frame the device will be handed. Workers pace themselves by it.
    pub play_frame: AtomicU64,
    /// The earliest frame a command read from the log after this may be stamped
    /// at: the end of the frames the callback is handing the device plus the most
    /// a callback has asked for of late, raised before it reads them (see `CmdLog`).
    pub stamp_from: AtomicU64,
    /// 0 until the supervisor lets the callback start the timeline.
    pub running: AtomicU32,
    /// The slot the callback reads first.
    pub active_slot: AtomicU32,
    pub frames_out: AtomicU64,
    pub underrun_frames: AtomicU64,
    /// Frames served from a slot other than the active one.
    pub fallback_frames: AtomicU64,
    pub callbacks: AtomicU64,
    pub callback_max_ns: AtomicU64,
    pub xruns: AtomicU64,
    /// Callbacks that started more than their own frames' time after the device's
    /// pace (the sound server or the machine held them up).
    pub late_callbacks: AtomicU64,
}

/// When the device was last handed audio, and which frame: maps wall-clock times
/// (OSC timetags) to frames. Written by the callback under a sequence lock.
#[repr(C, align(64))]
pub struct Anchor {
    seq: AtomicU64,
    frame: AtomicU64,
    mono_ns: AtomicU64,
}

impl Anchor {
    /// The callback's side: never blocks.
    pub fn set(&self, frame: u64, mono_ns: u64) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        self.frame.store(frame, Ordering::Relaxed);
        self.mono_ns.store(mono_ns, Ordering::Relaxed);
        self.seq.fetch_add(1, Ordering::AcqRel);
    }

    /// `(frame, CLOCK_MONOTONIC ns)` of the latest hand-off, or `None` before the first.
    pub fn get(&self) -> Option<(u64, u64)> {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            let frame = self.frame.load(Ordering::Relaxed);
            let mono_ns = self.mono_ns.load(Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::Acquire);
            if before % 2 == 0 && self.seq.load(Ordering::Relaxed) == before {
                return (mono_ns != 0).then_some((frame, mono_ns));
            }
            std::hint::spin_loop();
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds (a vDSO read, no syscall): comparable across
/// the processes sharing the region.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The highest frame any worker has claimed to render.
#[repr(C, align(64))]
pub struct Frontier {
    pub frame: AtomicU64,
}

/// What a worker says about itself in its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SlotPhase {
    Empty = 0,
    /// Mapped the region, loading its start state.
    Starting = 1,
    /// Rendering blocks into the ring.
    Rendering = 2,
}

impl SlotPhase {
    pub fn from_u32(v: u32) -> SlotPhase {
        match v {
            1 => SlotPhase::Starting,
            2 => SlotPhase::Rendering,
            _ => SlotPhase::Empty,
        }
    }
}

/// Per-slot control block.
#[repr(C, align(64))]
pub struct SlotHeader {
    /// Pid of the worker occupying the slot, written by the worker itself.
    pub pid: AtomicU32,
    phase: AtomicU32,
    /// Incremented on every turn of the worker's loop; a stalled count is a hang.
    pub heartbeat: AtomicU64,
    /// End (exclusive) of the last block the worker finished.
    pub rendered: AtomicU64,
    /// First frame this occupant rendered; blocks before it are a predecessor's.
    pub first_frame: AtomicU64,
    /// Next command-log sequence number the worker will read.
    pub cmd_cursor: AtomicU64,
    /// Supervisor -> worker: `target slot + 1` to fork a copy into that slot.
    pub fork_request: AtomicU32,
    /// Futex word the worker sleeps on; bumped to wake it.
    pub wake: AtomicU32,
    /// Commands found already in the past when read (a protocol breach; should stay 0).
    pub late_commands: AtomicU64,
    /// Output samples the master limiter lowered or clipped in the blocks rendered here.
    pub limited_samples: AtomicU64,
    /// Times the worker went back to a checkpoint to render a command in.
    pub rewinds: AtomicU64,
}

impl SlotHeader {
    pub fn phase(&self) -> SlotPhase {
        SlotPhase::from_u32(self.phase.load(Ordering::Acquire))
    }

    pub fn set_phase(&self, phase: SlotPhase) {
        self.phase.store(phase as u32, Ordering::Release);
    }

    /// Wakes the worker sleeping on [`SlotHeader::wake`] (or makes its next sleep
    /// return at once). Never blocks; safe in the audio callback.
    pub fn wake_worker(&self) {
        self.wake.fetch_add(1, Ordering::Release);
        crate::futex::futex_wake(&self.wake);
    }
}

/// Header of one ring block; `CHANNELS * block_frames` sample words follow it.
#[repr(C)]
pub struct BlockHeader {
    /// Absolute frame of the block's first sample, or `u64::MAX` while being written.
    pub frame: AtomicU64,
    pub checksum: AtomicU64,
    /// The rendering worker's command-log cursor: the block reflects every record
    /// before it, and no record after it that is stamped inside the block.
    pub cursor: AtomicU64,
}

pub(crate) const fn align64(n: usize) -> usize {
    (n + 63) & !63
}

const _: () = {
    assert!(size_of::<AtomicU64>() == 8 && align_of::<AtomicU64>() == 8);
    assert!(size_of::<AtomicU32>() == 4);
    assert!(size_of::<Clock>() == 128);
    assert!(size_of::<Frontier>() == 64);
    assert!(size_of::<Anchor>() == 64);
    assert!(size_of::<SlotHeader>() == 128);
    assert!(size_of::<Header>() % 64 == 0);
    assert!(size_of::<BlockHeader>() == 24);
    assert!(align_of::<Header>() == 64);
};
