//! Layering, unknown and legacy inputs, error reporting and the annotated dump.

use std::ffi::OsString;
use std::path::PathBuf;

use chronus_config::{Config, ConfigError, DEFAULT_CONFIG_PATH, Source, Sources, load, settings};

use crate::common::{env, load_err, load_ok, overrides, write_config};

fn file_sources(name: &str, text: &str) -> (PathBuf, Sources) {
    let path = write_config(name, text);
    let sources = Sources {
        config_file: Some(path.clone()),
        ..Sources::default()
    };
    (path, sources)
}

fn env_sources(vars: &[(&str, &str)]) -> Sources {
    Sources {
        env: env(vars),
        ..Sources::default()
    }
}

#[test]
fn no_inputs_yield_the_defaults() {
    let loaded = load_ok(&Sources::default());
    assert_eq!(loaded.config, Config::default());
    assert!(loaded.warnings.is_empty());
    for info in settings() {
        assert_eq!(
            loaded.source_of(info.key),
            Some(&Source::Default),
            "{}",
            info.key
        );
    }
    assert_eq!(loaded.source_of("osc.nope"), None);
}

#[test]
fn settings_table_keys_and_variables_are_unique_and_ordered_for_toml() {
    let mut keys: Vec<_> = settings().iter().map(|s| s.key).collect();
    let mut vars: Vec<_> = settings()
        .iter()
        .flat_map(|s| std::iter::once(s.env).chain(s.env_alias))
        .collect();
    assert!(vars.iter().all(|v| v.starts_with("CHRONUS_")));
    let (n_keys, n_vars) = (keys.len(), vars.len());
    keys.sort_unstable();
    keys.dedup();
    vars.sort_unstable();
    vars.dedup();
    assert_eq!((keys.len(), vars.len()), (n_keys, n_vars), "duplicates");

    // TOML needs top-level keys before any [section], and each section in one piece.
    let sections: Vec<_> = settings().iter().map(|s| s.section()).collect();
    let first_section = sections.iter().position(Option::is_some).unwrap();
    assert!(sections[..first_section].iter().all(Option::is_none));
    let mut seen = Vec::new();
    for pair in sections[first_section..].windows(2) {
        assert!(pair[1].is_some(), "top-level key after a section");
        if pair[0] != pair[1] {
            seen.push(pair[0]);
            assert!(!seen.contains(&pair[1]), "section {:?} split", pair[1]);
        }
    }
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let (path, sources) = file_sources("unknown-top", "colour = \"red\"\n");
    let err = load_err(&sources);
    assert!(matches!(err, ConfigError::UnknownKey { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "unknown key `colour` in {} (known top-level keys: record, journal, [osc], \
             [audio], [engine], [viz], [metrics], [workers], [log], [speech.tts], [speech.asr], [speech.wake])",
            path.display()
        )
    );
}

#[test]
fn unknown_nested_key_is_an_error() {
    let (path, sources) = file_sources("unknown-nested", "[audio]\nsampel_rate = 44100\n");
    assert_eq!(
        load_err(&sources).to_string(),
        format!(
            "unknown key `audio.sampel_rate` in {} (known keys in [audio]: backend, host, jack_client_name, device, \
             sample_rate, buffer_size, block_frames, lookahead_blocks, pulse_server, \
             limiter, limiter_ceiling_db)",
            path.display()
        )
    );
}

#[test]
fn unknown_key_in_a_nested_section_is_an_error() {
    let (path, sources) = file_sources("unknown-nested-tts", "[speech.tts]\nvolume = 2\n");
    assert_eq!(
        load_err(&sources).to_string(),
        format!(
            "unknown key `speech.tts.volume` in {} (known keys in [speech.tts]: enabled, \
             uri, command, protocol, engines, voice, cache_entries, cache_mb, timeout_ms, gain, \
             duck)",
            path.display()
        )
    );
    // The table holding the sections has no keys of its own.
    let (path, sources) = file_sources("unknown-in-speech", "[speech]\ncommand = \"x\"\n");
    assert_eq!(
        load_err(&sources).to_string(),
        format!(
            "unknown key `speech.command` in {} (known keys in [speech]: [speech.tts], \
             [speech.asr], [speech.wake]; did you mean `speech.tts.command` or `speech.asr.command`?)",
            path.display()
        )
    );
    let (_, sources) = file_sources("unknown-speech-subtable", "[speech.tts.wyoming]\nx = 1\n");
    let message = load_err(&sources).to_string();
    assert!(
        message.starts_with("unknown key `speech.tts.wyoming` in "),
        "{message}"
    );
}

#[test]
fn misplaced_section_error_suggests_the_nested_one() {
    let (path, sources) = file_sources("misplaced-tts", "[tts]\nvoice = \"de\"\n");
    assert_eq!(
        load_err(&sources).to_string(),
        format!(
            "unknown key `tts` in {} (known top-level keys: record, journal, [osc], [audio], \
             [engine], [viz], [metrics], [workers], [log], [speech.tts], [speech.asr], [speech.wake]; did you mean \
             `[speech.tts]`?)",
            path.display()
        )
    );
    let (_, sources) = file_sources(
        "misplaced-input-device",
        "[speech.tts]\ninput_device = \"x\"\n",
    );
    let message = load_err(&sources).to_string();
    assert!(
        message.ends_with("; did you mean `speech.asr.input_device`?)"),
        "{message}"
    );
}

#[test]
fn unknown_subtable_is_an_error() {
    let (path, sources) = file_sources("unknown-subtable", "[osc.tcp]\nport = 1\n");
    let message = load_err(&sources).to_string();
    assert!(
        message.starts_with(&format!("unknown key `osc.tcp` in {}", path.display())),
        "{message}"
    );
}

#[test]
fn misplaced_key_error_suggests_where_it_belongs() {
    // A top-level key written after a [section] header lands in that section.
    let (_, sources) = file_sources("misplaced-record", "[log]\nrecord = \"out.wav\"\n");
    let message = load_err(&sources).to_string();
    assert!(message.contains("unknown key `log.record`"), "{message}");
    assert!(message.ends_with("; did you mean `record`?)"), "{message}");

    let (_, sources) = file_sources("misplaced-port", "port = 5005\n");
    let message = load_err(&sources).to_string();
    assert!(
        message.ends_with("; did you mean `osc.port` or `viz.port`?)"),
        "{message}"
    );
}

#[test]
fn section_that_is_not_a_table_is_an_error() {
    let (path, sources) = file_sources("section-not-table", "osc = 5005\n");
    assert_eq!(
        load_err(&sources).to_string(),
        format!(
            "osc = 5005 in {} is invalid: expected a table of settings ([osc])",
            path.display()
        )
    );
}

#[test]
fn table_holding_sections_that_is_not_a_table_is_an_error() {
    for (name, text, shown, headers) in [
        (
            "speech-not-table",
            "speech = true\n",
            "speech = true",
            "[speech.tts], [speech.asr], [speech.wake]",
        ),
        (
            "speech-tts-not-table",
            "[speech]\ntts = \"espeak-ng\"\n",
            "speech.tts = \"espeak-ng\"",
            "[speech.tts]",
        ),
    ] {
        let (path, sources) = file_sources(name, text);
        assert_eq!(
            load_err(&sources).to_string(),
            format!(
                "{shown} in {} is invalid: expected a table of settings ({headers})",
                path.display()
            )
        );
    }
}

#[test]
fn dotted_keys_in_the_file_work_like_sections() {
    let (_, sources) = file_sources(
        "dotted",
        "osc.port = 6000\naudio.backend = \"null\"\nspeech.tts.voice = \"de\"\n\
         speech.asr.rate = 8000\n",
    );
    let config = load_ok(&sources).config;
    assert_eq!(config.osc.port, 6000);
    assert_eq!(config.audio.backend, chronus_config::Backend::Null);
    assert_eq!(config.speech.tts.voice, "de");
    assert_eq!(config.speech.asr.rate, 8000);
}

#[test]
fn toml_syntax_error_names_the_file_and_line() {
    let (path, sources) = file_sources("syntax", "[osc]\nport = 5005\nhost = \n");
    let err = load_err(&sources);
    assert!(matches!(err, ConfigError::Syntax { .. }));
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "config file {} is not valid TOML: ",
            path.display()
        )),
        "{message}"
    );
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn missing_config_file_is_an_error() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-dir/chronus.toml");
    let err = load_err(&Sources {
        config_file: Some(path.clone()),
        ..Sources::default()
    });
    assert!(matches!(err, ConfigError::ReadFile { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read config file {}: ", path.display())),
        "{err}"
    );
}

#[test]
fn unknown_chronus_variable_warns() {
    let loaded = load_ok(&env_sources(&[
        ("CHRONUS_FOO", "1"),
        ("CHRONUS_SAMPLERATE", "44100"),
        ("PATH", "/usr/bin"),
        ("chronus_osc_port", "1"),
        ("CHRONUS_CONFIG", "/etc/chronus/other.toml"),
    ]));
    assert_eq!(
        loaded.warnings,
        [
            "unknown environment variable CHRONUS_FOO is ignored",
            "unknown environment variable CHRONUS_SAMPLERATE is ignored",
        ]
    );
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn chronus_variable_with_non_utf8_name_warns() {
    use std::os::unix::ffi::OsStringExt as _;
    let name = OsString::from_vec(b"CHRONUS_\xffX".to_vec());
    let loaded = load_ok(&Sources {
        env: vec![(name, "1".into())],
        ..Sources::default()
    });
    assert_eq!(
        loaded.warnings,
        ["ignoring environment variable CHRONUS_\u{fffd}X whose name is not valid UTF-8"]
    );
}

#[test]
fn empty_env_value_counts_as_unset() {
    let (path, mut sources) = file_sources("empty-env", "[audio]\nsample_rate = 44100\n");
    sources.env = env(&[
        ("CHRONUS_SAMPLE_RATE", ""),
        ("CHRONUS_RECORD", ""),
        ("CHRONUS_FOO", ""),
        ("CHRONUS_NUM_BUFFERS", ""),
    ]);
    let loaded = load_ok(&sources);
    assert_eq!(loaded.config.audio.sample_rate, 44_100);
    assert_eq!(
        loaded.source_of("audio.sample_rate"),
        Some(&Source::File(path))
    );
    assert_eq!(loaded.config.record, None);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn later_duplicate_env_entry_wins() {
    let loaded = load_ok(&env_sources(&[
        ("CHRONUS_OSC_PORT", "6000"),
        ("CHRONUS_OSC_PORT", "7000"),
    ]));
    assert_eq!(loaded.config.osc.port, 7000);
}

#[test]
fn later_override_wins() {
    let loaded = load_ok(&Sources {
        overrides: overrides(&[("osc.port", "6000"), ("osc.port", "7000")]),
        ..Sources::default()
    });
    assert_eq!(loaded.config.osc.port, 7000);
}

#[test]
fn unknown_override_key_is_an_error() {
    let err = load_err(&Sources {
        overrides: overrides(&[("osc.prot", "6000")]),
        ..Sources::default()
    });
    let message = err.to_string();
    assert!(
        message
            .starts_with("unknown override key `osc.prot` (known keys: record, journal, osc.host,"),
        "{message}"
    );
}

#[test]
fn first_invalid_env_var_is_reported_in_table_order() {
    // osc.port comes before audio.sample_rate in settings(), whatever the env order.
    for vars in [
        [("CHRONUS_SAMPLE_RATE", "abc"), ("CHRONUS_OSC_PORT", "0")],
        [("CHRONUS_OSC_PORT", "0"), ("CHRONUS_SAMPLE_RATE", "abc")],
    ] {
        assert_eq!(
            load_err(&env_sources(&vars)).to_string(),
            "CHRONUS_OSC_PORT=0 is invalid: expected an integer from 1 to 65535"
        );
    }
}

#[test]
fn invalid_env_value_is_reported_even_when_overridden() {
    // Overrides do not hide a broken environment: the service would break once the
    // override is dropped.
    let err = load_err(&Sources {
        env: env(&[("CHRONUS_SAMPLE_RATE", "abc")]),
        overrides: overrides(&[("audio.sample_rate", "44100")]),
        ..Sources::default()
    });
    assert_eq!(
        err.to_string(),
        "CHRONUS_SAMPLE_RATE=abc is invalid: expected an integer from 8000 to 192000"
    );
}

#[test]
fn legacy_device_id_is_an_alias_of_audio_device() {
    let loaded = load_ok(&env_sources(&[("CHRONUS_DEVICE_ID", "hw:2")]));
    assert_eq!(loaded.config.audio.device.as_deref(), Some("hw:2"));
    assert_eq!(
        loaded.source_of("audio.device"),
        Some(&Source::Env("CHRONUS_DEVICE_ID".into()))
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn audio_device_wins_over_legacy_device_id_with_a_warning() {
    let loaded = load_ok(&env_sources(&[
        ("CHRONUS_DEVICE_ID", "hw:2"),
        ("CHRONUS_AUDIO_DEVICE", "pulse"),
    ]));
    assert_eq!(loaded.config.audio.device.as_deref(), Some("pulse"));
    assert_eq!(
        loaded.source_of("audio.device"),
        Some(&Source::Env("CHRONUS_AUDIO_DEVICE".into()))
    );
    assert_eq!(
        loaded.warnings,
        [
            "CHRONUS_DEVICE_ID (the legacy name of CHRONUS_AUDIO_DEVICE) is ignored because \
             CHRONUS_AUDIO_DEVICE is also set"
        ]
    );
}

#[test]
fn legacy_variables_without_effect_warn_naming_the_replacement() {
    for (var, replacement) in [
        (
            "CHRONUS_NUM_BUFFERS",
            "audio.lookahead_blocks (CHRONUS_LOOKAHEAD_BLOCKS)",
        ),
        ("CHRONUS_MAX_CATCHUP", "reads blocks by absolute frame"),
        (
            "CHRONUS_EARLY_MARGIN_MS",
            "audio.lookahead_blocks (CHRONUS_LOOKAHEAD_BLOCKS)",
        ),
        (
            "CHRONUS_PREFILL_BUFFERS",
            "audio.lookahead_blocks (CHRONUS_LOOKAHEAD_BLOCKS)",
        ),
        ("CHRONUS_KEEP_AFTER_READ", "reads blocks by absolute frame"),
    ] {
        let loaded = load_ok(&env_sources(&[(var, "3")]));
        assert_eq!(loaded.config, Config::default(), "{var}");
        let [warning] = loaded.warnings.as_slice() else {
            panic!("{var}: {:?}", loaded.warnings);
        };
        assert!(
            warning.starts_with(&format!(
                "{var}=3 has no effect (a legacy Music Chronus setting): "
            )),
            "{warning}"
        );
        assert!(warning.contains(replacement), "{warning}");
    }
}

#[test]
fn legacy_lead_target_converts_buffers_to_lookahead_blocks() {
    let loaded = load_ok(&env_sources(&[("CHRONUS_LEAD_TARGET", "3")]));
    assert_eq!(loaded.config.audio.lookahead_blocks, Some(3));
    assert_eq!(
        loaded.source_of("audio.lookahead_blocks"),
        Some(&Source::Env("CHRONUS_LEAD_TARGET".into()))
    );
    assert_eq!(
        loaded.warnings,
        [
            "CHRONUS_LEAD_TARGET=3 is a legacy Music Chronus setting counted in device buffers: \
             3 x 256 frames = 768 frames, converted to audio.lookahead_blocks = 3 (blocks of \
             256 frames); set CHRONUS_LOOKAHEAD_BLOCKS instead"
        ]
    );
}

#[test]
fn legacy_lead_target_uses_the_final_buffer_and_block_sizes() {
    // Buffers of 512 (from the file) and blocks of 128 (from an override): 3 buffers
    // are 1536 frames, 12 blocks; a partial block rounds up.
    let (_, mut sources) = file_sources("lead-sizes", "[audio]\nbuffer_size = 512\n");
    sources.env = env(&[("CHRONUS_LEAD_TARGET", "3")]);
    sources.overrides = overrides(&[("audio.block_frames", "128")]);
    assert_eq!(load_ok(&sources).config.audio.lookahead_blocks, Some(12));
    // 1536 frames are 2.4 blocks of 640: rounded up, never short of the old lead.
    sources.overrides = overrides(&[("audio.block_frames", "640")]);
    assert_eq!(load_ok(&sources).config.audio.lookahead_blocks, Some(3));
}

#[test]
fn legacy_lead_target_is_clamped_to_the_lookahead_range() {
    for (buffers, blocks, exact) in [("1", 2, 1), ("100", 64, 100)] {
        let loaded = load_ok(&env_sources(&[("CHRONUS_LEAD_TARGET", buffers)]));
        assert_eq!(loaded.config.audio.lookahead_blocks, Some(blocks));
        assert!(
            loaded.warnings[0].contains(&format!(
                "audio.lookahead_blocks = {blocks} (blocks of 256 frames; \
                 {exact} is outside 2 to 64)"
            )),
            "{:?}",
            loaded.warnings
        );
    }
}

#[test]
fn legacy_lead_target_beats_the_file_but_not_lookahead_blocks() {
    let (_, mut sources) = file_sources("lead-file", "[audio]\nlookahead_blocks = 8\n");
    sources.env = env(&[("CHRONUS_LEAD_TARGET", "5")]);
    assert_eq!(load_ok(&sources).config.audio.lookahead_blocks, Some(5));

    sources.env = env(&[
        ("CHRONUS_LEAD_TARGET", "5"),
        ("CHRONUS_LOOKAHEAD_BLOCKS", "6"),
    ]);
    let loaded = load_ok(&sources);
    assert_eq!(loaded.config.audio.lookahead_blocks, Some(6));
    assert_eq!(
        loaded.warnings,
        [
            "CHRONUS_LEAD_TARGET=5 is ignored because audio.lookahead_blocks is set by \
             env CHRONUS_LOOKAHEAD_BLOCKS"
        ]
    );

    sources.env = env(&[("CHRONUS_LEAD_TARGET", "5")]);
    sources.overrides = overrides(&[("audio.lookahead_blocks", "7")]);
    let loaded = load_ok(&sources);
    assert_eq!(loaded.config.audio.lookahead_blocks, Some(7));
    assert_eq!(
        loaded.warnings,
        [
            "CHRONUS_LEAD_TARGET=5 is ignored because audio.lookahead_blocks is set by \
             command line"
        ]
    );
}

#[test]
fn legacy_lead_target_invalid_value_is_an_error() {
    for value in ["abc", "0", "1025", "-2"] {
        assert_eq!(
            load_err(&env_sources(&[("CHRONUS_LEAD_TARGET", value)])).to_string(),
            format!(
                "CHRONUS_LEAD_TARGET={value} is invalid: expected an integer number of device \
                 buffers from 1 to 1024"
            )
        );
    }
}

#[test]
fn backoff_max_below_min_is_an_error_naming_both_sources() {
    let (path, mut sources) =
        file_sources("backoff-order", "[workers]\nrestart_backoff_max_ms = 50\n");
    sources.env = env(&[("CHRONUS_RESTART_BACKOFF_MIN_MS", "100")]);
    let err = load_err(&sources);
    assert!(matches!(err, ConfigError::BackoffRange { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "workers.restart_backoff_max_ms = 50 (from file {}) is invalid: expected at least \
             workers.restart_backoff_min_ms = 100 (from env CHRONUS_RESTART_BACKOFF_MIN_MS)",
            path.display()
        )
    );
    // Equal is fine.
    sources.overrides = overrides(&[("workers.restart_backoff_max_ms", "100")]);
    assert_eq!(load_ok(&sources).config.workers.restart_backoff_max_ms, 100);
}

#[test]
fn sources_resolve_config_file_by_precedence() {
    let flag = || Some(PathBuf::from("/flag.toml"));
    let with_env = || env(&[("CHRONUS_CONFIG", "/env.toml")]);
    let resolved = |env, flag, present| Sources::resolve(env, flag, || present).config_file;

    assert_eq!(resolved(with_env(), flag(), true), flag());
    assert_eq!(
        resolved(with_env(), None, true),
        Some(PathBuf::from("/env.toml"))
    );
    assert_eq!(
        resolved(env(&[("CHRONUS_CONFIG", "")]), None, true),
        Some(PathBuf::from(DEFAULT_CONFIG_PATH))
    );
    assert_eq!(resolved(Vec::new(), None, false), None);
    // As with setenv, the later of duplicate entries wins.
    assert_eq!(
        resolved(
            env(&[
                ("CHRONUS_CONFIG", "/first.toml"),
                ("CHRONUS_CONFIG", "/second.toml")
            ]),
            None,
            false
        ),
        Some(PathBuf::from("/second.toml"))
    );

    let sources = Sources::resolve(with_env(), None, || unreachable!("env names a file"));
    assert_eq!(sources.env, with_env());
    assert!(sources.overrides.is_empty());
}

#[test]
fn annotated_toml_names_each_source() {
    let (path, mut sources) = file_sources("annotated-sources", "[audio]\nsample_rate = 44100\n");
    sources.env = env(&[("CHRONUS_OSC_PORT", "6000")]);
    sources.overrides = overrides(&[("engine.num_voices", "8")]);
    let dump = load_ok(&sources).to_annotated_toml();
    let lines: Vec<_> = dump.lines().collect();
    for expected in [
        "host = \"127.0.0.1\"  # default".to_owned(),
        "port = 6000  # env CHRONUS_OSC_PORT".to_owned(),
        format!("sample_rate = 44100  # file {}", path.display()),
        "num_voices = 8  # command line".to_owned(),
        "# device is unset  # default".to_owned(),
        "allow = []  # default".to_owned(),
        "[speech.tts]".to_owned(),
        "command = [\"espeak-ng\", \"--stdout\", \"-v\", \"{voice}\", \"{text}\"]  # default"
            .to_owned(),
        "protocol = \"oneshot\"  # default".to_owned(),
        "gain = 1.0  # default".to_owned(),
        "duck = 0.3  # default".to_owned(),
        "[speech.asr]".to_owned(),
        "# grammar is unset  # default".to_owned(),
    ] {
        assert!(
            lines.contains(&expected.as_str()),
            "{expected:?} missing from\n{dump}"
        );
    }
}

#[test]
fn annotated_toml_parses_back_to_the_same_config() {
    let (_, mut sources) = file_sources(
        "annotated-input",
        "record = \"/srv/out \\\"quoted\\\".wav\"\n\
         [osc]\nallow = [\"10.0.0.0/8\", \"::1\"]\n\
         [log]\nverbose = true\nfilter = \"chronusd=debug,warn\"\n\
         [speech.tts]\ncommand = \"say 'it\\\"s' \\\"\\\"\"\ngain = 2\n",
    );
    sources.env = env(&[
        ("CHRONUS_OSC_HOST", "::"),
        ("CHRONUS_AUDIO_BACKEND", "NULL"),
        ("CHRONUS_PULSE_SERVER", "unix:/run/pulse/native"),
        ("CHRONUS_LEAD_TARGET", "6"),
        ("CHRONUS_TTS_DUCK", "0.1"),
        ("CHRONUS_TTS_PROTOCOL", "Wyoming"),
        ("CHRONUS_ASR_GRAMMAR", "/srv/commands.jsgf"),
    ]);
    sources.overrides = overrides(&[
        ("journal", "journal.osc"),
        ("audio.device", "hw:1,0"),
        ("speech.asr.input_device", "hw:2"),
        ("speech.asr.enabled", "off"),
    ]);
    let loaded = load_ok(&sources);
    let dump = loaded.to_annotated_toml();

    let table: toml::Table = dump.parse().unwrap_or_else(|e| panic!("{e}\n{dump}"));
    assert_eq!(table["osc"]["host"].as_str(), Some("::"), "{dump}");
    assert_eq!(
        table["speech"]["tts"]["command"].as_array().map(Vec::len),
        Some(3),
        "{dump}"
    );
    assert_eq!(
        loaded.config.speech.tts.command,
        ["say", "it\"s", ""],
        "{dump}"
    );
    assert_eq!(
        table["speech"]["tts"]["duck"].as_float(),
        Some(0.1),
        "{dump}"
    );

    let (_, reloaded) = file_sources("annotated-output", &dump);
    let reloaded = load_ok(&reloaded);
    assert_eq!(reloaded.config, loaded.config);
    assert_ne!(loaded.config, Config::default());
    // A dump of the dump is the same but for the sources.
    assert_eq!(
        reloaded.to_annotated_toml().lines().count(),
        dump.lines().count()
    );
}

#[test]
fn annotated_toml_comment_cannot_be_broken_by_a_path() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chronus-config-tests/new\nline");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chronus.toml");
    std::fs::write(&path, "[osc]\nport = 6000\n").unwrap();
    let loaded = load(&Sources {
        config_file: Some(path),
        ..Sources::default()
    })
    .unwrap();
    let dump = loaded.to_annotated_toml();
    let table: toml::Table = dump.parse().unwrap_or_else(|e| panic!("{e}\n{dump}"));
    assert_eq!(table["osc"]["port"].as_integer(), Some(6000));
}
