//! The Music Chronus OSC dialect.

use chronus_dsp::dialect::{Arg, DialectError, parse};
use chronus_dsp::{Command, Control, Notes, Pattern, TrackName, VoiceParam};

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
fn a_voice_beyond_the_configured_count_is_refused_naming_the_setting() {
    for (address, voice) in [
        ("/mod/voice9/freq", "9"),
        ("/mod/voice5/adsr/attack", "5"),
        ("/gate/voice5", "5"),
        ("/mod/voice05/wave", "5"),
        ("/gate/voice99999999999999999999", "99999999999999999999"),
    ] {
        assert_eq!(
            err(address, &[Arg::Int(1)]),
            format!(
                "{address}: voice {voice} is beyond engine.num_voices = 4 (CHRONUS_NUM_VOICES); \
                 raise it to use more voices"
            )
        );
    }
    assert_eq!(
        err("/mod/voice0/freq", &[Arg::Int(1)]),
        "/mod/voice0/freq: voice 0 does not exist; voices count from 1 (voice1..voice4)"
    );
    assert!(matches!(
        parse("/gate/1", &[Arg::Int(1)], 0),
        Err(DialectError::NoSuchVoice { num_voices: 0, .. })
    ));
    assert_eq!(
        parse("/gate/voice9", &[Arg::Int(1)], 8)
            .unwrap_err()
            .to_string(),
        "/gate/voice9: voice 9 is beyond engine.num_voices = 8 (CHRONUS_NUM_VOICES); \
         raise it to use more voices"
    );
}

#[test]
fn waveforms_are_accepted_by_name_or_number_on_osc_type_and_wave() {
    let names = [
        ("sine", 0.0),
        ("SIN", 0.0),
        ("saw", 1.0),
        ("Sawtooth", 1.0),
        ("square", 2.0),
        ("noise", 3.0),
        ("white", 3.0),
        ("white_noise", 3.0),
        ("pink", 4.0),
        ("pink_noise", 4.0),
        ("brown", 5.0),
        ("brown_noise", 5.0),
        ("triangle", 6.0),
        ("tri", 6.0),
    ];
    for (name, number) in names {
        for address in ["/mod/voice2/osc/type", "/mod/voice2/wave"] {
            assert_eq!(
                ok(address, &[Arg::Str(name)]),
                set(1, VoiceParam::Osc, number),
                "{address} {name}"
            );
        }
    }
    assert_eq!(
        ok("/mod/voice3/wave", &[Arg::Int(2)]),
        set(2, VoiceParam::Osc, 2.0)
    );
    let e = err("/mod/voice1/wave", &[Arg::Str("sqare")]);
    assert!(
        e.starts_with(
            "/mod/voice1/wave: waveform \"sqare\" is not known (accepted: a number 0..=6 or \
             sine, sin, saw, sawtooth, square, white, noise"
        ),
        "{e}"
    );
    assert_eq!(
        err("/mod/voice1/osc/type", &[Arg::Bool(true)]),
        "/mod/voice1/osc/type: expected one waveform number or name, got a bool"
    );
}

#[test]
fn adsr1_freq_is_voice1_freq_as_the_original_sequencer_example_sent_it() {
    assert_eq!(
        ok("/mod/adsr1/freq", &[Arg::Float(60.0)]),
        set(0, VoiceParam::Freq, 60.0)
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
        "/mod/adsr1/amp",
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

fn control(control: Control, value: f32) -> Command {
    Command::Set { control, value }
}

fn name(s: &str) -> TrackName {
    TrackName::new(s).unwrap()
}

#[test]
fn voice_tone_and_send_addresses_are_accepted() {
    let cases = [
        ("/mod/voice1/osc/type", Arg::Int(2), VoiceParam::Osc, 2.0),
        (
            "/mod/voice2/osc/type",
            Arg::Float(4.6),
            VoiceParam::Osc,
            5.0,
        ),
        (
            "/mod/voice3/filter/freq",
            Arg::Int(2000),
            VoiceParam::FilterFreq,
            2000.0,
        ),
        (
            "/mod/voice4/filter/q",
            Arg::Float(0.7),
            VoiceParam::FilterQ,
            0.7,
        ),
        (
            "/mod/voice1/send/reverb",
            Arg::Float(0.5),
            VoiceParam::SendReverb,
            0.5,
        ),
        (
            "/mod/voice1/send/delay",
            Arg::Float(2.0),
            VoiceParam::SendDelay,
            1.0,
        ),
        ("/mod/voice1/osc/type", Arg::Int(9), VoiceParam::Osc, 6.0),
        (
            "/mod/voice1/filter/freq",
            Arg::Int(1),
            VoiceParam::FilterFreq,
            50.0,
        ),
    ];
    for (address, arg, param, value) in cases {
        let voice = address.as_bytes()[10] - b'1';
        // The dialect clamps; rounding the waveform is the appliers' job.
        let expected = set(voice, param, value);
        assert_eq!(
            ok(address, &[arg]).normalized(),
            Some(expected),
            "{address}"
        );
    }
}

#[test]
fn module_and_sequencer_controls_are_accepted_and_clamped() {
    for c in Control::ALL {
        let spec = c.spec();
        assert_eq!(
            ok(spec.address, &[Arg::Float(spec.default.into())]),
            control(c, spec.default),
            "{}",
            spec.address
        );
        assert_eq!(
            ok(spec.address, &[Arg::Float(1e12)]),
            control(c, spec.bounds.max)
        );
        assert_eq!(
            ok(spec.address, &[Arg::Int(-1_000_000)]),
            control(c, spec.bounds.min)
        );
    }
    assert_eq!(
        ok("/mod/acid1/cutoff", &[Arg::Int(800)]),
        control(Control::AcidCutoff, 800.0)
    );
    assert_eq!(
        ok("/seq/bpm", &[Arg::Int(500)]),
        control(Control::SeqBpm, 300.0)
    );
}

#[test]
fn older_dialect_addresses_act_on_voice1() {
    let cases = [
        ("/mod/sine/freq", 220.0, set(0, VoiceParam::Freq, 220.0)),
        ("/mod/sine/gain", 0.5, set(0, VoiceParam::Amp, 0.5)),
        (
            "/mod/filter1/freq",
            900.0,
            set(0, VoiceParam::FilterFreq, 900.0),
        ),
        ("/mod/filter1/q", 3.0, set(0, VoiceParam::FilterQ, 3.0)),
        (
            "/mod/filter/cutoff",
            900.0,
            set(0, VoiceParam::FilterFreq, 900.0),
        ),
        ("/mod/filter/q", 3.0, set(0, VoiceParam::FilterQ, 3.0)),
        ("/engine/freq", 330.0, set(0, VoiceParam::Freq, 330.0)),
    ];
    for (address, value, expected) in cases {
        assert_eq!(ok(address, &[Arg::Float(value)]), expected, "{address}");
    }
    assert_eq!(ok("/gate/adsr", &[Arg::Str("on")]), gate(0, true));
}

#[test]
fn older_dialect_envelope_times_are_milliseconds() {
    assert_eq!(
        ok("/mod/adsr/attack", &[Arg::Float(10.0)]),
        set(0, VoiceParam::Attack, 0.01)
    );
    assert_eq!(
        ok("/mod/adsr/decay", &[Arg::Int(250)]),
        set(0, VoiceParam::Decay, 0.25)
    );
    assert_eq!(
        ok("/mod/adsr/release", &[Arg::Int(1500)]),
        set(0, VoiceParam::Release, 1.5)
    );
    // Sustain is a level in every dialect.
    assert_eq!(
        ok("/mod/adsr/sustain", &[Arg::Float(0.5)]),
        set(0, VoiceParam::Sustain, 0.5)
    );
    // While the voiceN and adsr1 addresses stay in seconds.
    assert_eq!(
        ok("/mod/adsr1/attack", &[Arg::Float(0.5)]),
        set(0, VoiceParam::Attack, 0.5)
    );
}

#[test]
fn acid_gate_gates_voice2() {
    assert_eq!(ok("/gate/acid1", &[Arg::Int(1)]), gate(1, true));
    assert!(matches!(
        parse("/gate/acid1", &[Arg::Int(1)], 1),
        Err(DialectError::NoSuchVoice { num_voices: 1, .. })
    ));
}

#[test]
fn engine_start_stop_and_gain_fade_the_master() {
    let fade = |gain| Command::Fade {
        gain,
        seconds: 0.02,
    };
    assert_eq!(ok("/engine/start", &[]), fade(1.0));
    assert_eq!(ok("/engine/stop", &[]), fade(0.0));
    assert_eq!(ok("/engine/gain", &[Arg::Float(0.25)]), fade(0.25));
    assert_eq!(ok("/engine/gain", &[Arg::Int(7)]), fade(1.0));
}

#[test]
fn supervisor_addresses_are_told_apart_from_unknown_ones() {
    for address in [
        "/seq/status",
        "/engine/status",
        "/engine/list",
        "/engine/schema",
        "/engine/record/start",
        "/engine/record/stop",
        "/engine/record/status",
        "/pattern/save",
        "/pattern/load",
        "/pattern/list",
        "/viz/levels",
    ] {
        assert_eq!(
            parse(address, &[Arg::Int(1)], VOICES),
            Err(DialectError::NotForEngine {
                address: address.to_owned()
            }),
            "{address}"
        );
    }
    for address in [
        "/seq/pause",
        "/engine/reboot",
        "/patterns/list",
        "/mod/acid1/wobble",
    ] {
        assert!(
            matches!(
                parse(address, &[], VOICES),
                Err(DialectError::UnknownAddress { .. })
            ),
            "{address}"
        );
    }
}

#[test]
fn seq_add_takes_positional_optional_fields() {
    let cmd = ok(
        "/seq/add",
        &[
            Arg::Str("bass"),
            Arg::Str("voice2"),
            Arg::Str("X.x."),
            Arg::Float(55.0),
            Arg::Int(800),
            Arg::Str("A1, C2,E2"),
        ],
    );
    let Command::SeqAdd(t) = cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!((t.name, t.voice), (name("bass"), 1));
    assert_eq!(t.pattern, Pattern::parse("X.x.").unwrap());
    assert_eq!(
        (t.base_freq, t.filter_freq, t.gate),
        (Some(55.0), Some(800.0), None)
    );
    assert_eq!(t.notes, Notes::parse("A1,C2,E2").unwrap());
}

#[test]
fn seq_add_takes_key_value_fields_and_voice_numbers() {
    let cmd = ok(
        "/seq/add",
        &[
            Arg::Int(7),
            Arg::Int(3),
            Arg::Str("x"),
            Arg::Str("gate=0.25"),
            Arg::Str("notes=60"),
            Arg::Str("110"),
        ],
    );
    let Command::SeqAdd(t) = cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!((t.name, t.voice), (name("7"), 2));
    assert_eq!(
        (t.base_freq, t.filter_freq, t.gate),
        (Some(110.0), None, Some(0.25))
    );
    assert_eq!(t.notes, Notes::parse("60").unwrap());
    let Command::SeqAdd(t) = ok("/seq/add", &[Arg::Str("k"), Arg::Str("4"), Arg::Str("X")]) else {
        panic!()
    };
    assert_eq!(t.voice, 3);
}

#[test]
fn seq_add_rejects_what_it_cannot_play_saying_why() {
    let add = |args: &[Arg<'_>]| err("/seq/add", args);
    assert_eq!(
        add(&[Arg::Str("k"), Arg::Str("voice1")]),
        format!(
            "/seq/add: expected track, voice, pattern, then optionally base_freq, \
             filter_freq, notes (positional or key=value) and gate=fraction, got 2 arguments"
        )
    );
    assert_eq!(
        add(&[Arg::Str("k"), Arg::Str("voice9"), Arg::Str("X")]),
        "/seq/add: voice 9 is beyond engine.num_voices = 4 (CHRONUS_NUM_VOICES); \
         raise it to use more voices"
    );
    assert_eq!(
        add(&[Arg::Str("k"), Arg::Str("kick"), Arg::Str("X")]),
        "/seq/add: voice \"kick\" is not voiceN or a voice number"
    );
    assert_eq!(
        add(&[Arg::Str("k"), Arg::Str("voice1"), Arg::Str("X-x")]),
        "/seq/add: pattern step 2 is '-'; use X (accent), x (hit) or . (rest)"
    );
    assert_eq!(
        add(&[Arg::Str("k"), Arg::Str("voice1"), Arg::Str(&"x".repeat(65))]),
        "/seq/add: pattern has 65 steps; at most 64 are accepted"
    );
    assert_eq!(
        add(&[
            Arg::Str("a-very-long-track-name"),
            Arg::Str("voice1"),
            Arg::Str("x")
        ]),
        "/seq/add: track name \"a-very-long-track-name\" is longer than 16 bytes"
    );
    let many = "60,".repeat(33);
    assert_eq!(
        add(&[
            Arg::Str("k"),
            Arg::Str("voice1"),
            Arg::Str("x"),
            Arg::Str(&format!("notes={many}"))
        ]),
        "/seq/add: 33 notes given; at most 32 are accepted"
    );
    assert_eq!(
        add(&[
            Arg::Str("k"),
            Arg::Str("voice1"),
            Arg::Str("x"),
            Arg::Str("notes=H2")
        ]),
        "/seq/add: note \"H2\" is not Hz with a dot (\"220.0\"), a MIDI number (0..=127) \
         or a name like \"C#4\""
    );
    assert_eq!(
        add(&[
            Arg::Str("k"),
            Arg::Str("voice1"),
            Arg::Str("x"),
            Arg::Str("amp=0.5")
        ]),
        "/seq/add: unknown track field \"amp\" (accepted: base_freq, filter_freq, notes, gate)"
    );
    assert_eq!(
        add(&[
            Arg::Str("k"),
            Arg::Str("voice1"),
            Arg::Str("x"),
            Arg::Str("low")
        ]),
        "/seq/add: base_freq \"low\" is not a number"
    );
    assert_eq!(
        add(&[
            Arg::Str("k"),
            Arg::Str("voice1"),
            Arg::Str("x"),
            Arg::Int(1),
            Arg::Int(2),
            Arg::Int(60),
            Arg::Int(4)
        ]),
        add(&[Arg::Str("k"), Arg::Str("voice1")]).replace("got 2", "got 7")
    );
}

#[test]
fn sequencer_transport_and_updates_are_accepted() {
    assert_eq!(ok("/seq/start", &[]), Command::SeqRun { on: true });
    assert_eq!(
        ok("/seq/stop", &[Arg::Int(1)]),
        Command::SeqRun { on: false }
    );
    assert_eq!(ok("/seq/clear", &[]), Command::SeqClear);
    assert_eq!(
        ok("/seq/remove", &[Arg::Str("kick")]),
        Command::SeqRemove {
            track: name("kick")
        }
    );
    assert_eq!(
        ok("/seq/update/pattern", &[Arg::Str("kick"), Arg::Str("x..x")]),
        Command::SeqPattern {
            track: name("kick"),
            pattern: Pattern::parse("x..x").unwrap()
        }
    );
    assert_eq!(
        ok("/seq/update/notes", &[Arg::Str("kick"), Arg::Str("")]),
        Command::SeqNotes {
            track: name("kick"),
            notes: Notes::EMPTY
        }
    );
    assert_eq!(
        ok("/seq/update/notes", &[Arg::Str("kick"), Arg::Float(9000.0)]),
        Command::SeqNotes {
            track: name("kick"),
            notes: Notes::new(&[5000.0]).unwrap()
        }
    );
    assert_eq!(
        ok("/seq/gate_length", &[Arg::Float(0.0)]),
        control(Control::SeqGateLength, 0.01)
    );
    assert_eq!(
        err("/seq/update/pattern", &[Arg::Str("kick")]),
        "/seq/update/pattern: expected a track name and a pattern, got 1 arguments"
    );
}

#[test]
fn every_message_the_dialect_accepts_encodes_within_the_limit() {
    let long = "x".repeat(64);
    let notes = "C#4,".repeat(32);
    let cmd = ok(
        "/seq/add",
        &[
            Arg::Str("sixteen-byte-trk"),
            Arg::Str("voice4"),
            Arg::Str(&long),
            Arg::Float(55.0),
            Arg::Float(800.0),
            Arg::Str(&notes),
            Arg::Str("gate=0.3"),
        ],
    );
    let mut bytes = Vec::new();
    cmd.encode(&mut bytes);
    assert!(
        bytes.len() <= chronus_dsp::MAX_ENCODED_COMMAND,
        "{}",
        bytes.len()
    );
    assert_eq!(Command::decode(&bytes), Ok(cmd));
}

#[test]
fn a_voice_beyond_the_configured_count_names_the_setting_to_raise() {
    let refused = parse("/mod/voice9/freq", &[Arg::Float(440.0)], 8).unwrap_err();
    let reason = refused.to_string();
    assert!(
        reason.contains("voice9")
            && reason.contains("engine.num_voices = 8")
            && reason.contains("CHRONUS_NUM_VOICES"),
        "{reason}"
    );
}
