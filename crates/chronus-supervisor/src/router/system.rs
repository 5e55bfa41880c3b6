//! `/chronus/status` (and `/status/json`), `/chronus/version`, `/chronus/notify`, `/chronus/sync`,
//! `/chronus/kill_worker` and `/chronus/quit`.

use super::Flow;
use crate::control::{System, Which};
use crate::daemon::Daemon;
use crate::process;
use crate::status;
use chronus_osc::{OscMessage, OscType, Peer};
use chronus_shm::SLOTS;
use nix::sys::signal::Signal;

pub fn handle(d: &mut Daemon, from: Peer, message: &OscMessage, request: System) -> Flow {
    match request {
        System::Status => {
            let reply = status::reply(d);
            d.clients.reply(&from, reply);
        }
        System::StatusJson => {
            let reply = status::json(d);
            d.clients.reply(&from, reply);
        }
        System::Version => d.clients.reply(
            &from,
            chronus_osc::message(
                chronus_osc::VERSION_REPLY_ADDR,
                vec![OscType::String(env!("CARGO_PKG_VERSION").into())],
            ),
        ),
        System::Notify(on) => {
            let result = if on {
                d.clients.subscribe(from, std::time::Instant::now())
            } else {
                d.clients.unsubscribe(&from);
                Ok(())
            };
            match result {
                Ok(()) => d
                    .clients
                    .reply(&from, chronus_osc::done(chronus_osc::NOTIFY_ADDR, vec![])),
                Err(e) => d
                    .clients
                    .fail(&from, chronus_osc::NOTIFY_ADDR, &e.to_string()),
            }
        }
        System::Sync(id) => sync(d, from, &message.addr, id),
        System::KillWorker(which) => {
            let active = d.active_slot();
            let slot = match which {
                Which::Active => active,
                Which::Standby => (0..SLOTS).find(|&i| i != active).unwrap_or(active),
            };
            match d.pool.pid(slot) {
                Some(pid) => {
                    tracing::info!(slot, pid, "killing a worker on request (drill)");
                    process::signal(pid, Signal::SIGKILL);
                    d.clients.reply(
                        &from,
                        chronus_osc::done(
                            chronus_osc::KILL_WORKER_ADDR,
                            vec![OscType::Int(pid as i32)],
                        ),
                    );
                }
                None => d
                    .clients
                    .fail(&from, &message.addr, "that slot has no worker right now"),
            }
        }
        System::Quit => {
            // Only from this machine, or from a sender the allowlist names.
            let ip = from.addr().ip();
            if ip.is_loopback() || d.config.osc.allow.iter().any(|net| net.contains(ip)) {
                tracing::info!(%from, "stopping on /chronus/quit");
                d.begin_stop();
                return Flow::Stop;
            }
            d.clients.fail(
                &from,
                &message.addr,
                "quit is accepted only from this machine or from osc.allow",
            );
        }
    }
    Flow::Continue
}

/// `/chronus/sync id`: `/chronus/synced id` once every earlier command has played.
pub fn sync(d: &mut Daemon, from: Peer, addr: &str, id: OscType) {
    if let Err(reason) = d.publisher.sync(from, id) {
        d.clients.fail(&from, addr, &reason);
    }
}
