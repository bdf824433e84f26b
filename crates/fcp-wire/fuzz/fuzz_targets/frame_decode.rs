//! FCPS frame decoding (profile §4.2) must never panic, and a frame that
//! decodes must re-encode to the same bytes.
#![no_main]

use bytes::Bytes;
use fcp_wire::frame::{Frame, FrameBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut b = FrameBuilder::new(frame.header(), data.len()).expect("decoded header is valid");
    for r in frame.records() {
        assert!(b.push_sealed(r.esi, r.k, r.ciphertext, r.tag).expect("record fits"));
    }
    assert_eq!(&b.finish().expect("non-empty")[..], data);
});
