//! Takes started and stopped while the callback runs hold exactly the buffers
//! handed over between the callback's acknowledgements, bit for bit.

use chronus_audio::{OutputReader, TakeEvent, Takes};
use chronus_shm::{CHANNELS, Geometry, Region, block_checksum};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const BLOCK: u64 = 256;

fn region() -> Arc<Region> {
    let geometry = Geometry {
        sample_rate: 48_000,
        block_frames: BLOCK as u32,
        ring_blocks: 64,
        lookahead_frames: 1024,
        speech_samples: 0,
    };
    let (region, _fd) = Region::create(geometry, std::process::id()).unwrap();
    let region = Arc::new(region);
    region
        .header()
        .readable_slots
        .store(0b11, Ordering::Release);
    region.header().clock.running.store(1, Ordering::Release);
    region
}

/// Sample `i` of the output is `i mod 1000 / 1000`, so every frame is recognisable.
fn render_ahead(region: &Region) {
    let play = region.header().clock.play_frame.load(Ordering::Relaxed);
    let next = play - play % BLOCK;
    for b in 0..6 {
        let start = next + b * BLOCK;
        let block: Vec<f32> = (0..BLOCK as usize * CHANNELS)
            .map(|i| ((start as usize * CHANNELS + i) % 1000) as f32 / 1000.0)
            .collect();
        region
            .ring(0)
            .write(start, &block, block_checksum(&block), 0);
    }
}

/// Runs the callback (odd buffer sizes) until the takes answer.
fn fill_until_answer(reader: &mut OutputReader, region: &Region, takes: &Takes) -> TakeEvent {
    let mut buffer = vec![0.0f32; 333 * CHANNELS];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        render_ahead(region);
        reader.fill(&mut buffer);
        if let Some(event) = takes.poll() {
            return event;
        }
        assert!(Instant::now() < deadline, "no answer from the takes");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn samples(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().sample_rate, 48_000);
    assert_eq!(reader.spec().channels, CHANNELS as u16);
    reader.samples::<f32>().map(Result::unwrap).collect()
}

#[test]
fn a_take_holds_exactly_the_frames_from_its_start_to_its_stop() {
    let region = region();
    let dir = std::env::temp_dir().join(format!("chronus-takes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (takes, tap) = Takes::start(48_000).unwrap();
    let mut reader = OutputReader::new(region.clone(), None, Some(tap));
    let clock = &region.header().clock;
    for (n, name) in ["one.wav", "two.wav"].into_iter().enumerate() {
        let path = dir.join("sub").join(name);
        takes.request_start(path.clone());
        let TakeEvent::Started {
            path: started,
            start_frame,
        } = fill_until_answer(&mut reader, &region, &takes)
        else {
            panic!("take {n} did not start");
        };
        assert_eq!(started, path);
        for _ in 0..50 {
            render_ahead(&region);
            reader.fill(&mut [0.0; 170 * CHANNELS]);
        }
        takes.request_stop();
        let event = fill_until_answer(&mut reader, &region, &takes);
        let TakeEvent::Stopped {
            start_frame: from,
            frames,
            dropped,
            ..
        } = event
        else {
            panic!("take {n} did not stop: {event:?}");
        };
        assert_eq!((from, dropped), (start_frame, 0));
        assert!(frames >= 50 * 170, "take {n} has only {frames} frames");
        assert!(start_frame + frames <= clock.play_frame.load(Ordering::Relaxed));
        let expected: Vec<f32> = (start_frame as usize * CHANNELS
            ..(start_frame + frames) as usize * CHANNELS)
            .map(|i| (i % 1000) as f32 / 1000.0)
            .collect();
        let recorded = samples(&path);
        assert_eq!(recorded.len(), expected.len());
        assert!(
            recorded
                .iter()
                .zip(&expected)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "take {n} differs from the output"
        );
    }
    takes.request_stop();
    assert_eq!(
        fill_until_answer(&mut reader, &region, &takes),
        TakeEvent::Failed {
            reason: "no recording is running".into()
        }
    );
    // A file that exists is never overwritten.
    takes.request_start(dir.join("sub").join("one.wav"));
    assert!(matches!(
        fill_until_answer(&mut reader, &region, &takes),
        TakeEvent::Failed { reason } if reason.contains("exists")
    ));
    drop(reader);
    assert_eq!(takes.finish(), None);
    std::fs::remove_dir_all(&dir).unwrap();
}
