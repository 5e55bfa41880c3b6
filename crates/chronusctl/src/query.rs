//! `chronusctl query <address> <args...>` and the named requests built on it
//! (`pattern`, `record`, `engine`, `seq`): send one message and print every reply
//! it brings, one line each, as `set` would read the arguments back.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use chronus_osc::{FAIL_ADDR, OscMessage, OscType, message};
use clap::{Args, Subcommand};

use crate::connection::{self, Connection};
use crate::failure::{self, Failure, write_stdout};
use crate::values::{self, render};

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Type letters for the arguments, one each (i h f d s c T F), as for `set`.
    #[arg(long)]
    types: Option<String>,
    #[command(flatten)]
    listen: Listen,
    /// The OSC address, such as /engine/status.
    address: String,
    /// The arguments.
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
    args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Listen {
    /// After the first reply, how long to wait for more before finishing, in ms.
    #[arg(long, default_value_t = 200)]
    more_ms: u64,
}

#[derive(Subcommand, Debug)]
pub enum Pattern {
    /// Save the current pattern into slot N (0-127).
    Save { slot: i32 },
    /// Load slot N at the next bar line, or at once with --immediate.
    Load {
        slot: i32,
        #[arg(long)]
        immediate: bool,
    },
    /// List the saved slots.
    List,
}

#[derive(Subcommand, Debug)]
pub enum Record {
    /// Start a take, into FILE inside engine.recordings_dir (a name is chosen if none).
    Start { file: Option<String> },
    /// Stop the take; prints where it went.
    Stop,
    /// Whether a take runs, and its frames.
    Status,
}

#[derive(Subcommand, Debug)]
pub enum Engine {
    /// The engine's figures.
    Status,
    /// Every module and its parameters.
    List,
    /// Every parameter's range and default.
    Schema,
}

#[derive(Subcommand, Debug)]
pub enum Seq {
    /// The sequencer's state.
    Status,
}

pub fn run(connection: &Connection, args: &QueryArgs) -> Result<(), Failure> {
    let osc_args = values::message_args(&args.address, args.types.as_deref(), &args.args)?;
    ask(connection, &args.address, osc_args, &args.listen)
}

pub fn pattern(connection: &Connection, which: &Pattern) -> Result<(), Failure> {
    let listen = Listen { more_ms: 200 };
    match which {
        Pattern::Save { slot } => ask(
            connection,
            "/pattern/save",
            vec![OscType::Int(*slot)],
            &listen,
        ),
        Pattern::Load { slot, immediate } => {
            let mut args = vec![OscType::Int(*slot)];
            if *immediate {
                args.push(OscType::String("immediate".into()));
            }
            ask(connection, "/pattern/load", args, &listen)
        }
        Pattern::List => ask(connection, "/pattern/list", vec![], &listen),
    }
}

pub fn record(connection: &Connection, which: &Record) -> Result<(), Failure> {
    let listen = Listen { more_ms: 200 };
    match which {
        Record::Start { file } => ask(
            connection,
            "/engine/record/start",
            file.iter().map(|f| OscType::String(f.clone())).collect(),
            &listen,
        ),
        Record::Stop => ask(connection, "/engine/record/stop", vec![], &listen),
        Record::Status => ask(connection, "/engine/record/status", vec![], &listen),
    }
}

pub fn engine(connection: &Connection, which: &Engine) -> Result<(), Failure> {
    let address = match which {
        Engine::Status => "/engine/status",
        Engine::List => "/engine/list",
        Engine::Schema => "/engine/schema",
    };
    ask(connection, address, vec![], &Listen { more_ms: 200 })
}

pub fn seq(connection: &Connection, Seq::Status: &Seq) -> Result<(), Failure> {
    ask(connection, "/seq/status", vec![], &Listen { more_ms: 200 })
}

/// Sends `address args`, then prints what comes back: until the connection's timeout
/// for the first reply, then until `more_ms` passes without another. A refusal of
/// this request exits 65 with its reason; no reply at all, 69.
fn ask(
    connection: &Connection,
    address: &str,
    args: Vec<OscType>,
    listen: &Listen,
) -> Result<(), Failure> {
    let mut client = connection.connect()?;
    client
        .send(&message(address, args))
        .map_err(connection::failure)?;
    let mut deadline = Instant::now() + connection.timeout();
    let mut replies = 0usize;
    while let Some(reply) = client.recv(deadline).map_err(connection::failure)? {
        if let Some(reason) = refusal(&reply, address) {
            return Err(Failure::new(
                failure::DATAERR,
                anyhow!("{address} refused: {reason}"),
            ));
        }
        write_stdout(&crate::watch::line(&reply))?;
        replies += 1;
        deadline = Instant::now() + Duration::from_millis(listen.more_ms);
    }
    if replies == 0 {
        return Err(Failure::new(
            failure::UNAVAILABLE,
            anyhow!(
                "no reply to {address} from {} within {:?}",
                client.target(),
                connection.timeout()
            ),
        ));
    }
    Ok(())
}

/// The reason of a `/chronus/fail` for `address`.
fn refusal(reply: &OscMessage, address: &str) -> Option<String> {
    match (reply.addr.as_str(), reply.args.as_slice()) {
        (FAIL_ADDR, [OscType::String(failed), rest @ ..]) if failed == address => Some(
            rest.iter()
                .map(|a| match a {
                    OscType::String(s) => s.clone(),
                    other => render(other),
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}
