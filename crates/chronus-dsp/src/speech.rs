//! Speech playback: mono samples read from an external sample area (the shared
//! memory both workers map), mixed over the ducked music.

use crate::smoother::{Ramp, frames};

/// How long the music takes to duck under speech, and to come back after it.
const DUCK_SECONDS: f32 = 0.05;
/// How long a stopped utterance takes to fade out.
const STOP_SECONDS: f32 = 0.01;

/// Where speech samples come from. Both workers read the same area, so what they
/// play is bit-identical; the area is untrusted, so the engine sanitizes its output.
pub trait SpeechSource {
    /// The sample at absolute position `index` of the area (wrapping at its end).
    fn sample(&self, index: u64) -> f32;
}

/// No speech area: every sample is silence (the offline renderer without speech,
/// and tests).
pub struct NoSpeech;

impl SpeechSource for NoSpeech {
    fn sample(&self, _index: u64) -> f32 {
        0.0
    }
}

/// A whole speech area in memory.
impl SpeechSource for Vec<f32> {
    fn sample(&self, index: u64) -> f32 {
        match self.len() as u64 {
            0 => 0.0,
            len => self[(index % len) as usize],
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct SpeechPlayer {
    offset: u64,
    frames: u32,
    pos: u32,
    gain: Ramp,
    duck: Ramp,
    /// Anything to do: an utterance plays or the music is still ducked.
    live: bool,
}

impl SpeechPlayer {
    pub(crate) fn new() -> SpeechPlayer {
        SpeechPlayer {
            offset: 0,
            frames: 0,
            pos: 0,
            gain: Ramp::at(0.0),
            duck: Ramp::at(1.0),
            live: false,
        }
    }

    pub(crate) fn start(&mut self, offset: u32, len: u32, gain: f32, duck: f32, rate: u32) {
        if len == 0 {
            return;
        }
        self.offset = u64::from(offset);
        self.frames = len;
        self.pos = 0;
        self.gain.set_target(gain.into(), 0);
        self.duck
            .set_target(duck.into(), frames(DUCK_SECONDS, rate));
        self.live = true;
    }

    pub(crate) fn stop(&mut self, rate: u32) {
        if self.pos < self.frames {
            self.gain.set_target(0.0, frames(STOP_SECONDS, rate));
        }
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live
    }

    /// One frame: the music ducked and the speech mixed in.
    #[inline]
    pub(crate) fn mix(&mut self, music: f64, source: &dyn SpeechSource, rate: u32) -> f64 {
        let mut speech = 0.0;
        if self.pos < self.frames {
            let gain = self.gain.next();
            speech = f64::from(source.sample(self.offset + u64::from(self.pos))) * gain;
            self.pos += 1;
            // Finished, or faded out by a stop: the music comes back.
            if self.pos == self.frames || (gain == 0.0 && self.gain.is_settled()) {
                self.pos = self.frames;
                self.duck.set_target(1.0, frames(DUCK_SECONDS, rate));
            }
        }
        let duck = self.duck.next();
        if self.pos >= self.frames && self.duck.is_settled() {
            self.live = false;
        }
        music * duck + speech
    }
}
