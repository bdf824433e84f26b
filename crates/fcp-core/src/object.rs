//! Object header, stored objects, retention and placement (spec §3.6, §3.7,
//! profile §3).
//!
//! Stored object content (profile §3):
//! `"FCP2-OBJECT-V1" || canonical_cbor(header) || body`, with
//! `body = SchemaHash || canonical_cbor(value)`, and
//! `ObjectId = ObjectId::new(content, header.zone_id, header.schema, key)`.

use serde::{Deserialize, Serialize};

use crate::cbor::{self, CborError};
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{ObjectId, ObjectIdKey, SchemaHash, SchemaId, ZoneId, domain};
use crate::provenance::Provenance;

/// Basis points: 10_000 = 1.0. Used instead of floats in canonical objects.
pub type BasisPoints = u32;

/// Object placement policy (spec §3.6). Ratios are integers in basis points
/// (decision: no floats in canonical CBOR; 1.5 = 15_000, 0.67 = 6_700).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPlacementPolicy {
    /// Minimum distinct nodes holding symbols (default 2).
    pub min_nodes: u8,
    /// Maximum fraction of symbols any one node may hold, in basis points,
    /// 1..=10_000 (default 6_700 = 0.67).
    pub max_node_fraction_bps: BasisPoints,
    /// Preferred device selectors (e.g. `tag:fcp-private`).
    pub preferred_devices: Vec<String>,
    /// Hard exclusions.
    pub excluded_devices: Vec<String>,
    /// Target coverage (symbols held / symbols needed) in basis points,
    /// >= 10_000 (default 15_000 = 1.5).
    pub target_coverage_bps: BasisPoints,
}

impl Default for ObjectPlacementPolicy {
    fn default() -> Self {
        Self {
            min_nodes: 2,
            max_node_fraction_bps: 6_700,
            preferred_devices: Vec::new(),
            excluded_devices: Vec::new(),
            target_coverage_bps: 15_000,
        }
    }
}

impl ObjectPlacementPolicy {
    /// Check ranges: `min_nodes >= 1`, `max_node_fraction_bps` in
    /// `1..=10_000`, `target_coverage_bps >= 10_000`.
    pub fn validate(&self) -> Result<(), ObjectError> {
        if self.min_nodes == 0 {
            return Err(ObjectError::InvalidPlacement("min_nodes must be >= 1"));
        }
        if self.max_node_fraction_bps == 0 || self.max_node_fraction_bps > 10_000 {
            return Err(ObjectError::InvalidPlacement(
                "max_node_fraction_bps must be 1..=10000",
            ));
        }
        if self.target_coverage_bps < 10_000 {
            return Err(ObjectError::InvalidPlacement(
                "target_coverage_bps must be >= 10000",
            ));
        }
        Ok(())
    }
}

/// Retention class (spec §3.6). Wire mapping: `"pinned"`, `"ephemeral"`,
/// `{"lease": {"expires_at": u64}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionClass {
    /// Never evict unless explicitly unpinned.
    Pinned,
    /// Keep until the lease expires (renewable).
    Lease {
        /// Unix seconds.
        expires_at: u64,
    },
    /// Best-effort cache.
    Ephemeral,
}

impl RetentionClass {
    /// Whether GC may evict an unreachable object with this retention at
    /// `now` (spec §3.7 invariants): never for `Pinned`, only after expiry for
    /// `Lease`, always for `Ephemeral`.
    pub fn evictable_at(self, now: u64) -> bool {
        match self {
            Self::Pinned => false,
            Self::Lease { expires_at } => now > expires_at,
            Self::Ephemeral => true,
        }
    }
}

/// Node-local storage metadata, not content-addressed (spec §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageMeta {
    /// Retention class.
    pub retention: RetentionClass,
}

/// Universal object header (spec §3.6). Must not embed its own object id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHeader {
    /// Schema (CBOR text `ns:name@x.y.z`).
    pub schema: SchemaId,
    /// Zone.
    pub zone_id: ZoneId,
    /// Creation time (Unix seconds).
    pub created_at: u64,
    /// Origin provenance.
    pub provenance: Provenance,
    /// Strong refs (GC graph).
    pub refs: Vec<ObjectId>,
    /// Optional TTL in seconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ttl_secs: Option<u64>,
    /// Optional placement policy.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub placement: Option<ObjectPlacementPolicy>,
}

/// Errors of object construction and verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// CBOR encoding/decoding failed.
    #[error(transparent)]
    Cbor(#[from] CborError),
    /// The body does not start with the expected schema hash.
    #[error("body schema hash does not match the header schema")]
    SchemaHashMismatch,
    /// The stored object id does not match the derived one.
    #[error("object id does not match its content")]
    ObjectIdMismatch,
    /// Placement policy out of range.
    #[error("invalid placement policy: {0}")]
    InvalidPlacement(&'static str),
    /// Content does not start with the stored-object domain prefix.
    #[error("object content does not start with FCP2-OBJECT-V1")]
    BadContentPrefix,
}

impl HasErrorCode for ObjectError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Cbor(e) => e.error_code(),
            Self::SchemaHashMismatch => ErrorCode::SchemaHashMismatch,
            Self::ObjectIdMismatch => ErrorCode::ObjectIdMismatch,
            Self::InvalidPlacement(_) => ErrorCode::InvalidParameter,
            Self::BadContentPrefix => ErrorCode::ObjectCorrupt,
        }
    }
}

/// Encode a schema-prefixed body: `SchemaHash || canonical_cbor(value)`
/// (spec §3.5, profile §3).
pub fn encode_body<T: Serialize + ?Sized>(
    schema: &SchemaId,
    value: &T,
) -> Result<Vec<u8>, CborError> {
    let mut out = schema.hash().as_bytes().to_vec();
    out.extend_from_slice(&cbor::to_canonical(value)?);
    Ok(out)
}

/// Check the schema-hash prefix of a body and return the CBOR part.
pub fn split_body<'a>(schema: &SchemaHash, body: &'a [u8]) -> Result<&'a [u8], ObjectError> {
    match body.split_at_checked(32) {
        Some((prefix, rest)) if prefix == schema.as_bytes() => Ok(rest),
        _ => Err(ObjectError::SchemaHashMismatch),
    }
}

/// Decode a schema-prefixed body, requiring canonical CBOR that is exactly
/// the encoding of `T` (spec §3.5 `deserialize` with schema verification).
pub fn decode_body<T>(schema: &SchemaId, body: &[u8]) -> Result<T, ObjectError>
where
    T: serde::de::DeserializeOwned + Serialize,
{
    let rest = split_body(&schema.hash(), body)?;
    Ok(cbor::from_canonical_strict(rest)?)
}

/// Stored object record (spec §3.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Derived id.
    pub object_id: ObjectId,
    /// Header.
    pub header: ObjectHeader,
    /// Schema-prefixed canonical CBOR body.
    #[serde(with = "crate::cbor::bytes")]
    pub body: Vec<u8>,
    /// Node-local storage policy.
    pub storage: StorageMeta,
}

impl StoredObject {
    /// `"FCP2-OBJECT-V1" || canonical_cbor(header) || body` (profile §3).
    pub fn canonical_bytes(header: &ObjectHeader, body: &[u8]) -> Result<Vec<u8>, CborError> {
        let h = cbor::to_canonical(header)?;
        let mut out = Vec::with_capacity(domain::OBJECT_CONTENT.len() + h.len() + body.len());
        out.extend_from_slice(domain::OBJECT_CONTENT);
        out.extend_from_slice(&h);
        out.extend_from_slice(body);
        Ok(out)
    }

    /// `ObjectId::new(canonical_bytes(header, body), zone, schema, key)`.
    pub fn derive_id(
        header: &ObjectHeader,
        body: &[u8],
        key: &ObjectIdKey,
    ) -> Result<ObjectId, CborError> {
        let content = Self::canonical_bytes(header, body)?;
        Ok(ObjectId::new(
            &content,
            &header.zone_id,
            &header.schema,
            key,
        ))
    }

    /// Build a stored object from a header and a typed value.
    pub fn from_value<T: Serialize + ?Sized>(
        header: ObjectHeader,
        value: &T,
        storage: StorageMeta,
        key: &ObjectIdKey,
    ) -> Result<Self, ObjectError> {
        let body = encode_body(&header.schema, value)?;
        Self::new(header, body, storage, key)
    }

    /// Build from a header and an already schema-prefixed body; checks the
    /// body prefix and the placement policy, and derives the id.
    pub fn new(
        header: ObjectHeader,
        body: Vec<u8>,
        storage: StorageMeta,
        key: &ObjectIdKey,
    ) -> Result<Self, ObjectError> {
        split_body(&header.schema.hash(), &body)?;
        if let Some(p) = &header.placement {
            p.validate()?;
        }
        let object_id = Self::derive_id(&header, &body, key)?;
        Ok(Self {
            object_id,
            header,
            body,
            storage,
        })
    }

    /// Split stored object content (`"FCP2-OBJECT-V1" || canonical_cbor(header)
    /// || body`, profile §3) back into header and body. The header must be
    /// strictly canonical and the body must start with its schema hash.
    pub fn parse_content(content: &[u8]) -> Result<(ObjectHeader, &[u8]), ObjectError> {
        let rest = content
            .strip_prefix(domain::OBJECT_CONTENT)
            .ok_or(ObjectError::BadContentPrefix)?;
        let (value, body) = cbor::decode_prefix(rest)?;
        let header: ObjectHeader = cbor::from_value(&value)?;
        // decode_prefix checked that the consumed bytes are the value's
        // canonical encoding; the typed header must re-encode to them too.
        let consumed = rest.get(..rest.len() - body.len()).unwrap_or_default();
        if !cbor::encodes_to(&cbor::to_value(&header)?, consumed) {
            return Err(
                CborError::TypeMismatch("header is not in its canonical form".into()).into(),
            );
        }
        split_body(&header.schema.hash(), body)?;
        Ok((header, body))
    }

    /// Rebuild a stored object from its content (as carried by RaptorQ
    /// symbols), deriving its id with the zone's ObjectIdKey. Callers compare
    /// the result's `object_id` with the id they asked for.
    pub fn from_content(
        content: &[u8],
        storage: StorageMeta,
        key: &ObjectIdKey,
    ) -> Result<Self, ObjectError> {
        let (header, body) = Self::parse_content(content)?;
        let object_id = ObjectId::new(content, &header.zone_id, &header.schema, key);
        Ok(Self {
            object_id,
            header,
            body: body.to_vec(),
            storage,
        })
    }

    /// [`StoredObject::from_content`] taking the content by value: the body
    /// reuses its allocation instead of being copied (the get path).
    pub fn from_content_vec(
        mut content: Vec<u8>,
        storage: StorageMeta,
        key: &ObjectIdKey,
    ) -> Result<Self, ObjectError> {
        let (header, body) = Self::parse_content(&content)?;
        let body_at = content.len() - body.len();
        let object_id = ObjectId::new(&content, &header.zone_id, &header.schema, key);
        content.drain(..body_at);
        Ok(Self {
            object_id,
            header,
            body: content,
            storage,
        })
    }

    /// The content bytes that RaptorQ symbols carry (profile §3).
    pub fn content(&self) -> Result<Vec<u8>, CborError> {
        Self::canonical_bytes(&self.header, &self.body)
    }

    /// Re-derive the id and compare (for objects received from peers).
    pub fn verify_id(&self, key: &ObjectIdKey) -> Result<(), ObjectError> {
        split_body(&self.header.schema.hash(), &self.body)?;
        if Self::derive_id(&self.header, &self.body, key)? != self.object_id {
            return Err(ObjectError::ObjectIdMismatch);
        }
        Ok(())
    }

    /// Decode the body as `T` (schema hash checked, strict canonical).
    pub fn decode_body<T>(&self) -> Result<T, ObjectError>
    where
        T: serde::de::DeserializeOwned + Serialize,
    {
        decode_body(&self.header.schema, &self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::TaintFlags;

    fn header() -> ObjectHeader {
        ObjectHeader {
            schema: SchemaId::parse("fcp.test:Note@1.0.0").unwrap(),
            zone_id: ZoneId::work(),
            created_at: 1_700_000_000,
            provenance: Provenance::new(ZoneId::work(), 60, 70, TaintFlags::NONE, 1_700_000_000),
            refs: vec![ObjectId::from_bytes([9; 32])],
            ttl_secs: None,
            placement: None,
        }
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Note {
        text: String,
    }

    #[test]
    fn derive_id_matches_profile_formula() {
        let key = ObjectIdKey::from_bytes([3; 32]);
        let h = header();
        let note = Note { text: "hi".into() };
        let obj = StoredObject::from_value(
            h.clone(),
            &note,
            StorageMeta {
                retention: RetentionClass::Pinned,
            },
            &key,
        )
        .unwrap();
        // Independent computation.
        let mut body = blake3::hash(b"FCP2-SCHEMA-V1fcp.test:Note@1.0.0")
            .as_bytes()
            .to_vec();
        body.extend_from_slice(&hex::decode("a164746578746268 69".replace(' ', "")).unwrap());
        assert_eq!(obj.body, body);
        let mut content = b"FCP2-OBJECT-V1".to_vec();
        content.extend_from_slice(&cbor::to_canonical(&h).unwrap());
        content.extend_from_slice(&body);
        let mut pre = b"FCP2-OBJECT-V2".to_vec();
        pre.extend_from_slice(blake3::hash(b"FCP2-ZONE-ID-V1z:work").as_bytes());
        pre.extend_from_slice(blake3::hash(b"FCP2-SCHEMA-V1fcp.test:Note@1.0.0").as_bytes());
        pre.extend_from_slice(&content);
        assert_eq!(
            obj.object_id.as_bytes(),
            blake3::keyed_hash(&[3; 32], &pre).as_bytes()
        );
        assert!(obj.verify_id(&key).is_ok());
        assert_eq!(obj.decode_body::<Note>().unwrap(), note);
        // Storage meta does not affect the id.
        let obj2 = StoredObject::from_value(
            h,
            &note,
            StorageMeta {
                retention: RetentionClass::Ephemeral,
            },
            &key,
        )
        .unwrap();
        assert_eq!(obj.object_id, obj2.object_id);
    }

    #[test]
    fn tampering_detected() {
        let key = ObjectIdKey::from_bytes([3; 32]);
        let mut obj = StoredObject::from_value(
            header(),
            &Note { text: "a".into() },
            StorageMeta {
                retention: RetentionClass::Pinned,
            },
            &key,
        )
        .unwrap();
        assert_eq!(
            obj.verify_id(&ObjectIdKey::from_bytes([4; 32])),
            Err(ObjectError::ObjectIdMismatch)
        );
        obj.header.created_at += 1;
        assert_eq!(
            obj.verify_id(&key).unwrap_err().error_code(),
            ErrorCode::ObjectIdMismatch
        );
        let other = SchemaId::parse("fcp.test:Other@1.0.0").unwrap();
        assert_eq!(
            decode_body::<Note>(&other, &obj.body),
            Err(ObjectError::SchemaHashMismatch)
        );
        assert_eq!(
            split_body(&other.hash(), &[0; 5]),
            Err(ObjectError::SchemaHashMismatch)
        );
        let bad = StoredObject::new(
            header(),
            vec![0; 40],
            StorageMeta {
                retention: RetentionClass::Pinned,
            },
            &key,
        );
        assert_eq!(bad.unwrap_err(), ObjectError::SchemaHashMismatch);
    }

    #[test]
    fn placement_defaults_and_validation() {
        let p = ObjectPlacementPolicy::default();
        assert_eq!(
            (p.min_nodes, p.max_node_fraction_bps, p.target_coverage_bps),
            (2, 6_700, 15_000)
        );
        assert!(p.validate().is_ok());
        for bad in [
            ObjectPlacementPolicy {
                min_nodes: 0,
                ..p.clone()
            },
            ObjectPlacementPolicy {
                max_node_fraction_bps: 0,
                ..p.clone()
            },
            ObjectPlacementPolicy {
                max_node_fraction_bps: 10_001,
                ..p.clone()
            },
            ObjectPlacementPolicy {
                target_coverage_bps: 9_999,
                ..p.clone()
            },
        ] {
            assert_eq!(
                bad.validate().unwrap_err().error_code(),
                ErrorCode::InvalidParameter
            );
        }
    }

    #[test]
    fn retention_mapping_and_eviction() {
        assert_eq!(
            cbor::to_canonical(&RetentionClass::Pinned).unwrap(),
            b"\x66pinned"
        );
        assert_eq!(
            hex::encode(cbor::to_canonical(&RetentionClass::Lease { expires_at: 5 }).unwrap()),
            "a1656c65617365a16a657870697265735f617405"
        );
        assert!(!RetentionClass::Pinned.evictable_at(u64::MAX));
        assert!(!RetentionClass::Lease { expires_at: 10 }.evictable_at(10));
        assert!(RetentionClass::Lease { expires_at: 10 }.evictable_at(11));
        assert!(RetentionClass::Ephemeral.evictable_at(0));
    }

    #[test]
    fn content_round_trip_and_hostile_content() {
        let key = ObjectIdKey::from_bytes([3; 32]);
        let obj = StoredObject::from_value(
            header(),
            &Note { text: "hi".into() },
            StorageMeta {
                retention: RetentionClass::Pinned,
            },
            &key,
        )
        .unwrap();
        let content = obj.content().unwrap();
        let back = StoredObject::from_content(&content, obj.storage, &key).unwrap();
        assert_eq!(back, obj);
        assert_eq!(
            StoredObject::from_content_vec(content.clone(), obj.storage, &key).unwrap(),
            obj
        );
        // Wrong prefix, truncated header, body without schema hash.
        assert_eq!(
            StoredObject::parse_content(&content[1..]).unwrap_err(),
            ObjectError::BadContentPrefix
        );
        assert!(StoredObject::parse_content(&content[..20]).is_err());
        let cut = content.len() - obj.body.len() + 10;
        assert_eq!(
            StoredObject::parse_content(&content[..cut]).unwrap_err(),
            ObjectError::SchemaHashMismatch
        );
        // Another key derives another id.
        let other =
            StoredObject::from_content(&content, obj.storage, &ObjectIdKey::from_bytes([4; 32]))
                .unwrap();
        assert_ne!(other.object_id, obj.object_id);
    }
}
