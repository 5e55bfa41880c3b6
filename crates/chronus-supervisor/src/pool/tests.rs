//! The pool as a state machine: a fake host stands in for processes and the region,
//! and time is whatever the test says it is.

use super::*;
use std::collections::HashMap;

#[derive(Default)]
struct FakeHost {
    next_pid: u32,
    views: [SlotView; SLOTS],
    /// Checksums each slot's ring holds, by block start.
    sums: [HashMap<u64, u64>; SLOTS],
    /// The command-log cursor each of those blocks was rendered with (0 if unset).
    cursors: [HashMap<u64, u64>; SLOTS],
    /// The stamps of the commands published so far, by sequence number.
    stamps: Vec<u64>,
    active: usize,
    readable: u32,
    play: u64,
    spawned: Vec<(usize, u32)>,
    killed: Vec<u32>,
    forks: Vec<(usize, usize)>,
    /// Exits waiting to be reaped.
    exited: Vec<(u32, ExitCause)>,
    cold_start_fails: bool,
}

impl Host for FakeHost {
    fn spawn(&mut self, slot: usize) -> io::Result<u32> {
        self.next_pid += 1;
        let pid = 1000 + self.next_pid;
        self.spawned.push((slot, pid));
        self.views[slot] = SlotView {
            claimed_pid: pid,
            ..SlotView::default()
        };
        Ok(pid)
    }
    fn prepare_cold_start(&mut self) -> io::Result<u64> {
        if self.cold_start_fails {
            return Err(io::Error::other("snapshot"));
        }
        Ok(self.play.div_ceil(BF) * BF)
    }
    fn watch(&mut self, _pid: u32) {}
    fn kill(&mut self, pid: u32) {
        self.killed.push(pid);
        self.exited.push((pid, ExitCause::Signal(libc::SIGKILL)));
    }
    fn request_fork(&mut self, source: usize, target: usize) {
        self.forks.push((source, target));
    }
    fn cancel_fork(&mut self, _slot: usize) {}
    fn view(&self, slot: usize) -> SlotView {
        self.views[slot]
    }
    fn checksum(&self, slot: usize, frame: u64) -> Option<(u64, u64)> {
        let cursor = self.cursors[slot].get(&frame).copied().unwrap_or(0);
        self.sums[slot].get(&frame).map(|&sum| (sum, cursor))
    }
    fn fresh(&self, cursor: u64, end: u64) -> bool {
        self.stamps[cursor as usize..]
            .iter()
            .all(|&stamp| stamp >= end)
    }
    fn play_frame(&self) -> u64 {
        self.play
    }
    fn active_slot(&self) -> usize {
        self.active
    }
    fn set_active_slot(&mut self, slot: usize) {
        self.active = slot;
    }
    fn set_readable(&mut self, mask: u32) {
        self.readable = mask;
    }
    fn is_live_child(&self, pid: u32) -> bool {
        !self.exited.iter().any(|(p, _)| *p == pid)
    }
    fn reap(&mut self, _known: &[u32]) -> Vec<(u32, ExitCause)> {
        std::mem::take(&mut self.exited)
    }
}

const BF: u64 = 256;

impl FakeHost {
    /// Slot `slot`'s worker renders blocks up to `to` with checksum `sum(frame)`.
    fn render(&mut self, slot: usize, to: u64, sum: impl Fn(u64) -> u64) {
        let v = &mut self.views[slot];
        if !v.rendering {
            v.rendering = true;
            v.first_frame = v.rendered;
        }
        let mut frame = v.rendered;
        while frame < to {
            self.sums[slot].insert(frame, sum(frame));
            frame += BF;
        }
        v.rendered = to;
        v.heartbeat += 1;
    }

    /// Both slots render to `to`, identically.
    fn both(&mut self, to: u64) {
        for slot in 0..SLOTS {
            self.render(slot, to, |f| f * 7);
        }
    }

    /// The process in `slot` dies of `cause`.
    fn die(&mut self, slot: usize, cause: ExitCause) -> u32 {
        let pid = self.views[slot].claimed_pid;
        self.exited.push((pid, cause));
        pid
    }

    /// The survivor's fork copy claims `slot`, starting where the survivor is.
    fn fork_arrives(&mut self, slot: usize, source: usize) -> u32 {
        self.next_pid += 1;
        let pid = 2000 + self.next_pid;
        let from = self.views[source].rendered;
        self.views[slot] = SlotView {
            claimed_pid: pid,
            rendering: true,
            heartbeat: 0,
            first_frame: from,
            rendered: from,
        };
        pid
    }
}

fn config() -> PoolConfig {
    PoolConfig {
        block_frames: BF,
        ring_frames: 64 * BF,
        hang_timeout: Duration::from_millis(100),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_secs(1),
    }
}

/// A pool with both workers started and proven in lockstep.
fn running() -> (Pool, FakeHost, Instant) {
    let t0 = Instant::now();
    let mut host = FakeHost::default();
    let mut pool = Pool::new(config(), t0);
    pool.cold_start(&mut host, t0).unwrap();
    assert_eq!(host.spawned.len(), SLOTS);
    host.both(4 * BF);
    let t = t0 + Duration::from_millis(2);
    pool.tick(&mut host, t);
    pool.tick(&mut host, t);
    assert_eq!(pool.lockstep_count(), SLOTS, "{:?}", pool.drain_events());
    pool.drain_events();
    (pool, host, t)
}

fn ms(t: Instant, n: u64) -> Instant {
    t + Duration::from_millis(n)
}

#[test]
fn a_killed_active_worker_fails_over_to_the_standby_and_a_fork_restores_it() {
    let (mut pool, mut host, t) = running();
    let pid = host.die(0, ExitCause::Signal(libc::SIGKILL));
    pool.on_exit(&mut host, Some((pid, t, 1)), t);
    let events = pool.drain_events();
    assert!(
        events.contains(&PoolEvent::Failover { from: 0, to: 1 }),
        "{events:?}"
    );
    assert_eq!(host.active, 1);
    assert_eq!(pool.counters.failovers, 1);
    // Killed, not a fault: restored at once by forking the survivor.
    assert_eq!(host.forks, [(1, 0)]);
    assert!(matches!(pool.state(0), State::Forking { source: 1, .. }));
    let copy = host.fork_arrives(0, 1);
    pool.tick(&mut host, ms(t, 1));
    assert_eq!(pool.state(0), State::Syncing { pid: copy });
    host.both(8 * BF);
    pool.tick(&mut host, ms(t, 3));
    assert_eq!(pool.state(0), State::Lockstep { pid: copy });
    assert_eq!(pool.counters.restores, 1);
    let events = pool.drain_events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            PoolEvent::Restored { slot: 0, ms, .. } if (2.9..3.1).contains(ms)
        )),
        "{events:?}"
    );
    assert_eq!(pool.counters.faults, 0);
}

#[test]
fn a_standby_that_stops_its_heartbeat_is_killed_and_replaced_without_a_failover() {
    let (mut pool, mut host, t) = running();
    let standby = pool.pid(1).unwrap();
    // Slot 0 keeps rendering; slot 1's heartbeat stops.
    for step in 1..=3 {
        host.render(0, (4 + step) * BF, |f| f * 7);
        pool.tick(&mut host, ms(t, 50 * step));
    }
    assert_eq!(host.killed, [standby]);
    assert_eq!(pool.counters.hangs, 1);
    assert_eq!(pool.counters.failovers, 0);
    assert_eq!(host.active, 0);
    assert!(pool.drain_events().iter().any(|e| matches!(
        e,
        PoolEvent::Lost {
            slot: 1,
            loss: Loss::Hung,
            ..
        }
    )));
    assert_eq!(host.forks, [(0, 1)]);
    // The kill is reaped later; it is not a second loss.
    pool.on_exit(&mut host, None, ms(t, 160));
    assert_eq!(pool.counters.hangs, 1);
    assert!(matches!(pool.state(1), State::Forking { .. }));
}

#[test]
fn when_both_workers_die_the_pool_cold_starts_fresh_ones() {
    let (mut pool, mut host, t) = running();
    host.play = 10 * BF + 3;
    host.die(0, ExitCause::Signal(libc::SIGSEGV));
    host.die(1, ExitCause::Signal(libc::SIGSEGV));
    pool.on_exit(&mut host, None, t);
    let events = pool.drain_events();
    assert_eq!(pool.counters.faults, 2);
    assert_eq!(pool.counters.cold_starts, 1, "{events:?}");
    assert!(events.contains(&PoolEvent::ColdStarted {
        start_frame: 11 * BF
    }));
    assert_eq!(host.spawned.len(), 2 * SLOTS);
    assert!(matches!(pool.state(0), State::Starting { .. }));
    assert!(matches!(pool.state(1), State::Starting { .. }));
}

#[test]
fn a_failed_cold_start_is_retried_later() {
    let (mut pool, mut host, t) = running();
    host.cold_start_fails = true;
    host.die(0, ExitCause::Code(1));
    host.die(1, ExitCause::Code(1));
    pool.on_exit(&mut host, None, t);
    assert!(
        pool.drain_events()
            .iter()
            .any(|e| matches!(e, PoolEvent::ColdStartFailed { .. }))
    );
    host.cold_start_fails = false;
    pool.tick(&mut host, ms(t, 50));
    assert_eq!(host.spawned.len(), SLOTS, "not before the retry delay");
    pool.tick(&mut host, ms(t, 101));
    assert_eq!(host.spawned.len(), 2 * SLOTS);
}

#[test]
fn diverging_slots_keep_the_active_one_and_replace_the_standby() {
    let (mut pool, mut host, t) = running();
    let standby = pool.pid(1).unwrap();
    host.render(0, 8 * BF, |f| f * 7);
    host.render(1, 8 * BF, |f| if f == 6 * BF { 1 } else { f * 7 });
    pool.tick(&mut host, ms(t, 1));
    assert_eq!(pool.counters.divergences, 1);
    assert_eq!(host.killed, [standby]);
    assert_eq!(host.active, 0);
    let events = pool.drain_events();
    assert!(events.contains(&PoolEvent::Diverged {
        frame: 6 * BF,
        active: 0,
        victim: Some(1)
    }));
    // The diverged ring is not readable until a proven successor has replaced it.
    host.play = 8 * BF;
    pool.tick(&mut host, ms(t, 2));
    assert_eq!(host.readable & 0b10, 0);
}

#[test]
fn a_block_rendered_before_a_command_stamped_inside_it_is_not_compared() {
    let (mut pool, mut host, t) = running();
    // A command stamped at block 6: the standby has read it and rendered blocks 6
    // and 7 again, the active worker not yet. Not a divergence.
    host.stamps.push(6 * BF);
    host.render(0, 8 * BF, |f| f * 7);
    host.render(1, 8 * BF, |f| if f >= 6 * BF { f * 11 } else { f * 7 });
    for frame in [6 * BF, 7 * BF] {
        host.cursors[1].insert(frame, 1);
    }
    pool.tick(&mut host, ms(t, 1));
    assert_eq!(pool.counters.divergences, 0);
    assert_eq!(pool.lockstep_count(), SLOTS);
    // Blocks both rendered with the command, or rendered before one stamped past
    // them, are compared: one that differs is a divergence, as ever.
    host.stamps.push(20 * BF);
    host.render(0, 10 * BF, |f| f * 7);
    host.render(1, 10 * BF, |f| if f == 9 * BF { 1 } else { f * 7 });
    for frame in [8 * BF, 9 * BF] {
        host.cursors[0].insert(frame, 1);
        host.cursors[1].insert(frame, 2);
    }
    pool.tick(&mut host, ms(t, 2));
    assert_eq!(pool.counters.divergences, 1);
}

#[test]
fn a_survivor_dying_while_it_forks_leads_to_a_cold_start() {
    let (mut pool, mut host, t) = running();
    let pid = host.die(0, ExitCause::Signal(libc::SIGKILL));
    pool.on_exit(&mut host, Some((pid, t, 1)), t);
    assert!(matches!(pool.state(0), State::Forking { source: 1, .. }));
    // The fork source dies before its copy appears: nothing is left to fork from.
    let pid = host.die(1, ExitCause::Signal(libc::SIGKILL));
    pool.on_exit(&mut host, Some((pid, ms(t, 1), 2)), ms(t, 1));
    assert_eq!(pool.counters.cold_starts, 1);
    assert_eq!(host.spawned.len(), 2 * SLOTS);
}

#[test]
fn a_fork_that_never_arrives_is_requested_again() {
    let (mut pool, mut host, t) = running();
    let pid = host.die(1, ExitCause::Signal(libc::SIGKILL));
    pool.on_exit(&mut host, Some((pid, t, 1)), t);
    assert_eq!(host.forks, [(0, 1)]);
    host.render(0, 6 * BF, |f| f * 7);
    pool.tick(&mut host, ms(t, 1100));
    assert!(
        pool.drain_events()
            .contains(&PoolEvent::ForkStalled { slot: 1 })
    );
    host.render(0, 7 * BF, |f| f * 7);
    pool.tick(&mut host, ms(t, 1101));
    assert_eq!(host.forks, [(0, 1), (0, 1)]);
}

#[test]
fn repeated_crashes_back_off_and_a_stray_claimant_is_evicted() {
    let (mut pool, mut host, t) = running();
    // Nobody renders in this test: no hang may be declared.
    pool.set_config(PoolConfig {
        hang_timeout: Duration::from_secs(60),
        ..config()
    });
    let crash = |pool: &mut Pool, host: &mut FakeHost, now| {
        let pid = host.die(1, ExitCause::Signal(libc::SIGSEGV));
        pool.on_exit(host, Some((pid, now, 1)), now);
    };
    // The first crash is forgiven: restored at once.
    crash(&mut pool, &mut host, t);
    assert_eq!(host.forks.len(), 1);
    let copy = host.fork_arrives(1, 0);
    pool.tick(&mut host, t);
    assert_eq!(pool.pid(1), Some(copy));
    // The second, soon after, waits the minimum backoff; the third twice that.
    for (n, wait) in [(2, 50), (3, 100)] {
        let now = ms(t, 200 * n);
        crash(&mut pool, &mut host, now);
        assert_eq!(pool.backoff(), Duration::from_millis(wait));
        pool.tick(&mut host, ms(now, wait - 1));
        assert_eq!(
            host.forks.len(),
            n as usize - 1,
            "crash {n}: not before the backoff"
        );
        pool.tick(&mut host, ms(now, wait));
        assert_eq!(host.forks.len(), n as usize, "crash {n}: after the backoff");
        host.fork_arrives(1, 0);
        pool.tick(&mut host, ms(now, wait));
    }
    assert_eq!(pool.counters.faults, 3);
    // A process claims slot 1 that was never given it.
    host.views[1].claimed_pid = 4242;
    pool.tick(&mut host, ms(t, 900));
    assert!(host.killed.contains(&4242));
    assert!(
        pool.drain_events()
            .contains(&PoolEvent::StrayKilled { slot: 1, pid: 4242 })
    );
}

#[test]
fn a_stopping_pool_replaces_nobody() {
    let (mut pool, mut host, t) = running();
    pool.begin_stop();
    let pid = host.die(0, ExitCause::Code(0));
    pool.on_exit(&mut host, Some((pid, t, 1)), t);
    pool.tick(&mut host, ms(t, 5000));
    assert!(host.forks.is_empty());
    assert_eq!(host.spawned.len(), SLOTS);
}
