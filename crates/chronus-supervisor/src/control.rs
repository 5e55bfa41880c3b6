//! Turning OSC messages into what the supervisor does.

use chronus_dsp::{Command, dialect};
use chronus_osc::{OscMessage, OscType};

/// What a control message asks for.
pub enum Request {
    Status,
    Quit,
    Command(Command),
}

/// Converts OSC arguments into the dialect's argument type.
pub fn dialect_args(args: &[OscType]) -> Result<Vec<dialect::Arg<'_>>, String> {
    args.iter()
        .map(|a| match a {
            OscType::Int(i) => Ok(dialect::Arg::Int(i64::from(*i))),
            OscType::Long(i) => Ok(dialect::Arg::Int(*i)),
            OscType::Float(f) => Ok(dialect::Arg::Float(f64::from(*f))),
            OscType::Double(f) => Ok(dialect::Arg::Float(*f)),
            OscType::String(s) => Ok(dialect::Arg::Str(s)),
            OscType::Bool(b) => Ok(dialect::Arg::Bool(*b)),
            other => Err(format!(
                "argument {other:?} is not accepted (use int, float, string or bool)"
            )),
        })
        .collect()
}

pub fn parse(message: &OscMessage, num_voices: u8) -> Result<Request, String> {
    match message.addr.as_str() {
        "/chronus/status" => Ok(Request::Status),
        "/chronus/quit" => Ok(Request::Quit),
        addr => {
            let args = dialect_args(&message.args)?;
            dialect::parse(addr, &args, num_voices)
                .map(Request::Command)
                .map_err(|e| e.to_string())
        }
    }
}
