//! Bounded OSC 1.0 decoding into `rosc` types.
//!
//! `rosc`'s own decoder recurses once per nested bundle, so a single 60 KB datagram of
//! nested `#bundle` headers overflows a thread stack. This decoder keeps open bundles
//! and arrays on heap stacks, checks every limit before allocating for it, and reports
//! byte offsets so a `/chronus/fail` reply can say exactly what was wrong.

use crate::frame::FrameError;
use rosc::{
    OscArray, OscBundle, OscColor, OscMessage, OscMidiMessage, OscPacket, OscTime, OscType,
};

/// Bounds applied to every decoded packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest packet accepted, in bytes.
    pub max_packet: usize,
    /// Deepest nesting accepted, counted separately for bundles (a top-level bundle is
    /// depth 1) and for arrays within one message.
    pub max_depth: usize,
    /// Most arguments in one message; an array counts as one argument plus its contents.
    pub max_args: usize,
    /// Most elements in one packet: every message and every nested bundle counts.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet: 65536,
            max_depth: 8,
            max_args: 256,
            max_elements: 1024,
        }
    }
}

const ACCEPTED_TAGS: &str = "i f s b h t d S c r m T F N I and [ ]";

/// Why a packet was rejected. Offsets are byte positions from the start of the packet.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty packet: expected an OSC message or bundle")]
    Empty,
    #[error("packet of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("packet of {len} bytes is not a multiple of 4 bytes, as OSC requires")]
    Misaligned { len: usize },
    #[error("bundle nesting deeper than {limit}")]
    BundleTooDeep { limit: usize },
    #[error("array nesting deeper than {limit} at byte {offset}")]
    ArrayTooDeep { limit: usize, offset: usize },
    #[error("message at byte {offset} has more than {limit} arguments")]
    TooManyArgs { offset: usize, limit: usize },
    #[error("packet has more than {limit} elements (messages and bundles)")]
    TooManyElements { limit: usize },
    #[error("truncated {what} at byte {offset}")]
    Truncated { what: &'static str, offset: usize },
    #[error("non-zero padding at byte {offset}: OSC pads with zero bytes")]
    BadPadding { offset: usize },
    #[error("string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: usize },
    #[error(
        "element at byte {offset} starts with {found:?}: expected an address beginning with '/' or \"#bundle\""
    )]
    BadAddress { offset: usize, found: String },
    #[error("type tag string at byte {offset} does not begin with ','")]
    MissingComma { offset: usize },
    #[error("type tag {tag:?} is not an OSC 1.0 type (byte {offset}; accepted: {ACCEPTED_TAGS})")]
    BadTypeTag { tag: char, offset: usize },
    #[error("unmatched ']' in type tags at byte {offset}")]
    UnmatchedArrayEnd { offset: usize },
    #[error("'[' in type tags at byte {offset} is never closed")]
    UnclosedArray { offset: usize },
    #[error("char argument {value:#x} at byte {offset} is not a Unicode scalar value")]
    BadChar { value: u32, offset: usize },
    #[error("bundle element size {size} at byte {offset} is not a positive multiple of 4")]
    BadElementSize { size: u32, offset: usize },
    #[error(
        "bundle element of {size} bytes at byte {offset} overruns its bundle, which has {available} bytes left"
    )]
    ElementOverrun {
        size: u32,
        offset: usize,
        available: usize,
    },
    #[error("{count} unexpected bytes after the message arguments at byte {offset}")]
    TrailingBytes { count: usize, offset: usize },
    /// A TCP stream's framing was broken; no packet could be taken from it.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// How far into a packet [`leading_address`] looks for the end of the address.
const ADDRESS_SCAN: usize = 512;

/// The address a packet starts with (a message's address, or `#bundle`), read without
/// decoding the rest: for telling a sender which of its packets was refused. `None`
/// when the packet does not start with a NUL-terminated printable address.
pub fn leading_address(buf: &[u8]) -> Option<&str> {
    let end = buf.iter().take(ADDRESS_SCAN).position(|&b| b == 0)?;
    let addr = std::str::from_utf8(&buf[..end]).ok()?;
    let printable = !addr.chars().any(char::is_control);
    ((addr.starts_with('/') || addr == "#bundle") && printable).then_some(addr)
}

/// Decodes one OSC packet (a UDP datagram or one TCP frame) within `limits`.
///
/// Accepts the OSC 1.0 types `i f s b h t d S c r m T F N I` and arrays `[ ]`; `S`
/// (symbol) decodes as a string. A message without a type tag string (pre-1.0 senders)
/// decodes with no arguments. Never panics, whatever the input.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<OscPacket, DecodeError> {
    if buf.len() > limits.max_packet {
        return Err(DecodeError::TooLarge {
            len: buf.len(),
            limit: limits.max_packet,
        });
    }
    if buf.is_empty() {
        return Err(DecodeError::Empty);
    }
    if buf.len() % 4 != 0 {
        return Err(DecodeError::Misaligned { len: buf.len() });
    }
    Decoder {
        buf,
        limits,
        elements: 0,
    }
    .packet()
}

/// A bundle whose elements are still being read.
struct OpenBundle {
    timetag: OscTime,
    content: Vec<OscPacket>,
    end: usize,
}

/// What the first string of an element announced.
enum Head<'a> {
    Bundle,
    Message(&'a str),
}

struct Decoder<'a> {
    buf: &'a [u8],
    limits: &'a Limits,
    elements: usize,
}

impl<'a> Decoder<'a> {
    fn packet(&mut self) -> Result<OscPacket, DecodeError> {
        let end = self.buf.len();
        self.count_element()?;
        let (head, body) = self.head(0, end)?;
        if let Head::Message(addr) = head {
            return self.message(addr, 0, body, end).map(OscPacket::Message);
        }
        self.check_bundle_depth(0)?;
        let mut current = OpenBundle {
            timetag: self.timetag(body, end)?,
            content: Vec::new(),
            end,
        };
        let mut pos = body + 8;
        // Enclosing bundles live on the heap, so nesting costs no stack.
        let mut parents: Vec<OpenBundle> = Vec::new();
        loop {
            if pos == current.end {
                let bundle = OscPacket::Bundle(OscBundle {
                    timetag: current.timetag,
                    content: std::mem::take(&mut current.content),
                });
                let Some(parent) = parents.pop() else {
                    return Ok(bundle);
                };
                current = parent;
                current.content.push(bundle);
                continue;
            }
            let size = self.u32(pos, current.end, "bundle element size")?;
            let start = pos + 4;
            let available = current.end - start;
            if size == 0 || size % 4 != 0 {
                return Err(DecodeError::BadElementSize { size, offset: pos });
            }
            let elem_end = match usize::try_from(size) {
                Ok(size) if size <= available => start + size,
                _ => {
                    return Err(DecodeError::ElementOverrun {
                        size,
                        offset: pos,
                        available,
                    });
                }
            };
            self.count_element()?;
            let (head, body) = self.head(start, elem_end)?;
            match head {
                Head::Bundle => {
                    self.check_bundle_depth(parents.len() + 1)?;
                    let nested = OpenBundle {
                        timetag: self.timetag(body, elem_end)?,
                        content: Vec::new(),
                        end: elem_end,
                    };
                    parents.push(std::mem::replace(&mut current, nested));
                    pos = body + 8;
                }
                Head::Message(addr) => {
                    let message = self.message(addr, start, body, elem_end)?;
                    current.content.push(OscPacket::Message(message));
                    pos = elem_end;
                }
            }
        }
    }

    fn count_element(&mut self) -> Result<(), DecodeError> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(DecodeError::TooManyElements {
                limit: self.limits.max_elements,
            });
        }
        Ok(())
    }

    /// `open` bundles already enclose the one about to be opened.
    fn check_bundle_depth(&self, open: usize) -> Result<(), DecodeError> {
        if open >= self.limits.max_depth {
            return Err(DecodeError::BundleTooDeep {
                limit: self.limits.max_depth,
            });
        }
        Ok(())
    }

    /// Reads the first string of the element at `pos`; returns what it is and where its body starts.
    fn head(&self, pos: usize, end: usize) -> Result<(Head<'a>, usize), DecodeError> {
        let (first, body) = self.string(pos, end, "address")?;
        if first == "#bundle" {
            Ok((Head::Bundle, body))
        } else if first.starts_with('/') {
            Ok((Head::Message(first), body))
        } else {
            Err(DecodeError::BadAddress {
                offset: pos,
                found: first.chars().take(32).collect(),
            })
        }
    }

    /// Decodes the type tags and arguments in `tags_start..end` of the message at `start`.
    fn message(
        &self,
        addr: &str,
        start: usize,
        tags_start: usize,
        end: usize,
    ) -> Result<OscMessage, DecodeError> {
        let mut args = Vec::new();
        if tags_start == end {
            // Pre-1.0 senders may omit the type tag string entirely.
            return Ok(OscMessage {
                addr: addr.to_owned(),
                args,
            });
        }
        let (tags, mut pos) = self.string(tags_start, end, "type tag string")?;
        let Some(tags) = tags.strip_prefix(',') else {
            return Err(DecodeError::MissingComma { offset: tags_start });
        };
        // Arrays being filled, each with the offset of its '[' for error messages.
        let mut outer: Vec<(Vec<OscType>, usize)> = Vec::new();
        let mut count = 0usize;
        for (i, tag) in tags.bytes().enumerate() {
            let tag_offset = tags_start + 1 + i;
            if tag == b']' {
                let Some((mut parent, _)) = outer.pop() else {
                    return Err(DecodeError::UnmatchedArrayEnd { offset: tag_offset });
                };
                parent.push(OscType::Array(OscArray {
                    content: std::mem::take(&mut args),
                }));
                args = parent;
                continue;
            }
            count += 1;
            if count > self.limits.max_args {
                return Err(DecodeError::TooManyArgs {
                    offset: start,
                    limit: self.limits.max_args,
                });
            }
            if tag == b'[' {
                // Nested arrays are recursive values: bounding them bounds drop and encode recursion.
                if outer.len() >= self.limits.max_depth {
                    return Err(DecodeError::ArrayTooDeep {
                        limit: self.limits.max_depth,
                        offset: tag_offset,
                    });
                }
                outer.push((std::mem::take(&mut args), tag_offset));
                continue;
            }
            let (arg, next) = self.arg(tag, tag_offset, pos, end)?;
            args.push(arg);
            pos = next;
        }
        if let Some(&(_, offset)) = outer.last() {
            return Err(DecodeError::UnclosedArray { offset });
        }
        if pos != end {
            return Err(DecodeError::TrailingBytes {
                count: end - pos,
                offset: pos,
            });
        }
        Ok(OscMessage {
            addr: addr.to_owned(),
            args,
        })
    }

    /// Reads the data of one argument at `pos`; returns it and the position after it.
    fn arg(
        &self,
        tag: u8,
        tag_offset: usize,
        pos: usize,
        end: usize,
    ) -> Result<(OscType, usize), DecodeError> {
        Ok(match tag {
            b'i' => (
                OscType::Int(i32::from_be_bytes(self.bytes(pos, end, "int32")?)),
                pos + 4,
            ),
            b'f' => (
                OscType::Float(f32::from_be_bytes(self.bytes(pos, end, "float32")?)),
                pos + 4,
            ),
            b'h' => (
                OscType::Long(i64::from_be_bytes(self.bytes(pos, end, "int64")?)),
                pos + 8,
            ),
            b'd' => (
                OscType::Double(f64::from_be_bytes(self.bytes(pos, end, "float64")?)),
                pos + 8,
            ),
            b't' => (OscType::Time(self.timetag(pos, end)?), pos + 8),
            b'c' => {
                let value = self.u32(pos, end, "char")?;
                let c = char::from_u32(value).ok_or(DecodeError::BadChar { value, offset: pos })?;
                (OscType::Char(c), pos + 4)
            }
            b'r' => {
                let [red, green, blue, alpha] = self.bytes(pos, end, "color")?;
                let color = OscColor {
                    red,
                    green,
                    blue,
                    alpha,
                };
                (OscType::Color(color), pos + 4)
            }
            b'm' => {
                let [port, status, data1, data2] = self.bytes(pos, end, "MIDI message")?;
                let midi = OscMidiMessage {
                    port,
                    status,
                    data1,
                    data2,
                };
                (OscType::Midi(midi), pos + 4)
            }
            b's' | b'S' => {
                let (s, next) = self.string(pos, end, "string")?;
                (OscType::String(s.to_owned()), next)
            }
            b'b' => self.blob(pos, end)?,
            b'T' => (OscType::Bool(true), pos),
            b'F' => (OscType::Bool(false), pos),
            b'N' => (OscType::Nil, pos),
            b'I' => (OscType::Inf, pos),
            other => {
                return Err(DecodeError::BadTypeTag {
                    tag: char::from(other),
                    offset: tag_offset,
                });
            }
        })
    }

    fn bytes<const N: usize>(
        &self,
        pos: usize,
        end: usize,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        self.buf
            .get(pos..end)
            .and_then(|rest| rest.first_chunk::<N>())
            .copied()
            .ok_or(DecodeError::Truncated { what, offset: pos })
    }

    fn u32(&self, pos: usize, end: usize, what: &'static str) -> Result<u32, DecodeError> {
        self.bytes(pos, end, what).map(u32::from_be_bytes)
    }

    fn timetag(&self, pos: usize, end: usize) -> Result<OscTime, DecodeError> {
        let [s0, s1, s2, s3, f0, f1, f2, f3] = self.bytes(pos, end, "timetag")?;
        Ok(OscTime {
            seconds: u32::from_be_bytes([s0, s1, s2, s3]),
            fractional: u32::from_be_bytes([f0, f1, f2, f3]),
        })
    }

    /// Reads a NUL-terminated, zero-padded string; returns it and the position after it.
    fn string(
        &self,
        pos: usize,
        end: usize,
        what: &'static str,
    ) -> Result<(&'a str, usize), DecodeError> {
        let truncated = DecodeError::Truncated { what, offset: pos };
        let rest = self.buf.get(pos..end).ok_or(truncated.clone())?;
        let len = rest.iter().position(|&b| b == 0).ok_or(truncated.clone())?;
        // The terminating NUL plus zero padding to the next multiple of 4.
        let padded = (len + 4) & !3;
        let (text, tail) = rest.split_at(len);
        let padding = tail.get(..padded - len).ok_or(truncated)?;
        if let Some(bad) = padding.iter().position(|&b| b != 0) {
            return Err(DecodeError::BadPadding {
                offset: pos + len + bad,
            });
        }
        let text =
            std::str::from_utf8(text).map_err(|_| DecodeError::InvalidUtf8 { offset: pos })?;
        Ok((text, pos + padded))
    }

    fn blob(&self, pos: usize, end: usize) -> Result<(OscType, usize), DecodeError> {
        let size = self.u32(pos, end, "blob size")?;
        let data_start = pos + 4;
        let truncated = DecodeError::Truncated {
            what: "blob",
            offset: data_start,
        };
        let len = usize::try_from(size).map_err(|_| truncated.clone())?;
        let padded = len.checked_add(3).ok_or(truncated.clone())? & !3;
        let body = self
            .buf
            .get(data_start..end)
            .and_then(|rest| rest.get(..padded))
            .ok_or(truncated)?;
        let (data, padding) = body.split_at(len);
        if let Some(bad) = padding.iter().position(|&b| b != 0) {
            return Err(DecodeError::BadPadding {
                offset: data_start + len + bad,
            });
        }
        Ok((OscType::Blob(data.to_vec()), data_start + padded))
    }
}
