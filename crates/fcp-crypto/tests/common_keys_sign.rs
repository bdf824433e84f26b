#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Keys, key files, key ids, object signatures and batch verification.

use fcp_core::{HasErrorCode, SchemaId, error::ErrorCode};
use fcp_crypto::keys::{KEY_FILE_LEN, key_file_type};
use fcp_crypto::sign::signing_message;
use fcp_crypto::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

#[test]
fn key_files_round_trip_and_reject() {
    let mut r = rng();
    let owner = OwnerSigningKey::generate(&mut r);
    let f = owner.to_key_file();
    assert_eq!(f.len(), KEY_FILE_LEN);
    assert_eq!(&f[..10], b"fcp-key-v1");
    assert_eq!(key_file_type(&f).unwrap(), KeyType::OwnerSigning);
    let back = OwnerSigningKey::from_key_file(&f).unwrap();
    assert_eq!(back.public_key(), owner.public_key());

    let keys = NodeKeys::generate(&mut r);
    let s = NodeSigningKey::from_key_file(&keys.signing.to_key_file()).unwrap();
    assert_eq!(s.public_key(), keys.signing.public_key());
    let i = NodeIssuanceKey::from_key_file(&keys.issuance.to_key_file()).unwrap();
    assert_eq!(i.public_key(), keys.issuance.public_key());
    let e = NodeEncryptionKey::from_key_file(&keys.encryption.to_key_file()).unwrap();
    assert_eq!(e.public_key(), keys.encryption.public_key());

    // Wrong type.
    let err = NodeSigningKey::from_key_file(&f).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::InvalidKeyEncoding);
    // Wrong length.
    assert!(OwnerSigningKey::from_key_file(&f[..42]).is_err());
    let mut long = f.to_vec();
    long.push(0);
    assert!(OwnerSigningKey::from_key_file(&long).is_err());
    // Wrong magic.
    let mut bad = f.to_vec();
    bad[0] ^= 1;
    assert!(OwnerSigningKey::from_key_file(&bad).is_err());
    // Unknown type.
    let mut bad = f.to_vec();
    bad[10] = 9;
    assert!(OwnerSigningKey::from_key_file(&bad).is_err());
    assert!(key_file_type(&bad).is_err());
}

#[test]
fn secret_debug_has_no_key_bytes() {
    let mut r = rng();
    let owner = OwnerSigningKey::generate(&mut r);
    let keys = NodeKeys::generate(&mut r);
    let cases: Vec<(String, [u8; 32])> = vec![
        (format!("{owner:?}"), *owner.to_bytes()),
        (format!("{:?}", keys.signing), *keys.signing.to_bytes()),
        (format!("{:?}", keys.issuance), *keys.issuance.to_bytes()),
        (
            format!("{:?}", keys.encryption),
            *keys.encryption.to_bytes(),
        ),
    ];
    for (dbg, bytes) in &cases {
        assert!(!dbg.contains(&hex::encode(bytes)), "{dbg}");
        assert!(dbg.contains(".."), "{dbg}");
    }
    assert_eq!(format!("{owner:?}"), "OwnerSigningKey(..)");
    let nk = format!("{keys:?}");
    for (_, bytes) in &cases[1..] {
        assert!(!nk.contains(&hex::encode(bytes)));
    }
    // Public keys may print hex.
    let pk = owner.public_key();
    assert!(format!("{pk:?}").contains(&hex::encode(pk.to_bytes())));
}

#[test]
fn kid_formula() {
    let k = NodeIssuanceKey::from_bytes(&[3u8; 32]);
    let pk = k.public_key().to_bytes();
    let mut h = blake3::Hasher::new();
    h.update(b"FCP2-KID-V1");
    h.update(&pk);
    assert_eq!(k.kid().0, h.finalize().as_bytes()[..8]);
    let e = NodeEncryptionKey::from_bytes(&[4u8; 32]);
    assert_eq!(e.kid(), KeyId::of_public_key(&e.public_key().0));
}

#[test]
fn public_key_decoding_is_typed() {
    assert!(Ed25519PublicKey::from_bytes(&[0u8; 31]).is_err());
    assert!(Ed25519PublicKey::from_bytes(&[0u8; 33]).is_err());
    // y = 2 is not on the curve? Find some invalid encoding among a few candidates.
    let mut found_invalid = false;
    for b in 0u8..=255 {
        let mut bytes = [b; 32];
        bytes[31] &= 0x7f;
        if Ed25519PublicKey::from_bytes(&bytes).is_err() {
            found_invalid = true;
            break;
        }
    }
    assert!(found_invalid);
    assert!(X25519PublicKey::from_bytes(&[1u8; 5]).is_err());
    assert!(Signature::from_bytes(&[0u8; 63]).is_err());
    assert!(NodeSigningKey::from_slice(&[0u8; 31]).is_err());
    assert!(NodeEncryptionKey::from_slice(&[0u8; 33]).is_err());
}

fn schema() -> fcp_core::SchemaHash {
    SchemaId::parse("fcp.core:TestObject@1.0.0").unwrap().hash()
}

#[test]
fn sign_verify_tamper_wrong_key() {
    let mut r = rng();
    let k = NodeSigningKey::generate(&mut r);
    let other = NodeSigningKey::generate(&mut r);
    let body = b"\xa1\x61a\x01";
    let sig = sign_object(&k, &schema(), body);
    verify_object(&k.public_key(), &schema(), body, &sig).unwrap();
    // Message is domain || schema hash || cbor.
    let msg = signing_message(&schema(), body);
    assert!(msg.starts_with(b"FCP2-SIGN-V1"));
    assert_eq!(&msg[12..44], schema().as_bytes());
    fcp_crypto::sign::verify_raw(&k.public_key(), &msg, &sig).unwrap();

    let e = verify_object(&other.public_key(), &schema(), body, &sig).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::SignatureInvalid);
    let other_schema = SchemaId::parse("fcp.core:TestObject@1.0.1").unwrap().hash();
    assert!(verify_object(&k.public_key(), &other_schema, body, &sig).is_err());
    for bit in [0usize, 7, 100, 511] {
        let mut s2 = sig;
        s2.0[bit / 8] ^= 1 << (bit % 8);
        assert!(verify_object(&k.public_key(), &schema(), body, &s2).is_err());
    }
    let mut b2 = body.to_vec();
    b2[3] ^= 1;
    assert!(verify_object(&k.public_key(), &schema(), &b2, &sig).is_err());
}

#[test]
fn signatures_are_deterministic_from_seed() {
    let k = OwnerSigningKey::from_bytes(&[9u8; 32]);
    let a = sign_object(&k, &schema(), b"\x01");
    let b = sign_object(&k, &schema(), b"\x01");
    assert_eq!(a, b);
}

#[test]
fn batch_verify_ok_and_finds_bad_index() {
    let mut r = rng();
    let keys: Vec<NodeSigningKey> = (0..64).map(|_| NodeSigningKey::generate(&mut r)).collect();
    let pubs: Vec<Ed25519PublicKey> = keys.iter().map(NodeSigningKey::public_key).collect();
    let bodies: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i, i, i]).collect();
    let sh = schema();
    let mut sigs: Vec<Signature> = keys
        .iter()
        .zip(&bodies)
        .map(|(k, b)| sign_object(k, &sh, b))
        .collect();
    let mk = |sigs: &Vec<Signature>| {
        let v: Vec<BatchItem<'_>> = (0..64)
            .map(|i| BatchItem {
                key: &pubs[i],
                schema_hash: &sh,
                unsigned_cbor: &bodies[i],
                signature: &sigs[i],
            })
            .collect();
        verify_batch(&v)
    };
    mk(&sigs).unwrap();
    sigs[37].0[5] ^= 0x10;
    assert_eq!(
        mk(&sigs).unwrap_err(),
        CryptoError::BatchSignatureInvalid { index: 37 }
    );
    verify_batch(&[]).unwrap();
}
