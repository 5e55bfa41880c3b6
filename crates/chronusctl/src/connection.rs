//! Where chronusd is, and one request/reply exchange with it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::anyhow;
use chronus_osc::{OscMessage, OscPacket, RequestError};
use clap::Args;

use crate::failure::{self, Failure};

#[derive(Args, Debug)]
pub struct Connection {
    /// Host chronusd listens on for OSC.
    #[arg(
        long,
        global = true,
        env = "CHRONUS_OSC_HOST",
        default_value = "127.0.0.1"
    )]
    host: String,
    /// UDP port chronusd listens on for OSC.
    #[arg(long, global = true, env = "CHRONUS_OSC_PORT", default_value_t = 5005)]
    port: u16,
    /// How long to wait for a reply, in milliseconds (at least 1).
    #[arg(long, global = true, default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

impl Connection {
    /// Sends `packet` and waits for the message addressed `reply_addr`.
    pub fn request(&self, packet: &OscPacket, reply_addr: &str) -> Result<OscMessage, Failure> {
        let target = self.target()?;
        let timeout = Duration::from_millis(self.timeout_ms);
        chronus_osc::request(target, packet, reply_addr, timeout).map_err(|error| match error {
            RequestError::Timeout { .. } | RequestError::Refused { .. } => Failure::new(
                failure::UNAVAILABLE,
                anyhow!("{error}: is chronusd running?"),
            ),
            RequestError::Malformed { .. } => Failure::new(failure::PROTOCOL, error),
            RequestError::Rejected { .. } => Failure::new(failure::DATAERR, error),
            RequestError::Io { .. } => Failure::new(failure::IOERR, error),
        })
    }

    fn target(&self) -> Result<SocketAddr, Failure> {
        let unresolved = |detail: String| {
            Failure::new(
                failure::NOHOST,
                anyhow!("cannot resolve --host {}: {detail}", self.host),
            )
        };
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| unresolved(e.to_string()))?
            .next()
            .ok_or_else(|| unresolved("no addresses".into()))
    }
}
