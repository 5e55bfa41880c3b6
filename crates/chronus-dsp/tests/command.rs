//! The command wire format.

use chronus_dsp::seq::{MAX_NOTES, MAX_STEPS};
use chronus_dsp::{
    Command, CommandDecodeError, Control, MAX_ENCODED_COMMAND, Notes, Pattern, Track, TrackName,
    VoiceParam,
};
use proptest::prelude::*;

fn finite() -> impl Strategy<Value = f32> {
    use prop::num::f32::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

fn any_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            any::<u8>(),
            prop::sample::select(VoiceParam::ALL.to_vec()),
            finite()
        )
            .prop_map(|(voice, param, value)| Command::SetVoice {
                voice,
                param,
                value
            }),
        (any::<u8>(), any::<bool>()).prop_map(|(voice, on)| Command::Gate { voice, on }),
        (finite(), finite()).prop_map(|(gain, seconds)| Command::Fade { gain, seconds }),
        (prop::sample::select(Control::ALL.to_vec()), finite())
            .prop_map(|(control, value)| Command::Set { control, value }),
        track().prop_map(Command::SeqAdd),
        track_name().prop_map(|track| Command::SeqRemove { track }),
        Just(Command::SeqClear),
        any::<bool>().prop_map(|on| Command::SeqRun { on }),
        (track_name(), pattern())
            .prop_map(|(track, pattern)| Command::SeqPattern { track, pattern }),
        (track_name(), notes()).prop_map(|(track, notes)| Command::SeqNotes { track, notes }),
        (any::<u32>(), any::<u32>(), finite(), finite()).prop_map(
            |(offset, frames, gain, duck)| Command::Speak {
                offset,
                frames,
                gain,
                duck
            }
        ),
        Just(Command::SpeakStop),
    ]
}

fn track_name() -> impl Strategy<Value = TrackName> {
    "[a-z0-9_é]{1,8}".prop_map(|s| TrackName::new(&s).unwrap())
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop::collection::vec(prop::sample::select(vec!['X', 'x', '.']), 1..=MAX_STEPS)
        .prop_map(|steps| Pattern::parse(&steps.into_iter().collect::<String>()).unwrap())
}

fn notes() -> impl Strategy<Value = Notes> {
    prop::collection::vec(finite(), 0..=MAX_NOTES).prop_map(|hz| Notes::new(&hz).unwrap())
}

fn track() -> impl Strategy<Value = Track> {
    (
        track_name(),
        any::<u8>(),
        pattern(),
        prop::option::of(finite()),
        prop::option::of(finite()),
        prop::option::of(finite()),
        notes(),
    )
        .prop_map(
            |(name, voice, pattern, base_freq, filter_freq, gate, notes)| Track {
                name,
                voice,
                pattern,
                base_freq,
                filter_freq,
                gate,
                notes,
            },
        )
}

fn encoded(cmd: &Command) -> Vec<u8> {
    let mut out = Vec::new();
    cmd.encode(&mut out);
    out
}

proptest! {
    #[test]
    fn every_command_round_trips_bit_exactly(cmd in any_command()) {
        let bytes = encoded(&cmd);
        prop_assert!(bytes.len() <= MAX_ENCODED_COMMAND);
        let decoded = Command::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &cmd);
        // PartialEq has -0.0 == 0.0; the bytes prove the sign survives too.
        prop_assert_eq!(encoded(&decoded), bytes);
    }

    #[test]
    fn encode_appends_without_touching_existing_bytes(cmd in any_command(), prefix in prop::collection::vec(any::<u8>(), 0..8)) {
        let mut out = prefix.clone();
        cmd.encode(&mut out);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &encoded(&cmd)[..]);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Command::decode(&bytes);
    }

    #[test]
    fn decoding_corrupted_commands_never_panics_or_yields_non_finite_values(
        cmd in any_command(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encoded(&cmd);
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let len = bytes.len();
        for bytes in [&bytes[..], &bytes[..cut.index(len + 1)]] {
            if let Ok(decoded) = Command::decode(bytes) {
                prop_assert!(decoded.normalized().is_some(), "{:?} has non-finite values", decoded);
            }
        }
    }
}

fn set_voice_bytes(value: f32) -> Vec<u8> {
    encoded(&Command::SetVoice {
        voice: 0,
        param: VoiceParam::Freq,
        value,
    })
}

#[test]
fn decode_rejects_non_finite_values() {
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let err = Command::decode(&set_voice_bytes(value)).unwrap_err();
        assert!(matches!(err, CommandDecodeError::NotFinite { .. }), "{err}");
        let fade = encoded(&Command::Fade {
            gain: 1.0,
            seconds: value,
        });
        let err = Command::decode(&fade).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("fade seconds is {value}; only finite numbers are accepted")
        );
    }
}

#[test]
fn decode_rejects_bad_structure() {
    let set = set_voice_bytes(440.0);
    let cases: [(Vec<u8>, CommandDecodeError); 9] = [
        (vec![], CommandDecodeError::Truncated { len: 0 }),
        (vec![1], CommandDecodeError::Truncated { len: 1 }),
        ([&[2], &set[1..]].concat(), CommandDecodeError::Version(2)),
        (vec![1, 12], CommandDecodeError::UnknownTag(12)),
        (
            vec![1, 10, 0],
            CommandDecodeError::Length {
                kind: "speak",
                len: 3,
                expected: 18,
            },
        ),
        (
            vec![1, 11, 0],
            CommandDecodeError::Length {
                kind: "speak-stop",
                len: 3,
                expected: 2,
            },
        ),
        (
            [&set[..], &[0]].concat(),
            CommandDecodeError::Length {
                kind: "set-voice",
                len: 9,
                expected: 8,
            },
        ),
        (
            vec![1, 0, 0, 12, 0, 0, 0, 0],
            CommandDecodeError::UnknownParam(12),
        ),
        (vec![1, 1, 0, 2], CommandDecodeError::GateByte(2)),
    ];
    for (bytes, expected) in cases {
        assert_eq!(Command::decode(&bytes), Err(expected), "{bytes:?}");
    }
}

#[test]
fn decode_error_messages_say_what_is_accepted() {
    let msg = |bytes: &[u8]| Command::decode(bytes).unwrap_err().to_string();
    assert_eq!(
        msg(&[9, 0]),
        "command format version 9 is not supported (this build reads version 1)"
    );
    assert_eq!(
        msg(&[1, 2, 0]),
        "fade command is 3 bytes, expected exactly 10"
    );
    assert_eq!(
        msg(&[1, 0, 0, 200, 0, 0, 0, 0]),
        "unknown voice parameter code 200 (known codes: 0..=11)"
    );
}

#[test]
fn normalized_clamps_values_and_rejects_non_finite() {
    let set = |param, value| Command::SetVoice {
        voice: 3,
        param,
        value,
    };
    assert_eq!(
        set(VoiceParam::Freq, 1.0).normalized(),
        Some(set(VoiceParam::Freq, 20.0))
    );
    assert_eq!(
        set(VoiceParam::SlideTime, 9.0).normalized(),
        Some(set(VoiceParam::SlideTime, 1.5))
    );
    assert_eq!(set(VoiceParam::Amp, f32::NAN).normalized(), None);
    assert_eq!(
        Command::Fade {
            gain: -1.0,
            seconds: 1e9
        }
        .normalized(),
        Some(Command::Fade {
            gain: 0.0,
            seconds: 60.0
        })
    );
}

#[test]
fn the_largest_track_encodes_within_the_limit() {
    let track = Track {
        name: TrackName::new(&"n".repeat(16)).unwrap(),
        voice: 15,
        pattern: Pattern::parse(&"X".repeat(MAX_STEPS)).unwrap(),
        base_freq: Some(1.0),
        filter_freq: Some(2.0),
        gate: Some(0.5),
        notes: Notes::new(&[440.0; MAX_NOTES]).unwrap(),
    };
    let bytes = encoded(&Command::SeqAdd(track));
    assert!(bytes.len() <= MAX_ENCODED_COMMAND, "{} bytes", bytes.len());
    assert_eq!(Command::decode(&bytes), Ok(Command::SeqAdd(track)));
}

#[test]
fn decode_rejects_malformed_sequencer_commands() {
    let remove = encoded(&Command::SeqRemove {
        track: TrackName::new("kick").unwrap(),
    });
    let msg = |bytes: &[u8]| Command::decode(bytes).unwrap_err().to_string();
    assert_eq!(
        msg(&remove[..remove.len() - 1]),
        "seq-remove command ends early or has 0 bytes after its last field"
    );
    assert_eq!(
        msg(&[&remove[..], &[0, 0]].concat()),
        "seq-remove command ends early or has 2 bytes after its last field"
    );
    assert_eq!(msg(&[1, 5, 0]), "track name is empty; use 1..=16 bytes");
    assert_eq!(msg(&[1, 5, 2, 0xff, 0xfe]), "track name is not UTF-8");
    assert_eq!(
        msg(&[1, 8, 1, b'k', 3, b'x', b'o', b'X']),
        "pattern step 2 is 'o'; use X (accent), x (hit) or . (rest)"
    );
    assert_eq!(
        msg(&[1, 9, 1, b'k', 33]),
        "33 notes given; at most 32 are accepted"
    );
    assert_eq!(
        msg(&[1, 4, 1, b'k', 0, 1, b'x', 8, 0]),
        "track field flags 0x08 are invalid (known: 1 base freq, 2 filter freq, 4 gate)"
    );
    assert_eq!(
        msg(&[1, 7, 2]),
        "seq-run byte 2 is invalid (expected 0 for stop or 1 for start)"
    );
    assert_eq!(
        msg(&[1, 3, 29, 0, 0, 0, 0]),
        "unknown control code 29 (known codes: 0..=28)"
    );
    let mut set = encoded(&Command::Set {
        control: Control::SeqBpm,
        value: 1.0,
    });
    set[3..7].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(
        msg(&set),
        "set value is NaN; only finite numbers are accepted"
    );
}

#[test]
fn normalized_clamps_module_values_tracks_and_rounds_the_waveform() {
    assert_eq!(
        Command::Set {
            control: Control::SeqBpm,
            value: 1e9
        }
        .normalized(),
        Some(Command::Set {
            control: Control::SeqBpm,
            value: 300.0
        })
    );
    assert_eq!(
        Command::SetVoice {
            voice: 0,
            param: VoiceParam::Osc,
            value: 2.4
        }
        .normalized(),
        Some(Command::SetVoice {
            voice: 0,
            param: VoiceParam::Osc,
            value: 2.0
        })
    );
    let mut track = Track::new(
        TrackName::new("t").unwrap(),
        0,
        Pattern::parse("x").unwrap(),
    );
    track.gate = Some(7.0);
    track.notes = Notes::new(&[1.0, 1e6]).unwrap();
    let Some(Command::SeqAdd(t)) = Command::SeqAdd(track).normalized() else {
        panic!()
    };
    assert_eq!(
        (t.gate, t.notes.as_slice()),
        (Some(1.0), &[20.0, 5000.0][..])
    );
    track.base_freq = Some(f32::INFINITY);
    assert_eq!(Command::SeqAdd(track).normalized(), None);
}
