//! Property tests for TCP stream reassembly: whatever the chunking, the same frames come
//! out, and no byte stream makes the decoder panic or grow without bound.

use chronus_osc::{
    FrameError, Framing, Limits, OscMessage, OscPacket, OscType, SLIP_END, SLIP_ESC, StreamDecoder,
    decode, encode,
};
use proptest::prelude::*;

type Frames = Vec<Result<Vec<u8>, FrameError>>;

/// Feeds `stream` in pieces ending at `cuts` (taken modulo its length, in any order).
fn reassemble(stream: &[u8], cuts: &[prop::sample::Index], decoder: StreamDecoder) -> Frames {
    let mut decoder = decoder;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    ends.push(stream.len());
    ends.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for end in ends {
        decoder.push(&stream[start..end]);
        start = end;
        while let Some(frame) = decoder.next_frame() {
            out.push(frame);
        }
    }
    out
}

fn whole(stream: &[u8], decoder: StreamDecoder) -> Frames {
    reassemble(stream, &[], decoder)
}

/// Messages whose bytes include SLIP's special values, so escaping is exercised.
fn packet() -> impl Strategy<Value = OscPacket> {
    let arg = prop_oneof![
        any::<i32>().prop_map(OscType::Int),
        prop::collection::vec(
            prop_oneof![
                Just(SLIP_END),
                Just(SLIP_ESC),
                Just(0xDC),
                Just(0xDD),
                any::<u8>()
            ],
            0..40
        )
        .prop_map(OscType::Blob),
        "[a-z]{0,10}".prop_map(OscType::String),
    ];
    ("/[a-z]{1,8}", prop::collection::vec(arg, 0..4))
        .prop_map(|(addr, args)| OscPacket::Message(OscMessage { addr, args }))
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![Just(Framing::LengthPrefix), Just(Framing::Slip)]
}

/// A byte stream biased towards SLIP's special bytes and small length prefixes.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<u8>(),
            1 => Just(SLIP_END),
            1 => Just(SLIP_ESC),
            1 => Just(0u8),
            1 => Just(8u8),
        ],
        0..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn packets_survive_any_chunking(
        framing in framing(),
        packets in prop::collection::vec(packet(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream: Vec<u8> = packets.iter().flat_map(|p| framing.encode(p)).collect();
        let frames = reassemble(&stream, &cuts, StreamDecoder::new(65536));
        let decoded: Vec<OscPacket> = frames
            .into_iter()
            .map(|f| decode(&f.unwrap(), &Limits::default()).unwrap())
            .collect();
        prop_assert_eq!(decoded, packets);
    }

    #[test]
    fn framing_is_detected_from_the_first_byte(framing in framing(), packet in packet()) {
        let mut decoder = StreamDecoder::new(65536);
        decoder.push(&framing.encode(&packet)[..1]);
        prop_assert_eq!(decoder.framing(), Some(framing));
    }

    #[test]
    fn arbitrary_streams_give_the_same_frames_however_split(
        stream in noise(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        max_frame in 0usize..64,
    ) {
        let one_shot = whole(&stream, StreamDecoder::new(max_frame));
        let chunked = reassemble(&stream, &cuts, StreamDecoder::new(max_frame));
        prop_assert_eq!(&one_shot, &chunked);
        for frame in one_shot.iter().flatten() {
            prop_assert!(frame.len() <= max_frame);
            let _ = decode(frame, &Limits::default());
        }
        for framing in [Framing::LengthPrefix, Framing::Slip] {
            let a = whole(&stream, StreamDecoder::with_framing(framing, max_frame));
            let b = reassemble(&stream, &cuts, StreamDecoder::with_framing(framing, max_frame));
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn valid_frames_after_slip_noise_are_recovered(
        noise in noise(),
        packet in packet(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        // SLIP resynchronises at every END: a valid frame after any noise still arrives.
        let mut stream = vec![SLIP_END];
        stream.extend(&noise);
        stream.extend(Framing::Slip.encode(&packet));
        let frames = reassemble(&stream, &cuts, StreamDecoder::new(65536));
        let wanted = encode(&packet);
        prop_assert_eq!(frames.last(), Some(&Ok(wanted)));
    }
}
