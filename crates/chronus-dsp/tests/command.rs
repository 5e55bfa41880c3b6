//! The command wire format.

use chronus_dsp::{Command, CommandDecodeError, MAX_ENCODED_COMMAND, VoiceParam};
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
    ]
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
    let cases: [(Vec<u8>, CommandDecodeError); 7] = [
        (vec![], CommandDecodeError::Truncated { len: 0 }),
        (vec![1], CommandDecodeError::Truncated { len: 1 }),
        ([&[2], &set[1..]].concat(), CommandDecodeError::Version(2)),
        (vec![1, 3], CommandDecodeError::UnknownTag(3)),
        (
            [&set[..], &[0]].concat(),
            CommandDecodeError::Length {
                kind: "set-voice",
                len: 9,
                expected: 8,
            },
        ),
        (
            vec![1, 0, 0, 7, 0, 0, 0, 0],
            CommandDecodeError::UnknownParam(7),
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
        "unknown voice parameter code 200 (known codes: 0..=6)"
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
