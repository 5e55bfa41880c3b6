//! Children spawned through `chronus_process`, checked from outside: the environment
//! they inherit, how they die with their parent, how a real crash reads, and what the
//! reaper takes. A harness of its own (`harness = false`) because the systemd variables
//! must be in this process's real environment, which is sound to set only while it is
//! single-threaded; because the parent-death test re-runs this binary as the parent it
//! then kills; and because `reap_exited` takes any exited child, so nothing may run
//! beside it.

use chronus_process::{ExitCause, Signal};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Set in a re-run of this binary to the part it plays.
const ROLE: &str = "CHRONUS_PROCESS_TEST_ROLE";

/// What systemd hands the service alone: no child may see these.
const SERVICE_ONLY: &[(&str, &str)] = &[
    ("NOTIFY_SOCKET", "/run/chronus-test/notify"),
    ("WATCHDOG_USEC", "300000"),
    ("WATCHDOG_PID", "1"),
    ("WATCHDOG_FOO", "1"),
    ("LISTEN_FDS", "1"),
    ("LISTEN_PID", "1"),
    ("LISTEN_FDNAMES", "osc"),
];

/// What children keep.
const KEPT: &[(&str, &str)] = &[
    ("INVOCATION_ID", "0123456789abcdef0123456789abcdef"),
    ("JOURNAL_STREAM", "8:12345"),
];

fn main() -> ExitCode {
    match std::env::var(ROLE).as_deref() {
        Ok("spawner") => spawner(),
        Ok("segfault") => segfault(),
        _ => {}
    }
    for (var, value) in SERVICE_ONLY.iter().chain(KEPT) {
        // SAFETY: no other thread exists yet to read the environment concurrently.
        unsafe { std::env::set_var(var, value) };
    }
    let tests: &[(&str, fn())] = &[
        (
            "children_never_inherit_systemd_service_variables",
            children_never_inherit_systemd_service_variables,
        ),
        (
            "child_dies_when_its_spawning_parent_is_killed",
            child_dies_when_its_spawning_parent_is_killed,
        ),
        (
            "real_segfault_and_error_exit_are_faults",
            real_segfault_and_error_exit_are_faults,
        ),
        (
            "reap_exited_takes_every_exited_child_but_those_left",
            reap_exited_takes_every_exited_child_but_those_left,
        ),
    ];
    // Test names to run (substrings, as libtest takes them); flags are ignored.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    let mut ran = 0;
    for &(name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        println!("test {name} ...");
        if std::panic::catch_unwind(test).is_err() {
            println!("test {name} ... FAILED");
            failed.push(name);
        } else {
            println!("test {name} ... ok");
        }
    }
    println!("\n{ran} run, {} failed {failed:?}", failed.len());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Spawns a long sleep through the library, prints its pid, and waits to be killed.
fn spawner() -> ! {
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    chronus_process::prepare(&mut cmd, &[]);
    // Never reaped: this process is killed while the child sleeps.
    let child = cmd.spawn().expect("spawning sleep").id();
    let mut out = std::io::stdout();
    writeln!(out, "{child}")
        .and_then(|()| out.flush())
        .expect("writing the pid");
    loop {
        std::thread::park();
    }
}

/// Crashes on a real memory fault: a read of a page mapped with no access.
fn segfault() -> ! {
    let no_core = rustix::process::Rlimit {
        current: Some(0),
        maximum: None,
    };
    // No core file from this deliberate crash.
    let _ = rustix::process::setrlimit(rustix::process::Resource::Core, no_core);
    // SAFETY: a fresh anonymous mapping; no Rust object lives in it.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    // SAFETY: a volatile read of memory outside any Rust allocation; the kernel
    // answers it with SIGSEGV, which is the point.
    let byte = unsafe { std::ptr::read_volatile(page.cast::<u8>()) };
    unreachable!("read {byte} from a PROT_NONE page")
}

fn children_never_inherit_systemd_service_variables() {
    for (var, _) in SERVICE_ONLY.iter().chain(KEPT) {
        assert!(std::env::var_os(var).is_some(), "{var} is not set here");
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "env"]);
    chronus_process::prepare(&mut cmd, &[]);
    let out = cmd.output().expect("running /bin/sh -c env");
    assert!(out.status.success(), "{:?}", out.status);
    let env = String::from_utf8(out.stdout).expect("env prints text");
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    for (var, _) in SERVICE_ONLY {
        assert!(!names.contains(var), "{var} reached the child:\n{env}");
    }
    for var in ["PATH", "INVOCATION_ID", "JOURNAL_STREAM"] {
        assert!(
            names.contains(&var),
            "{var} did not reach the child:\n{env}"
        );
    }
}

fn child_dies_when_its_spawning_parent_is_killed() {
    // The orphan is then reparented to us, so we can reap it and read how it ended.
    chronus_process::become_subreaper().expect("becoming a subreaper");
    let mut parent = Command::new(std::env::current_exe().expect("this test's path"))
        .env(ROLE, "spawner")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the spawning parent");
    let mut line = String::new();
    BufReader::new(parent.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("reading the child's pid");
    let child: u32 = line.trim().parse().expect("a pid");
    parent.kill().expect("killing the parent");
    parent.wait().expect("reaping the parent");
    let deadline = Instant::now() + Duration::from_secs(5);
    let cause = loop {
        if let Some(cause) = chronus_process::try_reap(child) {
            break Some(cause);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let Some(cause) = cause else {
        chronus_process::signal(child, Signal::SIGKILL);
        chronus_process::wait(child);
        panic!("child {child} outlived its parent by 5 s");
    };
    assert_eq!(cause, ExitCause::Signal(libc::SIGKILL));
}

fn real_segfault_and_error_exit_are_faults() {
    let mut cmd = Command::new(std::env::current_exe().expect("this test's path"));
    cmd.env(ROLE, "segfault").stderr(Stdio::null());
    chronus_process::prepare(&mut cmd, &[]);
    let pid = cmd.spawn().expect("starting the crashing child").id();
    let cause = chronus_process::wait(pid);
    assert_eq!(cause, ExitCause::Signal(libc::SIGSEGV));
    assert!(cause.is_fault());
    assert_eq!(cause.to_string(), "killed by signal 11 (SIGSEGV)");

    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "exit 3"]);
    chronus_process::prepare(&mut cmd, &[]);
    let pid = cmd.spawn().expect("starting sh").id();
    let cause = chronus_process::wait(pid);
    assert_eq!(cause, ExitCause::Code(3));
    assert!(cause.is_fault());
    assert_eq!(cause.to_string(), "exit status 3");
}

fn reap_exited_takes_every_exited_child_but_those_left() {
    let spawn = |script: &str| {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]);
        chronus_process::prepare(&mut cmd, &[]);
        cmd.spawn().expect("starting sh").id()
    };
    let known = spawn("exit 1");
    let unannounced = spawn("exit 2");
    let running = spawn("exec sleep 10");
    // Wait until both have exited (zombies), without reaping them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while chronus_process::is_live_child(known) || chronus_process::is_live_child(unannounced) {
        assert!(Instant::now() < deadline, "children did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut reaped = chronus_process::reap_exited(&[known, running], |_| false);
    reaped.sort_by_key(|&(pid, _)| pid);
    let mut expected = vec![
        (known, ExitCause::Code(1)),
        (unannounced, ExitCause::Code(2)),
    ];
    expected.sort_by_key(|&(pid, _)| pid);
    assert_eq!(reaped, expected);

    // A child someone else reaps is left exited and unreaped, for its owner.
    let owned = spawn("exit 4");
    while chronus_process::is_live_child(owned) {
        assert!(Instant::now() < deadline, "child did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        chronus_process::reap_exited(&[], |pid| pid == owned),
        Vec::new()
    );
    assert_eq!(chronus_process::wait(owned), ExitCause::Code(4));

    chronus_process::signal(running, Signal::SIGKILL);
    assert_eq!(
        chronus_process::wait(running),
        ExitCause::Signal(libc::SIGKILL)
    );
}
