//! `chronusd run` and `chronusd check-config`: configuration in, daemon out.

use crate::cli::Global;
use chronus_config::{Loaded, Sources};
use std::process::ExitCode;

/// sysexits EX_CONFIG: the configuration is invalid.
const EX_CONFIG: u8 = 78;

fn sources(global: &Global) -> Result<Sources, ExitCode> {
    let mut sources = Sources::from_process(global.config.clone());
    for o in &global.overrides {
        let Some((key, value)) = o.split_once('=') else {
            eprintln!(
                "chronusd: --set {o} is invalid: expected KEY=VALUE, e.g. --set audio.backend=null"
            );
            return Err(ExitCode::from(EX_CONFIG));
        };
        sources
            .overrides
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(sources)
}

fn load(global: &Global) -> Result<Loaded, ExitCode> {
    chronus_config::load(&sources(global)?).map_err(|e| {
        eprintln!("chronusd: {e}");
        ExitCode::from(EX_CONFIG)
    })
}

pub fn check_config(global: &Global) -> ExitCode {
    match load(global) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("chronusd: warning: {w}");
            }
            print!("{}", loaded.to_annotated_toml());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// The daemon allocates speech buffers of every size for as long as it runs. glibc
/// raises its mmap threshold after each large free, so later buffers come from the heap
/// and fragment it: the RSS crept up by about 2.6 MiB per 10,000 speech requests
/// (BENCHMARKS.md). A fixed threshold keeps large buffers mapped (returned to the system
/// when freed) and two arenas bound the per-thread heaps; nothing on the audio path
/// allocates, so neither costs anything there.
fn steady_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

pub fn run(global: &Global) -> ExitCode {
    steady_allocator();
    // Kept as given at startup: a reload re-reads the file against the same environment.
    let sources = match sources(global) {
        Ok(sources) => sources,
        Err(code) => return code,
    };
    let loaded = match chronus_config::load(&sources) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("chronusd: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let config = loaded.config;
    let filter = config.log.directive();
    // SAFETY: still single-threaded: no thread has been spawned yet, so nothing
    // can read the environment concurrently.
    unsafe {
        // Workers inherit the log filter; the audio backend reads PULSE_SERVER.
        std::env::set_var("CHRONUS_LOG", &filter);
        if let Some(server) = &config.audio.pulse_server {
            std::env::set_var("PULSE_SERVER", server);
        }
    }
    // Every thread of this process is the supervisor.
    let label = format!("supervisor{{pid={}}}", std::process::id());
    let set_log_filter = crate::logging::init(&filter, label);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let worker_exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            tracing::error!(error = %e, "cannot locate the chronusd executable to start workers");
            return ExitCode::FAILURE;
        }
    };
    let reload_config = Box::new(move || {
        let loaded = chronus_config::load(&sources).map_err(|e| e.to_string())?;
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        Ok(loaded.config)
    });
    let options = chronus_supervisor::RunOptions {
        worker_exe,
        reload_config,
        set_log_filter,
    };
    match chronus_supervisor::run(config, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_configuration() => {
            tracing::error!("{e}");
            ExitCode::from(EX_CONFIG)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
