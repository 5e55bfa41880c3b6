//! chronusctl: control a running chronusd over OSC.
//!
//! Each subcommand is a module with its clap arguments and a `run`; exit codes follow
//! sysexits(3) (see `failure`), so scripts can tell "not running" from "broken reply".

mod cli;
mod connection;
mod docs;
mod failure;
mod health;
mod kill_worker;
mod query;
mod say;
mod send;
mod set;
mod status;
mod sync;
mod values;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(usage) => return failure::usage(&usage),
    };
    let outcome = match &cli.command {
        Command::Status(args) => status::run(&cli.connection, args),
        Command::Set(args) => set::run(&cli.connection, args),
        Command::Watch(args) => watch::run(&cli.connection, args),
        Command::Sync(args) => sync::run(&cli.connection, args),
        Command::Send(args) => send::run(&cli.connection, args),
        Command::KillWorker(args) => kill_worker::run(&cli.connection, args),
        Command::Say(args) => say::run(&cli.connection, args),
        Command::Docs { dir } => docs::run(dir),
        Command::Query(args) => query::run(&cli.connection, args),
        Command::Pattern(which) => query::pattern(&cli.connection, which),
        Command::Record(which) => query::record(&cli.connection, which),
        Command::Engine(which) => query::engine(&cli.connection, which),
        Command::Seq(which) => query::seq(&cli.connection, which),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
