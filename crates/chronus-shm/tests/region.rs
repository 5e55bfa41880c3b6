use chronus_shm::{
    CHANNELS, CMD_PAYLOAD, Geometry, Region, SLOTS, ShmError, UNSTAMPED, block_checksum,
};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;

fn geometry() -> Geometry {
    Geometry {
        sample_rate: 48_000,
        block_frames: 64,
        ring_blocks: 8,
        lookahead_frames: 256,
        speech_samples: 4096,
    }
}

fn reopen(fd: &OwnedFd) -> Result<Region, ShmError> {
    Region::open(fd.as_fd().try_clone_to_owned().unwrap())
}

#[test]
fn worker_mapping_sees_what_the_supervisor_wrote() {
    let (sup, fd) = Region::create(geometry(), 42).unwrap();
    let worker = reopen(&fd).unwrap();
    assert_eq!(worker.geometry(), geometry());
    assert_eq!(worker.header().supervisor_pid.load(Ordering::Relaxed), 42);
    sup.header().clock.play_frame.store(1234, Ordering::Release);
    assert_eq!(
        worker.header().clock.play_frame.load(Ordering::Acquire),
        1234
    );
    for slot in 0..SLOTS {
        worker.slot(slot).heartbeat.fetch_add(1, Ordering::Relaxed);
        assert_eq!(sup.slot(slot).heartbeat.load(Ordering::Relaxed), 1);
    }
}

#[test]
fn region_is_sealed_against_resizing() {
    let (_sup, fd) = Region::create(geometry(), 1).unwrap();
    let file = std::fs::File::from(fd.as_fd().try_clone_to_owned().unwrap());
    let len = file.metadata().unwrap().len();
    assert!(
        file.set_len(len / 2).is_err(),
        "shrinking a sealed region must fail"
    );
    assert!(
        file.set_len(len * 2).is_err(),
        "growing a sealed region must fail"
    );
}

#[test]
fn open_rejects_a_memfd_that_is_not_a_region() {
    let fd = nix::sys::memfd::memfd_create(c"other", nix::sys::memfd::MFdFlags::MFD_ALLOW_SEALING)
        .unwrap();
    let file = std::fs::File::from(fd);
    file.set_len(1 << 20).unwrap();
    let err = Region::open(OwnedFd::from(file)).err().unwrap();
    assert!(err.to_string().contains("not sealed"), "{err}");
}

#[test]
fn ring_returns_blocks_by_frame_and_misses_others() {
    let (region, _fd) = Region::create(geometry(), 1).unwrap();
    let ring = region.ring(1);
    let block: Vec<f32> = (0..64 * CHANNELS).map(|i| i as f32).collect();
    ring.write(128, &block, block_checksum(&block), 7);
    let mut out = [0.0f32; 10 * CHANNELS];
    assert_eq!(ring.read(128, 5, &mut out), Some(7), "with its cursor");
    assert_eq!(&out[..], &block[5 * CHANNELS..15 * CHANNELS]);
    assert!(
        ring.read(128 + 64 * 8, 0, &mut out).is_none(),
        "a lapped frame must not alias"
    );
    assert!(ring.read(64, 0, &mut out).is_none());
    assert!(
        region.ring(0).read(128, 0, &mut out).is_none(),
        "slots have separate rings"
    );
    assert_eq!(ring.checksum(128), Some((block_checksum(&block), 7)));
    assert_eq!(ring.checksum(192), None);
    let mut too_far = [0.0f32; 10 * CHANNELS];
    assert!(
        ring.read(128, 60, &mut too_far).is_none(),
        "reads past the block end are refused"
    );
}

#[test]
fn snapshot_round_trips_and_is_bounded() {
    let (region, fd) = Region::create(geometry(), 1).unwrap();
    let bytes: Vec<u8> = (0..1001u32).map(|i| (i * 7) as u8).collect();
    region.write_snapshot(&bytes).unwrap();
    assert_eq!(reopen(&fd).unwrap().read_snapshot(), bytes);
    let huge = vec![0u8; chronus_shm::MAX_SNAPSHOT_BYTES + 1];
    assert!(matches!(
        region.write_snapshot(&huge),
        Err(ShmError::SnapshotTooLarge(_))
    ));
}

#[test]
fn log_records_round_trip_and_first_stamp_wins() {
    let (region, _fd) = Region::create(geometry(), 1).unwrap();
    let log = region.log();
    assert_eq!(log.tail(), 0);
    log.publish(0, 0, b"hello");
    log.publish(1, 5000, &[9u8; CMD_PAYLOAD]);
    assert_eq!(log.tail(), 2);
    let mut buf = [0u8; CMD_PAYLOAD];
    assert_eq!(log.read(0, &mut buf), Some((5, 0)));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(log.read(1, &mut buf), Some((CMD_PAYLOAD, 5000)));
    assert_eq!(buf, [9u8; CMD_PAYLOAD]);
    assert_eq!(log.stamp_of(0), Some(UNSTAMPED));
    assert_eq!(log.stamp(0, 700), Some(700));
    assert_eq!(
        log.stamp(0, 900),
        Some(700),
        "a later stamper must adopt the first stamp"
    );
    assert_eq!(
        log.stamp(1, 700),
        Some(5000),
        "min_frame bounds the stamp from below"
    );
    assert_eq!(log.read(2, &mut buf), None, "unpublished record");
}

#[test]
fn a_block_is_stale_only_if_a_record_it_missed_is_stamped_inside_it() {
    let (region, _fd) = Region::create(geometry(), 1).unwrap();
    let log = region.log();
    log.publish(0, 0, b"early");
    log.publish(1, 0, b"late");
    log.publish(2, 0, b"unstamped");
    assert_eq!(log.stamp(0, 100), Some(100));
    assert_eq!(log.stamp(1, 500), Some(500));
    // Rendered having read every record: fresh.
    assert!(log.fresh(3, 200, 3));
    // Rendered before record 0 (stamped at 100): stale if it ends past 100.
    assert!(!log.fresh(0, 101, 3));
    assert!(
        log.fresh(0, 100, 3),
        "a block ending at the stamp is untouched"
    );
    // Missed record 1 only, stamped at 500: blocks before 500 are fresh.
    assert!(log.fresh(1, 500, 3));
    assert!(!log.fresh(1, 501, 3));
    // Records at or past the tail the reader loaded are not its concern.
    assert!(log.fresh(0, 1000, 0));
}

#[test]
fn the_callback_sets_where_commands_are_stamped() {
    let (region, _fd) = Region::create(geometry(), 1).unwrap();
    region
        .header()
        .clock
        .stamp_from
        .store(4096, Ordering::SeqCst);
    assert_eq!(region.stamp_base(), 4096);
    let log = region.log();
    log.publish(0, 0, b"now");
    log.publish(1, 5000, b"later");
    assert_eq!(log.stamp(0, region.stamp_base()), Some(4096));
    assert_eq!(log.stamp(1, region.stamp_base()), Some(5000));
}

#[test]
fn log_detects_a_lapped_record() {
    let (region, _fd) = Region::create(geometry(), 1).unwrap();
    let log = region.log();
    for seq in 0..=chronus_shm::CMD_CAPACITY as u64 {
        log.publish(seq, 0, &seq.to_le_bytes());
    }
    let mut buf = [0u8; CMD_PAYLOAD];
    assert_eq!(log.read(0, &mut buf), None);
    assert_eq!(log.stamp_of(0), None);
    assert!(
        log.read(chronus_shm::CMD_CAPACITY as u64, &mut buf)
            .is_some()
    );
}

#[test]
fn a_group_takes_one_stamp_even_if_the_claim_moves() {
    let (region, _fd) = Region::create(geometry(), 1).unwrap();
    let log = region.log();
    log.publish(0, 0, b"alone");
    log.publish_group(1, 0, &[b"a", b"b", b"c"]);
    assert_eq!(
        log.tail(),
        4,
        "a group becomes visible with one tail update"
    );
    assert_eq!(log.stamp(0, 100), Some(100));
    assert_eq!(log.stamp(1, 200), Some(200));
    // Later stampers saw the claim move on; the group's members keep the head's stamp.
    assert_eq!(log.stamp(2, 300), Some(200));
    assert_eq!(log.stamp(3, 400), Some(200));
    let mut buf = [0u8; CMD_PAYLOAD];
    assert_eq!(log.read(3, &mut buf), Some((1, 0)));
    assert_eq!(&buf[..1], b"c");
}

#[test]
fn speech_area_is_shared_and_wraps_at_its_end() {
    let (sup, fd) = Region::create(geometry(), 1).unwrap();
    let worker = reopen(&fd).unwrap();
    let area = sup.speech();
    assert_eq!(area.len(), 4096);
    // A clip that straddles the end of the area continues at its start.
    let clip: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
    area.write(4050, &clip);
    let seen = worker.speech();
    for (i, &s) in clip.iter().enumerate() {
        assert_eq!(seen.sample(4050 + i as u64).to_bits(), s.to_bits());
    }
    assert_eq!(seen.sample(4096 + 3).to_bits(), clip[49].to_bits());
    assert_eq!(seen.sample(3).to_bits(), clip[49].to_bits());
}

#[test]
fn create_rejects_an_absurd_speech_area() {
    let g = Geometry {
        speech_samples: chronus_shm::MAX_SPEECH_SAMPLES + 1,
        ..geometry()
    };
    assert!(Region::create(g, 1).is_err());
}
