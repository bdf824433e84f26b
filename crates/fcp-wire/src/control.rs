//! Flow-control objects of the symbol layer (spec §4.4): `DecodeStatus` tells a
//! sender how far a receiver got, `SymbolAck` tells it to stop.
//!
//! Both are canonical-CBOR control-plane objects (spec §9.3) with an
//! ObjectHeader; on the wire they are schema-prefixed bodies (profile §3).
//! `missing_hint` is a compact bitmap: bit `i % 8` of byte `i / 8` is set when
//! source symbol `i` has not arrived.

use fcp_core::object::{ObjectError, decode_body, encode_body};
use fcp_core::{CborError, EpochId, ObjectHeader, ObjectId, SchemaId, ZoneId};
use serde::{Deserialize, Serialize};

use crate::object::ObjectDecoder;

/// Schema of [`DecodeStatus`].
pub const DECODE_STATUS_SCHEMA: &str = "fcp.mesh:DecodeStatus@1.0.0";
/// Schema of [`SymbolAck`].
pub const SYMBOL_ACK_SCHEMA: &str = "fcp.mesh:SymbolAck@1.0.0";

/// Receiver progress on one object (spec §4.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeStatus {
    /// Object header of this control object.
    pub header: ObjectHeader,
    /// Object being decoded.
    pub object_id: ObjectId,
    /// Its zone.
    pub zone_id: ZoneId,
    /// Zone key of its symbols.
    #[serde(with = "fcp_core::cbor::byte_array")]
    pub zone_key_id: [u8; 8],
    /// Epoch of its symbols.
    pub epoch_id: EpochId,
    /// Unique symbols received.
    pub received_unique: u32,
    /// Symbols needed to decode.
    pub required: u32,
    /// Bitmap of missing source ESIs (see module docs).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub missing_hint: Option<Vec<u8>>,
}

/// Stop condition: the object is rebuilt (spec §4.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolAck {
    /// Object header of this control object.
    pub header: ObjectHeader,
    /// Object that was rebuilt.
    pub object_id: ObjectId,
    /// Its zone.
    pub zone_id: ZoneId,
    /// Zone key of its symbols.
    #[serde(with = "fcp_core::cbor::byte_array")]
    pub zone_key_id: [u8; 8],
    /// Epoch of its symbols.
    pub epoch_id: EpochId,
    /// Id of the reconstructed payload object, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstructed_object_id: Option<ObjectId>,
}

mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct B(#[serde(with = "fcp_core::cbor::bytes")] Vec<u8>);

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => fcp_core::cbor::bytes::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<B>::deserialize(d).map(|o| o.map(|b| b.0))
    }
}

fn schema(s: &str) -> Result<SchemaId, CborError> {
    SchemaId::parse(s).map_err(|e| CborError::Encode(e.to_string()))
}

impl DecodeStatus {
    /// Status of `decoder`, with the missing-source bitmap when incomplete.
    pub fn from_decoder(
        header: ObjectHeader,
        object_id: ObjectId,
        zone_id: ZoneId,
        zone_key_id: [u8; 8],
        epoch_id: EpochId,
        decoder: &ObjectDecoder,
    ) -> Self {
        Self {
            header,
            object_id,
            zone_id,
            zone_key_id,
            epoch_id,
            received_unique: decoder.received_unique(),
            required: decoder.required(),
            missing_hint: (!decoder.is_complete()).then(|| decoder.missing_source_bitmap()),
        }
    }

    /// Whether the receiver has everything it needs.
    pub fn is_complete(&self) -> bool {
        self.received_unique >= self.required
    }

    /// Schema-prefixed canonical body.
    pub fn encode(&self) -> Result<Vec<u8>, CborError> {
        encode_body(&schema(DECODE_STATUS_SCHEMA)?, self)
    }

    /// Strict decode of a schema-prefixed body.
    pub fn decode(bytes: &[u8]) -> Result<Self, ObjectError> {
        decode_body(&schema(DECODE_STATUS_SCHEMA)?, bytes)
    }
}

impl SymbolAck {
    /// Schema-prefixed canonical body.
    pub fn encode(&self) -> Result<Vec<u8>, CborError> {
        encode_body(&schema(SYMBOL_ACK_SCHEMA)?, self)
    }

    /// Strict decode of a schema-prefixed body.
    pub fn decode(bytes: &[u8]) -> Result<Self, ObjectError> {
        decode_body(&schema(SYMBOL_ACK_SCHEMA)?, bytes)
    }
}

/// Source ESIs marked missing in a `missing_hint` bitmap, below `k`.
pub fn missing_esis(bitmap: &[u8], k: u16) -> impl Iterator<Item = u32> + '_ {
    (0..u32::from(k)).filter(move |i| {
        bitmap
            .get((i / 8) as usize)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    })
}
