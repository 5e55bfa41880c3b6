//! `chronusctl watch`: subscribe to the daemon's events and print them until Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use chronus_osc::{
    CLAMPED_ADDR, Client, NOTIFY_ADDR, OscMessage, OscType, REFUSED_ADDR, RequestError, done_args,
    message,
};
use clap::Args;

use crate::connection::{self, Connection};
use crate::failure::{self, Failure, write_stdout};
use crate::values::render;

#[derive(Args, Debug)]
pub struct WatchArgs {}

/// How often the loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// How long the unsubscribe may wait for its acknowledgement.
const UNSUBSCRIBE_WAIT: Duration = Duration::from_millis(200);

pub fn run(connection: &Connection, _args: &WatchArgs) -> Result<(), Failure> {
    let stop = stop_on_signals()?;
    let mut client = connection.connect()?;
    client.send(&notify(1)).map_err(connection::failure)?;
    client
        .wait_for(connection.timeout(), is_notify_done)
        .map_err(connection::failure)?;

    let outcome = print_events(&mut client, &stop);
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

/// Prints one line per message until `stop` is set.
fn print_events(client: &mut Client, stop: &AtomicBool) -> Result<(), Failure> {
    while !stop.load(Ordering::SeqCst) {
        match client.recv(Instant::now() + POLL) {
            Ok(Some(event)) => {
                if is_notify_done(&event) {
                    continue;
                }
                write_stdout(&line(&event))?;
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

/// `<address> <arg> ...`, each argument as `set` would read it back; refusals and
/// clamps of any client in words.
fn line(event: &OscMessage) -> String {
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
