//! OSC arguments from command-line words (`set`), and back to words (`watch`), so that a
//! line `watch` prints can be given to `set` again.

use anyhow::{anyhow, bail};
use chronus_osc::OscType;

/// Types a word by its form: an integer (`i`, or `h` beyond 32 bits), a number with a
/// dot (`f`), `true`/`false` (`T`/`F`), anything else a string.
pub fn infer(word: &str) -> OscType {
    if let Ok(i) = word.parse::<i32>() {
        return OscType::Int(i);
    }
    if let Ok(h) = word.parse::<i64>() {
        return OscType::Long(h);
    }
    if word.contains('.')
        && word
            .bytes()
            .all(|b| b.is_ascii_digit() || b".+-eE".contains(&b))
    {
        if let Ok(f) = word.parse::<f32>() {
            return OscType::Float(f);
        }
    }
    match word {
        "true" => OscType::Bool(true),
        "false" => OscType::Bool(false),
        _ => OscType::String(word.to_owned()),
    }
}

/// The type letters `--types` accepts.
pub const TYPE_LETTERS: &str = "i h f d s c T F";

/// Types `words` by the letters of `types`, one letter per word.
pub fn typed(types: &str, words: &[String]) -> anyhow::Result<Vec<OscType>> {
    let letters: Vec<char> = types.chars().collect();
    if letters.len() != words.len() {
        bail!(
            "--types {types:?} has {} type letters for {} arguments",
            letters.len(),
            words.len()
        );
    }
    letters
        .iter()
        .zip(words)
        .map(|(&tag, word)| convert(tag, word))
        .collect()
}

fn convert(tag: char, word: &str) -> anyhow::Result<OscType> {
    let bad = |what: &str| anyhow!("argument {word:?} is not {what} (type '{tag}' in --types)");
    Ok(match tag {
        'i' => OscType::Int(word.parse().map_err(|_| bad("a 32-bit integer"))?),
        'h' => OscType::Long(word.parse().map_err(|_| bad("a 64-bit integer"))?),
        'f' => OscType::Float(word.parse().map_err(|_| bad("a number"))?),
        'd' => OscType::Double(word.parse().map_err(|_| bad("a number"))?),
        's' => OscType::String(word.to_owned()),
        'c' => {
            let mut chars = word.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => OscType::Char(c),
                _ => return Err(bad("a single character")),
            }
        }
        'T' | 'F' => match word {
            "true" | "1" => OscType::Bool(true),
            "false" | "0" => OscType::Bool(false),
            _ => return Err(bad("true, false, 1 or 0")),
        },
        other => bail!("unknown type letter '{other}' in --types (use {TYPE_LETTERS})"),
    })
}

/// One argument as a word: numbers plainly (floats always with a dot or exponent),
/// strings bare when [`infer`] would read them back as the same string, else quoted.
pub fn render(arg: &OscType) -> String {
    match arg {
        OscType::Int(i) => i.to_string(),
        OscType::Long(h) => h.to_string(),
        OscType::Float(f) => float_word(f.to_string()),
        OscType::Double(d) => float_word(d.to_string()),
        OscType::Bool(b) => b.to_string(),
        OscType::String(s) => {
            let plain = !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '\\')
                && infer(s) == OscType::String(s.clone());
            if plain {
                s.clone()
            } else {
                serde_json::Value::from(s.as_str()).to_string()
            }
        }
        OscType::Char(c) => format!("'{c}'"),
        OscType::Blob(bytes) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
        OscType::Nil => "nil".into(),
        OscType::Inf => "inf".into(),
        OscType::Time(t) => format!("{}.{:08x}t", t.seconds, t.fractional),
        OscType::Array(array) => {
            let inner: Vec<String> = array.content.iter().map(render).collect();
            format!("[{}]", inner.join(" "))
        }
        other => other.to_string(),
    }
}

fn float_word(text: String) -> String {
    if text.contains(['.', 'e', 'E']) || !text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        text
    } else {
        text + ".0"
    }
}

/// `address` checked and `words` typed (by `types` when given, else by their form),
/// as `set` and `query` take them.
pub fn message_args(
    address: &str,
    types: Option<&str>,
    words: &[String],
) -> Result<Vec<chronus_osc::OscType>, crate::failure::Failure> {
    use crate::failure::{Failure, USAGE};
    if !address.starts_with('/') {
        return Err(Failure::new(
            USAGE,
            anyhow::anyhow!("address {address:?} must start with '/'"),
        ));
    }
    match types {
        Some(types) => typed(types, words).map_err(|e| Failure::new(USAGE, e)),
        None => Ok(words.iter().map(|w| infer(w)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_typed_by_their_form() {
        assert_eq!(infer("3"), OscType::Int(3));
        assert_eq!(infer("-3"), OscType::Int(-3));
        assert_eq!(infer("5000000000"), OscType::Long(5_000_000_000));
        assert_eq!(infer("0.5"), OscType::Float(0.5));
        assert_eq!(infer("-.5"), OscType::Float(-0.5));
        assert_eq!(infer("1.5e3"), OscType::Float(1500.0));
        assert_eq!(infer("1e3"), OscType::String("1e3".into()));
        assert_eq!(infer("inf"), OscType::String("inf".into()));
        assert_eq!(infer("1.2.3"), OscType::String("1.2.3".into()));
        assert_eq!(infer("true"), OscType::Bool(true));
        assert_eq!(infer("false"), OscType::Bool(false));
        assert_eq!(infer("sine"), OscType::String("sine".into()));
        assert_eq!(infer(""), OscType::String(String::new()));
    }

    #[test]
    fn types_override_the_form() {
        let words: Vec<String> = ["3", "3", "x", "3", "y", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            typed("ifshcT", &words).unwrap(),
            vec![
                OscType::Int(3),
                OscType::Float(3.0),
                OscType::String("x".into()),
                OscType::Long(3),
                OscType::Char('y'),
                OscType::Bool(true),
            ]
        );
        assert!(typed("i", &words).is_err());
        assert_eq!(
            typed("i", &["x".to_string()]).unwrap_err().to_string(),
            "argument \"x\" is not a 32-bit integer (type 'i' in --types)"
        );
        assert_eq!(
            typed("q", &["x".to_string()]).unwrap_err().to_string(),
            "unknown type letter 'q' in --types (use i h f d s c T F)"
        );
    }

    #[test]
    fn rendered_words_read_back_as_the_same_values() {
        for arg in [
            OscType::Int(-7),
            OscType::Long(5_000_000_000),
            OscType::Float(1.0),
            OscType::Float(0.25),
            OscType::Bool(false),
            OscType::String("sine".into()),
        ] {
            assert_eq!(infer(&render(&arg)), arg);
        }
        assert_eq!(render(&OscType::Float(2.0)), "2.0");
        assert_eq!(
            render(&OscType::String("two words".into())),
            "\"two words\""
        );
        assert_eq!(render(&OscType::String("3".into())), "\"3\"");
        assert_eq!(render(&OscType::String(String::new())), "\"\"");
        assert_eq!(render(&OscType::Blob(vec![1, 0xab])), "0x01ab");
    }
}
