//! Logging to stderr through tracing-subscriber. Under journald (JOURNAL_STREAM
//! set) lines carry no colours or timestamps: the journal adds its own. Colours
//! only go to a terminal. The filter can be replaced at runtime (SIGHUP).

use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// Replaces the active filter; the error says why a filter was rejected.
pub type SetFilter = Box<dyn Fn(&str) -> Result<(), String>>;

pub fn init(filter: &str) -> SetFilter {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::<EnvFilter, Registry>::new(filter);
    let output = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!journald && std::io::stderr().is_terminal());
    if journald {
        tracing_subscriber::registry()
            .with(filter)
            .with(output.without_time())
            .init();
    } else {
        tracing_subscriber::registry()
            .with(filter)
            .with(output)
            .init();
    }
    Box::new(move |directives| {
        let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}
