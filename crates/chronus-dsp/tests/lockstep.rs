//! Lockstep determinism: output depends only on the starting state and on which
//! commands are applied before which absolute frame.

use chronus_dsp::{
    CHANNELS, Command, Control, Engine, Notes, Params, Pattern, Track, TrackName, VoiceParam,
};
use proptest::prelude::*;

/// Low rate so that envelope and smoothing times span few frames.
const SR: u32 = 8_000;
const VOICES: u8 = 4;
const FRAMES: usize = 6_000;

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -0.1f32..1.2,
        2 => 20.0f32..5000.0,
        1 => any::<f32>(),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => (0..VOICES + 2, prop::sample::select(VoiceParam::ALL.to_vec()), value())
            .prop_map(|(voice, param, value)| Command::SetVoice { voice, param, value }),
        3 => (0..VOICES + 2, any::<bool>()).prop_map(|(voice, on)| Command::Gate { voice, on }),
        1 => (value(), value()).prop_map(|(gain, seconds)| Command::Fade { gain, seconds }),
    ]
}

/// Commands with the frame they take effect at, in order.
fn schedule() -> impl Strategy<Value = Vec<(usize, Command)>> {
    timed(command())
}

fn timed(command: impl Strategy<Value = Command>) -> impl Strategy<Value = Vec<(usize, Command)>> {
    prop::collection::vec((0..FRAMES, command), 0..40).prop_map(|mut s| {
        s.sort_by_key(|(frame, _)| *frame);
        s
    })
}

fn track_name() -> impl Strategy<Value = TrackName> {
    prop::sample::select(vec!["a", "b", "c"]).prop_map(|n| TrackName::new(n).unwrap())
}

fn track() -> impl Strategy<Value = Track> {
    (
        track_name(),
        0..VOICES + 1,
        "[Xx.]{1,9}",
        prop::option::of(value()),
        prop::option::of(value()),
        prop::option::of(value()),
        prop::collection::vec(value(), 0..4),
    )
        .prop_map(
            |(name, voice, pattern, base_freq, filter_freq, gate, notes)| Track {
                name,
                voice,
                pattern: Pattern::parse(&pattern).unwrap(),
                base_freq,
                filter_freq,
                gate,
                notes: Notes::new(&notes).unwrap(),
            },
        )
}

/// Any command at all: voices, modules, effects and the sequencer.
fn any_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => command(),
        3 => (prop::sample::select(Control::ALL.to_vec()), value())
            .prop_map(|(control, value)| Command::Set { control, value }),
        2 => track().prop_map(Command::SeqAdd),
        1 => track_name().prop_map(|track| Command::SeqRemove { track }),
        1 => Just(Command::SeqClear),
        2 => any::<bool>().prop_map(|on| Command::SeqRun { on }),
        1 => (track_name(), "[Xx.]{1,7}").prop_map(|(track, p)| Command::SeqPattern {
            track,
            pattern: Pattern::parse(&p).unwrap(),
        }),
        1 => (track_name(), prop::collection::vec(value(), 0..5)).prop_map(|(track, hz)| {
            Command::SeqNotes { track, notes: Notes::new(&hz).unwrap() }
        }),
    ]
}

/// Every effect on and a sequence running: the whole patch.
fn whole_patch() -> Vec<Command> {
    let set = |voice, param, value| Command::SetVoice {
        voice,
        param,
        value,
    };
    let control = |control, value| Command::Set { control, value };
    let mut patch = vec![
        control(Control::DistMix, 0.5),
        control(Control::DistDrive, 0.7),
        control(Control::DelayTime, 0.05),
        control(Control::DelayFeedback, 0.7),
        control(Control::Lfo1Depth, 0.8),
        control(Control::Lfo1Rate, 7.0),
        control(Control::Lfo2Depth, 0.8),
        control(Control::Lfo2Rate, 9.0),
        control(Control::AcidAccent, 1.0),
        control(Control::AcidRes, 0.9),
        control(Control::AcidCutoffOffset, 700.0),
        control(Control::AcidResAccentBoost, 0.3),
        control(Control::AcidAccentDecay, 0.03),
        control(Control::SeqBpm, 240.0),
        control(Control::SeqSwing, 0.45),
        Command::SeqRun { on: true },
    ];
    for v in 0..VOICES {
        patch.extend([
            // Saw, square, triangle and pink noise.
            set(v, VoiceParam::Osc, [1.0, 2.0, 6.0, 4.0][usize::from(v)]),
            set(v, VoiceParam::SendReverb, 0.6),
            set(v, VoiceParam::SendDelay, 0.6),
            set(v, VoiceParam::Attack, 0.002),
            set(v, VoiceParam::SlideTime, 0.01),
        ]);
        let name = ["a", "b", "c", "d"][usize::from(v)];
        let mut t = Track::new(
            TrackName::new(name).unwrap(),
            v,
            Pattern::parse(&"X.x.xx."[..3 + usize::from(v)]).unwrap(),
        );
        t.notes = Notes::new(&[110.0, 220.0, 330.0]).unwrap();
        t.filter_freq = Some(600.0);
        patch.push(Command::SeqAdd(t));
    }
    patch
}

fn patched(mut engine: Engine) -> Engine {
    for cmd in whole_patch() {
        engine.apply(&cmd);
    }
    engine
}

/// Renders `FRAMES` frames in chunks of the given sizes (cycled), cutting a chunk
/// short where a command is due.
fn render(mut engine: Engine, schedule: &[(usize, Command)], chunks: &[usize]) -> Vec<u32> {
    let start = engine.frame();
    let mut out = vec![0.0; FRAMES * CHANNELS];
    let mut pending = schedule.iter().peekable();
    let mut chunks = chunks.iter().cycle();
    let mut pos = 0;
    while pos < FRAMES {
        while let Some((_, cmd)) = pending.next_if(|(frame, _)| *frame == pos) {
            engine.apply(cmd);
        }
        let next_cmd = pending.peek().map_or(FRAMES, |(frame, _)| *frame);
        let len = (*chunks.next().unwrap()).min(next_cmd - pos);
        engine.render(&mut out[pos * CHANNELS..(pos + len) * CHANNELS]);
        pos += len;
        assert_eq!(engine.frame(), start + pos as u64);
    }
    out.iter().map(|s| s.to_bits()).collect()
}

proptest! {
    #[test]
    fn output_is_independent_of_render_chunking(
        schedule in schedule(),
        chunks in prop::collection::vec(1usize..700, 1..8),
    ) {
        let one_by_one = render(Engine::new(SR, VOICES), &schedule, &[1]);
        let chunked = render(Engine::new(SR, VOICES), &schedule, &chunks);
        prop_assert!(one_by_one == chunked, "chunked output differs");
    }

    #[test]
    fn cold_start_output_is_independent_of_render_chunking(
        setup in prop::collection::vec(command(), 0..20),
        schedule in schedule(),
        chunks in prop::collection::vec(1usize..700, 1..8),
    ) {
        let mut params = Params::new(VOICES);
        for cmd in &setup {
            params.apply(cmd);
        }
        let one_by_one = render(Engine::from_params(SR, &params, 1 << 40), &schedule, &[1]);
        let chunked = render(Engine::from_params(SR, &params, 1 << 40), &schedule, &chunks);
        prop_assert!(one_by_one == chunked, "chunked output differs");
    }

    #[test]
    fn params_apply_mirrors_engine_apply(commands in prop::collection::vec(command(), 0..60)) {
        let mut engine = Engine::new(SR, VOICES);
        let mut params = Params::new(VOICES);
        let mut out = [0.0; 16];
        for cmd in &commands {
            engine.apply(cmd);
            params.apply(cmd);
            engine.render(&mut out);
            prop_assert_eq!(engine.params(), &params);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn whole_patch_output_is_independent_of_render_chunking(
        schedule in timed(any_command()),
        chunks in prop::collection::vec(1usize..700, 1..8),
    ) {
        let one_by_one = render(patched(Engine::new(SR, VOICES)), &schedule, &[1]);
        let chunked = render(patched(Engine::new(SR, VOICES)), &schedule, &chunks);
        prop_assert!(one_by_one == chunked, "chunked output differs");
    }

    #[test]
    fn whole_patch_cold_start_is_independent_of_render_chunking(
        setup in prop::collection::vec(any_command(), 0..30),
        schedule in timed(any_command()),
        chunks in prop::collection::vec(1usize..700, 1..8),
        start in 0u64..1 << 40,
    ) {
        let mut params = patched(Engine::new(SR, VOICES)).params().clone();
        for cmd in &setup {
            params.apply(cmd);
        }
        let one_by_one = render(Engine::from_params(SR, &params, start), &schedule, &[1]);
        let chunked = render(Engine::from_params(SR, &params, start), &schedule, &chunks);
        prop_assert!(one_by_one == chunked, "chunked output differs");
    }

    #[test]
    fn params_apply_mirrors_engine_apply_for_every_command(
        commands in prop::collection::vec(any_command(), 0..80),
    ) {
        let mut engine = Engine::new(SR, VOICES);
        let mut params = Params::new(VOICES);
        let mut out = [0.0; 64];
        for cmd in &commands {
            engine.apply(cmd);
            params.apply(cmd);
            engine.render(&mut out);
            prop_assert_eq!(engine.params(), &params);
        }
    }

    #[test]
    fn cold_starts_from_mirrored_params_are_bit_identical(
        commands in prop::collection::vec(any_command(), 0..40),
        start in 0u64..1 << 40,
    ) {
        let mut mirror = patched(Engine::new(SR, VOICES)).params().clone();
        for cmd in &commands {
            mirror.apply(cmd);
        }
        // Through serde, as a snapshot travels.
        let json = serde_json::to_string(&mirror).unwrap();
        let thawed: Params = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&thawed, &mirror);
        let a = render(Engine::from_params(SR, &mirror, start), &[], &[FRAMES]);
        let b = render(Engine::from_params(SR, &thawed, start), &[], &[257]);
        prop_assert!(a == b, "cold starts differ");
    }
}

#[test]
fn forked_engine_continues_in_lockstep() {
    let mut a = Engine::new(48_000, 2);
    a.apply(&Command::Gate { voice: 0, on: true });
    let mut head = [0.0; 1000];
    a.render(&mut head);
    // A fork is a copy of every value; both must carry on identically.
    let mut b = a.clone();
    let mut tail_a = [0.0; 4096];
    let mut tail_b = [0.0; 4096];
    for (engine, out) in [(&mut a, &mut tail_a), (&mut b, &mut tail_b)] {
        engine.apply(&Command::SetVoice {
            voice: 0,
            param: VoiceParam::Freq,
            value: 97.0,
        });
        engine.render(out);
    }
    assert_eq!(tail_a.map(f32::to_bits), tail_b.map(f32::to_bits));
}
