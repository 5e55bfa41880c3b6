//! The device buffer, block and lookahead a run uses: the settings where given,
//! otherwise what suits the sound system found at start.

use chronus_config::AudioConfig;

/// Frames in each of the three, resolved once before the shared region is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The device buffer asked of the sound system (JACK's period under JACK).
    pub buffer_frames: u32,
    pub block_frames: u32,
    /// How far workers render ahead of the play position.
    pub lookahead_frames: u64,
}

/// Bounds of the automatic block: half a device buffer, so that a command waits at
/// most half a buffer for the block it lands in.
const AUTO_BLOCK_MIN: u32 = 32;
const AUTO_BLOCK_MAX: u32 = 256;
/// The furthest `auto` renders ahead (21 ms at 48 kHz), unless two buffers need more.
const AUTO_REACH: u64 = 1024;

impl Timing {
    /// `host_buffer` is the device buffer the sound system calls for (the JACK
    /// server's period, or the host's default) and `fixed` whether it overrides
    /// `audio.buffer_size` (JACK decides its period).
    pub fn resolve(audio: &AudioConfig, host_buffer: u32, fixed: bool) -> Timing {
        let buffer_frames = match audio.buffer_size {
            Some(asked) if !fixed => asked,
            _ => host_buffer,
        };
        let block_frames = audio
            .block_frames
            .unwrap_or((buffer_frames / 2).clamp(AUTO_BLOCK_MIN, AUTO_BLOCK_MAX));
        let bf = u64::from(block_frames);
        // When the timeline starts, ALSA fills its whole buffer (two periods) in one
        // go. Steady, two buffers leave a worker a whole period to render the next
        // one while a fork or a scheduler hiccup holds it: fewer underran in kill
        // drills at 64-frame periods. Small buffers get four: the callback wakes a
        // worker when its ring holds no more than the next callback, so workers then
        // wake every third period, a third of the wake-ups. Untimed commands land a
        // callback past the device's position however far workers are (see
        // `CmdLog`), but each renders in what lies beyond: past AUTO_REACH frames
        // that costs more than the wake-ups it saves.
        let buffers = |n: u64| (n * u64::from(buffer_frames)).div_ceil(bf).max(2) * bf;
        let least = buffers(2);
        let auto = buffers(4).min(AUTO_REACH.div_ceil(bf) * bf).max(least);
        let lookahead_frames = audio
            .lookahead_blocks
            .map_or(auto, |blocks| (u64::from(blocks) * bf).max(least));
        Timing {
            buffer_frames,
            block_frames,
            lookahead_frames,
        }
    }

    /// Whether `audio.lookahead_blocks` was raised to what the device buffer needs.
    pub fn raised_lookahead(&self, audio: &AudioConfig) -> bool {
        audio.lookahead_blocks.is_some_and(|blocks| {
            u64::from(blocks) * u64::from(self.block_frames) < self.lookahead_frames
        })
    }

    /// Blocks in each ring: the lookahead, the largest device callback and slack.
    pub fn ring_blocks(&self) -> u32 {
        let bf = u64::from(self.block_frames);
        (((self.lookahead_frames + u64::from(self.buffer_frames) * 2) / bf + 8) as u32).max(16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(buffer: Option<u32>, block: Option<u32>, lookahead: Option<u32>) -> AudioConfig {
        let mut audio = chronus_config::Config::default().audio;
        audio.buffer_size = buffer;
        audio.block_frames = block;
        audio.lookahead_blocks = lookahead;
        audio
    }

    #[test]
    fn auto_renders_four_small_buffers_ahead_and_two_large_ones() {
        for (buffer, block, lookahead) in [
            (64, 32, 256),
            (256, 128, 1024),
            (512, 256, 1024),
            (1024, 256, 2048),
            (2048, 256, 4096),
            (16, 32, 64),
        ] {
            let t = Timing::resolve(&audio(None, None, None), buffer, false);
            assert_eq!(
                (t.buffer_frames, t.block_frames, t.lookahead_frames),
                (buffer, block, lookahead),
                "host buffer {buffer}"
            );
        }
    }

    #[test]
    fn a_set_buffer_wins_over_the_hosts_unless_the_server_fixes_it() {
        let set = audio(Some(128), None, None);
        assert_eq!(Timing::resolve(&set, 1024, false).buffer_frames, 128);
        assert_eq!(Timing::resolve(&set, 1024, true).buffer_frames, 1024);
    }

    #[test]
    fn a_set_lookahead_is_kept_when_enough_and_raised_when_short() {
        let long = audio(Some(256), Some(256), Some(8));
        let t = Timing::resolve(&long, 1024, false);
        assert_eq!(t.lookahead_frames, 2048);
        assert!(!t.raised_lookahead(&long));
        let short = audio(Some(1024), Some(256), Some(2));
        let t = Timing::resolve(&short, 256, false);
        assert_eq!(t.lookahead_frames, 2048);
        assert!(t.raised_lookahead(&short));
    }

    #[test]
    fn the_ring_holds_the_lookahead_and_two_device_buffers() {
        let t = Timing::resolve(&audio(Some(1024), Some(64), None), 0, false);
        assert!(u64::from(t.ring_blocks()) * 64 >= t.lookahead_frames + 2 * 1024);
    }
}
