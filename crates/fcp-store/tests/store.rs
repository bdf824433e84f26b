//! Behaviour of the store API: round trips, idempotence, quotas, corrupt
//! values, pins, frontiers and GC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TempDir, meta, object, oid, symbol, symbols, zone};
use fcp_core::{ErrorCode, HasErrorCode, RetentionClass, ZoneId};
use fcp_store::{ObjectMeta, PutSymbols, Store, StoreError};

const EPH: RetentionClass = RetentionClass::Ephemeral;

#[test]
fn objects_round_trip_persist_and_are_idempotent() {
    let dir = TempDir::new("objects");
    let a = object(1, &zone(0), vec![oid(2)], EPH, 100);
    let b = object(2, &zone(1), vec![], RetentionClass::Pinned, 50);
    {
        let s = Store::open(dir.db()).unwrap();
        assert!(s.put_object(&a).unwrap());
        assert!(s.put_object(&b).unwrap());
        assert!(!s.put_object(&a).unwrap());
        assert_eq!(s.usage(&zone(0)).unwrap(), 100);
        assert_eq!(s.usage(&zone(1)).unwrap(), 50);
    }
    let s = Store::open(dir.db()).unwrap();
    assert_eq!(s.get_object(&a.object_id).unwrap(), Some(a.clone()));
    assert!(s.has_object(&b.object_id).unwrap());
    assert!(!s.has_object(&oid(3)).unwrap());
    assert_eq!(s.get_object(&oid(3)).unwrap(), None);
    assert_eq!(s.list_objects(None).unwrap(), vec![oid(1), oid(2)]);
    assert_eq!(s.list_objects(Some(&zone(1))).unwrap(), vec![oid(2)]);
    assert!(s.remove_object(&a.object_id).unwrap());
    assert!(!s.remove_object(&a.object_id).unwrap());
    assert_eq!(s.usage(&zone(0)).unwrap(), 0);
    assert!(s.set_retention(&b.object_id, EPH).unwrap());
    assert_eq!(
        s.get_object(&b.object_id)
            .unwrap()
            .unwrap()
            .storage
            .retention,
        EPH
    );
}

#[test]
fn second_open_of_the_same_file_is_locked() {
    let dir = TempDir::new("locked");
    let _s = Store::open(dir.db()).unwrap();
    let e = Store::open(dir.db()).unwrap_err();
    assert_eq!(e, StoreError::Locked);
    assert_eq!(e.error_code(), ErrorCode::StoreIo);
}

#[test]
fn symbols_are_keyed_ordered_and_deduplicated() {
    let dir = TempDir::new("symbols");
    let s = Store::open(dir.db()).unwrap();
    let z = zone(0);
    let recs: Vec<_> = [5u32, 1, 300, 2]
        .iter()
        .map(|&e| symbol(9, e, &z, 64))
        .collect();
    assert_eq!(
        s.put_symbols(&recs).unwrap(),
        PutSymbols {
            inserted: 4,
            duplicates: 0
        }
    );
    // Existing key and in-batch repeats are duplicates; the stored value wins.
    let mut again = symbol(9, 5, &z, 10);
    again.from_node = "someone-else".into();
    let r = s
        .put_symbols(&[again, symbol(9, 7, &z, 64), symbol(9, 7, &z, 64)])
        .unwrap();
    assert_eq!(
        r,
        PutSymbols {
            inserted: 1,
            duplicates: 2
        }
    );
    let got = s.symbols(&oid(9)).unwrap();
    assert_eq!(
        got.iter().map(|r| r.esi).collect::<Vec<_>>(),
        vec![1, 2, 5, 7, 300]
    );
    assert_eq!(got[2], recs[0]);
    assert_eq!(s.symbol_count(&oid(9)).unwrap(), 5);
    assert_eq!(s.symbol_count(&oid(10)).unwrap(), 0);
    let some = s.symbols_in(&oid(9), [300, 4, 1]).unwrap();
    assert_eq!(some.iter().map(|r| r.esi).collect::<Vec<_>>(), vec![300, 1]);
    assert_eq!(s.usage(&z).unwrap(), 5 * 64);
    assert_eq!(s.list_symbol_objects().unwrap(), vec![oid(9)]);
    assert_eq!(s.remove_symbols(&oid(9)).unwrap(), 5);
    assert_eq!(s.usage(&z).unwrap(), 0);
    assert!(s.symbols(&oid(9)).unwrap().is_empty());
}

#[test]
fn meta_round_trips_and_pins_symbol_zone() {
    let dir = TempDir::new("meta");
    let s = Store::open(dir.db()).unwrap();
    let m = meta(
        &zone(1),
        vec![oid(1)],
        RetentionClass::Lease { expires_at: 10 },
    );
    let r = s
        .put_meta_and_symbols(&oid(4), &m, &[symbol(4, 0, &zone(1), 8)])
        .unwrap();
    assert_eq!(r.inserted, 1);
    assert_eq!(s.meta(&oid(4)).unwrap(), Some(m.clone()));
    let e = s.put_symbols(&[symbol(4, 1, &zone(0), 8)]).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::StoreInvalidRecord);
    assert_eq!(s.symbol_count(&oid(4)).unwrap(), 1);
    // The same check when the meta is written in the same transaction
    // (all or nothing: neither the meta nor the symbol stays).
    let foreign = vec![symbol(5, 0, &zone(0), 8)];
    let e = s.put_meta_and_symbols(&oid(5), &m, &foreign).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::StoreInvalidRecord);
    let each = s
        .put_meta_and_symbols_batch(&[(oid(5), m.clone(), foreign)])
        .unwrap();
    let e = each.into_iter().next().unwrap().unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::StoreInvalidRecord);
    assert_eq!(s.meta(&oid(5)).unwrap(), None);
    assert_eq!(s.symbol_count(&oid(5)).unwrap(), 0);
    assert!(s.remove_meta(&oid(4)).unwrap());
    assert_eq!(s.meta(&oid(4)).unwrap(), None);
}

#[test]
fn quota_refuses_whole_write_with_figures() {
    let dir = TempDir::new("quota");
    let s = Store::open(dir.db()).unwrap();
    let z = zone(0);
    s.set_quota(&z, 1000).unwrap();
    assert_eq!(s.quota(&z).unwrap(), Some(1000));
    s.put_object(&object(1, &z, vec![], EPH, 600)).unwrap();
    let e = s.put_object(&object(2, &z, vec![], EPH, 401)).unwrap_err();
    assert_eq!(
        e,
        StoreError::QuotaExceeded {
            zone: z.clone(),
            used: 600,
            requested: 401,
            limit: 1000
        }
    );
    assert_eq!(e.error_code(), ErrorCode::QuotaExceeded);
    assert!(e.to_string().contains("z:work"));
    assert!(!s.has_object(&oid(2)).unwrap());
    // A symbol batch over quota writes nothing, even its in-quota part.
    let batch: Vec<_> = (0..5).map(|i| symbol(3, i, &z, 100)).collect();
    assert!(matches!(
        s.put_symbols(&batch),
        Err(StoreError::QuotaExceeded { requested: 500, .. })
    ));
    assert_eq!(s.symbol_count(&oid(3)).unwrap(), 0);
    assert_eq!(s.usage(&z).unwrap(), 600);
    // Other zones are unaffected; exactly reaching the quota is allowed.
    s.put_object(&object(4, &zone(1), vec![], EPH, 5000))
        .unwrap();
    s.put_object(&object(2, &z, vec![], EPH, 400)).unwrap();
    assert_eq!(s.usage(&z).unwrap(), 1000);
    assert!(s.remove_quota(&z).unwrap());
    s.put_object(&object(5, &z, vec![], EPH, 1)).unwrap();
}

#[test]
fn pins_and_frontiers() {
    let dir = TempDir::new("pins");
    let s = Store::open(dir.db()).unwrap();
    s.pin(&oid(1)).unwrap();
    s.pin(&oid(1)).unwrap();
    assert!(s.is_pinned(&oid(1)).unwrap());
    assert_eq!(s.pins().unwrap(), vec![oid(1)]);
    assert!(s.unpin(&oid(1)).unwrap());
    assert!(!s.unpin(&oid(1)).unwrap());
    assert!(!s.is_pinned(&oid(1)).unwrap());
    let z = ZoneId::new("z:project-x").unwrap();
    assert_eq!(s.frontier(&z).unwrap(), None);
    s.set_frontier(&z, oid(5)).unwrap();
    s.set_frontier(&z, oid(6)).unwrap();
    assert_eq!(s.frontier(&z).unwrap(), Some(oid(6)));
    assert_eq!(s.frontiers().unwrap(), vec![(z, oid(6))]);
}

#[test]
fn gc_keeps_reachable_and_respects_retention() {
    let dir = TempDir::new("gc");
    let s = Store::open(dir.db()).unwrap();
    let z = zone(0);
    // frontier 1 -> 2 -> 3 (symbols only, via meta refs) -> 4 (symbols only)
    s.put_object(&object(1, &z, vec![oid(2)], EPH, 10)).unwrap();
    s.put_object(&object(2, &z, vec![oid(3)], EPH, 10)).unwrap();
    s.put_meta_and_symbols(
        &oid(3),
        &meta(&z, vec![oid(4)], EPH),
        &[symbol(3, 0, &z, 7)],
    )
    .unwrap();
    s.put_symbols(&[symbol(4, 0, &z, 7)]).unwrap();
    s.set_frontier(&z, oid(1)).unwrap();
    // Unreachable: 5 ephemeral, 6 lease until 100, 7 pinned retention -> 8,
    // 9 explicitly pinned, 10 orphan symbols.
    s.put_object(&object(5, &z, vec![], EPH, 10)).unwrap();
    s.put_object(&object(
        6,
        &z,
        vec![],
        RetentionClass::Lease { expires_at: 100 },
        10,
    ))
    .unwrap();
    s.put_object(&object(7, &z, vec![oid(8)], RetentionClass::Pinned, 10))
        .unwrap();
    s.put_object(&object(8, &z, vec![], EPH, 10)).unwrap();
    s.put_object(&object(9, &z, vec![], EPH, 10)).unwrap();
    s.pin(&oid(9)).unwrap();
    s.put_symbols(&[symbol(10, 0, &z, 5), symbol(10, 1, &z, 5)])
        .unwrap();

    let r = s.gc(100).unwrap();
    assert_eq!(r.removed_objects, 1, "{r:?}");
    assert_eq!(r.removed_symbol_objects, 1);
    assert_eq!(r.bytes_freed, 20);
    assert!(!s.has_object(&oid(5)).unwrap());
    assert_eq!(s.symbol_count(&oid(10)).unwrap(), 0);
    for n in [1, 2, 6, 7, 8, 9] {
        assert!(s.has_object(&oid(n)).unwrap(), "{n}");
    }
    assert_eq!(s.symbol_count(&oid(3)).unwrap(), 1);
    assert_eq!(s.symbol_count(&oid(4)).unwrap(), 1);

    // Lease expiry, unpin, frontier move.
    s.unpin(&oid(9)).unwrap();
    s.set_frontier(&z, oid(2)).unwrap();
    let r = s.gc_with_limit(101, 1).unwrap();
    assert!(r.truncated);
    let r2 = s.gc(101).unwrap();
    assert_eq!(r.removed_objects + r2.removed_objects, 3); // 1, 6, 9
    for n in [1, 6, 9] {
        assert!(!s.has_object(&oid(n)).unwrap(), "{n}");
    }
    assert_eq!(s.usage(&z).unwrap(), 10 + 7 + 7 + 10 + 10); // 2, 3, 4, 7, 8
    // Retention from meta: a Pinned meta keeps a symbol-only object.
    s.put_meta(&oid(11), &meta(&z, vec![], RetentionClass::Pinned))
        .unwrap();
    s.gc(u64::MAX).unwrap();
    assert!(s.meta(&oid(11)).unwrap().is_some());
}

/// Segment files of a store, with their lengths.
fn segments(dir: &TempDir) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(Store::segments_dir(&dir.db()))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, e.metadata().unwrap().len())
        })
        .collect();
    out.sort();
    out
}

/// Symbol runs go to the symbol log, at most `MAX_RUN_BYTES` each, and redb
/// keeps a small index entry per run (decision 63): a 64 KiB chunk's share
/// is one run; 100 symbols of 1 KiB are two.
#[test]
fn runs_go_to_the_symbol_log() {
    let dir = TempDir::new("runlog");
    let z = zone(0);
    let share: Vec<_> = (0..34u32).map(|e| symbol(3, e * 3, &z, 1024)).collect();
    let big = symbols(4, 100, &z, 1024);
    {
        let s = Store::open(dir.db()).unwrap();
        assert_eq!(s.put_symbols(&share).unwrap().inserted, 34);
        assert_eq!(s.put_symbols(&big).unwrap().inserted, 100);
        assert_eq!(s.symbols(&oid(3)).unwrap(), share);
    }
    let s = Store::open(dir.db()).unwrap();
    assert_eq!(s.symbols(&oid(4)).unwrap(), big);
    // A batch larger than what the log takes per write (1 MiB) is written in
    // pieces and synced once; it reads back whole after a reopen.
    let huge = symbols(5, 3000, &z, 1000);
    assert_eq!(s.put_symbols(&huge).unwrap().inserted, 3000);
    drop(s);
    let s = Store::open(dir.db()).unwrap();
    assert_eq!(s.symbols(&oid(5)).unwrap(), huge);
    assert_eq!(s.remove_symbols(&oid(5)).unwrap(), 3000);
    drop(s);
    let s = Store::open(dir.db()).unwrap();
    let picked = s.symbols_in(&oid(4), [99, 0, 61, 7]).unwrap();
    let esis: Vec<u32> = picked.iter().map(|r| r.esi).collect();
    assert_eq!(esis, [99, 0, 61, 7]);
    drop(s);
    let seg = segments(&dir);
    assert_eq!(seg.len(), 1, "{seg:?}");
    assert!(seg[0].1 > 134 * 1024 && seg[0].1 < 134 * 1100, "{seg:?}");
    let db = redb::Database::create(dir.db()).unwrap();
    let txn = db.begin_read().unwrap();
    use redb::ReadableTable as _;
    let t: redb::ReadOnlyTable<&[u8], &[u8]> = txn
        .open_table(redb::TableDefinition::new("symbol_runs"))
        .unwrap();
    let lens: Vec<usize> = t
        .iter()
        .unwrap()
        .map(|e| e.unwrap().1.value().len())
        .collect();
    assert_eq!(lens.len(), 3, "{lens:?}");
    assert!(lens.iter().all(|l| *l < 67 + 4 * 100), "{lens:?}");
}

/// A store over memory keeps symbols too: its log segments grow with each
/// append (redb's in-memory backend refuses writes past its end).
#[test]
fn in_memory_stores_keep_symbols() {
    let s = Store::open_with_backend(redb::backends::InMemoryBackend::new()).unwrap();
    let z = zone(0);
    let small = symbols(3, 5, &z, 999);
    let huge = symbols(5, 3000, &z, 1000);
    assert_eq!(s.put_symbols(&small).unwrap().inserted, 5);
    assert_eq!(s.put_symbols(&huge).unwrap().inserted, 3000);
    assert_eq!(s.symbols(&oid(3)).unwrap(), small);
    assert_eq!(s.symbols(&oid(5)).unwrap(), huge);
}

/// A segment whose runs are all removed is deleted once it is no longer
/// the head; bytes past a segment's committed end are cut off at open.
#[test]
fn dead_segments_are_deleted_and_torn_tails_cut() {
    let dir = TempDir::new("segdel");
    let z = zone(0);
    let a = symbols(1, 10, &z, 500);
    let b = symbols(2, 10, &z, 500);
    {
        let s = Store::open(dir.db()).unwrap();
        s.put_symbols(&a).unwrap();
        s.put_symbols(&b).unwrap();
    }
    let first = segments(&dir);
    assert_eq!(first.len(), 1);
    // A torn append: junk past the committed end.
    let path = Store::segments_dir(&dir.db()).join(&first[0].0);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xEE; 777]).unwrap();
    drop(f);
    {
        let s = Store::open(dir.db()).unwrap();
        assert_eq!(segments(&dir), first, "tail cut back");
        // Appends now go to a new head segment.
        s.put_symbols(&[symbol(3, 0, &z, 500)]).unwrap();
        assert_eq!(segments(&dir).len(), 2);
        assert_eq!(s.remove_symbols(&oid(1)).unwrap(), 10);
        assert_eq!(segments(&dir).len(), 2, "object 2 still lives there");
        assert_eq!(s.remove_symbols(&oid(2)).unwrap(), 10);
        assert_eq!(segments(&dir).len(), 1, "the first segment is gone");
        assert_eq!(s.usage(&z).unwrap(), 500);
        // The head stays while it is the head, even with nothing live.
        assert_eq!(s.remove_symbols(&oid(3)).unwrap(), 1);
        assert_eq!(segments(&dir).len(), 1);
    }
    let s = Store::open(dir.db()).unwrap();
    assert_eq!(segments(&dir).len(), 0, "an empty former head goes at open");
    assert_eq!(s.symbol_count(&oid(2)).unwrap(), 0);
    assert_eq!(s.usage(&z).unwrap(), 0);
}

/// A segment at most half live is compacted: its live runs move to the
/// head and its file goes; GC does this after its sweep.
#[test]
fn half_dead_segments_are_compacted() {
    let dir = TempDir::new("segcompact");
    let z = zone(0);
    let a = symbols(1, 30, &z, 1000);
    let b = symbols(2, 10, &z, 1000);
    let c = symbols(3, 10, &z, 1000);
    {
        let s = Store::open(dir.db()).unwrap();
        s.put_symbols(&a).unwrap();
        s.put_symbols(&b).unwrap();
        s.put_meta(&oid(2), &meta(&z, vec![], RetentionClass::Pinned))
            .unwrap();
        s.put_symbols(&c).unwrap();
    }
    let first = segments(&dir);
    assert_eq!(first.len(), 1);
    {
        let s = Store::open(dir.db()).unwrap();
        // Half live or more: nothing moves.
        assert_eq!(s.remove_symbols(&oid(3)).unwrap(), 10);
        assert_eq!(s.compact_log().unwrap(), 0);
        assert_eq!(segments(&dir), first);
        // Object 1 has no meta: GC removes it, leaving the segment a
        // quarter live, and moves object 2's run to a new head.
        let r = s.gc(0).unwrap();
        assert_eq!(r.removed_symbol_objects, 1);
        let now = segments(&dir);
        assert_eq!(now.len(), 1, "{now:?}");
        assert_ne!(now[0].0, first[0].0, "the old segment is gone");
        assert!(now[0].1 > 10 * 1000 && now[0].1 < 11 * 1000, "{now:?}");
        assert_eq!(s.symbols(&oid(2)).unwrap(), b);
        assert_eq!(s.usage(&z).unwrap(), 10 * 1000);
        assert_eq!(s.compact_log().unwrap(), 0, "the head is never moved");
    }
    let s = Store::open(dir.db()).unwrap();
    assert_eq!(s.symbols(&oid(2)).unwrap(), b);
}

/// Damaged or missing log bytes are `Corrupt` (FCP code), never a panic or
/// wrong symbols.
#[test]
fn damaged_segments_are_corrupt() {
    let dir = TempDir::new("segbad");
    let z = zone(0);
    {
        let s = Store::open(dir.db()).unwrap();
        s.put_symbols(&[symbol(1, 0, &z, 300), symbol(1, 1, &z, 300)])
            .unwrap();
    }
    let path = Store::segments_dir(&dir.db()).join(&segments(&dir)[0].0);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    bad[good.len() - 5] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let is_corrupt = |e: StoreError| {
        assert_eq!(e.error_code(), ErrorCode::StoreCorrupt, "{e}");
    };
    {
        let s = Store::open(dir.db()).unwrap();
        is_corrupt(s.symbols(&oid(1)).unwrap_err());
    }
    std::fs::write(&path, &good[..good.len() - 1]).unwrap();
    {
        let s = Store::open(dir.db()).unwrap();
        is_corrupt(s.symbols(&oid(1)).unwrap_err());
    }
    std::fs::remove_file(&path).unwrap();
    let s = Store::open(dir.db()).unwrap();
    is_corrupt(s.symbols(&oid(1)).unwrap_err());
}

#[test]
fn corrupt_values_are_typed_errors() {
    let dir = TempDir::new("corrupt");
    {
        let s = Store::open(dir.db()).unwrap();
        s.put_object(&object(1, &zone(0), vec![], EPH, 10)).unwrap();
        s.put_symbols(&[symbol(1, 0, &zone(0), 10)]).unwrap();
    }
    {
        let db = redb::Database::create(dir.db()).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t: redb::Table<&[u8], &[u8]> = txn
                .open_table(redb::TableDefinition::new("objects"))
                .unwrap();
            t.insert(oid(1).as_bytes().as_slice(), [0xFFu8, 0, 1].as_slice())
                .unwrap();
            t.insert(oid(2).as_bytes().as_slice(), [0xA0u8].as_slice())
                .unwrap();
            let mut sy: redb::Table<&[u8], &[u8]> = txn
                .open_table(redb::TableDefinition::new("symbol_runs"))
                .unwrap();
            let mut key = oid(1).as_bytes().to_vec();
            key.extend_from_slice(&0u32.to_be_bytes());
            sy.insert(key.as_slice(), [1u8, 2, 3].as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let s = Store::open(dir.db()).unwrap();
    for id in [oid(1), oid(2)] {
        let e = s.get_object(&id).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::StoreCorrupt, "{e}");
    }
    let e = s.symbols(&oid(1)).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
    assert!(s.gc(0).is_err());
}

#[test]
fn oversized_node_ids_are_rejected() {
    let dir = TempDir::new("nodeid");
    let s = Store::open(dir.db()).unwrap();
    let mut r = symbol(1, 0, &zone(0), 4);
    r.source_node = "n".repeat(256);
    assert_eq!(
        s.put_symbols(&[r]).unwrap_err().error_code(),
        ErrorCode::StoreInvalidRecord
    );
    assert_eq!(s.usage(&zone(0)).unwrap(), 0);
}

#[test]
fn store_is_send_and_sync_and_usable_from_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    let dir = TempDir::new("threads");
    let s = std::sync::Arc::new(Store::open(dir.db()).unwrap());
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    s.put_object(&object(t * 100 + i, &zone(0), vec![], EPH, 10))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.list_objects(None).unwrap().len(), 20);
    assert_eq!(s.usage(&zone(0)).unwrap(), 200);
}

#[test]
fn batched_meta_and_symbols_commit_together_and_persist() {
    let dir = TempDir::new("batch");
    let z = zone(0);
    let items: Vec<_> = (0..5u64)
        .map(|n| {
            let recs = (0..3).map(|e| symbol(n, e, &z, 64)).collect::<Vec<_>>();
            (oid(n), meta(&z, vec![], RetentionClass::Pinned), recs)
        })
        .collect();
    {
        let s = Store::open(dir.db()).unwrap();
        let each = s.put_meta_and_symbols_batch(&items).unwrap();
        let fresh = PutSymbols {
            inserted: 3,
            duplicates: 0,
        };
        assert!(each.iter().all(|r| r.as_ref().ok() == Some(&fresh)));
        // Re-sending the same batch inserts nothing new.
        let again = s.put_meta_and_symbols_batch(&items).unwrap();
        let seen = PutSymbols {
            inserted: 0,
            duplicates: 3,
        };
        assert!(again.iter().all(|r| r.as_ref().ok() == Some(&seen)));
    }
    let s = Store::open(dir.db()).unwrap();
    for (id, m, recs) in &items {
        assert_eq!(s.meta(id).unwrap().as_ref(), Some(m));
        assert_eq!(&s.symbols(id).unwrap(), recs);
    }
    // A quota with room for two of the five objects: those two are
    // written, the other three refused, each with its own answer.
    let s2dir = TempDir::new("batch-quota");
    let s2 = Store::open(s2dir.db()).unwrap();
    let per_object: u64 = items[0].2.iter().map(|r| r.quota_bytes()).sum();
    s2.set_quota(&z, 2 * per_object + 1).unwrap();
    let each = s2.put_meta_and_symbols_batch(&items).unwrap();
    assert_eq!(each.len(), 5);
    for (n, r) in each.iter().enumerate() {
        match r {
            Ok(p) if n < 2 => assert_eq!(p.inserted, 3),
            Err(StoreError::QuotaExceeded { .. }) if n >= 2 => {}
            other => panic!("object {n}: {other:?}"),
        }
        let held = if n < 2 { 3 } else { 0 };
        assert_eq!(s2.symbol_count(&oid(n as u64)).unwrap(), held);
        assert_eq!(s2.meta(&oid(n as u64)).unwrap().is_some(), n < 2);
    }
    assert_eq!(s2.usage(&z).unwrap(), 2 * per_object);
}

#[test]
fn a_bad_record_refuses_its_object_alone_or_the_whole_put() {
    let dir = TempDir::new("bad-record");
    let s = Store::open(dir.db()).unwrap();
    let z = zone(0);
    let m = meta(&z, vec![], RetentionClass::Pinned);
    let mut long = symbols(1, 2, &z, 16);
    for r in &mut long {
        r.source_node = "n".repeat(300);
    }
    let items = vec![
        (oid(1), m.clone(), long),
        (oid(2), m.clone(), symbols(2, 2, &z, 16)),
    ];
    // All or nothing (a writer's own put): nothing is written.
    let e = s.put_meta_and_symbols_all(&items).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::StoreInvalidRecord);
    for n in [1, 2] {
        assert_eq!(s.meta(&oid(n)).unwrap(), None);
        assert_eq!(s.symbol_count(&oid(n)).unwrap(), 0);
    }
    // A group commit: the bad object alone is refused.
    let each = s.put_meta_and_symbols_batch(&items).unwrap();
    let e = each[0].as_ref().unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::StoreInvalidRecord);
    assert_eq!(each[1].as_ref().unwrap().inserted, 2);
    assert_eq!(s.meta(&oid(1)).unwrap(), None);
    assert_eq!(s.symbol_count(&oid(2)).unwrap(), 2);
    assert_eq!(
        s.put_meta_and_symbols_all(&items[1..]).unwrap().duplicates,
        2
    );
}

#[test]
fn a_held_object_keeps_its_meta_and_refuses_another_zone() {
    let dir = TempDir::new("relabel");
    let s = Store::open(dir.db()).unwrap();
    let (z0, z1) = (zone(0), zone(1));
    let held = meta(&z0, vec![oid(9)], RetentionClass::Pinned);
    s.put_meta_and_symbols(&oid(1), &held, &symbols(1, 2, &z0, 16))
        .unwrap();
    // Another push of the same object under another zone, with symbols of
    // that zone: refused, in a batch beside an honest object that is
    // written all the same.
    let relabel = meta(&z1, vec![], RetentionClass::Pinned);
    let honest = meta(&z0, vec![], RetentionClass::Pinned);
    let each = s
        .put_meta_and_symbols_batch(&[
            (oid(1), relabel.clone(), vec![symbol(1, 2, &z1, 16)]),
            (oid(2), honest.clone(), symbols(2, 2, &z0, 16)),
        ])
        .unwrap();
    let e = each[0].as_ref().unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::StoreInvalidRecord);
    assert_eq!(each[1].as_ref().unwrap().inserted, 2);
    assert_eq!(s.meta(&oid(1)).unwrap(), Some(held.clone()));
    assert_eq!(s.symbol_count(&oid(1)).unwrap(), 2);
    assert_eq!(s.meta(&oid(2)).unwrap(), Some(honest));
    // Another k or symbol size is refused the same way.
    for bad in [
        ObjectMeta {
            k: 5,
            ..held.clone()
        },
        ObjectMeta {
            symbol_size: 512,
            ..held.clone()
        },
    ] {
        let e = s
            .put_meta_and_symbols(&oid(1), &bad, &[symbol(1, 3, &z0, 16)])
            .unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::StoreInvalidRecord);
    }
    // The same object again from another holder: its symbols are added
    // and the meta it already had (refs, retention) stays.
    let again = meta(&z0, vec![], RetentionClass::Ephemeral);
    let r = s
        .put_meta_and_symbols(&oid(1), &again, &[symbol(1, 3, &z0, 16)])
        .unwrap();
    assert_eq!(r.inserted, 1);
    assert_eq!(s.meta(&oid(1)).unwrap(), Some(held));
    assert_eq!(s.symbol_count(&oid(1)).unwrap(), 3);
    assert_eq!(s.usage(&z1).unwrap(), 0);
}
