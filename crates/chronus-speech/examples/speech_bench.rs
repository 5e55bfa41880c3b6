//! Speech figures for BENCHMARKS.md:
//!   cargo run --release -p chronus-speech --example speech_bench
//! Pool acquire under 64 requesters, espeak-ng request to finished speech (uncached),
//! cache hit latency, Wyoming engine restart time, and this process's RSS across
//! 10,000 requests. Percentiles are nearest-rank.

use chronus_speech::{
    EngineContext, EngineState, Pool, Request, RestartPolicy, Tts, TtsConfig, WyomingConfig,
    WyomingEngine,
};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what}: n={} p50={:?} p99={:?} max={:?}",
        times.len(),
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        times[times.len() - 1]
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} CPUs, {cpu}, Linux {}, load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// 64 threads acquire, hold for `hold` (spinning), release and yield, 500 times
/// each. With 64 threads on few cores a thread can be preempted while it holds an
/// engine; yielding after each release keeps that (a scheduler effect, not the pool's)
/// from dominating, as a real requester blocks on its engine rather than spinning.
fn pool_acquire(hold: Duration) {
    const REQUESTERS: usize = 64;
    const ROUNDS: usize = 500;
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
                    while held.elapsed() < hold {
                        std::hint::black_box(*lease);
                    }
                    drop(lease);
                    std::thread::yield_now();
                }
                times
            })
        })
        .collect();
    let all = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    report(
        &format!("pool acquire (64 requesters, 8 engines, hold {hold:?})"),
        all,
    );
}

fn espeak(tts: &Tts) {
    // Warm the page cache and espeak-ng's data files.
    tts.say_ticket("warm up", None).unwrap().wait().unwrap();
    let mut misses = Vec::new();
    for i in 0..100 {
        let text = format!("announcement number {i}");
        let t = Instant::now();
        let audio = tts.say_ticket(&text, None).unwrap().wait().unwrap();
        misses.push(t.elapsed());
        assert!(audio.frames() > 0);
    }
    report(
        "espeak-ng say -> 48 kHz stereo f32 ready (uncached, serial)",
        misses,
    );
    let mut hits = Vec::new();
    for _ in 0..10_000 {
        let t = Instant::now();
        tts.say_ticket("announcement number 7", None)
            .unwrap()
            .wait()
            .unwrap();
        hits.push(t.elapsed());
    }
    report("cache hit (say -> audio)", hits);
}

fn rss(tts: &Tts) {
    // 20,000 requests: 19,000 over 50 phrases that the cache holds, 1,000 new ones
    // (each a miss and, the cache being full, an eviction). RSS every 2,000.
    let mut samples = vec![rss_kib()];
    let mut fresh = 0;
    for i in 0..20_000 {
        let text = if i % 20 == 0 {
            fresh += 1;
            format!("fresh phrase {fresh}")
        } else {
            format!("announcement number {}", 50 + i % 50)
        };
        tts.say_ticket(&text, None).unwrap().wait().unwrap();
        if (i + 1) % 2000 == 0 {
            samples.push(rss_kib());
        }
    }
    let s = tts.status();
    println!(
        "RSS (KiB) at 0, 2000, ..., 20000 requests: {samples:?}; cache {} entries, {} bytes, {} hits, {} misses, {} evictions",
        s.cache.entries, s.cache.bytes, s.cache.hits, s.cache.misses, s.cache.evictions
    );
}

fn restart_time() {
    let dir = std::env::temp_dir().join(format!("chronus-speech-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("crash.sh");
    // Answers the handshake, dies on the first request.
    std::fs::write(
        &script,
        "read -r describe\nprintf '{\"type\":\"info\"}\\n'\nread -r request\nexit 1\n",
    )
    .unwrap();
    let mut config = WyomingConfig::new(
        "crash",
        vec!["sh".into(), script.to_string_lossy().into_owned()],
    );
    config.restart = RestartPolicy {
        backoff_initial: Duration::ZERO,
        backoff_max: Duration::ZERO,
        jitter: 0.0,
        crash_limit: u32::MAX,
        crash_window: Duration::from_secs(1),
    };
    let engine = WyomingEngine::start(config, EngineContext::default()).unwrap();
    let mut times = Vec::new();
    for _ in 0..100 {
        while engine.status().state != EngineState::Ready {
            std::thread::sleep(Duration::from_micros(200));
        }
        let restarts = engine.status().restarts;
        let ticket = engine
            .call(Request::Synthesize {
                text: "die".into(),
                voice: None,
            })
            .unwrap();
        ticket.wait().unwrap_err();
        let t = Instant::now();
        loop {
            let s = engine.status();
            if s.restarts > restarts && s.state == EngineState::Ready {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        times.push(t.elapsed());
    }
    report(
        "Wyoming restart: crash answered -> new process ready (sh fake, zero backoff)",
        times,
    );
    engine.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    machine();
    pool_acquire(Duration::ZERO);
    pool_acquire(Duration::from_micros(20));
    let mut tts = Tts::start(TtsConfig::espeak_ng(), EngineContext::default()).unwrap();
    espeak(&tts);
    rss(&tts);
    tts.shutdown();
    restart_time();
}
