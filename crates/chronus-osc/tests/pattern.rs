//! Address pattern matching: a table of cases, and properties against a reference.

use std::time::{Duration, Instant};

use chronus_osc::{AddressPattern, PatternError, is_pattern, pattern_matches};
use proptest::prelude::*;

#[test]
fn table_of_cases() {
    let cases: &[(&str, &str, bool)] = &[
        // Literals.
        ("/chronus/status", "/chronus/status", true),
        ("/chronus/status", "/chronus/statu", false),
        ("/", "/", true),
        ("", "", true),
        // ?
        ("/voice/?/gain", "/voice/1/gain", true),
        ("/voice/?/gain", "/voice/12/gain", false),
        ("/voice/?/gain", "/voice//gain", false),
        ("/a?", "/a/", false),
        // *
        ("/voice/*/gain", "/voice/12/gain", true),
        ("/voice/*/gain", "/voice//gain", true),
        ("/voice/*", "/voice/1/gain", false),
        ("/*", "/chronus", true),
        ("/*/*", "/chronus/status", true),
        ("/chronus/*us", "/chronus/status", true),
        ("/chronus/*us", "/chronus/statue", false),
        ("/chronus/st*t*s", "/chronus/status", true),
        ("/chronus/***", "/chronus/x", true),
        ("/chronus/*", "/chronus/", true),
        // [ ]
        ("/voice/[0-3]", "/voice/2", true),
        ("/voice/[0-3]", "/voice/4", false),
        ("/voice/[!0-3]", "/voice/4", true),
        ("/voice/[!0-3]", "/voice/1", false),
        ("/voice/[!a]", "/voice/b", true),
        ("/voice/[!a]", "/voice/a", false),
        ("/voice/[abc]", "/voice/c", true),
        ("/voice/[a-]", "/voice/-", true),
        ("/voice/[-a]", "/voice/-", true),
        ("/voice/[3-0]", "/voice/2", true),
        ("/voice/[a-cx-z]", "/voice/y", true),
        ("/voice/[a-cx-z]", "/voice/m", false),
        ("/voice/[]", "/voice/a", false),
        ("/voice/[!]", "/voice/a", true),
        ("/voice/[é]", "/voice/é", true),
        // { }
        ("/{voice,synth}/gain", "/voice/gain", true),
        ("/{voice,synth}/gain", "/synth/gain", true),
        ("/{voice,synth}/gain", "/synthx/gain", false),
        ("/gain{,s}", "/gain", true),
        ("/gain{,s}", "/gains", true),
        ("/{a,ab}b", "/abb", true),
        ("/{a,ab}c", "/abc", true),
        ("/{}", "/", true),
        // Mixed.
        ("/voice/[0-9]*/{gain,pan}", "/voice/12/pan", true),
        ("/voice/[0-9]*/{gain,pan}", "/voice/x2/pan", false),
        ("/*/?[a-z]{x,y}", "/q/1bx", true),
        // //
        ("//gain", "/gain", true),
        ("//gain", "/voice/1/gain", true),
        ("//gain", "/voice/1/pan", false),
        ("/voice//gain", "/voice/gain", true),
        ("/voice//gain", "/voice/1/env/gain", true),
        ("/voice//gain", "/synth/1/gain", false),
        ("/voice//*", "/voice/1/env/gain", true),
        ("//[0-9]//gain", "/voice/3/env/gain", true),
        ("//[0-9]//gain", "/voice/env/gain", false),
        ("/a//b", "/a//b", true),
        // Malformed patterns match nothing.
        ("/voice/[0-3", "/voice/[0-3", false),
        ("/voice/{a,b", "/voice/a", false),
        ("/voice/a]", "/voice/a]", false),
        ("/voice/a}", "/voice/a}", false),
        ("/voice/[a/b]", "/voice/a", false),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(p, a, want)| pattern_matches(p, a) != *want)
        .map(|(p, a, want)| format!("{p:?} vs {a:?}: expected {want}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn is_pattern_tells_plain_addresses_apart() {
    for plain in ["/chronus/status", "/", "", "/a-b/c!d,e"] {
        assert!(!is_pattern(plain), "{plain}");
        assert!(AddressPattern::new(plain).unwrap().is_literal());
    }
    for pattern in ["/a?", "/*", "/[a]", "/{a}", "/a]", "/a}", "//a", "/a//b"] {
        assert!(is_pattern(pattern), "{pattern}");
    }
}

#[test]
fn malformed_patterns_say_why() {
    assert_eq!(
        AddressPattern::new("/ab/[cd").unwrap_err(),
        PatternError::Unclosed {
            open: '[',
            offset: 4
        }
    );
    assert_eq!(
        AddressPattern::new("/ab/c}").unwrap_err().to_string(),
        "'}' at character 5 of the address pattern closes nothing"
    );
}

#[test]
fn a_compiled_pattern_matches_many_addresses() {
    let p = AddressPattern::new("/voice/[0-7]/gain").unwrap();
    assert_eq!(p.as_str(), "/voice/[0-7]/gain");
    let hits = (0..10)
        .filter(|i| p.matches(&format!("/voice/{i}/gain")))
        .count();
    assert_eq!(hits, 8);
}

#[test]
fn adversarial_patterns_take_bounded_time() {
    // Classic exponential cases for backtracking matchers.
    let stars = format!("/{}b", "*a".repeat(2000));
    let address = format!("/{}", "a".repeat(5000));
    let alternatives = format!("/{}c", "{a,aa}".repeat(500));
    let traversals = format!("{}x", "//*".repeat(200));
    let deep = "/a".repeat(2000);
    let started = Instant::now();
    assert!(!pattern_matches(&stars, &address));
    assert!(!pattern_matches(&alternatives, &address));
    assert!(!pattern_matches(&traversals, &deep));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A plain recursive matcher for one address part (no `/`), exponential but obviously right.
fn reference_part(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len()).any(|k| reference_part(rest, &t[k..])),
        Some(('?', rest)) => !t.is_empty() && reference_part(rest, &t[1..]),
        Some(('[', rest)) => {
            let close = rest.iter().position(|&c| c == ']').unwrap();
            let (mut inside, after) = (&rest[..close], &rest[close + 1..]);
            let negated = inside.first() == Some(&'!');
            if negated {
                inside = &inside[1..];
            }
            let Some((&c, t_rest)) = t.split_first() else {
                return false;
            };
            let mut hit = false;
            let mut i = 0;
            while i < inside.len() {
                if i + 2 < inside.len() && inside[i + 1] == '-' {
                    let (a, b) = (inside[i].min(inside[i + 2]), inside[i].max(inside[i + 2]));
                    hit |= a <= c && c <= b;
                    i += 3;
                } else {
                    hit |= inside[i] == c;
                    i += 1;
                }
            }
            hit != negated && reference_part(after, t_rest)
        }
        Some(('{', rest)) => {
            let close = rest.iter().position(|&c| c == '}').unwrap();
            let after = &rest[close + 1..];
            rest[..close]
                .split(|&c| c == ',')
                .any(|alt| t.starts_with(alt) && reference_part(after, &t[alt.len()..]))
        }
        Some((c, rest)) => t.first() == Some(c) && reference_part(rest, &t[1..]),
    }
}

/// Whole addresses without `//`: part by part.
fn reference(pattern: &str, address: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let a: Vec<&str> = address.split('/').collect();
    p.len() == a.len()
        && p.iter().zip(&a).all(|(p, a)| {
            let p: Vec<char> = p.chars().collect();
            let a: Vec<char> = a.chars().collect();
            reference_part(&p, &a)
        })
}

/// One well-formed pattern part.
fn pattern_part() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[abc]".prop_map(String::from),
        Just("?".to_owned()),
        Just("*".to_owned()),
        "[abc]{0,2}".prop_map(|s| format!("[{s}]")),
        "[abc]{0,2}".prop_map(|s| format!("[!{s}]")),
        Just("[a-b]".to_owned()),
        prop::collection::vec("[abc]{0,2}", 1..4)
            .prop_map(|alts| format!("{{{}}}", alts.join(","))),
    ];
    // Never empty: an empty part would make `//`, which the reference does not know.
    prop::collection::vec(piece, 1..5).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_any_input(pattern in ".{0,40}", address in ".{0,40}") {
        let _ = pattern_matches(&pattern, &address);
        let _ = AddressPattern::new(&pattern);
    }

    #[test]
    fn never_panics_on_pattern_like_input(
        pattern in "[/ab?*\\[\\]{}!,\\-]{0,30}",
        address in "[/ab]{0,20}",
    ) {
        let _ = pattern_matches(&pattern, &address);
    }

    #[test]
    fn a_literal_address_matches_itself(address in "[^?*\\[\\]{}]{0,40}") {
        prop_assert!(pattern_matches(&address, &address));
    }

    #[test]
    fn agrees_with_a_reference_matcher(
        parts in prop::collection::vec((pattern_part(), "[abc]{0,4}"), 1..4),
    ) {
        let pattern: String = parts.iter().map(|(p, _)| format!("/{p}")).collect();
        let address: String = parts.iter().map(|(_, a)| format!("/{a}")).collect();
        prop_assert_eq!(
            pattern_matches(&pattern, &address),
            reference(&pattern, &address),
            "{} vs {}", pattern, address
        );
    }

    #[test]
    fn traversal_matches_any_depth_of_parts(
        prefix in prop::collection::vec("[ab]{1,3}", 0..4),
        last in "[ab]{1,3}",
    ) {
        let address: String = prefix.iter().chain([&last]).map(|p| format!("/{p}")).collect();
        let pattern = format!("//{last}");
        let matched = pattern_matches(&pattern, &address);
        prop_assert!(matched, "{} vs {}", pattern, address);
    }
}
