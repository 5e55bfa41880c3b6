//! The systemd units, the environment file example and the install scripts.
//!
//! - `systemd-analyze verify` passes on both units without a warning about them, with
//!   ExecStart pointed at the real chronusd binary (verify checks it is executable).
//!   Without systemd-analyze the verify tests skip with a notice, or fail under CI
//!   (`scripts/deps.sh test` installs the `systemd` package that provides it).
//! - The directives the service contract depends on (notify, watchdog, restart, the
//!   service user, real-time limits, the hardening list) are present, so a regression in
//!   a unit file is caught even where systemd-analyze is missing.
//! - `scripts/install.sh --root DIR` and `scripts/uninstall.sh --root DIR` really install
//!   into and remove from a staging root (no service user, no systemctl).

use chronus_e2e::chronusd_exe;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root exists")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn system_unit() -> String {
    read(&repo().join("systemd/chronus.service"))
}

fn user_unit() -> String {
    read(&repo().join("systemd/chronus-user.service"))
}

/// A scratch directory, removed by the test when it passes (kept for a look when not).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chronus-units-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// (section, key, value) for every assignment, in order. Rejects line continuations,
/// which the checks below would misread.
fn directives(unit: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in unit.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: continuation lines are not expected: {line}",
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not KEY=VALUE: {line}", n + 1));
        out.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    out
}

/// All values of `key` in `section`.
fn values(unit: &str, section: &str, key: &str) -> Vec<String> {
    directives(unit)
        .into_iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v)
        .collect()
}

/// The single value of `key` in `section`.
fn value(unit: &str, section: &str, key: &str) -> String {
    let all = values(unit, section, key);
    assert_eq!(
        all.len(),
        1,
        "expected exactly one {key}= in [{section}], found {all:?}"
    );
    all.into_iter().next().unwrap()
}

fn assert_service(unit: &str, name: &str, expected: &[(&str, &str)]) {
    for (key, want) in expected {
        assert_eq!(
            value(unit, "Service", key),
            *want,
            "{name}: [Service] {key}= must be {want}"
        );
    }
}

/// Directives both units share: the notify/watchdog/restart contract and the hardening
/// that works in both a system and a user manager.
const COMMON: &[(&str, &str)] = &[
    ("Type", "notify"),
    ("NotifyAccess", "main"),
    ("WatchdogSec", "2s"),
    ("Restart", "on-failure"),
    ("RestartPreventExitStatus", "78"),
    ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ("KillMode", "control-group"),
    ("TimeoutStopSec", "5"),
    ("RestrictRealtime", "no"),
    ("NoNewPrivileges", "yes"),
    (
        "RestrictAddressFamilies",
        "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ),
    ("RestrictNamespaces", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallErrorNumber", "EPERM"),
];

#[test]
fn system_unit_has_the_required_directives() {
    let unit = system_unit();
    assert_service(&unit, "chronus.service", COMMON);
    assert_service(
        &unit,
        "chronus.service",
        &[
            ("User", "chronus"),
            ("Group", "chronus"),
            ("SupplementaryGroups", "audio"),
            ("EnvironmentFile", "-/etc/chronus/chronus.env"),
            ("ExecStart", "/usr/local/bin/chronusd"),
            ("LimitRTPRIO", "95"),
            ("LimitMEMLOCK", "infinity"),
            ("StateDirectory", "chronus"),
            ("RuntimeDirectory", "chronus"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("DevicePolicy", "closed"),
            ("DeviceAllow", "char-alsa rw"),
            ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"),
            ("ProtectKernelLogs", "yes"),
            ("ProtectControlGroups", "yes"),
            ("ProtectClock", "yes"),
            ("ProtectHostname", "yes"),
            ("CapabilityBoundingSet", ""),
            ("RemoveIPC", "yes"),
        ],
    );
    assert_eq!(
        values(&unit, "Service", "SystemCallFilter"),
        ["@system-service", "~@privileged"]
    );
    // /dev/snd must stay reachable; a user namespace would unmap the audio group.
    for forbidden in [
        "PrivateDevices",
        "PrivateUsers",
        "DynamicUser",
        "ProcSubset",
    ] {
        assert!(
            values(&unit, "Service", forbidden).is_empty(),
            "chronus.service must not set {forbidden}="
        );
    }
    assert_eq!(value(&unit, "Install", "WantedBy"), "multi-user.target");
}

#[test]
fn user_unit_has_the_required_directives() {
    let unit = user_unit();
    assert_service(&unit, "chronus-user.service", COMMON);
    assert_service(
        &unit,
        "chronus-user.service",
        &[
            ("EnvironmentFile", "-%h/.config/chronus/chronus.env"),
            (
                "Environment",
                "CHRONUS_CONFIG=%h/.config/chronus/chronus.toml",
            ),
            ("ExecStart", "%h/.local/bin/chronusd"),
        ],
    );
    let after = value(&unit, "Unit", "After");
    for dep in ["pulseaudio.service", "pipewire-pulse.service"] {
        assert!(
            after.split_whitespace().any(|d| d == dep),
            "After= must name {dep}"
        );
    }
    assert_eq!(value(&unit, "Install", "WantedBy"), "default.target");
    // A user manager runs as the user, cannot raise rlimits, and has no device cgroup
    // or mount namespace without an implied PrivateUsers=.
    for forbidden in [
        "User",
        "Group",
        "SupplementaryGroups",
        "LimitRTPRIO",
        "LimitMEMLOCK",
        "PrivateDevices",
        "DevicePolicy",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateUsers",
    ] {
        assert!(
            values(&unit, "Service", forbidden).is_empty(),
            "chronus-user.service must not set {forbidden}="
        );
    }
}

/// Every variable config/chronus.toml documents (its `Env:` lines) is in the example,
/// commented out, and nothing in the example is active.
#[test]
fn env_example_documents_every_variable_commented_out() {
    let example = read(&repo().join("systemd/chronus.env.example"));
    for (n, line) in example.lines().enumerate() {
        assert!(
            line.trim().is_empty() || line.starts_with('#'),
            "chronus.env.example line {} is not commented out: {line}",
            n + 1
        );
    }
    let toml = read(&repo().join("config/chronus.toml"));
    let mut documented = vec!["CHRONUS_CONFIG".to_owned()];
    for line in toml.lines() {
        if let Some(rest) = line.trim_start_matches('#').trim().strip_prefix("Env:") {
            documented.extend(
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("CHRONUS_"))
                    .map(str::to_owned),
            );
        }
    }
    assert!(
        documented.len() > 10,
        "expected the Env: lines of config/chronus.toml, found {documented:?}"
    );
    for var in &documented {
        let example_line = format!("#{var}=");
        assert!(
            example.contains(&example_line) || example.contains(var.as_str()),
            "chronus.env.example does not mention {var}"
        );
        // Current names get an example assignment; legacy aliases may just be named.
        let is_alias = toml.contains(&format!("legacy name: {var}"));
        assert!(
            is_alias || example.lines().any(|l| l.starts_with(&example_line)),
            "chronus.env.example has no commented-out {var}= line"
        );
    }
}

// --- systemd-analyze verify ------------------------------------------------------------

/// systemd-analyze, or None after a skip notice (a panic under CI).
fn systemd_analyze() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join("systemd-analyze"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is not installed: scripts/deps.sh test installs the systemd package"
        );
        eprintln!(
            "SKIPPED: systemd-analyze is not installed, so the units were not verified \
             (apt-get install systemd, or scripts/deps.sh test)"
        );
    }
    found
}

/// A copy of `unit` whose ExecStart runs the chronusd under test.
fn render(unit: &str, exe: &str) -> String {
    assert!(!exe.contains(char::is_whitespace), "binary path {exe}");
    let mut replaced = 0;
    let mut out = String::new();
    for line in unit.lines() {
        if line.starts_with("ExecStart=") {
            replaced += 1;
            out.push_str("ExecStart=");
            out.push_str(&exe.replace('%', "%%"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert_eq!(replaced, 1, "one ExecStart= line");
    out
}

/// Runs `systemd-analyze [--user] verify` on `unit` saved as `dir/name`; returns whether
/// it succeeded, all its output, and the lines about this unit.
fn verify(
    analyze: &Path,
    dir: &Path,
    name: &str,
    unit: &str,
    user: bool,
) -> (bool, String, Vec<String>) {
    let file = dir.join(name);
    std::fs::write(&file, unit).unwrap();
    // A user manager instance needs a runtime directory; give it a private one.
    let runtime = dir.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut cmd = Command::new(analyze);
    if user {
        cmd.arg("--user");
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .args(["verify", "--no-pager"])
        .arg(&file)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    // Lines about the host (other units, missing kernel features) are not ours.
    let stem = name.trim_end_matches(".service");
    let ours = all
        .lines()
        .filter(|l| l.contains(stem) || l.contains(&*file.to_string_lossy()))
        .map(str::to_owned)
        .collect();
    (status.success(), all, ours)
}

fn verify_clean(unit: &str, name: &str, user: bool) {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    assert!(
        Path::new("/bin/kill").is_file(),
        "ExecReload= runs /bin/kill, which is missing"
    );
    let dir = scratch(&format!("verify-{name}"));

    // The check can see a problem: an unknown key is reported against the file.
    let broken = format!(
        "{}\n[Service]\nNoSuchDirective=1\n",
        render(unit, &chronusd_exe())
    );
    let (_, all, ours) = verify(&analyze, &dir, name, &broken, user);
    assert!(
        ours.iter().any(|l| l.contains("NoSuchDirective")),
        "systemd-analyze verify did not report an unknown key in {name}, so its silence \
         would prove nothing; its output:\n{all}"
    );

    let (ok, all, ours) = verify(&analyze, &dir, name, &render(unit, &chronusd_exe()), user);
    eprintln!("systemd-analyze verify {name}:\n{all}");
    assert!(
        ours.is_empty(),
        "systemd-analyze verify reports problems in {name}:\n{}",
        ours.join("\n")
    );
    assert!(ok, "systemd-analyze verify failed on {name}:\n{all}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn systemd_analyze_verifies_the_system_unit() {
    verify_clean(&system_unit(), "chronus.service", false);
}

#[test]
fn systemd_analyze_verifies_the_user_unit() {
    verify_clean(&user_unit(), "chronus-user.service", true);
}

// --- install.sh and uninstall.sh ---------------------------------------------------------

/// A directory with the binaries to install: the chronusd under test and a stand-in
/// chronusctl (this package's tests are not given chronusctl's path).
fn binaries(dir: &Path) -> PathBuf {
    let bin = dir.join("binaries");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(chronusd_exe(), bin.join("chronusd")).unwrap();
    let ctl = bin.join("chronusctl");
    std::fs::write(&ctl, "#!/bin/sh\necho chronusctl stand-in\n").unwrap();
    std::fs::set_permissions(&ctl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin
}

/// Runs a script from scripts/ with `args` and a fixed HOME; returns stdout+stderr,
/// asserting it exits with `code`.
fn script(name: &str, args: &[&str], home: &Path, code: i32) -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts").join(name))
        .args(args)
        .env("HOME", home)
        .env_remove("SUDO_USER")
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "{name} {args:?} exited with {:?}, expected {code}:\n{text}",
        out.status
    );
    text
}

fn assert_exists(path: &Path) {
    assert!(path.exists(), "{} should exist", path.display());
}

fn assert_gone(path: &Path) {
    assert!(!path.exists(), "{} should be gone", path.display());
}

fn assert_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "{} mode {mode:o}", path.display());
}

/// The installed chronusd runs and accepts the installed configuration.
fn assert_check_config(chronusd: &Path, config: &Path, env_file: &Path) {
    let mut cmd = Command::new(chronusd);
    cmd.env_clear()
        .arg("check-config")
        .arg("--config")
        .arg(config);
    // What systemd would pass from the environment file (nothing, as shipped).
    for line in read(env_file).lines() {
        if let Some((k, v)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().expect("the installed chronusd runs");
    assert!(
        out.status.success(),
        "installed chronusd check-config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_and_uninstall_the_system_service_into_a_staging_root() {
    let dir = scratch("install-system");
    let bin = binaries(&dir);
    let root = dir.join("root");
    let root_s = root.to_str().unwrap();
    let bin_s = bin.to_str().unwrap();
    let home = dir.join("home");
    let args = [
        "--root",
        root_s,
        "--prefix",
        "/opt/chronus",
        "--binaries",
        bin_s,
    ];

    script("install.sh", &args, &home, 0);
    let chronusd = root.join("opt/chronus/bin/chronusd");
    let chronusctl = root.join("opt/chronus/bin/chronusctl");
    let unit = root.join("etc/systemd/system/chronus.service");
    let config = root.join("etc/chronus/chronus.toml");
    let env_file = root.join("etc/chronus/chronus.env");
    assert_executable(&chronusd);
    assert_executable(&chronusctl);
    assert_eq!(
        std::fs::read(&chronusd).unwrap(),
        std::fs::read(chronusd_exe()).unwrap()
    );
    // The unit as shipped, with ExecStart in the prefix.
    assert_eq!(
        read(&unit),
        system_unit().replace(
            "ExecStart=/usr/local/bin/chronusd",
            "ExecStart=/opt/chronus/bin/chronusd"
        )
    );
    assert_eq!(read(&config), read(&repo().join("config/chronus.toml")));
    assert_eq!(
        read(&env_file),
        read(&repo().join("systemd/chronus.env.example"))
    );
    assert_check_config(&chronusd, &config, &env_file);

    // Again: idempotent, and the operator's configuration is never overwritten.
    std::fs::write(&config, "[osc]\nport = 5999\n").unwrap();
    std::fs::write(&env_file, "CHRONUS_NUM_VOICES=2\n").unwrap();
    let again = script("install.sh", &args, &home, 0);
    assert!(again.contains("kept existing"), "{again}");
    assert_eq!(read(&config), "[osc]\nport = 5999\n");
    assert_eq!(read(&env_file), "CHRONUS_NUM_VOICES=2\n");
    assert_check_config(&chronusd, &config, &env_file);

    // Uninstall (the prefix comes from the installed unit): the configuration stays.
    script("uninstall.sh", &["--root", root_s], &home, 0);
    for gone in [&chronusd, &chronusctl, &unit] {
        assert_gone(gone);
    }
    assert_exists(&config);
    assert_exists(&env_file);

    // Purge removes the configuration; running it twice is fine.
    script("uninstall.sh", &["--root", root_s, "--purge"], &home, 0);
    assert_gone(&root.join("etc/chronus"));
    script("uninstall.sh", &["--root", root_s, "--purge"], &home, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn install_and_uninstall_the_user_service_into_a_staging_root() {
    let dir = scratch("install-user");
    let bin = binaries(&dir);
    let root = dir.join("root");
    let root_s = root.to_str().unwrap();
    let bin_s = bin.to_str().unwrap();
    // HOME as it would be on the target; files land under root.
    let home = Path::new("/home/tester");
    let staged_home = root.join("home/tester");

    script(
        "install.sh",
        &["--user", "--root", root_s, "--binaries", bin_s],
        home,
        0,
    );
    let chronusd = staged_home.join(".local/bin/chronusd");
    let chronusctl = staged_home.join(".local/bin/chronusctl");
    let unit = staged_home.join(".config/systemd/user/chronus.service");
    let config = staged_home.join(".config/chronus/chronus.toml");
    let env_file = staged_home.join(".config/chronus/chronus.env");
    assert_executable(&chronusd);
    assert_executable(&chronusctl);
    // The default prefix is ~/.local, which the shipped unit names as %h/.local.
    assert_eq!(read(&unit), user_unit());
    assert_eq!(read(&config), read(&repo().join("config/chronus.toml")));
    assert_exists(&env_file);
    assert_check_config(&chronusd, &config, &env_file);

    script(
        "install.sh",
        &["--user", "--root", root_s, "--binaries", bin_s],
        home,
        0,
    );
    script(
        "uninstall.sh",
        &["--user", "--root", root_s, "--purge"],
        home,
        0,
    );
    for gone in [&chronusd, &chronusctl, &unit] {
        assert_gone(gone);
    }
    assert_gone(&staged_home.join(".config/chronus"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn install_scripts_reject_bad_arguments() {
    let dir = scratch("install-args");
    for name in ["install.sh", "uninstall.sh"] {
        let out = script(name, &["--no-such-option"], &dir, 64);
        assert!(out.contains("unknown argument '--no-such-option'"), "{out}");
        let out = script(name, &["--prefix", "relative/dir"], &dir, 64);
        assert!(out.contains("must be an absolute path"), "{out}");
        let help = script(name, &["--help"], &dir, 0);
        assert!(help.contains("--root DIR"), "{help}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
