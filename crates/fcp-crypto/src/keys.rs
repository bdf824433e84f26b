//! Owner and node key types (spec §2.2), key ids, and the on-disk key file.
//!
//! # Key file format (`fcp-key-v1`)
//!
//! A secret key is stored as exactly 43 bytes:
//!
//! | bytes  | field |
//! |--------|-------|
//! | 0..10  | ASCII magic `fcp-key-v1` |
//! | 10     | key type: `1` owner signing (Ed25519 seed), `2` node signing (Ed25519 seed), `3` node encryption (X25519 secret), `4` node issuance (Ed25519 seed) |
//! | 11..43 | the 32 secret key bytes |
//!
//! Decoding rejects a wrong length, wrong magic, unknown or unexpected key
//! type with [`CryptoError::InvalidKeyEncoding`]. Public keys travel as their
//! raw 32 bytes.
//!
//! # Key ids (project decision)
//!
//! `kid = BLAKE3("FCP2-KID-V1" || public_key_bytes)[0..8]` for every public key
//! kind (signing, issuance, encryption).

use core::fmt;

use ed25519_dalek::Signer as _;
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{CryptoError, Result};
use crate::sign::Signature;

/// Domain separator of key ids.
pub const KID_DOMAIN: &[u8] = b"FCP2-KID-V1";
/// Magic prefix of key files.
pub const KEY_FILE_MAGIC: &[u8; 10] = b"fcp-key-v1";
/// Length of a key file.
pub const KEY_FILE_LEN: usize = 43;

/// An 8-byte key identifier (project decision, see module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The kid of raw public key bytes.
    pub fn of_public_key(public_key: &[u8]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(KID_DOMAIN);
        h.update(public_key);
        let out = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&out.as_bytes()[..8]);
        Self(id)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", hex_lower(&self.0))
    }
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// The kind of key held in a key file (byte 10 of the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// Owner Ed25519 signing key.
    OwnerSigning = 1,
    /// Node Ed25519 signing key.
    NodeSigning = 2,
    /// Node X25519 encryption key.
    NodeEncryption = 3,
    /// Node Ed25519 issuance key (capability tokens).
    NodeIssuance = 4,
}

impl KeyType {
    /// Parse the type byte.
    pub fn from_u8(b: u8) -> Result<Self> {
        match b {
            1 => Ok(Self::OwnerSigning),
            2 => Ok(Self::NodeSigning),
            3 => Ok(Self::NodeEncryption),
            4 => Ok(Self::NodeIssuance),
            _ => Err(CryptoError::InvalidKeyEncoding("unknown key type")),
        }
    }
}

fn encode_key_file(ty: KeyType, secret: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(KEY_FILE_LEN));
    out.extend_from_slice(KEY_FILE_MAGIC);
    out.push(ty as u8);
    out.extend_from_slice(secret);
    out
}

/// Parse a key file, checking the expected type.
fn decode_key_file(bytes: &[u8], expected: KeyType) -> Result<Zeroizing<[u8; 32]>> {
    if bytes.len() != KEY_FILE_LEN {
        return Err(CryptoError::InvalidKeyEncoding("key file length"));
    }
    let (magic, rest) = bytes.split_at(KEY_FILE_MAGIC.len());
    if magic != KEY_FILE_MAGIC {
        return Err(CryptoError::InvalidKeyEncoding("key file magic"));
    }
    let (ty, key) = rest
        .split_first()
        .ok_or(CryptoError::InvalidKeyEncoding("key file length"))?;
    if KeyType::from_u8(*ty)? != expected {
        return Err(CryptoError::InvalidKeyEncoding("unexpected key type"));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(key);
    Ok(out)
}

/// The key type stored in a key file, without decoding the key.
pub fn key_file_type(bytes: &[u8]) -> Result<KeyType> {
    if bytes.len() != KEY_FILE_LEN || &bytes[..10] != KEY_FILE_MAGIC {
        return Err(CryptoError::InvalidKeyEncoding("not an fcp-key-v1 file"));
    }
    KeyType::from_u8(bytes[10])
}

pub(crate) fn array32(bytes: &[u8], what: &'static str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| CryptoError::InvalidKeyEncoding(what))
}

/// An Ed25519 public key (owner, node signing or node issuance).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ed25519PublicKey(pub(crate) ed25519_dalek::VerifyingKey);

impl Ed25519PublicKey {
    /// Decode 32 bytes; rejects wrong length and non-canonical / invalid points.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr = array32(bytes, "Ed25519 public key length")?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map_err(|_| CryptoError::InvalidKeyEncoding("Ed25519 public key point"))?;
        Ok(Self(vk))
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key id.
    pub fn kid(&self) -> KeyId {
        KeyId::of_public_key(self.0.as_bytes())
    }

    /// Whether the point has small order (such keys never verify strictly).
    pub fn is_weak(&self) -> bool {
        self.0.is_weak()
    }
}

impl fmt::Debug for Ed25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519PublicKey({})", hex_lower(self.0.as_bytes()))
    }
}

/// Something that signs with an Ed25519 key.
pub trait Ed25519Signer {
    /// Sign raw message bytes (callers normally use [`crate::sign::sign_object`]).
    fn sign_raw(&self, message: &[u8]) -> Signature;
    /// The matching public key.
    fn public_key(&self) -> Ed25519PublicKey;
}

macro_rules! ed25519_secret_key {
    ($(#[$m:meta])* $name:ident, $ty:expr) => {
        $(#[$m])*
        ///
        /// Zeroized on drop; `Debug` prints no key bytes.
        #[derive(Clone)]
        pub struct $name(ed25519_dalek::SigningKey);

        impl $name {
            /// Generate a fresh key from `rng`.
            pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
                Self(ed25519_dalek::SigningKey::generate(rng))
            }

            /// From the 32-byte Ed25519 seed.
            pub fn from_bytes(seed: &[u8; 32]) -> Self {
                Self(ed25519_dalek::SigningKey::from_bytes(seed))
            }

            /// From a slice holding the 32-byte seed.
            pub fn from_slice(seed: &[u8]) -> Result<Self> {
                let mut arr = Zeroizing::new(array32(seed, "Ed25519 secret key length")?);
                let k = Self::from_bytes(&arr);
                arr.zeroize();
                Ok(k)
            }

            /// The 32-byte seed.
            pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
                Zeroizing::new(self.0.to_bytes())
            }

            /// The public key.
            pub fn public_key(&self) -> Ed25519PublicKey {
                Ed25519PublicKey(self.0.verifying_key())
            }

            /// The key id of the public key.
            pub fn kid(&self) -> KeyId {
                self.public_key().kid()
            }

            /// Encode as an `fcp-key-v1` key file.
            pub fn to_key_file(&self) -> Zeroizing<Vec<u8>> {
                encode_key_file($ty, &self.to_bytes())
            }

            /// Decode an `fcp-key-v1` key file of this key type.
            pub fn from_key_file(bytes: &[u8]) -> Result<Self> {
                let seed = decode_key_file(bytes, $ty)?;
                Ok(Self::from_bytes(&seed))
            }
        }

        impl Ed25519Signer for $name {
            fn sign_raw(&self, message: &[u8]) -> Signature {
                Signature(self.0.sign(message).to_bytes())
            }
            fn public_key(&self) -> Ed25519PublicKey {
                $name::public_key(self)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }

        // ed25519_dalek::SigningKey zeroizes itself on drop (feature `zeroize`).
        impl zeroize::ZeroizeOnDrop for $name {}
    };
}

ed25519_secret_key!(
    /// The owner's Ed25519 signing key (root of trust, spec §2.2).
    OwnerSigningKey,
    KeyType::OwnerSigning
);
ed25519_secret_key!(
    /// A node's Ed25519 signing key (objects, session handshakes; spec §2.2).
    NodeSigningKey,
    KeyType::NodeSigning
);
ed25519_secret_key!(
    /// A node's Ed25519 issuance key (capability tokens only; spec §2.2, §7.5).
    NodeIssuanceKey,
    KeyType::NodeIssuance
);

/// An X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct X25519PublicKey(pub [u8; 32]);

impl X25519PublicKey {
    /// Decode 32 bytes (length-checked; every 32-byte string is a valid u-coordinate,
    /// low-order points are caught when a DH result is non-contributory).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(Self(array32(bytes, "X25519 public key length")?))
    }

    /// The raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The key id.
    pub fn kid(&self) -> KeyId {
        KeyId::of_public_key(&self.0)
    }
}

impl fmt::Debug for X25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "X25519PublicKey({})", hex_lower(&self.0))
    }
}

/// X25519 with a check that the result is contributory (not all zero).
pub(crate) fn x25519_dh(
    secret: &x25519_dalek::StaticSecret,
    peer: &X25519PublicKey,
) -> Result<Zeroizing<[u8; 32]>> {
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
    if !shared.was_contributory() {
        return Err(CryptoError::NonContributoryKeyExchange);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// A node's X25519 encryption key (HPKE recipient for wrapped keys; spec §2.2, §5.2).
///
/// Zeroized on drop; `Debug` prints no key bytes.
#[derive(Clone)]
pub struct NodeEncryptionKey(x25519_dalek::StaticSecret);

impl NodeEncryptionKey {
    /// Generate a fresh key from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(x25519_dalek::StaticSecret::random_from_rng(rng))
    }

    /// From 32 secret bytes (clamped when used, as RFC 7748 prescribes).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        Self(x25519_dalek::StaticSecret::from(*secret))
    }

    /// From a slice of 32 secret bytes.
    pub fn from_slice(secret: &[u8]) -> Result<Self> {
        let arr = Zeroizing::new(array32(secret, "X25519 secret key length")?);
        Ok(Self::from_bytes(&arr))
    }

    /// The 32 secret bytes.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key.
    pub fn public_key(&self) -> X25519PublicKey {
        X25519PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// The key id of the public key.
    pub fn kid(&self) -> KeyId {
        self.public_key().kid()
    }

    /// Contributory X25519 with `peer`.
    pub fn diffie_hellman(&self, peer: &X25519PublicKey) -> Result<Zeroizing<[u8; 32]>> {
        x25519_dh(&self.0, peer)
    }

    /// Encode as an `fcp-key-v1` key file.
    pub fn to_key_file(&self) -> Zeroizing<Vec<u8>> {
        encode_key_file(KeyType::NodeEncryption, &self.to_bytes())
    }

    /// Decode an `fcp-key-v1` key file of type node-encryption.
    pub fn from_key_file(bytes: &[u8]) -> Result<Self> {
        let k = decode_key_file(bytes, KeyType::NodeEncryption)?;
        Ok(Self::from_bytes(&k))
    }
}

// x25519_dalek::StaticSecret zeroizes itself on drop (feature `zeroize`).
impl zeroize::ZeroizeOnDrop for NodeEncryptionKey {}

impl fmt::Debug for NodeEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeEncryptionKey(..)")
    }
}

/// The full key set of a node (spec §2.2): signing, encryption, issuance.
#[derive(Clone, Debug)]
pub struct NodeKeys {
    /// Ed25519 signing key.
    pub signing: NodeSigningKey,
    /// X25519 encryption key.
    pub encryption: NodeEncryptionKey,
    /// Ed25519 issuance key.
    pub issuance: NodeIssuanceKey,
}

impl NodeKeys {
    /// Generate all three keys.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self {
            signing: NodeSigningKey::generate(rng),
            encryption: NodeEncryptionKey::generate(rng),
            issuance: NodeIssuanceKey::generate(rng),
        }
    }
}
