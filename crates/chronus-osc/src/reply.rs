//! The control dialect's reply shapes, built and taken apart in one place.

use rosc::{OscMessage, OscPacket, OscType};

/// Address of the reply sent for any request that could not be carried out.
pub const FAIL_ADDR: &str = "/chronus/fail";
/// Address of the status request.
pub const STATUS_ADDR: &str = "/chronus/status";
/// Address of the reply to [`STATUS_ADDR`].
pub const STATUS_REPLY_ADDR: &str = "/chronus/status.reply";

/// A single message packet.
pub fn message(addr: &str, args: Vec<OscType>) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr: addr.to_owned(),
        args,
    })
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
