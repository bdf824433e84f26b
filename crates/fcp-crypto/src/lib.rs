//! FCP crypto: key types, object signatures, symbol AEAD with per-sender
//! subkeys, HPKE key wrap, COSE capability tokens, the session key schedule and
//! MACs, and Shamir threshold secrets.
//!
//! Normative byte layouts come from `SPEC_PROFILE.md` §3 (derivations, wrap),
//! §4.3 (session), §5 (capability token) and §6 (Shamir); spec sections are cited
//! per item.
//!
//! Invariants:
//! - no IO, no clock, no hidden RNG: randomness is an `&mut impl CryptoRng`
//!   parameter, time a `now` parameter;
//! - every decoder returns a typed [`CryptoError`], never panics;
//! - secrets are zeroized on drop and their `Debug` prints `..`;
//! - MAC and tag comparisons are constant time.
//!
//! Project decisions (recorded in `docs/spec-decisions.md` by the lead):
//! - key id = `BLAKE3("FCP2-KID-V1" || public_key_bytes)[0..8]` ([`keys`]);
//! - key files use the `fcp-key-v1` 43-byte format ([`keys`]);
//! - token claim types ([`token`]); session PRK interpretation ([`session`]);
//! - Shamir is implemented here, not via vsss-rs ([`shamir`]).
#![forbid(unsafe_code)]

pub mod error;
pub mod keys;
pub mod session;
pub mod shamir;
pub mod sign;
pub mod signed;
pub mod symbol;
pub mod token;
pub mod wrap;

pub use error::{CryptoError, Result};
pub use keys::{
    Ed25519PublicKey, Ed25519Signer, KeyId, KeyType, NodeEncryptionKey, NodeIssuanceKey, NodeKeys,
    NodeSigningKey, OwnerSigningKey, X25519PublicKey,
};
pub use session::{
    EphemeralKeyPair, FcpcCipher, SessionKeys, SessionMacKey, SessionSuite, derive_session_keys,
    session_mac,
};
pub use shamir::{Share, combine, split};
pub use sign::{BatchItem, Signature, sign_object, verify_batch, verify_object};
pub use symbol::{AeadAlgorithm, SymbolKey, ZoneKey, ZoneKeyId, derive_sender_subkey, symbol_aad};

pub use token::{CapabilityClaims, CapabilityGrant, CapabilityToken};
pub use wrap::{WrapPurpose, unwrap_key, wrap_key};
