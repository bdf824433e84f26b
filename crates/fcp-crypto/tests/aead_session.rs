#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Sender subkeys, symbol AEAD (both algorithms), FCPC AEAD, session keys and MACs.

use fcp_core::{HasErrorCode, ObjectId, ZoneId, error::ErrorCode};
use fcp_crypto::session::{fcpc_nonce, hello_retry_cookie, hmac_sha256, verify_hello_retry_cookie};
use fcp_crypto::symbol::{
    chacha_nonce, chacha20poly1305_open_in_place, chacha20poly1305_seal_in_place, xchacha_nonce,
};
use fcp_crypto::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// HKDF-SHA256 with L <= 32 computed from first principles with HMAC.
fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let prk = hmac_sha256(salt, &[ikm]).unwrap();
    hmac_sha256(&prk, &[info, &[1u8]]).unwrap()
}

#[test]
fn rfc4231_case1_hmac() {
    let out = hmac_sha256(&[0x0b; 20], &[b"Hi There"]).unwrap();
    assert_eq!(
        hex::encode(out),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
}

#[test]
fn rfc5869_case1_via_hkdf32_helper() {
    // Confirms the reference helper used below (first 32 bytes of OKM).
    let ikm = [0x0bu8; 22];
    let salt = hex::decode("000102030405060708090a0b0c").unwrap();
    let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
    assert_eq!(
        hex::encode(hkdf32(&salt, &ikm, &info)),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
    );
}

#[test]
fn rfc8439_aead_vector_through_ring_wrapper() {
    let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
    let nonce: [u8; 12] = hex::decode("070000004041424344454647")
        .unwrap()
        .try_into()
        .unwrap();
    let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
    let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    let mut buf = pt.to_vec();
    let tag = chacha20poly1305_seal_in_place(&key, nonce, &aad, &mut buf).unwrap();
    assert_eq!(
        hex::encode(&buf),
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
    );
    assert_eq!(hex::encode(tag), "1ae10b594f09e26a7e902ecbd0600691");
    chacha20poly1305_open_in_place(&key, nonce, &aad, &mut buf, &tag).unwrap();
    assert_eq!(&buf[..], &pt[..]);
}

#[test]
fn sender_subkey_matches_profile_formula() {
    let zk = [0x11u8; 32];
    let zkid = [1, 2, 3, 4, 5, 6, 7, 8];
    let sub = derive_sender_subkey(&zk, zkid, "node-a", 0x0102030405060708).unwrap();
    let mut info = b"FCP2-SENDER-KEY-V1node-a".to_vec();
    info.extend_from_slice(&0x0102030405060708u64.to_le_bytes());
    assert_eq!(*sub, hkdf32(&zkid, &zk, &info));
    // Bound to node id and instance id.
    assert_ne!(
        *sub,
        *derive_sender_subkey(&zk, zkid, "node-b", 0x0102030405060708).unwrap()
    );
    assert_ne!(*sub, *derive_sender_subkey(&zk, zkid, "node-a", 1).unwrap());
}

#[test]
fn nonce_and_aad_layouts() {
    assert_eq!(
        hex::encode(chacha_nonce(0x0102, 0x0304)),
        "020100000000000004030000"
    );
    assert_eq!(
        hex::encode(xchacha_nonce(1, 2, 3)),
        "010000000000000002000000000000000300000000000000"
    );
    assert_eq!(hex::encode(fcpc_nonce(1, 2)), "010000000200000000000000");
    let oid = ObjectId::from_bytes([0xaa; 32]);
    let zh = ZoneId::new("z:work").unwrap().hash();
    let aad = symbol_aad(&oid, 5, 7, &zh, &[0xbb; 8], 9);
    assert_eq!(aad.len(), 86);
    assert_eq!(&aad[..32], &[0xaa; 32]);
    assert_eq!(&aad[32..36], &5u32.to_le_bytes());
    assert_eq!(&aad[36..38], &7u16.to_le_bytes());
    assert_eq!(&aad[38..70], zh.as_bytes());
    assert_eq!(&aad[70..78], &[0xbb; 8]);
    assert_eq!(&aad[78..86], &9u64.to_le_bytes());
}

fn zone_key() -> ZoneKey {
    ZoneKey::from_parts([0x42; 32], ZoneKeyId([7; 8]))
}

#[test]
fn symbol_aead_both_algorithms() {
    let zh = ZoneId::new("z:private").unwrap().hash();
    let oid = ObjectId::from_bytes([1; 32]);
    for alg in [
        AeadAlgorithm::ChaCha20Poly1305,
        AeadAlgorithm::XChaCha20Poly1305,
    ] {
        assert_eq!(AeadAlgorithm::from_name(alg.name()), Some(alg));
        let zk = zone_key();
        let key = zk.symbol_key(alg, "node-a", 99).unwrap();
        let other_key = zk.symbol_key(alg, "node-a", 100).unwrap();
        for len in [0usize, 1, 1024, 65536] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let aad = symbol_aad(&oid, 3, 10, &zh, &zk.key_id().0, 5);
            let mut buf = pt.clone();
            let tag = key.seal_in_place(17, 3, &aad, &mut buf).unwrap();
            if len > 0 {
                assert_ne!(buf, pt);
            }
            let mut ok = buf.clone();
            key.open_in_place(17, 3, &aad, &mut ok, &tag).unwrap();
            assert_eq!(ok, pt);
            // Wrong frame_seq / esi (nonce).
            let mut b = buf.clone();
            assert_eq!(
                key.open_in_place(18, 3, &aad, &mut b, &tag).unwrap_err(),
                CryptoError::DecryptFailed
            );
            let mut b = buf.clone();
            assert!(key.open_in_place(17, 4, &aad, &mut b, &tag).is_err());
            // Wrong AAD.
            let aad2 = symbol_aad(&oid, 3, 10, &zh, &zk.key_id().0, 6);
            let mut b = buf.clone();
            let e = key.open_in_place(17, 3, &aad2, &mut b, &tag).unwrap_err();
            assert_eq!(e.error_code(), ErrorCode::DecryptFailed);
            // Wrong key.
            let mut b = buf.clone();
            assert!(other_key.open_in_place(17, 3, &aad, &mut b, &tag).is_err());
            // Flipped ciphertext bit / tag bit.
            if len > 0 {
                let mut b = buf.clone();
                b[len / 2] ^= 0x01;
                assert!(key.open_in_place(17, 3, &aad, &mut b, &tag).is_err());
            }
            let mut t2 = tag;
            t2[15] ^= 0x80;
            let mut b = buf.clone();
            assert!(key.open_in_place(17, 3, &aad, &mut b, &t2).is_err());
        }
    }
}

#[test]
fn xchacha_nonce_binds_instance_id() {
    // Same subkey, different instance id in the nonce: different ciphertext.
    let sub = [5u8; 32];
    let a = SymbolKey::from_subkey(AeadAlgorithm::XChaCha20Poly1305, &sub, 1).unwrap();
    let b = SymbolKey::from_subkey(AeadAlgorithm::XChaCha20Poly1305, &sub, 2).unwrap();
    let mut x = vec![0u8; 16];
    let mut y = vec![0u8; 16];
    a.seal_in_place(0, 0, b"", &mut x).unwrap();
    b.seal_in_place(0, 0, b"", &mut y).unwrap();
    assert_ne!(x, y);
}

#[test]
fn secret_debug_symbol_and_session() {
    let zk = zone_key();
    let d = format!("{zk:?}");
    assert!(!d.contains(&hex::encode(zk.key_bytes())), "{d}");
    let key = zk
        .symbol_key(AeadAlgorithm::ChaCha20Poly1305, "n", 1)
        .unwrap();
    let sub = derive_sender_subkey(zk.key_bytes(), zk.key_id().0, "n", 1).unwrap();
    assert!(!format!("{key:?}").contains(&hex::encode(*sub)));
    let eph = EphemeralKeyPair::from_secret_bytes(&[0x33; 32]);
    assert!(!format!("{eph:?}").contains(&hex::encode([0x33u8; 32])));
    let sk = derive_session_keys(
        SessionSuite::HmacSha256,
        &[1; 16],
        &[2; 32],
        "a",
        "b",
        &[3; 16],
        &[4; 16],
    )
    .unwrap();
    let d = format!("{sk:?}");
    for k in [sk.k_mac_i2r(), sk.k_mac_r2i(), sk.k_ctx()] {
        assert!(!d.contains(&hex::encode(k)), "{d}");
    }
    let share = fcp_crypto::shamir::Share::from_bytes(&[1, 0xde, 0xad, 0xbe, 0xef]).unwrap();
    assert!(!format!("{share:?}").contains("deadbeef"));
}

#[test]
fn session_keys_match_profile_formula() {
    let mut r = StdRng::seed_from_u64(1);
    let ei = EphemeralKeyPair::generate(&mut r);
    let er = EphemeralKeyPair::generate(&mut r);
    let s1 = ei.diffie_hellman(&er.public_key()).unwrap();
    let s2 = er.diffie_hellman(&ei.public_key()).unwrap();
    assert_eq!(*s1, *s2);
    let sid = [9u8; 16];
    let hn = [1u8; 16];
    let an = [2u8; 16];
    for suite in [SessionSuite::HmacSha256, SessionSuite::Blake3] {
        let keys = derive_session_keys(suite, &sid, &s1, "node-i", "node-rr", &hn, &an).unwrap();
        assert_eq!(keys.suite(), suite);
        // Reference: prk = HKDF(salt, ikm, info, 32); okm = Expand(prk, ..., 96).
        let mut info = b"FCP2-SESSION-V1".to_vec();
        info.extend_from_slice(&6u16.to_le_bytes());
        info.extend_from_slice(b"node-i");
        info.extend_from_slice(&7u16.to_le_bytes());
        info.extend_from_slice(b"node-rr");
        info.extend_from_slice(&hn);
        info.extend_from_slice(&an);
        info.push(suite.as_u8());
        let prk = hkdf32(&sid, &*s1, &info);
        let t1 = hmac_sha256(&prk, &[b"FCP2-SESSION-KEYS-V1", &[1]]).unwrap();
        let t2 = hmac_sha256(&prk, &[&t1, b"FCP2-SESSION-KEYS-V1", &[2]]).unwrap();
        let t3 = hmac_sha256(&prk, &[&t2, b"FCP2-SESSION-KEYS-V1", &[3]]).unwrap();
        assert_eq!(keys.k_mac_i2r(), &t1);
        assert_eq!(keys.k_mac_r2i(), &t2);
        assert_eq!(keys.k_ctx(), &t3);
        // The keyed MAC of each direction is keyed with that direction's key.
        let (sid, frame) = ([3u8; 16], [4u8; 100]);
        for (dir, key) in [(0u8, &t1), (1, &t2)] {
            assert_eq!(
                keys.mac(dir).unwrap().mac(&sid, dir, 9, &frame),
                session_mac(suite, key, &sid, dir, 9, &frame)
            );
        }
        assert!(keys.mac(2).is_err());
    }
}

#[test]
fn low_order_peer_rejected() {
    let e = EphemeralKeyPair::from_secret_bytes(&[5; 32]);
    let err = e.diffie_hellman(&X25519PublicKey([0; 32])).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::KeyExchangeFailed);
}

#[test]
fn session_mac_both_suites() {
    let key = [0x5a; 32];
    let sid = [0x01; 16];
    let frame = vec![0x77u8; 1232];
    for suite in [SessionSuite::HmacSha256, SessionSuite::Blake3] {
        let mac = session_mac(suite, &key, &sid, 0, 42, &frame);
        let mut msg = sid.to_vec();
        msg.push(0);
        msg.extend_from_slice(&42u64.to_le_bytes());
        msg.extend_from_slice(&frame);
        let full: [u8; 32] = match suite {
            SessionSuite::HmacSha256 => hmac_sha256(&key, &[&msg]).unwrap(),
            _ => *blake3::keyed_hash(&key, &msg).as_bytes(),
        };
        assert_eq!(mac, full[..16]);
        let keyed = SessionMacKey::new(suite, &key);
        keyed.verify(&sid, 0, 42, &frame, &mac).unwrap();
        let e = keyed.verify(&sid, 1, 42, &frame, &mac).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::MacInvalid);
        assert!(keyed.verify(&sid, 0, 43, &frame, &mac).is_err());
        assert!(keyed.verify(&[2; 16], 0, 42, &frame, &mac).is_err());
        let other_key = SessionMacKey::new(suite, &[0x5b; 32]);
        assert!(other_key.verify(&sid, 0, 42, &frame, &mac).is_err());
        let mut f2 = frame.clone();
        f2[1000] ^= 1;
        assert!(keyed.verify(&sid, 0, 42, &f2, &mac).is_err());
        let mut m2 = mac;
        m2[0] ^= 1;
        assert!(keyed.verify(&sid, 0, 42, &frame, &m2).is_err());
        assert!(keyed.verify(&sid, 0, 42, &frame, &mac[..15]).is_err());
    }
    let other = session_mac(SessionSuite::Blake3, &key, &sid, 0, 42, &frame);
    assert_ne!(
        other,
        session_mac(SessionSuite::HmacSha256, &key, &sid, 0, 42, &frame)
    );
}

#[test]
fn unknown_suite_is_typed() {
    assert_eq!(SessionSuite::try_from(1).unwrap(), SessionSuite::HmacSha256);
    assert_eq!(SessionSuite::try_from(2).unwrap(), SessionSuite::Blake3);
    for s in [0u8, 3, 255] {
        assert_eq!(
            SessionSuite::try_from(s).unwrap_err(),
            CryptoError::UnknownSuite(s)
        );
    }
}

#[test]
fn fcpc_aead_round_trip() {
    let c = FcpcCipher::new(&[0x21; 32]).unwrap();
    let mut buf = b"control message".to_vec();
    let tag = c.seal_in_place(0, 1, b"hdr", &mut buf).unwrap();
    let mut b = buf.clone();
    c.open_in_place(0, 1, b"hdr", &mut b, &tag).unwrap();
    assert_eq!(b, b"control message");
    let mut b = buf.clone();
    assert!(c.open_in_place(1, 1, b"hdr", &mut b, &tag).is_err());
    let mut b = buf.clone();
    assert!(c.open_in_place(0, 2, b"hdr", &mut b, &tag).is_err());
    // Matches the raw ring wrapper with the profile nonce.
    let mut raw = b"control message".to_vec();
    let t2 =
        chacha20poly1305_seal_in_place(&[0x21; 32], fcpc_nonce(0, 1), b"hdr", &mut raw).unwrap();
    assert_eq!((raw, t2), (buf, tag));
}

#[test]
fn hello_retry_cookie_round_trip() {
    let k = [8u8; 32];
    let c = hello_retry_cookie(&k, "a", "b", &[1; 32], &[2; 16], 1000).unwrap();
    let mut m = vec![1u8, 0, b'a', 1, 0, b'b'];
    m.extend_from_slice(&[1; 32]);
    m.extend_from_slice(&[2; 16]);
    m.extend_from_slice(&1000u64.to_le_bytes());
    assert_eq!(c, hmac_sha256(&k, &[&m]).unwrap());
    verify_hello_retry_cookie(&k, "a", "b", &[1; 32], &[2; 16], 1000, &c).unwrap();
    assert!(verify_hello_retry_cookie(&k, "a", "b", &[1; 32], &[2; 16], 1001, &c).is_err());
}
