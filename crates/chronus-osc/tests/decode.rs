//! Decoder behaviour on hand-built bytes, so these tests do not share the encoder's
//! assumptions.

use chronus_osc::{
    DecodeError, Limits, OscArray, OscBundle, OscColor, OscMessage, OscMidiMessage, OscPacket,
    OscTime, OscType, decode, encode,
};

/// Appends an OSC string: the bytes, a NUL, zero padding to a multiple of 4.
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn raw_message(addr: &str, tags: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, addr);
    put_str(&mut out, tags);
    out.extend_from_slice(data);
    out
}

/// `#bundle`, a timetag, then each element with its size prefix.
fn raw_bundle(elements: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, "#bundle");
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    for element in elements {
        out.extend_from_slice(&u32::try_from(element.len()).unwrap().to_be_bytes());
        out.extend_from_slice(element);
    }
    out
}

/// `depth` bundles, each holding the next, the innermost holding one message.
fn nested_bundles(depth: usize) -> Vec<u8> {
    let mut packet = raw_message("/x", ",", &[]);
    for _ in 0..depth {
        packet = raw_bundle(&[packet]);
    }
    packet
}

fn msg(addr: &str, args: Vec<OscType>) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    })
}

fn default_decode(buf: &[u8]) -> Result<OscPacket, DecodeError> {
    decode(buf, &Limits::default())
}

#[test]
fn every_osc_1_0_type_and_nested_arrays_decode() {
    let mut data = Vec::new();
    data.extend_from_slice(&(-7i32).to_be_bytes()); // i
    data.extend_from_slice(&1.5f32.to_be_bytes()); // f
    put_str(&mut data, "hello"); // s
    data.extend_from_slice(&3u32.to_be_bytes()); // b
    data.extend_from_slice(&[1, 2, 3, 0]);
    data.extend_from_slice(&(-1i64 << 40).to_be_bytes()); // h
    data.extend_from_slice(&[0, 0, 0, 5, 0x80, 0, 0, 0]); // t
    data.extend_from_slice(&2.25f64.to_be_bytes()); // d
    put_str(&mut data, "sym"); // S
    data.extend_from_slice(&u32::from('é').to_be_bytes()); // c
    data.extend_from_slice(&[10, 20, 30, 40]); // r
    data.extend_from_slice(&[1, 0x90, 60, 127]); // m
    data.extend_from_slice(&9i32.to_be_bytes()); // i in [i[s]]
    put_str(&mut data, "in"); // s in [s]
    let buf = raw_message("/all", ",ifsbhtdScrmTFNI[i[s]][]", &data);

    let expected = msg(
        "/all",
        vec![
            OscType::Int(-7),
            OscType::Float(1.5),
            OscType::String("hello".into()),
            OscType::Blob(vec![1, 2, 3]),
            OscType::Long(-1 << 40),
            OscType::Time(OscTime {
                seconds: 5,
                fractional: 0x8000_0000,
            }),
            OscType::Double(2.25),
            OscType::String("sym".into()),
            OscType::Char('é'),
            OscType::Color(OscColor {
                red: 10,
                green: 20,
                blue: 30,
                alpha: 40,
            }),
            OscType::Midi(OscMidiMessage {
                port: 1,
                status: 0x90,
                data1: 60,
                data2: 127,
            }),
            OscType::Bool(true),
            OscType::Bool(false),
            OscType::Nil,
            OscType::Inf,
            OscType::Array(OscArray {
                content: vec![
                    OscType::Int(9),
                    OscType::Array(OscArray {
                        content: vec![OscType::String("in".into())],
                    }),
                ],
            }),
            OscType::Array(OscArray { content: vec![] }),
        ],
    );
    assert_eq!(default_decode(&buf), Ok(expected));
}

#[test]
fn message_without_type_tag_string_has_no_arguments() {
    let mut buf = Vec::new();
    put_str(&mut buf, "/legacy");
    assert_eq!(default_decode(&buf), Ok(msg("/legacy", vec![])));
}

#[test]
fn bundle_contents_keep_their_order_and_timetags() {
    let inner = raw_bundle(&[raw_message("/b", ",i", &2i32.to_be_bytes())]);
    let buf = raw_bundle(&[raw_message("/a", ",i", &1i32.to_be_bytes()), inner]);
    let time = OscTime {
        seconds: 0,
        fractional: 1,
    };
    let expected = OscPacket::Bundle(OscBundle {
        timetag: time,
        content: vec![
            msg("/a", vec![OscType::Int(1)]),
            OscPacket::Bundle(OscBundle {
                timetag: time,
                content: vec![msg("/b", vec![OscType::Int(2)])],
            }),
        ],
    });
    assert_eq!(default_decode(&buf), Ok(expected));
}

#[test]
fn bundles_nested_to_the_depth_limit_are_accepted() {
    let limits = Limits::default();
    let packet = default_decode(&nested_bundles(limits.max_depth)).unwrap();
    // Walk down to the innermost message to prove every level was kept.
    let mut current = &packet;
    let mut depth = 0;
    while let OscPacket::Bundle(bundle) = current {
        depth += 1;
        current = &bundle.content[0];
    }
    assert_eq!(depth, limits.max_depth);
    assert_eq!(current, &msg("/x", vec![]));
}

#[test]
fn bundles_nested_one_deeper_than_the_limit_are_rejected() {
    let err = default_decode(&nested_bundles(9)).unwrap_err();
    assert_eq!(err, DecodeError::BundleTooDeep { limit: 8 });
    assert_eq!(err.to_string(), "bundle nesting deeper than 8");
}

/// Regression guard for the stock rosc decoder, which recursed once per level and
/// overflowed the stack on this input.
#[test]
fn bundle_bomb_is_rejected_without_overflowing_a_small_stack() {
    // Each level is a size prefix plus a 16-byte empty bundle header: 3000 levels ≈ 60 KB.
    let bomb = nested_bundles(3000);
    assert!(bomb.len() > 60_000 && bomb.len() <= 65536);
    let result = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || decode(&bomb, &Limits::default()))
        .unwrap()
        .join()
        .expect("decoder thread must not die");
    assert_eq!(result, Err(DecodeError::BundleTooDeep { limit: 8 }));
}

#[test]
fn deep_bundles_within_generous_limits_decode_on_a_small_stack() {
    let limits = Limits {
        max_depth: 3000,
        max_elements: 4000,
        ..Limits::default()
    };
    let bomb = nested_bundles(2000);
    let depth = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let packet = decode(&bomb, &limits).unwrap();
            let mut depth = 0;
            let mut current = &packet;
            while let OscPacket::Bundle(bundle) = current {
                depth += 1;
                current = &bundle.content[0];
            }
            // The derived Drop recurses once per level too, so take the tree apart by hand.
            let mut pending = vec![packet];
            while let Some(packet) = pending.pop() {
                if let OscPacket::Bundle(bundle) = packet {
                    pending.extend(bundle.content);
                }
            }
            depth
        })
        .unwrap()
        .join()
        .expect("decoder thread must not die");
    assert_eq!(depth, 2000);
}

#[test]
fn arrays_nested_beyond_the_depth_limit_are_rejected() {
    let ok = raw_message("/a", &format!(",{}{}", "[".repeat(8), "]".repeat(8)), &[]);
    assert!(default_decode(&ok).is_ok());
    let deep = raw_message("/a", &format!(",{}{}", "[".repeat(9), "]".repeat(9)), &[]);
    // "/a\0\0" is 4 bytes, ',' is byte 4, the ninth '[' is byte 13.
    assert_eq!(
        default_decode(&deep),
        Err(DecodeError::ArrayTooDeep {
            limit: 8,
            offset: 13
        })
    );
}

#[test]
fn truncated_packets_name_what_was_cut_and_where() {
    let cases: Vec<(Vec<u8>, &str, usize)> = vec![
        (b"/abc".to_vec(), "address", 0),
        (raw_message("/a", ",i", &[]), "int32", 8),
        (raw_message("/a", ",f", &[]), "float32", 8),
        (raw_message("/a", ",h", &[0; 4]), "int64", 8),
        (raw_message("/a", ",d", &[0; 4]), "float64", 8),
        (raw_message("/a", ",t", &[0; 4]), "timetag", 8),
        (raw_message("/a", ",c", &[]), "char", 8),
        (raw_message("/a", ",r", &[]), "color", 8),
        (raw_message("/a", ",m", &[]), "MIDI message", 8),
        (raw_message("/a", ",s", b"abcd"), "string", 8),
        (raw_message("/a", ",b", &[]), "blob size", 8),
        (
            raw_message("/a", ",b", &[0, 0, 0, 8, 1, 2, 3, 4]),
            "blob",
            12,
        ),
        (raw_message("/a", ",b", &[0xff; 4]), "blob", 12),
        (b"/a\0\0,ii".to_vec(), "type tag string", 4),
        (b"#bundle\0\0\0\0\0".to_vec(), "timetag", 8),
    ];
    for (buf, what, offset) in cases {
        let expected = if buf.len() % 4 == 0 {
            DecodeError::Truncated { what, offset }
        } else {
            DecodeError::Misaligned { len: buf.len() }
        };
        assert_eq!(default_decode(&buf), Err(expected), "decoding {buf:?}");
    }
    assert_eq!(
        DecodeError::Truncated {
            what: "string",
            offset: 12
        }
        .to_string(),
        "truncated string at byte 12"
    );
}

#[test]
fn unknown_type_tag_is_named_in_the_error() {
    let buf = raw_message("/a", ",iz", &[0; 4]);
    let err = default_decode(&buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::BadTypeTag {
            tag: 'z',
            offset: 6
        }
    );
    assert!(
        err.to_string()
            .starts_with("type tag 'z' is not an OSC 1.0 type"),
        "{err}"
    );
}

#[test]
fn nonzero_padding_is_rejected() {
    let mut buf = raw_message("/ab", ",s", b"x\0\0\0");
    buf[11] = b'!';
    assert_eq!(
        default_decode(&buf),
        Err(DecodeError::BadPadding { offset: 11 })
    );

    let blob = raw_message("/ab", ",b", &[0, 0, 0, 1, 7, 0, 9, 0]);
    assert_eq!(
        default_decode(&blob),
        Err(DecodeError::BadPadding { offset: 14 })
    );
}

#[test]
fn oversize_packets_are_rejected_before_parsing() {
    let buf = vec![0u8; 70000];
    let err = default_decode(&buf).unwrap_err();
    assert_eq!(
        err.to_string(),
        "packet of 70000 bytes exceeds the 65536-byte limit"
    );
}

#[test]
fn argument_count_is_limited() {
    let at_limit = raw_message("/n", &format!(",{}", "N".repeat(256)), &[]);
    assert!(default_decode(&at_limit).is_ok());
    let over = raw_message("/n", &format!(",{}", "N".repeat(257)), &[]);
    assert_eq!(
        default_decode(&over),
        Err(DecodeError::TooManyArgs {
            offset: 0,
            limit: 256
        })
    );
}

#[test]
fn element_count_is_limited() {
    let one = raw_message("/m", ",", &[]);
    // The bundle itself is an element, so 1023 messages fill the 1024 allowed.
    assert!(default_decode(&raw_bundle(&vec![one.clone(); 1023])).is_ok());
    assert_eq!(
        default_decode(&raw_bundle(&vec![one; 1024])),
        Err(DecodeError::TooManyElements { limit: 1024 })
    );
}

#[test]
fn malformed_structure_gets_a_specific_error() {
    let with_size = |size: u32| {
        let mut b = raw_bundle(&[]);
        b.extend_from_slice(&size.to_be_bytes());
        b.extend_from_slice(&[0; 8]);
        b
    };
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (vec![], DecodeError::Empty),
        (b"/ab\0\0".to_vec(), DecodeError::Misaligned { len: 5 }),
        (
            raw_message("abc", ",", &[]),
            DecodeError::BadAddress {
                offset: 0,
                found: "abc".into(),
            },
        ),
        (
            raw_message("/a", "i", &[0; 4]),
            DecodeError::MissingComma { offset: 4 },
        ),
        (
            raw_message("/a", ",i]", &[0; 4]),
            DecodeError::UnmatchedArrayEnd { offset: 6 },
        ),
        (
            raw_message("/a", ",[i", &[0; 4]),
            DecodeError::UnclosedArray { offset: 5 },
        ),
        (
            raw_message("/a", ",c", &0x11_0000u32.to_be_bytes()),
            DecodeError::BadChar {
                value: 0x11_0000,
                offset: 8,
            },
        ),
        (
            raw_message("/a", ",s", &[0xff, 0xfe, 0, 0]),
            DecodeError::InvalidUtf8 { offset: 8 },
        ),
        (
            raw_message("/a", ",i", &[0; 8]),
            DecodeError::TrailingBytes {
                count: 4,
                offset: 12,
            },
        ),
        (
            with_size(0),
            DecodeError::BadElementSize {
                size: 0,
                offset: 16,
            },
        ),
        (
            with_size(6),
            DecodeError::BadElementSize {
                size: 6,
                offset: 16,
            },
        ),
        (
            with_size(12),
            DecodeError::ElementOverrun {
                size: 12,
                offset: 16,
                available: 8,
            },
        ),
        (
            with_size(u32::MAX - 3),
            DecodeError::ElementOverrun {
                size: u32::MAX - 3,
                offset: 16,
                available: 8,
            },
        ),
    ];
    for (buf, expected) in cases {
        assert_eq!(default_decode(&buf), Err(expected), "decoding {buf:?}");
    }
}

#[test]
fn rosc_encoded_packets_decode_to_themselves() {
    let packet = OscPacket::Bundle(OscBundle {
        timetag: OscTime {
            seconds: 3,
            fractional: 4,
        },
        content: vec![
            msg(
                "/x",
                vec![
                    OscType::Blob(vec![1, 2, 3, 4, 5]),
                    OscType::String("abc".into()),
                ],
            ),
            msg("/y", vec![]),
        ],
    });
    assert_eq!(default_decode(&encode(&packet)), Ok(packet));
}

#[test]
fn a_rejected_packet_still_names_its_address_when_it_can_be_read() {
    let truncated = raw_message("/mod/voice1/freq", ",f", &[]);
    assert!(decode(&truncated, &Limits::default()).is_err());
    assert_eq!(
        chronus_osc::leading_address(&truncated),
        Some("/mod/voice1/freq")
    );
    assert_eq!(
        chronus_osc::leading_address(&nested_bundles(100)),
        Some("#bundle")
    );
    for unreadable in [
        &b""[..],
        b"/no/terminator",
        b"noslash\0",
        b"/ctl\x07\0\0\0",
        b"/\xff\xfe\0",
    ] {
        assert_eq!(
            chronus_osc::leading_address(unreadable),
            None,
            "{unreadable:?}"
        );
    }
}
