//! Strict canonical CBOR decoding (`from_canonical_strict`) of a small
//! struct shaped like a control message or an object header.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use fcp_core::cbor::{from_canonical_strict, to_canonical};
use std::hint::black_box;

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Meta {
    zone_id: String,
    k: u16,
    symbol_size: u16,
    created_at: u64,
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Request {
    #[serde(with = "fcp_core::cbor::bytes")]
    object_id: Vec<u8>,
    meta: Meta,
    node_id: String,
    instance: u64,
    #[serde(with = "fcp_core::cbor::bytes")]
    esis: Vec<u8>,
}

fn bench(c: &mut Criterion) {
    let msg = Request {
        object_id: vec![7; 32],
        meta: Meta {
            zone_id: "z:private".into(),
            k: 65,
            symbol_size: 1024,
            created_at: 1_800_000_000,
        },
        node_id: "node-1".into(),
        instance: 0x1234_5678_9abc_def0,
        esis: (0u32..34).flat_map(|e| (e * 3).to_le_bytes()).collect(),
    };
    let bytes = to_canonical(&msg).unwrap();
    assert_eq!(from_canonical_strict::<Request>(&bytes).unwrap(), msg);
    c.bench_function("cbor/from_canonical_strict_request", |b| {
        b.iter(|| from_canonical_strict::<Request>(black_box(&bytes)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
