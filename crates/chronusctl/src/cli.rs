//! The command line: options shared by every subcommand, then one subcommand.

use clap::{Parser, Subcommand};

use crate::connection::Connection;
use crate::status::StatusArgs;

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
}
