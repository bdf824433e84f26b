//! ObjectId::new over 1 KiB of content (profile §3 derivation cost).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fcp_core::{ObjectId, ObjectIdKey, SchemaId, ZoneId};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let key = ObjectIdKey::from_bytes([42; 32]);
    let zone = ZoneId::private();
    let schema = SchemaId::parse("fcp.bench:Blob@1.0.0").unwrap();
    let content = vec![0x5au8; 1024];
    let mut g = c.benchmark_group("object_id");
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("new_1kib", |b| {
        b.iter(|| ObjectId::new(black_box(&content), &zone, &schema, &key))
    });
    let (zh, sh) = (zone.hash(), schema.hash());
    g.bench_function("new_with_hashes_1kib", |b| {
        b.iter(|| ObjectId::new_with_hashes(black_box(&content), &zh, &sh, &key))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
