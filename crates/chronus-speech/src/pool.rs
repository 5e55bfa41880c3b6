//! A pool of N long-lived engines, each handed to exactly one user at a time.
//!
//! Every item index is at any moment in exactly one place: the free list, one
//! waiter's hand-off slot, or one [`Lease`]. A release hands the item straight to
//! the longest-waiting requester (FIFO) under the pool lock, so a newcomer can never
//! overtake a waiter, and a waiter that times out either takes the item it was handed
//! or leaves the queue, atomically. Leases release on drop, on any thread.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Why no item was acquired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("no pooled engine became free within {0:?}")]
    Timeout(Duration),
    #[error("the pool is closed (shutting down)")]
    Closed,
}

/// Pool figures for status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub size: usize,
    pub in_use: usize,
    pub waiting: usize,
    pub acquisitions: u64,
    pub timeouts: u64,
}

struct Waiter {
    id: u64,
    handoff: Sender<usize>,
}

struct State {
    free: Vec<usize>,
    waiters: VecDeque<Waiter>,
    next_waiter: u64,
    closed: bool,
    acquisitions: u64,
    timeouts: u64,
}

struct Shared<T> {
    items: Vec<T>,
    state: Mutex<State>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section completes its update before anything that can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, index: usize) {
        let mut state = self.lock();
        while let Some(waiter) = state.waiters.pop_front() {
            // Capacity 1 and one hand-off per waiter: never blocks. A waiter whose
            // receiver is gone cannot exist (it leaves the queue first), but if the
            // send fails the item simply goes to the next one.
            if waiter.handoff.try_send(index).is_ok() {
                state.acquisitions += 1;
                return;
            }
        }
        state.free.push(index);
    }
}

/// A fixed set of items, each leased to one user at a time.
pub struct Pool<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Pool {
            shared: self.shared.clone(),
        }
    }
}

/// Exclusive use of one pooled item until dropped.
pub struct Lease<T> {
    shared: Arc<Shared<T>>,
    index: usize,
}

impl<T> Deref for Lease<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.shared.items[self.index]
    }
}

impl<T> Drop for Lease<T> {
    fn drop(&mut self) {
        self.shared.release(self.index);
    }
}

impl<T> Pool<T> {
    pub fn new(items: Vec<T>) -> Self {
        // Popped from the back: item 0 is handed out first.
        let free = (0..items.len()).rev().collect();
        Pool {
            shared: Arc::new(Shared {
                items,
                state: Mutex::new(State {
                    free,
                    waiters: VecDeque::new(),
                    next_waiter: 0,
                    closed: false,
                    acquisitions: 0,
                    timeouts: 0,
                }),
            }),
        }
    }

    /// Every item, leased or not, for inspection (status, shutdown).
    pub fn items(&self) -> &[T] {
        &self.shared.items
    }

    /// A free item now, if there is one and nobody is waiting for it.
    pub fn try_acquire(&self) -> Result<Option<Lease<T>>, PoolError> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(PoolError::Closed);
        }
        if !state.waiters.is_empty() {
            return Ok(None);
        }
        Ok(state.free.pop().map(|index| {
            state.acquisitions += 1;
            Lease {
                shared: self.shared.clone(),
                index,
            }
        }))
    }

    /// The next free item, waiting in FIFO order at most `timeout`.
    pub fn acquire(&self, timeout: Duration) -> Result<Lease<T>, PoolError> {
        let (id, rx): (u64, Receiver<usize>) = {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(PoolError::Closed);
            }
            if state.waiters.is_empty()
                && let Some(index) = state.free.pop()
            {
                state.acquisitions += 1;
                return Ok(self.lease(index));
            }
            let (tx, rx) = crossbeam_channel::bounded(1);
            let id = state.next_waiter;
            state.next_waiter += 1;
            state.waiters.push_back(Waiter { id, handoff: tx });
            (id, rx)
        };
        match rx.recv_timeout(timeout) {
            Ok(index) => Ok(self.lease(index)),
            Err(RecvTimeoutError::Disconnected) => Err(PoolError::Closed),
            Err(RecvTimeoutError::Timeout) => {
                let mut state = self.shared.lock();
                // Handed over between the timeout and taking the lock: keep it.
                if let Ok(index) = rx.try_recv() {
                    return Ok(self.lease(index));
                }
                state.waiters.retain(|w| w.id != id);
                state.timeouts += 1;
                Err(PoolError::Timeout(timeout))
            }
        }
    }

    fn lease(&self, index: usize) -> Lease<T> {
        Lease {
            shared: self.shared.clone(),
            index,
        }
    }

    /// Refuses further acquisitions and wakes every waiter with [`PoolError::Closed`].
    /// Existing leases stay valid until dropped.
    pub fn close(&self) {
        let mut state = self.shared.lock();
        state.closed = true;
        state.waiters.clear();
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.shared.lock();
        PoolStats {
            size: self.shared.items.len(),
            in_use: self.shared.items.len() - state.free.len(),
            waiting: state.waiters.len(),
            acquisitions: state.acquisitions,
            timeouts: state.timeouts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    #[test]
    fn each_item_has_exactly_one_user_under_contention() {
        let pool = Pool::new((0..4).map(|_| AtomicBool::new(false)).collect());
        let done = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let pool = pool.clone();
                let done = done.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let lease = pool.acquire(Duration::from_secs(10)).unwrap();
                        assert!(!lease.swap(true, Ordering::SeqCst), "item handed out twice");
                        std::hint::spin_loop();
                        lease.store(false, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(done.load(Ordering::Relaxed), 6400);
        let s = pool.stats();
        assert_eq!((s.in_use, s.waiting, s.acquisitions), (0, 0, 6400));
    }

    #[test]
    fn waiters_are_served_in_arrival_order() {
        let pool = Pool::new(vec![()]);
        let held = pool.acquire(Duration::from_secs(1)).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..8 {
            let pool2 = pool.clone();
            let order = order.clone();
            threads.push(std::thread::spawn(move || {
                let _lease = pool2.acquire(Duration::from_secs(10)).unwrap();
                order.lock().unwrap().push(i);
            }));
            while pool.stats().waiting < i + 1 {
                std::thread::yield_now();
            }
        }
        // A newcomer does not overtake the queue.
        assert!(pool.try_acquire().unwrap().is_none());
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn timed_out_waiter_leaves_the_queue_and_loses_nothing() {
        let pool = Pool::new(vec![()]);
        let held = pool.acquire(Duration::from_secs(1)).unwrap();
        assert_eq!(
            pool.acquire(Duration::from_millis(20)).err(),
            Some(PoolError::Timeout(Duration::from_millis(20)))
        );
        assert_eq!(pool.stats().waiting, 0);
        drop(held);
        // The item went back to the free list, not to the departed waiter.
        assert!(pool.try_acquire().unwrap().is_some());
        assert_eq!(pool.stats().timeouts, 1);
    }

    #[test]
    fn close_wakes_waiters_and_refuses_new_requests() {
        let pool = Pool::new(vec![()]);
        let held = pool.acquire(Duration::from_secs(1)).unwrap();
        let p2 = pool.clone();
        let waiter = std::thread::spawn(move || p2.acquire(Duration::from_secs(30)).err());
        while pool.stats().waiting == 0 {
            std::thread::yield_now();
        }
        let t = Instant::now();
        pool.close();
        assert_eq!(waiter.join().unwrap(), Some(PoolError::Closed));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(pool.try_acquire().err(), Some(PoolError::Closed));
        drop(held);
    }
}
