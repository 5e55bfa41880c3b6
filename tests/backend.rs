//! Choosing the audio backend when no device can be opened: `auto` falls back to
//! null with one warning, an explicit `cpal` device that does not exist stops
//! startup. No sound server is reachable here by construction. Run serially.

use chronus_e2e::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Environment in which no PulseAudio server can be found or autospawned: an empty
/// private runtime directory and home, and a server address that is not a socket.
fn no_sound_server(dir: &Path) -> Vec<(&'static str, String)> {
    let runtime = dir.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    vec![
        ("XDG_RUNTIME_DIR", runtime.display().to_string()),
        ("HOME", runtime.display().to_string()),
        (
            "PULSE_SERVER",
            format!("unix:{}", dir.join("no-such-socket").display()),
        ),
    ]
}

/// Children of this process, zombies included. With this process a subreaper, a
/// worker its supervisor left behind shows up here once the supervisor is gone.
fn children() -> Vec<i32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // pid (comm) state ppid ...
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|p| p == me))
                    .unwrap_or(false)
            })
        })
        .collect()
}

#[test]
fn auto_backend_falls_back_to_null_with_exactly_one_warning() {
    let dir = scratch("auto-files");
    let mut env = no_sound_server(&dir);
    env.push(("CHRONUS_AUDIO_BACKEND", "auto".into()));
    let d = Daemon::start("auto", &env);
    let s = d.status();
    assert_eq!(string(&s, "backend"), "null", "log:\n{}", d.log());
    let warning = "no audio device could be opened";
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert_eq!(log.matches(warning).count(), 1, "log:\n{log}");
}

#[test]
fn a_cpal_device_that_does_not_exist_stops_startup_naming_it() {
    a_missing_device_is_a_configuration_error("cpal");
}

#[test]
fn under_auto_a_named_device_that_does_not_exist_is_a_configuration_error_not_silence() {
    a_missing_device_is_a_configuration_error("auto");
}

/// With `backend` and a device that does not exist, chronusd exits 78 naming
/// `audio.device` and listing the devices one per line, and reaps its workers.
fn a_missing_device_is_a_configuration_error(backend: &str) {
    let dir = scratch(&format!("no-device-{backend}"));
    let device = "chronus-test-no-such-device";
    let port = free_udp_port().to_string();
    // Orphans come to this process instead of init, so unreaped workers are visible.
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    assert_eq!(rc, 0, "cannot become a subreaper");
    let mut child = Command::new(chronusd_exe())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(no_sound_server(&dir))
        .env("CHRONUS_OSC_PORT", &port)
        .env("CHRONUS_AUDIO_BACKEND", backend)
        .env("CHRONUS_AUDIO_DEVICE", device)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("chronusd.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chronusd kept running without its audio device");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let log = std::fs::read_to_string(dir.join("chronusd.log")).unwrap();
    assert_eq!(status.code(), Some(78), "log:\n{log}");
    assert!(
        log.contains(&format!(
            "audio device `{device}` not found (audio.device, CHRONUS_AUDIO_DEVICE); available output devices:\n  "
        )),
        "the error must name the device, the setting and what exists, one per line; log:\n{log}"
    );
    assert!(
        !log.contains("null output"),
        "fell back to silence; log:\n{log}"
    );
    // Workers are started before the device is opened: the supervisor must reap them
    // before exiting, as on any other exit, not leave them to their parent-death signal.
    // The kernel reparents orphans before it reports their parent's exit: no wait needed.
    let left = children();
    for &pid in &left {
        // SAFETY: waitpid on our own child, with no status to write.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    assert!(
        left.is_empty(),
        "not reaped by chronusd: {left:?}; log:\n{log}"
    );
}

#[test]
fn libasound_error_lines_go_into_the_log_at_debug_not_raw_stderr() {
    let dir = scratch("alsa-conf");
    // A default PCM that names one that does not exist: libasound reports it through
    // its error handler on every open, card or no card.
    let conf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        "pcm.!default { type plug slave.pcm \"chronus_no_such_pcm\" }\n",
    )
    .unwrap();
    let mut env = no_sound_server(&dir);
    env.push(("ALSA_CONFIG_PATH", conf.display().to_string()));
    env.push(("CHRONUS_AUDIO_BACKEND", "auto".into()));
    env.push(("CHRONUS_LOG", "info,alsa=debug".into()));
    let d = Daemon::start("alsa-lines", &env);
    let (status, _, log) = d.stop();
    assert!(status.success(), "log:\n{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("ALSA lib")),
        "libasound wrote to stderr itself; log:\n{log}"
    );
    assert!(
        log.lines().any(
            |l| l.contains("DEBUG") && l.contains("libasound: Unknown PCM chronus_no_such_pcm")
        ),
        "libasound's line must be in the log at debug; log:\n{log}"
    );
}
