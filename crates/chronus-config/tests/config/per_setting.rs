//! One test per setting: precedence and provenance through every layer, and invalid
//! values from each layer reported with the key or variable, the value and what is
//! accepted.

use std::net::IpAddr;
use std::path::PathBuf;

use chronus_config::{Backend, Cidr, LateBundles, ServiceUri, TtsProtocol};

use crate::common::{
    check_auto_beats_a_number, check_invalid_env, check_invalid_file, check_invalid_override,
    check_layers, non_utf8, os,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter().map(|c| c.parse().unwrap()).collect()
}

fn some_path(s: &str) -> Option<PathBuf> {
    Some(PathBuf::from(s))
}

fn some_string(s: &str) -> Option<String> {
    Some(s.to_owned())
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|&a| a.to_owned()).collect()
}

const BOOL: &str = "true or false (in the environment also 1/0, yes/no, on/off)";

const COMMAND: &str = "a program and its arguments: an array of strings, or one string (as in \
                       the environment) split into arguments at whitespace, single or double \
                       quotes keeping text together (never run through a shell); the program \
                       must be non-empty and no argument may contain NUL";

#[test]
fn record() {
    let accepted = "a non-empty file path";
    check_layers(
        "record",
        "CHRONUS_RECORD",
        |c| c.record.clone(),
        None,
        ("\"/srv/file.wav\"", some_path("/srv/file.wav")),
        ("/srv/env.wav", some_path("/srv/env.wav")),
        ("out.wav", some_path("out.wav")),
    );
    check_invalid_env("CHRONUS_RECORD", accepted, &[non_utf8()]);
    check_invalid_file("record", accepted, &["\"\"", "true"]);
    check_invalid_override("record", accepted, &[""]);
}

#[test]
fn journal() {
    let accepted = "a non-empty file path";
    check_layers(
        "journal",
        "CHRONUS_JOURNAL",
        |c| c.journal.clone(),
        None,
        ("\"/srv/file.osc\"", some_path("/srv/file.osc")),
        ("/srv/env.osc", some_path("/srv/env.osc")),
        ("journal.osc", some_path("journal.osc")),
    );
    check_invalid_env("CHRONUS_JOURNAL", accepted, &[non_utf8()]);
    check_invalid_file("journal", accepted, &["\"\"", "[\"a\"]"]);
    check_invalid_override("journal", accepted, &[""]);
}

#[test]
fn osc_host() {
    let accepted = "an IP address such as 127.0.0.1, 0.0.0.0 or ::1 (not a host name)";
    check_layers(
        "osc.host",
        "CHRONUS_OSC_HOST",
        |c| c.osc.host,
        ip("127.0.0.1"),
        ("\"0.0.0.0\"", ip("0.0.0.0")),
        ("::1", ip("::1")),
        ("192.168.1.10", ip("192.168.1.10")),
    );
    check_invalid_env(
        "CHRONUS_OSC_HOST",
        accepted,
        &os(&["localhost", "256.0.0.1", " 127.0.0.1"]),
    );
    check_invalid_file("osc.host", accepted, &["\"localhost\"", "127"]);
    check_invalid_override("osc.host", accepted, &["", "10.0.0.0/8"]);
}

#[test]
fn osc_port() {
    let accepted = "an integer from 1 to 65535";
    check_layers(
        "osc.port",
        "CHRONUS_OSC_PORT",
        |c| c.osc.port,
        5005,
        ("6001", 6001),
        ("6002", 6002),
        ("65535", 65535),
    );
    check_invalid_env(
        "CHRONUS_OSC_PORT",
        accepted,
        &os(&["0", "65536", "-1", "abc", "5005.0"]),
    );
    check_invalid_file(
        "osc.port",
        accepted,
        &["0", "65536", "-1", "\"5005\"", "5005.0"],
    );
    check_invalid_override("osc.port", accepted, &["0", ""]);
}

#[test]
fn osc_allow() {
    let accepted = "a list of IP networks in CIDR notation such as 192.168.1.0/24 or ::1/128 \
                    (comma-separated in the environment; a bare address is that one host)";
    check_layers(
        "osc.allow",
        "CHRONUS_OSC_ALLOW",
        |c| c.osc.allow.clone(),
        Vec::new(),
        (
            "[\"10.0.0.0/8\", \"::1/128\"]",
            cidrs(&["10.0.0.0/8", "::1/128"]),
        ),
        (
            "192.168.0.0/16, 127.0.0.1",
            cidrs(&["192.168.0.0/16", "127.0.0.1/32"]),
        ),
        ("172.16.0.0/12", cidrs(&["172.16.0.0/12"])),
    );
    check_invalid_env(
        "CHRONUS_OSC_ALLOW",
        accepted,
        &os(&["10.0.0.0/33", "10.0.0.0/8,,::1", "localhost"]),
    );
    check_invalid_file(
        "osc.allow",
        accepted,
        &["\"10.0.0.0/8\"", "[\"10.0.0.0/33\"]", "[8]"],
    );
    check_invalid_override("osc.allow", accepted, &["", "10.0.0.0/8,"]);
}

#[test]
fn osc_rate_limit() {
    let accepted = "an integer from 1 to 1000000";
    check_layers(
        "osc.rate_limit",
        "CHRONUS_OSC_RATE_LIMIT",
        |c| c.osc.rate_limit,
        20_000,
        ("500", 500),
        ("1", 1),
        ("1000000", 1_000_000),
    );
    check_invalid_env(
        "CHRONUS_OSC_RATE_LIMIT",
        accepted,
        &os(&["0", "1000001", "1k", "-1"]),
    );
    check_invalid_file("osc.rate_limit", accepted, &["0", "1000001", "\"100\""]);
    check_invalid_override("osc.rate_limit", accepted, &["", "20000.5"]);
}

#[test]
fn osc_late_bundles() {
    let accepted = "run or drop (case-insensitive)";
    check_layers(
        "osc.late_bundles",
        "CHRONUS_OSC_LATE_BUNDLES",
        |c| c.osc.late_bundles,
        LateBundles::Run,
        ("\"drop\"", LateBundles::Drop),
        ("Run", LateBundles::Run),
        ("DROP", LateBundles::Drop),
    );
    check_invalid_env(
        "CHRONUS_OSC_LATE_BUNDLES",
        accepted,
        &os(&["skip", "late", "0"]),
    );
    check_invalid_file("osc.late_bundles", accepted, &["\"queue\"", "true"]);
    check_invalid_override("osc.late_bundles", accepted, &["", "dropped"]);
}

#[test]
fn audio_backend() {
    let accepted = "auto, cpal or null (case-insensitive)";
    check_layers(
        "audio.backend",
        "CHRONUS_AUDIO_BACKEND",
        |c| c.audio.backend,
        Backend::Auto,
        ("\"cpal\"", Backend::Cpal),
        ("NULL", Backend::Null),
        ("Auto", Backend::Auto),
    );
    check_invalid_env("CHRONUS_AUDIO_BACKEND", accepted, &os(&["alsa", "nul"]));
    check_invalid_file("audio.backend", accepted, &["\"pulse\"", "1"]);
    check_invalid_override("audio.backend", accepted, &[""]);
}

#[test]
fn audio_device() {
    let accepted = "a non-empty string";
    check_layers(
        "audio.device",
        "CHRONUS_AUDIO_DEVICE",
        |c| c.audio.device.clone(),
        None,
        ("\"hw:1\"", some_string("hw:1")),
        ("pulse", some_string("pulse")),
        ("default", some_string("default")),
    );
    check_invalid_env("CHRONUS_AUDIO_DEVICE", accepted, &[non_utf8()]);
    check_invalid_file("audio.device", accepted, &["\"\"", "3"]);
    check_invalid_override("audio.device", accepted, &[""]);
}

#[test]
fn audio_sample_rate() {
    let accepted = "an integer from 8000 to 192000";
    check_layers(
        "audio.sample_rate",
        "CHRONUS_SAMPLE_RATE",
        |c| c.audio.sample_rate,
        48_000,
        ("44100", 44_100),
        ("8000", 8000),
        ("192000", 192_000),
    );
    check_invalid_env(
        "CHRONUS_SAMPLE_RATE",
        accepted,
        &os(&["abc", "7999", "192001", "48k"]),
    );
    check_invalid_file(
        "audio.sample_rate",
        accepted,
        &["7999", "\"48000\"", "48000.0"],
    );
    check_invalid_override("audio.sample_rate", accepted, &["192001"]);
}

#[test]
fn audio_buffer_size() {
    let accepted = "auto or an integer from 16 to 8192";
    check_layers(
        "audio.buffer_size",
        "CHRONUS_BUFFER_SIZE",
        |c| c.audio.buffer_size,
        None,
        ("512", Some(512)),
        ("16", Some(16)),
        ("8192", Some(8192)),
    );
    check_auto_beats_a_number("audio.buffer_size", "CHRONUS_BUFFER_SIZE", |c| {
        c.audio.buffer_size
    });
    check_invalid_env(
        "CHRONUS_BUFFER_SIZE",
        accepted,
        &os(&["15", "8193", "automatic"]),
    );
    check_invalid_file("audio.buffer_size", accepted, &["15", "8193", "\"big\""]);
    check_invalid_override("audio.buffer_size", accepted, &["big"]);
}

#[test]
fn audio_block_frames() {
    let accepted = "auto or an integer from 16 to 4096";
    check_layers(
        "audio.block_frames",
        "CHRONUS_BLOCK_FRAMES",
        |c| c.audio.block_frames,
        None,
        ("128", Some(128)),
        ("4096", Some(4096)),
        ("16", Some(16)),
    );
    check_auto_beats_a_number("audio.block_frames", "CHRONUS_BLOCK_FRAMES", |c| {
        c.audio.block_frames
    });
    check_invalid_env("CHRONUS_BLOCK_FRAMES", accepted, &os(&["7", "4097"]));
    check_invalid_file("audio.block_frames", accepted, &["7", "4097"]);
    check_invalid_override("audio.block_frames", accepted, &["0"]);
}

#[test]
fn audio_lookahead_blocks() {
    let accepted = "auto or an integer from 2 to 64";
    check_layers(
        "audio.lookahead_blocks",
        "CHRONUS_LOOKAHEAD_BLOCKS",
        |c| c.audio.lookahead_blocks,
        None,
        ("8", Some(8)),
        ("64", Some(64)),
        ("2", Some(2)),
    );
    check_auto_beats_a_number("audio.lookahead_blocks", "CHRONUS_LOOKAHEAD_BLOCKS", |c| {
        c.audio.lookahead_blocks
    });
    check_invalid_env("CHRONUS_LOOKAHEAD_BLOCKS", accepted, &os(&["1", "65"]));
    check_invalid_file("audio.lookahead_blocks", accepted, &["1", "65"]);
    check_invalid_override("audio.lookahead_blocks", accepted, &["four"]);
}

#[test]
fn audio_pulse_server() {
    let accepted = "a non-empty string";
    check_layers(
        "audio.pulse_server",
        "CHRONUS_PULSE_SERVER",
        |c| c.audio.pulse_server.clone(),
        None,
        ("\"tcp:audio-box\"", some_string("tcp:audio-box")),
        (
            "unix:/run/pulse/native",
            some_string("unix:/run/pulse/native"),
        ),
        ("tcp:localhost:4713", some_string("tcp:localhost:4713")),
    );
    check_invalid_env("CHRONUS_PULSE_SERVER", accepted, &[non_utf8()]);
    check_invalid_file("audio.pulse_server", accepted, &["\"\"", "false"]);
    check_invalid_override("audio.pulse_server", accepted, &[""]);
}

#[test]
fn audio_limiter() {
    check_layers(
        "audio.limiter",
        "CHRONUS_LIMITER",
        |c| c.audio.limiter,
        true,
        ("false", false),
        ("off", false),
        ("yes", true),
    );
    check_invalid_env("CHRONUS_LIMITER", BOOL, &os(&["2", "limited"]));
    check_invalid_file("audio.limiter", BOOL, &["\"on\"", "0"]);
    check_invalid_override("audio.limiter", BOOL, &["maybe"]);
}

#[test]
fn audio_limiter_ceiling_db() {
    let accepted = "a number from -20.0 to 0.0";
    check_layers(
        "audio.limiter_ceiling_db",
        "CHRONUS_LIMITER_CEILING_DB",
        |c| c.audio.limiter_ceiling_db,
        -1.0,
        // TOML integers are numbers too.
        ("-6", -6.0),
        ("-0.5", -0.5),
        ("0", 0.0),
    );
    check_invalid_env(
        "CHRONUS_LIMITER_CEILING_DB",
        accepted,
        &os(&["0.1", "-20.5", "NaN", "-inf", "-1dB"]),
    );
    check_invalid_file(
        "audio.limiter_ceiling_db",
        accepted,
        &["1", "-21", "nan", "\"-1\"", "true"],
    );
    check_invalid_override("audio.limiter_ceiling_db", accepted, &["", "3"]);
}

#[test]
fn engine_num_voices() {
    let accepted = "an integer from 1 to 16";
    check_layers(
        "engine.num_voices",
        "CHRONUS_NUM_VOICES",
        |c| c.engine.num_voices,
        8,
        ("12", 12),
        ("16", 16),
        ("1", 1),
    );
    // 256 and 300 do not even fit the u8 field: still reported as out of range.
    check_invalid_env("CHRONUS_NUM_VOICES", accepted, &os(&["0", "17", "256"]));
    check_invalid_file("engine.num_voices", accepted, &["0", "300", "-1"]);
    check_invalid_override("engine.num_voices", accepted, &["17"]);
}

#[test]
fn engine_recordings_dir() {
    let accepted = "a non-empty directory path";
    check_layers(
        "engine.recordings_dir",
        "CHRONUS_RECORDINGS_DIR",
        |c| c.engine.recordings_dir.clone(),
        PathBuf::from("/var/lib/chronus/recordings"),
        ("\"/srv/takes\"", PathBuf::from("/srv/takes")),
        ("/srv/env-takes", PathBuf::from("/srv/env-takes")),
        ("takes", PathBuf::from("takes")),
    );
    check_invalid_env("CHRONUS_RECORDINGS_DIR", accepted, &[non_utf8()]);
    check_invalid_file("engine.recordings_dir", accepted, &["\"\"", "1"]);
    check_invalid_override("engine.recordings_dir", accepted, &[""]);
}

#[test]
fn engine_patterns_dir() {
    let accepted = "a non-empty file path";
    check_layers(
        "engine.patterns_dir",
        "CHRONUS_PATTERNS_DIR",
        |c| c.engine.patterns_dir.clone(),
        None,
        ("\"/srv/patterns\"", some_path("/srv/patterns")),
        ("/srv/env-patterns", some_path("/srv/env-patterns")),
        ("patterns", some_path("patterns")),
    );
    check_invalid_env("CHRONUS_PATTERNS_DIR", accepted, &[non_utf8()]);
    check_invalid_file("engine.patterns_dir", accepted, &["\"\"", "7"]);
    check_invalid_override("engine.patterns_dir", accepted, &[""]);
}

#[test]
fn viz_enabled() {
    check_layers(
        "viz.enabled",
        "CHRONUS_VIZ_ENABLED",
        |c| c.viz.enabled,
        true,
        ("false", false),
        ("on", true),
        ("0", false),
    );
    check_invalid_env("CHRONUS_VIZ_ENABLED", BOOL, &os(&["2", "enabled"]));
    check_invalid_file("viz.enabled", BOOL, &["\"true\"", "1"]);
    check_invalid_override("viz.enabled", BOOL, &["maybe"]);
}

#[test]
fn viz_host() {
    let accepted = "an IP address such as 127.0.0.1, 0.0.0.0 or ::1 (not a host name)";
    check_layers(
        "viz.host",
        "CHRONUS_VIZ_HOST",
        |c| c.viz.host,
        ip("127.0.0.1"),
        ("\"10.0.0.2\"", ip("10.0.0.2")),
        ("::1", ip("::1")),
        ("192.168.1.10", ip("192.168.1.10")),
    );
    check_invalid_env("CHRONUS_VIZ_HOST", accepted, &os(&["localhost", "1.2.3"]));
    check_invalid_file("viz.host", accepted, &["\"localhost\"", "127"]);
    check_invalid_override("viz.host", accepted, &[""]);
}

#[test]
fn viz_port() {
    let accepted = "an integer from 0 to 65535";
    check_layers(
        "viz.port",
        "CHRONUS_VIZ_PORT",
        |c| c.viz.port,
        5006,
        ("7000", 7000),
        ("0", 0),
        ("65535", 65535),
    );
    check_invalid_env("CHRONUS_VIZ_PORT", accepted, &os(&["65536", "-1", "off"]));
    check_invalid_file("viz.port", accepted, &["65536", "\"5006\"", "5006.0"]);
    check_invalid_override("viz.port", accepted, &["-5"]);
}

#[test]
fn workers_hang_timeout_ms() {
    let accepted = "an integer from 10 to 60000";
    check_layers(
        "workers.hang_timeout_ms",
        "CHRONUS_HANG_TIMEOUT_MS",
        |c| c.workers.hang_timeout_ms,
        250,
        ("500", 500),
        ("10", 10),
        ("60000", 60_000),
    );
    check_invalid_env(
        "CHRONUS_HANG_TIMEOUT_MS",
        accepted,
        &os(&["9", "60001", "4294967296"]),
    );
    check_invalid_file("workers.hang_timeout_ms", accepted, &["9", "4294967296"]);
    check_invalid_override("workers.hang_timeout_ms", accepted, &["250ms"]);
}

#[test]
fn workers_restart_backoff_min_ms() {
    let accepted = "an integer from 1 to 60000";
    check_layers(
        "workers.restart_backoff_min_ms",
        "CHRONUS_RESTART_BACKOFF_MIN_MS",
        |c| c.workers.restart_backoff_min_ms,
        10,
        ("20", 20),
        ("1", 1),
        ("5000", 5000),
    );
    check_invalid_env(
        "CHRONUS_RESTART_BACKOFF_MIN_MS",
        accepted,
        &os(&["0", "60001"]),
    );
    check_invalid_file("workers.restart_backoff_min_ms", accepted, &["0", "60001"]);
    check_invalid_override("workers.restart_backoff_min_ms", accepted, &["-5"]);
}

#[test]
fn workers_restart_backoff_max_ms() {
    let accepted = "an integer from 1 to 600000";
    check_layers(
        "workers.restart_backoff_max_ms",
        "CHRONUS_RESTART_BACKOFF_MAX_MS",
        |c| c.workers.restart_backoff_max_ms,
        5000,
        ("6000", 6000),
        ("600000", 600_000),
        ("10", 10),
    );
    check_invalid_env(
        "CHRONUS_RESTART_BACKOFF_MAX_MS",
        accepted,
        &os(&["0", "600001"]),
    );
    check_invalid_file("workers.restart_backoff_max_ms", accepted, &["0", "600001"]);
    check_invalid_override("workers.restart_backoff_max_ms", accepted, &["x"]);
}

#[test]
fn log_verbose() {
    let accepted = BOOL;
    check_layers(
        "log.verbose",
        "CHRONUS_VERBOSE",
        |c| c.log.verbose,
        false,
        ("true", true),
        ("Off", false),
        ("yes", true),
    );
    // Each spelling, through the environment.
    for (raw, expected) in [
        ("1", true),
        ("0", false),
        ("TRUE", true),
        ("false", false),
        ("Yes", true),
        ("no", false),
        ("on", true),
        ("OFF", false),
    ] {
        let loaded = crate::common::load_ok(&chronus_config::Sources {
            env: crate::common::env(&[("CHRONUS_VERBOSE", raw)]),
            ..Default::default()
        });
        assert_eq!(loaded.config.log.verbose, expected, "CHRONUS_VERBOSE={raw}");
    }
    check_invalid_env("CHRONUS_VERBOSE", accepted, &os(&["2", "enabled", "y"]));
    // TOML has real booleans; strings and integers are not guessed at.
    check_invalid_file("log.verbose", accepted, &["\"true\"", "1"]);
    check_invalid_override("log.verbose", accepted, &["maybe", ""]);
}

#[test]
fn log_filter() {
    let accepted = "a non-empty tracing filter directive of printable characters, \
                    e.g. info or chronusd=debug,warn";
    check_layers(
        "log.filter",
        "CHRONUS_LOG",
        |c| c.log.filter.clone(),
        None,
        ("\"info\"", some_string("info")),
        ("chronusd=debug", some_string("chronusd=debug")),
        (
            "warn,chronus_osc=trace",
            some_string("warn,chronus_osc=trace"),
        ),
    );
    check_invalid_env("CHRONUS_LOG", accepted, &os(&["info\tdebug", "a\u{7}"]));
    check_invalid_file("log.filter", accepted, &["\"\"", "3"]);
    check_invalid_override("log.filter", accepted, &["", "debug\n"]);
}

#[test]
fn speech_tts_enabled() {
    check_layers(
        "speech.tts.enabled",
        "CHRONUS_TTS_ENABLED",
        |c| c.speech.tts.enabled,
        true,
        ("false", false),
        ("on", true),
        ("0", false),
    );
    check_invalid_env("CHRONUS_TTS_ENABLED", BOOL, &os(&["2", "disabled"]));
    check_invalid_file("speech.tts.enabled", BOOL, &["\"false\"", "0"]);
    check_invalid_override("speech.tts.enabled", BOOL, &["", "nope"]);
}

#[test]
fn speech_tts_command() {
    check_layers(
        "speech.tts.command",
        "CHRONUS_TTS_COMMAND",
        |c| c.speech.tts.command.clone(),
        argv(&["espeak-ng", "--stdout", "-v", "{voice}", "{text}"]),
        ("[\"say\", \"\", \"{text}\"]", argv(&["say", "", "{text}"])),
        (
            "piper  --model '/srv/voices/en lessac.onnx'\t--output_file /dev/stdout",
            argv(&[
                "piper",
                "--model",
                "/srv/voices/en lessac.onnx",
                "--output_file",
                "/dev/stdout",
            ]),
        ),
        (
            "\"/opt/my tts/run\" -v \"\" '{text}'",
            argv(&["/opt/my tts/run", "-v", "", "{text}"]),
        ),
    );
    // A TOML string is split like the environment's.
    let path = crate::common::write_config(
        "speech-tts-command-string",
        "[speech.tts]\ncommand = \"wyoming-piper --voice 'en_GB alan'\"\n",
    );
    let loaded = crate::common::load_ok(&chronus_config::Sources {
        config_file: Some(path),
        ..Default::default()
    });
    assert_eq!(
        loaded.config.speech.tts.command,
        argv(&["wyoming-piper", "--voice", "en_GB alan"])
    );
    // Quotes join with adjacent text and quote each other; nothing else is special.
    for (raw, expected) in [
        ("a\"b c\"d", argv(&["ab cd"])),
        ("say \"it's\" '\"x\"'", argv(&["say", "it's", "\"x\""])),
        ("echo $HOME; rm \\x", argv(&["echo", "$HOME;", "rm", "\\x"])),
        (" espeak-ng ", argv(&["espeak-ng"])),
    ] {
        let loaded = crate::common::load_ok(&chronus_config::Sources {
            overrides: crate::common::overrides(&[("speech.tts.command", raw)]),
            ..Default::default()
        });
        assert_eq!(loaded.config.speech.tts.command, expected, "{raw:?}");
    }
    check_invalid_env(
        "CHRONUS_TTS_COMMAND",
        COMMAND,
        &[
            non_utf8(),
            "   ".into(),
            "espeak-ng \"{text}".into(),
            "'' -v en".into(),
        ],
    );
    check_invalid_file(
        "speech.tts.command",
        COMMAND,
        &[
            "[]",
            "\"\"",
            "[\"\"]",
            "[\"say\", 1]",
            "\"say 'unterminated\"",
            "[\"say\", \"a\\u0000b\"]",
            "3",
        ],
    );
    check_invalid_override("speech.tts.command", COMMAND, &["", "'say", "\"\" x"]);
}

#[test]
fn speech_tts_protocol() {
    let accepted = "oneshot or wyoming (case-insensitive)";
    check_layers(
        "speech.tts.protocol",
        "CHRONUS_TTS_PROTOCOL",
        |c| c.speech.tts.protocol,
        TtsProtocol::OneShot,
        ("\"wyoming\"", TtsProtocol::Wyoming),
        ("OneShot", TtsProtocol::OneShot),
        ("WYOMING", TtsProtocol::Wyoming),
    );
    check_invalid_env("CHRONUS_TTS_PROTOCOL", accepted, &os(&["one-shot", "http"]));
    check_invalid_file("speech.tts.protocol", accepted, &["\"piper\"", "1"]);
    check_invalid_override("speech.tts.protocol", accepted, &[""]);
}

#[test]
fn speech_tts_engines() {
    let accepted = "an integer from 1 to 16";
    check_layers(
        "speech.tts.engines",
        "CHRONUS_TTS_ENGINES",
        |c| c.speech.tts.engines,
        1,
        ("4", 4),
        ("16", 16),
        ("2", 2),
    );
    check_invalid_env("CHRONUS_TTS_ENGINES", accepted, &os(&["0", "17", "two"]));
    check_invalid_file("speech.tts.engines", accepted, &["0", "17", "\"2\""]);
    check_invalid_override("speech.tts.engines", accepted, &["-1"]);
}

#[test]
fn speech_tts_voice() {
    let accepted = "a non-empty string";
    check_layers(
        "speech.tts.voice",
        "CHRONUS_TTS_VOICE",
        |c| c.speech.tts.voice.clone(),
        "en".to_owned(),
        ("\"en-gb\"", "en-gb".to_owned()),
        ("de", "de".to_owned()),
        ("en_US-lessac-medium", "en_US-lessac-medium".to_owned()),
    );
    check_invalid_env("CHRONUS_TTS_VOICE", accepted, &[non_utf8()]);
    check_invalid_file("speech.tts.voice", accepted, &["\"\"", "1"]);
    check_invalid_override("speech.tts.voice", accepted, &[""]);
}

#[test]
fn speech_tts_cache_entries() {
    let accepted = "an integer from 0 to 10000";
    check_layers(
        "speech.tts.cache_entries",
        "CHRONUS_TTS_CACHE_ENTRIES",
        |c| c.speech.tts.cache_entries,
        50,
        ("0", 0),
        ("10000", 10_000),
        ("100", 100),
    );
    check_invalid_env(
        "CHRONUS_TTS_CACHE_ENTRIES",
        accepted,
        &os(&["10001", "-1", "many"]),
    );
    check_invalid_file("speech.tts.cache_entries", accepted, &["10001", "-1"]);
    check_invalid_override("speech.tts.cache_entries", accepted, &["", "5.0"]);
}

#[test]
fn speech_tts_cache_mb() {
    let accepted = "an integer from 0 to 4096";
    check_layers(
        "speech.tts.cache_mb",
        "CHRONUS_TTS_CACHE_MB",
        |c| c.speech.tts.cache_mb,
        64,
        ("128", 128),
        ("0", 0),
        ("4096", 4096),
    );
    check_invalid_env("CHRONUS_TTS_CACHE_MB", accepted, &os(&["4097", "64M"]));
    check_invalid_file("speech.tts.cache_mb", accepted, &["4097", "\"64\""]);
    check_invalid_override("speech.tts.cache_mb", accepted, &["-1"]);
}

#[test]
fn speech_tts_timeout_ms() {
    let accepted = "an integer from 100 to 600000";
    check_layers(
        "speech.tts.timeout_ms",
        "CHRONUS_TTS_TIMEOUT_MS",
        |c| c.speech.tts.timeout_ms,
        10_000,
        ("30000", 30_000),
        ("100", 100),
        ("600000", 600_000),
    );
    check_invalid_env(
        "CHRONUS_TTS_TIMEOUT_MS",
        accepted,
        &os(&["99", "600001", "10s"]),
    );
    check_invalid_file("speech.tts.timeout_ms", accepted, &["99", "600001"]);
    check_invalid_override("speech.tts.timeout_ms", accepted, &["0"]);
}

#[test]
fn speech_tts_gain() {
    let accepted = "a number from 0.0 to 2.0";
    check_layers(
        "speech.tts.gain",
        "CHRONUS_TTS_GAIN",
        |c| c.speech.tts.gain,
        1.0,
        // TOML integers are numbers too.
        ("2", 2.0),
        ("0.5", 0.5),
        ("0", 0.0),
    );
    check_invalid_env(
        "CHRONUS_TTS_GAIN",
        accepted,
        &os(&["2.01", "-0.1", "NaN", "inf", "1,5", "loud"]),
    );
    check_invalid_file(
        "speech.tts.gain",
        accepted,
        &["2.5", "-1", "nan", "inf", "\"1.0\"", "true"],
    );
    check_invalid_override("speech.tts.gain", accepted, &["", "3"]);
}

#[test]
fn speech_tts_duck() {
    let accepted = "a number from 0.0 to 1.0";
    check_layers(
        "speech.tts.duck",
        "CHRONUS_TTS_DUCK",
        |c| c.speech.tts.duck,
        0.3,
        ("0.5", 0.5),
        ("1", 1.0),
        ("0.0", 0.0),
    );
    check_invalid_env("CHRONUS_TTS_DUCK", accepted, &os(&["1.1", "-inf", "30%"]));
    check_invalid_file("speech.tts.duck", accepted, &["1.5", "-0.5", "\"0.3\""]);
    check_invalid_override("speech.tts.duck", accepted, &["half"]);
}

#[test]
fn speech_asr_enabled() {
    check_layers(
        "speech.asr.enabled",
        "CHRONUS_ASR_ENABLED",
        |c| c.speech.asr.enabled,
        true,
        ("false", false),
        ("yes", true),
        ("off", false),
    );
    check_invalid_env("CHRONUS_ASR_ENABLED", BOOL, &os(&["-1", "n"]));
    check_invalid_file("speech.asr.enabled", BOOL, &["\"yes\"", "1"]);
    check_invalid_override("speech.asr.enabled", BOOL, &[""]);
}

#[test]
fn speech_asr_command() {
    check_layers(
        "speech.asr.command",
        "CHRONUS_ASR_COMMAND",
        |c| c.speech.asr.command.clone(),
        argv(&[
            "pocketsphinx_continuous",
            "-infile",
            "/dev/stdin",
            "-logfn",
            "/dev/null",
        ]),
        (
            "\"pocketsphinx live -\"",
            argv(&["pocketsphinx", "live", "-"]),
        ),
        (
            "/usr/local/bin/asr --hmm '/srv/models/en us'",
            argv(&["/usr/local/bin/asr", "--hmm", "/srv/models/en us"]),
        ),
        ("asr", argv(&["asr"])),
    );
    check_invalid_env(
        "CHRONUS_ASR_COMMAND",
        COMMAND,
        &[non_utf8(), "\t".into(), "asr '-infile".into()],
    );
    check_invalid_file(
        "speech.asr.command",
        COMMAND,
        &["[]", "[\"\", \"-infile\"]", "[[\"asr\"]]", "false"],
    );
    check_invalid_override("speech.asr.command", COMMAND, &["", "\"asr"]);
}

#[test]
fn speech_asr_grammar() {
    let accepted = "a non-empty file path";
    check_layers(
        "speech.asr.grammar",
        "CHRONUS_ASR_GRAMMAR",
        |c| c.speech.asr.grammar.clone(),
        None,
        ("\"/srv/commands.jsgf\"", some_path("/srv/commands.jsgf")),
        ("/etc/chronus/env.jsgf", some_path("/etc/chronus/env.jsgf")),
        ("grammar.jsgf", some_path("grammar.jsgf")),
    );
    check_invalid_env("CHRONUS_ASR_GRAMMAR", accepted, &[non_utf8()]);
    check_invalid_file("speech.asr.grammar", accepted, &["\"\"", "[\"a.jsgf\"]"]);
    check_invalid_override("speech.asr.grammar", accepted, &[""]);
}

#[test]
fn speech_asr_rate() {
    let accepted = "an integer from 8000 to 48000";
    check_layers(
        "speech.asr.rate",
        "CHRONUS_ASR_RATE",
        |c| c.speech.asr.rate,
        16_000,
        ("8000", 8000),
        ("48000", 48_000),
        ("22050", 22_050),
    );
    check_invalid_env("CHRONUS_ASR_RATE", accepted, &os(&["7999", "48001", "16k"]));
    check_invalid_file("speech.asr.rate", accepted, &["7999", "16000.0"]);
    check_invalid_override("speech.asr.rate", accepted, &["96000"]);
}

#[test]
fn speech_asr_input_device() {
    let accepted = "a non-empty string";
    check_layers(
        "speech.asr.input_device",
        "CHRONUS_INPUT_DEVICE",
        |c| c.speech.asr.input_device.clone(),
        None,
        ("\"hw:2,0\"", some_string("hw:2,0")),
        ("pulse", some_string("pulse")),
        ("default", some_string("default")),
    );
    check_invalid_env("CHRONUS_INPUT_DEVICE", accepted, &[non_utf8()]);
    check_invalid_file("speech.asr.input_device", accepted, &["\"\"", "2"]);
    check_invalid_override("speech.asr.input_device", accepted, &[""]);
}

#[test]
fn speech_asr_transcribe_dir() {
    let accepted = "a non-empty file path";
    check_layers(
        "speech.asr.transcribe_dir",
        "CHRONUS_ASR_TRANSCRIBE_DIR",
        |c| c.speech.asr.transcribe_dir.clone(),
        None,
        ("\"/srv/takes\"", some_path("/srv/takes")),
        ("/srv/env-takes", some_path("/srv/env-takes")),
        ("takes", some_path("takes")),
    );
    check_invalid_env("CHRONUS_ASR_TRANSCRIBE_DIR", accepted, &[non_utf8()]);
    check_invalid_file("speech.asr.transcribe_dir", accepted, &["\"\"", "[\"a\"]"]);
    check_invalid_override("speech.asr.transcribe_dir", accepted, &[""]);
}

const URI_STDIO: &str =
    "stdio (run the command), tcp://HOST:PORT or unix:///PATH (a running Wyoming service)";

fn tcp(addr: &str) -> ServiceUri {
    ServiceUri::Tcp(addr.into())
}

#[test]
fn speech_tts_uri() {
    check_layers(
        "speech.tts.uri",
        "CHRONUS_TTS_URI",
        |c| c.speech.tts.uri.clone(),
        ServiceUri::Stdio,
        ("\"tcp://127.0.0.1:10200\"", tcp("127.0.0.1:10200")),
        (
            "unix:///run/piper.sock",
            ServiceUri::Unix("/run/piper.sock".into()),
        ),
        ("tcp://[::1]:10200/", tcp("[::1]:10200")),
    );
    check_invalid_env(
        "CHRONUS_TTS_URI",
        URI_STDIO,
        &os(&[
            "tcp://127.0.0.1",
            "tcp://:10200",
            "tcp://host:0",
            "tcp://host:65536",
            "http://host:1",
        ]),
    );
    check_invalid_file(
        "speech.tts.uri",
        URI_STDIO,
        &["\"unix://relative.sock\"", "\"tcp://a b:1\"", "10200"],
    );
    check_invalid_override("speech.tts.uri", URI_STDIO, &["", "stdin"]);
}

#[test]
fn speech_asr_uri() {
    check_layers(
        "speech.asr.uri",
        "CHRONUS_ASR_URI",
        |c| c.speech.asr.uri.clone(),
        ServiceUri::Stdio,
        ("\"tcp://whisper.local:10300\"", tcp("whisper.local:10300")),
        ("STDIO", ServiceUri::Stdio),
        ("tcp://127.0.0.1:10300", tcp("127.0.0.1:10300")),
    );
    check_invalid_env("CHRONUS_ASR_URI", URI_STDIO, &os(&["unix://", "tcp://h:x"]));
    check_invalid_file("speech.asr.uri", URI_STDIO, &["[\"stdio\"]"]);
    check_invalid_override("speech.asr.uri", URI_STDIO, &["udp://h:1"]);
}

#[test]
fn speech_asr_silence_ms() {
    let accepted = "an integer from 100 to 10000";
    check_layers(
        "speech.asr.silence_ms",
        "CHRONUS_ASR_SILENCE_MS",
        |c| c.speech.asr.silence_ms,
        800,
        ("100", 100),
        ("10000", 10_000),
        ("1500", 1500),
    );
    check_invalid_env(
        "CHRONUS_ASR_SILENCE_MS",
        accepted,
        &os(&["99", "10001", "1s"]),
    );
    check_invalid_file("speech.asr.silence_ms", accepted, &["800.0", "\"800\""]);
    check_invalid_override("speech.asr.silence_ms", accepted, &["0"]);
}

#[test]
fn speech_wake_enabled() {
    let accepted = "true or false (in the environment also 1/0, yes/no, on/off)";
    check_layers(
        "speech.wake.enabled",
        "CHRONUS_WAKE_ENABLED",
        |c| c.speech.wake.enabled,
        false,
        ("true", true),
        ("on", true),
        ("yes", true),
    );
    check_invalid_env("CHRONUS_WAKE_ENABLED", accepted, &os(&["maybe"]));
    check_invalid_file("speech.wake.enabled", accepted, &["1", "\"true\""]);
    check_invalid_override("speech.wake.enabled", accepted, &[""]);
}

#[test]
fn speech_wake_uri_is_a_running_service_never_stdio() {
    let accepted = "tcp://HOST:PORT or unix:///PATH (a running Wyoming service)";
    check_layers(
        "speech.wake.uri",
        "CHRONUS_WAKE_URI",
        |c| c.speech.wake.uri.clone(),
        tcp("127.0.0.1:10400"),
        ("\"tcp://10.0.0.5:10400\"", tcp("10.0.0.5:10400")),
        (
            "unix:///run/oww.sock",
            ServiceUri::Unix("/run/oww.sock".into()),
        ),
        ("tcp://localhost:1", tcp("localhost:1")),
    );
    check_invalid_env("CHRONUS_WAKE_URI", accepted, &os(&["stdio", "tcp://h"]));
    check_invalid_file("speech.wake.uri", accepted, &["\"stdio\""]);
    check_invalid_override("speech.wake.uri", accepted, &["Stdio"]);
}

#[test]
fn speech_wake_names() {
    let accepted = "a list of names of printable characters (comma-separated in the \
                    environment); empty for all";
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    check_layers(
        "speech.wake.names",
        "CHRONUS_WAKE_NAMES",
        |c| c.speech.wake.names.clone(),
        Vec::new(),
        (
            "[\"ok_nabu\", \"hey_jarvis\"]",
            names(&["ok_nabu", "hey_jarvis"]),
        ),
        ("ok_nabu, hey_mycroft", names(&["ok_nabu", "hey_mycroft"])),
        ("", Vec::new()),
    );
    check_invalid_env("CHRONUS_WAKE_NAMES", accepted, &[non_utf8(), "a\tb".into()]);
    check_invalid_file("speech.wake.names", accepted, &["[1]", "[\"\"]", "true"]);
}

#[test]
fn speech_wake_then_listen() {
    let accepted = "true or false (in the environment also 1/0, yes/no, on/off)";
    check_layers(
        "speech.wake.then_listen",
        "CHRONUS_WAKE_THEN_LISTEN",
        |c| c.speech.wake.then_listen,
        false,
        ("true", true),
        ("1", true),
        ("true", true),
    );
    check_invalid_env("CHRONUS_WAKE_THEN_LISTEN", accepted, &os(&["2"]));
    check_invalid_file("speech.wake.then_listen", accepted, &["\"yes\""]);
}
