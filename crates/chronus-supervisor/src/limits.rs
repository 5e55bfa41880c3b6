//! Per-client rate limiting of OSC input: a token bucket per sender address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

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
}
