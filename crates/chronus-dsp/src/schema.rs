//! The parameter registry `/engine/schema` replies with.

use serde_json::{Value, json};

use crate::command::{Control, GATE_LENGTH, MASTER_GAIN, VoiceParam};
use crate::dialect::WAVEFORMS;
use crate::params::VoiceParams;
use crate::seq::{MAX_NOTES, MAX_STEPS, MAX_TRACK_NAME, MAX_TRACKS};

/// JSON registry of every parameter the dialect sets (address, range,
/// default, unit), the gates, the sequencer commands and the aliases. Voice
/// addresses are written with `N` for the voice number (1-based).
pub fn schema() -> String {
    let defaults = VoiceParams::default();
    let voice: Vec<Value> = VoiceParam::ALL
        .into_iter()
        .map(|p| {
            let b = p.bounds();
            let mut entry = json!({
                "address": format!("/mod/voiceN/{}", p.suffix()),
                "type": if p == VoiceParam::Osc { "int" } else { "float" },
                "min": b.min,
                "max": b.max,
                "default": defaults.get(p),
                "unit": p.unit(),
            });
            if let Some(smoothing) = smoothing_ms(p) {
                entry["smoothing_ms"] = json!(smoothing);
            }
            if p == VoiceParam::Osc {
                entry["names"] = WAVEFORMS
                    .iter()
                    .map(|(name, n)| (*name, json!(n)))
                    .collect();
            }
            entry
        })
        .collect();
    let modules: Vec<Value> = Control::ALL
        .into_iter()
        .map(|c| {
            let s = c.spec();
            json!({
                "address": s.address,
                "type": "float",
                "min": s.bounds.min,
                "max": s.bounds.max,
                "default": s.default,
                "unit": s.unit,
                "description": s.doc,
            })
        })
        .collect();
    let schema = json!({
        "schema_version": 1,
        "parameters": voice.into_iter().chain(modules).collect::<Vec<_>>(),
        "gates": [
            {"address": "/gate/voiceN", "args": "number (open when > 0), bool, or \"on\"/\"off\""},
            {"address": "/gate/acid1", "args": "as /gate/voiceN", "description": "gates voice2, whose gate also triggers the acid envelope"},
        ],
        "engine": [
            {"address": "/engine/start", "description": "fade the master in over 20 ms"},
            {"address": "/engine/stop", "description": "fade the master out over 20 ms; the sequencer keeps time"},
            {"address": "/engine/gain", "type": "float", "min": MASTER_GAIN.min, "max": MASTER_GAIN.max, "default": 1.0, "description": "master gain, reached over 20 ms"},
            {"address": "/engine/freq", "description": "voice1's frequency (older dialect)"},
        ],
        "sequencer": {
            "commands": [
                {"address": "/seq/add", "args": "track voice pattern [base_freq] [filter_freq] [notes]",
                 "description": "add or replace a track; the optional fields may also be key=value (base_freq=, filter_freq=, notes=, gate=fraction of a step)",
                 "example": "/seq/add bass voice2 X.x.x..x 55 800 \"A1,C2,E2\""},
                {"address": "/seq/remove", "args": "track"},
                {"address": "/seq/clear", "args": ""},
                {"address": "/seq/start", "args": ""},
                {"address": "/seq/stop", "args": "", "description": "stop and close every voice's gate"},
                {"address": "/seq/update/pattern", "args": "track pattern"},
                {"address": "/seq/update/notes", "args": "track notes", "description": "an empty string returns the track to its base frequency"},
            ],
            "pattern": {"X": "accent (velocity 1.0)", "x": "hit (velocity 0.6)", ".": "rest", "step": "a 16th note", "max_steps": MAX_STEPS},
            "notes": {"forms": ["Hz with a dot: 220.0", "MIDI number: 57", "name: A3, C#4, Eb2"], "separators": "commas or spaces", "max_notes": MAX_NOTES, "cycling": "one note per hit, counted from step 0 of the timeline"},
            "gate_length": {"min": GATE_LENGTH.min, "max": GATE_LENGTH.max, "unit": "steps"},
            "max_tracks": MAX_TRACKS,
            "max_track_name_bytes": MAX_TRACK_NAME,
            "timeline": "step k starts at k*15*rate/bpm frames (odd steps swing/2 of a step later); a track plays position k mod its length, so tracks of different lengths make polymeter",
        },
        "aliases": {
            "/mod/sine1/freq": "/mod/voice1/freq",
            "/mod/filter1/freq": "/mod/voice1/filter/freq",
            "/mod/filter1/q": "/mod/voice1/filter/q",
            "/mod/adsr1/<stage>": "/mod/voice1/adsr/<stage>",
            "/mod/adsr1/freq": "/mod/voice1/freq",
            "/mod/voiceN/wave": "/mod/voiceN/osc/type",
            "/gate/adsr1": "/gate/voice1",
            "/gate/1": "/gate/voice1",
            "/mod/sine/freq": "/mod/voice1/freq",
            "/mod/sine/gain": "/mod/voice1/amp",
            "/mod/filter/cutoff": "/mod/voice1/filter/freq",
            "/mod/filter/q": "/mod/voice1/filter/q",
            "/mod/adsr/attack|decay|release": "/mod/voice1/adsr/<stage>, in milliseconds",
            "/mod/adsr/sustain": "/mod/voice1/adsr/sustain",
            "/gate/adsr": "/gate/voice1",
        },
    });
    schema.to_string()
}

/// The modules an engine with `num_voices` voices has, as `/engine/list` names
/// them: `voice1..voiceN`, then every module a [`Control`] address belongs to
/// (`/mod/<module>/...`, and `seq` for `/seq/...`), in table order.
pub fn modules(num_voices: u8) -> Vec<String> {
    let mut out: Vec<String> = (1..=num_voices).map(|v| format!("voice{v}")).collect();
    for control in Control::ALL {
        let address = control.spec().address;
        let module = match address.strip_prefix("/mod/") {
            Some(rest) => rest.split('/').next().unwrap_or(rest),
            None => address
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or(address),
        };
        if !out.iter().any(|m| m == module) {
            out.push(module.to_owned());
        }
    }
    out
}

/// Which voice parameters glide rather than jump.
fn smoothing_ms(param: VoiceParam) -> Option<u32> {
    match param {
        VoiceParam::Freq
        | VoiceParam::Amp
        | VoiceParam::FilterFreq
        | VoiceParam::FilterQ
        | VoiceParam::SendReverb
        | VoiceParam::SendDelay => Some(20),
        VoiceParam::Osc => Some(10),
        VoiceParam::SlideTime
        | VoiceParam::Attack
        | VoiceParam::Decay
        | VoiceParam::Sustain
        | VoiceParam::Release => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_the_voices_then_every_module_the_dialect_addresses() {
        assert_eq!(
            modules(2),
            [
                "voice1", "voice2", "acid1", "dist1", "reverb1", "delay1", "lfo1", "lfo2", "seq"
            ]
        );
    }

    /// `/engine/schema` replies with the whole registry in one OSC message, so
    /// it must fit one UDP datagram (65,507 bytes) with room for the envelope.
    #[test]
    fn schema_fits_one_udp_datagram() {
        let len = schema().len();
        assert!(len < 60_000, "schema is {len} bytes");
    }
}
