//! Stress test of the command-log stamping protocol with real threads: a
//! "callback" claims frames a period at a time while a publisher and two
//! "workers" stamp records; every stamper must see the same stamp, and no stamp
//! may fall inside frames a callback had claimed without seeing the record.

use chronus_shm::{CMD_PAYLOAD, Geometry, Region};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

const PERIOD: u64 = 32;
/// Fewer than the log holds: nothing here keeps the publisher from lapping.
const COMMANDS: u64 = 1000;

fn geometry() -> Geometry {
    Geometry {
        sample_rate: 48_000,
        block_frames: 16,
        ring_blocks: 8,
        lookahead_frames: 3 * PERIOD,
        speech_samples: 0,
    }
}

/// Varies a thread's pace so that the stampers overtake each other.
fn jitter(rng: &mut u64) {
    *rng = rng
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    if *rng >> 60 == 0 {
        std::thread::yield_now();
    }
}

/// Reads and stamps every record as a worker does; returns (seq, stamp).
fn worker(region: &Region, seed: u64) -> Vec<(u64, u64)> {
    let log = region.log();
    let mut seen = Vec::new();
    let mut buf = [0u8; CMD_PAYLOAD];
    let mut rng = seed;
    while (seen.len() as u64) < COMMANDS {
        let tail = log.tail();
        let base = region.stamp_base();
        for seq in seen.len() as u64..tail {
            log.read(seq, &mut buf).expect("record lapped");
            seen.push((seq, log.stamp(seq, base).unwrap()));
        }
        jitter(&mut rng);
    }
    seen
}

/// Claims a period at a time as the audio callback does, stamping what it has
/// not seen; returns each call's (end of the frames claimed, tail it read).
fn callback(region: &Region, stop: &AtomicBool, count: &AtomicU64) -> Vec<(u64, u64)> {
    let log = region.log();
    let stamp_from = &region.header().clock.stamp_from;
    let mut calls = Vec::new();
    let mut cursor = 0;
    let mut rng = 3;
    let mut end = 0;
    while !stop.load(Ordering::Relaxed) {
        end += PERIOD;
        stamp_from.store(end + PERIOD, Ordering::SeqCst);
        let tail = log.tail();
        let base = region.stamp_base();
        while cursor < tail {
            log.stamp(cursor, base).unwrap();
            cursor += 1;
        }
        calls.push((end, tail));
        count.fetch_add(1, Ordering::Relaxed);
        jitter(&mut rng);
    }
    calls
}

#[test]
fn stampers_agree_and_no_stamp_falls_in_frames_claimed_without_it() {
    let (region, _fd) = Region::create(geometry(), 1).unwrap();
    let region = Arc::new(region);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(4));
    let workers: Vec<_> = (0..2u64)
        .map(|i| {
            let (region, barrier) = (region.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                worker(&region, i + 1)
            })
        })
        .collect();
    let clock = {
        let (region, barrier, stop, count) =
            (region.clone(), barrier.clone(), stop.clone(), count.clone());
        std::thread::spawn(move || {
            barrier.wait();
            callback(&region, &stop, &count)
        })
    };
    barrier.wait();
    let log = region.log();
    let mut published = Vec::new();
    for seq in 0..COMMANDS {
        // Interleaved with the callback's calls, however the threads are scheduled.
        while count.load(Ordering::Relaxed) < seq / 8 {
            std::thread::yield_now();
        }
        // Some commands ask for a frame in the future, as timetagged bundles do.
        let min_frame = if seq % 7 == 0 { seq * 30 } else { 0 };
        log.publish(seq, min_frame, &seq.to_le_bytes());
        // The supervisor stamps what it publishes at once.
        published.push((seq, log.stamp(seq, region.stamp_base()).unwrap()));
        for _ in 0..(seq % 5) * 50 {
            std::hint::spin_loop();
        }
    }
    let seen: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let calls = clock.join().unwrap();
    assert_eq!(seen[0], published, "a worker disagrees on a stamp");
    assert_eq!(seen[1], published, "a worker disagrees on a stamp");
    assert!(calls.len() > 10, "the callback hardly ran");
    // Every record published after a call's tail read is stamped past that
    // call's frames: the callback never played a frame a command lands in.
    let mut checked = 0;
    for &(end, tail) in &calls {
        for &(seq, stamp) in &published[tail as usize..] {
            assert!(
                stamp >= end,
                "command {seq} stamped at {stamp}, inside frames claimed up to {end} before it was seen"
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
}
