#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! HPKE key wrap and Shamir threshold secrets.

use fcp_core::{HasErrorCode, ZoneId, error::ErrorCode};
use fcp_crypto::shamir::{
    Share, combine, combine_with_threshold, gf_inv, gf_mul, split, split_with_coefficients,
};
use fcp_crypto::wrap::{MIN_SEALED_LEN, wrap_aad};
use fcp_crypto::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const PURPOSES: [WrapPurpose; 3] = [
    WrapPurpose::ZoneKey,
    WrapPurpose::ObjectIdKey,
    WrapPurpose::SecretShare,
];

#[test]
fn wrap_round_trip_all_purposes() {
    let mut r = StdRng::seed_from_u64(3);
    let recip = NodeEncryptionKey::generate(&mut r);
    let other = NodeEncryptionKey::generate(&mut r);
    let zh = ZoneId::new("z:owner").unwrap().hash();
    let zh2 = ZoneId::new("z:work").unwrap().hash();
    let kid = [1u8; 8];
    let pt = [0x99u8; 32];
    for p in PURPOSES {
        assert_eq!(WrapPurpose::parse(p.as_str()), Some(p));
        let sealed = wrap_key(&mut r, &recip.public_key(), p, &zh, &kid, "node-b", &pt).unwrap();
        assert_eq!(sealed.len(), 32 + 32 + 16);
        let out = unwrap_key(&recip, p, &zh, &kid, "node-b", &sealed).unwrap();
        assert_eq!(&out[..], &pt[..]);
        // Wrong recipient.
        let e = unwrap_key(&other, p, &zh, &kid, "node-b", &sealed).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::KeyUnwrapFailed);
        // Wrong AAD parts.
        for q in PURPOSES.iter().filter(|q| **q != p) {
            assert!(unwrap_key(&recip, *q, &zh, &kid, "node-b", &sealed).is_err());
        }
        assert!(unwrap_key(&recip, p, &zh2, &kid, "node-b", &sealed).is_err());
        assert!(unwrap_key(&recip, p, &zh, &[2u8; 8], "node-b", &sealed).is_err());
        assert!(unwrap_key(&recip, p, &zh, &kid, "node-c", &sealed).is_err());
        // Tampering anywhere.
        for i in [0usize, 31, 32, 50, sealed.len() - 1] {
            let mut s = sealed.clone();
            s[i] ^= 0x04;
            assert!(
                unwrap_key(&recip, p, &zh, &kid, "node-b", &s).is_err(),
                "byte {i}"
            );
        }
    }
}

#[test]
fn wrap_deterministic_with_seeded_rng_and_short_input() {
    let recip = NodeEncryptionKey::from_bytes(&[0x44; 32]);
    let zh = ZoneId::new("z:owner").unwrap().hash();
    let a = wrap_key(
        &mut StdRng::seed_from_u64(5),
        &recip.public_key(),
        WrapPurpose::ZoneKey,
        &zh,
        &[0; 8],
        "n",
        b"k",
    )
    .unwrap();
    let b = wrap_key(
        &mut StdRng::seed_from_u64(5),
        &recip.public_key(),
        WrapPurpose::ZoneKey,
        &zh,
        &[0; 8],
        "n",
        b"k",
    )
    .unwrap();
    assert_eq!(a, b);
    for len in [0, 1, 32, MIN_SEALED_LEN - 1] {
        let e = unwrap_key(&recip, WrapPurpose::ZoneKey, &zh, &[0; 8], "n", &a[..len]).unwrap_err();
        assert!(matches!(e, CryptoError::WrappedKeyMalformed(_)), "{e:?}");
    }
    // Empty plaintext wraps fine.
    let c = wrap_key(
        &mut StdRng::seed_from_u64(6),
        &recip.public_key(),
        WrapPurpose::SecretShare,
        &zh,
        &[0; 8],
        "n",
        b"",
    )
    .unwrap();
    assert_eq!(c.len(), MIN_SEALED_LEN);
    assert!(
        unwrap_key(&recip, WrapPurpose::SecretShare, &zh, &[0; 8], "n", &c)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn wrap_aad_layout() {
    let zh = ZoneId::new("z:owner").unwrap().hash();
    let aad = wrap_aad(WrapPurpose::ObjectIdKey, &zh, &[7; 8], "nd").unwrap();
    let mut exp = vec![13u8, 0];
    exp.extend_from_slice(b"object-id-key");
    exp.extend_from_slice(zh.as_bytes());
    exp.extend_from_slice(&[7; 8]);
    exp.extend_from_slice(&[2, 0, b'n', b'd']);
    assert_eq!(aad, exp);
}

#[test]
fn gf256_known_values() {
    // FIPS-197 §4.2: {57} * {83} = {c1}; {53} and {ca} are inverses.
    assert_eq!(gf_mul(0x57, 0x83), 0xc1);
    assert_eq!(gf_mul(0x57, 0x13), 0xfe);
    assert_eq!(gf_inv(0x53), 0xca);
    assert_eq!(gf_inv(0), 0);
    for a in 1..=255u8 {
        assert_eq!(gf_mul(a, gf_inv(a)), 1);
    }
}

#[test]
fn shamir_explicit_coefficients_kat() {
    // f(x) = 0x42 + 0x01 x -> f(1) = 0x43, f(2) = 0x40, f(3) = 0x41.
    let shares = split_with_coefficients(2, 3, &[0x42], &[0x01]).unwrap();
    let bytes: Vec<Vec<u8>> = shares.iter().map(|s| s.to_bytes().to_vec()).collect();
    assert_eq!(bytes, vec![vec![1, 0x43], vec![2, 0x40], vec![3, 0x41]]);
    assert_eq!(&combine(&shares[1..]).unwrap()[..], &[0x42]);
}

#[test]
fn shamir_all_subsets_3_of_5() {
    let mut r = StdRng::seed_from_u64(11);
    let secret: Vec<u8> = (0..32).collect();
    let shares = split(3, 5, &secret, &mut r).unwrap();
    assert_eq!(shares.len(), 5);
    for (i, s) in shares.iter().enumerate() {
        assert_eq!(s.x() as usize, i + 1);
        assert_eq!(s.y().len(), 32);
    }
    let mut count = 0;
    for mask in 0u32..32 {
        let subset: Vec<Share> = (0..5)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| shares[i].clone())
            .collect();
        if subset.len() >= 3 {
            assert_eq!(&combine(&subset).unwrap()[..], &secret[..]);
            assert_eq!(
                &combine_with_threshold(3, &subset).unwrap()[..],
                &secret[..]
            );
            count += 1;
        } else if !subset.is_empty() {
            // Below threshold: an unrelated value (or an error with a threshold).
            assert_ne!(&combine(&subset).unwrap()[..], &secret[..]);
            let e = combine_with_threshold(3, &subset).unwrap_err();
            assert_eq!(e.error_code(), ErrorCode::InsufficientShares);
        }
    }
    assert_eq!(count, 16);
}

#[test]
fn shamir_1_of_1_and_5_of_9() {
    let mut r = StdRng::seed_from_u64(12);
    let s = split(1, 1, b"secret", &mut r).unwrap();
    assert_eq!(s[0].to_bytes()[..], *b"\x01secret");
    assert_eq!(&combine(&s).unwrap()[..], b"secret");
    let shares = split(5, 9, &[0xab; 32], &mut r).unwrap();
    assert_eq!(&combine(&shares[2..7]).unwrap()[..], &[0xab; 32]);
    assert_eq!(&combine(&shares).unwrap()[..], &[0xab; 32]);
    let picked = [
        shares[8].clone(),
        shares[0].clone(),
        shares[4].clone(),
        shares[6].clone(),
        shares[3].clone(),
    ];
    assert_eq!(&combine(&picked).unwrap()[..], &[0xab; 32]);
    assert_ne!(&combine(&shares[..4]).unwrap()[..], &[0xab; 32]);
}

#[test]
fn shamir_rejects_bad_input() {
    let mut r = StdRng::seed_from_u64(13);
    for (t, n, s) in [(0u8, 3u8, &b"x"[..]), (4, 3, b"x"), (2, 3, b"")] {
        let e = split(t, n, s, &mut r).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidThreshold);
    }
    assert!(split_with_coefficients(2, 3, &[1, 2], &[1]).is_err());
    assert_eq!(
        Share::from_bytes(&[]).unwrap_err().error_code(),
        ErrorCode::InvalidShare
    );
    assert!(Share::from_bytes(&[0, 1]).is_err());
    assert!(Share::from_bytes(&[1]).is_err());
    let a = Share::from_bytes(&[1, 5, 6]).unwrap();
    let b = Share::from_bytes(&[1, 7, 8]).unwrap();
    let c = Share::from_bytes(&[2, 7]).unwrap();
    assert_eq!(
        combine(&[a.clone(), b]).unwrap_err().error_code(),
        ErrorCode::InvalidShare
    );
    assert_eq!(
        combine(&[a, c]).unwrap_err().error_code(),
        ErrorCode::InvalidShare
    );
    assert_eq!(
        combine(&[]).unwrap_err().error_code(),
        ErrorCode::InsufficientShares
    );
    assert!(combine_with_threshold(0, &[]).is_err());
}

#[test]
fn shares_wrap_as_secret_share() {
    let mut r = StdRng::seed_from_u64(14);
    let recip = NodeEncryptionKey::generate(&mut r);
    let zh = ZoneId::new("z:owner").unwrap().hash();
    let shares = split(2, 3, &[9; 32], &mut r).unwrap();
    let sealed = wrap_key(
        &mut r,
        &recip.public_key(),
        WrapPurpose::SecretShare,
        &zh,
        &[0; 8],
        "n1",
        &shares[0].to_bytes(),
    )
    .unwrap();
    let raw = unwrap_key(
        &recip,
        WrapPurpose::SecretShare,
        &zh,
        &[0; 8],
        "n1",
        &sealed,
    )
    .unwrap();
    let back = Share::from_bytes(&raw).unwrap();
    assert_eq!(&combine(&[back, shares[2].clone()]).unwrap()[..], &[9; 32]);
}

#[test]
fn wrap_with_explicit_ephemeral_ikm_is_deterministic() {
    use fcp_crypto::wrap::wrap_key_with_ephemeral_ikm;
    let recip = NodeEncryptionKey::from_bytes(&[0x44; 32]);
    let zh = ZoneId::new("z:owner").unwrap().hash();
    let a = wrap_key_with_ephemeral_ikm(
        &[1; 32],
        &recip.public_key(),
        WrapPurpose::ObjectIdKey,
        &zh,
        &[3; 8],
        "nb",
        &[5; 32],
    )
    .unwrap();
    let b = wrap_key_with_ephemeral_ikm(
        &[1; 32],
        &recip.public_key(),
        WrapPurpose::ObjectIdKey,
        &zh,
        &[3; 8],
        "nb",
        &[5; 32],
    )
    .unwrap();
    let c = wrap_key_with_ephemeral_ikm(
        &[2; 32],
        &recip.public_key(),
        WrapPurpose::ObjectIdKey,
        &zh,
        &[3; 8],
        "nb",
        &[5; 32],
    )
    .unwrap();
    assert_eq!(a, b);
    assert_ne!(a[..32], c[..32]);
    let out = unwrap_key(&recip, WrapPurpose::ObjectIdKey, &zh, &[3; 8], "nb", &a).unwrap();
    assert_eq!(&out[..], &[5; 32]);
}
