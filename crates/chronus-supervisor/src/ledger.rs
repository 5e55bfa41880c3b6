//! The supervisor's record of commands: what it published, the frame each was
//! stamped at, the parameter mirror for cold starts, and the journal.

use crate::clients::ClientKey;
use crate::journal::Journal;
use crate::score::{CMD_ADDR, RESET_ADDR};
use chronus_dsp::{Command, Params};
use chronus_osc::{OscMessage, OscType};
use chronus_shm::{CmdLog, UNSTAMPED};
use chronus_worker::{PendingCommand, Snapshot};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

struct Entry {
    seq: u64,
    stamp: Option<u64>,
    bytes: Vec<u8>,
    command: Command,
    /// The message it came from, journaled as is so a journal is a usable score.
    message: Option<OscMessage>,
    /// Published for a frame past the frontier (a future timetag), by this client.
    scheduled: Option<ClientKey>,
}

/// Every path here runs per command under an OSC flood, so none scans all commands
/// in flight: workers stamp records in sequence order, so the unstamped ones are
/// always the newest, and stamped ones wait in frame order.
pub struct Ledger {
    /// Parameters after every settled command.
    mirror: Params,
    /// Published commands no worker has stamped yet, in sequence order.
    unstamped: VecDeque<Entry>,
    /// Stamped commands not yet played, by (stamp, seq): the order workers apply them.
    stamped: BTreeMap<(u64, u64), Entry>,
    /// Unplayed commands for now (not scheduled), by sequence number.
    immediate: BTreeSet<u64>,
    /// How many commands in flight are scheduled, in all and by client.
    scheduled: usize,
    /// Unplayed scheduled commands, by the client that sent them.
    scheduled_by: HashMap<ClientKey, BTreeSet<u64>>,
    journal: Option<Journal>,
}

impl Ledger {
    /// Starts from `params`: the defaults for the engine, with the daemon's settings.
    pub fn new(params: Params, journal: Option<Journal>) -> Ledger {
        Ledger {
            mirror: params,
            unstamped: VecDeque::new(),
            stamped: BTreeMap::new(),
            immediate: BTreeSet::new(),
            scheduled: 0,
            scheduled_by: HashMap::new(),
            journal,
        }
    }

    pub fn record(
        &mut self,
        seq: u64,
        command: Command,
        bytes: Vec<u8>,
        message: Option<OscMessage>,
        scheduled: Option<ClientKey>,
    ) {
        match scheduled {
            Some(client) => {
                self.scheduled += 1;
                self.scheduled_by.entry(client).or_default().insert(seq);
            }
            None => {
                self.immediate.insert(seq);
            }
        }
        self.unstamped.push_back(Entry {
            seq,
            stamp: None,
            bytes,
            command,
            message,
            scheduled,
        });
    }

    /// Commands published for a future timetag and not yet played.
    pub fn scheduled(&self) -> usize {
        self.scheduled
    }

    /// Those of them that `client` sent, and that every client at its address sent.
    pub fn scheduled_by(&self, client: ClientKey) -> (usize, usize) {
        let mine = self.scheduled_by.get(&client).map_or(0, BTreeSet::len);
        let address = self
            .scheduled_by
            .iter()
            .filter(|(c, _)| c.ip() == client.ip())
            .map(|(_, seqs)| seqs.len())
            .sum();
        (mine, address)
    }

    /// `e` has played (or was lost): it no longer counts as waiting.
    fn unschedule(&mut self, e: &Entry) {
        match e.scheduled {
            Some(client) => {
                self.scheduled -= 1;
                if let Some(seqs) = self.scheduled_by.get_mut(&client) {
                    seqs.remove(&e.seq);
                    if seqs.is_empty() {
                        self.scheduled_by.remove(&client);
                    }
                }
            }
            None => {
                self.immediate.remove(&e.seq);
            }
        }
    }

    fn mark_stamped(&mut self, mut e: Entry, stamp: u64) {
        e.stamp = Some(stamp);
        self.stamped.insert((stamp, e.seq), e);
    }

    /// Caches stamps workers have written, before the log slot can be reused.
    pub fn observe_stamps(&mut self, log: &CmdLog<'_>) {
        while let Some(stamp) = self
            .unstamped
            .front()
            .and_then(|e| log.stamp_of(e.seq))
            .filter(|&s| s != UNSTAMPED)
        {
            let e = self.unstamped.pop_front().expect("front exists");
            self.mark_stamped(e, stamp);
        }
    }

    /// Stamps every unstamped record itself (no worker is alive to do it).
    pub fn stamp_all(&mut self, log: &CmdLog<'_>, frontier: u64) {
        while let Some(e) = self.unstamped.pop_front() {
            match log.stamp(e.seq, frontier) {
                Some(stamp) => self.mark_stamped(e, stamp),
                // Overwritten in the log: it can no longer reach a worker.
                None => {
                    self.unschedule(&e);
                    tracing::warn!(seq = e.seq, "a command was lost from the log");
                }
            }
        }
    }

    /// Applies to the mirror, in (stamp, seq) order, every command stamped before
    /// `watermark`, and journals it.
    pub fn settle(&mut self, watermark: u64) {
        while let Some(entry) = self.stamped.first_entry() {
            if entry.key().0 >= watermark {
                break;
            }
            let e = entry.remove();
            self.unschedule(&e);
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
        if let Some(journal) = &mut self.journal {
            journal.write(frame, message);
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
            .stamped
            .values()
            .chain(&self.unstamped)
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
        // `stamped` iterates in (stamp, seq) order; the unstamped follow in seq order.
        for e in self.stamped.values().chain(&self.unstamped) {
            params.apply(&e.command);
        }
        params
    }

    /// The earliest record `client` must wait for before a sync: every unplayed
    /// command for now, and its own scheduled ones; not what other clients scheduled
    /// for later, so no client can hold up another's syncs.
    pub fn oldest_unsettled_for(&self, client: ClientKey) -> Option<u64> {
        let own = self.scheduled_by.get(&client).and_then(|s| s.first());
        self.immediate.first().into_iter().chain(own).min().copied()
    }

    /// The earliest record the supervisor still needs the log to hold a stamp for.
    pub fn oldest_unstamped(&self) -> Option<u64> {
        self.unstamped.front().map(|e| e.seq)
    }

    /// The parameters as of the last settled command: what the device has played.
    pub fn mirror(&self) -> &Params {
        &self.mirror
    }

    pub fn journal_errors(&self) -> u64 {
        self.journal.as_ref().map_or(0, Journal::errors)
    }

    /// Writes out and closes the journal (at shutdown).
    pub fn finish(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.finish();
        }
    }
}
