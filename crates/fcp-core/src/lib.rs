//! FCP core: identifiers and their derivations, canonical CBOR, object headers,
//! provenance and taint, zone policy, and the error registry.
//!
//! No IO, no clock, no RNG: time and randomness are parameters.
//!
//! Modules: [`ids`] (ZoneId, SchemaId, ObjectId, EpochId and their hashes,
//! profile §3), [`cbor`] (the only module touching the CBOR codec, profile §2),
//! [`object`] (ObjectHeader, StoredObject, retention, placement, spec §3.6),
//! [`provenance`] (taint, spec §6), [`safety`] (spec §7.2), [`zone`] (spec
//! §5.1-5.2), [`policy`] (ZonePolicy, TimePolicy, spec §5.3 + review 000
//! #4/#5), [`glob`] (normative pattern matcher), [`error`] (spec §24).
#![forbid(unsafe_code)]

pub mod cbor;
pub mod error;
pub mod glob;
pub mod identity;
pub mod ids;
pub mod object;
pub mod policy;
pub mod provenance;
pub mod safety;
pub mod zone;

pub use cbor::{CborError, decode_value, encode_value, from_canonical, to_canonical};
pub use error::{ErrorCode, FcpError, HasErrorCode};
pub use ids::{EpochId, IdError, ObjectId, ObjectIdKey, SchemaHash, SchemaId, ZoneId, ZoneIdHash};
pub use object::{ObjectHeader, ObjectPlacementPolicy, RetentionClass, StorageMeta, StoredObject};
pub use policy::{AccessRequest, TimePolicy, ZonePolicy};
pub use provenance::{Provenance, TaintDecision, TaintFlags, TaintReduction};
pub use safety::{ApprovalMode, IdempotencyClass, RiskLevel, SafetyTier};
pub use zone::{StandardZone, Zone, ZoneLevels};
