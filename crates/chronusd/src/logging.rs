//! Logging to stderr through tracing-subscriber. Under journald (JOURNAL_STREAM
//! set) lines carry no colours or timestamps: the journal adds its own. Colours
//! only go to a terminal.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(filter: &str) {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!journald && std::io::stderr().is_terminal());
    if journald {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
