//! The real-time path never allocates. Its own test binary, as it swaps in a
//! counting global allocator.

use chronus_dsp::{CHANNELS, Command, Engine, VoiceParam};

#[test]
fn render_and_apply_do_not_allocate() {
    let mut engine = Engine::new(48_000, 16);
    let mut out = vec![0.0; 256 * CHANNELS];
    let commands: Vec<Command> = (0..16)
        .flat_map(|voice| {
            [
                Command::Gate { voice, on: true },
                Command::SetVoice {
                    voice,
                    param: VoiceParam::Freq,
                    value: 100.0 + f32::from(voice),
                },
                Command::SetVoice {
                    voice,
                    param: VoiceParam::Sustain,
                    value: 0.2,
                },
            ]
        })
        .chain([Command::Fade {
            gain: 0.5,
            seconds: 0.01,
        }])
        .collect();
    let info = allocation_counter::measure(|| {
        for cmd in &commands {
            engine.apply(cmd);
            engine.render(&mut out);
        }
        for _ in 0..100 {
            engine.render(&mut out);
        }
    });
    assert_eq!(info.count_total, 0);
    assert!(out.iter().any(|&s| s != 0.0), "rendered nothing audible");
}
