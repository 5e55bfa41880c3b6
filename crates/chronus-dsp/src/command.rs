//! Commands: the only way anything changes what the engine plays, and their
//! wire format between supervisor and workers.

use thiserror::Error;

/// Inclusive bounds that a parameter's values are clamped into.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub min: f32,
    pub max: f32,
}

impl Bounds {
    /// `value` (finite) clamped into the bounds.
    pub fn clamp(self, value: f32) -> f32 {
        value.clamp(self.min, self.max)
    }

    /// Clamps in `f64` before narrowing, so huge inputs cannot become infinite.
    pub fn clamp_f64(self, value: f64) -> f32 {
        value.clamp(f64::from(self.min), f64::from(self.max)) as f32
    }
}

/// Range of the master gain a [`Command::Fade`] heads for.
pub const MASTER_GAIN: Bounds = Bounds { min: 0.0, max: 1.0 };
/// Range of a [`Command::Fade`]'s duration in seconds.
pub const FADE_SECONDS: Bounds = Bounds {
    min: 0.0,
    max: 60.0,
};

/// A per-voice parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoiceParam {
    /// Oscillator frequency in Hz, smoothed over 20 ms (or `SlideTime`).
    Freq,
    /// Linear amplitude, smoothed over 20 ms.
    Amp,
    /// Glide time in seconds for frequency changes; 0 means the 20 ms default.
    SlideTime,
    /// Envelope attack time in seconds.
    Attack,
    /// Envelope decay time in seconds.
    Decay,
    /// Envelope sustain level (0..1).
    Sustain,
    /// Envelope release time in seconds.
    Release,
}

impl VoiceParam {
    pub const ALL: [VoiceParam; 7] = [
        VoiceParam::Freq,
        VoiceParam::Amp,
        VoiceParam::SlideTime,
        VoiceParam::Attack,
        VoiceParam::Decay,
        VoiceParam::Sustain,
        VoiceParam::Release,
    ];

    /// The range values are clamped into.
    pub const fn bounds(self) -> Bounds {
        const ENVELOPE_SECONDS: Bounds = Bounds {
            min: 0.0,
            max: 10.0,
        };
        match self {
            VoiceParam::Freq => Bounds {
                min: 20.0,
                max: 5000.0,
            },
            VoiceParam::Amp | VoiceParam::Sustain => Bounds { min: 0.0, max: 1.0 },
            VoiceParam::SlideTime => Bounds { min: 0.0, max: 1.5 },
            VoiceParam::Attack | VoiceParam::Decay | VoiceParam::Release => ENVELOPE_SECONDS,
        }
    }

    /// Wire code: the position in [`VoiceParam::ALL`].
    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<VoiceParam> {
        VoiceParam::ALL.get(usize::from(code)).copied()
    }
}

/// Something that changes the engine's parameters, applied at a frame boundary.
///
/// Voice indices are 0-based. Values may be anything finite: appliers clamp them
/// into range, ignore commands carrying NaN/Inf and commands for voices they do
/// not have.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Sets a voice parameter's target.
    SetVoice {
        voice: u8,
        param: VoiceParam,
        value: f32,
    },
    /// Opens (attack) or closes (release) a voice's envelope. Opening an open
    /// gate retriggers the attack from the current level; closing a closed one
    /// does nothing.
    Gate { voice: u8, on: bool },
    /// Ramps the master gain linearly to `gain` over `seconds` (used for a
    /// click-free shutdown).
    Fade { gain: f32, seconds: f32 },
}

/// Version of the wire format, the first byte of every encoded command.
const FORMAT_VERSION: u8 = 1;
const TAG_SET_VOICE: u8 = 0;
const TAG_GATE: u8 = 1;
const TAG_FADE: u8 = 2;
const HEADER_LEN: usize = 2;
const SET_VOICE_BODY: usize = 6;
const GATE_BODY: usize = 2;
const FADE_BODY: usize = 8;
const _: () = assert!(HEADER_LEN + FADE_BODY <= crate::MAX_ENCODED_COMMAND);

/// Why bytes were not a valid encoded [`Command`].
#[derive(Clone, Debug, PartialEq, Error)]
pub enum CommandDecodeError {
    #[error("command is {len} bytes, shorter than its {HEADER_LEN}-byte header (version, tag)")]
    Truncated { len: usize },
    #[error(
        "command format version {0} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    Version(u8),
    #[error("unknown command tag {0} (known tags: 0 set-voice, 1 gate, 2 fade)")]
    UnknownTag(u8),
    #[error("{kind} command is {len} bytes, expected exactly {expected}")]
    Length {
        kind: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("unknown voice parameter code {0} (known codes: 0..={max})", max = VoiceParam::ALL.len() - 1)]
    UnknownParam(u8),
    #[error("gate byte {0} is invalid (expected 0 for off or 1 for on)")]
    GateByte(u8),
    #[error("{field} is {value}; only finite numbers are accepted")]
    NotFinite { field: &'static str, value: f32 },
}

impl Command {
    /// Appends the compact binary form: version, tag, then the fields
    /// (little-endian floats). At most [`crate::MAX_ENCODED_COMMAND`] bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        match *self {
            Command::SetVoice {
                voice,
                param,
                value,
            } => {
                out.extend([TAG_SET_VOICE, voice, param.code()]);
                out.extend(value.to_le_bytes());
            }
            Command::Gate { voice, on } => out.extend([TAG_GATE, voice, u8::from(on)]),
            Command::Fade { gain, seconds } => {
                out.push(TAG_FADE);
                out.extend(gain.to_le_bytes());
                out.extend(seconds.to_le_bytes());
            }
        }
    }

    /// Parses one command that [`Command::encode`] produced, all of `bytes` and
    /// nothing else. The bytes come from another process, so everything is
    /// checked and nothing panics.
    pub fn decode(bytes: &[u8]) -> Result<Command, CommandDecodeError> {
        let [version, tag, body @ ..] = bytes else {
            return Err(CommandDecodeError::Truncated { len: bytes.len() });
        };
        if *version != FORMAT_VERSION {
            return Err(CommandDecodeError::Version(*version));
        }
        let length = |kind, expected| CommandDecodeError::Length {
            kind,
            len: bytes.len(),
            expected: HEADER_LEN + expected,
        };
        match (*tag, body) {
            (TAG_SET_VOICE, &[voice, param, v0, v1, v2, v3]) => Ok(Command::SetVoice {
                voice,
                param: VoiceParam::from_code(param)
                    .ok_or(CommandDecodeError::UnknownParam(param))?,
                value: finite_f32("set-voice value", [v0, v1, v2, v3])?,
            }),
            (TAG_GATE, &[voice, on]) => Ok(Command::Gate {
                voice,
                on: match on {
                    0 => false,
                    1 => true,
                    other => return Err(CommandDecodeError::GateByte(other)),
                },
            }),
            (TAG_FADE, &[g0, g1, g2, g3, s0, s1, s2, s3]) => Ok(Command::Fade {
                gain: finite_f32("fade gain", [g0, g1, g2, g3])?,
                seconds: finite_f32("fade seconds", [s0, s1, s2, s3])?,
            }),
            (TAG_SET_VOICE, _) => Err(length("set-voice", SET_VOICE_BODY)),
            (TAG_GATE, _) => Err(length("gate", GATE_BODY)),
            (TAG_FADE, _) => Err(length("fade", FADE_BODY)),
            (other, _) => Err(CommandDecodeError::UnknownTag(other)),
        }
    }

    /// The command with every value clamped into its range, or `None` if a value
    /// is NaN or infinite. [`crate::Params::apply`] and [`crate::Engine::apply`]
    /// apply exactly this.
    pub fn normalized(&self) -> Option<Command> {
        match *self {
            Command::SetVoice {
                voice,
                param,
                value,
            } => value.is_finite().then(|| Command::SetVoice {
                voice,
                param,
                value: param.bounds().clamp(value),
            }),
            Command::Gate { .. } => Some(self.clone()),
            Command::Fade { gain, seconds } => {
                (gain.is_finite() && seconds.is_finite()).then(|| Command::Fade {
                    gain: MASTER_GAIN.clamp(gain),
                    seconds: FADE_SECONDS.clamp(seconds),
                })
            }
        }
    }
}

fn finite_f32(field: &'static str, bytes: [u8; 4]) -> Result<f32, CommandDecodeError> {
    let value = f32::from_le_bytes(bytes);
    if value.is_finite() {
        Ok(value)
    } else {
        Err(CommandDecodeError::NotFinite { field, value })
    }
}
