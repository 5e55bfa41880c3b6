//! Parameter state: what the supervisor mirrors and a cold start rebuilds from.
//! It holds everything commands set, the sequencer included, and nothing that
//! depends on the frame a command was applied at.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::command::{Bounds, Command, Control, MASTER_GAIN, VoiceParam};
use crate::limiter::LimiterParams;
use crate::seq::{Grid, MAX_TRACKS, STEPS_PER_BAR, Track};

/// Targets of one voice (not where its smoothers and envelope currently are).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VoiceParams {
    pub freq: f32,
    pub amp: f32,
    pub slide_time: f32,
    pub attack: f32,
    pub decay: f32,
    pub sustain: f32,
    pub release: f32,
    pub gate: bool,
    /// Waveform code (see [`VoiceParam::Osc`]).
    pub osc: u8,
    pub filter_freq: f32,
    pub filter_q: f32,
    pub send_reverb: f32,
    pub send_delay: f32,
}

impl Default for VoiceParams {
    fn default() -> VoiceParams {
        VoiceParams {
            freq: 440.0,
            amp: 0.3,
            slide_time: 0.0,
            attack: 0.01,
            decay: 0.1,
            sustain: 0.7,
            release: 0.5,
            gate: false,
            osc: 0,
            filter_freq: 1000.0,
            filter_q: 2.0,
            send_reverb: 0.0,
            send_delay: 0.0,
        }
    }
}

impl VoiceParams {
    pub fn get(&self, param: VoiceParam) -> f32 {
        match param {
            VoiceParam::Osc => f32::from(self.osc),
            param => *self.field(param).unwrap_or(&0.0),
        }
    }

    /// Stores a normalized value.
    fn set(&mut self, param: VoiceParam, value: f32) {
        match param {
            VoiceParam::Osc => self.osc = value as u8,
            param => {
                if let Some(field) = self.field_mut(param) {
                    *field = value;
                }
            }
        }
    }

    fn field(&self, param: VoiceParam) -> Option<&f32> {
        Some(match param {
            VoiceParam::Freq => &self.freq,
            VoiceParam::Amp => &self.amp,
            VoiceParam::SlideTime => &self.slide_time,
            VoiceParam::Attack => &self.attack,
            VoiceParam::Decay => &self.decay,
            VoiceParam::Sustain => &self.sustain,
            VoiceParam::Release => &self.release,
            VoiceParam::FilterFreq => &self.filter_freq,
            VoiceParam::FilterQ => &self.filter_q,
            VoiceParam::SendReverb => &self.send_reverb,
            VoiceParam::SendDelay => &self.send_delay,
            VoiceParam::Osc => return None,
        })
    }

    fn field_mut(&mut self, param: VoiceParam) -> Option<&mut f32> {
        Some(match param {
            VoiceParam::Freq => &mut self.freq,
            VoiceParam::Amp => &mut self.amp,
            VoiceParam::SlideTime => &mut self.slide_time,
            VoiceParam::Attack => &mut self.attack,
            VoiceParam::Decay => &mut self.decay,
            VoiceParam::Sustain => &mut self.sustain,
            VoiceParam::Release => &mut self.release,
            VoiceParam::FilterFreq => &mut self.filter_freq,
            VoiceParam::FilterQ => &mut self.filter_q,
            VoiceParam::SendReverb => &mut self.send_reverb,
            VoiceParam::SendDelay => &mut self.send_delay,
            VoiceParam::Osc => return None,
        })
    }
}

/// The 303-style path on voice2: drive into a resonant ladder low-pass whose
/// cutoff follows its own decaying envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AcidParams {
    pub cutoff: f32,
    pub res: f32,
    pub env_amount: f32,
    pub decay: f32,
    pub drive: f32,
    pub mix: f32,
    pub vol_comp: f32,
    pub accent: f32,
    pub cutoff_offset: f32,
    pub res_accent_boost: f32,
    pub accent_decay: f32,
}

impl Default for AcidParams {
    fn default() -> AcidParams {
        AcidParams {
            cutoff: Control::AcidCutoff.default_value(),
            res: Control::AcidRes.default_value(),
            env_amount: Control::AcidEnvAmount.default_value(),
            decay: Control::AcidDecay.default_value(),
            drive: Control::AcidDrive.default_value(),
            mix: Control::AcidMix.default_value(),
            vol_comp: Control::AcidVolComp.default_value(),
            accent: Control::AcidAccent.default_value(),
            cutoff_offset: Control::AcidCutoffOffset.default_value(),
            res_accent_boost: Control::AcidResAccentBoost.default_value(),
            accent_decay: Control::AcidAccentDecay.default_value(),
        }
    }
}

/// Master insert distortion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DistParams {
    pub drive: f32,
    pub mix: f32,
    pub tone: f32,
}

impl Default for DistParams {
    fn default() -> DistParams {
        DistParams {
            drive: Control::DistDrive.default_value(),
            mix: Control::DistMix.default_value(),
            tone: Control::DistTone.default_value(),
        }
    }
}

/// The Freeverb bus fed by the voices' reverb sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReverbParams {
    pub mix: f32,
    pub room: f32,
    pub damp: f32,
}

impl Default for ReverbParams {
    fn default() -> ReverbParams {
        ReverbParams {
            mix: Control::ReverbMix.default_value(),
            room: Control::ReverbRoom.default_value(),
            damp: Control::ReverbDamp.default_value(),
        }
    }
}

/// The delay bus fed by the voices' delay sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DelayParams {
    pub time: f32,
    pub feedback: f32,
    pub mix: f32,
    pub lowcut: f32,
    pub highcut: f32,
}

impl Default for DelayParams {
    fn default() -> DelayParams {
        DelayParams {
            time: Control::DelayTime.default_value(),
            feedback: Control::DelayFeedback.default_value(),
            mix: Control::DelayMix.default_value(),
            lowcut: Control::DelayLowcut.default_value(),
            highcut: Control::DelayHighcut.default_value(),
        }
    }
}

/// A sine LFO: lfo1 sweeps voice2's cutoff, lfo2 voice3's amplitude.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LfoParams {
    pub rate: f32,
    pub depth: f32,
}

impl LfoParams {
    fn lfo1() -> LfoParams {
        LfoParams {
            rate: Control::Lfo1Rate.default_value(),
            depth: Control::Lfo1Depth.default_value(),
        }
    }

    fn lfo2() -> LfoParams {
        LfoParams {
            rate: Control::Lfo2Rate.default_value(),
            depth: Control::Lfo2Depth.default_value(),
        }
    }
}

/// The sequencer: its tracks, timing and whether it runs. Where it is at a
/// given frame follows from these alone (see [`crate::seq`]).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeqParams {
    pub bpm: f32,
    pub swing: f32,
    /// Default gate length of a hit, as a fraction of a step.
    pub gate_length: f32,
    pub running: bool,
    /// In the order they were added; at most [`MAX_TRACKS`].
    pub tracks: Vec<Track>,
}

impl Default for SeqParams {
    fn default() -> SeqParams {
        SeqParams {
            bpm: Control::SeqBpm.default_value(),
            swing: Control::SeqSwing.default_value(),
            gate_length: Control::SeqGateLength.default_value(),
            running: false,
            tracks: Vec::new(),
        }
    }
}

/// By hand for `clone_from`, which reuses the tracks' allocation (a checkpoint's
/// save and restore never allocate).
impl Clone for SeqParams {
    fn clone(&self) -> SeqParams {
        SeqParams {
            tracks: self.tracks.clone(),
            ..*self
        }
    }

    fn clone_from(&mut self, source: &SeqParams) {
        let SeqParams {
            bpm,
            swing,
            gate_length,
            running,
            tracks,
        } = source;
        (self.bpm, self.swing, self.gate_length, self.running) =
            (*bpm, *swing, *gate_length, *running);
        self.tracks.clone_from(tracks);
    }
}

impl SeqParams {
    pub(crate) fn grid(&self, sample_rate: u32) -> Grid {
        Grid::new(self.bpm, self.swing, sample_rate)
    }

    /// The global step (a 16th; patterns play position `step mod length`)
    /// that starts at or after `frame`.
    pub fn step_from(&self, frame: u64, sample_rate: u32) -> u64 {
        self.grid(sample_rate).first_step_from(frame)
    }

    /// The frame global step `step` starts at.
    pub fn step_frame(&self, step: u64, sample_rate: u32) -> u64 {
        self.grid(sample_rate).step_frame(step)
    }

    /// The first bar line (a step that is a multiple of 16) at or after
    /// `frame`, for changes that should land on the bar.
    pub fn next_bar_frame(&self, frame: u64, sample_rate: u32) -> u64 {
        let grid = self.grid(sample_rate);
        let step = grid.first_step_from(frame).next_multiple_of(STEPS_PER_BAR);
        grid.step_frame(step)
    }

    fn track_mut(&mut self, name: &crate::TrackName) -> Option<&mut Track> {
        self.tracks.iter_mut().find(|t| t.name == *name)
    }
}

/// The whole parameter state: every voice's targets and gate, the master gain,
/// the shared modules and the sequencer.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub voices: Vec<VoiceParams>,
    pub master_gain: f32,
    #[serde(default)]
    pub acid: AcidParams,
    #[serde(default)]
    pub dist: DistParams,
    #[serde(default)]
    pub reverb: ReverbParams,
    #[serde(default)]
    pub delay: DelayParams,
    #[serde(default = "LfoParams::lfo1")]
    pub lfo1: LfoParams,
    #[serde(default = "LfoParams::lfo2")]
    pub lfo2: LfoParams,
    #[serde(default)]
    pub seq: SeqParams,
    /// A daemon setting rather than music: no command changes it, and loading a
    /// pattern leaves it alone.
    #[serde(default)]
    pub limiter: LimiterParams,
}

/// By hand for `clone_from`, which reuses the voices' and tracks' allocations
/// (a checkpoint's save and restore never allocate).
impl Clone for Params {
    fn clone(&self) -> Params {
        let mut clone = Params::new(0);
        clone.clone_from(self);
        clone
    }

    fn clone_from(&mut self, source: &Params) {
        let Params {
            voices,
            master_gain,
            acid,
            dist,
            reverb,
            delay,
            lfo1,
            lfo2,
            seq,
            limiter,
        } = source;
        self.voices.clone_from(voices);
        self.master_gain = *master_gain;
        self.acid.clone_from(acid);
        self.dist.clone_from(dist);
        self.reverb.clone_from(reverb);
        self.delay.clone_from(delay);
        self.lfo1.clone_from(lfo1);
        self.lfo2.clone_from(lfo2);
        self.seq.clone_from(seq);
        self.limiter = *limiter;
    }
}

impl Params {
    /// `num_voices` voices at their defaults, gates closed, master gain 1,
    /// modules at their defaults, the sequencer stopped and empty, the limiter on
    /// at its default ceiling.
    pub fn new(num_voices: u8) -> Params {
        Params {
            voices: vec![VoiceParams::default(); usize::from(num_voices)],
            master_gain: 1.0,
            acid: AcidParams::default(),
            dist: DistParams::default(),
            reverb: ReverbParams::default(),
            delay: DelayParams::default(),
            lfo1: LfoParams::lfo1(),
            lfo2: LfoParams::lfo2(),
            seq: SeqParams::default(),
            limiter: LimiterParams::default(),
        }
    }

    pub fn control(&self, control: Control) -> f32 {
        match control {
            Control::AcidCutoff => self.acid.cutoff,
            Control::AcidRes => self.acid.res,
            Control::AcidEnvAmount => self.acid.env_amount,
            Control::AcidDecay => self.acid.decay,
            Control::AcidDrive => self.acid.drive,
            Control::AcidMix => self.acid.mix,
            Control::AcidVolComp => self.acid.vol_comp,
            Control::AcidAccent => self.acid.accent,
            Control::AcidCutoffOffset => self.acid.cutoff_offset,
            Control::AcidResAccentBoost => self.acid.res_accent_boost,
            Control::AcidAccentDecay => self.acid.accent_decay,
            Control::DistDrive => self.dist.drive,
            Control::DistMix => self.dist.mix,
            Control::DistTone => self.dist.tone,
            Control::ReverbMix => self.reverb.mix,
            Control::ReverbRoom => self.reverb.room,
            Control::ReverbDamp => self.reverb.damp,
            Control::DelayTime => self.delay.time,
            Control::DelayFeedback => self.delay.feedback,
            Control::DelayMix => self.delay.mix,
            Control::DelayLowcut => self.delay.lowcut,
            Control::DelayHighcut => self.delay.highcut,
            Control::Lfo1Rate => self.lfo1.rate,
            Control::Lfo1Depth => self.lfo1.depth,
            Control::Lfo2Rate => self.lfo2.rate,
            Control::Lfo2Depth => self.lfo2.depth,
            Control::SeqBpm => self.seq.bpm,
            Control::SeqSwing => self.seq.swing,
            Control::SeqGateLength => self.seq.gate_length,
        }
    }

    fn control_mut(&mut self, control: Control) -> &mut f32 {
        match control {
            Control::AcidCutoff => &mut self.acid.cutoff,
            Control::AcidRes => &mut self.acid.res,
            Control::AcidEnvAmount => &mut self.acid.env_amount,
            Control::AcidDecay => &mut self.acid.decay,
            Control::AcidDrive => &mut self.acid.drive,
            Control::AcidMix => &mut self.acid.mix,
            Control::AcidVolComp => &mut self.acid.vol_comp,
            Control::AcidAccent => &mut self.acid.accent,
            Control::AcidCutoffOffset => &mut self.acid.cutoff_offset,
            Control::AcidResAccentBoost => &mut self.acid.res_accent_boost,
            Control::AcidAccentDecay => &mut self.acid.accent_decay,
            Control::DistDrive => &mut self.dist.drive,
            Control::DistMix => &mut self.dist.mix,
            Control::DistTone => &mut self.dist.tone,
            Control::ReverbMix => &mut self.reverb.mix,
            Control::ReverbRoom => &mut self.reverb.room,
            Control::ReverbDamp => &mut self.reverb.damp,
            Control::DelayTime => &mut self.delay.time,
            Control::DelayFeedback => &mut self.delay.feedback,
            Control::DelayMix => &mut self.delay.mix,
            Control::DelayLowcut => &mut self.delay.lowcut,
            Control::DelayHighcut => &mut self.delay.highcut,
            Control::Lfo1Rate => &mut self.lfo1.rate,
            Control::Lfo1Depth => &mut self.lfo1.depth,
            Control::Lfo2Rate => &mut self.lfo2.rate,
            Control::Lfo2Depth => &mut self.lfo2.depth,
            Control::SeqBpm => &mut self.seq.bpm,
            Control::SeqSwing => &mut self.seq.swing,
            Control::SeqGateLength => &mut self.seq.gate_length,
        }
    }

    /// Applies `cmd` exactly as [`crate::Engine::apply`] does to its parameters:
    /// values clamped, non-finite commands and unknown voices ignored. Never
    /// allocates once `seq.tracks` has room for [`MAX_TRACKS`].
    pub fn apply(&mut self, cmd: &Command) {
        let Some(cmd) = cmd.normalized() else {
            return;
        };
        match cmd {
            Command::SetVoice {
                voice,
                param,
                value,
            } => {
                if let Some(v) = self.voices.get_mut(usize::from(voice)) {
                    v.set(param, value);
                }
            }
            Command::Gate { voice, on } => {
                if let Some(v) = self.voices.get_mut(usize::from(voice)) {
                    v.gate = on;
                }
            }
            Command::Fade { gain, .. } => self.master_gain = gain,
            Command::Set { control, value } => *self.control_mut(control) = value,
            Command::SeqAdd(track) => {
                if usize::from(track.voice) >= self.voices.len() {
                    return;
                }
                let tracks = &mut self.seq.tracks;
                if let Some(existing) = tracks.iter_mut().find(|t| t.name == track.name) {
                    *existing = track;
                } else if tracks.len() < MAX_TRACKS {
                    tracks.push(track);
                }
            }
            Command::SeqRemove { track } => self.seq.tracks.retain(|t| t.name != track),
            Command::SeqClear => self.seq.tracks.clear(),
            Command::SeqRun { on } => {
                self.seq.running = on;
                if !on {
                    for v in &mut self.voices {
                        v.gate = false;
                    }
                }
            }
            Command::SeqPattern { track, pattern } => {
                if let Some(t) = self.seq.track_mut(&track) {
                    t.pattern = pattern;
                }
            }
            Command::SeqNotes { track, notes } => {
                if let Some(t) = self.seq.track_mut(&track) {
                    t.notes = notes;
                }
            }
            // Speech is a transient playback, not a parameter: a cold start from the
            // mirror begins without it (its samples may be overwritten by then).
            Command::Speak { .. } | Command::SpeakStop => {}
        }
    }

    /// A copy whose values are all finite and in range (NaN/Inf become the
    /// default), for parameters that came from a snapshot or another process.
    /// Tracks for missing voices, or beyond [`MAX_TRACKS`], are dropped.
    pub fn sanitized(&self) -> Params {
        let defaults = VoiceParams::default();
        let mut out = self.clone();
        for v in &mut out.voices {
            for param in VoiceParam::ALL {
                let value = sanitize(v.get(param), param.bounds(), defaults.get(param));
                v.set(param, value);
            }
        }
        out.master_gain = sanitize(self.master_gain, MASTER_GAIN, 1.0);
        out.limiter = self.limiter.sanitized();
        for control in Control::ALL {
            let value = out.control_mut(control);
            *value = sanitize(*value, control.bounds(), control.default_value());
        }
        let voices = out.voices.len();
        let mut tracks = Vec::with_capacity(MAX_TRACKS);
        tracks.extend(
            self.seq
                .tracks
                .iter()
                .filter_map(|t| match Command::SeqAdd(*t).normalized() {
                    Some(Command::SeqAdd(t)) if usize::from(t.voice) < voices => Some(t),
                    _ => None,
                })
                .take(MAX_TRACKS),
        );
        out.seq.tracks = tracks;
        out
    }

    /// Commands that bring an engine with as many voices, from any state, to
    /// these parameters (for loading a saved pattern): the sequencer's tracks,
    /// timing and transport, every module, every voice and its gate, and the
    /// master gain (at once).
    pub fn commands(&self) -> Vec<Command> {
        let mut out = vec![Command::SeqClear];
        out.extend(self.seq.tracks.iter().map(|t| Command::SeqAdd(*t)));
        out.extend(Control::ALL.into_iter().map(|control| Command::Set {
            control,
            value: self.control(control),
        }));
        // Stopping closes every gate, so the gates come after it.
        out.push(Command::SeqRun {
            on: self.seq.running,
        });
        for (i, v) in self.voices.iter().enumerate() {
            let voice = i as u8;
            out.extend(VoiceParam::ALL.into_iter().map(|param| Command::SetVoice {
                voice,
                param,
                value: v.get(param),
            }));
            out.push(Command::Gate { voice, on: v.gate });
        }
        out.push(Command::Fade {
            gain: self.master_gain,
            seconds: 0.0,
        });
        out
    }

    /// One line describing the sequencer, for status replies: whether it runs,
    /// tempo, swing, gate length and each track.
    pub fn seq_summary(&self) -> String {
        let seq = &self.seq;
        let mut s = format!(
            "{}, {} bpm, swing {}, gate {}, {} track{}",
            if seq.running { "running" } else { "stopped" },
            seq.bpm,
            seq.swing,
            seq.gate_length,
            seq.tracks.len(),
            if seq.tracks.len() == 1 { "" } else { "s" },
        );
        for (i, t) in seq.tracks.iter().enumerate() {
            let _ = write!(
                s,
                "{} {} voice{} {} ({} steps",
                if i == 0 { ":" } else { ";" },
                t.name,
                u16::from(t.voice) + 1,
                t.pattern,
                t.pattern.steps().len()
            );
            if let Some(f) = t.base_freq {
                let _ = write!(s, ", {f} Hz");
            }
            if let Some(f) = t.filter_freq {
                let _ = write!(s, ", filter {f} Hz");
            }
            if let Some(g) = t.gate {
                let _ = write!(s, ", gate {g}");
            }
            if !t.notes.is_empty() {
                let _ = write!(s, ", {} notes", t.notes.as_slice().len());
            }
            s.push(')');
        }
        s
    }
}

fn sanitize(value: f32, bounds: Bounds, default: f32) -> f32 {
    if value.is_finite() {
        bounds.clamp(value)
    } else {
        default
    }
}
