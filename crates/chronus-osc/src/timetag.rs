//! OSC timetags (NTP format: seconds since 1900-01-01 and a 2^-32 s fraction) and
//! conversions to and from [`SystemTime`] and [`Duration`].
//!
//! Times are taken in NTP era 0 (1900 to early 2036); the fraction is rounded to the
//! nearest nanosecond going to `SystemTime` and to the nearest 2^-32 s coming back, so a
//! `SystemTime` survives the round trip exactly.

use std::time::{Duration, SystemTime};

use rosc::OscTime;

/// The special timetag 1 (0 seconds, fraction 1): "immediately".
pub const IMMEDIATELY: OscTime = OscTime {
    seconds: 0,
    fractional: 1,
};

/// Seconds from 1900-01-01 (the NTP epoch) to 1970-01-01 (the Unix epoch).
const NTP_TO_UNIX_SECONDS: u64 = 2_208_988_800;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Whether `time` is the "immediately" timetag.
pub fn is_immediate(time: OscTime) -> bool {
    time == IMMEDIATELY
}

fn ntp_epoch() -> Option<SystemTime> {
    SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(NTP_TO_UNIX_SECONDS))
}

/// The time a timetag stands for; `None` for [`IMMEDIATELY`] (or on a platform whose
/// `SystemTime` cannot reach 1900).
pub fn timetag_to_system_time(time: OscTime) -> Option<SystemTime> {
    if is_immediate(time) {
        return None;
    }
    ntp_epoch()?.checked_add(timetag_to_duration(time))
}

/// The timetag for `time`; `None` before 1900 or past the end of NTP era 0 (2036-02-07).
pub fn system_time_to_timetag(time: SystemTime) -> Option<OscTime> {
    duration_to_timetag(time.duration_since(ntp_epoch()?).ok()?)
}

/// A timetag read as a span (seconds and fraction), as score files use them:
/// seconds from the start of the score. The fraction rounds to the nearest nanosecond.
pub fn timetag_to_duration(time: OscTime) -> Duration {
    let nanos = (u64::from(time.fractional) * NANOS_PER_SECOND + (1 << 31)) >> 32;
    // `Duration::new` carries a rounded-up full second into the seconds.
    Duration::new(u64::from(time.seconds), nanos as u32)
}

/// A span as a timetag (the inverse of [`timetag_to_duration`]); `None` from 2^32 s on.
pub fn duration_to_timetag(span: Duration) -> Option<OscTime> {
    let seconds = u32::try_from(span.as_secs()).ok()?;
    let nanos = u64::from(span.subsec_nanos());
    // Below 2^32 for every nanos < 10^9, so no carry into the seconds.
    let fractional = (((nanos << 32) + NANOS_PER_SECOND / 2) / NANOS_PER_SECOND) as u32;
    Some(OscTime {
        seconds,
        fractional,
    })
}
