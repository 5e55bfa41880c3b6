//! Cross-process futex on a word in the shared region: lets the supervisor wake
//! a sleeping worker at once (a fork request) without the worker polling fast.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `word` holds `expected`, for at most `timeout`. Returns early on
/// a wake, a changed value or a signal; the caller re-checks its condition.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic (in a MAP_SHARED mapping, so
    // the non-private futex op is the right one); the kernel only reads it and the
    // timespec, which outlives the call. Errors (EAGAIN, EINTR, ETIMEDOUT) all mean
    // "re-check", so the return value is deliberately ignored.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes every process sleeping in [`futex_wait`] on `word`.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; FUTEX_WAKE never blocks and touches no memory
    // besides looking up waiters keyed by the word's address.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}
