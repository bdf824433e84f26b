//! FCP durable store: objects, sealed symbols, per-object metadata, pins,
//! retention, per-zone quotas, the ZoneFrontier root pointer and
//! reachability GC (spec §3.6-§3.8), over one [redb] database file and a
//! symbol log of segment files beside it (`<db>.symbols/`, decision 63).
//!
//! The store is sans-clock: every time-dependent call takes `now` (Unix
//! seconds).
//!
//! # Durability
//!
//! Every mutating call runs in one redb write transaction committed with
//! [`redb::Durability::Immediate`] (redb's default: data and the commit
//! record are fsynced) before it returns `Ok`. Symbol bytes it appended to
//! the symbol log are written and synced before that commit, so no committed
//! index entry points at bytes a crash can lose. A call that returned `Ok`
//! survives `kill -9` and power loss; a call that returned `Err` wrote
//! nothing. `tests/crash.rs` kills a writing process at random points and
//! checks every acknowledged write.
//!
//! # Tables
//!
//! All integers are big-endian.
//!
//! | table | key | value |
//! |---|---|---|
//! | `format` | `"version"` | `u64` = [`FORMAT_VERSION`] |
//! | `objects` | `object_id` (32) | canonical CBOR of [`StoredObject`] |
//! | `symbol_runs` | `object_id` (32) `\|\|` `run_no` (4) | index entry v3 (or, from older stores, a run inline, v2), below |
//! | `meta` | `object_id` (32) | canonical CBOR of [`ObjectMeta`] |
//! | `pins` | `object_id` (32) | `u8` = 1 |
//! | `frontiers` | zone id (UTF-8) | `object_id` (32) |
//! | `quotas` | `zone_id_hash` (32) | `max_bytes` (8) `\|\|` zone id (UTF-8) |
//! | `usage` | `zone_id_hash` (32) | `u64` bytes in use |
//! | `segments` | segment number `u32` | (`end` `u64`, `live` `u64`): committed length and bytes still referenced |
//!
//! Symbols are stored in runs: the symbols of one object that one write
//! brought from one sealer through one peer share a single value (layout
//! v2), so a 64 KiB chunk's symbols cost one or two B-tree inserts instead
//! of one per symbol (decision 54 in `docs/spec-decisions.md`). A run with
//! more than one symbol stays within [`MAX_RUN_BYTES`]. A run number counts up
//! per object; `(object_id, esi)` stays the identity of a symbol: a write
//! skips ESIs the object already holds, and reads return one record per ESI.
//!
//! A run's bytes (layout v2) live in the symbol log (module `log`): a write
//! appends its runs to the head segment `NNNNNNNN.seg`, and redb holds an
//! index entry per run (layout v3) that says where the run is and what
//! reads, removals and quotas need without reading it:
//!
//! ```text
//! version u8 = 3 | segment u32 | offset u64 | len u32 | xxh3_64(run) u64
//! | zone_id_hash [32] | ciphertext bytes u64 | count u16 | count × esi u32
//! ```
//!
//! A read checks the run it reads against the entry (checksum, zone, ESIs).
//! A segment's `live` count falls as runs are removed; at 0 (and not the
//! head) the segment file is deleted after the commit; GC ends by moving
//! the live runs of segments at most half live to the head
//! ([`Store::compact_log`]). Open deletes files no
//! row names, cuts each file back to its committed `end` (a torn append) and
//! starts a new head. A run, in the log or inline in a v2 store:
//!
//! ```text
//! version u8 = 2 | k u16 | symbol_size u16 | zone_id_hash [32] | zone_key_id [8]
//! | epoch_id u64 | sender_instance_id u64
//! | source_node_len u8 | source_node | from_node_len u8 | from_node
//! | count u32 (1..=4096)
//! | count × ( esi u32 | frame_seq u64 | tag [16] | ciphertext_len u32 | ciphertext )
//! ```
//!
//! Decoding checks the version, every length and that nothing trails; a
//! value that fails to decode is [`StoreError::Corrupt`], never a panic.
//!
//! # Invariants
//!
//! 1. `usage[h]` = sum of `body.len()` of stored objects whose
//!    `header.zone_id.hash() == h` + sum of `ciphertext.len()` of stored symbols
//!    whose `zone_id_hash == h`. It is updated in the same transaction as the
//!    rows it counts. Symbols are attributed by the `zone_id_hash` they carry
//!    (decision: no hash → zone mapping is needed, and symbols of a zone this
//!    node cannot name still count); quotas are keyed by the zone's hash.
//!    Metadata, pins and frontiers are not counted.
//! 2. A write that would take `usage[h]` above the zone's quota fails with
//!    [`StoreError::QuotaExceeded`] and writes nothing (the whole batch is
//!    refused). Lowering a quota below the usage is allowed; later writes fail.
//! 3. Symbols written for an object that has [`ObjectMeta`] must carry that
//!    zone's hash.
//! 4. Puts are idempotent: an existing object id or `(object_id, esi)` is
//!    left untouched (a run holds each ESI of its object at most once, and no
//!    two runs of an object share an ESI) (use [`Store::set_retention`] to renew a lease).
//! 5. GC (spec §3.7) never removes an object reachable from a root. Roots:
//!    explicit pins, every zone's frontier (the frontier pointer keeps the
//!    latest ZoneFrontier pinned, spec §3.8), and every id whose retention
//!    (from its [`StoredObject`] and/or its [`ObjectMeta`]) is not evictable at
//!    `now` (`Pinned`, unexpired `Lease`). Edges are `header.refs` and
//!    `ObjectMeta::refs`. An unreachable id is removed (object, symbols, meta)
//!    only if every retention it has is evictable at `now`; an id held only as
//!    symbols with no metadata counts as `Ephemeral`.
//!
//! The store does not check that an object's id matches its content (it
//! holds no ObjectIdKey): callers verify ids (`StoredObject::verify_id`) and
//! symbol tags before storing. `ObjectHeader::ttl_secs` is not a GC input;
//! retention is node-local [`StorageMeta`](fcp_core::StorageMeta) only.
//!
//! # Concurrency
//!
//! `Store` is `Send + Sync`; redb runs one write transaction at a time
//! (concurrent writers wait) and reads see the last committed state.
//!
//! # Tests
//!
//! `tests/crash.rs` (kill -9 of a writer process, 40 rounds), `tests/model.rs`
//! (proptest against a BTreeMap model over fault-injecting backends, for the
//! database and every segment, that drop unsynced writes at simulated power
//! cuts), `tests/store.rs` (API, symbol log files).
//!
//! GC reads the whole graph in one write transaction (memory is linear in the
//! number of ids, bodies are decoded); the number of ids removed per call can
//! be bounded with [`Store::gc_with_limit`].

#![forbid(unsafe_code)]

mod error;
mod log;
mod record;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use fcp_core::cbor::from_canonical_strict;
use fcp_core::{ObjectId, RetentionClass, StoredObject, ZoneId, to_canonical};
use redb::{
    Database, Durability, ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction,
};

pub use error::{Result, StoreError};
use log::Log;
pub use log::{FileSegments, MemSegments, SEGMENT_BYTES, Segment, SegmentDir};
pub use record::{
    GcReport, MAX_NODE_ID_LEN, MAX_RUN_BYTES, MAX_RUN_SYMBOLS, ObjectMeta, PutSymbols,
    SYMBOL_INDEX_V3, SYMBOL_LAYOUT_V2, SymbolRecord,
};
use record::{
    LogRef, RunEntry, encode_run_into, parse_run, parse_run_key, run_header_len, run_key,
    run_symbol_len, same_run,
};

/// Version of the table layout written to the `format` table (3: symbol
/// runs in the symbol log). A version 2 store (runs inline) opens and is
/// marked 3: its inline runs stay readable, new runs go to the log.
pub const FORMAT_VERSION: u64 = 3;

type Bytes = &'static [u8];

const FORMAT: TableDefinition<&str, u64> = TableDefinition::new("format");
const OBJECTS: TableDefinition<Bytes, Bytes> = TableDefinition::new("objects");
const SYMBOLS: TableDefinition<Bytes, Bytes> = TableDefinition::new("symbol_runs");
const META: TableDefinition<Bytes, Bytes> = TableDefinition::new("meta");
const PINS: TableDefinition<Bytes, u8> = TableDefinition::new("pins");
const FRONTIERS: TableDefinition<&str, Bytes> = TableDefinition::new("frontiers");
const QUOTAS: TableDefinition<Bytes, Bytes> = TableDefinition::new("quotas");
const USAGE: TableDefinition<Bytes, u64> = TableDefinition::new("usage");
const SEGMENTS: TableDefinition<u32, (u64, u64)> = TableDefinition::new("segments");

/// The durable store. One per database file; the file is locked while open.
pub struct Store {
    db: Database,
    log: Log,
    path: Option<PathBuf>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

// ---------------------------------------------------------------------------
// Decoding helpers (shared by read and write transactions)
// ---------------------------------------------------------------------------

fn corrupt(what: &str, e: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn object_id_from(bytes: &[u8]) -> Result<ObjectId> {
    let b: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("object id is not 32 bytes".into()))?;
    Ok(ObjectId::from_bytes(b))
}

fn decode_object(id: &ObjectId, bytes: &[u8]) -> Result<StoredObject> {
    let obj: StoredObject = from_canonical_strict(bytes).map_err(|e| corrupt("object", e))?;
    if obj.object_id != *id {
        return Err(StoreError::Corrupt(format!(
            "object stored under {id} names itself {}",
            obj.object_id
        )));
    }
    Ok(obj)
}

fn decode_meta(bytes: &[u8]) -> Result<ObjectMeta> {
    from_canonical_strict(bytes).map_err(|e| corrupt("object meta", e))
}

fn get_object_in(
    t: &impl ReadableTable<Bytes, Bytes>,
    id: &ObjectId,
) -> Result<Option<StoredObject>> {
    match t.get(id.as_bytes().as_slice())? {
        Some(v) => decode_object(id, v.value()).map(Some),
        None => Ok(None),
    }
}

fn get_meta_in(t: &impl ReadableTable<Bytes, Bytes>, id: &ObjectId) -> Result<Option<ObjectMeta>> {
    match t.get(id.as_bytes().as_slice())? {
        Some(v) => decode_meta(v.value()).map(Some),
        None => Ok(None),
    }
}

/// Inclusive key range of all symbol runs of `id`.
fn run_range(id: &ObjectId) -> ([u8; 36], [u8; 36]) {
    (run_key(id, 0), run_key(id, u32::MAX))
}

/// A run's checksum: XXH3-64, seed 0 (the frame checksum's function, from
/// the same crate, which picks AVX2 at run time).
fn checksum(bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(bytes)
}

/// The bytes of the log run `r` points at, checked against its checksum;
/// `None` if its segment was deleted after the caller's snapshot.
fn read_run(log: &Log, r: &LogRef) -> Result<Option<Vec<u8>>> {
    let Some(bytes) = log.read(r.segment, r.offset, r.len)? else {
        return Ok(None);
    };
    if checksum(&bytes) != r.checksum {
        return Err(StoreError::Corrupt(format!(
            "symbol run in segment {} at {}: checksum mismatch",
            r.segment, r.offset
        )));
    }
    Ok(Some(bytes))
}

/// Parse the run `r` points at from its bytes and check that it is the run
/// indexed (zone, bytes, ESIs).
fn indexed_view<'b>(r: &LogRef, bytes: &'b [u8]) -> Result<record::RunView<'b>> {
    let view = parse_run(bytes)?;
    if !r.matches(&view) {
        return Err(StoreError::Corrupt(format!(
            "symbol run in segment {} at {} is not the run indexed",
            r.segment, r.offset
        )));
    }
    Ok(view)
}

/// The symbols of `id` that `choose` picks from the ESIs held (ascending,
/// each once), in the order it lists them; ESIs not held are skipped. Only
/// the log runs holding a chosen symbol are read (one read each, checked
/// against the index entry's checksum and ESIs), and their records share
/// that read's buffer. `None`: a segment this snapshot points into was
/// deleted since (its runs moved by compaction, or removed); read again.
fn chosen_in_table(
    t: &impl ReadableTable<Bytes, Bytes>,
    log: &Log,
    id: &ObjectId,
    choose: &mut dyn FnMut(&[u32]) -> Vec<u32>,
) -> Result<Option<Vec<SymbolRecord>>> {
    let (lo, hi) = run_range(id);
    let values = t
        .range(lo.as_slice()..=hi.as_slice())?
        .map(|e| e.map(|(_, v)| v))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let entries = values
        .iter()
        .map(|v| RunEntry::parse(v.value()))
        .collect::<Result<Vec<_>>>()?;
    // Runs never share an ESI (invariant 4); should they, the first wins.
    let mut at: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for (ri, entry) in entries.iter().enumerate() {
        for (si, esi) in entry.esis().enumerate() {
            at.entry(esi).or_insert((ri, si));
        }
    }
    let held: Vec<u32> = at.keys().copied().collect();
    let picked: Vec<(usize, usize)> = choose(&held)
        .into_iter()
        .filter_map(|esi| at.get(&esi).copied())
        .collect();
    // Read each log run that holds a picked symbol once.
    let mut loaded: Vec<Option<bytes::Bytes>> = vec![None; entries.len()];
    for &(ri, _) in &picked {
        if let (Some(RunEntry::Log(r)), Some(slot @ None)) = (entries.get(ri), loaded.get_mut(ri)) {
            let Some(buf) = read_run(log, r)? else {
                return Ok(None);
            };
            *slot = Some(bytes::Bytes::from(buf));
        }
    }
    let mut views = Vec::with_capacity(entries.len());
    for (entry, buf) in entries.iter().zip(&loaded) {
        views.push(match (entry, buf) {
            (RunEntry::Log(r), Some(b)) => Some(indexed_view(r, b)?),
            _ => None,
        });
    }
    Ok(Some(
        picked
            .into_iter()
            .filter_map(|(ri, si)| match entries.get(ri)? {
                RunEntry::Inline(v) => v.record(si, *id, None),
                RunEntry::Log(_) => {
                    views
                        .get(ri)?
                        .as_ref()?
                        .record(si, *id, loaded.get(ri)?.as_ref())
                }
            })
            .collect(),
    ))
}

/// The ESIs `id` holds and the next free run number.
fn held_esis(t: &impl ReadableTable<Bytes, Bytes>, id: &ObjectId) -> Result<(BTreeSet<u32>, u32)> {
    let (lo, hi) = run_range(id);
    let mut esis = BTreeSet::new();
    let mut next = 0u32;
    for entry in t.range(lo.as_slice()..=hi.as_slice())? {
        let (k, v) = entry?;
        let (_, run_no) = parse_run_key(k.value())?;
        next = run_no
            .checked_add(1)
            .ok_or_else(|| StoreError::InvalidRecord("symbol run numbers exhausted".into()))?;
        let entry = RunEntry::parse(v.value())?;
        esis.extend(entry.esis());
    }
    Ok((esis, next))
}

fn quota_in(
    t: &impl ReadableTable<Bytes, Bytes>,
    hash: &[u8; 32],
) -> Result<Option<(u64, ZoneId)>> {
    let Some(v) = t.get(hash.as_slice())? else {
        return Ok(None);
    };
    let v = v.value();
    let (max, zone) = v
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt("short quota record".into()))?;
    let zone = std::str::from_utf8(zone)
        .ok()
        .and_then(|s| ZoneId::new(s).ok())
        .ok_or_else(|| StoreError::Corrupt("bad zone id in quota record".into()))?;
    Ok(Some((u64::from_be_bytes(*max), zone)))
}

// ---------------------------------------------------------------------------
// Write transaction with every table open
// ---------------------------------------------------------------------------

/// What one write transaction appends to the symbol log and frees in it.
struct LogTxn<'a> {
    log: &'a Log,
    /// The head segment before this transaction (kept, even with nothing
    /// live, for as long as it is the head).
    head: u32,
    /// Segment the appends go to (the head, or the next one when the head
    /// is full) and where they start in it.
    segment: u32,
    base: u64,
    /// Bytes of this transaction already written to the segment (unsynced).
    written: u64,
    /// Encoded runs not written yet; written once they pass
    /// [`LOG_WRITE_BYTES`], so a large batch is copied while it is in cache.
    buf: Vec<u8>,
    /// Run bytes removed, per segment.
    freed: BTreeMap<u32, u64>,
}

/// A write transaction hands the log its encoded runs in pieces of about
/// this size (synced once, before the commit).
const LOG_WRITE_BYTES: usize = 1 << 20;

impl<'a> LogTxn<'a> {
    /// Appending to `segment` from `base`, with `head` the head before.
    fn new(log: &'a Log, head: u32, segment: u32, base: u64) -> Self {
        Self {
            log,
            head,
            segment,
            base,
            written: 0,
            buf: Vec::new(),
            freed: BTreeMap::new(),
        }
    }

    /// Make room in the buffer for a run of `len` bytes (writing out what
    /// it holds if the run would take it past [`LOG_WRITE_BYTES`]) and
    /// return where in the segment the run will lie.
    fn room_for(&mut self, len: usize) -> Result<u64> {
        if self.buf.len() + len > LOG_WRITE_BYTES {
            self.write_out()?;
        }
        if self.buf.capacity() == 0 {
            // One allocation for the whole transaction: the buffer is
            // written out before it would outgrow this.
            self.buf.reserve(LOG_WRITE_BYTES.max(len));
        }
        Ok(self.base + self.written + self.buf.len() as u64)
    }

    /// Write what is buffered (not synced).
    fn write_out(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.log
                .write(self.segment, self.base + self.written, &self.buf)?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Bytes this transaction appends.
    fn appended(&self) -> u64 {
        self.written + self.buf.len() as u64
    }
}

/// Each item's meta and symbols, written in `w`'s transaction one after
/// another: an outer error fails the transaction, an inner one refused that
/// item alone (see [`W::put_meta_and_symbols`]).
fn put_items<'a>(
    w: &'a mut W<'_>,
    items: &'a [(ObjectId, ObjectMeta, Vec<SymbolRecord>)],
) -> impl Iterator<Item = Result<Result<PutSymbols>>> + 'a {
    items.iter().map(move |(id, meta, records)| {
        match to_canonical(meta).map_err(|e| StoreError::InvalidRecord(e.to_string())) {
            Ok(value) => w.put_meta_and_symbols(id, meta, &value, records),
            Err(e) => Ok(Err(e)),
        }
    })
}

/// A symbol write worked out and checked, not yet written.
struct SymbolPlan<'r> {
    report: PutSymbols,
    /// Zones' usage after the write.
    usage: Vec<([u8; 32], u64)>,
    /// Each run with its value's length.
    runs: Vec<([u8; 36], Vec<&'r SymbolRecord>, usize)>,
}

struct W<'t> {
    log: LogTxn<'t>,
    segments: Table<'t, u32, (u64, u64)>,
    objects: Table<'t, Bytes, Bytes>,
    symbols: Table<'t, Bytes, Bytes>,
    meta: Table<'t, Bytes, Bytes>,
    pins: Table<'t, Bytes, u8>,
    frontiers: Table<'t, &'static str, Bytes>,
    quotas: Table<'t, Bytes, Bytes>,
    usage: Table<'t, Bytes, u64>,
}

impl<'t> W<'t> {
    /// Open every table, appending to the log after `head`'s committed end.
    fn open(txn: &'t WriteTransaction, log: &'t Log, head: u32) -> Result<Self> {
        let segments = txn.open_table(SEGMENTS)?;
        // Appends start at the committed end the `segments` table holds (so
        // a commit that failed yet became durable is never written over), in
        // the next segment once the head is full.
        let end_of = |n: u32| -> Result<u64> { Ok(segments.get(n)?.map_or(0, |v| v.value().0)) };
        let (mut segment, mut base) = (head, end_of(head)?);
        if base >= SEGMENT_BYTES {
            segment = head
                .checked_add(1)
                .ok_or_else(|| StoreError::Corrupt("symbol segment numbers exhausted".into()))?;
            base = end_of(segment)?;
        }
        Ok(Self {
            log: LogTxn::new(log, head, segment, base),
            segments,
            objects: txn.open_table(OBJECTS)?,
            symbols: txn.open_table(SYMBOLS)?,
            meta: txn.open_table(META)?,
            pins: txn.open_table(PINS)?,
            frontiers: txn.open_table(FRONTIERS)?,
            quotas: txn.open_table(QUOTAS)?,
            usage: txn.open_table(USAGE)?,
        })
    }

    fn used(&self, hash: &[u8; 32]) -> Result<u64> {
        Ok(self
            .usage
            .get(hash.as_slice())?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// A zone's usage after adding `bytes`, refused past its quota (nothing
    /// is written).
    fn charged(&self, hash: &[u8; 32], bytes: u64) -> Result<u64> {
        let used = self.used(hash)?;
        let total = used.checked_add(bytes);
        if let Some((limit, zone)) = quota_in(&self.quotas, hash)?
            && total.is_none_or(|t| t > limit)
        {
            return Err(StoreError::QuotaExceeded {
                zone,
                used,
                requested: bytes,
                limit,
            });
        }
        total.ok_or_else(|| StoreError::InvalidRecord("usage overflow".into()))
    }

    /// Add `bytes` to a zone's usage, refusing to pass its quota.
    fn charge(&mut self, hash: &[u8; 32], bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let total = self.charged(hash, bytes)?;
        self.usage.insert(hash.as_slice(), total)?;
        Ok(())
    }

    /// Subtract `bytes` from a zone's usage.
    fn release(&mut self, hash: &[u8; 32], bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let left = self.used(hash)?.saturating_sub(bytes);
        if left == 0 {
            self.usage.remove(hash.as_slice())?;
        } else {
            self.usage.insert(hash.as_slice(), left)?;
        }
        Ok(())
    }

    fn put_object(&mut self, obj: &StoredObject) -> Result<bool> {
        let key = obj.object_id.as_bytes().as_slice();
        if self.objects.get(key)?.is_some() {
            return Ok(false);
        }
        let value = to_canonical(obj).map_err(|e| StoreError::InvalidRecord(e.to_string()))?;
        self.charge(obj.header.zone_id.hash().as_bytes(), obj.body.len() as u64)?;
        self.objects.insert(key, value.as_slice())?;
        Ok(true)
    }

    /// Remove the object row; returns the body bytes freed, if it existed.
    fn remove_object(&mut self, id: &ObjectId) -> Result<Option<u64>> {
        let Some(obj) = get_object_in(&self.objects, id)? else {
            return Ok(None);
        };
        self.objects.remove(id.as_bytes().as_slice())?;
        let bytes = obj.body.len() as u64;
        self.release(obj.header.zone_id.hash().as_bytes(), bytes)?;
        Ok(Some(bytes))
    }

    fn put_symbols(&mut self, records: &[SymbolRecord]) -> Result<PutSymbols> {
        let plan = self.plan_symbols(records, None)?;
        self.write_symbols(plan)
    }

    /// Write `id`'s meta row (`meta`, encoded as `value`) unless the object
    /// is already known, and its symbols, checked against the meta's zone.
    ///
    /// The outer error failed the transaction; the inner one refused this
    /// object alone, before anything of it was written, so a group commit
    /// keeps the other objects (decision 65). An object already known keeps
    /// its meta: another zone, `k` or symbol size is refused, not
    /// relabelled.
    fn put_meta_and_symbols(
        &mut self,
        id: &ObjectId,
        meta: &ObjectMeta,
        value: &[u8],
        records: &[SymbolRecord],
    ) -> Result<Result<PutSymbols>> {
        let zone = *meta.zone_id.hash().as_bytes();
        let checked = self.known_meta(id, meta).and_then(|known| {
            let plan = self.plan_symbols(records, Some((id, zone)))?;
            Ok((known, plan))
        });
        let (known, plan) = match checked {
            Ok(c) => c,
            // A read that failed fails the transaction; a refusal, this object.
            Err(e @ (StoreError::InvalidRecord(_) | StoreError::QuotaExceeded { .. })) => {
                return Ok(Err(e));
            }
            Err(e) => return Err(e),
        };
        if !known {
            self.meta.insert(id.as_bytes().as_slice(), value)?;
        }
        self.write_symbols(plan).map(Ok)
    }

    /// Whether `id` already has a meta row; an error if that row
    /// disagrees with `meta` on the zone, `k` or the symbol size.
    fn known_meta(&self, id: &ObjectId, meta: &ObjectMeta) -> Result<bool> {
        let Some(held) = get_meta_in(&self.meta, id)? else {
            return Ok(false);
        };
        if held.zone_id != meta.zone_id || held.k != meta.k || held.symbol_size != meta.symbol_size
        {
            return Err(StoreError::InvalidRecord(format!(
                "object {id} is held as {} (k {}, symbol size {}), not as {} (k {}, symbol size {})",
                held.zone_id, held.k, held.symbol_size, meta.zone_id, meta.k, meta.symbol_size
            )));
        }
        Ok(true)
    }

    /// Check `records` and work out their runs and charges without writing
    /// anything. `meta` is an object whose meta row this transaction is
    /// writing, with its zone hash (not read back).
    fn plan_symbols<'r>(
        &self,
        records: &'r [SymbolRecord],
        meta: Option<(&ObjectId, [u8; 32])>,
    ) -> Result<SymbolPlan<'r>> {
        let mut report = PutSymbols::default();
        // Per object: ESIs held or already taken from this batch, next run
        // number, and the meta zone (invariant 3).
        type Held = (BTreeSet<u32>, u32, Option<[u8; 32]>);
        let mut objects: BTreeMap<ObjectId, Held> = BTreeMap::new();
        let mut charges: BTreeMap<[u8; 32], u64> = BTreeMap::new();
        // Each run with its value's length so far.
        let mut runs: Vec<([u8; 36], Vec<&SymbolRecord>, usize)> = Vec::new();
        for r in records {
            let obj = match objects.entry(r.object_id) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let (esis, next) = held_esis(&self.symbols, &r.object_id)?;
                    let zone = match meta {
                        Some((id, zone)) if *id == r.object_id => Some(zone),
                        _ => get_meta_in(&self.meta, &r.object_id)?
                            .map(|m| *m.zone_id.hash().as_bytes()),
                    };
                    e.insert((esis, next, zone))
                }
            };
            // What `encode_run_into` would refuse is refused here, before
            // anything is written (a refusal must not fail a group commit).
            record::check_node_ids(r)?;
            if obj.2.is_some_and(|z| z != r.zone_id_hash) {
                return Err(StoreError::InvalidRecord(format!(
                    "symbol {} of object {} carries a zone hash other than its meta's zone",
                    r.esi, r.object_id
                )));
            }
            if !obj.0.insert(r.esi) {
                report.duplicates += 1;
                continue;
            }
            let c = charges.entry(r.zone_id_hash).or_insert(0);
            *c = c.saturating_add(r.quota_bytes());
            // Extend the last run of this object if the record fits it.
            let extend = runs.last().is_some_and(|(_, run, len)| {
                run.len() < MAX_RUN_SYMBOLS
                    && len + run_symbol_len(r) <= MAX_RUN_BYTES
                    && run.first().is_some_and(|f| same_run(f, r))
            });
            match runs.last_mut() {
                Some((_, run, len)) if extend => {
                    run.push(r);
                    *len += run_symbol_len(r);
                }
                _ => {
                    let key = run_key(&r.object_id, obj.1);
                    obj.1 = obj.1.checked_add(1).ok_or_else(|| {
                        StoreError::InvalidRecord("symbol run numbers exhausted".into())
                    })?;
                    runs.push((key, vec![r], run_header_len(r) + run_symbol_len(r)));
                }
            }
            report.inserted += 1;
        }
        let usage = charges
            .into_iter()
            .filter(|(_, bytes)| *bytes > 0)
            .map(|(hash, bytes)| Ok((hash, self.charged(&hash, bytes)?)))
            .collect::<Result<_>>()?;
        Ok(SymbolPlan {
            report,
            usage,
            runs,
        })
    }

    /// Write what [`W::plan_symbols`] worked out; an error here fails the
    /// transaction.
    fn write_symbols(&mut self, plan: SymbolPlan<'_>) -> Result<PutSymbols> {
        let SymbolPlan {
            report,
            usage,
            runs,
        } = plan;
        for (hash, total) in &usage {
            self.usage.insert(hash.as_slice(), *total)?;
        }
        // spec §3.6 durability: the run bytes go to the symbol log, which is
        // synced before the commit that indexes them (decision 63).
        for (key, run, len) in &runs {
            let offset = self.log.room_for(*len)?;
            let start = self.log.buf.len();
            encode_run_into(&mut self.log.buf, run)?;
            let bytes = self.log.buf.get(start..).unwrap_or_default();
            let entry = LogRef {
                segment: self.log.segment,
                offset,
                len: u32::try_from(bytes.len())
                    .map_err(|_| StoreError::InvalidRecord("symbol run over 4 GiB".into()))?,
                checksum: checksum(bytes),
                zone_id_hash: run.first().map(|r| r.zone_id_hash).unwrap_or_default(),
                bytes: run.iter().map(|r| r.quota_bytes()).sum(),
                esis: run.iter().map(|r| r.esi).collect(),
            };
            self.symbols
                .insert(key.as_slice(), entry.encode()?.as_slice())?;
        }
        Ok(report)
    }

    /// Move the live runs of every segment at most half live (not the
    /// head) to the head, so that the segment's file goes after the commit
    /// (decision 63). Returns the run bytes moved.
    fn compact_log(&mut self) -> Result<u64> {
        let keep = [self.log.head, self.log.segment];
        let mut victims = BTreeSet::new();
        for entry in self.segments.iter()? {
            let (k, v) = entry?;
            let (n, (end, live)) = (k.value(), v.value());
            let live = live.saturating_sub(self.log.freed.get(&n).copied().unwrap_or(0));
            if !keep.contains(&n) && live > 0 && live.saturating_mul(2) <= end {
                victims.insert(n);
            }
        }
        if victims.is_empty() {
            return Ok(0);
        }
        let mut moves = Vec::new();
        for entry in self.symbols.iter()? {
            let (k, v) = entry?;
            if let RunEntry::Log(r) = RunEntry::parse(v.value())?
                && victims.contains(&r.segment)
            {
                moves.push((k.value().to_vec(), r));
            }
        }
        let mut moved = 0u64;
        for (key, mut r) in moves {
            // Victims have rows, so their files are there.
            let bytes = read_run(self.log.log, &r)?.ok_or_else(|| {
                StoreError::Corrupt(format!("symbol segment {} is gone", r.segment))
            })?;
            *self.log.freed.entry(r.segment).or_insert(0) += u64::from(r.len);
            r.segment = self.log.segment;
            r.offset = self.log.room_for(bytes.len())?;
            self.log.buf.extend_from_slice(&bytes);
            self.symbols
                .insert(key.as_slice(), r.encode()?.as_slice())?;
            moved += u64::from(r.len);
        }
        Ok(moved)
    }

    /// Record this transaction's appends and frees in the `segments` table.
    /// Returns the segments left with nothing live, to delete after the
    /// commit; the head after the commit is never among them.
    fn settle_log(&mut self) -> Result<Vec<u32>> {
        let appended = self.log.appended();
        // The head after the commit: where the appends went, else unchanged.
        let head = if appended > 0 {
            self.log.segment
        } else {
            self.log.head
        };
        if appended > 0 {
            let n = self.log.segment;
            let live = self.segments.get(n)?.map_or(0, |v| v.value().1);
            let end = self.log.base.saturating_add(appended);
            self.segments
                .insert(n, (end, live.saturating_add(appended)))?;
        }
        // The segments this transaction freed runs in, and a former head it
        // rolls past (which may have emptied while it was the head).
        let mut check = self.log.freed.clone();
        if head != self.log.head {
            check.entry(self.log.head).or_insert(0);
        }
        let mut dead = Vec::new();
        for (n, freed) in check {
            let Some((end, live)) = self.segments.get(n)?.map(|v| v.value()) else {
                if freed > 0 {
                    return Err(StoreError::Corrupt(format!(
                        "symbol runs point into unknown segment {n}"
                    )));
                }
                continue;
            };
            let left = live.saturating_sub(freed);
            if left == 0 && n != head {
                self.segments.remove(n)?;
                dead.push(n);
            } else if freed > 0 {
                self.segments.insert(n, (end, left))?;
            }
        }
        Ok(dead)
    }

    /// Remove all symbols of `id`; returns (count, ciphertext bytes).
    fn remove_symbols(&mut self, id: &ObjectId) -> Result<(usize, u64)> {
        let (lo, hi) = run_range(id);
        let mut found = Vec::new();
        for entry in self.symbols.range(lo.as_slice()..=hi.as_slice())? {
            let (k, v) = entry?;
            let run = RunEntry::parse(v.value())?;
            if let RunEntry::Log(r) = &run {
                *self.log.freed.entry(r.segment).or_insert(0) += u64::from(r.len);
            }
            let (hash, bytes) = run.charge();
            found.push((k.value().to_vec(), hash, run.len(), bytes));
        }
        let (mut count, mut bytes) = (0usize, 0u64);
        let mut per_zone: BTreeMap<[u8; 32], u64> = BTreeMap::new();
        for (k, hash, n, len) in &found {
            self.symbols.remove(k.as_slice())?;
            // Index values are data: a damaged one must not overflow.
            let z = per_zone.entry(*hash).or_insert(0);
            *z = z.saturating_add(*len);
            count += n;
            bytes = bytes.saturating_add(*len);
        }
        for (hash, len) in &per_zone {
            self.release(hash, *len)?;
        }
        Ok((count, bytes))
    }

    fn gc(&mut self, now: u64, limit: usize) -> Result<GcReport> {
        #[derive(Default)]
        struct Node {
            refs: Vec<ObjectId>,
            retentions: Vec<RetentionClass>,
            has_object: bool,
        }
        let mut nodes: BTreeMap<ObjectId, Node> = BTreeMap::new();
        for entry in self.objects.iter()? {
            let (k, v) = entry?;
            let id = object_id_from(k.value())?;
            let obj = decode_object(&id, v.value())?;
            let n = nodes.entry(id).or_default();
            n.refs.extend(obj.header.refs);
            n.retentions.push(obj.storage.retention);
            n.has_object = true;
        }
        for entry in self.meta.iter()? {
            let (k, v) = entry?;
            let meta = decode_meta(v.value())?;
            let n = nodes.entry(object_id_from(k.value())?).or_default();
            n.refs.extend(meta.refs);
            n.retentions.push(meta.retention);
        }
        let mut last: Option<ObjectId> = None;
        for entry in self.symbols.iter()? {
            let (k, _) = entry?;
            let (id, _) = parse_run_key(k.value())?;
            if last != Some(id) {
                nodes.entry(id).or_default();
                last = Some(id);
            }
        }

        // Roots (spec §3.7): pins, frontiers, non-evictable retention.
        let mut queue: VecDeque<ObjectId> = VecDeque::new();
        for entry in self.pins.iter()? {
            queue.push_back(object_id_from(entry?.0.value())?);
        }
        for entry in self.frontiers.iter()? {
            queue.push_back(object_id_from(entry?.1.value())?);
        }
        for (id, n) in &nodes {
            if n.retentions.iter().any(|r| !r.evictable_at(now)) {
                queue.push_back(*id);
            }
        }
        // Mark.
        let mut live = BTreeSet::new();
        while let Some(id) = queue.pop_front() {
            if live.insert(id)
                && let Some(n) = nodes.get(&id)
            {
                queue.extend(n.refs.iter().copied());
            }
        }
        // Sweep.
        let mut report = GcReport {
            live: live.len() as u64,
            ..GcReport::default()
        };
        let mut removed = 0usize;
        for (id, n) in &nodes {
            if live.contains(id) || !n.retentions.iter().all(|r| r.evictable_at(now)) {
                continue;
            }
            if removed >= limit {
                report.truncated = true;
                break;
            }
            removed += 1;
            let body = self.remove_object(id)?.unwrap_or(0);
            let (_, sym_bytes) = self.remove_symbols(id)?;
            self.meta.remove(id.as_bytes().as_slice())?;
            if n.has_object {
                report.removed_objects += 1;
            } else {
                report.removed_symbol_objects += 1;
            }
            report.bytes_freed = report
                .bytes_freed
                .saturating_add(body.saturating_add(sym_bytes));
        }
        // What the sweep left of half-dead segments moves, so their files go.
        self.compact_log()?;
        Ok(report)
    }
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

impl Store {
    /// Open the database at `path`, creating it if absent. Opening runs
    /// redb's recovery if the last writer died mid-commit.
    /// Its symbol log lives in the directory [`Store::segments_dir`] names.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        // The database lock is taken first: it also guards the log.
        let db = Database::create(&path)?;
        let dir = Self::segments_dir(&path);
        let segments = FileSegments::new(&dir)
            .map_err(|e| StoreError::Io(format!("symbol log {}: {e}", dir.display())))?;
        Self::init(db, Box::new(segments), Some(path))
    }

    /// The symbol log directory of the database at `path`:
    /// `<path>.symbols`.
    pub fn segments_dir(path: &Path) -> PathBuf {
        let mut dir = path.as_os_str().to_owned();
        dir.push(".symbols");
        PathBuf::from(dir)
    }

    /// Open a store over a custom redb storage backend (e.g.
    /// [`redb::backends::InMemoryBackend`]) with its symbol log in memory,
    /// creating the tables if absent.
    pub fn open_with_backend(backend: impl redb::StorageBackend) -> Result<Self> {
        Self::open_with_backends(backend, MemSegments::default())
    }

    /// Open a store over a custom redb backend and symbol log (a test's
    /// fault-injecting disk).
    pub fn open_with_backends(
        backend: impl redb::StorageBackend,
        segments: impl SegmentDir,
    ) -> Result<Self> {
        let db = Database::builder().create_with_backend(backend)?;
        Self::init(db, Box::new(segments), None)
    }

    fn init(db: Database, segments: Box<dyn SegmentDir>, path: Option<PathBuf>) -> Result<Self> {
        let txn = db.begin_write()?;
        let log = {
            // Create every table of this layout.
            txn.open_table(OBJECTS)?;
            txn.open_table(SYMBOLS)?;
            txn.open_table(META)?;
            txn.open_table(PINS)?;
            txn.open_table(FRONTIERS)?;
            txn.open_table(QUOTAS)?;
            txn.open_table(USAGE)?;
            let mut table = txn.open_table(SEGMENTS)?;
            let mut format = txn.open_table(FORMAT)?;
            let found = format.get("version")?.map(|v| v.value());
            match found {
                None | Some(2) => {
                    format.insert("version", FORMAT_VERSION)?;
                }
                Some(FORMAT_VERSION) => {}
                Some(v) => {
                    return Err(StoreError::Corrupt(format!(
                        "store format version {v}, this build reads {FORMAT_VERSION}"
                    )));
                }
            }
            let mut rows = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                let (end, live) = v.value();
                rows.push((k.value(), end, live));
            }
            let (log, dead) = Log::open(segments, &rows)?;
            for n in dead {
                table.remove(n)?;
            }
            log
        };
        txn.commit()?;
        Ok(Self { db, log, path })
    }

    /// The database file path (`None` for a custom backend).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Run redb's full integrity check (and repair of allocator state),
    /// then check the symbol log: every indexed run lies within its
    /// segment's committed end and matches its checksum, and each segment's
    /// live count is the sum of the runs indexed in it. `Ok(true)` if the
    /// database file was already consistent; a log fault is
    /// [`StoreError::Corrupt`].
    pub fn check_integrity(&mut self) -> Result<bool> {
        let clean = self.db.check_integrity()?;
        self.read(|t| {
            let mut rows: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
            for entry in t.open_table(SEGMENTS)?.iter()? {
                let (k, v) = entry?;
                rows.insert(k.value(), v.value());
            }
            let mut live: BTreeMap<u32, u64> = BTreeMap::new();
            for entry in t.open_table(SYMBOLS)?.iter()? {
                let (k, v) = entry?;
                let RunEntry::Log(r) = RunEntry::parse(v.value())? else {
                    continue;
                };
                let (id, _) = parse_run_key(k.value())?;
                let end = rows.get(&r.segment).map(|row| row.0).unwrap_or(0);
                if r.offset.saturating_add(u64::from(r.len)) > end {
                    return Err(StoreError::Corrupt(format!(
                        "symbol run of {id} lies past segment {}'s committed end",
                        r.segment
                    )));
                }
                let bytes = read_run(&self.log, &r)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("symbol segment {} is gone", r.segment))
                })?;
                indexed_view(&r, &bytes)?;
                *live.entry(r.segment).or_insert(0) += u64::from(r.len);
            }
            for (n, (_, count)) in &rows {
                if live.get(n).copied().unwrap_or(0) != *count {
                    return Err(StoreError::Corrupt(format!(
                        "symbol segment {n} counts {count} live bytes, its runs add up to {}",
                        live.get(n).copied().unwrap_or(0)
                    )));
                }
            }
            Ok(())
        })?;
        Ok(clean)
    }

    fn write<T>(&self, f: impl FnOnce(&mut W<'_>) -> Result<T>) -> Result<T> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        // redb runs one write transaction at a time, so the head is ours
        // until the commit.
        let mut head = self.log.head.lock().map_err(log::poisoned)?;
        let out = (|| {
            let mut w = W::open(&txn, &self.log, *head)?;
            let segment = w.log.segment;
            let v = f(&mut w)?;
            let dead = w.settle_log()?;
            // The appended runs reach the segment, synced, before the commit
            // that indexes them.
            w.log.write_out()?;
            let appended = w.log.appended();
            if appended > 0 {
                self.log.sync(segment)?;
            }
            Ok((v, dead, appended, segment))
        })();
        match out {
            Ok((v, dead, appended, segment)) => {
                txn.commit()?;
                if appended > 0 {
                    *head = segment;
                }
                self.log.delete(&dead);
                Ok(v)
            }
            Err(e) => {
                // Nothing of a failed call is committed; bytes it appended lie
                // past the segment's committed end and are overwritten. An
                // abort error is secondary to the one being reported.
                let _ = txn.abort();
                Err(e)
            }
        }
    }

    fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read()?;
        f(&txn)
    }

    // ---- objects ----------------------------------------------------------

    /// Store an object durably. Returns `false` (and changes nothing) if the
    /// id is already stored. Fails with [`StoreError::QuotaExceeded`] if the
    /// body would take its zone over quota.
    pub fn put_object(&self, obj: &StoredObject) -> Result<bool> {
        self.write(|w| w.put_object(obj))
    }

    /// The object, if stored.
    pub fn get_object(&self, id: &ObjectId) -> Result<Option<StoredObject>> {
        self.read(|t| get_object_in(&t.open_table(OBJECTS)?, id))
    }

    /// Whether the object (not just symbols) is stored.
    pub fn has_object(&self, id: &ObjectId) -> Result<bool> {
        self.read(|t| {
            Ok(t.open_table(OBJECTS)?
                .get(id.as_bytes().as_slice())?
                .is_some())
        })
    }

    /// Remove the object row (not its symbols, meta, pin or frontier).
    /// Returns whether it existed.
    pub fn remove_object(&self, id: &ObjectId) -> Result<bool> {
        self.write(|w| Ok(w.remove_object(id)?.is_some()))
    }

    /// Ids of stored objects, optionally only those of `zone`, in id order.
    pub fn list_objects(&self, zone: Option<&ZoneId>) -> Result<Vec<ObjectId>> {
        self.read(|t| {
            let mut out = Vec::new();
            for entry in t.open_table(OBJECTS)?.iter()? {
                let (k, v) = entry?;
                let id = object_id_from(k.value())?;
                if let Some(z) = zone
                    && decode_object(&id, v.value())?.header.zone_id != *z
                {
                    continue;
                }
                out.push(id);
            }
            Ok(out)
        })
    }

    /// Change the retention of the object and/or its meta (e.g. renew a
    /// lease). Returns whether either existed.
    pub fn set_retention(&self, id: &ObjectId, retention: RetentionClass) -> Result<bool> {
        self.write(|w| {
            let key = id.as_bytes().as_slice();
            let mut found = false;
            if let Some(mut obj) = get_object_in(&w.objects, id)? {
                obj.storage.retention = retention;
                let v = to_canonical(&obj).map_err(|e| StoreError::InvalidRecord(e.to_string()))?;
                w.objects.insert(key, v.as_slice())?;
                found = true;
            }
            if let Some(mut meta) = get_meta_in(&w.meta, id)? {
                meta.retention = retention;
                let v =
                    to_canonical(&meta).map_err(|e| StoreError::InvalidRecord(e.to_string()))?;
                w.meta.insert(key, v.as_slice())?;
                found = true;
            }
            Ok(found)
        })
    }

    // ---- symbols ----------------------------------------------------------

    /// Store symbols in one durable transaction. Records whose
    /// `(object_id, esi)` is already stored are ignored and counted as
    /// duplicates. The batch is refused as a whole on a quota or validation
    /// failure.
    pub fn put_symbols(&self, records: &[SymbolRecord]) -> Result<PutSymbols> {
        self.write(|w| w.put_symbols(records))
    }

    /// Write an object's meta (unless it is already known) and symbols in
    /// one durable transaction. An object already known under another
    /// zone, `k` or symbol size is refused and keeps its meta.
    pub fn put_meta_and_symbols(
        &self,
        id: &ObjectId,
        meta: &ObjectMeta,
        records: &[SymbolRecord],
    ) -> Result<PutSymbols> {
        let value = to_canonical(meta).map_err(|e| StoreError::InvalidRecord(e.to_string()))?;
        self.write(|w| w.put_meta_and_symbols(id, meta, &value, records)?)
    }

    /// Several objects' metadata and symbols in one durable transaction, all
    /// or nothing: the first refused object refuses the whole batch (a
    /// writer's own put).
    pub fn put_meta_and_symbols_all(
        &self,
        items: &[(ObjectId, ObjectMeta, Vec<SymbolRecord>)],
    ) -> Result<PutSymbols> {
        self.write(|w| {
            let mut total = PutSymbols::default();
            for r in put_items(w, items) {
                let r = r??;
                total.inserted += r.inserted;
                total.duplicates += r.duplicates;
            }
            Ok(total)
        })
    }

    /// Several objects' metadata and symbols in one durable transaction (one
    /// fsync for all: a holder's group commit), with a result per object.
    /// An object refused (see [`Store::put_meta_and_symbols`], or its zone's
    /// quota) writes nothing and the others are still written; the outer
    /// error means nothing was.
    pub fn put_meta_and_symbols_batch(
        &self,
        items: &[(ObjectId, ObjectMeta, Vec<SymbolRecord>)],
    ) -> Result<Vec<Result<PutSymbols>>> {
        self.write(|w| put_items(w, items).collect())
    }

    /// All symbols of an object, in ESI order.
    pub fn symbols(&self, id: &ObjectId) -> Result<Vec<SymbolRecord>> {
        self.symbols_chosen(id, <[u32]>::to_vec)
    }

    /// The stored symbols among `esis`, in the order asked (missing ones are
    /// skipped).
    pub fn symbols_in(
        &self,
        id: &ObjectId,
        esis: impl IntoIterator<Item = u32>,
    ) -> Result<Vec<SymbolRecord>> {
        self.symbols_chosen(id, |_| esis.into_iter().collect())
    }

    /// The symbols `choose` picks, in its order, from the ESIs this store
    /// holds for `id` (ascending): a holder answering a request for some of
    /// an object's symbols copies out only those.
    pub fn symbols_chosen(
        &self,
        id: &ObjectId,
        choose: impl FnOnce(&[u32]) -> Vec<u32>,
    ) -> Result<Vec<SymbolRecord>> {
        // `choose` runs once; a retry after a concurrent compaction (which
        // moves runs, not ESIs) asks for the same ESIs again.
        let mut choose = Some(choose);
        let mut asked: Vec<u32> = Vec::new();
        let mut pick = |held: &[u32]| -> Vec<u32> {
            if let Some(c) = choose.take() {
                asked = c(held);
            }
            asked.clone()
        };
        for _ in 0..4 {
            let got =
                self.read(|t| chosen_in_table(&t.open_table(SYMBOLS)?, &self.log, id, &mut pick))?;
            if let Some(records) = got {
                return Ok(records);
            }
        }
        // Removed under us each time: the object is going.
        Ok(Vec::new())
    }

    /// Number of stored symbols of an object.
    pub fn symbol_count(&self, id: &ObjectId) -> Result<usize> {
        self.read(|t| Ok(held_esis(&t.open_table(SYMBOLS)?, id)?.0.len()))
    }

    /// Remove every symbol of an object; returns how many were removed.
    pub fn remove_symbols(&self, id: &ObjectId) -> Result<usize> {
        self.write(|w| Ok(w.remove_symbols(id)?.0))
    }

    /// Distinct ids that have at least one stored symbol, in id order.
    pub fn list_symbol_objects(&self) -> Result<Vec<ObjectId>> {
        self.read(|t| {
            let mut out: Vec<ObjectId> = Vec::new();
            for entry in t.open_table(SYMBOLS)?.iter()? {
                let (id, _) = parse_run_key(entry?.0.value())?;
                if out.last() != Some(&id) {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }

    // ---- meta -------------------------------------------------------------

    /// Write (or replace) an object's meta.
    pub fn put_meta(&self, id: &ObjectId, meta: &ObjectMeta) -> Result<()> {
        let value = to_canonical(meta).map_err(|e| StoreError::InvalidRecord(e.to_string()))?;
        self.write(|w| {
            w.meta.insert(id.as_bytes().as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    /// An object's meta, if stored.
    pub fn meta(&self, id: &ObjectId) -> Result<Option<ObjectMeta>> {
        self.read(|t| get_meta_in(&t.open_table(META)?, id))
    }

    /// Remove an object's meta; returns whether it existed.
    pub fn remove_meta(&self, id: &ObjectId) -> Result<bool> {
        self.write(|w| Ok(w.meta.remove(id.as_bytes().as_slice())?.is_some()))
    }

    // ---- pins -------------------------------------------------------------

    /// Pin an id (a GC root). The object need not be stored yet.
    pub fn pin(&self, id: &ObjectId) -> Result<()> {
        self.write(|w| {
            w.pins.insert(id.as_bytes().as_slice(), 1)?;
            Ok(())
        })
    }

    /// Unpin an id; returns whether it was pinned.
    pub fn unpin(&self, id: &ObjectId) -> Result<bool> {
        self.write(|w| Ok(w.pins.remove(id.as_bytes().as_slice())?.is_some()))
    }

    /// Whether an id is explicitly pinned.
    pub fn is_pinned(&self, id: &ObjectId) -> Result<bool> {
        self.read(|t| Ok(t.open_table(PINS)?.get(id.as_bytes().as_slice())?.is_some()))
    }

    /// All explicitly pinned ids, in id order.
    pub fn pins(&self) -> Result<Vec<ObjectId>> {
        self.read(|t| {
            let mut out = Vec::new();
            for entry in t.open_table(PINS)?.iter()? {
                out.push(object_id_from(entry?.0.value())?);
            }
            Ok(out)
        })
    }

    // ---- quotas -----------------------------------------------------------

    /// Set a zone's quota (body + ciphertext bytes).
    pub fn set_quota(&self, zone: &ZoneId, max_bytes: u64) -> Result<()> {
        let mut value = max_bytes.to_be_bytes().to_vec();
        value.extend_from_slice(zone.as_bytes());
        self.write(|w| {
            w.quotas
                .insert(zone.hash().as_bytes().as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    /// Remove a zone's quota; returns whether one was set.
    pub fn remove_quota(&self, zone: &ZoneId) -> Result<bool> {
        self.write(|w| {
            Ok(w.quotas
                .remove(zone.hash().as_bytes().as_slice())?
                .is_some())
        })
    }

    /// A zone's quota, if set.
    pub fn quota(&self, zone: &ZoneId) -> Result<Option<u64>> {
        self.read(|t| Ok(quota_in(&t.open_table(QUOTAS)?, zone.hash().as_bytes())?.map(|q| q.0)))
    }

    /// Bytes attributed to a zone (object bodies + symbol ciphertexts).
    pub fn usage(&self, zone: &ZoneId) -> Result<u64> {
        self.read(|t| {
            Ok(t.open_table(USAGE)?
                .get(zone.hash().as_bytes().as_slice())?
                .map(|v| v.value())
                .unwrap_or(0))
        })
    }

    // ---- zone frontier (spec §3.8) ----------------------------------------

    /// Point a zone's frontier at an object (the zone's GC root).
    pub fn set_frontier(&self, zone: &ZoneId, id: ObjectId) -> Result<()> {
        self.write(|w| {
            w.frontiers
                .insert(zone.as_str(), id.as_bytes().as_slice())?;
            Ok(())
        })
    }

    /// A zone's frontier pointer.
    pub fn frontier(&self, zone: &ZoneId) -> Result<Option<ObjectId>> {
        self.read(|t| match t.open_table(FRONTIERS)?.get(zone.as_str())? {
            Some(v) => object_id_from(v.value()).map(Some),
            None => Ok(None),
        })
    }

    /// Every zone's frontier pointer, in zone order.
    pub fn frontiers(&self) -> Result<Vec<(ZoneId, ObjectId)>> {
        self.read(|t| {
            let mut out = Vec::new();
            for entry in t.open_table(FRONTIERS)?.iter()? {
                let (k, v) = entry?;
                let zone = ZoneId::new(k.value()).map_err(|e| corrupt("frontier zone", e))?;
                out.push((zone, object_id_from(v.value())?));
            }
            Ok(out)
        })
    }

    // ---- GC (spec §3.7) ---------------------------------------------------

    /// Reachability GC at `now` (crate docs, invariant 5), in one durable
    /// transaction.
    pub fn gc(&self, now: u64) -> Result<GcReport> {
        self.gc_with_limit(now, usize::MAX)
    }

    /// Like [`Store::gc`], removing at most `max_removed` ids (in id order);
    /// `truncated` tells whether candidates were left.
    pub fn gc_with_limit(&self, now: u64, max_removed: usize) -> Result<GcReport> {
        self.write(|w| w.gc(now, max_removed))
    }

    /// Move the live symbol runs of every log segment that is at most half
    /// live (other than the head) to the head and delete those segments, in
    /// one durable transaction; GC does this after its sweep. Returns the
    /// run bytes moved.
    pub fn compact_log(&self) -> Result<u64> {
        self.write(|w| w.compact_log())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::record::encode_run;

    use crate::record::test_record as rec;

    /// The run checksum is part of the on-disk format (index entry v3):
    /// XXH3-64 with seed 0, whichever crate computes it.
    #[test]
    fn run_checksum_is_xxh3_64() {
        let big: Vec<u8> = (0..40_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(checksum(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(checksum(b"fcp symbol run"), 0xd320_2f15_7af1_d261);
        assert_eq!(checksum(&big), 0x8441_2e2c_dae5_23de);
    }

    fn temp_store(tag: &str) -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("fcp-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        let s = Store::open(&path).unwrap();
        (dir, s)
    }

    fn recs(n: u8, count: u32, len: usize) -> Vec<SymbolRecord> {
        (0..count)
            .map(|esi| SymbolRecord {
                object_id: ObjectId::from_bytes([n; 32]),
                ciphertext: vec![n; len].into(),
                ..rec(esi)
            })
            .collect()
    }

    /// A reader whose snapshot points into a segment that compaction then
    /// deletes is told to read again (`None`), and `symbols` does so.
    #[test]
    fn reads_retry_when_compaction_moves_runs() {
        let (dir, s) = temp_store("retry");
        let path = dir.join("store.redb");
        s.put_symbols(&recs(1, 30, 1000)).unwrap();
        s.put_symbols(&recs(2, 10, 1000)).unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        let b = ObjectId::from_bytes([2; 32]);
        s.remove_symbols(&ObjectId::from_bytes([1; 32])).unwrap();
        let snapshot = s.db.begin_read().unwrap();
        assert!(s.compact_log().unwrap() > 0);
        let table = snapshot.open_table(SYMBOLS).unwrap();
        let mut all = |held: &[u32]| held.to_vec();
        assert!(
            chosen_in_table(&table, &s.log, &b, &mut all)
                .unwrap()
                .is_none()
        );
        assert_eq!(s.symbols(&b).unwrap(), recs(2, 10, 1000));
        drop((table, snapshot, s));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A head that empties while it is the head goes once the log rolls
    /// past it, without waiting for a reopen.
    #[test]
    fn an_emptied_head_goes_when_the_log_rolls_over() {
        let (dir, s) = temp_store("rollover");
        let segs = || {
            let mut v: Vec<String> = std::fs::read_dir(dir.join("store.redb.symbols"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        // Just over a segment's worth, so the next write rolls over.
        let big = recs(1, (SEGMENT_BYTES / 16_000) as u32 + 1, 16_000);
        s.put_symbols(&big).unwrap();
        s.remove_symbols(&ObjectId::from_bytes([1; 32])).unwrap();
        assert_eq!(segs().len(), 1, "the empty head stays while it is the head");
        s.put_symbols(&recs(2, 1, 100)).unwrap();
        let now = segs();
        assert_eq!(now.len(), 1, "{now:?}");
        assert_eq!(now[0], "00000001.seg");
        assert_eq!(
            s.symbols(&ObjectId::from_bytes([2; 32])).unwrap(),
            recs(2, 1, 100)
        );
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A version 2 store (runs inline in `symbol_runs`) opens as version 3:
    /// its inline runs read and remove as before, and new runs go to the
    /// symbol log.
    #[test]
    fn version_2_stores_upgrade_in_place() {
        let dir = std::env::temp_dir().join(format!("fcp-store-v2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        let _ = std::fs::remove_file(&path);
        let (r0, r1) = (rec(0), rec(1));
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                txn.open_table(FORMAT)
                    .unwrap()
                    .insert("version", 2)
                    .unwrap();
                let run = encode_run(&[&r0, &r1]).unwrap();
                let key = run_key(&r0.object_id, 0);
                let mut t = txn.open_table(SYMBOLS).unwrap();
                t.insert(key.as_slice(), run.as_slice()).unwrap();
                txn.open_table(USAGE)
                    .unwrap()
                    .insert([1u8; 32].as_slice(), 128)
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let s = Store::open(&path).unwrap();
        let r2 = rec(2);
        assert_eq!(
            s.put_symbols(&[r1.clone(), r2.clone()]).unwrap().inserted,
            1
        );
        assert_eq!(s.symbols(&r0.object_id).unwrap(), [r0, r1, r2]);
        drop(s);
        let s = Store::open(&path).unwrap();
        let version = s.read(|t| Ok(t.open_table(FORMAT)?.get("version")?.map(|v| v.value())));
        assert_eq!(version.unwrap(), Some(FORMAT_VERSION));
        assert_eq!(s.remove_symbols(&ObjectId::from_bytes([9; 32])).unwrap(), 3);
        let used = s.read(|t| Ok(t.open_table(USAGE)?.get([1u8; 32].as_slice())?.is_some()));
        assert!(!used.unwrap(), "usage back to 0");
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
