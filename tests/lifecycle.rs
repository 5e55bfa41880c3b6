//! Lifecycle promises with the real binary and real signals: sd_notify messages
//! and their order, reload, and what children inherit. Run serially.

use chronus_e2e::*;
use std::net::IpAddr;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Reads notify datagrams until `pred` matches one, returning everything read.
fn read_until(sock: &UnixDatagram, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "no {what} notification; got {seen:?}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = pred(&msg);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
}

fn lines(msg: &str) -> Vec<&str> {
    msg.lines().collect()
}

/// The state changes a notify message announces: its lines other than
/// `STATUS=`, `WATCHDOG=1` and `MONOTONIC_USEC=`.
fn states(msg: &str) -> Vec<&str> {
    msg.lines()
        .filter(|l| {
            !l.starts_with("STATUS=") && *l != "WATCHDOG=1" && !l.starts_with("MONOTONIC_USEC=")
        })
        .collect()
}

#[test]
fn notify_messages_arrive_in_order_through_start_reload_and_stop() {
    let dir = scratch("notify-sock");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut d = Daemon::start(
        "notify",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("NOTIFY_SOCKET", path.display().to_string()),
            ("WATCHDOG_USEC", "300000".into()),
            // Any other watchdog variable (a newer systemd's) must not reach workers.
            ("WATCHDOG_FOO", "1".into()),
        ],
    );
    let mut seen = read_until(&sock, "READY=1", |m| lines(m).contains(&"READY=1"));
    // READY=1 is the very first message, sent once both slots are in lockstep.
    assert_eq!(seen.len(), 1, "messages before READY: {seen:?}");
    assert!(
        seen[0].contains("STATUS=playing via null; active slot 0; standby slot 1 lockstep"),
        "{seen:?}"
    );

    // The watchdog is pinged at least twice per WATCHDOG_USEC while audio flows.
    let window = Instant::now();
    let mut pings = 0;
    let mut buf = [0u8; 4096];
    while window.elapsed() < Duration::from_millis(1500) {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            pings += usize::from(lines(&msg).contains(&"WATCHDOG=1"));
            seen.push(msg);
        }
    }
    assert!(
        pings >= 10,
        "only {pings} watchdog pings in 1.5 s with WATCHDOG_USEC=300000"
    );

    // Workers must not inherit the notify socket or the watchdog.
    let s = d.status();
    for pid in [active_pid(&s), standby_pid(&s)] {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            !environ.contains("NOTIFY_SOCKET") && !environ.contains("WATCHDOG_"),
            "worker {pid} inherited: {environ}"
        );
    }

    // STATUS= stays current: a failover shows up in words.
    signal(active_pid(&s), libc::SIGKILL);
    d.wait_until("restore", Duration::from_secs(5), |s| {
        long(s, "restores") == 1 && both_lockstep(s)
    });
    seen.extend(read_until(&sock, "STATUS= naming the failover", |m| {
        m.lines()
            .any(|l| l.starts_with("STATUS=") && l.contains("; 1 failovers;"))
    }));

    signal(d.pid(), libc::SIGHUP);
    let reload = read_until(&sock, "RELOADING=1", |m| lines(m).contains(&"RELOADING=1"));
    let reloading = reload.last().unwrap();
    assert!(
        lines(reloading)
            .iter()
            .any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    seen.extend(reload);
    seen.extend(read_until(&sock, "READY=1 after reload", |m| {
        lines(m).contains(&"READY=1")
    }));

    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    // Everything sent before the exit is queued on the socket.
    while let Ok(n) = sock.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let announced: Vec<&str> = seen.iter().flat_map(|m| states(m)).collect();
    assert_eq!(
        announced,
        ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"],
        "{seen:?}"
    );
}

#[test]
fn reload_applies_live_settings_and_keeps_running_on_a_bad_file() {
    let dir = scratch("reload-cfg");
    let file = dir.join("chronus.toml");
    std::fs::write(&file, "[workers]\nhang_timeout_ms = 250\n").unwrap();
    let mut d = Daemon::start(
        "reload",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_CONFIG", file.display().to_string()),
        ],
    );
    // A live setting and two that need a restart.
    std::fs::write(
        &file,
        "[audio]\nbuffer_size = 512\n[workers]\nhang_timeout_ms = 100\n[engine]\nnum_voices = 12\n",
    )
    .unwrap();
    signal(d.pid(), libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.log().contains("configuration reloaded") {
        assert!(Instant::now() < deadline, "no reload in log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = d.log();
    assert!(
        log.contains(
            "reload: audio.buffer_size, engine.num_voices changed but need a restart to take effect"
        ),
        "{log}"
    );
    assert!(
        log.contains("configuration reloaded; applied live: workers.hang_timeout_ms"),
        "{log}"
    );
    // The live hang timeout (100 ms) now applies: a hung worker is replaced.
    let s = d.status();
    signal(active_pid(&s), libc::SIGSTOP);
    d.wait_until("hung worker replaced", Duration::from_secs(5), |s| {
        long(s, "hangs") == 1 && both_lockstep(s)
    });

    std::fs::write(&file, "[workers]\nhang_timeout_ms = 5\n").unwrap();
    signal(d.pid(), libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d
        .log()
        .contains("reload failed; keeping the running configuration")
    {
        assert!(
            Instant::now() < deadline,
            "bad file not reported:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        d.log().contains("workers.hang_timeout_ms"),
        "the error must name the key:\n{}",
        d.log()
    );
    let s = d.status();
    assert!(both_lockstep(&s), "still playing after a bad reload");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

/// Waits until the log holds `what`.
fn wait_for_log(d: &Daemon, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = d.log();
        if log.contains(what) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {what:?} in log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reload_applies_a_new_osc_allowlist_and_log_filter() {
    let dir = scratch("reload-allow-cfg");
    let file = dir.join("chronus.toml");
    std::fs::write(&file, "[log]\nfilter = \"info\"\n").unwrap();
    let d = Daemon::start(
        "reload-allow",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_CONFIG", file.display().to_string()),
            // Unset, so that the file's filter is the one in force.
            ("CHRONUS_LOG", String::new()),
        ],
    );
    assert!(!d.log().contains("DEBUG"), "debug at info:\n{}", d.log());
    let (here, other) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
    let timeout = Duration::from_millis(500);
    assert!(d.status_from(here, timeout).is_some());

    std::fs::write(
        &file,
        "[log]\nfilter = \"debug\"\n[osc]\nallow = [\"127.0.0.2/32\"]\n",
    )
    .unwrap();
    signal(d.pid(), libc::SIGHUP);
    wait_for_log(
        &d,
        "configuration reloaded; applied live: osc.allow, log.filter",
    );

    let refused = long(&d.status_from(other, timeout).unwrap(), "osc_refused");
    assert_eq!(
        d.status_from(here, timeout),
        None,
        "a sender outside osc.allow was answered"
    );
    let s = d.status_from(other, timeout).unwrap();
    assert_eq!(long(&s, "osc_refused"), refused + 1);

    // A restore logs at debug level, which the new filter lets through.
    signal(standby_pid(&s), libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while d
        .status_from(other, timeout)
        .is_none_or(|s| long(&s, "restores") < 1 || !both_lockstep(&s))
    {
        assert!(Instant::now() < deadline, "no restore:\n{}", d.log());
    }
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("DEBUG") && l.contains("worker adopted")),
        "no debug line after switching the filter to debug:\n{log}"
    );
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

/// The scheduling policy of a thread (field 41 of its stat): 0 is SCHED_OTHER,
/// 1 SCHED_FIFO.
fn policy(stat_path: &str) -> u32 {
    let stat = std::fs::read_to_string(stat_path).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    // Fields from the third on follow the command name.
    rest.split_whitespace()
        .nth(41 - 3)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn realtime_denied_gives_one_warning_per_run() {
    const CAP_SYS_NICE: libc::c_ulong = 23;
    let mut d = Daemon::start_with(
        "no-rt",
        &[("CHRONUS_AUDIO_BACKEND", "null".into())],
        |cmd| {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit and prctl are async-signal-safe and touch only
            // this child, between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    let none = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::setrlimit(libc::RLIMIT_RTPRIO, &none) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // Root keeps SCHED_FIFO through CAP_SYS_NICE: leave it out of
                    // what exec grants. Fails harmlessly when not root.
                    libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0);
                    Ok(())
                });
            }
        },
    );
    // A restore, a cold start: each new worker is refused again.
    let s = d.status();
    signal(standby_pid(&s), libc::SIGKILL);
    let s = d.wait_until("restore", Duration::from_secs(5), |s| {
        long(s, "restores") == 1 && both_lockstep(s)
    });
    for pid in [active_pid(&s), standby_pid(&s)] {
        signal(pid, libc::SIGSTOP);
    }
    for pid in [active_pid(&s), standby_pid(&s)] {
        signal(pid, libc::SIGKILL);
    }
    let s = d.wait_until("cold start", Duration::from_secs(10), |s| {
        long(s, "cold_starts") == 1 && both_lockstep(s)
    });
    // The denial is real: workers and the audio thread run at normal priority.
    for pid in [active_pid(&s), standby_pid(&s)] {
        assert_eq!(policy(&format!("/proc/{pid}/stat")), 0, "worker {pid}");
    }
    let audio = std::fs::read_dir(format!("/proc/{}/task", d.pid()))
        .unwrap()
        .map(|t| t.unwrap().path())
        .find(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "audio-null"))
        .expect("an audio-null thread");
    assert_eq!(policy(&format!("{}/stat", audio.display())), 0);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no realtime scheduling"))
        .collect();
    assert_eq!(warnings.len(), 1, "log:\n{log}");
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains("the audio thread and the workers' render loops"),
        "{warnings:?}"
    );
}

/// The role label of a log line under journald, `LEVEL label: message`: `None`
/// unless the line has exactly that shape.
fn journald_label(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let (level, rest) = line.split_once(' ')?;
    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
        .contains(&level)
        .then(|| rest.split_once(": ").map(|(label, _)| label))?
}

#[test]
fn under_journald_lines_are_plain_and_labelled_with_their_role() {
    let d = Daemon::start(
        "journald",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("JOURNAL_STREAM", "8:12345".into()),
            ("CHRONUS_LOG", "debug".into()),
            // A one-shot engine whose stderr a supervisor thread logs.
            (
                "CHRONUS_TTS_COMMAND",
                "sh -c 'echo speaking >&2; sleep 0.5'".into(),
            ),
        ],
    );
    d.send(
        "/chronus/tts/say",
        vec![chronus_osc::OscType::String("hello".into())],
    );
    wait_for_log(&d, "engine stderr");
    let supervisor = format!("supervisor{{pid={}}}", d.pid());
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert!(!log.contains('\x1b'), "colours under journald:\n{log}");
    let mut roles = std::collections::BTreeSet::new();
    for line in log.lines() {
        let label = journald_label(line)
            .unwrap_or_else(|| panic!("not `LEVEL role: message` (a timestamp?): {line:?}"));
        let role = if label == supervisor {
            "supervisor"
        } else if let Some(worker) = label
            .strip_prefix("worker{slot=")
            .and_then(|w| w.strip_suffix('}'))
        {
            let (slot, rest) = worker.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            assert!(["0", "1"].contains(&slot), "{line:?}");
            let (role, pid) = rest
                .split_once(" pid=")
                .unwrap_or_else(|| panic!("{line:?}"));
            assert!(pid.parse::<u32>().is_ok(), "{line:?}");
            match role {
                "role=\"primary\"" => "primary",
                "role=\"standby\"" => "standby",
                _ => panic!("unknown worker role: {line:?}"),
            }
        } else {
            panic!("line without a role: {line:?}");
        };
        roles.insert(role);
        if line.contains("engine stderr") {
            assert_eq!(role, "supervisor", "a speech thread's line: {line:?}");
        }
    }
    assert_eq!(
        roles.into_iter().collect::<Vec<_>>(),
        ["primary", "standby", "supervisor"]
    );
}

#[test]
fn under_journald_on_stderr_each_line_carries_its_priority_and_root_gets_no_memlock_advice() {
    use std::os::unix::fs::MetadataExt;
    let dir = scratch("journald-priority-files");
    let path = dir.join("stderr.log");
    let file = std::fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let d = Daemon::start_with(
        "journald-priority",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("JOURNAL_STREAM", stream),
            ("CHRONUS_LOG", "debug".into()),
            // No journal socket: lines go to stderr.
            (
                "CHRONUS_TEST_JOURNAL_SOCKET",
                dir.join("no-journal").display().to_string(),
            ),
        ],
        |cmd| {
            cmd.stderr(file.try_clone().unwrap());
        },
    );
    let pid = d.pid();
    let (status, _, _) = d.stop();
    assert!(status.success());
    let log = std::fs::read_to_string(&path).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for line in log.lines() {
        let (prefix, rest) = line.split_at(3.min(line.len()));
        let level = rest.split_whitespace().next().unwrap_or("");
        let want = match level {
            "ERROR" => "<3>",
            "WARN" => "<4>",
            "INFO" => "<6>",
            "DEBUG" | "TRACE" => "<7>",
            _ => panic!("not `<N>LEVEL role: message`: {line:?}"),
        };
        assert_eq!(prefix, want, "{line:?}");
        seen.insert(prefix.to_owned());
    }
    assert!(
        seen.contains("<6>") && seen.contains("<7>"),
        "{seen:?}; log:\n{log}"
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(
            !log.contains("memory not locked"),
            "root holds CAP_IPC_LOCK: no LimitMEMLOCK advice; log:\n{log}"
        );
    }
    assert!(!alive(pid));
}

#[test]
fn under_systemd_entries_reach_the_journal_with_searchable_fields() {
    use std::os::unix::fs::MetadataExt;
    let dir = scratch("journal-native-files");
    let socket = UnixDatagram::bind(dir.join("journal.sock")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let path = dir.join("stderr.log");
    let file = std::fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let mut d = Daemon::start_with(
        "journal-native",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino())),
            (
                "CHRONUS_TEST_JOURNAL_SOCKET",
                dir.join("journal.sock").display().to_string(),
            ),
        ],
        |cmd| {
            cmd.stderr(file.try_clone().unwrap());
        },
    );
    let s = d.status();
    signal(active_pid(&s), libc::SIGKILL);
    d.wait_until("restored", Duration::from_secs(10), |s| {
        long(s, "restores") >= 1 && both_lockstep(s)
    });
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            entries.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        if entries
            .iter()
            .any(|e| e.contains("CHRONUS_ID=chronus.restored\n"))
        {
            break;
        }
    }
    let (status, _, _) = d.stop();
    assert!(status.success());
    let failover = entries
        .iter()
        .find(|e| e.contains("CHRONUS_ID=chronus.failover\n"))
        .unwrap_or_else(|| panic!("no failover entry in {entries:#?}"));
    for field in [
        "PRIORITY=4\n",
        "SYSLOG_IDENTIFIER=chronusd\n",
        "CHRONUS_REASON=killed by signal 9",
        "MESSAGE=supervisor{pid=",
    ] {
        assert!(failover.contains(field), "{field:?} missing: {failover}");
    }
    assert!(
        std::fs::read_to_string(&path).unwrap().is_empty(),
        "lines went to stderr as well"
    );
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

fn shm_entries() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Entries of the temp directory other than the tests' own scratch directories.
fn temp_entries() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("chronus-test-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_second_stop_signal_exits_at_once() {
    let dir = scratch("twice-files");
    let record = dir.join("out.wav");
    let d = Daemon::start(
        "twice",
        &[
            ("CHRONUS_AUDIO_BACKEND", "null".into()),
            ("CHRONUS_RECORD", record.display().to_string()),
        ],
    );
    d.send(
        "/mod/voice1/freq",
        vec![chronus_osc::OscType::Float(1000.0)],
    );
    d.send("/gate/voice1", vec![chronus_osc::OscType::Int(1)]);
    let frames = long(&d.status(), "frames");
    while long(&d.status(), "frames") < frames + 9_600 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = d.status();
    let workers = [active_pid(&s), standby_pid(&s)];
    signal(d.pid(), libc::SIGTERM);
    let (status, took, log) = d.stop_with(libc::SIGINT);
    assert!(status.success(), "log:\n{log}");
    assert!(log.contains("second stop signal"), "log:\n{log}");
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived the supervisor");
    }
    // Without waiting for the fade (50 ms, behind the lookahead), the recording
    // ends with the tone still loud.
    let (_, live) = read_wav(&record);
    let peak = live[live.len() - 2 * 48..]
        .iter()
        .fold(0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.1, "the output faded out: last peak {peak}");
}

#[test]
fn sigint_alone_stops_cleanly_and_reaps_every_worker() {
    let d = Daemon::start("int", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let s = d.status();
    let workers = [active_pid(&s), standby_pid(&s)];
    let (status, _, log) = d.stop_with(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    // The graceful path (fade, then TERM to the workers), not a crash or a second signal.
    assert!(log.contains("stopping signal=2"), "log:\n{log}");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived the supervisor");
    }
}

#[test]
fn a_killed_supervisor_leaves_nothing_behind() {
    let shm_before = shm_entries();
    let temp_before = temp_entries();
    let mut d = Daemon::start("leftovers", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    // Make a restore happen first, so a fork copy is among the children.
    let s = d.status();
    signal(active_pid(&s), libc::SIGKILL);
    let s = d.wait_until("restore", Duration::from_secs(5), |s| {
        long(s, "restores") == 1 && both_lockstep(s)
    });
    let workers = [active_pid(&s), standby_pid(&s)];
    signal(d.pid(), libc::SIGKILL);
    let _ = d.child.wait();
    let deadline = Instant::now() + Duration::from_secs(1);
    while workers.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in workers {
        assert!(
            !alive(pid),
            "worker {pid} survived its supervisor by a second"
        );
    }
    assert_eq!(shm_entries(), shm_before, "/dev/shm changed");
    assert_eq!(temp_entries(), temp_before, "temporary files appeared");
}

#[test]
fn hundreds_of_failovers_grow_no_fds_threads_or_memory() {
    let mut d = Daemon::start("growth", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let pid = d.pid();
    let warm = |d: &mut Daemon, from: i64, kills: i64| {
        let mut s = d.status();
        for i in from..from + kills {
            signal(
                if i % 3 == 0 {
                    standby_pid(&s)
                } else {
                    active_pid(&s)
                },
                libc::SIGKILL,
            );
            s = d.wait_until("restore", Duration::from_secs(5), |s| {
                long(s, "restores") > i && both_lockstep(s)
            });
        }
    };
    // Warm up allocator pools and thread stacks, then measure across 300 more.
    warm(&mut d, 0, 50);
    let fds = count_dir(&format!("/proc/{pid}/fd"));
    let threads = count_dir(&format!("/proc/{pid}/task"));
    let rss = rss_kib(pid);
    warm(&mut d, 50, 300);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        count_dir(&format!("/proc/{pid}/fd")),
        fds,
        "file descriptors grew"
    );
    assert_eq!(
        count_dir(&format!("/proc/{pid}/task")),
        threads,
        "threads grew"
    );
    let grown = rss_kib(pid).saturating_sub(rss);
    assert!(grown < 1024, "RSS grew by {grown} KiB over 300 failovers");
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
}

#[test]
fn fifty_start_stop_cycles_leave_nothing_behind() {
    let shm_before = shm_entries();
    let fds_before = count_dir("/proc/self/fd");
    for cycle in 0..50 {
        let d = Daemon::start("cycles", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
        let s = d.status();
        let workers = [active_pid(&s), standby_pid(&s)];
        let (status, _, log) = d.stop();
        assert!(status.success(), "cycle {cycle}: log:\n{log}");
        for pid in workers {
            assert!(!alive(pid), "cycle {cycle}: worker {pid} left running");
        }
    }
    assert_eq!(shm_entries(), shm_before, "/dev/shm changed");
    assert_eq!(
        count_dir("/proc/self/fd"),
        fds_before,
        "file descriptors leaked into the test process"
    );
}

/// Starts chronusd on `port` and returns its exit status and log once it exits.
fn start_on_taken_port(name: &str, port: u16) -> (std::process::ExitStatus, String) {
    let dir = scratch(name);
    let log = dir.join("chronusd.log");
    let status = std::process::Command::new(chronusd_exe())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CHRONUS_AUDIO_BACKEND", "null")
        .env("CHRONUS_OSC_PORT", port.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    (status, std::fs::read_to_string(&log).unwrap())
}

#[test]
fn a_taken_osc_port_names_the_setting_and_who_holds_it() {
    let first = Daemon::start("port-first", &[("CHRONUS_AUDIO_BACKEND", "null".into())]);
    let (status, log) = start_on_taken_port("port-second", first.osc.port());
    assert!(!status.success(), "log:\n{log}");
    assert!(
        log.contains("osc.port") && log.contains("another chronusd (version"),
        "the error names the setting and the other daemon; log:\n{log}"
    );
    let (status, _, _) = first.stop();
    assert!(status.success());

    let squatter = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let (status, log) = start_on_taken_port("port-squatted", port);
    assert!(!status.success(), "log:\n{log}");
    assert!(
        log.contains("osc.port") && log.contains("another program holds it"),
        "log:\n{log}"
    );
}
