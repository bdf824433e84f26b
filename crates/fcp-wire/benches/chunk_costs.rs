//! What a whole-payload get does per 64 KiB chunk beyond the `fcp bench
//! symbols` limit (RaptorQ + AEAD): the frame checksum (XXH3-64 over every
//! frame) and the payload hash (a BLAKE3 chaining value over the chunk),
//! next to the AEAD open the limit does (issue 3, ratio_get).
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fcp_core::{ObjectId, ZoneId};
use fcp_crypto::{AeadAlgorithm, SymbolKey, symbol_aad};
use fcp_wire::chunk::chunk_cv;
use fcp_wire::frame::checksum;

/// Source symbols of a 64 KiB chunk (k = 65 at T = 1024) and their frames.
const K: usize = 65;
const T: usize = 1024;
const FRAME: usize = 1192;

fn chunk_costs(c: &mut Criterion) {
    let key = SymbolKey::derive(AeadAlgorithm::ChaCha20Poly1305, &[7; 32], [1; 8], "n", 1).unwrap();
    let oid = ObjectId::from_bytes([3; 32]);
    let zone = ZoneId::private().hash();
    let sealed: Vec<(Vec<u8>, [u8; 16])> = (0..K as u32)
        .map(|esi| {
            let mut buf = vec![esi as u8; T];
            let aad = symbol_aad(&oid, esi, K as u16, &zone, &[1; 8], 1);
            let tag = key.seal_in_place(0, esi, &aad, &mut buf).unwrap();
            (buf, tag)
        })
        .collect();
    let frames: Vec<Vec<u8>> = (0..K).map(|i| vec![i as u8; FRAME]).collect();
    let chunk = vec![5u8; 64 * 1024];

    let mut g = c.benchmark_group("get_chunk_64k");
    g.throughput(Throughput::Bytes(64 * 1024));
    g.bench_function("aead_open", |b| {
        let mut buf = vec![0u8; T];
        b.iter(|| {
            for (esi, (ct, tag)) in sealed.iter().enumerate() {
                let aad = symbol_aad(&oid, esi as u32, K as u16, &zone, &[1; 8], 1);
                buf.copy_from_slice(ct);
                key.open_in_place(0, esi as u32, &aad, &mut buf, tag)
                    .unwrap();
            }
        })
    });
    g.bench_function("frame_xxh3", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(checksum(black_box(f)));
            }
        })
    });
    g.bench_function("blake3_cv", |b| {
        b.iter(|| chunk_cv(black_box(&chunk), 3, 64 * 1024))
    });
    g.finish();
}

criterion_group!(benches, chunk_costs);
criterion_main!(benches);
