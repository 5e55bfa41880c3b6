//! `metrics.listen`: every status figure in the Prometheus text exposition format
//! (0.0.4) at `GET /metrics`. A thread of its own accepts connections (none exists
//! when the setting is unset); each request asks the loop for the figures over the
//! event channel and waits at most a second, so a scrape never touches the audio
//! path and a scraper never holds the loop. Bounded: a request is read up to 8 KiB
//! within two seconds, at most 8 connections are open, at most 2 per client address,
//! so a scraper holding connections open cannot lock out another.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::event::Event;
use crate::status::Figure;

const MAX_REQUEST: usize = 8 << 10;
const IO_TIMEOUT: Duration = Duration::from_secs(2);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_CONNECTIONS: usize = 8;
const MAX_PER_ADDRESS: usize = 2;
const HANDLER_STACK: usize = 128 << 10;

/// The running endpoint: the address it is bound to (port 0 resolved).
pub struct Metrics {
    pub local: SocketAddr,
}

/// Binds `addr` and serves on a thread that lives as long as the process.
pub fn start(addr: SocketAddr, events: Sender<Event>) -> std::io::Result<Metrics> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let open: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Ok(peer) = stream.peer_addr() else {
                    continue;
                };
                if !admit(&open, peer.ip()) {
                    // Over its share: closed at once, no thread, no read.
                    continue;
                }
                let (mine, events) = (open.clone(), events.clone());
                let spawned = std::thread::Builder::new()
                    .name("metrics-conn".into())
                    .stack_size(HANDLER_STACK)
                    .spawn(move || {
                        serve(stream, &events);
                        release(&mine, peer.ip());
                    });
                if spawned.is_err() {
                    release(&open, peer.ip());
                }
            }
        })?;
    Ok(Metrics { local })
}

fn admit(open: &Mutex<HashMap<IpAddr, usize>>, ip: IpAddr) -> bool {
    let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
    let total: usize = open.values().sum();
    let mine = open.entry(ip).or_insert(0);
    if total >= MAX_CONNECTIONS || *mine >= MAX_PER_ADDRESS {
        return false;
    }
    *mine += 1;
    true
}

fn release(open: &Mutex<HashMap<IpAddr, usize>>, ip: IpAddr) {
    let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = open.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            open.remove(&ip);
        }
    }
}

/// Reads one request and answers it; every failure just closes the connection.
fn serve(mut stream: TcpStream, events: &Sender<Event>) {
    if stream.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return;
    }
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > MAX_REQUEST {
            respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "request too large\n",
            );
            return;
        }
    }
    let line = String::from_utf8_lossy(&request);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        respond(&mut stream, "405 Method Not Allowed", "only GET /metrics\n");
        return;
    }
    if path != "/metrics" && !path.starts_with("/metrics?") {
        respond(&mut stream, "404 Not Found", "only GET /metrics\n");
        return;
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let body = events
        .send(Event::Metrics(tx))
        .ok()
        .and_then(|()| rx.recv_timeout(ANSWER_TIMEOUT).ok());
    match body {
        Some(body) => respond(&mut stream, "200 OK", &body),
        None => respond(&mut stream, "503 Service Unavailable", "chronusd is busy\n"),
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let content_type = if status.starts_with("200") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()));
}

/// A figure's name without its unit, the factor to base units, and the base unit's
/// suffix (seconds for every duration, hertz for the rate).
fn unit(key: &str) -> (&str, f64, &'static str) {
    if key == "sample_rate" {
        return (key, 1.0, "_hertz");
    }
    for (suffix, scale) in [("_ms", 1e-3), ("_us", 1e-6), ("_ns", 1e-9), ("_s", 1.0)] {
        if let Some(stem) = key.strip_suffix(suffix) {
            return (stem, scale, "_seconds");
        }
    }
    (key, 1.0, "")
}

/// The figures as Prometheus text: `chronus_` names with units in them, HELP and
/// TYPE lines; counters end in `_total`; text figures become labels of `chronus_info`
/// and state gauges; workers carry `slot` and `role` labels, speech figures `engine`.
pub fn render(figures: &[(&'static str, Figure)]) -> String {
    let text = |key: &str| {
        figures.iter().find_map(|(k, v)| match v {
            Figure::Text(s) if *k == key => Some(s.as_str()),
            _ => None,
        })
    };
    let int = |key: &str| {
        figures.iter().find_map(|(k, v)| match v {
            Figure::Int(i) if *k == key => Some(*i),
            _ => None,
        })
    };
    let active = int("active_slot").unwrap_or(0);
    let mut out = String::new();
    let mut declared = std::collections::HashSet::new();
    let mut sample =
        |out: &mut String, name: &str, kind: &str, help: &str, labels: &str, v: f64| {
            if declared.insert(name.to_owned()) {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
            }
            let value = if v.is_finite() {
                v.to_string()
            } else {
                "NaN".into()
            };
            let _ = writeln!(out, "{name}{labels} {value}");
        };
    let escape = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    sample(
        &mut out,
        "chronus_info",
        "gauge",
        "Version, backend and sound system of this chronusd (always 1).",
        &format!(
            "{{version=\"{}\",backend=\"{}\",host=\"{}\"}}",
            escape(text("version").unwrap_or("")),
            escape(text("backend").unwrap_or("")),
            escape(text("host").unwrap_or(""))
        ),
        1.0,
    );
    for (key, figure) in figures {
        // Slots: `slot0_pid` → chronus_worker_pid{slot="0",role="active"}.
        let (key, labels) = if let Some(rest) = key.strip_prefix("slot") {
            let (slot, field) = rest.split_once('_').unwrap_or((rest, ""));
            let role = if slot.parse::<i32>().ok() == Some(active) {
                "active"
            } else {
                "standby"
            };
            (
                format!("worker_{field}"),
                format!("slot=\"{slot}\",role=\"{role}\""),
            )
        } else if let Some(field) = key.strip_prefix("tts_") {
            (format!("speech_{field}"), "engine=\"tts\"".to_owned())
        } else if let Some(field) = key.strip_prefix("asr_") {
            (format!("speech_{field}"), "engine=\"asr\"".to_owned())
        } else {
            ((*key).to_owned(), String::new())
        };
        let help = format!("The status figure {key} (see /chronus/status).");
        let with = |extra: &str| {
            let all: Vec<&str> = [labels.as_str(), extra]
                .into_iter()
                .filter(|l| !l.is_empty())
                .collect();
            if all.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", all.join(","))
            }
        };
        // Positions, timestamps and sizes are exact 64-bit figures, not counters.
        let (raw, counter) = match figure {
            Figure::Text(state) => {
                if key.ends_with("_state") {
                    let name = format!("chronus_{key}");
                    let help = format!("1 for the current {key} (see /chronus/status).");
                    let labels = with(&format!("state=\"{}\"", escape(state)));
                    sample(&mut out, &name, "gauge", &help, &labels, 1.0);
                }
                continue;
            }
            Figure::Count(v) => (
                *v as f64,
                !(key == "play_frame" || key.ends_with("_ns") || key.ends_with("_bytes")),
            ),
            Figure::Int(v) => (f64::from(*v), false),
            // Through the shortest decimal of the f32: 0.1, not 0.10000000149.
            Figure::Float(v) => (v.to_string().parse().unwrap_or(f64::NAN), false),
            Figure::Flag(v) => (f64::from(u8::from(*v)), false),
        };
        let (stem, scale, unit) = unit(&key);
        let (name, kind) = if counter {
            (format!("chronus_{stem}{unit}_total"), "counter")
        } else {
            (format!("chronus_{stem}{unit}"), "gauge")
        };
        sample(&mut out, &name, kind, &help, &with(""), raw * scale);
    }
    out
}
