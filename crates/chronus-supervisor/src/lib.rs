//! The Chronus supervisor: owns the shared region, the audio output and the
//! control surface, runs worker processes in lockstep, and keeps the output
//! playing through any worker's death.
//!
//! [`run`] is the daemon. Its owners: the worker [`pool`] (slots, spawn, reap,
//! restore; a state machine emitting `PoolEvent`s), the [`publisher`] (the only
//! writer of the command log), the [`router`] (one file per request family), the
//! [`clients`] (replies and subscribers), and the storage and journal threads. One
//! loop (`daemon.rs`) waits on one closed `Event` enum (`event.rs`) and never blocks.

mod capture;
mod clients;
mod control;
mod daemon;
mod engine;
mod event;
mod files;
mod journal;
mod ledger;
mod limits;
mod metrics;
mod notify;
mod patterns;
mod pool;
mod process;
mod publisher;
mod router;
pub mod score;
mod speech;
mod status;
mod storage;
mod timing;
mod viz;

use chronus_audio::{Recorded, TakeEvent};
use chronus_config::Config;
use chronus_osc::{Replier, TcpEndpoint, UdpEndpoint};
use chronus_shm::{Geometry, Region};
use daemon::{Daemon, Parts};
use event::Sources;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Shm(#[from] chronus_shm::ShmError),
    #[error(transparent)]
    Audio(#[from] chronus_audio::AudioError),
    #[error("cannot bind OSC on {addr} (osc.host, osc.port / CHRONUS_OSC_PORT): {source}{holder}")]
    OscBind {
        addr: SocketAddr,
        source: std::io::Error,
        /// Who holds the port, when that could be told.
        holder: String,
    },
    #[error("cannot serve metrics on {addr} (metrics.listen, CHRONUS_METRICS_LISTEN): {source}")]
    MetricsBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start worker processes: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("cannot start a thread of the daemon: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("no worker reached lockstep within {0:?} of startup")]
    StartupTimeout(Duration),
}

impl SupervisorError {
    /// The configuration names something that does not exist, or a rate the sound
    /// server does not run at (exit 78, EX_CONFIG).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            SupervisorError::Audio(
                chronus_audio::AudioError::DeviceNotFound { .. }
                    | chronus_audio::AudioError::ServerRate { .. }
            )
        )
    }
}

/// How the daemon is started, beyond its configuration.
pub struct RunOptions {
    /// The binary to re-execute as `worker` (normally the running executable).
    pub worker_exe: PathBuf,
    /// Reads the configuration again (SIGHUP); the error says what is wrong with it.
    pub reload_config: ReloadConfig,
    /// Replaces the log filter; the error says why the filter is not accepted.
    pub set_log_filter: SetLogFilter,
}

pub type ReloadConfig = Box<dyn FnMut() -> Result<Config, String>>;
pub type SetLogFilter = Box<dyn Fn(&str) -> Result<(), String>>;

/// How often the loop does its periodic work while something is under way.
const TICK: Duration = Duration::from_millis(2);
/// And otherwise, at most: hang detection (a tenth of the hang timeout, see
/// [`idle_tick`]), viz at 10 Hz, the watchdog and device checks need no more.
const IDLE_TICK: Duration = Duration::from_millis(25);

/// The idle tick for a hang timeout: a hang is noticed within a tenth of the timeout
/// after it, and no tick comes more often than [`TICK`] or less than [`IDLE_TICK`].
fn idle_tick(hang_timeout: Duration) -> Duration {
    (hang_timeout / 10).clamp(TICK, IDLE_TICK)
}
/// OSC packets waiting for the loop, from every sender together (each sender's rate
/// is limited before its packets take a place here).
const OSC_QUEUE: usize = 4096;

/// Runs the daemon until SIGTERM, SIGINT or `/chronus/quit`.
pub fn run(config: Config, options: RunOptions) -> Result<(), SupervisorError> {
    process::become_subreaper().map_err(SupervisorError::Spawn)?;
    match chronus_shm::realtime::lock_memory() {
        Ok(()) => tracing::debug!("memory locked"),
        Err(e) => {
            tracing::warn!(error = %e, "memory not locked; page faults may delay the audio thread")
        }
    }
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    event::spawn_signal_thread(events_tx.clone())?;

    let timing = resolve_timing(&config);
    if timing.raised_lookahead(&config.audio) {
        tracing::warn!(
            lookahead_frames = timing.lookahead_frames,
            "audio.lookahead_blocks is too short for a {}-frame device buffer; raised",
            timing.buffer_frames
        );
    }
    let (region, region_fd) = Region::create(geometry(&config, &timing), std::process::id())?;
    let region = Arc::new(region);

    let osc_addr = SocketAddr::new(config.osc.host, config.osc.port);
    let bind_err = |source: std::io::Error| SupervisorError::OscBind {
        addr: osc_addr,
        holder: if source.kind() == std::io::ErrorKind::AddrInUse {
            port_holder(osc_addr)
        } else {
            String::new()
        },
        source,
    };
    let osc = UdpEndpoint::bind(osc_addr, 4 << 20).map_err(bind_err)?;
    let tcp = TcpEndpoint::bind(osc_addr).map_err(bind_err)?;
    if let Some(addr) = config.metrics.address() {
        let served = metrics::start(addr, events_tx.clone())
            .map_err(|source| SupervisorError::MetricsBind { addr, source })?;
        tracing::info!(url = %format!("http://{}/metrics", served.local), "serving metrics");
    }
    let (osc_tx, osc_rx) = crossbeam_channel::bounded(OSC_QUEUE);
    let limits = chronus_osc::Limits::default();
    // Senders are filtered on the receiving threads, before their packets are decoded or
    // take a place in the channel every sender shares.
    let gate = Arc::new(limits::SenderGate::new(
        config.osc.allow.clone(),
        config.osc.rate_limit,
    ));
    let admit = |gate: &Arc<limits::SenderGate>| -> chronus_osc::Gate {
        let gate = Arc::clone(gate);
        Arc::new(move |peer| gate.admit(peer))
    };
    osc.spawn_gated_receiver(limits, admit(&gate), osc_tx.clone())
        .map_err(bind_err)?;
    tcp.spawn_gated_acceptor(limits, admit(&gate), osc_tx)
        .map_err(bind_err)?;
    let replier = Replier::new().with_udp(&osc).with_tcp(&tcp);
    if !config.osc.host.is_loopback() && config.osc.allow.is_empty() {
        tracing::warn!(
            host = %config.osc.host,
            "OSC is reachable beyond this machine and osc.allow (CHRONUS_OSC_ALLOW) is empty: any sender can control the daemon"
        );
    }

    let audio = &config.audio;
    let mut params = chronus_dsp::Params::new(config.engine.num_voices);
    params.limiter = chronus_dsp::LimiterParams {
        on: audio.limiter,
        ceiling_db: audio.limiter_ceiling_db,
    };
    let journal = match &config.journal {
        Some(path) => Some(
            journal::Journal::create(
                path,
                audio.sample_rate,
                config.engine.num_voices,
                params.limiter,
                events_tx.clone(),
            )
            .map_err(|source| SupervisorError::Journal {
                path: path.to_path_buf(),
                source,
            })?,
        ),
        None => None,
    };
    let ledger = ledger::Ledger::new(params, journal);
    let publisher = publisher::Publisher::new(
        Arc::clone(&region),
        ledger,
        audio.sample_rate,
        timing.block_frames,
    );
    let storage = storage::Storage::start(events_tx.clone()).map_err(SupervisorError::Thread)?;
    let mut desk = speech::Desk::start(&config.speech, audio.sample_rate);
    let (spawns, speech_events) = desk.take_receivers().unzip();
    let mut input = capture::Input::start(events_tx.clone(), host_choice(&config))
        .map_err(SupervisorError::Thread)?;
    let listeners = desk.listeners();
    if listeners.wake.is_some() {
        input.hold(config.speech.asr.input_device.as_deref(), &listeners);
    }
    let mut sources = Sources::new(events_rx, osc_rx, spawns, speech_events, TICK);
    let mut d = Daemon::new(Parts {
        config,
        buffer_frames: timing.buffer_frames,
        options,
        region: Arc::clone(&region),
        region_fd,
        events: events_tx,
        publisher,
        clients: clients::Clients::new(replier),
        storage,
        desk,
        input,
        osc,
        tcp,
        gate,
    });
    d.cold_start()?;

    chronus_audio::route_library_errors();
    let output = match chronus_audio::open(&output_options(&d.config, d.buffer_frames), region) {
        Ok(output) => output,
        Err(e) => {
            // The workers already run: reap them, as on every other exit.
            d.stop_workers();
            return Err(e.into());
        }
    };
    if let Some(reason) = &output.fallback_reason {
        tracing::warn!(
            "no audio device could be opened ({reason}); playing into the timer-clocked null output instead: nothing will be audible"
        );
    }
    d.backend = output.backend_name();
    tracing::info!(backend = d.backend, host = output.host_name(), device = output.device_name(), osc = %d.osc.local_addr(), "chronusd started");
    d.output = Some(output);

    let result = d.run(&mut sources);
    shutdown(&mut d);
    result
}

/// Whether another chronusd answers on `addr` (asked once, briefly, at startup).
fn port_holder(addr: SocketAddr) -> String {
    let ask = chronus_osc::message("/chronus/version", vec![]);
    let target = match addr.ip() {
        ip if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    match chronus_osc::request(target, &ask, chronus_osc::VERSION_REPLY_ADDR, Duration::from_millis(200)) {
        Ok(reply) => {
            let version = match reply.args.first() {
                Some(chronus_osc::OscType::String(v)) => v.clone(),
                _ => "unknown".into(),
            };
            format!("; another chronusd (version {version}) is running there: stop it, or choose another osc.port")
        }
        Err(_) => "; another program holds it (not a chronusd that answers /chronus/version): choose another osc.port".into(),
    }
}

/// The device buffer, block and lookahead for this run. JACK decides the period;
/// otherwise an unset buffer size is the sound system's default. The rings and the
/// lookahead are sized before the device opens.
fn resolve_timing(config: &Config) -> timing::Timing {
    let host = match config.audio.backend {
        chronus_config::Backend::Null => chronus_audio::HostBuffer {
            frames: 256,
            why: "the null clock",
            fixed: false,
        },
        _ => chronus_audio::host_buffer(host_choice(config), config.audio.device.as_deref()),
    };
    let why = host.why;
    let timing = timing::Timing::resolve(&config.audio, host.frames, host.fixed);
    match config.audio.buffer_size {
        Some(asked) if asked != timing.buffer_frames => {
            tracing::info!(
                period = timing.buffer_frames,
                "the JACK server's period replaces audio.buffer_size"
            )
        }
        Some(_) => {}
        None => tracing::info!(
            buffer_frames = timing.buffer_frames,
            "audio.buffer_size = auto: {} frames for {why}",
            timing.buffer_frames
        ),
    }
    timing
}

/// The shared region's geometry for `config` and `timing`.
fn geometry(config: &Config, timing: &timing::Timing) -> Geometry {
    Geometry {
        sample_rate: config.audio.sample_rate,
        block_frames: timing.block_frames,
        ring_blocks: timing.ring_blocks(),
        lookahead_frames: timing.lookahead_frames,
        speech_samples: u64::from(config.audio.sample_rate) * speech::AREA_SECONDS,
    }
}

fn host_choice(config: &Config) -> chronus_audio::HostChoice {
    match config.audio.host {
        chronus_config::AudioHost::Auto => chronus_audio::HostChoice::Auto,
        chronus_config::AudioHost::Alsa => chronus_audio::HostChoice::Alsa,
        chronus_config::AudioHost::Jack => chronus_audio::HostChoice::Jack,
        chronus_config::AudioHost::PipeWire => chronus_audio::HostChoice::PipeWire,
        chronus_config::AudioHost::PulseAudio => chronus_audio::HostChoice::PulseAudio,
    }
}

fn output_options(config: &Config, buffer_frames: u32) -> chronus_audio::OutputOptions {
    let audio = &config.audio;
    chronus_audio::OutputOptions {
        backend: match audio.backend {
            chronus_config::Backend::Auto => chronus_audio::BackendChoice::Auto,
            chronus_config::Backend::Cpal => chronus_audio::BackendChoice::Cpal,
            chronus_config::Backend::Null => chronus_audio::BackendChoice::Null,
        },
        host: host_choice(config),
        jack_client_name: audio.jack_client_name.clone(),
        device: audio.device.clone(),
        sample_rate: audio.sample_rate,
        buffer_frames,
        record: config.record.clone(),
    }
}

/// Stops everything the daemon started: the control surface, the speech engines
/// (close stdin, grace, TERM, KILL) while the workers stop, the recordings, the journal.
fn shutdown(d: &mut Daemon) {
    d.osc.shutdown();
    d.tcp.shutdown();
    d.input.shutdown();
    let engines = d.desk.take_engines();
    let speech_stopped = std::thread::Builder::new()
        .name("speech-stop".into())
        .spawn(move || engines.shutdown());
    let (recording, take) = match d.output.take() {
        Some(output) => output.finish(),
        None => (Ok(None), None),
    };
    match recording {
        Ok(Some(Recorded { frames, dropped: 0 })) => {
            tracing::info!(frames, "recording finalized")
        }
        Ok(Some(Recorded { frames, dropped })) => tracing::warn!(
            frames,
            dropped,
            "recording finalized with frames missing: the disk fell behind the audio"
        ),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "recording could not be finalized"),
    }
    match take {
        Some(TakeEvent::Stopped { path, frames, .. }) => {
            tracing::info!(path = %path.display(), frames, "take finalized on shutdown")
        }
        Some(TakeEvent::Failed { reason } | TakeEvent::Aborted { reason, .. }) => {
            tracing::error!("take could not be finalized on shutdown: {reason}")
        }
        Some(TakeEvent::Started { .. }) | None => {}
    }
    d.stop_workers();
    match speech_stopped {
        Ok(handle) => {
            let _ = handle.join();
        }
        Err(e) => tracing::error!(error = %e, "cannot stop the speech engines on a thread"),
    }
    d.publisher.finish();
}

#[cfg(test)]
mod tick_tests {
    use super::*;

    #[test]
    fn an_idle_tick_notices_a_hang_within_a_tenth_of_its_timeout() {
        let ms = Duration::from_millis;
        assert_eq!(idle_tick(ms(250)), ms(25));
        assert_eq!(idle_tick(ms(100)), ms(10));
        assert_eq!(idle_tick(ms(10)), TICK);
        assert_eq!(idle_tick(ms(60_000)), IDLE_TICK);
    }
}
