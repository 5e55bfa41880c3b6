//! Invariant: the audio callback never allocates. A counting global allocator
//! watches the thread that runs `OutputReader::fill` after warm-up, across
//! block-crossing callback sizes (PulseAudio hands out 170 frames for 256),
//! fallbacks to the standby, underruns, recording and a take being recorded.

use chronus_audio::{OutputReader, Recorder, TakeEvent, Takes};
use chronus_shm::{CHANNELS, Geometry, Region, block_checksum};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

struct Counting;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only adds a thread-local counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BLOCK: u64 = 256;

fn render_block(region: &Region, slot: usize, start: u64) {
    let block: Vec<f32> = (0..BLOCK as usize * CHANNELS)
        .map(|i| ((start as usize * CHANNELS + i) % 1000) as f32 / 1000.0)
        .collect();
    region
        .ring(slot)
        .write(start, &block, block_checksum(&block), 0);
}

#[test]
fn fill_never_allocates_after_warm_up() {
    let geometry = Geometry {
        sample_rate: 48_000,
        block_frames: BLOCK as u32,
        ring_blocks: 64,
        lookahead_frames: 1024,
        speech_samples: 0,
    };
    let (region, _fd) = Region::create(geometry, std::process::id()).unwrap();
    let region = Arc::new(region);
    let dir = std::env::temp_dir().join(format!("chronus-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (recorder, handle) = Recorder::start(&dir.join("out.wav"), 48_000).unwrap();
    let (takes, tap) = Takes::start(48_000).unwrap();
    let mut reader = OutputReader::new(region.clone(), Some(handle), Some(tap));
    // Acknowledged by the first unwatched round's fills; recorded through the watched one.
    takes.request_start(dir.join("take.wav"));
    let h = region.header();
    h.readable_slots.store(0b11, Ordering::Release);
    h.clock.running.store(1, Ordering::Release);
    let mut buffer = vec![0.0f32; 1024 * CHANNELS];

    let mut allocations_seen = 0;
    for round in 0..2 {
        for i in 0..400u64 {
            let play = h.clock.play_frame.load(Ordering::Relaxed);
            let next = play - play % BLOCK;
            for b in 0..6 {
                let start = next + b * BLOCK;
                // Slot 0 (active) misses every 5th block: served from slot 1.
                if (start / BLOCK) % 5 != 0 {
                    render_block(&region, 0, start);
                }
                // Neither slot has every 17th block: silence, counted.
                if (start / BLOCK) % 17 != 0 {
                    render_block(&region, 1, start);
                }
            }
            let frames = [170usize, 256, 1, 333, 1024][i as usize % 5];
            WATCHING.with(|w| w.set(round == 1));
            reader.fill(&mut buffer[..frames * CHANNELS]);
            WATCHING.with(|w| w.set(false));
        }
        if round == 0 {
            // The fills above acknowledged the start; the writer reports it soon after.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                match takes.poll() {
                    Some(TakeEvent::Started { .. }) => break,
                    Some(other) => panic!("the take did not start: {other:?}"),
                    None if std::time::Instant::now() > deadline => {
                        panic!("no answer to the start")
                    }
                    None => std::thread::sleep(std::time::Duration::from_millis(1)),
                }
            }
        }
        if round == 1 {
            allocations_seen = ALLOCATIONS.with(Cell::get);
        }
        ALLOCATIONS.with(|a| a.set(0));
    }
    assert!(
        h.clock.fallback_frames.load(Ordering::Relaxed) > 0,
        "the fallback path was not exercised"
    );
    assert!(
        h.clock.underrun_frames.load(Ordering::Relaxed) > 0,
        "the underrun path was not exercised"
    );
    assert_eq!(
        allocations_seen, 0,
        "OutputReader::fill allocated or freed memory"
    );
    drop(reader);
    let recorded = recorder.finish().unwrap();
    assert!(recorded.frames > 0);
    assert!(matches!(takes.finish(), Some(TakeEvent::Stopped { frames, .. }) if frames > 0));
    std::fs::remove_dir_all(&dir).unwrap();
}
