//! Session key schedule, per-datagram MACs, FCPC AEAD and the HelloRetry
//! cookie (spec §4.2, profile §4.3).
//!
//! Interpretation of profile §4.3 (project decision):
//! ```text
//! shared = X25519(eph_i, eph_r)                       (rejected if all-zero)
//! info   = "FCP2-SESSION-V1" || lp(initiator_node_id) || lp(responder_node_id)
//!          || hello_nonce[16] || ack_nonce[16] || u8(suite)
//! prk    = HKDF-Expand(HKDF-Extract(salt = session_id[16], ikm = shared), info, 32)
//! okm    = HKDF-Expand(prk, "FCP2-SESSION-KEYS-V1", 96)
//!        = k_mac_i2r[32] || k_mac_r2i[32] || k_ctx[32]
//! ```
//! i.e. the profile's `prk` is the 32-byte output of full HKDF (extract then
//! expand), and it is used directly as the PRK of the second expand.
//! `lp(x) = u16le(len(x)) || x`.

use core::fmt;

use hmac::{KeyInit as _, Mac as _};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::keys::{X25519PublicKey, x25519_dh};
use crate::symbol::RingChaCha;

/// Info prefix of the session PRK.
pub const SESSION_DOMAIN: &[u8] = b"FCP2-SESSION-V1";
/// Info of the session key expansion.
pub const SESSION_KEYS_DOMAIN: &[u8] = b"FCP2-SESSION-KEYS-V1";
/// Truncated MAC length.
pub const MAC_LEN: usize = 16;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Session MAC suite (profile §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionSuite {
    /// `1`: HMAC-SHA256 truncated to 16 bytes.
    HmacSha256 = 1,
    /// `2`: keyed BLAKE3 truncated to 16 bytes.
    Blake3 = 2,
}

impl SessionSuite {
    /// The suite number.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for SessionSuite {
    type Error = CryptoError;
    fn try_from(v: u8) -> Result<Self> {
        match v {
            1 => Ok(Self::HmacSha256),
            2 => Ok(Self::Blake3),
            other => Err(CryptoError::UnknownSuite(other)),
        }
    }
}

/// Session keys (profile §4.3). Zeroized on drop; `Debug` prints no bytes.
#[derive(Clone)]
pub struct SessionKeys {
    suite: SessionSuite,
    k_mac_i2r: Zeroizing<[u8; 32]>,
    k_mac_r2i: Zeroizing<[u8; 32]>,
    k_ctx: Zeroizing<[u8; 32]>,
    mac_i2r: SessionMacKey,
    mac_r2i: SessionMacKey,
}

impl SessionKeys {
    /// The negotiated suite.
    pub fn suite(&self) -> SessionSuite {
        self.suite
    }
    /// MAC key initiator -> responder (direction 0).
    pub fn k_mac_i2r(&self) -> &[u8; 32] {
        &self.k_mac_i2r
    }
    /// MAC key responder -> initiator (direction 1).
    pub fn k_mac_r2i(&self) -> &[u8; 32] {
        &self.k_mac_r2i
    }
    /// Control-plane (FCPC) AEAD key.
    pub fn k_ctx(&self) -> &[u8; 32] {
        &self.k_ctx
    }
    /// The keyed MAC of `direction` (0 = i2r, 1 = r2i), ready to use.
    pub fn mac(&self, direction: u8) -> Result<&SessionMacKey> {
        match direction {
            0 => Ok(&self.mac_i2r),
            1 => Ok(&self.mac_r2i),
            _ => Err(CryptoError::LengthOutOfRange("direction must be 0 or 1")),
        }
    }
}

/// A session MAC key with its keyed state computed once. For HMAC-SHA256
/// that is the inner and outer pad blocks, two of the ~23 SHA-256 blocks a
/// 1232-byte datagram costs, which every datagram would otherwise redo.
/// Zeroized on drop; `Debug` prints no bytes.
#[derive(Clone)]
pub struct SessionMacKey(MacState);

#[derive(Clone)]
enum MacState {
    Hmac(Box<HmacSha256>),
    // A keyed BLAKE3 hasher holds only the key words: nothing to precompute.
    Blake3(Zeroizing<[u8; 32]>),
}

impl SessionMacKey {
    /// Key a MAC of `suite`.
    pub fn new(suite: SessionSuite, key: &[u8; 32]) -> Self {
        Self(match suite {
            SessionSuite::HmacSha256 => {
                // RFC 2104: a key shorter than the 64-byte block is
                // zero-padded, so this is exactly HMAC-SHA256(key) without a
                // fallible constructor.
                let mut block = Zeroizing::new([0u8; 64]);
                block[..32].copy_from_slice(key);
                MacState::Hmac(Box::new(HmacSha256::new(&(*block).into())))
            }
            SessionSuite::Blake3 => MacState::Blake3(Zeroizing::new(*key)),
        })
    }

    /// `MAC(k, session_id || u8(direction) || u64le(seq) || frame)[0..16]`
    /// (profile §4.3).
    pub fn mac(
        &self,
        session_id: &[u8; 16],
        direction: u8,
        seq: u64,
        frame: &[u8],
    ) -> [u8; MAC_LEN] {
        let seq_le = seq.to_le_bytes();
        let full: [u8; 32] = match &self.0 {
            MacState::Hmac(keyed) => {
                let mut m = HmacSha256::clone(keyed);
                m.update(session_id);
                m.update(&[direction]);
                m.update(&seq_le);
                m.update(frame);
                m.finalize().into_bytes().into()
            }
            MacState::Blake3(key) => {
                let mut h = blake3::Hasher::new_keyed(key);
                h.update(session_id);
                h.update(&[direction]);
                h.update(&seq_le);
                h.update(frame);
                *h.finalize().as_bytes()
            }
        };
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&full[..MAC_LEN]);
        mac
    }

    /// Constant-time check of a datagram MAC.
    pub fn verify(
        &self,
        session_id: &[u8; 16],
        direction: u8,
        seq: u64,
        frame: &[u8],
        mac: &[u8],
    ) -> Result<()> {
        let expected = self.mac(session_id, direction, seq, frame);
        if mac.len() == MAC_LEN && bool::from(expected.ct_eq(mac)) {
            Ok(())
        } else {
            Err(CryptoError::MacInvalid)
        }
    }
}

impl fmt::Debug for SessionMacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionMacKey(..)")
    }
}

impl zeroize::ZeroizeOnDrop for SessionKeys {}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("suite", &self.suite)
            .field("keys", &"..")
            .finish()
    }
}

fn lp_into(out: &mut Vec<u8>, x: &[u8]) -> Result<()> {
    let len =
        u16::try_from(x.len()).map_err(|_| CryptoError::LengthOutOfRange("lp field > 65535"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(x);
    Ok(())
}

/// Derive the session keys (profile §4.3; interpretation in the module docs).
pub fn derive_session_keys(
    suite: SessionSuite,
    session_id: &[u8; 16],
    shared_secret: &[u8; 32],
    initiator_node_id: &str,
    responder_node_id: &str,
    hello_nonce: &[u8; 16],
    ack_nonce: &[u8; 16],
) -> Result<SessionKeys> {
    let mut info = Vec::with_capacity(
        SESSION_DOMAIN.len() + 4 + initiator_node_id.len() + responder_node_id.len() + 33,
    );
    info.extend_from_slice(SESSION_DOMAIN);
    lp_into(&mut info, initiator_node_id.as_bytes())?;
    lp_into(&mut info, responder_node_id.as_bytes())?;
    info.extend_from_slice(hello_nonce);
    info.extend_from_slice(ack_nonce);
    info.push(suite.as_u8());

    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(session_id), shared_secret);
    let mut prk = Zeroizing::new([0u8; 32]);
    hk.expand(&info, prk.as_mut())
        .map_err(|_| CryptoError::Internal("hkdf expand prk"))?;
    let hk2 = hkdf::Hkdf::<sha2::Sha256>::from_prk(prk.as_ref())
        .map_err(|_| CryptoError::Internal("hkdf from_prk"))?;
    let mut okm = Zeroizing::new([0u8; 96]);
    hk2.expand(SESSION_KEYS_DOMAIN, okm.as_mut())
        .map_err(|_| CryptoError::Internal("hkdf expand okm"))?;
    let mut k_mac_i2r = Zeroizing::new([0u8; 32]);
    let mut k_mac_r2i = Zeroizing::new([0u8; 32]);
    let mut k_ctx = Zeroizing::new([0u8; 32]);
    k_mac_i2r.copy_from_slice(&okm[0..32]);
    k_mac_r2i.copy_from_slice(&okm[32..64]);
    k_ctx.copy_from_slice(&okm[64..96]);
    Ok(SessionKeys {
        suite,
        mac_i2r: SessionMacKey::new(suite, &k_mac_i2r),
        mac_r2i: SessionMacKey::new(suite, &k_mac_r2i),
        k_mac_i2r,
        k_mac_r2i,
        k_ctx,
    })
}

/// An ephemeral X25519 key pair for one handshake. Zeroized on drop.
#[derive(Clone)]
pub struct EphemeralKeyPair {
    secret: x25519_dalek::StaticSecret,
    public: X25519PublicKey,
}

impl EphemeralKeyPair {
    /// Generate from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret_bytes(&{
            let mut b = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(b.as_mut());
            *b
        })
    }

    /// From explicit secret bytes (test vectors).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(*secret);
        let public = X25519PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Self { secret, public }
    }

    /// The public key to send.
    pub fn public_key(&self) -> X25519PublicKey {
        self.public
    }

    /// Contributory X25519 with the peer's ephemeral key.
    pub fn diffie_hellman(&self, peer: &X25519PublicKey) -> Result<Zeroizing<[u8; 32]>> {
        x25519_dh(&self.secret, peer)
    }
}

impl zeroize::ZeroizeOnDrop for EphemeralKeyPair {}

impl fmt::Debug for EphemeralKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralKeyPair")
            .field("secret", &"..")
            .field("public", &self.public)
            .finish()
    }
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32]> {
    let mut m = <HmacSha256 as hmac::KeyInit>::new_from_slice(key)
        .map_err(|_| CryptoError::Internal("hmac key"))?;
    for p in parts {
        m.update(p);
    }
    let out = m.finalize().into_bytes();
    let mut r = [0u8; 32];
    r.copy_from_slice(out.as_slice());
    Ok(r)
}

/// Datagram MAC: `MAC(k_dir, session_id || u8(direction) || u64le(seq) || frame)[0..16]`.
/// Keys the MAC for this one call; a session keeps a [`SessionMacKey`].
pub fn session_mac(
    suite: SessionSuite,
    key: &[u8; 32],
    session_id: &[u8; 16],
    direction: u8,
    seq: u64,
    frame: &[u8],
) -> [u8; MAC_LEN] {
    SessionMacKey::new(suite, key).mac(session_id, direction, seq, frame)
}

/// The HelloRetry cookie: `HMAC-SHA256(cookie_key, lp(from) || lp(to) ||
/// eph_pubkey[32] || hello_nonce[16] || u64le(timestamp))` (profile §4.3).
pub fn hello_retry_cookie(
    cookie_key: &[u8; 32],
    from: &str,
    to: &str,
    eph_pubkey: &[u8; 32],
    hello_nonce: &[u8; 16],
    timestamp: u64,
) -> Result<[u8; 32]> {
    let mut buf = Vec::with_capacity(4 + from.len() + to.len() + 56);
    lp_into(&mut buf, from.as_bytes())?;
    lp_into(&mut buf, to.as_bytes())?;
    buf.extend_from_slice(eph_pubkey);
    buf.extend_from_slice(hello_nonce);
    buf.extend_from_slice(&timestamp.to_le_bytes());
    hmac_sha256(cookie_key, &[&buf])
}

/// Constant-time cookie check (the caller checks `timestamp` freshness).
pub fn verify_hello_retry_cookie(
    cookie_key: &[u8; 32],
    from: &str,
    to: &str,
    eph_pubkey: &[u8; 32],
    hello_nonce: &[u8; 16],
    timestamp: u64,
    cookie: &[u8],
) -> Result<()> {
    let expected = hello_retry_cookie(cookie_key, from, to, eph_pubkey, hello_nonce, timestamp)?;
    if cookie.len() == 32 && bool::from(expected.ct_eq(cookie)) {
        Ok(())
    } else {
        Err(CryptoError::MacInvalid)
    }
}

/// FCPC nonce: `u32le(direction) || u64le(seq)` (profile §4.3).
pub fn fcpc_nonce(direction: u8, seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&u32::from(direction).to_le_bytes());
    n[4..].copy_from_slice(&seq.to_le_bytes());
    n
}

/// Control-plane AEAD with `k_ctx` (ChaCha20-Poly1305, profile §4.3).
pub struct FcpcCipher(RingChaCha);

impl FcpcCipher {
    /// Precompute the key schedule.
    pub fn new(k_ctx: &[u8; 32]) -> Result<Self> {
        Ok(Self(RingChaCha::new(k_ctx)?))
    }

    /// Encrypt in place; returns the detached tag.
    pub fn seal_in_place(
        &self,
        direction: u8,
        seq: u64,
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; 16]> {
        self.0.seal(fcpc_nonce(direction, seq), aad, buf)
    }

    /// Decrypt in place, checking the tag.
    pub fn open_in_place(
        &self,
        direction: u8,
        seq: u64,
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<()> {
        self.0.open(fcpc_nonce(direction, seq), aad, buf, tag)
    }
}

impl fmt::Debug for FcpcCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FcpcCipher(..)")
    }
}
