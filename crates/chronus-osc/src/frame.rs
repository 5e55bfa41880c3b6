//! Stream framing for OSC over TCP: the OSC 1.0 int32 big-endian length prefix and
//! OSC 1.1 SLIP (RFC 1055 with an END byte before and after every packet).
//!
//! A connection's framing is told by its first byte: SLIP streams start with END
//! (0xC0), which as the high byte of a length prefix would announce a negative length.

use rosc::OscPacket;

use crate::encode;

/// SLIP END: ends (and, in OSC 1.1, also starts) every packet.
pub const SLIP_END: u8 = 0xC0;
/// SLIP ESC: the next byte stands for END or ESC.
pub const SLIP_ESC: u8 = 0xDB;
const SLIP_ESC_END: u8 = 0xDC;
const SLIP_ESC_ESC: u8 = 0xDD;

/// How packets are delimited on a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// OSC 1.0: each packet is preceded by its size as an int32, big-endian.
    LengthPrefix,
    /// OSC 1.1: each packet is SLIP-encoded between two END bytes.
    Slip,
}

impl Framing {
    /// The framing of a stream that starts with `first`: SLIP if it is END.
    pub fn detect(first: u8) -> Framing {
        if first == SLIP_END {
            Framing::Slip
        } else {
            Framing::LengthPrefix
        }
    }

    /// Frames the encoded packet `bytes` for the stream.
    ///
    /// A length prefix holds at most `i32::MAX`; larger input is a caller bug and is
    /// framed with a saturated (therefore wrong) length, never a panic.
    pub fn frame(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Framing::LengthPrefix => {
                let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
                let mut out = Vec::with_capacity(bytes.len() + 4);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(bytes);
                out
            }
            Framing::Slip => {
                let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16 + 2);
                out.push(SLIP_END);
                for &b in bytes {
                    match b {
                        SLIP_END => out.extend_from_slice(&[SLIP_ESC, SLIP_ESC_END]),
                        SLIP_ESC => out.extend_from_slice(&[SLIP_ESC, SLIP_ESC_ESC]),
                        b => out.push(b),
                    }
                }
                out.push(SLIP_END);
                out
            }
        }
    }

    /// Encodes `packet` and frames it.
    pub fn encode(self, packet: &OscPacket) -> Vec<u8> {
        self.frame(&encode(packet))
    }
}

impl std::fmt::Display for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Framing::LengthPrefix => "length-prefix",
            Framing::Slip => "slip",
        })
    }
}

/// Why a frame could not be taken from a stream.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fatal: the stream cannot be resynchronised, so the connection is closed.
    #[error(
        "TCP length prefix {len} is not a packet size of 0 to {limit} bytes; closing the connection"
    )]
    BadLength { len: i64, limit: usize },
    /// The SLIP frame grew past the limit; its bytes are skipped up to the next END.
    #[error("SLIP frame exceeds the {limit}-byte limit")]
    SlipTooLarge { limit: usize },
    /// ESC followed by something other than ESC_END or ESC_ESC; the frame is skipped.
    #[error("SLIP escape followed by {byte:#04x}, not 0xdc or 0xdd")]
    BadEscape { byte: u8 },
}

impl FrameError {
    /// Whether the stream is lost after this error (the connection should be closed).
    pub fn is_fatal(&self) -> bool {
        matches!(self, FrameError::BadLength { .. })
    }
}

/// Reassembles frames from a byte stream delivered in arbitrary pieces.
///
/// Memory is bounded by `max_frame` plus the largest piece pushed. Feed it with
/// [`StreamDecoder::push`], then take frames with [`StreamDecoder::next_frame`] until it
/// returns `None`. After a fatal error (see [`FrameError::is_fatal`]) it yields nothing
/// more and [`StreamDecoder::is_broken`] is true.
#[derive(Debug)]
pub struct StreamDecoder {
    framing: Option<Framing>,
    max_frame: usize,
    /// Length prefix: raw stream bytes not yet consumed, from `start`.
    raw: Vec<u8>,
    start: usize,
    /// SLIP: the frame being unescaped and the frames completed by the last push.
    slip: SlipState,
    broken: bool,
}

#[derive(Debug, Default)]
struct SlipState {
    current: Vec<u8>,
    escaped: bool,
    /// The current frame already failed; skip to the next END.
    skipping: bool,
    ready: std::collections::VecDeque<Result<Vec<u8>, FrameError>>,
}

impl StreamDecoder {
    /// A decoder that tells the framing from the first byte it is given.
    pub fn new(max_frame: usize) -> StreamDecoder {
        StreamDecoder {
            framing: None,
            max_frame,
            raw: Vec::new(),
            start: 0,
            slip: SlipState::default(),
            broken: false,
        }
    }

    /// A decoder for a stream whose framing is known (a client reading replies).
    pub fn with_framing(framing: Framing, max_frame: usize) -> StreamDecoder {
        StreamDecoder {
            framing: Some(framing),
            ..StreamDecoder::new(max_frame)
        }
    }

    /// The stream's framing, once known.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Whether a fatal error ended the stream.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.broken || bytes.is_empty() {
            return;
        }
        let framing = *self
            .framing
            .get_or_insert_with(|| Framing::detect(bytes[0]));
        match framing {
            Framing::LengthPrefix => {
                if self.start > 0 && self.start == self.raw.len() {
                    self.raw.clear();
                    self.start = 0;
                }
                self.raw.extend_from_slice(bytes);
            }
            Framing::Slip => self.push_slip(bytes),
        }
    }

    /// The next complete frame (or frame error), if any.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        if self.broken {
            return None;
        }
        match self.framing? {
            Framing::Slip => self.slip.ready.pop_front(),
            Framing::LengthPrefix => self.next_length_prefixed(),
        }
    }

    fn next_length_prefixed(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        let rest = &self.raw[self.start..];
        let prefix: [u8; 4] = *rest.first_chunk()?;
        let len = i32::from_be_bytes(prefix);
        let size = match usize::try_from(len) {
            Ok(size) if size <= self.max_frame => size,
            _ => {
                self.broken = true;
                self.raw = Vec::new();
                self.start = 0;
                return Some(Err(FrameError::BadLength {
                    len: i64::from(len),
                    limit: self.max_frame,
                }));
            }
        };
        let frame = rest.get(4..4 + size)?.to_vec();
        self.start += 4 + size;
        if self.start == self.raw.len() {
            self.raw.clear();
            self.start = 0;
        } else if self.start > self.raw.len() / 2 {
            self.raw.drain(..self.start);
            self.start = 0;
        }
        Some(Ok(frame))
    }

    fn push_slip(&mut self, bytes: &[u8]) {
        let s = &mut self.slip;
        for &b in bytes {
            if b == SLIP_END {
                // END closes a frame; an empty one (the double END of OSC 1.1) is nothing.
                if !s.skipping && !s.escaped && !s.current.is_empty() {
                    s.ready.push_back(Ok(std::mem::take(&mut s.current)));
                } else if s.escaped && !s.skipping {
                    s.ready.push_back(Err(FrameError::BadEscape { byte: b }));
                }
                s.current.clear();
                s.escaped = false;
                s.skipping = false;
                continue;
            }
            if s.skipping {
                continue;
            }
            let byte = if s.escaped {
                s.escaped = false;
                match b {
                    SLIP_ESC_END => SLIP_END,
                    SLIP_ESC_ESC => SLIP_ESC,
                    other => {
                        s.ready
                            .push_back(Err(FrameError::BadEscape { byte: other }));
                        s.current.clear();
                        s.skipping = true;
                        continue;
                    }
                }
            } else if b == SLIP_ESC {
                s.escaped = true;
                continue;
            } else {
                b
            };
            if s.current.len() >= self.max_frame {
                s.ready.push_back(Err(FrameError::SlipTooLarge {
                    limit: self.max_frame,
                }));
                s.current = Vec::new();
                s.skipping = true;
                continue;
            }
            s.current.push(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(decoder: &mut StreamDecoder) -> Vec<Result<Vec<u8>, FrameError>> {
        std::iter::from_fn(|| decoder.next_frame()).collect()
    }

    #[test]
    fn slip_escapes_end_and_esc() {
        let framed = Framing::Slip.frame(&[1, SLIP_END, 2, SLIP_ESC, 3]);
        assert_eq!(
            framed,
            vec![SLIP_END, 1, SLIP_ESC, 0xDC, 2, SLIP_ESC, 0xDD, 3, SLIP_END]
        );
        let mut d = StreamDecoder::new(64);
        d.push(&framed);
        assert_eq!(d.framing(), Some(Framing::Slip));
        assert_eq!(frames(&mut d), vec![Ok(vec![1, SLIP_END, 2, SLIP_ESC, 3])]);
    }

    #[test]
    fn slip_accepts_single_end_framing_and_skips_empty_frames() {
        let mut d = StreamDecoder::new(64);
        d.push(&[SLIP_END, SLIP_END, 1, 2, SLIP_END, 3, SLIP_END, SLIP_END]);
        assert_eq!(frames(&mut d), vec![Ok(vec![1, 2]), Ok(vec![3])]);
    }

    #[test]
    fn slip_bad_escape_skips_to_the_next_end() {
        let mut d = StreamDecoder::new(64);
        d.push(&[SLIP_END, 1, SLIP_ESC, 7, 8, SLIP_END, 9, SLIP_END]);
        assert_eq!(
            frames(&mut d),
            vec![Err(FrameError::BadEscape { byte: 7 }), Ok(vec![9])]
        );
        assert!(!d.is_broken());
    }

    #[test]
    fn slip_oversize_frame_is_reported_once_and_skipped() {
        let mut d = StreamDecoder::new(4);
        d.push(&[
            SLIP_END, 1, 2, 3, 4, 5, 6, 7, SLIP_END, 1, 2, 3, 4, SLIP_END,
        ]);
        assert_eq!(
            frames(&mut d),
            vec![
                Err(FrameError::SlipTooLarge { limit: 4 }),
                Ok(vec![1, 2, 3, 4])
            ]
        );
    }

    #[test]
    fn length_prefix_handles_partial_and_joined_frames() {
        let mut stream = Framing::LengthPrefix.frame(&[1, 2, 3, 4]);
        stream.extend(Framing::LengthPrefix.frame(&[5, 6, 7, 8, 9, 10, 11, 12]));
        let mut d = StreamDecoder::new(64);
        d.push(&stream[..3]);
        assert_eq!(frames(&mut d), vec![]);
        d.push(&stream[3..10]);
        assert_eq!(frames(&mut d), vec![Ok(vec![1, 2, 3, 4])]);
        d.push(&stream[10..]);
        assert_eq!(frames(&mut d), vec![Ok(vec![5, 6, 7, 8, 9, 10, 11, 12])]);
        assert_eq!(d.framing(), Some(Framing::LengthPrefix));
    }

    #[test]
    fn broken_length_prefix_is_fatal() {
        let mut d = StreamDecoder::new(16);
        d.push(&[0, 0, 0, 17, 1, 2]);
        assert_eq!(
            frames(&mut d),
            vec![Err(FrameError::BadLength { len: 17, limit: 16 })]
        );
        assert!(d.is_broken());
        d.push(&Framing::LengthPrefix.frame(&[1, 2, 3, 4]));
        assert_eq!(frames(&mut d), vec![]);

        let mut d = StreamDecoder::with_framing(Framing::LengthPrefix, 16);
        d.push(&(-4i32).to_be_bytes());
        assert_eq!(
            frames(&mut d),
            vec![Err(FrameError::BadLength { len: -4, limit: 16 })]
        );
    }
}
