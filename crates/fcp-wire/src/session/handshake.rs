//! The session handshake as typestate (spec §4.2, review 000 #5, profile §4.3).
//!
//! ```text
//! initiator                                   responder (long-lived)
//! InitiatorStart::start ── Hello ───────────►  Responder::on_hello
//!                        ◄── HelloRetry ─────   (cookie demanded: no state kept)
//! InitiatorAwaitAck::on_retry ── Hello+cookie ► Responder::on_hello
//!                        ◄── Ack ────────────   → Session (responder)
//! InitiatorAwaitAck::on_ack → Session (initiator)
//! ```
//!
//! Every transition consumes the old state. A rejected message does not kill
//! an initiator handshake: the state comes back inside [`Rejected`], so a
//! forged or stale packet on an unauthenticated path cannot abort it.
//!
//! Responder checks, cheapest first: size and strict decode, addressing,
//! timestamp skew (`TimePolicy`), cookie (policy), Hello replay cache, trust
//! anchor, signature, suite negotiation (first suite of the initiator's
//! *signed* list the responder supports), then the key exchange. Hello nonces
//! enter the replay cache only after the Hello fully verified.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use fcp_core::TimePolicy;
use fcp_crypto::session::derive_session_keys;
use fcp_crypto::{
    CryptoError, EphemeralKeyPair, NodeSigningKey, SessionKeys, SessionSuite, X25519PublicKey,
};
use rand_core::CryptoRng;

use super::cookie::CookieKeys;
use super::counters::SessionCounters;
use super::messages::{
    MAX_NODE_ID_LEN, MAX_SUITES, MeshSessionAck, MeshSessionHello, MeshSessionHelloRetry,
};
use super::transport::{Role, Session, SessionConfig};
use super::{Result, SessionError, TrustAnchors};

/// Maximum HelloRetry rounds an initiator accepts per handshake.
pub const MAX_RETRIES: u8 = 2;
/// Default capacity of the responder's Hello replay cache.
pub const DEFAULT_REPLAY_CACHE: usize = 65_536;

/// This node's identity: its node id and node signing key.
#[derive(Debug)]
pub struct LocalIdentity {
    node_id: String,
    signing_key: NodeSigningKey,
}

impl LocalIdentity {
    /// `node_id` must be 1..=256 bytes.
    pub fn new(node_id: impl Into<String>, signing_key: NodeSigningKey) -> Result<Self> {
        let node_id = node_id.into();
        if node_id.is_empty() || node_id.len() > MAX_NODE_ID_LEN {
            return Err(SessionError::InvalidConfig(
                "node id length outside 1..=256",
            ));
        }
        Ok(Self {
            node_id,
            signing_key,
        })
    }
    /// The node id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }
    /// The signing key.
    pub fn signing_key(&self) -> &NodeSigningKey {
        &self.signing_key
    }
}

/// A rejected message plus the unchanged state, so the handshake goes on.
#[derive(Debug)]
pub struct Rejected<S> {
    /// Why the message was rejected.
    pub error: SessionError,
    /// The state before the message.
    pub state: S,
}

fn check_suites(suites: &[SessionSuite]) -> Result<()> {
    if suites.is_empty() || suites.len() > MAX_SUITES {
        return Err(SessionError::InvalidConfig(
            "suite list must have 1..=16 entries",
        ));
    }
    for (i, s) in suites.iter().enumerate() {
        if suites[..i].contains(s) {
            return Err(SessionError::InvalidConfig("duplicate suite"));
        }
    }
    Ok(())
}

fn suite_bytes(suites: &[SessionSuite]) -> Vec<u8> {
    suites.iter().map(|s| s.as_u8()).collect()
}

fn skew(policy: &TimePolicy, now: u64, ts: u64) -> Result<()> {
    policy
        .check_timestamp(now, ts)
        .map_err(|_| SessionError::TimestampSkew { now, ts })
}

#[allow(clippy::too_many_arguments)]
fn keys_for(
    eph: &EphemeralKeyPair,
    peer_eph: &[u8; 32],
    suite: SessionSuite,
    session_id: &[u8; 16],
    initiator: &str,
    responder: &str,
    hello_nonce: &[u8; 16],
    ack_nonce: &[u8; 16],
) -> Result<SessionKeys> {
    let shared = eph
        .diffie_hellman(&X25519PublicKey(*peer_eph))
        .map_err(|e| match e {
            CryptoError::NonContributoryKeyExchange => SessionError::KeyExchange,
            other => SessionError::Crypto(other),
        })?;
    derive_session_keys(
        suite,
        session_id,
        &shared,
        initiator,
        responder,
        hello_nonce,
        ack_nonce,
    )
    .map_err(SessionError::Crypto)
}

// ---------------------------------------------------------------- initiator

/// Suites a node offers and accepts by default, most preferred first.
/// HMAC-SHA256 leads: with SHA extensions it MACs a 1232-byte datagram in
/// ~0.9 µs, keyed BLAKE3 in ~2 µs here (decision 57).
pub const DEFAULT_SUITES: [SessionSuite; 2] = [SessionSuite::HmacSha256, SessionSuite::Blake3];

/// Initiator settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitiatorConfig {
    /// Offered suites, most preferred first (signed in the Hello).
    pub suites: Vec<SessionSuite>,
    /// Skew policy for the Ack's timestamp.
    pub time_policy: TimePolicy,
    /// Limits of the resulting session.
    pub session: SessionConfig,
}

impl Default for InitiatorConfig {
    fn default() -> Self {
        Self {
            suites: DEFAULT_SUITES.to_vec(),
            time_policy: TimePolicy::default(),
            session: SessionConfig::default(),
        }
    }
}

/// Initiator, before the Hello.
#[derive(Debug)]
pub struct InitiatorStart {
    identity: Arc<LocalIdentity>,
    peer: String,
    config: InitiatorConfig,
}

/// Initiator, Hello sent, waiting for a HelloRetry or the Ack.
#[derive(Debug)]
pub struct InitiatorAwaitAck(Box<AwaitAck>);

#[derive(Debug)]
struct AwaitAck {
    identity: Arc<LocalIdentity>,
    peer: String,
    config: InitiatorConfig,
    eph: EphemeralKeyPair,
    hello: MeshSessionHello,
    retries: u8,
}

impl InitiatorStart {
    /// A handshake with `peer`.
    pub fn new(
        identity: Arc<LocalIdentity>,
        peer: impl Into<String>,
        config: InitiatorConfig,
    ) -> Result<Self> {
        let peer = peer.into();
        if peer.is_empty() || peer.len() > MAX_NODE_ID_LEN || peer == identity.node_id {
            return Err(SessionError::InvalidConfig("bad peer node id"));
        }
        check_suites(&config.suites)?;
        Ok(Self {
            identity,
            peer,
            config,
        })
    }

    /// Build and sign the Hello at `now` with fresh randomness.
    pub fn start<R: CryptoRng + ?Sized>(
        self,
        now: u64,
        rng: &mut R,
    ) -> Result<(Vec<u8>, InitiatorAwaitAck)> {
        let eph = EphemeralKeyPair::generate(rng);
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        self.start_with(now, eph, nonce)
    }

    /// [`Self::start`] with explicit randomness (test vectors).
    pub fn start_with(
        self,
        now: u64,
        eph: EphemeralKeyPair,
        nonce: [u8; 16],
    ) -> Result<(Vec<u8>, InitiatorAwaitAck)> {
        let mut hello = MeshSessionHello {
            from: self.identity.node_id.clone(),
            to: self.peer.clone(),
            eph_pubkey: eph.public_key().to_bytes(),
            nonce,
            timestamp: now,
            suites: suite_bytes(&self.config.suites),
            cookie: None,
            signature: [0; 64],
        };
        hello.sign(&self.identity.signing_key)?;
        let bytes = hello.encode()?;
        Ok((
            bytes,
            InitiatorAwaitAck(Box::new(AwaitAck {
                identity: self.identity,
                peer: self.peer,
                config: self.config,
                eph,
                hello,
                retries: 0,
            })),
        ))
    }
}

impl InitiatorAwaitAck {
    /// The Hello nonce of this handshake.
    pub fn hello_nonce(&self) -> &[u8; 16] {
        &self.0.hello.nonce
    }
    /// The peer.
    pub fn peer(&self) -> &str {
        &self.0.peer
    }
    /// The Hello as last sent (for retransmission).
    pub fn hello_bytes(&self) -> Result<Vec<u8>> {
        self.0.hello.encode()
    }

    fn reject<T>(
        self,
        counters: &mut SessionCounters,
        e: SessionError,
    ) -> core::result::Result<T, Rejected<Self>> {
        Err(Rejected {
            error: counters.reject(e),
            state: self,
        })
    }

    /// A HelloRetry: re-sign the same Hello (same eph key, nonce and
    /// timestamp, which the cookie covers) with the cookie.
    pub fn on_retry(
        mut self,
        bytes: &[u8],
        counters: &mut SessionCounters,
    ) -> core::result::Result<(Vec<u8>, Self), Rejected<Self>> {
        let retry = match MeshSessionHelloRetry::decode(bytes) {
            Ok(r) => r,
            Err(e) => return self.reject(counters, e),
        };
        if retry.from != self.0.peer || retry.to != self.0.identity.node_id {
            return self.reject(counters, SessionError::WrongPeer);
        }
        if retry.hello_nonce != self.0.hello.nonce {
            return self.reject(
                counters,
                SessionError::UnexpectedMessage("retry for another Hello"),
            );
        }
        if self.0.retries >= MAX_RETRIES {
            return self.reject(
                counters,
                SessionError::UnexpectedMessage("too many HelloRetry rounds"),
            );
        }
        let previous = self.0.hello.cookie.replace(retry.cookie);
        let signed = self
            .0
            .hello
            .sign(&self.0.identity.signing_key)
            .and_then(|()| self.0.hello.encode());
        match signed {
            Ok(out) => {
                self.0.retries += 1;
                Ok((out, self))
            }
            Err(e) => {
                self.0.hello.cookie = previous;
                let _ = self.0.hello.sign(&self.0.identity.signing_key);
                self.reject(counters, e)
            }
        }
    }

    /// The Ack: verify it and derive the session.
    pub fn on_ack<A: TrustAnchors + ?Sized>(
        self,
        bytes: &[u8],
        now: u64,
        anchors: &A,
        counters: &mut SessionCounters,
    ) -> core::result::Result<Session, Rejected<Self>> {
        match self.check_ack(bytes, now, anchors) {
            Ok((ack, suite)) => {
                match keys_for(
                    &self.0.eph,
                    &ack.eph_pubkey,
                    suite,
                    &ack.session_id,
                    &self.0.identity.node_id,
                    &self.0.peer,
                    &self.0.hello.nonce,
                    &ack.nonce,
                ) {
                    Ok(keys) => {
                        counters.handshakes_completed =
                            counters.handshakes_completed.saturating_add(1);
                        Ok(Session::new(
                            ack.session_id,
                            Role::Initiator,
                            self.0.peer,
                            keys,
                            self.0.config.session,
                            now,
                        ))
                    }
                    Err(e) => self.reject(counters, e),
                }
            }
            Err(e) => self.reject(counters, e),
        }
    }

    fn check_ack<A: TrustAnchors + ?Sized>(
        &self,
        bytes: &[u8],
        now: u64,
        anchors: &A,
    ) -> Result<(MeshSessionAck, SessionSuite)> {
        let ack = MeshSessionAck::decode(bytes)?;
        if ack.from != self.0.peer || ack.to != self.0.identity.node_id {
            return Err(SessionError::WrongPeer);
        }
        if ack.hello_nonce != self.0.hello.nonce {
            return Err(SessionError::UnexpectedMessage("Ack for another Hello"));
        }
        skew(&self.0.config.time_policy, now, ack.timestamp)?;
        let key = anchors
            .node_signing_key(&ack.from)
            .ok_or_else(|| SessionError::UnknownNode(ack.from.clone()))?;
        ack.verify(&key)?;
        // No downgrade: the selected suite must be the first of our (signed)
        // offer that the responder's (signed) list supports.
        let expected = self
            .0
            .config
            .suites
            .iter()
            .copied()
            .find(|s| ack.suites.contains(&s.as_u8()));
        match expected {
            Some(s) if s.as_u8() == ack.suite => Ok((ack, s)),
            _ => Err(SessionError::SuiteDowngrade(ack.suite)),
        }
    }
}

// ---------------------------------------------------------------- responder

/// When the responder demands a HelloRetry cookie (review 000 #5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookiePolicy {
    /// Never (trusted networks, tests).
    Never,
    /// Always.
    Always,
    /// When more than this many cookie-less Hellos arrived in the current
    /// second (a proxy for half-open handshakes per second).
    AboveRate(u32),
}

/// Responder settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponderConfig {
    /// Supported suites.
    pub suites: Vec<SessionSuite>,
    /// Skew policy for Hello timestamps.
    pub time_policy: TimePolicy,
    /// When to demand a cookie.
    pub cookie_policy: CookiePolicy,
    /// Bound of the Hello replay cache.
    pub replay_cache_capacity: usize,
    /// Limits of resulting sessions.
    pub session: SessionConfig,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        Self {
            suites: DEFAULT_SUITES.to_vec(),
            time_policy: TimePolicy::default(),
            cookie_policy: CookiePolicy::AboveRate(64),
            replay_cache_capacity: DEFAULT_REPLAY_CACHE,
            session: SessionConfig::default(),
        }
    }
}

/// Randomness of one responder handshake (explicit for test vectors).
#[derive(Debug)]
pub struct ResponderRandomness {
    /// Responder ephemeral key.
    pub eph: EphemeralKeyPair,
    /// Ack nonce.
    pub nonce: [u8; 16],
    /// Session id.
    pub session_id: [u8; 16],
}

impl ResponderRandomness {
    /// Draw from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let eph = EphemeralKeyPair::generate(rng);
        let mut nonce = [0u8; 16];
        let mut session_id = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        rng.fill_bytes(&mut session_id);
        Self {
            eph,
            nonce,
            session_id,
        }
    }
}

/// What the responder sends back.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResponderOutput {
    /// A HelloRetry (message bytes); no state was kept.
    Retry(Vec<u8>),
    /// The Ack (message bytes) and the established session.
    Accept {
        /// Ack message bytes.
        ack: Vec<u8>,
        /// The responder's session.
        session: Box<Session>,
    },
}

/// Bounded cache of verified Hello `(from, nonce)` pairs, kept for twice the
/// skew window (a Hello older than that fails the timestamp check anyway).
#[derive(Debug, Default)]
struct HelloReplayCache {
    seen: HashSet<(Box<str>, [u8; 16])>,
    order: VecDeque<(u64, Box<str>, [u8; 16])>,
}

impl HelloReplayCache {
    fn sweep(&mut self, now: u64, keep_secs: u64) {
        while let Some((t, _, _)) = self.order.front() {
            if t.saturating_add(keep_secs) >= now {
                break;
            }
            if let Some((_, from, nonce)) = self.order.pop_front() {
                self.seen.remove(&(from, nonce));
            }
        }
    }
    fn contains(&self, from: &str, nonce: &[u8; 16]) -> bool {
        self.seen.contains(&(Box::from(from), *nonce))
    }
    fn insert(&mut self, now: u64, from: &str, nonce: [u8; 16]) {
        let from: Box<str> = Box::from(from);
        if self.seen.insert((from.clone(), nonce)) {
            self.order.push_back((now, from, nonce));
        }
    }
    fn len(&self) -> usize {
        self.seen.len()
    }
}

/// The long-lived responder: keys, cookie keys, supported suites, policy and
/// the Hello replay cache (the only per-peer-ish state).
#[derive(Debug)]
pub struct Responder {
    identity: Arc<LocalIdentity>,
    config: ResponderConfig,
    cookies: CookieKeys,
    replay: HelloReplayCache,
    rate_second: u64,
    rate_count: u32,
    counters: SessionCounters,
}

impl Responder {
    /// A responder whose first cookie key is drawn at `now`.
    pub fn new<R: CryptoRng + ?Sized>(
        identity: Arc<LocalIdentity>,
        config: ResponderConfig,
        now: u64,
        rng: &mut R,
    ) -> Result<Self> {
        check_suites(&config.suites)?;
        if config.replay_cache_capacity == 0 {
            return Err(SessionError::InvalidConfig("replay cache capacity 0"));
        }
        Ok(Self {
            identity,
            cookies: CookieKeys::new(now, rng),
            config,
            replay: HelloReplayCache::default(),
            rate_second: now,
            rate_count: 0,
            counters: SessionCounters::default(),
        })
    }

    /// A responder with an explicit first cookie key (test vectors, tools).
    pub fn with_cookie_key(
        identity: Arc<LocalIdentity>,
        config: ResponderConfig,
        now: u64,
        cookie_key: [u8; 32],
    ) -> Result<Self> {
        check_suites(&config.suites)?;
        if config.replay_cache_capacity == 0 {
            return Err(SessionError::InvalidConfig("replay cache capacity 0"));
        }
        Ok(Self {
            identity,
            cookies: CookieKeys::from_key(now, cookie_key),
            config,
            replay: HelloReplayCache::default(),
            rate_second: now,
            rate_count: 0,
            counters: SessionCounters::default(),
        })
    }

    /// Rejection and progress counters of handshakes.
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }
    /// The node id.
    pub fn node_id(&self) -> &str {
        &self.identity.node_id
    }
    /// Verified Hello nonces currently cached.
    pub fn replay_cache_len(&self) -> usize {
        self.replay.len()
    }

    /// Rotate the cookie keys if due (also done by [`Self::on_hello`]).
    pub fn tick<R: CryptoRng + ?Sized>(&mut self, now: u64, rng: &mut R) {
        self.cookies.rotate_if_due(now, rng);
    }

    /// Handle a Hello (message bytes) at `now`.
    pub fn on_hello<A: TrustAnchors + ?Sized, R: CryptoRng + ?Sized>(
        &mut self,
        bytes: &[u8],
        now: u64,
        anchors: &A,
        rng: &mut R,
    ) -> Result<ResponderOutput> {
        self.cookies.rotate_if_due(now, rng);
        self.handle(bytes, now, anchors, || ResponderRandomness::generate(rng))
            .map_err(|e| self.counters.reject(e))
    }

    /// [`Self::on_hello`] with explicit randomness and no cookie rotation
    /// (test vectors; drive rotation with [`Self::tick`]).
    pub fn on_hello_with<A: TrustAnchors + ?Sized>(
        &mut self,
        bytes: &[u8],
        now: u64,
        anchors: &A,
        randomness: ResponderRandomness,
    ) -> Result<ResponderOutput> {
        self.handle(bytes, now, anchors, || randomness)
            .map_err(|e| self.counters.reject(e))
    }

    fn demand_cookie(&mut self, now: u64) -> bool {
        if now != self.rate_second {
            self.rate_second = now;
            self.rate_count = 0;
        }
        self.rate_count = self.rate_count.saturating_add(1);
        match self.config.cookie_policy {
            CookiePolicy::Never => false,
            CookiePolicy::Always => true,
            CookiePolicy::AboveRate(n) => self.rate_count > n,
        }
    }

    fn handle<A: TrustAnchors + ?Sized>(
        &mut self,
        bytes: &[u8],
        now: u64,
        anchors: &A,
        randomness: impl FnOnce() -> ResponderRandomness,
    ) -> Result<ResponderOutput> {
        let hello = MeshSessionHello::decode(bytes)?;
        if hello.to != self.identity.node_id || hello.from == self.identity.node_id {
            return Err(SessionError::WrongPeer);
        }
        skew(&self.config.time_policy, now, hello.timestamp)?;
        match &hello.cookie {
            Some(c) => self.cookies.check(&hello, c)?,
            None => {
                if self.demand_cookie(now) {
                    let retry = MeshSessionHelloRetry {
                        from: self.identity.node_id.clone(),
                        to: hello.from.clone(),
                        hello_nonce: hello.nonce,
                        cookie: self.cookies.issue(&hello)?,
                        timestamp: now,
                    };
                    self.counters.retries_sent = self.counters.retries_sent.saturating_add(1);
                    return Ok(ResponderOutput::Retry(retry.encode()?));
                }
            }
        }
        let keep = self.config.time_policy.max_skew_secs.saturating_mul(2);
        self.replay.sweep(now, keep);
        if self.replay.contains(&hello.from, &hello.nonce) {
            return Err(SessionError::ReplayedHello);
        }
        if self.replay.len() >= self.config.replay_cache_capacity {
            return Err(SessionError::Overloaded);
        }
        let key = anchors
            .node_signing_key(&hello.from)
            .ok_or_else(|| SessionError::UnknownNode(hello.from.clone()))?;
        hello.verify(&key)?;
        // Spec §4.2: the first suite of the initiator's signed list we support.
        let suite = hello
            .suites
            .iter()
            .filter_map(|b| SessionSuite::try_from(*b).ok())
            .find(|s| self.config.suites.contains(s))
            .ok_or(SessionError::NoCommonSuite)?;
        let rnd = randomness();
        let keys = keys_for(
            &rnd.eph,
            &hello.eph_pubkey,
            suite,
            &rnd.session_id,
            &hello.from,
            &self.identity.node_id,
            &hello.nonce,
            &rnd.nonce,
        )?;
        let mut ack = MeshSessionAck {
            from: self.identity.node_id.clone(),
            to: hello.from.clone(),
            eph_pubkey: rnd.eph.public_key().to_bytes(),
            nonce: rnd.nonce,
            hello_nonce: hello.nonce,
            session_id: rnd.session_id,
            suite: suite.as_u8(),
            suites: suite_bytes(&self.config.suites),
            timestamp: now,
            signature: [0; 64],
        };
        ack.sign(&self.identity.signing_key)?;
        let ack_bytes = ack.encode()?;
        self.replay.insert(now, &hello.from, hello.nonce);
        self.counters.handshakes_completed = self.counters.handshakes_completed.saturating_add(1);
        Ok(ResponderOutput::Accept {
            ack: ack_bytes,
            session: Box::new(Session::new(
                rnd.session_id,
                Role::Responder,
                hello.from,
                keys,
                self.config.session,
                now,
            )),
        })
    }
}
