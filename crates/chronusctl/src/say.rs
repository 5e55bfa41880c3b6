//! `chronusctl say <text>`: speak through the daemon's output, and wait until the
//! last sample has been handed to the device.

use std::time::Duration;

use chronus_osc::{OscMessage, OscType, message};
use clap::Args;

use crate::connection::{self, Connection};
use crate::failure::Failure;

const SAY_ADDR: &str = "/chronus/tts/say";
const DONE_ADDR: &str = "/chronus/tts/done";

#[derive(Args, Debug)]
pub struct SayArgs {
    /// What to say.
    text: String,
    /// Voice (engine-specific, e.g. `en-us` for espeak-ng); the configured default otherwise.
    #[arg(long)]
    voice: Option<String>,
    /// Return once the daemon has accepted the text, without waiting for the speech to end.
    #[arg(long)]
    no_wait: bool,
    /// Longest wait for the speech to finish, in seconds (synthesis, queue and playback).
    #[arg(long, default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    wait_s: u64,
}

pub fn run(connection: &Connection, args: &SayArgs) -> Result<(), Failure> {
    let id = format!("chronusctl-{}", std::process::id());
    let request = message(
        SAY_ADDR,
        vec![
            OscType::String(args.text.clone()),
            OscType::String(args.voice.clone().unwrap_or_default()),
            OscType::String(id.clone()),
        ],
    );
    let mut client = connection.connect()?;
    client.send(&request).map_err(connection::failure)?;
    if args.no_wait {
        return Ok(());
    }
    // A refusal (`/chronus/fail`) ends the wait with its reason.
    let done = |m: &OscMessage| {
        m.addr == DONE_ADDR && m.args.first() == Some(&OscType::String(id.clone()))
    };
    client
        .wait_for(Duration::from_secs(args.wait_s), done)
        .map(|_| ())
        .map_err(connection::failure)
}
