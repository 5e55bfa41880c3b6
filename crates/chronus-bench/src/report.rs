//! The Markdown report.

use crate::failover::FailoverRun;
use crate::lifecycle::LifecycleRun;
use crate::machine::Machine;
use crate::steady::SteadyRun;
use std::fmt::Write;

/// The device buffer chronusd uses by default (`audio.buffer_size`); the bench does
/// not change it, and the status does not report it.
pub const BUFFER_FRAMES: u32 = 256;

pub struct Context {
    pub command: String,
    pub machine: Machine,
    pub date: String,
    pub load_start: String,
    pub load_end: String,
    pub poll_ms: u64,
    pub revision: Option<String>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v
}

/// "met", or how far off a "below `limit`" target is.
fn below(value: f64, limit: f64, unit: &str) -> String {
    if value < limit {
        "met".into()
    } else if value == limit {
        "**missed**: at the limit, not under it".into()
    } else {
        format!(
            "**missed** by {:.2} {unit} ({:.1}× the target)",
            value - limit,
            value / limit
        )
    }
}

/// A percentage as the report prints it (two decimals), so that its verdict is taken
/// on the figure a reader sees: 4.9999 printed as 5.00 % is not under 5 %.
fn printed_percent(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn equal(value: i64, want: i64) -> &'static str {
    if value == want { "met" } else { "**missed**" }
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// A section's title and its command, machine, date, revision and load.
fn preamble(r: &mut String, title: &str, ctx: &Context) {
    let m = &ctx.machine;
    let _ = writeln!(r, "## {title}\n");
    let _ = writeln!(r, "- Command: `{}`", ctx.command);
    let _ = writeln!(
        r,
        "- Machine: {} CPUs (nproc), {}, Linux {}",
        m.nproc, m.cpu_model, m.kernel
    );
    let _ = writeln!(r, "- Date: {}", ctx.date);
    if let Some(rev) = &ctx.revision {
        let _ = writeln!(r, "- Revision: {rev}");
    }
    let _ = writeln!(
        r,
        "- Load average (1 min) at start / end: {} / {}",
        ctx.load_start, ctx.load_end
    );
}

pub fn render(ctx: &Context, failover: Option<&FailoverRun>, steady: &[SteadyRun]) -> String {
    let mut r = String::new();
    let period_us = |rate: i64| f64::from(BUFFER_FRAMES) * 1e6 / rate.max(1) as f64;
    preamble(&mut r, "Foundation: failover", ctx);
    let _ = writeln!(
        r,
        "- Daemon: release `chronusd`, `CHRONUS_AUDIO_BACKEND=null` (timer-clocked), \
         defaults otherwise (device buffer {BUFFER_FRAMES} frames), environment clean except `PATH`\n"
    );

    if let Some(f) = failover {
        let n = f.kills.len();
        let c = &f.counters;
        let detect = sorted(f.kills.iter().map(|k| k.detect_us));
        let restore = sorted(f.kills.iter().map(|k| k.restore_ms()));
        let supervisor = sorted(f.kills.iter().map(|k| k.supervisor_restore_ms));
        let observed = sorted(f.kills.iter().map(|k| k.observed_ms));
        let p = |v: &[f64], q| percentile(v, q);
        let _ = writeln!(r, "### {n} SIGKILLs of the active worker\n");
        let _ = writeln!(
            r,
            "The daemon runs at {} Hz with blocks of {} frames and plays a 1 kHz tone. \
             Before each kill both slots are in lockstep and `restores` equals the kills so far; \
             CLOCK_MONOTONIC is read just before `kill(active_pid, SIGKILL)`. \
             Percentiles are nearest-rank over the {n} kills; the kills took {:.1} s in all.\n",
            c.sample_rate,
            c.block_frames,
            f.wall.as_secs_f64()
        );
        let _ = writeln!(r, "| Measure | p50 | p99 | max | Target | Result |");
        let _ = writeln!(r, "|---|---:|---:|---:|---|---|");
        let _ = writeln!(
            r,
            "| Detection: SIGKILL → supervisor's pidfd watcher wakes (`last_exit_mono_ns`) | {:.0} µs | {:.0} µs | {:.0} µs | p99 < 1 ms | {} |",
            p(&detect, 0.5),
            p(&detect, 0.99),
            p(&detect, 1.0),
            below(p(&detect, 0.99) / 1e3, 1.0, "ms")
        );
        let _ = writeln!(
            r,
            "| Death → both slots in lockstep (detection + `last_restore_ms`) | {:.2} ms | {:.2} ms | {:.2} ms | p99 < 50 ms | {} |",
            p(&restore, 0.5),
            p(&restore, 0.99),
            p(&restore, 1.0),
            below(p(&restore, 0.99), 50.0, "ms")
        );
        let _ = writeln!(
            r,
            "| of which: supervisor notices → slot back in lockstep (`last_restore_ms`) | {:.2} ms | {:.2} ms | {:.2} ms | — | — |",
            p(&supervisor, 0.5),
            p(&supervisor, 0.99),
            p(&supervisor, 1.0),
        );
        let _ = writeln!(
            r,
            "| Cross-check: SIGKILL → bench sees `restores` increment (status polled every {} ms) | {:.2} ms | {:.2} ms | {:.2} ms | — | — |",
            ctx.poll_ms,
            p(&observed, 0.5),
            p(&observed, 0.99),
            p(&observed, 1.0),
        );
        let cmp = &f.comparison;
        let seconds = cmp.frames() as f64 / f64::from(cmp.sample_rate.max(1));
        let slow = |v: &[f64], limit| v.iter().filter(|&&x| x >= limit).count();
        let _ = writeln!(
            r,
            "\nDetections of 1 ms or more: {} of {n}. Deaths to lockstep of 50 ms or more: {} of {n}.",
            slow(&detect, 1000.0),
            slow(&restore, 50.0)
        );
        let _ = writeln!(r, "\n### Integrity over the same {n} kills\n");
        let _ = writeln!(r, "| Measure | Measured | Target | Result |");
        let _ = writeln!(r, "|---|---|---|---|");
        let first = cmp
            .first_altered
            .map_or(String::new(), |i| format!(", first at sample {i}"));
        let _ = writeln!(
            r,
            "| Altered samples: `out.wav` vs `chronusd render` of the journal, bit for bit | {} of {} samples{first} ({} frames = {seconds:.1} s, {} channels, reference {} samples, peak {:.2}) | 0 | {} |",
            cmp.altered,
            cmp.live_samples,
            cmp.frames(),
            cmp.channels,
            cmp.reference_samples,
            cmp.peak,
            equal(cmp.altered as i64, 0)
        );
        let _ = writeln!(
            r,
            "| `underrun_frames` | {} | 0 | {} |",
            c.underrun_frames,
            equal(c.underrun_frames, 0)
        );
        let _ = writeln!(
            r,
            "| `divergences` | {} | 0 | {} |",
            c.divergences,
            equal(c.divergences, 0)
        );
        let _ = writeln!(
            r,
            "| `failovers` / `restores` / `cold_starts` | {} / {} / {} | {n} / {n} / 0 | {} |",
            c.failovers,
            c.restores,
            c.cold_starts,
            if c.failovers == n as i64 && c.restores == n as i64 && c.cold_starts == 0 {
                "met"
            } else {
                "**missed**"
            }
        );
        let _ = writeln!(
            r,
            "| `fallback_frames` / `xruns` / `hangs` / `faults` / `late_commands` | {} / {} / {} / {} / {} | — | — |",
            c.fallback_frames, c.xruns, c.hangs, c.faults, c.late_commands
        );
        if f.extra_restores != 0 {
            let _ = writeln!(
                r,
                "| Restores the bench did not cause | {} | 0 | **missed** |",
                f.extra_restores
            );
        }
        let _ = writeln!(
            r,
            "| chronusd exit after SIGTERM | {} | success | {} |",
            f.exit,
            if f.exit.success() {
                "met"
            } else {
                "**missed**"
            }
        );
    }

    let _ = writeln!(r, "\n### Audio callback\n");
    let _ = writeln!(
        r,
        "`callback_max_us` is the longest callback since the daemon started, read at the end; \
         \"before\" is its value just before the first kill or the CPU window (startup and \
         warm-up), so a larger final value was set during the measured part. With the null \
         backend the device period is the null output thread's timer period, {BUFFER_FRAMES} \
         frames at the sample rate.\n"
    );
    let _ = writeln!(
        r,
        "| Daemon | `callback_max_us` | before | Period | Share of period | Target | Result |"
    );
    let _ = writeln!(r, "|---|---:|---:|---:|---:|---|---|");
    let mut callback_row = |what: String, max_us: f64, before_us: f64, rate: i64| {
        let period = period_us(rate);
        let share = printed_percent(max_us / period * 100.0);
        let _ = writeln!(
            r,
            "| {what} | {max_us:.1} µs | {before_us:.1} µs | {period:.0} µs | {share:.2} % | < 10 % | {} |",
            below(share, 10.0, "points")
        );
    };
    if let Some(f) = failover {
        callback_row(
            format!("Through the {} kills", f.kills.len()),
            f.counters.callback_max_us,
            f.counters.callback_max_us_before,
            f.counters.sample_rate,
        );
    }
    for s in steady {
        callback_row(
            format!("Steady state, {}", config_name(s)),
            s.callback_max_us,
            s.callback_max_us_before,
            s.sample_rate,
        );
    }

    for s in steady {
        let _ = writeln!(
            r,
            "\n### Steady state, {}: CPU and memory\n",
            config_name(s)
        );
        let _ = writeln!(
            r,
            "A fresh daemon plays one voice (1 kHz) at {} Hz; after a {:.0} s warm-up, utime + stime \
             from `/proc/<pid>/stat` (all threads) over {:.1} s, with no status requests inside \
             the window. Clock tick {} ms, so a resolution of {:.2} % of a core. Wake-ups are \
             voluntary + involuntary context switches of all threads (`/proc/<pid>/task/*/status`). \
             VmRSS from `/proc/<pid>/status` at the end of the window; the shared-memory region \
             is counted in each process's VmRSS (RssShmem). `underrun_frames` at the end: {}.\n",
            s.sample_rate,
            s.warmup.as_secs_f64(),
            s.window.as_secs_f64(),
            1000 / s.clock_ticks_per_s.max(1),
            100.0 / s.clock_ticks_per_s.max(1) as f64 / s.window.as_secs_f64(),
            s.underrun_frames
        );
        let _ = writeln!(
            r,
            "| Process | CPU (% of one core) | Wake-ups/s | VmRSS | of which RssShmem | Target | Result |"
        );
        let _ = writeln!(r, "|---|---:|---:|---:|---:|---|---|");
        for p in &s.processes {
            let _ = writeln!(
                r,
                "| {} | {:.2} % | {:.0} | {} | {} | — | — |",
                p.role,
                p.cpu_percent,
                p.switches_per_s,
                mib(p.vm_rss_kb),
                mib(p.rss_shmem_kb)
            );
        }
        let total = printed_percent(s.total_cpu_percent());
        let _ = writeln!(
            r,
            "| **Total** | **{total:.2} %** | {:.0} | {} (sum) | — | < 5 % | {} |",
            s.processes.iter().map(|p| p.switches_per_s).sum::<f64>(),
            mib(s.processes.iter().map(|p| p.vm_rss_kb).sum()),
            below(total, 5.0, "points")
        );
    }
    if let Some(f) = failover
        && !steady.is_empty()
    {
        let cmp = &f.comparison;
        let audio_s = cmp.frames() as f64 / f64::from(cmp.sample_rate.max(1));
        let _ = writeln!(
            r,
            "\nFor scale: `chronusd render`, one process without real-time pacing, rendered the \
             kill run's {audio_s:.1} s journal in {:.3} s (exec, journal, DSP and WAV writing \
             included): {:.0}× real time, about {:.2} % of a core per second of audio.",
            cmp.render_s,
            audio_s / cmp.render_s.max(1e-9),
            cmp.render_s / audio_s.max(1e-9) * 100.0
        );
    }
    r
}

pub fn render_lifecycle(ctx: &Context, run: &LifecycleRun) -> String {
    let mut r = String::new();
    preamble(&mut r, "Lifecycle", ctx);
    let _ = writeln!(
        r,
        "- Daemon: release `chronusd`, `CHRONUS_AUDIO_BACKEND=null` (timer-clocked), a free \
         `CHRONUS_OSC_PORT`, `NOTIFY_SOCKET` set to a Unix datagram socket the bench bound, \
         defaults otherwise (device buffer {BUFFER_FRAMES} frames), environment clean except `PATH`\n"
    );
    let n = run.cycles.len();
    let c = &run.cycles;
    let ready = sorted(c.iter().map(|c| c.ready_ms));
    let daemon_ready = sorted(c.iter().filter_map(|c| c.daemon_ready_ms));
    let shutdown = sorted(c.iter().map(|c| c.shutdown_ms));
    let stopping = sorted(c.iter().filter_map(|c| c.stopping_ms));
    let p = |v: &[f64], q| percentile(v, q);
    let _ = writeln!(r, "### {n} start/stop cycles\n");
    let p99_is_max = if n > 0 && (0.99 * n as f64).ceil() as usize == n {
        format!(" (with {n} cycles the p99 is the largest value)")
    } else {
        String::new()
    };
    let _ = writeln!(
        r,
        "Each cycle binds a fresh Unix datagram socket, spawns chronusd and waits in `poll` on \
         the socket and a pidfd of the daemon. Startup is timed from just before `spawn()` \
         (fork and exec included) to the receipt of a datagram holding the line `READY=1`, \
         which chronusd sends once the device has consumed audio and both worker slots are in \
         lockstep. The bench then reads `/chronus/status` for the worker pids, and {:.0} ms \
         after READY arrived sends SIGTERM; shutdown is timed from just before \
         `kill(pid, SIGTERM)` to the return of waitpid (the pidfd turns readable when the \
         process exits). Percentiles are nearest-rank over the {n} cycles{p99_is_max}; the \
         targets are judged on the max, so every cycle must meet them. The {n} cycles took \
         {:.1} s in all.\n",
        run.settle.as_secs_f64() * 1e3,
        run.wall.as_secs_f64()
    );
    let _ = writeln!(r, "| Measure | p50 | p99 | max | Target | Result |");
    let _ = writeln!(r, "|---|---:|---:|---:|---|---|");
    let _ = writeln!(
        r,
        "| Startup: spawn → `READY=1` received | {:.1} ms | {:.1} ms | {:.1} ms | < 300 ms | {} |",
        p(&ready, 0.5),
        p(&ready, 0.99),
        p(&ready, 1.0),
        below(p(&ready, 1.0), 300.0, "ms")
    );
    let partial = |v: &[f64]| {
        if v.len() == n {
            String::new()
        } else {
            format!(" ({} of {n} cycles)", v.len())
        }
    };
    let _ = writeln!(
        r,
        "| of which: supervisor about to spawn the workers → READY sent (the daemon's logged `ready_ms`){} | {:.1} ms | {:.1} ms | {:.1} ms | — | — |",
        partial(&daemon_ready),
        p(&daemon_ready, 0.5),
        p(&daemon_ready, 0.99),
        p(&daemon_ready, 1.0),
    );
    let _ = writeln!(
        r,
        "| Shutdown: SIGTERM → exit (waitpid) | {:.1} ms | {:.1} ms | {:.1} ms | < 500 ms | {} |",
        p(&shutdown, 0.5),
        p(&shutdown, 0.99),
        p(&shutdown, 1.0),
        below(p(&shutdown, 1.0), 500.0, "ms")
    );
    let _ = writeln!(
        r,
        "| of which: SIGTERM → `STOPPING=1` received{} | {:.2} ms | {:.2} ms | {:.2} ms | — | — |",
        partial(&stopping),
        p(&stopping, 0.5),
        p(&stopping, 0.99),
        p(&stopping, 1.0),
    );
    let slow = |v: &[f64], limit| v.iter().filter(|&&x| x >= limit).count();
    let _ = writeln!(
        r,
        "\nStartups of 300 ms or more: {} of {n}. Shutdowns of 500 ms or more: {} of {n}.",
        slow(&ready, 300.0),
        slow(&shutdown, 500.0)
    );

    let _ = writeln!(r, "\n### Checks over the same {n} cycles\n");
    let _ = writeln!(r, "| Check | Measured | Target | Result |");
    let _ = writeln!(r, "|---|---|---|---|");
    let all = |k: usize, of: usize| if k == of { "met" } else { "**missed**" };
    let exited_0 = c.iter().filter(|c| c.exit.code() == Some(0)).count();
    let mut others: Vec<String> = c
        .iter()
        .filter(|c| c.exit.code() != Some(0))
        .map(|c| c.exit.to_string())
        .collect();
    others.sort();
    others.dedup();
    let others = if others.is_empty() {
        String::new()
    } else {
        format!(" (others: {})", others.join(", "))
    };
    let _ = writeln!(
        r,
        "| Exit status after SIGTERM | {exited_0} of {n} exited 0{others} | all 0 | {} |",
        all(exited_0, n)
    );
    let stopped = c.iter().filter(|c| c.stopping_ms.is_some()).count();
    let _ = writeln!(
        r,
        "| `STOPPING=1` received after SIGTERM | {stopped} of {n} | all | {} |",
        all(stopped, n)
    );
    let checked: usize = c.iter().map(|c| c.workers_checked).sum();
    let left: Vec<&str> = c
        .iter()
        .flat_map(|c| c.workers_left.iter().map(String::as_str))
        .collect();
    let left_list = if left.is_empty() {
        String::new()
    } else {
        format!(" (left: {})", left.join(", "))
    };
    let _ = writeln!(
        r,
        "| Worker pids (`slot0_pid`, `slot1_pid` read before SIGTERM) gone once waitpid returned: \
         no `/proc/<pid>`, or another process (start time) holding the pid | {} of {checked} gone{left_list} | all | {} |",
        checked - left.len(),
        all(checked - left.len(), checked)
    );
    let lockstep = c.iter().filter(|c| c.lockstep_at_ready).count();
    let _ = writeln!(
        r,
        "| First status after READY: both slots `lockstep`, `frames` > 0 | {lockstep} of {n} | all | {} |",
        all(lockstep, n)
    );
    r
}

fn config_name(s: &SteadyRun) -> &'static str {
    if s.recording {
        "recording and journal on (as in the kill run)"
    } else {
        "no recording, no journal"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 500.0);
        assert_eq!(percentile(&v, 0.99), 990.0);
        assert_eq!(percentile(&v, 1.0), 1000.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn verdicts_say_by_how_much() {
        assert_eq!(below(0.4, 1.0, "ms"), "met");
        assert!(below(75.0, 50.0, "ms").contains("25.00 ms"));
    }

    #[test]
    fn a_cpu_total_printed_at_the_limit_is_not_met() {
        // Regression: 50 ticks over a window just over 10 s, reported as "5.00 %, met".
        let total = printed_percent(50.0 * 0.01 / 10.004 * 100.0);
        assert_eq!(format!("{total:.2}"), "5.00");
        assert_eq!(
            below(total, 5.0, "points"),
            "**missed**: at the limit, not under it"
        );
    }
}
