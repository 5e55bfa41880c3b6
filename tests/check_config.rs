//! `chronusd check-config` with the real binary: the effective configuration with
//! the source of each value, and exit 78 (EX_CONFIG) naming the setting, the value
//! and what is accepted, for an invalid value of every setting.

use chronus_e2e::chronusd_exe;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

fn check_config(env: &[(&str, &str)], config: Option<&str>) -> Output {
    // Tests in this file run in parallel: one directory per call.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let dir = chronus_e2e::scratch(&format!(
        "check-config-{}",
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut cmd = Command::new(chronusd_exe());
    cmd.env_clear().arg("check-config");
    if let Some(toml) = config {
        let file = dir.join("chronus.toml");
        std::fs::write(&file, toml).unwrap();
        cmd.arg("--config").arg(&file);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Every setting: its key, a TOML value it refuses, and the variable with a value it
/// refuses where one exists (an empty variable means "unset", so free text cannot be
/// invalid there).
type EnvCase = Option<(&'static str, &'static str)>;

const INVALID: &[(&str, &str, EnvCase)] = &[
    ("record", "\"\"", None),
    ("journal", "\"\"", None),
    (
        "osc.host",
        "\"localhost:5\"",
        Some(("CHRONUS_OSC_HOST", "not-an-ip")),
    ),
    ("osc.port", "0", Some(("CHRONUS_OSC_PORT", "70000"))),
    (
        "osc.allow",
        "[\"300.1.1.1/8\"]",
        Some(("CHRONUS_OSC_ALLOW", "10.0.0.0/99")),
    ),
    (
        "osc.rate_limit",
        "0",
        Some(("CHRONUS_OSC_RATE_LIMIT", "fast")),
    ),
    (
        "osc.late_bundles",
        "\"skip\"",
        Some(("CHRONUS_OSC_LATE_BUNDLES", "never")),
    ),
    (
        "audio.backend",
        "\"jack\"",
        Some(("CHRONUS_AUDIO_BACKEND", "jack")),
    ),
    (
        "audio.host",
        "\"coreaudio\"",
        Some(("CHRONUS_AUDIO_HOST", "asio")),
    ),
    ("audio.jack_client_name", "\"\"", None),
    ("audio.device", "\"\"", None),
    (
        "audio.sample_rate",
        "7999",
        Some(("CHRONUS_SAMPLE_RATE", "fast")),
    ),
    (
        "audio.buffer_size",
        "8193",
        Some(("CHRONUS_BUFFER_SIZE", "15")),
    ),
    (
        "audio.block_frames",
        "7",
        Some(("CHRONUS_BLOCK_FRAMES", "4097")),
    ),
    (
        "audio.lookahead_blocks",
        "1",
        Some(("CHRONUS_LOOKAHEAD_BLOCKS", "65")),
    ),
    ("audio.pulse_server", "\"\"", None),
    ("engine.num_voices", "17", Some(("CHRONUS_NUM_VOICES", "0"))),
    ("engine.recordings_dir", "\"\"", None),
    ("engine.patterns_dir", "\"\"", None),
    (
        "audio.limiter",
        "\"on\"",
        Some(("CHRONUS_LIMITER", "maybe")),
    ),
    (
        "audio.limiter_ceiling_db",
        "1.0",
        Some(("CHRONUS_LIMITER_CEILING_DB", "-21")),
    ),
    ("viz.enabled", "1", Some(("CHRONUS_VIZ_ENABLED", "maybe"))),
    (
        "viz.host",
        "\"localhost\"",
        Some(("CHRONUS_VIZ_HOST", "localhost")),
    ),
    ("viz.port", "65536", Some(("CHRONUS_VIZ_PORT", "-1"))),
    (
        "metrics.listen",
        "\"localhost:9464\"",
        Some(("CHRONUS_METRICS_LISTEN", "9464")),
    ),
    (
        "workers.hang_timeout_ms",
        "5",
        Some(("CHRONUS_HANG_TIMEOUT_MS", "-1")),
    ),
    (
        "workers.restart_backoff_min_ms",
        "0",
        Some(("CHRONUS_RESTART_BACKOFF_MIN_MS", "x")),
    ),
    (
        "workers.restart_backoff_max_ms",
        "0",
        Some(("CHRONUS_RESTART_BACKOFF_MAX_MS", "1e9")),
    ),
    (
        "log.verbose",
        "\"maybe\"",
        Some(("CHRONUS_VERBOSE", "maybe")),
    ),
    ("log.filter", "\"\\u0001\"", Some(("CHRONUS_LOG", "\u{1}"))),
    (
        "speech.tts.enabled",
        "1",
        Some(("CHRONUS_TTS_ENABLED", "maybe")),
    ),
    (
        "speech.tts.command",
        "[]",
        Some(("CHRONUS_TTS_COMMAND", "espeak-ng \"{text}")),
    ),
    (
        "speech.tts.protocol",
        "\"http\"",
        Some(("CHRONUS_TTS_PROTOCOL", "http")),
    ),
    (
        "speech.tts.engines",
        "0",
        Some(("CHRONUS_TTS_ENGINES", "17")),
    ),
    ("speech.tts.voice", "\"\"", None),
    (
        "speech.tts.cache_entries",
        "-1",
        Some(("CHRONUS_TTS_CACHE_ENTRIES", "10001")),
    ),
    (
        "speech.tts.cache_mb",
        "4097",
        Some(("CHRONUS_TTS_CACHE_MB", "64M")),
    ),
    (
        "speech.tts.timeout_ms",
        "99",
        Some(("CHRONUS_TTS_TIMEOUT_MS", "10s")),
    ),
    ("speech.tts.gain", "2.5", Some(("CHRONUS_TTS_GAIN", "NaN"))),
    ("speech.tts.duck", "-0.5", Some(("CHRONUS_TTS_DUCK", "1.5"))),
    (
        "speech.asr.enabled",
        "\"yes\"",
        Some(("CHRONUS_ASR_ENABLED", "2")),
    ),
    (
        "speech.asr.command",
        "[\"\"]",
        Some(("CHRONUS_ASR_COMMAND", "'' -infile /dev/stdin")),
    ),
    ("speech.asr.grammar", "\"\"", None),
    (
        "speech.asr.rate",
        "7999",
        Some(("CHRONUS_ASR_RATE", "96000")),
    ),
    ("speech.asr.input_device", "\"\"", None),
    ("speech.asr.transcribe_dir", "\"\"", None),
    (
        "speech.tts.uri",
        "\"tcp://127.0.0.1\"",
        Some(("CHRONUS_TTS_URI", "http://127.0.0.1:10200")),
    ),
    (
        "speech.asr.uri",
        "\"unix://relative.sock\"",
        Some(("CHRONUS_ASR_URI", "tcp://host:0")),
    ),
    (
        "speech.asr.silence_ms",
        "50",
        Some(("CHRONUS_ASR_SILENCE_MS", "1s")),
    ),
    (
        "speech.wake.enabled",
        "1",
        Some(("CHRONUS_WAKE_ENABLED", "maybe")),
    ),
    (
        "speech.wake.uri",
        "\"stdio\"",
        Some(("CHRONUS_WAKE_URI", "stdio")),
    ),
    (
        "speech.wake.names",
        "[\"\"]",
        Some(("CHRONUS_WAKE_NAMES", "a\tb")),
    ),
    (
        "speech.wake.then_listen",
        "\"yes\"",
        Some(("CHRONUS_WAKE_THEN_LISTEN", "2")),
    ),
];

fn toml_for(key: &str, value: &str) -> String {
    match key.split_once('.') {
        Some((section, name)) => format!("[{section}]\n{name} = {value}\n"),
        None => format!("{key} = {value}\n"),
    }
}

#[test]
fn every_setting_is_covered_here() {
    let mut keys: Vec<&str> = chronus_config::settings().iter().map(|s| s.key).collect();
    let mut covered: Vec<&str> = INVALID.iter().map(|(k, _, _)| *k).collect();
    keys.sort();
    covered.sort();
    assert_eq!(covered, keys, "add the new setting to INVALID");
}

#[test]
fn an_invalid_value_of_any_setting_exits_78_naming_it() {
    for (key, toml_value, env) in INVALID {
        let out = check_config(&[], Some(&toml_for(key, toml_value)));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(78),
            "{key} = {toml_value}: {stderr}"
        );
        assert!(
            stderr.contains(key),
            "{key} = {toml_value}: message does not name the key: {stderr}"
        );
        assert!(
            stderr.contains("expected") || stderr.contains("accepted"),
            "{key}: says nothing of what is accepted: {stderr}"
        );
        if let Some((var, value)) = env {
            let out = check_config(&[(var, value)], None);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(78), "{var}={value:?}: {stderr}");
            assert!(
                stderr.contains(var),
                "{var}: message does not name the variable: {stderr}"
            );
            let shown = value.escape_debug().to_string();
            assert!(
                stderr.contains(value) || stderr.contains(&shown),
                "{var}: message does not show the value: {stderr}"
            );
        }
    }
}

#[test]
fn check_config_prints_each_value_with_its_source() {
    let out = check_config(
        &[("CHRONUS_OSC_PORT", "6001"), ("CHRONUS_FROBNICATE", "1")],
        Some("[audio]\nblock_frames = 128\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
    };
    assert!(
        line("port").contains("6001") && line("port").contains("CHRONUS_OSC_PORT"),
        "{stdout}"
    );
    assert!(
        line("block_frames").contains("128") && line("block_frames").contains("chronus.toml"),
        "{stdout}"
    );
    assert!(
        line("sample_rate").contains("48000") && line("sample_rate").contains("default"),
        "{stdout}"
    );
    assert!(
        stderr.contains("CHRONUS_FROBNICATE"),
        "unknown variables are warned about by name: {stderr}"
    );
    assert!(
        stdout.contains("\n[speech.tts]\n") && stdout.contains("\n[speech.asr]\n"),
        "nested sections are printed with dotted headers: {stdout}"
    );
    let table = toml::from_str::<toml::Table>(&stdout)
        .unwrap_or_else(|e| panic!("output is not valid TOML: {e}\n{stdout}"));
    assert_eq!(
        table["speech"]["tts"]["command"].as_array().map(Vec::len),
        Some(5),
        "{stdout}"
    );
}

#[test]
fn readme_documents_every_setting() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for s in chronus_config::settings() {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", s.key)))
            .unwrap_or_else(|| panic!("README.md has no table row for {}", s.key));
        assert!(
            row.contains(&format!("`{}`", s.env)),
            "README row for {} does not name {}",
            s.key,
            s.env
        );
        assert!(
            row.contains(&s.accepted()),
            "README row for {} does not say what is accepted",
            s.key
        );
    }
}
