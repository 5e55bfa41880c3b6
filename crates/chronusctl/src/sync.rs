//! `chronusctl sync`: wait until every command sent before has reached the audio.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use chronus_osc::{OscType, RequestError, SYNC_ADDR, SYNCED_ADDR, message};
use clap::Args;

use crate::connection::{self, Connection};
use crate::failure::{self, Failure};

#[derive(Args, Debug)]
pub struct SyncArgs {}

pub fn run(connection: &Connection, _args: &SyncArgs) -> Result<(), Failure> {
    let id = sync_id();
    let mut client = connection.connect()?;
    client
        .send(&message(SYNC_ADDR, vec![OscType::Int(id)]))
        .map_err(connection::failure)?;
    let synced = |m: &chronus_osc::OscMessage| {
        m.addr == SYNCED_ADDR && m.args.first() == Some(&OscType::Int(id))
    };
    match client.wait_for(connection.timeout(), synced) {
        Ok(_) => Ok(()),
        Err(RequestError::Timeout { target, timeout }) => Err(Failure::new(
            failure::UNAVAILABLE,
            anyhow!(
                "no {SYNCED_ADDR} {id} from {target} within {} ms: is chronusd running?",
                timeout.as_millis()
            ),
        )),
        Err(error) => Err(connection::failure(error)),
    }
}

/// An id unlikely to collide with another client's: pid and clock mixed.
fn sync_id() -> i32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = (std::process::id().rotate_left(16) ^ nanos) & 0x7fff_ffff;
    mixed as i32
}
