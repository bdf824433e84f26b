//! Canonical CBOR (spec §3.5, profile §2).
//!
//! This is the ONE module that talks to the CBOR codec (`cbor-core`, a
//! CBOR::Core / RFC 8949 §4.2.1 deterministic codec), so the codec can be
//! swapped without touching the rest of FCP.
//!
//! Rules enforced by every decoder here:
//! - shortest-form integers, lengths and tag numbers;
//! - definite lengths only (no indefinite strings, arrays or maps);
//! - map keys sorted by the bytewise order of their encodings, no duplicates;
//! - exactly one data item, no trailing bytes;
//! - nesting depth at most [`MAX_DEPTH`]; every declared length is bounded by
//!   the input size, so a hostile header cannot make us allocate gigabytes;
//! - re-encoding the decoded value must reproduce the input bytes exactly
//!   (belt and braces on top of the codec's own strict mode).
//!
//! Serde mapping (profile §2, documented in `docs/wire-format.md`): structs are
//! maps keyed by snake_case field names, `None` fields are omitted (types use
//! `skip_serializing_if`), byte arrays are byte strings (see [`bytes`] and
//! [`byte_array`]), unit enum variants are text strings and data-carrying
//! variants are single-entry maps `{ "variant": payload }`.

use std::fmt;

use crate::error::{ErrorCode, HasErrorCode};

/// The CBOR data model value (re-exported from the codec).
pub use cbor_core::Value;

/// Maximum nesting depth of arrays, maps and tags accepted by the decoders.
pub const MAX_DEPTH: u16 = 64;

/// Byte budget for speculative pre-allocation while decoding.
const OOM_BUDGET: usize = 1 << 20;

/// Errors of the canonical CBOR layer. Never produced by a panic path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CborError {
    /// Not well-formed CBOR (bad initial byte, invalid UTF-8, reserved values).
    Malformed,
    /// Input ended before a complete data item.
    Truncated,
    /// Well-formed but not canonical (non-shortest, indefinite, unsorted or duplicate keys).
    NonCanonical,
    /// Bytes follow the single data item.
    TrailingBytes,
    /// Canonical CBOR of the wrong shape for the requested type.
    TypeMismatch(String),
    /// Depth or length limit exceeded.
    LimitExceeded,
    /// A value could not be mapped to CBOR (serde serialisation error).
    Encode(String),
}

impl fmt::Display for CborError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => write!(f, "malformed CBOR"),
            Self::Truncated => write!(f, "truncated CBOR"),
            Self::NonCanonical => write!(f, "non-canonical CBOR"),
            Self::TrailingBytes => write!(f, "trailing bytes after CBOR item"),
            Self::TypeMismatch(m) => write!(f, "CBOR type mismatch: {m}"),
            Self::LimitExceeded => write!(f, "CBOR depth or length limit exceeded"),
            Self::Encode(m) => write!(f, "cannot encode value as CBOR: {m}"),
        }
    }
}

impl std::error::Error for CborError {}

impl HasErrorCode for CborError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Malformed | Self::Truncated => ErrorCode::CborMalformed,
            Self::NonCanonical => ErrorCode::CborNonCanonical,
            Self::TrailingBytes => ErrorCode::CborTrailingBytes,
            Self::TypeMismatch(_) => ErrorCode::CborTypeMismatch,
            Self::LimitExceeded => ErrorCode::CborLimitExceeded,
            Self::Encode(_) => ErrorCode::Internal,
        }
    }
}

fn map_codec_error(e: cbor_core::Error) -> CborError {
    use cbor_core::Error as E;
    match e {
        E::NonDeterministic => CborError::NonCanonical,
        E::UnexpectedEof => CborError::Truncated,
        E::LengthTooLarge | E::NestingTooDeep => CborError::LimitExceeded,
        // In binary mode the codec reports trailing data as InvalidFormat.
        E::InvalidFormat => CborError::TrailingBytes,
        _ => CborError::Malformed,
    }
}

/// Encode a value in canonical form (the codec only produces canonical CBOR).
pub fn encode_value(v: &Value<'_>) -> Vec<u8> {
    v.encode()
}

/// Decode exactly one canonical CBOR data item (profile §2).
///
/// Rejects non-canonical input, indefinite lengths, unsorted or duplicate map
/// keys, non-shortest integers/lengths, trailing bytes, nesting deeper than
/// [`MAX_DEPTH`] and declared lengths larger than the input.
pub fn decode_value(bytes: &[u8]) -> Result<Value<'static>, CborError> {
    decode_canonical(bytes).map(Value::into_owned)
}

/// Whether `bytes` are exactly one canonical CBOR item (the rules of
/// [`decode_value`]), without keeping the decoded value.
pub fn check_canonical(bytes: &[u8]) -> Result<(), CborError> {
    decode_canonical(bytes).map(drop)
}

/// [`decode_value`]'s item, borrowing from `bytes`.
fn decode_canonical(bytes: &[u8]) -> Result<Value<'_>, CborError> {
    let value = decode_value_unverified(bytes)?;
    // Belt and braces: the canonical form is unique, so re-encoding must give
    // the input back byte for byte.
    if !encodes_to(&value, bytes) {
        return Err(CborError::NonCanonical);
    }
    Ok(value)
}

/// [`decode_value`] without the final re-encoding, for callers that compare
/// a stricter re-encoding with the input themselves.
/// The item borrows from `bytes`.
fn decode_value_unverified(bytes: &[u8]) -> Result<Value<'_>, CborError> {
    // Every element of a string/array/map takes at least one byte of input, so
    // no valid declared length exceeds the input length.
    let limit = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    cbor_core::DecodeOptions::new()
        .recursion_limit(MAX_DEPTH)
        .length_limit(limit)
        .oom_mitigation(OOM_BUDGET)
        .decode(bytes)
        .map_err(map_codec_error)
}

/// Decode the first canonical CBOR item of `bytes` and return it with the bytes
/// that follow it (for self-delimiting prefixes such as the header of stored
/// object content, profile §3). Same rules as [`decode_value`] for the item.
/// The item borrows from `bytes`.
pub fn decode_prefix(bytes: &[u8]) -> Result<(Value<'_>, &[u8]), CborError> {
    let limit = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let mut seq = cbor_core::DecodeOptions::new()
        .recursion_limit(MAX_DEPTH)
        .length_limit(limit)
        .oom_mitigation(OOM_BUDGET)
        .sequence_decoder(bytes);
    let value = match seq.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(map_codec_error(e)),
        None => return Err(CborError::Truncated),
    };
    // Canonical encodings are unique: the item's bytes are its re-encoding,
    // compared as it is written (nothing is built).
    let rest = encoded_prefix_rest(&value, bytes).ok_or(CborError::NonCanonical)?;
    Ok((value, rest))
}

/// If `value`'s encoding is a prefix of `bytes`, the bytes after it.
fn encoded_prefix_rest<'b>(value: &Value<'_>, bytes: &'b [u8]) -> Option<&'b [u8]> {
    /// Compares what is written with the bytes expected, in order.
    struct Compare<'b> {
        rest: Option<&'b [u8]>,
    }
    impl std::io::Write for Compare<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.rest = self
                .rest
                .and_then(|r| r.split_at_checked(buf.len()))
                .and_then(|(head, tail)| (head == buf).then_some(tail));
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Compare { rest: Some(bytes) };
    value.write_to(&mut c).ok()?;
    c.rest
}

/// Whether `value` encodes to exactly `bytes`.
pub fn encodes_to(value: &Value<'_>, bytes: &[u8]) -> bool {
    encoded_prefix_rest(value, bytes).is_some_and(<[u8]>::is_empty)
}

/// Serialize any serde type to canonical CBOR bytes.
pub fn to_canonical<T: serde::Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, CborError> {
    to_value(v).map(|val| val.encode())
}

/// Serialize any serde type to a CBOR [`Value`].
pub fn to_value<T: serde::Serialize + ?Sized>(v: &T) -> Result<Value<'static>, CborError> {
    Value::serialized(v).map_err(|e| CborError::Encode(e.0))
}

/// Deserialize from canonical CBOR bytes (same rejection rules as
/// [`decode_value`]).
///
/// Note: serde ignores unknown map keys and accepts an explicit `null` for an
/// `Option` field. For signed or content-addressed objects use
/// [`from_canonical_strict`], which additionally requires that re-serialising
/// the result reproduces the input bytes exactly.
pub fn from_canonical<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CborError> {
    from_value(&decode_canonical(bytes)?)
}

/// Deserialize a [`Value`] into a serde type.
pub fn from_value<T: serde::de::DeserializeOwned>(value: &Value<'_>) -> Result<T, CborError> {
    value
        .deserialized::<T>()
        .map_err(|e| CborError::TypeMismatch(e.0))
}

/// Deserialize and require that the bytes are exactly the canonical encoding
/// of the result: no unknown fields, no explicit nulls for omitted options, no
/// tags the type does not produce (profile §2).
pub fn from_canonical_strict<T>(bytes: &[u8]) -> Result<T, CborError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    // The comparison below re-encodes the decoded type, which implies what
    // `decode_value`'s re-encoding of the generic value checks: skip that one
    // pass and name a failure as it would have.
    let value = decode_value_unverified(bytes)?;
    let non_canonical = || !encodes_to(&value, bytes);
    let out: T = match from_value(&value) {
        Ok(out) => out,
        Err(_) if non_canonical() => return Err(CborError::NonCanonical),
        Err(e) => return Err(e),
    };
    if !encodes_to(&to_value(&out)?, bytes) {
        if non_canonical() {
            return Err(CborError::NonCanonical);
        }
        return Err(CborError::TypeMismatch(
            "input is not the canonical encoding of the decoded type (unknown field, explicit null or extra tag)".into(),
        ));
    }
    Ok(out)
}

/// Serde helper: `Vec<u8>` as a CBOR byte string (`#[serde(with = "fcp_core::cbor::bytes")]`).
///
/// In human-readable formats (JSON) the bytes are a lowercase hex string.
pub mod bytes {
    use serde::{Deserializer, Serializer};

    /// Serialize as a byte string (hex text in human-readable formats).
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(v))
        } else {
            s.serialize_bytes(v)
        }
    }

    /// Deserialize from a byte string (hex text in human-readable formats).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(super::HexVisitor)
        } else {
            d.deserialize_byte_buf(super::BytesVisitor)
        }
    }
}

/// Serde helper: `[u8; N]` as a CBOR byte string of exactly N bytes
/// (`#[serde(with = "fcp_core::cbor::byte_array")]`).
pub mod byte_array {
    use serde::{Deserializer, Serializer, de::Error as _};

    /// Serialize as a byte string (hex text in human-readable formats).
    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        super::bytes::serialize(v.as_slice(), s)
    }

    /// Deserialize from a byte string of exactly N bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let v = super::bytes::deserialize(d)?;
        <[u8; N]>::try_from(v.as_slice())
            .map_err(|_| D::Error::invalid_length(v.len(), &"a byte string of the fixed length"))
    }
}

struct BytesVisitor;

impl serde::de::Visitor<'_> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

struct HexVisitor;

impl serde::de::Visitor<'_> for HexVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a lowercase hex string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        if v.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(E::custom("hex must be lowercase"));
        }
        hex::decode(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(hexstr: &str) -> Result<Value<'static>, CborError> {
        decode_value(&hex::decode(hexstr).unwrap())
    }

    /// A prefix item is checked as it is re-encoded, without building it:
    /// what follows is returned untouched, a non-canonical or truncated
    /// item is an error, and `encodes_to` wants the whole input.
    #[test]
    fn prefix_items_and_exact_encodings() {
        let bytes = hex::decode("a2616101616202ffee").unwrap();
        let (v, rest) = decode_prefix(&bytes).unwrap();
        assert_eq!(rest, [0xff, 0xee]);
        assert!(encodes_to(&v, &bytes[..7]));
        assert!(!encodes_to(&v, &bytes));
        assert!(!encodes_to(&v, &bytes[..6]));
        let h = |s: &str| hex::decode(s).unwrap();
        assert_eq!(
            decode_prefix(&h("1900ff01")).err(),
            Some(CborError::NonCanonical)
        );
        assert_eq!(
            decode_prefix(&h("a2616201616101")).err(),
            Some(CborError::NonCanonical)
        );
        assert!(decode_prefix(&h("a2616101")).is_err());
        assert_eq!(decode_prefix(&[]).err(), Some(CborError::Truncated));
        // The check alone: the same verdicts as decoding.
        for hexstr in [
            "a2616101616202",
            "1900ff",
            "a2616201616101",
            "a2616101",
            "01ff",
            "",
        ] {
            let b = h(hexstr);
            assert_eq!(
                check_canonical(&b).err(),
                decode_value(&b).err(),
                "{hexstr}"
            );
        }
    }

    #[test]
    fn accepts_canonical() {
        assert_eq!(dec("18ff").unwrap(), Value::from(255u64));
        assert!(dec("a2616101616202").is_ok()); // {"a":1,"b":2}
        assert!(dec("80").is_ok());
        assert!(dec("4401020304").is_ok());
    }

    #[test]
    fn rejects_non_shortest_integer() {
        assert_eq!(dec("1900ff"), Err(CborError::NonCanonical));
        assert_eq!(dec("1817"), Err(CborError::NonCanonical));
        assert_eq!(dec("3800"), Err(CborError::NonCanonical)); // -1 as 1-byte arg
    }

    #[test]
    fn rejects_non_shortest_length() {
        assert_eq!(dec("580161"), Err(CborError::NonCanonical)); // bstr len 1 as 1-byte arg
        assert_eq!(dec("780161"), Err(CborError::NonCanonical)); // tstr len 1 as 1-byte arg
        assert_eq!(dec("980100"), Err(CborError::NonCanonical)); // array len 1 as 1-byte arg
    }

    #[test]
    fn rejects_unsorted_map_keys() {
        assert_eq!(dec("a2616202616101"), Err(CborError::NonCanonical)); // {"b":2,"a":1}
    }

    #[test]
    fn key_order_is_bytewise_not_length_first() {
        // RFC 8949 §4.2.1: 100 (0x1864) sorts before -1 (0x20) bytewise.
        let v = Value::map([
            (Value::from(-1i64), Value::from(1u64)),
            (Value::from(100u64), Value::from(2u64)),
        ]);
        assert_eq!(hex::encode(encode_value(&v)), "a21864022001");
        assert!(dec("a21864022001").is_ok());
        assert_eq!(dec("a22001186402"), Err(CborError::NonCanonical));
    }

    #[test]
    fn rejects_duplicate_map_keys() {
        assert_eq!(dec("a2616101616102"), Err(CborError::NonCanonical));
    }

    #[test]
    fn rejects_indefinite_lengths() {
        assert_eq!(dec("5f4161ff"), Err(CborError::NonCanonical)); // bstr
        assert_eq!(dec("7f6161ff"), Err(CborError::NonCanonical)); // tstr
        assert_eq!(dec("9f01ff"), Err(CborError::NonCanonical)); // array
        assert_eq!(dec("bf616101ff"), Err(CborError::NonCanonical)); // map
    }

    #[test]
    fn rejects_trailing_bytes() {
        assert_eq!(dec("0100"), Err(CborError::TrailingBytes));
        assert_eq!(dec("a0a0"), Err(CborError::TrailingBytes));
    }

    #[test]
    fn rejects_malformed_and_truncated() {
        assert_eq!(dec(""), Err(CborError::Truncated));
        assert_eq!(dec("18"), Err(CborError::Truncated));
        assert_eq!(dec("6261"), Err(CborError::Truncated));
        assert_eq!(dec("8201"), Err(CborError::Truncated));
        assert!(dec("1c").is_err()); // reserved additional info 28
        assert!(dec("62c328").is_err()); // invalid UTF-8
        assert!(dec("ff").is_err()); // lone break
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        // bstr / array / map claiming 2^63 or 2^32 elements with no content.
        for h in [
            "5b7fffffffffffffff",
            "9b7fffffffffffffff",
            "bb7fffffffffffffff",
            "5affffffff",
            "9affffffff",
        ] {
            let e = dec(h).unwrap_err();
            assert!(
                matches!(e, CborError::LimitExceeded | CborError::Truncated),
                "{h}: {e:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut deep = vec![0x81u8; 100_000];
        deep.push(0x00);
        assert_eq!(decode_value(&deep), Err(CborError::LimitExceeded));
        let mut ok = vec![0x81u8; usize::from(MAX_DEPTH) - 1];
        ok.push(0x00);
        assert!(decode_value(&ok).is_ok());
        let mut tags = vec![0xc6u8; 100_000];
        tags.push(0x00);
        assert!(decode_value(&tags).is_err());
    }

    #[test]
    fn from_canonical_strict_rejects_unknown_fields_and_nulls() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct S {
            a: u64,
            #[serde(skip_serializing_if = "Option::is_none", default)]
            b: Option<u64>,
        }
        // {"a":1}
        assert_eq!(
            from_canonical_strict::<S>(&hex::decode("a1616101").unwrap()).unwrap(),
            S { a: 1, b: None }
        );
        // {"a":1,"b":null}
        let with_null = hex::decode("a26161016162f6").unwrap();
        assert!(from_canonical::<S>(&with_null).is_ok());
        assert!(matches!(
            from_canonical_strict::<S>(&with_null),
            Err(CborError::TypeMismatch(_))
        ));
        // {"a":1,"c":2}
        let unknown = hex::decode("a2616101616302").unwrap();
        assert!(matches!(
            from_canonical_strict::<S>(&unknown),
            Err(CborError::TypeMismatch(_))
        ));
        // wrong type
        assert!(matches!(
            from_canonical::<S>(&hex::decode("a1616160").unwrap()),
            Err(CborError::TypeMismatch(_))
        ));
        // Non-canonical input is NonCanonical whether or not it would decode
        // into the type: {"a":1} with 1 as a one-byte argument, keys out of
        // order, and a non-shortest string length with the wrong type.
        for bad in ["a161611801", "a2616202616101", "a16161780161"] {
            assert_eq!(
                from_canonical_strict::<S>(&hex::decode(bad).unwrap()),
                Err(CborError::NonCanonical),
                "{bad}"
            );
        }
    }

    #[test]
    fn byte_helpers_are_bstr() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct B {
            #[serde(with = "crate::cbor::bytes")]
            v: Vec<u8>,
            #[serde(with = "crate::cbor::byte_array")]
            k: [u8; 2],
        }
        let b = B {
            v: vec![1, 2],
            k: [3, 4],
        };
        let enc = to_canonical(&b).unwrap();
        assert_eq!(hex::encode(&enc), "a2616b4203046176420102");
        assert_eq!(from_canonical_strict::<B>(&enc).unwrap(), b);
        // an array of ints is not accepted for a byte field
        assert!(from_canonical::<B>(&hex::decode("a2616b8203046176420102").unwrap()).is_err());
        // wrong fixed length
        assert!(from_canonical::<B>(&hex::decode("a2616b430304056176420102").unwrap()).is_err());
        let j = serde_json::to_string(&b).unwrap();
        assert_eq!(j, r#"{"v":"0102","k":"0304"}"#);
        assert_eq!(serde_json::from_str::<B>(&j).unwrap(), b);
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            CborError::NonCanonical.error_code(),
            ErrorCode::CborNonCanonical
        );
        assert_eq!(
            CborError::TrailingBytes.error_code(),
            ErrorCode::CborTrailingBytes
        );
        assert_eq!(
            CborError::LimitExceeded.error_code(),
            ErrorCode::CborLimitExceeded
        );
    }
}
