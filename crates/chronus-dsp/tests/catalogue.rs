//! The original Music Chronus catalogue (`fixtures/original_catalogue.txt`),
//! translated by the dialect: every engine address accepted with its meaning,
//! every value in the original's documented range taken as it is.

#[path = "fixtures/catalogue.rs"]
mod catalogue;

use catalogue::{Entry, ORIGINAL_VOICES, Value, entries};
use chronus_dsp::dialect::{Arg, DialectError, parse};
use chronus_dsp::{CHANNELS, Command, Control, Engine, VoiceParam};

fn args(entry: &Entry) -> Vec<Arg<'_>> {
    entry
        .args
        .iter()
        .map(|v| match v {
            Value::Int(i) => Arg::Int(i64::from(*i)),
            Value::Float(f) => Arg::Float(f64::from(*f)),
            Value::Str(s) => Arg::Str(s),
        })
        .collect()
}

/// The engine's translation of `entry`, or `None` for a request the
/// supervisor answers.
fn translate(entry: &Entry) -> Option<Command> {
    match parse(&entry.address, &args(entry), ORIGINAL_VOICES) {
        Ok(cmd) => Some(cmd),
        Err(DialectError::NotForEngine { .. }) => None,
        Err(e) => panic!("line {}: {e}", entry.line),
    }
}

/// The number a one-argument line sends, waveform names as the original
/// numbered them.
fn number(entry: &Entry) -> f32 {
    match entry.args.as_slice() {
        [Value::Int(i)] => *i as f32,
        [Value::Float(f)] => *f,
        [Value::Str(name)] => match name.as_str() {
            "sine" => 0.0,
            "saw" => 1.0,
            "square" => 2.0,
            other => panic!("line {}: no number for {other}", entry.line),
        },
        other => panic!("line {}: not one value: {other:?}", entry.line),
    }
}

#[test]
fn every_address_of_the_original_catalogue_is_accepted_at_eight_voices() {
    let entries = entries();
    assert!(entries.len() > 200, "only {} messages", entries.len());
    let mut for_supervisor = Vec::new();
    for entry in &entries {
        if translate(entry).is_none() {
            for_supervisor.push(entry.address.as_str());
        }
    }
    for_supervisor.dedup();
    assert_eq!(
        for_supervisor,
        [
            "/seq/status",
            "/pattern/save",
            "/pattern/list",
            "/pattern/load",
            "/engine/status",
            "/engine/list",
            "/engine/schema",
            "/engine/record/start",
            "/engine/record/status",
            "/engine/record/stop",
        ],
        "requests only the supervisor answers"
    );
}

#[test]
fn voice_parameters_reach_their_voice_unclamped() {
    for entry in entries().iter().filter(|e| e.voice.is_some()) {
        let voice = entry.voice.unwrap() - 1;
        let suffix = entry.address.splitn(4, '/').nth(3).unwrap_or_default();
        match translate(entry).unwrap() {
            Command::SetVoice {
                voice: v,
                param,
                value,
            } => {
                let expected = if suffix == "wave" {
                    VoiceParam::Osc
                } else {
                    VoiceParam::ALL
                        .into_iter()
                        .find(|p| p.suffix() == suffix)
                        .unwrap()
                };
                assert_eq!((v, param), (voice, expected), "{}", entry.address);
                assert_eq!(value, number(entry), "{} was clamped", entry.address);
            }
            Command::Gate { voice: v, on } => {
                assert_eq!(v, voice, "{}", entry.address);
                assert_eq!(on, number(entry) > 0.0, "{}", entry.address);
            }
            other => panic!("{}: {other:?}", entry.address),
        }
    }
}

#[test]
fn module_and_sequencer_controls_are_the_same_named_control_unclamped() {
    for entry in entries().iter().filter(|e| e.voice.is_none()) {
        let Some(Command::Set { control, value }) = translate(entry) else {
            continue;
        };
        assert_eq!(control.spec().address, entry.address);
        assert_eq!(value, number(entry), "{} was clamped", entry.address);
    }
    // Every one of the original's acid parameters is a control of its own.
    let acid: Vec<&str> = Control::ALL
        .iter()
        .map(|c| c.spec().address)
        .filter(|a| a.starts_with("/mod/acid1/"))
        .collect();
    for param in [
        "cutoff",
        "res",
        "env_amount",
        "decay",
        "accent",
        "cutoff_offset",
        "res_accent_boost",
        "accent_decay",
        "drive",
        "mix",
        "vol_comp",
    ] {
        let address = format!("/mod/acid1/{param}");
        assert!(acid.contains(&address.as_str()), "{address}");
        assert!(
            entries().iter().any(|e| e.address == address),
            "the fixture lacks {address}"
        );
    }
}

#[test]
fn the_backward_compatible_names_play_voice1() {
    for entry in entries().iter().filter(|e| {
        [
            "/mod/sine1/",
            "/mod/filter1/",
            "/mod/adsr1/",
            "/gate/adsr1",
            "/gate/1",
        ]
        .iter()
        .any(|p| e.address.starts_with(p))
    }) {
        match translate(entry).unwrap() {
            Command::SetVoice { voice, .. } | Command::Gate { voice, .. } => {
                assert_eq!(voice, 0, "{}", entry.address);
            }
            other => panic!("{}: {other:?}", entry.address),
        }
    }
    assert_eq!(
        translate(
            &entries()
                .into_iter()
                .find(|e| e.address == "/mod/adsr1/freq")
                .unwrap()
        ),
        Some(Command::SetVoice {
            voice: 0,
            param: VoiceParam::Freq,
            value: 60.0
        })
    );
}

/// The accent controls change what an accented acid note sounds like, and
/// nothing else: a plain note is the same with any of them.
#[test]
fn the_accent_controls_shape_accented_acid_notes_only() {
    use chronus_dsp::{Pattern, Track, TrackName};
    const RATE: u32 = 48_000;
    let render = |pattern: &str, extra: &[(Control, f32)]| {
        let mut engine = Engine::new(RATE, 2);
        let mut cmds = vec![
            Command::Set {
                control: Control::AcidAccent,
                value: 1.0,
            },
            Command::SetVoice {
                voice: 1,
                param: VoiceParam::Osc,
                value: 1.0,
            },
            Command::SeqAdd(Track::new(
                TrackName::new("acid").unwrap(),
                1,
                Pattern::parse(pattern).unwrap(),
            )),
            Command::SeqRun { on: true },
        ];
        cmds.extend(
            extra
                .iter()
                .map(|&(control, value)| Command::Set { control, value }),
        );
        for cmd in &cmds {
            engine.apply(cmd);
        }
        let mut out = vec![0.0f32; RATE as usize / 2 * CHANNELS];
        engine.render(&mut out);
        out
    };
    let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (control, value) in [
        (Control::AcidCutoffOffset, 1000.0),
        (Control::AcidResAccentBoost, 0.4),
        (Control::AcidAccentDecay, 0.15),
    ] {
        assert_ne!(
            bits(&render("X...", &[])),
            bits(&render("X...", &[(control, value)])),
            "{control:?} does not change an accented note"
        );
        assert_eq!(
            bits(&render("x...", &[])),
            bits(&render("x...", &[(control, value)])),
            "{control:?} changes a plain note"
        );
    }
}
