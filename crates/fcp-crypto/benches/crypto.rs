#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Criterion benches of the crypto hot paths.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fcp_core::{SchemaId, ZoneId};
use fcp_crypto::shamir::{combine, split};
use fcp_crypto::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn symbol_aead(c: &mut Criterion) {
    let mut g = c.benchmark_group("symbol_aead_1k");
    g.throughput(Throughput::Bytes(1024));
    for alg in [
        AeadAlgorithm::ChaCha20Poly1305,
        AeadAlgorithm::XChaCha20Poly1305,
    ] {
        let key = SymbolKey::derive(alg, &[7; 32], [1; 8], "node-a", 9).unwrap();
        let aad = [0u8; 86];
        let mut buf = vec![0u8; 1024];
        g.bench_function(format!("seal/{}", alg.name()), |b| {
            b.iter(|| key.seal_in_place(1, 2, &aad, black_box(&mut buf)).unwrap())
        });
        let pt = vec![0u8; 1024];
        let mut ct = pt.clone();
        let tag = key.seal_in_place(1, 2, &aad, &mut ct).unwrap();
        g.bench_function(format!("open/{}", alg.name()), |b| {
            b.iter(|| {
                let mut x = ct.clone();
                key.open_in_place(1, 2, &aad, black_box(&mut x), &tag)
                    .unwrap();
            })
        });
    }
    g.finish();
}

fn signatures(c: &mut Criterion) {
    let mut r = StdRng::seed_from_u64(1);
    let sh = SchemaId::parse("fcp.core:Bench@1.0.0").unwrap().hash();
    let keys: Vec<NodeSigningKey> = (0..64).map(|_| NodeSigningKey::generate(&mut r)).collect();
    let pubs: Vec<Ed25519PublicKey> = keys.iter().map(NodeSigningKey::public_key).collect();
    let bodies: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 200]).collect();
    let sigs: Vec<Signature> = keys
        .iter()
        .zip(&bodies)
        .map(|(k, b)| sign_object(k, &sh, b))
        .collect();
    c.bench_function("ed25519/sign_object", |b| {
        b.iter(|| sign_object(&keys[0], &sh, black_box(&bodies[0])))
    });
    c.bench_function("ed25519/verify_object", |b| {
        b.iter(|| verify_object(&pubs[0], &sh, black_box(&bodies[0]), &sigs[0]).unwrap())
    });
    let items: Vec<BatchItem<'_>> = (0..64)
        .map(|i| BatchItem {
            key: &pubs[i],
            schema_hash: &sh,
            unsigned_cbor: &bodies[i],
            signature: &sigs[i],
        })
        .collect();
    c.bench_function("ed25519/verify_batch_64", |b| {
        b.iter(|| verify_batch(black_box(&items)).unwrap())
    });
}

fn hpke(c: &mut Criterion) {
    let mut r = StdRng::seed_from_u64(2);
    let recip = NodeEncryptionKey::generate(&mut r);
    let pk = recip.public_key();
    let zh = ZoneId::new("z:owner").unwrap().hash();
    c.bench_function("hpke/wrap_32", |b| {
        b.iter(|| {
            wrap_key(
                &mut r,
                &pk,
                WrapPurpose::ZoneKey,
                &zh,
                &[0; 8],
                "node-b",
                &[9; 32],
            )
            .unwrap()
        })
    });
    let sealed = wrap_key(
        &mut r,
        &pk,
        WrapPurpose::ZoneKey,
        &zh,
        &[0; 8],
        "node-b",
        &[9; 32],
    )
    .unwrap();
    c.bench_function("hpke/unwrap_32", |b| {
        b.iter(|| {
            unwrap_key(
                &recip,
                WrapPurpose::ZoneKey,
                &zh,
                &[0; 8],
                "node-b",
                black_box(&sealed),
            )
            .unwrap()
        })
    });
}

fn shamir(c: &mut Criterion) {
    let mut r = StdRng::seed_from_u64(3);
    c.bench_function("shamir/split_3of5_32B", |b| {
        b.iter(|| split(3, 5, black_box(&[7u8; 32]), &mut r).unwrap())
    });
    let shares = split(3, 5, &[7u8; 32], &mut r).unwrap();
    c.bench_function("shamir/combine_3of5_32B", |b| {
        b.iter(|| combine(black_box(&shares[1..4])).unwrap())
    });
}

fn session(c: &mut Criterion) {
    let frame = vec![0u8; 1232];
    let mut g = c.benchmark_group("session_mac_1232");
    g.throughput(Throughput::Bytes(1232));
    for (name, suite) in [
        ("hmac_sha256", SessionSuite::HmacSha256),
        ("blake3", SessionSuite::Blake3),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| session_mac(suite, &[1; 32], &[2; 16], 0, 7, black_box(&frame)))
        });
        // What a session pays: the key's state is computed once.
        let key = SessionMacKey::new(suite, &[1; 32]);
        g.bench_function(format!("{name}_keyed"), |b| {
            b.iter(|| key.mac(&[2; 16], 0, 7, black_box(&frame)))
        });
    }
    g.finish();
}

criterion_group!(benches, symbol_aead, signatures, hpke, shamir, session);
criterion_main!(benches);
