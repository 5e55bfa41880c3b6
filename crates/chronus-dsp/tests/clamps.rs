//! The dialect says when it clamped a number, so the daemon can tell the sender.

use chronus_dsp::dialect::{Arg, Clamp, parse_reporting};
use chronus_dsp::{Command, VoiceParam};

fn clamp_of(address: &str, args: &[Arg<'_>]) -> Option<Clamp> {
    parse_reporting(address, args, 4).unwrap().1
}

#[test]
fn out_of_range_numbers_are_reported_with_the_value_used() {
    let (command, clamp) = parse_reporting("/mod/voice1/amp", &[Arg::Float(7.5)], 4).unwrap();
    assert_eq!(
        command,
        Command::SetVoice {
            voice: 0,
            param: VoiceParam::Amp,
            value: 1.0
        }
    );
    assert_eq!(
        clamp,
        Some(Clamp {
            sent: 7.5,
            used: 1.0
        })
    );
    assert_eq!(
        clamp_of("/mod/voice2/freq", &[Arg::Int(1)]),
        Some(Clamp {
            sent: 1.0,
            used: 20.0
        })
    );
    assert_eq!(
        clamp_of("/seq/bpm", &[Arg::Float(1e9)]).map(|c| c.sent),
        Some(1e9)
    );
    assert_eq!(
        clamp_of("/engine/gain", &[Arg::Float(-1.0)]).map(|c| c.used),
        Some(0.0)
    );
    assert_eq!(
        clamp_of(
            "/seq/add",
            &[
                Arg::Str("k"),
                Arg::Str("voice1"),
                Arg::Str("x..."),
                Arg::Float(9e5)
            ]
        )
        .map(|c| c.used),
        Some(5000.0)
    );
}

#[test]
fn numbers_in_range_and_at_the_bounds_are_not_reported() {
    for (address, value) in [
        ("/mod/voice1/amp", 1.0),
        ("/mod/voice1/amp", 0.0),
        ("/mod/voice1/freq", 440.0),
        ("/seq/bpm", 120.0),
        ("/engine/gain", 0.5),
    ] {
        assert_eq!(
            clamp_of(address, &[Arg::Float(value)]),
            None,
            "{address} {value}"
        );
    }
    assert_eq!(clamp_of("/gate/voice1", &[Arg::Int(5)]), None);
}
