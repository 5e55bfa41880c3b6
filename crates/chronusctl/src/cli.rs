//! The command line: options shared by every subcommand, then one subcommand.

use clap::{Parser, Subcommand};

use crate::connection::Connection;
use crate::kill_worker::KillWorkerArgs;
use crate::query::{Engine, Pattern, QueryArgs, Record, Seq};
use crate::say::SayArgs;
use crate::send::SendArgs;
use crate::set::SetArgs;
use crate::status::StatusArgs;
use crate::sync::SyncArgs;
use crate::watch::WatchArgs;

#[derive(Parser, Debug)]
#[command(version, about = "Control a running chronusd over OSC")]
pub struct Cli {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the daemon's live status.
    Status(StatusArgs),
    /// Send one message; prints nothing if chronusd takes it, exits 65 if it refuses.
    Set(SetArgs),
    /// Subscribe to events (/chronus/notify) and print them, one per line, until Ctrl-C.
    Watch(WatchArgs),
    /// Wait until every command sent before has reached the audio.
    Sync(SyncArgs),
    /// Play a score file (int32 length-prefixed bundles, timetags in seconds from its start).
    Send(SendArgs),
    /// Failover drill: SIGKILL the active or the standby worker; prints its pid.
    KillWorker(KillWorkerArgs),
    /// Speak through the daemon's output (text-to-speech); waits until the speech has played.
    Say(SayArgs),
    /// Send one message and print every reply it brings (exit 65 if refused, 69 if none).
    Query(QueryArgs),
    /// Save, load and list pattern slots.
    #[command(subcommand)]
    Pattern(Pattern),
    /// Start, stop and query a take (a recording of the output).
    #[command(subcommand)]
    Record(Record),
    /// The engine's status, modules and parameter schema.
    #[command(subcommand)]
    Engine(Engine),
    /// The sequencer's state.
    #[command(subcommand)]
    Seq(Seq),
    /// Write the man page and shell completions into DIR (for packaging).
    #[command(hide = true)]
    Docs { dir: std::path::PathBuf },
}
