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

#[test]
fn sequencer_effects_and_every_command_do_not_allocate() {
    use chronus_dsp::{Control, Notes, Pattern, Track, TrackName};

    let mut engine = Engine::new(48_000, 16);
    let mut out = vec![0.0; 256 * CHANNELS];
    let name = |i: usize| TrackName::new(&format!("track{i}")).unwrap();
    let mut commands: Vec<Command> = Control::ALL
        .iter()
        .map(|&control| Command::Set {
            control,
            value: control.spec().default * 0.9 + control.bounds().max * 0.1,
        })
        .collect();
    for (i, voice) in (0..16u8).enumerate() {
        let mut track = Track::new(name(i), voice, Pattern::parse("X.x.xx.x.").unwrap());
        track.notes = Notes::parse("C3,E3,G3,220.0,57").unwrap();
        track.filter_freq = Some(900.0);
        commands.extend([
            Command::SetVoice {
                voice,
                param: VoiceParam::Osc,
                value: f32::from(voice % 6),
            },
            Command::SetVoice {
                voice,
                param: VoiceParam::SendReverb,
                value: 0.5,
            },
            Command::SeqAdd(track),
        ]);
    }
    commands.extend([
        Command::SeqRun { on: true },
        Command::SeqPattern {
            track: name(3),
            pattern: Pattern::parse("xxxx").unwrap(),
        },
        Command::SeqNotes {
            track: name(4),
            notes: Notes::EMPTY,
        },
        Command::SeqRemove { track: name(5) },
        Command::SeqRun { on: false },
        Command::SeqRun { on: true },
        Command::SeqClear,
    ]);
    let (setup, tail) = commands.split_at(commands.len() - 7);
    let info = allocation_counter::measure(|| {
        for cmd in setup {
            engine.apply(cmd);
        }
        for _ in 0..200 {
            engine.render(&mut out);
        }
        for cmd in tail {
            engine.apply(cmd);
            engine.render(&mut out);
        }
    });
    assert_eq!(info.count_total, 0);
    assert_eq!(engine.params().seq.tracks.len(), 0);
    assert!(out.iter().any(|&s| s != 0.0), "rendered nothing audible");
}

#[test]
fn speech_playback_does_not_allocate() {
    let mut engine = Engine::new(48_000, 4);
    let area: Vec<f32> = (0..48_000).map(|i| (i as f32 * 0.01).sin() * 0.3).collect();
    let mut out = vec![0.0; 256 * CHANNELS];
    let info = allocation_counter::measure(|| {
        engine.apply(&Command::Gate { voice: 0, on: true });
        engine.apply(&Command::Speak {
            offset: 0,
            frames: 24_000,
            gain: 1.0,
            duck: 0.3,
        });
        for _ in 0..50 {
            engine.render_with(&mut out, &area);
        }
        engine.apply(&Command::SpeakStop);
        for _ in 0..50 {
            engine.render_with(&mut out, &area);
        }
    });
    assert_eq!(info.count_total, 0);
}

#[test]
fn checkpoints_save_and_restore_without_allocating() {
    use chronus_dsp::demo::{Value, full_patch};
    use chronus_dsp::dialect::{Arg, parse};
    use chronus_dsp::{Pattern, Track, TrackName};

    let mut engine = Engine::new(48_000, 16);
    engine.keep_history(4096);
    for m in full_patch(16) {
        let args: Vec<Arg<'_>> = m.args.iter().map(Value::arg).collect();
        engine.apply(&parse(&m.address, &args, 16).unwrap());
    }
    let mut out = vec![0.0; 256 * CHANNELS];
    engine.render(&mut out);
    let mut cp = engine.checkpoint();
    let name = |i: usize| TrackName::new(&format!("extra{i}")).unwrap();
    let adds: Vec<Command> = (0..8)
        .map(|i| Command::SeqAdd(Track::new(name(i), 3, Pattern::parse("x.x").unwrap())))
        .collect();
    let info = allocation_counter::measure(|| {
        for add in &adds {
            engine.save(&mut cp);
            // Tracks added between a save and the restore, and between saves.
            engine.apply(add);
            engine.render(&mut out);
            engine.render(&mut out);
            engine.restore(&cp);
            engine.apply(add);
            engine.render(&mut out);
        }
    });
    assert_eq!(info.count_total, 0);
    assert_eq!(engine.params().seq.tracks.len(), 16 + adds.len());
}
