//! Turning OSC messages into what the supervisor does.

use chronus_dsp::{Command, Control, VoiceParam, dialect};
use chronus_osc::{AddressPattern, OscMessage, OscType};

/// What a control message asks for.
pub enum Request {
    System(System),
    Speech(Speech),
    Engine(Engine),
    Pattern(crate::patterns::Request),
    /// An audio command, with the concrete address when the message's was a pattern,
    /// and the number that was clamped into range, if one was.
    Command(Box<Command>, Option<String>, Option<dialect::Clamp>),
}

/// The `/chronus/*` requests about the daemon itself.
pub enum System {
    Status,
    /// `/chronus/status/json`: the same figures, exact, as one JSON string.
    StatusJson,
    Version,
    Quit,
    Notify(bool),
    Sync(OscType),
    KillWorker(Which),
}

/// The Music Chronus requests that only ask for a reply, and recording.
pub enum Engine {
    Status,
    List,
    Schema,
    SeqStatus,
    /// `/engine/record/start [file]`.
    RecordStart(Option<String>),
    RecordStop,
    RecordStatus,
}

/// The `/chronus/tts/*`, `/chronus/asr/*` and `/chronus/speech/*` requests.
pub enum Speech {
    Say {
        text: String,
        voice: Option<String>,
        id: Option<OscType>,
    },
    StopSpeaking,
    StartStream(String),
    StopStream(String),
    Transcribe(String),
    Status,
}

/// The stream `/chronus/asr/start` and `/chronus/asr/stop` name when given none.
pub const DEFAULT_STREAM: &str = "default";

#[derive(Clone, Copy)]
pub enum Which {
    Active,
    Standby,
}

/// Every concrete audio address, for matching OSC address patterns against: each
/// voice's parameters and gate, and every module and sequencer control. Aliases
/// (`/mod/sine1/freq`, `/gate/acid1`, ...) are left out, so a pattern reaches each
/// parameter once.
pub fn namespace(num_voices: u8) -> Vec<String> {
    let voices = (1..=num_voices).flat_map(|v| {
        VoiceParam::ALL
            .iter()
            .map(move |p| format!("/mod/voice{v}/{}", p.suffix()))
            .chain(std::iter::once(format!("/gate/voice{v}")))
    });
    let controls = Control::ALL.iter().map(|c| c.spec().address.to_owned());
    voices.chain(controls).collect()
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

/// Parses one message. A pattern address expands to every audio address it matches.
pub fn parse(
    message: &OscMessage,
    num_voices: u8,
    namespace: &[String],
) -> Result<Vec<Request>, String> {
    let one = |r| Ok(vec![r]);
    match (message.addr.as_str(), message.args.as_slice()) {
        ("/chronus/status", _) => one(Request::System(System::Status)),
        ("/chronus/status/json", _) => one(Request::System(System::StatusJson)),
        ("/chronus/version", _) => one(Request::System(System::Version)),
        ("/chronus/quit", _) => one(Request::System(System::Quit)),
        ("/chronus/notify", [flag]) => match flag {
            OscType::Int(v) => one(Request::System(System::Notify(*v != 0))),
            OscType::Bool(v) => one(Request::System(System::Notify(*v))),
            _ => Err("expected 1 or 0".into()),
        },
        ("/chronus/notify", _) => Err("expected one argument, 1 or 0".into()),
        ("/chronus/sync", [id]) => one(Request::System(System::Sync(id.clone()))),
        ("/chronus/sync", _) => Err("expected one argument, an id".into()),
        ("/chronus/kill_worker", [OscType::String(which)]) => match which.as_str() {
            "active" => one(Request::System(System::KillWorker(Which::Active))),
            "standby" => one(Request::System(System::KillWorker(Which::Standby))),
            other => Err(format!(
                "unknown worker `{other}` (expected active or standby)"
            )),
        },
        ("/chronus/kill_worker", _) => Err("expected one string, active or standby".into()),
        ("/chronus/tts/say", [OscType::String(text), rest @ ..]) if rest.len() <= 2 => {
            let voice = match rest.first() {
                None => None,
                Some(OscType::String(v)) if v.is_empty() => None,
                Some(OscType::String(v)) => Some(v.clone()),
                Some(_) => return Err("the voice (second argument) must be a string".into()),
            };
            one(Request::Speech(Speech::Say {
                text: text.clone(),
                voice,
                id: rest.get(1).cloned(),
            }))
        }
        ("/chronus/tts/say", _) => {
            Err("expected text s, then optionally voice s (\"\" for the default) and an id".into())
        }
        ("/chronus/tts/stop", []) => one(Request::Speech(Speech::StopSpeaking)),
        ("/chronus/tts/stop", _) => Err("expected no arguments".into()),
        ("/chronus/asr/start" | "/chronus/asr/stop", args) => {
            let stream = match args {
                [] => DEFAULT_STREAM.to_owned(),
                [OscType::String(s)] if !s.is_empty() => s.clone(),
                _ => return Err("expected no argument or one non-empty string, the stream".into()),
            };
            one(Request::Speech(if message.addr.ends_with("start") {
                Speech::StartStream(stream)
            } else {
                Speech::StopStream(stream)
            }))
        }
        ("/chronus/asr/transcribe", [OscType::String(path)]) if !path.is_empty() => {
            one(Request::Speech(Speech::Transcribe(path.clone())))
        }
        ("/chronus/asr/transcribe", _) => {
            Err("expected one string, the name of a WAV file in speech.asr.transcribe_dir".into())
        }
        ("/chronus/speech/status", _) => one(Request::Speech(Speech::Status)),
        // Queries ignore their arguments, as the original did.
        ("/engine/status", _) => one(Request::Engine(Engine::Status)),
        ("/engine/list", _) => one(Request::Engine(Engine::List)),
        ("/engine/schema", _) => one(Request::Engine(Engine::Schema)),
        ("/seq/status", _) => one(Request::Engine(Engine::SeqStatus)),
        ("/engine/record/start", []) => one(Request::Engine(Engine::RecordStart(None))),
        ("/engine/record/start", [OscType::String(name)]) => {
            one(Request::Engine(Engine::RecordStart(Some(name.clone()))))
        }
        ("/engine/record/start", _) => {
            Err("expected no argument (a timestamped name) or one string, a file name".into())
        }
        ("/engine/record/stop", _) => one(Request::Engine(Engine::RecordStop)),
        ("/engine/record/status", _) => one(Request::Engine(Engine::RecordStatus)),
        (addr, _) if addr.starts_with("/engine/record/") => Err(
            "unknown address (accepted: /engine/record/start [file], /engine/record/stop, \
             /engine/record/status)"
                .into(),
        ),
        (addr, _) if addr.starts_with("/pattern/") => {
            crate::patterns::parse(message).map(|r| vec![Request::Pattern(r)])
        }
        (addr, _) if chronus_osc::is_pattern(addr) => {
            let pattern = AddressPattern::new(addr).map_err(|e| e.to_string())?;
            let args = dialect_args(&message.args)?;
            let matched: Vec<Request> = namespace
                .iter()
                .filter(|a| pattern.matches(a))
                .map(|a| {
                    dialect::parse_reporting(a, &args, num_voices)
                        .map(|(c, clamp)| Request::Command(Box::new(c), Some(a.clone()), clamp))
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<_, _>>()?;
            if matched.is_empty() {
                return Err("the pattern matches no address".into());
            }
            Ok(matched)
        }
        (addr, _) => {
            let args = dialect_args(&message.args)?;
            dialect::parse_reporting(addr, &args, num_voices)
                .map(|(c, clamp)| vec![Request::Command(Box::new(c), None, clamp)])
                .map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(addr: &str, args: Vec<OscType>) -> OscMessage {
        OscMessage {
            addr: addr.into(),
            args,
        }
    }

    #[test]
    fn a_pattern_expands_to_every_matching_address() {
        let ns = namespace(4);
        let requests = parse(&msg("/gate/voice[1-3]", vec![OscType::Int(1)]), 4, &ns).unwrap();
        assert_eq!(requests.len(), 3);
        let requests = parse(
            &msg("/mod/voice{2,4}/adsr/*", vec![OscType::Float(0.2)]),
            4,
            &ns,
        )
        .unwrap();
        assert_eq!(requests.len(), 8);
        assert!(parse(&msg("/mod/voice9?/freq", vec![OscType::Float(1.0)]), 4, &ns).is_err());
    }

    /// The addresses a pattern reached, with the command each became.
    fn expanded(pattern: &str, value: f32, num_voices: u8) -> Vec<(String, Command)> {
        let ns = namespace(num_voices);
        parse(&msg(pattern, vec![OscType::Float(value)]), num_voices, &ns)
            .unwrap()
            .into_iter()
            .map(|r| match r {
                Request::Command(c, Some(addr), _) => (addr, *c),
                _ => panic!("{pattern} expanded to something other than commands"),
            })
            .collect()
    }

    #[test]
    fn patterns_reach_every_voice_parameter_and_module_control() {
        let filters = expanded("/mod/voice*/filter/freq", 1234.0, 4);
        assert_eq!(filters.len(), 4);
        for (i, (addr, command)) in filters.iter().enumerate() {
            assert_eq!(addr, &format!("/mod/voice{}/filter/freq", i + 1));
            assert_eq!(
                command,
                &Command::SetVoice {
                    voice: i as u8,
                    param: VoiceParam::FilterFreq,
                    value: 1234.0
                }
            );
        }
        let mixes = expanded("/mod/{reverb1,delay1}/mix", 0.5, 4);
        assert_eq!(
            mixes,
            [
                (
                    "/mod/reverb1/mix".to_owned(),
                    Command::Set {
                        control: Control::ReverbMix,
                        value: 0.5
                    }
                ),
                (
                    "/mod/delay1/mix".to_owned(),
                    Command::Set {
                        control: Control::DelayMix,
                        value: 0.5
                    }
                ),
            ]
        );
        assert_eq!(expanded("/mod/voice2/send/*", 0.3, 4).len(), 2);
        assert_eq!(expanded("/mod/lfo?/rate", 1.0, 4).len(), 2);
        // Every address listed is one the dialect accepts, and none is listed twice.
        let ns = namespace(16);
        for addr in &ns {
            assert!(
                dialect::parse(addr, &[dialect::Arg::Float(1.0)], 16).is_ok(),
                "{addr} is in the namespace but the dialect refuses it"
            );
        }
        let mut unique = ns.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ns.len());
    }

    #[test]
    fn engine_requests_are_the_supervisors_and_check_their_arguments() {
        let ns = namespace(1);
        for addr in [
            "/engine/status",
            "/engine/list",
            "/engine/schema",
            "/seq/status",
        ] {
            assert!(matches!(
                parse(&msg(addr, vec![]), 1, &ns).unwrap()[..],
                [Request::Engine(_)]
            ));
        }
        let start = |args| parse(&msg("/engine/record/start", args), 1, &ns);
        assert!(matches!(
            start(vec![]).unwrap()[..],
            [Request::Engine(Engine::RecordStart(None))]
        ));
        assert!(matches!(
            &start(vec![OscType::String("x".into())]).unwrap()[..],
            [Request::Engine(Engine::RecordStart(Some(name)))] if name == "x"
        ));
        assert!(start(vec![OscType::Int(1)]).is_err());
        assert!(parse(&msg("/engine/record/pause", vec![]), 1, &ns).is_err());
    }

    #[test]
    fn system_requests_check_their_arguments() {
        let ns = namespace(1);
        assert!(parse(&msg("/chronus/notify", vec![]), 1, &ns).is_err());
        assert!(
            parse(
                &msg("/chronus/kill_worker", vec![OscType::String("both".into())]),
                1,
                &ns
            )
            .is_err()
        );
        assert!(matches!(
            parse(&msg("/chronus/notify", vec![OscType::Int(1)]), 1, &ns).unwrap()[..],
            [Request::System(System::Notify(true))]
        ));
    }
}
