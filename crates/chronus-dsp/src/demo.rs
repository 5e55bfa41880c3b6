//! The patches the benchmarks play, as the OSC messages that set them up, so
//! that the offline render speed (`examples/render_speed.rs`) and the live CPU
//! costs (`scripts/bench synth`, `scripts/bench peers`) measure the same music.

use crate::dialect::Arg;

/// An owned OSC argument of a [`Message`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Value {
    /// As the dialect takes it.
    pub fn arg(&self) -> Arg<'_> {
        match self {
            Value::Int(i) => Arg::Int(*i),
            Value::Float(f) => Arg::Float(*f),
            Value::Str(s) => Arg::Str(s),
        }
    }
}

/// One message of the Music Chronus dialect.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub address: String,
    pub args: Vec<Value>,
}

/// Every voice of `voices` (at most 16) on its own waveform, filter and
/// 16-step track (polymetric, with accents and note lists), with sends to the
/// reverb and the delay; the acid path, distortion, reverb, delay and both
/// LFOs on; the sequencer at 128 BPM with swing, started.
pub fn full_patch(voices: u8) -> Vec<Message> {
    let mut patch = Vec::new();
    let mut send = |address: &str, args: Vec<Value>| {
        patch.push(Message {
            address: address.to_owned(),
            args,
        });
    };
    let patterns = [
        "X...x...X...x...",
        "..x...x...x.x",
        "x.x.x.x.xx.x",
        "X..x..x..x.",
    ];
    for v in 1..=i64::from(voices) {
        let voice = format!("voice{v}");
        let float = |x: f64| vec![Value::Float(x)];
        send(&format!("/mod/{voice}/osc/type"), vec![Value::Int(v % 6)]);
        send(
            &format!("/mod/{voice}/filter/freq"),
            float(400.0 + 300.0 * v as f64),
        );
        send(
            &format!("/mod/{voice}/filter/q"),
            float(0.7 + 0.4 * v as f64),
        );
        send(&format!("/mod/{voice}/amp"), float(0.08));
        send(&format!("/mod/{voice}/send/reverb"), float(0.3));
        send(&format!("/mod/{voice}/send/delay"), float(0.2));
        send(&format!("/mod/{voice}/slide_time"), float(0.05));
        let pattern = patterns[v as usize % patterns.len()];
        send(
            "/seq/add",
            vec![
                Value::Str(format!("t{v}")),
                Value::Str(voice),
                Value::Str(pattern.to_owned()),
                Value::Float(55.0 * v as f64),
                Value::Float(2000.0),
                Value::Str("C3,Eb3,G3,Bb3,C4,220.0,57".to_owned()),
            ],
        );
    }
    for (address, value) in [
        ("/mod/acid1/res", 0.8),
        ("/mod/acid1/accent", 0.7),
        ("/mod/dist1/drive", 0.5),
        ("/mod/dist1/mix", 0.3),
        ("/mod/reverb1/room", 0.8),
        ("/mod/delay1/time", 0.375),
        ("/mod/delay1/feedback", 0.5),
        ("/mod/lfo1/depth", 0.5),
        ("/mod/lfo2/depth", 0.5),
        ("/seq/bpm", 128.0),
        ("/seq/swing", 0.2),
    ] {
        send(address, vec![Value::Float(value)]);
    }
    send("/seq/start", vec![]);
    patch
}

/// The pitch of voice `index` (from 0) in [`held_voices`]: a fifth of an octave
/// apart from 110 Hz.
pub fn held_pitch(index: u8) -> f32 {
    110.0 * 2f32.powf(f32::from(index) / 5.0)
}

/// The 16-voice piece `scripts/bench peers` plays beside scsynth's
/// `RLPF.ar(Saw.ar(freq), 2000) * amp`: every voice of `voices` held at its own
/// pitch ([`held_pitch`]), a saw through its low-pass at 2 kHz, at `amp`, gates
/// open; voice2's acid path mixed out (`acid1/mix` 0), so that every voice is the
/// same instrument, as scsynth's are; no sends, no effects.
pub fn held_voices(voices: u8, amp: f32) -> Vec<Message> {
    let mut patch = vec![Message {
        address: "/mod/acid1/mix".to_owned(),
        args: vec![Value::Float(0.0)],
    }];
    for i in 0..voices {
        let voice = format!("voice{}", u16::from(i) + 1);
        for (address, args) in [
            (
                format!("/mod/{voice}/freq"),
                vec![Value::Float(held_pitch(i).into())],
            ),
            (format!("/mod/{voice}/osc/type"), vec![Value::Int(1)]),
            (format!("/mod/{voice}/amp"), vec![Value::Float(amp.into())]),
            (
                format!("/mod/{voice}/filter/freq"),
                vec![Value::Float(2000.0)],
            ),
            (format!("/gate/{voice}"), vec![Value::Int(1)]),
        ] {
            patch.push(Message { address, args });
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::parse;

    #[test]
    fn every_message_of_the_full_patch_parses() {
        for m in full_patch(16) {
            let args: Vec<Arg<'_>> = m.args.iter().map(Value::arg).collect();
            parse(&m.address, &args, 16).unwrap_or_else(|e| panic!("{}: {e}", m.address));
        }
    }

    #[test]
    fn every_message_of_the_held_voices_parses() {
        let patch = held_voices(16, 0.05);
        assert_eq!(patch.len(), 1 + 16 * 5);
        for m in patch {
            let args: Vec<Arg<'_>> = m.args.iter().map(Value::arg).collect();
            parse(&m.address, &args, 16).unwrap_or_else(|e| panic!("{}: {e}", m.address));
        }
    }
}
