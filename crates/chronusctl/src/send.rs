//! `chronusctl send <score>`: play a score file to the daemon.
//!
//! A score is a sequence of OSC bundles, each preceded by its size as an int32
//! big-endian, whose timetags are seconds from the start of the score (the layout of
//! scsynth's non-real-time scores and of chronusd's journal). By default each bundle is
//! sent when its time comes, stamped "immediately"; with `--bundles` every bundle is sent
//! at once, stamped with its absolute time, for the daemon to schedule.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::anyhow;
use chronus_osc::{
    Client, FAIL_ADDR, IMMEDIATELY, Limits, OscBundle, OscMessage, OscPacket, RequestError,
    Transport, decode, encode, is_immediate, system_time_to_timetag, timetag_to_duration,
};
use clap::Args;

use crate::connection::{self, Connection};
use crate::failure::{self, Failure};

/// The journal's header message: metadata, not a command, so it is not sent.
const JOURNAL_ADDR: &str = "/chronus/journal";
/// The largest payload of one UDP datagram.
const MAX_UDP_PAYLOAD: usize = 65507;

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The score file.
    score: PathBuf,
    /// Send every bundle at once with a future timetag (now + --delay-ms + its time)
    /// instead of sending each when its time comes.
    #[arg(long)]
    bundles: bool,
    /// With --bundles: how far ahead of now the score starts, in milliseconds.
    #[arg(long, default_value_t = 500)]
    delay_ms: u64,
    /// After the last bundle, how long to listen for /chronus/fail refusals, in ms.
    #[arg(long, default_value_t = 200)]
    wait_ms: u64,
}

/// One bundle of the score.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// Time from the start of the score.
    at: Duration,
    bundle: OscBundle,
}

pub fn run(connection: &Connection, args: &SendArgs) -> Result<(), Failure> {
    let bytes = std::fs::read(&args.score).map_err(|e| {
        Failure::new(
            failure::NOINPUT,
            anyhow!("cannot read score {}: {e}", args.score.display()),
        )
    })?;
    let entries = parse(&bytes).map_err(|e| {
        Failure::new(
            failure::DATAERR,
            e.context(format!("score {} is malformed", args.score.display())),
        )
    })?;
    let mut client = connection.connect()?;
    let mut sender = Sender {
        client: &mut client,
        udp: connection.transport() == Transport::Udp,
        score: &args.score,
        refusals: 0,
    };
    if args.bundles {
        let start = SystemTime::now() + Duration::from_millis(args.delay_ms);
        for entry in &entries {
            let timetag = system_time_to_timetag(start + entry.at).ok_or_else(|| {
                Failure::new(
                    failure::DATAERR,
                    anyhow!("a bundle at {:?} is past the end of OSC time", entry.at),
                )
            })?;
            sender.send(entry, timetag)?;
            sender.listen(Instant::now())?;
        }
    } else {
        let start = Instant::now();
        for entry in &entries {
            sender.listen(start + entry.at)?;
            sender.send(entry, IMMEDIATELY)?;
        }
    }
    sender.listen(Instant::now() + Duration::from_millis(args.wait_ms))?;
    match sender.refusals {
        0 => Ok(()),
        n => Err(Failure::new(
            failure::DATAERR,
            anyhow!("chronusd refused {n} message(s) of the score"),
        )),
    }
}

struct Sender<'a> {
    client: &'a mut Client,
    udp: bool,
    score: &'a Path,
    refusals: usize,
}

impl Sender<'_> {
    fn send(&mut self, entry: &Entry, timetag: chronus_osc::OscTime) -> Result<(), Failure> {
        let packet = OscPacket::Bundle(OscBundle {
            timetag,
            content: entry.bundle.content.clone(),
        });
        if self.udp {
            let size = encode(&packet).len();
            if size > MAX_UDP_PAYLOAD {
                return Err(Failure::new(
                    failure::DATAERR,
                    anyhow!(
                        "score {}: the bundle at {:?} is {size} bytes, too large for UDP: use --tcp",
                        self.score.display(),
                        entry.at
                    ),
                ));
            }
        }
        self.client.send(&packet).map_err(connection::failure)
    }

    /// Reports refusals that arrive until `until`.
    fn listen(&mut self, until: Instant) -> Result<(), Failure> {
        loop {
            match self.client.recv(until) {
                Ok(None) => return Ok(()),
                Ok(Some(reply)) if reply.addr == FAIL_ADDR => {
                    self.refusals += 1;
                    eprintln!("chronusctl: {}", refusal(&reply));
                }
                Ok(Some(_)) => {}
                Err(error @ RequestError::Malformed { .. }) => eprintln!("chronusctl: {error}"),
                Err(error) => return Err(connection::failure(error)),
            }
        }
    }
}

fn refusal(fail: &OscMessage) -> String {
    match fail.args.as_slice() {
        [
            chronus_osc::OscType::String(address),
            chronus_osc::OscType::String(reason),
            ..,
        ] => format!("chronusd refused {address}: {reason}"),
        _ => format!("chronusd refused a message: {fail}"),
    }
}

/// Reads every bundle of a score, dropping the journal's header message.
fn parse(bytes: &[u8]) -> anyhow::Result<Vec<Entry>> {
    let limits = Limits {
        max_packet: 1 << 24,
        max_elements: 1 << 16,
        ..Limits::default()
    };
    let mut entries = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let prefix: [u8; 4] = bytes[pos..]
            .first_chunk()
            .copied()
            .ok_or_else(|| anyhow!("truncated size at byte {pos}"))?;
        let size = i32::from_be_bytes(prefix);
        let body = usize::try_from(size)
            .ok()
            .and_then(|size| bytes.get(pos + 4..pos + 4 + size))
            .ok_or_else(|| {
                anyhow!(
                    "size {size} at byte {pos} does not fit the {} bytes left",
                    bytes.len() - pos - 4
                )
            })?;
        let packet = decode(body, &limits).map_err(|e| anyhow!("at byte {}: {e}", pos + 4))?;
        let OscPacket::Bundle(mut bundle) = packet else {
            return Err(anyhow!(
                "at byte {}: expected a bundle, found a message",
                pos + 4
            ));
        };
        pos += 4 + body.len();
        let at = if is_immediate(bundle.timetag) {
            Duration::ZERO
        } else {
            timetag_to_duration(bundle.timetag)
        };
        bundle
            .content
            .retain(|p| !matches!(p, OscPacket::Message(m) if m.addr == JOURNAL_ADDR));
        if !bundle.content.is_empty() {
            entries.push(Entry { at, bundle });
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronus_osc::{OscType, message};

    fn framed(packet: &OscPacket) -> Vec<u8> {
        chronus_osc::Framing::LengthPrefix.encode(packet)
    }

    fn bundle(seconds: u32, fractional: u32, content: Vec<OscPacket>) -> OscPacket {
        OscPacket::Bundle(OscBundle {
            timetag: (seconds, fractional).into(),
            content,
        })
    }

    #[test]
    fn scores_parse_into_timed_bundles_without_the_journal_header() {
        let header = message(JOURNAL_ADDR, vec![OscType::Int(48000)]);
        let gain = message("/voice/1/gain", vec![OscType::Float(0.5)]);
        let mut bytes = framed(&bundle(0, 0, vec![header]));
        bytes.extend(framed(&bundle(1, 1 << 31, vec![gain.clone()])));
        let entries = parse(&bytes).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].at, Duration::from_millis(1500));
        assert_eq!(entries[0].bundle.content, vec![gain]);
    }

    #[test]
    fn malformed_scores_say_where() {
        let ok = framed(&bundle(0, 0, vec![message("/a", vec![])]));
        let mut truncated = ok.clone();
        truncated.truncate(ok.len() - 4);
        assert_eq!(
            parse(&truncated).unwrap_err().to_string(),
            format!(
                "size {} at byte 0 does not fit the {} bytes left",
                ok.len() - 4,
                ok.len() - 8
            )
        );
        let mut tail = ok.clone();
        tail.extend([0, 0]);
        assert_eq!(
            parse(&tail).unwrap_err().to_string(),
            format!("truncated size at byte {}", ok.len())
        );
        let lone = framed(&message("/a", vec![]));
        assert_eq!(
            parse(&lone).unwrap_err().to_string(),
            "at byte 4: expected a bundle, found a message"
        );
    }
}
