//! Mesh session handshakes (issue 4): full handshakes for both suites, cookies,
//! and the hostile handshake matrix. Each rejection asserts the typed error and
//! its named counter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod session_common;

use fcp_core::{ErrorCode, HasErrorCode};
use fcp_crypto::{NodeSigningKey, SessionSuite};
use fcp_wire::session::cookie::COOKIE_ROTATE_SECS;
use fcp_wire::session::*;
use session_common::*;

const BOTH: [SessionSuite; 2] = [SessionSuite::Blake3, SessionSuite::HmacSha256];

#[test]
fn full_handshake_both_suites() {
    for suite in BOTH {
        let mut net = Net::new(1);
        let (mut si, mut sr) = net.pair(vec![suite]);
        assert_eq!(si.suite(), suite);
        assert_eq!(sr.suite(), suite);
        assert_eq!(si.session_id(), sr.session_id());
        assert_eq!(si.keys().k_mac_i2r(), sr.keys().k_mac_i2r());
        assert_eq!(si.keys().k_mac_r2i(), sr.keys().k_mac_r2i());
        assert_eq!(si.keys().k_ctx(), sr.keys().k_ctx());
        assert_eq!(si.role(), Role::Initiator);
        assert_eq!(sr.role(), Role::Responder);
        assert_eq!(si.peer(), "node-b");
        assert_eq!(sr.peer(), "node-a");
        let d = si.seal_datagram(b"hello frame").unwrap();
        assert_eq!(sr.open_datagram(&d).unwrap(), b"hello frame");
        let d = sr.seal_datagram(b"reply").unwrap();
        assert_eq!(si.open_datagram(&d).unwrap(), b"reply");
        // Keys never show up in Debug output.
        let dbg = format!("{si:?}");
        assert!(!dbg.contains(&format!("{:?}", si.keys().k_ctx())));
    }
}

#[test]
fn responder_picks_first_of_initiator_list() {
    let mut net = Net::new(2);
    let mut r = net.responder(
        CookiePolicy::Never,
        vec![SessionSuite::HmacSha256, SessionSuite::Blake3],
    );
    let (hello, wait) = net
        .initiator(vec![SessionSuite::Blake3, SessionSuite::HmacSha256])
        .start(T0, &mut net.rng)
        .unwrap();
    let (ack, sr) = accept(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
    assert_eq!(sr.suite(), SessionSuite::Blake3);
    let si = wait
        .on_ack(&ack, T0, &net.anchors, &mut SessionCounters::default())
        .unwrap();
    assert_eq!(si.suite(), SessionSuite::Blake3);
    assert_eq!(r.counters().handshakes_completed, 1);
}

#[test]
fn cookie_roundtrip_always() {
    let mut net = Net::new(3);
    let mut r = net.responder(CookiePolicy::Always, BOTH.to_vec());
    let (hello, wait) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let rt = retry(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
    assert_eq!(r.replay_cache_len(), 0, "no state before a valid cookie");
    assert_eq!(r.counters().retries_sent, 1);
    let mut c = SessionCounters::default();
    let (hello2, wait) = wait.on_retry(&rt, &mut c).unwrap();
    let (ack, _sr) = accept(
        r.on_hello(&hello2, T0 + 1, &net.anchors, &mut net.rng)
            .unwrap(),
    );
    wait.on_ack(&ack, T0 + 1, &net.anchors, &mut c).unwrap();
    assert_eq!(r.replay_cache_len(), 1);
}

#[test]
fn cookie_previous_key_accepted_after_one_rotation() {
    let mut net = Net::new(4);
    let mut r = net.responder(CookiePolicy::Always, BOTH.to_vec());
    let (hello, wait) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let rt = retry(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
    let (hello2, _wait) = wait.on_retry(&rt, &mut SessionCounters::default()).unwrap();
    // One rotation later (within skew: Hello timestamp T0, now T0+120).
    r.tick(T0 + COOKIE_ROTATE_SECS, &mut net.rng);
    accept(
        r.on_hello(&hello2, T0 + COOKIE_ROTATE_SECS, &net.anchors, &mut net.rng)
            .unwrap(),
    );
}

#[test]
fn cookie_rate_policy() {
    let mut net = Net::new(5);
    let mut r = net.responder(CookiePolicy::AboveRate(2), BOTH.to_vec());
    for i in 0..4 {
        let (hello, _w) = net
            .initiator(BOTH.to_vec())
            .start(T0, &mut net.rng)
            .unwrap();
        let out = r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap();
        match (i, out) {
            (0 | 1, ResponderOutput::Accept { .. }) => {}
            (2 | 3, ResponderOutput::Retry(_)) => {}
            (i, o) => panic!("hello {i}: unexpected {o:?}"),
        }
    }
    // Next second: the budget resets.
    let (hello, _w) = net
        .initiator(BOTH.to_vec())
        .start(T0 + 1, &mut net.rng)
        .unwrap();
    accept(
        r.on_hello(&hello, T0 + 1, &net.anchors, &mut net.rng)
            .unwrap(),
    );
}

#[test]
fn handshake_packets_roundtrip() {
    let mut net = Net::new(6);
    let (hello, _w) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let pkt = HandshakeMessage::frame(HandshakeKind::Hello, &hello);
    assert!(HandshakeMessage::is_handshake(&pkt));
    let (k, body) = HandshakeMessage::split(&pkt).unwrap();
    assert_eq!(k, HandshakeKind::Hello);
    assert_eq!(body, hello.as_slice());
    let HandshakeMessage::Hello(h) = HandshakeMessage::decode(&pkt).unwrap() else {
        panic!()
    };
    assert_eq!(h.encode().unwrap(), hello);
}

// ------------------------------------------------------------ hostile matrix

fn expect_err(r: Result<ResponderOutput, SessionError>) -> SessionError {
    match r {
        Err(e) => e,
        Ok(o) => panic!("expected an error, got {o:?}"),
    }
}

#[test]
fn bad_signature() {
    let mut net = Net::new(10);
    let mut r = net.responder(CookiePolicy::Never, BOTH.to_vec());
    let (hello, _w) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let mut h = MeshSessionHello::decode(&hello).unwrap();
    h.signature[5] ^= 1;
    let e = expect_err(r.on_hello(&h.encode().unwrap(), T0, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::BadSignature);
    assert_eq!(e.error_code(), ErrorCode::SignatureInvalid);
    assert_eq!(r.counters().bad_signature, 1);
    assert_eq!(r.replay_cache_len(), 0);
}

#[test]
fn signed_by_other_key() {
    let mut net = Net::new(11);
    let mut r = net.responder(CookiePolicy::Never, BOTH.to_vec());
    let mut h = {
        let (hello, _w) = net
            .initiator(BOTH.to_vec())
            .start(T0, &mut net.rng)
            .unwrap();
        MeshSessionHello::decode(&hello).unwrap()
    };
    h.sign(&NodeSigningKey::generate(&mut net.rng)).unwrap();
    let e = expect_err(r.on_hello(&h.encode().unwrap(), T0, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::BadSignature);
    assert_eq!(r.counters().bad_signature, 1);
}

#[test]
fn unknown_node() {
    let mut net = Net::new(12);
    let mut r = net.responder(CookiePolicy::Never, BOTH.to_vec());
    let stranger = std::sync::Arc::new(
        LocalIdentity::new("node-x", NodeSigningKey::generate(&mut net.rng)).unwrap(),
    );
    let (hello, _w) = InitiatorStart::new(stranger, "node-b", InitiatorConfig::default())
        .unwrap()
        .start(T0, &mut net.rng)
        .unwrap();
    let e = expect_err(r.on_hello(&hello, T0, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::UnknownNode("node-x".into()));
    assert_eq!(e.error_code(), ErrorCode::SessionUnknownNode);
    assert_eq!(r.counters().unknown_node, 1);
}

#[test]
fn timestamp_beyond_skew() {
    let mut net = Net::new(13);
    let mut r = net.responder(CookiePolicy::Never, BOTH.to_vec());
    // 120 s is allowed, 121 s is not, in both directions.
    for (ts, ok) in [
        (T0 - 120, true),
        (T0 + 120, true),
        (T0 - 121, false),
        (T0 + 121, false),
    ] {
        let (hello, _w) = net
            .initiator(BOTH.to_vec())
            .start(ts, &mut net.rng)
            .unwrap();
        let res = r.on_hello(&hello, T0, &net.anchors, &mut net.rng);
        if ok {
            accept(res.unwrap());
        } else {
            assert_eq!(expect_err(res), SessionError::TimestampSkew { now: T0, ts });
        }
    }
    assert_eq!(r.counters().timestamp_skew, 2);
    // Ack beyond skew on the initiator side.
    let (hello, wait) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let (ack, _) = accept(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
    let mut c = SessionCounters::default();
    let rej = wait
        .on_ack(&ack, T0 + 500, &net.anchors, &mut c)
        .unwrap_err();
    assert!(matches!(rej.error, SessionError::TimestampSkew { .. }));
    assert_eq!(c.timestamp_skew, 1);
    // The state survived: the same Ack is fine at a sane time.
    rej.state.on_ack(&ack, T0, &net.anchors, &mut c).unwrap();
}

#[test]
fn suite_downgrade_tampered_hello_list() {
    // An attacker strips the initiator's preferred suite: the signature breaks.
    let mut net = Net::new(14);
    let mut r = net.responder(CookiePolicy::Never, BOTH.to_vec());
    let (hello, _w) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let mut h = MeshSessionHello::decode(&hello).unwrap();
    h.suites = vec![SessionSuite::HmacSha256.as_u8()];
    let e = expect_err(r.on_hello(&h.encode().unwrap(), T0, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::BadSignature);
    assert_eq!(r.counters().bad_signature, 1);
}

#[test]
fn suite_downgrade_by_ack() {
    // A (signed) Ack selecting a suite other than the first common one.
    let mut net = Net::new(15);
    let mut r = net.responder(CookiePolicy::Never, BOTH.to_vec());
    let (hello, wait) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let (ack, _) = accept(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
    let mut a = MeshSessionAck::decode(&ack).unwrap();
    assert_eq!(a.suite, SessionSuite::Blake3.as_u8());
    a.suite = SessionSuite::HmacSha256.as_u8();
    a.sign(net.b.signing_key()).unwrap();
    let mut c = SessionCounters::default();
    let rej = wait
        .on_ack(&a.encode().unwrap(), T0, &net.anchors, &mut c)
        .unwrap_err();
    assert_eq!(rej.error, SessionError::SuiteDowngrade(1));
    assert_eq!(rej.error.error_code(), ErrorCode::SessionSuiteDowngrade);
    assert_eq!(c.suite_downgrade, 1);
    // Selecting a suite never offered is a downgrade too.
    let mut a2 = MeshSessionAck::decode(&ack).unwrap();
    a2.suite = 9;
    a2.sign(net.b.signing_key()).unwrap();
    let rej = rej
        .state
        .on_ack(&a2.encode().unwrap(), T0, &net.anchors, &mut c)
        .unwrap_err();
    assert_eq!(rej.error, SessionError::SuiteDowngrade(9));
    assert_eq!(c.suite_downgrade, 2);
}

#[test]
fn no_common_suite() {
    let mut net = Net::new(16);
    let mut r = net.responder(CookiePolicy::Never, vec![SessionSuite::HmacSha256]);
    let (hello, _w) = net
        .initiator(vec![SessionSuite::Blake3])
        .start(T0, &mut net.rng)
        .unwrap();
    let e = expect_err(r.on_hello(&hello, T0, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::NoCommonSuite);
    assert_eq!(r.counters().no_common_suite, 1);
}

#[test]
fn replayed_hello() {
    let mut net = Net::new(17);
    for policy in [CookiePolicy::Never, CookiePolicy::Always] {
        let mut r = net.responder(policy, BOTH.to_vec());
        let (mut hello, wait) = net
            .initiator(BOTH.to_vec())
            .start(T0, &mut net.rng)
            .unwrap();
        if policy == CookiePolicy::Always {
            let rt = retry(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
            hello = wait
                .on_retry(&rt, &mut SessionCounters::default())
                .unwrap()
                .0;
        }
        accept(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
        let e = expect_err(r.on_hello(&hello, T0 + 5, &net.anchors, &mut net.rng));
        assert_eq!(e, SessionError::ReplayedHello);
        assert_eq!(e.error_code(), ErrorCode::SessionReplayedHello);
        assert_eq!(r.counters().replayed_hello, 1);
        // After twice the skew window the timestamp check rejects it instead.
        let e = expect_err(r.on_hello(&hello, T0 + 300, &net.anchors, &mut net.rng));
        assert!(matches!(e, SessionError::TimestampSkew { .. }));
    }
}

#[test]
fn replay_cache_bounded() {
    let mut net = Net::new(18);
    let cfg = ResponderConfig {
        cookie_policy: CookiePolicy::Never,
        replay_cache_capacity: 2,
        ..ResponderConfig::default()
    };
    let mut r = Responder::new(net.b.clone(), cfg, T0, &mut net.rng).unwrap();
    for _ in 0..2 {
        let (hello, _w) = net
            .initiator(BOTH.to_vec())
            .start(T0, &mut net.rng)
            .unwrap();
        accept(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
    }
    let (hello, _w) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let e = expect_err(r.on_hello(&hello, T0, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::Overloaded);
    assert_eq!(r.counters().overloaded, 1);
    // Entries age out after 2 * max_skew.
    let (hello, _w) = net
        .initiator(BOTH.to_vec())
        .start(T0 + 241, &mut net.rng)
        .unwrap();
    accept(
        r.on_hello(&hello, T0 + 241, &net.anchors, &mut net.rng)
            .unwrap(),
    );
}

#[test]
fn forged_cookie() {
    let mut net = Net::new(19);
    let mut r = net.responder(CookiePolicy::Always, BOTH.to_vec());
    let (hello, wait) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let mut rt = MeshSessionHelloRetry::decode(&retry(
        r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap(),
    ))
    .unwrap();
    rt.cookie[0] ^= 0x80;
    let (hello2, _w) = wait
        .on_retry(&rt.encode().unwrap(), &mut SessionCounters::default())
        .unwrap();
    let e = expect_err(r.on_hello(&hello2, T0, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::BadCookie);
    assert_eq!(e.error_code(), ErrorCode::SessionCookieInvalid);
    assert_eq!(r.counters().bad_cookie, 1);
    assert_eq!(r.replay_cache_len(), 0);
}

#[test]
fn cookie_bound_to_hello() {
    // A valid cookie for one Hello does not validate another.
    let mut net = Net::new(20);
    let mut r = net.responder(CookiePolicy::Always, BOTH.to_vec());
    let (hello, wait) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let rt = retry(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
    let (_h2, _w) = wait.on_retry(&rt, &mut SessionCounters::default()).unwrap();
    let (other, _w) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let mut o = MeshSessionHello::decode(&other).unwrap();
    o.cookie = Some(MeshSessionHelloRetry::decode(&rt).unwrap().cookie);
    o.sign(net.a.signing_key()).unwrap();
    let e = expect_err(r.on_hello(&o.encode().unwrap(), T0, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::BadCookie);
}

#[test]
fn expired_cookie() {
    let mut net = Net::new(21);
    let mut r = net.responder(CookiePolicy::Always, BOTH.to_vec());
    let (hello, wait) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let rt = retry(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
    let (hello2, _w) = wait.on_retry(&rt, &mut SessionCounters::default()).unwrap();
    // Two rotations: the issuing key is retired. Keep the Hello within skew
    // by using a wide skew policy for this test.
    r.tick(T0 + 2 * COOKIE_ROTATE_SECS, &mut net.rng);
    let cfg_now = T0 + 100; // still within skew of the Hello
    let e = expect_err(r.on_hello(&hello2, cfg_now, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::ExpiredCookie);
    assert_eq!(e.error_code(), ErrorCode::SessionCookieExpired);
    assert_eq!(r.counters().expired_cookie, 1);
    // Three more rotations: the key is gone entirely, the cookie is just invalid.
    r.tick(T0 + 5 * COOKIE_ROTATE_SECS, &mut net.rng);
    let e = expect_err(r.on_hello(&hello2, cfg_now, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::BadCookie);
}

#[test]
fn wrong_recipient_and_malformed() {
    let mut net = Net::new(22);
    let mut r = net.responder(CookiePolicy::Never, BOTH.to_vec());
    let (hello, _w) = InitiatorStart::new(net.a.clone(), "node-c", InitiatorConfig::default())
        .unwrap()
        .start(T0, &mut net.rng)
        .unwrap();
    let e = expect_err(r.on_hello(&hello, T0, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::WrongPeer);
    assert_eq!(r.counters().wrong_peer, 1);

    let (hello, _w) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    // Truncated message.
    let e = expect_err(r.on_hello(&hello[..hello.len() - 3], T0, &net.anchors, &mut net.rng));
    assert!(matches!(e, SessionError::HandshakeMalformed(_)));
    // Trailing byte.
    let mut long = hello.clone();
    long.push(0);
    let e = expect_err(r.on_hello(&long, T0, &net.anchors, &mut net.rng));
    assert!(matches!(e, SessionError::HandshakeMalformed(_)));
    assert_eq!(r.counters().handshake_malformed, 2);
    // Oversized.
    let e = expect_err(r.on_hello(
        &vec![0xa0; MAX_HANDSHAKE_LEN + 1],
        T0,
        &net.anchors,
        &mut net.rng,
    ));
    assert!(matches!(e, SessionError::HandshakeOversized(_)));
    assert_eq!(r.counters().handshake_oversized, 1);
}

#[test]
fn unknown_field_and_null_rejected() {
    use fcp_core::cbor::{Value, decode_value, encode_value};
    let mut net = Net::new(23);
    let (hello, _w) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let Value::Map(mut m) = decode_value(&hello).unwrap() else {
        panic!()
    };
    m.insert(Value::from("cookie"), Value::null());
    let e = MeshSessionHello::decode(&encode_value(&Value::Map(m))).unwrap_err();
    assert!(matches!(e, SessionError::HandshakeMalformed(_)));
}

#[test]
fn ack_for_other_hello_and_wrong_peer() {
    let mut net = Net::new(24);
    let mut r = net.responder(CookiePolicy::Never, BOTH.to_vec());
    let (h1, w1) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let (h2, _w2) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let _ = h1;
    let (ack2, _) = accept(r.on_hello(&h2, T0, &net.anchors, &mut net.rng).unwrap());
    let mut c = SessionCounters::default();
    let rej = w1.on_ack(&ack2, T0, &net.anchors, &mut c).unwrap_err();
    assert!(matches!(rej.error, SessionError::UnexpectedMessage(_)));
    assert_eq!(c.unexpected_message, 1);
    // A retry for another Hello is refused too.
    let bogus = MeshSessionHelloRetry {
        from: "node-b".into(),
        to: "node-a".into(),
        hello_nonce: [0; 16],
        cookie: [0; 32],
        timestamp: T0,
    };
    let rej = rej
        .state
        .on_retry(&bogus.encode().unwrap(), &mut c)
        .unwrap_err();
    assert!(matches!(rej.error, SessionError::UnexpectedMessage(_)));
    let mut bogus2 = bogus.clone();
    bogus2.from = "node-z".into();
    let rej = rej
        .state
        .on_retry(&bogus2.encode().unwrap(), &mut c)
        .unwrap_err();
    assert_eq!(rej.error, SessionError::WrongPeer);
    assert_eq!(c.wrong_peer, 1);
}

#[test]
fn forged_ack_signature() {
    let mut net = Net::new(25);
    let mut r = net.responder(CookiePolicy::Never, BOTH.to_vec());
    let (hello, wait) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let (ack, _) = accept(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
    let mut a = MeshSessionAck::decode(&ack).unwrap();
    a.session_id[0] ^= 1;
    let mut c = SessionCounters::default();
    let rej = wait
        .on_ack(&a.encode().unwrap(), T0, &net.anchors, &mut c)
        .unwrap_err();
    assert_eq!(rej.error, SessionError::BadSignature);
    assert_eq!(c.bad_signature, 1);
    // Unknown responder key.
    let empty = MemoryTrustAnchors::new();
    let rej = rej.state.on_ack(&ack, T0, &empty, &mut c).unwrap_err();
    assert_eq!(rej.error, SessionError::UnknownNode("node-b".into()));
    assert_eq!(c.unknown_node, 1);
    rej.state.on_ack(&ack, T0, &net.anchors, &mut c).unwrap();
}

#[test]
fn low_order_ephemeral_key() {
    let mut net = Net::new(26);
    let mut r = net.responder(CookiePolicy::Never, BOTH.to_vec());
    let (hello, _w) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let mut h = MeshSessionHello::decode(&hello).unwrap();
    h.eph_pubkey = [0; 32];
    h.sign(net.a.signing_key()).unwrap();
    let e = expect_err(r.on_hello(&h.encode().unwrap(), T0, &net.anchors, &mut net.rng));
    assert_eq!(e, SessionError::KeyExchange);
    assert_eq!(r.counters().key_exchange_failed, 1);
}

#[test]
fn too_many_retries() {
    let mut net = Net::new(27);
    let mut r = net.responder(CookiePolicy::Always, BOTH.to_vec());
    let (hello, mut wait) = net
        .initiator(BOTH.to_vec())
        .start(T0, &mut net.rng)
        .unwrap();
    let rt = retry(r.on_hello(&hello, T0, &net.anchors, &mut net.rng).unwrap());
    let mut c = SessionCounters::default();
    for _ in 0..2 {
        wait = wait.on_retry(&rt, &mut c).unwrap().1;
    }
    let rej = wait.on_retry(&rt, &mut c).unwrap_err();
    assert!(matches!(rej.error, SessionError::UnexpectedMessage(_)));
}
