//! Shamir secret sharing over GF(2^8) (spec §17.3, profile §6).
//!
//! Field: GF(2^8) with the AES polynomial `x^8 + x^4 + x^3 + x + 1` (0x11b).
//! A share is `x || y_bytes`, `x` in 1..=255, `len(y_bytes) = len(secret)`;
//! the secret is the polynomial's value at `x = 0`. Share `i` (1-based) of a
//! split has `x = i`.
//!
//! Implemented here rather than with vsss-rs because vsss-rs 6 rejects
//! threshold 1 (1-of-1 is required), offers no way to supply explicit
//! polynomial coefficients (needed for known-answer vectors), and does not
//! zeroize its share buffers. Field arithmetic is branch-free and table-free
//! (constant time in the secret data).
//!
//! Coefficient layout for [`split_with_coefficients`]: for secret byte `i`,
//! the polynomial is `f_i(x) = secret[i] + c[i*(t-1)] x + ... + c[i*(t-1)+t-2] x^(t-1)`.

use core::fmt;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{CryptoError, Result};

/// GF(2^8) multiplication modulo 0x11b, constant time.
pub fn gf_mul(a: u8, b: u8) -> u8 {
    let mut a = a;
    let mut b = b;
    let mut r = 0u8;
    for _ in 0..8 {
        // mask = 0xff if the low bit of b is set, else 0.
        r ^= a & (b & 1).wrapping_neg();
        let hi = (a >> 7).wrapping_neg();
        a = (a << 1) ^ (0x1b & hi);
        b >>= 1;
    }
    r
}

/// GF(2^8) inverse (`a^254`; `0 -> 0`), constant time.
pub fn gf_inv(a: u8) -> u8 {
    // a^254 = a^(2+4+8+16+32+64+128)
    let a2 = gf_mul(a, a);
    let a4 = gf_mul(a2, a2);
    let a8 = gf_mul(a4, a4);
    let a16 = gf_mul(a8, a8);
    let a32 = gf_mul(a16, a16);
    let a64 = gf_mul(a32, a32);
    let a128 = gf_mul(a64, a64);
    let mut r = gf_mul(a2, a4);
    r = gf_mul(r, a8);
    r = gf_mul(r, a16);
    r = gf_mul(r, a32);
    r = gf_mul(r, a64);
    gf_mul(r, a128)
}

/// One share: `x || y`. Zeroized on drop; `Debug` shows only `x` and the length.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    x: u8,
    y: Zeroizing<Vec<u8>>,
}

impl Share {
    /// Parse `x || y_bytes` (x != 0, at least one y byte).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (x, y) = bytes
            .split_first()
            .ok_or(CryptoError::InvalidShare("empty share"))?;
        if *x == 0 {
            return Err(CryptoError::InvalidShare("x = 0"));
        }
        if y.is_empty() {
            return Err(CryptoError::InvalidShare("no y bytes"));
        }
        Ok(Self {
            x: *x,
            y: Zeroizing::new(y.to_vec()),
        })
    }

    /// Encode as `x || y_bytes`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(1 + self.y.len()));
        v.push(self.x);
        v.extend_from_slice(&self.y);
        v
    }

    /// The x coordinate.
    pub fn x(&self) -> u8 {
        self.x
    }

    /// The y bytes.
    pub fn y(&self) -> &[u8] {
        &self.y
    }
}

impl zeroize::ZeroizeOnDrop for Share {}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Share {{ x: {}, y: .. ({} bytes) }}",
            self.x,
            self.y.len()
        )
    }
}

fn check_params(threshold: u8, n: u8, secret: &[u8]) -> Result<()> {
    if threshold == 0 {
        return Err(CryptoError::InvalidThreshold("threshold must be >= 1"));
    }
    if n < threshold {
        return Err(CryptoError::InvalidThreshold("share count below threshold"));
    }
    if secret.is_empty() {
        return Err(CryptoError::InvalidThreshold("empty secret"));
    }
    Ok(())
}

/// Split `secret` into `n` shares (x = 1..=n), any `threshold` of which recover it.
pub fn split<R: CryptoRng + ?Sized>(
    threshold: u8,
    n: u8,
    secret: &[u8],
    rng: &mut R,
) -> Result<Vec<Share>> {
    check_params(threshold, n, secret)?;
    let mut coeffs = Zeroizing::new(vec![0u8; secret.len() * usize::from(threshold - 1)]);
    rng.fill_bytes(&mut coeffs);
    split_with_coefficients(threshold, n, secret, &coeffs)
}

/// Deterministic split with explicit coefficients (layout in the module docs);
/// `coefficients.len()` must be `secret.len() * (threshold - 1)`.
pub fn split_with_coefficients(
    threshold: u8,
    n: u8,
    secret: &[u8],
    coefficients: &[u8],
) -> Result<Vec<Share>> {
    check_params(threshold, n, secret)?;
    let deg = usize::from(threshold - 1);
    if coefficients.len() != secret.len() * deg {
        return Err(CryptoError::InvalidThreshold("coefficient count"));
    }
    let mut shares = Vec::with_capacity(usize::from(n));
    for x in 1..=n {
        let mut y = Zeroizing::new(Vec::with_capacity(secret.len()));
        for (i, s) in secret.iter().enumerate() {
            let c = coefficients.get(i * deg..(i + 1) * deg).unwrap_or(&[]);
            // Horner: ((c_{t-1} x + c_{t-2}) x + ... + c_1) x + s
            let mut acc = 0u8;
            for ci in c.iter().rev() {
                acc = gf_mul(acc, x) ^ ci;
            }
            acc = gf_mul(acc, x) ^ s;
            y.push(acc);
        }
        shares.push(Share { x, y });
    }
    Ok(shares)
}

/// Recover the secret from shares (Lagrange interpolation at 0).
///
/// Rejects an empty set, duplicate `x`, and unequal lengths. With fewer shares
/// than the split's threshold the result is an unrelated value (Shamir cannot
/// detect this); use [`combine_with_threshold`] to enforce a known threshold.
pub fn combine(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>> {
    let first = shares
        .first()
        .ok_or(CryptoError::InsufficientShares { have: 0, need: 1 })?;
    let len = first.y.len();
    for (i, s) in shares.iter().enumerate() {
        if s.x == 0 {
            return Err(CryptoError::InvalidShare("x = 0"));
        }
        if s.y.len() != len || len == 0 {
            return Err(CryptoError::InvalidShare("share lengths differ"));
        }
        if shares.iter().skip(i + 1).any(|o| o.x.ct_eq(&s.x).into()) {
            return Err(CryptoError::InvalidShare("duplicate x"));
        }
    }
    // Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i)   (char 2: - == ^)
    let mut basis = Zeroizing::new(Vec::with_capacity(shares.len()));
    for (i, si) in shares.iter().enumerate() {
        let mut num = 1u8;
        let mut den = 1u8;
        for (j, sj) in shares.iter().enumerate() {
            if i != j {
                num = gf_mul(num, sj.x);
                den = gf_mul(den, sj.x ^ si.x);
            }
        }
        basis.push(gf_mul(num, gf_inv(den)));
    }
    let mut secret = Zeroizing::new(vec![0u8; len]);
    for (s, l) in shares.iter().zip(basis.iter()) {
        for (out, y) in secret.iter_mut().zip(s.y.iter()) {
            *out ^= gf_mul(*y, *l);
        }
    }
    basis.zeroize();
    Ok(secret)
}

/// [`combine`], first requiring at least `threshold` shares.
pub fn combine_with_threshold(threshold: u8, shares: &[Share]) -> Result<Zeroizing<Vec<u8>>> {
    if threshold == 0 {
        return Err(CryptoError::InvalidThreshold("threshold must be >= 1"));
    }
    if shares.len() < usize::from(threshold) {
        return Err(CryptoError::InsufficientShares {
            have: shares.len(),
            need: usize::from(threshold),
        });
    }
    combine(shares)
}
