//! The control dialect's reply shapes, built and taken apart in one place.

use rosc::{OscMessage, OscPacket, OscType};

/// Address of the reply sent for any request that could not be carried out.
pub const FAIL_ADDR: &str = "/chronus/fail";
/// Address of the status request.
pub const STATUS_ADDR: &str = "/chronus/status";
/// Address of the reply to [`STATUS_ADDR`].
pub const STATUS_REPLY_ADDR: &str = "/chronus/status.reply";
/// `/chronus/done s:address ...`: the request at `address` was carried out.
pub const DONE_ADDR: &str = "/chronus/done";
/// `/chronus/notify i:1|0`: subscribe to (or leave) the events; answered by `done`.
pub const NOTIFY_ADDR: &str = "/chronus/notify";
/// `/chronus/sync i:id`: answered by [`SYNCED_ADDR`] once earlier commands reached the audio.
pub const SYNC_ADDR: &str = "/chronus/sync";
/// `/chronus/synced i:id`.
pub const SYNCED_ADDR: &str = "/chronus/synced";
/// `/chronus/kill_worker s:active|standby` (a drill): answered by `done` with the pid.
pub const KILL_WORKER_ADDR: &str = "/chronus/kill_worker";
/// `/chronus/version`: answered by [`VERSION_REPLY_ADDR`].
pub const VERSION_ADDR: &str = "/chronus/version";
/// `/chronus/version.reply s:version`.
pub const VERSION_REPLY_ADDR: &str = "/chronus/version.reply";
/// `/chronus/quit`.
pub const QUIT_ADDR: &str = "/chronus/quit";
/// Event: `/chronus/late f:seconds`, a bundle ran this late.
pub const LATE_ADDR: &str = "/chronus/late";
/// `/chronus/status/json`: answered by [`STATUS_JSON_REPLY_ADDR`].
pub const STATUS_JSON_ADDR: &str = "/chronus/status/json";
/// `/chronus/status/json.reply s:json`: the status as one JSON object, every
/// figure exact (64-bit counters included), keys in the order of the OSC reply.
pub const STATUS_JSON_REPLY_ADDR: &str = "/chronus/status/json.reply";
/// Event: `/chronus/refused s:address s:reason s:sender`, a copy of every
/// `/chronus/fail` for subscribers; the sender is `ip:port`.
pub const REFUSED_ADDR: &str = "/chronus/refused";
/// Event: `/chronus/clamped s:address f:sent f:used s:sender`, a value was out of
/// range and the nearest accepted one was used.
pub const CLAMPED_ADDR: &str = "/chronus/clamped";
/// The address a [`fail`] names for a packet whose own address cannot be read.
pub const UNDECODABLE_ADDR: &str = "(undecodable)";
/// The address a [`fail`] names when it is about a TCP connection itself (refused, or
/// closed by the server), not about a request sent on it.
pub const CONNECTION_ADDR: &str = "(connection)";

/// A single message packet.
pub fn message(addr: &str, args: Vec<OscType>) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr: addr.to_owned(),
        args,
    })
}

/// A count or frame position (64-bit in the daemon) in an OSC 1.0 core type:
/// the decimal digits as `s`, exact at any size (an `i` would overflow at 2^31,
/// an `f` is exact only to 2^24). See [`integer`] for reading it back.
pub fn count(value: u64) -> OscType {
    OscType::String(value.to_string())
}

/// A yes/no as `i` 1 or 0 (`T`/`F` are not OSC 1.0 core types).
pub fn flag(on: bool) -> OscType {
    OscType::Int(i32::from(on))
}

/// An integer figure of a reply: an `i`, or a [`count`]'s decimal digits.
pub fn integer(value: &OscType) -> Option<i64> {
    match value {
        OscType::Int(v) => Some(i64::from(*v)),
        OscType::String(digits) => digits.parse().ok(),
        _ => None,
    }
}

/// `/chronus/fail s:address s:reason`: the request at `address` was refused, and why.
pub fn fail(address: &str, reason: &str) -> OscPacket {
    message(
        FAIL_ADDR,
        vec![
            OscType::String(address.to_owned()),
            OscType::String(reason.to_owned()),
        ],
    )
}

/// `/chronus/done s:address` followed by `extra` (for example the killed worker's pid).
pub fn done(address: &str, extra: Vec<OscType>) -> OscPacket {
    let mut args = vec![OscType::String(address.to_owned())];
    args.extend(extra);
    message(DONE_ADDR, args)
}

/// If `reply` is `/chronus/done` for `address`, the arguments after the address.
pub fn done_args<'a>(reply: &'a OscMessage, address: &str) -> Option<&'a [OscType]> {
    match reply.args.split_first() {
        Some((OscType::String(addr), rest)) if reply.addr == DONE_ADDR && addr == address => {
            Some(rest)
        }
        _ => None,
    }
}

/// `/chronus/status.reply` with alternating string keys and values.
pub fn status_reply(pairs: Vec<(&str, OscType)>) -> OscPacket {
    let args = pairs
        .into_iter()
        .flat_map(|(key, value)| [OscType::String(key.to_owned()), value])
        .collect();
    message(STATUS_REPLY_ADDR, args)
}

/// Why a status reply could not be read as key/value pairs.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum StatusReplyError {
    #[error(
        "status reply has {count} arguments: expected alternating keys and values, an even number"
    )]
    OddCount { count: usize },
    #[error("status reply argument {index} should be a string key but is {found}")]
    KeyNotString { index: usize, found: OscType },
}

/// The inverse of [`status_reply`]: the reply's arguments as (key, value) pairs in order.
pub fn status_pairs(reply: &OscMessage) -> Result<Vec<(String, OscType)>, StatusReplyError> {
    let args = &reply.args;
    if args.len() % 2 != 0 {
        return Err(StatusReplyError::OddCount { count: args.len() });
    }
    let keys = args.iter().step_by(2);
    let values = args.iter().skip(1).step_by(2);
    keys.zip(values)
        .enumerate()
        .map(|(i, (key, value))| match key {
            OscType::String(key) => Ok((key.clone(), value.clone())),
            other => Err(StatusReplyError::KeyNotString {
                index: 2 * i,
                found: other.clone(),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_travel_as_exact_digits_and_read_back() {
        let big = (1u64 << 53) + 1;
        assert_eq!(count(big), OscType::String("9007199254740993".into()));
        assert_eq!(integer(&count(big)), Some(big as i64));
        assert_eq!(integer(&OscType::Int(-7)), Some(-7));
        assert_eq!(integer(&OscType::String("12a".into())), None);
        assert_eq!(integer(&OscType::Float(1.0)), None);
        assert_eq!(flag(true), OscType::Int(1));
        assert_eq!(flag(false), OscType::Int(0));
    }
}
