//! systemd's notify protocol: READY once audio runs in lockstep, STATUS in words,
//! WATCHDOG only while the callback advances and this loop turns, RELOADING and
//! READY around a reload, STOPPING on shutdown. Silent when NOTIFY_SOCKET is unset.

use sd_notify::NotifyState;
use std::time::{Duration, Instant};

pub struct Notifier {
    enabled: bool,
    /// Ping interval: a third of WATCHDOG_USEC, so at least two pings land per period.
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
    frames_at_ping: u64,
    stalled: bool,
    status: String,
    /// READY=1 was sent: a reload before it must not announce readiness early.
    ready: bool,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled().map(|period| period / 3),
            last_ping: None,
            frames_at_ping: 0,
            stalled: false,
            status: String::new(),
            ready: false,
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.enabled
            && let Err(e) = sd_notify::notify(states)
        {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }

    pub fn ready(&mut self, status: String) {
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        self.status = status;
        self.ready = true;
    }

    /// Sends STATUS= when the words changed.
    pub fn status(&mut self, status: String) {
        if status != self.status {
            self.send(&[NotifyState::Status(&status)]);
            self.status = status;
        }
    }

    pub fn reloading(&self) {
        if !self.ready {
            return;
        }
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn reloaded(&self) {
        if !self.ready {
            return;
        }
        self.send(&[NotifyState::Ready, NotifyState::Status(&self.status)]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// Pings the watchdog when due, but only if the device consumed frames since
    /// the last ping: a stalled engine must get restarted.
    pub fn watchdog(&mut self, now: Instant, frames_out: u64) {
        let Some(interval) = self.watchdog else {
            return;
        };
        if self.last_ping.is_some_and(|last| now - last < interval) {
            return;
        }
        if self.last_ping.is_some() && frames_out == self.frames_at_ping {
            if !self.stalled {
                tracing::error!("the audio callback has stalled; withholding the watchdog ping");
                self.stalled = true;
            }
            return;
        }
        if self.stalled {
            tracing::info!("the audio callback is advancing again");
            self.stalled = false;
        }
        self.send(&[NotifyState::Watchdog]);
        self.last_ping = Some(now);
        self.frames_at_ping = frames_out;
    }
}
