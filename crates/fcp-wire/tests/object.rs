//! RaptorQ object round trips (profile §4.1): any >= k-sized random subset of
//! symbols rebuilds the object; hostile symbols are typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fcp_wire::WireError;
use fcp_wire::object::{
    DEFAULT_REPAIR_RATIO_BPS, ObjectDecoder, ObjectEncoder, Progress, decode_all, repair_count,
    source_symbol_count,
};
use proptest::prelude::*;

fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

#[test]
fn empty_and_tiny_objects() {
    for len in [0usize, 1, 1019, 1020, 1021, 4096] {
        let obj: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let enc = ObjectEncoder::new(&obj, 1024).unwrap();
        assert_eq!(enc.k(), source_symbol_count(len, 1024).unwrap());
        let syms = enc.source_symbols();
        let out = decode_all(enc.k(), 1024, syms.iter().map(|(e, d)| (*e, d.as_slice()))).unwrap();
        assert_eq!(out, obj);
    }
}

#[test]
fn repair_only_rebuilds() {
    let obj: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
    let enc = ObjectEncoder::new(&obj, 1024).unwrap();
    let k = enc.k();
    // No source symbol at all: k + 2 repair symbols.
    let repair = enc.repair_symbols(0, u32::from(k) + 2);
    let out = decode_all(k, 1024, repair.iter().map(|(e, d)| (*e, d.as_slice()))).unwrap();
    assert_eq!(out, obj);
}

#[test]
fn losing_the_repair_fraction_is_tolerated() {
    let obj: Vec<u8> = (0..200_000u32).map(|i| (i ^ (i >> 8)) as u8).collect();
    let enc = ObjectEncoder::new(&obj, 1024).unwrap();
    let k = enc.k();
    let mut all = enc.all_symbols(DEFAULT_REPAIR_RATIO_BPS);
    assert_eq!(
        all.len(),
        usize::from(k) + repair_count(k, DEFAULT_REPAIR_RATIO_BPS) as usize
    );
    // Drop as many symbols as there are repair symbols, chosen at random, a few
    // extra repair symbols absorb RaptorQ's small decode-failure probability.
    shuffle(&mut all, 42);
    let lost = repair_count(k, DEFAULT_REPAIR_RATIO_BPS) as usize;
    let kept = &all[lost..];
    let mut extra = enc.repair_symbols(1000, 2);
    let mut dec = ObjectDecoder::new(k, 1024).unwrap();
    let mut done = false;
    for (esi, d) in kept.iter().chain(extra.iter_mut().map(|x| &*x)) {
        if dec.push(*esi, k, d).unwrap() == Progress::Complete {
            done = true;
            break;
        }
    }
    assert!(done);
    assert_eq!(dec.take().unwrap(), obj);
}

#[test]
fn hostile_symbols_are_typed_errors() {
    let enc = ObjectEncoder::new(&[7u8; 3000], 1024).unwrap();
    let k = enc.k();
    let mut dec = ObjectDecoder::new(k, 1024).unwrap();
    assert!(matches!(
        dec.push(0, k + 1, &[0; 1024]),
        Err(WireError::KMismatch { .. })
    ));
    assert!(matches!(
        dec.push(1 << 24, k, &[0; 1024]),
        Err(WireError::BadEsi(_))
    ));
    assert!(matches!(
        dec.push(0, k, &[0; 1000]),
        Err(WireError::SymbolLength { .. })
    ));
    assert!(matches!(
        ObjectDecoder::new(0, 1024),
        Err(WireError::BadK(0))
    ));
    assert!(matches!(
        ObjectDecoder::new(5, 100),
        Err(WireError::SymbolSize(100))
    ));
    assert!(matches!(dec.take(), Err(WireError::Incomplete { .. })));
    // A duplicate is counted once.
    let s = enc.source_symbols();
    assert_eq!(dec.push(0, k, &s[0].1).unwrap(), Progress::NeedMore);
    assert_eq!(dec.push(0, k, &s[0].1).unwrap(), Progress::Duplicate);
    assert_eq!(dec.received_unique(), 1);
    assert_eq!(dec.missing_source_bitmap()[0] & 1, 0);
}

#[test]
fn forged_source_symbols_are_caught_by_the_length_prefix() {
    let enc = ObjectEncoder::new(b"short", 1024).unwrap();
    assert_eq!(enc.k(), 1);
    let mut forged = vec![0xffu8; 1024];
    forged[..4].copy_from_slice(&5000u32.to_le_bytes());
    let mut dec = ObjectDecoder::new(1, 1024).unwrap();
    assert_eq!(dec.push(0, 1, &forged).unwrap(), Progress::Complete);
    assert!(matches!(dec.take(), Err(WireError::BadLengthPrefix)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn any_k_subset_rebuilds(len in 0usize..=300 * 1024, seed in any::<u64>(), t in prop::sample::select(vec![256u16, 1024, 4096])) {
        let obj: Vec<u8> = (0..len).map(|i| (i as u64).wrapping_mul(seed | 1).to_le_bytes()[3]).collect();
        let enc = ObjectEncoder::new(&obj, t).unwrap();
        let k = enc.k();
        let mut all = enc.source_symbols();
        all.extend(enc.repair_symbols(0, u32::from(k) / 2 + 4));
        shuffle(&mut all, seed);
        // Any k symbols decode with high probability; RFC 6330 guarantees
        // k + 2 decodes with probability > 1 - 1e-6, so offer up to k + 2.
        let offered = &all[..usize::from(k) + 2];
        let out = decode_all(k, t, offered.iter().map(|(e, d)| (*e, d.as_slice()))).unwrap();
        prop_assert_eq!(out, obj);
    }

    #[test]
    fn decoder_never_panics(k in 1u16..50, esi in any::<u32>(), kk in any::<u16>(), data in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut dec = ObjectDecoder::new(k, 1024).unwrap();
        let _ = dec.push(esi, kk, &data);
        let _ = dec.take();
    }
}
