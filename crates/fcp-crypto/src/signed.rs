//! Signing and verifying self-describing signed objects
//! ([`fcp_core::identity::SignedObject`]) with the profile §3 signature bytes.

use fcp_core::identity::SignedObject;

use crate::error::{CryptoError, Result};
use crate::keys::{Ed25519PublicKey, Ed25519Signer};
use crate::sign::{Signature, sign_object, verify_object};

fn cbor_err(e: fcp_core::CborError) -> CryptoError {
    CryptoError::InvalidToken(match e {
        fcp_core::CborError::NonCanonical => "non-canonical signed object",
        _ => "signed object does not encode",
    })
}

/// Sign `obj` in place: clears the signature, signs the canonical CBOR of the
/// rest under the object's schema hash, stores the signature.
pub fn sign<T: SignedObject, K: Ed25519Signer + ?Sized>(key: &K, obj: &mut T) -> Result<()> {
    let schema = T::schema().map_err(cbor_err)?;
    let sig = sign_object(key, &schema.hash(), &obj.unsigned_cbor().map_err(cbor_err)?);
    obj.set_signature(Some(sig.0));
    Ok(())
}

/// Verify `obj`'s signature with `key`; a missing signature is SignatureInvalid.
pub fn verify<T: SignedObject>(key: &Ed25519PublicKey, obj: &T) -> Result<()> {
    let sig = obj.signature().ok_or(CryptoError::SignatureInvalid)?;
    let schema = T::schema().map_err(cbor_err)?;
    verify_object(
        key,
        &schema.hash(),
        &obj.unsigned_cbor().map_err(cbor_err)?,
        &Signature(*sig),
    )
}
