//! Object signatures (profile §3 "signature bytes").
//!
//! The signed message is `"FCP2-SIGN-V1" || SchemaHash || canonical_cbor(object
//! without its signature field(s))`. Verification uses `verify_strict`
//! (rejects small-order keys/R and non-canonical S).

use core::fmt;

use fcp_core::SchemaHash;

use crate::error::{CryptoError, Result};
use crate::keys::{Ed25519PublicKey, Ed25519Signer, hex_lower};

/// Domain separator of object signatures.
pub const SIGN_DOMAIN: &[u8] = b"FCP2-SIGN-V1";

/// A 64-byte Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// Decode 64 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        <[u8; 64]>::try_from(bytes)
            .map(Self)
            .map_err(|_| CryptoError::InvalidKeyEncoding("signature length"))
    }

    /// The raw bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex_lower(&self.0))
    }
}

/// The exact bytes an object signature covers (profile §3).
pub fn signing_message(schema_hash: &SchemaHash, unsigned_cbor: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGN_DOMAIN.len() + 32 + unsigned_cbor.len());
    m.extend_from_slice(SIGN_DOMAIN);
    m.extend_from_slice(schema_hash.as_bytes());
    m.extend_from_slice(unsigned_cbor);
    m
}

/// Sign an object's canonical CBOR (without its signature field) under its schema hash.
pub fn sign_object<K: Ed25519Signer + ?Sized>(
    key: &K,
    schema_hash: &SchemaHash,
    unsigned_cbor: &[u8],
) -> Signature {
    key.sign_raw(&signing_message(schema_hash, unsigned_cbor))
}

/// Strictly verify raw message bytes.
pub fn verify_raw(key: &Ed25519PublicKey, message: &[u8], sig: &Signature) -> Result<()> {
    let s = ed25519_dalek::Signature::from_bytes(&sig.0);
    key.0
        .verify_strict(message, &s)
        .map_err(|_| CryptoError::SignatureInvalid)
}

/// Verify an object signature (profile §3), strictly.
pub fn verify_object(
    key: &Ed25519PublicKey,
    schema_hash: &SchemaHash,
    unsigned_cbor: &[u8],
    sig: &Signature,
) -> Result<()> {
    verify_raw(key, &signing_message(schema_hash, unsigned_cbor), sig)
}

/// One item of a batch verification.
#[derive(Clone, Copy, Debug)]
pub struct BatchItem<'a> {
    /// Signer.
    pub key: &'a Ed25519PublicKey,
    /// Schema hash of the object.
    pub schema_hash: &'a SchemaHash,
    /// Canonical CBOR without the signature field.
    pub unsigned_cbor: &'a [u8],
    /// The signature.
    pub signature: &'a Signature,
}

/// Verify many object signatures at once (ed25519-dalek batch verification).
///
/// Weak (small-order) keys are rejected up front, matching `verify_strict`.
/// If the batch fails, every item is re-verified strictly and the first failing
/// index is returned as [`CryptoError::BatchSignatureInvalid`].
pub fn verify_batch(items: &[BatchItem<'_>]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    if let Some(index) = items.iter().position(|it| it.key.is_weak()) {
        return Err(CryptoError::BatchSignatureInvalid { index });
    }
    let messages: Vec<Vec<u8>> = items
        .iter()
        .map(|it| signing_message(it.schema_hash, it.unsigned_cbor))
        .collect();
    let msg_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let sigs: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|it| ed25519_dalek::Signature::from_bytes(&it.signature.0))
        .collect();
    let keys: Vec<ed25519_dalek::VerifyingKey> = items.iter().map(|it| it.key.0).collect();
    if ed25519_dalek::verify_batch(&msg_refs, &sigs, &keys).is_ok() {
        return Ok(());
    }
    for (index, (it, msg)) in items.iter().zip(messages.iter()).enumerate() {
        if verify_raw(it.key, msg, it.signature).is_err() {
            return Err(CryptoError::BatchSignatureInvalid { index });
        }
    }
    // The batch equation failed but every item verifies strictly: strict
    // single verification is the reference semantics.
    Ok(())
}
