//! Per-peer admission budgets (spec §8.4), sans-IO.
//!
//! [`Admission`] decides, before any work is done for a peer, whether the work
//! is admitted: inbound bytes and symbols per window, failed decrypt/MAC
//! attempts per window, concurrent in-flight operations (decodes, open store
//! requests, symbol requests being served), decode CPU time per window, and how
//! many symbols a node may send in answer to one request (the anti-amplification
//! rule). It does no IO and reads no clock: every call takes `now_ms`, a
//! monotonic millisecond count chosen by the caller.
//!
//! Invariants:
//! - Deterministic: the same calls with the same `now_ms` give the same
//!   answers. Time that goes backwards is treated as no time passing.
//! - O(1) per call (hash lookup plus constant linked-list work), and at most
//!   [`AdmissionPolicy::max_tracked_peers`] peers are tracked. When the table is
//!   full, the least recently active peer with no operation in flight is
//!   forgotten; if every tracked peer has one in flight, the new peer is refused.
//! - Budgets use fixed one-minute windows ([`WINDOW_MS`]) per peer; within one
//!   window of a tracked peer, admitted bytes, symbols, in-flight operations
//!   never exceed the budget. Only admitted work is charged.
//! - Every refusal is a [`Rejected`] with a [`RejectReason`] that maps to a
//!   stable FCP error code, and is counted in [`AdmissionCounters`].
//!
//! Design notes are in `docs/spec-decisions.md` (entries 49–53).

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use fcp_core::{ErrorCode, FcpError, HasErrorCode};
use serde::{Deserialize, Serialize};

/// Length of one budget window: the spec's budgets are per minute.
pub const WINDOW_MS: u64 = 60_000; // spec §8.4

/// Per-peer resource budget (spec §8.4 `PeerBudget`), per [`WINDOW_MS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerBudget {
    /// Inbound bytes per minute (default 64 MiB).
    pub max_bytes_per_min: u64, // spec §8.4
    /// Inbound symbols per minute (default 200 000).
    pub max_symbols_per_min: u32, // spec §8.4
    /// Failed decrypt/MAC checks tolerated per minute (default 100); one more
    /// throttles the peer for the rest of the window.
    pub max_failed_auth_per_min: u32, // spec §8.4
    /// Concurrent decodes (default 32).
    pub max_inflight_decodes: u32, // spec §8.4
    /// Decode CPU time per minute in milliseconds (default 5 000).
    pub max_decode_cpu_ms_per_min: u64, // spec §8.4
    /// Profile extension: concurrent open store requests the peer may have
    /// with this node (default 128, the writer's placement concurrency).
    pub max_inflight_store_requests: u32,
    /// Profile extension: concurrent symbol requests of the peer this node
    /// serves (default 32).
    pub max_inflight_symbol_requests: u32,
}

impl Default for PeerBudget {
    fn default() -> Self {
        Self {
            // "64MB/min", read as MiB (spec-decisions 49).
            max_bytes_per_min: 64 * 1024 * 1024, // spec §8.4
            max_symbols_per_min: 200_000,        // spec §8.4
            max_failed_auth_per_min: 100,        // spec §8.4
            max_inflight_decodes: 32,            // spec §8.4
            max_decode_cpu_ms_per_min: 5_000,    // spec §8.4
            // Profile extensions (spec-decisions 51).
            max_inflight_store_requests: 128,
            max_inflight_symbol_requests: 32,
        }
    }
}

impl PeerBudget {
    fn max_inflight(&self, kind: InflightKind) -> u32 {
        match kind {
            InflightKind::Decode => self.max_inflight_decodes,
            InflightKind::StoreRequest => self.max_inflight_store_requests,
            InflightKind::SymbolRequest => self.max_inflight_symbol_requests,
        }
    }
}

/// Admission policy (spec §8.4 `AdmissionPolicy`) plus the bounds this
/// implementation needs to be explicit about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionPolicy {
    /// The budget every peer gets.
    pub per_peer: PeerBudget, // spec §8.4
    /// Refuse symbol requests that no session MAC or node signature covers
    /// (default true; false only for `z:public` ingress).
    pub require_authenticated_requests: bool, // spec §8.4
    /// `N` of the anti-amplification rule: the most symbols sent in answer to
    /// one request that is not both authenticated and carrying a bounded
    /// proof-of-need (default 64).
    pub max_unproven_response_symbols: u32, // spec §8.4
    /// Upper bound on a proof-of-need: the most symbols sent in answer to one
    /// authenticated request with a missing-hint (default 65 536, the largest
    /// ESI list of a control message).
    pub max_proven_response_symbols: u32,
    /// Unauthenticated sources get at most this many times the bytes they sent
    /// (default 3, as QUIC's address-validation limit, RFC 9000 §8.1).
    pub unauthenticated_amplification_factor: u32,
    /// Peers tracked at once (default 4096); at least 1.
    pub max_tracked_peers: u32,
}

impl Default for AdmissionPolicy {
    fn default() -> Self {
        Self {
            per_peer: PeerBudget::default(),
            require_authenticated_requests: true,
            max_unproven_response_symbols: 64,
            max_proven_response_symbols: 1 << 16,
            unauthenticated_amplification_factor: 3,
            max_tracked_peers: 4096,
        }
    }
}

/// The kinds of concurrent per-peer operations that hold a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InflightKind {
    /// Decoding an object from this peer's symbols.
    Decode, // spec §8.4
    /// An open StoreRequest from this peer (symbols it pushes to us).
    StoreRequest,
    /// A SymbolRequest of this peer that we are serving.
    SymbolRequest,
}

impl InflightKind {
    const fn index(self) -> usize {
        match self {
            Self::Decode => 0,
            Self::StoreRequest => 1,
            Self::SymbolRequest => 2,
        }
    }
}

impl fmt::Display for InflightKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Decode => "decodes",
            Self::StoreRequest => "store requests",
            Self::SymbolRequest => "symbol requests",
        })
    }
}

/// Why admission refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// The peer's inbound bytes for this window are used up.
    InboundBytes,
    /// The peer's inbound symbols for this window are used up.
    InboundSymbols,
    /// The peer failed more decrypt/MAC checks than allowed in this window.
    FailedAuth,
    /// The peer's decode CPU time for this window is used up.
    DecodeCpu,
    /// The peer has the maximum number of operations of this kind in flight.
    Inflight(InflightKind),
    /// Every tracked peer has an operation in flight; no slot for a new one.
    PeerTableFull,
    /// The request is not authenticated and the policy requires it.
    Unauthenticated,
    /// An unauthenticated source used up its amplification credit.
    Amplification,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InboundBytes => f.write_str("peer inbound byte budget exhausted"),
            Self::InboundSymbols => f.write_str("peer inbound symbol budget exhausted"),
            Self::FailedAuth => f.write_str("peer exceeded its failed decrypt/MAC budget"),
            Self::DecodeCpu => f.write_str("peer decode CPU budget exhausted"),
            Self::Inflight(k) => write!(f, "peer has too many {k} in flight"),
            Self::PeerTableFull => f.write_str("admission table full of busy peers"),
            Self::Unauthenticated => f.write_str("request is not authenticated"),
            Self::Amplification => {
                f.write_str("anti-amplification limit for unauthenticated source")
            }
        }
    }
}

impl HasErrorCode for RejectReason {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::InboundBytes
            | Self::InboundSymbols
            | Self::FailedAuth
            | Self::DecodeCpu
            | Self::Amplification => ErrorCode::RateLimited,
            Self::Inflight(_) | Self::PeerTableFull => ErrorCode::ResourceLimit,
            Self::Unauthenticated => ErrorCode::AuthenticationRequired,
        }
    }
}

/// An admission refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejected {
    /// Why.
    pub reason: RejectReason,
    /// When the refused work could fit again (the end of the peer's window),
    /// if waiting alone can help.
    pub retry_after_ms: Option<u64>,
}

impl HasErrorCode for Rejected {
    fn error_code(&self) -> ErrorCode {
        self.reason.error_code()
    }
}

impl Rejected {
    /// The spec §24.2 error response, with `retry_after_ms` filled in.
    pub fn to_fcp_error(&self) -> FcpError {
        let mut e = FcpError::from_err(self);
        e.retry_after_ms = self.retry_after_ms;
        e
    }
}

/// Who sent a request answered with symbols (anti-amplification, spec §8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester {
    /// Neither a session MAC nor a node signature covers the request.
    Unauthenticated,
    /// A session MAC or node signature covers the request.
    Authenticated {
        /// Symbols named by the request's bounded missing-hint (e.g.
        /// `DecodeStatus.missing_hint`) or comparable proof-of-need; `None`
        /// when the request carries none.
        proof_of_need: Option<u32>,
    },
}

/// The bound that decided a [`ResponseGrant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantLimit {
    /// Everything available may be sent.
    Available,
    /// `N` of the anti-amplification rule.
    UnprovenCap,
    /// The requester's stated need.
    ProofOfNeed,
    /// [`AdmissionPolicy::max_proven_response_symbols`].
    ProvenCap,
    /// The unauthenticated source's amplification credit.
    AmplificationCredit,
}

/// How many symbols a node may send in answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ResponseGrant {
    /// Send at most this many symbols.
    pub symbols: u32,
    /// Which bound set `symbols`.
    pub limit: GrantLimit,
}

/// A held in-flight slot; give it back with [`Admission::finish`].
///
/// Not `Clone`: a slot is released once. A permit outliving its peer's entry
/// (removed with [`Admission::remove_peer`]) or its session (ended with
/// [`Admission::release_peer`]) releases nothing.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an in-flight slot stays taken until the permit is finished"]
pub struct Permit {
    slot: u32,
    generation: u64,
    kind: InflightKind,
}

impl Permit {
    /// The kind of operation this slot is for.
    pub fn kind(&self) -> InflightKind {
        self.kind
    }
}

/// Refusals per reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RejectCounters {
    /// [`RejectReason::InboundBytes`].
    pub inbound_bytes: u64,
    /// [`RejectReason::InboundSymbols`].
    pub inbound_symbols: u64,
    /// [`RejectReason::FailedAuth`].
    pub failed_auth: u64,
    /// [`RejectReason::DecodeCpu`].
    pub decode_cpu: u64,
    /// [`RejectReason::Inflight`] for decodes.
    pub inflight_decodes: u64,
    /// [`RejectReason::Inflight`] for store requests.
    pub inflight_store_requests: u64,
    /// [`RejectReason::Inflight`] for symbol requests.
    pub inflight_symbol_requests: u64,
    /// [`RejectReason::PeerTableFull`].
    pub peer_table_full: u64,
    /// [`RejectReason::Unauthenticated`].
    pub unauthenticated: u64,
    /// [`RejectReason::Amplification`].
    pub amplification: u64,
}

impl RejectCounters {
    fn bump(&mut self, r: RejectReason) {
        let c = match r {
            RejectReason::InboundBytes => &mut self.inbound_bytes,
            RejectReason::InboundSymbols => &mut self.inbound_symbols,
            RejectReason::FailedAuth => &mut self.failed_auth,
            RejectReason::DecodeCpu => &mut self.decode_cpu,
            RejectReason::Inflight(InflightKind::Decode) => &mut self.inflight_decodes,
            RejectReason::Inflight(InflightKind::StoreRequest) => &mut self.inflight_store_requests,
            RejectReason::Inflight(InflightKind::SymbolRequest) => {
                &mut self.inflight_symbol_requests
            }
            RejectReason::PeerTableFull => &mut self.peer_table_full,
            RejectReason::Unauthenticated => &mut self.unauthenticated,
            RejectReason::Amplification => &mut self.amplification,
        };
        *c = c.saturating_add(1);
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        [
            self.inbound_bytes,
            self.inbound_symbols,
            self.failed_auth,
            self.decode_cpu,
            self.inflight_decodes,
            self.inflight_store_requests,
            self.inflight_symbol_requests,
            self.peer_table_full,
            self.unauthenticated,
            self.amplification,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// What admission did, for a status endpoint (`serde_json::to_value`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AdmissionCounters {
    /// Admitted inbound calls (datagrams or frames).
    pub inbound_admitted: u64,
    /// Admitted inbound bytes.
    pub inbound_bytes_admitted: u64,
    /// Admitted inbound symbols.
    pub inbound_symbols_admitted: u64,
    /// Failed decrypt/MAC checks reported.
    pub failed_auth_recorded: u64,
    /// In-flight slots handed out.
    pub inflight_started: u64,
    /// In-flight slots given back.
    pub inflight_finished: u64,
    /// Requests answered with a grant.
    pub responses_granted: u64,
    /// Symbols granted over all responses.
    pub response_symbols_granted: u64,
    /// Grants smaller than what was available.
    pub responses_capped: u64,
    /// Peers forgotten to make room for new ones.
    pub peers_evicted: u64,
    /// Of those, peers active within the last window.
    pub peers_evicted_active: u64,
    /// Refusals per reason.
    pub rejected: RejectCounters,
}

/// Counters plus table occupancy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AdmissionStatus {
    /// Peers tracked now.
    pub tracked_peers: u32,
    /// Of those, peers with an operation in flight.
    pub busy_peers: u32,
    /// The table bound.
    pub max_tracked_peers: u32,
    /// Operations in flight now, over every tracked peer.
    pub inflight: InflightTotals,
    /// Counters since start.
    pub counters: AdmissionCounters,
}

/// In-flight slots held now, per kind (summed over peers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InflightTotals {
    /// Decodes.
    pub decodes: u64,
    /// Open StoreRequests (pushes being received).
    pub store_requests: u64,
    /// SymbolRequests being served.
    pub symbol_requests: u64,
}

/// One peer's usage in its current window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PeerUsage {
    /// Start of the peer's current window.
    pub window_start_ms: u64,
    /// Bytes admitted in the window.
    pub bytes: u64,
    /// Symbols admitted in the window.
    pub symbols: u64,
    /// Failed decrypt/MAC checks in the window.
    pub failed_auth: u32,
    /// Decode CPU milliseconds charged in the window.
    pub decode_cpu_ms: u64,
    /// Decodes in flight.
    pub inflight_decodes: u32,
    /// Store requests in flight.
    pub inflight_store_requests: u32,
    /// Symbol requests in flight.
    pub inflight_symbol_requests: u32,
    /// Bytes an unauthenticated response to this peer may still carry.
    pub amplification_credit: u64,
}

#[derive(Clone, Copy, Debug)]
struct PeerState {
    window_start: u64,
    last_seen: u64,
    bytes: u64,
    symbols: u64,
    failed_auth: u32,
    /// Bytes and symbols refused in this window (over the budget).
    refused_bytes: u64,
    refused_symbols: u64,
    /// Set once the refused traffic is itself over a whole budget (bytes
    /// or symbols): from then on all of it is refused, until the window
    /// ends.
    spent: Option<RejectReason>,
    decode_cpu_ms: u64,
    inflight: [u32; 3],
    /// Admitted inbound bytes while tracked (base of amplification credit).
    rx_total: u64,
    /// Bytes granted to unauthenticated responses while tracked.
    amp_tx: u64,
}

impl PeerState {
    fn new(now: u64) -> Self {
        Self {
            window_start: now,
            last_seen: now,
            bytes: 0,
            symbols: 0,
            failed_auth: 0,
            refused_bytes: 0,
            refused_symbols: 0,
            spent: None,
            decode_cpu_ms: 0,
            inflight: [0; 3],
            rx_total: 0,
            amp_tx: 0,
        }
    }

    /// Start a new window when the current one is over.
    fn roll(&mut self, now: u64) {
        if now.saturating_sub(self.window_start) >= WINDOW_MS {
            self.window_start = now;
            self.bytes = 0;
            self.symbols = 0;
            self.failed_auth = 0;
            self.refused_bytes = 0;
            self.refused_symbols = 0;
            self.spent = None;
            self.decode_cpu_ms = 0;
        }
    }

    fn retry_after(&self, now: u64) -> u64 {
        self.window_start
            .saturating_add(WINDOW_MS)
            .saturating_sub(now)
            .max(1)
    }

    fn busy(&self) -> bool {
        self.inflight.iter().any(|n| *n > 0)
    }

    fn amplification_credit(&self, factor: u32) -> u64 {
        self.rx_total
            .saturating_mul(u64::from(factor))
            .saturating_sub(self.amp_tx)
    }
}

const NIL: u32 = u32::MAX;
/// Hard ceiling of the table (keeps slot indices far from `NIL`).
const MAX_TABLE: u32 = 1 << 24;

#[derive(Debug)]
struct Slot<K> {
    key: K,
    live: bool,
    generation: u64,
    busy: bool,
    prev: u32,
    next: u32,
    st: PeerState,
}

/// An intrusive doubly linked list over slot indices, least recent first.
#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
    len: u32,
}

impl List {
    const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// The per-peer admission state machine (spec §8.4).
///
/// `K` identifies a peer: the authenticated node id for session peers, the
/// source address for unauthenticated sources. Keep the two in separate
/// instances so a flood of unauthenticated sources cannot push session peers
/// out of the table.
#[derive(Debug)]
pub struct Admission<K> {
    policy: AdmissionPolicy,
    max_peers: u32,
    now: u64,
    map: HashMap<K, u32>,
    slots: Vec<Slot<K>>,
    free: Vec<u32>,
    /// Peers with nothing in flight, least recently active first.
    idle: List,
    /// Peers with something in flight, least recently active first.
    busy: List,
    counters: AdmissionCounters,
}

impl<K: Hash + Eq + Clone> Admission<K> {
    /// A fresh admission state with `policy`.
    pub fn new(policy: AdmissionPolicy) -> Self {
        Self {
            policy,
            max_peers: policy.max_tracked_peers.clamp(1, MAX_TABLE),
            now: 0,
            map: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            idle: List::EMPTY,
            busy: List::EMPTY,
            counters: AdmissionCounters::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &AdmissionPolicy {
        &self.policy
    }

    /// Counters since start.
    pub fn counters(&self) -> &AdmissionCounters {
        &self.counters
    }

    /// Counters and table occupancy, for a status endpoint. Walks the busy
    /// peers (a status request, not a hot path).
    pub fn status(&self) -> AdmissionStatus {
        let mut inflight = InflightTotals::default();
        let mut i = self.busy.head;
        let mut steps = 0u32;
        while let Some(slot) = self.slots.get(i as usize)
            && steps < self.busy.len
        {
            let n =
                |k: InflightKind| u64::from(slot.st.inflight.get(k.index()).copied().unwrap_or(0));
            inflight.decodes = inflight.decodes.saturating_add(n(InflightKind::Decode));
            inflight.store_requests = inflight
                .store_requests
                .saturating_add(n(InflightKind::StoreRequest));
            inflight.symbol_requests = inflight
                .symbol_requests
                .saturating_add(n(InflightKind::SymbolRequest));
            i = slot.next;
            steps += 1;
        }
        AdmissionStatus {
            inflight,
            tracked_peers: self.idle.len.saturating_add(self.busy.len),
            busy_peers: self.busy.len,
            max_tracked_peers: self.max_peers,
            counters: self.counters,
        }
    }

    /// Peers tracked now.
    pub fn tracked_peers(&self) -> usize {
        self.map.len()
    }

    /// The current window of `peer`, if tracked.
    pub fn peer_usage(&self, peer: &K) -> Option<PeerUsage> {
        let st = &self.slots.get(*self.map.get(peer)? as usize)?.st;
        Some(PeerUsage {
            window_start_ms: st.window_start,
            bytes: st.bytes,
            symbols: st.symbols,
            failed_auth: st.failed_auth,
            decode_cpu_ms: st.decode_cpu_ms,
            inflight_decodes: st.inflight[InflightKind::Decode.index()],
            inflight_store_requests: st.inflight[InflightKind::StoreRequest.index()],
            inflight_symbol_requests: st.inflight[InflightKind::SymbolRequest.index()],
            amplification_credit: st
                .amplification_credit(self.policy.unauthenticated_amplification_factor),
        })
    }

    /// Admit `bytes` and `symbols` of inbound traffic from `peer`: call with
    /// the datagram length before any MAC check, decrypt or decode, and with
    /// the frame's symbol count once its header is parsed (before the symbols
    /// are decrypted). Charges nothing when it refuses. Once the traffic it
    /// refused a peer is itself over a whole budget (a second window's
    /// worth: late frames of an honest peer come nowhere near), it refuses
    /// all of the peer's inbound traffic until the window ends, even a call
    /// charging nothing (spec §8.4): the check before the MAC then turns
    /// the peer away before any work.
    pub fn admit_inbound(
        &mut self,
        now_ms: u64,
        peer: &K,
        bytes: u64,
        symbols: u32,
    ) -> Result<(), Rejected> {
        let now = self.tick(now_ms);
        let i = self.entry(now, peer)?;
        let budget = self.policy.per_peer;
        let res = match self.slots.get_mut(i as usize) {
            Some(slot) => admit_inbound_state(&mut slot.st, &budget, now, bytes, symbols),
            None => Err(table_full()),
        };
        match res {
            Ok(()) => {
                let c = &mut self.counters;
                c.inbound_admitted = c.inbound_admitted.saturating_add(1);
                c.inbound_bytes_admitted = c.inbound_bytes_admitted.saturating_add(bytes);
                c.inbound_symbols_admitted = c
                    .inbound_symbols_admitted
                    .saturating_add(u64::from(symbols));
                Ok(())
            }
            Err(r) => Err(self.reject(r)),
        }
    }

    /// Report a failed decrypt or MAC check of `peer`'s traffic. Refuses (and
    /// from then on refuses all of the peer's inbound traffic and new
    /// operations until its window ends) once the peer exceeds
    /// `max_failed_auth_per_min`.
    pub fn record_failed_auth(&mut self, now_ms: u64, peer: &K) -> Result<(), Rejected> {
        let now = self.tick(now_ms);
        let i = self.entry(now, peer)?;
        self.counters.failed_auth_recorded = self.counters.failed_auth_recorded.saturating_add(1);
        let max = self.policy.per_peer.max_failed_auth_per_min;
        let res = match self.slots.get_mut(i as usize) {
            Some(slot) => {
                let st = &mut slot.st;
                st.roll(now);
                st.failed_auth = st.failed_auth.saturating_add(1);
                if st.failed_auth > max {
                    Err(Rejected {
                        reason: RejectReason::FailedAuth,
                        retry_after_ms: Some(st.retry_after(now)),
                    })
                } else {
                    Ok(())
                }
            }
            None => Err(table_full()),
        };
        res.map_err(|r| self.reject(r))
    }

    /// Take an in-flight slot of `kind` for `peer` (on a StoreRequest, on a
    /// SymbolRequest to serve, before starting a decode). A decode is also
    /// refused once the peer's decode CPU time for the window is used up.
    pub fn begin(&mut self, now_ms: u64, peer: &K, kind: InflightKind) -> Result<Permit, Rejected> {
        let now = self.tick(now_ms);
        let i = self.entry(now, peer)?;
        let budget = self.policy.per_peer;
        let res = match self.slots.get_mut(i as usize) {
            Some(slot) => {
                let st = &mut slot.st;
                st.roll(now);
                let k = kind.index();
                let held = st.inflight.get(k).copied().unwrap_or(u32::MAX);
                if st.failed_auth > budget.max_failed_auth_per_min {
                    Err(window_reject(RejectReason::FailedAuth, st, now))
                } else if held >= budget.max_inflight(kind) {
                    // Waiting for a slot to come back may help, but when is not known.
                    Err(Rejected {
                        reason: RejectReason::Inflight(kind),
                        retry_after_ms: None,
                    })
                } else if kind == InflightKind::Decode
                    && st.decode_cpu_ms >= budget.max_decode_cpu_ms_per_min
                {
                    Err(window_reject(RejectReason::DecodeCpu, st, now))
                } else {
                    if let Some(n) = st.inflight.get_mut(k) {
                        *n = held.saturating_add(1);
                    }
                    Ok(Permit {
                        slot: i,
                        generation: slot.generation,
                        kind,
                    })
                }
            }
            None => Err(table_full()),
        };
        match res {
            Ok(p) => {
                self.set_busy(i);
                self.counters.inflight_started = self.counters.inflight_started.saturating_add(1);
                Ok(p)
            }
            Err(r) => Err(self.reject(r)),
        }
    }

    /// Give back an in-flight slot, charging `decode_cpu_ms` of decode CPU
    /// time to the peer's current window (pass 0 for non-decode work).
    pub fn finish(&mut self, now_ms: u64, permit: Permit, decode_cpu_ms: u64) {
        let now = self.tick(now_ms);
        let i = permit.slot;
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return;
        };
        if !slot.live || slot.generation != permit.generation {
            return;
        }
        let st = &mut slot.st;
        st.roll(now);
        st.last_seen = now;
        if let Some(n) = st.inflight.get_mut(permit.kind.index()) {
            *n = n.saturating_sub(1);
        }
        st.decode_cpu_ms = st.decode_cpu_ms.saturating_add(decode_cpu_ms);
        self.counters.inflight_finished = self.counters.inflight_finished.saturating_add(1);
        self.set_busy(i);
        self.touch(i);
    }

    /// How many of `available` symbols may be sent in answer to one request
    /// of `peer` (the anti-amplification rule, spec §8.4). `bytes_per_symbol`
    /// is what one symbol costs on the wire (datagram size); it is charged
    /// against an unauthenticated source's amplification credit.
    pub fn grant_response(
        &mut self,
        now_ms: u64,
        peer: &K,
        requester: Requester,
        available: u32,
        bytes_per_symbol: u32,
    ) -> Result<ResponseGrant, Rejected> {
        let now = self.tick(now_ms);
        if requester == Requester::Unauthenticated && self.policy.require_authenticated_requests {
            return Err(self.reject(Rejected {
                reason: RejectReason::Unauthenticated,
                retry_after_ms: None,
            }));
        }
        let i = self.entry(now, peer)?;
        let policy = self.policy;
        let res = match self.slots.get_mut(i as usize) {
            Some(slot) => grant(
                &mut slot.st,
                &policy,
                now,
                requester,
                available,
                bytes_per_symbol,
            ),
            None => Err(table_full()),
        };
        match res {
            Ok(g) => {
                let c = &mut self.counters;
                c.responses_granted = c.responses_granted.saturating_add(1);
                c.response_symbols_granted = c
                    .response_symbols_granted
                    .saturating_add(u64::from(g.symbols));
                if g.symbols < available {
                    c.responses_capped = c.responses_capped.saturating_add(1);
                }
                Ok(g)
            }
            Err(r) => Err(self.reject(r)),
        }
    }

    /// Forget `peer` (its session closed). Permits it still holds release
    /// nothing when finished.
    pub fn remove_peer(&mut self, peer: &K) {
        let Some(i) = self.map.remove(peer) else {
            return;
        };
        self.unlink(i);
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.live = false;
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(i);
        }
    }

    /// `peer`'s session closed: give back every in-flight slot it holds
    /// (permits still out release nothing when finished) but keep its
    /// window, so a reconnect does not reset its budgets (spec §8.4).
    pub fn release_peer(&mut self, peer: &K) {
        let Some(&i) = self.map.get(peer) else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.generation = slot.generation.wrapping_add(1);
            slot.st.inflight = [0; 3];
        }
        self.set_busy(i);
    }

    // ---- internals ----

    /// Advance the clock; time never goes backwards.
    fn tick(&mut self, now_ms: u64) -> u64 {
        self.now = self.now.max(now_ms);
        self.now
    }

    fn reject(&mut self, r: Rejected) -> Rejected {
        self.counters.rejected.bump(r.reason);
        r
    }

    /// The slot of `peer`, marked as just active; a new one if untracked.
    fn entry(&mut self, now: u64, peer: &K) -> Result<u32, Rejected> {
        if let Some(&i) = self.map.get(peer) {
            if let Some(slot) = self.slots.get_mut(i as usize) {
                slot.st.last_seen = now;
            }
            self.touch(i);
            return Ok(i);
        }
        let i = if let Some(i) = self.free.pop() {
            i
        } else if self.slots.len() < self.max_peers as usize {
            let i = u32::try_from(self.slots.len()).map_err(|_| table_full())?;
            self.slots.push(Slot {
                key: peer.clone(),
                live: false,
                generation: 0,
                busy: false,
                prev: NIL,
                next: NIL,
                st: PeerState::new(now),
            });
            i
        } else {
            self.evict(now).ok_or_else(|| self.reject(table_full()))?
        };
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return Err(self.reject(table_full()));
        };
        slot.key = peer.clone();
        slot.live = true;
        slot.generation = slot.generation.wrapping_add(1);
        slot.busy = false;
        slot.prev = NIL;
        slot.next = NIL;
        slot.st = PeerState::new(now);
        self.push_tail(i);
        self.map.insert(peer.clone(), i);
        Ok(i)
    }

    /// Forget the least recently active idle peer; its slot index.
    fn evict(&mut self, now: u64) -> Option<u32> {
        let i = self.idle.head;
        let slot = self.slots.get(i as usize)?;
        let active = now.saturating_sub(slot.st.last_seen) < WINDOW_MS;
        let key = slot.key.clone();
        self.unlink(i);
        self.map.remove(&key);
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.live = false;
        }
        let c = &mut self.counters;
        c.peers_evicted = c.peers_evicted.saturating_add(1);
        if active {
            c.peers_evicted_active = c.peers_evicted_active.saturating_add(1);
        }
        Some(i)
    }

    fn list_mut(&mut self, busy: bool) -> &mut List {
        if busy { &mut self.busy } else { &mut self.idle }
    }

    fn unlink(&mut self, i: u32) {
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return;
        };
        let (prev, next, busy) = (slot.prev, slot.next, slot.busy);
        slot.prev = NIL;
        slot.next = NIL;
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.list_mut(busy).head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.list_mut(busy).tail = prev,
        }
        let l = self.list_mut(busy);
        l.len = l.len.saturating_sub(1);
    }

    fn push_tail(&mut self, i: u32) {
        let Some(slot) = self.slots.get(i as usize) else {
            return;
        };
        let busy = slot.busy;
        let tail = self.list_mut(busy).tail;
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.prev = tail;
            slot.next = NIL;
        }
        match self.slots.get_mut(tail as usize) {
            Some(t) => t.next = i,
            None => self.list_mut(busy).head = i,
        }
        let l = self.list_mut(busy);
        l.tail = i;
        l.len = l.len.saturating_add(1);
    }

    /// Mark `i` most recently active.
    fn touch(&mut self, i: u32) {
        self.unlink(i);
        self.push_tail(i);
    }

    /// Move `i` to the list matching whether it has work in flight.
    fn set_busy(&mut self, i: u32) {
        let Some(slot) = self.slots.get(i as usize) else {
            return;
        };
        let busy = slot.st.busy();
        if slot.busy == busy {
            return;
        }
        self.unlink(i);
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.busy = busy;
        }
        self.push_tail(i);
    }
}

fn table_full() -> Rejected {
    Rejected {
        reason: RejectReason::PeerTableFull,
        retry_after_ms: None,
    }
}

fn window_reject(reason: RejectReason, st: &PeerState, now: u64) -> Rejected {
    Rejected {
        reason,
        retry_after_ms: Some(st.retry_after(now)),
    }
}

fn admit_inbound_state(
    st: &mut PeerState,
    budget: &PeerBudget,
    now: u64,
    bytes: u64,
    symbols: u32,
) -> Result<(), Rejected> {
    st.roll(now);
    if st.failed_auth > budget.max_failed_auth_per_min {
        return Err(window_reject(RejectReason::FailedAuth, st, now));
    }
    if let Some(reason) = st.spent {
        return Err(window_reject(reason, st, now));
    }
    let max_symbols = u64::from(budget.max_symbols_per_min);
    let symbols = u64::from(symbols);
    let new_bytes = st
        .bytes
        .checked_add(bytes)
        .filter(|b| *b <= budget.max_bytes_per_min);
    let Some(new_bytes) = new_bytes else {
        // A single datagram larger than the whole budget never fits (and
        // says nothing about the peer's other traffic).
        let fits_a_window = bytes <= budget.max_bytes_per_min;
        if fits_a_window {
            st.refused_bytes = st.refused_bytes.saturating_add(bytes);
            if st.refused_bytes > budget.max_bytes_per_min {
                st.spent = Some(RejectReason::InboundBytes);
            }
        }
        return Err(Rejected {
            reason: RejectReason::InboundBytes,
            retry_after_ms: fits_a_window.then(|| st.retry_after(now)),
        });
    };
    let new_symbols = st.symbols.saturating_add(symbols);
    if new_symbols > max_symbols {
        let fits_a_window = symbols <= max_symbols;
        if fits_a_window {
            st.refused_symbols = st.refused_symbols.saturating_add(symbols);
            if st.refused_symbols > max_symbols {
                st.spent = Some(RejectReason::InboundSymbols);
            }
        }
        return Err(Rejected {
            reason: RejectReason::InboundSymbols,
            retry_after_ms: fits_a_window.then(|| st.retry_after(now)),
        });
    }
    st.bytes = new_bytes;
    st.symbols = new_symbols;
    st.rx_total = st.rx_total.saturating_add(bytes);
    Ok(())
}

fn grant(
    st: &mut PeerState,
    policy: &AdmissionPolicy,
    now: u64,
    requester: Requester,
    available: u32,
    bytes_per_symbol: u32,
) -> Result<ResponseGrant, Rejected> {
    st.roll(now);
    if st.failed_auth > policy.per_peer.max_failed_auth_per_min {
        return Err(window_reject(RejectReason::FailedAuth, st, now));
    }
    let mut g = ResponseGrant {
        symbols: available,
        limit: GrantLimit::Available,
    };
    let mut cap = |n: u32, why: GrantLimit| {
        if n < g.symbols {
            g = ResponseGrant {
                symbols: n,
                limit: why,
            };
        }
    };
    match requester {
        Requester::Authenticated {
            proof_of_need: Some(need),
        } => {
            // spec §8.4: authenticated AND a bounded proof-of-need.
            cap(need, GrantLimit::ProofOfNeed);
            cap(policy.max_proven_response_symbols, GrantLimit::ProvenCap);
        }
        Requester::Authenticated {
            proof_of_need: None,
        } => cap(
            policy.max_unproven_response_symbols,
            GrantLimit::UnprovenCap,
        ),
        Requester::Unauthenticated => {
            cap(
                policy.max_unproven_response_symbols,
                GrantLimit::UnprovenCap,
            );
            let per = u64::from(bytes_per_symbol.max(1));
            let credit = st.amplification_credit(policy.unauthenticated_amplification_factor);
            let n = u32::try_from(credit / per).unwrap_or(u32::MAX);
            cap(n, GrantLimit::AmplificationCredit);
            if g.symbols == 0 && available > 0 {
                return Err(Rejected {
                    reason: RejectReason::Amplification,
                    retry_after_ms: None,
                });
            }
            st.amp_tx = st
                .amp_tx
                .saturating_add(u64::from(g.symbols).saturating_mul(per));
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Adm = Admission<&'static str>;

    fn small() -> AdmissionPolicy {
        AdmissionPolicy {
            per_peer: PeerBudget {
                max_bytes_per_min: 1000,
                max_symbols_per_min: 10,
                max_failed_auth_per_min: 3,
                max_inflight_decodes: 2,
                max_decode_cpu_ms_per_min: 100,
                max_inflight_store_requests: 2,
                max_inflight_symbol_requests: 1,
            },
            require_authenticated_requests: true,
            max_unproven_response_symbols: 4,
            max_proven_response_symbols: 50,
            unauthenticated_amplification_factor: 3,
            max_tracked_peers: 4,
        }
    }

    fn reason<T: fmt::Debug>(r: Result<T, Rejected>) -> RejectReason {
        r.unwrap_err().reason
    }

    #[test]
    fn spec_defaults() {
        let b = PeerBudget::default();
        assert_eq!(b.max_bytes_per_min, 64 * 1024 * 1024);
        assert_eq!(b.max_symbols_per_min, 200_000);
        assert_eq!(b.max_failed_auth_per_min, 100);
        assert_eq!(b.max_inflight_decodes, 32);
        assert_eq!(b.max_decode_cpu_ms_per_min, 5_000);
        let p = AdmissionPolicy::default();
        assert!(p.require_authenticated_requests);
        assert_eq!(p.per_peer, b);
        assert_eq!(WINDOW_MS, 60_000);
    }

    #[test]
    fn bytes_exact_limit_and_refill() {
        let mut a = Adm::new(small());
        assert!(a.admit_inbound(0, &"p", 600, 0).is_ok());
        assert!(a.admit_inbound(1, &"p", 400, 0).is_ok());
        let r = a.admit_inbound(2, &"p", 1, 0).unwrap_err();
        assert_eq!(r.reason, RejectReason::InboundBytes);
        assert_eq!(r.retry_after_ms, Some(WINDOW_MS - 2));
        // Zero bytes still fit in a full window.
        assert!(a.admit_inbound(3, &"p", 0, 0).is_ok());
        // Last millisecond of the window: still full.
        assert!(a.admit_inbound(WINDOW_MS - 1, &"p", 1, 0).is_err());
        // New window: full budget again.
        assert!(a.admit_inbound(WINDOW_MS, &"p", 1000, 0).is_ok());
        assert!(a.admit_inbound(WINDOW_MS, &"p", 1, 0).is_err());
        let u = a.peer_usage(&"p").unwrap();
        assert_eq!((u.window_start_ms, u.bytes), (WINDOW_MS, 1000));
        let c = a.counters();
        assert_eq!(c.inbound_bytes_admitted, 2000);
        assert_eq!(c.rejected.inbound_bytes, 3);
    }

    #[test]
    fn oversized_datagram_never_fits() {
        let mut a = Adm::new(small());
        let r = a.admit_inbound(0, &"p", 1001, 0).unwrap_err();
        assert_eq!(r.reason, RejectReason::InboundBytes);
        assert_eq!(r.retry_after_ms, None);
        let r = a.admit_inbound(0, &"p", 0, 11).unwrap_err();
        assert_eq!(r.reason, RejectReason::InboundSymbols);
        assert_eq!(r.retry_after_ms, None);
        // Nothing was charged, and the peer's traffic that fits still does.
        assert_eq!(a.peer_usage(&"p").unwrap().bytes, 0);
        assert!(a.admit_inbound(0, &"p", 1000, 10).is_ok());
    }

    #[test]
    fn symbols_exact_limit_and_atomic_charge() {
        let mut a = Adm::new(small());
        assert!(a.admit_inbound(0, &"p", 10, 9).is_ok());
        // Bytes fit, symbols do not: nothing is charged.
        assert_eq!(
            reason(a.admit_inbound(0, &"p", 10, 2)),
            RejectReason::InboundSymbols
        );
        let u = a.peer_usage(&"p").unwrap();
        assert_eq!((u.bytes, u.symbols), (10, 9));
        assert!(a.admit_inbound(0, &"p", 10, 1).is_ok());
        assert!(a.admit_inbound(0, &"p", 0, 1).is_err());
        assert!(a.admit_inbound(WINDOW_MS + 5, &"p", 0, 10).is_ok());
    }

    #[test]
    fn a_window_refused_a_budget_over_again_is_closed_to_everything() {
        for bytes in [true, false] {
            let mut a = Adm::new(small());
            let b = |n: u64| if bytes { n * 100 } else { 0 };
            let s = |n: u32| if bytes { 0 } else { n };
            let want = if bytes {
                RejectReason::InboundBytes
            } else {
                RejectReason::InboundSymbols
            };
            assert!(a.admit_inbound(0, &"p", b(10), s(10)).is_ok());
            // Refused, but less than a whole budget's worth: what fits (a
            // call charging nothing, the check before the MAC) still does.
            assert_eq!(reason(a.admit_inbound(1, &"p", b(6), s(6))), want);
            assert!(a.admit_inbound(2, &"p", 0, 0).is_ok());
            // Refused more than a whole budget: closed until the window ends.
            assert_eq!(reason(a.admit_inbound(3, &"p", b(5), s(5))), want);
            let r = a.admit_inbound(4, &"p", 0, 0).unwrap_err();
            assert_eq!((r.reason, r.retry_after_ms), (want, Some(WINDOW_MS - 4)));
            assert!(a.admit_inbound(WINDOW_MS, &"p", b(10), s(10)).is_ok());
            // Nothing refused was charged.
            let u = a.peer_usage(&"p").unwrap();
            assert_eq!((u.bytes, u.symbols), (b(10), u64::from(s(10))));
        }
    }

    #[test]
    fn peers_have_separate_budgets() {
        let mut a = Adm::new(small());
        assert!(a.admit_inbound(0, &"a", 1000, 10).is_ok());
        assert!(a.admit_inbound(0, &"a", 1, 0).is_err());
        assert!(a.admit_inbound(0, &"b", 1000, 10).is_ok());
    }

    #[test]
    fn failed_auth_throttles_until_window_ends() {
        let mut a = Adm::new(small());
        for t in 0..3 {
            assert!(a.record_failed_auth(t, &"p").is_ok());
        }
        // Exactly the budget: still admitted.
        assert!(a.admit_inbound(3, &"p", 1, 1).is_ok());
        let r = a.record_failed_auth(4, &"p").unwrap_err();
        assert_eq!(r.reason, RejectReason::FailedAuth);
        assert_eq!(r.retry_after_ms, Some(WINDOW_MS - 4));
        assert_eq!(
            reason(a.admit_inbound(5, &"p", 1, 0)),
            RejectReason::FailedAuth
        );
        assert_eq!(
            reason(a.begin(5, &"p", InflightKind::Decode)),
            RejectReason::FailedAuth
        );
        let auth = Requester::Authenticated {
            proof_of_need: None,
        };
        assert_eq!(
            reason(a.grant_response(5, &"p", auth, 1, 100)),
            RejectReason::FailedAuth
        );
        // Other peers are unaffected.
        assert!(a.admit_inbound(5, &"q", 1, 0).is_ok());
        // The next window forgives.
        assert!(a.admit_inbound(WINDOW_MS, &"p", 1, 0).is_ok());
        assert_eq!(a.counters().failed_auth_recorded, 4);
        assert_eq!(a.counters().rejected.failed_auth, 4);
    }

    #[test]
    fn inflight_slots_are_bounded_and_released() {
        let mut a = Adm::new(small());
        let p1 = a.begin(0, &"p", InflightKind::Decode).unwrap();
        let p2 = a.begin(0, &"p", InflightKind::Decode).unwrap();
        assert_eq!(
            reason(a.begin(0, &"p", InflightKind::Decode)),
            RejectReason::Inflight(InflightKind::Decode)
        );
        // Kinds are independent.
        let s1 = a.begin(0, &"p", InflightKind::SymbolRequest).unwrap();
        assert_eq!(
            reason(a.begin(0, &"p", InflightKind::SymbolRequest)),
            RejectReason::Inflight(InflightKind::SymbolRequest)
        );
        let _st = a.begin(0, &"p", InflightKind::StoreRequest).unwrap();
        assert_eq!(a.peer_usage(&"p").unwrap().inflight_decodes, 2);
        a.finish(1, p1, 0);
        let p3 = a.begin(2, &"p", InflightKind::Decode).unwrap();
        assert_eq!(p3.kind(), InflightKind::Decode);
        a.finish(3, p2, 0);
        a.finish(3, p3, 0);
        a.finish(3, s1, 0);
        let u = a.peer_usage(&"p").unwrap();
        assert_eq!(
            (
                u.inflight_decodes,
                u.inflight_symbol_requests,
                u.inflight_store_requests
            ),
            (0, 0, 1)
        );
        assert_eq!(a.status().busy_peers, 1);
        let c = a.counters();
        assert_eq!((c.inflight_started, c.inflight_finished), (5, 4));
        assert_eq!(c.rejected.inflight_decodes, 1);
        assert_eq!(c.rejected.inflight_symbol_requests, 1);
    }

    #[test]
    fn decode_cpu_budget() {
        let mut a = Adm::new(small());
        let p = a.begin(0, &"p", InflightKind::Decode).unwrap();
        a.finish(10, p, 99);
        let p = a.begin(11, &"p", InflightKind::Decode).unwrap();
        // Overshoot is charged (CPU time is known after the fact).
        a.finish(12, p, 5);
        let r = a.begin(13, &"p", InflightKind::Decode).unwrap_err();
        assert_eq!(r.reason, RejectReason::DecodeCpu);
        assert_eq!(r.retry_after_ms, Some(WINDOW_MS - 13));
        // Non-decode work is not gated by decode CPU.
        assert!(a.begin(13, &"p", InflightKind::StoreRequest).is_ok());
        assert!(a.begin(WINDOW_MS, &"p", InflightKind::Decode).is_ok());
    }

    #[test]
    fn stale_permit_releases_nothing() {
        let mut a = Adm::new(small());
        let old = a.begin(0, &"p", InflightKind::Decode).unwrap();
        a.remove_peer(&"p");
        assert_eq!(a.tracked_peers(), 0);
        let n1 = a.begin(1, &"p", InflightKind::Decode).unwrap();
        let _n2 = a.begin(1, &"p", InflightKind::Decode).unwrap();
        a.finish(2, old, 1_000);
        // The stale permit neither freed a slot nor charged CPU.
        let u = a.peer_usage(&"p").unwrap();
        assert_eq!((u.inflight_decodes, u.decode_cpu_ms), (2, 0));
        assert!(a.begin(2, &"p", InflightKind::Decode).is_err());
        a.finish(3, n1, 0);
        assert!(a.begin(3, &"p", InflightKind::Decode).is_ok());
    }

    #[test]
    fn anti_amplification_authenticated() {
        let mut a = Adm::new(small());
        let unproven = Requester::Authenticated {
            proof_of_need: None,
        };
        let g = a.grant_response(0, &"p", unproven, 100, 1200).unwrap();
        assert_eq!(
            g,
            ResponseGrant {
                symbols: 4,
                limit: GrantLimit::UnprovenCap
            }
        );
        let g = a.grant_response(0, &"p", unproven, 3, 1200).unwrap();
        assert_eq!((g.symbols, g.limit), (3, GrantLimit::Available));
        let need = |n| Requester::Authenticated {
            proof_of_need: Some(n),
        };
        let g = a.grant_response(0, &"p", need(20), 100, 1200).unwrap();
        assert_eq!((g.symbols, g.limit), (20, GrantLimit::ProofOfNeed));
        let g = a
            .grant_response(0, &"p", need(u32::MAX), 100, 1200)
            .unwrap();
        assert_eq!((g.symbols, g.limit), (50, GrantLimit::ProvenCap));
        let g = a.grant_response(0, &"p", need(0), 100, 1200).unwrap();
        assert_eq!(g.symbols, 0);
        let c = a.counters();
        assert_eq!(c.responses_granted, 5);
        assert_eq!(c.responses_capped, 4);
        assert_eq!(c.response_symbols_granted, 4 + 3 + 20 + 50);
    }

    #[test]
    fn unauthenticated_requests_refused_by_default() {
        let mut a = Adm::new(small());
        let r = a
            .grant_response(0, &"p", Requester::Unauthenticated, 10, 100)
            .unwrap_err();
        assert_eq!(r.reason, RejectReason::Unauthenticated);
        assert_eq!(r.error_code(), ErrorCode::AuthenticationRequired);
        // Refused before any state is created.
        assert_eq!(a.tracked_peers(), 0);
    }

    #[test]
    fn anti_amplification_unauthenticated_credit() {
        let mut a = Adm::new(AdmissionPolicy {
            require_authenticated_requests: false,
            ..small()
        });
        let un = Requester::Unauthenticated;
        // Nothing received yet: no credit.
        assert_eq!(
            reason(a.grant_response(0, &"src", un, 10, 100)),
            RejectReason::Amplification
        );
        // 100 bytes in -> 300 bytes of credit -> 3 symbols of 100 bytes.
        a.admit_inbound(0, &"src", 100, 0).unwrap();
        let g = a.grant_response(0, &"src", un, 10, 100).unwrap();
        assert_eq!((g.symbols, g.limit), (3, GrantLimit::AmplificationCredit));
        assert_eq!(a.peer_usage(&"src").unwrap().amplification_credit, 0);
        assert!(a.grant_response(0, &"src", un, 10, 100).is_err());
        // Lots of credit: still at most N per request.
        a.admit_inbound(1, &"src", 900, 0).unwrap();
        let g = a.grant_response(1, &"src", un, 10, 100).unwrap();
        assert_eq!((g.symbols, g.limit), (4, GrantLimit::UnprovenCap));
        assert_eq!(a.peer_usage(&"src").unwrap().amplification_credit, 2300);
        // Nothing available: an empty answer is fine.
        assert_eq!(a.grant_response(1, &"src", un, 0, 100).unwrap().symbols, 0);
        // Zero-size symbols are charged as one byte each.
        let g = a.grant_response(1, &"src", un, 2, 0).unwrap();
        assert_eq!(g.symbols, 2);
        assert_eq!(a.counters().rejected.amplification, 2);
    }

    #[test]
    fn amplification_sent_never_exceeds_factor() {
        let mut a = Adm::new(AdmissionPolicy {
            require_authenticated_requests: false,
            max_unproven_response_symbols: u32::MAX,
            ..small()
        });
        let mut rx = 0u64;
        let mut tx = 0u64;
        for i in 0..200u64 {
            let b = (i * 37) % 90;
            if a.admit_inbound(i, &"s", b, 0).is_ok() {
                rx += b;
            }
            let per = u32::try_from(1 + (i * 13) % 70).unwrap();
            if let Ok(g) = a.grant_response(i, &"s", Requester::Unauthenticated, 50, per) {
                tx += u64::from(g.symbols) * u64::from(per);
            }
            assert!(tx <= 3 * rx, "sent {tx} for {rx} received");
        }
        assert!(tx > 0);
    }

    #[test]
    fn table_is_bounded_and_evicts_lru_idle() {
        let mut a = Admission::<u32>::new(small());
        for p in 0..4 {
            a.admit_inbound(u64::from(p), &p, 1, 0).unwrap();
        }
        // Touch 0 so 1 becomes the least recently active.
        a.admit_inbound(10, &0, 1, 0).unwrap();
        a.admit_inbound(11, &4, 1, 0).unwrap();
        assert_eq!(a.tracked_peers(), 4);
        assert!(a.peer_usage(&1).is_none());
        assert!(a.peer_usage(&0).is_some());
        assert_eq!(a.counters().peers_evicted, 1);
        assert_eq!(a.counters().peers_evicted_active, 1);
        // Busy peers are never evicted.
        let mut permits = Vec::new();
        for p in [0, 2, 3, 4] {
            permits.push(a.begin(20, &p, InflightKind::Decode).unwrap());
        }
        let r = a.admit_inbound(21, &9, 1, 0).unwrap_err();
        assert_eq!(r.reason, RejectReason::PeerTableFull);
        assert_eq!(r.error_code(), ErrorCode::ResourceLimit);
        assert_eq!(a.status().busy_peers, 4);
        // Known peers still work while the table is full.
        assert!(a.admit_inbound(21, &2, 1, 0).is_ok());
        // Release one: it becomes the eviction candidate.
        let p = permits.remove(1);
        a.finish(WINDOW_MS * 2, p, 0);
        assert!(a.admit_inbound(WINDOW_MS * 3, &9, 1, 0).is_ok());
        assert!(a.peer_usage(&2).is_none());
        assert_eq!(a.counters().peers_evicted, 2);
        assert_eq!(a.counters().peers_evicted_active, 1);
        let s = a.status();
        assert_eq!((s.tracked_peers, s.max_tracked_peers), (4, 4));
    }

    #[test]
    fn many_peers_stay_bounded() {
        let mut a = Admission::<u64>::new(AdmissionPolicy {
            max_tracked_peers: 16,
            ..small()
        });
        for p in 0..10_000u64 {
            a.admit_inbound(p, &p, 1, 1).unwrap();
            assert!(a.tracked_peers() <= 16);
        }
        assert_eq!(a.status().tracked_peers, 16);
        assert_eq!(a.counters().peers_evicted, 10_000 - 16);
        // The most recent 16 are the ones kept.
        for p in 10_000 - 16..10_000 {
            assert!(a.peer_usage(&p).is_some());
        }
    }

    #[test]
    fn a_released_peer_keeps_its_window_and_frees_its_slots() {
        let mut a = Adm::new(small());
        let old = a.begin(0, &"p", InflightKind::Decode).unwrap();
        let _also = a.begin(0, &"p", InflightKind::Decode).unwrap();
        assert!(a.admit_inbound(0, &"p", 1000, 0).is_ok());
        for t in 0..4 {
            let _ = a.record_failed_auth(t, &"p");
        }
        a.release_peer(&"p");
        // The window stays: bytes charged, failed auth over its budget.
        let u = a.peer_usage(&"p").unwrap();
        assert_eq!((u.bytes, u.failed_auth, u.inflight_decodes), (1000, 4, 0));
        assert_eq!(
            reason(a.admit_inbound(5, &"p", 0, 0)),
            RejectReason::FailedAuth
        );
        assert_eq!(a.status().busy_peers, 0);
        // A permit of the closed session gives back nothing.
        a.finish(6, old, 1_000);
        assert_eq!(a.peer_usage(&"p").unwrap().decode_cpu_ms, 0);
        // The next window is whole again.
        assert!(a.admit_inbound(WINDOW_MS, &"p", 1000, 0).is_ok());
        let n = a.begin(WINDOW_MS, &"p", InflightKind::Decode).unwrap();
        assert_eq!(a.peer_usage(&"p").unwrap().inflight_decodes, 1);
        a.finish(WINDOW_MS, n, 0);
    }

    #[test]
    fn removed_slots_are_reused() {
        let mut a = Admission::<u32>::new(small());
        for round in 0..100u32 {
            for p in 0..4 {
                a.admit_inbound(0, &(round * 4 + p), 1, 0).unwrap();
            }
            for p in 0..4 {
                a.remove_peer(&(round * 4 + p));
            }
        }
        assert_eq!(a.tracked_peers(), 0);
        assert_eq!(a.counters().peers_evicted, 0);
        assert_eq!(a.status().tracked_peers, 0);
    }

    #[test]
    fn time_going_backwards_is_no_time() {
        let mut a = Adm::new(small());
        assert!(a.admit_inbound(100_000, &"p", 1000, 0).is_ok());
        // The clock steps back a window: no refill.
        assert!(a.admit_inbound(100_000 - WINDOW_MS, &"p", 1, 0).is_err());
        assert!(a.admit_inbound(0, &"p", 1, 0).is_err());
        let r = a.admit_inbound(5, &"p", 1, 0).unwrap_err();
        assert_eq!(r.retry_after_ms, Some(WINDOW_MS));
        assert!(a.admit_inbound(100_000 + WINDOW_MS, &"p", 1000, 0).is_ok());
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let max = AdmissionPolicy {
            per_peer: PeerBudget {
                max_bytes_per_min: u64::MAX,
                max_symbols_per_min: u32::MAX,
                max_failed_auth_per_min: u32::MAX,
                max_inflight_decodes: u32::MAX,
                max_decode_cpu_ms_per_min: u64::MAX,
                max_inflight_store_requests: u32::MAX,
                max_inflight_symbol_requests: u32::MAX,
            },
            require_authenticated_requests: false,
            max_unproven_response_symbols: u32::MAX,
            max_proven_response_symbols: u32::MAX,
            unauthenticated_amplification_factor: u32::MAX,
            max_tracked_peers: u32::MAX,
        };
        let mut a = Adm::new(max);
        assert!(a.admit_inbound(u64::MAX, &"p", u64::MAX, u32::MAX).is_ok());
        assert_eq!(
            reason(a.admit_inbound(u64::MAX, &"p", 1, 0)),
            RejectReason::InboundBytes
        );
        let g = a
            .grant_response(u64::MAX, &"p", Requester::Unauthenticated, u32::MAX, 1)
            .unwrap();
        assert_eq!(g.symbols, u32::MAX);
        let p = a.begin(u64::MAX, &"p", InflightKind::Decode).unwrap();
        a.finish(u64::MAX, p, u64::MAX);
        a.finish(
            0,
            Permit {
                slot: u32::MAX,
                generation: u64::MAX,
                kind: InflightKind::Decode,
            },
            u64::MAX,
        );
        for _ in 0..5 {
            assert!(a.record_failed_auth(u64::MAX, &"p").is_ok());
        }
        // The zero-sized table is clamped to one peer.
        let mut z = Adm::new(AdmissionPolicy {
            max_tracked_peers: 0,
            ..small()
        });
        assert!(z.admit_inbound(0, &"a", 1, 0).is_ok());
        assert!(z.admit_inbound(0, &"b", 1, 0).is_ok());
        assert_eq!(z.tracked_peers(), 1);
        // A zero budget refuses everything but empty input.
        let mut n = Adm::new(AdmissionPolicy {
            per_peer: PeerBudget {
                max_bytes_per_min: 0,
                max_symbols_per_min: 0,
                max_inflight_decodes: 0,
                ..small().per_peer
            },
            ..small()
        });
        assert!(n.admit_inbound(0, &"a", 0, 0).is_ok());
        assert!(n.admit_inbound(0, &"a", 1, 0).is_err());
        assert!(n.admit_inbound(0, &"a", 0, 1).is_err());
        assert!(n.begin(0, &"a", InflightKind::Decode).is_err());
    }

    #[test]
    fn error_codes_and_json() {
        let r = Rejected {
            reason: RejectReason::InboundBytes,
            retry_after_ms: Some(1234),
        };
        let e = r.to_fcp_error();
        assert_eq!(e.code, "FCP-6002");
        assert!(e.retryable);
        assert_eq!(e.retry_after_ms, Some(1234));
        for (reason, code) in [
            (RejectReason::InboundSymbols, ErrorCode::RateLimited),
            (RejectReason::FailedAuth, ErrorCode::RateLimited),
            (RejectReason::DecodeCpu, ErrorCode::RateLimited),
            (RejectReason::Amplification, ErrorCode::RateLimited),
            (
                RejectReason::Inflight(InflightKind::StoreRequest),
                ErrorCode::ResourceLimit,
            ),
            (RejectReason::PeerTableFull, ErrorCode::ResourceLimit),
            (
                RejectReason::Unauthenticated,
                ErrorCode::AuthenticationRequired,
            ),
        ] {
            assert_eq!(reason.error_code(), code);
            assert!(!reason.to_string().is_empty());
        }
        let mut a = Adm::new(small());
        a.admit_inbound(0, &"p", 2000, 0).unwrap_err();
        let v = serde_json::to_value(a.status()).unwrap();
        assert_eq!(v["counters"]["rejected"]["inbound_bytes"], 1);
        assert_eq!(v["tracked_peers"], 1);
        assert_eq!(v["inflight"]["store_requests"], 0);
        assert_eq!(a.counters().rejected.total(), 1);
        let s1 = a.begin(1, &"p", InflightKind::StoreRequest).unwrap();
        let s2 = a.begin(1, &"q", InflightKind::StoreRequest).unwrap();
        let r = a.begin(1, &"q", InflightKind::SymbolRequest).unwrap();
        let v = serde_json::to_value(a.status()).unwrap();
        assert_eq!(v["inflight"]["store_requests"], 2);
        assert_eq!(v["inflight"]["symbol_requests"], 1);
        assert_eq!(v["inflight"]["decodes"], 0);
        for p in [s1, s2, r] {
            a.finish(2, p, 0);
        }
        assert_eq!(a.status().inflight, InflightTotals::default());
        let u = serde_json::to_value(a.peer_usage(&"p").unwrap()).unwrap();
        assert_eq!(u["bytes"], 0);
        let p = serde_json::to_value(AdmissionPolicy::default()).unwrap();
        assert_eq!(p["per_peer"]["max_symbols_per_min"], 200_000);
    }

    // ---- property test: random call sequences ----
    //
    // A seeded generator instead of proptest (fcp-node has no proptest
    // dev-dependency); every case is reproducible from its seed.

    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        /// Mostly small values, sometimes extremes.
        fn value(&mut self, small: u64) -> u64 {
            match self.below(10) {
                0 => u64::MAX,
                1 => u64::MAX - self.below(3),
                2 => 0,
                _ => self.below(small),
            }
        }
    }

    fn run_case(seed: u64, peers: u64, policy: AdmissionPolicy) -> (AdmissionCounters, u64) {
        let mut rng = SplitMix(seed);
        let mut a = Admission::<u64>::new(policy);
        let b = policy.per_peer;
        let mut now = 0u64;
        let mut permits: Vec<(u64, Permit)> = Vec::new();
        let mut stale: Vec<(u64, Permit)> = Vec::new();
        // (window start, bytes, symbols) admitted per peer, seen from outside.
        let mut shadow: HashMap<u64, (u64, u64, u64)> = HashMap::new();
        let mut rx: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut windows = 0u64;
        for _ in 0..400 {
            now = match rng.below(400) {
                0 => u64::MAX - rng.below(WINDOW_MS * 2),
                1..=30 => now.saturating_sub(rng.value(WINDOW_MS * 2)),
                31..=150 => now.saturating_add(rng.below(WINDOW_MS / 4)),
                _ => now,
            };
            let peer = rng.below(peers);
            match rng.below(7) {
                0 | 1 => {
                    let bytes = rng.value(b.max_bytes_per_min / 3 + 1);
                    let syms = u32::try_from(rng.value(u64::from(b.max_symbols_per_min) / 3 + 1))
                        .unwrap_or(u32::MAX);
                    if a.admit_inbound(now, &peer, bytes, syms).is_ok() {
                        let u = a.peer_usage(&peer).unwrap();
                        let e = shadow.entry(peer).or_insert((u.window_start_ms, 0, 0));
                        if e.0 != u.window_start_ms {
                            *e = (u.window_start_ms, 0, 0);
                            windows += 1;
                        }
                        e.1 += bytes;
                        e.2 += u64::from(syms);
                        assert!(e.1 <= b.max_bytes_per_min, "seed {seed}: bytes");
                        assert!(e.2 <= u64::from(b.max_symbols_per_min), "seed {seed}");
                        assert_eq!((e.1, e.2), (u.bytes, u.symbols), "seed {seed}");
                        let r = rx.entry(peer).or_default();
                        r.0 = r.0.saturating_add(bytes);
                    }
                }
                2 => {
                    let _ = a.record_failed_auth(now, &peer);
                }
                3 => {
                    let kind = match rng.below(3) {
                        0 => InflightKind::Decode,
                        1 => InflightKind::StoreRequest,
                        _ => InflightKind::SymbolRequest,
                    };
                    if let Ok(p) = a.begin(now, &peer, kind) {
                        permits.push((peer, p));
                    }
                }
                4 => {
                    if !permits.is_empty() {
                        let i = usize::try_from(rng.below(permits.len() as u64)).unwrap();
                        let (_, p) = permits.swap_remove(i);
                        let cpu = rng.value(200);
                        a.finish(now, p, cpu);
                    }
                }
                5 => {
                    let req = match rng.below(3) {
                        0 => Requester::Unauthenticated,
                        1 => Requester::Authenticated {
                            proof_of_need: None,
                        },
                        _ => Requester::Authenticated {
                            proof_of_need: Some(u32::try_from(rng.value(100)).unwrap_or(u32::MAX)),
                        },
                    };
                    let avail = u32::try_from(rng.value(200)).unwrap_or(u32::MAX);
                    let per = u32::try_from(rng.value(1500)).unwrap_or(u32::MAX);
                    if let Ok(g) = a.grant_response(now, &peer, req, avail, per) {
                        assert!(g.symbols <= avail);
                        if req == Requester::Unauthenticated {
                            assert!(g.symbols <= policy.max_unproven_response_symbols);
                            let r = rx.entry(peer).or_default();
                            r.1 =
                                r.1.saturating_add(u64::from(g.symbols) * u64::from(per.max(1)));
                            let factor = u64::from(policy.unauthenticated_amplification_factor);
                            assert!(r.1 <= r.0.saturating_mul(factor), "seed {seed}: amp");
                        }
                    }
                }
                _ => {
                    let end = rng.below(4);
                    if end < 2 {
                        // Forgotten (0) or its session closed (1): either
                        // way its permits release nothing from now on.
                        let (gone, kept) = permits.drain(..).partition(|(p, _)| *p == peer);
                        permits = kept;
                        stale.extend(gone);
                        if end == 0 {
                            a.remove_peer(&peer);
                            shadow.remove(&peer);
                            rx.remove(&peer);
                        } else {
                            // The window stays (the shadow checks it).
                            a.release_peer(&peer);
                        }
                    }
                }
            }
            assert!(a.tracked_peers() <= policy.max_tracked_peers as usize);
            let s = a.status();
            assert_eq!(s.tracked_peers as usize, a.tracked_peers());
            // The in-flight totals are the permits held.
            let held =
                |k: InflightKind| permits.iter().filter(|(_, pm)| pm.kind() == k).count() as u64;
            assert_eq!(
                (
                    s.inflight.decodes,
                    s.inflight.store_requests,
                    s.inflight.symbol_requests
                ),
                (
                    held(InflightKind::Decode),
                    held(InflightKind::StoreRequest),
                    held(InflightKind::SymbolRequest)
                ),
                "seed {seed}"
            );
            if let Some(u) = a.peer_usage(&peer) {
                assert!(u.bytes <= b.max_bytes_per_min);
                assert!(u.symbols <= u64::from(b.max_symbols_per_min));
                assert!(u.inflight_decodes <= b.max_inflight_decodes);
                assert!(u.inflight_store_requests <= b.max_inflight_store_requests);
                assert!(u.inflight_symbol_requests <= b.max_inflight_symbol_requests);
            }
        }
        // Giving every permit back leaves nothing in flight.
        for (_, p) in permits.drain(..).chain(stale.drain(..)) {
            a.finish(now, p, 0);
        }
        assert_eq!(a.status().inflight, InflightTotals::default());
        assert_eq!(a.status().busy_peers, 0);
        (*a.counters(), windows)
    }

    #[test]
    fn prop_random_sequences_never_panic_and_respect_budgets() {
        let roomy = AdmissionPolicy {
            require_authenticated_requests: false,
            max_tracked_peers: 8,
            ..small()
        };
        let mut total = AdmissionCounters::default();
        let mut windows = 0;
        for seed in 0..300 {
            // Every peer fits: budgets hold per window.
            let (c, w) = run_case(seed, 8, roomy);
            windows += w;
            total.inbound_admitted += c.inbound_admitted;
            total.responses_granted += c.responses_granted;
            total.inflight_finished += c.inflight_finished;
            total.rejected.inbound_bytes += c.rejected.inbound_bytes;
            total.rejected.inbound_symbols += c.rejected.inbound_symbols;
            total.rejected.failed_auth += c.rejected.failed_auth;
            total.rejected.amplification += c.rejected.amplification;
            total.rejected.inflight_symbol_requests += c.rejected.inflight_symbol_requests;
            total.rejected.decode_cpu += c.rejected.decode_cpu;
        }
        // The sequences reach every interesting state, not just one.
        let r = total.rejected;
        for (what, n) in [
            ("admitted", total.inbound_admitted),
            ("grants", total.responses_granted),
            ("finished", total.inflight_finished),
            ("byte rejections", r.inbound_bytes),
            ("symbol rejections", r.inbound_symbols),
            ("auth throttles", r.failed_auth),
            ("amplification", r.amplification),
            ("inflight", r.inflight_symbol_requests),
            ("decode cpu", r.decode_cpu),
            ("new windows", windows),
        ] {
            assert!(n > 0, "no {what}");
        }
    }

    #[test]
    fn prop_random_sequences_with_eviction() {
        // More peers than slots: eviction churn must keep the table bounded
        // and never panic. (An evicted peer starts afresh, so per-window
        // sums are checked only in the test above; here only the bounds.)
        for seed in 0..300 {
            let mut rng = SplitMix(seed ^ 0x5eed);
            let mut a = Admission::<u64>::new(AdmissionPolicy {
                require_authenticated_requests: rng.below(2) == 0,
                max_tracked_peers: u32::try_from(1 + rng.below(5)).unwrap(),
                ..small()
            });
            let mut permits = Vec::new();
            let mut now = 0u64;
            for _ in 0..300 {
                now = now.wrapping_add(rng.below(20_000)) % (u64::MAX - 1);
                let peer = rng.below(40);
                match rng.below(4) {
                    0 => {
                        let _ = a.admit_inbound(now, &peer, rng.value(2000), 1);
                    }
                    1 => {
                        if let Ok(p) = a.begin(now, &peer, InflightKind::StoreRequest) {
                            permits.push(p);
                        }
                    }
                    2 => {
                        if let Some(p) = permits.pop() {
                            a.finish(now, p, 1);
                        }
                    }
                    _ => {
                        let _ = a.record_failed_auth(now, &peer);
                    }
                }
                assert!(a.tracked_peers() <= a.status().max_tracked_peers as usize);
                let s = a.status();
                assert!(s.busy_peers <= s.tracked_peers);
            }
        }
    }

    #[test]
    fn default_policy_is_usable() {
        let mut a = Admission::<String>::new(AdmissionPolicy::default());
        let peer = "node-a".to_owned();
        for i in 0..1000u64 {
            assert!(a.admit_inbound(i, &peer, 1232, 1).is_ok());
        }
        assert_eq!(a.counters().inbound_symbols_admitted, 1000);
    }
}
