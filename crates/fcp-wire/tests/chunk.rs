//! Chunked objects (Appendix B): chunking, streamed reassembly, byte ranges,
//! and every way a chunk set can be wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use fcp_core::object::{RetentionClass, StorageMeta};
use fcp_core::provenance::TaintFlags;
use fcp_core::{ErrorCode, ObjectId, ObjectIdKey, Provenance, StoredObject, ZoneId};
use fcp_wire::chunk::{
    ChunkError, ChunkParams, PayloadMeta, PayloadRoot, chunk_payload, parse_root, read_range,
    reassemble,
};

#[derive(Debug)]
struct Missing;
impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("missing")
    }
}
impl fcp_core::HasErrorCode for Missing {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::DecodeIncomplete
    }
}

fn meta() -> PayloadMeta {
    PayloadMeta {
        zone_id: ZoneId::private(),
        created_at: 1_800_000_000,
        provenance: Provenance::new(ZoneId::private(), 80, 80, TaintFlags::NONE, 1_800_000_000),
        storage: StorageMeta {
            retention: RetentionClass::Pinned,
        },
    }
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 253) as u8).collect()
}

fn key() -> ObjectIdKey {
    ObjectIdKey::from_bytes([5; 32])
}

#[test]
fn small_payload_is_one_raw_chunk() {
    for n in [0usize, 1, 256 * 1024] {
        let p = payload(n);
        let c = chunk_payload(&p, &meta(), &key(), ChunkParams::default()).unwrap();
        assert!(c.chunks.is_empty());
        assert_eq!(parse_root(&c.root).unwrap(), PayloadRoot::Inline(p));
    }
}

#[test]
fn large_payload_streams_back_chunk_by_chunk() {
    let p = payload(1_000_000);
    let c = chunk_payload(&p, &meta(), &key(), ChunkParams::default()).unwrap();
    assert_eq!(c.chunks.len(), 1_000_000usize.div_ceil(65536));
    let PayloadRoot::Manifest(m) = parse_root(&c.root).unwrap() else {
        panic!()
    };
    assert_eq!(c.root.header.refs, m.chunks);
    // Every chunk is a normal stored object whose id verifies.
    for ch in &c.chunks {
        ch.verify_id(&key()).unwrap();
        let back = StoredObject::from_content(&ch.content().unwrap(), ch.storage, &key()).unwrap();
        assert_eq!(back.object_id, ch.object_id);
    }
    let store: HashMap<ObjectId, StoredObject> =
        c.chunks.iter().map(|o| (o.object_id, o.clone())).collect();
    let mut fetched = 0usize;
    let mut fetch = |id: &ObjectId| {
        fetched += 1;
        store.get(id).cloned().ok_or(Missing)
    };
    let mut out = Vec::new();
    assert_eq!(reassemble(&m, &mut fetch, &mut out).unwrap(), 1_000_000);
    assert_eq!(out, p);
    assert_eq!(fetched, m.chunks.len());
}

#[test]
fn byte_ranges_fetch_only_what_they_overlap() {
    let p = payload(700_000);
    let c = chunk_payload(&p, &meta(), &key(), ChunkParams::default()).unwrap();
    let PayloadRoot::Manifest(m) = parse_root(&c.root).unwrap() else {
        panic!()
    };
    let store: HashMap<ObjectId, StoredObject> =
        c.chunks.iter().map(|o| (o.object_id, o.clone())).collect();
    for (s, e, expect_fetches) in [
        (0u64, 10u64, 1usize),
        (65_530, 65_540, 2),
        (65_536, 131_072, 1),
        (699_999, 700_000, 1),
        (5, 5, 0),
        (0, 700_000, 11),
    ] {
        let mut fetched = 0;
        let mut fetch = |id: &ObjectId| {
            fetched += 1;
            store.get(id).cloned().ok_or(Missing)
        };
        let got = read_range(&m, s, e, &mut fetch).unwrap();
        assert_eq!(got, &p[s as usize..e as usize]);
        assert_eq!(fetched, expect_fetches, "range {s}..{e}");
    }
    let mut fetch = |id: &ObjectId| store.get(id).cloned().ok_or(Missing);
    assert!(matches!(
        read_range(&m, 10, 700_001, &mut fetch),
        Err(ChunkError::Range { .. })
    ));
}

#[test]
fn wrong_chunks_and_hashes_are_caught() {
    let p = payload(300_000);
    let c = chunk_payload(&p, &meta(), &key(), ChunkParams::default()).unwrap();
    let PayloadRoot::Manifest(m) = parse_root(&c.root).unwrap() else {
        panic!()
    };
    // A fetcher that returns chunk 0 for every id.
    let first = c.chunks[0].clone();
    let mut liar = |_: &ObjectId| Ok::<_, Missing>(first.clone());
    let err = reassemble(&m, &mut liar, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(err, ChunkError::BadChunk { index: 1, .. }),
        "{err}"
    );
    // A missing chunk carries the fetcher's code.
    let mut none = |_: &ObjectId| Err::<StoredObject, _>(Missing);
    let err = reassemble(&m, &mut none, &mut Vec::new()).unwrap_err();
    assert_eq!(
        fcp_core::HasErrorCode::error_code(&err),
        ErrorCode::DecodeIncomplete
    );
    // A manifest whose payload hash lies.
    let mut bad = m.clone();
    bad.payload_hash[0] ^= 1;
    let store: HashMap<ObjectId, StoredObject> =
        c.chunks.iter().map(|o| (o.object_id, o.clone())).collect();
    let mut fetch = |id: &ObjectId| store.get(id).cloned().ok_or(Missing);
    assert!(matches!(
        reassemble(&bad, &mut fetch, &mut Vec::new()),
        Err(ChunkError::PayloadHash)
    ));
    // A root of another schema is not a payload.
    let other = StoredObject::from_value(
        fcp_core::ObjectHeader {
            schema: fcp_core::SchemaId::parse("x:y@1.0.0").unwrap(),
            ..c.root.header.clone()
        },
        &1u8,
        c.root.storage,
        &key(),
    )
    .unwrap();
    assert!(matches!(
        parse_root(&other),
        Err(ChunkError::NotAPayload(_))
    ));
    assert!(
        chunk_payload(
            &p,
            &meta(),
            &key(),
            ChunkParams {
                max_chunk_threshold: 10,
                chunk_size: 0
            }
        )
        .is_err()
    );
}

#[test]
fn direct_layout_matches_the_generic_encoders() {
    use fcp_wire::chunk::{ChunkPlan, RawChunk};
    // The hand-written RawChunk CBOR equals serde's canonical encoding, for every
    // length class of the byte-string head.
    for n in [0usize, 23, 24, 255, 256, 65_535, 65_536, 70_000] {
        let bytes = payload(n);
        let mut direct = Vec::new();
        RawChunk::encode_cbor(&bytes, &mut direct);
        let generic = fcp_core::to_canonical(&RawChunk {
            bytes: bytes.clone(),
        })
        .unwrap();
        assert_eq!(direct, generic, "n = {n}");
        assert_eq!(RawChunk::decode_cbor(&direct).unwrap(), &bytes[..]);
    }
    // Non-canonical or foreign bodies are rejected.
    assert!(
        RawChunk::decode_cbor(&[0xa1, 0x65, b'b', b'y', b't', b'e', b's', 0x58, 1, 7]).is_err()
    );
    assert!(RawChunk::decode_cbor(&[0xa1, 0x65, b'b', b'y', b't', b'e', b's', 0x41]).is_err());
    // Chunk content written in place equals the StoredObject's content, and the id verifies.
    let p = payload(300_000);
    let m = meta();
    let k = key();
    let plan = ChunkPlan::new(&p, &m, &k, ChunkParams::default()).unwrap();
    for i in 0..plan.count() {
        let obj = plan.chunk_object(i);
        let mut buf = vec![0u8; plan.content_len(i)];
        let id = plan.write_content(i, &mut buf);
        assert_eq!(id, obj.object_id);
        assert_eq!(buf, obj.content().unwrap());
        obj.verify_id(&key()).unwrap();
        let generic = StoredObject::from_value(
            obj.header.clone(),
            &RawChunk {
                bytes: plan.chunk_bytes(i).to_vec(),
            },
            obj.storage,
            &key(),
        )
        .unwrap();
        assert_eq!(generic, obj);
    }
}

#[test]
fn merged_chunk_hashes_equal_the_payload_hash() {
    use fcp_wire::chunk::{can_merge, chunk_cv, merged_payload_hash, payload_hash};
    for (len, cs) in [
        (65_537usize, 65_536u32),
        (300_000, 65_536),
        (1 << 20, 65_536),
        (5_000_000, 65_536),
        (4097, 1024),
        (2048, 1024),
    ] {
        let p = payload(len);
        assert!(can_merge(len as u64, cs));
        let cvs: Vec<_> = p
            .chunks(cs as usize)
            .enumerate()
            .map(|(i, c)| chunk_cv(c, i, cs))
            .collect();
        assert_eq!(
            merged_payload_hash(&cvs, len as u64, cs),
            Some(payload_hash(&p)),
            "len {len} cs {cs}"
        );
        // A wrong chunk changes the result; a missing one is refused.
        let mut bad = cvs.clone();
        bad[0][0] ^= 1;
        assert_ne!(
            merged_payload_hash(&bad, len as u64, cs),
            Some(payload_hash(&p))
        );
        assert_eq!(merged_payload_hash(&cvs[1..], len as u64, cs), None);
    }
    assert!(!can_merge(1000, 65_536));
    assert!(!can_merge(1 << 20, 65_000));
}
