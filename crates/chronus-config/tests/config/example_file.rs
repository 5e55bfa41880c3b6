//! `config/chronus.toml` is the documented example shipped to users: it must load, change
//! nothing, and document every setting exactly as the settings table says.

use std::path::PathBuf;

use chronus_config::{
    AsrSettings, AudioConfig, Config, EngineConfig, LogConfig, MetricsConfig, Source, Sources,
    SpeechSettings, settings,
};

use crate::common::{load_ok, write_config};

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/chronus.toml")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path()).unwrap()
}

/// A documented key: its section, the commented-out assignment line, and the
/// comment block right above it joined into one line.
struct Documented {
    section: Option<String>,
    line: String,
    doc: String,
}

/// Every commented-out `# name = value` line with its section and documentation.
fn documented_keys(text: &str) -> Vec<Documented> {
    let mut section = None;
    let mut block: Vec<&str> = Vec::new();
    let mut found = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_owned());
        }
        let Some(comment) = line.strip_prefix('#') else {
            block.clear();
            continue;
        };
        let comment = comment.trim();
        let is_assignment = comment
            .split_once(" = ")
            .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        if is_assignment {
            found.push(Documented {
                section: section.clone(),
                line: comment.to_owned(),
                doc: block.join(" "),
            });
            block.clear();
        } else {
            block.push(comment);
        }
    }
    found
}

#[test]
fn example_file_yields_exactly_the_defaults() {
    let path = example_path();
    let loaded = load_ok(&Sources {
        config_file: Some(path),
        ..Sources::default()
    });
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
}

#[test]
fn example_file_documents_every_key() {
    let documented = documented_keys(&example_text());
    for info in settings() {
        let line = format!("{} = {}", info.name(), info.example_toml());
        let Some(entry) = documented
            .iter()
            .find(|d| d.line == line && d.section.as_deref() == info.section())
        else {
            panic!(
                "`# {line}` missing from {:?} in config/chronus.toml",
                info.section()
            );
        };
        let default = info.default_toml().unwrap_or_else(|| "unset".into());
        let mut env = info.env.to_owned();
        if let Some(alias) = info.env_alias {
            env.push_str(&format!(" (legacy name: {alias})"));
        }
        for expected in [
            info.description.to_owned(),
            format!("Default: {default}."),
            format!("Accepted: {}.", info.accepted()),
            format!("Env: {env}."),
        ] {
            assert!(
                entry.doc.contains(&expected),
                "{}: {expected:?} not in the comment above `# {line}`: {:?}",
                info.key,
                entry.doc
            );
        }
    }
}

#[test]
fn example_file_documents_no_unknown_key() {
    let documented = documented_keys(&example_text());
    assert_eq!(documented.len(), settings().len());
    for entry in documented {
        let name = entry.line.split_once(" = ").unwrap().0;
        assert!(
            settings()
                .iter()
                .any(|s| s.name() == name && s.section() == entry.section.as_deref()),
            "`# {}` in {:?} is not a setting",
            entry.line,
            entry.section
        );
    }
}

#[test]
fn example_file_values_are_valid_when_uncommented() {
    let uncommented: String = example_text()
        .lines()
        .map(|line| {
            let is_key = settings()
                .iter()
                .any(|s| line.starts_with(&format!("# {} = ", s.name())));
            let line = if is_key { &line[2..] } else { line };
            format!("{line}\n")
        })
        .collect();
    let path = write_config("example-uncommented", &uncommented);
    let loaded = load_ok(&Sources {
        config_file: Some(path.clone()),
        ..Sources::default()
    });
    for info in settings() {
        assert_eq!(
            loaded.source_of(info.key),
            Some(&Source::File(path.clone())),
            "{} was not uncommented",
            info.key
        );
    }
    // Defaulted keys keep their defaults; optional ones take the documented examples.
    let defaults = Config::default();
    let expected = Config {
        record: Some("/var/lib/chronus/output.wav".into()),
        journal: Some("/var/lib/chronus/journal.osc".into()),
        audio: AudioConfig {
            device: Some("pulse".into()),
            pulse_server: Some("unix:/run/user/1000/pulse/native".into()),
            ..defaults.audio.clone()
        },
        engine: EngineConfig {
            patterns_dir: Some("/var/lib/chronus/patterns".into()),
            ..defaults.engine.clone()
        },
        log: LogConfig {
            filter: Some("chronusd=debug,warn".into()),
            ..defaults.log.clone()
        },
        metrics: MetricsConfig {
            listen: Some("127.0.0.1:9464".into()),
        },
        speech: SpeechSettings {
            asr: AsrSettings {
                grammar: Some("/etc/chronus/commands.jsgf".into()),
                input_device: Some("pulse".into()),
                transcribe_dir: Some("/var/lib/chronus/transcribe".into()),
                ..defaults.speech.asr.clone()
            },
            ..defaults.speech.clone()
        },
        ..defaults
    };
    assert_eq!(loaded.config, expected, "a default in the file differs");
}
