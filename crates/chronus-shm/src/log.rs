//! The broadcast command log: supervisor -> every worker.
//!
//! One append-only ring of fixed-size records, written only by the supervisor
//! and read by all workers, each with its own cursor. Because every worker reads
//! the same records and stamps them through the same protocol, every worker
//! applies every command at the same absolute frame: the basis of lockstep.
//!
//! Stamping protocol (all SeqCst): the audio callback raises `Clock::stamp_from`
//! to the end of the frames it is about to hand the device plus the most a
//! callback has asked for of late (as many again when every callback is the same
//! size), then reads the log tail and stamps every record it has not seen yet. Anyone
//! else who stamps (the supervisor right after publishing, a worker reading the
//! log) loads `stamp_from` after the tail that revealed the record. A stamp is
//! `max(stamp_from, min_frame)`, set by compare-and-swap from `UNSTAMPED`; the
//! first stamp wins. So no stamp falls inside frames the callback has taken: a
//! stamper that loaded an older `stamp_from` than the callback's latest was seen
//! by that callback's tail read, which stamped the record first or found it
//! stamped from a `stamp_from` at most one callback old, which lies past the
//! frames that callback takes (when callbacks do not grow).
//!
//! A stamp may fall inside frames a worker has already rendered: the worker goes
//! back to a checkpoint and renders them again with the command. Each ring block
//! carries the cursor it was rendered with, and [`CmdLog::fresh`] tells whether a
//! record the renderer had not read is stamped inside it (the callback plays such
//! a stale block as missing; the supervisor compares a block of both rings only
//! when both are fresh).
//!
//! Groups (an OSC bundle's messages) are published with one tail update, and each
//! record after the first takes the stamp of the record before it, so a group
//! takes effect atomically at one frame on every worker.

use crate::layout::align64;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Records in the log; the supervisor never laps a live worker's cursor.
pub const CMD_CAPACITY: usize = 1024;
/// Bytes of encoded command a record carries.
pub const CMD_PAYLOAD: usize = 240;
/// Stamp of a record no worker has stamped yet.
pub const UNSTAMPED: u64 = u64::MAX;

const WORDS: usize = CMD_PAYLOAD / 8;

#[repr(C, align(64))]
pub struct CmdRecord {
    /// `seq + 1` of the record held, 0 while being written.
    seq: AtomicU64,
    stamp: AtomicU64,
    min_frame: AtomicU64,
    len: AtomicU32,
    /// 1 if this record continues the group of the record before it.
    continues: AtomicU32,
    payload: [AtomicU64; WORDS],
}

pub(crate) const RECORD_STRIDE: usize = align64(std::mem::size_of::<CmdRecord>());

const _: () = {
    assert!(CMD_PAYLOAD % 8 == 0);
    assert!(std::mem::size_of::<CmdRecord>() == RECORD_STRIDE);
    assert!(CMD_CAPACITY.is_power_of_two());
};

/// A view of the log in a mapped region.
pub struct CmdLog<'a> {
    pub(crate) tail: &'a AtomicU64,
    pub(crate) records: &'a [CmdRecord],
}

impl CmdLog<'_> {
    /// Number of records ever published; the next record's sequence number.
    pub fn tail(&self) -> u64 {
        self.tail.load(Ordering::SeqCst)
    }

    fn record(&self, seq: u64) -> &CmdRecord {
        &self.records[(seq % CMD_CAPACITY as u64) as usize]
    }

    /// Publishes record `seq` (which must equal `tail()`); supervisor only.
    ///
    /// The caller guarantees no live worker's cursor is `CMD_CAPACITY` or more
    /// behind, so the slot reused here has been read by everyone.
    pub fn publish(&self, seq: u64, min_frame: u64, payload: &[u8]) {
        self.publish_group(seq, min_frame, &[payload]);
    }

    /// Publishes `payloads` as records `seq..seq + n`, visible to workers at once
    /// and applied at one frame.
    pub fn publish_group(&self, seq: u64, min_frame: u64, payloads: &[&[u8]]) {
        assert_eq!(
            seq,
            self.tail.load(Ordering::Relaxed),
            "log written out of order"
        );
        assert!(payloads.len() < CMD_CAPACITY, "group larger than the log");
        for (i, payload) in payloads.iter().enumerate() {
            self.write_record(seq + i as u64, min_frame, payload, i > 0);
        }
        self.tail
            .store(seq + payloads.len() as u64, Ordering::SeqCst);
    }

    fn write_record(&self, seq: u64, min_frame: u64, payload: &[u8], continues: bool) {
        assert!(payload.len() <= CMD_PAYLOAD, "command payload too long");
        let rec = self.record(seq);
        rec.seq.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        let mut words = [0u64; WORDS];
        for (i, b) in payload.iter().enumerate() {
            words[i / 8] |= u64::from(*b) << ((i % 8) * 8);
        }
        for (w, v) in rec.payload.iter().zip(words) {
            w.store(v, Ordering::Relaxed);
        }
        rec.len.store(payload.len() as u32, Ordering::Relaxed);
        rec.min_frame.store(min_frame, Ordering::Relaxed);
        rec.continues.store(u32::from(continues), Ordering::Relaxed);
        rec.stamp.store(UNSTAMPED, Ordering::Relaxed);
        rec.seq.store(seq + 1, Ordering::Release);
    }

    /// Copies record `seq` into `out`, returning its length and minimum frame, or
    /// `None` if the slot does not hold that record (never written, or lapped).
    pub fn read(&self, seq: u64, out: &mut [u8; CMD_PAYLOAD]) -> Option<(usize, u64)> {
        let rec = self.record(seq);
        if rec.seq.load(Ordering::Acquire) != seq + 1 {
            return None;
        }
        let len = (rec.len.load(Ordering::Relaxed) as usize).min(CMD_PAYLOAD);
        let min_frame = rec.min_frame.load(Ordering::Relaxed);
        for (i, w) in rec.payload.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        fence(Ordering::Acquire);
        (rec.seq.load(Ordering::Relaxed) == seq + 1).then_some((len, min_frame))
    }

    /// Stamps record `seq` with `max(base, min_frame)` unless it already has a
    /// stamp, and returns the stamp in force. `base` is `Clock::stamp_from`, loaded
    /// after the tail that revealed the record.
    pub fn stamp(&self, seq: u64, base: u64) -> Option<u64> {
        let rec = self.record(seq);
        let min_frame = rec.min_frame.load(Ordering::Relaxed);
        let want = if rec.continues.load(Ordering::Relaxed) != 0 && seq > 0 {
            // The head of the group was stamped first (workers stamp in order).
            self.stamp_of(seq - 1).filter(|&s| s != UNSTAMPED)?
        } else {
            base.max(min_frame)
        };
        let stamp =
            match rec
                .stamp
                .compare_exchange(UNSTAMPED, want, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => want,
                Err(existing) => existing,
            };
        (rec.seq.load(Ordering::Acquire) == seq + 1).then_some(stamp)
    }

    /// The stamp of record `seq`, `Some(UNSTAMPED)` if none yet, `None` if lapped.
    pub fn stamp_of(&self, seq: u64) -> Option<u64> {
        let rec = self.record(seq);
        let stamp = rec.stamp.load(Ordering::SeqCst);
        (rec.seq.load(Ordering::Acquire) == seq + 1).then_some(stamp)
    }

    /// Whether a block ending before `end`, rendered with cursor `cursor`, holds
    /// every command stamped inside it among the records before `tail`: none of the
    /// records from `cursor` on is stamped before `end`. Records no longer in the
    /// log are long played and count as outside. Bounded by the log's capacity;
    /// never blocks (the audio callback asks this).
    pub fn fresh(&self, cursor: u64, end: u64, tail: u64) -> bool {
        let from = cursor.max(tail.saturating_sub(CMD_CAPACITY as u64));
        (from..tail).all(|seq| self.stamp_of(seq).is_none_or(|stamp| stamp >= end))
    }
}
