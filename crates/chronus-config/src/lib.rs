//! Chronus configuration.
//!
//! Raw inputs are parsed, then validated into a typed [`Config`], layer by layer, lowest
//! to highest: built-in defaults, the TOML file, `CHRONUS_*` environment variables,
//! command-line overrides. Every value remembers which layer set it, for
//! `chronusd check-config`.
//!
//! Nothing here reads the process environment or a file on its own: the caller hands
//! everything over in [`Sources`] (see [`Sources::from_process`]), so loading is
//! deterministic and tests are hermetic.

mod cidr;
mod settings;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

pub use cidr::{Cidr, CidrParseError};
pub use settings::{
    CONFIG_ENV, LIMITER_CEILING_DB_MAX, LIMITER_CEILING_DB_MIN, NUM_VOICES_MAX, NUM_VOICES_MIN,
    SAMPLE_RATE_MAX, SAMPLE_RATE_MIN, SettingInfo, TEST_DIVERGE_ENV, TEST_JOURNAL_SOCKET_ENV,
    settings,
};

use settings::{
    LEAD_TARGET_ENV, LEAD_TARGET_MAX, LEGACY_FRAMES, LEGACY_NO_EFFECT, LOOKAHEAD_MAX,
    LOOKAHEAD_MIN, index_of,
};

/// Where the config file is looked for when neither `--config` nor `CHRONUS_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/chronus/chronus.toml";

/// The raw inputs of [`load`].
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The process environment; only `CHRONUS_*` variables are looked at.
    pub env: Vec<(OsString, OsString)>,
    /// The TOML file to read, already resolved by the caller.
    pub config_file: Option<PathBuf>,
    /// Command-line overrides in order, later ones winning: a dotted TOML key
    /// (`osc.port`) and a raw value in the syntax of the matching environment variable.
    pub overrides: Vec<(String, String)>,
}

impl Sources {
    /// The real process environment, with the config file resolved as [`Sources::resolve`]
    /// does; the caller adds its overrides.
    pub fn from_process(config_flag: Option<PathBuf>) -> Self {
        Self::resolve(std::env::vars_os().collect(), config_flag, || {
            // When existence cannot be determined (e.g. /etc/chronus unreadable), treat
            // the file as present so that loading reports why it cannot be read.
            Path::new(DEFAULT_CONFIG_PATH).try_exists().unwrap_or(true)
        })
    }

    /// Resolves the config file: `config_flag` (`--config`), else a non-empty
    /// `CHRONUS_CONFIG` in `env`, else [`DEFAULT_CONFIG_PATH`] if `default_present()`.
    pub fn resolve(
        env: Vec<(OsString, OsString)>,
        config_flag: Option<PathBuf>,
        default_present: impl FnOnce() -> bool,
    ) -> Self {
        let from_env = env
            .iter()
            .rev()
            .find(|(name, _)| name == CONFIG_ENV)
            .filter(|(_, value)| !value.is_empty())
            .map(|(_, value)| PathBuf::from(value));
        let config_file = config_flag
            .or(from_env)
            .or_else(|| default_present().then(|| PathBuf::from(DEFAULT_CONFIG_PATH)));
        Self {
            env,
            config_file,
            overrides: Vec::new(),
        }
    }
}

/// Which layer set a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    /// The environment variable's name.
    Env(String),
    /// A command-line override.
    Override,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Override => f.write_str("command line"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub osc: OscConfig,
    pub audio: AudioConfig,
    pub engine: EngineConfig,
    pub viz: VizConfig,
    pub metrics: MetricsConfig,
    pub workers: WorkerConfig,
    pub log: LogConfig,
    pub speech: SpeechSettings,
    /// Record the output to this file as a 32-bit float WAV.
    pub record: Option<PathBuf>,
    /// Journal every control command (an OSC score) to this file.
    pub journal: Option<PathBuf>,
}

/// The built-in defaults.
impl Default for Config {
    fn default() -> Self {
        Self {
            osc: OscConfig {
                host: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: 5005,
                allow: Vec::new(),
                rate_limit: 20_000,
                late_bundles: LateBundles::Run,
            },
            audio: AudioConfig {
                backend: Backend::Auto,
                host: AudioHost::Auto,
                jack_client_name: "chronus".into(),
                device: None,
                sample_rate: 48_000,
                buffer_size: None,
                block_frames: None,
                lookahead_blocks: None,
                pulse_server: None,
                limiter: true,
                limiter_ceiling_db: -1.0,
            },
            engine: EngineConfig {
                num_voices: 8,
                recordings_dir: PathBuf::from("/var/lib/chronus/recordings"),
                patterns_dir: None,
            },
            viz: VizConfig {
                enabled: true,
                host: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: 5006,
            },
            metrics: MetricsConfig { listen: None },
            workers: WorkerConfig {
                hang_timeout_ms: 250,
                restart_backoff_min_ms: 10,
                restart_backoff_max_ms: 5000,
            },
            log: LogConfig {
                verbose: false,
                filter: None,
            },
            speech: SpeechSettings {
                tts: TtsSettings {
                    enabled: true,
                    uri: ServiceUri::Stdio,
                    command: argv(&["espeak-ng", "--stdout", "-v", "{voice}", "{text}"]),
                    protocol: TtsProtocol::OneShot,
                    engines: 1,
                    voice: "en".to_owned(),
                    cache_entries: 50,
                    cache_mb: 64,
                    timeout_ms: 10_000,
                    gain: 1.0,
                    duck: 0.3,
                },
                asr: AsrSettings {
                    enabled: true,
                    uri: ServiceUri::Stdio,
                    command: argv(&[
                        "pocketsphinx_continuous",
                        "-infile",
                        "/dev/stdin",
                        "-logfn",
                        "/dev/null",
                    ]),
                    grammar: None,
                    rate: 16_000,
                    silence_ms: 800,
                    input_device: None,
                    transcribe_dir: None,
                },
                wake: WakeSettings {
                    enabled: false,
                    uri: ServiceUri::Tcp("127.0.0.1:10400".into()),
                    names: Vec::new(),
                    then_listen: false,
                },
            },
            record: None,
            journal: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OscConfig {
    pub host: IpAddr,
    pub port: u16,
    /// Senders must be in one of these networks; empty allows every sender.
    pub allow: Vec<Cidr>,
    /// Messages per second one client may send; the rest are dropped and counted.
    pub rate_limit: u32,
    /// What happens to a bundle whose timetag has already passed.
    pub late_bundles: LateBundles,
}

/// What the daemon does with a bundle stamped for a frame already rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LateBundles {
    /// Run it at once.
    Run,
    /// Refuse it, answering `/chronus/fail` to the sender.
    Drop,
}

impl LateBundles {
    /// Case-insensitive, like [`Backend`].
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "run" => Some(LateBundles::Run),
            "drop" => Some(LateBundles::Drop),
            _ => None,
        }
    }
}

impl fmt::Display for LateBundles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LateBundles::Run => "run",
            LateBundles::Drop => "drop",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AudioConfig {
    pub backend: Backend,
    /// The sound system the cpal backend plays through.
    pub host: AudioHost,
    /// The JACK client's name.
    pub jack_client_name: String,
    pub device: Option<String>,
    pub sample_rate: u32,
    /// Device buffer size requested, in frames; `None` (auto) picks one that plays
    /// clean on the sound system in use.
    pub buffer_size: Option<u32>,
    /// Frames per rendered block; `None` (auto) follows the device buffer.
    pub block_frames: Option<u32>,
    /// Blocks rendered ahead of the play position; `None` (auto) is the least the
    /// device buffer allows.
    pub lookahead_blocks: Option<u32>,
    pub pulse_server: Option<String>,
    /// The master safety limiter runs.
    pub limiter: bool,
    /// Its ceiling, in dB below full scale.
    pub limiter_ceiling_db: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Auto,
    Cpal,
    Null,
}

impl Backend {
    /// Case-insensitive, as users type `CHRONUS_AUDIO_BACKEND=Null`.
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(Backend::Auto),
            "cpal" => Some(Backend::Cpal),
            "null" => Some(Backend::Null),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Cpal => "cpal",
            Backend::Null => "null",
        })
    }
}

/// The sound system (cpal host) to play through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioHost {
    /// JACK when a JACK server runs, else PipeWire, else PulseAudio, else ALSA.
    Auto,
    Alsa,
    Jack,
    PipeWire,
    PulseAudio,
}

impl AudioHost {
    /// Case-insensitive, like [`Backend`].
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(AudioHost::Auto),
            "alsa" => Some(AudioHost::Alsa),
            "jack" => Some(AudioHost::Jack),
            "pipewire" => Some(AudioHost::PipeWire),
            "pulseaudio" | "pulse" => Some(AudioHost::PulseAudio),
            _ => None,
        }
    }
}

impl fmt::Display for AudioHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AudioHost::Auto => "auto",
            AudioHost::Alsa => "alsa",
            AudioHost::Jack => "jack",
            AudioHost::PipeWire => "pipewire",
            AudioHost::PulseAudio => "pulseaudio",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub num_voices: u8,
    /// Where `/engine/record/start` writes its files.
    pub recordings_dir: PathBuf,
    /// Where `/pattern/save` writes slots; unset means [`EngineConfig::patterns_dir`]'s fallback.
    pub patterns_dir: Option<PathBuf>,
}

impl EngineConfig {
    /// The directory pattern slots live in: the setting, else `patterns` in
    /// systemd's `$STATE_DIRECTORY`, else `$XDG_STATE_HOME/chronus/patterns`,
    /// else `~/.local/state/chronus/patterns`, else `./patterns`.
    pub fn patterns_dir(&self) -> PathBuf {
        self.patterns_dir
            .clone()
            .unwrap_or_else(|| state_dir("patterns"))
    }
}

/// `name` in the daemon's state: in systemd's `$STATE_DIRECTORY`, else
/// `$XDG_STATE_HOME/chronus`, else `~/.local/state/chronus`, else the working
/// directory.
fn state_dir(name: &str) -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(state) = var("STATE_DIRECTORY") {
        // systemd lists several directories separated by colons; the first is ours.
        let state = state
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        return PathBuf::from(state).join(name);
    }
    if let Some(xdg) = var("XDG_STATE_HOME") {
        return PathBuf::from(xdg).join("chronus").join(name);
    }
    match var("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/chronus").join(name),
        None => PathBuf::from(name),
    }
}

/// The Prometheus endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsConfig {
    /// `ip:port` to serve `/metrics` on (validated); `None` serves nothing.
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The address to serve on, or `None` when off.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref()?.parse().ok()
    }
}

/// Where `/viz/levels` and `/viz/spectrum` are sent.
#[derive(Clone, Debug, PartialEq)]
pub struct VizConfig {
    pub enabled: bool,
    pub host: IpAddr,
    /// 0 turns the messages off, as `enabled = false` does.
    pub port: u16,
}

impl VizConfig {
    /// The destination, or `None` when visualisation is off.
    pub fn target(&self) -> Option<std::net::SocketAddr> {
        (self.enabled && self.port != 0).then(|| std::net::SocketAddr::new(self.host, self.port))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerConfig {
    pub hang_timeout_ms: u32,
    pub restart_backoff_min_ms: u32,
    pub restart_backoff_max_ms: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    pub verbose: bool,
    /// A tracing `EnvFilter` directive, checked only superficially here.
    pub filter: Option<String>,
}

impl LogConfig {
    /// The filter in force: `filter`, else `debug` or `info` by `verbose`.
    pub fn directive(&self) -> String {
        self.filter
            .clone()
            .unwrap_or_else(|| if self.verbose { "debug" } else { "info" }.into())
    }
}

/// Text to speech and speech recognition.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeechSettings {
    pub tts: TtsSettings,
    pub asr: AsrSettings,
    pub wake: WakeSettings,
}

/// Where a speech engine is: a program the daemon spawns (`stdio`), or a Wyoming
/// service that already runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceUri {
    Stdio,
    /// `host:port`, as written after `tcp://`.
    Tcp(String),
    /// An absolute socket path.
    Unix(PathBuf),
}

impl ServiceUri {
    /// `stdio`, `tcp://HOST:PORT` or `unix:///PATH`.
    fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("stdio") {
            return Some(ServiceUri::Stdio);
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let (host, port) = rest.rsplit_once(':')?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
            let host_ok = !host.is_empty() && !host.chars().any(|c| c.is_whitespace() || c == '/');
            return (port_ok && host_ok).then(|| ServiceUri::Tcp(rest.to_owned()));
        }
        let path = s.strip_prefix("unix://")?;
        (path.len() > 1 && path.starts_with('/')).then(|| ServiceUri::Unix(path.into()))
    }
}

impl fmt::Display for ServiceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceUri::Stdio => f.write_str("stdio"),
            ServiceUri::Tcp(addr) => write!(f, "tcp://{addr}"),
            ServiceUri::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Wake-word detection by a Wyoming service.
#[derive(Clone, Debug, PartialEq)]
pub struct WakeSettings {
    pub enabled: bool,
    /// Never [`ServiceUri::Stdio`].
    pub uri: ServiceUri,
    /// Wake words to listen for; empty is every one the service offers.
    pub names: Vec<String>,
    /// After a detection, recognise one utterance and send its transcript.
    pub then_listen: bool,
}

/// Text to speech.
#[derive(Clone, Debug, PartialEq)]
pub struct TtsSettings {
    pub enabled: bool,
    /// `stdio` runs `command`; otherwise a Wyoming service to connect to.
    pub uri: ServiceUri,
    /// Program and arguments, never run through a shell; a one-shot program's
    /// `{text}` and `{voice}` arguments are replaced by the request's.
    pub command: Vec<String>,
    pub protocol: TtsProtocol,
    /// Wyoming servers pooled.
    pub engines: u32,
    /// Used when a request names no voice.
    pub voice: String,
    pub cache_entries: u32,
    /// Bound of the synthesis cache, in MiB.
    pub cache_mb: u32,
    /// Per-request timeout.
    pub timeout_ms: u32,
    /// Speech level at the output.
    pub gain: f32,
    /// Music level while speech plays; 1.0 turns ducking off.
    pub duck: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtsProtocol {
    /// A program run once per request, writing WAV on stdout.
    OneShot,
    /// A server kept running, speaking the Wyoming protocol on stdin/stdout.
    Wyoming,
}

impl TtsProtocol {
    /// Case-insensitive, like [`Backend`].
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "oneshot" => Some(TtsProtocol::OneShot),
            "wyoming" => Some(TtsProtocol::Wyoming),
            _ => None,
        }
    }
}

impl fmt::Display for TtsProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TtsProtocol::OneShot => "oneshot",
            TtsProtocol::Wyoming => "wyoming",
        })
    }
}

/// Speech recognition.
#[derive(Clone, Debug, PartialEq)]
pub struct AsrSettings {
    pub enabled: bool,
    /// `stdio` runs `command`; otherwise a Wyoming service to connect to.
    pub uri: ServiceUri,
    /// A streaming recogniser: raw 16-bit mono PCM at `rate` on stdin, one line per
    /// utterance on stdout. Never run through a shell.
    pub command: Vec<String>,
    /// A JSGF grammar, passed to the recogniser as `-jsgf PATH`.
    pub grammar: Option<PathBuf>,
    /// Sample rate of the audio fed to the recogniser, in Hz.
    pub rate: u32,
    /// Quiet after speech that ends an utterance sent to a Wyoming recogniser.
    pub silence_ms: u32,
    /// Capture device as cpal lists it; `None` is the default input device.
    pub input_device: Option<String>,
    /// The only directory `/chronus/asr/transcribe` reads from; unset means
    /// [`AsrSettings::transcribe_dir`]'s fallback.
    pub transcribe_dir: Option<PathBuf>,
}

/// Largest WAV file `/chronus/asr/transcribe` reads: at 16 bits, about 35
/// minutes of 16 kHz mono or 6 of 48 kHz stereo.
pub const TRANSCRIBE_MAX_BYTES: u64 = 64 << 20;

impl AsrSettings {
    /// The directory `/chronus/asr/transcribe` names files in: the setting,
    /// else `transcribe` beside the pattern slots (see
    /// [`EngineConfig::patterns_dir`]).
    pub fn transcribe_dir(&self) -> PathBuf {
        self.transcribe_dir
            .clone()
            .unwrap_or_else(|| state_dir("transcribe"))
    }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|&a| a.to_owned()).collect()
}

/// Why loading stopped. Each message names the key or variable, the value given and
/// what is accepted.
#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    #[error("cannot read config file {}: {error}", path.display())]
    ReadFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config file {} is not valid TOML: {error}", path.display())]
    Syntax {
        path: PathBuf,
        error: toml::de::Error,
    },
    #[error("unknown key `{key}` in {} ({known})", path.display())]
    UnknownKey {
        key: String,
        path: PathBuf,
        /// The keys that would have been accepted there, and a likely intended key.
        known: String,
    },
    #[error("{key} = {value} in {} is invalid: expected {expected}", path.display())]
    InvalidFileValue {
        key: String,
        /// The value as written in TOML.
        value: String,
        path: PathBuf,
        expected: String,
    },
    #[error("{var}={value} is invalid: expected {expected}")]
    InvalidEnvValue {
        var: String,
        /// Lossily decoded when not UTF-8.
        value: String,
        expected: String,
    },
    #[error("unknown override key `{key}` (known keys: {known})")]
    UnknownOverrideKey { key: String, known: String },
    #[error("command-line override {key}={value} is invalid: expected {expected}")]
    InvalidOverrideValue {
        key: String,
        value: String,
        expected: String,
    },
    #[error(
        "workers.restart_backoff_max_ms = {max} (from {max_source}) is invalid: expected at least \
         workers.restart_backoff_min_ms = {min} (from {min_source})"
    )]
    BackoffRange {
        min: u32,
        min_source: Source,
        max: u32,
        max_source: Source,
    },
}

/// A validated configuration and where each value came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    /// Things worth telling the user that do not stop the daemon (unknown or legacy
    /// variables), in a deterministic order.
    pub warnings: Vec<String>,
    /// Parallel to [`settings()`].
    sources: Vec<Source>,
}

impl Loaded {
    /// Which layer set `key` (a dotted TOML key); `None` for an unknown key.
    pub fn source_of(&self, key: &str) -> Option<&Source> {
        index_of(key).map(|i| &self.sources[i])
    }

    /// The effective configuration as valid TOML, each key followed by a comment naming
    /// its source; unset keys appear as comments.
    pub fn to_annotated_toml(&self) -> String {
        let mut out = String::from(
            "# Effective Chronus configuration; each comment names where the value came from.\n",
        );
        let mut section = None;
        for (info, source) in settings().iter().zip(&self.sources) {
            // `settings()` lists top-level keys first, as TOML requires.
            if let Some(name) = info.section().filter(|&s| section != Some(s)) {
                section = Some(name);
                let _ = write!(out, "\n[{name}]\n");
            }
            // A path in the source could hold a newline, which would end the comment.
            let source = source.to_string().replace(char::is_control, "?");
            let _ = match info.kind.to_toml(&self.config) {
                Some(value) => writeln!(out, "{} = {value}  # {source}", info.name()),
                None => writeln!(out, "# {} is unset  # {source}", info.name()),
            };
        }
        out
    }
}

/// The dotted keys of the settings whose values differ between `old` and `new`, in
/// [`settings()`] order.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    settings()
        .iter()
        .filter(|s| s.kind.to_toml(old) != s.kind.to_toml(new))
        .map(|s| s.key)
        .collect()
}

/// Loads the configuration: defaults, then `sources.config_file`, then the
/// environment, then the overrides. Stops at the first invalid value, checking the
/// file's keys in sorted order, environment variables in [`settings()`] order and
/// overrides in the order given.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let mut builder = Builder {
        config: Config::default(),
        sources: vec![Source::Default; settings().len()],
        warnings: Vec::new(),
    };
    if let Some(path) = &sources.config_file {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::ReadFile {
            path: path.clone(),
            error,
        })?;
        builder.apply_file(path, &text)?;
    }
    let lead_target = builder.apply_env(&sources.env)?;
    for (key, value) in &sources.overrides {
        builder.apply_override(key, value)?;
    }
    if let Some(lead_target) = lead_target {
        builder.apply_lead_target(lead_target);
    }
    builder.check_backoff()?;
    Ok(Loaded {
        config: builder.config,
        warnings: builder.warnings,
        sources: builder.sources,
    })
}

struct Builder {
    config: Config,
    sources: Vec<Source>,
    warnings: Vec<String>,
}

impl Builder {
    fn source(&self, key: &str) -> &Source {
        index_of(key).map_or(&Source::Default, |i| &self.sources[i])
    }

    fn apply_file(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|error| ConfigError::Syntax {
            path: path.to_owned(),
            error,
        })?;
        self.apply_file_table(path, None, &table)
    }

    /// Applies `table`, the top level of the file (`parent` `None`) or the table named
    /// by the dotted `parent`, descending into the tables that hold sections.
    fn apply_file_table(
        &mut self,
        path: &Path,
        parent: Option<&str>,
        table: &toml::Table,
    ) -> Result<(), ConfigError> {
        for (name, value) in table {
            let key = parent.map_or_else(|| name.clone(), |parent| format!("{parent}.{name}"));
            let within: Vec<_> = sections()
                .into_iter()
                .filter(|s| is_within(s, &key))
                .collect();
            if within.is_empty() || index_of(&key).is_some() {
                self.apply_file_value(path, &key, value)?;
                continue;
            }
            let Some(inner) = value.as_table() else {
                let headers: Vec<_> = within.iter().map(|s| format!("[{s}]")).collect();
                return Err(ConfigError::InvalidFileValue {
                    value: value.to_string(),
                    path: path.to_owned(),
                    expected: format!("a table of settings ({})", headers.join(", ")),
                    key,
                });
            };
            self.apply_file_table(path, Some(&key), inner)?;
        }
        Ok(())
    }

    fn apply_file_value(
        &mut self,
        path: &Path,
        key: &str,
        value: &toml::Value,
    ) -> Result<(), ConfigError> {
        let Some(i) = index_of(key) else {
            return Err(ConfigError::UnknownKey {
                key: key.to_owned(),
                path: path.to_owned(),
                known: known_keys_near(key),
            });
        };
        let info = &settings()[i];
        info.kind
            .set_toml(&mut self.config, value)
            .map_err(|_| ConfigError::InvalidFileValue {
                key: key.to_owned(),
                value: value.to_string(),
                path: path.to_owned(),
                expected: info.accepted(),
            })?;
        self.sources[i] = Source::File(path.to_owned());
        Ok(())
    }

    /// Applies the `CHRONUS_*` variables; returns the legacy lead target to convert
    /// once the final buffer and block sizes are known.
    fn apply_env(&mut self, env: &[(OsString, OsString)]) -> Result<Option<u32>, ConfigError> {
        // Later duplicates win, as with setenv; empty values count as unset.
        let mut vars = BTreeMap::new();
        for (name, value) in env {
            match name.to_str() {
                Some(name) if name.starts_with("CHRONUS_") && !value.is_empty() => {
                    vars.insert(name, value);
                }
                Some(_) => {}
                None if name.as_encoded_bytes().starts_with(b"CHRONUS_") => {
                    self.warnings.push(format!(
                        "ignoring environment variable {} whose name is not valid UTF-8",
                        name.to_string_lossy()
                    ));
                }
                None => {}
            }
        }
        let invalid =
            |var: &str, value: &OsString, expected: String| ConfigError::InvalidEnvValue {
                var: var.to_owned(),
                value: value.to_string_lossy().into_owned(),
                expected,
            };

        for (i, info) in settings().iter().enumerate() {
            let alias = info.env_alias.filter(|alias| vars.contains_key(alias));
            let var = match (vars.contains_key(info.env), alias) {
                (true, Some(alias)) => {
                    self.warnings.push(format!(
                        "{alias} (the legacy name of {}) is ignored because {} is also set",
                        info.env, info.env
                    ));
                    info.env
                }
                (true, None) => info.env,
                (false, Some(alias)) => alias,
                (false, None) => continue,
            };
            let value = vars[var];
            value
                .to_str()
                .ok_or(settings::Invalid)
                .and_then(|s| info.kind.set_text(&mut self.config, s))
                .map_err(|_| invalid(var, value, info.accepted()))?;
            self.sources[i] = Source::Env(var.to_owned());
        }

        let lead_target = match vars.get(LEAD_TARGET_ENV) {
            Some(value) => Some(
                value
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .filter(|n| (1..=LEAD_TARGET_MAX).contains(n))
                    .ok_or_else(|| {
                        invalid(
                            LEAD_TARGET_ENV,
                            value,
                            format!(
                                "an integer number of device buffers from 1 to {LEAD_TARGET_MAX}"
                            ),
                        )
                    })?,
            ),
            None => None,
        };

        for (var, replacement) in LEGACY_NO_EFFECT {
            if let Some(value) = vars.get(var) {
                self.warnings.push(format!(
                    "{var}={} has no effect (a legacy Music Chronus setting): {replacement}",
                    value.to_string_lossy()
                ));
            }
        }

        for var in vars.keys() {
            let known = *var == CONFIG_ENV
                || *var == TEST_DIVERGE_ENV
                || *var == TEST_JOURNAL_SOCKET_ENV
                || *var == LEAD_TARGET_ENV
                || LEGACY_NO_EFFECT.iter().any(|(legacy, _)| legacy == var)
                || settings()
                    .iter()
                    .any(|s| s.env == *var || s.env_alias == Some(*var));
            if !known {
                self.warnings
                    .push(format!("unknown environment variable {var} is ignored"));
            }
        }
        Ok(lead_target)
    }

    fn apply_override(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let i = index_of(key).ok_or_else(|| ConfigError::UnknownOverrideKey {
            key: key.to_owned(),
            known: settings()
                .iter()
                .map(|s| s.key)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let info = &settings()[i];
        info.kind.set_text(&mut self.config, value).map_err(|_| {
            ConfigError::InvalidOverrideValue {
                key: key.to_owned(),
                value: value.to_owned(),
                expected: info.accepted(),
            }
        })?;
        self.sources[i] = Source::Override;
        Ok(())
    }

    /// `CHRONUS_LEAD_TARGET` counted device buffers (in Music Chronus a buffer and a
    /// block were the same size). It sits at the environment layer, below
    /// `CHRONUS_LOOKAHEAD_BLOCKS` and overrides.
    fn apply_lead_target(&mut self, buffers: u32) {
        const KEY: &str = "audio.lookahead_blocks";
        let source = self.source(KEY);
        if !matches!(source, Source::Default | Source::File(_)) {
            let warning =
                format!("{LEAD_TARGET_ENV}={buffers} is ignored because {KEY} is set by {source}");
            self.warnings.push(warning);
            return;
        }
        let audio = &mut self.config.audio;
        // Music Chronus counted in buffers and blocks of 256 frames: under auto, so does
        // the conversion.
        let (buffer, block) = (
            audio.buffer_size.unwrap_or(LEGACY_FRAMES),
            audio.block_frames.unwrap_or(LEGACY_FRAMES),
        );
        let frames = buffers.saturating_mul(buffer);
        let exact = frames.div_ceil(block);
        let blocks = exact.clamp(LOOKAHEAD_MIN, LOOKAHEAD_MAX);
        audio.lookahead_blocks = Some(blocks);
        let mut warning = format!(
            "{LEAD_TARGET_ENV}={buffers} is a legacy Music Chronus setting counted in device \
             buffers: {buffers} x {buffer} frames = {frames} frames, converted to {KEY} = {blocks} \
             (blocks of {block} frames"
        );
        if blocks != exact {
            let _ = write!(
                warning,
                "; {exact} is outside {LOOKAHEAD_MIN} to {LOOKAHEAD_MAX}"
            );
        }
        warning.push_str("); set CHRONUS_LOOKAHEAD_BLOCKS instead");
        self.warnings.push(warning);
        if let Some(i) = index_of(KEY) {
            self.sources[i] = Source::Env(LEAD_TARGET_ENV.to_owned());
        }
    }

    fn check_backoff(&self) -> Result<(), ConfigError> {
        let workers = &self.config.workers;
        if workers.restart_backoff_max_ms >= workers.restart_backoff_min_ms {
            return Ok(());
        }
        Err(ConfigError::BackoffRange {
            min: workers.restart_backoff_min_ms,
            min_source: self.source("workers.restart_backoff_min_ms").clone(),
            max: workers.restart_backoff_max_ms,
            max_source: self.source("workers.restart_backoff_max_ms").clone(),
        })
    }
}

/// The `[section]` names (dotted for nested ones, as `speech.tts`), in table order.
fn sections() -> Vec<&'static str> {
    let mut sections: Vec<_> = settings().iter().filter_map(SettingInfo::section).collect();
    sections.dedup();
    sections
}

/// Whether `section` is the table `table` or nested in it.
fn is_within(section: &str, table: &str) -> bool {
    section
        .strip_prefix(table)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// For an unknown dotted key: the keys and sections accepted where it was written, and
/// what the user probably meant when its last part names a setting or section
/// elsewhere (`port` at the top level, `record` written below a `[section]` header,
/// `[tts]` for `[speech.tts]`).
fn known_keys_near(key: &str) -> String {
    let (parent, name) = match key.rsplit_once('.') {
        Some((parent, name)) => (Some(parent), name),
        None => (None, key),
    };
    let mut known: Vec<String> = settings()
        .iter()
        .filter(|s| s.section() == parent)
        .map(|s| s.name().to_owned())
        .collect();
    known.extend(
        sections()
            .into_iter()
            .filter(|&s| parent.is_none_or(|parent| s != parent && is_within(s, parent)))
            .map(|s| format!("[{s}]")),
    );
    let mut text = match parent {
        Some(parent) => format!("known keys in [{parent}]: {}", known.join(", ")),
        None => format!("known top-level keys: {}", known.join(", ")),
    };
    let mut meant: Vec<String> = settings()
        .iter()
        .filter(|s| s.name() == name)
        .map(|s| format!("`{}`", s.key))
        .collect();
    meant.extend(
        sections()
            .into_iter()
            .filter(|s| s.rsplit('.').next() == Some(name))
            .map(|s| format!("`[{s}]`")),
    );
    if !meant.is_empty() {
        let _ = write!(text, "; did you mean {}?", meant.join(" or "));
    }
    text
}
