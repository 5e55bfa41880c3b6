//! `chronusd render` on scores written by hand: timing, duration and refusals.

use chronus_osc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RATE: u32 = 48_000;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chronus-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A bundle at `seconds` from the start holding `messages`, length-prefixed.
fn bundle(seconds: f64, messages: &[(&str, Vec<OscType>)]) -> Vec<u8> {
    let whole = seconds.floor();
    let packet = OscPacket::Bundle(OscBundle {
        timetag: OscTime {
            seconds: whole as u32,
            fractional: ((seconds - whole) * 4_294_967_296.0) as u32,
        },
        content: messages
            .iter()
            .map(|(addr, args)| {
                OscPacket::Message(OscMessage {
                    addr: (*addr).into(),
                    args: args.clone(),
                })
            })
            .collect(),
    });
    let bytes = chronus_osc::encode(&packet);
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend(bytes);
    out
}

fn render(score: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chronusd"))
        .arg("render")
        .arg(score)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn read(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().sample_rate, RATE);
    assert_eq!(reader.spec().channels, 2);
    reader.samples::<f32>().map(Result::unwrap).collect()
}

fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0, |m, s| m.max(s.abs()))
}

#[test]
fn a_hand_written_score_plays_its_notes_at_their_times_for_the_duration_asked() {
    let dir = scratch("render-score");
    let score = dir.join("score.osc");
    let mut bytes = bundle(
        0.0,
        &[
            ("/mod/voice1/freq", vec![OscType::Float(440.0)]),
            ("/mod/voice1/adsr/release", vec![OscType::Float(0.05)]),
        ],
    );
    bytes.extend(bundle(0.25, &[("/gate/voice1", vec![OscType::Int(1)])]));
    bytes.extend(bundle(0.75, &[("/gate/voice1", vec![OscType::Int(0)])]));
    std::fs::write(&score, bytes).unwrap();
    let out = dir.join("out.wav");
    let rendered = render(&score, &out, &["--duration", "1.5"]);
    assert!(rendered.status.success(), "{rendered:?}");
    let samples = read(&out);
    assert_eq!(samples.len(), 72_000 * 2, "1.5 s at 48 kHz, stereo");
    let frames = |from: f64, to: f64| {
        &samples[(from * f64::from(RATE)) as usize * 2..(to * f64::from(RATE)) as usize * 2]
    };
    // Silent exactly until the gate's frame, sounding while it is open, silent after the release.
    assert_eq!(peak(frames(0.0, 0.25)), 0.0);
    assert!(peak(frames(0.3, 0.7)) > 0.05, "the note is not there");
    assert!(peak(frames(1.0, 1.5)) < 1e-4, "the note did not end");
    let first = samples.iter().position(|s| *s != 0.0).unwrap() / 2;
    assert_eq!(first, 12_000, "the gate opens on the frame of its timetag");

    // Without --duration the render runs 2 s past the last event; the same command renders
    // the same samples.
    let again = dir.join("again.wav");
    assert!(render(&score, &again, &[]).status.success());
    let longer = read(&again);
    assert_eq!(longer.len(), (36_000 + 96_000) * 2);
    assert_eq!(&longer[..samples.len()], &samples[..]);
}

#[test]
fn bad_scores_and_durations_are_refused_naming_what_is_wrong() {
    let dir = scratch("render-bad");
    let out = dir.join("out.wav");
    let cases: Vec<(&str, Vec<u8>, Vec<&str>, &str)> = vec![
        (
            "truncated",
            vec![0, 0, 0, 40, 1, 2],
            vec![],
            "runs past the end",
        ),
        (
            "unknown-address",
            bundle(0.0, &[("/mod/voice1/nothing", vec![OscType::Float(1.0)])]),
            vec![],
            "/mod/voice1/nothing",
        ),
        (
            "negative",
            bundle(0.0, &[]),
            vec!["--duration=-1"],
            "--duration",
        ),
        (
            "too-long",
            bundle(0.0, &[]),
            vec!["--duration", "100000"],
            "at most 3600 s",
        ),
    ];
    for (name, bytes, extra, says) in cases {
        let score = dir.join(format!("{name}.osc"));
        std::fs::write(&score, bytes).unwrap();
        let rendered = render(&score, &out, &extra);
        let stderr = String::from_utf8_lossy(&rendered.stderr);
        assert_eq!(rendered.status.code(), Some(65), "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
    }
    let missing = render(&dir.join("missing.osc"), &out, &[]);
    assert_eq!(missing.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing.osc"));
}
