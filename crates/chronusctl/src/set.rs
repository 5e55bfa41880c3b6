//! `chronusctl set <address> <args...>`: send one message; silence means it was taken.

use std::time::Duration;

use chronus_osc::{RequestError, message};
use clap::Args;

use crate::connection::{self, Connection};
use crate::failure::Failure;
use crate::values;

#[derive(Args, Debug)]
pub struct SetArgs {
    /// Type letters for the arguments, one each (i h f d s c T F); without it each is
    /// typed by its form: 3 is an int, 0.5 a float, true/false a bool, anything else a
    /// string. Options go before the address.
    #[arg(long)]
    types: Option<String>,
    /// How long to listen for a /chronus/fail refusal, in milliseconds.
    #[arg(long, default_value_t = 200)]
    wait_ms: u64,
    /// The OSC address, such as /mod/voice1/amp (patterns are allowed).
    address: String,
    /// The arguments.
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
    args: Vec<String>,
}

pub fn run(connection: &Connection, args: &SetArgs) -> Result<(), Failure> {
    let osc_args = values::message_args(&args.address, args.types.as_deref(), &args.args)?;
    let mut client = connection.connect()?;
    client
        .send(&message(&args.address, osc_args))
        .map_err(connection::failure)?;
    // The daemon answers only refusals; hearing nothing for a while means it was taken.
    match client.wait_for(Duration::from_millis(args.wait_ms), |_| false) {
        Err(RequestError::Timeout { .. }) => Ok(()),
        Err(error) => Err(connection::failure(error)),
        Ok(_) => Ok(()),
    }
}
