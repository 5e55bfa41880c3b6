//! `chronusd render` on scores written by hand: timing, duration and refusals.

use chronus_e2e::chronusd_exe;
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
    let timetag = OscTime {
        seconds: whole as u32,
        fractional: ((seconds - whole) * 4_294_967_296.0) as u32,
    };
    let content = messages
        .iter()
        .map(|(addr, args)| {
            OscPacket::Message(OscMessage {
                addr: (*addr).into(),
                args: args.clone(),
            })
        })
        .collect();
    prefixed(&OscPacket::Bundle(OscBundle { timetag, content }))
}

/// `packet` with its int32 length prefix, as a score holds it.
fn prefixed(packet: &OscPacket) -> Vec<u8> {
    let bytes = chronus_osc::encode(packet);
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend(bytes);
    out
}

fn render(score: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(chronusd_exe())
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

/// A journal's first bundle: `/chronus/journal sample_rate num_voices format`.
fn header_with(args: Vec<OscType>) -> Vec<u8> {
    bundle(0.0, &[("/chronus/journal", args)])
}

fn header(rate: i32, voices: i32) -> Vec<u8> {
    header_with(vec![
        OscType::Int(rate),
        OscType::Int(voices),
        OscType::String("chronus-journal-1".into()),
    ])
}

/// A note that sounds: something for a crafted score to follow.
fn note() -> Vec<u8> {
    bundle(0.0, &[("/gate/voice1", vec![OscType::Int(1)])])
}

/// `chronusd render` with its address space limited to `bytes` (setrlimit in the child).
fn render_within(score: &Path, out: &Path, extra: &[&str], bytes: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(chronusd_exe());
    command
        .arg("render")
        .arg(score)
        .arg("--out")
        .arg(out)
        .args(extra);
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setrlimit, which is async-signal-safe, on a value copied into it.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command.output().unwrap()
}

/// Asserts a clean refusal: exit 65 (not a panic's 101, an abort's 134 or a signal),
/// one line of stderr containing every one of `says`, and no output file.
fn assert_refused(name: &str, rendered: &Output, out: &Path, says: &[&str]) {
    let stderr = String::from_utf8_lossy(&rendered.stderr);
    assert_eq!(rendered.status.code(), Some(65), "{name}: {rendered:?}");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: {stderr}");
    for word in says {
        assert!(stderr.contains(word), "{name}: no {word:?} in {stderr}");
    }
    assert!(
        !out.exists(),
        "{name}: refused, yet {} was written",
        out.display()
    );
}

/// Writes `bytes` as a score, renders it with `extra` and asserts a clean refusal.
fn refused(name: &str, bytes: &[u8], extra: &[&str], says: &[&str]) {
    let dir = scratch(name);
    let score = dir.join("score.osc");
    std::fs::write(&score, bytes).unwrap();
    let out = dir.join("out.wav");
    assert_refused(name, &render(&score, &out, extra), &out, says);
}

const RATES: &str = "expected an integer from 8000 to 192000";
const VOICES: &str = "expected an integer from 1 to 16";

#[test]
fn a_header_sample_rate_of_zero_is_refused() {
    let score = [header(0, 4), note()].concat();
    refused("rate-zero", &score, &[], &["sample rate 0", RATES]);
}

#[test]
fn a_header_sample_rate_of_2_31_minus_1_is_refused_within_1_gib_of_address_space() {
    let dir = scratch("rate-huge");
    let score = dir.join("score.osc");
    std::fs::write(&score, [header(i32::MAX, 4), note()].concat()).unwrap();
    let out = dir.join("out.wav");
    let rendered = render_within(&score, &out, &[], 1 << 30);
    assert_refused(
        "rate-huge",
        &rendered,
        &out,
        &["sample rate 2147483647", RATES],
    );
}

#[test]
fn a_negative_header_sample_rate_is_refused() {
    let score = [header(-48_000, 4), note()].concat();
    refused("rate-negative", &score, &[], &["sample rate -48000", RATES]);
}

#[test]
fn a_header_sample_rate_just_above_the_accepted_range_is_refused() {
    let score = [header(192_001, 4), note()].concat();
    refused("rate-above", &score, &[], &["sample rate 192001", RATES]);
}

#[test]
fn a_header_of_zero_voices_is_refused() {
    let score = [header(48_000, 0), note()].concat();
    refused("voices-zero", &score, &[], &["voice count 0", VOICES]);
}

#[test]
fn a_header_of_more_voices_than_the_daemon_runs_is_refused() {
    let score = [header(48_000, 17), note()].concat();
    refused("voices-17", &score, &[], &["voice count 17", VOICES]);
}

#[test]
fn a_header_of_another_format_is_refused() {
    let score = header_with(vec![
        OscType::Int(48_000),
        OscType::Int(4),
        OscType::String("chronus-journal-99".into()),
    ]);
    refused(
        "format",
        &score,
        &[],
        &["\"chronus-journal-99\"", "expected \"chronus-journal-1\""],
    );
}

#[test]
fn a_header_with_arguments_of_the_wrong_types_is_refused() {
    let score = header_with(vec![OscType::Float(48_000.0), OscType::Float(4.0)]);
    refused(
        "header-types",
        &score,
        &[],
        &["sample_rate i, num_voices i"],
    );
}

#[test]
fn a_second_header_further_on_is_refused() {
    let score = [header(48_000, 4), note(), header(8_000, 4)].concat();
    refused(
        "header-twice",
        &score,
        &[],
        &["only as the score's first message"],
    );
}

#[test]
fn a_length_prefix_of_2_31_is_refused_before_anything_is_allocated() {
    let mut score = header(48_000, 4);
    score.extend(0x8000_0000u32.to_be_bytes());
    score.extend([0; 16]);
    refused(
        "prefix-2-31",
        &score,
        &[],
        &["bundle length 2147483648", "at most 67108864 bytes"],
    );
}

#[test]
fn a_length_prefix_of_u32_max_is_refused() {
    let score = [note(), u32::MAX.to_be_bytes().to_vec()].concat();
    refused("prefix-max", &score, &[], &["bundle length 4294967295"]);
}

#[test]
fn a_zero_length_bundle_is_refused() {
    let score = [note(), vec![0; 4]].concat();
    refused("prefix-zero", &score, &[], &["empty packet"]);
}

#[test]
fn a_bundle_cut_short_by_the_end_of_the_file_is_refused() {
    let mut score = note();
    score.truncate(score.len() - 4);
    refused(
        "cut-short",
        &score,
        &[],
        &["bundle of 44 bytes runs past the end (40 bytes left)"],
    );
}

#[test]
fn a_length_prefix_cut_short_by_the_end_of_the_file_is_refused() {
    let score = [note(), vec![0, 0]].concat();
    refused(
        "prefix-cut",
        &score,
        &[],
        &["truncated length prefix: 2 of 4 bytes"],
    );
}

#[test]
fn trailing_garbage_after_the_last_bundle_is_refused() {
    let score = [note(), b"garbage after the score".to_vec()].concat();
    refused(
        "garbage",
        &score,
        &[],
        &["bundle length", "at most 67108864 bytes"],
    );
}

#[test]
fn a_bare_message_in_place_of_a_bundle_is_refused() {
    let message = OscPacket::Message(OscMessage {
        addr: "/gate/voice1".into(),
        args: vec![OscType::Int(1)],
    });
    let score = [note(), prefixed(&message)].concat();
    refused(
        "bare",
        &score,
        &[],
        &["expected a bundle, found a bare message"],
    );
}

#[test]
fn bundles_nested_deeper_than_the_decoder_accepts_are_refused() {
    let mut packet = OscPacket::Message(OscMessage {
        addr: "/gate/voice1".into(),
        args: vec![OscType::Int(1)],
    });
    for _ in 0..9 {
        packet = OscPacket::Bundle(OscBundle {
            timetag: OscTime {
                seconds: 0,
                fractional: 0,
            },
            content: vec![packet],
        });
    }
    refused(
        "nested",
        &prefixed(&packet),
        &[],
        &["nesting deeper than 8"],
    );
}

/// `/chronus/speech offset gain duck blob`.
fn speech(offset: i32, blob: Vec<u8>) -> Vec<u8> {
    bundle(
        0.0,
        &[(
            "/chronus/speech",
            vec![
                OscType::Int(offset),
                OscType::Float(1.0),
                OscType::Float(0.5),
                OscType::Blob(blob),
            ],
        )],
    )
}

#[test]
fn speech_beyond_the_speech_area_is_refused_without_allocating_up_to_it() {
    let dir = scratch("speech-offset");
    let score = dir.join("score.osc");
    let bytes = [header(48_000, 4), speech(i32::MAX, vec![0; 16])].concat();
    std::fs::write(&score, bytes).unwrap();
    let out = dir.join("out.wav");
    // Growing the area to that offset would take 8 GiB.
    let rendered = render_within(&score, &out, &[], 1 << 30);
    assert_refused(
        "speech-offset",
        &rendered,
        &out,
        &[
            "/chronus/speech",
            "offset 2147483647",
            "holds 2880000 samples",
        ],
    );
}

#[test]
fn a_speech_blob_of_partial_samples_is_refused() {
    let score = [header(48_000, 4), speech(0, vec![0; 6])].concat();
    refused(
        "speech-blob",
        &score,
        &[],
        &["blob of 6 bytes is not whole f32 samples"],
    );
}

#[test]
fn an_encoded_command_blob_that_does_not_decode_is_refused() {
    let score = bundle(
        0.5,
        &[("/chronus/cmd", vec![OscType::Blob(vec![0xff; 300])])],
    );
    refused(
        "cmd-blob",
        &score,
        &[],
        &["command at 0.500000 s is not accepted"],
    );
}

#[test]
fn an_event_at_the_largest_timetag_is_refused_without_a_length_and_ignored_with_one() {
    let far = OscPacket::Bundle(OscBundle {
        timetag: OscTime {
            seconds: u32::MAX,
            fractional: u32::MAX,
        },
        content: vec![OscPacket::Message(OscMessage {
            addr: "/gate/voice1".into(),
            args: vec![OscType::Int(0)],
        })],
    });
    let score = [header(48_000, 4), note(), prefixed(&far)].concat();
    refused(
        "far-timetag",
        &score,
        &[],
        &[
            "after its last event (at 4294967296.000 s)",
            "at most 3600 s",
        ],
    );

    let dir = scratch("far-timetag-duration");
    let path = dir.join("score.osc");
    std::fs::write(&path, &score).unwrap();
    let out = dir.join("out.wav");
    let rendered = render(&path, &out, &["--duration", "0.5"]);
    assert!(rendered.status.success(), "{rendered:?}");
    let samples = read(&out);
    assert_eq!(samples.len(), 24_000 * 2);
    assert!(peak(&samples) > 0.05, "the note before it does not sound");
}

#[test]
fn a_nan_duration_is_refused() {
    refused(
        "duration-nan",
        &note(),
        &["--duration", "NaN"],
        &["--duration NaN", "0 or more"],
    );
}

#[test]
fn an_infinite_duration_is_refused() {
    refused(
        "duration-inf",
        &note(),
        &["--duration", "inf"],
        &["--duration inf", "0 or more"],
    );
}

#[test]
fn a_duration_of_1e300_seconds_is_refused() {
    refused(
        "duration-huge",
        &note(),
        &["--duration", "1e300"],
        &["--duration 1e300", "at most 3600 s"],
    );
}

#[test]
fn a_frame_count_of_u64_max_is_refused() {
    let frames = u64::MAX.to_string();
    refused(
        "frames-max",
        &note(),
        &["--frames", &frames],
        &[
            "--frames 18446744073709551615",
            "at most 3600 s (172800000 frames at 48000 Hz)",
        ],
    );
}

#[test]
fn a_render_longer_than_a_wav_file_holds_is_refused_at_192_khz() {
    // An hour of 192 kHz stereo f32 is 5.5 GB; a WAV file's sizes stop at 4 GiB.
    let score = [header(192_000, 4), note()].concat();
    refused(
        "wav-limit",
        &score,
        &["--duration", "3000"],
        &[
            "--duration 3000",
            "at most 2796.1 s (536870399 frames at 192000 Hz)",
        ],
    );
}

#[test]
fn a_default_sample_rate_of_zero_is_refused() {
    refused(
        "flag-rate",
        &note(),
        &["--sample-rate", "0"],
        &["--sample-rate", "sample rate 0", RATES],
    );
}

#[test]
fn a_default_voice_count_outside_the_accepted_range_is_refused() {
    refused(
        "flag-voices",
        &note(),
        &["--voices", "0"],
        &["--voices", "voice count 0", VOICES],
    );
}

#[test]
fn a_long_render_is_written_as_it_is_rendered_within_64_mib_of_address_space() {
    let dir = scratch("render-streams");
    let score = dir.join("score.osc");
    std::fs::write(&score, note()).unwrap();
    // Four minutes of stereo f32 is 92 MB: more than the whole process may map.
    let out = dir.join("out.wav");
    let rendered = render_within(&score, &out, &["--duration", "240"], 64 << 20);
    assert!(rendered.status.success(), "{rendered:?}");
    let reader = hound::WavReader::open(&out).unwrap();
    assert_eq!(reader.duration(), 240 * RATE);
}
