//! Mesh sessions (spec §4.2, profile §4.3–4.4, review 000 #5, review 002 #3).
//!
//! Sans-IO: every entry point takes the bytes, the current time (`now`, unix
//! seconds) and, where randomness is needed, an `&mut impl CryptoRng`. Nothing
//! here touches a socket or a clock.
//!
//! - [`handshake`]: the typestate handshake. The initiator goes
//!   [`InitiatorStart`] → [`InitiatorAwaitAck`] → [`Session`]; the responder is a
//!   long-lived [`Responder`] that answers a Hello with a stateless
//!   [`MeshSessionHelloRetry`] (cookie) or a signed [`MeshSessionAck`] plus its
//!   [`Session`].
//! - [`messages`]: the canonical-CBOR handshake messages and the UDP packet
//!   framing that tells them apart from data datagrams.
//! - [`transport`]: [`Session`] (datagram envelope `session_id || u64le(seq) ||
//!   mac[16] || frame`, 128-frame anti-replay window per direction) and
//!   [`PeerSessions`] (rekey without loss: the previous session stays acceptable
//!   for a grace period).
//! - [`fcpc`]: FCPC control frames over a reliable stream, AEAD with `k_ctx`.
//! - [`counters`]: one named counter per rejection reason.
//!
//! Every rejection is a typed [`SessionError`] with a stable `FCP-xxxx` code and
//! increments the matching [`SessionCounters`] field where it is produced.

pub mod cookie;
pub mod counters;
pub mod fcpc;
pub mod handshake;
pub mod messages;
pub mod replay;
pub mod transport;

use std::collections::HashMap;

use fcp_core::{ErrorCode, HasErrorCode};
use fcp_crypto::{CryptoError, Ed25519PublicKey};

pub use counters::SessionCounters;
pub use fcpc::{DEFAULT_MAX_FCPC_FRAME, FcpcRead, FcpcReceiver, FcpcSender};
pub use handshake::{
    CookiePolicy, InitiatorAwaitAck, InitiatorConfig, InitiatorStart, LocalIdentity, Rejected,
    Responder, ResponderConfig, ResponderOutput, ResponderRandomness,
};
pub use messages::{
    HandshakeKind, HandshakeMessage, MAX_HANDSHAKE_LEN, MAX_NODE_ID_LEN, MeshSessionAck,
    MeshSessionHello, MeshSessionHelloRetry,
};
pub use replay::{REPLAY_WINDOW, ReplayWindow};
pub use transport::{PeerSessions, Role, Session, SessionConfig};

/// Where a node's signing key comes from (spec §4.2 `TrustAnchors`). The node
/// backs it with owner-signed attestations; tests use [`MemoryTrustAnchors`].
pub trait TrustAnchors {
    /// The attested Ed25519 node signing key of `node_id`, if known.
    fn node_signing_key(&self, node_id: &str) -> Option<Ed25519PublicKey>;
}

/// An in-memory [`TrustAnchors`] (tests, tools).
#[derive(Clone, Debug, Default)]
pub struct MemoryTrustAnchors {
    keys: HashMap<String, Ed25519PublicKey>,
}

impl MemoryTrustAnchors {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust `key` as the signing key of `node_id`.
    pub fn insert(&mut self, node_id: impl Into<String>, key: Ed25519PublicKey) {
        self.keys.insert(node_id.into(), key);
    }
}

impl TrustAnchors for MemoryTrustAnchors {
    fn node_signing_key(&self, node_id: &str) -> Option<Ed25519PublicKey> {
        self.keys.get(node_id).copied()
    }
}

/// Every failure of the session layer. Peer faults are distinguishable from
/// local misuse ([`SessionError::InvalidConfig`], [`SessionError::FrameTooLarge`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A handshake message exceeds [`MAX_HANDSHAKE_LEN`].
    #[error("handshake message of {0} bytes exceeds the bound")]
    HandshakeOversized(usize),
    /// A handshake message is not the canonical encoding of its type, or a
    /// field is out of range.
    #[error("malformed handshake message: {0}")]
    HandshakeMalformed(String),
    /// A handshake message is addressed to another node or comes from an
    /// unexpected peer.
    #[error("handshake message for another peer")]
    WrongPeer,
    /// The responder supports none of the initiator's signed suites.
    #[error("no common session suite")]
    NoCommonSuite,
    /// The Ack's suite is not the first common suite of the signed lists.
    #[error("suite downgrade: responder selected suite {0}")]
    SuiteDowngrade(u8),
    /// The message does not belong to the handshake in progress.
    #[error("unexpected handshake message: {0}")]
    UnexpectedMessage(&'static str),
    /// The Hello replay cache is full.
    #[error("responder overloaded (replay cache full)")]
    Overloaded,
    /// A handshake timestamp is outside `TimePolicy.max_skew_secs`.
    #[error("handshake timestamp {ts} outside the skew window around {now}")]
    TimestampSkew {
        /// Local time.
        now: u64,
        /// Message timestamp.
        ts: u64,
    },
    /// The peer's node id has no trust anchor.
    #[error("unknown node {0:?}")]
    UnknownNode(String),
    /// The handshake signature does not verify.
    #[error("handshake signature invalid")]
    BadSignature,
    /// A Hello whose nonce was already accepted.
    #[error("replayed Hello")]
    ReplayedHello,
    /// The HelloRetry cookie does not verify under any cookie key.
    #[error("invalid HelloRetry cookie")]
    BadCookie,
    /// The HelloRetry cookie was made with a retired cookie key.
    #[error("expired HelloRetry cookie")]
    ExpiredCookie,
    /// The X25519 exchange was non-contributory.
    #[error("handshake key exchange failed")]
    KeyExchange,
    /// A datagram shorter than the 40-byte envelope.
    #[error("datagram of {0} bytes is truncated")]
    Truncated(usize),
    /// A datagram longer than the configured maximum.
    #[error("datagram of {len} bytes exceeds {max}")]
    Oversized {
        /// Received length.
        len: usize,
        /// Bound.
        max: usize,
    },
    /// A datagram whose session id names no live session.
    #[error("unknown session")]
    UnknownSession,
    /// A sequence number already accepted in the window.
    #[error("replayed frame seq {0}")]
    ReplayedFrame(u64),
    /// A sequence number at or below `highest - 128`.
    #[error("frame seq {seq} outside the window (highest {highest})")]
    FrameOutsideWindow {
        /// Received sequence number.
        seq: u64,
        /// Highest accepted.
        highest: u64,
    },
    /// The datagram MAC does not verify.
    #[error("datagram MAC invalid")]
    BadMac,
    /// The send sequence space is exhausted; rekey.
    #[error("sequence space exhausted")]
    SequenceExhausted,
    /// Local misuse: the frame does not fit the maximum datagram.
    #[error("frame of {len} bytes does not fit a datagram of at most {max}")]
    FrameTooLarge {
        /// Frame length.
        len: usize,
        /// Datagram bound.
        max: usize,
    },
    /// An FCPC frame longer than the bound.
    #[error("FCPC frame of {len} bytes exceeds {max}")]
    FcpcOversized {
        /// Declared or payload length.
        len: usize,
        /// Bound.
        max: usize,
    },
    /// An FCPC frame that is too short or whose payload is not one canonical
    /// CBOR item.
    #[error("malformed FCPC frame: {0}")]
    FcpcMalformed(&'static str),
    /// An FCPC frame that does not decrypt.
    #[error("FCPC frame did not decrypt")]
    FcpcDecrypt,
    /// The FCPC stream failed earlier and is closed.
    #[error("FCPC stream closed after an earlier failure")]
    FcpcClosed,
    /// Local misuse: a configuration value is out of range.
    #[error("invalid session configuration: {0}")]
    InvalidConfig(&'static str),
    /// A crypto primitive failed for a local reason.
    #[error("crypto failure: {0}")]
    Crypto(CryptoError),
}

impl HasErrorCode for SessionError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::HandshakeOversized(_) => ErrorCode::SessionHandshakeOversized,
            Self::HandshakeMalformed(_) => ErrorCode::SessionHandshakeMalformed,
            Self::WrongPeer => ErrorCode::SessionWrongPeer,
            Self::NoCommonSuite => ErrorCode::SessionNoCommonSuite,
            Self::SuiteDowngrade(_) => ErrorCode::SessionSuiteDowngrade,
            Self::UnexpectedMessage(_) => ErrorCode::SessionUnexpectedMessage,
            Self::Overloaded => ErrorCode::SessionOverloaded,
            Self::TimestampSkew { .. } => ErrorCode::TimestampOutOfSkew,
            Self::UnknownNode(_) => ErrorCode::SessionUnknownNode,
            Self::BadSignature => ErrorCode::SignatureInvalid,
            Self::ReplayedHello => ErrorCode::SessionReplayedHello,
            Self::BadCookie => ErrorCode::SessionCookieInvalid,
            Self::ExpiredCookie => ErrorCode::SessionCookieExpired,
            Self::KeyExchange => ErrorCode::SessionKeyExchangeFailed,
            Self::Truncated(_) => ErrorCode::SessionDatagramTruncated,
            Self::Oversized { .. } => ErrorCode::SessionDatagramOversized,
            Self::UnknownSession => ErrorCode::SessionUnknown,
            Self::ReplayedFrame(_) => ErrorCode::SessionReplayedFrame,
            Self::FrameOutsideWindow { .. } => ErrorCode::SessionFrameOutsideWindow,
            Self::BadMac => ErrorCode::MacInvalid,
            Self::SequenceExhausted => ErrorCode::SessionSequenceExhausted,
            Self::FrameTooLarge { .. } | Self::InvalidConfig(_) => ErrorCode::InvalidArgument,
            Self::FcpcOversized { .. } => ErrorCode::FcpcFrameOversized,
            Self::FcpcMalformed(_) => ErrorCode::FcpcMalformed,
            Self::FcpcDecrypt => ErrorCode::FcpcDecryptFailed,
            Self::FcpcClosed => ErrorCode::FcpcClosed,
            Self::Crypto(e) => e.error_code(),
        }
    }
}

/// Result alias of the session layer.
pub type Result<T, E = SessionError> = core::result::Result<T, E>;
