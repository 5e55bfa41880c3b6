//! Shared by the integration tests that start processes: each test binary is its own
//! process, and its tests run one at a time so the process's children are theirs.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the other tests of this binary off while one runs.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// (pid, state) of every child of this process, zombies included, from /proc.
pub fn children() -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command may contain spaces and parentheses: split after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("?").to_string();
        if fields.next().and_then(|p| p.parse::<u32>().ok()) == Some(me) {
            out.push((pid, state));
        }
    }
    out
}

/// Asserts that this process has no children left, not even zombies (a child being
/// reaped may take a moment to disappear from /proc).
pub fn assert_no_children() {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let kids = children();
        if kids.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "children left behind: {kids:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `program` can run. Missing: a failure under CI, otherwise a skip with a
/// notice saying how to install it.
pub fn have(program: &str, package: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing (Debian package {package}; `bash scripts/deps.sh test`)"
        );
        eprintln!(
            "SKIPPED: {program} is not installed (Debian package {package}; run `bash scripts/deps.sh test`)"
        );
    }
    found
}
