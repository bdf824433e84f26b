//! Typed access to the fields of one JSON test case.

use serde_json::{Map, Value};

/// One vector case: a JSON object whose byte fields are lowercase hex.
#[derive(Clone, Copy, Debug)]
pub struct Case<'a>(&'a Map<String, Value>);

impl<'a> Case<'a> {
    /// Wrap a JSON object.
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self(map)
    }

    /// The raw JSON value of a field.
    pub fn get(&self, name: &str) -> Result<&'a Value, String> {
        self.0
            .get(name)
            .ok_or_else(|| format!("missing field `{name}`"))
    }

    /// A text field.
    pub fn str(&self, name: &str) -> Result<&'a str, String> {
        self.get(name)?
            .as_str()
            .ok_or_else(|| format!("field `{name}` is not a string"))
    }

    /// An unsigned integer field.
    pub fn u64(&self, name: &str) -> Result<u64, String> {
        self.get(name)?
            .as_u64()
            .ok_or_else(|| format!("field `{name}` is not an unsigned integer"))
    }

    /// A hex byte field (lowercase hex, profile §2).
    pub fn hex(&self, name: &str) -> Result<Vec<u8>, String> {
        let s = self.str(name)?;
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("field `{name}` is not lowercase hex"));
        }
        hex::decode(s).map_err(|e| format!("field `{name}` is not hex: {e}"))
    }

    /// A hex field of exactly `N` bytes.
    pub fn hex_n<const N: usize>(&self, name: &str) -> Result<[u8; N], String> {
        let v = self.hex(name)?;
        <[u8; N]>::try_from(v.as_slice())
            .map_err(|_| format!("field `{name}` is {} bytes, expected {N}", v.len()))
    }

    /// An array field.
    pub fn array(&self, name: &str) -> Result<&'a Vec<Value>, String> {
        self.get(name)?
            .as_array()
            .ok_or_else(|| format!("field `{name}` is not an array"))
    }
}

/// Compare an expected byte field with a recomputed value.
pub fn expect_eq(field: &str, expected: &[u8], got: &[u8]) -> Result<(), String> {
    if expected == got {
        Ok(())
    } else {
        Err(format!(
            "`{field}` mismatch: expected {}, recomputed {}",
            hex::encode(expected),
            hex::encode(got)
        ))
    }
}
