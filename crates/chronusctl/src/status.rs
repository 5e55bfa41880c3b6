//! `chronusctl status`: ask for `/chronus/status`, print the reply's key/value pairs.

use anyhow::{anyhow, bail};
use chronus_osc::{OscMessage, OscType, STATUS_ADDR, STATUS_REPLY_ADDR, message, status_pairs};
use clap::Args;

use crate::connection::Connection;
use crate::failure::{self, Failure, write_stdout};

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print one JSON object with typed values (non-finite floats become null).
    #[arg(long)]
    json: bool,
}

pub fn run(connection: &Connection, args: &StatusArgs) -> Result<(), Failure> {
    let reply = connection.request(&message(STATUS_ADDR, vec![]), STATUS_REPLY_ADDR)?;
    let pairs = parse(&reply).map_err(|e| {
        Failure::new(
            failure::PROTOCOL,
            e.context(format!("malformed {STATUS_REPLY_ADDR}")),
        )
    })?;
    write_stdout(&if args.json {
        to_json(&pairs)
    } else {
        to_text(&pairs)
    })
}

/// A status value of one of the types the status reply may carry.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Int(i64),
    /// Kept as `f32` so it prints with the digits it was sent with.
    Float(f32),
    Double(f64),
    Bool(bool),
}

fn parse(reply: &OscMessage) -> anyhow::Result<Vec<(String, Value)>> {
    let mut pairs: Vec<(String, Value)> = Vec::new();
    for (key, value) in status_pairs(reply)? {
        let value = match value {
            OscType::String(s) => Value::Text(s),
            OscType::Int(i) => Value::Int(i.into()),
            OscType::Long(h) => Value::Int(h),
            OscType::Float(f) => Value::Float(f),
            OscType::Double(d) => Value::Double(d),
            OscType::Bool(b) => Value::Bool(b),
            other => bail!("value of {key:?} is {other}; accepted types are s f i h d T F"),
        };
        if pairs.iter().any(|(seen, _)| *seen == key) {
            return Err(anyhow!("key {key:?} appears twice"));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
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
                Value::Text(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Double(d) => d.to_string(),
                Value::Bool(b) => b.to_string(),
            };
            format!("{:width$} {value}\n", format!("{key}:"))
        })
        .collect()
}

/// One JSON object on one line, keys in the order the daemon sent them.
fn to_json(pairs: &[(String, Value)]) -> String {
    let fields: Vec<String> = pairs
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Text(s) => serde_json::Value::from(s.as_str()),
                Value::Int(i) => serde_json::Value::from(*i),
                // Widening 0.1f32 gives 0.10000000149011612; going through its shortest
                // decimal form keeps the 0.1 that was meant.
                Value::Float(f) => {
                    serde_json::Value::from(f.to_string().parse::<f64>().unwrap_or(f64::NAN))
                }
                Value::Double(d) => serde_json::Value::from(*d),
                Value::Bool(b) => serde_json::Value::from(*b),
            };
            format!("{}:{value}", serde_json::Value::from(key.as_str()))
        })
        .collect();
    format!("{{{}}}\n", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(args: Vec<OscType>) -> OscMessage {
        OscMessage {
            addr: STATUS_REPLY_ADDR.into(),
            args,
        }
    }

    #[test]
    fn float_values_print_with_their_sent_digits() {
        let pairs = vec![("gain".to_owned(), Value::Float(0.1))];
        assert_eq!(to_text(&pairs), "gain: 0.1\n");
        assert_eq!(to_json(&pairs), "{\"gain\":0.1}\n");
    }

    #[test]
    fn non_finite_floats_are_null_in_json() {
        let pairs = vec![
            ("a".to_owned(), Value::Float(f32::INFINITY)),
            ("b".to_owned(), Value::Double(f64::NAN)),
        ];
        assert_eq!(to_json(&pairs), "{\"a\":null,\"b\":null}\n");
    }

    #[test]
    fn json_escapes_keys_and_strings() {
        let pairs = vec![("say \"hi\"".to_owned(), Value::Text("a\nb".into()))];
        assert_eq!(to_json(&pairs), "{\"say \\\"hi\\\"\":\"a\\nb\"}\n");
    }

    #[test]
    fn unsupported_value_types_are_rejected() {
        let err = parse(&reply(vec![
            OscType::String("blob".into()),
            OscType::Blob(vec![1]),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "value of \"blob\" is (b) 0x01; accepted types are s f i h d T F"
        );
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let args = vec![
            OscType::String("k".into()),
            OscType::Int(1),
            OscType::String("k".into()),
            OscType::Int(2),
        ];
        assert_eq!(
            parse(&reply(args)).unwrap_err().to_string(),
            "key \"k\" appears twice"
        );
    }
}
