//! The shared-memory region between the Chronus supervisor and its workers.
//!
//! One anonymous, sealed `memfd` holds everything the processes share: a header
//! with the device clock (`play_frame`) and counters, one [`SlotHeader`] and one
//! block [`Ring`] per worker slot, a broadcast [`CmdLog`] of frame-stamped
//! commands, and a snapshot area for cold starts. Every field is an atomic, the
//! layout is `#[repr(C)]` with offsets and never pointers, and a reader treats
//! whatever a peer wrote as untrusted.

mod checksum;
mod futex;
mod layout;
mod log;
pub mod realtime;
mod region;
mod ring;

pub use checksum::block_checksum;
pub use futex::futex_wait;
pub use layout::{
    Anchor, CHANNELS, Header, MAGIC, MAX_SNAPSHOT_BYTES, REALTIME_DENIED_AUDIO,
    REALTIME_DENIED_WORKER, SLOTS, SlotHeader, SlotPhase, VERSION, monotonic_ns,
};
pub use log::{CMD_CAPACITY, CMD_PAYLOAD, CmdLog, CmdRecord, UNSTAMPED};
pub use region::{Geometry, MAX_SPEECH_SAMPLES, Region, ShmError, SpeechArea};
pub use ring::Ring;
