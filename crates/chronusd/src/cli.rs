use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "chronusd",
    version,
    about = "Fault-tolerant real-time audio daemon with hot-standby workers"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args)]
pub struct Global {
    /// TOML configuration file (else CHRONUS_CONFIG, else /etc/chronus/chronus.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one setting, e.g. `--set audio.backend=null` (repeatable; beats the environment).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (the default).
    Run,
    /// Print the effective configuration with the source of each value.
    CheckConfig,
    /// Render an OSC score (or a journal) to a WAV file, as fast as the CPU allows.
    Render(RenderArgs),
    /// Write the man pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    Docs { dir: PathBuf },
    /// Internal: a worker process, started by the supervisor.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        slot: usize,
        #[arg(long)]
        fd: i32,
    },
}

#[derive(Args)]
pub struct RenderArgs {
    /// Score: int32-length-prefixed OSC bundles, timetags in seconds from the start.
    pub score: PathBuf,
    /// Output WAV (32-bit float).
    #[arg(long)]
    pub out: PathBuf,
    /// Seconds to render (default: until 2 s after the last event).
    #[arg(long, conflicts_with = "frames")]
    pub duration: Option<f64>,
    /// Exact number of frames to render.
    #[arg(long)]
    pub frames: Option<u64>,
    /// Sample rate when the score does not carry one.
    #[arg(long, default_value_t = 48_000)]
    pub sample_rate: u32,
    /// Voices when the score does not say.
    #[arg(long, default_value_t = 4)]
    pub voices: u8,
}
