//! Stateless HelloRetry cookies (review 000 #5, profile §4.3).
//!
//! The responder keeps three random 32-byte keys: `current`, `previous` and
//! `retired`. Every [`COOKIE_ROTATE_SECS`] the keys shift down and a fresh
//! `current` is drawn. A cookie verifying under `current` or `previous` is
//! accepted (so a cookie lives 120..240 s); one verifying only under `retired`
//! is reported as expired; anything else is forged. The cookie is computed over
//! the Hello's own fields (`from`, `to`, `eph_pubkey`, `nonce`, `timestamp`), so
//! no per-peer state is kept until it comes back.

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::messages::MeshSessionHello;
use super::{Result, SessionError};

/// Cookie key rotation period (review 000 #5: "rotates every 2 minutes").
pub const COOKIE_ROTATE_SECS: u64 = 120;

type Key = Zeroizing<[u8; 32]>;

fn fresh<R: CryptoRng + ?Sized>(rng: &mut R) -> Key {
    let mut k = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(k.as_mut());
    k
}

/// The rotating cookie keys. `Debug` prints no key bytes.
pub struct CookieKeys {
    current: Key,
    previous: Option<Key>,
    retired: Option<Key>,
    rotated_at: u64,
}

impl core::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CookieKeys")
            .field("keys", &"..")
            .field("rotated_at", &self.rotated_at)
            .finish()
    }
}

impl CookieKeys {
    /// Draw the first key at `now`.
    pub fn new<R: CryptoRng + ?Sized>(now: u64, rng: &mut R) -> Self {
        Self {
            current: fresh(rng),
            previous: None,
            retired: None,
            rotated_at: now,
        }
    }

    /// Start from an explicit key at `now` (test vectors).
    pub fn from_key(now: u64, key: [u8; 32]) -> Self {
        Self {
            current: Zeroizing::new(key),
            previous: None,
            retired: None,
            rotated_at: now,
        }
    }

    /// Rotate if one or more periods passed since the last rotation.
    pub fn rotate_if_due<R: CryptoRng + ?Sized>(&mut self, now: u64, rng: &mut R) {
        let elapsed = now.saturating_sub(self.rotated_at);
        let steps = elapsed / COOKIE_ROTATE_SECS;
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(3) {
            let next = fresh(rng);
            self.retired = self.previous.take();
            self.previous = Some(core::mem::replace(&mut self.current, next));
        }
        self.rotated_at = self
            .rotated_at
            .saturating_add(steps.saturating_mul(COOKIE_ROTATE_SECS));
    }

    fn mac(key: &[u8; 32], hello: &MeshSessionHello) -> Result<[u8; 32]> {
        fcp_crypto::session::hello_retry_cookie(
            key,
            &hello.from,
            &hello.to,
            &hello.eph_pubkey,
            &hello.nonce,
            hello.timestamp,
        )
        .map_err(SessionError::Crypto)
    }

    /// The cookie for `hello` under the current key.
    pub fn issue(&self, hello: &MeshSessionHello) -> Result<[u8; 32]> {
        Self::mac(&self.current, hello)
    }

    fn verifies(key: &[u8; 32], hello: &MeshSessionHello, cookie: &[u8; 32]) -> bool {
        fcp_crypto::session::verify_hello_retry_cookie(
            key,
            &hello.from,
            &hello.to,
            &hello.eph_pubkey,
            &hello.nonce,
            hello.timestamp,
            cookie,
        )
        .is_ok()
    }

    /// Check `cookie` for `hello`: current or previous key → Ok; retired key →
    /// [`SessionError::ExpiredCookie`]; otherwise [`SessionError::BadCookie`].
    pub fn check(&self, hello: &MeshSessionHello, cookie: &[u8; 32]) -> Result<()> {
        if Self::verifies(&self.current, hello, cookie)
            || self
                .previous
                .as_ref()
                .is_some_and(|k| Self::verifies(k, hello, cookie))
        {
            return Ok(());
        }
        if self
            .retired
            .as_ref()
            .is_some_and(|k| Self::verifies(k, hello, cookie))
        {
            return Err(SessionError::ExpiredCookie);
        }
        Err(SessionError::BadCookie)
    }
}
