//! HPKE key wrapping of zone keys, ObjectIdKeys and secret shares
//! (spec §5.2, profile §3 "key wrap").
//!
//! RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20Poly1305; `info = "FCP2-KEY-WRAP-V1"`;
//! `aad = lp(purpose) || ZoneIdHash[32] || key_id[8] || lp(recipient_node_id)`;
//! sealed bytes = `enc[32] || ciphertext || tag[16]` (the HPKE ciphertext
//! includes its tag).

use hpke::{Deserializable as _, OpModeR, OpModeS, Serializable as _};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use fcp_core::ZoneIdHash;

use crate::error::{CryptoError, Result};
use crate::keys::{NodeEncryptionKey, X25519PublicKey};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// HPKE `info` of every key wrap.
pub const WRAP_INFO: &[u8] = b"FCP2-KEY-WRAP-V1";
/// Length of the encapsulated key prefix.
pub const ENC_LEN: usize = 32;
/// Minimum sealed length (`enc` + tag).
pub const MIN_SEALED_LEN: usize = ENC_LEN + 16;

/// What a wrapped key is (bound into the AAD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WrapPurpose {
    /// A zone key (`zone-key`).
    ZoneKey,
    /// An ObjectIdKey (`object-id-key`).
    ObjectIdKey,
    /// A Shamir secret share (`secret-share`).
    SecretShare,
}

impl WrapPurpose {
    /// The purpose string bound into the AAD.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ZoneKey => "zone-key",
            Self::ObjectIdKey => "object-id-key",
            Self::SecretShare => "secret-share",
        }
    }

    /// Parse a purpose string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "zone-key" => Some(Self::ZoneKey),
            "object-id-key" => Some(Self::ObjectIdKey),
            "secret-share" => Some(Self::SecretShare),
            _ => None,
        }
    }
}

fn lp(out: &mut Vec<u8>, x: &[u8]) -> Result<()> {
    let len =
        u16::try_from(x.len()).map_err(|_| CryptoError::LengthOutOfRange("lp field > 65535"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(x);
    Ok(())
}

/// The wrap AAD (profile §3).
pub fn wrap_aad(
    purpose: WrapPurpose,
    zone_id_hash: &ZoneIdHash,
    key_id: &[u8; 8],
    recipient_node_id: &str,
) -> Result<Vec<u8>> {
    let mut aad = Vec::with_capacity(2 + 13 + 32 + 8 + 2 + recipient_node_id.len());
    lp(&mut aad, purpose.as_str().as_bytes())?;
    aad.extend_from_slice(zone_id_hash.as_bytes());
    aad.extend_from_slice(key_id);
    lp(&mut aad, recipient_node_id.as_bytes())?;
    Ok(aad)
}

/// Wrap `plaintext` for `recipient`. The ephemeral key is drawn from `rng`
/// (32 bytes, fed to RFC 9180 DeriveKeyPair), so a seeded RNG gives
/// deterministic output for test vectors.
pub fn wrap_key<R: CryptoRng + ?Sized>(
    rng: &mut R,
    recipient: &X25519PublicKey,
    purpose: WrapPurpose,
    zone_id_hash: &ZoneIdHash,
    key_id: &[u8; 8],
    recipient_node_id: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let aad = wrap_aad(purpose, zone_id_hash, key_id, recipient_node_id)?;
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient.0)
        .map_err(|_| CryptoError::InvalidKeyEncoding("X25519 public key"))?;
    // `&mut R` is itself a sized CryptoRng (rand_core blanket impl over DerefMut).
    let mut rng_ref = rng;
    let (enc, ct) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &pk,
        WRAP_INFO,
        plaintext,
        &aad,
        &mut rng_ref,
    )
    .map_err(|_| CryptoError::KeyUnwrapFailed)?;
    let mut out = Vec::with_capacity(ENC_LEN + ct.len());
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Deterministic wrap for known-answer vectors: the ephemeral key is
/// `DeriveKeyPair(eph_ikm)` (RFC 9180 §7.1.3). Never reuse `eph_ikm` in
/// production; use [`wrap_key`] with a CSPRNG.
pub fn wrap_key_with_ephemeral_ikm(
    eph_ikm: &[u8; 32],
    recipient: &X25519PublicKey,
    purpose: WrapPurpose,
    zone_id_hash: &ZoneIdHash,
    key_id: &[u8; 8],
    recipient_node_id: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut rng = FixedIkmRng {
        ikm: Zeroizing::new(*eph_ikm),
        pos: 0,
    };
    wrap_key(
        &mut rng,
        recipient,
        purpose,
        zone_id_hash,
        key_id,
        recipient_node_id,
        plaintext,
    )
}

/// Yields the 32 ikm bytes once, then zeros (hpke draws exactly 32 bytes).
struct FixedIkmRng {
    ikm: Zeroizing<[u8; 32]>,
    pos: usize,
}

impl rand_core::TryRng for FixedIkmRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
        for d in dst.iter_mut() {
            *d = self.ikm.get(self.pos).copied().unwrap_or(0);
            self.pos = self.pos.saturating_add(1);
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedIkmRng {}

/// Unwrap sealed bytes with the recipient's encryption key.
pub fn unwrap_key(
    recipient: &NodeEncryptionKey,
    purpose: WrapPurpose,
    zone_id_hash: &ZoneIdHash,
    key_id: &[u8; 8],
    recipient_node_id: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if sealed.len() < MIN_SEALED_LEN {
        return Err(CryptoError::WrappedKeyMalformed("shorter than enc || tag"));
    }
    let (enc_bytes, ct) = sealed.split_at(ENC_LEN);
    let aad = wrap_aad(purpose, zone_id_hash, key_id, recipient_node_id)?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc_bytes)
        .map_err(|_| CryptoError::WrappedKeyMalformed("enc"))?;
    let sk_bytes = recipient.to_bytes();
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(sk_bytes.as_ref())
        .map_err(|_| CryptoError::Internal("hpke private key"))?;
    let pt =
        hpke::single_shot_open::<Aead, Kdf, Kem>(&OpModeR::Base, &sk, &enc, WRAP_INFO, ct, &aad)
            .map_err(|_| CryptoError::KeyUnwrapFailed)?;
    Ok(Zeroizing::new(pt))
}
