//! The control dialect's reply helpers.

use chronus_osc::{
    OscMessage, OscPacket, OscType, StatusReplyError, fail, status_pairs, status_reply,
};

fn as_message(packet: OscPacket) -> OscMessage {
    match packet {
        OscPacket::Message(message) => message,
        OscPacket::Bundle(bundle) => panic!("expected a message, got {bundle:?}"),
    }
}

#[test]
fn fail_carries_the_address_and_reason() {
    let reply = as_message(fail("/chronus/set", "unknown parameter"));
    assert_eq!(reply.addr, "/chronus/fail");
    assert_eq!(
        reply.args,
        vec![
            OscType::String("/chronus/set".into()),
            OscType::String("unknown parameter".into())
        ]
    );
}

#[test]
fn status_reply_alternates_keys_and_values_and_status_pairs_inverts_it() {
    let reply = as_message(status_reply(vec![
        ("state", OscType::String("running".into())),
        ("workers", OscType::Int(2)),
    ]));
    assert_eq!(reply.addr, "/chronus/status.reply");
    assert_eq!(reply.args.len(), 4);
    assert_eq!(
        status_pairs(&reply),
        Ok(vec![
            ("state".into(), OscType::String("running".into())),
            ("workers".into(), OscType::Int(2)),
        ])
    );
}

#[test]
fn status_pairs_rejects_odd_counts_and_non_string_keys() {
    let odd = OscMessage {
        addr: "/chronus/status.reply".into(),
        args: vec![OscType::String("lonely".into())],
    };
    assert_eq!(
        status_pairs(&odd),
        Err(StatusReplyError::OddCount { count: 1 })
    );
    let bad_key = OscMessage {
        addr: "/chronus/status.reply".into(),
        args: vec![
            OscType::String("a".into()),
            OscType::Int(1),
            OscType::Int(2),
            OscType::Int(3),
        ],
    };
    let err = status_pairs(&bad_key).unwrap_err();
    assert_eq!(
        err,
        StatusReplyError::KeyNotString {
            index: 2,
            found: OscType::Int(2)
        }
    );
    assert_eq!(
        err.to_string(),
        "status reply argument 2 should be a string key but is (i) 2"
    );
}
