//! The supervisor's record of commands: what it published, the frame each was
//! stamped at, the parameter mirror for cold starts, and the journal.

use crate::score::{CMD_ADDR, RESET_ADDR, ScoreWriter};
use chronus_dsp::{Command, Params};
use chronus_osc::{OscMessage, OscType};
use chronus_shm::{CmdLog, UNSTAMPED};
use chronus_worker::{PendingCommand, Snapshot};

struct Entry {
    seq: u64,
    stamp: Option<u64>,
    bytes: Vec<u8>,
    command: Command,
    /// The message it came from, journaled as is so a journal is a usable score.
    message: Option<OscMessage>,
}

pub struct Ledger {
    /// Parameters after every settled command.
    mirror: Params,
    /// Published commands not yet played, in sequence order.
    unsettled: Vec<Entry>,
    journal: Option<ScoreWriter>,
    journal_errors: u64,
}

impl Ledger {
    pub fn new(num_voices: u8, journal: Option<ScoreWriter>) -> Ledger {
        Ledger {
            mirror: Params::new(num_voices),
            unsettled: Vec::new(),
            journal,
            journal_errors: 0,
        }
    }

    pub fn record(
        &mut self,
        seq: u64,
        command: Command,
        bytes: Vec<u8>,
        message: Option<OscMessage>,
    ) {
        self.unsettled.push(Entry {
            seq,
            stamp: None,
            bytes,
            command,
            message,
        });
    }

    /// Caches stamps workers have written, before the log slot can be reused.
    pub fn observe_stamps(&mut self, log: &CmdLog<'_>) {
        for e in self.unsettled.iter_mut().filter(|e| e.stamp.is_none()) {
            if let Some(stamp) = log.stamp_of(e.seq).filter(|&s| s != UNSTAMPED) {
                e.stamp = Some(stamp);
            }
        }
    }

    /// Stamps every unstamped record itself (no worker is alive to do it).
    pub fn stamp_all(&mut self, log: &CmdLog<'_>, frontier: u64) {
        for e in self.unsettled.iter_mut().filter(|e| e.stamp.is_none()) {
            e.stamp = log.stamp(e.seq, frontier);
        }
    }

    /// Applies to the mirror, in (stamp, seq) order, every command stamped before
    /// `watermark`, and journals it.
    pub fn settle(&mut self, watermark: u64) {
        let mut due: Vec<Entry> = Vec::new();
        let mut i = 0;
        while i < self.unsettled.len() {
            if self.unsettled[i].stamp.is_some_and(|s| s < watermark) {
                due.push(self.unsettled.remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|e| (e.stamp, e.seq));
        for e in due {
            self.mirror.apply(&e.command);
            let stamp = e.stamp.unwrap_or(watermark);
            let message = e.message.unwrap_or_else(|| OscMessage {
                addr: CMD_ADDR.into(),
                args: vec![OscType::Blob(e.bytes)],
            });
            self.journal(stamp, message);
        }
    }

    fn journal(&mut self, frame: u64, message: OscMessage) {
        if let Some(journal) = &mut self.journal
            && journal.write(frame, message).is_err()
        {
            self.journal_errors += 1;
        }
    }

    /// The state two fresh workers start from at `start_frame`, reading the log from `cursor`.
    /// Every record before `cursor` must be stamped (see `stamp_all`).
    pub fn cold_snapshot(&mut self, start_frame: u64, cursor: u64) -> Snapshot {
        self.settle(start_frame);
        if start_frame > 0 {
            self.journal(
                start_frame,
                OscMessage {
                    addr: RESET_ADDR.into(),
                    args: vec![],
                },
            );
        }
        let pending = self
            .unsettled
            .iter()
            .filter(|e| e.seq < cursor)
            .map(|e| PendingCommand {
                stamp: e.stamp.unwrap_or(start_frame),
                seq: e.seq,
                bytes: e.bytes.clone(),
            })
            .collect();
        Snapshot {
            start_frame,
            cursor,
            params: self.mirror.clone(),
            pending,
        }
    }

    /// The parameters once every published command has played: the mirror, then
    /// the unplayed commands in the order workers apply them (unstamped last).
    pub fn latest(&self) -> Params {
        let mut params = self.mirror.clone();
        let mut unplayed: Vec<&Entry> = self.unsettled.iter().collect();
        unplayed.sort_by_key(|e| (e.stamp.unwrap_or(u64::MAX), e.seq));
        for e in unplayed {
            params.apply(&e.command);
        }
        params
    }

    /// The earliest record not yet played, if any.
    pub fn oldest_unsettled(&self) -> Option<u64> {
        self.unsettled.iter().map(|e| e.seq).min()
    }

    /// The earliest record the supervisor still needs the log to hold a stamp for.
    pub fn oldest_unstamped(&self) -> Option<u64> {
        self.unsettled
            .iter()
            .find(|e| e.stamp.is_none())
            .map(|e| e.seq)
    }

    pub fn journal_errors(&self) -> u64 {
        self.journal_errors
    }

    pub fn flush(&mut self) {
        if let Some(journal) = &mut self.journal
            && journal.flush().is_err()
        {
            self.journal_errors += 1;
        }
    }
}
