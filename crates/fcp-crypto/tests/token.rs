#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Capability tokens (COSE_Sign1 + CWT, profile §5).

use std::collections::BTreeMap;

use fcp_core::cbor::{Value, decode_value, encode_value};
use fcp_core::{HasErrorCode, ObjectId, ZoneId, error::ErrorCode};
use fcp_crypto::token::{check_time_window, protected_header, sig_structure};
use fcp_crypto::*;

fn claims() -> CapabilityClaims {
    CapabilityClaims {
        iss_zone: ZoneId::new("z:work").unwrap(),
        sub: "agent:claude".into(),
        aud: "fcp.gmail".into(),
        exp: 1_700_000_300,
        iat: 1_700_000_000,
        jti: [0x11; 16],
        iss_node: "node-issuer".into(),
        grant_object_ids: vec![
            ObjectId::from_bytes([0x22; 32]),
            ObjectId::from_bytes([0x23; 32]),
        ],
        caps: vec![
            CapabilityGrant {
                capability: "gmail.read".into(),
                operation: None,
            },
            CapabilityGrant {
                capability: "gmail.send".into(),
                operation: Some("send_message".into()),
            },
        ],
        attenuation: Some(encode_value(&Value::from({
            let mut m: BTreeMap<Value<'static>, Value<'static>> = BTreeMap::new();
            m.insert("max_calls".into(), 5u64.into());
            m
        }))),
        holder_node: "node-holder".into(),
        rev_head: ObjectId::from_bytes([0x33; 32]),
        rev_seq: 42,
        aud_binary: Some(ObjectId::from_bytes([0x44; 32])),
        instance: Some("inst-1".into()),
    }
}

fn key() -> NodeIssuanceKey {
    NodeIssuanceKey::from_bytes(&[0x55; 32])
}

#[test]
fn round_trip_and_structure() {
    let k = key();
    let t = CapabilityToken::issue(&k, &claims()).unwrap();
    let t2 = CapabilityToken::issue(&k, &claims()).unwrap();
    assert_eq!(t.as_bytes(), t2.as_bytes(), "deterministic");
    assert_eq!(t.as_bytes()[0], 0xd2, "tag 18");
    let d = CapabilityToken::decode_and_verify(t.as_bytes(), &k.public_key()).unwrap();
    assert_eq!(d.claims(), &claims());
    assert_eq!(d.kid(), k.kid());
    assert_eq!(d, t);
    // Protected header bytes: a2 01 27 04 48 kid.
    let mut ph = vec![0xa2, 0x01, 0x27, 0x04, 0x48];
    ph.extend_from_slice(&k.kid().0);
    assert_eq!(protected_header(&k.kid()), ph);
    // Minimal claims (no optional claims) also round-trip.
    let mut c = claims();
    c.attenuation = None;
    c.aud_binary = None;
    c.instance = None;
    c.grant_object_ids.clear();
    let t = CapabilityToken::issue(&k, &c).unwrap();
    let d = CapabilityToken::decode_and_verify(t.as_bytes(), &k.public_key()).unwrap();
    assert_eq!(d.claims(), &c);
}

#[test]
fn payload_uses_integer_claim_keys() {
    let p = claims().to_cbor().unwrap();
    let Value::Map(m) = decode_value(&p).unwrap() else {
        panic!()
    };
    let keys: Vec<u64> = m
        .keys()
        .map(|k| match k {
            Value::Unsigned(n) => *n,
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            1, 2, 3, 4, 6, 7, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008
        ]
    );
}

#[test]
fn wrong_key_and_bad_signature() {
    let k = key();
    let t = CapabilityToken::issue(&k, &claims()).unwrap();
    let other = NodeIssuanceKey::from_bytes(&[0x56; 32]);
    let e = CapabilityToken::decode_and_verify(t.as_bytes(), &other.public_key()).unwrap_err();
    assert_eq!(e, CryptoError::UnknownKeyId);
    assert_eq!(e.error_code(), ErrorCode::UnknownKeyId);
    // Signature by another key but carrying the right kid.
    let protected = protected_header(&k.kid());
    let payload = claims().to_cbor().unwrap();
    let bad_sig = other.sign_raw(&sig_structure(&protected, &payload));
    let forged = cose(
        protected.into(),
        empty_map(),
        payload.into(),
        bad_sig.0.to_vec().into(),
    );
    let e = CapabilityToken::decode_and_verify(&forged, &k.public_key()).unwrap_err();
    assert_eq!(e, CryptoError::SignatureInvalid);
    // Every single-bit flip is rejected with a typed error.
    let bytes = t.as_bytes();
    for i in 0..bytes.len() {
        let mut b = bytes.to_vec();
        b[i] ^= 0x01;
        let e = CapabilityToken::decode_and_verify(&b, &k.public_key()).unwrap_err();
        assert!(
            matches!(
                e,
                CryptoError::InvalidToken(_)
                    | CryptoError::SignatureInvalid
                    | CryptoError::UnknownKeyId
            ),
            "byte {i}: {e:?}"
        );
    }
}

fn empty_map() -> Value<'static> {
    Value::from(BTreeMap::<Value<'static>, Value<'static>>::new())
}

fn cose(p: Value<'static>, u: Value<'static>, pl: Value<'static>, s: Value<'static>) -> Vec<u8> {
    encode_value(&Value::tag(18, Value::from(vec![p, u, pl, s])))
}

fn signed_with(protected: Vec<u8>, payload: Vec<u8>) -> Vec<u8> {
    let sig = key().sign_raw(&sig_structure(&protected, &payload));
    cose(
        protected.into(),
        empty_map(),
        payload.into(),
        sig.0.to_vec().into(),
    )
}

fn map(entries: Vec<(Value<'static>, Value<'static>)>) -> Vec<u8> {
    encode_value(&Value::from(
        entries.into_iter().collect::<BTreeMap<_, _>>(),
    ))
}

fn expect_invalid(bytes: &[u8]) {
    let e = CapabilityToken::decode_and_verify(bytes, &key().public_key()).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidToken, "{e:?}");
}

#[test]
fn structural_failures_are_invalid_token() {
    let kid = key().kid();
    let good_payload = claims().to_cbor().unwrap();
    let good = signed_with(protected_header(&kid), good_payload.clone());
    CapabilityToken::decode_and_verify(&good, &key().public_key()).unwrap();

    // Trailing bytes.
    let mut t = good.clone();
    t.push(0);
    expect_invalid(&t);
    // Wrong tag.
    let mut t = good.clone();
    t[0] = 0xd1;
    expect_invalid(&t);
    // Untagged.
    expect_invalid(&good[1..]);
    // Wrong alg.
    let p = map(vec![
        (1u64.into(), (-7i64).into()),
        (4u64.into(), kid.0.to_vec().into()),
    ]);
    expect_invalid(&signed_with(p, good_payload.clone()));
    // Extra (critical) protected parameter.
    let p = map(vec![
        (1u64.into(), (-8i64).into()),
        (2u64.into(), Value::from(vec![Value::from(1u64)])),
        (4u64.into(), kid.0.to_vec().into()),
    ]);
    expect_invalid(&signed_with(p, good_payload.clone()));
    // Missing kid / kid wrong length.
    let p = map(vec![(1u64.into(), (-8i64).into())]);
    expect_invalid(&signed_with(p, good_payload.clone()));
    let p = map(vec![
        (1u64.into(), (-8i64).into()),
        (4u64.into(), vec![1u8; 7].into()),
    ]);
    expect_invalid(&signed_with(p, good_payload.clone()));
    // Non-empty unprotected header.
    let protected = protected_header(&kid);
    let sig = key().sign_raw(&sig_structure(&protected, &good_payload));
    let u = Value::from(
        [(Value::from(4u64), Value::from(kid.0.to_vec()))]
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
    );
    expect_invalid(&cose(
        protected.clone().into(),
        u,
        good_payload.clone().into(),
        sig.0.to_vec().into(),
    ));
    // Signature wrong length.
    expect_invalid(&cose(
        protected.clone().into(),
        empty_map(),
        good_payload.clone().into(),
        vec![0u8; 63].into(),
    ));
    // Array of 3.
    expect_invalid(&encode_value(&Value::tag(
        18,
        Value::from(vec![
            Value::from(protected.clone()),
            empty_map(),
            Value::from(good_payload.clone()),
        ]),
    )));

    // Payload problems (all properly signed).
    let Value::Map(base) = decode_value(&good_payload).unwrap() else {
        panic!()
    };
    let with = |f: &dyn Fn(&mut BTreeMap<Value<'static>, Value<'static>>)| {
        let mut m = base.clone();
        f(&mut m);
        signed_with(protected.clone(), encode_value(&Value::from(m)))
    };
    for required in [1u64, 2, 3, 4, 6, 7, 1000, 1001, 1002, 1004, 1005, 1006] {
        expect_invalid(&with(&|m| {
            m.remove(&Value::from(required));
        }));
    }
    expect_invalid(&with(&|m| {
        m.insert(5u64.into(), 1u64.into());
    }));
    expect_invalid(&with(&|m| {
        m.insert(7u64.into(), vec![0u8; 15].into());
    }));
    expect_invalid(&with(&|m| {
        m.insert(1005u64.into(), vec![0u8; 31].into());
    }));
    expect_invalid(&with(&|m| {
        m.insert(
            1001u64.into(),
            Value::from(vec![Value::from(vec![0u8; 33])]),
        );
    }));
    expect_invalid(&with(&|m| {
        m.insert(4u64.into(), "soon".into());
    }));
    expect_invalid(&with(&|m| {
        m.insert(4u64.into(), 1u64.into()); // exp < iat
    }));
    expect_invalid(&with(&|m| {
        m.insert(1u64.into(), "Not A Zone".into());
    }));
    expect_invalid(&with(&|m| {
        m.insert(1003u64.into(), 5u64.into());
    }));
    expect_invalid(&with(&|m| {
        let cap: BTreeMap<Value<'static>, Value<'static>> = [
            ("capability".into(), "x".into()),
            ("extra".into(), "y".into()),
        ]
        .into_iter()
        .collect();
        m.insert(1002u64.into(), Value::from(vec![Value::from(cap)]));
    }));
    // Non-canonical payload bytes (uint 4 encoded in two bytes inside a map).
    let mut nc = vec![0xa1, 0x18, 0x04, 0x01];
    let p = std::mem::take(&mut nc);
    expect_invalid(&signed_with(protected.clone(), p));
}

#[test]
fn time_window_checks() {
    let t = CapabilityToken::issue(&key(), &claims()).unwrap();
    let (iat, exp) = (1_700_000_000u64, 1_700_000_300u64);
    t.check_time(iat, 120).unwrap();
    t.check_time(exp, 120).unwrap();
    t.check_time(iat - 120, 120).unwrap();
    t.check_time(exp + 120, 120).unwrap();
    let e = t.check_time(iat - 121, 120).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::TimestampOutOfSkew);
    let e = t.check_time(exp + 121, 120).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::TokenExpired);
    assert!(check_time_window(0, u64::MAX, u64::MAX, u64::MAX).is_ok());
}
