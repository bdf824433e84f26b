//! Normative policy glob matcher (review 000 #4, profile §1 item 4).
//!
//! - `*` matches any run of bytes, including the empty run;
//! - `?` matches exactly one byte;
//! - every other byte matches itself; ASCII, case-sensitive; no escapes,
//!   no character classes, no regex;
//! - patterns are ASCII and at most [`MAX_PATTERN_LEN`] (128) bytes.
//!
//! The algorithm is the classic greedy matcher with a single backtrack point
//! (the last `*`), which runs in O(len(pattern) * len(text)) worst case and
//! never recurses, so pathological patterns such as `*a*a*a*a*b` stay cheap.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ErrorCode, HasErrorCode};

/// Maximum pattern length in bytes.
pub const MAX_PATTERN_LEN: usize = 128;

/// An invalid pattern.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// Pattern longer than 128 bytes.
    #[error("pattern longer than 128 bytes")]
    TooLong,
    /// Pattern contains a non-ASCII byte.
    #[error("pattern contains a non-ASCII byte")]
    NonAscii,
}

impl HasErrorCode for PatternError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidPattern
    }
}

/// A validated glob pattern.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Glob(String);

impl Glob {
    /// Validate a pattern.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        if !pattern.is_ascii() {
            return Err(PatternError::NonAscii);
        }
        Ok(Self(pattern.to_owned()))
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` matches (bytewise; non-ASCII text bytes can only be
    /// matched by `*` or `?`).
    pub fn matches(&self, text: &str) -> bool {
        match_bytes(self.0.as_bytes(), text.as_bytes())
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.0)
    }
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Validate `pattern` and match it against `text`.
pub fn glob_match(pattern: &str, text: &str) -> Result<bool, PatternError> {
    Glob::new(pattern).map(|g| g.matches(text))
}

fn match_bytes(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // (pattern index after the last '*', text index it was tried at)
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                backtrack = Some((pi, ti));
            }
            Some(&c) if c == b'?' || t.get(ti) == Some(&c) => {
                pi += 1;
                ti += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    // Let the last '*' absorb one more byte.
                    pi = bp;
                    ti = bt + 1;
                    backtrack = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let long_a = "a".repeat(10_000);
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("**", "", true),
            ("?", "", false),
            ("?", "a", true),
            ("?", "ab", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*c", "ac", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("fcp.*", "fcp.telegram", true),
            ("fcp.*", "fcp.", true),
            ("fcp.*", "fcpx", false),
            ("FCP.*", "fcp.telegram", false),
            ("fcp.*", "FCP.telegram", false),
            ("*.send_*", "telegram.send_message", true),
            ("*.send_*", "telegram.read", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("*a", "bbba", true),
            ("*a", "bbab", false),
            ("[a]", "a", false),
            ("[a]", "[a]", true),
            ("a.c", "abc", false),
            ("\\*", "\\x", true),
            ("?", "é", false), // two UTF-8 bytes
            ("??", "é", true),
            ("*", "é", true),
            ("*a*a*a*a*b", &long_a, false),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob_match(p, t).unwrap(), *want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn pathological_is_fast() {
        let text = "a".repeat(100_000);
        let pat = "*a".repeat(60) + "b";
        let start = std::time::Instant::now();
        assert!(!glob_match(&pat, &text).unwrap());
        assert!(start.elapsed().as_secs() < 5);
    }

    #[test]
    fn rejects_bad_patterns() {
        assert_eq!(
            glob_match(&"a".repeat(129), "a"),
            Err(PatternError::TooLong)
        );
        assert!(glob_match(&"a".repeat(128), &"a".repeat(128)).unwrap());
        assert_eq!(
            glob_match("caf\u{e9}", "caf\u{e9}"),
            Err(PatternError::NonAscii)
        );
        assert_eq!(
            PatternError::TooLong.error_code(),
            ErrorCode::InvalidPattern
        );
    }
}
