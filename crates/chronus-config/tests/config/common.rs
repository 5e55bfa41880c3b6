//! Helpers shared by the integration tests. Config files are written under Cargo's
//! per-target scratch directory, one file per test, so tests can run in parallel.

use std::ffi::OsString;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use chronus_config::{Config, ConfigError, Loaded, Source, Sources, changed_keys, load, settings};

pub fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chronus-config-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

pub fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    vars.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

pub fn overrides(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// TOML text setting the dotted `key` to `value`.
pub fn toml_setting(key: &str, value: &str) -> String {
    match key.rsplit_once('.') {
        Some((section, name)) => format!("[{section}]\n{name} = {value}\n"),
        None => format!("{key} = {value}\n"),
    }
}

pub fn load_ok(sources: &Sources) -> Loaded {
    load(sources).unwrap_or_else(|e| panic!("load failed: {e}"))
}

pub fn load_err(sources: &Sources) -> ConfigError {
    match load(sources) {
        Ok(loaded) => panic!("expected an error, loaded {:?}", loaded.config),
        Err(e) => e,
    }
}

/// The name of the file a per-setting test writes, unique per key and purpose.
fn file_name(key: &str, purpose: &str) -> String {
    format!("{}-{purpose}", key.replace('.', "-"))
}

/// `changed_keys` from the defaults names `key` exactly when its value differs.
fn check_changed<T: PartialEq>(key: &str, loaded: &Loaded, value: &T, default: &T) {
    let expected: &[&str] = if value == default { &[] } else { &[key] };
    assert_eq!(
        changed_keys(&Config::default(), &loaded.config),
        expected,
        "changed keys"
    );
}

/// Checks one setting through every layer: its default, then a TOML value
/// (`file`), an environment value (`from_env`) and an override (`over`), each a raw
/// input and the typed value it must produce, layered so each must beat the last;
/// at each layer, `changed_keys` must name the setting if and only if it changed.
pub fn check_layers<T: PartialEq + Debug>(
    key: &str,
    var: &str,
    get: impl Fn(&Config) -> T,
    default: T,
    file: (&str, T),
    from_env: (&str, T),
    over: (&str, T),
) {
    let info = settings().iter().find(|s| s.key == key).unwrap();
    assert_eq!(info.env, var, "{key} is read from the wrong variable");

    let loaded = load_ok(&Sources::default());
    assert_eq!(get(&loaded.config), default, "{key} default");
    assert_eq!(get(&Config::default()), default, "{key} Config::default()");
    assert_eq!(loaded.source_of(key), Some(&Source::Default));

    let path = write_config(&file_name(key, "layers"), &toml_setting(key, file.0));
    let mut sources = Sources {
        config_file: Some(path.clone()),
        ..Sources::default()
    };
    let loaded = load_ok(&sources);
    assert_eq!(get(&loaded.config), file.1, "{key} from the file");
    check_changed(key, &loaded, &file.1, &default);
    assert_eq!(loaded.source_of(key), Some(&Source::File(path)));

    sources.env = env(&[(var, from_env.0)]);
    let loaded = load_ok(&sources);
    assert_eq!(get(&loaded.config), from_env.1, "{key} from {var}");
    check_changed(key, &loaded, &from_env.1, &default);
    assert_eq!(loaded.source_of(key), Some(&Source::Env(var.to_owned())));
    assert_eq!(loaded.warnings, Vec::<String>::new());

    sources.overrides = overrides(&[(key, over.0)]);
    let loaded = load_ok(&sources);
    assert_eq!(get(&loaded.config), over.1, "{key} from an override");
    check_changed(key, &loaded, &over.1, &default);
    assert_eq!(loaded.source_of(key), Some(&Source::Override));
}

/// Each raw value of `var` must stop loading with a message naming the variable, the
/// value and `accepted`.
pub fn check_invalid_env(var: &str, accepted: &str, values: &[OsString]) {
    assert!(!values.is_empty());
    for value in values {
        let err = load_err(&Sources {
            env: vec![(var.into(), value.clone())],
            ..Sources::default()
        });
        assert_eq!(
            err.to_string(),
            format!(
                "{var}={} is invalid: expected {accepted}",
                value.to_string_lossy()
            )
        );
    }
}

/// Each TOML value for `key` must stop loading with a message naming the key, the
/// value as written, the file and `accepted`.
pub fn check_invalid_file(key: &str, accepted: &str, values: &[&str]) {
    assert!(!values.is_empty());
    for (n, value) in values.iter().enumerate() {
        let path = write_config(
            &file_name(key, &format!("invalid{n}")),
            &toml_setting(key, value),
        );
        let err = load_err(&Sources {
            config_file: Some(path.clone()),
            ..Sources::default()
        });
        assert_eq!(
            err.to_string(),
            format!(
                "{key} = {value} in {} is invalid: expected {accepted}",
                path.display()
            )
        );
    }
}

/// Each override value for `key` must stop loading with a message naming the key,
/// the value and `accepted`.
pub fn check_invalid_override(key: &str, accepted: &str, values: &[&str]) {
    assert!(!values.is_empty());
    for value in values {
        let err = load_err(&Sources {
            overrides: overrides(&[(key, value)]),
            ..Sources::default()
        });
        assert_eq!(
            err.to_string(),
            format!("command-line override {key}={value} is invalid: expected {accepted}")
        );
    }
}

/// Environment values: the given strings.
pub fn os(values: &[&str]) -> Vec<OsString> {
    values.iter().map(OsString::from).collect()
}

/// An environment value that is not UTF-8, which no setting accepts.
pub fn non_utf8() -> OsString {
    use std::os::unix::ffi::OsStringExt as _;
    OsString::from_vec(vec![b'x', 0xff])
}

/// `auto` (any case) in a later layer undoes a number in an earlier one, and the file
/// may say `"auto"` itself.
pub fn check_auto_beats_a_number(key: &str, var: &str, get: impl Fn(&Config) -> Option<u32>) {
    let path = write_config(&file_name(key, "auto"), &toml_setting(key, "64"));
    let mut sources = Sources {
        config_file: Some(path),
        ..Sources::default()
    };
    assert_eq!(
        get(&load_ok(&sources).config),
        Some(64),
        "{key} from the file"
    );
    sources.env = env(&[(var, "AUTO")]);
    assert_eq!(
        get(&load_ok(&sources).config),
        None,
        "{key} = auto from {var}"
    );
    sources.env = env(&[]);
    sources.overrides = overrides(&[(key, "auto")]);
    assert_eq!(
        get(&load_ok(&sources).config),
        None,
        "{key} = auto from an override"
    );
    let path = write_config(&file_name(key, "auto-file"), &toml_setting(key, "\"auto\""));
    let sources = Sources {
        config_file: Some(path),
        ..Sources::default()
    };
    assert_eq!(
        get(&load_ok(&sources).config),
        None,
        "{key} = \"auto\" in the file"
    );
}
