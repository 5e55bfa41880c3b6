//! OSC for Chronus: bounded decoding, a UDP endpoint for the daemon's control thread,
//! helpers for the control dialect's replies, and a one-shot client for `chronusctl`.
//!
//! Packets are `rosc`'s types so callers can build them with `rosc`'s constructors;
//! only decoding is Chronus's own (see [`decode`] for why).

mod decode;
mod reply;
mod request;
mod udp;

pub use decode::{DecodeError, Limits, decode};
pub use reply::{
    FAIL_ADDR, STATUS_ADDR, STATUS_REPLY_ADDR, StatusReplyError, fail, message, status_pairs,
    status_reply,
};
pub use request::{RequestError, request};
pub use rosc::{
    OscArray, OscBundle, OscColor, OscMessage, OscMidiMessage, OscPacket, OscTime, OscType,
};
pub use udp::{Incoming, UdpEndpoint};

/// Encodes a packet for UDP (or for one TCP frame, without the frame's length prefix).
///
/// Strings and addresses containing NUL cannot be represented in OSC and come out cut
/// short on decoding.
pub fn encode(packet: &OscPacket) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail: its error type is `Infallible`.
    let Ok(_) = rosc::encoder::encode_into(packet, &mut out);
    out
}
