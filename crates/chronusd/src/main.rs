//! chronusd: the Chronus daemon. Each subcommand is a thin call into a library.

mod cli;
mod daemon;
mod docs;
mod journal;
mod logging;
mod render;
mod worker;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command.unwrap_or(cli::Command::Run) {
        cli::Command::Run => daemon::run(&cli.global),
        cli::Command::CheckConfig => daemon::check_config(&cli.global),
        cli::Command::Worker { slot, fd } => worker::run(slot, fd),
        cli::Command::Render(args) => render::run(&args),
        cli::Command::Docs { dir } => docs::run(&dir),
    }
}
