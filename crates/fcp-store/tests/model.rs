//! The store against an in-memory model (BTreeMaps), with simulated crashes.
//!
//! Random operation sequences run on both; after every operation the
//! observable state (objects, symbols, meta, pins, frontiers, quotas, usage
//! counters) must be equal. The store runs over a fault-injecting redb
//! backend, and its symbol log over one such backend per segment
//! ([`CrashDir`]), each keeping a "durable" image (what was written before the last
//! `sync_data`) apart from unsynced writes. Some operations are crashed:
//! IO starts failing after a random number of calls, then the store is
//! reopened from the durable image plus a random subset of the unsynced
//! writes (what a power cut can leave). A crashed operation that returned
//! `Ok` must be fully visible; one that returned `Err` must be all or
//! nothing. `Reopen` steps restart cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};

use common::{meta, object, oid, symbol, zone};
use fcp_core::{ObjectId, RetentionClass, StoredObject, ZoneId};
use fcp_store::{GcReport, ObjectMeta, PutSymbols, Store, StoreError, SymbolRecord};
use proptest::prelude::*;

const POOL: u64 = 10;
const ZONES: usize = 3;

fn zone_of(n: u64) -> ZoneId {
    zone(n as usize)
}

// ---------------------------------------------------------------------------
// Fault-injecting backend
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Disk {
    /// What reads see.
    current: Vec<u8>,
    /// What survives a crash for sure.
    durable: Vec<u8>,
    /// Writes since the last sync, in order.
    pending: Vec<Pending>,
    /// IO calls left before every call fails.
    countdown: Option<u32>,
    tripped: bool,
}

fn apply(img: &mut Vec<u8>, p: &Pending) {
    match p {
        Pending::Write(off, data) => {
            let end = *off as usize + data.len();
            if img.len() < end {
                img.resize(end, 0);
            }
            img[*off as usize..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => img.resize(*len as usize, 0),
    }
}

#[derive(Debug, Clone, Default)]
struct CrashBackend(Arc<Mutex<Disk>>);

impl CrashBackend {
    fn from_image(img: Vec<u8>) -> Self {
        Self(Arc::new(Mutex::new(Disk {
            current: img.clone(),
            durable: img,
            ..Disk::default()
        })))
    }

    fn arm(&self, calls: u32) {
        let mut d = self.0.lock().unwrap();
        d.countdown = Some(calls);
        d.tripped = false;
    }

    fn disarm(&self) -> bool {
        let mut d = self.0.lock().unwrap();
        d.countdown = None;
        d.tripped
    }

    /// The disk after a power cut: durable image plus a random subset of
    /// the unsynced writes, in order.
    fn crash_image(&self, seed: u64) -> Vec<u8> {
        let d = self.0.lock().unwrap();
        let mut img = d.durable.clone();
        let mut s = seed;
        for p in &d.pending {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (s >> 33) & 1 == 1 {
                apply(&mut img, p);
            }
        }
        img
    }

    fn io<T>(&self, f: impl FnOnce(&mut Disk) -> T) -> io::Result<T> {
        let mut d = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        if let Some(c) = d.countdown {
            if c == 0 {
                d.tripped = true;
                return Err(io::Error::other("injected crash"));
            }
            d.countdown = Some(c - 1);
        }
        Ok(f(&mut d))
    }
}

impl redb::StorageBackend for CrashBackend {
    fn len(&self) -> io::Result<u64> {
        self.io(|d| d.current.len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.io(|d| {
            let mut out = vec![0u8; len];
            let start = (offset as usize).min(d.current.len());
            let end = (offset as usize + len).min(d.current.len());
            out[..end - start].copy_from_slice(&d.current[start..end]);
            out
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.io(|d| {
            let p = Pending::SetLen(len);
            apply(&mut d.current, &p);
            d.pending.push(p);
        })
    }

    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        self.io(|d| {
            let pending = std::mem::take(&mut d.pending);
            for p in &pending {
                apply(&mut d.durable, p);
            }
        })
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.io(|d| {
            let p = Pending::Write(offset, data.to_vec());
            apply(&mut d.current, &p);
            d.pending.push(p);
        })
    }
}

/// The symbol log's segments, each a [`CrashBackend`]. Creating a segment
/// is durable at once (the store syncs its directory); its contents follow
/// the same rules as the database's.
#[derive(Debug, Clone, Default)]
struct CrashDir(Arc<Mutex<Segments>>);

/// The segments, and the IO budget new ones start with while armed.
type Segments = (BTreeMap<u32, CrashBackend>, Option<u32>);

impl CrashDir {
    fn arm(&self, calls: u32) {
        let mut d = self.0.lock().unwrap();
        d.1 = Some(calls);
        for seg in d.0.values() {
            seg.arm(calls);
        }
    }

    fn disarm(&self) -> bool {
        let mut d = self.0.lock().unwrap();
        d.1 = None;
        d.0.values().fold(false, |t, seg| seg.disarm() | t)
    }

    fn crash_image(&self, seed: u64) -> Self {
        let d = self.0.lock().unwrap();
        let segs =
            d.0.iter()
                .map(|(&n, seg)| {
                    let s = seed ^ u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    (n, CrashBackend::from_image(seg.crash_image(s)))
                })
                .collect();
        Self(Arc::new(Mutex::new((segs, None))))
    }
}

impl fcp_store::SegmentDir for CrashDir {
    fn open(&self, n: u32, create: bool) -> io::Result<fcp_store::Segment> {
        let mut d = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        let armed = d.1;
        if let Some(seg) = d.0.get(&n) {
            return Ok(Arc::new(seg.clone()));
        }
        if !create {
            return Err(io::ErrorKind::NotFound.into());
        }
        let seg = CrashBackend::default();
        if let Some(calls) = armed {
            seg.arm(calls);
        }
        d.0.insert(n, seg.clone());
        Ok(Arc::new(seg))
    }

    fn remove(&self, n: u32) -> io::Result<()> {
        self.0.lock().unwrap().0.remove(&n);
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<u32>> {
        Ok(self.0.lock().unwrap().0.keys().copied().collect())
    }
}

// ---------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    objects: BTreeMap<u64, StoredObject>,
    symbols: BTreeMap<(u64, u32), SymbolRecord>,
    meta: BTreeMap<u64, ObjectMeta>,
    pins: BTreeSet<u64>,
    frontiers: BTreeMap<usize, u64>,
    quotas: BTreeMap<usize, u64>,
}

/// Observable state, built from the store or the model.
#[derive(Debug, PartialEq)]
struct Snapshot {
    objects: Vec<Option<StoredObject>>,
    symbols: Vec<Vec<SymbolRecord>>,
    meta: Vec<Option<ObjectMeta>>,
    pinned: Vec<bool>,
    frontiers: Vec<Option<ObjectId>>,
    quotas: Vec<Option<u64>>,
    usage: Vec<u64>,
}

#[derive(Debug, PartialEq)]
enum Out {
    Unit,
    Bool(bool),
    Count(usize),
    Put(PutSymbols),
    Gc(GcReport),
}

fn observe(s: &Store) -> Snapshot {
    let ids = || (0..POOL).map(oid);
    let zones = || (0..ZONES).map(zone);
    Snapshot {
        objects: ids().map(|i| s.get_object(&i).unwrap()).collect(),
        symbols: ids().map(|i| s.symbols(&i).unwrap()).collect(),
        meta: ids().map(|i| s.meta(&i).unwrap()).collect(),
        pinned: ids().map(|i| s.is_pinned(&i).unwrap()).collect(),
        frontiers: zones().map(|z| s.frontier(&z).unwrap()).collect(),
        quotas: zones().map(|z| s.quota(&z).unwrap()).collect(),
        usage: zones().map(|z| s.usage(&z).unwrap()).collect(),
    }
}

impl Model {
    fn usage(&self, z: usize) -> u64 {
        let zone = zone(z);
        let bodies: u64 = self
            .objects
            .values()
            .filter(|o| o.header.zone_id == zone)
            .map(|o| o.body.len() as u64)
            .sum();
        let syms: u64 = self
            .symbols
            .values()
            .filter(|r| r.zone_id_hash == *zone.hash().as_bytes())
            .map(|r| r.ciphertext.len() as u64)
            .sum();
        bodies + syms
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            objects: (0..POOL).map(|n| self.objects.get(&n).cloned()).collect(),
            symbols: (0..POOL)
                .map(|n| {
                    self.symbols
                        .range((n, 0)..=(n, u32::MAX))
                        .map(|(_, r)| r.clone())
                        .collect()
                })
                .collect(),
            meta: (0..POOL).map(|n| self.meta.get(&n).cloned()).collect(),
            pinned: (0..POOL).map(|n| self.pins.contains(&n)).collect(),
            frontiers: (0..ZONES)
                .map(|z| self.frontiers.get(&z).map(|&n| oid(n)))
                .collect(),
            quotas: (0..ZONES).map(|z| self.quotas.get(&z).copied()).collect(),
            usage: (0..ZONES).map(|z| self.usage(z)).collect(),
        }
    }

    fn charge(&self, z: usize, bytes: u64) -> Result<(), StoreError> {
        let used = self.usage(z);
        match self.quotas.get(&z) {
            Some(&limit) if bytes > 0 && used + bytes > limit => Err(StoreError::QuotaExceeded {
                zone: zone(z),
                used,
                requested: bytes,
                limit,
            }),
            _ => Ok(()),
        }
    }

    fn gc(&mut self, now: u64) -> GcReport {
        let mut ids: BTreeSet<u64> = self.objects.keys().copied().collect();
        ids.extend(self.meta.keys());
        ids.extend(self.symbols.keys().map(|k| k.0));
        let rets = |n: u64| -> Vec<RetentionClass> {
            self.objects
                .get(&n)
                .map(|o| o.storage.retention)
                .into_iter()
                .chain(self.meta.get(&n).map(|m| m.retention))
                .collect()
        };
        let refs = |n: u64| -> Vec<ObjectId> {
            let mut r = self
                .objects
                .get(&n)
                .map(|o| o.header.refs.clone())
                .unwrap_or_default();
            r.extend(
                self.meta
                    .get(&n)
                    .map(|m| m.refs.clone())
                    .unwrap_or_default(),
            );
            r
        };
        let mut queue: VecDeque<ObjectId> = self.pins.iter().map(|&n| oid(n)).collect();
        queue.extend(self.frontiers.values().map(|&n| oid(n)));
        queue.extend(
            ids.iter()
                .filter(|&&n| rets(n).iter().any(|r| !r.evictable_at(now)))
                .map(|&n| oid(n)),
        );
        let by_oid: BTreeMap<ObjectId, u64> = ids.iter().map(|&n| (oid(n), n)).collect();
        let mut live = BTreeSet::new();
        while let Some(id) = queue.pop_front() {
            if live.insert(id)
                && let Some(&n) = by_oid.get(&id)
            {
                queue.extend(refs(n));
            }
        }
        let mut report = GcReport {
            live: live.len() as u64,
            ..GcReport::default()
        };
        let doomed: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&n| !live.contains(&oid(n)) && rets(n).iter().all(|r| r.evictable_at(now)))
            .collect();
        for n in doomed {
            if let Some(o) = self.objects.remove(&n) {
                report.removed_objects += 1;
                report.bytes_freed += o.body.len() as u64;
            } else {
                report.removed_symbol_objects += 1;
            }
            let keys: Vec<_> = self
                .symbols
                .range((n, 0)..=(n, u32::MAX))
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                report.bytes_freed += self.symbols.remove(&k).unwrap().ciphertext.len() as u64;
            }
            self.meta.remove(&n);
        }
        report
    }

    fn apply(&mut self, op: &Op) -> Result<Out, StoreError> {
        Ok(match op {
            Op::PutObject {
                n,
                refs,
                ret,
                body_len,
            } => {
                if self.objects.contains_key(n) {
                    return Ok(Out::Bool(false));
                }
                self.charge(*n as usize % ZONES, *body_len as u64)?;
                self.objects
                    .insert(*n, make_object(*n, refs, *ret, *body_len));
                Out::Bool(true)
            }
            Op::PutSymbols { n, esis, ct_len } => {
                let mut new = BTreeMap::new();
                let mut dup = 0;
                for &e in esis {
                    if self.symbols.contains_key(&(*n, e)) || new.contains_key(&e) {
                        dup += 1;
                    } else {
                        new.insert(e, symbol(*n, e, &zone_of(*n), *ct_len));
                    }
                }
                self.charge(*n as usize % ZONES, (new.len() * ct_len) as u64)?;
                let inserted = new.len();
                for (e, r) in new {
                    self.symbols.insert((*n, e), r);
                }
                Out::Put(PutSymbols {
                    inserted,
                    duplicates: dup,
                })
            }
            Op::PutMeta { n, refs, ret } => {
                self.meta.insert(*n, make_meta(*n, refs, *ret));
                Out::Unit
            }
            Op::SetRetention { n, ret } => {
                let mut found = false;
                if let Some(o) = self.objects.get_mut(n) {
                    o.storage.retention = *ret;
                    found = true;
                }
                if let Some(m) = self.meta.get_mut(n) {
                    m.retention = *ret;
                    found = true;
                }
                Out::Bool(found)
            }
            Op::Pin(n) => {
                self.pins.insert(*n);
                Out::Unit
            }
            Op::Unpin(n) => Out::Bool(self.pins.remove(n)),
            Op::SetFrontier { z, n } => {
                self.frontiers.insert(*z, *n);
                Out::Unit
            }
            Op::RemoveObject(n) => Out::Bool(self.objects.remove(n).is_some()),
            Op::RemoveSymbols(n) => {
                let keys: Vec<_> = self
                    .symbols
                    .range((*n, 0)..=(*n, u32::MAX))
                    .map(|(k, _)| *k)
                    .collect();
                for k in &keys {
                    self.symbols.remove(k);
                }
                Out::Count(keys.len())
            }
            Op::RemoveMeta(n) => Out::Bool(self.meta.remove(n).is_some()),
            Op::SetQuota { z, max: Some(m) } => {
                self.quotas.insert(*z, *m);
                Out::Unit
            }
            Op::SetQuota { z, max: None } => Out::Bool(self.quotas.remove(z).is_some()),
            Op::Gc { now } => Out::Gc(self.gc(*now)),
            Op::Reopen => Out::Unit,
        })
    }
}

fn make_object(n: u64, refs: &[u64], ret: RetentionClass, body_len: usize) -> StoredObject {
    object(
        n,
        &zone_of(n),
        refs.iter().map(|&r| oid(r)).collect(),
        ret,
        body_len,
    )
}

fn make_meta(n: u64, refs: &[u64], ret: RetentionClass) -> ObjectMeta {
    meta(&zone_of(n), refs.iter().map(|&r| oid(r)).collect(), ret)
}

fn run_store(s: &Store, op: &Op) -> Result<Out, StoreError> {
    Ok(match op {
        Op::PutObject {
            n,
            refs,
            ret,
            body_len,
        } => Out::Bool(s.put_object(&make_object(*n, refs, *ret, *body_len))?),
        Op::PutSymbols { n, esis, ct_len } => {
            let recs: Vec<_> = esis
                .iter()
                .map(|&e| symbol(*n, e, &zone_of(*n), *ct_len))
                .collect();
            Out::Put(s.put_symbols(&recs)?)
        }
        Op::PutMeta { n, refs, ret } => {
            s.put_meta(&oid(*n), &make_meta(*n, refs, *ret))?;
            Out::Unit
        }
        Op::SetRetention { n, ret } => Out::Bool(s.set_retention(&oid(*n), *ret)?),
        Op::Pin(n) => {
            s.pin(&oid(*n))?;
            Out::Unit
        }
        Op::Unpin(n) => Out::Bool(s.unpin(&oid(*n))?),
        Op::SetFrontier { z, n } => {
            s.set_frontier(&zone(*z), oid(*n))?;
            Out::Unit
        }
        Op::RemoveObject(n) => Out::Bool(s.remove_object(&oid(*n))?),
        Op::RemoveSymbols(n) => Out::Count(s.remove_symbols(&oid(*n))?),
        Op::RemoveMeta(n) => Out::Bool(s.remove_meta(&oid(*n))?),
        Op::SetQuota { z, max: Some(m) } => {
            s.set_quota(&zone(*z), *m)?;
            Out::Unit
        }
        Op::SetQuota { z, max: None } => Out::Bool(s.remove_quota(&zone(*z))?),
        Op::Gc { now } => Out::Gc(s.gc(*now)?),
        Op::Reopen => Out::Unit,
    })
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    PutObject {
        n: u64,
        refs: Vec<u64>,
        ret: RetentionClass,
        body_len: usize,
    },
    PutSymbols {
        n: u64,
        esis: Vec<u32>,
        ct_len: usize,
    },
    PutMeta {
        n: u64,
        refs: Vec<u64>,
        ret: RetentionClass,
    },
    SetRetention {
        n: u64,
        ret: RetentionClass,
    },
    Pin(u64),
    Unpin(u64),
    SetFrontier {
        z: usize,
        n: u64,
    },
    RemoveObject(u64),
    RemoveSymbols(u64),
    RemoveMeta(u64),
    SetQuota {
        z: usize,
        max: Option<u64>,
    },
    Gc {
        now: u64,
    },
    Reopen,
}

fn retention() -> impl Strategy<Value = RetentionClass> {
    prop_oneof![
        Just(RetentionClass::Pinned),
        (0u64..100).prop_map(|expires_at| RetentionClass::Lease { expires_at }),
        Just(RetentionClass::Ephemeral),
        Just(RetentionClass::Ephemeral),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let n = || 0..POOL;
    let refs = || prop::collection::vec(0..POOL, 0..3);
    prop_oneof![
        4 => (n(), refs(), retention(), 0usize..300)
            .prop_map(|(n, refs, ret, body_len)| Op::PutObject { n, refs, ret, body_len }),
        4 => (n(), prop::collection::vec(0u32..8, 1..5), 1usize..200)
            .prop_map(|(n, esis, ct_len)| Op::PutSymbols { n, esis, ct_len }),
        2 => (n(), refs(), retention()).prop_map(|(n, refs, ret)| Op::PutMeta { n, refs, ret }),
        1 => (n(), retention()).prop_map(|(n, ret)| Op::SetRetention { n, ret }),
        1 => n().prop_map(Op::Pin),
        1 => n().prop_map(Op::Unpin),
        1 => (0..ZONES, n()).prop_map(|(z, n)| Op::SetFrontier { z, n }),
        1 => n().prop_map(Op::RemoveObject),
        1 => n().prop_map(Op::RemoveSymbols),
        1 => n().prop_map(Op::RemoveMeta),
        1 => (0..ZONES, prop::option::weighted(0.8, 0u64..1500))
            .prop_map(|(z, max)| Op::SetQuota { z, max }),
        2 => (0u64..120).prop_map(|now| Op::Gc { now }),
        1 => Just(Op::Reopen),
    ]
}

/// An op, and maybe a crash: fail IO after `calls` calls, then reopen from
/// a crash image chosen by `seed`.
fn step() -> impl Strategy<Value = (Op, Option<(u32, u64)>)> {
    (op(), prop::option::weighted(0.2, (0u32..15, any::<u64>())))
}

/// Crashed steps: [clean+err, clean+ok, tripped+err, tripped+ok,
/// tripped+err rolled back].
static STATS: [std::sync::atomic::AtomicU64; 5] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 5];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model_across_crashes(steps in prop::collection::vec(step(), 1..40)) {
        let mut backend = CrashBackend::default();
        let mut segments = CrashDir::default();
        let open = |b: &CrashBackend, d: &CrashDir| Store::open_with_backends(b.clone(), d.clone());
        let mut store = open(&backend, &segments).unwrap();
        let mut model = Model::default();
        for (i, (op, crash)) in steps.iter().enumerate() {
            if let Op::Reopen = op {
                drop(store);
                store = open(&backend, &segments).unwrap();
                store.check_integrity().unwrap();
                prop_assert_eq!(observe(&store), model.snapshot(), "step {} {:?}", i, op);
                continue;
            }
            let before = model.clone();
            let mut after = model.clone();
            let want = after.apply(op);
            if let Some((calls, _)) = crash {
                backend.arm(*calls);
                segments.arm(*calls);
            }
            let got = run_store(&store, op);
            let tripped = backend.disarm() | segments.disarm();
            if crash.is_some() {
                STATS[usize::from(tripped) * 2 + usize::from(got.is_ok())]
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if !tripped {
                prop_assert_eq!(&got, &want, "step {} {:?}", i, op);
            } else if let Ok(g) = &got {
                prop_assert_eq!(Ok(g), want.as_ref(), "step {} {:?}", i, op);
            }
            match crash {
                None => {
                    model = after;
                }
                Some((_, seed)) => {
                    let image = backend.crash_image(*seed);
                    drop(store);
                    backend = CrashBackend::from_image(image);
                    segments = segments.crash_image(*seed);
                    store = open(&backend, &segments)
                        .unwrap_or_else(|e| panic!("step {i} {op:?}: reopen after crash: {e}"));
                    store
                        .check_integrity()
                        .unwrap_or_else(|e| panic!("step {i} {op:?}: integrity after crash: {e}"));
                    let seen = observe(&store);
                    if got.is_ok() || seen == after.snapshot() {
                        model = after;
                    } else {
                        prop_assert_eq!(&seen, &before.snapshot(), "step {} {:?}: torn", i, op);
                        STATS[4].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        model = before;
                    }
                }
            }
            prop_assert_eq!(observe(&store), model.snapshot(), "step {} {:?}", i, op);
        }
        eprintln!("crash stats {:?}", STATS);
    }
}
