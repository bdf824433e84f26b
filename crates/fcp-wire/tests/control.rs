//! DecodeStatus / SymbolAck control objects (spec §4.4).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fcp_core::provenance::TaintFlags;
use fcp_core::{EpochId, ObjectHeader, ObjectId, Provenance, SchemaId, ZoneId};
use fcp_wire::control::{DecodeStatus, SymbolAck, missing_esis};
use fcp_wire::object::{ObjectDecoder, ObjectEncoder};

fn header(schema: &str) -> ObjectHeader {
    ObjectHeader {
        schema: SchemaId::parse(schema).unwrap(),
        zone_id: ZoneId::work(),
        created_at: 7,
        provenance: Provenance::new(ZoneId::work(), 50, 50, TaintFlags::NONE, 7),
        refs: vec![],
        ttl_secs: None,
        placement: None,
    }
}

#[test]
fn decode_status_reflects_the_decoder_and_round_trips() {
    let obj = vec![3u8; 20_000];
    let enc = ObjectEncoder::new(&obj, 1024).unwrap();
    let mut dec = ObjectDecoder::new(enc.k(), 1024).unwrap();
    for (esi, d) in enc.source_symbols().iter().filter(|(e, _)| e % 3 != 0) {
        dec.push(*esi, enc.k(), d).unwrap();
    }
    let oid = ObjectId::from_bytes([1; 32]);
    let st = DecodeStatus::from_decoder(
        header("fcp.mesh:DecodeStatus@1.0.0"),
        oid,
        ZoneId::work(),
        [2; 8],
        EpochId::new(9),
        &dec,
    );
    assert_eq!(st.required, u32::from(enc.k()));
    assert!(!st.is_complete());
    let missing: Vec<u32> = missing_esis(st.missing_hint.as_ref().unwrap(), enc.k()).collect();
    let expect: Vec<u32> = (0..u32::from(enc.k())).filter(|e| e % 3 == 0).collect();
    assert_eq!(missing, expect);
    let bytes = st.encode().unwrap();
    assert_eq!(DecodeStatus::decode(&bytes).unwrap(), st);
    // A SymbolAck body is not a DecodeStatus, and junk is an error.
    let ack = SymbolAck {
        header: header("fcp.mesh:SymbolAck@1.0.0"),
        object_id: oid,
        zone_id: ZoneId::work(),
        zone_key_id: [2; 8],
        epoch_id: EpochId::new(9),
        reconstructed_object_id: None,
    };
    let ab = ack.encode().unwrap();
    assert_eq!(SymbolAck::decode(&ab).unwrap(), ack);
    assert!(DecodeStatus::decode(&ab).is_err());
    let mut junk = bytes.clone();
    junk.push(0);
    assert!(DecodeStatus::decode(&junk).is_err());
    assert!(DecodeStatus::decode(&bytes[..40]).is_err());
}
