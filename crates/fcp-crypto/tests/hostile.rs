#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Hostile input: every decoder returns a typed error, never panics.

use fcp_core::{HasErrorCode, ZoneId};
use fcp_crypto::shamir::{Share, combine, split};
use fcp_crypto::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = OwnerSigningKey::from_key_file(&bytes).map_err(|e| e.error_code());
        let _ = NodeSigningKey::from_key_file(&bytes);
        let _ = NodeIssuanceKey::from_key_file(&bytes);
        let _ = NodeEncryptionKey::from_key_file(&bytes);
        let _ = keys::key_file_type(&bytes);
        let _ = Ed25519PublicKey::from_bytes(&bytes);
        let _ = X25519PublicKey::from_bytes(&bytes);
        let _ = Signature::from_bytes(&bytes);
        let _ = Share::from_bytes(&bytes);
        let _ = CapabilityToken::decode(&bytes).map_err(|e| e.error_code());
        let _ = CapabilityClaims::from_cbor(&bytes);
        let recip = NodeEncryptionKey::from_bytes(&[1; 32]);
        let zh = ZoneId::new("z:owner").unwrap().hash();
        let r = unwrap_key(&recip, WrapPurpose::ZoneKey, &zh, &[0; 8], "n", &bytes);
        prop_assert!(r.is_err());
        let vk = NodeIssuanceKey::from_bytes(&[2; 32]).public_key();
        prop_assert!(CapabilityToken::decode_and_verify(&bytes, &vk).is_err());
    }

    #[test]
    fn key_file_with_valid_header_never_panics(ty in any::<u8>(), key in proptest::array::uniform32(any::<u8>())) {
        let mut f = b"fcp-key-v1".to_vec();
        f.push(ty);
        f.extend_from_slice(&key);
        let ok = NodeSigningKey::from_key_file(&f).is_ok();
        prop_assert_eq!(ok, ty == 2);
    }

    #[test]
    fn tagged_cbor_prefix_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut b = vec![0xd2, 0x84];
        b.extend_from_slice(&tail);
        prop_assert!(CapabilityToken::decode(&b).is_err());
    }

    #[test]
    fn combine_arbitrary_shares_never_panics(raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..6)) {
        let shares: Vec<Share> = raw.iter().filter_map(|r| Share::from_bytes(r).ok()).collect();
        let _ = combine(&shares);
    }

    #[test]
    fn shamir_round_trip(secret in proptest::collection::vec(any::<u8>(), 1..40), t in 1u8..6, extra in 0u8..4, seed in any::<u64>()) {
        let n = t + extra;
        let mut r = StdRng::seed_from_u64(seed);
        let shares = split(t, n, &secret, &mut r).unwrap();
        let bytes: Vec<_> = shares.iter().map(|s| s.to_bytes()).collect();
        let parsed: Vec<Share> = bytes.iter().rev().take(usize::from(t)).map(|b| Share::from_bytes(b).unwrap()).collect();
        prop_assert_eq!(&combine(&parsed).unwrap()[..], &secret[..]);
    }

    #[test]
    fn aead_round_trip(pt in proptest::collection::vec(any::<u8>(), 0..2048), seq in any::<u64>(), esi in any::<u32>(), x in any::<bool>(), flip in any::<usize>()) {
        let alg = if x { AeadAlgorithm::XChaCha20Poly1305 } else { AeadAlgorithm::ChaCha20Poly1305 };
        let key = SymbolKey::derive(alg, &[3; 32], [4; 8], "n", 5).unwrap();
        let mut buf = pt.clone();
        let tag = key.seal_in_place(seq, esi, b"aad", &mut buf).unwrap();
        let mut b2 = buf.clone();
        key.open_in_place(seq, esi, b"aad", &mut b2, &tag).unwrap();
        prop_assert_eq!(&b2, &pt);
        if !buf.is_empty() {
            let i = flip % buf.len();
            buf[i] ^= 1;
            prop_assert!(key.open_in_place(seq, esi, b"aad", &mut buf, &tag).is_err());
        }
    }
}
