//! Speech playback: samples from the speech area mixed over ducked music, exactly
//! at the frame the command takes effect, however rendering is split.

use chronus_dsp::{CHANNELS, Command, Engine, NoSpeech, VoiceParam};

const SR: u32 = 48_000;

/// A recognisable clip: a ramp, so every sample differs.
fn clip(frames: usize) -> Vec<f32> {
    (0..frames)
        .map(|i| (i as f32 / frames as f32) * 0.5)
        .collect()
}

fn speak(frames: usize, gain: f32, duck: f32) -> Command {
    Command::Speak {
        offset: 0,
        frames: frames as u32,
        gain,
        duck,
    }
}

/// Renders `total` frames, applying `commands` at their frames, in pieces of `split`.
fn render(area: &Vec<f32>, commands: &[(usize, Command)], total: usize, split: usize) -> Vec<f32> {
    let mut engine = Engine::new(SR, 2);
    let mut out = vec![0.0; total * CHANNELS];
    let mut at = 0;
    let mut pending = commands.iter().peekable();
    while at < total {
        while let Some((_, cmd)) = pending.next_if(|(frame, _)| *frame <= at) {
            engine.apply(cmd);
        }
        let next_cmd = pending.peek().map_or(total, |(frame, _)| *frame);
        let end = (at + split).min(total).min(next_cmd.max(at + 1));
        engine.render_with(&mut out[at * CHANNELS..end * CHANNELS], area);
        at = end;
    }
    out
}

#[test]
fn speech_alone_plays_its_samples_exactly_from_its_frame() {
    let area = clip(1000);
    let out = render(&area, &[(300, speak(1000, 1.0, 1.0))], 2000, 256);
    for frame in 0..2000 {
        let want = if (300..1300).contains(&frame) {
            area[frame - 300]
        } else {
            0.0
        };
        for ch in 0..CHANNELS {
            assert_eq!(out[frame * CHANNELS + ch], want, "frame {frame}");
        }
    }
}

#[test]
fn speech_gain_scales_it() {
    let area = clip(100);
    let out = render(&area, &[(0, speak(100, 0.5, 1.0))], 100, 64);
    for (frame, want) in area.iter().enumerate() {
        assert_eq!(out[frame * CHANNELS], (f64::from(*want) * 0.5) as f32);
    }
}

#[test]
fn music_ducks_under_speech_and_comes_back_after_it() {
    let tone = [
        (
            0,
            Command::SetVoice {
                voice: 0,
                param: VoiceParam::Amp,
                value: 0.5,
            },
        ),
        (0, Command::Gate { voice: 0, on: true }),
    ];
    let silent_area = vec![0.0; 48_000];
    let music = render(&silent_area, &tone, 96_000, 256);
    let mut ducked_cmds = tone.to_vec();
    ducked_cmds.push((24_000, speak(24_000, 1.0, 0.25)));
    let ducked = render(&silent_area, &ducked_cmds, 96_000, 256);
    let peak = |s: &[f32], from: usize, to: usize| {
        s[from * CHANNELS..to * CHANNELS]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()))
    };
    assert_eq!(&music[..24_000 * CHANNELS], &ducked[..24_000 * CHANNELS]);
    // Ducked to a quarter once the 50 ms ramp is over, within the speech.
    let (full, low) = (peak(&music, 30_000, 46_000), peak(&ducked, 30_000, 46_000));
    assert!((low / full - 0.25).abs() < 0.01, "ducked {low} of {full}");
    // Back to exactly the music 50 ms after the speech ended.
    assert_eq!(
        &music[51_000 * CHANNELS..],
        &ducked[51_000 * CHANNELS..],
        "the music comes back untouched"
    );
}

#[test]
fn output_does_not_depend_on_how_rendering_is_split() {
    let area = clip(5000);
    let commands = [
        (10, Command::Gate { voice: 1, on: true }),
        (777, speak(5000, 0.8, 0.3)),
        (3000, Command::SpeakStop),
        (4000, speak(2000, 1.0, 0.5)),
    ];
    let whole = render(&area, &commands, 9000, 9000);
    for split in [1, 17, 64, 170, 256] {
        assert_eq!(
            render(&area, &commands, 9000, split),
            whole,
            "split {split}"
        );
    }
}

#[test]
fn stop_fades_the_speech_out_within_10_ms() {
    let area = vec![0.5; 10_000];
    let out = render(
        &area,
        &[(0, speak(10_000, 1.0, 1.0)), (1000, Command::SpeakStop)],
        10_000,
        256,
    );
    assert_eq!(out[999 * CHANNELS], 0.5);
    assert!(out[1200 * CHANNELS] < 0.5 && out[1200 * CHANNELS] > 0.0);
    assert!(out[(1000 + 480) * CHANNELS..].iter().all(|&s| s == 0.0));
}

#[test]
fn hostile_speech_samples_never_reach_the_device() {
    let area = vec![f32::NAN, f32::INFINITY, -1e30, 7.0];
    let out = render(&area, &[(0, speak(4, 2.0, 1.0))], 8, 8);
    assert!(
        out.iter().all(|s| s.is_finite() && s.abs() <= 1.0),
        "{out:?}"
    );
}

#[test]
fn without_a_speech_area_speech_is_silent() {
    let mut engine = Engine::new(SR, 1);
    engine.apply(&speak(100, 1.0, 1.0));
    let mut out = vec![1.0; 100 * CHANNELS];
    engine.render_with(&mut out, &NoSpeech);
    assert!(out.iter().all(|&s| s == 0.0));
}
