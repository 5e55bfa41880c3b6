//! Timetag conversions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chronus_osc::{
    IMMEDIATELY, OscTime, duration_to_timetag, is_immediate, system_time_to_timetag,
    timetag_to_duration, timetag_to_system_time,
};
use proptest::prelude::*;

const UNIX_EPOCH_NTP: u32 = 2_208_988_800;

#[test]
fn immediately_has_no_system_time() {
    assert_eq!(timetag_to_system_time(IMMEDIATELY), None);
    assert!(is_immediate(OscTime::from((0, 1))));
    assert!(!is_immediate(OscTime::from((0, 0))));
}

#[test]
fn known_points() {
    let unix = OscTime::from((UNIX_EPOCH_NTP, 0));
    assert_eq!(timetag_to_system_time(unix), Some(UNIX_EPOCH));
    assert_eq!(system_time_to_timetag(UNIX_EPOCH), Some(unix));

    let half = OscTime::from((UNIX_EPOCH_NTP + 10, 1 << 31));
    assert_eq!(
        timetag_to_system_time(half),
        Some(UNIX_EPOCH + Duration::from_millis(10_500))
    );
    assert_eq!(
        system_time_to_timetag(UNIX_EPOCH + Duration::from_millis(10_500)),
        Some(half)
    );

    // 1900 itself (timetag 0) is a time, unlike timetag 1.
    let epoch_1900 = UNIX_EPOCH - Duration::from_secs(u64::from(UNIX_EPOCH_NTP));
    assert_eq!(
        timetag_to_system_time(OscTime::from((0, 0))),
        Some(epoch_1900)
    );
    assert_eq!(
        system_time_to_timetag(epoch_1900 - Duration::from_secs(1)),
        None
    );
    // The end of NTP era 0.
    let last = OscTime::from((u32::MAX, u32::MAX));
    let end = timetag_to_system_time(last).unwrap();
    assert_eq!(end, epoch_1900 + Duration::from_secs(1 << 32));
    assert_eq!(system_time_to_timetag(end), None);
}

#[test]
fn the_largest_fraction_rounds_up_to_the_next_second() {
    assert_eq!(
        timetag_to_duration(OscTime::from((3, u32::MAX))),
        Duration::from_secs(4)
    );
}

#[test]
fn now_is_representable() {
    let now = SystemTime::now();
    let tag = system_time_to_timetag(now).unwrap();
    assert_eq!(timetag_to_system_time(tag), Some(now));
}

#[test]
fn spans_for_scores() {
    assert_eq!(
        duration_to_timetag(Duration::from_millis(1250)),
        Some(OscTime::from((1, 1 << 30)))
    );
    assert_eq!(duration_to_timetag(Duration::from_secs(1 << 32)), None);
    assert_eq!(
        timetag_to_duration(OscTime::from((2, 3 << 30))),
        Duration::from_millis(2750)
    );
}

proptest! {
    #[test]
    fn system_times_round_trip_exactly(secs in 0u64..(1 << 32), nanos in 0u32..1_000_000_000) {
        let epoch_1900 = UNIX_EPOCH - Duration::from_secs(u64::from(UNIX_EPOCH_NTP));
        let time = epoch_1900 + Duration::new(secs, nanos);
        let tag = system_time_to_timetag(time).unwrap();
        prop_assert!(!is_immediate(tag));
        prop_assert_eq!(timetag_to_system_time(tag), Some(time));
    }

    #[test]
    fn timetags_round_trip_within_a_nanosecond(seconds in 0u32..u32::MAX, fractional: u32) {
        let tag = OscTime::from((seconds, fractional));
        prop_assume!(!is_immediate(tag));
        let back = system_time_to_timetag(timetag_to_system_time(tag).unwrap()).unwrap();
        let units = |t: OscTime| (u64::from(t.seconds) << 32) + u64::from(t.fractional);
        // One nanosecond is about 4.3 units of 2^-32 s.
        prop_assert!(units(back).abs_diff(units(tag)) <= 3, "{:?} -> {:?}", tag, back);
    }
}
