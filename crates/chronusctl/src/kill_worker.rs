//! `chronusctl kill-worker active|standby`: a failover drill.

use anyhow::anyhow;
use chronus_osc::{KILL_WORKER_ADDR, OscType, done_args, message};
use clap::{Args, ValueEnum};

use crate::connection::{self, Connection};
use crate::failure::{self, Failure, write_stdout};

#[derive(Args, Debug)]
pub struct KillWorkerArgs {
    /// Which worker to SIGKILL.
    which: Which,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Which {
    Active,
    Standby,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Active => "active",
            Which::Standby => "standby",
        }
    }
}

/// Prints the killed worker's pid.
pub fn run(connection: &Connection, args: &KillWorkerArgs) -> Result<(), Failure> {
    let request = message(
        KILL_WORKER_ADDR,
        vec![OscType::String(args.which.name().into())],
    );
    let mut client = connection.connect()?;
    client.send(&request).map_err(connection::failure)?;
    let reply = client
        .wait_for(connection.timeout(), |m| {
            done_args(m, KILL_WORKER_ADDR).is_some()
        })
        .map_err(connection::failure)?;
    let pid = match done_args(&reply, KILL_WORKER_ADDR) {
        Some([OscType::Int(pid)]) => i64::from(*pid),
        Some([OscType::Long(pid)]) => *pid,
        _ => {
            return Err(Failure::new(
                failure::PROTOCOL,
                anyhow!("malformed reply {reply}: expected /chronus/done {KILL_WORKER_ADDR} <pid>"),
            ));
        }
    };
    write_stdout(&format!("{pid}\n"))
}
