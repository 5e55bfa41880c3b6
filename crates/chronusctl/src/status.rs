//! `chronusctl status`: ask for `/chronus/status/json` (every figure exact, 64-bit
//! counters included), print it as aligned `key: value` lines (grouped under headings
//! on a terminal) or as JSON.

use std::fmt;

use anyhow::anyhow;
use chronus_osc::{OscMessage, OscType, STATUS_JSON_ADDR, STATUS_JSON_REPLY_ADDR, message};
use clap::Args;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::connection::Connection;
use crate::failure::{self, Failure, write_stdout};

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print one JSON object with typed values (non-finite floats are null).
    #[arg(long, conflicts_with = "check")]
    json: bool,
    /// Health check for monitoring: exit 0 when both slots are in lockstep, the device
    /// is present and its clock advances, and no underrun happens during --window-ms;
    /// otherwise exit 1 with one line per problem (69 when chronusd does not answer).
    #[arg(long)]
    check: bool,
    /// How long --check watches the clock and the underruns, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    window_ms: u64,
}

pub fn run(connection: &Connection, args: &StatusArgs) -> Result<(), Failure> {
    let pairs = fetch(connection)?;
    if args.check {
        std::thread::sleep(std::time::Duration::from_millis(args.window_ms));
        let after = fetch(connection)?;
        let problems = crate::health::problems(&pairs, &after);
        if problems.is_empty() {
            return write_stdout("healthy\n");
        }
        let lines: String = problems
            .iter()
            .map(|p| format!("unhealthy: {p}\n"))
            .collect();
        write_stdout(&lines)?;
        return Err(Failure::new(
            failure::UNHEALTHY,
            anyhow!("{} problem(s)", problems.len()),
        ));
    }
    write_stdout(&if args.json {
        to_json(&pairs)
    } else if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        grouped(&pairs)
    } else {
        // Scripts read `key: value` lines in the daemon's order.
        to_text(&pairs)
    })
}

fn fetch(connection: &Connection) -> Result<Vec<(String, Value)>, Failure> {
    let reply = connection.request(&message(STATUS_JSON_ADDR, vec![]), STATUS_JSON_REPLY_ADDR)?;
    parse(&reply).map_err(|e| {
        Failure::new(
            failure::PROTOCOL,
            e.context(format!("malformed {STATUS_JSON_REPLY_ADDR}")),
        )
    })
}

/// The reply's one string: a JSON object, read with its keys in the order sent.
fn parse(reply: &OscMessage) -> anyhow::Result<Vec<(String, Value)>> {
    let [OscType::String(json)] = reply.args.as_slice() else {
        return Err(anyhow!(
            "expected one string argument (a JSON object), got {} arguments",
            reply.args.len()
        ));
    };
    let mut de = serde_json::Deserializer::from_str(json);
    let pairs = de
        .deserialize_map(Ordered)
        .and_then(|pairs| de.end().map(|()| pairs))
        .map_err(|e| anyhow!("the status is not one JSON object: {e}"))?;
    Ok(pairs)
}

/// Collects a JSON object into pairs in order, refusing a key sent twice.
struct Ordered;

impl<'de> Visitor<'de> for Ordered {
    type Value = Vec<(String, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of status figures")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs: Vec<(String, Value)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            if pairs.iter().any(|(seen, _)| *seen == key) {
                return Err(serde::de::Error::custom(format!(
                    "key {key:?} appears twice"
                )));
            }
            pairs.push((key, value));
        }
        Ok(pairs)
    }
}

/// One `key: value` line per pair, values aligned in one column.
fn to_text(pairs: &[(String, Value)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    pairs
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{:width$} {value}\n", format!("{key}:"))
        })
        .collect()
}

/// The group a figure is shown under on a terminal.
fn group(key: &str) -> &'static str {
    const WORKERS: [&str; 9] = [
        "failovers",
        "active_slot",
        "restores",
        "divergences",
        "cold_starts",
        "hangs",
        "faults",
        "restart_backoff_ms",
        "last_",
    ];
    if key.starts_with("osc_") {
        "OSC"
    } else if ["tts_", "asr_", "speech_"]
        .iter()
        .any(|p| key.starts_with(p))
    {
        "speech"
    } else if key.starts_with("slot") || WORKERS.iter().any(|w| key.starts_with(w)) {
        "workers"
    } else if key.ends_with("_errors") {
        "storage"
    } else if key == "version" || key == "uptime_s" {
        "daemon"
    } else {
        "audio"
    }
}

/// On a terminal: the figures under headings (daemon, audio, workers, OSC, speech,
/// storage), each group aligned, in the daemon's order within a group.
fn grouped(pairs: &[(String, Value)]) -> String {
    let mut out = String::new();
    for heading in ["daemon", "audio", "workers", "OSC", "speech", "storage"] {
        let members: Vec<(String, Value)> = pairs
            .iter()
            .filter(|(k, _)| group(k) == heading)
            .cloned()
            .collect();
        if members.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(heading);
        out.push('\n');
        for line in to_text(&members).lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// One JSON object on one line, keys in the order the daemon sent them.
fn to_json(pairs: &[(String, Value)]) -> String {
    let fields: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{}:{value}", Value::from(key.as_str())))
        .collect();
    format!("{{{}}}\n", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(args: Vec<OscType>) -> OscMessage {
        OscMessage {
            addr: STATUS_JSON_REPLY_ADDR.into(),
            args,
        }
    }

    fn json(text: &str) -> OscMessage {
        reply(vec![OscType::String(text.into())])
    }

    #[test]
    fn figures_keep_their_order_and_exact_values() {
        let pairs = parse(&json(
            r#"{"z":1,"frames":18446744073709551615,"gain":0.1,"on":true}"#,
        ))
        .unwrap();
        assert_eq!(
            to_text(&pairs),
            "z:      1\nframes: 18446744073709551615\ngain:   0.1\non:     true\n"
        );
        assert_eq!(
            to_json(&pairs),
            "{\"z\":1,\"frames\":18446744073709551615,\"gain\":0.1,\"on\":true}\n"
        );
    }

    #[test]
    fn on_a_terminal_figures_are_grouped_under_headings() {
        let pairs = parse(&json(
            r#"{"version":"0.1.0","host":"jack","frames":5,"slot0_state":"lockstep","failovers":1,"osc_received":9,"tts_state":"ready","storage_errors":0}"#,
        ))
        .unwrap();
        assert_eq!(
            grouped(&pairs),
            "daemon\n  version: 0.1.0\n\naudio\n  host:   jack\n  frames: 5\n\n\
             workers\n  slot0_state: lockstep\n  failovers:   1\n\nOSC\n  osc_received: 9\n\n\
             speech\n  tts_state: ready\n\nstorage\n  storage_errors: 0\n"
        );
    }

    #[test]
    fn json_escapes_keys_and_strings() {
        let pairs = parse(&json(r#"{"say \"hi\"":"a\nb"}"#)).unwrap();
        assert_eq!(to_json(&pairs), "{\"say \\\"hi\\\"\":\"a\\nb\"}\n");
    }

    #[test]
    fn a_reply_that_is_not_one_json_object_is_rejected() {
        assert_eq!(
            parse(&reply(vec![OscType::Int(1)]))
                .unwrap_err()
                .to_string(),
            "expected one string argument (a JSON object), got 1 arguments"
        );
        assert!(parse(&json("[1,2]")).is_err());
        assert!(parse(&json("{\"a\":1} trailing")).is_err());
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse(&json(r#"{"k":1,"k":2}"#)).unwrap_err().to_string();
        assert!(err.contains("key \"k\" appears twice"), "{err}");
    }
}
