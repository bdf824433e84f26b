//! Identifiers and their derivations (spec §3.1-§3.4, profile §3).
//!
//! Wire mapping (profile §2, `docs/wire-format.md`): `ZoneId` and `SchemaId`
//! are CBOR text strings (their canonical string forms); `ObjectId`,
//! `ZoneIdHash` and `SchemaHash` are 32-byte byte strings; `EpochId` is an
//! unsigned integer. In JSON the 32-byte values are lowercase hex strings.
//! `ObjectIdKey` is a secret and has no serde mapping.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{ErrorCode, HasErrorCode};

/// Domain separators (profile §3).
pub mod domain {
    /// `ZoneIdHash` prefix.
    pub const ZONE_ID: &[u8] = b"FCP2-ZONE-ID-V1";
    /// `SchemaHash` prefix.
    pub const SCHEMA: &[u8] = b"FCP2-SCHEMA-V1";
    /// Scoped `ObjectId` prefix.
    pub const OBJECT_ID: &[u8] = b"FCP2-OBJECT-V2";
    /// Stored-object content prefix.
    pub const OBJECT_CONTENT: &[u8] = b"FCP2-OBJECT-V1";
    /// Unscoped content hash prefix.
    pub const UNSCOPED: &[u8] = b"FCP2-CONTENT-V2";
}

/// Maximum ZoneId length in bytes (profile §3).
pub const ZONE_ID_MAX_LEN: usize = 64;
/// Maximum length of a SchemaId namespace or name.
pub const SCHEMA_PART_MAX_LEN: usize = 64;
/// Default epoch granularity (profile §3).
pub const DEFAULT_EPOCH_SECS: u64 = 300;

/// Errors of identifier parsing and derivation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// ZoneId violates `[a-z0-9:_-]{1,64}`.
    #[error("invalid zone id: {0}")]
    InvalidZoneId(&'static str),
    /// SchemaId is not `namespace:name@MAJOR.MINOR.PATCH`.
    #[error("invalid schema id: {0}")]
    InvalidSchemaId(&'static str),
    /// A zone has no Tailscale tag form, or a tag has no zone form.
    #[error("no tailscale tag mapping: {0}")]
    TailscaleTag(&'static str),
    /// An object id string is not 64 lowercase hex characters.
    #[error("invalid object id: {0}")]
    InvalidObjectId(&'static str),
    /// Epoch granularity of zero seconds.
    #[error("epoch granularity must be at least 1 second")]
    ZeroEpochGranularity,
}

impl HasErrorCode for IdError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::InvalidZoneId(_) | Self::TailscaleTag(_) => ErrorCode::InvalidZoneId,
            Self::InvalidSchemaId(_) => ErrorCode::InvalidSchemaId,
            Self::InvalidObjectId(_) => ErrorCode::InvalidObjectId,
            Self::ZeroEpochGranularity => ErrorCode::InvalidParameter,
        }
    }
}

fn parse_hex32(s: &str) -> Result<[u8; 32], IdError> {
    if s.len() != 64 {
        return Err(IdError::InvalidObjectId("expected 64 hex characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(IdError::InvalidObjectId("expected lowercase hex"));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| IdError::InvalidObjectId("bad hex"))?;
    Ok(out)
}

/// Implements the common API of a 32-byte public value: `from_bytes`,
/// `as_bytes`, Display/Debug/FromStr as lowercase hex, serde as bstr/hex.
macro_rules! bytes32_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wrap raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_hex32(s).map(Self)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                crate::cbor::byte_array::serialize(&self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::cbor::byte_array::deserialize::<D, 32>(d).map(Self)
            }
        }
    };
}

bytes32_type!(
    /// `BLAKE3("FCP2-ZONE-ID-V1" || zone_id_utf8)` (profile §3, review 000 #1).
    ZoneIdHash
);
bytes32_type!(
    /// `BLAKE3("FCP2-SCHEMA-V1" || schema_id_bytes)` (spec §3.3, profile §3).
    SchemaHash
);
bytes32_type!(
    /// Content-addressed object identifier (spec §3.1, profile §3).
    ObjectId
);

// ---------------------------------------------------------------------------
// ZoneId (spec §3.4)
// ---------------------------------------------------------------------------

/// Zone identifier: 1..=64 bytes of ASCII `[a-z0-9:_-]` (profile §3).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneId(String);

fn zone_byte_ok(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'_' || b == b'-'
}

impl ZoneId {
    /// Validate and wrap a zone id.
    pub fn new(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::InvalidZoneId("empty"));
        }
        if s.len() > ZONE_ID_MAX_LEN {
            return Err(IdError::InvalidZoneId("longer than 64 bytes"));
        }
        if !s.bytes().all(zone_byte_ok) {
            return Err(IdError::InvalidZoneId("only [a-z0-9:_-] allowed"));
        }
        Ok(Self(s.to_owned()))
    }

    /// `z:owner` (spec §3.4).
    pub fn owner() -> Self {
        Self("z:owner".into())
    }
    /// `z:private`.
    pub fn private() -> Self {
        Self("z:private".into())
    }
    /// `z:work`.
    pub fn work() -> Self {
        Self("z:work".into())
    }
    /// `z:community`.
    pub fn community() -> Self {
        Self("z:community".into())
    }
    /// `z:public`.
    pub fn public() -> Self {
        Self("z:public".into())
    }

    /// The zone id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// `BLAKE3("FCP2-ZONE-ID-V1" || zone_id_utf8)` (profile §3).
    pub fn hash(&self) -> ZoneIdHash {
        let mut h = blake3::Hasher::new();
        h.update(domain::ZONE_ID);
        h.update(self.0.as_bytes());
        ZoneIdHash(*h.finalize().as_bytes())
    }

    /// Tailscale ACL tag, `z:<s>` -> `tag:fcp-<s>` (spec §3.4).
    ///
    /// Decision: only zones of the form `z:<s>` with `<s>` in `[a-z0-9-]+` map
    /// (Tailscale tag names allow letters, digits and dashes), so the mapping is
    /// a bijection; other zones return [`IdError::TailscaleTag`].
    pub fn to_tailscale_tag(&self) -> Result<String, IdError> {
        let suffix = self
            .0
            .strip_prefix("z:")
            .ok_or(IdError::TailscaleTag("zone id does not start with z:"))?;
        check_tag_suffix(suffix)?;
        Ok(format!("tag:fcp-{suffix}"))
    }

    /// Inverse of [`ZoneId::to_tailscale_tag`]: `tag:fcp-<s>` -> `z:<s>`.
    pub fn from_tailscale_tag(tag: &str) -> Result<Self, IdError> {
        let suffix = tag
            .strip_prefix("tag:fcp-")
            .ok_or(IdError::TailscaleTag("tag does not start with tag:fcp-"))?;
        check_tag_suffix(suffix)?;
        Self::new(&format!("z:{suffix}"))
    }
}

fn check_tag_suffix(suffix: &str) -> Result<(), IdError> {
    if suffix.is_empty()
        || !suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(IdError::TailscaleTag("suffix must be [a-z0-9-]+"));
    }
    Ok(())
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZoneId({})", self.0)
    }
}

impl FromStr for ZoneId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl Serialize for ZoneId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ZoneId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// SchemaId (spec §3.3)
// ---------------------------------------------------------------------------

/// Schema identifier `namespace:name@MAJOR.MINOR.PATCH` (spec §3.3, profile §3).
///
/// Decision: namespace is `[a-z0-9._-]{1,64}`, name is `[A-Za-z0-9_.-]{1,64}`,
/// version components are decimal `u32` without leading zeros (semver).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaId {
    namespace: String,
    name: String,
    version: (u32, u32, u32),
}

fn parse_semver_part(s: &str) -> Result<u32, IdError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError::InvalidSchemaId(
            "version parts must be decimal digits",
        ));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(IdError::InvalidSchemaId(
            "version parts must not have leading zeros",
        ));
    }
    s.parse::<u32>()
        .map_err(|_| IdError::InvalidSchemaId("version part out of range"))
}

fn check_namespace(ns: &str) -> Result<(), IdError> {
    if ns.is_empty() || ns.len() > SCHEMA_PART_MAX_LEN {
        return Err(IdError::InvalidSchemaId("namespace must be 1..=64 bytes"));
    }
    if !ns
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(IdError::InvalidSchemaId("namespace must be [a-z0-9._-]"));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), IdError> {
    if name.is_empty() || name.len() > SCHEMA_PART_MAX_LEN {
        return Err(IdError::InvalidSchemaId("name must be 1..=64 bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(IdError::InvalidSchemaId("name must be [A-Za-z0-9._-]"));
    }
    Ok(())
}

impl SchemaId {
    /// Build from parts, validating them.
    pub fn new(namespace: &str, name: &str, version: (u32, u32, u32)) -> Result<Self, IdError> {
        check_namespace(namespace)?;
        check_name(name)?;
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            version,
        })
    }

    /// Parse `namespace:name@MAJOR.MINOR.PATCH`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.len() > 2 * SCHEMA_PART_MAX_LEN + 40 {
            return Err(IdError::InvalidSchemaId("too long"));
        }
        let (ns, rest) = s
            .split_once(':')
            .ok_or(IdError::InvalidSchemaId("missing ':'"))?;
        let (name, ver) = rest
            .split_once('@')
            .ok_or(IdError::InvalidSchemaId("missing '@'"))?;
        let mut parts = ver.split('.');
        let (Some(a), Some(b), Some(c), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(IdError::InvalidSchemaId(
                "version must be MAJOR.MINOR.PATCH",
            ));
        };
        let version = (
            parse_semver_part(a)?,
            parse_semver_part(b)?,
            parse_semver_part(c)?,
        );
        Self::new(ns, name, version)
    }

    /// Namespace, e.g. `fcp.core`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Type name, e.g. `CapabilityObject`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `(major, minor, patch)`.
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }

    /// The schema id bytes `"{namespace}:{name}@{version}"` (spec §3.3).
    pub fn as_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// `BLAKE3("FCP2-SCHEMA-V1" || schema_id_bytes)` (profile §3).
    pub fn hash(&self) -> SchemaHash {
        let mut h = blake3::Hasher::new();
        h.update(domain::SCHEMA);
        h.update(&self.as_bytes());
        SchemaHash(*h.finalize().as_bytes())
    }
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = self.version;
        write!(f, "{}:{}@{a}.{b}.{c}", self.namespace, self.name)
    }
}

impl fmt::Debug for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SchemaId({self})")
    }
}

impl FromStr for SchemaId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl Serialize for SchemaId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for SchemaId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// ObjectIdKey and ObjectId (spec §3.1)
// ---------------------------------------------------------------------------

/// Secret per-zone object-id key (spec §3.1). Zeroized on drop; `Debug`
/// never prints the bytes; no serde mapping (it travels only HPKE-wrapped).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ObjectIdKey([u8; 32]);

impl ObjectIdKey {
    /// Wrap key bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key bytes (handle with care).
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ObjectIdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ObjectIdKey(..)")
    }
}

impl ObjectId {
    /// Scoped object id (spec §3.1 as amended by profile §3):
    /// `BLAKE3_keyed(key, "FCP2-OBJECT-V2" || ZoneIdHash || SchemaHash || content)`.
    ///
    /// Note: the spec text hashes the zone id string; the profile (which wins)
    /// uses the fixed-size `ZoneIdHash`.
    pub fn new(content: &[u8], zone: &ZoneId, schema: &SchemaId, key: &ObjectIdKey) -> Self {
        Self::new_with_hashes(content, &zone.hash(), &schema.hash(), key)
    }

    /// [`ObjectId::new`] with precomputed zone and schema hashes.
    pub fn new_with_hashes(
        content: &[u8],
        zone: &ZoneIdHash,
        schema: &SchemaHash,
        key: &ObjectIdKey,
    ) -> Self {
        let mut h = blake3::Hasher::new_keyed(&key.0);
        h.update(domain::OBJECT_ID);
        h.update(zone.as_bytes());
        h.update(schema.as_bytes());
        h.update(content);
        Self(*h.finalize().as_bytes())
    }

    /// Unscoped content hash `BLAKE3("FCP2-CONTENT-V2" || bytes)`.
    /// MUST NOT be used for security objects (spec §3.1 list).
    pub fn from_unscoped_bytes(content: &[u8]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(domain::UNSCOPED);
        h.update(content);
        Self(*h.finalize().as_bytes())
    }
}

// ---------------------------------------------------------------------------
// EpochId (spec §3.2)
// ---------------------------------------------------------------------------

/// Logical time unit: `unix_seconds / granularity` (spec §3.2, profile §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EpochId(u64);

impl EpochId {
    /// Wrap a raw epoch number.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// `ts / granularity_secs`. Decision: a granularity of 0 is a typed error
    /// ([`IdError::ZeroEpochGranularity`]), never a panic or a silent clamp.
    pub fn from_timestamp(unix_secs: u64, granularity_secs: u64) -> Result<Self, IdError> {
        unix_secs
            .checked_div(granularity_secs)
            .map(Self)
            .ok_or(IdError::ZeroEpochGranularity)
    }

    /// `ts / 300` (the default granularity).
    pub const fn from_unix_secs(unix_secs: u64) -> Self {
        Self(unix_secs / DEFAULT_EPOCH_SECS)
    }

    /// The epoch number.
    pub const fn value(self) -> u64 {
        self.0
    }
}

impl fmt::Display for EpochId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_hash_known_answer() {
        for z in ["z:owner", "z:private", "z:work", "z:community", "z:public"] {
            let mut h = blake3::Hasher::new();
            h.update(b"FCP2-ZONE-ID-V1");
            h.update(z.as_bytes());
            assert_eq!(
                ZoneId::new(z).unwrap().hash().as_bytes(),
                h.finalize().as_bytes()
            );
        }
        assert_eq!(
            ZoneId::private().hash(),
            ZoneId::new("z:private").unwrap().hash()
        );
    }

    #[test]
    fn schema_hash_known_answer() {
        let s = SchemaId::parse("fcp.core:CapabilityObject@1.0.0").unwrap();
        let mut h = blake3::Hasher::new();
        h.update(b"FCP2-SCHEMA-V1fcp.core:CapabilityObject@1.0.0");
        assert_eq!(s.hash().as_bytes(), h.finalize().as_bytes());
        assert_eq!(s.to_string(), "fcp.core:CapabilityObject@1.0.0");
        assert_eq!(
            SchemaId::new("fcp.core", "CapabilityObject", (1, 0, 0)).unwrap(),
            s
        );
    }

    #[test]
    fn object_id_known_answer() {
        let key = ObjectIdKey::from_bytes([7; 32]);
        let zone = ZoneId::work();
        let schema = SchemaId::parse("fcp.test:Blob@0.1.2").unwrap();
        let mut buf = Vec::new();
        buf.extend_from_slice(b"FCP2-OBJECT-V2");
        buf.extend_from_slice(blake3::hash(b"FCP2-ZONE-ID-V1z:work").as_bytes());
        buf.extend_from_slice(blake3::hash(b"FCP2-SCHEMA-V1fcp.test:Blob@0.1.2").as_bytes());
        buf.extend_from_slice(b"hello");
        let expect = blake3::keyed_hash(&[7; 32], &buf);
        let id = ObjectId::new(b"hello", &zone, &schema, &key);
        assert_eq!(id.as_bytes(), expect.as_bytes());
        assert_eq!(id.to_string(), expect.to_hex().to_string());
        assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
        assert_eq!(
            ObjectId::from_unscoped_bytes(b"x").as_bytes(),
            blake3::hash(b"FCP2-CONTENT-V2x").as_bytes()
        );
    }

    #[test]
    fn object_id_key_debug_hides_bytes() {
        let k = ObjectIdKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{k:?}"), "ObjectIdKey(..)");
    }

    #[test]
    fn object_id_parse_rejects() {
        assert!("".parse::<ObjectId>().is_err());
        assert!("AB".repeat(32).parse::<ObjectId>().is_err());
        assert!("0".repeat(63).parse::<ObjectId>().is_err());
        assert!("g".repeat(64).parse::<ObjectId>().is_err());
        assert!("é".repeat(32).parse::<ObjectId>().is_err());
    }

    #[test]
    fn zone_id_hostile() {
        let cases = [
            "",
            &"a".repeat(65),
            "Z:private",
            "z:privé",
            "z private",
            "z/private",
            "z:private\0",
            "z:\u{200b}",
        ];
        for c in cases {
            let e = ZoneId::new(c).unwrap_err();
            assert_eq!(e.error_code(), ErrorCode::InvalidZoneId, "{c:?}");
        }
        assert!(ZoneId::new(&"a".repeat(64)).is_ok());
        assert!(ZoneId::new("z:my_zone-2").is_ok());
    }

    #[test]
    fn schema_id_hostile() {
        let long = format!("{}:x@1.0.0", "a".repeat(65));
        let cases = [
            "",
            "fcp.core:Cap",
            "fcp.core:Cap@",
            "fcp.core:Cap@1.0",
            "fcp.core:Cap@1.0.0.0",
            "fcp.core:Cap@01.0.0",
            "fcp.core:Cap@1.00.0",
            "fcp.core:Cap@1.0.-1",
            "fcp.core:Cap@1.0.+1",
            "fcp.core:Cap@1.0.0-beta",
            "fcp.core:Cap@99999999999.0.0",
            "FCP:Cap@1.0.0",
            "fcp:Cäp@1.0.0",
            ":Cap@1.0.0",
            "fcp:@1.0.0",
            "fcpCap@1.0.0",
            "fcp:a:b@1.0.0",
            long.as_str(),
        ];
        for c in cases {
            let e = SchemaId::parse(c).unwrap_err();
            assert_eq!(e.error_code(), ErrorCode::InvalidSchemaId, "{c:?}");
        }
        assert!(SchemaId::parse("fcp.core:Cap@0.0.0").is_ok());
        assert!(SchemaId::parse("fcp.core:Cap@4294967295.10.0").is_ok());
    }

    #[test]
    fn tailscale_tags() {
        assert_eq!(
            ZoneId::private().to_tailscale_tag().unwrap(),
            "tag:fcp-private"
        );
        assert_eq!(
            ZoneId::from_tailscale_tag("tag:fcp-work").unwrap(),
            ZoneId::work()
        );
        for z in [
            ZoneId::owner(),
            ZoneId::private(),
            ZoneId::work(),
            ZoneId::community(),
            ZoneId::public(),
        ] {
            assert_eq!(
                ZoneId::from_tailscale_tag(&z.to_tailscale_tag().unwrap()).unwrap(),
                z
            );
        }
        assert!(ZoneId::new("private").unwrap().to_tailscale_tag().is_err());
        assert!(ZoneId::new("z:a_b").unwrap().to_tailscale_tag().is_err());
        assert!(ZoneId::new("z:a:b").unwrap().to_tailscale_tag().is_err());
        assert!(ZoneId::from_tailscale_tag("tag:fcp-").is_err());
        assert!(ZoneId::from_tailscale_tag("tag:other").is_err());
        assert!(ZoneId::from_tailscale_tag("tag:fcp-Work").is_err());
        assert!(ZoneId::from_tailscale_tag(&format!("tag:fcp-{}", "a".repeat(63))).is_err());
    }

    #[test]
    fn epoch() {
        assert_eq!(EpochId::from_timestamp(600, 300).unwrap().value(), 2);
        assert_eq!(EpochId::from_timestamp(599, 300).unwrap().value(), 1);
        assert_eq!(
            EpochId::from_timestamp(5, 0),
            Err(IdError::ZeroEpochGranularity)
        );
        assert_eq!(
            EpochId::from_unix_secs(1_700_000_000).value(),
            1_700_000_000 / 300
        );
        assert_eq!(
            EpochId::from_timestamp(u64::MAX, 1).unwrap().value(),
            u64::MAX
        );
    }

    #[test]
    fn serde_mapping() {
        let z = ZoneId::private();
        assert_eq!(
            hex::encode(crate::cbor::to_canonical(&z).unwrap()),
            "697a3a70726976617465"
        );
        let id = ObjectId::from_bytes([1; 32]);
        let enc = crate::cbor::to_canonical(&id).unwrap();
        assert_eq!(enc[0], 0x58);
        assert_eq!(enc[1], 32);
        assert_eq!(crate::cbor::from_canonical::<ObjectId>(&enc).unwrap(), id);
        assert!(crate::cbor::from_canonical::<ZoneId>(&hex::decode("615a").unwrap()).is_err());
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            format!("\"{}\"", "01".repeat(32))
        );
    }
}
