//! The OSC control dialect of the Python "Music Chronus" engine this replaces,
//! translated into [`Command`]s.
//!
//! Accepted (N is 1-based):
//! - `/mod/voiceN/freq` (Hz), `/mod/voiceN/amp`, `/mod/voiceN/slide_time` (s)
//! - `/mod/voiceN/adsr/attack|decay|sustain|release` (s; sustain is a level)
//! - `/gate/voiceN` with a number (open when > 0), a bool, or "on"/"off"
//! - voice1 aliases: `/mod/sine1/freq`, `/mod/adsr1/<stage>`, `/gate/adsr1`, `/gate/1`
//!
//! Numbers may be ints or floats and are clamped into range, so a valid message
//! is never dropped; anything else is a [`DialectError`].

use thiserror::Error;

use crate::command::{Command, VoiceParam};

/// One OSC argument, as decoded by the OSC layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg<'a> {
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bool(bool),
}

impl Arg<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Arg::Int(_) => "an int",
            Arg::Float(_) => "a float",
            Arg::Str(_) => "a string",
            Arg::Bool(_) => "a bool",
        }
    }
}

const ACCEPTED_ADDRESSES: &str = "/mod/voiceN/freq|amp|slide_time, \
    /mod/voiceN/adsr/attack|decay|sustain|release, /gate/voiceN, \
    and for voice1 /mod/sine1/freq, /mod/adsr1/<stage>, /gate/adsr1, /gate/1";
const ONE_NUMBER: &str = "one number";
const GATE_VALUE: &str = "one number, bool or \"on\"/\"off\"";

/// Why a message was rejected; the message names the address, what was wrong
/// and what is accepted.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum DialectError {
    #[error("{address}: unknown address (accepted: {ACCEPTED_ADDRESSES})")]
    UnknownAddress { address: String },
    #[error("{address}: no such voice ({})", voice_range(*.num_voices))]
    NoSuchVoice { address: String, num_voices: u8 },
    #[error("{address}: expected {expected}, got {got}")]
    WrongType {
        address: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("{address}: expected {expected}, got {count} arguments")]
    WrongCount {
        address: String,
        expected: &'static str,
        count: usize,
    },
    #[error("{address}: {value} is not a finite number")]
    NotFinite { address: String, value: f64 },
    #[error("{address}: gate value \"{value}\" is not \"on\" or \"off\"")]
    GateWord { address: String, value: String },
}

fn voice_range(num_voices: u8) -> String {
    match num_voices {
        0 => "this engine has no voices".to_owned(),
        1 => "the only voice is voice1".to_owned(),
        n => format!("voices are voice1..voice{n}"),
    }
}

/// What an address refers to; voices are 0-based.
enum Target {
    Param(u8, VoiceParam),
    Gate(u8),
}

/// Translates one OSC message for an engine with `num_voices` voices.
pub fn parse(address: &str, args: &[Arg<'_>], num_voices: u8) -> Result<Command, DialectError> {
    match route(address, num_voices)? {
        Target::Param(voice, param) => Ok(Command::SetVoice {
            voice,
            param,
            value: param.bounds().clamp_f64(one_number(address, args)?),
        }),
        Target::Gate(voice) => Ok(Command::Gate {
            voice,
            on: gate_value(address, args)?,
        }),
    }
}

fn route(address: &str, num_voices: u8) -> Result<Target, DialectError> {
    let unknown = || DialectError::UnknownAddress {
        address: address.to_owned(),
    };
    let voice = |name: &str| voice_index(address, name, num_voices)?.ok_or_else(unknown);
    let parts: Vec<&str> = address
        .strip_prefix('/')
        .ok_or_else(unknown)?
        .split('/')
        .collect();
    match parts.as_slice() {
        ["mod", "sine1", "freq"] => Ok(Target::Param(voice("voice1")?, VoiceParam::Freq)),
        ["mod", "adsr1", stage] => {
            let param = stage_param(stage).ok_or_else(unknown)?;
            Ok(Target::Param(voice("voice1")?, param))
        }
        ["mod", name, "adsr", stage] => {
            let param = stage_param(stage).ok_or_else(unknown)?;
            Ok(Target::Param(voice(name)?, param))
        }
        ["mod", name, param] => {
            let param = match *param {
                "freq" => VoiceParam::Freq,
                "amp" => VoiceParam::Amp,
                "slide_time" => VoiceParam::SlideTime,
                _ => return Err(unknown()),
            };
            Ok(Target::Param(voice(name)?, param))
        }
        ["gate", "adsr1" | "1"] => Ok(Target::Gate(voice("voice1")?)),
        ["gate", name] => Ok(Target::Gate(voice(name)?)),
        _ => Err(unknown()),
    }
}

fn stage_param(stage: &str) -> Option<VoiceParam> {
    match stage {
        "attack" => Some(VoiceParam::Attack),
        "decay" => Some(VoiceParam::Decay),
        "sustain" => Some(VoiceParam::Sustain),
        "release" => Some(VoiceParam::Release),
        _ => None,
    }
}

/// `Ok(None)` if `name` is not of the form `voiceN` at all (an unknown address),
/// an error if it is but voice N does not exist.
fn voice_index(address: &str, name: &str, num_voices: u8) -> Result<Option<u8>, DialectError> {
    let Some(digits) = name.strip_prefix("voice") else {
        return Ok(None);
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    // Too many digits for a u8 is just another voice that does not exist.
    match digits.parse::<u8>() {
        Ok(n @ 1..) if n <= num_voices => Ok(Some(n - 1)),
        _ => Err(DialectError::NoSuchVoice {
            address: address.to_owned(),
            num_voices,
        }),
    }
}

fn one_number(address: &str, args: &[Arg<'_>]) -> Result<f64, DialectError> {
    match args {
        [Arg::Int(i)] => Ok(*i as f64),
        [Arg::Float(x)] => finite(address, *x),
        [other] => Err(DialectError::WrongType {
            address: address.to_owned(),
            expected: ONE_NUMBER,
            got: other.kind(),
        }),
        _ => Err(wrong_count(address, ONE_NUMBER, args)),
    }
}

fn gate_value(address: &str, args: &[Arg<'_>]) -> Result<bool, DialectError> {
    match args {
        [Arg::Int(i)] => Ok(*i > 0),
        [Arg::Float(x)] => Ok(finite(address, *x)? > 0.0),
        [Arg::Bool(b)] => Ok(*b),
        [Arg::Str(s)] if s.eq_ignore_ascii_case("on") => Ok(true),
        [Arg::Str(s)] if s.eq_ignore_ascii_case("off") => Ok(false),
        [Arg::Str(s)] => Err(DialectError::GateWord {
            address: address.to_owned(),
            value: (*s).to_owned(),
        }),
        _ => Err(wrong_count(address, GATE_VALUE, args)),
    }
}

fn finite(address: &str, value: f64) -> Result<f64, DialectError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(DialectError::NotFinite {
            address: address.to_owned(),
            value,
        })
    }
}

fn wrong_count(address: &str, expected: &'static str, args: &[Arg<'_>]) -> DialectError {
    DialectError::WrongCount {
        address: address.to_owned(),
        expected,
        count: args.len(),
    }
}
