//! `/chronus/status`: the daemon's live state as alternating keys and values, and
//! `/chronus/status/json`: the same figures as one exact JSON object.

use crate::daemon::Daemon;
use chronus_osc::{OscPacket, OscType};
use chronus_shm::SLOTS;
use std::sync::atomic::Ordering;

/// One status value, kept exact until it is sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Figure {
    Text(String),
    /// A value bounded below 2^31 (rates, sizes, slots, pids, bounded queues).
    Int(i32),
    /// A counter or frame position: `s` digits in OSC, a number in JSON.
    Count(u64),
    Float(f32),
    /// `i` 1/0 in OSC, true/false in JSON.
    Flag(bool),
}

impl Figure {
    /// A bounded integer; saturates rather than wraps should the bound be wrong.
    pub fn int(v: u64) -> Figure {
        Figure::Int(v.min(i32::MAX as u64) as i32)
    }

    fn osc(&self) -> OscType {
        match self {
            Figure::Text(s) => OscType::String(s.clone()),
            Figure::Int(v) => OscType::Int(*v),
            Figure::Count(v) => chronus_osc::count(*v),
            Figure::Float(v) => OscType::Float(*v),
            Figure::Flag(v) => chronus_osc::flag(*v),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Figure::Text(s) => s.as_str().into(),
            Figure::Int(v) => (*v).into(),
            Figure::Count(v) => (*v).into(),
            // Through its shortest decimal form, so 0.1f32 stays 0.1; NaN and the
            // infinities become null.
            Figure::Float(v) => v
                .to_string()
                .parse::<f64>()
                .map_or(serde_json::Value::Null, Into::into),
            Figure::Flag(v) => (*v).into(),
        }
    }
}

/// `/chronus/status.reply`: only OSC 1.0 core types.
pub fn reply(sup: &Daemon) -> OscPacket {
    chronus_osc::status_reply(
        figures(sup)
            .into_iter()
            .map(|(key, value)| (key, value.osc()))
            .collect(),
    )
}

/// `/chronus/status/json.reply`: one JSON object, keys in the order of [`reply`].
pub fn json(sup: &Daemon) -> OscPacket {
    let fields: Vec<String> = figures(sup)
        .into_iter()
        .map(|(key, value)| format!("{}:{}", serde_json::Value::from(key), value.json()))
        .collect();
    chronus_osc::message(
        chronus_osc::STATUS_JSON_REPLY_ADDR,
        vec![OscType::String(format!("{{{}}}", fields.join(",")))],
    )
}

pub fn figures(sup: &Daemon) -> Vec<(&'static str, Figure)> {
    let header = sup.region.header();
    let clock = &header.clock;
    let c = &sup.pool.counters;
    let (osc, refused) = (&sup.clients.counters, &sup.publisher.counters);
    let long = Figure::Count;
    let int = Figure::int;
    let mut pairs: Vec<(&str, Figure)> = vec![
        ("version", Figure::Text(env!("CARGO_PKG_VERSION").into())),
        (
            "uptime_s",
            Figure::Float(sup.started.elapsed().as_secs_f32()),
        ),
        ("backend", Figure::Text(sup.backend.into())),
        ("sample_rate", int(u64::from(sup.config.audio.sample_rate))),
        ("buffer_frames", int(u64::from(sup.buffer_frames))),
        (
            "block_frames",
            int(u64::from(sup.region.geometry().block_frames)),
        ),
        (
            "lookahead_frames",
            int(sup.region.geometry().lookahead_frames),
        ),
        (
            "host",
            Figure::Text(sup.output.as_ref().map_or("none", |o| o.host_name()).into()),
        ),
        (
            "device_lost",
            Figure::Flag(sup.output.as_ref().is_some_and(|o| o.device_lost())),
        ),
        ("device_losses", long(sup.device_losses)),
        ("frames", long(clock.frames_out.load(Ordering::Relaxed))),
        (
            "underrun_frames",
            long(clock.underrun_frames.load(Ordering::Relaxed)),
        ),
        (
            "fallback_frames",
            long(clock.fallback_frames.load(Ordering::Relaxed)),
        ),
        ("xruns", long(clock.xruns.load(Ordering::Relaxed))),
        (
            "late_callbacks",
            long(clock.late_callbacks.load(Ordering::Relaxed)),
        ),
        ("failovers", long(c.failovers)),
        (
            "active_slot",
            int(u64::from(clock.active_slot.load(Ordering::Relaxed))),
        ),
    ];
    const PID_KEYS: [&str; SLOTS] = ["slot0_pid", "slot1_pid"];
    const STATE_KEYS: [&str; SLOTS] = ["slot0_state", "slot1_state"];
    for slot in 0..SLOTS {
        let state = sup.pool.state(slot);
        pairs.push((PID_KEYS[slot], int(u64::from(state.pid().unwrap_or(0)))));
        pairs.push((STATE_KEYS[slot], Figure::Text(state.name().into())));
    }
    pairs.extend([
        ("restores", long(c.restores)),
        ("last_restore_ms", Figure::Float(c.last_restore_ms as f32)),
        ("last_exit_mono_ns", long(c.last_exit_mono_ns)),
        ("divergences", long(c.divergences)),
        ("cold_starts", long(c.cold_starts)),
        ("hangs", long(c.hangs)),
        ("faults", long(c.faults)),
        (
            "restart_backoff_ms",
            int(sup.pool.backoff().as_millis() as u64),
        ),
        (
            "late_commands",
            long(
                (0..SLOTS)
                    .map(|i| sup.region.slot(i).late_commands.load(Ordering::Relaxed))
                    .sum(),
            ),
        ),
        (
            "rewinds",
            long(
                (0..SLOTS)
                    .map(|i| sup.region.slot(i).rewinds.load(Ordering::Relaxed))
                    .sum(),
            ),
        ),
        ("limiter", Figure::Flag(sup.config.audio.limiter)),
        (
            "limiter_ceiling_db",
            Figure::Float(sup.config.audio.limiter_ceiling_db),
        ),
        // Counted as workers render (ahead of the device by the lookahead); both
        // render the same blocks, so the busier slot's count stands for the output.
        (
            "limited_samples",
            long(
                (0..SLOTS)
                    .map(|i| sup.region.slot(i).limited_samples.load(Ordering::Relaxed))
                    .max()
                    .unwrap_or(0),
            ),
        ),
        (
            "callback_max_us",
            Figure::Float(clock.callback_max_ns.load(Ordering::Relaxed) as f32 / 1e3),
        ),
        ("play_frame", long(clock.play_frame.load(Ordering::Relaxed))),
        // Everything that arrived, including what the sender gate stopped.
        (
            "osc_received",
            long(osc.received + sup.gate.refused() + sup.gate.limited()),
        ),
        ("osc_errors", long(osc.errors)),
        ("osc_clamped", long(osc.clamped)),
        ("osc_late", long(osc.late)),
        ("osc_schedule_full", long(refused.schedule_full)),
        ("osc_schedule_share_full", long(refused.schedule_share)),
        ("osc_schedule_horizon", long(refused.schedule_horizon)),
        ("osc_scheduled", int(sup.publisher.scheduled() as u64)),
        ("osc_syncs_refused", long(refused.syncs_refused)),
        ("osc_file_busy", long(sup.storage.busy)),
        ("osc_rate_limited", long(sup.gate.limited())),
        ("osc_refused", long(sup.gate.refused())),
        ("osc_tcp_connections", int(sup.tcp.connections() as u64)),
        (
            "osc_tcp_refused_per_address",
            long(sup.tcp.refused_per_address()),
        ),
        ("osc_tcp_refused_full", long(sup.tcp.refused_full())),
        ("osc_tcp_evicted", long(sup.tcp.evicted_connections())),
        ("osc_tcp_idle_closed", long(sup.tcp.idle_closed())),
        ("osc_replies_dropped", long(sup.tcp.dropped_replies())),
        ("osc_subscribers", int(sup.clients.subscribers() as u64)),
        (
            "osc_subscribers_refused",
            long(sup.clients.subscriptions_refused()),
        ),
        (
            "osc_subscribers_evicted",
            long(sup.clients.subscriptions_evicted()),
        ),
        (
            "osc_subscribers_expired",
            long(sup.clients.subscriptions_expired()),
        ),
        ("osc_queue_full", long(refused.queue_full)),
        ("osc_kernel_drops", long(sup.osc.kernel_drops())),
        ("journal_errors", long(sup.publisher.journal_errors())),
        ("storage_errors", long(sup.storage_errors.count())),
    ]);
    pairs.extend(sup.desk.status_pairs(sup.input.dropped()));
    pairs
}
