//! Runs the real chronusctl binary's subcommands against fake daemons, over UDP and TCP
//! in both framings.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chronus_osc::{
    DONE_ADDR, Framing, KILL_WORKER_ADDR, NOTIFY_ADDR, OscBundle, OscPacket, OscTime, OscType,
    STATUS_JSON_REPLY_ADDR, SYNC_ADDR, SYNCED_ADDR, done, fail, is_immediate, message,
    timetag_to_system_time,
};
use common::{Fake, TRANSPORTS, chronusctl, command, peer_matches, text};

// ---- set -------------------------------------------------------------------

#[test]
fn set_sends_arguments_typed_by_form_and_prints_nothing() {
    for flags in TRANSPORTS {
        let fake = Fake::silent();
        let out = chronusctl(
            fake.port,
            flags,
            &[
                "set",
                "/voice/1/osc",
                "0.5",
                "3",
                "-2",
                "true",
                "sine",
                "5000000000",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{flags:?}");
        let got = fake.wait_for(1);
        assert!(
            peer_matches(&got[0].peer, flags),
            "{flags:?}: {}",
            got[0].peer
        );
        assert_eq!(
            got[0].packet,
            message(
                "/voice/1/osc",
                vec![
                    OscType::Float(0.5),
                    OscType::Int(3),
                    OscType::Int(-2),
                    OscType::Bool(true),
                    OscType::String("sine".into()),
                    OscType::Long(5_000_000_000),
                ]
            ),
            "{flags:?}"
        );
    }
}

#[test]
fn set_types_override_the_form() {
    let fake = Fake::silent();
    let out = chronusctl(
        fake.port,
        &[],
        &["set", "--types", "fsi", "/voice/1/gain", "1", "2", "3"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        fake.wait_for(1)[0].packet,
        message(
            "/voice/1/gain",
            vec![
                OscType::Float(1.0),
                OscType::String("2".into()),
                OscType::Int(3)
            ]
        )
    );
}

#[test]
fn set_usage_errors_exit_64() {
    let fake = Fake::silent();
    let wrong_count = chronusctl(fake.port, &[], &["set", "--types", "ii", "/a", "1"]);
    assert_eq!(wrong_count.status.code(), Some(64));
    assert_eq!(
        text(&wrong_count.stderr),
        "chronusctl: --types \"ii\" has 2 type letters for 1 arguments\n"
    );
    let not_int = chronusctl(fake.port, &[], &["set", "--types", "i", "/a", "x"]);
    assert_eq!(not_int.status.code(), Some(64));
    let no_slash = chronusctl(fake.port, &[], &["set", "voice", "1"]);
    assert_eq!(no_slash.status.code(), Some(64));
    assert_eq!(
        text(&no_slash.stderr),
        "chronusctl: address \"voice\" must start with '/'\n"
    );
    assert!(fake.received().is_empty());
}

#[test]
fn set_refused_exits_65_with_the_reason() {
    for flags in TRANSPORTS {
        let fake = Fake::start(|peer, m, replier| {
            replier
                .send(peer, &fail(&m.addr, "no such parameter"))
                .unwrap();
        });
        let out = chronusctl(fake.port, flags, &["set", "/voice/9/nope", "1"]);
        assert_eq!(out.status.code(), Some(65), "{flags:?}");
        assert_eq!(
            text(&out.stderr),
            format!(
                "chronusctl: 127.0.0.1:{} rejected /voice/9/nope: no such parameter\n",
                fake.port
            ),
            "{flags:?}"
        );
    }
}

#[test]
fn set_with_nothing_listening_exits_69() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for flags in TRANSPORTS {
        let out = chronusctl(port, flags, &["set", "/a", "1"]);
        assert_eq!(
            out.status.code(),
            Some(69),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stderr).ends_with("is chronusd running?\n"));
    }
}

// ---- status over TCP ---------------------------------------------------------

#[test]
fn status_works_over_tcp_in_both_framings() {
    for flags in [&["--tcp"][..], &["--slip"]] {
        let fake = Fake::start(|peer, _, replier| {
            let reply = message(
                STATUS_JSON_REPLY_ADDR,
                vec![OscType::String(r#"{"state":"running"}"#.into())],
            );
            replier.send(peer, &reply).unwrap();
        });
        let out = chronusctl(fake.port, flags, &["status", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "{\"state\":\"running\"}\n");
    }
}

// ---- watch -------------------------------------------------------------------

/// Acknowledges /chronus/notify and, on a subscription, pushes two events a little later.
fn notifying_fake() -> Fake {
    Fake::start(|peer, m, replier| {
        if m.addr != NOTIFY_ADDR {
            return;
        }
        replier.send(peer, &done(NOTIFY_ADDR, vec![])).unwrap();
        if m.args == vec![OscType::Int(1)] {
            let (peer, replier) = (*peer, replier.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                let events = [
                    message(
                        "/chronus/worker",
                        vec![
                            OscType::Int(1),
                            OscType::Int(4242),
                            OscType::String("lockstep".into()),
                        ],
                    ),
                    OscPacket::Bundle(OscBundle {
                        timetag: chronus_osc::IMMEDIATELY,
                        content: vec![message("/chronus/late", vec![OscType::Float(0.25)])],
                    }),
                ];
                for event in events {
                    replier.send(&peer, &event).unwrap();
                }
            });
        }
    })
}

fn interrupt(child: &std::process::Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid this test spawned and has not yet waited for.
    let rc = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(rc, 0);
}

#[test]
fn watch_subscribes_prints_events_and_unsubscribes_on_ctrl_c() {
    for flags in TRANSPORTS {
        let fake = notifying_fake();
        let mut child = command(fake.port, flags, &["watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        let lines: Vec<String> = (0..2)
            .map(|_| {
                rx.recv_timeout(Duration::from_secs(5))
                    .expect("an event line")
            })
            .collect();
        // `<UTC time with ms> <name> <event>`: the time is whatever it was.
        let events: Vec<&str> = lines
            .iter()
            .map(|l| {
                let (time, rest) = l.split_once(' ').expect("a timestamp");
                assert!(
                    time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
                    "{l:?}"
                );
                rest
            })
            .collect();
        assert_eq!(
            events,
            vec![
                "worker state  /chronus/worker 1 4242 lockstep",
                "late bundle   /chronus/late 0.25"
            ],
            "{flags:?}"
        );
        interrupt(&child);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        let sent: Vec<_> = fake
            .messages()
            .into_iter()
            .filter(|m| m.addr == NOTIFY_ADDR)
            .map(|m| m.args)
            .collect();
        assert_eq!(
            sent,
            vec![vec![OscType::Int(1)], vec![OscType::Int(0)]],
            "{flags:?}"
        );
        let peers: Vec<_> = fake.received().iter().map(|r| r.peer).collect();
        assert!(peers.iter().all(|p| peer_matches(p, flags)), "{flags:?}");
    }
}

#[test]
fn watch_without_an_acknowledgement_exits_69() {
    let fake = Fake::silent();
    let out = chronusctl(fake.port, &[], &["--timeout-ms", "300", "watch"]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
}

#[test]
fn watch_refused_exits_65() {
    let fake = Fake::start(|peer, m, replier| {
        replier
            .send(peer, &fail(&m.addr, "too many subscribers"))
            .unwrap();
    });
    let out = chronusctl(fake.port, &["--slip"], &["watch"]);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out.stderr));
    assert!(text(&out.stderr).ends_with("rejected /chronus/notify: too many subscribers\n"));
}

#[test]
fn watch_renews_its_subscription_on_the_same_socket_or_connection() {
    for flags in [&[][..], &["--slip"]] {
        let fake = notifying_fake();
        let mut child = command(fake.port, flags, &["watch", "--renew-s", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let subscribes = || -> Vec<common::Received> {
            fake.received()
                .into_iter()
                .filter(|r| r.packet == message(NOTIFY_ADDR, vec![OscType::Int(1)]))
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while subscribes().len() < 3 {
            assert!(
                Instant::now() < deadline,
                "{flags:?}: {} subscriptions within 10 s",
                subscribes().len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        interrupt(&child);
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(0), "{flags:?}: {stderr}");
        let got = subscribes();
        assert!(
            got.iter().all(|r| r.peer == got[0].peer),
            "{flags:?}: renewed from another socket"
        );
        for pair in got.windows(2) {
            // A lower bound only: a loaded machine can make a renewal later, never earlier.
            assert!(
                pair[1].at - pair[0].at >= Duration::from_millis(900),
                "{flags:?}: renewed after {:?}",
                pair[1].at - pair[0].at
            );
        }
    }
}

#[test]
fn watch_exits_65_with_the_reason_when_a_renewal_is_refused() {
    let subscribed = std::sync::atomic::AtomicBool::new(false);
    let fake = Fake::start(move |peer, m, replier| {
        if m.args != vec![OscType::Int(1)] {
            return;
        }
        let reply = if subscribed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            fail(&m.addr, "too many subscriptions from 127.0.0.1")
        } else {
            done(NOTIFY_ADDR, vec![])
        };
        replier.send(peer, &reply).unwrap();
    });
    let out = chronusctl(fake.port, &[], &["watch", "--renew-s", "1"]);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .ends_with("rejected /chronus/notify: too many subscriptions from 127.0.0.1\n"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn watch_renewals_must_come_within_the_lease() {
    let fake = Fake::silent();
    for renew in ["0", "60"] {
        let out = chronusctl(fake.port, &[], &["watch", "--renew-s", renew]);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{renew}: {}",
            text(&out.stderr)
        );
    }
}

// ---- sync --------------------------------------------------------------------

#[test]
fn sync_waits_for_synced_with_its_own_id() {
    for flags in TRANSPORTS {
        let fake = Fake::start(|peer, m, replier| {
            if m.addr == SYNC_ADDR {
                // Someone else's first, then ours.
                replier
                    .send(peer, &message(SYNCED_ADDR, vec![OscType::Int(-1)]))
                    .unwrap();
                replier
                    .send(peer, &message(SYNCED_ADDR, m.args.clone()))
                    .unwrap();
            }
        });
        let out = chronusctl(fake.port, flags, &["sync"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        let sent = fake.messages();
        assert_eq!(sent[0].addr, SYNC_ADDR);
        assert!(matches!(sent[0].args[..], [OscType::Int(id)] if id >= 0));
    }
}

#[test]
fn sync_timeout_exits_69() {
    let fake = Fake::start(|peer, m, replier| {
        if m.addr == SYNC_ADDR {
            replier
                .send(peer, &message(SYNCED_ADDR, vec![OscType::Int(-1)]))
                .unwrap();
        }
    });
    let out = chronusctl(fake.port, &["--tcp"], &["--timeout-ms", "300", "sync"]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("chronusctl: no /chronus/synced "));
    assert!(text(&out.stderr).ends_with("within 300 ms: is chronusd running?\n"));
}

// ---- kill-worker -------------------------------------------------------------

#[test]
fn kill_worker_prints_the_killed_pid() {
    for flags in TRANSPORTS {
        let fake = Fake::start(|peer, m, replier| {
            if m.addr == KILL_WORKER_ADDR {
                replier
                    .send(peer, &done(KILL_WORKER_ADDR, vec![OscType::Int(31337)]))
                    .unwrap();
            }
        });
        let out = chronusctl(fake.port, flags, &["kill-worker", "standby"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "31337\n");
        assert_eq!(
            fake.messages()[0],
            chronus_osc::OscMessage {
                addr: KILL_WORKER_ADDR.into(),
                args: vec![OscType::String("standby".into())]
            }
        );
    }
}

#[test]
fn kill_worker_refused_or_malformed() {
    let refused = Fake::start(|peer, m, replier| {
        replier
            .send(peer, &fail(&m.addr, "no standby worker"))
            .unwrap();
    });
    let out = chronusctl(refused.port, &[], &["kill-worker", "standby"]);
    assert_eq!(out.status.code(), Some(65));

    let malformed = Fake::start(|peer, _, replier| {
        replier
            .send(
                peer,
                &message(DONE_ADDR, vec![OscType::String(KILL_WORKER_ADDR.into())]),
            )
            .unwrap();
    });
    let out = chronusctl(malformed.port, &[], &["kill-worker", "active"]);
    assert_eq!(out.status.code(), Some(76), "{}", text(&out.stderr));

    let bad_choice = chronusctl(refused.port, &[], &["kill-worker", "both"]);
    assert_eq!(bad_choice.status.code(), Some(64));
}

// ---- send --------------------------------------------------------------------

/// A score of three bundles 200 ms apart (plus the journal header, which is not sent).
fn write_score(name: &str) -> std::path::PathBuf {
    let bundle = |seconds: u32, fractional: u32, content: Vec<OscPacket>| {
        Framing::LengthPrefix.encode(&OscPacket::Bundle(OscBundle {
            timetag: OscTime::from((seconds, fractional)),
            content,
        }))
    };
    let fifth = (1u64 << 32) / 5;
    let mut bytes = bundle(
        0,
        0,
        vec![
            message("/chronus/journal", vec![OscType::Int(48000)]),
            message("/voice/1/gain", vec![OscType::Float(0.1)]),
        ],
    );
    bytes.extend(bundle(
        0,
        fifth as u32,
        vec![message("/voice/1/gain", vec![OscType::Float(0.2)])],
    ));
    bytes.extend(bundle(
        0,
        (2 * fifth) as u32,
        vec![message("/voice/1/gain", vec![OscType::Float(0.3)])],
    ));
    let path = std::env::temp_dir().join(format!("chronusctl-{}-{name}.osc", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gains(received: &[common::Received]) -> Vec<OscPacket> {
    received
        .iter()
        .map(|r| match &r.packet {
            OscPacket::Bundle(b) => b.content[0].clone(),
            other => panic!("expected a bundle, got {other:?}"),
        })
        .collect()
}

#[test]
fn send_plays_a_score_in_real_time() {
    for flags in TRANSPORTS {
        let score = write_score(&format!("realtime{}", flags.len() + flags.concat().len()));
        let fake = Fake::silent();
        let started = Instant::now();
        let out = chronusctl(fake.port, flags, &["send", score.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        let got = fake.wait_for(3);
        std::fs::remove_file(&score).ok();
        assert_eq!(got.len(), 3, "{flags:?}");
        let expected: Vec<OscPacket> = [0.1, 0.2, 0.3]
            .into_iter()
            .map(|g| message("/voice/1/gain", vec![OscType::Float(g)]))
            .collect();
        assert_eq!(gains(&got), expected, "{flags:?}");
        for r in &got {
            let OscPacket::Bundle(b) = &r.packet else {
                unreachable!()
            };
            assert!(is_immediate(b.timetag), "{flags:?}");
        }
        let gaps: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
        for gap in gaps {
            assert!(
                gap >= Duration::from_millis(150) && gap < Duration::from_millis(400),
                "{flags:?}: {gap:?}"
            );
        }
        assert!(got[0].at - started < Duration::from_secs(2));
    }
}

#[test]
fn send_bundles_stamps_future_timetags_relative_to_now() {
    let score = write_score("bundles");
    let fake = Fake::silent();
    let before = std::time::SystemTime::now();
    let out = chronusctl(
        fake.port,
        &["--slip"],
        &[
            "send",
            "--bundles",
            "--delay-ms",
            "1000",
            score.to_str().unwrap(),
        ],
    );
    let after = std::time::SystemTime::now();
    std::fs::remove_file(&score).ok();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = fake.wait_for(3);
    assert_eq!(got.len(), 3);
    // All sent at once, well before the first is due.
    assert!(got[2].at - got[0].at < Duration::from_millis(150));
    let times: Vec<std::time::SystemTime> = got
        .iter()
        .map(|r| match &r.packet {
            OscPacket::Bundle(b) => timetag_to_system_time(b.timetag).unwrap(),
            other => panic!("expected a bundle, got {other:?}"),
        })
        .collect();
    assert!(times[0] >= before + Duration::from_millis(1000));
    assert!(times[0] <= after + Duration::from_millis(1000));
    let gap = |a: std::time::SystemTime, b: std::time::SystemTime| b.duration_since(a).unwrap();
    for w in times.windows(2) {
        let d = gap(w[0], w[1]);
        assert!(
            d.abs_diff(Duration::from_millis(200)) < Duration::from_micros(1),
            "{d:?}"
        );
    }
}

#[test]
fn send_reports_refusals_and_exits_65() {
    let score = write_score("refused");
    let fake = Fake::start(|peer, m, replier| {
        if m.args == vec![OscType::Float(0.2)] {
            replier.send(peer, &fail(&m.addr, "queue full")).unwrap();
        }
    });
    let out = chronusctl(fake.port, &[], &["send", score.to_str().unwrap()]);
    std::fs::remove_file(&score).ok();
    assert_eq!(out.status.code(), Some(65), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "chronusctl: chronusd refused /voice/1/gain: queue full\n\
         chronusctl: chronusd refused 1 message(s) of the score\n"
    );
    assert_eq!(
        fake.wait_for(3).len(),
        3,
        "the rest of the score is still sent"
    );
}

#[test]
fn send_missing_or_malformed_scores() {
    let fake = Fake::silent();
    let missing = chronusctl(fake.port, &[], &["send", "/nonexistent/score.osc"]);
    assert_eq!(missing.status.code(), Some(66));
    assert!(
        text(&missing.stderr).starts_with("chronusctl: cannot read score /nonexistent/score.osc: ")
    );

    let path = std::env::temp_dir().join(format!("chronusctl-{}-bad.osc", std::process::id()));
    std::fs::write(&path, [0, 0, 0, 8, 1, 2]).unwrap();
    let bad = chronusctl(fake.port, &[], &["send", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    assert_eq!(bad.status.code(), Some(65));
    assert_eq!(
        text(&bad.stderr),
        format!(
            "chronusctl: score {} is malformed: size 8 at byte 0 does not fit the 2 bytes left\n",
            path.display()
        )
    );
    assert!(fake.received().is_empty());
}
