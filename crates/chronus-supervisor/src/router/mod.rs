//! The request router: turns what clients send into work for the owners. One file
//! per request family: `system` (`/chronus/*`), `engine` (`/engine/*`, `/seq/status`
//! and takes), `patterns` (`/pattern/*`) and `speech` (`/chronus/tts|asr|speech/*`).
//! Audio commands go to the publisher as one group per message or bundle.

pub mod engine;
pub mod patterns;
pub mod speech;
pub mod system;

use crate::clients::ClientKey;
use crate::control::{self, Request, System};
use crate::daemon::Daemon;
use crate::publisher::Group;
use chronus_osc::{Incoming, OscBundle, OscMessage, OscPacket, OscType, Peer};
use std::time::Instant;

/// What the loop should do after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `/chronus/quit` was accepted: the daemon is stopping.
    Stop,
}

/// One packet from a client.
pub fn on_osc(d: &mut Daemon, incoming: Incoming) -> Flow {
    d.clients.counters.received += 1;
    if d.is_stopping() {
        return Flow::Continue;
    }
    let peer = incoming.peer;
    match incoming.packet {
        Err(e) => {
            let addr = incoming.address.as_deref();
            let addr = addr.unwrap_or(chronus_osc::UNDECODABLE_ADDR);
            d.clients.fail(&peer, addr, &e.to_string());
            Flow::Continue
        }
        Ok(OscPacket::Message(message)) => on_messages(d, peer, None, vec![message]),
        Ok(OscPacket::Bundle(bundle)) => on_bundle(d, peer, bundle),
    }
}

/// A bundle's messages take effect together at its timetag's frame; nested
/// bundles carry their own timetags.
fn on_bundle(d: &mut Daemon, from: Peer, bundle: OscBundle) -> Flow {
    let mut min_frame = d.publisher.timetag_frame(bundle.timetag);
    let mut late_s = None;
    if let Some(late) = min_frame.and_then(|frame| d.publisher.lateness(frame)) {
        // Too late to be sample-accurate: say so, then run it at once or drop it.
        d.clients.counters.late += 1;
        d.clients.broadcast(chronus_osc::message(
            chronus_osc::LATE_ADDR,
            vec![OscType::Float(late as f32)],
        ));
        min_frame = None;
        late_s = Some(late);
    }
    let mut messages = Vec::new();
    for packet in bundle.content {
        match packet {
            OscPacket::Message(m) => messages.push(m),
            OscPacket::Bundle(inner) => {
                if on_bundle(d, from, inner) == Flow::Stop {
                    return Flow::Stop;
                }
            }
        }
    }
    if let Some(late) = late_s
        && d.config.osc.late_bundles == chronus_config::LateBundles::Drop
    {
        let reason = format!("bundle arrived {late:.3} s late; dropped (osc.late_bundles = drop)");
        for m in messages {
            d.clients.fail(&from, &m.addr, &reason);
        }
        return Flow::Continue;
    }
    on_messages(d, from, min_frame, messages)
}

/// Handles messages that arrived together: requests at once, audio commands as
/// one group.
fn on_messages(
    d: &mut Daemon,
    from: Peer,
    min_frame: Option<u64>,
    messages: Vec<OscMessage>,
) -> Flow {
    let mut group = Group {
        min_frame: min_frame.unwrap_or(0),
        commands: Vec::new(),
        client: ClientKey::of_peer(&from),
    };
    // A sync waits for the commands that came with it, so it is handled after them.
    let mut syncs = Vec::new();
    for message in messages {
        let parsed = control::parse(&message, d.config.engine.num_voices, &d.namespace);
        let requests = match parsed {
            Ok(requests) => requests,
            Err(reason) => {
                d.clients.fail(&from, &message.addr, &reason);
                continue;
            }
        };
        for request in requests {
            match request {
                Request::Command(command, address, clamp) => {
                    if let Some(clamp) = clamp {
                        let addr = address.as_deref().unwrap_or(&message.addr);
                        d.clients.clamped(&from, addr, clamp, Instant::now());
                    }
                    // Journaled under the address it reached, so a journal replays.
                    let journaled = match address {
                        Some(addr) => OscMessage {
                            addr,
                            args: message.args.clone(),
                        },
                        None => message.clone(),
                    };
                    group.commands.push((*command, Some(journaled)))
                }
                Request::System(System::Sync(id)) => syncs.push((message.addr.clone(), id)),
                other => {
                    if dispatch(d, from, &message, other) == Flow::Stop {
                        return Flow::Stop;
                    }
                }
            }
        }
    }
    if !group.commands.is_empty() {
        let addresses: Vec<String> = group
            .commands
            .iter()
            .filter_map(|(_, m)| m.as_ref().map(|m| m.addr.clone()))
            .collect();
        if let Err(refusal) = d.submit(group) {
            let reason = refusal.reason();
            for addr in addresses {
                d.clients.fail(&from, &addr, &reason);
            }
        }
    }
    for (addr, id) in syncs {
        system::sync(d, from, &addr, id);
    }
    Flow::Continue
}

/// Routes one request to its family.
fn dispatch(d: &mut Daemon, from: Peer, message: &OscMessage, request: Request) -> Flow {
    match request {
        Request::Speech(request) => speech::handle(d, from, request),
        Request::Engine(request) => engine::handle(d, from, request),
        Request::Pattern(request) => patterns::handle(d, from, request),
        Request::System(request) => return system::handle(d, from, message, request),
        // Grouped by the caller.
        Request::Command(..) => {}
    }
    Flow::Continue
}
