//! Mesh session handshake decoding (issue 4, profile §4.3) must never panic;
//! a message that decodes must re-encode to exactly the same bytes (strict
//! canonical decode), and signature checks on it must not panic either.
#![no_main]

use fcp_wire::session::{
    HandshakeMessage, MeshSessionAck, MeshSessionHello, MeshSessionHelloRetry,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As a whole UDP handshake packet ("FCPH" || kind || message).
    if let Ok(m) = HandshakeMessage::decode(data) {
        assert_eq!(m.encode().expect("re-encode"), data);
    }
    // As bare messages of each type.
    if let Ok(h) = MeshSessionHello::decode(data) {
        assert_eq!(h.encode().expect("re-encode"), data);
        let _ = h.signed_bytes().expect("signed bytes");
    }
    if let Ok(a) = MeshSessionAck::decode(data) {
        assert_eq!(a.encode().expect("re-encode"), data);
        let _ = a.signed_bytes().expect("signed bytes");
    }
    if let Ok(r) = MeshSessionHelloRetry::decode(data) {
        assert_eq!(r.encode().expect("re-encode"), data);
    }
});
