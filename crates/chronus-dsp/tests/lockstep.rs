//! Lockstep determinism: output depends only on the starting state and on which
//! commands are applied before which absolute frame.

use chronus_dsp::{CHANNELS, Command, Engine, Params, VoiceParam};
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
    prop::collection::vec((0..FRAMES, command()), 0..40).prop_map(|mut s| {
        s.sort_by_key(|(frame, _)| *frame);
        s
    })
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
