//! Stress test of the command-log stamping protocol with real threads: every
//! "worker" must apply every command at the same frame, and never in its past.

use chronus_shm::{CMD_PAYLOAD, Geometry, Region};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};

const BLOCK: u64 = 16;
const COMMANDS: u64 = 600;

fn worker(region: &Region, seed: u64) -> Vec<(u64, u64)> {
    let log = region.log();
    let frontier = &region.header().frontier.frame;
    let mut applied = Vec::new();
    let mut cursor = 0u64;
    let mut buf = [0u8; CMD_PAYLOAD];
    let mut rng = seed;
    let mut block = 0;
    while cursor < COMMANDS {
        let start = block * BLOCK;
        block += 1;
        let end = start + BLOCK;
        frontier.fetch_max(end, Ordering::SeqCst);
        let tail = log.tail();
        while cursor < tail {
            log.read(cursor, &mut buf).expect("record lapped");
            let stamp = log.stamp(cursor, frontier.load(Ordering::SeqCst)).unwrap();
            assert!(
                stamp >= start,
                "command {cursor} stamped at {stamp}, before block {start}..{end}"
            );
            applied.push((cursor, stamp));
            cursor += 1;
        }
        // Vary the pace so the two workers overtake each other.
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if rng >> 60 == 0 {
            std::thread::yield_now();
        }
    }
    applied
}

#[test]
fn concurrent_workers_agree_on_every_stamp() {
    let geometry = Geometry {
        sample_rate: 48_000,
        block_frames: 16,
        ring_blocks: 8,
        lookahead_frames: 64,
        speech_samples: 0,
    };
    let (region, _fd) = Region::create(geometry, 1).unwrap();
    let region = Arc::new(region);
    let barrier = Arc::new(Barrier::new(3));
    let workers: Vec<_> = (0..2u64)
        .map(|i| {
            let (region, barrier) = (region.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                worker(&region, i + 1)
            })
        })
        .collect();
    barrier.wait();
    let log = region.log();
    for seq in 0..COMMANDS {
        // Some commands ask for a frame in the future, as timetagged bundles do.
        let min_frame = if seq % 7 == 0 { seq * 300 } else { 0 };
        log.publish(seq, min_frame, &seq.to_le_bytes());
        for _ in 0..(seq % 5) * 50 {
            std::hint::spin_loop();
        }
    }
    let a = workers
        .into_iter()
        .map(|w| w.join().unwrap())
        .collect::<Vec<_>>();
    let (seen_a, seen_b) = (&a[0], &a[1]);
    assert_eq!(seen_a.len(), COMMANDS as usize);
    assert_eq!(seen_a, seen_b, "workers disagree on a stamp");
}
