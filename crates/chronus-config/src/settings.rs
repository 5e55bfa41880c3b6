//! The table of every setting: its TOML key, environment variable, how its raw value
//! is parsed and validated, and where it lives in [`Config`]. Loading, the annotated
//! dump and the documented example file are all driven by this one table.

use std::net::IpAddr;
use std::path::PathBuf;

use toml::Value;

use crate::{AudioHost, Backend, Cidr, Config, LateBundles, ServiceUri, TtsProtocol};

/// One setting, as documented to users.
#[derive(Debug)]
pub struct SettingInfo {
    /// Dotted TOML key, e.g. `audio.sample_rate`; also the key of command-line overrides.
    pub key: &'static str,
    /// The environment variable that sets it.
    pub env: &'static str,
    /// The legacy Music Chronus name of the variable, read when `env` is unset.
    pub env_alias: Option<&'static str>,
    /// What the setting does, in one sentence.
    pub description: &'static str,
    pub(crate) kind: Kind,
}

impl SettingInfo {
    /// The `[section]` the key lives in; `None` for top-level keys.
    pub fn section(&self) -> Option<&'static str> {
        self.key.rsplit_once('.').map(|(section, _)| section)
    }

    /// The key within its section (`sample_rate` for `audio.sample_rate`).
    pub fn name(&self) -> &'static str {
        self.key.rsplit_once('.').map_or(self.key, |(_, name)| name)
    }

    /// The built-in default as a TOML value, or `None` when unset by default.
    pub fn default_toml(&self) -> Option<String> {
        self.kind.to_toml(&Config::default()).map(|v| v.to_string())
    }

    /// A TOML value to show in documentation: the default, or an example when the
    /// setting is unset by default.
    pub fn example_toml(&self) -> String {
        self.default_toml().unwrap_or_else(|| match &self.kind {
            Kind::Text { example, .. } | Kind::Path { example, .. } => {
                Value::String((*example).to_owned()).to_string()
            }
            // Only optional settings lack a default, and each carries an example.
            _ => String::new(),
        })
    }

    /// What values are accepted, phrased to follow "expected".
    pub fn accepted(&self) -> String {
        let text = match &self.kind {
            Kind::U8(r) => return r.accepted("an integer"),
            Kind::U16(r) => return r.accepted("an integer"),
            Kind::U32(r) => return r.accepted("an integer"),
            Kind::AutoU32(r) => {
                return format!("auto or an integer from {} to {}", r.min, r.max);
            }
            Kind::F32(r) => return r.accepted("a number"),
            Kind::Ip(_) => "an IP address such as 127.0.0.1, 0.0.0.0 or ::1 (not a host name)",
            Kind::Cidrs(_) => {
                "a list of IP networks in CIDR notation such as 192.168.1.0/24 or ::1/128 \
                 (comma-separated in the environment; a bare address is that one host)"
            }
            Kind::Backend(_) => "auto, cpal or null (case-insensitive)",
            Kind::AudioHost(_) => "auto, alsa, jack, pipewire or pulseaudio (case-insensitive)",
            Kind::TtsProtocol(_) => "oneshot or wyoming (case-insensitive)",
            Kind::Uri { stdio: true, .. } => {
                "stdio (run the command), tcp://HOST:PORT or unix:///PATH (a running Wyoming \
                 service)"
            }
            Kind::Uri { stdio: false, .. } => {
                "tcp://HOST:PORT or unix:///PATH (a running Wyoming service)"
            }
            Kind::Names(_) => {
                "a list of names of printable characters (comma-separated in the \
                 environment); empty for all"
            }
            Kind::LateBundles(_) => "run or drop (case-insensitive)",
            Kind::Bool(_) => "true or false (in the environment also 1/0, yes/no, on/off)",
            Kind::Text {
                rule: TextRule::NonEmpty,
                ..
            }
            | Kind::Name(_) => "a non-empty string",
            Kind::Text {
                rule: TextRule::Filter,
                ..
            } => {
                "a non-empty tracing filter directive of printable characters, \
                 e.g. info or chronusd=debug,warn"
            }
            Kind::Text {
                rule: TextRule::Listen,
                ..
            } => "an IP address and port such as 127.0.0.1:9464 or [::1]:9464 (not a host name)",
            Kind::Path { .. } => "a non-empty file path",
            Kind::Dir(_) => "a non-empty directory path",
            Kind::Argv(_) => {
                "a program and its arguments: an array of strings, or one string (as in the \
                 environment) split into arguments at whitespace, single or double quotes \
                 keeping text together (never run through a shell); the program must be \
                 non-empty and no argument may contain NUL"
            }
        };
        text.to_owned()
    }
}

/// Every setting, top-level keys first, then one section after another (the order of
/// the annotated dump, and the fixed order in which environment variables are checked).
pub fn settings() -> &'static [SettingInfo] {
    &SETTINGS
}

/// Index of `key` in [`settings()`].
pub(crate) fn index_of(key: &str) -> Option<usize> {
    SETTINGS.iter().position(|s| s.key == key)
}

/// Legacy Music Chronus tuning variables that no longer do anything, with what
/// replaced them.
pub(crate) const LEGACY_NO_EFFECT: [(&str, &str); 5] = [
    (
        "CHRONUS_NUM_BUFFERS",
        "the ring depth follows audio.lookahead_blocks (CHRONUS_LOOKAHEAD_BLOCKS)",
    ),
    (
        "CHRONUS_MAX_CATCHUP",
        "the audio callback reads blocks by absolute frame, so there is no backlog to catch up; \
         how far workers run ahead is audio.lookahead_blocks (CHRONUS_LOOKAHEAD_BLOCKS)",
    ),
    (
        "CHRONUS_EARLY_MARGIN_MS",
        "workers are paced by the play position and render audio.lookahead_blocks \
         (CHRONUS_LOOKAHEAD_BLOCKS) ahead of it",
    ),
    (
        "CHRONUS_PREFILL_BUFFERS",
        "workers render audio.lookahead_blocks (CHRONUS_LOOKAHEAD_BLOCKS) ahead before \
         playback starts",
    ),
    (
        "CHRONUS_KEEP_AFTER_READ",
        "the audio callback reads blocks by absolute frame, so nothing is kept after a read",
    ),
];

/// Legacy lookahead in device buffers, converted to `audio.lookahead_blocks`.
pub(crate) const LEAD_TARGET_ENV: &str = "CHRONUS_LEAD_TARGET";
pub(crate) const LEAD_TARGET_MAX: u32 = 1024;
/// Music Chronus's buffer and block size, which the legacy lead target counted in.
pub(crate) const LEGACY_FRAMES: u32 = 256;
pub(crate) const LOOKAHEAD_MIN: u32 = 2;
pub(crate) const LOOKAHEAD_MAX: u32 = 64;
/// Sample rates the daemon runs at (`audio.sample_rate`), in Hz; also the rates a score
/// may declare, so that every journal the daemon writes can be rendered.
pub const SAMPLE_RATE_MIN: u32 = 8000;
pub const SAMPLE_RATE_MAX: u32 = 192_000;
/// Voices an engine may have (`engine.num_voices`).
pub const NUM_VOICES_MIN: u8 = 1;
/// Ceilings the master limiter accepts (`audio.limiter_ceiling_db`), in dB.
pub const LIMITER_CEILING_DB_MIN: f32 = -20.0;
pub const LIMITER_CEILING_DB_MAX: f32 = 0.0;
pub const NUM_VOICES_MAX: u8 = 16;

/// Names the config file; read by the caller (see [`crate::Sources::resolve`]).
pub const CONFIG_ENV: &str = "CHRONUS_CONFIG";

/// Test-only fault injection (see ARCHITECTURE.md): a worker started in slot 1 flips one
/// bit of the sample at this frame, so tests can prove that divergences are caught.
/// Not a setting: there is no file key, and `check-config` does not show it.
pub const TEST_DIVERGE_ENV: &str = "CHRONUS_TEST_DIVERGE_AT_FRAME";

/// Test-only: the journal's native socket, instead of /run/systemd/journal/socket,
/// so tests can read the entries chronusd sends under systemd. Not a setting.
pub const TEST_JOURNAL_SOCKET_ENV: &str = "CHRONUS_TEST_JOURNAL_SOCKET";

/// A value does not fit its setting; the caller knows which input it came from.
pub(crate) struct Invalid;

/// Reads and writes one field of [`Config`].
#[derive(Debug)]
pub(crate) struct Field<T: 'static> {
    get: fn(&Config) -> &T,
    get_mut: fn(&mut Config) -> &mut T,
}

impl<T> Field<T> {
    fn read<'c>(&self, config: &'c Config) -> &'c T {
        (self.get)(config)
    }

    fn set(&self, config: &mut Config, value: Option<T>) -> Result<(), Invalid> {
        *(self.get_mut)(config) = value.ok_or(Invalid)?;
        Ok(())
    }
}

/// A numeric field with its inclusive range.
#[derive(Debug)]
pub(crate) struct Num<T: 'static> {
    min: T,
    max: T,
    field: Field<T>,
}

impl<T: Copy + PartialOrd + std::fmt::Debug> Num<T> {
    /// Out of range (including NaN) is invalid.
    fn set(&self, config: &mut Config, value: Option<T>) -> Result<(), Invalid> {
        let in_range = value.filter(|v| (self.min..=self.max).contains(v));
        self.field.set(config, in_range)
    }

    /// `what` is "an integer" or "a number"; `Debug` shows floats as `1.0`, not `1`.
    fn accepted(&self, what: &str) -> String {
        format!("{what} from {:?} to {:?}", self.min, self.max)
    }
}

/// An integer field in an inclusive range that may also be `auto`.
#[derive(Debug)]
pub(crate) struct AutoNum {
    min: u32,
    max: u32,
    field: Field<Option<u32>>,
}

impl AutoNum {
    fn set_text(&self, config: &mut Config, s: &str) -> Result<(), Invalid> {
        if s.eq_ignore_ascii_case("auto") {
            return self.field.set(config, Some(None));
        }
        self.set(config, s.parse().ok())
    }

    fn set(&self, config: &mut Config, value: Option<u32>) -> Result<(), Invalid> {
        let in_range = value.filter(|v| (self.min..=self.max).contains(v));
        self.field.set(config, in_range.map(Some))
    }
}

#[derive(Debug)]
pub(crate) enum TextRule {
    NonEmpty,
    /// A tracing `EnvFilter` directive; the daemon parses it fully, this only rejects
    /// values that cannot be one (empty, control characters).
    Filter,
    /// An IP address and port, `127.0.0.1:9464` or `[::1]:9464`.
    Listen,
}

/// How a setting's raw value is parsed, and the field it is stored in.
#[derive(Debug)]
pub(crate) enum Kind {
    Ip(Field<IpAddr>),
    U8(Num<u8>),
    U16(Num<u16>),
    U32(Num<u32>),
    /// `auto` (stored as `None`) or an integer in range.
    AutoU32(AutoNum),
    /// In TOML a float or an integer.
    F32(Num<f32>),
    Cidrs(Field<Vec<Cidr>>),
    Backend(Field<Backend>),
    AudioHost(Field<AudioHost>),
    TtsProtocol(Field<TtsProtocol>),
    /// A speech service address; `stdio` only where the daemon can spawn it.
    Uri {
        stdio: bool,
        field: Field<ServiceUri>,
    },
    /// A list of names, possibly empty (comma-separated in the environment).
    Names(Field<Vec<String>>),
    LateBundles(Field<LateBundles>),
    Bool(Field<bool>),
    /// A program and its arguments (see [`split_args`]).
    Argv(Field<Vec<String>>),
    /// A non-empty string with a default.
    Name(Field<String>),
    /// An optional string, unset by default.
    Text {
        rule: TextRule,
        example: &'static str,
        field: Field<Option<String>>,
    },
    Path {
        example: &'static str,
        field: Field<Option<PathBuf>>,
    },
    /// A non-empty directory path with a default.
    Dir(Field<PathBuf>),
}

impl Kind {
    /// Sets the field from an environment variable or command-line override.
    pub(crate) fn set_text(&self, config: &mut Config, s: &str) -> Result<(), Invalid> {
        match self {
            Kind::Ip(f) => f.set(config, s.parse().ok()),
            Kind::U8(r) => r.set(config, s.parse().ok()),
            Kind::U16(r) => r.set(config, s.parse().ok()),
            Kind::U32(r) => r.set(config, s.parse().ok()),
            Kind::AutoU32(r) => r.set_text(config, s),
            Kind::F32(r) => r.set(config, s.parse().ok()),
            Kind::Cidrs(f) => f.set(
                config,
                s.split(',').map(|c| c.trim().parse().ok()).collect(),
            ),
            Kind::Backend(f) => f.set(config, Backend::parse(s)),
            Kind::AudioHost(f) => f.set(config, AudioHost::parse(s)),
            Kind::TtsProtocol(f) => f.set(config, TtsProtocol::parse(s)),
            Kind::Uri { stdio, field } => field.set(
                config,
                ServiceUri::parse(s).filter(|u| *stdio || *u != ServiceUri::Stdio),
            ),
            Kind::Names(f) => f.set(
                config,
                s.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(valid_name)
                    .collect(),
            ),
            Kind::LateBundles(f) => f.set(config, LateBundles::parse(s)),
            Kind::Bool(f) => f.set(config, parse_bool(s)),
            Kind::Argv(f) => f.set(config, split_args(s).and_then(valid_argv)),
            Kind::Name(f) => f.set(config, (!s.is_empty()).then(|| s.to_owned())),
            Kind::Text { rule, field, .. } => {
                let ok = match rule {
                    TextRule::NonEmpty => !s.is_empty(),
                    TextRule::Filter => !s.is_empty() && !s.chars().any(char::is_control),
                    TextRule::Listen => s.parse::<std::net::SocketAddr>().is_ok(),
                };
                field.set(config, ok.then(|| Some(s.to_owned())))
            }
            Kind::Path { field, .. } => field.set(config, (!s.is_empty()).then(|| Some(s.into()))),
            Kind::Dir(f) => f.set(config, (!s.is_empty()).then(|| s.into())),
        }
    }

    /// Sets the field from a TOML value, which must have the natural TOML type
    /// (integer, float or integer, boolean, array of strings, otherwise string; a
    /// command may also be one string).
    pub(crate) fn set_toml(&self, config: &mut Config, value: &Value) -> Result<(), Invalid> {
        match (self, value) {
            (Kind::U8(r), Value::Integer(n)) => r.set(config, (*n).try_into().ok()),
            (Kind::U16(r), Value::Integer(n)) => r.set(config, (*n).try_into().ok()),
            (Kind::U32(r), Value::Integer(n)) => r.set(config, (*n).try_into().ok()),
            (Kind::AutoU32(r), Value::Integer(n)) => r.set(config, (*n).try_into().ok()),
            (Kind::AutoU32(r), Value::String(s)) => r.set_text(config, s),
            (Kind::F32(r), Value::Float(x)) => r.set(config, Some(*x as f32)),
            (Kind::F32(r), Value::Integer(n)) => r.set(config, Some(*n as f32)),
            (Kind::Bool(f), Value::Boolean(b)) => f.set(config, Some(*b)),
            (Kind::Cidrs(f), Value::Array(items)) => f.set(
                config,
                items.iter().map(|c| c.as_str()?.parse().ok()).collect(),
            ),
            (Kind::Names(f), Value::Array(items)) => f.set(
                config,
                items
                    .iter()
                    .map(|n| n.as_str().and_then(valid_name))
                    .collect(),
            ),
            (Kind::Argv(f), Value::Array(items)) => f.set(
                config,
                items
                    .iter()
                    .map(|a| a.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .and_then(valid_argv),
            ),
            (
                Kind::Ip(_)
                | Kind::Backend(_)
                | Kind::AudioHost(_)
                | Kind::TtsProtocol(_)
                | Kind::Uri { .. }
                | Kind::Names(_)
                | Kind::LateBundles(_)
                | Kind::Argv(_)
                | Kind::Name(_)
                | Kind::Text { .. }
                | Kind::Path { .. }
                | Kind::Dir(_),
                Value::String(s),
            ) => self.set_text(config, s),
            _ => Err(Invalid),
        }
    }

    /// The field's value as TOML, `None` when unset.
    pub(crate) fn to_toml(&self, config: &Config) -> Option<Value> {
        let string = |s: String| Some(Value::String(s));
        match self {
            Kind::Ip(f) => string(f.read(config).to_string()),
            Kind::U8(r) => Some(Value::Integer((*r.field.read(config)).into())),
            Kind::U16(r) => Some(Value::Integer((*r.field.read(config)).into())),
            Kind::U32(r) => Some(Value::Integer((*r.field.read(config)).into())),
            Kind::AutoU32(r) => Some(match r.field.read(config) {
                Some(n) => Value::Integer((*n).into()),
                None => Value::String("auto".into()),
            }),
            // Through the shortest decimal that reads back as the f32: 0.3, not
            // 0.30000001192092896.
            Kind::F32(r) => Some(Value::Float(
                r.field
                    .read(config)
                    .to_string()
                    .parse()
                    .expect("an f32 prints as a valid f64"),
            )),
            Kind::Cidrs(f) => Some(Value::Array(
                f.read(config)
                    .iter()
                    .map(|c| Value::String(c.to_string()))
                    .collect(),
            )),
            Kind::Backend(f) => string(f.read(config).to_string()),
            Kind::AudioHost(f) => string(f.read(config).to_string()),
            Kind::TtsProtocol(f) => string(f.read(config).to_string()),
            Kind::Uri { field, .. } => string(field.read(config).to_string()),
            Kind::Names(f) => Some(Value::Array(
                f.read(config).iter().cloned().map(Value::String).collect(),
            )),
            Kind::LateBundles(f) => string(f.read(config).to_string()),
            Kind::Bool(f) => Some(Value::Boolean(*f.read(config))),
            Kind::Argv(f) => Some(Value::Array(
                f.read(config).iter().cloned().map(Value::String).collect(),
            )),
            Kind::Name(f) => string(f.read(config).clone()),
            Kind::Text { field, .. } => field.read(config).clone().and_then(string),
            Kind::Dir(f) => string(f.read(config).to_string_lossy().into_owned()),
            Kind::Path { field, .. } => field
                .read(config)
                .as_ref()
                .and_then(|p| string(p.to_string_lossy().into_owned())),
        }
    }
}

/// A non-empty name of printable characters, at most 64 bytes.
fn valid_name(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= 64 && !s.chars().any(char::is_control)).then(|| s.to_owned())
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

macro_rules! field {
    ($($path:ident).+) => {
        Field {
            get: |c| &c.$($path).+,
            get_mut: |c| &mut c.$($path).+,
        }
    };
}

/// Splits a command line into arguments at unquoted whitespace. Single and double
/// quotes keep text together (`'a b'c` is one argument, `""` an empty one) and are the
/// only special characters; `None` for an unterminated quote.
fn split_args(s: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    // `Some` once an argument has begun, even if only with `""`.
    let mut arg: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let arg = arg.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        q if q == c => break,
                        q => arg.push(q),
                    }
                }
            }
            c if c.is_whitespace() => args.extend(arg.take()),
            c => arg.get_or_insert_with(String::new).push(c),
        }
    }
    args.extend(arg);
    Some(args)
}

/// A command needs a program; arguments may be empty but cannot hold NUL, which no
/// process argument can.
fn valid_argv(argv: Vec<String>) -> Option<Vec<String>> {
    let valid = argv.first().is_some_and(|program| !program.is_empty())
        && !argv.iter().any(|a| a.contains('\0'));
    valid.then_some(argv)
}

macro_rules! auto_num {
    ($min:expr, $max:expr, $($path:ident).+) => {
        AutoNum {
            min: $min,
            max: $max,
            field: field!($($path).+),
        }
    };
}

macro_rules! num {
    ($min:expr, $max:expr, $($path:ident).+) => {
        Num {
            min: $min,
            max: $max,
            field: field!($($path).+),
        }
    };
}

static SETTINGS: [SettingInfo; 53] = [
    SettingInfo {
        key: "record",
        env: "CHRONUS_RECORD",
        env_alias: None,
        description: "Record the audio output to this file as a 32-bit float WAV.",
        kind: Kind::Path {
            example: "/var/lib/chronus/output.wav",
            field: field!(record),
        },
    },
    SettingInfo {
        key: "journal",
        env: "CHRONUS_JOURNAL",
        env_alias: None,
        description: "Write every control command, stamped with the frame it took effect at, \
                      to this file (an OSC score that replays the session).",
        kind: Kind::Path {
            example: "/var/lib/chronus/journal.osc",
            field: field!(journal),
        },
    },
    SettingInfo {
        key: "osc.host",
        env: "CHRONUS_OSC_HOST",
        env_alias: None,
        description: "Address the OSC server listens on (UDP and TCP); 0.0.0.0 or :: for all \
                      interfaces.",
        kind: Kind::Ip(field!(osc.host)),
    },
    SettingInfo {
        key: "osc.port",
        env: "CHRONUS_OSC_PORT",
        env_alias: None,
        description: "Port the OSC server listens on (UDP and TCP).",
        kind: Kind::U16(num!(1, 65535, osc.port)),
    },
    SettingInfo {
        key: "osc.allow",
        env: "CHRONUS_OSC_ALLOW",
        env_alias: None,
        description: "Networks OSC senders must belong to; empty accepts any sender that can \
                      reach osc.host.",
        kind: Kind::Cidrs(field!(osc.allow)),
    },
    SettingInfo {
        key: "osc.rate_limit",
        env: "CHRONUS_OSC_RATE_LIMIT",
        env_alias: None,
        description: "OSC messages per second one client (an address; on this machine, an \
                      address and port) may send; beyond it they are dropped and counted.",
        kind: Kind::U32(num!(1, 1_000_000, osc.rate_limit)),
    },
    SettingInfo {
        key: "osc.late_bundles",
        env: "CHRONUS_OSC_LATE_BUNDLES",
        env_alias: None,
        description: "A bundle whose time has already passed: run runs it at once, drop \
                      refuses it with /chronus/fail; either way it is counted (osc_late) and \
                      announced to subscribers as /chronus/late.",
        kind: Kind::LateBundles(field!(osc.late_bundles)),
    },
    SettingInfo {
        key: "audio.backend",
        env: "CHRONUS_AUDIO_BACKEND",
        env_alias: None,
        description: "Audio output: cpal (the system's sound device), null (silent, clocked by \
                      a timer, for machines without audio) or auto (cpal if a device opens, \
                      else null).",
        kind: Kind::Backend(field!(audio.backend)),
    },
    SettingInfo {
        key: "audio.host",
        env: "CHRONUS_AUDIO_HOST",
        env_alias: None,
        description: "Sound system the cpal backend plays through: jack (a JACK client, \
                      following the server's rate and period), pipewire, pulseaudio, alsa, or \
                      auto (JACK when a JACK server runs, else PipeWire when it runs, else \
                      PulseAudio when it runs, else ALSA).",
        kind: Kind::AudioHost(field!(audio.host)),
    },
    SettingInfo {
        key: "audio.jack_client_name",
        env: "CHRONUS_JACK_CLIENT_NAME",
        env_alias: None,
        description: "Name of the JACK client; its outputs are connected to the physical \
                      playback ports.",
        kind: Kind::Name(field!(audio.jack_client_name)),
    },
    SettingInfo {
        key: "audio.device",
        env: "CHRONUS_AUDIO_DEVICE",
        env_alias: Some("CHRONUS_DEVICE_ID"),
        description: "Output device name as the cpal backend lists it; unset uses the default \
                      device. A named device that does not exist stops startup (exit 78, the \
                      devices listed), also with audio.backend auto.",
        kind: Kind::Text {
            rule: TextRule::NonEmpty,
            example: "pulse",
            field: field!(audio.device),
        },
    },
    SettingInfo {
        key: "audio.sample_rate",
        env: "CHRONUS_SAMPLE_RATE",
        env_alias: None,
        description: "Sample rate in Hz.",
        kind: Kind::U32(num!(SAMPLE_RATE_MIN, SAMPLE_RATE_MAX, audio.sample_rate)),
    },
    SettingInfo {
        key: "audio.buffer_size",
        env: "CHRONUS_BUFFER_SIZE",
        env_alias: None,
        description: "Device buffer size requested from the sound system, in frames (the \
                      device may still call back with other sizes). auto picks one that plays \
                      clean on a busy box: 2048 on PulseAudio, 1024 on PipeWire, 512 on ALSA's default \
                      or a sound server's ALSA plugin, 256 on ALSA hw: devices and the null \
                      clock; JACK always runs at its server's period. 64 to 128 is the \
                      low-latency setting for boxes with headroom.",
        kind: Kind::AutoU32(auto_num!(16, 8192, audio.buffer_size)),
    },
    SettingInfo {
        key: "audio.block_frames",
        env: "CHRONUS_BLOCK_FRAMES",
        env_alias: None,
        description: "Frames per block that workers render and the rings hold; auto is half \
                      the device buffer, from 32 to 256.",
        kind: Kind::AutoU32(auto_num!(16, 4096, audio.block_frames)),
    },
    SettingInfo {
        key: "audio.lookahead_blocks",
        env: "CHRONUS_LOOKAHEAD_BLOCKS",
        env_alias: None,
        description: "Blocks workers render ahead of the play position: more rides out longer \
                      stalls and wakes workers less often, and renders more again when a \
                      command lands inside what is rendered. auto is four device buffers \
                      up to 1024 frames (workers wake every third period), else two; any \
                      value is raised to two: what ALSA takes when playback starts, and a \
                      whole period for a worker held up by a failover.",
        kind: Kind::AutoU32(auto_num!(
            LOOKAHEAD_MIN,
            LOOKAHEAD_MAX,
            audio.lookahead_blocks
        )),
    },
    SettingInfo {
        key: "audio.pulse_server",
        env: "CHRONUS_PULSE_SERVER",
        env_alias: None,
        description: "PulseAudio server to play through (as PULSE_SERVER); unset uses the \
                      default server.",
        kind: Kind::Text {
            rule: TextRule::NonEmpty,
            example: "unix:/run/user/1000/pulse/native",
            field: field!(audio.pulse_server),
        },
    },
    SettingInfo {
        key: "audio.limiter",
        env: "CHRONUS_LIMITER",
        env_alias: None,
        description: "Master safety limiter as the last stage of the output: it turns peaks \
                      down so that no sample exceeds audio.limiter_ceiling_db; off, only full \
                      scale clips.",
        kind: Kind::Bool(field!(audio.limiter)),
    },
    SettingInfo {
        key: "audio.limiter_ceiling_db",
        env: "CHRONUS_LIMITER_CEILING_DB",
        env_alias: None,
        description: "Highest output level the limiter lets through, in dB below full scale.",
        kind: Kind::F32(num!(
            LIMITER_CEILING_DB_MIN,
            LIMITER_CEILING_DB_MAX,
            audio.limiter_ceiling_db
        )),
    },
    SettingInfo {
        key: "engine.num_voices",
        env: "CHRONUS_NUM_VOICES",
        env_alias: None,
        description: "Number of synthesis voices. 8 plays the original Music Chronus \
                      catalogue (its compositions use voice1..voice8); measured offline, 8 \
                      voices of the full patch take about 1 % of a core per worker (two \
                      workers render), 16 about 1.4 % (BENCHMARKS.md).",
        kind: Kind::U8(num!(NUM_VOICES_MIN, NUM_VOICES_MAX, engine.num_voices)),
    },
    SettingInfo {
        key: "engine.recordings_dir",
        env: "CHRONUS_RECORDINGS_DIR",
        env_alias: None,
        description: "Directory /engine/record/start writes its WAV files into (created when \
                      missing); a relative path is taken from chronusd's working directory.",
        kind: Kind::Dir(field!(engine.recordings_dir)),
    },
    SettingInfo {
        key: "engine.patterns_dir",
        env: "CHRONUS_PATTERNS_DIR",
        env_alias: None,
        description: "Directory /pattern/save writes its 128 slots to (000.json to 127.json), \
                      created when first needed; unset uses $STATE_DIRECTORY/patterns under \
                      systemd (/var/lib/chronus/patterns), else \
                      $XDG_STATE_HOME/chronus/patterns (~/.local/state/chronus/patterns).",
        kind: Kind::Path {
            example: "/var/lib/chronus/patterns",
            field: field!(engine.patterns_dir),
        },
    },
    SettingInfo {
        key: "viz.enabled",
        env: "CHRONUS_VIZ_ENABLED",
        env_alias: None,
        description: "Send /viz/levels and /viz/spectrum of the played audio 10 times a second.",
        kind: Kind::Bool(field!(viz.enabled)),
    },
    SettingInfo {
        key: "viz.host",
        env: "CHRONUS_VIZ_HOST",
        env_alias: None,
        description: "Address the visualisation messages are sent to (UDP).",
        kind: Kind::Ip(field!(viz.host)),
    },
    SettingInfo {
        key: "viz.port",
        env: "CHRONUS_VIZ_PORT",
        env_alias: None,
        description: "UDP port the visualisation messages are sent to; 0 turns them off.",
        kind: Kind::U16(num!(0, 65535, viz.port)),
    },
    SettingInfo {
        key: "metrics.listen",
        env: "CHRONUS_METRICS_LISTEN",
        env_alias: None,
        description: "Serve every status figure in the Prometheus text format over HTTP at \
                      /metrics on this address; unset (the default) serves nothing and starts \
                      no thread. Keep it on loopback or a trusted network: it has no \
                      authentication.",
        kind: Kind::Text {
            rule: TextRule::Listen,
            example: "127.0.0.1:9464",
            field: field!(metrics.listen),
        },
    },
    SettingInfo {
        key: "workers.hang_timeout_ms",
        env: "CHRONUS_HANG_TIMEOUT_MS",
        env_alias: None,
        description: "A worker whose heartbeat stops for this long is treated as hung and \
                      replaced.",
        kind: Kind::U32(num!(10, 60_000, workers.hang_timeout_ms)),
    },
    SettingInfo {
        key: "workers.restart_backoff_min_ms",
        env: "CHRONUS_RESTART_BACKOFF_MIN_MS",
        env_alias: None,
        description: "Delay before restarting a failed worker; it grows on repeated failures.",
        kind: Kind::U32(num!(1, 60_000, workers.restart_backoff_min_ms)),
    },
    SettingInfo {
        key: "workers.restart_backoff_max_ms",
        env: "CHRONUS_RESTART_BACKOFF_MAX_MS",
        env_alias: None,
        description: "Longest delay between worker restarts; must be at least \
                      restart_backoff_min_ms.",
        kind: Kind::U32(num!(1, 600_000, workers.restart_backoff_max_ms)),
    },
    SettingInfo {
        key: "log.verbose",
        env: "CHRONUS_VERBOSE",
        env_alias: None,
        description: "Log at debug level instead of info.",
        kind: Kind::Bool(field!(log.verbose)),
    },
    SettingInfo {
        key: "log.filter",
        env: "CHRONUS_LOG",
        env_alias: None,
        description: "Log filter in tracing EnvFilter syntax; takes precedence over verbose.",
        kind: Kind::Text {
            rule: TextRule::Filter,
            example: "chronusd=debug,warn",
            field: field!(log.filter),
        },
    },
    SettingInfo {
        key: "speech.tts.enabled",
        env: "CHRONUS_TTS_ENABLED",
        env_alias: None,
        description: "Run the text-to-speech engine.",
        kind: Kind::Bool(field!(speech.tts.enabled)),
    },
    SettingInfo {
        key: "speech.tts.uri",
        env: "CHRONUS_TTS_URI",
        env_alias: None,
        description: "Where the text-to-speech engine is: stdio runs speech.tts.command; \
                      tcp://HOST:PORT or unix:///PATH connects to a running Wyoming service \
                      (wyoming-piper listens on tcp://127.0.0.1:10200), pooled \
                      speech.tts.engines connections deep and reconnected with backoff.",
        kind: Kind::Uri {
            stdio: true,
            field: field!(speech.tts.uri),
        },
    },
    SettingInfo {
        key: "speech.tts.command",
        env: "CHRONUS_TTS_COMMAND",
        env_alias: None,
        description: "Text-to-speech program and its arguments: a one-shot program is run per \
                      request with {text} and {voice} replaced by the request's text and voice, \
                      and writes WAV on stdout; a Wyoming server (protocol = \"wyoming\") is \
                      kept running and speaks the Wyoming protocol on stdin/stdout.",
        kind: Kind::Argv(field!(speech.tts.command)),
    },
    SettingInfo {
        key: "speech.tts.protocol",
        env: "CHRONUS_TTS_PROTOCOL",
        env_alias: None,
        description: "How the text-to-speech program is driven: oneshot (run once per request) \
                      or wyoming (a server speaking the Wyoming protocol).",
        kind: Kind::TtsProtocol(field!(speech.tts.protocol)),
    },
    SettingInfo {
        key: "speech.tts.engines",
        env: "CHRONUS_TTS_ENGINES",
        env_alias: None,
        description: "How many Wyoming servers are pooled (one-shot programs ignore it).",
        kind: Kind::U32(num!(1, 16, speech.tts.engines)),
    },
    SettingInfo {
        key: "speech.tts.voice",
        env: "CHRONUS_TTS_VOICE",
        env_alias: None,
        description: "Voice used when a request names none.",
        kind: Kind::Name(field!(speech.tts.voice)),
    },
    SettingInfo {
        key: "speech.tts.cache_entries",
        env: "CHRONUS_TTS_CACHE_ENTRIES",
        env_alias: None,
        description: "Most syntheses the cache keeps, so that a repeated phrase is not \
                      synthesised again.",
        kind: Kind::U32(num!(0, 10_000, speech.tts.cache_entries)),
    },
    SettingInfo {
        key: "speech.tts.cache_mb",
        env: "CHRONUS_TTS_CACHE_MB",
        env_alias: None,
        description: "Most audio the synthesis cache holds, in MiB.",
        kind: Kind::U32(num!(0, 4096, speech.tts.cache_mb)),
    },
    SettingInfo {
        key: "speech.tts.timeout_ms",
        env: "CHRONUS_TTS_TIMEOUT_MS",
        env_alias: None,
        description: "A synthesis request that takes longer than this fails.",
        kind: Kind::U32(num!(100, 600_000, speech.tts.timeout_ms)),
    },
    SettingInfo {
        key: "speech.tts.gain",
        env: "CHRONUS_TTS_GAIN",
        env_alias: None,
        description: "Speech level at the output (1.0 leaves it unchanged).",
        kind: Kind::F32(num!(0.0, 2.0, speech.tts.gain)),
    },
    SettingInfo {
        key: "speech.tts.duck",
        env: "CHRONUS_TTS_DUCK",
        env_alias: None,
        description: "Level of the music while speech plays (1.0 turns ducking off).",
        kind: Kind::F32(num!(0.0, 1.0, speech.tts.duck)),
    },
    SettingInfo {
        key: "speech.asr.enabled",
        env: "CHRONUS_ASR_ENABLED",
        env_alias: None,
        description: "Run the speech recogniser.",
        kind: Kind::Bool(field!(speech.asr.enabled)),
    },
    SettingInfo {
        key: "speech.asr.uri",
        env: "CHRONUS_ASR_URI",
        env_alias: None,
        description: "Where the speech recogniser is: stdio runs speech.asr.command; \
                      tcp://HOST:PORT or unix:///PATH connects to a running Wyoming service \
                      (wyoming-faster-whisper listens on tcp://127.0.0.1:10300), streams \
                      the input to it and ends each utterance after speech.asr.silence_ms of \
                      quiet.",
        kind: Kind::Uri {
            stdio: true,
            field: field!(speech.asr.uri),
        },
    },
    SettingInfo {
        key: "speech.asr.command",
        env: "CHRONUS_ASR_COMMAND",
        env_alias: None,
        description: "Speech recognition program and its arguments: a streaming recogniser \
                      reading raw 16-bit mono PCM at speech.asr.rate on stdin and printing one \
                      line per utterance.",
        kind: Kind::Argv(field!(speech.asr.command)),
    },
    SettingInfo {
        key: "speech.asr.grammar",
        env: "CHRONUS_ASR_GRAMMAR",
        env_alias: None,
        description: "JSGF grammar of the phrases to recognise, passed to the recogniser as \
                      -jsgf PATH; unset uses the recogniser's own language model.",
        kind: Kind::Path {
            example: "/etc/chronus/commands.jsgf",
            field: field!(speech.asr.grammar),
        },
    },
    SettingInfo {
        key: "speech.asr.rate",
        env: "CHRONUS_ASR_RATE",
        env_alias: None,
        description: "Sample rate in Hz of the audio fed to the recogniser.",
        kind: Kind::U32(num!(8000, 48_000, speech.asr.rate)),
    },
    SettingInfo {
        key: "speech.asr.silence_ms",
        env: "CHRONUS_ASR_SILENCE_MS",
        env_alias: None,
        description: "With a Wyoming recogniser (speech.asr.uri not stdio): quiet after speech \
                      that ends an utterance and asks for its transcript (an utterance is \
                      also ended after 30 s).",
        kind: Kind::U32(num!(100, 10_000, speech.asr.silence_ms)),
    },
    SettingInfo {
        key: "speech.asr.input_device",
        env: "CHRONUS_INPUT_DEVICE",
        env_alias: None,
        description: "Capture device name as cpal lists it; unset uses the default input \
                      device.",
        kind: Kind::Text {
            rule: TextRule::NonEmpty,
            example: "pulse",
            field: field!(speech.asr.input_device),
        },
    },
    SettingInfo {
        key: "speech.asr.transcribe_dir",
        env: "CHRONUS_ASR_TRANSCRIBE_DIR",
        env_alias: None,
        description: "The only directory /chronus/asr/transcribe reads from: clients name a \
                      WAV file of at most 64 MiB in it by a relative path without `..`, and \
                      links may not lead out of it; unset uses $STATE_DIRECTORY/transcribe \
                      under systemd (/var/lib/chronus/transcribe), else \
                      $XDG_STATE_HOME/chronus/transcribe (~/.local/state/chronus/transcribe).",
        kind: Kind::Path {
            example: "/var/lib/chronus/transcribe",
            field: field!(speech.asr.transcribe_dir),
        },
    },
    SettingInfo {
        key: "speech.wake.enabled",
        env: "CHRONUS_WAKE_ENABLED",
        env_alias: None,
        description: "Stream the input device to a Wyoming wake-word service; each detection \
                      is sent to subscribers as /chronus/wake NAME FRAME.",
        kind: Kind::Bool(field!(speech.wake.enabled)),
    },
    SettingInfo {
        key: "speech.wake.uri",
        env: "CHRONUS_WAKE_URI",
        env_alias: None,
        description: "The wake-word service (wyoming-openwakeword listens on \
                      tcp://127.0.0.1:10400).",
        kind: Kind::Uri {
            stdio: false,
            field: field!(speech.wake.uri),
        },
    },
    SettingInfo {
        key: "speech.wake.names",
        env: "CHRONUS_WAKE_NAMES",
        env_alias: None,
        description: "Wake words to listen for, as the service names them; empty listens for \
                      every one it offers.",
        kind: Kind::Names(field!(speech.wake.names)),
    },
    SettingInfo {
        key: "speech.wake.then_listen",
        env: "CHRONUS_WAKE_THEN_LISTEN",
        env_alias: None,
        description: "After a detection, recognise one utterance with the speech recogniser \
                      and send its transcript (on the ASR stream named wake).",
        kind: Kind::Bool(field!(speech.wake.then_listen)),
    },
];
