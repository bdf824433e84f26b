//! Zone keys, per-sender subkeys and symbol AEAD (spec §4.1, profile §3).
//!
//! - sender subkey = `HKDF-SHA256(salt = zone_key_id[8], ikm = zone_key[32],
//!   info = "FCP2-SENDER-KEY-V1" || sender_node_id_utf8 || u64le(sender_instance_id))`, 32 bytes.
//! - ChaCha20-Poly1305 nonce = `u64le(frame_seq) || u32le(esi)` (ring).
//! - XChaCha20-Poly1305 nonce = `u64le(sender_instance_id) || u64le(frame_seq) || u32le(esi) || 00000000` (RustCrypto).
//! - symbol AAD = `object_id[32] || u32le(esi) || u16le(k) || ZoneIdHash[32] || zone_key_id[8] || u64le(epoch_id)` (86 bytes).
//!
//! Tags are detached (16 bytes), encryption is in place.

use core::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use fcp_core::{ObjectId, ZoneIdHash};

use crate::error::{CryptoError, Result};
use crate::keys::hex_lower;

/// HKDF info prefix of sender subkeys.
pub const SENDER_KEY_DOMAIN: &[u8] = b"FCP2-SENDER-KEY-V1";
/// Length of the symbol AAD.
pub const SYMBOL_AAD_LEN: usize = 86;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;

/// Symbol AEAD algorithm (review 000 amendment 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AeadAlgorithm {
    /// ChaCha20-Poly1305, 12-byte nonce (default).
    ChaCha20Poly1305,
    /// XChaCha20-Poly1305, 24-byte nonce.
    XChaCha20Poly1305,
}

impl AeadAlgorithm {
    /// The wire/vector name: `chacha20poly1305` | `xchacha20poly1305`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChaCha20Poly1305 => "chacha20poly1305",
            Self::XChaCha20Poly1305 => "xchacha20poly1305",
        }
    }

    /// Parse the name used in vectors.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "chacha20poly1305" => Some(Self::ChaCha20Poly1305),
            "xchacha20poly1305" => Some(Self::XChaCha20Poly1305),
            _ => None,
        }
    }
}

/// An 8-byte zone key id (random, spec §5.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneKeyId(pub [u8; 8]);

impl fmt::Debug for ZoneKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZoneKeyId({})", hex_lower(&self.0))
    }
}

/// A symmetric zone key: 32 random bytes plus a random 8-byte key id (spec §5.2).
///
/// Zeroized on drop; `Debug` shows only the key id.
#[derive(Clone)]
pub struct ZoneKey {
    key: Zeroizing<[u8; 32]>,
    key_id: ZoneKeyId,
}

impl ZoneKey {
    /// Generate a random key and key id.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        let mut id = [0u8; 8];
        rng.fill_bytes(&mut id);
        Self {
            key,
            key_id: ZoneKeyId(id),
        }
    }

    /// From explicit parts.
    pub fn from_parts(key: [u8; 32], key_id: ZoneKeyId) -> Self {
        Self {
            key: Zeroizing::new(key),
            key_id,
        }
    }

    /// The secret key bytes.
    pub fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The key id.
    pub fn key_id(&self) -> ZoneKeyId {
        self.key_id
    }

    /// Derive the symbol key of one sender (profile §3).
    pub fn symbol_key(
        &self,
        alg: AeadAlgorithm,
        sender_node_id: &str,
        sender_instance_id: u64,
    ) -> Result<SymbolKey> {
        SymbolKey::derive(
            alg,
            &self.key,
            self.key_id.0,
            sender_node_id,
            sender_instance_id,
        )
    }
}

impl zeroize::ZeroizeOnDrop for ZoneKey {}

impl fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneKey")
            .field("key", &"..")
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// The per-sender subkey (profile §3).
pub fn derive_sender_subkey(
    zone_key: &[u8; 32],
    zone_key_id: [u8; 8],
    sender_node_id: &str,
    sender_instance_id: u64,
) -> Result<Zeroizing<[u8; 32]>> {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&zone_key_id), zone_key);
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand_multi_info(
        &[
            SENDER_KEY_DOMAIN,
            sender_node_id.as_bytes(),
            &sender_instance_id.to_le_bytes(),
        ],
        out.as_mut(),
    )
    .map_err(|_| CryptoError::Internal("hkdf expand"))?;
    Ok(out)
}

/// The 86-byte symbol AAD (profile §3).
pub fn symbol_aad(
    object_id: &ObjectId,
    esi: u32,
    k: u16,
    zone_id_hash: &ZoneIdHash,
    zone_key_id: &[u8; 8],
    epoch_id: u64,
) -> [u8; SYMBOL_AAD_LEN] {
    let mut a = [0u8; SYMBOL_AAD_LEN];
    a[0..32].copy_from_slice(object_id.as_bytes());
    a[32..36].copy_from_slice(&esi.to_le_bytes());
    a[36..38].copy_from_slice(&k.to_le_bytes());
    a[38..70].copy_from_slice(zone_id_hash.as_bytes());
    a[70..78].copy_from_slice(zone_key_id);
    a[78..86].copy_from_slice(&epoch_id.to_le_bytes());
    a
}

/// ChaCha20-Poly1305 nonce (profile §3).
pub fn chacha_nonce(frame_seq: u64, esi: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&frame_seq.to_le_bytes());
    n[8..].copy_from_slice(&esi.to_le_bytes());
    n
}

/// XChaCha20-Poly1305 nonce (profile §3).
pub fn xchacha_nonce(sender_instance_id: u64, frame_seq: u64, esi: u32) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&sender_instance_id.to_le_bytes());
    n[8..16].copy_from_slice(&frame_seq.to_le_bytes());
    n[16..20].copy_from_slice(&esi.to_le_bytes());
    n
}

/// ChaCha20-Poly1305 (12-byte nonce) with a precomputed ring key.
pub(crate) struct RingChaCha(ring::aead::LessSafeKey);

impl RingChaCha {
    pub(crate) fn new(key: &[u8; 32]) -> Result<Self> {
        let unbound = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key)
            .map_err(|_| CryptoError::Internal("ring key"))?;
        Ok(Self(ring::aead::LessSafeKey::new(unbound)))
    }

    pub(crate) fn seal(&self, nonce: [u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; 16]> {
        let tag = self
            .0
            .seal_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(aad),
                buf,
            )
            .map_err(|_| CryptoError::LengthOutOfRange("AEAD plaintext too long"))?;
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    pub(crate) fn open(
        &self,
        nonce: [u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<()> {
        self.0
            .open_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(aad),
                ring::aead::Tag::from(*tag),
                buf,
                0..,
            )
            .map(|_| ())
            .map_err(|_| CryptoError::DecryptFailed)
    }
}

/// Raw ChaCha20-Poly1305 (RFC 8439) seal in place through the ring wrapper
/// used on the hot path; exposed for known-answer tests.
pub fn chacha20poly1305_seal_in_place(
    key: &[u8; 32],
    nonce: [u8; 12],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; 16]> {
    RingChaCha::new(key)?.seal(nonce, aad, buf)
}

/// Raw ChaCha20-Poly1305 open in place (see [`chacha20poly1305_seal_in_place`]).
pub fn chacha20poly1305_open_in_place(
    key: &[u8; 32],
    nonce: [u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; 16],
) -> Result<()> {
    RingChaCha::new(key)?.open(nonce, aad, buf, tag)
}

// The ring key schedule is inline on purpose: one symbol key per sender, hot path.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    ChaCha(RingChaCha),
    XChaCha(chacha20poly1305::XChaCha20Poly1305),
}

/// A sender's symbol key: the subkey with its AEAD key schedule precomputed.
///
/// `Debug` prints no key bytes. The RustCrypto cipher zeroizes on drop; ring's
/// key schedule does not expose zeroization (ring limitation).
pub struct SymbolKey {
    alg: AeadAlgorithm,
    sender_instance_id: u64,
    cipher: Cipher,
}

impl SymbolKey {
    /// Derive the sender subkey (profile §3) and precompute the AEAD key.
    pub fn derive(
        alg: AeadAlgorithm,
        zone_key: &[u8; 32],
        zone_key_id: [u8; 8],
        sender_node_id: &str,
        sender_instance_id: u64,
    ) -> Result<Self> {
        let sub = derive_sender_subkey(zone_key, zone_key_id, sender_node_id, sender_instance_id)?;
        Self::from_subkey(alg, &sub, sender_instance_id)
    }

    /// From an already derived subkey.
    pub fn from_subkey(
        alg: AeadAlgorithm,
        subkey: &[u8; 32],
        sender_instance_id: u64,
    ) -> Result<Self> {
        let cipher = match alg {
            AeadAlgorithm::ChaCha20Poly1305 => Cipher::ChaCha(RingChaCha::new(subkey)?),
            AeadAlgorithm::XChaCha20Poly1305 => {
                let c = chacha20poly1305::XChaCha20Poly1305::new_from_slice(subkey)
                    .map_err(|_| CryptoError::Internal("xchacha key"))?;
                Cipher::XChaCha(c)
            }
        };
        Ok(Self {
            alg,
            sender_instance_id,
            cipher,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> AeadAlgorithm {
        self.alg
    }

    /// The sender instance id bound into this key.
    pub fn sender_instance_id(&self) -> u64 {
        self.sender_instance_id
    }

    /// Encrypt `buf` in place; returns the detached 16-byte tag.
    pub fn seal_in_place(
        &self,
        frame_seq: u64,
        esi: u32,
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        match &self.cipher {
            Cipher::ChaCha(c) => c.seal(chacha_nonce(frame_seq, esi), aad, buf),
            Cipher::XChaCha(c) => {
                let n = xchacha_nonce(self.sender_instance_id, frame_seq, esi);
                let tag = c
                    .encrypt_inout_detached(&n.into(), aad, buf.into())
                    .map_err(|_| CryptoError::LengthOutOfRange("AEAD plaintext too long"))?;
                let mut out = [0u8; TAG_LEN];
                out.copy_from_slice(tag.as_slice());
                Ok(out)
            }
        }
    }

    /// Decrypt `buf` in place, checking `tag`; on failure `buf` content is unspecified.
    pub fn open_in_place(
        &self,
        frame_seq: u64,
        esi: u32,
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        match &self.cipher {
            Cipher::ChaCha(c) => c.open(chacha_nonce(frame_seq, esi), aad, buf, tag),
            Cipher::XChaCha(c) => {
                let n = xchacha_nonce(self.sender_instance_id, frame_seq, esi);
                c.decrypt_inout_detached(&n.into(), aad, buf.into(), &(*tag).into())
                    .map_err(|_| CryptoError::DecryptFailed)
            }
        }
    }
}

impl fmt::Debug for SymbolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SymbolKey")
            .field("alg", &self.alg)
            .field("sender_instance_id", &self.sender_instance_id)
            .field("key", &"..")
            .finish()
    }
}
