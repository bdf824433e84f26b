//! Established sessions: the datagram envelope, per-direction MACs, the
//! anti-replay window and rekey without loss (profile §4.3–4.4).
//!
//! Datagram = `session_id[16] || u64le(seq) || mac[16] || fcps_frame`, with
//! `mac = MAC(k_dir, session_id || u8(direction) || u64le(seq) || frame)[0..16]`;
//! direction 0 = initiator → responder, 1 = responder → initiator.

use fcp_crypto::{SessionKeys, SessionSuite};

use super::counters::SessionCounters;
use super::fcpc::{FcpcReceiver, FcpcSender};
use super::replay::{ReplayWindow, WindowReject};
use super::{Result, SessionError};
use crate::frame::{DEFAULT_MAX_DATAGRAM, SESSION_ENVELOPE_LEN};

/// Default `rekey_after_frames` (profile §4.4: 2^30).
pub const DEFAULT_REKEY_AFTER_FRAMES: u64 = 1 << 30;
/// Default grace period (seconds) during which the previous session of a peer
/// is still accepted after a rekey.
pub const DEFAULT_REKEY_GRACE_SECS: u64 = 30;

/// Per-session limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Ask for a rekey after this many frames sent (profile §4.4).
    pub rekey_after_frames: u64,
    /// Maximum datagram size, envelope included (default 1232).
    pub max_datagram: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            rekey_after_frames: DEFAULT_REKEY_AFTER_FRAMES,
            max_datagram: DEFAULT_MAX_DATAGRAM,
        }
    }
}

/// Which side of the handshake this node was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sent the Hello; sends in direction 0.
    Initiator,
    /// Sent the Ack; sends in direction 1.
    Responder,
}

impl Role {
    /// Direction byte of frames this side sends.
    pub fn send_direction(self) -> u8 {
        match self {
            Self::Initiator => 0,
            Self::Responder => 1,
        }
    }

    /// Direction byte of frames this side receives.
    pub fn recv_direction(self) -> u8 {
        1 - self.send_direction()
    }
}

/// An established session with one peer. Keys are zeroized on drop and never
/// printed by `Debug`.
#[derive(Debug)]
pub struct Session {
    session_id: [u8; 16],
    role: Role,
    peer: String,
    keys: SessionKeys,
    send_seq: u64,
    recv_window: ReplayWindow,
    config: SessionConfig,
    established_at: u64,
    rekey_requested: bool,
    counters: SessionCounters,
}

impl Session {
    pub(crate) fn new(
        session_id: [u8; 16],
        role: Role,
        peer: String,
        keys: SessionKeys,
        config: SessionConfig,
        established_at: u64,
    ) -> Self {
        Self {
            session_id,
            role,
            peer,
            keys,
            send_seq: 0,
            recv_window: ReplayWindow::new(),
            config,
            established_at,
            rekey_requested: false,
            counters: SessionCounters::default(),
        }
    }

    /// The 16-byte session id chosen by the responder.
    pub fn session_id(&self) -> &[u8; 16] {
        &self.session_id
    }
    /// The negotiated MAC suite.
    pub fn suite(&self) -> SessionSuite {
        self.keys.suite()
    }
    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The peer's node id.
    pub fn peer(&self) -> &str {
        &self.peer
    }
    /// The derived keys (profile §4.3). Secret: for vectors and FCPC only.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }
    /// When the handshake completed (unix seconds).
    pub fn established_at(&self) -> u64 {
        self.established_at
    }
    /// Next sequence number to send.
    pub fn send_seq(&self) -> u64 {
        self.send_seq
    }
    /// The receive window.
    pub fn recv_window(&self) -> &ReplayWindow {
        &self.recv_window
    }
    /// Rejection counters of datagrams on this session.
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }
    /// Limits.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Ask for a rekey (the driver starts a new handshake).
    pub fn request_rekey(&mut self) {
        self.rekey_requested = true;
    }

    /// Whether the driver should start a new handshake: `rekey_after_frames`
    /// frames were sent, or a rekey was requested (profile §4.4).
    pub fn needs_rekey(&self) -> bool {
        self.rekey_requested || self.send_seq >= self.config.rekey_after_frames
    }

    /// Seal `frame` into a datagram appended to `out`.
    pub fn seal_datagram_into(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let total = SESSION_ENVELOPE_LEN.saturating_add(frame.len());
        if total > self.config.max_datagram {
            return Err(SessionError::FrameTooLarge {
                len: frame.len(),
                max: self.config.max_datagram,
            });
        }
        let seq = self.send_seq;
        if seq == u64::MAX {
            return Err(SessionError::SequenceExhausted);
        }
        let dir = self.role.send_direction();
        let key = self.keys.mac(dir).map_err(SessionError::Crypto)?;
        let mac = key.mac(&self.session_id, dir, seq, frame);
        out.reserve(total);
        out.extend_from_slice(&self.session_id);
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&mac);
        out.extend_from_slice(frame);
        self.send_seq = seq + 1;
        Ok(())
    }

    /// Seal `frame` into `session_id || u64le(seq) || mac || frame`.
    pub fn seal_datagram(&mut self, frame: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.seal_datagram_into(frame, &mut out)?;
        Ok(out)
    }

    /// Open a datagram: bounds, session id, replay pre-check, MAC (constant
    /// time), then window update. Returns the frame bytes.
    pub fn open_datagram<'a>(&mut self, datagram: &'a [u8]) -> Result<&'a [u8]> {
        open_inner(
            &self.session_id,
            self.role,
            &self.keys,
            &mut self.recv_window,
            self.config.max_datagram,
            datagram,
        )
        .map_err(|e| self.counters.reject(e))
    }

    /// The FCPC control-plane sender/receiver pair of this session, with
    /// `max_frame` as the bound (default [`super::DEFAULT_MAX_FCPC_FRAME`]).
    pub fn fcpc(&self, max_frame: usize) -> Result<(FcpcSender, FcpcReceiver)> {
        Ok((
            FcpcSender::new(
                self.keys.k_ctx(),
                self.session_id,
                self.role.send_direction(),
                max_frame,
            )?,
            FcpcReceiver::new(
                self.keys.k_ctx(),
                self.session_id,
                self.role.recv_direction(),
                max_frame,
            )?,
        ))
    }
}

/// The session id of a datagram, if it is long enough to carry one.
pub fn datagram_session_id(datagram: &[u8]) -> Option<[u8; 16]> {
    datagram
        .get(..16)
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
}

fn open_inner<'a>(
    session_id: &[u8; 16],
    role: Role,
    keys: &SessionKeys,
    window: &mut ReplayWindow,
    max_datagram: usize,
    datagram: &'a [u8],
) -> Result<&'a [u8]> {
    if datagram.len() > max_datagram {
        return Err(SessionError::Oversized {
            len: datagram.len(),
            max: max_datagram,
        });
    }
    let Some((env, frame)) = datagram.split_at_checked(SESSION_ENVELOPE_LEN) else {
        return Err(SessionError::Truncated(datagram.len()));
    };
    let (sid, rest) = env.split_at(16);
    let (seq_b, mac) = rest.split_at(8);
    if sid != session_id {
        return Err(SessionError::UnknownSession);
    }
    let mut seq_arr = [0u8; 8];
    seq_arr.copy_from_slice(seq_b);
    let seq = u64::from_le_bytes(seq_arr);
    // Pre-check (cheap, no state change), so replays cost no MAC.
    window.check(seq).map_err(|r| window_err(r, seq))?;
    let dir = role.recv_direction();
    let key = keys.mac(dir).map_err(SessionError::Crypto)?;
    key.verify(session_id, dir, seq, frame, mac)
        .map_err(|_| SessionError::BadMac)?;
    window.update(seq);
    Ok(frame)
}

fn window_err(r: WindowReject, seq: u64) -> SessionError {
    match r {
        WindowReject::Replayed => SessionError::ReplayedFrame(seq),
        WindowReject::Outside(highest) => SessionError::FrameOutsideWindow { seq, highest },
    }
}

/// The sessions of one peer: the current one and, after a rekey, the previous
/// one until its grace period ends. Datagrams are routed by session id, so
/// frames in flight under the old keys are not lost.
#[derive(Debug)]
pub struct PeerSessions {
    current: Session,
    previous: Option<(Session, u64)>,
    grace_secs: u64,
    counters: SessionCounters,
}

impl PeerSessions {
    /// Start with `session`; `grace_secs` is the rekey grace period.
    pub fn new(session: Session, grace_secs: u64) -> Self {
        Self {
            current: session,
            previous: None,
            grace_secs,
            counters: SessionCounters::default(),
        }
    }

    /// Install the session of a new handshake (rekey). The old current session
    /// stays acceptable for receiving until `now + grace_secs`; sending
    /// switches to the new one immediately.
    pub fn install(&mut self, session: Session, now: u64) {
        let old = core::mem::replace(&mut self.current, session);
        self.previous = Some((old, now.saturating_add(self.grace_secs)));
    }

    /// Drop the previous session if its grace period ended.
    pub fn expire(&mut self, now: u64) {
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, until)| now > *until)
        {
            self.previous = None;
        }
    }

    /// The current session.
    pub fn current(&self) -> &Session {
        &self.current
    }
    /// The current session, mutably.
    pub fn current_mut(&mut self) -> &mut Session {
        &mut self.current
    }
    /// The previous session, while in its grace period.
    pub fn previous(&self) -> Option<&Session> {
        self.previous.as_ref().map(|(s, _)| s)
    }

    /// Counters of datagrams that matched neither session, plus the sums of
    /// both sessions' counters are available through [`Self::current`] /
    /// [`Self::previous`].
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    /// Seal with the current session.
    pub fn seal_datagram(&mut self, frame: &[u8]) -> Result<Vec<u8>> {
        self.current.seal_datagram(frame)
    }

    /// Seal with the current session, appending to `out` (a send batch).
    pub fn seal_datagram_into(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.current.seal_datagram_into(frame, out)
    }

    /// Route a datagram to the current or (in grace) previous session.
    pub fn open_datagram<'a>(&mut self, datagram: &'a [u8], now: u64) -> Result<&'a [u8]> {
        self.expire(now);
        let Some(sid) = datagram_session_id(datagram) else {
            return Err(self
                .counters
                .reject(SessionError::Truncated(datagram.len())));
        };
        if sid == self.current.session_id {
            return self.current.open_datagram(datagram);
        }
        if let Some((prev, _)) = self.previous.as_mut()
            && sid == prev.session_id
        {
            return prev.open_datagram(datagram);
        }
        Err(self.counters.reject(SessionError::UnknownSession))
    }
}
