//! The whole put/get symbol path for small and chunked payloads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fcp_core::object::{RetentionClass, StorageMeta};
use fcp_core::provenance::TaintFlags;
use fcp_core::{ObjectIdKey, Provenance, ZoneId};
use fcp_crypto::{AeadAlgorithm, SymbolKey};
use fcp_wire::chunk::PayloadMeta;
use fcp_wire::pipeline::{PipelineError, SymbolParams, SymbolPath, ZoneContext, frame_count};

fn run(len: usize, alg: AeadAlgorithm) {
    let payload: Vec<u8> = (0..len)
        .map(|i| (i % 241) as u8 ^ (i >> 12) as u8)
        .collect();
    let key = SymbolKey::derive(alg, &[1; 32], [2; 8], "node-1", 77).unwrap();
    let oik = ObjectIdKey::from_bytes([3; 32]);
    let storage = StorageMeta {
        retention: RetentionClass::Ephemeral,
    };
    let path = SymbolPath {
        key: &key,
        object_id_key: &oik,
        zone: ZoneContext {
            zone_id_hash: ZoneId::private().hash(),
            zone_key_id: [2; 8],
            epoch_id: 1,
        },
        params: SymbolParams::default(),
        storage,
    };
    let meta = PayloadMeta {
        zone_id: ZoneId::private(),
        created_at: 1,
        provenance: Provenance::new(ZoneId::private(), 80, 80, TaintFlags::NONE, 1),
        storage,
    };
    let mut seq = 0;
    let sealed = path.put_payload(&payload, &meta, &mut seq).unwrap();
    let total_frames: usize = sealed.objects.iter().map(|o| o.frames.len()).sum();
    assert_eq!(
        seq as usize, total_frames,
        "frame_seq advances once per frame"
    );
    for o in &sealed.objects {
        assert!(o.frames.iter().all(|f| f.len() + 40 <= 1232));
    }
    assert_eq!(path.get_payload(&sealed).unwrap(), payload);
    // Drop the first 5% of every object's frames (source symbols): repair covers it.
    let mut lossy = sealed.clone();
    for o in &mut lossy.objects {
        let drop = o.frames.len() * 5 / 105;
        o.frames.drain(..drop);
    }
    match path.get_payload(&lossy) {
        Ok(p) => assert_eq!(p, payload),
        // RaptorQ may need one more symbol than k with tiny probability.
        Err(PipelineError::Wire(e)) => panic!("lossy decode failed: {e}"),
        Err(e) => panic!("{e}"),
    }
    let _ = frame_count(len, &SymbolParams::default()).unwrap();
}

#[test]
fn small_payload_round_trip() {
    run(10_000, AeadAlgorithm::ChaCha20Poly1305);
    run(0, AeadAlgorithm::XChaCha20Poly1305);
}

#[test]
fn chunked_payload_round_trip() {
    run(1 << 20, AeadAlgorithm::ChaCha20Poly1305);
    run(300_000, AeadAlgorithm::XChaCha20Poly1305);
}
