//! The publisher: the only writer of the command log. It takes groups of commands,
//! queues them while the log is full, maps timetags to frames, holds the schedule
//! of future commands (shared fairly between clients), and keeps the ledger of what
//! was published, stamped and played.

use crate::clients::ClientKey;
use crate::ledger::Ledger;
use chronus_dsp::{Command, Params};
use chronus_osc::{OscMessage, OscTime, OscType, Peer};
use chronus_shm::{CMD_CAPACITY, Region, SLOTS};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Groups waiting for room in the log.
const BACKLOG_LIMIT: usize = 8192;
/// Most commands waiting for a future timetag (published or queued, not yet played).
/// Each worker holds the ones it has read until their frame, so this bounds it too.
pub const SCHEDULE_LIMIT: usize = 4096;
/// Most of the schedule one client may hold, so others always find room.
pub const SCHEDULE_SHARE: usize = SCHEDULE_LIMIT / 4;
/// Most of it every client at one address may hold together: a client cannot take
/// more by sending from more ports.
pub const SCHEDULE_ADDRESS_SHARE: usize = SCHEDULE_LIMIT / 2;
/// How far ahead a bundle may be timetagged: the schedule is for music, not for
/// reminders; anything later is refused.
pub const SCHEDULE_HORIZON_SECONDS: u64 = 600;
/// Most commands in one group: the log must hold a whole group at once.
pub const MAX_GROUP: usize = CMD_CAPACITY - 2;
/// `/chronus/sync` requests one client may have waiting.
const SYNCS_PER_CLIENT: usize = 256;

/// Commands published together: one frame for all of them.
pub struct Group {
    pub min_frame: u64,
    pub commands: Vec<(Command, Option<OscMessage>)>,
    /// Whose schedule share a future group counts against.
    pub client: ClientKey,
}

impl Group {
    /// The daemon's own commands, to take effect at once.
    pub fn now(commands: Vec<(Command, Option<OscMessage>)>) -> Group {
        Group {
            min_frame: 0,
            commands,
            client: ClientKey::DAEMON,
        }
    }
}

/// Why a group was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The workers are not keeping up.
    QueueFull,
    /// More commands in one bundle (after address patterns are expanded) than the
    /// log holds at once.
    TooLarge,
    /// Every client together fills the schedule.
    ScheduleFull,
    /// This client holds its whole share of the schedule.
    ScheduleShare,
    /// The clients at this client's address hold their whole share together.
    ScheduleAddressShare,
    /// Timetagged beyond the horizon.
    Horizon,
}

impl Refusal {
    pub fn reason(self) -> String {
        match self {
            Refusal::QueueFull => "command queue full: the workers are not keeping up".into(),
            Refusal::TooLarge => format!(
                "too many commands at once: a bundle (with its address patterns expanded) may hold at most {MAX_GROUP}"
            ),
            Refusal::ScheduleFull => format!(
                "schedule full: {SCHEDULE_LIMIT} commands already wait for a future timetag; send it again once some have played"
            ),
            Refusal::ScheduleShare => format!(
                "schedule full for this client: it already has {SCHEDULE_SHARE} commands waiting for a future timetag (each client may hold a quarter of the schedule)"
            ),
            Refusal::ScheduleAddressShare => format!(
                "schedule full for this address: its clients already have {SCHEDULE_ADDRESS_SHARE} commands waiting for a future timetag (each address may hold half of the schedule)"
            ),
            Refusal::Horizon => format!(
                "timetag too far ahead: bundles may be scheduled at most {SCHEDULE_HORIZON_SECONDS} s ahead"
            ),
        }
    }
}

/// Refusals by cause, reported in status.
#[derive(Clone, Debug, Default)]
pub struct PublisherCounters {
    pub queue_full: u64,
    pub schedule_full: u64,
    pub schedule_share: u64,
    pub schedule_horizon: u64,
    pub syncs_refused: u64,
}

/// A speech command reached the log as record `seq`.
#[derive(Clone, Copy, Debug)]
pub struct SpeechPublished {
    pub stop: bool,
    pub seq: u64,
}

pub struct Publisher {
    region: Arc<Region>,
    ledger: Ledger,
    backlog: VecDeque<Group>,
    /// `/chronus/sync` requests waiting for the commands before them to play:
    /// (who, id, the sequence number every earlier command is below).
    syncs: Vec<(Peer, OscType, u64)>,
    syncs_by: HashMap<ClientKey, usize>,
    speech: Vec<SpeechPublished>,
    sample_rate: u32,
    block_frames: u64,
    /// When workers were last woken for commands due now: at most once in half a
    /// block, so that a flood does not turn into as many wake-ups.
    woken: Option<Instant>,
    pub counters: PublisherCounters,
}

impl Publisher {
    pub fn new(
        region: Arc<Region>,
        ledger: Ledger,
        sample_rate: u32,
        block_frames: u32,
    ) -> Publisher {
        Publisher {
            region,
            ledger,
            backlog: VecDeque::new(),
            syncs: Vec::new(),
            syncs_by: HashMap::new(),
            speech: Vec::new(),
            sample_rate,
            block_frames: u64::from(block_frames),
            woken: None,
            counters: PublisherCounters::default(),
        }
    }

    fn frontier(&self) -> u64 {
        self.region.header().frontier.frame.load(Ordering::Acquire)
    }

    /// Queues `group` for every worker, taking effect together no earlier than its
    /// `min_frame`, and publishes what the log has room for.
    pub fn submit(&mut self, group: Group, live_cursors: &[u64]) -> Result<(), Refusal> {
        if group.commands.len() > MAX_GROUP {
            self.counters.queue_full += 1;
            return Err(Refusal::TooLarge);
        }
        if self.backlog.len() >= BACKLOG_LIMIT {
            self.counters.queue_full += 1;
            return Err(Refusal::QueueFull);
        }
        let frontier = self.frontier();
        if group.min_frame > frontier {
            let horizon = SCHEDULE_HORIZON_SECONDS * u64::from(self.sample_rate);
            if group.min_frame - frontier > horizon {
                self.counters.schedule_horizon += 1;
                return Err(Refusal::Horizon);
            }
            let (mut queued, mut queued_by, mut queued_at) = (0, 0, 0);
            for g in self.backlog.iter().filter(|g| g.min_frame > frontier) {
                queued += g.commands.len();
                if g.client == group.client {
                    queued_by += g.commands.len();
                }
                if g.client.ip() == group.client.ip() {
                    queued_at += g.commands.len();
                }
            }
            let n = group.commands.len();
            let (mine, address) = self.ledger.scheduled_by(group.client);
            if group.client != ClientKey::DAEMON {
                if mine + queued_by + n > SCHEDULE_SHARE {
                    self.counters.schedule_share += 1;
                    return Err(Refusal::ScheduleShare);
                }
                if address + queued_at + n > SCHEDULE_ADDRESS_SHARE {
                    self.counters.schedule_share += 1;
                    return Err(Refusal::ScheduleAddressShare);
                }
            }
            if self.ledger.scheduled() + queued + n > SCHEDULE_LIMIT {
                self.counters.schedule_full += 1;
                return Err(Refusal::ScheduleFull);
            }
        }
        self.backlog.push_back(group);
        self.flush(live_cursors);
        Ok(())
    }

    /// Publishes queued groups while the log has room: no record a live worker (or
    /// the ledger, for its stamp) still needs is overwritten.
    pub fn flush(&mut self, live_cursors: &[u64]) {
        let region = Arc::clone(&self.region);
        let log = region.log();
        let oldest_needed = live_cursors
            .iter()
            .copied()
            .chain(self.ledger.oldest_unstamped())
            .min();
        let mut due_now = false;
        while let Some(group) = self.backlog.front() {
            let seq = log.tail();
            let end = seq + group.commands.len() as u64;
            if oldest_needed.is_some_and(|oldest| end - oldest >= CMD_CAPACITY as u64 - 1) {
                return;
            }
            let Some(group) = self.backlog.pop_front() else {
                return;
            };
            let encoded: Vec<Vec<u8>> = group
                .commands
                .iter()
                .map(|(command, _)| {
                    let mut bytes = Vec::new();
                    command.encode(&mut bytes);
                    bytes
                })
                .collect();
            let payloads: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            log.publish_group(seq, group.min_frame, &payloads);
            // Stamped from where the callback has got to now, not when a worker gets
            // to it: the workers woken below render it in from there.
            let base = region.stamp_base();
            for seq in seq..end {
                let _ = log.stamp(seq, base);
            }
            let scheduled = (group.min_frame > self.frontier()).then_some(group.client);
            due_now |= scheduled.is_none();
            for (i, ((command, message), bytes)) in
                group.commands.into_iter().zip(encoded).enumerate()
            {
                let seq = seq + i as u64;
                match command {
                    Command::Speak { .. } => self.speech.push(SpeechPublished { stop: false, seq }),
                    Command::SpeakStop => self.speech.push(SpeechPublished { stop: true, seq }),
                    _ => {}
                }
                self.ledger.record(seq, command, bytes, message, scheduled);
            }
        }
        if due_now {
            self.wake_workers();
        }
    }

    /// Wakes sleeping workers to read what was just published: a command due now
    /// is stamped inside what they have rendered, which they render again at once.
    fn wake_workers(&mut self) {
        let now = Instant::now();
        let gap =
            Duration::from_nanos(self.block_frames * 500_000_000 / u64::from(self.sample_rate));
        if self.woken.is_some_and(|at| now.duration_since(at) < gap) {
            return;
        }
        self.woken = Some(now);
        for slot in 0..SLOTS {
            self.region.slot(slot).wake_worker();
        }
    }

    /// Speech commands published since the last call.
    pub fn take_speech_published(&mut self) -> Vec<SpeechPublished> {
        std::mem::take(&mut self.speech)
    }

    /// Whether a `/chronus/sync` waits for its answer.
    pub fn has_syncs(&self) -> bool {
        !self.syncs.is_empty()
    }

    /// Whether anything waits for room in the log.
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Follows the workers' stamps and the device: what has played settles into the
    /// mirror (and the journal). Returns the syncs now answered.
    pub fn settle(&mut self, play: u64) -> Vec<(Peer, OscType)> {
        let region = Arc::clone(&self.region);
        self.ledger.observe_stamps(&region.log());
        self.ledger.settle(play);
        if self.syncs.is_empty() {
            return Vec::new();
        }
        // Queued commands get sequence numbers at or past the tail, so this also
        // waits for them.
        let tail = region.log().tail();
        let ledger = &self.ledger;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.syncs)
            .into_iter()
            .partition(|(peer, _, through)| {
                let client = ClientKey::of_peer(peer);
                ledger.oldest_unsettled_for(client).unwrap_or(tail) >= *through
            });
        self.syncs = waiting;
        for (peer, _, _) in &done {
            let key = ClientKey::of_peer(peer);
            if let Some(n) = self.syncs_by.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.syncs_by.remove(&key);
                }
            }
        }
        done.into_iter().map(|(peer, id, _)| (peer, id)).collect()
    }

    /// `/chronus/sync id`: answered once every command accepted before it has played.
    pub fn sync(&mut self, from: Peer, id: OscType) -> Result<(), String> {
        let key = ClientKey::of_peer(&from);
        let waiting = self.syncs_by.entry(key).or_default();
        if *waiting >= SYNCS_PER_CLIENT {
            self.counters.syncs_refused += 1;
            return Err(format!(
                "{SYNCS_PER_CLIENT} syncs from this client already wait; wait for their answers"
            ));
        }
        *waiting += 1;
        let queued: usize = self.backlog.iter().map(|g| g.commands.len()).sum();
        let through = self.region.log().tail() + queued as u64;
        self.syncs.push((from, id, through));
        Ok(())
    }

    /// The frame a bundle's timetag names, through the device clock: the frame
    /// being handed to the device at that moment. `None` for "immediately".
    pub fn timetag_frame(&self, time: OscTime) -> Option<u64> {
        if chronus_osc::is_immediate(time) {
            return None;
        }
        let (anchor_frame, anchor_ns) = self.region.header().anchor.get()?;
        let target = chronus_osc::timetag_to_system_time(time)?;
        let now_sys = std::time::SystemTime::now();
        let now_ns = chronus_shm::monotonic_ns() as i128;
        let offset_ns = match target.duration_since(now_sys) {
            Ok(ahead) => ahead.as_nanos() as i128,
            Err(behind) => -(behind.duration().as_nanos() as i128),
        };
        let since_anchor = now_ns + offset_ns - anchor_ns as i128;
        let frames = since_anchor * i128::from(self.sample_rate) / 1_000_000_000;
        Some((anchor_frame as i128 + frames).clamp(0, i128::from(u64::MAX / 2)) as u64)
    }

    /// How far `frame` is behind the first frame a command published now can be
    /// stamped at, in seconds; `None` when it is not behind.
    pub fn lateness(&self, frame: u64) -> Option<f64> {
        let base = self.region.stamp_base();
        (frame < base).then(|| (base - frame) as f64 / f64::from(self.sample_rate))
    }

    /// Stamps whatever no worker stamped, picks a block-aligned start frame past the
    /// frontier and writes the snapshot two fresh workers start from.
    pub fn write_cold_snapshot(&mut self) -> Result<u64, chronus_shm::ShmError> {
        let header = self.region.header();
        let log = self.region.log();
        let frontier = header.frontier.frame.load(Ordering::SeqCst);
        self.ledger
            .stamp_all(&log, frontier.max(self.region.stamp_base()));
        let play = header.clock.play_frame.load(Ordering::Acquire);
        let running = header.clock.running.load(Ordering::Acquire) != 0;
        // Leave the new workers time to exec before the device needs their first block.
        let margin = if running {
            header.lookahead_frames.load(Ordering::Relaxed) + u64::from(self.sample_rate) / 50
        } else {
            0
        };
        let bf = self.block_frames;
        let start = (frontier.max(play + margin)).div_ceil(bf) * bf;
        if !running {
            // Before the device takes frames nothing sets where commands are stamped;
            // from a lookahead past the start, what the workers render first settles.
            let lookahead = header.lookahead_frames.load(Ordering::Relaxed);
            header
                .clock
                .stamp_from
                .fetch_max(start + lookahead, Ordering::SeqCst);
        }
        let snapshot = self.ledger.cold_snapshot(start, log.tail());
        self.region.write_snapshot(&snapshot.to_bytes())?;
        Ok(start)
    }

    /// The parameters once everything accepted so far has played: the mirror,
    /// then what is published but unplayed, then what waits for room in the log.
    pub fn latest_params(&self) -> Params {
        let mut params = self.ledger.latest();
        for group in &self.backlog {
            for (command, _) in &group.commands {
                params.apply(command);
            }
        }
        params
    }

    /// The parameters as of the last settled command: what the device has played.
    pub fn mirror(&self) -> &Params {
        self.ledger.mirror()
    }

    /// Commands waiting for a future timetag, published or still queued.
    pub fn scheduled(&self) -> usize {
        let frontier = self.frontier();
        let queued: usize = self
            .backlog
            .iter()
            .filter(|g| g.min_frame > frontier)
            .map(|g| g.commands.len())
            .sum();
        self.ledger.scheduled() + queued
    }

    pub fn journal_errors(&self) -> u64 {
        self.ledger.journal_errors()
    }

    /// Writes out and closes the journal (at shutdown).
    pub fn finish(&mut self) {
        self.ledger.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronus_dsp::Control;
    use chronus_shm::Geometry;
    use std::net::SocketAddr;

    const RATE: u32 = 48_000;

    fn publisher() -> Publisher {
        let geometry = Geometry {
            sample_rate: RATE,
            block_frames: 256,
            ring_blocks: 16,
            lookahead_frames: 1024,
            speech_samples: 0,
        };
        let (region, _fd) = Region::create(geometry, std::process::id()).unwrap();
        Publisher::new(
            Arc::new(region),
            Ledger::new(chronus_dsp::Params::new(4), None),
            RATE,
            256,
        )
    }

    fn client(addr: &str) -> ClientKey {
        ClientKey::of(addr.parse::<SocketAddr>().unwrap())
    }

    /// `n` commands from `from`, `seconds` ahead, in groups of at most 256.
    fn schedule(p: &mut Publisher, from: ClientKey, n: usize, seconds: u64) -> Result<(), Refusal> {
        let mut left = n;
        while left > 0 {
            let chunk = left.min(256);
            p.submit(ahead(from, chunk, seconds), &[])?;
            left -= chunk;
        }
        Ok(())
    }

    /// `n` commands from `from`, `seconds` ahead.
    fn ahead(from: ClientKey, n: usize, seconds: u64) -> Group {
        let set = Command::Set {
            control: Control::ReverbMix,
            value: 0.5,
        };
        Group {
            min_frame: seconds * u64::from(RATE),
            commands: vec![(set, None); n],
            client: from,
        }
    }

    #[test]
    fn no_client_or_address_can_take_the_whole_schedule() {
        let mut p = publisher();
        let (a1, a2, a3) = (
            client("127.0.0.2:1000"),
            client("127.0.0.2:1001"),
            client("127.0.0.2:1002"),
        );
        assert_eq!(schedule(&mut p, a1, SCHEDULE_SHARE, 10), Ok(()));
        assert_eq!(
            p.submit(ahead(a1, 1, 10), &[]),
            Err(Refusal::ScheduleShare),
            "one client holds at most its share"
        );
        assert_eq!(schedule(&mut p, a2, SCHEDULE_SHARE, 10), Ok(()));
        assert_eq!(
            p.submit(ahead(a3, 1, 10), &[]),
            Err(Refusal::ScheduleAddressShare),
            "more ports do not buy more of the schedule"
        );
        // Another address still finds room, and a third shares what is left.
        let b = client("127.0.0.1:2000");
        assert_eq!(schedule(&mut p, b, SCHEDULE_SHARE, 10), Ok(()));
        let b2 = client("127.0.0.1:2001");
        assert_eq!(schedule(&mut p, b2, SCHEDULE_SHARE, 10), Ok(()));
        let c = client("10.0.0.3:3000");
        assert_eq!(p.submit(ahead(c, 1, 10), &[]), Err(Refusal::ScheduleFull));
        // Commands for now are not scheduled and always go through.
        assert_eq!(p.submit(ahead(c, 10, 0), &[]), Ok(()));
        assert_eq!(p.counters.schedule_share, 2);
        assert_eq!(p.counters.schedule_full, 1);
        assert_eq!(p.scheduled(), SCHEDULE_LIMIT);
    }

    #[test]
    fn a_group_larger_than_the_log_is_refused_and_a_full_pattern_fits() {
        let mut p = publisher();
        let a = client("127.0.0.1:1000");
        assert_eq!(
            p.submit(ahead(a, MAX_GROUP + 1, 0), &[]),
            Err(Refusal::TooLarge)
        );
        assert_eq!(p.submit(ahead(a, MAX_GROUP, 0), &[]), Ok(()));
        let most_voices = crate::patterns::load_commands(&Params::new(16)).len();
        assert!(
            most_voices <= MAX_GROUP,
            "a 16-voice pattern is {most_voices} commands"
        );
    }

    #[test]
    fn bundles_beyond_the_horizon_are_refused() {
        let mut p = publisher();
        let a = client("127.0.0.1:1000");
        assert_eq!(
            p.submit(ahead(a, 1, SCHEDULE_HORIZON_SECONDS + 1), &[]),
            Err(Refusal::Horizon)
        );
        assert_eq!(p.submit(ahead(a, 1, SCHEDULE_HORIZON_SECONDS), &[]), Ok(()));
        assert_eq!(p.counters.schedule_horizon, 1);
    }

    #[test]
    fn a_far_future_bundle_holds_up_only_its_own_clients_syncs() {
        let mut p = publisher();
        let peer = |port| chronus_osc::Peer::Udp(SocketAddr::from(([127, 0, 0, 1], port)));
        let hostile = ClientKey::of_peer(&peer(1));
        assert_eq!(p.submit(ahead(hostile, 1, 500), &[]), Ok(()));
        p.sync(peer(1), OscType::Int(1)).unwrap();
        p.sync(peer(2), OscType::Int(2)).unwrap();
        let answered = p.settle(0);
        assert_eq!(answered, [(peer(2), OscType::Int(2))]);
        assert!(
            p.settle(0).is_empty(),
            "the scheduler's own sync waits for its bundle"
        );
    }

    #[test]
    fn syncs_waiting_are_bounded_per_client() {
        let mut p = publisher();
        let peer = |port| chronus_osc::Peer::Udp(SocketAddr::from(([127, 0, 0, 1], port)));
        for i in 0..SYNCS_PER_CLIENT {
            p.sync(peer(1), OscType::Int(i as i32)).unwrap();
        }
        assert!(p.sync(peer(1), OscType::Int(-1)).is_err());
        assert!(p.sync(peer(2), OscType::Int(0)).is_ok(), "another client");
        // Nothing is waiting to play: every sync is answered at the next settle.
        assert_eq!(p.settle(0).len(), SYNCS_PER_CLIENT + 1);
        assert!(p.sync(peer(1), OscType::Int(0)).is_ok());
    }
}
