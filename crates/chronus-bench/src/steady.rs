//! CPU and memory of a fresh daemon playing one voice, and the /proc readers (CPU time,
//! per-thread CPU, context switches) the other areas share.

use crate::daemon::{Daemon, Recording};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Process {
    pub role: &'static str,
    /// Percent of one core over the window.
    pub cpu_percent: f64,
    /// Voluntary plus involuntary context switches per second over the window
    /// (all threads): how often the process sleeps and wakes.
    pub switches_per_s: f64,
    pub vm_rss_kb: u64,
    /// The part of VmRSS that is shared memory (the memfd region, mapped by all three).
    pub rss_shmem_kb: u64,
}

pub struct SteadyRun {
    pub recording: bool,
    pub warmup: Duration,
    pub window: Duration,
    pub clock_ticks_per_s: u64,
    pub processes: Vec<Process>,
    pub callback_max_us: f64,
    /// `callback_max_us` just before the window (startup and warm-up included).
    pub callback_max_us_before: f64,
    pub underrun_frames: i64,
    pub sample_rate: i64,
}

impl SteadyRun {
    pub fn total_cpu_percent(&self) -> f64 {
        self.processes.iter().map(|p| p.cpu_percent).sum()
    }
}

pub fn clock_ticks_per_s() -> Result<u64> {
    // SAFETY: sysconf takes an integer name and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        bail!("sysconf(_SC_CLK_TCK) failed");
    }
    Ok(ticks as u64)
}

/// utime + stime of the whole process (all its threads, live and exited), in clock ticks.
pub fn cpu_ticks(pid: i32) -> Result<u64> {
    Ok(stat_ticks(&format!("/proc/{pid}/stat"))?.1)
}

/// Nanoseconds the scheduler ran the live threads of a process: the first field of
/// each `/proc/<pid>/task/<tid>/schedstat`, summed. Exact, where utime + stime is
/// sampled at the timer tick and can miss or overcount threads that wake in step
/// with it.
pub fn runtime_ns(pid: i32) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    for task in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = task?.path().join("schedstat");
        // A thread may end between the listing and the read.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .with_context(|| format!("{}: no run time", path.display()))?;
    }
    Ok(total)
}

/// The command name and utime + stime in clock ticks of a `/proc/<pid>/stat` or
/// `/proc/<pid>/task/<tid>/stat` file.
pub fn stat_ticks(path: &str) -> Result<(String, u64)> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let (head, rest) = stat
        .rsplit_once(')')
        .with_context(|| format!("{path}: no ')'"))?;
    let comm = head.split_once('(').map_or("", |(_, c)| c).to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .with_context(|| format!("{path}: no field {n}"))?
            .parse()
            .with_context(|| format!("{path}: field {n}"))
    };
    Ok((comm, field(14)? + field(15)?))
}

/// A numeric line of /proc/<pid>/status (sizes in kB).
fn status_value(pid: i32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{path}: no {key}"))
}

/// Context switches of every thread of the process: /proc/<pid>/status counts only
/// the main thread, so sum over /proc/<pid>/task.
pub fn context_switches(pid: i32) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    for task in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = task?.path().join("status");
        // A thread may exit between the listing and the read.
        let Ok(status) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += switches_in_status(&status).with_context(|| {
            format!(
                "{}: no voluntary_ctxt_switches and nonvoluntary_ctxt_switches counts",
                path.display()
            )
        })?;
    }
    Ok(total)
}

/// Voluntary plus involuntary context switches in the text of a /proc status file, or
/// `None` unless it has both counts.
fn switches_in_status(status: &str) -> Option<u64> {
    let count = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(count("voluntary_ctxt_switches")? + count("nonvoluntary_ctxt_switches")?)
}

/// CPU time over a window, in percent of one core.
pub struct Cpu {
    pub window: Duration,
    pub clock_ticks_per_s: u64,
    /// Each process, all its threads: (role, percent).
    pub processes: Vec<(String, f64)>,
    /// The supervisor's threads, busiest first: (name, percent).
    pub threads: Vec<(String, f64)>,
}

pub struct CpuSample {
    at: Instant,
    /// utime + stime of each process, in clock ticks.
    processes: Vec<u64>,
    /// By thread id: the thread's name and utime + stime.
    threads: HashMap<u64, (String, u64)>,
}

/// The processes `pids` and the threads of `threads_of`, now.
pub fn sample_cpu(pids: &[i32], threads_of: i32) -> Result<CpuSample> {
    let processes = pids.iter().map(|&p| cpu_ticks(p)).collect::<Result<_>>()?;
    let dir = format!("/proc/{threads_of}/task");
    let mut threads = HashMap::new();
    for task in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let task = task?;
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may exit between the listing and the read.
        if let Ok(t) = stat_ticks(&task.path().join("stat").to_string_lossy()) {
            threads.insert(tid, t);
        }
    }
    Ok(CpuSample {
        at: Instant::now(),
        processes,
        threads,
    })
}

/// CPU from `a` to `b`; a thread not in `a` started in between.
pub fn cpu_between(roles: &[&str], a: &CpuSample, b: &CpuSample, hz: u64) -> Cpu {
    let window = b.at.saturating_duration_since(a.at);
    let pct = |ticks: u64| ticks as f64 / hz.max(1) as f64 / window.as_secs_f64().max(1e-9) * 100.0;
    let processes = roles
        .iter()
        .zip(a.processes.iter().zip(&b.processes))
        .map(|(role, (x, y))| ((*role).to_owned(), pct(y.saturating_sub(*x))))
        .collect();
    let mut threads: Vec<(String, f64)> = b
        .threads
        .iter()
        .map(|(tid, (name, ticks))| {
            let before = a.threads.get(tid).map_or(0, |t| t.1);
            (name.clone(), pct(ticks.saturating_sub(before)))
        })
        .collect();
    threads.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    Cpu {
        window,
        clock_ticks_per_s: hz,
        processes,
        threads,
    }
}

pub fn run(
    exe: &Path,
    dir: &Path,
    recording: bool,
    warmup: Duration,
    window: Duration,
) -> Result<SteadyRun> {
    let files = recording.then(|| Recording::in_dir(dir));
    let mut d = Daemon::start(exe, dir, files.as_ref())?;
    d.play_tone()?;
    std::thread::sleep(warmup);
    let before = d.status()?;
    if !before.both_lockstep()? {
        bail!("steady state: the slots are not both in lockstep after the warm-up");
    }
    let pids = [
        ("supervisor", d.pid()),
        ("worker slot 0", before.slot_pid(0)?),
        ("worker slot 1", before.slot_pid(1)?),
    ];
    // No status requests inside the window: they would cost the supervisor CPU.
    let sample = || {
        pids.iter()
            .map(|&(_, pid)| Ok((cpu_ticks(pid)?, context_switches(pid)?)))
            .collect::<Result<Vec<_>>>()
    };
    let t0 = Instant::now();
    let first = sample()?;
    std::thread::sleep(window);
    let last = sample()?;
    let elapsed = t0.elapsed();
    let mut processes = Vec::new();
    let hz = clock_ticks_per_s()?;
    for (i, &(role, pid)) in pids.iter().enumerate() {
        let seconds = (last[i].0 - first[i].0) as f64 / hz as f64;
        processes.push(Process {
            role,
            cpu_percent: seconds / elapsed.as_secs_f64() * 100.0,
            switches_per_s: (last[i].1 - first[i].1) as f64 / elapsed.as_secs_f64(),
            vm_rss_kb: status_value(pid, "VmRSS")?,
            rss_shmem_kb: status_value(pid, "RssShmem")?,
        });
    }
    let after = d.status()?;
    for slot in 0..2 {
        if after.slot_pid(slot)? != before.slot_pid(slot)? {
            bail!("steady state: worker slot {slot} was replaced during the window");
        }
    }
    let run = SteadyRun {
        recording,
        warmup,
        window: elapsed,
        clock_ticks_per_s: hz,
        processes,
        callback_max_us: after.float("callback_max_us")?,
        callback_max_us_before: before.float("callback_max_us")?,
        underrun_frames: after.int("underrun_frames")?,
        sample_rate: after.int("sample_rate")?,
    };
    let exit = d.stop()?;
    if !exit.success() {
        bail!("steady state: chronusd exited with {exit}");
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_reads_the_name_and_utime_plus_stime() {
        let path = std::env::temp_dir().join(format!("chronus-bench-stat-{}", std::process::id()));
        // A name with a space and a parenthesis, as a thread may have.
        let fields: Vec<String> = (3..=20).map(|n| n.to_string()).collect();
        std::fs::write(&path, format!("42 (a b) c) S {}\n", fields[1..].join(" "))).unwrap();
        let got = stat_ticks(path.to_str().unwrap());
        std::fs::remove_file(&path).unwrap();
        // Field n holds n, so utime + stime = 14 + 15.
        assert_eq!(got.unwrap(), ("a b) c".to_owned(), 29));
    }

    #[test]
    fn switches_in_status_adds_voluntary_and_involuntary_and_needs_both() {
        let status = "Name:\tchronus-osc-udp\nState:\tS (sleeping)\n\
                      voluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t56\n";
        assert_eq!(switches_in_status(status), Some(1290));
        let voluntary_only = "voluntary_ctxt_switches:\t1234\n";
        assert_eq!(switches_in_status(voluntary_only), None);
        let garbled = "voluntary_ctxt_switches:\tmany\nnonvoluntary_ctxt_switches:\t56\n";
        assert_eq!(switches_in_status(garbled), None);
    }

    #[test]
    fn cpu_is_ticks_over_the_window_and_new_threads_count_from_zero() {
        let t0 = Instant::now();
        let thread = |name: &str, ticks| (name.to_owned(), ticks);
        let a = CpuSample {
            at: t0,
            processes: vec![100, 7],
            threads: HashMap::from([(1, thread("chronusd", 50)), (2, thread("udp", 10))]),
        };
        let b = CpuSample {
            at: t0 + Duration::from_secs(2),
            processes: vec![300, 7],
            threads: HashMap::from([
                (1, thread("chronusd", 150)),
                (2, thread("udp", 30)),
                (3, thread("tcp", 40)),
            ]),
        };
        let cpu = cpu_between(&["supervisor", "worker"], &a, &b, 100);
        assert_eq!(cpu.window, Duration::from_secs(2));
        assert_eq!(
            cpu.processes,
            vec![("supervisor".to_owned(), 100.0), ("worker".to_owned(), 0.0)]
        );
        assert_eq!(
            cpu.threads,
            vec![
                ("chronusd".to_owned(), 50.0),
                ("tcp".to_owned(), 20.0),
                ("udp".to_owned(), 10.0)
            ]
        );
    }
}
