//! Where the callback lets commands be stamped when the sound system calls back with
//! sizes of its own (PulseAudio asked for 64 frames hands over 72 to 79, and 128 after
//! a stall): past the frames handed over by the most any callback of the last 50 to
//! 100 ms asked for, so that the next callback cannot hand a new command over before
//! a worker has had its time to render it in.

use chronus_audio::OutputReader;
use chronus_shm::{CHANNELS, Geometry, Region};
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn region() -> Arc<Region> {
    let geometry = Geometry {
        sample_rate: 48_000,
        block_frames: 32,
        ring_blocks: 64,
        lookahead_frames: 256,
        speech_samples: 0,
    };
    let (region, _fd) = Region::create(geometry, std::process::id()).unwrap();
    let region = Arc::new(region);
    region.header().clock.running.store(1, Ordering::Release);
    region
}

#[test]
fn no_command_is_stamped_where_the_next_callback_of_any_recent_size_reaches() {
    let region = region();
    let mut reader = OutputReader::new(region.clone(), None, None);
    let clock = &region.header().clock;
    let mut callback = |frames: usize| {
        let first = clock.play_frame.load(Ordering::Relaxed);
        reader.fill(&mut vec![0.0f32; frames * CHANNELS]);
        clock.stamp_from.load(Ordering::SeqCst) - first
    };
    // Steady, the reach is one more callback's frames.
    assert_eq!(callback(74), 148);
    assert_eq!(
        callback(72),
        72 + 74,
        "a smaller callback does not shrink the reach"
    );
    // A burst of 128 is remembered: a 79 or a 128 may come next.
    assert_eq!(callback(128), 256);
    assert_eq!(callback(74), 74 + 128);
    // PulseAudio's steady sizes: the stamp (past the last callback's frames by
    // `reach - last`) always lies beyond what the next one hands over.
    let (mut last, mut reach) = (76, callback(76));
    for frames in (0..600u64).map(|i| 72 + (i * 7) % 8) {
        assert!(
            reach - last >= frames,
            "{frames} frames reach a command stamped {reach} past {last}"
        );
        (last, reach) = (frames, callback(frames as usize));
    }
    // 100 ms of audio later (4,800 frames), the burst is forgotten.
    for _ in 0..70 {
        callback(74);
    }
    assert_eq!(callback(74), 74 + 74);
}
