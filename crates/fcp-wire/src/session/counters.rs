//! One named counter per rejection reason (issue 4 §6). Each is incremented
//! exactly where the typed [`SessionError`] is produced, through
//! [`SessionCounters::reject`].

use super::SessionError;

/// Rejection and progress counters of the session layer. Plain `u64`s: the
/// node exports them (e.g. as Prometheus counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionCounters {
    // ---- handshake ----
    /// Handshake messages above the size bound.
    pub handshake_oversized: u64,
    /// Handshake messages that are not canonical / out of range.
    pub handshake_malformed: u64,
    /// Handshake messages for another node or from an unexpected peer.
    pub wrong_peer: u64,
    /// Hellos sharing no suite with the responder.
    pub no_common_suite: u64,
    /// Acks selecting a suite other than the first common one.
    pub suite_downgrade: u64,
    /// Messages not matching the handshake in progress.
    pub unexpected_message: u64,
    /// Hellos refused because the replay cache is full.
    pub overloaded: u64,
    /// Handshake timestamps outside the skew window.
    pub timestamp_skew: u64,
    /// Handshakes from nodes without a trust anchor.
    pub unknown_node: u64,
    /// Handshake signatures that did not verify.
    pub bad_signature: u64,
    /// Replayed Hellos.
    pub replayed_hello: u64,
    /// Forged or altered cookies.
    pub bad_cookie: u64,
    /// Cookies made with a retired key.
    pub expired_cookie: u64,
    /// Non-contributory key exchanges.
    pub key_exchange_failed: u64,
    /// HelloRetry messages sent (not an error).
    pub retries_sent: u64,
    /// Handshakes completed on this side (not an error).
    pub handshakes_completed: u64,
    // ---- datagrams ----
    /// Datagrams shorter than the envelope.
    pub truncated: u64,
    /// Datagrams above the maximum size.
    pub oversized: u64,
    /// Datagrams naming no live session.
    pub unknown_session: u64,
    /// Datagrams whose seq was already accepted.
    pub replayed_frame: u64,
    /// Datagrams at or below `highest - 128`.
    pub frame_outside_window: u64,
    /// Datagrams whose MAC did not verify.
    pub bad_mac: u64,
    // ---- FCPC ----
    /// FCPC frames above the bound.
    pub fcpc_oversized: u64,
    /// Malformed FCPC frames.
    pub fcpc_malformed: u64,
    /// FCPC frames that did not decrypt.
    pub fcpc_decrypt_failed: u64,
}

impl SessionCounters {
    /// Count `err` under its reason and hand it back (`return Err(c.reject(e))`).
    pub fn reject(&mut self, err: SessionError) -> SessionError {
        self.record(&err);
        err
    }

    /// Count `err` under its reason. Local-misuse errors are not counted.
    pub fn record(&mut self, err: &SessionError) {
        let c = match err {
            SessionError::HandshakeOversized(_) => &mut self.handshake_oversized,
            SessionError::HandshakeMalformed(_) => &mut self.handshake_malformed,
            SessionError::WrongPeer => &mut self.wrong_peer,
            SessionError::NoCommonSuite => &mut self.no_common_suite,
            SessionError::SuiteDowngrade(_) => &mut self.suite_downgrade,
            SessionError::UnexpectedMessage(_) => &mut self.unexpected_message,
            SessionError::Overloaded => &mut self.overloaded,
            SessionError::TimestampSkew { .. } => &mut self.timestamp_skew,
            SessionError::UnknownNode(_) => &mut self.unknown_node,
            SessionError::BadSignature => &mut self.bad_signature,
            SessionError::ReplayedHello => &mut self.replayed_hello,
            SessionError::BadCookie => &mut self.bad_cookie,
            SessionError::ExpiredCookie => &mut self.expired_cookie,
            SessionError::KeyExchange => &mut self.key_exchange_failed,
            SessionError::Truncated(_) => &mut self.truncated,
            SessionError::Oversized { .. } => &mut self.oversized,
            SessionError::UnknownSession => &mut self.unknown_session,
            SessionError::ReplayedFrame(_) => &mut self.replayed_frame,
            SessionError::FrameOutsideWindow { .. } => &mut self.frame_outside_window,
            SessionError::BadMac => &mut self.bad_mac,
            SessionError::FcpcOversized { .. } => &mut self.fcpc_oversized,
            SessionError::FcpcMalformed(_) => &mut self.fcpc_malformed,
            SessionError::FcpcDecrypt => &mut self.fcpc_decrypt_failed,
            SessionError::SequenceExhausted
            | SessionError::FrameTooLarge { .. }
            | SessionError::FcpcClosed
            | SessionError::InvalidConfig(_)
            | SessionError::Crypto(_) => return,
        };
        *c = c.saturating_add(1);
    }

    /// Sum of all rejection counters (excludes `retries_sent` and
    /// `handshakes_completed`).
    pub fn total_rejections(&self) -> u64 {
        [
            self.handshake_oversized,
            self.handshake_malformed,
            self.wrong_peer,
            self.no_common_suite,
            self.suite_downgrade,
            self.unexpected_message,
            self.overloaded,
            self.timestamp_skew,
            self.unknown_node,
            self.bad_signature,
            self.replayed_hello,
            self.bad_cookie,
            self.expired_cookie,
            self.key_exchange_failed,
            self.truncated,
            self.oversized,
            self.unknown_session,
            self.replayed_frame,
            self.frame_outside_window,
            self.bad_mac,
            self.fcpc_oversized,
            self.fcpc_malformed,
            self.fcpc_decrypt_failed,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}
