//! Where chronusd is, how to reach it (UDP, or TCP in either framing), and turning
//! transport errors into exit codes.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::anyhow;
use chronus_osc::{Client, Framing, OscMessage, OscPacket, RequestError, Transport};
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
    /// Port chronusd listens on for OSC (UDP, and TCP with --tcp).
    #[arg(long, global = true, env = "CHRONUS_OSC_PORT", default_value_t = 5005)]
    port: u16,
    /// How long to wait for a reply, in milliseconds (at least 1).
    #[arg(long, global = true, default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
    /// Talk over TCP (OSC 1.0 int32 length-prefixed frames) instead of UDP.
    #[arg(long, global = true)]
    tcp: bool,
    /// Talk over TCP with OSC 1.1 SLIP framing (implies --tcp).
    #[arg(long, global = true)]
    slip: bool,
}

impl Connection {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn transport(&self) -> Transport {
        if self.slip {
            Transport::Tcp(Framing::Slip)
        } else if self.tcp {
            Transport::Tcp(Framing::LengthPrefix)
        } else {
            Transport::Udp
        }
    }

    /// Opens a client: a connected UDP socket, or a TCP connection.
    pub fn connect(&self) -> Result<Client, Failure> {
        Client::connect(self.target()?, self.transport(), self.timeout()).map_err(failure)
    }

    /// Sends `packet` and waits for the message addressed `reply_addr`.
    pub fn request(&self, packet: &OscPacket, reply_addr: &str) -> Result<OscMessage, Failure> {
        self.connect()?
            .request(packet, reply_addr, self.timeout())
            .map_err(failure)
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

/// The exit code and message for a failed exchange.
pub fn failure(error: RequestError) -> Failure {
    match error {
        RequestError::Timeout { .. } | RequestError::Refused { .. } => Failure::new(
            failure::UNAVAILABLE,
            anyhow!("{error}: is chronusd running?"),
        ),
        RequestError::Closed { .. } => Failure::new(failure::UNAVAILABLE, error),
        RequestError::Malformed { .. } => Failure::new(failure::PROTOCOL, error),
        RequestError::Rejected { .. } => Failure::new(failure::DATAERR, error),
        RequestError::Io { .. } => Failure::new(failure::IOERR, error),
    }
}
