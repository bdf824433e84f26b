//! Owner-rooted identity objects (spec §2.2, §5.2, §19.4): the owner signs a
//! `NodeKeyAttestation` (node id <-> its three public keys) and a
//! `DeviceEnrollment` (which zones the device may join), and distributes zone
//! keys in `ZoneKeyManifest`s that HPKE-wrap them per node (profile §3).
//! `PeerAnnouncement` tells peers where a node listens, signed by the node.
//!
//! Signatures follow profile §3: Ed25519 over `"FCP2-SIGN-V1" || SchemaHash ||
//! canonical_cbor(object without its signature)`; the `signature` field is
//! `None` while signing and omitted from that encoding. Signing and
//! verification live in `fcp_crypto::signed`.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::cbor::{self, CborError};
use crate::ids::{SchemaId, ZoneId};

/// An object that carries its own signature (profile §3).
pub trait SignedObject: Serialize + DeserializeOwned + Clone {
    /// Its schema, `ns:name@x.y.z`.
    const SCHEMA: &'static str;
    /// The signature, when present.
    fn signature(&self) -> Option<&[u8; 64]>;
    /// Replace the signature.
    fn set_signature(&mut self, sig: Option<[u8; 64]>);

    /// The schema as a [`SchemaId`].
    fn schema() -> Result<SchemaId, CborError> {
        SchemaId::parse(Self::SCHEMA).map_err(|e| CborError::Encode(e.to_string()))
    }

    /// Canonical CBOR of the object without its signature: the signed bytes.
    fn unsigned_cbor(&self) -> Result<Vec<u8>, CborError> {
        let mut c = self.clone();
        c.set_signature(None);
        cbor::to_canonical(&c)
    }

    /// Canonical CBOR of the whole object.
    fn to_cbor(&self) -> Result<Vec<u8>, CborError> {
        cbor::to_canonical(self)
    }

    /// Strict canonical decode.
    fn from_cbor(bytes: &[u8]) -> Result<Self, CborError> {
        cbor::from_canonical_strict(bytes)
    }
}

macro_rules! signed_object {
    ($t:ty, $schema:literal) => {
        impl SignedObject for $t {
            const SCHEMA: &'static str = $schema;
            fn signature(&self) -> Option<&[u8; 64]> {
                self.signature.as_ref().map(|s| &s.0)
            }
            fn set_signature(&mut self, sig: Option<[u8; 64]>) {
                self.signature = sig.map(Sig);
            }
        }
    };
}

/// A 64-byte signature as a CBOR byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sig(#[serde(with = "crate::cbor::byte_array")] pub [u8; 64]);

/// A 32-byte public key as a CBOR byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKeyBytes(#[serde(with = "crate::cbor::byte_array")] pub [u8; 32]);

/// An 8-byte key id as a CBOR byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyIdBytes(#[serde(with = "crate::cbor::byte_array")] pub [u8; 8]);

/// Owner-signed binding of a node id to its keys (spec §2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeKeyAttestation {
    /// The node (Tailscale node id or, off-tailnet, the name given at `fcp init`).
    pub node_id: String,
    /// Ed25519 signing key (sessions, announcements, receipts).
    pub node_sig_pubkey: PublicKeyBytes,
    /// X25519 encryption key (zone key wrapping).
    pub node_enc_pubkey: PublicKeyBytes,
    /// Ed25519 issuance key (capability tokens only).
    pub node_iss_pubkey: PublicKeyBytes,
    /// Authorised ACL tags (`tag:fcp-<zone>`).
    pub tags: Vec<String>,
    /// Issue time, unix seconds.
    pub issued_at: u64,
    /// Optional expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Owner signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Sig>,
}
signed_object!(NodeKeyAttestation, "fcp.core:NodeKeyAttestation@1.0.0");

/// What a device may store (spec §19.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoragePermission {
    /// Symbols of these zones.
    StoreSymbols {
        /// Zones.
        zones: Vec<ZoneId>,
    },
    /// Secret shares.
    StoreSecretShares,
    /// Audit events.
    StoreAuditEvents,
}

/// Owner-signed mesh membership of a device (spec §19.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEnrollment {
    /// The device.
    pub node_id: String,
    /// Its signing key (must match its attestation).
    pub node_sig_pubkey: PublicKeyBytes,
    /// Zones whose keys it receives.
    pub allowed_zones: Vec<ZoneId>,
    /// What it may store.
    pub storage_permissions: Vec<StoragePermission>,
    /// Issue time.
    pub issued_at: u64,
    /// Optional expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Owner signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Sig>,
}
signed_object!(DeviceEnrollment, "fcp.core:DeviceEnrollment@1.0.0");

/// Zone AEAD algorithm (spec §5.2). Wire: `"chacha20poly1305"` / `"xchacha20poly1305"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKeyAlgorithm {
    /// 12-byte nonces (ring).
    #[serde(rename = "chacha20poly1305")]
    ChaCha20Poly1305,
    /// 24-byte nonces.
    #[serde(rename = "xchacha20poly1305")]
    XChaCha20Poly1305,
}

/// A key sealed to one node (spec §5.2 WrappedZoneKey / WrappedObjectIdKey).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Recipient node.
    pub node_id: String,
    /// Key id of the recipient's encryption key.
    pub node_enc_kid: KeyIdBytes,
    /// HPKE `enc || ciphertext` (profile §3 key wrap).
    #[serde(with = "crate::cbor::bytes")]
    pub sealed_key: Vec<u8>,
}

/// Owner-signed distribution of one zone key and the zone's ObjectIdKey (spec §5.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneKeyManifest {
    /// The zone.
    pub zone_id: ZoneId,
    /// Id of the zone key.
    pub zone_key_id: KeyIdBytes,
    /// AEAD algorithm of the zone.
    pub algorithm: ZoneKeyAlgorithm,
    /// Valid from (unix seconds).
    pub valid_from: u64,
    /// Valid until.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<u64>,
    /// Previous key id during rotation overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_zone_key_id: Option<KeyIdBytes>,
    /// Id of the ObjectIdKey.
    pub object_id_key_id: KeyIdBytes,
    /// The ObjectIdKey sealed per node (purpose `object-id-key`).
    pub wrapped_object_id_keys: Vec<WrappedKey>,
    /// The zone key sealed per node (purpose `zone-key`).
    pub wrapped_keys: Vec<WrappedKey>,
    /// Owner signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Sig>,
}
signed_object!(ZoneKeyManifest, "fcp.core:ZoneKeyManifest@1.0.0");

/// A node's signed statement of where it listens, relayed by any peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAnnouncement {
    /// The node's owner-signed attestation.
    pub attestation: NodeKeyAttestation,
    /// `IP:PORT` for both UDP (FCPS) and TCP (FCPC).
    pub addr: String,
    /// When announced; newer announcements replace older ones.
    pub announced_at: u64,
    /// Signature by the node's signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Sig>,
}
signed_object!(PeerAnnouncement, "fcp.mesh:PeerAnnouncement@1.0.0");
