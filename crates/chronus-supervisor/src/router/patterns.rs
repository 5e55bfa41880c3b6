//! `/pattern/save n`, `/pattern/load n [immediate]` and `/pattern/list`. The files are
//! read and written on the storage thread; a load is published when its file has been
//! read and validated whole.

use crate::clients::ClientKey;
use crate::daemon::Daemon;
use crate::patterns::{LIST_ADDR, LOAD_ADDR, Request, SAVE_ADDR, load_commands};
use crate::publisher::Group;
use crate::storage::{Job, Outcome};
use chronus_dsp::Params;
use chronus_osc::{OscType, Peer};

pub fn handle(d: &mut Daemon, from: Peer, request: Request) {
    let dir = d.config.engine.patterns_dir();
    let (addr, job) = match request {
        Request::Save(slot) => (
            SAVE_ADDR,
            Job::SavePattern {
                dir,
                slot,
                params: Box::new(d.publisher.latest_params()),
            },
        ),
        Request::Load { slot, immediate } => (
            LOAD_ADDR,
            Job::LoadPattern {
                dir,
                slot,
                num_voices: d.config.engine.num_voices,
                immediate,
            },
        ),
        Request::List => (LIST_ADDR, Job::ListPatterns { dir }),
    };
    if let Err(reason) = d.storage.submit(from, job) {
        d.clients.fail(&from, addr, &reason);
    }
}

/// A pattern job came back from the storage thread.
pub fn stored(d: &mut Daemon, from: Peer, outcome: Outcome) {
    let reply = match outcome {
        Outcome::PatternSaved { slot, result } => match result {
            Ok(()) => {
                tracing::info!(slot, "pattern saved");
                chronus_osc::done(SAVE_ADDR, vec![OscType::Int(slot as i32)])
            }
            Err(reason) => return d.clients.fail(&from, SAVE_ADDR, &reason),
        },
        Outcome::PatternLoaded {
            slot,
            immediate,
            result,
        } => match result.and_then(|params| publish(d, from, &params, immediate)) {
            Ok(frame) => {
                tracing::info!(slot, frame, "pattern loaded");
                chronus_osc::done(
                    LOAD_ADDR,
                    vec![OscType::Int(slot as i32), chronus_osc::count(frame)],
                )
            }
            Err(reason) => return d.clients.fail(&from, LOAD_ADDR, &reason),
        },
        Outcome::PatternsListed(result) => match result {
            Ok(slots) => chronus_osc::done(
                LIST_ADDR,
                slots.into_iter().map(|s| OscType::Int(s as i32)).collect(),
            ),
            Err(reason) => return d.clients.fail(&from, LIST_ADDR, &reason),
        },
        Outcome::WavRead { .. } => return,
    };
    d.clients.reply(&from, reply);
}

/// Publishes a loaded slot as one group; returns the frame it takes effect at
/// (for `immediate`, the earliest frame it can be stamped at: it applies there,
/// or a device callback later if the device moves on meanwhile).
fn publish(d: &mut Daemon, from: Peer, params: &Params, immediate: bool) -> Result<u64, String> {
    let earliest = d.region.stamp_base();
    let seq = d.publisher.latest_params().seq;
    let (min_frame, frame) = if immediate || !seq.running {
        (0, earliest)
    } else {
        let bar = seq.next_bar_frame(d.earliest_exact_frame(), d.config.audio.sample_rate);
        (bar, bar)
    };
    let commands = load_commands(params)
        .into_iter()
        .map(|c| (c, None))
        .collect();
    d.submit(Group {
        min_frame,
        commands,
        client: ClientKey::of_peer(&from),
    })
    .map_err(|refusal| refusal.reason())?;
    Ok(frame)
}
