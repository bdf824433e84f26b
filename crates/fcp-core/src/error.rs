//! Error taxonomy (spec §24).
//!
//! One registry of every `FCP-xxxx` code the implementation can emit. Each code
//! has a stable number in the §24.1 range of its family, a short name, whether a
//! retry can help, and a recovery hint written for an AI agent. Module errors
//! (`CborError`, `IdError`, crypto errors, ...) map onto these codes through
//! [`ErrorCode`]; `docs/error-codes.md` is generated from [`ErrorCode::ALL`] and a
//! test keeps the two in sync.

use std::fmt;

/// Declares [`ErrorCode`] and its registry table in one place.
macro_rules! error_codes {
    ($( $(#[$m:meta])* $variant:ident = $num:literal, $retry:literal, $hint:literal; )*) => {
        /// Every stable error code (spec §24.1 ranges).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$m])* $variant, )*
        }

        impl ErrorCode {
            /// The whole registry, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The numeric code, e.g. `1002`.
            pub const fn number(self) -> u16 {
                match self { $( ErrorCode::$variant => $num, )* }
            }

            /// The variant name, e.g. `CborNonCanonical`.
            pub const fn name(self) -> &'static str {
                match self { $( ErrorCode::$variant => stringify!($variant), )* }
            }

            /// Whether retrying the same operation later can succeed.
            pub const fn retryable(self) -> bool {
                match self { $( ErrorCode::$variant => $retry, )* }
            }

            /// What a caller (often an AI agent) should do about it.
            pub const fn hint(self) -> &'static str {
                match self { $( ErrorCode::$variant => $hint, )* }
            }
        }
    };
}

error_codes! {
    // ---- FCP-1000..1999 protocol errors ----
    /// Input is not well-formed CBOR.
    CborMalformed = 1001, false, "The bytes are not valid CBOR; check the sender's encoder.";
    /// Well-formed CBOR that is not in canonical (deterministic) form.
    CborNonCanonical = 1002, false, "Re-encode with RFC 8949 core deterministic encoding (profile §2).";
    /// Bytes follow the single CBOR data item.
    CborTrailingBytes = 1003, false, "Send exactly one CBOR data item with nothing after it.";
    /// Canonical CBOR that does not have the shape of the expected type.
    CborTypeMismatch = 1004, false, "The object does not match the expected schema; check field names and types.";
    /// A decoding limit (depth, length, size) was exceeded.
    CborLimitExceeded = 1005, false, "Split the object or reduce nesting; the decoder bounds depth and length.";
    /// The schema hash prefix of an object body does not match the expected schema.
    SchemaHashMismatch = 1006, false, "The object was encoded for a different schema.";
    /// A stored object's id does not match the id derived from its content.
    ObjectIdMismatch = 1007, false, "The object was altered or derived under another zone/key; refetch it.";
    /// A ZoneId violates profile §3 (length or alphabet).
    InvalidZoneId = 1010, false, "Zone ids are 1..=64 bytes of [a-z0-9:_-], e.g. z:private.";
    /// A SchemaId is not `namespace:name@MAJOR.MINOR.PATCH`.
    InvalidSchemaId = 1011, false, "Schema ids look like fcp.core:CapabilityObject@1.0.0.";
    /// A policy glob pattern is invalid (too long or non-ASCII).
    InvalidPattern = 1012, false, "Patterns are ASCII, at most 128 bytes, using only * and ? as wildcards.";
    /// An object id text is not 64 lowercase hex characters.
    InvalidObjectId = 1013, false, "Object ids are 32 bytes written as 64 lowercase hex characters.";
    /// A parameter is outside its allowed range (e.g. epoch granularity 0).
    InvalidParameter = 1014, false, "Check the parameter against its documented range.";
    /// A key's encoding (length, prefix, point) is invalid.
    InvalidKeyEncoding = 1020, false, "The key file or key bytes are corrupt or of the wrong type.";
    /// A Shamir share is malformed (x = 0, wrong length, duplicate x).
    InvalidShare = 1021, false, "Shares are x || y with x in 1..=255, all of equal length and distinct x.";
    /// A capability token is not a well-formed COSE_Sign1 / CWT (profile §5).
    InvalidToken = 1022, false, "Request a fresh capability token from the issuing node.";
    /// Shamir parameters are out of range (threshold, share count, empty secret).
    InvalidThreshold = 1023, false, "Use 1 <= threshold <= shares <= 255 and a non-empty secret.";
    /// Fewer shares than the threshold were supplied.
    InsufficientShares = 1024, true, "Collect at least threshold shares and try again.";
    /// An encoded value exceeds a fixed protocol bound.
    LengthOutOfRange = 1025, false, "A length field exceeds the protocol's bound.";

    /// A peer named a session MAC suite this node does not implement.
    UnsupportedSuite = 1026, false, "Upgrade the node; known session suites are 1 (HMAC-SHA256) and 2 (keyed BLAKE3).";
    /// Sealed key bytes are too short or malformed (HPKE enc || ciphertext).
    WrappedKeyMalformed = 1027, false, "The ZoneKeyManifest entry is corrupt; ask the owner to re-issue it.";
    /// A command-line argument or API parameter is invalid (local misuse).
    InvalidArgument = 1030, false, "Check the command's arguments (`fcp help`).";
    /// An FCPS frame is shorter than its header and declared records.
    FrameTruncated = 1101, false, "The datagram was cut; check the path MTU and the sender's frame size.";
    /// An FCPS frame has a bad magic or an unsupported version.
    FrameBadMagic = 1102, false, "The peer does not speak FCPS version 1.";
    /// An FCPS frame sets flag bits outside spec §4.4.
    FrameUnknownFlags = 1103, false, "The peer sets frame flags this version does not define.";
    /// An FCPS frame's count, symbol size or payload length are inconsistent.
    FrameBadLength = 1104, false, "The frame's length fields disagree; the sender's encoder is broken.";
    /// Bytes follow an FCPS frame's checksum.
    FrameTrailingBytes = 1105, false, "Send exactly one frame per datagram.";
    /// An FCPS frame's XXH3-64 checksum does not match.
    FrameChecksum = 1106, true, "The frame was corrupted in transit; the sender will resend or send repair symbols.";
    /// A symbol's esi, k or length is invalid for its object.
    SymbolInvalid = 1120, false, "The symbol does not belong to this object's encoding.";
    /// Not enough symbols have arrived to rebuild the object.
    DecodeIncomplete = 1121, true, "Wait for more symbols or ask more peers for the object.";
    /// A rebuilt object fails its length prefix, padding or payload hash.
    ObjectCorrupt = 1122, false, "The symbols were forged or corrupted; refetch from other peers.";

    /// A mesh handshake message is not a well-formed canonical message of its type.
    SessionHandshakeMalformed = 1201, false, "The peer's handshake encoder is broken or the packet was corrupted; it will retry.";
    /// A mesh handshake message exceeds the 4 KiB bound.
    SessionHandshakeOversized = 1202, false, "Handshake messages are at most 4096 bytes; check the peer's node id and suite list.";
    /// A handshake message is addressed to another node or comes from an unexpected peer.
    SessionWrongPeer = 1203, false, "The packet was meant for another node or session; check the peer's address mapping.";
    /// The initiator's signed suite list shares no suite with the responder.
    SessionNoCommonSuite = 1204, false, "Enable a common session suite (1 = HMAC-SHA256, 2 = BLAKE3) on both nodes.";
    /// The Ack selected a suite that is not the first common suite of the signed lists.
    SessionSuiteDowngrade = 1205, false, "The responder ignored the initiator's suite preference; treat it as an attack or a broken peer.";
    /// A handshake message does not match the handshake in progress.
    SessionUnexpectedMessage = 1206, false, "Drop the packet; a stale or forged handshake message arrived.";
    /// The responder's handshake replay cache is full.
    SessionOverloaded = 1207, true, "Too many handshakes in the skew window; retry later.";
    /// A session datagram is shorter than its 40-byte envelope.
    SessionDatagramTruncated = 1210, false, "The datagram was cut; check the path MTU.";
    /// A session datagram or frame exceeds the configured maximum.
    SessionDatagramOversized = 1211, false, "Datagrams are bounded (default 1232 bytes); lower the sender's frame size.";
    /// A datagram names no live session.
    SessionUnknown = 1212, true, "The session expired or the peer restarted; handshake again.";
    /// A data frame's sequence number was already accepted (replay or duplicate).
    SessionReplayedFrame = 1213, false, "Duplicate or replayed datagram; it was dropped.";
    /// A data frame's sequence number is at or below highest - 128.
    SessionFrameOutsideWindow = 1214, false, "The datagram arrived too late (reordered beyond 128 frames) and was dropped.";
    /// A session's send sequence space is exhausted.
    SessionSequenceExhausted = 1215, true, "Rekey the session (new handshake).";
    /// An FCPC control frame exceeds the length bound.
    FcpcFrameOversized = 1220, false, "FCPC frames are bounded (default 1 MiB); send large objects as FCPS symbols.";
    /// An FCPC control frame is malformed (short, or its payload is not one canonical CBOR item).
    FcpcMalformed = 1221, false, "The peer's control-plane encoder is broken; reconnect.";
    /// The FCPC stream failed earlier and is closed.
    FcpcClosed = 1222, true, "Reconnect the control stream after a new handshake.";

    // ---- FCP-2000..2999 auth/identity errors ----
    /// An Ed25519 signature did not verify.
    SignatureInvalid = 2001, false, "The object was altered or signed by another key; refetch it from a trusted peer.";
    /// A timestamp lies outside the allowed window (TimePolicy.max_skew_secs).
    TimestampOutOfSkew = 2002, true, "Check the clocks of both devices (NTP); tokens and handshakes allow 120 s of skew.";
    /// A token's `exp` lies in the past (with skew).
    TokenExpired = 2003, true, "Request a fresh capability token.";
    /// A token's kid is not the expected issuance key.
    UnknownKeyId = 2004, false, "The issuing node's key is not known here; sync its attestation first.";
    /// A MAC did not verify.
    MacInvalid = 2005, false, "The datagram was altered or belongs to another session.";

    /// A handshake names a node without a known signing key.
    SessionUnknownNode = 2010, false, "Sync the node's owner-signed attestation before handshaking.";
    /// A Hello with an already accepted nonce arrived (replay).
    SessionReplayedHello = 2011, false, "A handshake message was replayed; it was dropped.";
    /// A HelloRetry cookie did not verify.
    SessionCookieInvalid = 2012, false, "The cookie was forged or altered; restart the handshake.";
    /// A HelloRetry cookie was made with a retired cookie key.
    SessionCookieExpired = 2013, true, "Restart the handshake to get a fresh cookie.";
    /// The X25519 exchange of a handshake was non-contributory.
    SessionKeyExchangeFailed = 2014, false, "The peer sent a low-order ephemeral key; treat it as an attack.";
    /// An FCPC control frame did not decrypt (wrong key, sequence or tampered).
    FcpcDecryptFailed = 2015, false, "The control stream was tampered with or is out of sync; reconnect.";
    /// A request that must be authenticated (session MAC or node signature) was not (spec §8.4).
    AuthenticationRequired = 2016, false, "Send the request over an authenticated session (complete the handshake first); unauthenticated requests are refused.";

    /// X25519 produced an all-zero (non-contributory) shared secret: a low-order peer key.
    KeyExchangeFailed = 2006, false, "The peer's ephemeral or encryption key is invalid (low order); the peer is faulty or hostile.";

    /// An enrollment bundle is not for this node or not signed by its owner.
    EnrollmentRejected = 2007, false, "Ask the owner to run `fcp owner enroll` with this node's current `fcp node identity`.";

    // ---- FCP-3000..3999 capability errors ----
    /// The requested operation is not granted.
    CapabilityDenied = 3001, false, "Ask the owner for a capability grant covering this operation.";

    // ---- FCP-4000..4999 zone/provenance errors ----
    /// A connector is not in the zone's `connectors_allow` list, or is denied.
    ConnectorNotAllowed = 4001, false, "The zone policy does not allow this connector; ask the owner to allow it.";
    /// A principal is not allowed in the zone.
    PrincipalNotAllowed = 4002, false, "The zone policy does not admit this principal.";
    /// Tainted input may not drive this operation without approval (spec §6.2).
    TaintApprovalRequired = 4003, false, "Obtain an owner approval (elevation) or a sanitizer/approval reduction for the tainted inputs.";
    /// Tainted input may never drive this operation (spec §6.2).
    TaintForbidden = 4004, false, "The operation is forbidden for inputs of this provenance.";
    /// AEAD decryption failed (wrong key, tampered ciphertext, wrong AAD).
    DecryptFailed = 4010, false, "The ciphertext was altered or encrypted under another zone key; refetch the symbols.";
    /// HPKE key unwrap failed.
    KeyUnwrapFailed = 4011, false, "The wrapped key was not sealed for this node or was altered.";
    /// A zone key or key id is not known to this node.
    UnknownZoneKey = 4012, true, "Sync the zone's ZoneKeyManifest for this node.";

    // ---- FCP-5100..5199 store (fcp-store) ----
    /// The local store's database could not be read or written (IO, disk full, lock).
    StoreIo = 5101, true, "Check disk space, permissions and that no other process holds the store open; then retry.";
    /// A value in the local store failed to decode or the database file is damaged.
    StoreCorrupt = 5102, false, "The local store is damaged; remove the affected object or restore the store and resync from peers.";
    /// A record handed to the store is invalid (e.g. a node id too long, zone mismatch).
    StoreInvalidRecord = 5103, false, "Check the record's fields against the fcp-store layout limits.";

    // ---- FCP-5000..5999 lifecycle/health errors ----
    /// Reading or writing the node's local files failed.
    LocalIo = 5001, true, "Check the permissions and free space of the node's home directory.";
    /// A local file of the node is malformed.
    LocalStateCorrupt = 5002, false, "The file was damaged or edited by hand; restore it or re-initialise the node.";

    /// Not enough eligible peers to place an object's symbols per its policy.
    InsufficientPeers = 5010, true, "Start or enroll more devices in this zone, or relax the placement policy.";

    /// The node daemon is not running (no admin socket).
    NodeNotRunning = 5003, true, "Start the node with `fcp node run` (or check --home).";
    /// The object could not be found on this node or any connected peer.
    ObjectNotFound = 5011, true, "Check the object id; if peers are offline, retry when they are back.";
    /// This node is not a member of the object's zone and holds no keys for it.
    NotInZone = 4013, false, "Run the command on a device enrolled in this zone, or ask the owner to grant it.";

    // ---- FCP-6000..6999 resource errors ----
    /// A resource or size limit was reached.
    ResourceLimit = 6001, true, "Reduce the request size or retry later.";
    /// A per-peer admission budget (spec §8.4) is used up for the current window.
    RateLimited = 6002, true, "The peer sent more than its per-minute admission budget; back off for retry_after_ms, then send more slowly.";

    /// A write would take a zone over its storage quota (spec §3.7).
    QuotaExceeded = 6101, true, "Unpin or remove objects of the zone, run GC, or raise the zone's quota; then retry.";

    // ---- FCP-9000..9999 internal errors ----
    /// An internal invariant failed; this is a bug.
    Internal = 9001, false, "This is a bug in FCP; report it with the error details.";
    /// The operating system's random generator failed.
    RngFailure = 9002, true, "The system random number generator failed; retry.";
}

impl ErrorCode {
    /// The wire form, e.g. `"FCP-1002"`.
    pub fn as_code(self) -> String {
        format!("FCP-{:04}", self.number())
    }

    /// Look up a code by its wire form (`"FCP-1002"`) or number.
    pub fn from_code(code: &str) -> Option<Self> {
        let n: u16 = code.strip_prefix("FCP-").unwrap_or(code).parse().ok()?;
        Self::ALL.iter().copied().find(|c| c.number() == n)
    }

    /// The §24.1 family this code belongs to.
    pub const fn family(self) -> &'static str {
        match self.number() {
            1000..=1999 => "protocol",
            2000..=2999 => "auth/identity",
            3000..=3999 => "capability",
            4000..=4999 => "zone/provenance",
            5000..=5999 => "lifecycle/health",
            6000..=6999 => "resource",
            7000..=7999 => "external service",
            _ => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FCP-{:04}", self.number())
    }
}

/// A module error that has a stable FCP code.
pub trait HasErrorCode {
    /// The registry code of this error.
    fn error_code(&self) -> ErrorCode;
}

/// The error response of spec §24.2.
///
/// `details` is canonical CBOR-free, human-facing JSON-compatible text; it
/// never carries secrets.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FcpError {
    /// `"FCP-xxxx"`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Whether a retry may succeed.
    pub retryable: bool,
    /// Suggested back-off before retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Structured details (serialised JSON text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// What an agent should do next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ai_recovery_hint: Option<String>,
}

impl FcpError {
    /// An error response for `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.as_code(),
            message: message.into(),
            retryable: code.retryable(),
            retry_after_ms: None,
            details: None,
            ai_recovery_hint: Some(code.hint().to_owned()),
        }
    }

    /// Build from any module error that carries a code.
    pub fn from_err<E: HasErrorCode + fmt::Display>(err: &E) -> Self {
        Self::new(err.error_code(), err.to_string())
    }

    /// The registry entry, if the code is known.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(&self.code)
    }
}

impl fmt::Display for FcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for FcpError {}

/// Render the registry as the Markdown of `docs/error-codes.md`.
pub fn registry_markdown() -> String {
    let mut out = String::from(
        "# FCP error codes\n\nGenerated from `fcp_core::error::ErrorCode::ALL`; a test keeps this file in sync \
         (`cargo test -p fcp-core error_codes_doc`); regenerate it with `fcp errors --markdown > docs/error-codes.md`.\n\n| code | name | family | retryable | hint |\n|---|---|---|---|---|\n",
    );
    for c in ErrorCode::ALL {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            c,
            c.name(),
            c.family(),
            if c.retryable() { "yes" } else { "no" },
            c.hint()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_doc() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/error-codes.md");
        let doc = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            doc,
            registry_markdown(),
            "regenerate docs/error-codes.md from registry_markdown()"
        );
    }

    #[test]
    fn numbers_unique_and_in_range() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.number()), "duplicate {}", c.number());
            assert!((1000..=9999).contains(&c.number()));
            assert_eq!(ErrorCode::from_code(&c.as_code()), Some(*c));
            assert!(!c.hint().is_empty());
        }
        let in_family = |c: ErrorCode, lo: u16, hi: u16| (lo..=hi).contains(&c.number());
        assert!(in_family(ErrorCode::CborNonCanonical, 1000, 1999));
        assert!(in_family(ErrorCode::TimestampOutOfSkew, 2000, 2999));
        assert!(in_family(ErrorCode::CapabilityDenied, 3000, 3999));
        assert!(in_family(ErrorCode::ConnectorNotAllowed, 4000, 4999));
        assert!(in_family(ErrorCode::TaintForbidden, 4000, 4999));
        assert!(in_family(ErrorCode::ResourceLimit, 6000, 6999));
        assert!(in_family(ErrorCode::Internal, 9000, 9999));
        assert_eq!(ErrorCode::from_code("FCP-0000"), None);
        assert_eq!(ErrorCode::CborNonCanonical.as_code(), "FCP-1002");
    }

    #[test]
    fn fcp_error_from_err() {
        let e = FcpError::from_err(&crate::cbor::CborError::TrailingBytes);
        assert_eq!(e.code, "FCP-1003");
        assert!(!e.retryable);
        assert_eq!(e.error_code(), Some(ErrorCode::CborTrailingBytes));
    }
}
