//! Owner-rooted membership (spec §2.2, §5.2, §19.4; profile §3 key wrap).
//!
//! The owner key lives on one device (`fcp owner init`; threshold signing comes
//! later). It creates the five standard zones, each with a random zone key and
//! ObjectIdKey, and enrolls devices: for each it signs a `NodeKeyAttestation`
//! and a `DeviceEnrollment`, and a `ZoneKeyManifest` per granted zone that
//! HPKE-wraps the zone key and ObjectIdKey for that device alone. A device
//! imports the resulting bundle with `fcp join`, which checks every owner
//! signature, that the attestation names its own keys, and that it can unwrap
//! every key it was granted. No static trust lists: a peer is trusted only
//! through an owner-signed attestation.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use fcp_core::identity::{
    DeviceEnrollment, KeyIdBytes, NodeKeyAttestation, PublicKeyBytes, StoragePermission,
    WrappedKey, ZoneKeyAlgorithm, ZoneKeyManifest,
};
use fcp_core::{ObjectIdKey, ZoneId, cbor};
use fcp_crypto::{
    AeadAlgorithm, Ed25519PublicKey, NodeEncryptionKey, NodeIssuanceKey, NodeKeys, NodeSigningKey,
    OwnerSigningKey, WrapPurpose, X25519PublicKey, ZoneKey, ZoneKeyId, signed, unwrap_key,
    wrap_key,
};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::NodeError;
use crate::home::{Home, NodeConfig};

/// The five standard zones (spec §3.4).
pub fn standard_zones() -> Vec<ZoneId> {
    vec![
        ZoneId::owner(),
        ZoneId::private(),
        ZoneId::work(),
        ZoneId::community(),
        ZoneId::public(),
    ]
}

/// A node's public identity, printed by `fcp node identity` (JSON, hex keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Node id.
    pub node_id: String,
    /// Listen address.
    pub listen: String,
    /// Ed25519 signing key, hex.
    pub node_sig_pubkey: String,
    /// X25519 encryption key, hex.
    pub node_enc_pubkey: String,
    /// Ed25519 issuance key, hex.
    pub node_iss_pubkey: String,
}

fn bad_arg(msg: impl Into<String>) -> NodeError {
    NodeError::InvalidArgument(msg.into())
}

/// Node ids: 1..=64 bytes of `[a-z0-9._-]`, starting with a letter or digit.
pub fn validate_node_id(id: &str) -> Result<(), NodeError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(bad_arg(format!(
            "node id `{id}` must be 1..=64 bytes of [a-z0-9._-] starting with a letter or digit"
        )))
    }
}

const KEY_SIGNING: &str = "keys/node-signing.key";
const KEY_ENCRYPTION: &str = "keys/node-encryption.key";
const KEY_ISSUANCE: &str = "keys/node-issuance.key";
const OWNER_KEY: &str = "owner/owner.key";
const TRUST_OWNER: &str = "trust/owner.pub";
const TRUST_BUNDLE: &str = "trust/bundle.cbor";

/// `fcp init`: create the node's three keys and its configuration.
pub fn init<R: CryptoRng + ?Sized>(
    home: &Home,
    node_id: &str,
    listen: &str,
    now: u64,
    rng: &mut R,
) -> Result<NodeIdentity, NodeError> {
    validate_node_id(node_id)?;
    listen
        .parse::<SocketAddr>()
        .map_err(|e| bad_arg(format!("--listen `{listen}` is not IP:PORT: {e}")))?;
    if home.exists("node.json") {
        return Err(NodeError::AlreadyExists(
            home.path("node.json").display().to_string(),
        ));
    }
    let keys = NodeKeys::generate(rng);
    home.write_secret(KEY_SIGNING, &keys.signing.to_key_file())?;
    home.write_secret(KEY_ENCRYPTION, &keys.encryption.to_key_file())?;
    home.write_secret(KEY_ISSUANCE, &keys.issuance.to_key_file())?;
    let cfg = NodeConfig {
        node_id: node_id.to_owned(),
        listen: listen.to_owned(),
        created_at: now,
    };
    let json = serde_json::to_vec_pretty(&cfg).map_err(|e| bad_arg(e.to_string()))?;
    home.write_public("node.json", &json)?;
    identity(home)
}

/// The node's own keys.
pub fn load_node_keys(home: &Home) -> Result<NodeKeys, NodeError> {
    home.config()?;
    let malformed = |p: &str| {
        let path = home.path(p).display().to_string();
        move |e: fcp_crypto::CryptoError| NodeError::Malformed {
            path,
            why: e.to_string(),
        }
    };
    Ok(NodeKeys {
        signing: NodeSigningKey::from_key_file(&home.read(KEY_SIGNING)?)
            .map_err(malformed(KEY_SIGNING))?,
        encryption: NodeEncryptionKey::from_key_file(&home.read(KEY_ENCRYPTION)?)
            .map_err(malformed(KEY_ENCRYPTION))?,
        issuance: NodeIssuanceKey::from_key_file(&home.read(KEY_ISSUANCE)?)
            .map_err(malformed(KEY_ISSUANCE))?,
    })
}

/// `fcp node identity`.
pub fn identity(home: &Home) -> Result<NodeIdentity, NodeError> {
    let cfg = home.config()?;
    let k = load_node_keys(home)?;
    Ok(NodeIdentity {
        node_id: cfg.node_id,
        listen: cfg.listen,
        node_sig_pubkey: hex::encode(k.signing.public_key().to_bytes()),
        node_enc_pubkey: hex::encode(k.encryption.public_key().to_bytes()),
        node_iss_pubkey: hex::encode(k.issuance.public_key().to_bytes()),
    })
}

fn hex32(field: &str, s: &str) -> Result<[u8; 32], NodeError> {
    let v = hex::decode(s).map_err(|e| bad_arg(format!("{field}: {e}")))?;
    <[u8; 32]>::try_from(v.as_slice()).map_err(|_| bad_arg(format!("{field}: need 32 bytes")))
}

/// Secret material of one zone, held by the owner (`owner/zones/<zone>.cbor`).
#[derive(Clone, Serialize, Deserialize)]
pub struct ZoneSecrets {
    /// The zone.
    pub zone_id: ZoneId,
    /// AEAD algorithm.
    pub algorithm: ZoneKeyAlgorithm,
    /// Zone key.
    #[serde(with = "fcp_core::cbor::byte_array")]
    pub zone_key: [u8; 32],
    /// Zone key id.
    pub zone_key_id: KeyIdBytes,
    /// ObjectIdKey.
    #[serde(with = "fcp_core::cbor::byte_array")]
    pub object_id_key: [u8; 32],
    /// ObjectIdKey id.
    pub object_id_key_id: KeyIdBytes,
    /// Creation time.
    pub created_at: u64,
}

impl Drop for ZoneSecrets {
    fn drop(&mut self) {
        self.zone_key.zeroize();
        self.object_id_key.zeroize();
    }
}

impl fmt::Debug for ZoneSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneSecrets")
            .field("zone_id", &self.zone_id)
            .field("zone_key_id", &hex::encode(self.zone_key_id.0))
            .field("keys", &"..")
            .finish()
    }
}

/// A peer as the owner knows it: attestation plus last known address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Owner-signed attestation.
    pub attestation: NodeKeyAttestation,
    /// `IP:PORT` (a hint: sessions authenticate the peer, not the address).
    pub addr: String,
}

/// What `fcp owner enroll` writes and `fcp join` imports (canonical CBOR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentBundle {
    /// The owner's public key (the trust anchor).
    pub owner_pubkey: PublicKeyBytes,
    /// The device's attestation.
    pub attestation: NodeKeyAttestation,
    /// The device's enrollment.
    pub enrollment: DeviceEnrollment,
    /// One manifest per granted zone, wrapping keys for this device only.
    pub manifests: Vec<ZoneKeyManifest>,
    /// Peers enrolled so far.
    pub peers: Vec<PeerInfo>,
}

fn zone_file(z: &ZoneId) -> String {
    format!("owner/zones/{}.cbor", z.as_str().replace(':', "_"))
}

fn node_file(node: &str) -> String {
    format!("owner/nodes/{node}.cbor")
}

fn owner_key(home: &Home) -> Result<OwnerSigningKey, NodeError> {
    if !home.exists(OWNER_KEY) {
        return Err(NodeError::NotOwner(home.root().display().to_string()));
    }
    OwnerSigningKey::from_key_file(&home.read(OWNER_KEY)?).map_err(|e| NodeError::Malformed {
        path: home.path(OWNER_KEY).display().to_string(),
        why: e.to_string(),
    })
}

fn read_cbor<T: serde::de::DeserializeOwned + Serialize>(
    home: &Home,
    rel: &str,
) -> Result<T, NodeError> {
    cbor::from_canonical_strict(&home.read(rel)?).map_err(|e| NodeError::Malformed {
        path: home.path(rel).display().to_string(),
        why: e.to_string(),
    })
}

/// Zone secrets the owner holds.
pub fn owner_zone(home: &Home, z: &ZoneId) -> Result<ZoneSecrets, NodeError> {
    if !home.exists(&zone_file(z)) {
        return Err(bad_arg(format!("the owner has no zone {z}")));
    }
    read_cbor(home, &zone_file(z))
}

/// `fcp owner init`: create the owner key and the standard zones on this
/// device, and enroll this device's node in all of them.
pub fn owner_init<R: CryptoRng + ?Sized>(
    home: &Home,
    now: u64,
    rng: &mut R,
) -> Result<EnrollmentBundle, NodeError> {
    let me = identity(home)?;
    if home.exists(OWNER_KEY) {
        return Err(NodeError::AlreadyExists(
            home.path(OWNER_KEY).display().to_string(),
        ));
    }
    let owner = OwnerSigningKey::generate(rng);
    home.write_secret(OWNER_KEY, &owner.to_key_file())?;
    for z in standard_zones() {
        let zk = ZoneKey::generate(rng);
        let mut oik = [0u8; 32];
        rng.fill_bytes(&mut oik);
        let mut oik_id = [0u8; 8];
        rng.fill_bytes(&mut oik_id);
        let secrets = ZoneSecrets {
            zone_id: z.clone(),
            algorithm: ZoneKeyAlgorithm::ChaCha20Poly1305,
            zone_key: *zk.key_bytes(),
            zone_key_id: KeyIdBytes(zk.key_id().0),
            object_id_key: oik,
            object_id_key_id: KeyIdBytes(oik_id),
            created_at: now,
        };
        oik.zeroize();
        home.write_secret(&zone_file(&z), &cbor::to_canonical(&secrets)?)?;
    }
    let bundle = owner_enroll(home, &me, &standard_zones(), now, rng)?;
    join(home, &cbor::to_canonical(&bundle)?)?;
    Ok(bundle)
}

/// `fcp owner enroll`: sign an attestation, an enrollment and one manifest per
/// granted zone for the device described by `ident`.
pub fn owner_enroll<R: CryptoRng + ?Sized>(
    home: &Home,
    ident: &NodeIdentity,
    zones: &[ZoneId],
    now: u64,
    rng: &mut R,
) -> Result<EnrollmentBundle, NodeError> {
    validate_node_id(&ident.node_id)?;
    ident
        .listen
        .parse::<SocketAddr>()
        .map_err(|e| bad_arg(format!("identity listen `{}`: {e}", ident.listen)))?;
    let owner = owner_key(home)?;
    let sig_pub = hex32("node_sig_pubkey", &ident.node_sig_pubkey)?;
    let enc_pub = hex32("node_enc_pubkey", &ident.node_enc_pubkey)?;
    let iss_pub = hex32("node_iss_pubkey", &ident.node_iss_pubkey)?;
    // The keys must be real keys before the owner vouches for them.
    Ed25519PublicKey::from_bytes(&sig_pub)?;
    Ed25519PublicKey::from_bytes(&iss_pub)?;
    let enc = X25519PublicKey::from_bytes(&enc_pub)?;
    if zones.is_empty() {
        return Err(bad_arg("grant at least one zone (--zones z:private,...)"));
    }
    let mut secrets = Vec::new();
    for z in zones {
        secrets.push(owner_zone(home, z)?);
    }
    let mut attestation = NodeKeyAttestation {
        node_id: ident.node_id.clone(),
        node_sig_pubkey: PublicKeyBytes(sig_pub),
        node_enc_pubkey: PublicKeyBytes(enc_pub),
        node_iss_pubkey: PublicKeyBytes(iss_pub),
        tags: zones
            .iter()
            .filter_map(|z| z.to_tailscale_tag().ok())
            .collect(),
        issued_at: now,
        expires_at: None,
        signature: None,
    };
    signed::sign(&owner, &mut attestation)?;
    let mut enrollment = DeviceEnrollment {
        node_id: ident.node_id.clone(),
        node_sig_pubkey: PublicKeyBytes(sig_pub),
        allowed_zones: zones.to_vec(),
        // Any enrolled device may hold ciphertext of any zone; only granted
        // zones' keys reach it.
        storage_permissions: vec![StoragePermission::StoreSymbols {
            zones: standard_zones(),
        }],
        issued_at: now,
        expires_at: None,
        signature: None,
    };
    signed::sign(&owner, &mut enrollment)?;
    let mut manifests = Vec::new();
    for s in &secrets {
        let zh = s.zone_id.hash();
        let wrap = |purpose, key_id: &KeyIdBytes, key: &[u8; 32], rng: &mut R| {
            wrap_key(rng, &enc, purpose, &zh, &key_id.0, &ident.node_id, key).map(|sealed_key| {
                WrappedKey {
                    node_id: ident.node_id.clone(),
                    node_enc_kid: KeyIdBytes(enc.kid().0),
                    sealed_key,
                }
            })
        };
        let mut m = ZoneKeyManifest {
            zone_id: s.zone_id.clone(),
            zone_key_id: s.zone_key_id,
            algorithm: s.algorithm,
            valid_from: s.created_at,
            valid_until: None,
            prev_zone_key_id: None,
            object_id_key_id: s.object_id_key_id,
            wrapped_object_id_keys: vec![wrap(
                WrapPurpose::ObjectIdKey,
                &s.object_id_key_id,
                &s.object_id_key,
                rng,
            )?],
            wrapped_keys: vec![wrap(
                WrapPurpose::ZoneKey,
                &s.zone_key_id,
                &s.zone_key,
                rng,
            )?],
            signature: None,
        };
        signed::sign(&owner, &mut m)?;
        manifests.push(m);
    }
    let mut peers = Vec::new();
    for f in home.list("owner/nodes")? {
        let p: PeerInfo = read_cbor(home, &format!("owner/nodes/{f}"))?;
        if p.attestation.node_id != ident.node_id {
            peers.push(p);
        }
    }
    let me = PeerInfo {
        attestation: attestation.clone(),
        addr: ident.listen.clone(),
    };
    home.write_public(&node_file(&ident.node_id), &cbor::to_canonical(&me)?)?;
    Ok(EnrollmentBundle {
        owner_pubkey: PublicKeyBytes(owner.public_key().to_bytes()),
        attestation,
        enrollment,
        manifests,
        peers,
    })
}

/// What `fcp join` imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JoinReport {
    /// The node.
    pub node_id: String,
    /// Zones whose keys it now holds.
    pub zones: Vec<String>,
    /// Peers it now knows.
    pub peers: Vec<String>,
    /// The owner key it trusts, hex.
    pub owner_pubkey: String,
}

fn reject(msg: impl Into<String>) -> NodeError {
    NodeError::BundleRejected(msg.into())
}

/// Keys of one zone, unwrapped for this node.
pub struct ZoneMaterial {
    /// Zone key.
    pub zone_key: ZoneKey,
    /// AEAD algorithm.
    pub algorithm: AeadAlgorithm,
    /// ObjectIdKey.
    pub object_id_key: ObjectIdKey,
}

impl fmt::Debug for ZoneMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneMaterial")
            .field("zone_key", &self.zone_key)
            .field("algorithm", &self.algorithm)
            .field("object_id_key", &"..")
            .finish()
    }
}

/// A verified membership: what a node trusts and the keys it holds.
#[derive(Debug)]
pub struct Membership {
    /// The owner key.
    pub owner: Ed25519PublicKey,
    /// This node's attestation.
    pub attestation: NodeKeyAttestation,
    /// This node's enrollment.
    pub enrollment: DeviceEnrollment,
    /// Keys of the zones this node belongs to.
    pub zones: BTreeMap<ZoneId, ZoneMaterial>,
    /// Peers (attestations verified).
    pub peers: BTreeMap<String, PeerInfo>,
}

/// Verify a bundle against this node's keys and unwrap everything it grants.
pub fn verify_bundle(
    keys: &NodeKeys,
    node_id: &str,
    b: &EnrollmentBundle,
) -> Result<Membership, NodeError> {
    let owner = Ed25519PublicKey::from_bytes(&b.owner_pubkey.0)?;
    signed::verify(&owner, &b.attestation)
        .map_err(|_| reject("attestation is not signed by the owner"))?;
    signed::verify(&owner, &b.enrollment)
        .map_err(|_| reject("enrollment is not signed by the owner"))?;
    let a = &b.attestation;
    if a.node_id != node_id
        || b.enrollment.node_id != node_id
        || a.node_sig_pubkey.0 != keys.signing.public_key().to_bytes()
        || a.node_enc_pubkey.0 != keys.encryption.public_key().to_bytes()
        || a.node_iss_pubkey.0 != keys.issuance.public_key().to_bytes()
        || b.enrollment.node_sig_pubkey != a.node_sig_pubkey
    {
        return Err(reject(format!(
            "the bundle is for node `{}` with other keys, not this node",
            a.node_id
        )));
    }
    let mut zones = BTreeMap::new();
    for m in &b.manifests {
        signed::verify(&owner, m).map_err(|_| {
            reject(format!(
                "manifest of {} is not signed by the owner",
                m.zone_id
            ))
        })?;
        if !b.enrollment.allowed_zones.contains(&m.zone_id) {
            return Err(reject(format!(
                "manifest for {} which the enrollment does not grant",
                m.zone_id
            )));
        }
        let mine = |w: &[WrappedKey]| {
            w.iter()
                .find(|k| k.node_id == node_id)
                .map(|k| k.sealed_key.clone())
                .ok_or_else(|| {
                    reject(format!(
                        "manifest of {} wraps no key for this node",
                        m.zone_id
                    ))
                })
        };
        let zh = m.zone_id.hash();
        let zk = unwrap_key(
            &keys.encryption,
            WrapPurpose::ZoneKey,
            &zh,
            &m.zone_key_id.0,
            node_id,
            &mine(&m.wrapped_keys)?,
        )?;
        let oik = unwrap_key(
            &keys.encryption,
            WrapPurpose::ObjectIdKey,
            &zh,
            &m.object_id_key_id.0,
            node_id,
            &mine(&m.wrapped_object_id_keys)?,
        )?;
        let (Ok(zk), Ok(oik)) = (
            <[u8; 32]>::try_from(&zk[..]),
            <[u8; 32]>::try_from(&oik[..]),
        ) else {
            return Err(reject("wrapped keys are not 32 bytes"));
        };
        let algorithm = match m.algorithm {
            ZoneKeyAlgorithm::ChaCha20Poly1305 => AeadAlgorithm::ChaCha20Poly1305,
            ZoneKeyAlgorithm::XChaCha20Poly1305 => AeadAlgorithm::XChaCha20Poly1305,
        };
        zones.insert(
            m.zone_id.clone(),
            ZoneMaterial {
                zone_key: ZoneKey::from_parts(zk, ZoneKeyId(m.zone_key_id.0)),
                algorithm,
                object_id_key: ObjectIdKey::from_bytes(oik),
            },
        );
    }
    let mut peers = BTreeMap::new();
    for p in &b.peers {
        signed::verify(&owner, &p.attestation).map_err(|_| {
            reject(format!(
                "peer {} is not attested by the owner",
                p.attestation.node_id
            ))
        })?;
        peers.insert(p.attestation.node_id.clone(), p.clone());
    }
    Ok(Membership {
        owner,
        attestation: b.attestation.clone(),
        enrollment: b.enrollment.clone(),
        zones,
        peers,
    })
}

/// `fcp join`: verify and import an enrollment bundle.
pub fn join(home: &Home, bundle_bytes: &[u8]) -> Result<JoinReport, NodeError> {
    let cfg = home.config()?;
    let keys = load_node_keys(home)?;
    let bundle: EnrollmentBundle = cbor::from_canonical_strict(bundle_bytes)
        .map_err(|e| reject(format!("not an enrollment bundle: {e}")))?;
    let m = verify_bundle(&keys, &cfg.node_id, &bundle)?;
    if home.exists(TRUST_OWNER) && home.read(TRUST_OWNER)? != bundle.owner_pubkey.0 {
        return Err(reject("this node already belongs to another owner"));
    }
    home.write_public(TRUST_OWNER, &bundle.owner_pubkey.0)?;
    home.write_public(TRUST_BUNDLE, bundle_bytes)?;
    Ok(JoinReport {
        node_id: cfg.node_id,
        zones: m.zones.keys().map(|z| z.to_string()).collect(),
        peers: m.peers.keys().cloned().collect(),
        owner_pubkey: hex::encode(bundle.owner_pubkey.0),
    })
}

/// Load and re-verify this node's membership (what the daemon trusts).
pub fn load_membership(home: &Home) -> Result<Membership, NodeError> {
    let cfg = home.config()?;
    if !home.exists(TRUST_BUNDLE) {
        return Err(NodeError::InvalidArgument(format!(
            "node `{}` is not enrolled; run `fcp join BUNDLE` (or `fcp owner init` on the owner's device)",
            cfg.node_id
        )));
    }
    let keys = load_node_keys(home)?;
    let bundle: EnrollmentBundle = read_cbor(home, TRUST_BUNDLE)?;
    verify_bundle(&keys, &cfg.node_id, &bundle)
}

/// Check a peer's attestation against the owner key (and its expiry at `now`).
pub fn verify_attestation(
    owner: &Ed25519PublicKey,
    a: &NodeKeyAttestation,
    now: u64,
) -> Result<(), NodeError> {
    signed::verify(owner, a).map_err(|_| {
        reject(format!(
            "attestation of {} is not signed by the owner",
            a.node_id
        ))
    })?;
    if a.expires_at.is_some_and(|e| now > e) {
        return Err(reject(format!("attestation of {} expired", a.node_id)));
    }
    Ok(())
}

/// The enrollment bundle bytes of `bundle`.
pub fn encode_bundle(bundle: &EnrollmentBundle) -> Result<Vec<u8>, NodeError> {
    Ok(cbor::to_canonical(bundle)?)
}
