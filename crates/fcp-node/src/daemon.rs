//! `fcp node run`: the async driver around the sans-IO cores.
//!
//! Transport (spec §4.2, profile §4.2–4.3): one TCP listener and one UDP socket
//! on the node's listen address. A TCP connection carries, in order, each
//! side's signed `PeerAnnouncement` (owner attestation + address), the session
//! handshake (Hello, optional HelloRetry, Ack) and then FCPC control frames.
//! UDP carries FCPS frames inside the session datagram envelope; a datagram is
//! routed by its session id, and nothing is decrypted or decoded before the
//! session MAC and the replay window accept it.
//!
//! Admission (spec §8.4): symbols are accepted only for objects an
//! authenticated peer announced over FCPC (a StoreRequest it sent, or an offer
//! answering our own request), only for the announced ESIs and sender
//! instance, and every other datagram is dropped and counted. A node answers a
//! symbol request only from a session peer, never to a bare address
//! (anti-amplification).
//!
//! All sockets and wall-clock reads go through [`crate::net::Net`]: `run`
//! uses real sockets, and [`start`] runs the same node on any transport (the
//! turmoil simulations in `tests/sim.rs`), driven through a [`NodeHandle`].
//!
//! Puts spread each object's symbols evenly over the writer and its peers by
//! HRW placement (each ESI on one node, any one loss leaves `k + 2`, decision
//! 61) and complete when every
//! holder acknowledged durable storage; gets ask every connected peer in
//! parallel (multipath), first for the missing source symbols, decode once a
//! source block is whole (or solve with repair symbols when a round ends short
//! of it), and send SymbolAck so holders still sending stop. Senders pace
//! all datagrams to a peer on one clock, with AIMD driven by the holders'
//! acknowledgements of pushes and the requesters' reports of what arrived
//! of each offer (decisions 71, 72).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fcp_core::identity::{NodeKeyAttestation, PeerAnnouncement, SignedObject};
use fcp_core::object::{RetentionClass, StorageMeta};
use fcp_core::provenance::TaintFlags;
use fcp_core::zone::StandardZone;
use fcp_core::{
    EpochId, ErrorCode, FcpError, HasErrorCode, ObjectId, ObjectPlacementPolicy, Provenance,
    StoredObject, ZoneId,
};
use fcp_crypto::{Ed25519PublicKey, SymbolKey, signed};
use fcp_store::{ObjectMeta, Store, SymbolRecord};
use fcp_wire::chunk::{PayloadMeta, PayloadRoot, parse_chunk_content, parse_root};
use fcp_wire::frame::{
    Frame, FrameBuilder, FrameFlags, FrameHeader, RecordRef, SESSION_ENVELOPE_LEN,
    first_esi_of_own_frame,
};
use fcp_wire::object::{ObjectDecoder, Progress};
use fcp_wire::pipeline::{SymbolParams, SymbolPath, ZoneContext};
use fcp_wire::session::{
    DEFAULT_MAX_FCPC_FRAME, FcpcRead, InitiatorConfig, InitiatorStart, LocalIdentity, PeerSessions,
    Responder, ResponderConfig, ResponderOutput, SessionCounters, TrustAnchors,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::admin::{self, Request, Response};
use crate::budget::{Admission, AdmissionPolicy, InflightKind, Permit, RejectReason, Requester};
use crate::enroll::{self, Membership};
use crate::error::NodeError;
use crate::home::{Home, NodeConfig};
use crate::net::{Datagrams, Listener, MAX_UDP_PAYLOAD, Net, Stream, SystemNet, offload};
use crate::pacing::{Aimd, Delivered, Kind, Pacer, PathIn, SendWindow, all_known_slow};
use crate::placement;
use crate::proto::{
    Arrived, Control, Decoded, EsiList, MAX_ARRIVED, MAX_ESIS, Meta, Source, esi_part,
};

/// Options of `fcp node run`.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Fault injection: drop this many of every 1000 received datagrams (0 = off).
    pub drop_permille: u16,
}

fn fcp(code: ErrorCode, msg: impl Into<String>) -> FcpError {
    FcpError::new(code, msg)
}

fn fe<E: HasErrorCode + std::fmt::Display>(e: E) -> FcpError {
    FcpError::from_err(&e)
}

/// A StoreRefused for push `push` of `object_id`, saying why.
/// The message names the error code only: the holder's own words (paths,
/// other zones' usage) stay in its log.
fn refusal(object_id: ObjectId, push: u64, why: &FcpError) -> Control {
    let code = ErrorCode::from_code(&why.code).unwrap_or(ErrorCode::Internal);
    Control::StoreRefused {
        object_id,
        push,
        code: code.as_code(),
        message: code.name().to_owned(),
    }
}

/// Why a push whose entry a newer push of the object took over ended.
fn replaced_push() -> FcpError {
    fcp(ErrorCode::ResourceLimit, "replaced by a newer push")
}

fn id_mismatch(oid: ObjectId) -> FcpError {
    fcp(
        ErrorCode::ObjectIdMismatch,
        format!("rebuilt bytes do not hash to {oid}"),
    )
}

fn io_err(e: std::io::Error) -> FcpError {
    fcp(ErrorCode::LocalIo, e.to_string())
}

/// Largest pre-session message (announcement or handshake) on TCP.
const MAX_PRE_SESSION: usize = 64 * 1024;
/// Get rounds (ask every peer, wait for their offers) that may stall, less
/// than an eighth of the symbols still needed arriving, before a get gives
/// up; rounds that progress do not count (as a push's, decision 79).
const GET_ROUNDS: usize = 6;
/// Seconds a get waits for symbols before giving up.
const GET_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a get round waits for peers that have not ended their offer. A
/// peer can be unreachable while its session still looks up (the keepalive
/// closes it only after `SESSION_IDLE_TIMEOUT`); the next round asks again
/// for what is still missing, so the other holders make up for it.
const ROUND_WAIT: Duration = Duration::from_secs(2);
/// Datagrams a get keeps per peer while the peer's offer is still in
/// flight (a chunk's share is tens; the manifest of a 1 GiB payload ~600).
const MAX_EARLY_FRAMES: usize = 2048;
/// Sealer instances one peer may name in its offers for one get (a
/// holder's symbols of an object come from one writer, or a few).
const MAX_OFFERED_SOURCES: usize = 64;
/// Once every offer ended, a get round that still misses offered datagrams
/// ends this long after the last one arrived (they were lost).
const QUIET: Duration = Duration::from_millis(50);
/// Or this long after the receive loop found its socket empty, once every
/// offer ended: datagrams sent before an OfferEnd are not expected much
/// later than it (decision 72).
const REORDER: Duration = Duration::from_millis(5);
/// Objects a put places at the same time (a holder admits 128 open pushes
/// per peer, spec §8.4).
const PARALLEL_OBJECTS: usize = 128;
/// How long a node keeps its reports on a peer's offers for one message at
/// most: the peer's serve window waits on them (decision 76).
const REPORT_DELAY: Duration = Duration::from_millis(1);
/// Objects a get fetches at the same time (their answers must fit the UDP
/// receive buffer).
const PARALLEL_FETCHES: usize = 24;
/// An admitted push still open this long after it was admitted or last
/// ended a round is dropped with its slot (a sender waits at most 5 s for
/// a round's answer).
const PUSH_EXPIRY_MS: u64 = 60_000;
/// A push nothing was heard of for this long (no StoreRequest, datagram or
/// StoreEnd) was abandoned by its pusher, which never waits that long
/// between two: it gives up its slot when its peer needs one.
const PUSH_IDLE_MS: u64 = 10_000;
/// How long a pusher asks again when a holder has no slot for it: longer
/// than `PUSH_IDLE_MS`, after which the holder frees abandoned pushes.
const SLOT_WAIT: Duration = Duration::from_secs(15);

/// Most pushes of one peer remembered as not stored (see
/// `Node::not_stored`).
const MAX_NOT_STORED: usize = 4096;
/// Bytes of a push's symbols copied into one allocation, at most.
const PUSH_BLOCK: usize = 64 * 1024;
/// How long a holder waits at most for datagrams that a StoreEnd naming
/// no last datagram overtook (less once its socket was found empty, see
/// `Node::finish_store`).
const STRAGGLERS: Duration = Duration::from_millis(40);
/// How long a holder waits at most for a round's named last datagram while
/// the peer's datagrams keep coming.
const TAIL_WAIT: Duration = Duration::from_millis(500);
/// A push gives up once its peer has received none of the datagrams sent
/// to it for this long (decision 81).
const SILENT_PATH: Duration = Duration::from_secs(3);
/// Store rounds (send, then resend what the holder reports missing) that
/// may stall, none or few of what was missing arriving, before a pusher
/// gives up; rounds that progress do not count, and a stalled round of
/// fewer than 8 missing counts for that many eighths (decision 79).
const STORE_ROUNDS: usize = 8;
/// Stalled StoreEnds a holder answers for one push, counted as the pusher
/// counts them: twice what a pusher sends. Each may name every missing ESI
/// (up to 256 KiB), so a peer cannot have that sent to it for a 60-byte
/// StoreEnd for ever, nor keep the push open (decision 67); a round that
/// progressed shrank what is missing by an eighth, so those answers add up
/// to at most eight times the push, and a stalled one naming fewer than 8
/// ESIs counts for that many eighths.
const MAX_STORE_ENDS: u16 = 2 * STORE_ROUNDS as u16;

/// A store round that left `after` of the `before` symbols missing: `None`
/// if it progressed (at least an eighth arrived), else what its stall
/// counts for, in eighths of a round (decision 79). What is missing only
/// shrinks as symbols arrive: a list that grew counts as a whole round,
/// and so does one with nothing missing that did not end (a get with
/// enough symbols that did not decode).
fn stall_eighths(before: usize, after: usize) -> Option<u16> {
    let progressed = after < before && (before - after).saturating_mul(8) >= before;
    let small = after <= before && (1..8).contains(&before);
    (!progressed).then(|| {
        if small {
            u16::try_from(before).unwrap_or(8)
        } else {
            8
        }
    })
}

/// A session that has received nothing for this long sends a Ping, and
/// another after each further such interval of silence (decision 59).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// A session that has received nothing for this long is closed: its peer is
/// gone or unreachable, though TCP may not notice for minutes (decision 59).
const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a session drops the pushes its peer abandoned
/// (`PUSH_EXPIRY_MS`), so their StoreRequest slots come back even when the
/// peer sends no further StoreRequest.
const PUSH_SWEEP: Duration = Duration::from_secs(5);
/// Longest a handshake (announcements, Hello, Ack) may take, dialing or
/// answering: a link that goes silent mid-handshake must not hold the dial
/// slot of its peer for ever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Node-wide counters reported by `fcp status`.
#[derive(Debug, Default)]
struct Stats {
    datagrams_in: AtomicU64,
    datagrams_out: AtomicU64,
    datagrams_dropped_fault: AtomicU64,
    datagrams_rejected_session: AtomicU64,
    frames_rejected: AtomicU64,
    frames_unsolicited: AtomicU64,
    datagrams_rejected_budget: AtomicU64,
    symbols_stored: AtomicU64,
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    /// Sessions closed because nothing arrived for `SESSION_IDLE_TIMEOUT`.
    keepalive_timeouts: AtomicU64,
    /// Keepalive Pings sent.
    pings_sent: AtomicU64,
    /// Control messages of a type this node does not know, skipped.
    control_unknown: AtomicU64,
    /// Objects a get rebuilt with the RaptorQ solver (some source symbols
    /// were not to be had; decision 60).
    gets_solved: AtomicU64,
    /// Pushes the store refused (an object held under another zone, a
    /// zone over quota, a bad record); their symbols were dropped and the
    /// pusher told so (StoreRefused).
    stores_refused: AtomicU64,
    /// Pushes that ended without storing their symbols (refused, failed,
    /// expired, idle when a slot was needed, session closed, over
    /// `MAX_ESIS` symbols); a StoreEnd for one is refused.
    pushes_not_stored: AtomicU64,
    /// StoreAcks and StoreRefuseds that answered no waiting push (a late
    /// answer to a push that gave up or already ended), ignored.
    store_answers_stale: AtomicU64,
    /// Datagrams whose send failed (the socket refused the batch).
    datagrams_send_failed: AtomicU64,
    /// Sessions refused because the responder chose the id of a live one.
    sessions_refused_id_in_use: AtomicU64,
    /// SymbolOffers from peers a get did not ask, ignored.
    offers_unasked: AtomicU64,
    /// Sessions closed because their peer let its control queue overflow
    /// (it did not read what this node sent).
    control_queue_overflows: AtomicU64,
    /// Admin gets that failed after their 200 head was sent (the client saw
    /// the body cut short; the node's log has the cause).
    admin_gets_failed_midstream: AtomicU64,
}

/// Whether a get's first round should ask every peer for a share of any
/// symbols instead of only the source symbols: when every path it knows the
/// pace of is slow (decision 77).
fn spread_first_round(peers: &[Arc<Peer>]) -> bool {
    all_known_slow(peers.iter().map(|p| lock(&p.path).slow()))
}

/// A window and the wait for room in it, woken when datagrams leave it.
#[derive(Debug, Default)]
struct Windowed {
    w: Mutex<SendWindow>,
    room: Notify,
}

impl Windowed {
    /// Wait for room for `n` datagrams sent at `rate`.
    async fn take<'a>(&'a self, rate: &Mutex<Aimd>, n: usize) -> InFlight<'a> {
        loop {
            let room = self.room.notified();
            let (per_ms, cap) = {
                let now = tokio::time::Instant::now();
                let r = lock(rate);
                (r.window_rate(now), r.window_cap(now))
            };
            if lock(&self.w).try_take(n, per_ms, cap) {
                return InFlight { window: self, n };
            }
            room.await;
        }
    }

    fn answered(&self, rtt: Duration, now: tokio::time::Instant) {
        lock(&self.w).answered(rtt, now);
    }
}

/// A push round's or a serve's datagrams in a window, given back however
/// it ends.
struct InFlight<'a> {
    window: &'a Windowed,
    n: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut w = lock(&self.window.w);
        w.in_flight = w.in_flight.saturating_sub(self.n);
        drop(w);
        self.window.room.notify_waiters();
    }
}

/// The control messages waiting to go to one peer, bounded by
/// [`Control::approx_len`] at `max` bytes.
struct ControlQueue {
    tx: mpsc::UnboundedSender<Control>,
    /// Shared with the writer, which takes off what it sends.
    queued: Arc<AtomicUsize>,
    max: usize,
    /// Raised when a message would take the queue past `max`: the peer
    /// does not read what it is sent, and its session is closed.
    overflow: Notify,
}

impl ControlQueue {
    fn new(max: usize) -> (Self, mpsc::UnboundedReceiver<Control>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let q = Self {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            max,
            overflow: Notify::new(),
        };
        (q, rx)
    }

    fn send(&self, c: Control) {
        let n = c.approx_len();
        let queued = self.queued.fetch_add(n, Ordering::Relaxed);
        if queued.saturating_add(n) > self.max {
            // Dropped, and the session goes: a message lost within a live
            // session would leave a push or a get waiting for nothing.
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.overflow.notify_one();
            return;
        }
        if self.tx.send(c).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
        }
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the session's writer is gone.
    async fn closed(&self) {
        self.tx.closed().await;
    }
}

struct Peer {
    node_id: String,
    addr: SocketAddr,
    initiator: String,
    sessions: Mutex<PeerSessions>,
    ctl: ControlQueue,
    rate: Mutex<Aimd>,
    /// The clock every datagram to the peer (pushes and serves) sends on.
    pace: Mutex<Pacer>,
    /// Datagrams of push rounds sent to the peer and not answered yet.
    pushes: Windowed,
    /// How fast the peer's serves arrive here (decision 77).
    path: Mutex<PathIn>,
    /// Datagrams of serves to the peer it has not reported on yet (apart:
    /// a serve's report comes without a commit, and its round trip would
    /// shrink the pushes' window, decision 76).
    serves: Windowed,
    /// Serves whose offer ended, by object, until the requester says how
    /// much of it arrived (`Control::OfferReceived`; at most
    /// `MAX_SERVED` each).
    served: Mutex<ServeReports>,
    /// This node's reports on the peer's offers, not sent yet: they go with
    /// the next SymbolRequest to it, when no get is left (one message for
    /// many, decision 72), or `REPORT_DELAY` after the first of them
    /// (decision 76).
    reports: Mutex<Vec<Arrived>>,
    connected_at: u64,
    /// `Net::now_ms` when FCPC bytes last arrived on the session.
    last_rx_ms: AtomicU64,
    /// The peer's latest datagram this node has handled (decision 75).
    handled: Mutex<Handled>,
    /// Holders waiting for the peer's datagram numbered this or later
    /// (the least such number; `u64::MAX`: none), woken by `tail_in`.
    tail_wanted: AtomicU64,
    tail_in: Notify,
    /// Held while a batch is sealed and sent (sequence order on the wire).
    tx: tokio::sync::Mutex<()>,
}

/// A peer's latest datagram a node has handled: a holder answers a
/// StoreEnd once the round's last datagram, or a later one, is in
/// (decision 75).
#[derive(Debug, Default, Clone, Copy)]
struct Handled {
    /// Its session.
    session: [u8; 16],
    /// The highest sequence number handled on that session (None: no
    /// datagram yet).
    seq: Option<u64>,
    /// `Net::now_ms` when the peer's last datagram was handled.
    at_ms: u64,
}

impl Peer {
    fn send(&self, c: Control) {
        self.ctl.send(c);
    }

    /// A datagram of the peer's (`seq` on `session`) was handled. After a
    /// rekey the new session's numbers start again: the first datagram of
    /// another session replaces the record.
    fn handled(&self, session: [u8; 16], seq: u64, now_ms: u64) {
        {
            let mut h = lock(&self.handled);
            if h.session == session {
                h.seq = Some(h.seq.map_or(seq, |s| s.max(seq)));
            } else {
                h.session = session;
                h.seq = Some(seq);
            }
            h.at_ms = now_ms;
        }
        // After the record: a holder that registers later reads it.
        if seq >= self.tail_wanted.load(Ordering::SeqCst) {
            self.tail_wanted.store(u64::MAX, Ordering::SeqCst);
            self.tail_in.notify_waiters();
        }
    }

    /// Whether the peer's datagram numbered `seq`, or a later one, was handled.
    fn handled_since(&self, seq: u64) -> bool {
        lock(&self.handled).seq.is_some_and(|h| h >= seq)
    }

    /// Report on one of the peer's offers, with the next message that
    /// flushes the reports, at once when `MAX_ARRIVED` are waiting, and
    /// `REPORT_DELAY` after the first of them at the latest: the peer's
    /// serve window waits on it (decision 76).
    fn report(self: &Arc<Self>, a: Arrived) {
        let (first, full) = {
            let mut r = lock(&self.reports);
            r.push(a);
            (r.len() == 1, r.len() >= MAX_ARRIVED)
        };
        if full {
            self.flush_reports();
        } else if first {
            let p = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(REPORT_DELAY).await;
                p.flush_reports();
            });
        }
    }

    fn flush_reports(&self) {
        let arrived = std::mem::take(&mut *lock(&self.reports));
        if !arrived.is_empty() {
            self.send(Control::OfferReceived { arrived });
        }
    }

    /// "I hold nothing of this object for you." An offer of no datagrams
    /// is complete as sent: no OfferEnd follows (decision 60).
    fn send_empty_offer(&self, object_id: ObjectId) {
        self.send(Control::SymbolOffer {
            object_id,
            meta: None,
            sources: Vec::new(),
            count: 0,
        });
    }
}

/// A serve waiting for its requester's report (`Control::OfferReceived`).
struct Served {
    /// When its first and its last datagram went.
    sent: tokio::time::Instant,
    done: tokio::time::Instant,
    /// The rate's [`Aimd::delivered`] when it was sent.
    delivered: Delivered,
    /// Datagrams sent.
    count: u32,
    /// Dropped with the record (reported, replaced or forgotten): the
    /// serve's datagrams then leave the peer's serve window (decision 76).
    _reported: oneshot::Sender<()>,
}

/// Serves one peer may leave unreported (a get that decoded before an
/// offer was all in does not report it); over this, the oldest is
/// forgotten.
const MAX_SERVED: usize = 1024;

/// One peer's serves waiting for its report, by object.
#[derive(Default)]
struct ServeReports(HashMap<ObjectId, Served>);

impl ServeReports {
    /// Keep `s` until the requester reports on it (bounded, see `MAX_SERVED`).
    fn record(&mut self, object_id: ObjectId, s: Served) {
        if self.0.len() >= MAX_SERVED && !self.0.contains_key(&object_id) {
            let oldest = self.0.iter().min_by_key(|(_, v)| v.sent).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.0.remove(&k);
            }
        }
        self.0.insert(object_id, s);
    }

    /// The requester's report on the last serve of `object_id`: `count` of
    /// its datagrams arrived. `rate` follows it as it follows a push's
    /// StoreAck (decision 72); a report of no recorded serve is ignored.
    /// Returns the round trip from the serve's last datagram, if any of it
    /// arrived (for the serve window, decision 76).
    fn report(
        &mut self,
        object_id: ObjectId,
        count: u32,
        rate: &mut Aimd,
        now: tokio::time::Instant,
    ) -> Option<Duration> {
        let s = self.0.remove(&object_id)?;
        rate.on_report(
            Kind::Serve,
            count,
            s.count,
            (s.sent, s.done),
            s.delivered,
            now,
        );
        (count > 0).then(|| now.saturating_duration_since(s.done))
    }
}

/// What stops a serve: the requester's SymbolAck (it rebuilt the object).
/// Raised while the serve waits for room in its window too (decision 76).
#[derive(Debug, Default)]
struct Stop {
    raised: AtomicBool,
    wake: Notify,
}

impl Stop {
    fn raise(&self) {
        self.raised.store(true, Ordering::Relaxed);
        self.wake.notify_waiters();
    }

    fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Relaxed)
    }

    /// Resolves once raised.
    async fn raised(&self) {
        loop {
            // Made before the flag is read: a raise between the two wakes it.
            let wake = self.wake.notified();
            if self.is_raised() {
                return;
            }
            wake.await;
        }
    }
}

/// Symbol openers by sender instance, then (zone, sealer).
type Openers = HashMap<u64, Vec<(ZoneId, String, Arc<SymbolKey>)>>;

/// One object's symbols waiting for the holder's group commit.
struct StoreJob {
    id: ObjectId,
    meta: ObjectMeta,
    records: Vec<SymbolRecord>,
    done: oneshot::Sender<Result<(), Stored>>,
}

/// Why a store job did not store: this object was refused (another zone
/// than the one held, a zone over quota, a bad record), or the whole
/// transaction failed.
#[derive(Clone, Debug)]
enum Stored {
    Refused(FcpError),
    Failed(FcpError),
}

/// Group commit: every store job queued while the previous transaction was
/// being written goes into the next one, so a burst of placements costs one
/// fsync instead of one per object. Each job is acknowledged only after its
/// transaction is durable.
async fn store_writer(
    store: Arc<Store>,
    mut rx: mpsc::UnboundedReceiver<StoreJob>,
    net: Arc<dyn Net>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < 512 {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut items = Vec::with_capacity(jobs.len());
        let mut waiters = Vec::with_capacity(jobs.len());
        for j in jobs {
            items.push((j.id, j.meta, j.records));
            waiters.push(j.done);
        }
        let st = store.clone();
        let res = offload(&*net, move || st.put_meta_and_symbols_batch(&items))
            .await
            .map_err(|_| Stored::Failed(fcp(ErrorCode::Internal, "store task failed")))
            .and_then(|r| r.map_err(|e| Stored::Failed(fe(e))));
        // Each job has its own answer: one refused object (another zone
        // than the one held, a zone over quota) does not sink the others.
        match res {
            Ok(each) => {
                for (w, r) in waiters.into_iter().zip(each) {
                    let _ = w.send(r.map(|_| ()).map_err(|e| Stored::Refused(fe(e))));
                }
            }
            Err(e) => {
                for w in waiters {
                    let _ = w.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Symbols a peer announced it is about to push to us (placement).
struct Incoming {
    meta: ZoneMeta,
    source: Source,
    esis: PushEsis,
    pending: Vec<SymbolRecord>,
    /// Where the pending symbols' bytes are copied: blocks of `PUSH_BLOCK`
    /// shared by their symbols, not one allocation per symbol (and not
    /// slices of a receive, which would keep it alive as long as the push).
    block: BytesMut,
    /// Woken when every expected ESI is in.
    complete: Arc<Notify>,
    /// The peer's StoreRequest slot (spec §8.4), given back when done.
    permit: Option<Permit>,
    /// When the push was admitted or last ended a round (StoreEnd):
    /// abandoned pushes expire `PUSH_EXPIRY_MS` after.
    opened_ms: u64,
    /// When anything of the push last arrived (see `PUSH_IDLE_MS`).
    heard_ms: u64,
    /// The number of the push this entry serves (the latest StoreRequest).
    push: u64,
    /// Stalled StoreEnds of the push answered so far, in eighths (at most
    /// `MAX_STORE_ENDS` whole ones), and the ESIs missing at the last
    /// answer (none yet: every one announced).
    ends: u16,
    left_at_end: Option<usize>,
}

/// The ESIs a push announced, each with whether it has arrived: a sorted
/// list searched per symbol (a push names tens of ESIs), no hashing.
#[derive(Debug, Default)]
struct PushEsis {
    /// Ascending, distinct, with the arrival flag.
    esis: Vec<(u32, bool)>,
    /// Announced ESIs not yet arrived.
    left: usize,
}

impl PushEsis {
    /// Add announced ESIs (a repeated StoreRequest adds to the first). A
    /// push names at most [`MAX_ESIS`] ESIs in all, so the StoreAck listing
    /// the missing ones always fits one message (decision 67); announcing
    /// more is refused and leaves the push as it was.
    fn announce(&mut self, more: Vec<u32>) -> Result<(), FcpError> {
        let mut all = Vec::with_capacity(self.esis.len().saturating_add(more.len()));
        all.extend_from_slice(&self.esis);
        all.extend(more.into_iter().map(|e| (e, false)));
        // An ESI both arrived and announced again stays arrived.
        all.sort_unstable_by_key(|&(e, got)| (e, !got));
        all.dedup_by_key(|(e, _)| *e);
        if all.len() > MAX_ESIS {
            return Err(fcp(
                ErrorCode::SymbolInvalid,
                format!("a push may announce at most {MAX_ESIS} symbols"),
            ));
        }
        self.esis = all;
        self.left = self.esis.iter().filter(|(_, got)| !got).count();
        Ok(())
    }

    /// Mark `esi` arrived; false if it was not announced or came before.
    fn accept(&mut self, esi: u32) -> bool {
        match self.esis.binary_search_by_key(&esi, |&(e, _)| e) {
            Ok(i) => match self.esis.get_mut(i) {
                Some((_, got)) if !*got => {
                    *got = true;
                    self.left -= 1;
                    true
                }
                _ => false,
            },
            Err(_) => false,
        }
    }

    fn complete(&self) -> bool {
        self.left == 0
    }

    /// The announced ESIs not yet arrived, ascending.
    fn missing(&self) -> Vec<u32> {
        self.esis
            .iter()
            .filter(|(_, got)| !got)
            .map(|&(e, _)| e)
            .collect()
    }
}

/// One object's own frames (one record each) by ESI, for placement.
struct OwnFrames(Vec<(u32, Bytes)>);

impl OwnFrames {
    fn index(frames: Vec<Bytes>) -> Self {
        let mut v: Vec<(u32, Bytes)> = frames
            .into_iter()
            .filter_map(|f| Some((first_esi_of_own_frame(&f)?, f)))
            .collect();
        v.sort_unstable_by_key(|(e, _)| *e);
        v.dedup_by_key(|(e, _)| *e);
        Self(v)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, esi: &u32) -> Option<&Bytes> {
        // A sealed object's ESIs are 0..n: the ESI is the index.
        let i = match self.0.get(*esi as usize) {
            Some((e, _)) if e == esi => *esi as usize,
            _ => self.0.binary_search_by_key(esi, |(e, _)| *e).ok()?,
        };
        self.0.get(i).map(|(_, f)| f)
    }
}

/// Pushes that ended without storing (see `Node::not_stored`).
type NotStored = HashMap<String, HashMap<(ObjectId, u64), (u64, FcpError)>>;

/// A push waiting for its StoreAck: the push's number, and where the
/// answer goes (the missing ESIs, or the holder's refusal).
type StoreWaiter = (u64, oneshot::Sender<Result<Vec<u32>, FcpError>>);

/// One push turn per (peer, object), with the number of pushes holding or
/// waiting for it.
type TurnMap = Mutex<HashMap<PeerObject, (Arc<tokio::sync::Mutex<()>>, usize)>>;

/// A push's turn at its (peer, object): given back on drop, and forgotten
/// when no other push holds or waits for it (also when pushes are
/// cancelled while waiting).
struct Turn<'a> {
    turns: &'a TurnMap,
    key: PeerObject,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<'a> Turn<'a> {
    async fn take(turns: &'a TurnMap, key: PeerObject) -> Turn<'a> {
        let turn = {
            let mut map = lock(turns);
            let (turn, users) = map.entry(key.clone()).or_default();
            *users += 1;
            turn.clone()
        };
        // Counted from here: a push cancelled while it waits drops this.
        let mut t = Turn {
            turns,
            key,
            guard: None,
        };
        t.guard = Some(turn.lock_owned().await);
        t
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.guard = None;
        let mut turns = lock(self.turns);
        if let Some((_, users)) = turns.get_mut(&self.key) {
            *users = users.saturating_sub(1);
            if *users == 0 {
                turns.remove(&self.key);
            }
        }
    }
}

/// Ends a get's registration on drop, however the get ends (rebuilt, given
/// up, refused as NotInZone, cancelled): late frames then find no get, the
/// last get to end sends the reports (`Control::OfferReceived`) no request
/// took along, and a peer still sending is told to stop.
struct GetEnd<'a> {
    node: &'a Node,
    oid: ObjectId,
    g: &'a GetState,
}

impl Drop for GetEnd<'_> {
    fn drop(&mut self) {
        let last = {
            let mut gets = lock(&self.node.gets);
            gets.remove(&self.oid);
            gets.is_empty()
        };
        let peers = self.node.connected_peers();
        let open = std::mem::take(&mut *lock(&self.g.open));
        for p in &peers {
            if last {
                p.flush_reports();
            }
            // Only a peer still sending, in this round or an earlier one,
            // needs to be told to stop.
            if open.get(&p.node_id).is_some_and(|n| *n > 0) {
                p.send(Control::SymbolAck {
                    object_id: self.oid,
                });
            }
        }
    }
}

/// What a fetch of one object ends with: its content and zone.
type Fetched = Result<(Vec<u8>, ZoneId), FcpError>;

/// Removes an entry from a map of work in progress on drop, also when that
/// work is cancelled: a fetch (so that a waiting get starts its own), a
/// get's state (so that late frames find no get), a push's StoreAck waiter.
struct Forget<'a, K: Eq + std::hash::Hash, V>(&'a Mutex<HashMap<K, V>>, K);

impl<K: Eq + std::hash::Hash, V> Drop for Forget<'_, K, V> {
    fn drop(&mut self) {
        lock(self.0).remove(&self.1);
    }
}

/// The body of a get, in order, piece by piece.
type GetBody = mpsc::Receiver<Result<Bytes, FcpError>>;

/// An admin answer: whole, or a body streamed as it is rebuilt.
enum Reply {
    Full(Response),
    Stream { len: u64, body: GetBody },
}

/// Bytes of queued control messages one write carries at most.
const CTL_BURST: usize = 64 * 1024;
/// Most control bytes (by [`Control::approx_len`]) waiting to be sent to
/// one peer. A put keeps ~256 small messages per peer in flight, a get a
/// few per chunk; a peer that lets this fill does not read its socket.
const MAX_CTL_QUEUE: usize = 64 << 20;

/// What a SymbolRequest asks for.
struct Ask {
    /// Ascending.
    have: Vec<u32>,
    want: u32,
    parts: u32,
    part: u32,
    sources_only: bool,
}

/// One object being fetched.
struct GetState {
    object_id: ObjectId,
    decoder: Mutex<Option<ObjectDecoder>>,
    /// ESIs accepted so far (local and received), for `have` in re-requests.
    got: Mutex<HashSet<u32>>,
    /// Frames that came before their sender's offer, by sender (at most
    /// `MAX_EARLY_FRAMES` each).
    early: Mutex<HashMap<String, Vec<Frame>>>,
    /// The object's metadata as this node knows it: from its own store, or
    /// from the offer of the peer whose frame opened first. What one peer
    /// offers does not decide how another's frames are read.
    meta: Mutex<Option<Arc<ZoneMeta>>>,
    /// The metadata each peer offered (its first), for its own frames
    /// until `meta` is known.
    offered_meta: Mutex<HashMap<String, Arc<ZoneMeta>>>,
    /// The peers sent a SymbolRequest: only their offers and frames count.
    asked: Mutex<HashSet<String>>,
    /// By offering peer, then sender instance: the node that sealed the
    /// symbols (at most `MAX_OFFERED_SOURCES` each). Each peer's frames open
    /// with the sealers it named, so a peer cannot change how another
    /// peer's frames are read.
    sources: Mutex<HashMap<String, HashMap<u64, String>>>,
    /// By asked peer, the serves asked of it in this get that have not
    /// ended: a serve of an earlier round may still be sending, and its
    /// OfferEnd names only the object (decision 76). Every round asks each
    /// of its peers once more, so none open means the peer's offer of this
    /// round ended (see [`GetState::ended`]).
    open: Mutex<HashMap<String, u32>>,
    /// Datagrams routed to this get (quiescence after the offers ended).
    frames_in: AtomicU64,
    /// By asked peer, its offer in this round: what `Control::OfferReceived`
    /// reports, and summed, whether the round has all it was offered.
    by_peer: Mutex<HashMap<String, OfferIn>>,
    done: Notify,
    result: Mutex<Option<Vec<u8>>>,
    /// Local repair symbols, opened only if a solve is needed (decision 60).
    reserve: Mutex<Vec<SymbolRecord>>,
}

/// A peer's offer in a get's round, as it comes in.
#[derive(Debug, Default, Clone, Copy)]
struct OfferIn {
    /// Datagrams offered, and those handled from the peer since the round
    /// began (a late one of the round before counts too).
    offered: u64,
    arrived: u64,
    /// When the first and the latest of them were handled.
    first: Option<tokio::time::Instant>,
    last: Option<tokio::time::Instant>,
    /// Some came before the offer and were held until it came: the span is
    /// not the path's.
    held: bool,
    /// Reported on: at most once a round, as soon as all of it is in
    /// (decision 76), else at the round's end.
    reported: bool,
    /// The highest session sequence number the peer's OfferEnds of the
    /// round named: once that datagram of the peer's, or a later one, is
    /// in, what the offer still misses was lost (decision 80).
    tail: Option<u64>,
}

impl OfferIn {
    /// If all of the offer is in and it was not reported on: mark it
    /// reported, and return what came in and, unless some were held for
    /// the offer, over how long.
    fn complete(&mut self) -> Option<(u64, Option<Duration>)> {
        if self.arrived < self.offered || !self.take_report() {
            return None;
        }
        let span = self
            .first
            .zip(self.last)
            .filter(|_| !self.held)
            .map(|(f, l)| l.saturating_duration_since(f));
        Some((self.arrived, span))
    }

    /// At the round's end: what to report of an offer not reported yet,
    /// all in or `ended`; one not all in is not reported if the object was
    /// `rebuilt` (the rest may still be on its way).
    fn at_round_end(&mut self, rebuilt: bool, ended: bool) -> Option<u64> {
        let lost = self.arrived < self.offered;
        if lost && (rebuilt || !ended) {
            return None;
        }
        self.take_report().then_some(self.arrived)
    }

    /// Mark a non-empty offer reported, if it was not yet: each is reported
    /// once a round.
    fn take_report(&mut self) -> bool {
        let first = self.offered > 0 && !self.reported;
        self.reported |= first;
        first
    }
}

/// A peer's offer in a get's round is all in: report on it now, not at the
/// round's end, which may wait on other peers' offers while theirs wait on
/// this peer's serve window (decision 76), and take its pace (decision 77).
fn offer_complete(g: &GetState, peer: &Arc<Peer>, (arrived, span): (u64, Option<Duration>)) {
    if let Some(span) = span {
        lock(&peer.path).offer_in(arrived, span);
    }
    peer.report(Arrived {
        object_id: g.object_id,
        count: u32::try_from(arrived).unwrap_or(u32::MAX),
    });
}

impl GetState {
    fn new(object_id: ObjectId) -> Self {
        Self {
            object_id,
            decoder: Mutex::new(None),
            got: Mutex::new(HashSet::new()),
            early: Mutex::new(HashMap::new()),
            meta: Mutex::new(None),
            offered_meta: Mutex::new(HashMap::new()),
            asked: Mutex::new(HashSet::new()),
            sources: Mutex::new(HashMap::new()),
            open: Mutex::new(HashMap::new()),
            frames_in: AtomicU64::new(0),
            by_peer: Mutex::new(HashMap::new()),
            done: Notify::new(),
            result: Mutex::new(None),
            reserve: Mutex::new(Vec::new()),
        }
    }

    /// Whether `peer`'s offer of this round is complete (OfferEnd, or an
    /// offer of nothing), and no earlier one is still coming.
    fn ended(&self, peer: &str) -> bool {
        lock(&self.open).get(peer).is_some_and(|n| *n == 0)
    }

    /// Symbols still needed to rebuild the object, once its decoder is
    /// made (its metadata known).
    fn still_needed(&self) -> Option<usize> {
        lock(&self.decoder)
            .as_ref()
            .map(|d| d.required().saturating_sub(d.received_unique()) as usize)
    }
}

/// One of a peer's offers to a get ended (its OfferEnd, or an offer of
/// nothing). The peer's offer of this round counts as ended once none of
/// the serves asked of it is still going: which one an OfferEnd ends it
/// does not say, and an earlier serve's datagrams still come until its own
/// (decision 76).
fn offer_ended(g: &GetState, peer: &str) {
    let none_open = {
        let mut open = lock(&g.open);
        let n = open.entry(peer.to_owned()).or_default();
        *n = n.saturating_sub(1);
        *n == 0
    };
    if none_open {
        g.done.notify_waiters();
    }
}

/// An object's metadata as a push or a get knows it, with the zone hash
/// every frame of the object must carry (computed once, not per frame).
struct ZoneMeta {
    meta: Meta,
    zone_hash: [u8; 32],
}

impl ZoneMeta {
    fn new(meta: Meta) -> Self {
        Self {
            zone_hash: *meta.zone_id.hash().as_bytes(),
            meta,
        }
    }
}

impl std::ops::Deref for ZoneMeta {
    type Target = Meta;
    fn deref(&self) -> &Meta {
        &self.meta
    }
}

struct Trust {
    owner: Ed25519PublicKey,
    peers: BTreeMap<String, (NodeKeyAttestation, String, u64)>,
    /// Node-signed announcements seen, relayed to every new session.
    announcements: BTreeMap<String, PeerAnnouncement>,
}

impl TrustAnchors for Trust {
    fn node_signing_key(&self, node_id: &str) -> Option<Ed25519PublicKey> {
        self.peers
            .get(node_id)
            .and_then(|(a, _, _)| Ed25519PublicKey::from_bytes(&a.node_sig_pubkey.0).ok())
    }
}

/// A (peer node id, object) pair.
type PeerObject = (String, ObjectId);

struct Node {
    cfg: NodeConfig,
    identity: Arc<LocalIdentity>,
    announcement: PeerAnnouncement,
    membership: Membership,
    store: Arc<Store>,
    instance: u64,
    frame_seq: Mutex<u64>,
    trust: RwLock<Trust>,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    by_session: Mutex<HashMap<[u8; 16], Arc<Peer>>>,
    /// The datagram socket (UDP with GSO/GRO in production).
    udp: Box<dyn Datagrams>,
    /// How many times the receive loop found the socket empty, and woken
    /// each time: once it was, every datagram that reached the socket
    /// before has been handled (a get round's end, decision 72).
    rx_drained: AtomicU64,
    rx_drained_wake: Notify,
    /// The receive loop is waiting on an empty socket.
    rx_idle: AtomicBool,
    /// Sockets and clocks (real, or simulated in tests).
    net: Arc<dyn Net>,
    responder: Mutex<Responder>,
    gets: Mutex<HashMap<ObjectId, Arc<GetState>>>,
    incoming: Mutex<HashMap<PeerObject, Incoming>>,
    store_waiters: Mutex<HashMap<PeerObject, StoreWaiter>>,
    /// The number of this node's next push (StoreRequest).
    next_push: AtomicU64,
    /// Pushes that ended without storing their symbols, by peer and
    /// (object, push number): until when each is remembered, and why.
    not_stored: Mutex<NotStored>,
    /// Pushes of an object to a peer take turns: the peer keeps one open
    /// push per (pusher, object), so two puts of the same bytes at once
    /// would share it and end each other's (see [`Turn`]).
    push_turns: TurnMap,
    /// A peer's StoreEnds of one object are answered in turn: a StoreEnd sent
    /// again (its pusher timed out) waits for the first one's commit, so it
    /// is never told that symbols still being written, or refused, are
    /// stored.
    finish_turns: TurnMap,
    /// Fetches in progress by object: a get of an object already being
    /// fetched shares that fetch, as frames are routed by object id.
    fetching: Mutex<HashMap<ObjectId, watch::Receiver<Option<Fetched>>>>,
    store_jobs: mpsc::UnboundedSender<StoreJob>,
    /// Serves in progress, each with its stop, by requester and object (an
    /// older serve goes on beside a newer request's: what it still sends
    /// counts for the get). An entry lives as long as its serve, so acks
    /// cannot pile up; the serves are bounded by the peer's request slots.
    serving: Mutex<HashMap<PeerObject, Vec<Arc<Stop>>>>,
    placed: Mutex<BTreeMap<ObjectId, (u16, u32)>>,
    /// Sender subkeys (HKDF once, not per frame) by sender instance, then
    /// zone and sealer: looked up for every received frame and local symbol
    /// without allocating. At most 4096 instances of 64 entries each.
    keys: Mutex<Openers>,
    /// Per-peer admission budgets (spec §8.4).
    admission: Mutex<Admission<String>>,
    stats: Stats,
    opts: RunOptions,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run the node until SIGINT/SIGTERM: real sockets, the system clock and the
/// admin API on `admin.sock` in the home directory (`fcp node run`).
pub async fn run(home: Home, opts: RunOptions) -> Result<(), NodeError> {
    let sock_path = home.path("admin.sock");
    let node = start(home, opts, SystemNet::new()).await?.node;
    let admin_listener = admin::bind(&sock_path).map_err(crate::error::io(&sock_path))?;
    eprintln!(
        "fcp node {} listening on {} (udp+tcp), admin {}",
        node.cfg.node_id,
        node.cfg.listen,
        sock_path.display()
    );
    tokio::spawn(node.clone().admin_loop(admin_listener));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| NodeError::Io {
            path: "signal".into(),
            source: e,
        })?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = std::fs::remove_file(&sock_path);
    eprintln!("fcp node {} stopped", node.cfg.node_id);
    Ok(())
}

/// Start a node on `net`: bind its datagram socket and stream listener on the
/// configured listen address and spawn its loops (datagrams, inbound and
/// outbound sessions, group commit) on the current tokio runtime. The node
/// runs until that runtime shuts down; the handle drives it in-process
/// (`run` adds the admin socket and signal handling around it).
pub async fn start(
    home: Home,
    opts: RunOptions,
    net: Arc<dyn Net>,
) -> Result<NodeHandle, NodeError> {
    let cfg = home.config()?;
    let membership = enroll::load_membership(&home)?;
    let keys = enroll::load_node_keys(&home)?;
    let listen: SocketAddr = cfg
        .listen
        .parse()
        .map_err(|e| NodeError::InvalidArgument(format!("listen {}: {e}", cfg.listen)))?;
    let store_path = home.path("store.redb");
    let store = Arc::new(Store::open(&store_path).map_err(|source| NodeError::Store {
        path: store_path.display().to_string(),
        source,
    })?);
    let now = net.now_secs();
    let mut announcement = PeerAnnouncement {
        attestation: membership.attestation.clone(),
        addr: cfg.listen.clone(),
        announced_at: now,
        signature: None,
    };
    signed::sign(&keys.signing, &mut announcement)?;
    let identity = Arc::new(
        LocalIdentity::new(cfg.node_id.clone(), keys.signing)
            .map_err(|e| NodeError::InvalidArgument(e.to_string()))?,
    );
    let mut rng = rand::rng();
    let responder = Responder::new(identity.clone(), ResponderConfig::default(), now, &mut rng)
        .map_err(|e| NodeError::InvalidArgument(e.to_string()))?;
    let mut trust_peers = BTreeMap::new();
    for (id, p) in &membership.peers {
        trust_peers.insert(id.clone(), (p.attestation.clone(), p.addr.clone(), 0));
    }
    // On the owner's device, every enrolled node is known.
    for f in home.list("owner/nodes")? {
        if let Ok(p) = fcp_core::cbor::from_canonical_strict::<enroll::PeerInfo>(
            &home.read(&format!("owner/nodes/{f}"))?,
        ) && p.attestation.node_id != cfg.node_id
            && enroll::verify_attestation(&membership.owner, &p.attestation, now).is_ok()
        {
            trust_peers.insert(p.attestation.node_id.clone(), (p.attestation, p.addr, 0));
        }
    }
    let bind_err = |source| NodeError::Io {
        path: cfg.listen.clone(),
        source,
    };
    let udp = net.bind_datagrams(listen).await.map_err(bind_err)?;
    let tcp = net.listen(listen).await.map_err(bind_err)?;
    let (store_jobs, store_rx) = mpsc::unbounded_channel();
    tokio::spawn(store_writer(store.clone(), store_rx, net.clone()));
    let node = Arc::new(Node {
        store_jobs,
        instance: rand::random::<u64>(),
        frame_seq: Mutex::new(0),
        trust: RwLock::new(Trust {
            owner: membership.owner,
            peers: trust_peers,
            announcements: BTreeMap::new(),
        }),
        cfg,
        identity,
        announcement,
        membership,
        store,
        peers: Mutex::new(HashMap::new()),
        by_session: Mutex::new(HashMap::new()),
        udp,
        rx_drained: AtomicU64::new(0),
        rx_drained_wake: Notify::new(),
        rx_idle: AtomicBool::new(false),
        net,
        responder: Mutex::new(responder),
        gets: Mutex::new(HashMap::new()),
        incoming: Mutex::new(HashMap::new()),
        store_waiters: Mutex::new(HashMap::new()),
        // From a random start, so that a restarted node's pushes do not
        // repeat the numbers of its earlier ones.
        next_push: AtomicU64::new((rand::random::<u64>() >> 1) | 1),
        not_stored: Mutex::new(HashMap::new()),
        push_turns: Mutex::new(HashMap::new()),
        finish_turns: Mutex::new(HashMap::new()),
        fetching: Mutex::new(HashMap::new()),
        serving: Mutex::new(HashMap::new()),
        placed: Mutex::new(BTreeMap::new()),
        keys: Mutex::new(HashMap::new()),
        admission: Mutex::new(Admission::new(AdmissionPolicy::default())),
        stats: Stats::default(),
        opts,
    });
    tokio::spawn(node.clone().udp_loop());
    tokio::spawn(node.clone().accept_loop(tcp));
    tokio::spawn(node.clone().dial_loop());
    Ok(NodeHandle { node })
}

/// A running node driven in-process, without the admin socket (tests and
/// simulations). The operations are the admin API's.
#[derive(Clone)]
pub struct NodeHandle {
    node: Arc<Node>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("node_id", &self.node.cfg.node_id)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// `POST /put`: seal `payload` into `zone`, place it, return its root id.
    pub async fn put(&self, zone: ZoneId, payload: Vec<u8>) -> Result<ObjectId, FcpError> {
        let (root, _) = self.node.clone().put(zone, payload).await?;
        Ok(root)
    }

    /// `GET /get/{id}`: the whole payload, rebuilt and checked.
    pub async fn get(&self, id: ObjectId) -> Result<Vec<u8>, FcpError> {
        let (len, mut body) = self.node.clone().get(id).await?;
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 30));
        while let Some(piece) = body.recv().await {
            out.extend_from_slice(&piece?);
        }
        if out.len() as u64 != len {
            return Err(fcp(ErrorCode::ObjectCorrupt, "short payload"));
        }
        Ok(out)
    }

    /// `GET /status`.
    pub fn status(&self) -> serde_json::Value {
        self.node.status()
    }
}

async fn write_msg<S: AsyncWrite + Unpin + ?Sized>(
    s: &mut S,
    tag: u8,
    body: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(body.len() + 1).unwrap_or(u32::MAX);
    s.write_all(&len.to_le_bytes()).await?;
    s.write_all(&[tag]).await?;
    s.write_all(body).await
}

/// The peer's signed announcement, the first message either side sends.
async fn read_announcement<S: AsyncRead + Unpin + ?Sized>(
    s: &mut S,
) -> Result<PeerAnnouncement, FcpError> {
    let (tag, intro) = read_msg(s).await?;
    if tag != TAG_INTRO {
        return Err(fcp(
            ErrorCode::SessionUnexpectedMessage,
            "expected an announcement",
        ));
    }
    PeerAnnouncement::from_cbor(&intro).map_err(fe)
}

async fn read_msg<S: AsyncRead + Unpin + ?Sized>(s: &mut S) -> Result<(u8, Vec<u8>), FcpError> {
    let io = |e: std::io::Error| fcp(ErrorCode::SessionHandshakeMalformed, e.to_string());
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.map_err(io)?;
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > MAX_PRE_SESSION {
        return Err(fcp(
            ErrorCode::SessionHandshakeOversized,
            "pre-session message size",
        ));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.map_err(io)?;
    let tag = buf.first().copied().unwrap_or(0);
    buf.remove(0);
    Ok((tag, buf))
}

const TAG_INTRO: u8 = b'I';
const TAG_HELLO: u8 = b'H';
const TAG_RETRY: u8 = b'R';
const TAG_ACK: u8 = b'A';

impl Node {
    /// Milliseconds since start (the admission clock).
    fn now_ms(&self) -> u64 {
        self.net.now_ms()
    }

    /// Remember for `PUSH_EXPIRY_MS` that push `push` of `key` ended
    /// without storing its symbols, and why, so that a StoreEnd sent again
    /// is refused too and not taken for stored. At `MAX_NOT_STORED` pushes
    /// of one peer, that peer's oldest is forgotten.
    fn not_stored(&self, (peer, oid): PeerObject, push: u64, why: &FcpError) {
        self.stats.pushes_not_stored.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let mut m = lock(&self.not_stored);
        let of_peer = m.entry(peer).or_default();
        of_peer.retain(|_, (until, _)| *until > now);
        if of_peer.len() >= MAX_NOT_STORED
            && let Some(oldest) = of_peer
                .iter()
                .min_by_key(|(_, (until, _))| *until)
                .map(|(k, _)| *k)
        {
            of_peer.remove(&oldest);
        }
        of_peer.insert(
            (oid, push),
            (now.saturating_add(PUSH_EXPIRY_MS), why.clone()),
        );
    }

    /// Why push `push` of `key` ended without storing, if it did recently.
    fn was_not_stored(&self, (peer, oid): &PeerObject, push: u64) -> Option<FcpError> {
        let now = self.now_ms();
        lock(&self.not_stored)
            .get(peer)?
            .get(&(*oid, push))
            .filter(|(until, _)| *until > now)
            .map(|(_, why)| why.clone())
    }

    /// A push is over: give its StoreRequest slot back.
    fn close_push(&self, push: Option<Incoming>) {
        if let Some(permit) = push.and_then(|e| e.permit) {
            lock(&self.admission).finish(self.now_ms(), permit, 0);
        }
    }

    fn node_id(&self) -> &str {
        &self.cfg.node_id
    }

    /// Verify a peer's announcement: owner-signed attestation, node-signed
    /// announcement; remember it if newer. Returns whether it was news.
    fn accept_announcement(&self, a: &PeerAnnouncement) -> Result<bool, FcpError> {
        let now = self.net.now_secs();
        let owner = self
            .trust
            .read()
            .map(|t| t.owner)
            .map_err(|_| fcp(ErrorCode::Internal, "trust lock"))?;
        enroll::verify_attestation(&owner, &a.attestation, now).map_err(fe)?;
        let key = Ed25519PublicKey::from_bytes(&a.attestation.node_sig_pubkey.0).map_err(fe)?;
        signed::verify(&key, a).map_err(fe)?;
        if a.attestation.node_id == self.node_id() {
            return Ok(false);
        }
        a.addr
            .parse::<SocketAddr>()
            .map_err(|_| fcp(ErrorCode::InvalidArgument, "announced address"))?;
        let mut t = self
            .trust
            .write()
            .map_err(|_| fcp(ErrorCode::Internal, "trust lock"))?;
        let newer = t
            .peers
            .get(&a.attestation.node_id)
            .is_none_or(|(_, _, at)| a.announced_at >= *at);
        let news = t
            .announcements
            .get(&a.attestation.node_id)
            .is_none_or(|old| a.announced_at > old.announced_at);
        if newer {
            t.peers.insert(
                a.attestation.node_id.clone(),
                (a.attestation.clone(), a.addr.clone(), a.announced_at),
            );
        }
        if news {
            t.announcements
                .insert(a.attestation.node_id.clone(), a.clone());
        }
        Ok(news)
    }

    /// Every attested peer with its last known address.
    fn known_peers(&self) -> Vec<(String, String)> {
        self.trust
            .read()
            .map(|t| {
                t.peers
                    .iter()
                    .map(|(id, (_, a, _))| (id.clone(), a.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn peer_addr(&self, node_id: &str) -> Option<SocketAddr> {
        self.trust
            .read()
            .ok()?
            .peers
            .get(node_id)
            .and_then(|(_, a, _)| a.parse().ok())
    }

    async fn accept_loop(self: Arc<Self>, tcp: Box<dyn Listener>) {
        loop {
            match tcp.accept().await {
                Ok(s) => {
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.clone().respond(s).await {
                            me.stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("{}: inbound session refused: {e}", me.node_id());
                        }
                    });
                }
                Err(e) => {
                    eprintln!("{}: accept: {e}", self.node_id());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn respond(self: Arc<Self>, s: Box<dyn Stream>) -> Result<(), FcpError> {
        let (s, session) = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.respond_handshake(s))
            .await
            .map_err(|_| fcp(ErrorCode::LocalIo, "handshake timeout"))??;
        let peer_id = session.peer().to_owned();
        self.attach(s, session, peer_id.clone(), peer_id).await
    }

    /// The responder's side of the handshake, up to the session.
    async fn respond_handshake(
        &self,
        mut s: Box<dyn Stream>,
    ) -> Result<(Box<dyn Stream>, fcp_wire::session::Session), FcpError> {
        let ann = read_announcement(&mut s).await?;
        let _ = self.accept_announcement(&ann)?;
        let mine = self.announcement.to_cbor().map_err(fe)?;
        write_msg(&mut s, TAG_INTRO, &mine).await.map_err(io_err)?;
        for _ in 0..4 {
            let (tag, hello) = read_msg(&mut s).await?;
            if tag != TAG_HELLO {
                return Err(fcp(ErrorCode::SessionUnexpectedMessage, "expected a Hello"));
            }
            let out = {
                let trust = self
                    .trust
                    .read()
                    .map_err(|_| fcp(ErrorCode::Internal, "trust lock"))?;
                let mut r = lock(&self.responder);
                r.on_hello(&hello, self.net.now_secs(), &*trust, &mut rand::rng())
                    .map_err(fe)?
            };
            match out {
                ResponderOutput::Retry(bytes) => {
                    write_msg(&mut s, TAG_RETRY, &bytes).await.map_err(io_err)?;
                }
                ResponderOutput::Accept { ack, session } => {
                    write_msg(&mut s, TAG_ACK, &ack).await.map_err(io_err)?;
                    self.stats.handshakes_ok.fetch_add(1, Ordering::Relaxed);
                    return Ok((s, *session));
                }
                _ => {
                    return Err(fcp(
                        ErrorCode::SessionUnexpectedMessage,
                        "unknown responder output",
                    ));
                }
            }
        }
        Err(fcp(
            ErrorCode::SessionUnexpectedMessage,
            "too many handshake rounds",
        ))
    }

    async fn dial(self: Arc<Self>, peer_id: String, addr: SocketAddr) -> Result<(), FcpError> {
        let (s, session) =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, self.dial_handshake(&peer_id, addr))
                .await
                .map_err(|_| fcp(ErrorCode::LocalIo, "handshake timeout"))??;
        let me = self.node_id().to_owned();
        self.attach(s, session, peer_id, me).await
    }

    /// The initiator's side of the handshake, up to the session.
    async fn dial_handshake(
        &self,
        peer_id: &str,
        addr: SocketAddr,
    ) -> Result<(Box<dyn Stream>, fcp_wire::session::Session), FcpError> {
        let mut s = tokio::time::timeout(Duration::from_secs(2), self.net.connect(addr))
            .await
            .map_err(|_| fcp(ErrorCode::LocalIo, "connect timeout"))?
            .map_err(io_err)?;
        write_msg(&mut s, TAG_INTRO, &self.announcement.to_cbor().map_err(fe)?)
            .await
            .map_err(io_err)?;
        let start = InitiatorStart::new(
            self.identity.clone(),
            peer_id.to_owned(),
            InitiatorConfig::default(),
        )
        .map_err(fe)?;
        let (hello, mut wait) = start
            .start(self.net.now_secs(), &mut rand::rng())
            .map_err(fe)?;
        write_msg(&mut s, TAG_HELLO, &hello).await.map_err(io_err)?;
        let ann = read_announcement(&mut s).await?;
        if ann.attestation.node_id != peer_id {
            return Err(fcp(
                ErrorCode::SessionWrongPeer,
                "the peer announced another node id",
            ));
        }
        let _ = self.accept_announcement(&ann)?;
        let mut counters = SessionCounters::default();
        loop {
            let (tag, msg) = read_msg(&mut s).await?;
            match tag {
                TAG_RETRY => {
                    let (hello, w) = wait
                        .on_retry(&msg, &mut counters)
                        .map_err(|r| fe(r.error))?;
                    wait = w;
                    write_msg(&mut s, TAG_HELLO, &hello).await.map_err(io_err)?;
                }
                TAG_ACK => {
                    let session = {
                        let trust = self
                            .trust
                            .read()
                            .map_err(|_| fcp(ErrorCode::Internal, "trust lock"))?;
                        wait.on_ack(&msg, self.net.now_secs(), &*trust, &mut counters)
                            .map_err(|r| fe(r.error))?
                    };
                    self.stats.handshakes_ok.fetch_add(1, Ordering::Relaxed);
                    return Ok((s, session));
                }
                _ => {
                    return Err(fcp(
                        ErrorCode::SessionUnexpectedMessage,
                        "unexpected handshake message",
                    ));
                }
            }
        }
    }

    async fn dial_loop(self: Arc<Self>) {
        let mut dialing: HashSet<String> = HashSet::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        loop {
            while let Ok(id) = done_rx.try_recv() {
                dialing.remove(&id);
            }
            for (id, addr) in self.known_peers() {
                let connected = lock(&self.peers).contains_key(&id);
                if connected || dialing.contains(&id) || id == self.node_id() {
                    continue;
                }
                let Ok(addr) = addr.parse::<SocketAddr>() else {
                    continue;
                };
                dialing.insert(id.clone());
                let me = self.clone();
                let tx = done_tx.clone();
                tokio::spawn(async move {
                    let _ = me.dial(id.clone(), addr).await;
                    let _ = tx.send(id);
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// A session is up: register the peer, run the FCPC reader and writer.
    async fn attach(
        self: Arc<Self>,
        stream: Box<dyn Stream>,
        session: fcp_wire::session::Session,
        peer_id: String,
        initiator: String,
    ) -> Result<(), FcpError> {
        let addr = self
            .peer_addr(&peer_id)
            .ok_or_else(|| fcp(ErrorCode::SessionUnknownNode, "no address for peer"))?;
        let (mut tx_fcpc, mut rx_fcpc) = session.fcpc(DEFAULT_MAX_FCPC_FRAME).map_err(fe)?;
        let sid = *session.session_id();
        let (ctl, mut ctl_rx) = ControlQueue::new(MAX_CTL_QUEUE);
        let peer = Arc::new(Peer {
            node_id: peer_id.clone(),
            addr,
            initiator: initiator.clone(),
            sessions: Mutex::new(PeerSessions::new(session, 30)),
            ctl,
            rate: Mutex::new(Aimd::new(tokio::time::Instant::now())),
            pace: Mutex::new(Pacer::new()),
            pushes: Windowed::default(),
            path: Mutex::new(PathIn::default()),
            serves: Windowed::default(),
            served: Mutex::new(ServeReports::default()),
            reports: Mutex::new(Vec::new()),
            connected_at: self.net.now_secs(),
            last_rx_ms: AtomicU64::new(self.now_ms()),
            handled: Mutex::new(Handled::default()),
            tail_wanted: AtomicU64::new(u64::MAX),
            tail_in: Notify::new(),
            tx: tokio::sync::Mutex::new(()),
        });
        {
            // Both sides may dial at once: keep the connection whose initiator
            // has the smaller node id, on both sides alike.
            let mut peers = lock(&self.peers);
            if let Some(old) = peers.get(&peer_id)
                && !old.ctl.is_closed()
                && old.initiator <= initiator
            {
                return Ok(());
            }
            // The responder picks the session id (decision 40), and session
            // ids travel in clear: a peer answering with the id of another
            // live session would take that session's datagrams. Refused
            // before anything is registered.
            let mut by_session = lock(&self.by_session);
            if by_session.contains_key(&sid) {
                self.stats
                    .sessions_refused_id_in_use
                    .fetch_add(1, Ordering::Relaxed);
                return Err(fcp(
                    ErrorCode::SessionUnexpectedMessage,
                    format!("{peer_id} chose a session id already in use"),
                ));
            }
            peers.insert(peer_id.clone(), peer.clone());
            by_session.insert(sid, peer.clone());
        }
        eprintln!("{}: session with {peer_id} established", self.node_id());
        // Gossip: tell the new peer whom we know.
        let anns = self.known_announcements();
        peer.send(Control::Peers {
            announcements: anns,
        });
        let (mut rd, mut wr) = stream.into_split();
        // Messages queued while the last write was in flight go out together:
        // one system call and one TCP segment for a burst (a get asks every
        // peer per chunk, dozens of chunks at a time), not one each.
        let queued = peer.ctl.queued.clone();
        // Ends only when the session cannot go on: it says why.
        let mut writer = tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some(c) = ctl_rx.recv().await {
                // Let the tasks that are ready run first: what they queue
                // joins this write.
                tokio::task::yield_now().await;
                let mut next = Some(c);
                while let Some(c) = next {
                    queued.fetch_sub(c.approx_len(), Ordering::Relaxed);
                    let frame = match tx_fcpc.seal_value(&c) {
                        Ok(f) => f,
                        Err(e) => return format!("a {} message did not seal: {e}", c.kind()),
                    };
                    out.extend_from_slice(&frame);
                    next = if out.len() < CTL_BURST {
                        ctl_rx.try_recv().ok()
                    } else {
                        None
                    };
                }
                if let Err(e) = wr.write_all(&out).await {
                    return format!("sending failed: {e}");
                }
                out.clear();
            }
            "nothing more to send".to_owned()
        });
        let mut buf = vec![0u8; 64 * 1024];
        // Keepalive (decision 59): any inbound FCPC bytes show the peer is
        // alive. After KEEPALIVE_IDLE of silence a Ping asks for a Pong;
        // after SESSION_IDLE_TIMEOUT the session is closed (a partition or a
        // host gone without a FIN is otherwise noticed by TCP only after
        // minutes). Times are tokio's, which a simulation controls.
        let mut last_rx = tokio::time::Instant::now();
        let mut next_ping = last_rx + KEEPALIVE_IDLE;
        let mut next_sweep = last_rx + PUSH_SWEEP;
        let mut nonce = 0u64;
        let mut unknown_logged = false;
        'read: loop {
            let dead_at = last_rx + SESSION_IDLE_TIMEOUT;
            let wake = next_ping.min(next_sweep).min(dead_at);
            // Reading is cancel-safe: a timeout loses no bytes.
            let read = tokio::select! {
                r = tokio::time::timeout_at(wake, rd.read(&mut buf)) => r,
                why = &mut writer => {
                    let why = why.unwrap_or_else(|e| e.to_string());
                    eprintln!("{}: control stream to {peer_id}: {why}; closing the session", self.node_id());
                    break;
                }
                () = peer.ctl.overflow.notified() => {
                    self.stats.control_queue_overflows.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "{}: {peer_id} does not read its control messages ({} MiB waiting); closing the session",
                        self.node_id(),
                        MAX_CTL_QUEUE >> 20
                    );
                    break;
                }
            };
            let now = tokio::time::Instant::now();
            if now >= next_sweep {
                self.expire_pushes(&peer_id);
                next_sweep = now + PUSH_SWEEP;
            }
            let n = match read {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => n,
                Err(_) if now >= dead_at => {
                    self.stats
                        .keepalive_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "{}: nothing from {peer_id} for {}s, closing the session",
                        self.node_id(),
                        SESSION_IDLE_TIMEOUT.as_secs()
                    );
                    break;
                }
                Err(_) => {
                    if now >= next_ping {
                        nonce = nonce.wrapping_add(1);
                        peer.send(Control::Ping { nonce });
                        self.stats.pings_sent.fetch_add(1, Ordering::Relaxed);
                        next_ping = now + KEEPALIVE_IDLE;
                    }
                    continue;
                }
            };
            last_rx = now;
            next_ping = now + KEEPALIVE_IDLE;
            peer.last_rx_ms.store(self.now_ms(), Ordering::Relaxed);
            let mut input = buf.get(..n).unwrap_or_default();
            while !input.is_empty() {
                match rx_fcpc.read(&mut input) {
                    Ok(FcpcRead::NeedMore) => break,
                    Ok(FcpcRead::Message(cbor)) => match crate::proto::decode(&cbor) {
                        Ok(Decoded::Known(c)) => self.clone().on_control(&peer, c),
                        Ok(Decoded::Unknown(kind)) => {
                            // A newer peer's message: skip it, keep the session.
                            self.stats.control_unknown.fetch_add(1, Ordering::Relaxed);
                            if !unknown_logged {
                                unknown_logged = true;
                                eprintln!(
                                    "{}: skipping control messages of unknown type {kind:?} from {peer_id}",
                                    self.node_id()
                                );
                            }
                        }
                        Err(why) => {
                            eprintln!("{}: {why} from {peer_id}", self.node_id());
                            break 'read;
                        }
                    },
                    Err(e) => {
                        eprintln!("{}: FCPC from {peer_id}: {e}", self.node_id());
                        break 'read;
                    }
                }
            }
        }
        writer.abort();
        // Drop its half-received pushes and give back its in-flight slots,
        // unless a newer session with the peer already took over: those are
        // its state now (what this session left behind expires). Under the
        // peers lock, so that no newer session registers, and opens pushes,
        // between that decision and the sweep.
        {
            let mut peers = lock(&self.peers);
            if peers.get(&peer_id).is_some_and(|p| Arc::ptr_eq(p, &peer)) {
                peers.remove(&peer_id);
            }
            {
                let mut by_session = lock(&self.by_session);
                if by_session.get(&sid).is_some_and(|p| Arc::ptr_eq(p, &peer)) {
                    by_session.remove(&sid);
                }
            }
            if !peers.contains_key(&peer_id) {
                self.end_pushes(
                    &mut lock(&self.incoming),
                    &peer_id,
                    |_| true,
                    || "the session closed before the push was complete".to_owned(),
                );
                // Its slots go, but not its window: a reconnect must not
                // reset its budgets (spec §8.4).
                lock(&self.admission).release_peer(&peer_id);
            }
        }
        eprintln!("{}: session with {peer_id} closed", self.node_id());
        Ok(())
    }

    /// Drop the pushes of `peer_id` not finished `PUSH_EXPIRY_MS` after they
    /// opened or last ended a round (StoreEnd), giving their StoreRequest
    /// slots back (spec §8.4, decisions 51, 56 and 67). Runs from the
    /// peer's session every `PUSH_SWEEP`.
    fn expire_pushes(&self, peer_id: &str) {
        self.expire_pushes_in(&mut lock(&self.incoming), peer_id);
    }

    /// [`Self::expire_pushes`] on the already locked table of open pushes.
    fn expire_pushes_in(&self, inc: &mut HashMap<PeerObject, Incoming>, peer_id: &str) {
        let now = self.now_ms();
        self.end_pushes(
            inc,
            peer_id,
            |e| now.saturating_sub(e.opened_ms) > PUSH_EXPIRY_MS,
            || "the push expired before it was complete".to_owned(),
        );
    }

    /// End the open pushes of `peer_id` that `which` selects, unfinished:
    /// their slots go back, and each is recorded as not stored, for `why`,
    /// as FCP-6001 (the node ended it; the pusher may push again, and only
    /// a refused StoreRequest is asked again at once).
    fn end_pushes(
        &self,
        inc: &mut HashMap<PeerObject, Incoming>,
        peer_id: &str,
        which: impl Fn(&Incoming) -> bool,
        why: impl Fn() -> String,
    ) {
        let ended: Vec<PeerObject> = inc
            .iter()
            .filter(|((from, _), e)| from == peer_id && which(e))
            .map(|(k, _)| k.clone())
            .collect();
        for k in ended {
            self.end_push(inc, k, &fcp(ErrorCode::ResourceLimit, why()));
        }
    }

    /// End the open push `key`, unfinished: its slot goes back, and it is
    /// recorded as not stored, for `why`.
    fn end_push(&self, inc: &mut HashMap<PeerObject, Incoming>, key: PeerObject, why: &FcpError) {
        if let Some(e) = inc.remove(&key) {
            self.not_stored(key, e.push, why);
            self.close_push(Some(e));
        }
    }

    /// Our own announcement and every node-signed one we relay.
    fn known_announcements(&self) -> Vec<PeerAnnouncement> {
        let mut v = vec![self.announcement.clone()];
        if let Ok(t) = self.trust.read() {
            v.extend(t.announcements.values().cloned());
        }
        v
    }

    fn on_control(self: Arc<Self>, peer: &Arc<Peer>, c: Control) {
        match c {
            Control::Peers { announcements } => {
                let mut news = Vec::new();
                for a in &announcements {
                    match self.accept_announcement(a) {
                        Ok(true) => news.push(a.clone()),
                        Ok(false) => {}
                        Err(e) => eprintln!(
                            "{}: announcement from {} rejected: {e}",
                            self.node_id(),
                            peer.node_id
                        ),
                    }
                }
                // Push what was news to everyone else; only newer
                // announcements travel, so the flood stops.
                if !news.is_empty() {
                    for p in self.connected_peers() {
                        if p.node_id != peer.node_id {
                            p.send(Control::Peers {
                                announcements: news.clone(),
                            });
                        }
                    }
                }
            }
            Control::StoreRequest {
                object_id,
                meta,
                source,
                esis,
                push,
            } => {
                if meta.k == 0 || !(256..=16384).contains(&meta.symbol_size) {
                    let why = fcp(ErrorCode::SymbolInvalid, "k or symbol size out of range");
                    peer.send(refusal(object_id, push, &why));
                    return;
                }
                let now = self.now_ms();
                let answer = {
                    let mut inc = lock(&self.incoming);
                    let key = (peer.node_id.clone(), object_id);
                    // One entry serves one push: the same push announcing
                    // more joins it; another push of the object (its pusher
                    // gave up on the earlier one) replaces it, keeping its
                    // slot, and starts with nothing arrived.
                    let slot = match inc.get_mut(&key) {
                        Some(e) if e.push == push => {
                            e.heard_ms = now;
                            Ok(None)
                        }
                        Some(e) => {
                            // The older push is over: a StoreEnd of it is
                            // refused, and one waiting for its stragglers
                            // stops waiting.
                            self.not_stored(key.clone(), e.push, &replaced_push());
                            e.complete.notify_waiters();
                            Ok(Some(e.permit.take()))
                        }
                        None => {
                            // A push its sender abandoned (it gave up or
                            // lost track) must not hold a slot for ever.
                            self.expire_pushes_in(&mut inc, &peer.node_id);
                            // One slot per open push (spec §8.4).
                            let begin = || {
                                lock(&self.admission).begin(
                                    now,
                                    &peer.node_id,
                                    InflightKind::StoreRequest,
                                )
                            };
                            let mut slot = begin();
                            if slot.as_ref().is_err_and(|r| {
                                r.reason == RejectReason::Inflight(InflightKind::StoreRequest)
                            }) {
                                // Every slot is taken: the pushes of this
                                // peer gone idle were abandoned (a put that
                                // failed); they make room.
                                self.end_pushes(
                                    &mut inc,
                                    &peer.node_id,
                                    |e| now.saturating_sub(e.heard_ms) > PUSH_IDLE_MS,
                                    || "the push went idle and its slot was needed".to_owned(),
                                );
                                slot = begin();
                            }
                            slot.map(|p| Some(Some(p))).map_err(|e| e.to_fcp_error())
                        }
                    };
                    slot.map(|slot| {
                        if let Some(permit) = slot {
                            inc.insert(
                                key.clone(),
                                Incoming {
                                    meta: ZoneMeta::new(meta),
                                    source,
                                    esis: PushEsis::default(),
                                    pending: Vec::new(),
                                    block: BytesMut::new(),
                                    complete: Arc::new(Notify::new()),
                                    permit,
                                    opened_ms: now,
                                    heard_ms: now,
                                    ends: 0,
                                    left_at_end: None,
                                    push,
                                },
                            );
                        }
                        // A repeated StoreRequest does not put off the
                        // push's expiry: only a StoreEnd, which commits what
                        // arrived, does. Otherwise a peer could hold symbols
                        // it never finishes in memory for ever.
                        let announced = inc.get_mut(&key).map(|e| {
                            e.esis
                                .announce(esis.into_vec())
                                .map(|()| EsiList::new(e.esis.missing()))
                        });
                        if let Some(Err(why)) = &announced {
                            self.end_push(&mut inc, key, why);
                        }
                        announced.transpose()
                    })
                    .and_then(|missing| missing)
                };
                match answer {
                    // Ready: datagrams sent after this reply are admitted.
                    Ok(Some(missing)) => peer.send(Control::StoreAck {
                        object_id,
                        missing,
                        push,
                    }),
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!(
                            "{}: store request from {} refused: {e}",
                            self.node_id(),
                            peer.node_id,
                        );
                        peer.send(refusal(object_id, push, &e));
                    }
                }
            }
            Control::StoreEnd {
                object_id,
                push,
                last_seq,
            } => {
                let me = self.clone();
                let peer = peer.clone();
                tokio::spawn(async move { me.finish_store(peer, object_id, push, last_seq).await });
            }
            Control::StoreAck {
                object_id,
                missing,
                push,
            } => self.answer_push(peer, object_id, push, Ok(missing.into_vec())),
            Control::StoreRefused {
                object_id,
                push,
                code,
                message,
            } => {
                let code = ErrorCode::from_code(&code).unwrap_or(ErrorCode::Internal);
                // The peer's words, without control characters.
                let message: String = message
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect();
                let why = fcp(
                    code,
                    format!(
                        "{} did not store the symbols of {object_id}: {message}",
                        peer.node_id
                    ),
                );
                self.answer_push(peer, object_id, push, Err(why));
            }
            Control::SymbolRequest {
                object_id,
                have,
                want,
                parts,
                part,
                sources_only,
            } => {
                let permit = match lock(&self.admission).begin(
                    self.now_ms(),
                    &peer.node_id,
                    InflightKind::SymbolRequest,
                ) {
                    Ok(p) => p,
                    Err(_) => {
                        // Over its concurrent-request budget: an empty offer.
                        peer.send_empty_offer(object_id);
                        return;
                    }
                };
                let me = self.clone();
                let peer = peer.clone();
                let ask = Ask {
                    have: have.into_vec(),
                    want,
                    parts,
                    part,
                    sources_only,
                };
                // Registered before the serve starts, so an ack that follows
                // the request at once still stops it, and stops an older
                // serve of the same object too.
                let key = (peer.node_id.clone(), object_id);
                let stop = Arc::new(Stop::default());
                lock(&self.serving)
                    .entry(key.clone())
                    .or_default()
                    .push(stop.clone());
                tokio::spawn(async move {
                    let unreported = me.serve(&peer, object_id, ask, &stop).await;
                    lock(&me.admission).finish(me.now_ms(), permit, 0);
                    {
                        let mut serving = lock(&me.serving);
                        if let Some(stops) = serving.get_mut(&key) {
                            stops.retain(|s| !Arc::ptr_eq(s, &stop));
                            if stops.is_empty() {
                                serving.remove(&key);
                            }
                        }
                    }
                    // Its datagrams stay in the serve window until the
                    // requester reports on them, or for a bounded wait: a
                    // get that rebuilt the object before the offer was all
                    // in does not report (decision 76).
                    if let Some((_in_flight, reported)) = unreported {
                        let wait = lock(&peer.serves.w).report_wait(QUIET + REPORT_DELAY * 2);
                        let _ = tokio::time::timeout(wait, reported).await;
                    }
                });
            }
            Control::SymbolOffer {
                object_id,
                meta,
                sources,
                count,
            } => {
                let g = lock(&self.gets).get(&object_id).cloned();
                if let Some(g) = g.filter(|g| {
                    // An offer nobody asked for adds nothing to a get.
                    let asked = lock(&g.asked).contains(&peer.node_id);
                    if !asked {
                        self.stats.offers_unasked.fetch_add(1, Ordering::Relaxed);
                    }
                    asked
                }) {
                    let complete = {
                        let mut by_peer = lock(&g.by_peer);
                        let o = by_peer.entry(peer.node_id.clone()).or_default();
                        o.offered += u64::from(count);
                        // Its datagrams may all have come before it.
                        o.complete()
                    };
                    if let Some(c) = complete {
                        offer_complete(&g, peer, c);
                    }
                    if count == 0 {
                        offer_ended(&g, &peer.node_id);
                    }
                    if let Some(m) = meta {
                        lock(&g.offered_meta)
                            .entry(peer.node_id.clone())
                            .or_insert_with(|| Arc::new(ZoneMeta::new(m)));
                    }
                    {
                        let mut s = lock(&g.sources);
                        let of_peer = s.entry(peer.node_id.clone()).or_default();
                        for src in sources {
                            if of_peer.len() < MAX_OFFERED_SOURCES
                                || of_peer.contains_key(&src.instance)
                            {
                                of_peer.insert(src.instance, src.node_id);
                            }
                        }
                    }
                    let early = lock(&g.early).remove(&peer.node_id).unwrap_or_default();
                    if !early.is_empty() {
                        // Handled now, together: their times say nothing
                        // of the path's pace.
                        lock(&g.by_peer)
                            .entry(peer.node_id.clone())
                            .or_default()
                            .held = true;
                    }
                    for f in &early {
                        if self.on_get_frame(&g, peer, f).is_err() {
                            self.stats.frames_rejected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Control::OfferEnd {
                object_id,
                last_seq,
            } => {
                let g = lock(&self.gets).get(&object_id).cloned();
                if let Some(g) = g.filter(|g| lock(&g.asked).contains(&peer.node_id)) {
                    if let Some(s) = last_seq {
                        let mut by_peer = lock(&g.by_peer);
                        let o = by_peer.entry(peer.node_id.clone()).or_default();
                        o.tail = o.tail.max(Some(s));
                    }
                    offer_ended(&g, &peer.node_id);
                }
            }
            Control::OfferReceived { arrived } => {
                let now = tokio::time::Instant::now();
                let least = {
                    let mut served = lock(&peer.served);
                    let mut rate = lock(&peer.rate);
                    arrived
                        .iter()
                        .filter_map(|a| served.report(a.object_id, a.count, &mut rate, now))
                        .min()
                };
                if let Some(rtt) = least {
                    peer.serves.answered(rtt, now);
                }
            }
            Control::SymbolAck { object_id } => {
                if let Some(stops) = lock(&self.serving).get(&(peer.node_id.clone(), object_id)) {
                    stops.iter().for_each(|s| s.raise());
                }
            }
            // Keepalive (decision 59): the Pong's arrival is what counts.
            Control::Ping { nonce } => peer.send(Control::Pong { nonce }),
            Control::Pong { .. } => {}
        }
    }

    /// Hand a holder's answer (StoreAck or StoreRefused) to the push of
    /// `object_id` waiting for it, if that push has number `push`; an
    /// answer to an earlier push of the object (one that gave up waiting)
    /// is not this push's answer.
    fn answer_push(
        &self,
        peer: &Peer,
        object_id: ObjectId,
        push: u64,
        answer: Result<Vec<u32>, FcpError>,
    ) {
        let mut waiters = lock(&self.store_waiters);
        let key = (peer.node_id.clone(), object_id);
        match waiters.get(&key) {
            Some((waiting, _)) if *waiting == push => {
                if let Some((_, tx)) = waiters.remove(&key) {
                    let _ = tx.send(answer);
                }
            }
            _ => {
                self.stats
                    .store_answers_stale
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Make the symbols a peer pushed durable, then tell it what is missing
    /// (StoreAck), or that they were not stored (StoreRefused).
    async fn finish_store(
        self: Arc<Self>,
        peer: Arc<Peer>,
        object_id: ObjectId,
        push: u64,
        last_seq: Option<u64>,
    ) {
        let key = (peer.node_id.clone(), object_id);
        // StoreEnd travels on TCP and may overtake the last datagrams on UDP:
        // give stragglers a moment, from its arrival, before reporting them
        // missing (a StoreEnd that waited for another's turn has used its
        // moment, so repeated StoreEnds cannot queue up behind the wait).
        // With the round's last datagram named (decision 75), the moment
        // ends once it or a later datagram of the peer's was handled: on
        // one path, in order, what was sent before it is in or lost.
        // Otherwise it ends once the receive loop found the socket empty
        // since the StoreEnd came (or waits on it empty), so that what had
        // arrived is handled, and then `REORDER` passed with no datagram of
        // the peer's (named: the last one may queue behind other pushes';
        // none came, so it was lost and nothing followed it) or, from an
        // older pusher, of this push's (decisions 72 and 74).
        // So the pusher hears of a loss in time to slow down (decision 74).
        let until = tokio::time::Instant::now() + last_seq.map_or(STRAGGLERS, |_| TAIL_WAIT);
        let since = self.rx_mark();
        let _turn = Turn::take(&self.finish_turns, key.clone()).await;
        let ours = |e: &Incoming| e.push == push;
        // From when `REORDER` counts: the socket found empty, then the last
        // datagram heard.
        let mut quiet_from = None;
        loop {
            let wake = {
                let inc = lock(&self.incoming);
                match inc.get(&key) {
                    Some(e) if ours(e) && !e.esis.complete() => e.complete.clone(),
                    _ => break,
                }
            };
            // Made before what they wake for is read: a notification
            // between the two is not lost.
            let notified = wake.notified();
            let drained = self.rx_drained_wake.notified();
            let tail = peer.tail_in.notified();
            if let Some(s) = last_seq {
                peer.tail_wanted.fetch_min(s, Ordering::SeqCst);
            }
            let complete = lock(&self.incoming)
                .get(&key)
                .is_none_or(|e| !ours(e) || e.esis.complete());
            if complete || last_seq.is_some_and(|s| peer.handled_since(s)) {
                break;
            }
            if quiet_from.is_none() && self.rx_emptied_since(since) {
                quiet_from = Some(tokio::time::Instant::now());
            }
            let end = quiet_from.map_or(until, |t| (t + REORDER).min(until));
            tokio::select! {
                () = notified => {}
                () = tail, if last_seq.is_some() => {}
                () = drained, if quiet_from.is_none() => {}
                () = tokio::time::sleep_until(end) => {
                    // Datagrams still coming in (over a slow link whose
                    // queue the StoreEnd overtook): wait on, until `REORDER`
                    // passes with none of the peer's (named: the last one
                    // may queue behind other pushes') or of this push's.
                    let heard = if last_seq.is_some() {
                        Some(lock(&peer.handled).at_ms)
                    } else {
                        lock(&self.incoming).get(&key).filter(|e| ours(e)).map(|e| e.heard_ms)
                    };
                    let quiet = heard.map_or(u64::MAX, |h| self.now_ms().saturating_sub(h));
                    let now = tokio::time::Instant::now();
                    if now >= until || quiet >= REORDER.as_millis() as u64 {
                        break;
                    }
                    let last = now.checked_sub(Duration::from_millis(quiet)).unwrap_or(now);
                    quiet_from = Some(last);
                }
            }
        }
        let (records, meta, missing) = {
            let mut inc = lock(&self.incoming);
            let Some(e) = inc.get_mut(&key).filter(|e| ours(e)) else {
                // This push is over: not stored (say so again), replaced by
                // a newer push of the object, or stored.
                let replaced = inc.contains_key(&key);
                drop(inc);
                match self.was_not_stored(&key, push) {
                    Some(e) => peer.send(refusal(object_id, push, &e)),
                    None if replaced => peer.send(refusal(object_id, push, &replaced_push())),
                    None => peer.send(Control::StoreAck {
                        object_id,
                        missing: EsiList::default(),
                        push,
                    }),
                }
                return;
            };
            let before = e.left_at_end.unwrap_or(e.esis.esis.len());
            e.left_at_end = Some(e.esis.left);
            if let Some(stall) = stall_eighths(before, e.esis.left) {
                e.ends = e.ends.saturating_add(stall);
            }
            if e.ends > MAX_STORE_ENDS * 8 {
                let why = fcp(
                    ErrorCode::ResourceLimit,
                    format!("a push may end at most {MAX_STORE_ENDS} stalled rounds"),
                );
                self.end_push(&mut inc, key, &why);
                drop(inc);
                peer.send(refusal(object_id, push, &why));
                return;
            }
            e.opened_ms = self.now_ms();
            e.heard_ms = e.opened_ms;
            let records = std::mem::take(&mut e.pending);
            // The records leave for the store: a push still open (symbols
            // missing) puts the rest in a new block, so the stored ones'
            // block can go when they do.
            e.block = BytesMut::new();
            let missing = e.esis.missing();
            let meta = e.meta.meta.clone();
            if missing.is_empty() {
                self.close_push(inc.remove(&key));
            }
            (records, meta, missing)
        };
        if !records.is_empty() {
            let om = ObjectMeta {
                zone_id: meta.zone_id.clone(),
                k: meta.k,
                symbol_size: meta.symbol_size,
                retention: RetentionClass::Pinned,
                created_at: meta.created_at,
                refs: Vec::new(),
                size_hint: 0,
            };
            let n = records.len() as u64;
            let (done, wait) = oneshot::channel();
            let _ = self.store_jobs.send(StoreJob {
                id: object_id,
                meta: om,
                records,
                done,
            });
            let failed = match wait.await {
                Ok(Ok(())) => {
                    self.stats.symbols_stored.fetch_add(n, Ordering::Relaxed);
                    None
                }
                Ok(Err(Stored::Refused(e))) => {
                    self.stats.stores_refused.fetch_add(1, Ordering::Relaxed);
                    Some(e)
                }
                Ok(Err(Stored::Failed(e))) => Some(e),
                Err(_) => Some(fcp(ErrorCode::Internal, "store writer gone")),
            };
            if let Some(e) = failed {
                eprintln!(
                    "{}: storing symbols of {object_id} from {}: {e}",
                    self.node_id(),
                    peer.node_id
                );
                // The push is over, unless a newer push of the object has
                // taken its entry since.
                {
                    let mut inc = lock(&self.incoming);
                    if inc.get(&key).is_some_and(ours) {
                        self.close_push(inc.remove(&key));
                    }
                }
                self.not_stored(key, push, &e);
                peer.send(refusal(object_id, push, &e));
                return;
            }
        }
        peer.send(Control::StoreAck {
            object_id,
            missing: EsiList::new(missing),
            push,
        });
    }

    /// How many times the receive loop has found its socket empty so far,
    /// to pass to [`Node::rx_emptied_since`] later.
    fn rx_mark(&self) -> u64 {
        self.rx_drained.load(Ordering::Relaxed)
    }

    /// Whether the receive loop found its socket empty since `mark` was
    /// taken, or waits on it empty now: every datagram that reached the
    /// socket before then has been handled (decisions 72 and 74).
    fn rx_emptied_since(&self, mark: u64) -> bool {
        self.rx_drained.load(Ordering::Relaxed) > mark || self.rx_idle.load(Ordering::Relaxed)
    }

    /// Receive datagrams; with UDP GRO one read returns a run of
    /// equal-sized datagrams (`stride`) that are split again here.
    async fn udp_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; 1 << 17];
        loop {
            let got = {
                // A receive not ready for want of the task's tokio budget
                // says nothing of the socket, and one without budget may
                // find it empty unseen (tokio checks readiness first): with
                // the budget spent, give the turn up first, so that a
                // receive not ready always found the socket empty.
                if !tokio::task::coop::has_budget_remaining() {
                    tokio::task::yield_now().await;
                }
                let mut recv = self.udp.recv(&mut buf);
                match std::future::poll_fn(|cx| Poll::Ready(recv.as_mut().poll(cx))).await {
                    Poll::Ready(r) => r,
                    Poll::Pending => {
                        self.rx_drained.fetch_add(1, Ordering::Relaxed);
                        self.rx_idle.store(true, Ordering::Relaxed);
                        self.rx_drained_wake.notify_waiters();
                        let r = recv.await;
                        self.rx_idle.store(false, Ordering::Relaxed);
                        r
                    }
                }
            };
            let Ok(got) = got else {
                continue;
            };
            // One copy per receive (up to 64 datagrams), each frame a slice
            // of it. What outlives the receive copies its own bytes (pushed
            // symbols into their push's block, a get's early frames). Reusing
            // the buffer instead of copying it measured no faster.
            let data = Bytes::copy_from_slice(buf.get(..got.len).unwrap_or_default());
            let now = (self.now_ms(), self.net.now_secs());
            let stride = got.stride.max(1);
            for at in (0..data.len()).step_by(stride) {
                self.on_datagram(&data.slice(at..data.len().min(at + stride)), now);
            }
        }
    }

    /// One datagram: budget, session MAC and replay window, then the frame.
    /// `now` is (ms, s) when it was received.
    fn on_datagram(&self, d: &Bytes, (now_ms, now_secs): (u64, u64)) {
        self.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
        if self.opts.drop_permille > 0 && rand::random::<u16>() % 1000 < self.opts.drop_permille {
            self.stats
                .datagrams_dropped_fault
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(sid) = fcp_wire::session::transport::datagram_session_id(d) else {
            self.stats
                .datagrams_rejected_session
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(peer) = lock(&self.by_session).get(&sid).cloned() else {
            self.stats
                .datagrams_rejected_session
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        // A peer over its failed-auth budget, or refused a whole byte or
        // symbol budget's worth of unsolicited traffic on top of the one it
        // spent, is refused before any work (spec §8.4, decisions 56, 67).
        if lock(&self.admission)
            .admit_inbound(now_ms, &peer.node_id, 0, 0)
            .is_err()
        {
            self.stats
                .datagrams_rejected_budget
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Session MAC and replay window first; nothing else touches the bytes before.
        let frame = {
            let mut s = lock(&peer.sessions);
            match s.open_datagram(d, now_secs) {
                Ok(f) => d.slice_ref(f),
                Err(e) => {
                    drop(s);
                    // Only a failed MAC is failed authentication (spec §8.4).
                    // Replayed or out-of-window datagrams are dropped and
                    // counted (profile §4.4) but never charged to the peer:
                    // anyone on the path can replay its datagrams, and
                    // charging them would let a third party lock it out.
                    if matches!(e, fcp_wire::session::SessionError::BadMac) {
                        let _ = lock(&self.admission).record_failed_auth(now_ms, &peer.node_id);
                    }
                    self.stats
                        .datagrams_rejected_session
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        };
        if self.on_frame(&peer, frame, now_ms).is_err() {
            self.stats.frames_rejected.fetch_add(1, Ordering::Relaxed);
        }
        // After the frame: a holder that reads this has seen what it carried.
        if let Some(seq) = d.get(16..24).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            peer.handled(sid, u64::from_le_bytes(seq), now_ms);
        }
    }

    /// A frame `peer` sent, received at `now_ms`.
    fn on_frame(&self, peer: &Arc<Peer>, bytes: Bytes, now_ms: u64) -> Result<(), FcpError> {
        let frame = Frame::decode(bytes).map_err(fe)?;
        let h = *frame.header();
        let oid = ObjectId::from_bytes(h.object_id);
        // Only the peers a get asked feed it (anyone else's frames are
        // unsolicited below).
        let get = lock(&self.gets).get(&oid).cloned();
        if let Some(g) = get.filter(|g| lock(&g.asked).contains(&peer.node_id)) {
            return self.on_get_frame(&g, peer, &frame);
        }
        let mut inc = lock(&self.incoming);
        let Some(e) = inc.get_mut(&(peer.node_id.clone(), oid)) else {
            // Unsolicited: charged to the peer's budget (spec §8.4), never
            // decrypted or stored.
            let over = lock(&self.admission)
                .admit_inbound(
                    now_ms,
                    &peer.node_id,
                    frame.as_bytes().len() as u64,
                    frame.symbol_count(),
                )
                .is_err();
            let c = if over {
                &self.stats.datagrams_rejected_budget
            } else {
                &self.stats.frames_unsolicited
            };
            c.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        if h.zone_id_hash != e.meta.zone_hash
            || h.symbol_size != e.meta.symbol_size
            || h.sender_instance_id != e.source.instance
        {
            return Err(fcp(
                ErrorCode::SymbolInvalid,
                "frame does not match the store request",
            ));
        }
        e.heard_ms = now_ms;
        for r in frame.records() {
            if r.k != e.meta.k || !e.esis.accept(r.esi) {
                continue;
            }
            let len = r.ciphertext.len();
            if e.block.capacity() - e.block.len() < len {
                // Room for the rest of the push (this symbol included), at
                // most a block. A peer that announces many symbols and sends
                // few makes this node hold up to a block per open push
                // (128 × 64 KiB per peer, until the push expires); one
                // allocation per push instead of growing blocks measured
                // 5–7% faster on the mesh bench.
                let rest = e.esis.left.saturating_add(1).saturating_mul(len);
                e.block = BytesMut::with_capacity(rest.min(PUSH_BLOCK).max(len));
            }
            e.block.extend_from_slice(r.ciphertext);
            let ciphertext = e.block.split().freeze();
            e.pending.push(symbol_record(
                &frame,
                &r,
                ciphertext,
                &e.source.node_id,
                &peer.node_id,
            ));
        }
        if e.esis.complete() {
            e.complete.notify_waiters();
        }
        Ok(())
    }

    fn opener(
        &self,
        zone: &ZoneId,
        source: &str,
        instance: u64,
    ) -> Result<Arc<SymbolKey>, FcpError> {
        let find = |keys: &Openers| {
            keys.get(&instance)?
                .iter()
                .find(|(z, s, _)| z == zone && s == source)
                .map(|(_, _, k)| k.clone())
        };
        if let Some(k) = find(&lock(&self.keys)) {
            return Ok(k);
        }
        let z = self.membership.zones.get(zone).ok_or_else(|| {
            fcp(
                ErrorCode::NotInZone,
                format!("this node holds no keys of {zone}"),
            )
        })?;
        let key = Arc::new(
            z.zone_key
                .symbol_key(z.algorithm, source, instance)
                .map_err(fe)?,
        );
        let mut keys = lock(&self.keys);
        if keys.len() >= 4096 {
            keys.clear();
        }
        if find(&keys).is_none() {
            let same_instance = keys.entry(instance).or_default();
            if same_instance.len() >= 64 {
                same_instance.clear();
            }
            same_instance.push((zone.clone(), source.to_owned(), key.clone()));
        }
        Ok(key)
    }

    /// A datagram of a get from `from`, a peer it asked.
    fn on_get_frame(&self, g: &GetState, peer: &Arc<Peer>, frame: &Frame) -> Result<(), FcpError> {
        let from = peer.node_id.as_str();
        let h = *frame.header();
        let meta = lock(&g.meta)
            .clone()
            .or_else(|| lock(&g.offered_meta).get(from).cloned());
        let source = lock(&g.sources)
            .get(from)
            .and_then(|s| s.get(&h.sender_instance_id))
            .cloned();
        let (Some(meta), Some(source)) = (meta, source) else {
            // The offer announcing these datagrams is still on its way (TCP);
            // keep a bounded number until it arrives.
            let mut early = lock(&g.early);
            let of_peer = early.entry(from.to_owned()).or_default();
            if of_peer.len() < MAX_EARLY_FRAMES {
                of_peer.push(frame.detached());
                return Ok(());
            }
            return Err(fcp(
                ErrorCode::SymbolInvalid,
                "frame from an unannounced sender instance",
            ));
        };
        let now = tokio::time::Instant::now();
        let (all_in, complete) = {
            let mut by_peer = lock(&g.by_peer);
            let o = by_peer.entry(from.to_owned()).or_default();
            o.arrived += 1;
            o.first.get_or_insert(now);
            o.last = Some(now);
            let complete = o.complete();
            (o.arrived == o.offered, complete)
        };
        g.frames_in.fetch_add(1, Ordering::Relaxed);
        if all_in {
            // All this peer offered in this round is in: the round may be
            // over (each peer's offer counts apart, see `fetch_content_once`).
            g.done.notify_waiters();
        }
        if let Some(c) = complete {
            offer_complete(g, peer, c);
        }
        self.open_for_get(g, &meta, &source, &h, || frame.records())
            .inspect_err(|e| {
                // The peer's session vouches for the frame: symbols that do
                // not open are its failed decrypts (spec §8.4).
                if e.code == ErrorCode::DecryptFailed.as_code() {
                    let _ =
                        lock(&self.admission).record_failed_auth(self.now_ms(), &from.to_owned());
                }
            })
    }

    /// Open the symbols `records()` yields, sealed under header `h`, into a
    /// get's decoder (received in a frame, or read from the local store).
    fn open_for_get<'r, I: Iterator<Item = RecordRef<'r>>>(
        &self,
        g: &GetState,
        zm: &Arc<ZoneMeta>,
        source: &str,
        h: &FrameHeader,
        records: impl Fn() -> I,
    ) -> Result<(), FcpError> {
        let ZoneMeta { meta, zone_hash } = &**zm;
        if h.zone_id_hash != *zone_hash {
            return Err(fcp(ErrorCode::SymbolInvalid, "frame of another zone"));
        }
        let key = self.opener(&meta.zone_id, source, h.sender_instance_id)?;
        // Lock order: the decoder, then `g.meta`; nothing else while the
        // decoder is held, and the decoder never while `g.meta` is.
        let mut dec = lock(&g.decoder);
        let first = dec.is_none();
        if !first
            && lock(&g.meta).as_ref().is_some_and(|m| {
                m.zone_hash != *zone_hash || m.k != meta.k || m.symbol_size != meta.symbol_size
            })
        {
            // Opened under a peer's offer that is not the object's.
            return Err(fcp(
                ErrorCode::SymbolInvalid,
                "frame under other metadata than the object's",
            ));
        }
        if first {
            // Solves only when asked: a missing source symbol is usually on
            // its way, and waiting for it costs far less (decision 60).
            *dec = Some(
                ObjectDecoder::new(meta.k, meta.symbol_size)
                    .map_err(fe)?
                    .deferring_solve(),
            );
        }
        let Some(d) = dec.as_mut() else { return Ok(()) };
        let opened = fcp_wire::envelope::open_records_into(h, records(), &key, d).map_err(fe);
        let progress = match opened {
            Ok(p) => p,
            Err(e) => {
                if first {
                    // Shaped by metadata nothing has vouched for yet.
                    *dec = None;
                }
                return Err(e);
            }
        };
        let content = if progress == Progress::Complete {
            Some(d.take().map_err(fe)?)
        } else {
            None
        };
        if first {
            // The metadata a symbol opened under is the object's from now
            // on, set before another frame can reach the decoder.
            lock(&g.meta).get_or_insert_with(|| zm.clone());
        }
        drop(dec);
        lock(&g.got).extend(records().map(|r| r.esi));
        if let Some(content) = content {
            lock(&g.result).get_or_insert(content);
            g.done.notify_waiters();
        }
        Ok(())
    }

    /// Run the RaptorQ solver of a get that has `k` symbols but not every
    /// source symbol (its decoder defers solving, decision 60).
    fn solve_get(&self, g: &GetState) {
        if lock(&g.result).is_some() {
            return;
        }
        let reserve = std::mem::take(&mut *lock(&g.reserve));
        // Not held while opening: a first open sets it.
        let meta = lock(&g.meta).clone();
        if let Some(meta) = meta {
            for r in &reserve {
                self.open_local(g, &meta, r);
            }
        }
        let content = lock(&g.decoder).as_mut().and_then(|d| {
            (d.solve() == Progress::Complete)
                .then(|| d.take().ok())
                .flatten()
        });
        if let Some(c) = content {
            self.stats.gets_solved.fetch_add(1, Ordering::Relaxed);
            lock(&g.result).get_or_insert(c);
        }
    }

    /// A get's local symbols: metadata and source symbols into the decoder;
    /// repair symbols only if a solve needs them (they count as held, so no
    /// peer sends them).
    fn load_local(&self, g: &GetState, oid: ObjectId) -> Result<(), fcp_store::StoreError> {
        let (Some(m), recs) = (self.store.meta(&oid)?, self.store.symbols(&oid)?) else {
            return Ok(());
        };
        let meta = Arc::new(ZoneMeta::new(Meta {
            zone_id: m.zone_id.clone(),
            k: m.k,
            symbol_size: m.symbol_size,
            created_at: m.created_at,
        }));
        *lock(&g.meta) = Some(meta.clone());
        let (sources, repair): (Vec<_>, Vec<_>) =
            recs.into_iter().partition(|r| r.esi < u32::from(m.k));
        for r in &sources {
            self.open_local(g, &meta, r);
        }
        lock(&g.got).extend(repair.iter().map(|r| r.esi));
        *lock(&g.reserve) = repair;
        Ok(())
    }

    /// Feed one locally stored symbol to a get, straight from its record
    /// (no frame built and parsed again; the record names its sealer, so no
    /// offer has to); one that fails to open is counted and skipped.
    fn open_local(&self, g: &GetState, meta: &Arc<ZoneMeta>, r: &SymbolRecord) {
        let rec = RecordRef {
            esi: r.esi,
            k: r.k,
            ciphertext: &r.ciphertext,
            tag: &r.tag,
        };
        let opened = self.open_for_get(g, meta, &r.source_node, &record_header(r), || {
            std::iter::once(rec)
        });
        if opened.is_err() {
            self.stats.frames_rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Send datagrams to a peer at its AIMD rate, on the peer's one clock,
    /// so that all pushes and serves to it together keep to the rate
    /// (decisions 71, 72). Equal-sized datagrams go out in UDP GSO batches: one
    /// system call for up to 64 datagrams, each still its own packet on the
    /// wire, and at most a millisecond's worth at once. Returns when the
    /// first of them went (now, if none did) and the session sequence number
    /// of the last (decision 75).
    async fn send_frames(
        &self,
        peer: &Peer,
        frames: &[Bytes],
        stop: Option<&AtomicBool>,
    ) -> (tokio::time::Instant, Option<u64>) {
        let max_batch = self.udp.max_segments().clamp(1, 64);
        let mut rest = frames;
        let mut first_sent = None;
        let mut last_seq = None;
        while !rest.is_empty() {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                break;
            }
            let per_ms = lock(&peer.rate).per_ms;
            let first = rest.first().map_or(0, |f| f.len());
            // One GSO send carries at most one UDP datagram's payload: 64
            // datagrams of 1208 bytes are refused whole (EMSGSIZE).
            let fit = MAX_UDP_PAYLOAD / first.saturating_add(SESSION_ENVELOPE_LEN).max(1);
            let n = rest
                .iter()
                .take(max_batch.min(fit).min(per_ms as usize))
                .take_while(|f| f.len() == first)
                .count()
                .max(1);
            let (now, later) = rest.split_at(n.min(rest.len()));
            rest = later;
            let t = tokio::time::Instant::now();
            let at = lock(&peer.pace).reserve(t, now.len(), per_ms);
            if at > t {
                tokio::time::sleep_until(at).await;
            }
            first_sent.get_or_insert(at.max(t));
            match self.send_batch(peer, now).await {
                Some(seq) => last_seq = Some(seq),
                None => break,
            }
        }
        (
            first_sent.unwrap_or_else(tokio::time::Instant::now),
            last_seq,
        )
    }

    /// Seal equal-sized frames and send them in one GSO call. Sealing and
    /// sending hold the peer's send lock together, so datagrams leave in
    /// sequence order and stay inside the receiver's 128-frame replay window.
    /// The session sequence number of the last one, None if sealing failed.
    async fn send_batch(&self, peer: &Peer, frames: &[Bytes]) -> Option<u64> {
        let _order = peer.tx.lock().await;
        let mut batch =
            Vec::with_capacity(frames.iter().map(|f| f.len() + SESSION_ENVELOPE_LEN).sum());
        let mut seg = 0;
        let last = {
            let mut s = lock(&peer.sessions);
            for f in frames {
                let at = batch.len();
                s.seal_datagram_into(f, &mut batch).ok()?;
                seg = seg.max(batch.len() - at);
            }
            s.current().send_seq().checked_sub(1)
        };
        self.send_datagrams(peer.addr, &batch, seg, frames.len())
            .await;
        last
    }

    /// `count` datagrams of `seg` bytes (the last may be shorter) in one send.
    async fn send_datagrams(&self, to: SocketAddr, batch: &[u8], seg: usize, count: usize) {
        if count == 0 {
            return;
        }
        match self.udp.send(to, batch, seg, count).await {
            Ok(()) => {
                self.stats
                    .datagrams_out
                    .fetch_add(count as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // Lost like a dropped datagram (the resend path covers it),
                // but counted and told once: a send that always fails is a
                // bug, not a lossy network.
                let before = self
                    .stats
                    .datagrams_send_failed
                    .fetch_add(count as u64, Ordering::Relaxed);
                if before == 0 {
                    eprintln!(
                        "{}: sending {count} datagrams ({} bytes) to {to} failed: {e}",
                        self.node_id(),
                        batch.len()
                    );
                }
            }
        }
    }

    /// Answer a symbol request with the symbols this node holds.
    ///
    /// The store read runs right here, not on the blocking pool: one
    /// object's symbols are tens of microseconds from redb's cache, and
    /// handing each read to another thread and back cost more than the read
    /// (a fifth of a mesh get's CPU). Writes and sealing stay offloaded.
    ///
    /// Returns the serve's datagrams in the peer's serve window, and what
    /// resolves when its record goes: the requester reported on it, a later
    /// serve of the object replaced it, or it was forgotten (`MAX_SERVED`,
    /// or the peer's session went; decision 76).
    async fn serve<'p>(
        &self,
        peer: &'p Peer,
        object_id: ObjectId,
        ask: Ask,
        stop: &Stop,
    ) -> Option<(InFlight<'p>, oneshot::Receiver<()>)> {
        // Only the symbols chosen are copied out of the store.
        let got = (|| {
            let Some(meta) = self.store.meta(&object_id)? else {
                return Ok(None);
            };
            let mut holds = false;
            let recs = self.store.symbols_chosen(&object_id, |held| {
                holds = !held.is_empty();
                self.choose_symbols(peer, &ask, &meta, held)
            })?;
            Ok::<_, fcp_store::StoreError>(holds.then_some((meta, recs)))
        })();
        let Ok(Some((meta, recs))) = got else {
            peer.send_empty_offer(object_id);
            return None;
        };
        let mut sources: BTreeMap<u64, String> = BTreeMap::new();
        for r in &recs {
            sources.insert(r.sender_instance_id, r.source_node.clone());
        }
        peer.send(Control::SymbolOffer {
            object_id,
            meta: Some(Meta {
                zone_id: meta.zone_id.clone(),
                k: meta.k,
                symbol_size: meta.symbol_size,
                created_at: meta.created_at,
            }),
            sources: sources
                .into_iter()
                .map(|(instance, node_id)| Source { instance, node_id })
                .collect(),
            count: recs.len() as u32,
        });
        if recs.is_empty() {
            return None;
        }
        let frames: Vec<Bytes> = recs.iter().filter_map(|r| record_frame(r).ok()).collect();
        // A stopped serve sends no more, is not reported on and sends no
        // OfferEnd: the requester rebuilt the object (decision 76).
        let in_flight = tokio::select! {
            w = peer.serves.take(&peer.rate, frames.len()) => w,
            () = stop.raised() => return None,
        };
        let delivered = lock(&peer.rate).delivered();
        let (sent, last_seq) = self.send_frames(peer, &frames, Some(&stop.raised)).await;
        if stop.is_raised() {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let s = Served {
            sent,
            delivered,
            done: tokio::time::Instant::now(),
            count: u32::try_from(frames.len()).unwrap_or(u32::MAX),
            _reported: tx,
        };
        lock(&peer.served).record(object_id, s);
        peer.send(Control::OfferEnd {
            object_id,
            last_seq,
        });
        Some((in_flight, rx))
    }

    /// Which held symbols answer `ask`: not those the requester has, at most
    /// its stated need and the anti-amplification grant; source symbols
    /// first (they complete a block without a RaptorQ solve, decision 60),
    /// each kind with its part first.
    fn choose_symbols(&self, peer: &Peer, ask: &Ask, meta: &ObjectMeta, held: &[u32]) -> Vec<u32> {
        let k = u32::from(meta.k);
        // `have` is ascending (an EsiList on the wire).
        let mut esis: Vec<u32> = held
            .iter()
            .copied()
            .filter(|e| ask.have.binary_search(e).is_err() && (!ask.sources_only || *e < k))
            .collect();
        let limit = if ask.want == 0 {
            usize::MAX
        } else {
            ask.want as usize
        };
        // Anti-amplification (spec §8.4): the session MAC authenticates the
        // request and `want` is its proof of need; without one, at most N.
        let grant = lock(&self.admission).grant_response(
            self.now_ms(),
            &peer.node_id,
            Requester::Authenticated {
                proof_of_need: (ask.want > 0).then_some(ask.want),
            },
            u32::try_from(esis.len()).unwrap_or(u32::MAX),
            u32::try_from(fcp_wire::frame::encoded_len(meta.symbol_size, 1) + 40)
                .unwrap_or(u32::MAX),
        );
        let limit = match grant {
            Ok(g) => limit.min(g.symbols as usize),
            Err(_) => 0,
        };
        // Sources first, and within each kind our part first (stable: ESI
        // order within each group). Parts hash the ESI: placement often
        // gives a holder every other ESI.
        esis.sort_by_key(|e| {
            (
                *e >= k,
                ask.parts > 0 && esi_part(*e, ask.parts) != ask.part,
            )
        });
        esis.truncate(limit);
        esis
    }

    fn connected_peers(&self) -> Vec<Arc<Peer>> {
        lock(&self.peers)
            .values()
            .filter(|p| !p.ctl.is_closed())
            .cloned()
            .collect()
    }

    /// The put path: seal, place the peers' shares, keep the writer's.
    /// Returns the root object id and the admin API's report.
    async fn put(
        self: Arc<Self>,
        zone: ZoneId,
        payload: Vec<u8>,
    ) -> Result<(ObjectId, serde_json::Value), FcpError> {
        if !self.membership.zones.contains_key(&zone) {
            return Err(fcp(
                ErrorCode::NotInZone,
                format!("this node is not enrolled in {zone}"),
            ));
        }
        let peers = self.connected_peers();
        let policy = ObjectPlacementPolicy::default();
        let peer_ids: Vec<String> = peers.iter().map(|p| p.node_id.clone()).collect();
        // Fail early, before any work, when the mesh cannot hold the object.
        placement::plan(&ObjectId::from_bytes([0; 32]), 64, 99, &policy, &peer_ids).map_err(fe)?;
        let now = self.net.now_secs();
        let me = self.clone();
        let z = zone.clone();
        let sealed = offload(&*self.net, move || me.seal(&z, &payload, now))
            .await
            .map_err(|_| fcp(ErrorCode::Internal, "sealing task failed"))??;
        let (root, mut objects) = sealed;
        // Chunks with the same bytes are one object (the same ObjectId): it
        // is placed once, and the manifest names it at each position.
        let mut seen = HashSet::with_capacity(objects.len());
        objects.retain(|(oid, _, _)| seen.insert(*oid));
        // Placement (decision 61): each object's symbols are spread over its
        // HRW-ranked peers and the writer, each ESI on one node, so that
        // losing any one node leaves k + 2; the peers hold the source
        // symbols, the writer keeps repair symbols. Frames are indexed by ESI
        // once (one record each; these are our own, so not parsed again).
        let ids: Vec<ObjectId> = objects.iter().map(|(oid, _, _)| *oid).collect();
        let mut placed_objects = Vec::with_capacity(objects.len());
        let mut local = Vec::with_capacity(objects.len());
        for (oid, k, frames) in objects {
            let by_esi = OwnFrames::index(frames);
            let made = u32::try_from(by_esi.len()).unwrap_or(u32::MAX);
            let plan = placement::plan(&oid, k, made, &policy, &peer_ids).map_err(fe)?;
            let kept: Vec<Bytes> = plan
                .writer
                .iter()
                .filter_map(|e| by_esi.get(e).cloned())
                .collect();
            local.push((oid, k, kept));
            placed_objects.push((oid, k, plan, by_esi));
        }
        let store = self.store.clone();
        let me = self.clone();
        let z = zone.clone();
        // The kept symbols (and every object's metadata, so this node knows
        // the object's zone and k) are written while the copies travel.
        let local_write = offload(&*self.net, move || {
            let items: Vec<_> = local
                .iter()
                .map(|(oid, k, frames)| {
                    let meta = ObjectMeta {
                        zone_id: z.clone(),
                        k: *k,
                        symbol_size: 1024,
                        retention: RetentionClass::Pinned,
                        created_at: now,
                        refs: Vec::new(),
                        size_hint: 0,
                    };
                    (
                        *oid,
                        meta,
                        frames_to_records(frames, me.node_id(), me.node_id()),
                    )
                })
                .collect();
            // One durable transaction for the whole payload.
            store.put_meta_and_symbols_all(&items).map_err(fe)
        });
        // Place copies on peers, many objects at a time (holders group-commit).
        let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL_OBJECTS));
        let mut tasks = tokio::task::JoinSet::new();
        // Per object: k, symbols placed, pushes still running.
        let mut placing: HashMap<ObjectId, (u16, u32, usize)> = HashMap::new();
        // Records a finished push; an object's coverage once all its pushes
        // are done. A failed put records none for the objects it left half
        // placed (the other pushes stop as the task set is dropped).
        let settle = |r: Result<Result<(ObjectId, u32), FcpError>, tokio::task::JoinError>,
                      placing: &mut HashMap<ObjectId, (u16, u32, usize)>|
         -> Result<(), FcpError> {
            let (oid, n) = r.map_err(|_| fcp(ErrorCode::Internal, "placement task failed"))??;
            if let Some(e) = placing.get_mut(&oid) {
                e.1 += n;
                e.2 = e.2.saturating_sub(1);
                if e.2 == 0 {
                    let (k, n, _) = *e;
                    placing.remove(&oid);
                    lock(&self.placed).insert(oid, (k, n));
                }
            }
            Ok(())
        };
        for (oid, k, plan, by_esi) in placed_objects {
            // While waiting for a slot, a failed push fails the put at once.
            let permit = loop {
                tokio::select! {
                    p = sem.clone().acquire_owned() => {
                        break Arc::new(p.map_err(|_| fcp(ErrorCode::Internal, "semaphore"))?);
                    }
                    Some(r) = tasks.join_next() => settle(r, &mut placing)?,
                }
            };
            let by_esi = Arc::new(by_esi);
            let meta = Arc::new(Meta {
                zone_id: zone.clone(),
                k,
                symbol_size: 1024,
                created_at: now,
            });
            // Each object goes to its peers at the same time.
            let mut pushes = 0;
            for (node, esis) in plan.assignments {
                let Some(p) = peers.iter().find(|p| p.node_id == node).cloned() else {
                    continue;
                };
                let (me, permit, by_esi, meta) =
                    (self.clone(), permit.clone(), by_esi.clone(), meta.clone());
                tasks.spawn(async move {
                    let _permit = permit;
                    me.push_to_peer(&p, oid, &meta, &esis, &by_esi).await?;
                    Ok::<_, FcpError>((oid, esis.len() as u32))
                });
                pushes += 1;
            }
            if pushes == 0 {
                lock(&self.placed).insert(oid, (k, 0));
            } else {
                placing.insert(oid, (k, 0u32, pushes));
            }
        }
        while let Some(r) = tasks.join_next().await {
            settle(r, &mut placing)?;
        }
        // The put is acknowledged only once the local copy is durable too.
        local_write
            .await
            .map_err(|_| fcp(ErrorCode::Internal, "store task failed"))??;
        let coverage = ids
            .iter()
            .filter_map(|o| {
                lock(&self.placed)
                    .get(o)
                    .map(|(k, n)| u64::from(*n) * 10_000 / u64::from((*k).max(1)))
            })
            .min()
            .unwrap_or(0);
        let report = serde_json::json!({
            "object_id": root.to_hex(),
            "objects": ids.len(),
            "peers": peer_ids,
            "min_coverage_bps": coverage,
        });
        Ok((root, report))
    }

    /// CPU part of a put (runs on the blocking pool): the parallel symbol path.
    #[allow(clippy::type_complexity)]
    fn seal(
        &self,
        zone: &ZoneId,
        payload: &[u8],
        now: u64,
    ) -> Result<(ObjectId, Vec<(ObjectId, u16, Vec<Bytes>)>), FcpError> {
        let z = self
            .membership
            .zones
            .get(zone)
            .ok_or_else(|| fcp(ErrorCode::NotInZone, zone.to_string()))?;
        let key = z
            .zone_key
            .symbol_key(z.algorithm, self.node_id(), self.instance)
            .map_err(fe)?;
        let policy = ObjectPlacementPolicy::default();
        let storage = StorageMeta {
            retention: RetentionClass::Pinned,
        };
        let params = SymbolParams {
            // Enough repair symbols for the placement target (spec §3.6).
            repair_ratio_bps: u16::try_from(policy.target_coverage_bps.saturating_sub(10_000))
                .unwrap_or(5_000)
                .max(500),
            // An even spread over the writer and two peers holds k + 2 after
            // any one loss only with 1.5 · k + 3 symbols (decision 61).
            extra_repair: placement::EXTRA_REPAIR,
            ..SymbolParams::default()
        };
        let path = SymbolPath {
            key: &key,
            object_id_key: &z.object_id_key,
            zone: ZoneContext {
                zone_id_hash: zone.hash(),
                zone_key_id: z.zone_key.key_id().0,
                epoch_id: EpochId::from_unix_secs(now).value(),
            },
            params,
            storage,
        };
        let levels = StandardZone::from_zone_id(zone).map(|s| s.levels());
        let meta = PayloadMeta {
            zone_id: zone.clone(),
            created_at: now,
            provenance: Provenance::new(
                zone.clone(),
                levels.map_or(50, |l| l.integrity),
                levels.map_or(50, |l| l.confidentiality),
                TaintFlags::NONE,
                now,
            ),
            storage,
        };
        let mut seq = lock(&self.frame_seq);
        let sealed = path.put_payload(payload, &meta, &mut seq).map_err(fe)?;
        Ok((
            sealed.root,
            sealed
                .objects
                .into_iter()
                .map(|o| (o.object_id, o.k, o.frames))
                .collect(),
        ))
    }

    /// Push the assigned symbols of one object to one peer until it has them all.
    async fn push_to_peer(
        &self,
        peer: &Peer,
        oid: ObjectId,
        meta: &Meta,
        esis: &[u32],
        by_esi: &OwnFrames,
    ) -> Result<(), FcpError> {
        let _turn = Turn::take(&self.push_turns, (peer.node_id.clone(), oid)).await;
        // Our turn: a waiter left for this (peer, object) is ours, and goes
        // with this push however it ends.
        let _waiter = Forget(&self.store_waiters, (peer.node_id.clone(), oid));
        // Announce first and wait for the holder to admit the object: datagrams
        // that arrive before their StoreRequest would be dropped as unsolicited.
        let push = self.next_push.fetch_add(1, Ordering::Relaxed);
        // The holder's answer within 5 s (None: none came). A session that
        // closes meanwhile can no longer carry one: the push fails at once.
        let answer = |rx: oneshot::Receiver<Result<Vec<u32>, FcpError>>| async {
            tokio::select! {
                r = tokio::time::timeout(Duration::from_secs(5), rx) => {
                    Ok(r.ok().and_then(Result::ok))
                }
                () = peer.ctl.closed() => Err(fcp(
                    ErrorCode::InsufficientPeers,
                    format!("the session with {} closed during the push of {oid}", peer.node_id),
                )),
            }
        };
        // A holder out of slots for this node (its pushes of a put that
        // failed are still open there) frees the idle ones after
        // `PUSH_IDLE_MS`: ask again until then, backing off.
        let mut wait = Duration::from_millis(100);
        let asked = tokio::time::Instant::now();
        let admitted = loop {
            let (tx, rx) = oneshot::channel();
            lock(&self.store_waiters).insert((peer.node_id.clone(), oid), (push, tx));
            peer.send(Control::StoreRequest {
                object_id: oid,
                meta: meta.clone(),
                source: Source {
                    instance: self.instance,
                    node_id: self.node_id().to_owned(),
                },
                esis: EsiList::new(esis.to_vec()),
                push,
            });
            match answer(rx).await? {
                Some(Err(e))
                    if e.code == ErrorCode::ResourceLimit.as_code()
                        && asked.elapsed() < SLOT_WAIT =>
                {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                other => break other,
            }
        };
        let mut todo = match admitted {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(e),
            None => {
                return Err(fcp(
                    ErrorCode::ResourceLimit,
                    format!(
                        "{} did not answer the store request for {oid}",
                        peer.node_id
                    ),
                ));
            }
        };
        // Even with nothing to send, a StoreEnd: only its answer says the
        // symbols are durable. Rounds go on while they progress; a push
        // gives up after `STORE_ROUNDS` that did not (decision 79).
        let mut stalled: u16 = 0;
        for round in 0.. {
            if usize::from(stalled) >= STORE_ROUNDS * 8 {
                break;
            }
            let batch: Vec<Bytes> = todo.iter().filter_map(|e| by_esi.get(e).cloned()).collect();
            let _in_flight = peer.pushes.take(&peer.rate, batch.len()).await;
            let delivered = lock(&peer.rate).delivered();
            let (sent, last_seq) = self.send_frames(peer, &batch, None).await;
            let sent_all = tokio::time::Instant::now();
            let (tx, rx) = oneshot::channel();
            lock(&self.store_waiters).insert((peer.node_id.clone(), oid), (push, tx));
            peer.send(Control::StoreEnd {
                object_id: oid,
                push,
                last_seq,
            });
            let (mut missing, answered) = match answer(rx).await? {
                Some(Ok(m)) => (m, true),
                Some(Err(e)) => return Err(e),
                None => (todo.clone(), false),
            };
            // What is missing can only be what was: a holder naming others
            // does not get them sent, nor keeps the push going by it. Both
            // lists ascend (`EsiList`).
            missing.retain(|e| todo.binary_search(e).is_ok());
            let now = tokio::time::Instant::now();
            // Of what this round sent (the holder names only ESIs of this
            // push; those not sent are not this round's loss).
            let lost_n = missing.iter().filter(|e| by_esi.get(e).is_some()).count();
            let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
            let arrived = n.saturating_sub(u32::try_from(lost_n).unwrap_or(u32::MAX));
            // A round trip for the window only from a first round of which
            // something arrived: all it sent was new, so its answer waited
            // for the holder's commit, as most do. A round that stored
            // nothing (all lost, or sent again after arriving) is answered
            // at once, and its bare network round trip would leave the
            // rounds waiting on commits out of the window.
            if answered && arrived > 0 && round == 0 {
                peer.pushes.answered(now - sent_all, now);
            }
            // Growth paced by the round trip from the round's first
            // datagram: rounds are short under the window, and from the
            // last one, puts over the slow simulated links overshot them
            // (rates at twice the link, a fifth more resent).
            let silent = {
                let mut rate = lock(&peer.rate);
                rate.on_report(Kind::Push, arrived, n, (sent, sent_all), delivered, now);
                rate.silent_for(now)
            };
            if missing.is_empty() {
                return Ok(());
            }
            // A path that delivered none of what was sent over it for
            // `SILENT_PATH` (UDP blocked on the way, the peer's TCP still
            // up): give up now, not after rounds that, at the lowest rate
            // and shared with every other push to the peer, take many
            // seconds each (decision 81).
            if answered && arrived == 0 && silent >= SILENT_PATH {
                return Err(fcp(
                    ErrorCode::ResourceLimit,
                    format!(
                        "{} received none of the datagrams sent to it for {} s",
                        peer.node_id,
                        silent.as_secs()
                    ),
                ));
            }
            // A round with no answer (5 s) is no loss but a silent holder:
            // a whole stalled round, however few were missing.
            let stall = if answered {
                stall_eighths(todo.len(), missing.len())
            } else {
                Some(8)
            };
            if let Some(stall) = stall {
                stalled = stalled.saturating_add(stall);
            }
            todo = missing;
        }
        Err(fcp(
            ErrorCode::ResourceLimit,
            format!(
                "{} did not take the symbols of {oid} ({STORE_ROUNDS} store rounds stalled)",
                peer.node_id
            ),
        ))
    }

    /// Fetch and rebuild one object (local symbols first, then every peer).
    async fn fetch_object(self: Arc<Self>, oid: ObjectId) -> Result<StoredObject, FcpError> {
        let (content, zone) = self.clone().fetch_content(oid).await?;
        let obj = StoredObject::from_content(
            &content,
            StorageMeta {
                retention: RetentionClass::Ephemeral,
            },
            self.object_id_key(&zone)?,
        )
        .map_err(fe)?;
        if obj.object_id != oid {
            return Err(id_mismatch(oid));
        }
        Ok(obj)
    }

    /// The ObjectIdKey of a zone this node is enrolled in.
    fn object_id_key(&self, zone: &ZoneId) -> Result<&fcp_core::ObjectIdKey, FcpError> {
        self.membership
            .zones
            .get(zone)
            .map(|z| &z.object_id_key)
            .ok_or_else(|| fcp(ErrorCode::NotInZone, zone.to_string()))
    }

    /// Rebuild the content bytes of object `oid` (profile §3) from this
    /// node's symbols and its peers', with the zone it belongs to. Callers
    /// check the content's id ([`Self::fetch_object`], `stream_chunks`).
    async fn fetch_content(self: Arc<Self>, oid: ObjectId) -> Fetched {
        loop {
            let leader = {
                let mut fetching = lock(&self.fetching);
                match fetching.get(&oid) {
                    Some(rx) => Err(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        fetching.insert(oid, rx);
                        Ok(tx)
                    }
                }
            };
            let tx = match leader {
                Ok(tx) => tx,
                Err(mut rx) => {
                    // Another get is fetching it: take its result, or, if
                    // that get was cancelled, start over.
                    let shared = rx
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|r| r.clone());
                    match shared {
                        Some(r) => return r,
                        None => continue,
                    }
                }
            };
            let result = {
                let _entry = Forget(&self.fetching, oid);
                self.clone().fetch_content_once(oid).await
            };
            // The entry is gone, so no get joins now: copy the result only
            // for those that wait.
            if tx.receiver_count() > 0 {
                let _ = tx.send(Some(result.clone()));
            }
            return result;
        }
    }

    /// At a round's end, tell each peer whose offer is all in, or ended, how
    /// much of it arrived, so that its rate follows (decision 72), unless
    /// that was told as soon as it was all in. An offer neither all in nor
    /// ended, or not all in when the object was rebuilt, may still be on
    /// its way: not reported.
    fn report_offers(&self, g: &GetState, oid: ObjectId, peers: &[Arc<Peer>]) {
        let rebuilt = lock(&g.result).is_some();
        for p in peers {
            let ended = g.ended(&p.node_id);
            let arrived = lock(&g.by_peer)
                .get_mut(&p.node_id)
                .and_then(|o| o.at_round_end(rebuilt, ended));
            let Some(arrived) = arrived else {
                continue;
            };
            p.report(Arrived {
                object_id: oid,
                count: u32::try_from(arrived).unwrap_or(u32::MAX),
            });
        }
    }

    /// Fetch and rebuild one object's content (see [`Node::fetch_content`]).
    async fn fetch_content_once(self: Arc<Self>, oid: ObjectId) -> Fetched {
        let g = Arc::new(GetState::new(oid));
        // Local symbols first, read and opened here (one object's worth; see
        // `serve` on why not on the blocking pool).
        self.load_local(&g, oid).map_err(fe)?;
        let zone_of = |g: &GetState| lock(&g.meta).as_ref().map(|m| m.zone_id.clone());
        // Holding ciphertext is not membership: without the zone's keys, stop early.
        let member = |z: &ZoneId| self.membership.zones.contains_key(z);
        let not_member = |g: &GetState| {
            if let Some(z) = zone_of(g) {
                return (!member(&z)).then_some(z);
            }
            // Nothing opened yet: stop only when every offer names a zone
            // this node is not in (no peer's word outvotes another's).
            let offered = lock(&g.offered_meta);
            let mut zones = offered.values().map(|m| &m.zone_id);
            let first = zones.next()?.clone();
            (!member(&first) && zones.all(|z| !member(z))).then_some(first)
        };
        if let Some(z) = not_member(&g) {
            return Err(fcp(
                ErrorCode::NotInZone,
                format!("this node is not enrolled in {z} and holds no keys for object {oid}"),
            ));
        }
        let mut round = 0u32;
        if lock(&g.result).is_none() {
            lock(&self.gets).insert(oid, g.clone());
            let _registered = GetEnd {
                node: &self,
                oid,
                g: &g,
            };
            let deadline = tokio::time::Instant::now() + GET_TIMEOUT;
            // Rounds that stalled, in eighths (as a push's, decision 79).
            let mut stalled = 0u16;
            while lock(&g.result).is_none() && usize::from(stalled) < GET_ROUNDS * 8 {
                round += 1;
                let missing_before = g.still_needed();
                let peers = self.connected_peers();
                if peers.is_empty() {
                    break;
                }
                lock(&g.by_peer).clear();
                let have = EsiList::new(lock(&g.got).iter().copied().collect());
                // The first round asks every peer for the source symbols
                // still missing (all of them: placement puts each ESI on one
                // node, so the answers do not overlap, and a peer holding
                // only repair symbols sends nothing); a block of source
                // symbols needs no RaptorQ solve (decision 60). Later rounds
                // ask each peer for a share of what is still needed (two
                // more than k), any symbols: what is lost or overlaps is
                // asked for again next round, which over a slow path costs
                // less than sending a margin every round (decision 82).
                // Before the metadata is known (nothing local), ask for
                // every one.
                let counts = lock(&g.decoder)
                    .as_ref()
                    .map(|d| (d.received_unique(), d.sources_received(), d.required()));
                // Over slow paths the first round too asks every peer for a
                // share (decision 77): the network bounds the get, and the
                // peers holding repair symbols add their links to it.
                let sources_only = round == 1 && !spread_first_round(&peers);
                let want = match counts {
                    None => 0,
                    Some((_, src, k)) if sources_only => k.saturating_sub(src).max(1),
                    Some((got, _, k)) => {
                        let need = k.saturating_sub(got) + 2;
                        need.div_ceil(peers.len() as u32).max(1)
                    }
                };
                let parts = peers.len() as u32;
                lock(&g.asked).extend(peers.iter().map(|p| p.node_id.clone()));
                for (part, p) in (0u32..).zip(&peers) {
                    *lock(&g.open).entry(p.node_id.clone()).or_default() += 1;
                    // In the same write as the request.
                    p.flush_reports();
                    p.send(Control::SymbolRequest {
                        object_id: oid,
                        have: have.clone(),
                        want,
                        parts,
                        part,
                        sources_only,
                    });
                }
                // Wait until decoded, or every peer finished its offer and its
                // datagrams stopped arriving (they trail the OfferEnd on TCP,
                // and a busy receiver may still be working through them), or
                // some peer stayed silent for a whole round.
                let round_end = (tokio::time::Instant::now() + ROUND_WAIT).min(deadline);
                // `rx_drained` when every offer was seen ended.
                let mut ended_at = None;
                // How long to wait for the named last datagrams.
                let mut tail_end = None;
                loop {
                    // Made before what they wake for is read: a notification
                    // between the two is not lost.
                    let notified = g.done.notified();
                    let drained = self.rx_drained_wake.notified();
                    if lock(&g.result).is_some() {
                        break;
                    }
                    let ended = peers.iter().all(|p| g.ended(&p.node_id));
                    let seen = g.frames_in.load(Ordering::Relaxed);
                    if ended {
                        // The peers whose offer is short, each with the last
                        // datagram its serves named. Each peer's offer counts
                        // apart: late datagrams of an earlier round count in
                        // this one, and one peer's must not cover another's
                        // shortfall.
                        let short: Vec<(&Arc<Peer>, Option<u64>)> = {
                            let by_peer = lock(&g.by_peer);
                            peers
                                .iter()
                                .filter_map(|p| {
                                    let o = by_peer.get(&p.node_id)?;
                                    (o.arrived < o.offered).then_some((p, o.tail))
                                })
                                .collect()
                        };
                        if short.is_empty() {
                            // Every offered datagram is in: this round is over.
                            break;
                        }
                        // Each peer whose offer is short named its serves'
                        // last datagram (decision 80): once that or a later
                        // one of the peer's is in, what is missing was lost.
                        // Until then it may queue on a slow path behind
                        // other serves' datagrams: wait while the peer's
                        // keep coming.
                        let named: Option<Vec<(&Arc<Peer>, u64)>> =
                            short.iter().map(|(p, s)| s.map(|s| (*p, s))).collect();
                        if let Some(short) = named {
                            let now = tokio::time::Instant::now();
                            if short.iter().all(|(p, s)| p.handled_since(*s)) {
                                break;
                            }
                            let since = *ended_at.get_or_insert_with(|| self.rx_mark());
                            let emptied = self.rx_emptied_since(since);
                            let end = (*tail_end.get_or_insert(now + TAIL_WAIT)).min(round_end);
                            let now_ms = self.now_ms();
                            let quiet = short.iter().all(|(p, _)| {
                                now_ms.saturating_sub(lock(&p.handled).at_ms)
                                    >= REORDER.as_millis() as u64
                            });
                            if (emptied && quiet) || now >= end {
                                break;
                            }
                            tokio::select! {
                                () = notified => {}
                                () = drained, if !emptied => {}
                                () = tokio::time::sleep_until((now + REORDER).min(end)) => {}
                            }
                            continue;
                        }
                        let arrived: u64 = lock(&g.by_peer).values().map(|o| o.arrived).sum();
                        // Otherwise the missing ones were lost once the
                        // receive loop has found its socket empty after the
                        // OfferEnds came (sent after the datagrams, they
                        // arrive after them), or is waiting on it empty,
                        // give or take a reordering. Until then this node
                        // is behind its socket: wait while the datagrams
                        // keep coming.
                        let since = *ended_at.get_or_insert_with(|| self.rx_mark());
                        let emptied = self.rx_emptied_since(since);
                        let now = tokio::time::Instant::now();
                        if now >= round_end {
                            break;
                        }
                        let until = if emptied {
                            now + REORDER
                        } else if arrived > 0 {
                            now + QUIET
                        } else {
                            round_end
                        };
                        tokio::select! {
                            () = notified => {}
                            () = drained, if !emptied => {}
                            () = tokio::time::sleep_until(until.min(round_end)) => {
                                if g.frames_in.load(Ordering::Relaxed) == seen {
                                    break;
                                }
                            }
                        }
                    } else if tokio::time::timeout_at(round_end, notified).await.is_err() {
                        break;
                    }
                }
                self.report_offers(&g, oid, &peers);
                // Source symbols not in by now are not coming: decode from
                // what is in, if enough.
                self.solve_get(&g);
                // Nothing known of the object before the round: any
                // symbol is progress.
                let missing_after = g.still_needed();
                let before = missing_before.unwrap_or(usize::MAX);
                let after = missing_after.unwrap_or(usize::MAX);
                if let Some(stall) = stall_eighths(before, after) {
                    stalled = stalled.saturating_add(stall);
                }
                if let Some(z) = not_member(&g) {
                    return Err(fcp(
                        ErrorCode::NotInZone,
                        format!(
                            "this node is not enrolled in {z} and holds no keys for object {oid}"
                        ),
                    ));
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
        }
        // No peer (left) to ask: rebuild from what is in, if enough.
        self.solve_get(&g);
        let Some(content) = lock(&g.result).take() else {
            let (got, need) = lock(&g.decoder)
                .as_ref()
                .map_or((0, 0), |d| (d.received_unique(), d.required()));
            let peers: Vec<String> = self
                .connected_peers()
                .iter()
                .map(|p| p.node_id.clone())
                .collect();
            return Err(fcp(
                ErrorCode::ObjectNotFound,
                format!(
                    "object {oid} could not be rebuilt from this node or its peers \
                     ({got} of {need} symbols after {round} rounds; peers {peers:?})"
                ),
            ));
        };
        let zone = zone_of(&g).ok_or_else(|| fcp(ErrorCode::ObjectNotFound, oid.to_hex()))?;
        Ok((content, zone))
    }

    /// The get path: the root object, then every chunk, several at a time,
    /// handed out in order as they are rebuilt so memory stays bounded by the
    /// fetch window, not the payload. Errors before the first byte are
    /// returned; later ones end the body early.
    async fn get(self: Arc<Self>, oid: ObjectId) -> Result<(u64, GetBody), FcpError> {
        let root = self.clone().fetch_object(oid).await?;
        let (tx, rx) = mpsc::channel(PARALLEL_FETCHES);
        match parse_root(&root).map_err(fe)? {
            PayloadRoot::Inline(b) => {
                let len = b.len() as u64;
                let _ = tx.send(Ok(Bytes::from(b))).await;
                Ok((len, rx))
            }
            PayloadRoot::Manifest(m) => {
                let len = m.total_len;
                tokio::spawn(async move {
                    if let Err(e) = self.stream_chunks(&m, &tx).await {
                        let _ = tx.send(Err(e)).await;
                    }
                });
                Ok((len, rx))
            }
        }
    }

    /// Fetch a manifest's chunks (a window of `PARALLEL_FETCHES` ahead of
    /// the writer), check each, send them in order and check the payload
    /// hash from the chunks' BLAKE3 subtrees at the end (Appendix B). The
    /// body streams to the client as it is rebuilt, so each chunk's id is
    /// derived before its bytes go out (decision 58); its header is parsed
    /// once per payload and its bytes are not copied into a StoredObject.
    async fn stream_chunks(
        self: Arc<Self>,
        m: &fcp_wire::chunk::ChunkedObjectManifest,
        tx: &mpsc::Sender<Result<Bytes, FcpError>>,
    ) -> Result<(), FcpError> {
        use fcp_wire::chunk::{can_merge, chunk_cv, merged_payload_hash};
        let merge = can_merge(m.total_len, m.chunk_size);
        let mut cvs = Vec::with_capacity(if merge { m.chunks.len() } else { 0 });
        let mut whole = (!merge).then(blake3::Hasher::new);
        let mut pending = std::collections::VecDeque::new();
        // A chunk that repeats within the window (the same bytes, so the same
        // ObjectId) is fetched once: its later positions wait for that fetch
        // (`repeats`) and take its content from `shared`.
        let mut repeats: HashMap<ObjectId, usize> = HashMap::new();
        let mut shared: HashMap<ObjectId, (Bytes, ZoneId)> = HashMap::new();
        let mut next = m.chunks.iter().enumerate();
        let mut sent = 0u64;
        let mut held: Option<Bytes> = None;
        let header = std::sync::OnceLock::new();
        loop {
            while pending.len() < PARALLEL_FETCHES {
                let Some((i, id)) = next.next() else { break };
                let id = *id;
                let task = if shared.contains_key(&id) || pending.iter().any(|(_, p, _)| *p == id) {
                    *repeats.entry(id).or_insert(0) += 1;
                    None
                } else {
                    let me = self.clone();
                    Some(tokio::spawn(async move { me.fetch_content(id).await }))
                };
                pending.push_back((i, id, task));
            }
            let Some((i, id, task)) = pending.pop_front() else {
                break;
            };
            let (content, zone, fetched) = match task {
                Some(task) => {
                    let (content, zone) = task
                        .await
                        .map_err(|_| fcp(ErrorCode::Internal, "fetch task"))??;
                    (Bytes::from(content), zone, true)
                }
                None => {
                    let (content, zone) = shared
                        .get(&id)
                        .cloned()
                        .ok_or_else(|| fcp(ErrorCode::Internal, "repeated chunk not fetched"))?;
                    if let Some(n) = repeats.get_mut(&id) {
                        *n -= 1;
                        if *n == 0 {
                            repeats.remove(&id);
                            shared.remove(&id);
                        }
                    }
                    (content, zone, false)
                }
            };
            let chunk = parse_chunk_content(&content, &header).map_err(fe)?;
            if fetched {
                if chunk.object_id(self.object_id_key(&zone)?) != id {
                    return Err(id_mismatch(id));
                }
                if repeats.contains_key(&id) {
                    shared.insert(id, (content.clone(), zone));
                }
            }
            // The body goes out as a slice of the rebuilt content (no copy);
            // it lies inside the content, which `body` borrows from.
            let body = chunk.body(m, i).map_err(fe)?;
            let range = (body.as_ptr() as usize)
                .checked_sub(content.as_ptr() as usize)
                .map(|at| at..at + body.len())
                .filter(|r| r.end <= content.len());
            let bytes = match range {
                Some(r) => content.slice(r),
                None => Bytes::copy_from_slice(body),
            };
            if merge {
                cvs.push(chunk_cv(&bytes, i, m.chunk_size));
            } else if let Some(h) = whole.as_mut() {
                h.update(&bytes);
            }
            sent += bytes.len() as u64;
            // The last chunk waits for the payload hash, so a mismatch shows
            // as a short body instead of a complete-looking one.
            if let Some(prev) = held.replace(bytes)
                && tx.send(Ok(prev)).await.is_err()
            {
                return Ok(()); // the client went away
            }
        }
        let hash = match whole {
            Some(h) => Some(*h.finalize().as_bytes()),
            None => merged_payload_hash(&cvs, m.total_len, m.chunk_size),
        };
        if sent != m.total_len || hash != Some(m.payload_hash) {
            return Err(fcp(ErrorCode::ObjectCorrupt, "payload hash mismatch"));
        }
        if let Some(last) = held {
            let _ = tx.send(Ok(last)).await;
        }
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let peers = self.peers_json();
        let mut objects = Vec::new();
        if let Ok(ids) = self.store.list_symbol_objects() {
            for id in ids.iter().take(1000) {
                let meta = self.store.meta(id).ok().flatten();
                let held = self.store.symbol_count(id).unwrap_or(0);
                let k = meta.as_ref().map_or(0, |m| m.k);
                let placed = lock(&self.placed).get(id).map(|(_, n)| *n);
                objects.push(serde_json::json!({
                    "object_id": id.to_hex(),
                    "zone": meta.as_ref().map(|m| m.zone_id.to_string()),
                    "k": k,
                    "symbols_here": held,
                    "local_coverage": if k > 0 { held as f64 / f64::from(k) } else { 0.0 },
                    "mesh_coverage": placed.map(|n| if k > 0 { f64::from(n) / f64::from(k) } else { 0.0 }),
                }));
            }
        }
        let s = &self.stats;
        serde_json::json!({
            "node_id": self.node_id(),
            "listen": self.cfg.listen,
            "instance": format!("{:016x}", self.instance),
            "zones": self.membership.zones.keys().map(|z| z.to_string()).collect::<Vec<_>>(),
            "peers": peers,
            "objects": objects,
            "admission": serde_json::to_value(lock(&self.admission).status()).unwrap_or_default(),
            "counters": {
                "datagrams_in": s.datagrams_in.load(Ordering::Relaxed),
                "datagrams_out": s.datagrams_out.load(Ordering::Relaxed),
                "datagrams_send_failed": s.datagrams_send_failed.load(Ordering::Relaxed),
                "datagrams_dropped_fault": s.datagrams_dropped_fault.load(Ordering::Relaxed),
                "datagrams_rejected_session": s.datagrams_rejected_session.load(Ordering::Relaxed),
                "frames_rejected": s.frames_rejected.load(Ordering::Relaxed),
                "frames_unsolicited": s.frames_unsolicited.load(Ordering::Relaxed),
                "datagrams_rejected_budget": s.datagrams_rejected_budget.load(Ordering::Relaxed),
                "symbols_stored": s.symbols_stored.load(Ordering::Relaxed),
                "handshakes_ok": s.handshakes_ok.load(Ordering::Relaxed),
                "handshakes_failed": s.handshakes_failed.load(Ordering::Relaxed),
                "keepalive_timeouts": s.keepalive_timeouts.load(Ordering::Relaxed),
                "gets_solved": s.gets_solved.load(Ordering::Relaxed),
                "stores_refused": s.stores_refused.load(Ordering::Relaxed),
                "pushes_not_stored": s.pushes_not_stored.load(Ordering::Relaxed),
                "store_answers_stale": s.store_answers_stale.load(Ordering::Relaxed),
                "admin_gets_failed_midstream": s.admin_gets_failed_midstream.load(Ordering::Relaxed),
                "pings_sent": s.pings_sent.load(Ordering::Relaxed),
                "control_unknown": s.control_unknown.load(Ordering::Relaxed),
                "sessions_refused_id_in_use": s.sessions_refused_id_in_use.load(Ordering::Relaxed),
                "offers_unasked": s.offers_unasked.load(Ordering::Relaxed),
                "control_queue_overflows": s.control_queue_overflows.load(Ordering::Relaxed),
                // A gauge: serves in progress (each leaves when it ends).
                "serves_active": lock(&self.serving).values().map(Vec::len).sum::<usize>(),
            },
        })
    }

    fn peers_json(&self) -> Vec<serde_json::Value> {
        let connected: HashMap<String, Arc<Peer>> = lock(&self.peers).clone();
        let now = self.now_ms();
        self.known_peers()
            .into_iter()
            .filter(|(id, _)| id != self.node_id())
            .map(|(id, addr)| {
                let c = connected.get(&id).filter(|p| !p.ctl.is_closed());
                serde_json::json!({
                    "node_id": id,
                    "addr": addr,
                    "connected": c.is_some(),
                    "connected_at": c.map(|p| p.connected_at),
                    "send_rate_per_ms": c.map(|p| lock(&p.rate).per_ms),
                    // Loss reports that cut (or deepened a cut of) the rate.
                    "send_rate_cuts": c.map(|p| lock(&p.rate).cuts),
                    // How fast its serves arrive here (decision 77).
                    "recv_pace_per_ms": c.and_then(|p| lock(&p.path).per_ms()).filter(|p| p.is_finite()),
                    // Since FCPC bytes last came from the peer (keepalive).
                    "idle_ms": c.map(|p| now.saturating_sub(p.last_rx_ms.load(Ordering::Relaxed))),
                })
            })
            .collect()
    }

    async fn admin_loop(self: Arc<Self>, l: UnixListener) {
        let limits = admin::Limits::default();
        let slots = Arc::new(tokio::sync::Semaphore::new(admin::MAX_CONNECTIONS));
        loop {
            // A slot before the accept: clients over the bound wait in the
            // socket's backlog, and the node's descriptors stay bounded.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut s = match l.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: retrying at
                    // once would spin; the pause lets connections end.
                    eprintln!("fcp node {}: admin accept: {e}", self.cfg.node_id);
                    tokio::time::sleep(admin::ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let me = self.clone();
            let limits = limits.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let (rd, wr) = s.split();
                let (path, reply) = match admin::read_request(rd, &limits).await {
                    Ok(req) => (req.path.clone(), me.clone().handle_admin(req).await),
                    Err(e) => (String::new(), Reply::Full(Response::error(&e))),
                };
                match reply {
                    Reply::Full(resp) => {
                        let _ = admin::write_response(wr, &resp, admin::REPLY_IDLE_TIMEOUT).await;
                    }
                    Reply::Stream { len, body } => {
                        // The 200 head is out: the client sees only a body
                        // cut short, so the cause is told here.
                        let sent =
                            admin::write_stream_response(wr, len, body, admin::REPLY_IDLE_TIMEOUT)
                                .await;
                        if let Ok(Err(e)) = sent {
                            me.stats
                                .admin_gets_failed_midstream
                                .fetch_add(1, Ordering::Relaxed);
                            eprintln!(
                                "fcp node {}: admin {path} failed mid-stream: {e}",
                                me.cfg.node_id
                            );
                        }
                    }
                }
            });
        }
    }

    async fn handle_admin(self: Arc<Self>, req: Request) -> Reply {
        let r: Result<Reply, FcpError> = async {
            match (req.method.as_str(), req.path.as_str()) {
                ("GET", "/status") => Ok(Reply::Full(Response::json(&self.status()))),
                ("GET", "/peers") => Ok(Reply::Full(Response::json(&serde_json::json!(
                    self.peers_json()
                )))),
                ("POST", "/put") => {
                    let zone = ZoneId::new(req.param("zone").unwrap_or("z:private")).map_err(fe)?;
                    Ok(Reply::Full(Response::json(
                        &self.clone().put(zone, req.body).await?.1,
                    )))
                }
                ("GET", p) if p.starts_with("/get/") => {
                    let id: ObjectId = p.trim_start_matches("/get/").parse().map_err(fe)?;
                    let (len, body) = self.clone().get(id).await?;
                    Ok(Reply::Stream { len, body })
                }
                _ => Err(fcp(
                    ErrorCode::InvalidArgument,
                    format!("no route {} {}", req.method, req.path),
                )),
            }
        }
        .await;
        r.unwrap_or_else(|e| Reply::Full(Response::error(&e)))
    }
}

/// The frame header a stored symbol was sealed under.
fn record_header(r: &SymbolRecord) -> FrameHeader {
    FrameHeader {
        flags: FrameFlags::ENCRYPTED.union(FrameFlags::RAPTORQ),
        object_id: *r.object_id.as_bytes(),
        symbol_size: r.symbol_size,
        zone_key_id: r.zone_key_id,
        zone_id_hash: r.zone_id_hash,
        epoch_id: r.epoch_id,
        sender_instance_id: r.sender_instance_id,
        frame_seq: r.frame_seq,
    }
}

/// Rebuild the FCPS frame a stored symbol came in (one record per frame).
fn record_frame(r: &SymbolRecord) -> Result<Bytes, FcpError> {
    let header = record_header(r);
    let mut b = FrameBuilder::new(
        &header,
        FrameBuilder::DEFAULT_MAX_FRAME.max(fcp_wire::frame::encoded_len(r.symbol_size, 1)),
    )
    .map_err(fe)?;
    b.push_sealed(r.esi, r.k, &r.ciphertext, &r.tag)
        .map_err(fe)?;
    b.finish().map_err(fe)
}

fn frames_to_records(frames: &[Bytes], source: &str, from: &str) -> Vec<SymbolRecord> {
    let mut out = Vec::new();
    for f in frames {
        let Ok(fr) = Frame::decode(f.clone()) else {
            continue;
        };
        out.extend((0u32..).zip(fr.records()).map(|(i, r)| {
            let ciphertext = fr
                .ciphertext_bytes(i)
                .unwrap_or_else(|| Bytes::copy_from_slice(r.ciphertext));
            symbol_record(&fr, &r, ciphertext, source, from)
        }));
    }
    out
}

/// The stored form of record `r` of `frame`, with its ciphertext bytes
/// (the inverse of `record_frame`).
fn symbol_record(
    frame: &Frame,
    r: &RecordRef<'_>,
    ciphertext: Bytes,
    source: &str,
    from: &str,
) -> SymbolRecord {
    let h = frame.header();
    SymbolRecord {
        object_id: ObjectId::from_bytes(h.object_id),
        esi: r.esi,
        k: r.k,
        symbol_size: h.symbol_size,
        zone_id_hash: h.zone_id_hash,
        zone_key_id: h.zone_key_id,
        epoch_id: h.epoch_id,
        source_node: source.to_owned(),
        sender_instance_id: h.sender_instance_id,
        frame_seq: h.frame_seq,
        ciphertext,
        tag: *r.tag,
        from_node: from.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Aimd, ControlQueue, Delivered, GetState, MAX_ESIS, MAX_SERVED, OfferIn, OwnFrames,
        PushEsis, ServeReports, Served, Stop, Turn, TurnMap, lock, offer_ended, stall_eighths,
    };
    use crate::pacing::tests::clock;
    use crate::proto::{Control, EsiList};
    use bytes::Bytes;
    use fcp_core::ErrorCode;
    use fcp_core::ObjectId;
    use fcp_wire::frame::{HEADER_LEN, first_esi_of_own_frame};
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    /// Just enough of a frame for `first_esi_of_own_frame`.
    fn frame(esi: u32) -> Bytes {
        let mut f = vec![0u8; HEADER_LEN];
        f.extend_from_slice(&esi.to_le_bytes());
        Bytes::from(f)
    }

    #[test]
    fn own_frames_are_found_by_esi() {
        let esi_of = |o: &OwnFrames, e: u32| o.get(&e).and_then(|f| first_esi_of_own_frame(f));
        // ESIs 0..n in any order: found at their index.
        let dense = OwnFrames::index(vec![frame(2), frame(0), frame(1)]);
        assert_eq!(dense.len(), 3);
        for e in 0..3 {
            assert_eq!(esi_of(&dense, e), Some(e));
        }
        assert_eq!(esi_of(&dense, 3), None);
        // With gaps (and a duplicate), the search finds them.
        let sparse = OwnFrames::index(vec![frame(7), frame(1), frame(40), frame(1)]);
        assert_eq!(sparse.len(), 3);
        for e in [1, 7, 40] {
            assert_eq!(esi_of(&sparse, e), Some(e));
        }
        for e in [0, 2, 8, 41] {
            assert_eq!(esi_of(&sparse, e), None);
        }
    }

    #[test]
    fn an_offer_is_complete_once_whichever_came_first() {
        let t0 = tokio::time::Instant::now();
        // Datagrams first (UDP overtook the offer on TCP), then the offer.
        let mut o = OfferIn::default();
        for i in 0..3u64 {
            o.arrived += 1;
            o.first.get_or_insert(t0);
            o.last = Some(t0 + Duration::from_millis(i));
            assert_eq!(o.complete(), None, "no offer yet");
        }
        o.offered = 3;
        assert_eq!(o.complete(), Some((3, Some(Duration::from_millis(2)))));
        // Reported once a round: neither a late datagram nor the round's
        // end reports it again.
        o.arrived += 1;
        assert_eq!(o.complete(), None);
        assert!(o.reported);
        // An offer of nothing is never complete here (it ends the offer).
        assert_eq!(OfferIn::default().complete(), None);
        // Datagrams held until their offer came give no span.
        let mut held = OfferIn {
            offered: 1,
            arrived: 1,
            first: Some(t0),
            last: Some(t0),
            held: true,
            ..OfferIn::default()
        };
        assert_eq!(held.complete(), Some((1, None)));
    }

    #[test]
    fn a_round_waits_for_every_serve_asked_of_a_peer() {
        let g = GetState::new(ObjectId::from_bytes([4; 32]));
        // Two rounds asked peer p; its first OfferEnd may be the older
        // serve's: the round's offer has not ended while one is open.
        *lock(&g.open).entry("p".to_owned()).or_default() += 2;
        offer_ended(&g, "p");
        assert!(!g.ended("p"));
        offer_ended(&g, "p");
        assert!(g.ended("p"));
        // A stray end (a hostile or repeated OfferEnd) cannot go below none.
        offer_ended(&g, "p");
        assert_eq!(lock(&g.open).get("p"), Some(&0));
    }

    #[tokio::test]
    async fn a_stop_wakes_a_serve_waiting_for_room() {
        let stop = std::sync::Arc::new(Stop::default());
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.raised().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        stop.raise();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        // Raised before the wait: it does not wait at all.
        tokio::time::timeout(Duration::from_secs(5), stop.raised())
            .await
            .expect("already raised");
    }

    #[test]
    fn a_serve_report_drives_the_rate() {
        let ms = clock();
        let oid = |b: u8| ObjectId::from_bytes([b; 32]);
        let served = |at: u64, count: u32| Served {
            sent: ms(at),
            delivered: Delivered::default(),
            done: ms(at),
            count,
            _reported: tokio::sync::oneshot::channel().0,
        };
        let mut r = ServeReports::default();
        let mut a = Aimd::new(ms(0));
        // All 40 in after 10 ms: slow start adds 4, as for a push.
        // The round trip from its last datagram goes to the serve window.
        r.record(oid(1), served(0, 40));
        let rtt = r.report(oid(1), 40, &mut a, ms(10));
        assert_eq!(a.per_ms, Aimd::START + 4.0);
        assert_eq!(rtt, Some(Duration::from_millis(10)));
        // Reported once only: a repeated report changes nothing.
        assert_eq!(r.report(oid(1), 40, &mut a, ms(11)), None);
        assert_eq!(a.per_ms, Aimd::START + 4.0);
        // A report of a serve never made is ignored.
        r.report(oid(9), 0, &mut a, ms(12));
        // A serve of which nothing arrived gives no round trip.
        r.record(oid(8), served(12, 4));
        assert_eq!(r.report(oid(8), 0, &mut Aimd::new(ms(0)), ms(14)), None);
        assert_eq!(a.per_ms, Aimd::START + 4.0);
        // Growth goes by the round trip from a serve's last datagram: one
        // paced out over 80 ms and reported 10 ms after its end adds as
        // much as a short one (slow start: 40 in over 10 ms add 4).
        let mut long = Aimd::new(ms(0));
        let mut rl = ServeReports::default();
        rl.record(
            oid(5),
            Served {
                sent: ms(0),
                delivered: Delivered::default(),
                done: ms(80),
                count: 40,
                _reported: tokio::sync::oneshot::channel().0,
            },
        );
        rl.report(oid(5), 40, &mut long, ms(90));
        assert_eq!(long.per_ms, Aimd::START + 4.0);
        // Fewer in than sent: the rate is cut by half the share lost, and
        // a quarter of 80 lost is congestion: halved.
        r.record(oid(2), served(12, 40));
        r.report(oid(2), 38, &mut a, ms(20));
        assert_eq!(a.per_ms, (68.0 + 38.0 / 8.0) * 0.975);
        let before = a.per_ms;
        r.record(oid(4), served(21, 80));
        r.report(oid(4), 60, &mut a, ms(30));
        assert_eq!(a.per_ms, (before + 60.0 / 9.0) * 0.5);
        // Unreported serves are bounded: when full, the oldest goes.
        let many = |i: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_le_bytes());
            b[31] = 7;
            ObjectId::from_bytes(b)
        };
        for i in 0..MAX_SERVED as u32 {
            r.record(many(i), served(100 + u64::from(i), 1));
        }
        r.record(oid(3), served(5000, 1));
        assert_eq!(r.0.len(), MAX_SERVED);
        assert!(r.0.contains_key(&oid(3)));
        assert!(!r.0.contains_key(&many(0)), "the oldest was kept");
        assert!(r.0.contains_key(&many(1)));
    }

    #[test]
    fn a_store_round_stalls_unless_an_eighth_arrived() {
        // 13 of 100 missing arrived: progress, not counted; 12: a stall.
        assert_eq!(stall_eighths(100, 87), None);
        assert_eq!(stall_eighths(100, 88), Some(8));
        assert_eq!(stall_eighths(100, 100), Some(8));
        // A round of a few symbols stalls for that many eighths of a
        // round: over a lossy link the last ones may take many rounds.
        assert_eq!(stall_eighths(1, 1), Some(1));
        assert_eq!(stall_eighths(5, 5), Some(5));
        assert_eq!(stall_eighths(5, 4), None);
        assert_eq!(stall_eighths(1, 0), None);
        // A list that grew (only a hostile holder names more) is a whole
        // stalled round.
        assert_eq!(stall_eighths(3, 4), Some(8));
        assert_eq!(stall_eighths(100, 200), Some(8));
        // Nothing missing, yet not done (a get that could not decode): a
        // whole stalled round.
        assert_eq!(stall_eighths(0, 0), Some(8));
    }

    #[test]
    fn a_push_announces_at_most_what_one_ack_can_name() {
        let mut p = PushEsis::default();
        p.announce((0..60_000).collect()).unwrap();
        assert!(p.accept(7));
        // Repeating the push's announcement adds only what is new.
        p.announce((0..60_000).collect()).unwrap();
        assert_eq!(p.missing().len(), 59_999);
        // Past MAX_ESIS in all: refused, and the push is as it was.
        let e = p.announce((60_000..60_000 + 5_537).collect()).unwrap_err();
        assert_eq!(e.code, ErrorCode::SymbolInvalid.as_code());
        assert_eq!(p.missing().len(), 59_999);
        assert!(!p.accept(7), "an arrived ESI stays arrived");
        // Up to exactly MAX_ESIS is fine.
        p.announce((60_000..MAX_ESIS as u32).collect()).unwrap();
        assert_eq!(p.missing().len(), MAX_ESIS - 1);
    }

    #[test]
    fn a_control_queue_over_its_bound_drops_and_signals() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let ping = Control::Ping { nonce: 1 };
            let each = ping.approx_len();
            let (q, mut rx) = ControlQueue::new(3 * each);
            for _ in 0..3 {
                q.send(ping.clone());
            }
            // Nothing signalled yet.
            let quiet = tokio::time::timeout(Duration::from_millis(5), q.overflow.notified());
            assert!(quiet.await.is_err());
            // The fourth does not fit: dropped, and the overflow raised.
            q.send(Control::StoreAck {
                object_id: ObjectId::from_bytes([1; 32]),
                missing: EsiList::new((0..100).collect()),
                push: 1,
            });
            let raised = tokio::time::timeout(Duration::from_millis(5), q.overflow.notified());
            assert!(raised.await.is_ok());
            assert_eq!(q.queued.load(Ordering::Relaxed), 3 * each);
            let mut got = 0;
            while let Ok(c) = rx.try_recv() {
                assert_eq!(c, ping);
                got += 1;
            }
            assert_eq!(got, 3);
        });
    }

    #[test]
    fn push_esis_track_announced_arrivals() {
        let mut p = PushEsis::default();
        assert!(p.complete());
        p.announce(vec![9, 3, 5, 3]).unwrap();
        assert_eq!(p.missing(), vec![3, 5, 9]);
        assert!(!p.accept(4), "not announced");
        assert!(p.accept(5));
        assert!(!p.accept(5), "a duplicate is not accepted twice");
        // A second announcement adds, and an arrived ESI stays arrived.
        p.announce(vec![5, 1]).unwrap();
        assert_eq!(p.missing(), vec![1, 3, 9]);
        for e in [1, 3, 9] {
            assert!(p.accept(e));
        }
        assert!(p.complete());
        assert!(p.missing().is_empty());
    }

    #[test]
    fn turns_are_forgotten_when_their_pushes_end_or_are_cancelled() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let turns: TurnMap = Mutex::new(HashMap::new());
            let key = ("peer".to_owned(), ObjectId::from_bytes([7; 32]));
            let users = || lock(&turns).get(&key).map(|(_, n)| *n);
            // One push holds the turn and a second waits for it.
            let hold_and_wait = || async {
                let holder = Turn::take(&turns, key.clone()).await;
                let mut waiter = Box::pin(Turn::take(&turns, key.clone()));
                let waiting = tokio::time::timeout(Duration::from_millis(5), &mut waiter).await;
                assert!(waiting.is_err(), "the turn is taken");
                assert_eq!(users(), Some(2));
                (holder, waiter)
            };
            // The first ends, and the second is cancelled before it runs
            // again.
            let (first, second) = hold_and_wait().await;
            drop(first);
            assert_eq!(users(), Some(1));
            drop(second);
            assert!(lock(&turns).is_empty(), "no push holds or waits");
            // The turn is handed to the waiting push, then forgotten.
            let (a, b) = hold_and_wait().await;
            drop(a);
            let b = b.await;
            assert_eq!(users(), Some(1));
            drop(b);
            assert!(lock(&turns).is_empty());
        });
    }
}
