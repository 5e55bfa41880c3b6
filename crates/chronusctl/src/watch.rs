//! `chronusctl watch`: subscribe to the daemon's events and print them, one line each
//! with its UTC time and a readable name, until Ctrl-C.
//!
//! A subscription is a lease: chronusd ends one not renewed within
//! [`SUBSCRIPTION_LEASE`], so the watch renews it well within that (every 20 s by
//! default), which also keeps a TCP connection from being closed as idle and
//! re-subscribes after a daemon restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use chronus_osc::{
    CLAMPED_ADDR, CONNECTION_ADDR, Client, FAIL_ADDR, NOTIFY_ADDR, OscMessage, OscType,
    REFUSED_ADDR, RequestError, SUBSCRIPTION_LEASE, done_args, message,
};
use clap::Args;

use crate::connection::{self, Connection};
use crate::failure::{self, Failure, write_stdout};
use crate::values::render;

/// The lease in whole seconds: renewals must come more often than this.
const LEASE_S: u64 = SUBSCRIPTION_LEASE.as_secs();

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Seconds between renewals of the subscription (chronusd ends one not renewed
    /// within 60 s).
    #[arg(long, default_value_t = LEASE_S / 3,
          value_parser = clap::value_parser!(u64).range(1..LEASE_S))]
    renew_s: u64,
}

/// How often the loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// How long the unsubscribe may wait for its acknowledgement.
const UNSUBSCRIBE_WAIT: Duration = Duration::from_millis(200);

pub fn run(connection: &Connection, args: &WatchArgs) -> Result<(), Failure> {
    let stop = stop_on_signals()?;
    let mut client = connection.connect()?;
    client.send(&notify(1)).map_err(connection::failure)?;
    client
        .wait_for(connection.timeout(), is_notify_done)
        .map_err(connection::failure)?;

    let renew = Duration::from_secs(args.renew_s);
    let outcome = print_events(&mut client, &stop, renew);
    // Leave the subscription even when the stream of events failed; the daemon also
    // drops a closed TCP subscriber by itself.
    if client.send(&notify(0)).is_ok() {
        let _ = client.wait_for(UNSUBSCRIBE_WAIT, is_notify_done);
    }
    outcome
}

fn notify(on: i32) -> chronus_osc::OscPacket {
    message(NOTIFY_ADDR, vec![OscType::Int(on)])
}

fn is_notify_done(m: &OscMessage) -> bool {
    done_args(m, NOTIFY_ADDR).is_some()
}

/// Prints one line per message until `stop` is set, renewing the subscription every
/// `renew`. Ends with the daemon's reason if it refuses the renewal or closes the
/// connection.
fn print_events(client: &mut Client, stop: &AtomicBool, renew: Duration) -> Result<(), Failure> {
    let mut renew_at = Instant::now() + renew;
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= renew_at {
            client.send(&notify(1)).map_err(connection::failure)?;
            renew_at += renew;
        }
        match client.recv((Instant::now() + POLL).min(renew_at)) {
            Ok(Some(event)) => {
                if is_notify_done(&event) {
                    continue;
                }
                if let Some(error) = ended(client, &event) {
                    return Err(connection::failure(error));
                }
                write_stdout(&stamped(&event, std::time::SystemTime::now()))?;
            }
            Ok(None) => {}
            // One undecodable datagram is worth a warning, not the end of the watch.
            Err(error @ RequestError::Malformed { .. }) => {
                eprintln!("chronusctl: {error}");
            }
            Err(error) => return Err(connection::failure(error)),
        }
    }
    Ok(())
}

/// If `event` is the daemon refusing the subscription (its renewal) or closing the
/// connection, that refusal.
fn ended(client: &Client, event: &OscMessage) -> Option<RequestError> {
    if event.addr != FAIL_ADDR {
        return None;
    }
    match &event.args[..] {
        [OscType::String(address), OscType::String(reason), ..]
            if address == NOTIFY_ADDR || address == CONNECTION_ADDR =>
        {
            Some(RequestError::Rejected {
                target: client.target(),
                address: address.clone(),
                reason: reason.clone(),
            })
        }
        _ => None,
    }
}

/// `<UTC time with ms> <event name> <line>`: when it arrived and what it is, for
/// people reading a log of the watch.
fn stamped(event: &OscMessage, at: std::time::SystemTime) -> String {
    let name = match event.addr.as_str() {
        "/chronus/failover" => "failover",
        "/chronus/worker" => "worker state",
        "/chronus/worker_lost" => "worker lost",
        "/chronus/restored" => "restored",
        "/chronus/divergence" => "divergence",
        "/chronus/cold_start" => "cold start",
        "/chronus/underrun" => "underrun",
        "/chronus/late" => "late bundle",
        "/chronus/storage/error" => "storage error",
        "/chronus/reloaded" => "reloaded",
        "/chronus/reload_failed" => "reload failed",
        "/chronus/device/lost" => "device lost",
        "/chronus/device/back" => "device back",
        REFUSED_ADDR => "refused",
        CLAMPED_ADDR => "clamped",
        _ => "event",
    };
    format!(
        "{} {name:<13} {}",
        humantime::format_rfc3339_millis(at),
        line(event)
    )
}

/// `<address> <arg> ...`, each argument as `set` would read it back; refusals and
/// clamps of any client in words.
pub(crate) fn line(event: &OscMessage) -> String {
    match (event.addr.as_str(), event.args.as_slice()) {
        (
            REFUSED_ADDR,
            [
                OscType::String(addr),
                OscType::String(reason),
                OscType::String(from),
            ],
        ) => return format!("{REFUSED_ADDR} {addr} from {from}: {reason}\n"),
        (
            CLAMPED_ADDR,
            [
                OscType::String(addr),
                OscType::Float(sent),
                OscType::Float(used),
                OscType::String(from),
            ],
        ) => {
            return format!(
                "{CLAMPED_ADDR} {addr} from {from}: {sent} is out of range, {used} used\n"
            );
        }
        _ => {}
    }
    let mut line = event.addr.clone();
    for arg in &event.args {
        line.push(' ');
        line.push_str(&render(arg));
    }
    line.push('\n');
    line
}

/// A flag set by the first SIGINT or SIGTERM; a second one ends the process at once.
fn stop_on_signals() -> Result<Arc<AtomicBool>, Failure> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|e| {
                Failure::new(
                    failure::IOERR,
                    anyhow!("cannot handle signal {signal}: {e}"),
                )
            })?;
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_the_subscription_is_renewed_three_times_per_lease() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["chronusctl", "watch"]).unwrap();
        let crate::cli::Command::Watch(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(Duration::from_secs(args.renew_s) * 3, SUBSCRIPTION_LEASE);
    }

    #[test]
    fn events_print_as_one_line_each() {
        let event = OscMessage {
            addr: "/chronus/worker".into(),
            args: vec![
                OscType::Int(0),
                OscType::Int(4242),
                OscType::String("lockstep".into()),
            ],
        };
        assert_eq!(line(&event), "/chronus/worker 0 4242 lockstep\n");
        let late = OscMessage {
            addr: "/chronus/late".into(),
            args: vec![OscType::Float(0.5)],
        };
        assert_eq!(line(&late), "/chronus/late 0.5\n");
    }

    #[test]
    fn each_line_starts_with_its_time_and_a_readable_name() {
        let event = OscMessage {
            addr: "/chronus/worker_lost".into(),
            args: vec![
                OscType::Int(1),
                OscType::Int(77),
                OscType::String("killed by SIGKILL".into()),
            ],
        };
        let at = std::time::UNIX_EPOCH + Duration::from_millis(1_796_320_814_123);
        assert_eq!(
            stamped(&event, at),
            "2026-12-03T18:00:14.123Z worker lost   /chronus/worker_lost 1 77 \"killed by SIGKILL\"\n"
        );
    }

    #[test]
    fn refusals_and_clamps_print_in_words() {
        let refused = OscMessage {
            addr: REFUSED_ADDR.into(),
            args: ["/mod/voice9/freq", "no such voice", "127.0.0.1:4000"]
                .map(|s| OscType::String(s.into()))
                .to_vec(),
        };
        assert_eq!(
            line(&refused),
            "/chronus/refused /mod/voice9/freq from 127.0.0.1:4000: no such voice\n"
        );
        let clamped = OscMessage {
            addr: CLAMPED_ADDR.into(),
            args: vec![
                OscType::String("/mod/voice1/amp".into()),
                OscType::Float(7.5),
                OscType::Float(1.0),
                OscType::String("127.0.0.1:4000".into()),
            ],
        };
        assert_eq!(
            line(&clamped),
            "/chronus/clamped /mod/voice1/amp from 127.0.0.1:4000: 7.5 is out of range, 1 used\n"
        );
    }
}
