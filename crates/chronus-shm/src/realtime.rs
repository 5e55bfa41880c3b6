//! Realtime scheduling and memory locking for the processes that share the
//! region: the audio thread and the worker render loops.

use std::io;

/// SCHED_FIFO priority of the audio thread; workers run just below it.
pub const AUDIO_PRIORITY: i32 = 70;
pub const WORKER_PRIORITY: i32 = 60;

/// Moves the calling thread to SCHED_FIFO at `priority`. Fails without
/// CAP_SYS_NICE or an RLIMIT_RTPRIO that allows it; the caller sets its bit in
/// `Header::realtime_denied` and the supervisor warns once.
pub fn promote_current_thread(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pthread_self() is the calling thread; `param` is a valid sched_param.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Locks current and future memory, so page faults never stall the audio path.
/// Refused unless RLIMIT_MEMLOCK is unlimited or the process holds CAP_IPC_LOCK:
/// with a finite limit, locking future memory would turn ordinary allocations
/// into failures.
pub fn lock_memory() -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // With CAP_IPC_LOCK (root has it) the limit does not apply.
    if limit.rlim_cur != libc::RLIM_INFINITY && !can_lock_beyond_the_limit() {
        return Err(io::Error::other(format!(
            "RLIMIT_MEMLOCK is {} bytes, not unlimited (set LimitMEMLOCK=infinity)",
            limit.rlim_cur
        )));
    }
    // SAFETY: mlockall takes flags only.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this process holds CAP_IPC_LOCK in its effective set (bit 14 of
/// `CapEff` in /proc/self/status).
fn can_lock_beyond_the_limit() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}
