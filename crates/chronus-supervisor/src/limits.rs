//! Who may send OSC, and how fast: the allowlist and a token bucket per client, checked
//! on the receiving threads before a packet is decoded or queued.
//!
//! A client is the sender's IP address; on loopback (127.0.0.0/8, ::1) it is the address
//! and the source port, so two programs on this machine (music software flooding the
//! daemon and `chronusctl status`) each have a budget of their own.
//!
//! Forgetting a client must never give it a fresh burst it has not earned, or a flooder
//! cycling through more source ports than the table holds would be refilled on every
//! packet. So a client is forgotten only once its bucket has refilled (a tenth of a
//! second after it was last seen, at the default burst), which loses nothing; a full
//! table is swept of such clients at most four times per refill period, so a flood of
//! new source ports costs no scan per packet. While the table is full of clients still
//! paying off a burst, a new client is charged to a bucket for its address, and while
//! that table is full too, to one bucket all such clients share. The trade-off: a flooder that keeps more than [`MAX_CLIENTS`] source ports busy
//! at once gets at most that many clients' rates plus its address's, and shares that
//! address's bucket with any new client on the same address (on loopback: other programs
//! on this machine); clients on other addresses keep a bucket of their own.

use chronus_config::Cidr;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

    /// Whether a packet from `peer` goes on; refusals and drops are counted.
    pub fn admit(&self, peer: SocketAddr) -> bool {
        let mut state = self.state();
        let (allow, rate) = &mut *state;
        if !allow.is_empty() && !allow.iter().any(|net| net.contains(peer.ip())) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if !rate.admit(peer, Instant::now()) {
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

    /// Packets over their client's rate.
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }
}

/// Most clients remembered, and most addresses remembered for clients that found the
/// client table full.
pub const MAX_CLIENTS: usize = 1024;

/// The client a packet from `peer` is counted against: its address, and on loopback
/// also its port. IPv4-mapped IPv6 addresses count as the IPv4 address.
pub fn client_of(peer: SocketAddr) -> SocketAddr {
    let ip = peer.ip().to_canonical();
    let port = if ip.is_loopback() { peer.port() } else { 0 };
    SocketAddr::new(ip, port)
}

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    /// How long an empty bucket takes to fill: forgetting it after that loses nothing.
    refill: Duration,
    clients: Buckets<SocketAddr>,
    /// Per address, for clients that found `clients` full.
    addresses: Buckets<IpAddr>,
    /// For clients that found both tables full.
    shared: Bucket,
}

impl RateLimiter {
    /// `rate` messages a second, in bursts of up to a tenth of a second's worth: a
    /// whole second's worth let a flood through at full speed for its first second.
    pub fn per_second(rate: u32) -> RateLimiter {
        RateLimiter::new(f64::from(rate), (f64::from(rate) / 10.0).max(1.0))
    }

    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter::with_capacity(rate, burst, MAX_CLIENTS)
    }

    fn with_capacity(rate: f64, burst: f64, capacity: usize) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            rate,
            burst,
            refill: Duration::try_from_secs_f64(burst / rate).unwrap_or(Duration::MAX),
            clients: Buckets::new(capacity, now),
            addresses: Buckets::new(capacity, now),
            shared: Bucket {
                tokens: burst,
                seen: now,
            },
        }
    }

    /// Whether the client `peer` belongs to (see [`client_of`]) may send one more packet.
    pub fn admit(&mut self, peer: SocketAddr, now: Instant) -> bool {
        let client = client_of(peer);
        let refill = self.refill;
        let bucket = match self.clients.get(client, now, refill, self.burst) {
            Some(bucket) => bucket,
            None => match self.addresses.get(client.ip(), now, refill, self.burst) {
                Some(bucket) => bucket,
                None => &mut self.shared,
            },
        };
        bucket.take(now, self.rate, self.burst)
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    seen: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let earned = now.saturating_duration_since(self.seen).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(burst);
        self.seen = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// At most `capacity` buckets; one is forgotten only once it has refilled.
struct Buckets<K> {
    map: HashMap<K, Bucket>,
    capacity: usize,
    /// When a full table may next be swept of refilled buckets.
    next_sweep: Instant,
}

impl<K: Copy + Eq + Hash> Buckets<K> {
    fn new(capacity: usize, now: Instant) -> Buckets<K> {
        Buckets {
            map: HashMap::new(),
            capacity,
            next_sweep: now,
        }
    }

    /// `key`'s bucket (a new one starts full), or `None` if it is new and the table is
    /// full of buckets used within `refill`, which cannot be forgotten without losing
    /// their debt.
    fn get(&mut self, key: K, now: Instant, refill: Duration, burst: f64) -> Option<&mut Bucket> {
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            if now < self.next_sweep {
                return None;
            }
            self.map
                .retain(|_, bucket| now.saturating_duration_since(bucket.seen) < refill);
            self.next_sweep = now.checked_add(refill / 4).unwrap_or(now);
            if self.map.len() >= self.capacity {
                return None;
            }
        }
        Some(self.map.entry(key).or_insert(Bucket {
            tokens: burst,
            seen: now,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_flood_is_cut_to_the_rate_and_other_clients_are_unaffected() {
        let mut limiter = RateLimiter::new(1000.0, 100.0);
        let t0 = Instant::now();
        let flood = addr("10.0.0.1:4000");
        let admitted = (0..1000).filter(|_| limiter.admit(flood, t0)).count();
        assert_eq!(admitted, 100, "a burst beyond the bucket is cut");
        assert!(
            limiter.admit(addr("10.0.0.2:4000"), t0),
            "another client has its own bucket"
        );
        let later = t0 + Duration::from_millis(50);
        let admitted = (0..1000).filter(|_| limiter.admit(flood, later)).count();
        assert_eq!(admitted, 50, "refills at the rate");
    }

    #[test]
    fn on_loopback_each_source_port_is_a_client_elsewhere_the_address_is() {
        let mut limiter = RateLimiter::new(1000.0, 10.0);
        let t0 = Instant::now();
        let drain = |limiter: &mut RateLimiter, peer| {
            (0..100).filter(|_| limiter.admit(addr(peer), t0)).count()
        };
        assert_eq!(drain(&mut limiter, "127.0.0.1:5000"), 10);
        assert_eq!(drain(&mut limiter, "127.0.0.1:5001"), 10, "another program");
        assert_eq!(drain(&mut limiter, "[::1]:5000"), 10);
        assert_eq!(drain(&mut limiter, "192.0.2.7:5000"), 10);
        assert_eq!(drain(&mut limiter, "192.0.2.7:5001"), 0, "same address");
        assert_eq!(
            drain(&mut limiter, "[::ffff:192.0.2.7]:5002"),
            0,
            "an IPv4-mapped address is the IPv4 address"
        );
    }

    #[test]
    fn forgetting_a_client_never_refills_a_bucket_early() {
        let mut limiter = RateLimiter::with_capacity(1000.0, 10.0, 4);
        let t0 = Instant::now();
        // A flooder cycling through more source ports than the table holds, faster
        // than a bucket refills (10 ms): every port after the table's four shares its
        // address's bucket, so no burst is handed out again.
        let admitted = (0..1000u16)
            .filter(|i| limiter.admit(SocketAddr::from(([127, 0, 0, 2], 20000 + i % 50)), t0))
            .count();
        assert_eq!(
            admitted,
            4 * 10 + 10,
            "four clients' bursts and the address's"
        );
        // A client on another address still has its own bucket.
        assert!(limiter.admit(addr("127.0.0.1:6000"), t0));
        // Once the buckets have refilled, forgetting them loses nothing and makes room.
        let later = t0 + Duration::from_millis(10);
        assert!(limiter.admit(addr("127.0.0.1:6001"), later));
        assert_eq!(
            limiter.clients.map.keys().collect::<Vec<_>>(),
            [&addr("127.0.0.1:6001")]
        );
    }

    #[test]
    fn the_shared_bucket_takes_what_neither_table_has_room_for() {
        let mut limiter = RateLimiter::with_capacity(1000.0, 10.0, 2);
        let t0 = Instant::now();
        for ip in 1..=4u8 {
            let peer = SocketAddr::from(([192, 0, 2, ip], 9000));
            assert_eq!((0..100).filter(|_| limiter.admit(peer, t0)).count(), 10);
        }
        // Two clients in the table, two addresses in the second one: the rest share.
        let fifth = SocketAddr::from(([192, 0, 2, 5], 9000));
        assert_eq!((0..100).filter(|_| limiter.admit(fifth, t0)).count(), 10);
        let sixth = SocketAddr::from(([192, 0, 2, 6], 9000));
        assert!(!limiter.admit(sixth, t0), "the shared bucket is spent");
    }

    #[test]
    fn the_gate_refuses_strangers_limits_floods_counts_both_and_takes_new_settings() {
        let gate = SenderGate::new(vec!["127.0.0.1/32".parse().unwrap()], 1000);
        assert!(!gate.admit(addr("127.0.0.2:9000")));
        assert_eq!(gate.refused(), 1);
        // A burst of a tenth of a second's worth, then nothing until the bucket refills.
        let admitted = (0..1000)
            .filter(|_| gate.admit(addr("127.0.0.1:9000")))
            .count();
        assert!((100..110).contains(&admitted), "{admitted} admitted");
        assert_eq!(gate.limited(), 1000 - admitted as u64);
        assert!(
            gate.admit(addr("127.0.0.1:9001")),
            "another program on loopback has a budget of its own"
        );
        gate.set_allow(vec!["127.0.0.2/32".parse().unwrap()]);
        assert!(gate.admit(addr("127.0.0.2:9000")));
        assert!(!gate.admit(addr("127.0.0.1:9002")));
        gate.set_allow(Vec::new());
        gate.set_rate(1_000_000);
        assert!(
            (0..1000).all(|_| gate.admit(addr("10.1.2.3:9000"))),
            "empty allowlist, high rate"
        );
    }
}
