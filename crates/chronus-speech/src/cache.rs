//! The synthesis cache: a thread-safe LRU of finished speech, bounded both by the
//! number of entries and by the bytes of audio held, so it can never grow without
//! limit however many distinct phrases are spoken.

use crate::audio::SpeechAudio;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Default bound on cached phrases.
pub const DEFAULT_MAX_ENTRIES: usize = 50;
/// Default bound on cached audio: 64 MiB, about 170 s of 48 kHz stereo f32.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// What a cached phrase is keyed by: the same text in another voice or from another
/// engine is different audio.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub engine: String,
    pub voice: String,
    pub text: String,
}

/// The cache's figures, for status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub max_entries: usize,
    pub max_bytes: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    /// Phrases too large to cache at all (more bytes than `max_bytes`).
    pub rejected: u64,
}

struct Entry {
    audio: Arc<SpeechAudio>,
    /// Position in the recency order; larger is more recent.
    tick: u64,
}

struct Inner {
    map: HashMap<Arc<CacheKey>, Entry>,
    order: BTreeMap<u64, Arc<CacheKey>>,
    next_tick: u64,
    stats: CacheStats,
}

/// A thread-safe LRU of synthesized speech.
pub struct SpeechCache {
    inner: Mutex<Inner>,
}

impl SpeechCache {
    /// A cache holding at most `max_entries` phrases and `max_bytes` of audio.
    /// Either bound at zero disables caching.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        SpeechCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: BTreeMap::new(),
                next_tick: 0,
                stats: CacheStats {
                    max_entries,
                    max_bytes,
                    ..CacheStats::default()
                },
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The data stays consistent even if a holder panicked: every update is
        // completed before anything that could panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached audio for `key`, marking it most recently used.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<SpeechAudio>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let tick = inner.next_tick;
        match inner.map.get_mut(key) {
            Some(entry) => {
                let k = inner
                    .order
                    .remove(&entry.tick)
                    .expect("order tracks every entry");
                inner.order.insert(tick, k);
                entry.tick = tick;
                inner.next_tick += 1;
                inner.stats.hits += 1;
                Some(entry.audio.clone())
            }
            None => {
                inner.stats.misses += 1;
                None
            }
        }
    }

    /// Stores `audio` under `key`, evicting least recently used phrases until both
    /// bounds hold. A phrase larger than the byte bound is not stored.
    pub fn insert(&self, key: CacheKey, audio: Arc<SpeechAudio>) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let size = audio.bytes();
        if size > inner.stats.max_bytes || inner.stats.max_entries == 0 {
            inner.stats.rejected += 1;
            return;
        }
        if let Some(old) = inner.map.remove(&key) {
            inner.order.remove(&old.tick);
            inner.stats.bytes -= old.audio.bytes();
            inner.stats.entries -= 1;
        }
        while inner.stats.entries + 1 > inner.stats.max_entries
            || inner.stats.bytes + size > inner.stats.max_bytes
        {
            let (_, victim) = inner
                .order
                .pop_first()
                .expect("non-empty while over bounds");
            let gone = inner.map.remove(&victim).expect("map tracks every entry");
            inner.stats.bytes -= gone.audio.bytes();
            inner.stats.entries -= 1;
            inner.stats.evictions += 1;
        }
        let key = Arc::new(key);
        let tick = inner.next_tick;
        inner.next_tick += 1;
        inner.order.insert(tick, key.clone());
        inner.map.insert(key, Entry { audio, tick });
        inner.stats.entries += 1;
        inner.stats.bytes += size;
    }

    /// Current figures.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> CacheKey {
        CacheKey {
            engine: "tts".into(),
            voice: "en".into(),
            text: text.into(),
        }
    }

    fn audio(samples: usize) -> Arc<SpeechAudio> {
        Arc::new(SpeechAudio {
            rate: 48_000,
            channels: 2,
            samples: vec![0.0; samples].into(),
        })
    }

    #[test]
    fn least_recently_used_is_evicted_first() {
        let cache = SpeechCache::new(2, 1 << 20);
        cache.insert(key("a"), audio(4));
        cache.insert(key("b"), audio(4));
        assert!(cache.get(&key("a")).is_some()); // a is now the most recent
        cache.insert(key("c"), audio(4));
        assert!(cache.get(&key("b")).is_none());
        assert!(cache.get(&key("a")).is_some());
        assert!(cache.get(&key("c")).is_some());
        let s = cache.stats();
        assert_eq!((s.entries, s.bytes, s.evictions), (2, 32, 1));
        assert_eq!((s.hits, s.misses), (3, 1));
    }

    #[test]
    fn byte_bound_holds_regardless_of_entry_count() {
        let cache = SpeechCache::new(50, 100);
        for i in 0..20 {
            cache.insert(key(&i.to_string()), audio(10)); // 40 bytes each
            let s = cache.stats();
            assert!(s.bytes <= 100, "{s:?}");
        }
        let s = cache.stats();
        assert_eq!((s.entries, s.bytes, s.evictions), (2, 80, 18));
        cache.insert(key("huge"), audio(1000));
        assert_eq!(cache.stats().rejected, 1);
        assert_eq!(cache.stats().entries, 2);
    }

    #[test]
    fn voice_and_engine_are_part_of_the_key() {
        let cache = SpeechCache::new(10, 1 << 20);
        cache.insert(key("hi"), audio(1));
        let mut other = key("hi");
        other.voice = "de".into();
        assert!(cache.get(&other).is_none());
        other.voice = "en".into();
        other.engine = "wyoming".into();
        assert!(cache.get(&other).is_none());
        assert!(cache.get(&key("hi")).is_some());
    }

    #[test]
    fn replacing_a_key_keeps_byte_count_exact() {
        let cache = SpeechCache::new(10, 1 << 20);
        cache.insert(key("a"), audio(10));
        cache.insert(key("a"), audio(20));
        let s = cache.stats();
        assert_eq!((s.entries, s.bytes, s.evictions), (1, 80, 0));
    }

    #[test]
    fn concurrent_use_keeps_the_bounds() {
        let cache = Arc::new(SpeechCache::new(8, 8 * 40));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let k = key(&format!("{}", (i * 7 + t) % 13));
                        if cache.get(&k).is_none() {
                            cache.insert(k, audio(10));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = cache.stats();
        assert!(s.entries <= 8 && s.bytes == s.entries * 40, "{s:?}");
        assert_eq!(s.hits + s.misses, 2000);
    }
}
