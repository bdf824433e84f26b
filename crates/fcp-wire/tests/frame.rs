//! FCPS frame codec (profile §4.2): round trips, every hostile variant, no panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use fcp_wire::FrameError;
use fcp_wire::frame::{
    CHECKSUM_LEN, Frame, FrameBuilder, FrameFlags, FrameHeader, HEADER_LEN, encoded_len,
    first_esi_of_own_frame,
};
use proptest::prelude::*;

fn header(t: u16) -> FrameHeader {
    FrameHeader {
        flags: FrameFlags::ENCRYPTED.union(FrameFlags::RAPTORQ),
        object_id: [1; 32],
        symbol_size: t,
        zone_key_id: [2; 8],
        zone_id_hash: [3; 32],
        epoch_id: 4,
        sender_instance_id: 5,
        frame_seq: 6,
    }
}

fn build(h: &FrameHeader, n: usize, max: usize) -> Bytes {
    let mut b = FrameBuilder::new(h, max).unwrap();
    for i in 0..n {
        let pt = vec![i as u8; usize::from(h.symbol_size)];
        assert!(b.push_sealed(i as u32, 9, &pt, &[i as u8; 16]).unwrap());
    }
    b.finish().unwrap()
}

#[test]
fn a_built_frames_first_esi_is_read_without_decoding() {
    let h = header(1024);
    let mut b = FrameBuilder::new(&h, 4096).unwrap();
    for esi in [77u32, 78] {
        assert!(b.push_sealed(esi, 9, &[0; 1024], &[0; 16]).unwrap());
    }
    let bytes = b.finish().unwrap();
    let decoded = Frame::decode(bytes.clone())
        .unwrap()
        .records()
        .next()
        .unwrap()
        .esi;
    assert_eq!(first_esi_of_own_frame(&bytes), Some(decoded));
    assert_eq!(decoded, 77);
    assert_eq!(first_esi_of_own_frame(&bytes[..HEADER_LEN + 3]), None);
}

#[test]
fn default_frame_fits_a_1280_mtu_datagram() {
    let h = header(1024);
    assert_eq!(
        FrameBuilder::capacity_for(1024, FrameBuilder::DEFAULT_MAX_FRAME),
        1
    );
    let bytes = build(&h, 1, FrameBuilder::DEFAULT_MAX_FRAME);
    assert_eq!(bytes.len(), encoded_len(1024, 1));
    assert!(bytes.len() + 40 <= 1232);
    let f = Frame::decode(bytes).unwrap();
    assert_eq!(f.header(), &h);
    let r: Vec<_> = f.records().collect();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].esi, r[0].k), (0, 9));
}

#[test]
fn builder_packs_as_many_records_as_fit() {
    let h = header(256);
    let cap = FrameBuilder::capacity_for(256, 1192) as usize;
    assert_eq!(cap, (1192 - HEADER_LEN - CHECKSUM_LEN) / (22 + 256));
    let mut b = FrameBuilder::new(&h, 1192).unwrap();
    let mut n = 0;
    while b.push_sealed(n, 1, &[0; 256], &[0; 16]).unwrap() {
        n += 1;
    }
    assert_eq!(n as usize, cap);
    let f = Frame::decode(b.finish().unwrap()).unwrap();
    assert_eq!(f.symbol_count() as usize, cap);
    assert!(f.as_bytes().len() <= 1192);
    assert!(matches!(
        FrameBuilder::new(&h, 100),
        Err(FrameError::FrameTooSmall(100))
    ));
}

fn with_fixed_checksum(mut v: Vec<u8>) -> Bytes {
    let n = v.len() - 8;
    let sum = xxhash_rust::xxh3::xxh3_64(&v[..n]);
    v[n..].copy_from_slice(&sum.to_le_bytes());
    Bytes::from(v)
}

#[test]
fn hostile_frames_get_their_own_errors() {
    let good = build(&header(256), 2, 4096).to_vec();
    let dec = |v: Vec<u8>| Frame::decode(with_fixed_checksum(v));

    let mut v = good.clone();
    v[0] = b'X';
    assert_eq!(dec(v), Err(FrameError::BadMagic));
    let mut v = good.clone();
    v[4] = 2;
    assert_eq!(dec(v), Err(FrameError::BadVersion(2)));
    let mut v = good.clone();
    v[7] = 0x10; // bit 12
    assert!(matches!(dec(v), Err(FrameError::UnknownFlags(_))));
    let mut v = good.clone();
    v[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(dec(v), Err(FrameError::BadSymbolCount(0)));
    let mut v = good.clone();
    v[8..12].copy_from_slice(&3u32.to_le_bytes());
    assert!(matches!(dec(v), Err(FrameError::LengthMismatch { .. })));
    let mut v = good.clone();
    v[48..50].copy_from_slice(&255u16.to_le_bytes());
    assert_eq!(dec(v), Err(FrameError::BadSymbolSize(255)));
    let mut v = good.clone();
    v[48..50].copy_from_slice(&16385u16.to_le_bytes());
    assert_eq!(dec(v), Err(FrameError::BadSymbolSize(16385)));
    // Trailing bytes.
    let mut v = good.clone();
    v.extend_from_slice(&[0; 8]);
    assert!(matches!(
        Frame::decode(Bytes::from(v)),
        Err(FrameError::TrailingBytes(_))
    ));
    // Truncation.
    assert!(matches!(
        Frame::decode(Bytes::from(good[..good.len() - 1].to_vec())),
        Err(FrameError::Truncated(_))
    ));
    assert!(matches!(
        Frame::decode(Bytes::from_static(b"FCPS")),
        Err(FrameError::Truncated(4))
    ));
    // A flipped header bit is a checksum error.
    let mut v = good.clone();
    v[20] ^= 1;
    assert_eq!(Frame::decode(Bytes::from(v)), Err(FrameError::Checksum));
    // A flipped ciphertext bit too (the AEAD catches it after a forged checksum).
    let mut v = good;
    v[HEADER_LEN + 10] ^= 0x80;
    assert_eq!(Frame::decode(Bytes::from(v)), Err(FrameError::Checksum));
}

proptest! {
    #[test]
    fn round_trip(t in 256u16..=2048, n in 1usize..4, flags in 0u16..0x1000, seq in any::<u64>(), inst in any::<u64>()) {
        let mut h = header(t);
        h.flags = FrameFlags::from_bits(flags).unwrap();
        h.frame_seq = seq;
        h.sender_instance_id = inst;
        let bytes = build(&h, n, 65_000);
        let f = Frame::decode(bytes.clone()).unwrap();
        prop_assert_eq!(f.header(), &h);
        prop_assert_eq!(f.records().count(), n);
        for (i, r) in f.records().enumerate() {
            prop_assert_eq!(r.esi, i as u32);
            prop_assert_eq!(r.ciphertext, &vec![i as u8; usize::from(t)][..]);
            prop_assert_eq!(r.tag, &[i as u8; 16]);
        }
        prop_assert_eq!(f.ciphertext_bytes(0).unwrap().len(), usize::from(t));
        prop_assert!(f.ciphertext_bytes(n as u32).is_none());
    }

    #[test]
    fn decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = Frame::decode(Bytes::from(data));
    }

    #[test]
    fn decode_never_panics_on_valid_checksum(mut data in prop::collection::vec(any::<u8>(), 122..1500)) {
        data[0..4].copy_from_slice(b"FCPS");
        data[4] = 1; data[5] = 0;
        let _ = Frame::decode(with_fixed_checksum(data));
    }
}

/// A frame sliced from a larger buffer, detached, reads the same and no
/// longer shares that buffer.
#[test]
fn a_detached_frame_owns_its_bytes() {
    let h = header(256);
    let one = build(&h, 2, 4096);
    let mut batch = one.to_vec();
    batch.extend_from_slice(&one);
    let batch = Bytes::from(batch);
    let sliced = Frame::decode(batch.slice(one.len()..)).unwrap();
    let own = sliced.detached();
    assert_eq!(own.as_bytes(), sliced.as_bytes());
    assert_eq!(own.header(), sliced.header());
    assert!(own.records().eq(sliced.records()));
    let inside = batch.as_ptr_range();
    assert!(!inside.contains(&own.as_bytes().as_ptr()));
    assert!(own.ciphertext_bytes(1).is_some());
}
