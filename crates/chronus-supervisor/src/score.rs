//! Scores: files of int32-length-prefixed OSC bundles whose timetags are seconds
//! from the start (the layout scsynth's non-real-time mode reads). The daemon's
//! journal is such a score, and `chronusd render` plays any score offline with
//! the workers' own DSP code.

use chronus_dsp::{CHANNELS, Command, Engine, dialect};
use chronus_osc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use std::io::{BufWriter, Read, Write};
use std::path::Path;

/// First message of a journal: `sample_rate i`, `num_voices i`, `format s`.
pub const JOURNAL_ADDR: &str = "/chronus/journal";
/// The engine was cold-started here from the parameters then in force.
pub const RESET_ADDR: &str = "/chronus/reset";
/// A command with no dialect form, as its encoded bytes.
pub const CMD_ADDR: &str = "/chronus/cmd";
/// Speech: `offset i`, `gain f`, `duck f` and a blob of little-endian `f32` mono
/// samples, played from `offset` of the speech area (see [`Command::Speak`]).
pub const SPEECH_ADDR: &str = "/chronus/speech";
/// Largest bundle a score may hold: speech carries its samples.
const MAX_SCORE_PACKET: usize = 64 << 20;
const FORMAT: &str = "chronus-journal-1";

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("cannot read score {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("score {path} is malformed at byte {offset}: {reason}")]
    Malformed {
        path: String,
        offset: usize,
        reason: String,
    },
    #[error("score {path}: command at {seconds:.6} s is not accepted: {reason}")]
    Command {
        path: String,
        seconds: f64,
        reason: String,
    },
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Converts an absolute frame to a timetag of seconds from the start, exactly
/// invertible by [`timetag_to_frame`] for any sample rate below 2^32.
pub fn frame_to_timetag(frame: u64, sample_rate: u32) -> OscTime {
    let sr = u64::from(sample_rate);
    let seconds = frame / sr;
    let rem = frame % sr;
    let fractional = ((u128::from(rem) << 32) + u128::from(sr) / 2) / u128::from(sr);
    OscTime {
        seconds: seconds as u32,
        fractional: fractional as u32,
    }
}

pub fn timetag_to_frame(time: OscTime, sample_rate: u32) -> u64 {
    let sr = u128::from(sample_rate);
    let whole = u128::from(time.seconds) * sr;
    let part = (u128::from(time.fractional) * sr + (1u128 << 31)) >> 32;
    (whole + part) as u64
}

/// Appends timestamped bundles to a score file.
pub struct ScoreWriter {
    out: BufWriter<std::fs::File>,
    sample_rate: u32,
}

impl ScoreWriter {
    pub fn create(path: &Path, sample_rate: u32, num_voices: u8) -> std::io::Result<ScoreWriter> {
        let mut writer = ScoreWriter {
            out: BufWriter::new(std::fs::File::create(path)?),
            sample_rate,
        };
        writer.write(
            0,
            OscMessage {
                addr: JOURNAL_ADDR.into(),
                args: vec![
                    OscType::Int(sample_rate as i32),
                    OscType::Int(i32::from(num_voices)),
                    OscType::String(FORMAT.into()),
                ],
            },
        )?;
        Ok(writer)
    }

    pub fn write(&mut self, frame: u64, message: OscMessage) -> std::io::Result<()> {
        let bundle = OscPacket::Bundle(OscBundle {
            timetag: frame_to_timetag(frame, self.sample_rate),
            content: vec![OscPacket::Message(message)],
        });
        let bytes = chronus_osc::encode(&bundle);
        self.out.write_all(&(bytes.len() as u32).to_be_bytes())?;
        self.out.write_all(&bytes)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A score read into memory: messages with their frames, in file order.
pub struct Score {
    pub sample_rate: Option<u32>,
    pub num_voices: Option<u8>,
    pub events: Vec<(u64, OscMessage)>,
}

pub fn read_score(path: &Path, default_rate: u32) -> Result<Score, ScoreError> {
    let name = path.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| ScoreError::Io {
            path: name.clone(),
            source,
        })?;
    let malformed = |offset, reason: String| ScoreError::Malformed {
        path: name.clone(),
        offset,
        reason,
    };
    let mut score = Score {
        sample_rate: None,
        num_voices: None,
        events: Vec::new(),
    };
    let mut pos = 0;
    let mut raw = Vec::new();
    while pos < bytes.len() {
        let len_bytes: [u8; 4] = bytes
            .get(pos..pos + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed(pos, "truncated length prefix".into()))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let packet = bytes
            .get(pos + 4..pos + 4 + len)
            .ok_or_else(|| malformed(pos, format!("bundle of {len} bytes runs past the end")))?;
        let limits = chronus_osc::Limits {
            max_packet: MAX_SCORE_PACKET,
            ..chronus_osc::Limits::default()
        };
        let decoded =
            chronus_osc::decode(packet, &limits).map_err(|e| malformed(pos, e.to_string()))?;
        let OscPacket::Bundle(bundle) = decoded else {
            return Err(malformed(
                pos,
                "expected a bundle, found a bare message".into(),
            ));
        };
        raw.push(bundle);
        pos += 4 + len;
    }
    // The journal header fixes the rate used to turn times into frames.
    for bundle in &raw {
        for packet in &bundle.content {
            if let OscPacket::Message(m) = packet
                && m.addr == JOURNAL_ADDR
                && let [OscType::Int(sr), OscType::Int(nv), ..] = m.args[..]
            {
                score.sample_rate = u32::try_from(sr).ok();
                score.num_voices = u8::try_from(nv).ok();
            }
        }
    }
    let rate = score.sample_rate.unwrap_or(default_rate);
    for bundle in raw {
        flatten(bundle, rate, &mut score.events);
    }
    // Stable: commands at the same frame keep their file order.
    score.events.sort_by_key(|(frame, _)| *frame);
    Ok(score)
}

fn flatten(bundle: OscBundle, rate: u32, out: &mut Vec<(u64, OscMessage)>) {
    let frame = timetag_to_frame(bundle.timetag, rate);
    for packet in bundle.content {
        match packet {
            OscPacket::Message(m) => out.push((frame, m)),
            OscPacket::Bundle(inner) => flatten(inner, rate, out),
        }
    }
}

/// Turns a score or journal message into the command it stands for. `None`
/// for the journal's own bookkeeping messages.
pub fn message_command(message: &OscMessage, num_voices: u8) -> Result<Option<Command>, String> {
    match message.addr.as_str() {
        JOURNAL_ADDR | RESET_ADDR => Ok(None),
        CMD_ADDR => match message.args.as_slice() {
            [OscType::Blob(bytes)] => Command::decode(bytes).map(Some).map_err(|e| e.to_string()),
            _ => Err(format!("{CMD_ADDR} takes one blob")),
        },
        SPEECH_ADDR => speech_args(message).map(|(command, _)| Some(command)),
        addr => {
            let args = crate::control::dialect_args(&message.args)?;
            dialect::parse(addr, &args, num_voices)
                .map(Some)
                .map_err(|e| e.to_string())
        }
    }
}

/// The journal's form of a [`Command::Speak`] playing `samples`.
pub fn speech_message(offset: u32, gain: f32, duck: f32, samples: &[f32]) -> OscMessage {
    OscMessage {
        addr: SPEECH_ADDR.into(),
        args: vec![
            OscType::Int(offset as i32),
            OscType::Float(gain),
            OscType::Float(duck),
            OscType::Blob(samples.iter().flat_map(|s| s.to_le_bytes()).collect()),
        ],
    }
}

/// A speech message's command and samples.
fn speech_args(message: &OscMessage) -> Result<(Command, Vec<f32>), String> {
    let usage =
        || format!("{SPEECH_ADDR} takes offset i, gain f, duck f and a blob of f32 samples");
    let [
        OscType::Int(offset),
        OscType::Float(gain),
        OscType::Float(duck),
        OscType::Blob(bytes),
    ] = message.args.as_slice()
    else {
        return Err(usage());
    };
    let offset = u32::try_from(*offset).map_err(|_| usage())?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "{SPEECH_ADDR}: a blob of {} bytes is not whole f32 samples",
            bytes.len()
        ));
    }
    let samples: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let command = Command::Speak {
        offset,
        frames: u32::try_from(samples.len()).map_err(|_| usage())?,
        gain: *gain,
        duck: *duck,
    };
    Ok((command, samples))
}

/// Renders `frames` frames of a score with the workers' DSP, as fast as the CPU allows.
pub fn render_score(
    path: &Path,
    score: &Score,
    sample_rate: u32,
    num_voices: u8,
    frames: u64,
) -> Result<Vec<f32>, ScoreError> {
    let rate = score.sample_rate.unwrap_or(sample_rate);
    let voices = score.num_voices.unwrap_or(num_voices);
    let mut engine = Engine::new(rate, voices);
    let mut out = vec![0.0f32; frames as usize * CHANNELS];
    // The speech area as far as the score has written it.
    let mut speech: Vec<f32> = Vec::new();
    for (frame, message) in &score.events {
        let frame = (*frame).min(frames);
        let at = engine.frame() as usize * CHANNELS;
        engine.render_with(&mut out[at..frame as usize * CHANNELS], &speech);
        if message.addr == RESET_ADDR {
            engine = Engine::from_params(rate, &engine.params().clone(), frame);
        }
        if message.addr == SPEECH_ADDR
            && let Ok((Command::Speak { offset, .. }, samples)) = speech_args(message)
        {
            let start = offset as usize;
            if speech.len() < start + samples.len() {
                speech.resize(start + samples.len(), 0.0);
            }
            speech[start..start + samples.len()].copy_from_slice(&samples);
        }
        let command = message_command(message, voices).map_err(|reason| ScoreError::Command {
            path: path.display().to_string(),
            seconds: frame as f64 / f64::from(rate),
            reason,
        })?;
        if let Some(command) = command {
            engine.apply(&command);
        }
    }
    let at = engine.frame() as usize * CHANNELS;
    engine.render_with(&mut out[at..], &speech);
    // The device path clamps and flushes non-finite samples; do the same.
    for s in &mut out {
        *s = if s.is_finite() {
            s.clamp(-1.0, 1.0)
        } else {
            0.0
        };
    }
    Ok(out)
}

/// Writes interleaved samples as a 32-bit float WAV.
pub fn write_wav(path: &Path, samples: &[f32], sample_rate: u32) -> Result<(), ScoreError> {
    let err = |e: hound::Error| ScoreError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let spec = hound::WavSpec {
        channels: CHANNELS as u16,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(err)?;
    for &s in samples {
        writer.write_sample(s).map_err(err)?;
    }
    writer.finalize().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timetags_round_trip_every_frame_exactly() {
        for rate in [8_000u32, 44_100, 48_000, 96_000, 192_000] {
            for frame in (0..3 * u64::from(rate))
                .step_by(997)
                .chain([u64::from(rate) * 3600 * 24 + 17])
            {
                assert_eq!(
                    timetag_to_frame(frame_to_timetag(frame, rate), rate),
                    frame,
                    "rate {rate} frame {frame}"
                );
            }
        }
    }
}
