//! OSC 1.0 address patterns (`?`, `*`, `[a-z]`, `[!a]`, `{a,b}`) and the OSC 1.1 `//`
//! path-traversal wildcard.
//!
//! Matching is a table walk, not backtracking: each pattern token advances the set of
//! reachable positions in the address, so the work is at most proportional to
//! `len(pattern) × len(address)` whatever the input, and no input can make it explode.

/// The characters that make an address a pattern (besides `//`).
const SPECIAL: [char; 6] = ['?', '*', '[', ']', '{', '}'];

/// Whether `s` uses any pattern syntax; a plain address can be looked up by equality.
pub fn is_pattern(s: &str) -> bool {
    s.contains(SPECIAL) || s.contains("//")
}

/// Whether the OSC address pattern `pattern` matches the plain `address`.
///
/// Wildcards never match across `/`. `//` matches zero or more whole address parts, so
/// `/voice//gain` matches `/voice/gain` and `/voice/1/env/gain`. A malformed pattern (an
/// unclosed `[` or `{`, a stray `]` or `}`) matches nothing.
pub fn pattern_matches(pattern: &str, address: &str) -> bool {
    if !is_pattern(pattern) {
        return pattern == address;
    }
    AddressPattern::new(pattern).is_ok_and(|p| p.matches(address))
}

/// Why a pattern could not be parsed.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    #[error("'{open}' at character {offset} of the address pattern is never closed")]
    Unclosed { open: char, offset: usize },
    #[error("'{found}' at character {offset} of the address pattern closes nothing")]
    Stray { found: char, offset: usize },
}

/// A parsed address pattern, for matching one pattern against many addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPattern {
    text: String,
    /// `None` for a plain address, matched by equality.
    segments: Option<Vec<Segment>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// `//`: zero or more whole parts.
    Traverse,
    /// One part, matched by these tokens.
    Part(Vec<Token>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    Any,
    /// `*`
    Star,
    /// `[...]`: inclusive ranges (a single character is a range of one).
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    /// `{a,b}`: literal alternatives.
    Alternatives(Vec<Vec<char>>),
}

impl AddressPattern {
    pub fn new(pattern: &str) -> Result<AddressPattern, PatternError> {
        if !is_pattern(pattern) {
            return Ok(AddressPattern {
                text: pattern.to_owned(),
                segments: None,
            });
        }
        let parts: Vec<&str> = pattern.split('/').collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        let mut offset = 0;
        for (i, part) in parts.iter().enumerate() {
            // An empty part between two slashes is `//`; the first (before the leading
            // slash) and the last (after a trailing slash) are ordinary empty parts.
            if part.is_empty() && i != 0 && i != last {
                segments.push(Segment::Traverse);
            } else {
                segments.push(Segment::Part(tokens(part, offset)?));
            }
            offset += part.chars().count() + 1;
        }
        Ok(AddressPattern {
            text: pattern.to_owned(),
            segments: Some(segments),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it is a plain address (no pattern syntax).
    pub fn is_literal(&self) -> bool {
        self.segments.is_none()
    }

    pub fn matches(&self, address: &str) -> bool {
        let Some(segments) = &self.segments else {
            return self.text == address;
        };
        let parts: Vec<Vec<char>> = address.split('/').map(|p| p.chars().collect()).collect();
        // reach[j]: the segments so far can match exactly the first j parts.
        let mut reach = vec![false; parts.len() + 1];
        reach[0] = true;
        let mut next = vec![false; parts.len() + 1];
        let mut scratch = GlobScratch::default();
        for segment in segments {
            next.fill(false);
            match segment {
                Segment::Traverse => {
                    let mut any = false;
                    for (n, r) in next.iter_mut().zip(&reach) {
                        any |= *r;
                        *n = any;
                    }
                }
                Segment::Part(tokens) => {
                    for (j, part) in parts.iter().enumerate() {
                        if reach[j] && scratch.matches(tokens, part) {
                            next[j + 1] = true;
                        }
                    }
                }
            }
            std::mem::swap(&mut reach, &mut next);
            if !reach.contains(&true) {
                return false;
            }
        }
        reach[parts.len()]
    }
}

/// Parses one address part (no `/` in it); `base` is its character offset in the pattern.
fn tokens(part: &str, base: usize) -> Result<Vec<Token>, PatternError> {
    let chars: Vec<char> = part.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let offset = base + i;
        i += 1;
        out.push(match c {
            '?' => Token::Any,
            '*' => {
                if out.last() == Some(&Token::Star) {
                    continue;
                }
                Token::Star
            }
            ']' | '}' => return Err(PatternError::Stray { found: c, offset }),
            '[' => {
                let close =
                    find(&chars, i, ']').ok_or(PatternError::Unclosed { open: c, offset })?;
                let token = class(&chars[i..close]);
                i = close + 1;
                token
            }
            '{' => {
                let close =
                    find(&chars, i, '}').ok_or(PatternError::Unclosed { open: c, offset })?;
                let alternatives = chars[i..close]
                    .split(|&c| c == ',')
                    .map(<[char]>::to_vec)
                    .collect();
                i = close + 1;
                Token::Alternatives(alternatives)
            }
            c => Token::Char(c),
        });
    }
    Ok(out)
}

fn find(chars: &[char], from: usize, wanted: char) -> Option<usize> {
    chars[from..]
        .iter()
        .position(|&c| c == wanted)
        .map(|p| from + p)
}

/// The inside of `[...]`: an optional leading `!`, then characters and `a-z` ranges; a
/// `-` first or last is itself.
fn class(inside: &[char]) -> Token {
    let (negated, items) = match inside.split_first() {
        Some(('!', rest)) => (true, rest),
        _ => (false, inside),
    };
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < items.len() {
        if i + 2 < items.len() && items[i + 1] == '-' {
            let (a, b) = (items[i], items[i + 2]);
            ranges.push((a.min(b), a.max(b)));
            i += 3;
        } else {
            ranges.push((items[i], items[i]));
            i += 1;
        }
    }
    Token::Class { ranges, negated }
}

/// Reusable buffers for matching one part.
#[derive(Default)]
struct GlobScratch {
    reach: Vec<bool>,
    next: Vec<bool>,
}

impl GlobScratch {
    fn matches(&mut self, tokens: &[Token], text: &[char]) -> bool {
        let n = text.len();
        self.reach.clear();
        self.reach.resize(n + 1, false);
        self.reach[0] = true;
        self.next.clear();
        self.next.resize(n + 1, false);
        for token in tokens {
            self.next.fill(false);
            let (reach, next) = (&self.reach, &mut self.next);
            match token {
                Token::Star => {
                    let mut any = false;
                    for (n, r) in next.iter_mut().zip(reach) {
                        any |= *r;
                        *n = any;
                    }
                }
                Token::Alternatives(alternatives) => {
                    for j in (0..=n).filter(|&j| reach[j]) {
                        for alt in alternatives {
                            if text[j..].starts_with(alt) {
                                next[j + alt.len()] = true;
                            }
                        }
                    }
                }
                single => {
                    for j in (0..n).filter(|&j| reach[j]) {
                        if single_matches(single, text[j]) {
                            next[j + 1] = true;
                        }
                    }
                }
            }
            std::mem::swap(&mut self.reach, &mut self.next);
            if !self.reach.contains(&true) {
                return false;
            }
        }
        self.reach[n]
    }
}

/// Whether a one-character token accepts `c`.
fn single_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Char(want) => *want == c,
        Token::Any => true,
        Token::Class { ranges, negated } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
        Token::Star | Token::Alternatives(_) => false,
    }
}
