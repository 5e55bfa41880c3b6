//! Logging to stderr through tracing-subscriber, one line per event:
//! `[time ]LEVEL role: message fields`. Under journald (JOURNAL_STREAM set) lines
//! carry no timestamps: the journal adds its own; when JOURNAL_STREAM names this
//! process's stderr (its `dev:ino`, as systemd documents), each line starts with
//! its syslog priority (`<4>` for a warning) so `journalctl -p` can filter, and when
//! the journal's native socket is there, entries go to it with their fields instead
//! (`journal.rs`). No colours. The role is the
//! event's spans (a worker's slot, role and pid) or, outside any span (another
//! thread of the supervisor), the process's label. The filter can be replaced at
//! runtime (SIGHUP).

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// Replaces the active filter; the error says why a filter was rejected.
pub type SetFilter = Box<dyn Fn(&str) -> Result<(), String>>;

/// Logs through `filter`, labelling lines logged outside any span with `label`
/// (e.g. `supervisor{pid=42}`).
pub fn init(filter: &str, label: String) -> SetFilter {
    let journald = std::env::var_os("JOURNAL_STREAM");
    let priority = journald
        .as_deref()
        .and_then(|v| v.to_str())
        .is_some_and(stderr_is);
    let journald = journald.is_some();
    let filter = filter_of(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::<EnvFilter, Registry>::new(filter);
    let native = if priority {
        crate::journal::JournalLayer::connect(label.clone())
    } else {
        None
    };
    let output = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Line {
            time: !journald,
            priority,
            label,
        });
    let registry = tracing_subscriber::registry().with(filter);
    match native {
        // Under systemd: entries with their fields, searchable in the journal.
        Some(journal) => registry.with(journal).init(),
        None => registry.with(output).init(),
    }
    Box::new(move |directives| {
        let filter = filter_of(directives)?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}

/// Libraries that log through `log` at levels that mislead an operator, quieted
/// unless the filter names them: the PulseAudio client logs every normal
/// disconnect as an error and every connect at info, jack-sys announces loading
/// libjack. What matters from them reaches the log as the output's stream errors.
const QUIETED: [(&str, &str); 2] = [("pulseaudio", "off"), ("jack_sys", "warn")];

fn filter_of(directives: &str) -> Result<EnvFilter, String> {
    let mut filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
    for (target, level) in QUIETED {
        if !directives.contains(target) {
            filter = filter.add_directive(
                format!("{target}={level}")
                    .parse()
                    .expect("a valid directive"),
            );
        }
    }
    Ok(filter)
}

/// Whether `journal_stream` (`dev:ino`) is the file or socket on fd 2.
fn stderr_is(journal_stream: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = journal_stream.split_once(':') else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2")
        .is_ok_and(|m| dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()))
}

/// The sd-daemon(3) prefix of a level: syslog's err, warning, info, debug.
fn priority_prefix(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "<3>",
        tracing::Level::WARN => "<4>",
        tracing::Level::INFO => "<6>",
        _ => "<7>",
    }
}

struct Line {
    time: bool,
    /// Lines start with their sd-daemon priority prefix.
    priority: bool,
    /// The role of lines logged outside any span.
    label: String,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        if self.priority {
            w.write_str(priority_prefix(event.metadata().level()))?;
        }
        if self.time {
            SystemTime.format_time(&mut w)?;
            w.write_char(' ')?;
        }
        write!(w, "{:>5} ", event.metadata().level())?;
        let mut labelled = false;
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            w.write_str(span.name())?;
            if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                && !fields.is_empty()
            {
                write!(w, "{{{fields}}}")?;
            }
            w.write_char(':')?;
            labelled = true;
        }
        if !labelled {
            write!(w, "{}:", self.label)?;
        }
        w.write_char(' ')?;
        ctx.format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}
