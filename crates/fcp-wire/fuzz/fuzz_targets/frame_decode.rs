//! FCPS frame decoding (profile §4.2) must never panic, and a frame that
//! decodes must re-encode to the same bytes.
//!
//! Half the inputs get a valid XXH3 trailer first, so the fuzzer reaches the
//! length and record checks behind the checksum.
#![no_main]

use bytes::Bytes;
use fcp_wire::frame::{Frame, FrameBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else { return };
    let mut data = data.to_vec();
    if mode & 1 == 1 && data.len() >= 8 {
        let n = data.len() - 8;
        let sum = xxhash_rust::xxh3::xxh3_64(&data[..n]);
        data[n..].copy_from_slice(&sum.to_le_bytes());
    }
    let Ok(frame) = Frame::decode(Bytes::copy_from_slice(&data)) else {
        return;
    };
    let mut b = FrameBuilder::new(frame.header(), data.len()).expect("decoded header is valid");
    for r in frame.records() {
        assert!(b.push_sealed(r.esi, r.k, r.ciphertext, r.tag).expect("record fits"));
    }
    assert_eq!(&b.finish().expect("non-empty")[..], &data[..]);
});
