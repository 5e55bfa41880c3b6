//! Commands: the only way anything changes what the engine plays, and their
//! wire format between supervisor and workers.

use thiserror::Error;

use crate::seq::{
    MAX_NOTES, MAX_STEPS, MAX_TRACK_NAME, Notes, Pattern, SeqError, Track, TrackName,
};

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

const fn bounds(min: f32, max: f32) -> Bounds {
    Bounds { min, max }
}

/// Range of the master gain a [`Command::Fade`] heads for.
pub const MASTER_GAIN: Bounds = bounds(0.0, 1.0);
/// Range of a [`Command::Fade`]'s duration in seconds.
pub const FADE_SECONDS: Bounds = bounds(0.0, 60.0);
/// Range of the level speech plays at.
pub const SPEECH_GAIN: Bounds = bounds(0.0, 2.0);
/// Range of the music's level while speech plays (1 is no ducking).
pub const SPEECH_DUCK: Bounds = bounds(0.0, 1.0);
/// Range of a track's gate length, as a fraction of a step.
pub const GATE_LENGTH: Bounds = bounds(0.01, 1.0);

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
    /// Oscillator waveform, a whole number: 0 sine, 1 saw, 2 square, 3 white,
    /// 4 pink, 5 brown noise, 6 triangle. Switching crossfades over 10 ms.
    Osc,
    /// Low-pass filter cutoff in Hz, smoothed over 20 ms.
    FilterFreq,
    /// Low-pass filter Q (resonance), smoothed over 20 ms.
    FilterQ,
    /// Level sent to the reverb (0..1), smoothed over 20 ms.
    SendReverb,
    /// Level sent to the delay (0..1), smoothed over 20 ms.
    SendDelay,
}

impl VoiceParam {
    pub const ALL: [VoiceParam; 12] = [
        VoiceParam::Freq,
        VoiceParam::Amp,
        VoiceParam::SlideTime,
        VoiceParam::Attack,
        VoiceParam::Decay,
        VoiceParam::Sustain,
        VoiceParam::Release,
        VoiceParam::Osc,
        VoiceParam::FilterFreq,
        VoiceParam::FilterQ,
        VoiceParam::SendReverb,
        VoiceParam::SendDelay,
    ];

    /// The range values are clamped into.
    pub const fn bounds(self) -> Bounds {
        const ENVELOPE_SECONDS: Bounds = bounds(0.0, 10.0);
        match self {
            VoiceParam::Freq => bounds(20.0, 5000.0),
            VoiceParam::Amp
            | VoiceParam::Sustain
            | VoiceParam::SendReverb
            | VoiceParam::SendDelay => bounds(0.0, 1.0),
            VoiceParam::SlideTime => bounds(0.0, 1.5),
            VoiceParam::Attack | VoiceParam::Decay | VoiceParam::Release => ENVELOPE_SECONDS,
            VoiceParam::Osc => bounds(0.0, 6.0),
            VoiceParam::FilterFreq => bounds(50.0, 8000.0),
            VoiceParam::FilterQ => bounds(0.5, 10.0),
        }
    }

    /// The address after `/mod/voiceN/`.
    pub const fn suffix(self) -> &'static str {
        match self {
            VoiceParam::Freq => "freq",
            VoiceParam::Amp => "amp",
            VoiceParam::SlideTime => "slide_time",
            VoiceParam::Attack => "adsr/attack",
            VoiceParam::Decay => "adsr/decay",
            VoiceParam::Sustain => "adsr/sustain",
            VoiceParam::Release => "adsr/release",
            VoiceParam::Osc => "osc/type",
            VoiceParam::FilterFreq => "filter/freq",
            VoiceParam::FilterQ => "filter/q",
            VoiceParam::SendReverb => "send/reverb",
            VoiceParam::SendDelay => "send/delay",
        }
    }

    pub const fn unit(self) -> &'static str {
        match self {
            VoiceParam::Freq | VoiceParam::FilterFreq => "Hz",
            VoiceParam::SlideTime
            | VoiceParam::Attack
            | VoiceParam::Decay
            | VoiceParam::Release => "s",
            VoiceParam::Osc => "0 sine, 1 saw, 2 square, 3 white, 4 pink, 5 brown, 6 triangle",
            VoiceParam::Amp
            | VoiceParam::Sustain
            | VoiceParam::FilterQ
            | VoiceParam::SendReverb
            | VoiceParam::SendDelay => "",
        }
    }

    /// `value` (finite) made valid: clamped, and whole for [`VoiceParam::Osc`].
    fn normalize(self, value: f32) -> f32 {
        let value = self.bounds().clamp(value);
        match self {
            VoiceParam::Osc => value.round(),
            _ => value,
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

/// A parameter of a shared module (the acid path on voice2, the master
/// effects, the LFOs) or of the sequencer's timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Control {
    AcidCutoff,
    AcidRes,
    AcidEnvAmount,
    AcidDecay,
    AcidDrive,
    AcidMix,
    AcidVolComp,
    AcidAccent,
    AcidCutoffOffset,
    AcidResAccentBoost,
    AcidAccentDecay,
    DistDrive,
    DistMix,
    DistTone,
    ReverbMix,
    ReverbRoom,
    ReverbDamp,
    DelayTime,
    DelayFeedback,
    DelayMix,
    DelayLowcut,
    DelayHighcut,
    Lfo1Rate,
    Lfo1Depth,
    Lfo2Rate,
    Lfo2Depth,
    SeqBpm,
    SeqSwing,
    SeqGateLength,
}

/// What the schema says about a [`Control`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ControlSpec {
    pub address: &'static str,
    pub bounds: Bounds,
    pub default: f32,
    pub unit: &'static str,
    pub doc: &'static str,
}

const fn spec(
    address: &'static str,
    (min, max): (f32, f32),
    default: f32,
    unit: &'static str,
    doc: &'static str,
) -> ControlSpec {
    ControlSpec {
        address,
        bounds: bounds(min, max),
        default,
        unit,
        doc,
    }
}

impl Control {
    pub const ALL: [Control; 29] = [
        Control::AcidCutoff,
        Control::AcidRes,
        Control::AcidEnvAmount,
        Control::AcidDecay,
        Control::AcidDrive,
        Control::AcidMix,
        Control::AcidVolComp,
        Control::AcidAccent,
        Control::AcidCutoffOffset,
        Control::AcidResAccentBoost,
        Control::AcidAccentDecay,
        Control::DistDrive,
        Control::DistMix,
        Control::DistTone,
        Control::ReverbMix,
        Control::ReverbRoom,
        Control::ReverbDamp,
        Control::DelayTime,
        Control::DelayFeedback,
        Control::DelayMix,
        Control::DelayLowcut,
        Control::DelayHighcut,
        Control::Lfo1Rate,
        Control::Lfo1Depth,
        Control::Lfo2Rate,
        Control::Lfo2Depth,
        Control::SeqBpm,
        Control::SeqSwing,
        Control::SeqGateLength,
    ];

    /// Address, range, default, unit and meaning: the one table the dialect,
    /// the defaults and the schema all read.
    pub const fn spec(self) -> ControlSpec {
        match self {
            Control::AcidCutoff => spec(
                "/mod/acid1/cutoff",
                (80.0, 5000.0),
                1500.0,
                "Hz",
                "ladder cutoff before the envelope",
            ),
            Control::AcidRes => spec(
                "/mod/acid1/res",
                (0.0, 0.98),
                0.45,
                "",
                "resonance, scaled down below 400 Hz",
            ),
            Control::AcidEnvAmount => spec(
                "/mod/acid1/env_amount",
                (0.0, 5000.0),
                2500.0,
                "Hz",
                "how far the envelope opens the cutoff",
            ),
            Control::AcidDecay => spec(
                "/mod/acid1/decay",
                (0.02, 1.0),
                0.25,
                "s",
                "filter envelope decay to -40 dB",
            ),
            Control::AcidDrive => spec(
                "/mod/acid1/drive",
                (0.0, 1.0),
                0.2,
                "",
                "saturation before the ladder",
            ),
            Control::AcidMix => spec(
                "/mod/acid1/mix",
                (0.0, 1.0),
                1.0,
                "",
                "0 leaves voice2 as it is, 1 is fully acid",
            ),
            Control::AcidVolComp => spec(
                "/mod/acid1/vol_comp",
                (0.0, 1.0),
                0.5,
                "",
                "makes up the level resonance takes away",
            ),
            Control::AcidAccent => spec(
                "/mod/acid1/accent",
                (0.0, 1.0),
                0.0,
                "",
                "how much sequencer accents (X) play: the accent envelope, \
                 cutoff_offset, res_accent_boost and extra level",
            ),
            Control::AcidCutoffOffset => spec(
                "/mod/acid1/cutoff_offset",
                (0.0, 1000.0),
                300.0,
                "Hz",
                "cutoff raised for an accented note, times the accent (read when a note starts)",
            ),
            Control::AcidResAccentBoost => spec(
                "/mod/acid1/res_accent_boost",
                (0.0, 0.4),
                0.2,
                "",
                "resonance added for an accented note, times the accent (read when a note starts)",
            ),
            Control::AcidAccentDecay => spec(
                "/mod/acid1/accent_decay",
                (0.02, 0.15),
                0.05,
                "s",
                "decay to -40 dB of the accent envelope, which opens the cutoff by \
                 env_amount times the accent",
            ),
            Control::DistDrive => spec(
                "/mod/dist1/drive",
                (0.0, 1.0),
                0.0,
                "",
                "master distortion drive",
            ),
            Control::DistMix => spec(
                "/mod/dist1/mix",
                (0.0, 1.0),
                0.0,
                "",
                "dry/wet of the master distortion",
            ),
            Control::DistTone => spec(
                "/mod/dist1/tone",
                (0.0, 1.0),
                0.5,
                "",
                "0 dark, 0.5 neutral, 1 bright",
            ),
            Control::ReverbMix => spec(
                "/mod/reverb1/mix",
                (0.0, 1.0),
                0.3,
                "",
                "return level of the reverb (fed by send/reverb)",
            ),
            Control::ReverbRoom => spec("/mod/reverb1/room", (0.0, 1.0), 0.5, "", "room size"),
            Control::ReverbDamp => spec(
                "/mod/reverb1/damp",
                (0.0, 1.0),
                0.5,
                "",
                "high-frequency damping",
            ),
            Control::DelayTime => spec(
                "/mod/delay1/time",
                (0.001, 1.0),
                0.25,
                "s",
                "delay time, glides over 20 ms",
            ),
            Control::DelayFeedback => spec(
                "/mod/delay1/feedback",
                (0.0, 0.95),
                0.4,
                "",
                "level fed back through the loop filters",
            ),
            Control::DelayMix => spec(
                "/mod/delay1/mix",
                (0.0, 1.0),
                0.3,
                "",
                "return level of the delay (fed by send/delay)",
            ),
            Control::DelayLowcut => spec(
                "/mod/delay1/lowcut",
                (20.0, 1000.0),
                100.0,
                "Hz",
                "high-pass inside the feedback loop",
            ),
            Control::DelayHighcut => spec(
                "/mod/delay1/highcut",
                (1000.0, 10000.0),
                5000.0,
                "Hz",
                "low-pass inside the feedback loop",
            ),
            Control::Lfo1Rate => spec(
                "/mod/lfo1/rate",
                (0.01, 10.0),
                0.25,
                "Hz",
                "rate of the sine LFO on voice2's filter cutoff",
            ),
            Control::Lfo1Depth => spec(
                "/mod/lfo1/depth",
                (0.0, 1.0),
                0.0,
                "",
                "1 sweeps voice2's cutoff two octaves either way",
            ),
            Control::Lfo2Rate => spec(
                "/mod/lfo2/rate",
                (0.01, 10.0),
                4.0,
                "Hz",
                "rate of the sine LFO on voice3's amplitude",
            ),
            Control::Lfo2Depth => spec(
                "/mod/lfo2/depth",
                (0.0, 1.0),
                0.0,
                "",
                "1 swings voice3's amplitude between silence and full",
            ),
            Control::SeqBpm => spec(
                "/seq/bpm",
                (30.0, 300.0),
                120.0,
                "bpm",
                "sequencer tempo (steps are 16ths), in thousandths",
            ),
            Control::SeqSwing => spec(
                "/seq/swing",
                (0.0, 0.6),
                0.0,
                "",
                "odd 16ths start swing/2 of a step late; the tempo is unchanged",
            ),
            Control::SeqGateLength => spec(
                "/seq/gate_length",
                (GATE_LENGTH.min, GATE_LENGTH.max),
                0.5,
                "steps",
                "how long each hit holds the gate, unless its track says otherwise",
            ),
        }
    }

    pub const fn bounds(self) -> Bounds {
        self.spec().bounds
    }

    pub const fn default_value(self) -> f32 {
        self.spec().default
    }

    pub fn from_address(address: &str) -> Option<Control> {
        Control::ALL
            .into_iter()
            .find(|c| c.spec().address == address)
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<Control> {
        Control::ALL.get(usize::from(code)).copied()
    }
}

/// Something that changes the engine's parameters, applied at a frame boundary.
///
/// Voice indices are 0-based. Values may be anything finite: appliers clamp them
/// into range, ignore commands carrying NaN/Inf and commands for voices they do
/// not have. Tracks travel by value (no heap), so that applying never allocates.
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
    /// does nothing. Gating voice2 also triggers the acid envelope.
    Gate { voice: u8, on: bool },
    /// Ramps the master gain linearly to `gain` over `seconds` (used for a
    /// click-free shutdown).
    Fade { gain: f32, seconds: f32 },
    /// Sets a shared module's or the sequencer's parameter.
    Set { control: Control, value: f32 },
    /// Adds a sequencer track, or replaces the one with the same name.
    SeqAdd(Track),
    /// Removes a track (no effect if there is none of that name).
    SeqRemove { track: TrackName },
    /// Removes every track.
    SeqClear,
    /// Starts the sequencer, or stops it and closes every voice's gate.
    SeqRun { on: bool },
    /// Replaces a track's pattern.
    SeqPattern { track: TrackName, pattern: Pattern },
    /// Replaces a track's notes (empty: back to its base frequency).
    SeqNotes { track: TrackName, notes: Notes },
    /// Plays `frames` mono samples of synthesized speech from the shared speech
    /// area, starting at sample `offset`, at `gain`, with the music ducked to
    /// `duck` while it plays. Replaces any speech still playing.
    Speak {
        offset: u32,
        frames: u32,
        gain: f32,
        duck: f32,
    },
    /// Fades out the speech playing now, if any.
    SpeakStop,
}

/// Version of the wire format, the first byte of every encoded command.
const FORMAT_VERSION: u8 = 1;
const TAG_SET_VOICE: u8 = 0;
const TAG_GATE: u8 = 1;
const TAG_FADE: u8 = 2;
const TAG_SET: u8 = 3;
const TAG_SEQ_ADD: u8 = 4;
const TAG_SEQ_REMOVE: u8 = 5;
const TAG_SEQ_CLEAR: u8 = 6;
const TAG_SEQ_RUN: u8 = 7;
const TAG_SEQ_PATTERN: u8 = 8;
const TAG_SEQ_NOTES: u8 = 9;
const TAG_SPEAK: u8 = 10;
const TAG_SPEAK_STOP: u8 = 11;
const HEADER_LEN: usize = 2;
const SET_VOICE_BODY: usize = 6;
const GATE_BODY: usize = 2;
const FADE_BODY: usize = 8;
const SET_BODY: usize = 5;
const SEQ_RUN_BODY: usize = 1;
const SPEAK_BODY: usize = 16;
/// The largest command: a track with the longest name, pattern and note list.
const SEQ_ADD_MAX: usize =
    HEADER_LEN + (1 + MAX_TRACK_NAME) + 1 + (1 + MAX_STEPS) + 1 + 3 * 4 + (1 + 4 * MAX_NOTES);
const _: () = assert!(SEQ_ADD_MAX <= crate::MAX_ENCODED_COMMAND);

/// Which optional track fields follow, one bit each.
const HAS_BASE_FREQ: u8 = 1;
const HAS_FILTER_FREQ: u8 = 2;
const HAS_GATE: u8 = 4;

/// Why bytes were not a valid encoded [`Command`].
#[derive(Clone, Debug, PartialEq, Error)]
pub enum CommandDecodeError {
    #[error("command is {len} bytes, shorter than its {HEADER_LEN}-byte header (version, tag)")]
    Truncated { len: usize },
    #[error(
        "command format version {0} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    Version(u8),
    #[error(
        "unknown command tag {0} (known tags: 0 set-voice, 1 gate, 2 fade, 3 set, 4 seq-add, \
         5 seq-remove, 6 seq-clear, 7 seq-run, 8 seq-pattern, 9 seq-notes, 10 speak, 11 speak-stop)"
    )]
    UnknownTag(u8),
    #[error("{kind} command is {len} bytes, expected exactly {expected}")]
    Length {
        kind: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{kind} command ends early or has {trailing} bytes after its last field")]
    Shape { kind: &'static str, trailing: usize },
    #[error("unknown voice parameter code {0} (known codes: 0..={max})", max = VoiceParam::ALL.len() - 1)]
    UnknownParam(u8),
    #[error("unknown control code {0} (known codes: 0..={max})", max = Control::ALL.len() - 1)]
    UnknownControl(u8),
    #[error("gate byte {0} is invalid (expected 0 for off or 1 for on)")]
    GateByte(u8),
    #[error("seq-run byte {0} is invalid (expected 0 for stop or 1 for start)")]
    RunByte(u8),
    #[error("track field flags {0:#04x} are invalid (known: 1 base freq, 2 filter freq, 4 gate)")]
    Flags(u8),
    #[error("{field} is {value}; only finite numbers are accepted")]
    NotFinite { field: &'static str, value: f32 },
    #[error("track name is not UTF-8")]
    NameUtf8,
    #[error(transparent)]
    Seq(#[from] SeqError),
}

impl Command {
    /// Appends the compact binary form: version, tag, then the fields
    /// (little-endian floats; names, patterns and notes length-prefixed). At
    /// most [`crate::MAX_ENCODED_COMMAND`] bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        match self {
            Command::SetVoice {
                voice,
                param,
                value,
            } => {
                out.extend([TAG_SET_VOICE, *voice, param.code()]);
                out.extend(value.to_le_bytes());
            }
            Command::Gate { voice, on } => out.extend([TAG_GATE, *voice, u8::from(*on)]),
            Command::Fade { gain, seconds } => {
                out.push(TAG_FADE);
                out.extend(gain.to_le_bytes());
                out.extend(seconds.to_le_bytes());
            }
            Command::Set { control, value } => {
                out.extend([TAG_SET, control.code()]);
                out.extend(value.to_le_bytes());
            }
            Command::SeqAdd(track) => {
                out.push(TAG_SEQ_ADD);
                put_name(out, &track.name);
                out.push(track.voice);
                put_pattern(out, &track.pattern);
                let fields = [
                    (HAS_BASE_FREQ, track.base_freq),
                    (HAS_FILTER_FREQ, track.filter_freq),
                    (HAS_GATE, track.gate),
                ];
                out.push(fields.iter().filter(|f| f.1.is_some()).map(|f| f.0).sum());
                for value in fields.iter().filter_map(|f| f.1) {
                    out.extend(value.to_le_bytes());
                }
                put_notes(out, &track.notes);
            }
            Command::SeqRemove { track } => {
                out.push(TAG_SEQ_REMOVE);
                put_name(out, track);
            }
            Command::SeqClear => out.push(TAG_SEQ_CLEAR),
            Command::SeqRun { on } => out.extend([TAG_SEQ_RUN, u8::from(*on)]),
            Command::SeqPattern { track, pattern } => {
                out.push(TAG_SEQ_PATTERN);
                put_name(out, track);
                put_pattern(out, pattern);
            }
            Command::SeqNotes { track, notes } => {
                out.push(TAG_SEQ_NOTES);
                put_name(out, track);
                put_notes(out, notes);
            }
            Command::Speak {
                offset,
                frames,
                gain,
                duck,
            } => {
                out.push(TAG_SPEAK);
                out.extend(offset.to_le_bytes());
                out.extend(frames.to_le_bytes());
                out.extend(gain.to_le_bytes());
                out.extend(duck.to_le_bytes());
            }
            Command::SpeakStop => out.push(TAG_SPEAK_STOP),
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
                on: flag(on).ok_or(CommandDecodeError::GateByte(on))?,
            }),
            (TAG_FADE, &[g0, g1, g2, g3, s0, s1, s2, s3]) => Ok(Command::Fade {
                gain: finite_f32("fade gain", [g0, g1, g2, g3])?,
                seconds: finite_f32("fade seconds", [s0, s1, s2, s3])?,
            }),
            (TAG_SET, &[control, v0, v1, v2, v3]) => Ok(Command::Set {
                control: Control::from_code(control)
                    .ok_or(CommandDecodeError::UnknownControl(control))?,
                value: finite_f32("set value", [v0, v1, v2, v3])?,
            }),
            (TAG_SEQ_CLEAR, []) => Ok(Command::SeqClear),
            (
                TAG_SPEAK,
                &[
                    o0,
                    o1,
                    o2,
                    o3,
                    f0,
                    f1,
                    f2,
                    f3,
                    g0,
                    g1,
                    g2,
                    g3,
                    d0,
                    d1,
                    d2,
                    d3,
                ],
            ) => Ok(Command::Speak {
                offset: u32::from_le_bytes([o0, o1, o2, o3]),
                frames: u32::from_le_bytes([f0, f1, f2, f3]),
                gain: finite_f32("speak gain", [g0, g1, g2, g3])?,
                duck: finite_f32("speak duck", [d0, d1, d2, d3])?,
            }),
            (TAG_SPEAK_STOP, []) => Ok(Command::SpeakStop),
            (TAG_SEQ_RUN, &[on]) => Ok(Command::SeqRun {
                on: flag(on).ok_or(CommandDecodeError::RunByte(on))?,
            }),
            (TAG_SET_VOICE, _) => Err(length("set-voice", SET_VOICE_BODY)),
            (TAG_GATE, _) => Err(length("gate", GATE_BODY)),
            (TAG_FADE, _) => Err(length("fade", FADE_BODY)),
            (TAG_SET, _) => Err(length("set", SET_BODY)),
            (TAG_SEQ_CLEAR, _) => Err(length("seq-clear", 0)),
            (TAG_SPEAK, _) => Err(length("speak", SPEAK_BODY)),
            (TAG_SPEAK_STOP, _) => Err(length("speak-stop", 0)),
            (TAG_SEQ_RUN, _) => Err(length("seq-run", SEQ_RUN_BODY)),
            (TAG_SEQ_ADD, body) => Reader::new("seq-add", body).finish(decode_track),
            (TAG_SEQ_REMOVE, body) => Reader::new("seq-remove", body)
                .finish(|r| Ok(Command::SeqRemove { track: r.name()? })),
            (TAG_SEQ_PATTERN, body) => Reader::new("seq-pattern", body).finish(|r| {
                Ok(Command::SeqPattern {
                    track: r.name()?,
                    pattern: r.pattern()?,
                })
            }),
            (TAG_SEQ_NOTES, body) => Reader::new("seq-notes", body).finish(|r| {
                Ok(Command::SeqNotes {
                    track: r.name()?,
                    notes: r.notes()?,
                })
            }),
            (other, _) => Err(CommandDecodeError::UnknownTag(other)),
        }
    }

    /// The command with every value made valid (clamped into its range, the
    /// waveform rounded to a whole number), or `None` if a value is NaN or
    /// infinite. [`crate::Params::apply`] and [`crate::Engine::apply`] apply
    /// exactly this.
    pub fn normalized(&self) -> Option<Command> {
        match *self {
            Command::SetVoice {
                voice,
                param,
                value,
            } => value.is_finite().then(|| Command::SetVoice {
                voice,
                param,
                value: param.normalize(value),
            }),
            Command::Fade { gain, seconds } => {
                (gain.is_finite() && seconds.is_finite()).then(|| Command::Fade {
                    gain: MASTER_GAIN.clamp(gain),
                    seconds: FADE_SECONDS.clamp(seconds),
                })
            }
            Command::Set { control, value } => value.is_finite().then(|| Command::Set {
                control,
                value: control.bounds().clamp(value),
            }),
            Command::SeqAdd(track) => normalized_track(track).map(Command::SeqAdd),
            Command::Speak {
                offset,
                frames,
                gain,
                duck,
            } => (gain.is_finite() && duck.is_finite()).then(|| Command::Speak {
                offset,
                frames,
                gain: SPEECH_GAIN.clamp(gain),
                duck: SPEECH_DUCK.clamp(duck),
            }),
            Command::SeqNotes { track, notes } => notes
                .clamped()
                .map(|notes| Command::SeqNotes { track, notes }),
            Command::Gate { .. }
            | Command::SeqRemove { .. }
            | Command::SeqClear
            | Command::SeqRun { .. }
            | Command::SeqPattern { .. }
            | Command::SpeakStop => Some(self.clone()),
        }
    }
}

fn normalized_track(mut track: Track) -> Option<Track> {
    let clamp = |value: Option<f32>, bounds: Bounds| match value {
        Some(v) if !v.is_finite() => Err(()),
        v => Ok(v.map(|v| bounds.clamp(v))),
    };
    track.base_freq = clamp(track.base_freq, VoiceParam::Freq.bounds()).ok()?;
    track.filter_freq = clamp(track.filter_freq, VoiceParam::FilterFreq.bounds()).ok()?;
    track.gate = clamp(track.gate, GATE_LENGTH).ok()?;
    track.notes = track.notes.clamped()?;
    Some(track)
}

fn decode_track(r: &mut Reader<'_>) -> Result<Command, CommandDecodeError> {
    let name = r.name()?;
    let voice = r.byte()?;
    let pattern = r.pattern()?;
    let flags = r.byte()?;
    if flags & !(HAS_BASE_FREQ | HAS_FILTER_FREQ | HAS_GATE) != 0 {
        return Err(CommandDecodeError::Flags(flags));
    }
    let mut optional = |bit, field| -> Result<Option<f32>, CommandDecodeError> {
        if flags & bit == 0 {
            Ok(None)
        } else {
            r.f32(field).map(Some)
        }
    };
    let base_freq = optional(HAS_BASE_FREQ, "track base freq")?;
    let filter_freq = optional(HAS_FILTER_FREQ, "track filter freq")?;
    let gate = optional(HAS_GATE, "track gate")?;
    Ok(Command::SeqAdd(Track {
        name,
        voice,
        pattern,
        base_freq,
        filter_freq,
        gate,
        notes: r.notes()?,
    }))
}

fn put_name(out: &mut Vec<u8>, name: &TrackName) {
    out.push(name.as_str().len() as u8);
    out.extend(name.as_str().as_bytes());
}

fn put_pattern(out: &mut Vec<u8>, pattern: &Pattern) {
    out.push(pattern.steps().len() as u8);
    out.extend(pattern.steps().iter().map(|s| s.as_char() as u8));
}

fn put_notes(out: &mut Vec<u8>, notes: &Notes) {
    out.push(notes.as_slice().len() as u8);
    for hz in notes.as_slice() {
        out.extend(hz.to_le_bytes());
    }
}

/// Reads the variable-length commands field by field, rejecting short bodies
/// and trailing bytes.
struct Reader<'a> {
    kind: &'static str,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(kind: &'static str, bytes: &'a [u8]) -> Reader<'a> {
        Reader { kind, bytes }
    }

    fn finish(
        mut self,
        read: impl FnOnce(&mut Reader<'a>) -> Result<Command, CommandDecodeError>,
    ) -> Result<Command, CommandDecodeError> {
        let cmd = read(&mut self)?;
        match self.bytes.len() {
            0 => Ok(cmd),
            trailing => Err(self.shape(trailing)),
        }
    }

    fn shape(&self, trailing: usize) -> CommandDecodeError {
        CommandDecodeError::Shape {
            kind: self.kind,
            trailing,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CommandDecodeError> {
        if self.bytes.len() < n {
            return Err(self.shape(0));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, CommandDecodeError> {
        Ok(self.take(1)?[0])
    }

    fn f32(&mut self, field: &'static str) -> Result<f32, CommandDecodeError> {
        let b = self.take(4)?;
        finite_f32(field, [b[0], b[1], b[2], b[3]])
    }

    fn counted(&mut self) -> Result<&'a [u8], CommandDecodeError> {
        let n = self.byte()?;
        self.take(usize::from(n))
    }

    fn name(&mut self) -> Result<TrackName, CommandDecodeError> {
        let text =
            std::str::from_utf8(self.counted()?).map_err(|_| CommandDecodeError::NameUtf8)?;
        Ok(TrackName::new(text)?)
    }

    fn pattern(&mut self) -> Result<Pattern, CommandDecodeError> {
        // Non-ASCII bytes become U+FFFD, which the pattern parser rejects.
        let text = String::from_utf8_lossy(self.counted()?);
        Ok(Pattern::parse(&text)?)
    }

    fn notes(&mut self) -> Result<Notes, CommandDecodeError> {
        let n = usize::from(self.byte()?);
        if n > MAX_NOTES {
            return Err(SeqError::TooManyNotes(n).into());
        }
        let mut hz = [0.0; MAX_NOTES];
        for slot in &mut hz[..n] {
            *slot = self.f32("note")?;
        }
        Ok(Notes::new(&hz[..n])?)
    }
}

fn flag(value: u8) -> Option<bool> {
    match value {
        0 => Some(false),
        1 => Some(true),
        _ => None,
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
