//! Typed errors of the crypto layer, each mapped onto a stable `FCP-xxxx` code.

use fcp_core::error::{ErrorCode, HasErrorCode};

/// Every failure of `fcp-crypto`.
///
/// Variants never carry secret material. Peer faults (bad signature, bad MAC,
/// malformed token) are distinguishable from local misuse (bad parameters).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Key bytes or a key file are malformed (length, tag, type, point).
    #[error("invalid key encoding: {0}")]
    InvalidKeyEncoding(&'static str),
    /// An X25519 exchange produced the all-zero (non-contributory) secret.
    #[error("non-contributory X25519 exchange (low-order peer key)")]
    NonContributoryKeyExchange,
    /// An Ed25519 signature did not verify.
    #[error("signature invalid")]
    SignatureInvalid,
    /// In a batch, the item at `index` (the first failing one) did not verify.
    #[error("signature invalid at batch index {index}")]
    BatchSignatureInvalid {
        /// Index of the first invalid item.
        index: usize,
    },
    /// AEAD open failed (wrong key, nonce, AAD, or tampered data).
    #[error("decryption failed")]
    DecryptFailed,
    /// HPKE unwrap failed (not sealed for this key, wrong AAD, tampered).
    #[error("key unwrap failed")]
    KeyUnwrapFailed,
    /// Sealed wrap bytes are too short to hold `enc || tag`.
    #[error("wrapped key malformed: {0}")]
    WrappedKeyMalformed(&'static str),
    /// A length exceeds a fixed protocol bound.
    #[error("length out of range: {0}")]
    LengthOutOfRange(&'static str),
    /// A Shamir share is malformed or inconsistent with the others.
    #[error("invalid share: {0}")]
    InvalidShare(&'static str),
    /// Shamir parameters out of range.
    #[error("invalid threshold parameters: {0}")]
    InvalidThreshold(&'static str),
    /// Fewer shares than the threshold.
    #[error("insufficient shares: have {have}, need {need}")]
    InsufficientShares {
        /// Shares supplied.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// A capability token is not well-formed per profile §5.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// The token's kid does not name the expected issuance key.
    #[error("unknown key id")]
    UnknownKeyId,
    /// A timestamp (`iat`) lies in the future beyond the allowed skew.
    #[error("timestamp out of allowed skew")]
    TimestampOutOfSkew,
    /// The token expired (beyond the allowed skew).
    #[error("token expired")]
    TokenExpired,
    /// A session MAC or cookie did not verify.
    #[error("MAC invalid")]
    MacInvalid,
    /// An unknown session suite number.
    #[error("unknown session suite {0}")]
    UnknownSuite(u8),
    /// An internal invariant failed (a bug).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl HasErrorCode for CryptoError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::InvalidKeyEncoding(_) => ErrorCode::InvalidKeyEncoding,
            Self::NonContributoryKeyExchange => ErrorCode::KeyExchangeFailed,
            Self::SignatureInvalid | Self::BatchSignatureInvalid { .. } => {
                ErrorCode::SignatureInvalid
            }
            Self::DecryptFailed => ErrorCode::DecryptFailed,
            Self::KeyUnwrapFailed => ErrorCode::KeyUnwrapFailed,
            Self::WrappedKeyMalformed(_) => ErrorCode::WrappedKeyMalformed,
            Self::UnknownSuite(_) => ErrorCode::UnsupportedSuite,
            Self::LengthOutOfRange(_) => ErrorCode::LengthOutOfRange,
            Self::InvalidShare(_) => ErrorCode::InvalidShare,
            Self::InvalidThreshold(_) => ErrorCode::InvalidThreshold,
            Self::InsufficientShares { .. } => ErrorCode::InsufficientShares,
            Self::InvalidToken(_) => ErrorCode::InvalidToken,
            Self::UnknownKeyId => ErrorCode::UnknownKeyId,
            Self::TimestampOutOfSkew => ErrorCode::TimestampOutOfSkew,
            Self::TokenExpired => ErrorCode::TokenExpired,
            Self::MacInvalid => ErrorCode::MacInvalid,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = core::result::Result<T, CryptoError>;
