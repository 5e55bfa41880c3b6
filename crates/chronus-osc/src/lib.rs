//! OSC for Chronus: bounded decoding, UDP and TCP endpoints for the daemon's control
//! thread (with a [`Replier`] that answers any [`Peer`] without blocking), TCP stream
//! framing (OSC 1.0 length prefix and OSC 1.1 SLIP), address patterns, timetag
//! conversions, an event subscriber set, helpers for the control dialect's replies, and
//! a client (UDP or TCP) for `chronusctl` and tests.
//!
//! The daemon side: bind a [`UdpEndpoint`] and a [`TcpEndpoint`] on the same address,
//! start `spawn_receiver` and `spawn_acceptor` with one bounded channel of [`Incoming`],
//! build one [`Replier`] from both, and answer each `Incoming` to its `peer`.
//!
//! Packets are `rosc`'s types so callers can build them with `rosc`'s constructors;
//! only decoding is Chronus's own (see [`decode`] for why).

mod decode;
mod frame;
mod incoming;
mod pattern;
mod replier;
mod reply;
mod request;
mod subscribers;
mod tcp;
mod timetag;
mod udp;

pub use decode::{DecodeError, Limits, decode, leading_address};
pub use frame::{FrameError, Framing, SLIP_END, SLIP_ESC, StreamDecoder};
pub use incoming::{Gate, Incoming, Peer, open_gate};
pub use pattern::{AddressPattern, PatternError, is_pattern, pattern_matches};
pub use replier::Replier;
pub use reply::{
    CLAMPED_ADDR, CONNECTION_ADDR, DONE_ADDR, FAIL_ADDR, KILL_WORKER_ADDR, LATE_ADDR, NOTIFY_ADDR,
    QUIT_ADDR, REFUSED_ADDR, STATUS_ADDR, STATUS_JSON_ADDR, STATUS_JSON_REPLY_ADDR,
    STATUS_REPLY_ADDR, SYNC_ADDR, SYNCED_ADDR, StatusReplyError, UNDECODABLE_ADDR, VERSION_ADDR,
    VERSION_REPLY_ADDR, count, done, done_args, fail, flag, integer, message, status_pairs,
    status_reply,
};
pub use request::{Client, RequestError, Transport, messages, request};
pub use rosc::{
    OscArray, OscBundle, OscColor, OscMessage, OscMidiMessage, OscPacket, OscTime, OscType,
};
pub use subscribers::{
    Broadcast, SUBSCRIPTION_LEASE, SUBSCRIPTIONS_PER_ADDRESS, Subscribed, Subscribers,
    SubscribersFull,
};
pub use tcp::{
    ConnectionLimits, DEFAULT_CONNECTIONS_PER_ADDRESS, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, REPLY_QUEUE_FRAMES, TcpEndpoint,
};
pub use timetag::{
    IMMEDIATELY, duration_to_timetag, is_immediate, system_time_to_timetag, timetag_to_duration,
    timetag_to_system_time,
};
pub use udp::UdpEndpoint;

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
