//! The OSC control dialect of the Python "Music Chronus" engine this replaces,
//! translated into [`Command`]s.
//!
//! Accepted (N is 1-based; ranges and defaults are in [`crate::schema`]):
//! - `/mod/voiceN/freq|amp|slide_time|osc/type|filter/freq|filter/q|send/reverb|send/delay`
//!   and `/mod/voiceN/adsr/attack|decay|sustain|release` (seconds; sustain is a level);
//!   `/mod/voiceN/wave` is `osc/type`, and both take a waveform's number or its name
//!   ([`WAVEFORMS`])
//! - `/gate/voiceN` with a number (open when > 0), a bool, or "on"/"off";
//!   `/gate/acid1` gates voice2 (whose gate also triggers the acid envelope)
//! - `/mod/acid1/cutoff|res|env_amount|decay|drive|mix|vol_comp|accent|cutoff_offset|
//!   res_accent_boost|accent_decay`,
//!   `/mod/dist1/drive|mix|tone`, `/mod/reverb1/mix|room|damp`,
//!   `/mod/delay1/time|feedback|mix|lowcut|highcut`, `/mod/lfo1|lfo2/rate|depth`
//! - voice1 aliases: `/mod/sine1/freq`, `/mod/filter1/freq|q`, `/mod/adsr1/<stage>`,
//!   `/mod/adsr1/freq` (the original's sequencer example played `adsr1` as a voice),
//!   `/gate/adsr1`, `/gate/1`
//! - the older single-voice dialect, on voice1: `/mod/sine/freq|gain`,
//!   `/mod/filter/cutoff|q`, `/mod/adsr/<stage>` (attack, decay and release in
//!   MILLISECONDS there), `/gate/adsr`, `/engine/freq`; and `/engine/gain`
//!   (master gain, reached over 20 ms)
//! - `/engine/start` and `/engine/stop`: fade the master in or out over 20 ms
//!   (the sequencer keeps time meanwhile)
//! - the sequencer: `/seq/add track voice pattern [base_freq] [filter_freq] [notes]`
//!   (any of the optional ones also as `key=value`, plus `gate=fraction`),
//!   `/seq/remove track`, `/seq/clear`, `/seq/start`, `/seq/stop`, `/seq/bpm`,
//!   `/seq/swing`, `/seq/gate_length` (fraction of a step, for tracks without
//!   their own), `/seq/update/pattern track pattern`, `/seq/update/notes track notes`
//!
//! Numbers may be ints or floats and are clamped into range, so a valid message
//! is never dropped ([`parse_reporting`] says when one was); anything else is a [`DialectError`]. Addresses that only
//! ask for a reply (status, schema, patterns, recording, visualisation) are the
//! supervisor's: they get [`DialectError::NotForEngine`], so it can route them.

use std::cell::Cell;

use thiserror::Error;

use crate::command::{Bounds, Command, Control, GATE_LENGTH, MASTER_GAIN, VoiceParam};
use crate::seq::{Notes, Pattern, SeqError, Track, TrackName};

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

const ACCEPTED_ADDRESSES: &str = "/mod/voiceN/freq|amp|slide_time|osc/type|wave|\
    filter/freq|filter/q|send/reverb|send/delay, /mod/voiceN/adsr/attack|decay|sustain|release, \
    /gate/voiceN, /mod/acid1/cutoff|res|env_amount|decay|drive|mix|vol_comp|accent|\
    cutoff_offset|res_accent_boost|accent_decay, \
    /gate/acid1, /mod/dist1/drive|mix|tone, /mod/reverb1/mix|room|damp, \
    /mod/delay1/time|feedback|mix|lowcut|highcut, /mod/lfo1|lfo2/rate|depth, \
    /seq/add|remove|clear|start|stop|bpm|swing|gate_length, /seq/update/pattern|notes, \
    /engine/start|stop|freq|gain, and for voice1 /mod/sine1/freq, /mod/filter1/freq|q, \
    /mod/adsr1/<stage>|freq, /gate/adsr1, /gate/1, /mod/sine/freq|gain, /mod/filter/cutoff|q, \
    /mod/adsr/<stage> (ms), /gate/adsr";
const ONE_NUMBER: &str = "one number";
const WAVEFORM: &str = "one waveform number or name";

/// Waveform names and the numbers of [`VoiceParam::Osc`] they stand for,
/// matched without regard to case. The original numbered its waveforms 0-5;
/// `noise` is white noise.
pub const WAVEFORMS: [(&str, u8); 14] = [
    ("sine", 0),
    ("sin", 0),
    ("saw", 1),
    ("sawtooth", 1),
    ("square", 2),
    ("white", 3),
    ("noise", 3),
    ("white_noise", 3),
    ("pink", 4),
    ("pink_noise", 4),
    ("brown", 5),
    ("brown_noise", 5),
    ("triangle", 6),
    ("tri", 6),
];
const GATE_VALUE: &str = "one number, bool or \"on\"/\"off\"";
const SEQ_ADD_ARGS: &str = "track, voice, pattern, then optionally base_freq, filter_freq, \
    notes (positional or key=value) and gate=fraction";
const TRACK_ARG: &str = "a track name";
const TRACK_AND_PATTERN: &str = "a track name and a pattern";
const TRACK_AND_NOTES: &str = "a track name and notes";
const TRACK_KEYS: &str = "base_freq, filter_freq, notes, gate";

/// The master fade `/engine/start`, `/engine/stop` and `/engine/gain` make,
/// short enough to feel immediate, long enough not to click.
const ENGINE_FADE_SECONDS: f32 = 0.02;

/// Why a message was rejected; the message names the address, what was wrong
/// and what is accepted.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum DialectError {
    #[error("{address}: unknown address (accepted: {ACCEPTED_ADDRESSES})")]
    UnknownAddress { address: String },
    /// Status, schema, pattern, recording and visualisation requests: they
    /// change nothing the engine plays, so the supervisor answers them.
    #[error("{address}: answered by the supervisor, not an engine command")]
    NotForEngine { address: String },
    /// `voice` is the number as given (digits, without leading zeros).
    #[error("{address}: {}", no_such_voice(voice, *.num_voices))]
    NoSuchVoice {
        address: String,
        voice: String,
        num_voices: u8,
    },
    #[error(
        "{address}: waveform \"{value}\" is not known (accepted: a number 0..=6 or {})",
        waveform_names()
    )]
    Waveform { address: String, value: String },
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
    #[error("{address}: {source}")]
    Seq { address: String, source: SeqError },
    #[error("{address}: voice \"{value}\" is not voiceN or a voice number")]
    VoiceName { address: String, value: String },
    #[error("{address}: {what} \"{value}\" is not a number")]
    NotANumber {
        address: String,
        what: &'static str,
        value: String,
    },
    #[error("{address}: unknown track field \"{key}\" (accepted: {TRACK_KEYS})")]
    TrackKey { address: String, key: String },
}

fn no_such_voice(voice: &str, num_voices: u8) -> String {
    if voice == "0" {
        format!("voice 0 does not exist; voices count from 1 (voice1..voice{num_voices})")
    } else {
        format!(
            "voice {voice} is beyond engine.num_voices = {num_voices} (CHRONUS_NUM_VOICES); \
             raise it to use more voices"
        )
    }
}

fn waveform_names() -> String {
    let names: Vec<&str> = WAVEFORMS.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}

/// A number outside its parameter's range, and the value used instead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    /// As sent, in the parameter's unit (the older dialect's milliseconds are seconds here).
    pub sent: f64,
    pub used: f32,
}

/// Translates one OSC message for an engine with `num_voices` voices.
pub fn parse(address: &str, args: &[Arg<'_>], num_voices: u8) -> Result<Command, DialectError> {
    parse_reporting(address, args, num_voices).map(|(command, _)| command)
}

/// As [`parse`], also saying whether a number was clamped into range, so the
/// sender can be told.
pub fn parse_reporting(
    address: &str,
    args: &[Arg<'_>],
    num_voices: u8,
) -> Result<(Command, Option<Clamp>), DialectError> {
    let m = Message {
        address,
        args,
        num_voices,
        clamped: Cell::new(None),
    };
    let command = m.command()?;
    Ok((command, m.clamped.get()))
}

impl Message<'_, '_> {
    fn command(&self) -> Result<Command, DialectError> {
        let (m, address) = (self, self.address);
        if is_supervisors(address) {
            return Err(DialectError::NotForEngine {
                address: address.to_owned(),
            });
        }
        if let Some(control) = Control::from_address(address) {
            return Ok(Command::Set {
                control,
                value: m.clamp(control.bounds(), m.one_number()?),
            });
        }
        let Some(path) = address.strip_prefix('/') else {
            return Err(m.unknown());
        };
        match path.split_once('/') {
            Some(("mod", rest)) => m.module(rest),
            Some(("gate", name)) => Ok(Command::Gate {
                voice: m.gate_target(name)?,
                on: m.gate_value()?,
            }),
            Some(("seq", rest)) => m.sequencer(rest),
            Some(("engine", rest)) => m.engine(rest),
            _ => Err(m.unknown()),
        }
    }
}

/// Requests that only need a reply.
fn is_supervisors(address: &str) -> bool {
    matches!(
        address,
        "/seq/status" | "/engine/status" | "/engine/list" | "/engine/schema"
    ) || ["/engine/record/", "/pattern/", "/viz/"]
        .iter()
        .any(|prefix| address.starts_with(prefix))
}

/// The message being translated.
struct Message<'m, 'a> {
    address: &'m str,
    args: &'m [Arg<'a>],
    num_voices: u8,
    /// The last number clamped into range, if any.
    clamped: Cell<Option<Clamp>>,
}

impl Message<'_, '_> {
    fn unknown(&self) -> DialectError {
        DialectError::UnknownAddress {
            address: self.address.to_owned(),
        }
    }

    fn set(&self, voice: u8, param: VoiceParam, value: f64) -> Command {
        Command::SetVoice {
            voice,
            param,
            value: self.clamp(param.bounds(), value),
        }
    }

    /// `value` clamped into `bounds`, noting it when that changed it.
    fn clamp(&self, bounds: Bounds, value: f64) -> f32 {
        let used = bounds.clamp_f64(value);
        if value < f64::from(bounds.min) || value > f64::from(bounds.max) {
            self.clamped.set(Some(Clamp { sent: value, used }));
        }
        used
    }

    /// `/mod/<module>/<param...>`.
    fn module(&self, rest: &str) -> Result<Command, DialectError> {
        let (module, param) = rest.split_once('/').ok_or_else(|| self.unknown())?;
        let (voice, param, scale) = match (module, param) {
            ("sine1" | "sine" | "adsr1", "freq") => (self.voice1()?, VoiceParam::Freq, 1.0),
            ("sine", "gain") => (self.voice1()?, VoiceParam::Amp, 1.0),
            ("filter1", "freq") | ("filter", "cutoff") => {
                (self.voice1()?, VoiceParam::FilterFreq, 1.0)
            }
            ("filter1" | "filter", "q") => (self.voice1()?, VoiceParam::FilterQ, 1.0),
            ("adsr1", stage) => (
                self.voice1()?,
                stage_param(stage).ok_or_else(|| self.unknown())?,
                1.0,
            ),
            // The older dialect gave envelope times in milliseconds.
            ("adsr", stage) => {
                let param = stage_param(stage).ok_or_else(|| self.unknown())?;
                let scale = if param == VoiceParam::Sustain {
                    1.0
                } else {
                    0.001
                };
                (self.voice1()?, param, scale)
            }
            (name, suffix) => {
                let param = match suffix {
                    "wave" => VoiceParam::Osc,
                    suffix => VoiceParam::ALL
                        .into_iter()
                        .find(|p| p.suffix() == suffix)
                        .ok_or_else(|| self.unknown())?,
                };
                (self.voice(name)?.ok_or_else(|| self.unknown())?, param, 1.0)
            }
        };
        if param == VoiceParam::Osc {
            return Ok(self.set(voice, param, self.waveform()?));
        }
        Ok(self.set(voice, param, self.one_number()? * scale))
    }

    /// The voice a `/gate/<name>` address opens.
    fn gate_target(&self, name: &str) -> Result<u8, DialectError> {
        match name {
            "adsr1" | "1" | "adsr" => self.voice1(),
            "acid1" => self.voice("voice2")?.ok_or_else(|| self.unknown()),
            name => self.voice(name)?.ok_or_else(|| self.unknown()),
        }
    }

    fn engine(&self, rest: &str) -> Result<Command, DialectError> {
        let fade = |gain: f32| Command::Fade {
            gain,
            seconds: ENGINE_FADE_SECONDS,
        };
        match rest {
            "start" => Ok(fade(MASTER_GAIN.max)),
            "stop" => Ok(fade(MASTER_GAIN.min)),
            "gain" => Ok(fade(self.clamp(MASTER_GAIN, self.one_number()?))),
            "freq" => Ok(self.set(self.voice1()?, VoiceParam::Freq, self.one_number()?)),
            _ => Err(self.unknown()),
        }
    }

    fn sequencer(&self, rest: &str) -> Result<Command, DialectError> {
        match rest {
            // Arguments, if any, are ignored, as the original did.
            "start" => Ok(Command::SeqRun { on: true }),
            "stop" => Ok(Command::SeqRun { on: false }),
            "clear" => Ok(Command::SeqClear),
            "add" => self.seq_add(),
            "remove" => match self.args {
                [track] => Ok(Command::SeqRemove {
                    track: self.track_name(track)?,
                }),
                _ => Err(self.wrong_count(TRACK_ARG)),
            },
            "update/pattern" => match self.args {
                [track, pattern] => Ok(Command::SeqPattern {
                    track: self.track_name(track)?,
                    pattern: self.pattern(pattern)?,
                }),
                _ => Err(self.wrong_count(TRACK_AND_PATTERN)),
            },
            "update/notes" => match self.args {
                [track, notes] => Ok(Command::SeqNotes {
                    track: self.track_name(track)?,
                    notes: self.notes(notes)?,
                }),
                _ => Err(self.wrong_count(TRACK_AND_NOTES)),
            },
            _ => Err(self.unknown()),
        }
    }

    /// `/seq/add track voice pattern [base_freq] [filter_freq] [notes]`, where
    /// the optional fields may also come as `key=value` strings.
    fn seq_add(&self) -> Result<Command, DialectError> {
        let [name, voice, pattern, rest @ ..] = self.args else {
            return Err(self.wrong_count(SEQ_ADD_ARGS));
        };
        let mut track = Track::new(
            self.track_name(name)?,
            self.track_voice(voice)?,
            self.pattern(pattern)?,
        );
        let positional = ["base_freq", "filter_freq", "notes"];
        let mut next_positional = positional.iter();
        for arg in rest {
            let (key, value) = match arg {
                Arg::Str(text) if text.contains('=') => {
                    let (key, value) = text.split_at(text.find('=').unwrap_or_default());
                    (key, Arg::Str(&value[1..]))
                }
                _ => match next_positional.next() {
                    Some(key) => (*key, *arg),
                    None => return Err(self.wrong_count(SEQ_ADD_ARGS)),
                },
            };
            match key {
                "base_freq" => {
                    let hz = self.number_in(&value, "base_freq")?;
                    track.base_freq = Some(self.clamp(VoiceParam::Freq.bounds(), hz));
                }
                "filter_freq" => {
                    let hz = self.number_in(&value, "filter_freq")?;
                    track.filter_freq = Some(self.clamp(VoiceParam::FilterFreq.bounds(), hz));
                }
                "gate" | "gate_frac" => {
                    let fraction = self.number_in(&value, "gate")?;
                    track.gate = Some(self.clamp(GATE_LENGTH, fraction));
                }
                "notes" => track.notes = self.notes(&value)?,
                key => {
                    return Err(DialectError::TrackKey {
                        address: self.address.to_owned(),
                        key: key.to_owned(),
                    });
                }
            }
        }
        Ok(Command::SeqAdd(track))
    }

    fn seq_error(&self, source: SeqError) -> DialectError {
        DialectError::Seq {
            address: self.address.to_owned(),
            source,
        }
    }

    fn track_name(&self, arg: &Arg<'_>) -> Result<TrackName, DialectError> {
        let name = match arg {
            Arg::Str(s) => TrackName::new(s),
            Arg::Int(i) => TrackName::new(&i.to_string()),
            other => return Err(self.wrong_type(TRACK_ARG, other)),
        };
        name.map_err(|e| self.seq_error(e))
    }

    /// A track's voice: `"voiceN"`, `"N"` or the number N (1-based).
    fn track_voice(&self, arg: &Arg<'_>) -> Result<u8, DialectError> {
        const VOICE: &str = "a voice (\"voiceN\" or N)";
        let name = match arg {
            Arg::Str(s) if s.bytes().all(|b| b.is_ascii_digit()) => format!("voice{s}"),
            Arg::Str(s) => (*s).to_owned(),
            Arg::Int(n) => format!("voice{n}"),
            other => return Err(self.wrong_type(VOICE, other)),
        };
        self.voice(&name)?.ok_or_else(|| DialectError::VoiceName {
            address: self.address.to_owned(),
            value: name,
        })
    }

    fn pattern(&self, arg: &Arg<'_>) -> Result<Pattern, DialectError> {
        match arg {
            Arg::Str(s) => Pattern::parse(s).map_err(|e| self.seq_error(e)),
            other => Err(self.wrong_type("a pattern string of X, x and .", other)),
        }
    }

    /// Notes as a string, or one note as a number (an int is a MIDI note, a
    /// float is Hz); clamped into the voice frequency range.
    fn notes(&self, arg: &Arg<'_>) -> Result<Notes, DialectError> {
        let notes = match arg {
            Arg::Str(s) => Notes::parse(s),
            Arg::Int(midi) => Notes::parse(&midi.to_string()),
            Arg::Float(hz) => Notes::new(&[VoiceParam::Freq.bounds().clamp_f64(self.finite(*hz)?)]),
            other => return Err(self.wrong_type("notes", other)),
        };
        notes.map_err(|e| self.seq_error(e))
    }

    /// A number given as a number or as text (older clients sent text).
    fn number_in(&self, arg: &Arg<'_>, what: &'static str) -> Result<f64, DialectError> {
        match arg {
            Arg::Int(i) => Ok(*i as f64),
            Arg::Float(x) => self.finite(*x),
            Arg::Str(s) => match s.trim().parse::<f64>() {
                Ok(x) => self.finite(x),
                Err(_) => Err(DialectError::NotANumber {
                    address: self.address.to_owned(),
                    what,
                    value: (*s).to_owned(),
                }),
            },
            other => Err(self.wrong_type(ONE_NUMBER, other)),
        }
    }

    fn voice1(&self) -> Result<u8, DialectError> {
        self.voice("voice1")?.ok_or_else(|| self.unknown())
    }

    /// `Ok(None)` if `name` is not of the form `voiceN` at all (an unknown
    /// address), an error if it is but voice N does not exist.
    fn voice(&self, name: &str) -> Result<Option<u8>, DialectError> {
        let Some(digits) = name.strip_prefix("voice") else {
            return Ok(None);
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        // Too many digits for a u8 is just another voice that does not exist.
        match digits.parse::<u8>() {
            Ok(n @ 1..) if n <= self.num_voices => Ok(Some(n - 1)),
            _ => {
                let voice = digits.trim_start_matches('0');
                Err(DialectError::NoSuchVoice {
                    address: self.address.to_owned(),
                    voice: if voice.is_empty() { "0" } else { voice }.to_owned(),
                    num_voices: self.num_voices,
                })
            }
        }
    }

    fn one_number(&self) -> Result<f64, DialectError> {
        match self.args {
            [Arg::Int(i)] => Ok(*i as f64),
            [Arg::Float(x)] => self.finite(*x),
            [other] => Err(self.wrong_type(ONE_NUMBER, other)),
            _ => Err(self.wrong_count(ONE_NUMBER)),
        }
    }

    /// A waveform: its number, or its name from [`WAVEFORMS`].
    fn waveform(&self) -> Result<f64, DialectError> {
        match self.args {
            [Arg::Str(name)] => WAVEFORMS
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name))
                .map(|(_, number)| f64::from(*number))
                .ok_or_else(|| DialectError::Waveform {
                    address: self.address.to_owned(),
                    value: (*name).to_owned(),
                }),
            [Arg::Int(i)] => Ok(*i as f64),
            [Arg::Float(x)] => self.finite(*x),
            [other] => Err(self.wrong_type(WAVEFORM, other)),
            _ => Err(self.wrong_count(WAVEFORM)),
        }
    }

    fn gate_value(&self) -> Result<bool, DialectError> {
        match self.args {
            [Arg::Int(i)] => Ok(*i > 0),
            [Arg::Float(x)] => Ok(self.finite(*x)? > 0.0),
            [Arg::Bool(b)] => Ok(*b),
            [Arg::Str(s)] if s.eq_ignore_ascii_case("on") => Ok(true),
            [Arg::Str(s)] if s.eq_ignore_ascii_case("off") => Ok(false),
            [Arg::Str(s)] => Err(DialectError::GateWord {
                address: self.address.to_owned(),
                value: (*s).to_owned(),
            }),
            _ => Err(self.wrong_count(GATE_VALUE)),
        }
    }

    fn finite(&self, value: f64) -> Result<f64, DialectError> {
        if value.is_finite() {
            Ok(value)
        } else {
            Err(DialectError::NotFinite {
                address: self.address.to_owned(),
                value,
            })
        }
    }

    fn wrong_type(&self, expected: &'static str, got: &Arg<'_>) -> DialectError {
        DialectError::WrongType {
            address: self.address.to_owned(),
            expected,
            got: got.kind(),
        }
    }

    fn wrong_count(&self, expected: &'static str) -> DialectError {
        DialectError::WrongCount {
            address: self.address.to_owned(),
            expected,
            count: self.args.len(),
        }
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
