//! Property tests: the decoder never panics, and it inverts the encoder.

use chronus_osc::{
    Limits, OscArray, OscBundle, OscColor, OscMessage, OscMidiMessage, OscPacket, OscTime, OscType,
    decode, encode,
};
use proptest::prelude::*;

/// Every argument type the encoder writes. NaN is left out only because NaN != NaN.
fn scalar() -> impl Strategy<Value = OscType> {
    prop_oneof![
        any::<i32>().prop_map(OscType::Int),
        any::<f32>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(OscType::Float),
        any::<i64>().prop_map(OscType::Long),
        any::<f64>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(OscType::Double),
        "[^\0]{0,12}".prop_map(OscType::String),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(OscType::Blob),
        any::<(u32, u32)>().prop_map(|t| OscType::Time(OscTime::from(t))),
        any::<char>().prop_map(OscType::Char),
        any::<[u8; 4]>().prop_map(|[red, green, blue, alpha]| OscType::Color(OscColor {
            red,
            green,
            blue,
            alpha
        })),
        any::<[u8; 4]>().prop_map(
            |[port, status, data1, data2]| OscType::Midi(OscMidiMessage {
                port,
                status,
                data1,
                data2
            })
        ),
        any::<bool>().prop_map(OscType::Bool),
        Just(OscType::Nil),
        Just(OscType::Inf),
    ]
}

fn arg() -> impl Strategy<Value = OscType> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(|content| OscType::Array(OscArray { content }))
    })
}

fn message() -> impl Strategy<Value = OscPacket> {
    ("/[^\0]{0,16}", prop::collection::vec(arg(), 0..6))
        .prop_map(|(addr, args)| OscPacket::Message(OscMessage { addr, args }))
}

fn packet() -> impl Strategy<Value = OscPacket> {
    message().prop_recursive(4, 32, 4, |inner| {
        (any::<(u32, u32)>(), prop::collection::vec(inner, 0..4)).prop_map(|(time, content)| {
            OscPacket::Bundle(OscBundle {
                timetag: OscTime::from(time),
                content,
            })
        })
    })
}

/// Limits small enough that random input often reaches each of them.
fn tight_limits() -> Limits {
    Limits {
        max_packet: 512,
        max_depth: 2,
        max_args: 4,
        max_elements: 4,
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    SetByte(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    InsertWord(prop::sample::Index, [u8; 4]),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), any::<[u8; 4]>())
            .prop_map(|(i, w)| Mutation::InsertWord(i, w)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match mutation {
        Mutation::SetByte(i, b) => {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::InsertWord(i, w) => {
            let at = i.index(bytes.len());
            bytes.splice(at..at, w.iter().copied());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes, &Limits::default());
        let _ = decode(&bytes, &tight_limits());
    }

    /// Random bytes behind a valid prefix get past the first checks more often.
    #[test]
    fn random_bodies_after_valid_heads_never_panic(
        bundle in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = if bundle { b"#bundle\0".to_vec() } else { b"/a\0\0,".to_vec() };
        bytes.extend_from_slice(&body);
        let _ = decode(&bytes, &Limits::default());
        let _ = decode(&bytes, &tight_limits());
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        packet in packet(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = encode(&packet);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let _ = decode(&bytes, &Limits::default());
        let _ = decode(&bytes, &tight_limits());
    }

    #[test]
    fn decode_inverts_encode(packet in packet()) {
        prop_assert_eq!(decode(&encode(&packet), &Limits::default()), Ok(packet));
    }
}
