//! Who may send OSC, and how fast: the allowlist and a token bucket per sender address,
//! checked on the receiving threads before a packet is decoded or queued.

use chronus_config::Cidr;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// The allowlist and the rate limiter, shared by the UDP receiver and every TCP reader;
/// the event loop changes them on reload.
pub struct SenderGate {
    state: Mutex<(Vec<Cidr>, RateLimiter)>,
    refused: AtomicU64,
    limited: AtomicU64,
}

impl SenderGate {
    pub fn new(allow: Vec<Cidr>, rate: u32) -> SenderGate {
        SenderGate {
            state: Mutex::new((allow, RateLimiter::per_second(rate))),
            refused: AtomicU64::new(0),
            limited: AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, (Vec<Cidr>, RateLimiter)> {
        // Every update leaves the state whole; a panic elsewhere cannot corrupt it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a packet from `ip` goes on; refusals and drops are counted.
    pub fn admit(&self, ip: IpAddr) -> bool {
        let mut state = self.state();
        let (allow, rate) = &mut *state;
        if !allow.is_empty() && !allow.iter().any(|net| net.contains(ip)) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if !rate.admit(ip, Instant::now()) {
            self.limited.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn set_allow(&self, allow: Vec<Cidr>) {
        self.state().0 = allow;
    }

    pub fn set_rate(&self, rate: u32) {
        self.state().1 = RateLimiter::per_second(rate);
    }

    /// Packets from senders outside the allowlist.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Packets over their sender's rate.
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }
}

/// Most senders remembered; the least recently seen is forgotten beyond it.
const MAX_CLIENTS: usize = 1024;

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    clients: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    /// `rate` messages a second, in bursts of up to a tenth of a second's worth: a
    /// whole second's worth let a flood through at full speed for its first second.
    pub fn per_second(rate: u32) -> RateLimiter {
        RateLimiter::new(f64::from(rate), (f64::from(rate) / 10.0).max(1.0))
    }

    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst,
            clients: HashMap::new(),
        }
    }

    /// Whether `ip` may send one more packet now.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.clients.len() >= MAX_CLIENTS && !self.clients.contains_key(&ip) {
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(ip, _)| *ip);
            if let Some(oldest) = oldest {
                self.clients.remove(&oldest);
            }
        }
        let (tokens, seen) = self.clients.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*seen).as_secs_f64() * self.rate).min(self.burst);
        *seen = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flood_is_cut_to_the_rate_and_other_clients_are_unaffected() {
        let mut limiter = RateLimiter::new(1000.0, 100.0);
        let t0 = Instant::now();
        let flood: IpAddr = "10.0.0.1".parse().unwrap();
        let admitted = (0..1000).filter(|_| limiter.admit(flood, t0)).count();
        assert_eq!(admitted, 100, "a burst beyond the bucket is cut");
        assert!(
            limiter.admit("10.0.0.2".parse().unwrap(), t0),
            "another client has its own bucket"
        );
        let later = t0 + Duration::from_millis(50);
        let admitted = (0..1000).filter(|_| limiter.admit(flood, later)).count();
        assert_eq!(admitted, 50, "refills at the rate");
    }

    #[test]
    fn the_gate_refuses_strangers_limits_floods_counts_both_and_takes_new_settings() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let gate = SenderGate::new(vec!["127.0.0.1/32".parse().unwrap()], 1000);
        assert!(!gate.admit(ip("127.0.0.2")));
        assert_eq!(gate.refused(), 1);
        // A burst of a tenth of a second's worth, then nothing until the bucket refills.
        let admitted = (0..1000).filter(|_| gate.admit(ip("127.0.0.1"))).count();
        assert!((100..110).contains(&admitted), "{admitted} admitted");
        assert_eq!(gate.limited(), 1000 - admitted as u64);
        gate.set_allow(vec!["127.0.0.2/32".parse().unwrap()]);
        assert!(gate.admit(ip("127.0.0.2")));
        assert!(!gate.admit(ip("127.0.0.1")));
        gate.set_allow(Vec::new());
        gate.set_rate(1_000_000);
        assert!(
            (0..1000).all(|_| gate.admit(ip("10.1.2.3"))),
            "empty allowlist, high rate"
        );
    }
}
