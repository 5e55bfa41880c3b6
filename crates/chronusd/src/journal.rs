//! Under systemd, entries go to the journal's native socket with their fields, so an
//! operator can search them: `journalctl CHRONUS_ID=chronus.failover`, with
//! `PRIORITY`, `CHRONUS_ROLE` and every field of the event (`CHRONUS_REASON`,
//! `CHRONUS_SLOT`, ...). Used only when JOURNAL_STREAM names our stderr and the
//! socket takes a first entry; otherwise lines go to stderr (see `logging.rs`).

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

const SOCKET: &str = "/run/systemd/journal/socket";

pub struct JournalLayer {
    socket: UnixDatagram,
    /// The role of entries logged outside any span.
    label: String,
}

impl JournalLayer {
    /// Connects to the journal's socket; `None` when there is none to take entries.
    pub fn connect(label: String) -> Option<JournalLayer> {
        let path = std::env::var_os(chronus_config::TEST_JOURNAL_SOCKET_ENV)
            .unwrap_or_else(|| SOCKET.into());
        let socket = UnixDatagram::unbound().ok()?;
        socket.connect(path).ok()?;
        Some(JournalLayer { socket, label })
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let role = ctx
            .event_scope(event)
            .and_then(|scope| scope.from_root().last().map(|s| s.name().to_owned()))
            .unwrap_or_else(|| self.label.clone());
        let priority = match *event.metadata().level() {
            Level::ERROR => "3",
            Level::WARN => "4",
            Level::INFO => "6",
            _ => "7",
        };
        let mut message = format!("{role}: {}", fields.message);
        for (key, value) in &fields.pairs {
            let _ = write!(message, " {key}={value}");
        }
        let mut entry = Vec::with_capacity(512);
        put(&mut entry, "MESSAGE", &message);
        put(&mut entry, "PRIORITY", priority);
        put(&mut entry, "SYSLOG_IDENTIFIER", "chronusd");
        put(&mut entry, "CHRONUS_ROLE", &role);
        for (key, value) in &fields.pairs {
            let name: String = key
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            put(
                &mut entry,
                &format!("CHRONUS_{name}"),
                value.trim_matches('"'),
            );
        }
        // A full journal drops the entry; logging must never stop the daemon.
        let _ = self.socket.send(&entry);
    }
}

/// `KEY=value\n`, or the length-prefixed form when the value spans lines.
fn put(entry: &mut Vec<u8>, key: &str, value: &str) {
    entry.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        entry.push(b'\n');
        entry.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        entry.push(b'=');
    }
    entry.extend_from_slice(value.as_bytes());
    entry.push(b'\n');
}

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.pairs
                .push((field.name().to_owned(), format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.pairs
                .push((field.name().to_owned(), format!("{value:?}")));
        }
    }
}
