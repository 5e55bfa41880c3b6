//! The Music Chronus OSC dialect.

use chronus_dsp::dialect::{Arg, DialectError, parse};
use chronus_dsp::{Command, VoiceParam};

const VOICES: u8 = 4;

fn set(voice: u8, param: VoiceParam, value: f32) -> Command {
    Command::SetVoice {
        voice,
        param,
        value,
    }
}

fn gate(voice: u8, on: bool) -> Command {
    Command::Gate { voice, on }
}

fn ok(address: &str, args: &[Arg<'_>]) -> Command {
    parse(address, args, VOICES).unwrap_or_else(|e| panic!("{address}: {e}"))
}

fn err(address: &str, args: &[Arg<'_>]) -> String {
    parse(address, args, VOICES).unwrap_err().to_string()
}

#[test]
fn every_voice_parameter_address_is_accepted() {
    let cases = [
        ("/mod/voice1/freq", VoiceParam::Freq, 440.0),
        ("/mod/voice2/amp", VoiceParam::Amp, 0.5),
        ("/mod/voice3/slide_time", VoiceParam::SlideTime, 0.25),
        ("/mod/voice4/adsr/attack", VoiceParam::Attack, 0.02),
        ("/mod/voice1/adsr/decay", VoiceParam::Decay, 0.2),
        ("/mod/voice2/adsr/sustain", VoiceParam::Sustain, 0.5),
        ("/mod/voice3/adsr/release", VoiceParam::Release, 1.25),
    ];
    for (address, param, value) in cases {
        let voice = address.as_bytes()[10] - b'1';
        let expected = set(voice, param, value);
        assert_eq!(ok(address, &[Arg::Float(value.into())]), expected);
    }
}

#[test]
fn voice1_aliases_are_accepted() {
    assert_eq!(
        ok("/mod/sine1/freq", &[Arg::Int(220)]),
        set(0, VoiceParam::Freq, 220.0)
    );
    for (stage, param) in [
        ("attack", VoiceParam::Attack),
        ("decay", VoiceParam::Decay),
        ("sustain", VoiceParam::Sustain),
        ("release", VoiceParam::Release),
    ] {
        assert_eq!(
            ok(&format!("/mod/adsr1/{stage}"), &[Arg::Float(0.5)]),
            set(0, param, 0.5)
        );
    }
    assert_eq!(ok("/gate/adsr1", &[Arg::Int(1)]), gate(0, true));
    assert_eq!(ok("/gate/1", &[Arg::Int(0)]), gate(0, false));
}

#[test]
fn ints_and_floats_are_both_numbers() {
    assert_eq!(
        ok("/mod/voice1/freq", &[Arg::Int(1000)]),
        ok("/mod/voice1/freq", &[Arg::Float(1000.0)])
    );
}

#[test]
fn out_of_range_numbers_are_clamped() {
    let cases = [
        ("/mod/voice1/freq", -5.0, VoiceParam::Freq, 20.0),
        ("/mod/voice1/freq", 1e300, VoiceParam::Freq, 5000.0),
        ("/mod/voice1/amp", 3.0, VoiceParam::Amp, 1.0),
        ("/mod/voice1/slide_time", 10.0, VoiceParam::SlideTime, 1.5),
        ("/mod/voice1/adsr/sustain", -0.5, VoiceParam::Sustain, 0.0),
        ("/mod/voice1/adsr/release", 1e9, VoiceParam::Release, 10.0),
    ];
    for (address, value, param, clamped) in cases {
        assert_eq!(
            ok(address, &[Arg::Float(value)]),
            set(0, param, clamped),
            "{address} {value}"
        );
    }
    assert_eq!(
        ok("/mod/voice1/amp", &[Arg::Int(i64::MIN)]),
        set(0, VoiceParam::Amp, 0.0)
    );
}

#[test]
fn gate_accepts_numbers_bools_and_on_off() {
    let cases = [
        (Arg::Int(1), true),
        (Arg::Int(0), false),
        (Arg::Int(-1), false),
        (Arg::Float(0.5), true),
        (Arg::Float(0.0), false),
        (Arg::Bool(true), true),
        (Arg::Bool(false), false),
        (Arg::Str("on"), true),
        (Arg::Str("off"), false),
        (Arg::Str("ON"), true),
    ];
    for (arg, on) in cases {
        assert_eq!(ok("/gate/voice2", &[arg]), gate(1, on), "{arg:?}");
    }
}

#[test]
fn unknown_voices_are_rejected_with_the_valid_range() {
    for address in [
        "/mod/voice9/freq",
        "/mod/voice0/freq",
        "/mod/voice5/adsr/attack",
        "/gate/voice5",
        "/gate/voice99999999999999999999",
    ] {
        assert_eq!(
            err(address, &[Arg::Int(1)]),
            format!("{address}: no such voice (voices are voice1..voice4)")
        );
    }
    assert!(matches!(
        parse("/gate/1", &[Arg::Int(1)], 0),
        Err(DialectError::NoSuchVoice { num_voices: 0, .. })
    ));
    assert_eq!(
        parse("/gate/voice2", &[Arg::Int(1)], 1)
            .unwrap_err()
            .to_string(),
        "/gate/voice2: no such voice (the only voice is voice1)"
    );
}

#[test]
fn unknown_addresses_are_rejected_listing_the_accepted_ones() {
    for address in [
        "",
        "mod/voice1/freq",
        "/mod/voice1/pitch",
        "/mod/voice1/adsr/hold",
        "/mod/voice1/adsr",
        "/mod/voice1/freq/",
        "/mod/voiceX/freq",
        "/mod/voice/freq",
        "/mod/voice+1/freq",
        "/mod/sine1/amp",
        "/mod/sine2/freq",
        "/mod/adsr1/freq",
        "/mod/adsr2/attack",
        "/gate/2",
        "/gate/adsr2",
        "/gate",
        "/gate/voice1/x",
        "/MOD/voice1/freq",
    ] {
        let e = err(address, &[Arg::Int(1)]);
        assert!(
            e.starts_with(&format!(
                "{address}: unknown address (accepted: /mod/voiceN/freq"
            )),
            "{e}"
        );
    }
}

#[test]
fn wrong_argument_types_are_rejected() {
    assert_eq!(
        err("/mod/voice1/freq", &[Arg::Str("440")]),
        "/mod/voice1/freq: expected one number, got a string"
    );
    assert_eq!(
        err("/mod/voice1/amp", &[Arg::Bool(true)]),
        "/mod/voice1/amp: expected one number, got a bool"
    );
    assert_eq!(
        err("/gate/voice1", &[Arg::Str("maybe")]),
        "/gate/voice1: gate value \"maybe\" is not \"on\" or \"off\""
    );
}

#[test]
fn wrong_argument_counts_are_rejected() {
    assert_eq!(
        err("/mod/voice1/freq", &[]),
        "/mod/voice1/freq: expected one number, got 0 arguments"
    );
    assert_eq!(
        err("/mod/voice1/freq", &[Arg::Int(1), Arg::Int(2)]),
        "/mod/voice1/freq: expected one number, got 2 arguments"
    );
    assert_eq!(
        err("/gate/voice1", &[]),
        "/gate/voice1: expected one number, bool or \"on\"/\"off\", got 0 arguments"
    );
}

#[test]
fn non_finite_numbers_are_rejected() {
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            err("/mod/voice1/freq", &[Arg::Float(value)]),
            format!("/mod/voice1/freq: {value} is not a finite number")
        );
        assert!(matches!(
            parse("/gate/voice1", &[Arg::Float(value)], VOICES),
            Err(DialectError::NotFinite { .. })
        ));
    }
}
