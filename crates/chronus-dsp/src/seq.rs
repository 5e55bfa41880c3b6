//! The step sequencer: its tracks (fixed-size values, so that commands carrying
//! them fit [`crate::MAX_ENCODED_COMMAND`] and applying them never allocates)
//! and its timeline.
//!
//! The timeline is a pure function of the absolute frame, the tempo and the
//! swing: step `k` (a 16th note) starts at the first frame at or after
//! `k · 15·rate/bpm`, odd steps `swing/2` of a step later, and a track plays its
//! pattern position `k mod length`. Nothing about it depends on when the
//! sequencer was started, so [`crate::Params`] (which never sees frames) holds
//! all of it, a cold start at any frame carries on at exactly the right step,
//! and the supervisor can compute bar boundaries from its mirror. The price: a
//! tempo change while running re-locks onto the new tempo's timeline, where
//! the patterns may be at another position (as with a shared Link timeline).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::command::VoiceParam;
use crate::params::SeqParams;

/// Longest track name, in bytes.
pub const MAX_TRACK_NAME: usize = 16;
/// Longest pattern, in steps (four bars of 16ths).
pub const MAX_STEPS: usize = 64;
/// Most notes a track cycles through.
pub const MAX_NOTES: usize = 32;
/// Most tracks the sequencer holds; further `SeqAdd`s of new names are ignored.
pub const MAX_TRACKS: usize = 32;
/// Steps per bar.
pub const STEPS_PER_BAR: u64 = 16;

/// Velocity of an `X` step and of an `x` step.
pub(crate) const ACCENT_VELOCITY: f64 = 1.0;
pub(crate) const HIT_VELOCITY: f64 = 0.6;
/// How far a track's `filter_freq` is raised per unit of velocity above 0.5,
/// as in the original (an `X` opens the filter 750 Hz further, an `x` 150 Hz).
pub(crate) const ACCENT_CUTOFF_HZ: f32 = 1500.0;

/// Why a track name, pattern or note list was rejected.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum SeqError {
    #[error("track name is empty; use 1..={MAX_TRACK_NAME} bytes")]
    EmptyName,
    #[error("track name \"{0}\" is longer than {MAX_TRACK_NAME} bytes")]
    LongName(String),
    #[error("pattern is empty; use 1..={MAX_STEPS} steps of X (accent), x (hit) or . (rest)")]
    EmptyPattern,
    #[error("pattern has {0} steps; at most {MAX_STEPS} are accepted")]
    LongPattern(usize),
    #[error("pattern step {step} is {found:?}; use X (accent), x (hit) or . (rest)")]
    PatternChar { step: usize, found: char },
    #[error("{0} notes given; at most {MAX_NOTES} are accepted")]
    TooManyNotes(usize),
    #[error(
        "note \"{0}\" is not Hz with a dot (\"220.0\"), a MIDI number (0..=127) or a name like \"C#4\""
    )]
    BadNote(String),
}

/// A track's name: 1..=16 bytes of UTF-8.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackName {
    bytes: [u8; MAX_TRACK_NAME],
    len: u8,
}

impl TrackName {
    pub fn new(name: &str) -> Result<TrackName, SeqError> {
        if name.is_empty() {
            return Err(SeqError::EmptyName);
        }
        if name.len() > MAX_TRACK_NAME {
            return Err(SeqError::LongName(name.to_owned()));
        }
        let mut bytes = [0; MAX_TRACK_NAME];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(TrackName {
            bytes,
            len: name.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only `new` builds names, from a whole &str.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for TrackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TrackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Rest,
    Hit,
    Accent,
}

impl Step {
    pub fn from_char(c: char) -> Option<Step> {
        match c {
            '.' => Some(Step::Rest),
            'x' => Some(Step::Hit),
            'X' => Some(Step::Accent),
            _ => None,
        }
    }

    pub fn as_char(self) -> char {
        match self {
            Step::Rest => '.',
            Step::Hit => 'x',
            Step::Accent => 'X',
        }
    }
}

/// 1..=64 steps, one per 16th note.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    /// Unused steps stay `Rest`, so equal patterns compare equal.
    steps: [Step; MAX_STEPS],
    len: u8,
}

impl Pattern {
    /// Parses `X` (accent), `x` (hit) and `.` (rest).
    pub fn parse(text: &str) -> Result<Pattern, SeqError> {
        let count = text.chars().count();
        if count == 0 {
            return Err(SeqError::EmptyPattern);
        }
        if count > MAX_STEPS {
            return Err(SeqError::LongPattern(count));
        }
        let mut steps = [Step::Rest; MAX_STEPS];
        for (i, c) in text.chars().enumerate() {
            steps[i] = Step::from_char(c).ok_or(SeqError::PatternChar {
                step: i + 1,
                found: c,
            })?;
        }
        Ok(Pattern {
            steps,
            len: count as u8,
        })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps[..usize::from(self.len)]
    }

    /// What plays at global step `k`.
    pub(crate) fn at(&self, k: u64) -> Step {
        self.steps[(k % u64::from(self.len)) as usize]
    }

    /// Hits (and accents) at global steps `0..k`.
    fn hits_before(&self, k: u64) -> u64 {
        let len = u64::from(self.len);
        let hits = |steps: &[Step]| steps.iter().filter(|s| **s != Step::Rest).count() as u64;
        (k / len) * hits(self.steps()) + hits(&self.steps()[..(k % len) as usize])
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.steps()
            .iter()
            .try_for_each(|s| fmt::Write::write_char(f, s.as_char()))
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Up to 32 frequencies in Hz, within the voice frequency range.
#[derive(Clone, Copy, PartialEq)]
pub struct Notes {
    /// Unused entries stay 0, so equal lists compare equal.
    hz: [f32; MAX_NOTES],
    len: u8,
}

impl Notes {
    pub const EMPTY: Notes = Notes {
        hz: [0.0; MAX_NOTES],
        len: 0,
    };

    /// The frequencies as given (see [`crate::Command::normalized`] for what
    /// an engine makes of them).
    pub fn new(hz: &[f32]) -> Result<Notes, SeqError> {
        if hz.len() > MAX_NOTES {
            return Err(SeqError::TooManyNotes(hz.len()));
        }
        let mut notes = Notes::EMPTY;
        notes.hz[..hz.len()].copy_from_slice(hz);
        notes.len = hz.len() as u8;
        Ok(notes)
    }

    /// The same notes clamped into the voice frequency range, or `None` if one
    /// is NaN or infinite.
    pub(crate) fn clamped(&self) -> Option<Notes> {
        let mut notes = *self;
        for hz in &mut notes.hz[..usize::from(self.len)] {
            if !hz.is_finite() {
                return None;
            }
            *hz = VoiceParam::Freq.bounds().clamp(*hz);
        }
        Some(notes)
    }

    /// Parses notes separated by commas or spaces: Hz with a dot (`220.0`),
    /// MIDI numbers (`57`) or names (`A3`, `C#4`, `Eb2`; octave 4 if omitted),
    /// clamped into the voice frequency range.
    pub fn parse(text: &str) -> Result<Notes, SeqError> {
        let mut hz = [0.0; MAX_NOTES];
        let mut count = 0;
        for token in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
        {
            let f = parse_note(token).ok_or_else(|| SeqError::BadNote(token.to_owned()))?;
            if count < MAX_NOTES {
                hz[count] = VoiceParam::Freq.bounds().clamp_f64(f);
            }
            count += 1;
        }
        if count > MAX_NOTES {
            return Err(SeqError::TooManyNotes(count));
        }
        Notes::new(&hz[..count])
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.hz[..usize::from(self.len)]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Notes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A note's frequency in Hz.
fn parse_note(token: &str) -> Option<f64> {
    if token.contains('.') {
        let hz: f64 = token.parse().ok()?;
        return (hz.is_finite() && hz > 0.0).then_some(hz);
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        let midi: u8 = token.parse().ok().filter(|m| *m <= 127)?;
        return Some(midi_hz(i32::from(midi)));
    }
    let mut chars = token.chars();
    let semitone = match chars.next()?.to_ascii_uppercase() {
        'C' => 0,
        'D' => 2,
        'E' => 4,
        'F' => 5,
        'G' => 7,
        'A' => 9,
        'B' => 11,
        _ => return None,
    };
    let rest = chars.as_str();
    let (accidental, octave) = match rest.as_bytes().first() {
        Some(b'#') => (1, &rest[1..]),
        Some(b'b') => (-1, &rest[1..]),
        _ => (0, rest),
    };
    let octave: i32 = if octave.is_empty() {
        4
    } else {
        octave.parse().ok().filter(|o| (-1..=9).contains(o))?
    };
    Some(midi_hz((octave + 1) * 12 + semitone + accidental))
}

fn midi_hz(midi: i32) -> f64 {
    440.0 * 2f64.powf(f64::from(midi - 69) / 12.0)
}

/// One track: which voice it plays, its pattern, and what each hit sets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub name: TrackName,
    /// 0-based voice index.
    pub voice: u8,
    pub pattern: Pattern,
    /// Frequency of every hit when there are no notes; `None` leaves the
    /// voice's own frequency alone.
    pub base_freq: Option<f32>,
    /// Filter cutoff set by every hit (raised on accents); `None` leaves the
    /// voice's own cutoff alone.
    pub filter_freq: Option<f32>,
    /// Gate length as a fraction of a step; `None` uses the sequencer's.
    pub gate: Option<f32>,
    /// Frequencies the hits cycle through (counted from step 0 of the timeline).
    #[serde(default = "empty_notes")]
    pub notes: Notes,
}

fn empty_notes() -> Notes {
    Notes::EMPTY
}

impl Track {
    /// A track with only a voice and a pattern.
    pub fn new(name: TrackName, voice: u8, pattern: Pattern) -> Track {
        Track {
            name,
            voice,
            pattern,
            base_freq: None,
            filter_freq: None,
            gate: None,
            notes: Notes::EMPTY,
        }
    }

    /// Frequency of the hit at global step `k`, if the track sets one.
    pub(crate) fn freq_at(&self, k: u64) -> Option<f32> {
        let notes = self.notes.as_slice();
        if notes.is_empty() {
            return self.base_freq;
        }
        let i = self.pattern.hits_before(k) % notes.len() as u64;
        Some(notes[i as usize])
    }
}

/// Where the sequencer's steps fall, in exact integer arithmetic so that step
/// frames never depend on rounding: tempo and swing are taken in thousandths.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    sample_rate: u128,
    bpm_milli: u128,
    swing_milli: u128,
}

impl Grid {
    /// `bpm` and `swing` are finite and in range (see `Params::sanitized`).
    pub(crate) fn new(bpm: f32, swing: f32, sample_rate: u32) -> Grid {
        Grid {
            sample_rate: u128::from(sample_rate.max(1)),
            bpm_milli: (f64::from(bpm) * 1000.0).round().max(1.0) as u128,
            swing_milli: (f64::from(swing) * 1000.0).round().max(0.0) as u128,
        }
    }

    /// First frame of step `k`: the nominal time `k · 15·rate/bpm`, plus
    /// `swing/2` of a step for odd steps, rounded up to a whole frame.
    pub(crate) fn step_frame(&self, k: u64) -> u64 {
        let swing = if k % 2 == 1 { self.swing_milli } else { 0 };
        let num = 15 * self.sample_rate * (2000 * u128::from(k) + swing);
        let den = 2 * self.bpm_milli;
        u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX)
    }

    /// The first step starting at or after `frame`.
    pub(crate) fn first_step_from(&self, frame: u64) -> u64 {
        // Unswung estimate, then walk: steps are strictly ordered (swing is
        // under a step) but several can share a frame at tiny sample rates.
        let estimate = u128::from(frame) * self.bpm_milli / (15_000 * self.sample_rate);
        let mut k = u64::try_from(estimate)
            .unwrap_or(u64::MAX)
            .saturating_sub(2);
        while k > 0 && self.step_frame(k - 1) >= frame {
            k -= 1;
        }
        while k < u64::MAX && self.step_frame(k) < frame {
            k += 1;
        }
        k
    }

    /// Length of a step in frames.
    pub(crate) fn step_frames(&self) -> f64 {
        15_000.0 * self.sample_rate as f64 / self.bpm_milli as f64
    }
}

/// No event pending.
const NEVER: u64 = u64::MAX;

/// Where the sequencer is: the next step to play and when each voice's
/// sequenced gate closes. After a start or a tempo or swing change it is
/// rebuilt from the parameters and the frame alone, so a cold start lands in
/// the same place as an engine that ran all along.
#[derive(Debug)]
pub(crate) struct Sequencer {
    grid: Grid,
    next_step: u64,
    /// Frame of `next_step`; `NEVER` while stopped.
    next_step_frame: u64,
    /// Per voice, the frame its sequenced gate closes, or `NEVER`.
    gate_off: Vec<u64>,
    /// The earliest of the frames above.
    next_event: u64,
}

/// By hand for `clone_from`, which reuses the gates' allocation (a checkpoint's
/// save and restore never allocate).
impl Clone for Sequencer {
    fn clone(&self) -> Sequencer {
        Sequencer {
            gate_off: self.gate_off.clone(),
            ..*self
        }
    }

    fn clone_from(&mut self, source: &Sequencer) {
        let Sequencer {
            grid,
            next_step,
            next_step_frame,
            gate_off,
            next_event,
        } = source;
        (
            self.grid,
            self.next_step,
            self.next_step_frame,
            self.next_event,
        ) = (*grid, *next_step, *next_step_frame, *next_event);
        self.gate_off.clone_from(gate_off);
    }
}

impl Sequencer {
    pub(crate) fn new(seq: &SeqParams, voices: usize, sample_rate: u32, frame: u64) -> Sequencer {
        let mut s = Sequencer {
            grid: seq.grid(sample_rate),
            next_step: 0,
            next_step_frame: NEVER,
            gate_off: vec![NEVER; voices],
            next_event: NEVER,
        };
        s.resync(seq, sample_rate, frame);
        s
    }

    /// Takes up new timing or a start at `frame`: the next step is the first
    /// one of the timeline at or after it. Pending gate-offs stay.
    pub(crate) fn resync(&mut self, seq: &SeqParams, sample_rate: u32, frame: u64) {
        self.grid = seq.grid(sample_rate);
        if seq.running {
            self.next_step = self.grid.first_step_from(frame);
            // Earlier only if the step index ran out before `frame`.
            let at = self.grid.step_frame(self.next_step);
            self.next_step_frame = if at >= frame { at } else { NEVER };
        } else {
            self.next_step_frame = NEVER;
        }
        self.update_next_event();
    }

    /// Stops stepping and forgets pending gate-offs (the engine closes every gate).
    pub(crate) fn stop(&mut self) {
        self.next_step_frame = NEVER;
        self.gate_off.fill(NEVER);
        self.next_event = NEVER;
    }

    /// The first frame at which the sequencer has something to do.
    pub(crate) fn next_event(&self) -> u64 {
        self.next_event
    }

    /// A voice whose sequenced gate closes at or before `frame`, forgetting it.
    /// The engine takes these before the steps, so that a hit on the same
    /// frame retriggers.
    pub(crate) fn take_gate_off(&mut self, frame: u64) -> Option<usize> {
        let voice = self
            .gate_off
            .iter()
            .position(|&off| off != NEVER && off <= frame)?;
        self.gate_off[voice] = NEVER;
        Some(voice)
    }

    /// The next step if it starts at or before `frame`, moving past it.
    pub(crate) fn take_step(&mut self, frame: u64) -> Option<u64> {
        if self.next_step_frame == NEVER || self.next_step_frame > frame {
            return None;
        }
        let step = self.next_step;
        // The last step index there is ends the timeline (at tiny sample
        // rates that is within reach of the frame counter).
        self.next_step_frame = match step.checked_add(1) {
            Some(next) => {
                self.next_step = next;
                self.grid.step_frame(next)
            }
            None => NEVER,
        };
        Some(step)
    }

    /// Length of a step in frames.
    pub(crate) fn step_frames(&self) -> f64 {
        self.grid.step_frames()
    }

    /// Closes `voice`'s sequenced gate at `frame` (replacing an earlier plan).
    /// Call [`Sequencer::update_next_event`] when done.
    pub(crate) fn gate_off_at(&mut self, voice: usize, frame: u64) {
        if let Some(off) = self.gate_off.get_mut(voice) {
            *off = frame;
        }
    }

    pub(crate) fn update_next_event(&mut self) {
        self.next_event = self
            .gate_off
            .iter()
            .fold(self.next_step_frame, |m, &off| m.min(off));
    }
}

/// Serialized as its text, so snapshots and saved patterns stay readable.
impl Serialize for TrackName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TrackName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TrackName, D::Error> {
        TrackName::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        Pattern::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Notes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Notes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Notes, D::Error> {
        Notes::new(&Vec::<f32>::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_names_midi_numbers_and_hz_are_parsed() {
        let notes = Notes::parse("A4, 69 440.0,C#4,Db4,c-1,B,220.5,9000000.0").unwrap();
        let expected = [
            440.0, 440.0, 440.0, 277.18262, 277.18262, 20.0, 493.8833, 220.5, 5000.0,
        ];
        assert_eq!(notes.as_slice(), expected);
        for bad in ["H2", "C#10", "128", "-3", "1e3", "C##4", "0.0", "NaN."] {
            assert_eq!(
                Notes::parse(bad),
                Err(SeqError::BadNote(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(
            Notes::parse(&"60,".repeat(33)),
            Err(SeqError::TooManyNotes(33))
        );
    }

    #[test]
    fn patterns_accept_only_accent_hit_and_rest() {
        let p = Pattern::parse("X.x.").unwrap();
        assert_eq!(p.steps(), [Step::Accent, Step::Rest, Step::Hit, Step::Rest]);
        assert_eq!(p.to_string(), "X.x.");
        assert_eq!(
            Pattern::parse("x-x"),
            Err(SeqError::PatternChar {
                step: 2,
                found: '-'
            })
        );
        assert_eq!(Pattern::parse(""), Err(SeqError::EmptyPattern));
        assert_eq!(
            Pattern::parse(&".".repeat(65)),
            Err(SeqError::LongPattern(65))
        );
    }

    #[test]
    fn notes_cycle_per_hit_across_pattern_repeats() {
        let mut t = Track::new(
            TrackName::new("t").unwrap(),
            0,
            Pattern::parse("x.xx").unwrap(),
        );
        t.notes = Notes::new(&[100.0, 200.0]).unwrap();
        // Hits at steps 0, 2, 3, 4, 6, 7: notes alternate through them.
        let played: Vec<f32> = [0, 2, 3, 4, 6, 7]
            .iter()
            .map(|&k| t.freq_at(k).unwrap())
            .collect();
        assert_eq!(played, [100.0, 200.0, 100.0, 200.0, 100.0, 200.0]);
    }

    #[test]
    fn grid_finds_the_first_step_at_or_after_any_frame() {
        for (bpm, swing, rate) in [(120.0, 0.0, 48_000), (133.3, 0.6, 44_100), (300.0, 0.3, 1)] {
            let g = Grid::new(bpm, swing, rate);
            for k in [0u64, 1, 2, 3, 1001, 1_000_003] {
                let f = g.step_frame(k);
                assert_eq!(g.step_frame(g.first_step_from(f)), f, "{bpm} {k}");
                let next = g.first_step_from(f + 1);
                assert!(g.step_frame(next) > f && g.step_frame(next - 1) <= f);
            }
        }
        assert_eq!(Grid::new(120.0, 0.5, 48_000).step_frame(3), 19_500);
    }
}
