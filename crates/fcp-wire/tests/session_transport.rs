//! Session datagrams, anti-replay window, rekey and FCPC control frames
//! (issue 4, profile §4.3–4.4). Each rejection asserts the typed error and its
//! named counter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod session_common;

use fcp_core::{ErrorCode, HasErrorCode};
use fcp_crypto::SessionSuite;
use fcp_wire::frame::{DEFAULT_MAX_DATAGRAM, SESSION_ENVELOPE_LEN};
use fcp_wire::session::*;
use proptest::prelude::*;
use session_common::*;

const BOTH: [SessionSuite; 2] = [SessionSuite::Blake3, SessionSuite::HmacSha256];

#[test]
fn envelope_layout() {
    for suite in BOTH {
        let (mut si, sr) = Net::new(1).pair(vec![suite]);
        let d = si.seal_datagram(b"xyz").unwrap();
        assert_eq!(d.len(), SESSION_ENVELOPE_LEN + 3);
        assert_eq!(&d[..16], si.session_id());
        assert_eq!(&d[16..24], &0u64.to_le_bytes());
        let mac = fcp_crypto::session::session_mac(
            suite,
            sr.keys().k_mac_i2r(),
            sr.session_id(),
            0,
            0,
            b"xyz",
        );
        assert_eq!(&d[24..40], &mac);
        assert_eq!(&d[40..], b"xyz");
        assert_eq!(si.send_seq(), 1);
    }
}

#[test]
fn duplicated_reordered_replayed_frames() {
    for suite in BOTH {
        let (mut si, mut sr) = Net::new(2).pair(vec![suite]);
        let ds: Vec<Vec<u8>> = (0..300u32)
            .map(|i| si.seal_datagram(&i.to_le_bytes()).unwrap())
            .collect();
        // Reordered inside the window: each accepted once.
        for i in [5usize, 3, 4, 0, 1, 2, 130, 10, 6] {
            assert_eq!(sr.open_datagram(&ds[i]).unwrap(), &(i as u32).to_le_bytes());
        }
        // Duplicates / replays inside the window: rejected.
        for i in [5usize, 130, 10] {
            assert_eq!(
                sr.open_datagram(&ds[i]).unwrap_err(),
                SessionError::ReplayedFrame(i as u64)
            );
        }
        assert_eq!(sr.counters().replayed_frame, 3);
        // highest = 130: seq 2 (= 130 - 128) is outside, 3 was seen, 7 is new.
        assert_eq!(
            sr.open_datagram(&ds[2]).unwrap_err(),
            SessionError::FrameOutsideWindow {
                seq: 2,
                highest: 130
            }
        );
        sr.open_datagram(&ds[7]).unwrap();
        sr.open_datagram(&ds[299]).unwrap();
        let e = sr.open_datagram(&ds[8]).unwrap_err();
        assert!(matches!(e, SessionError::FrameOutsideWindow { .. }));
        assert_eq!(e.error_code(), ErrorCode::SessionFrameOutsideWindow);
        assert_eq!(sr.counters().frame_outside_window, 2);
        assert_eq!(sr.recv_window().highest(), Some(299));
    }
}

#[test]
fn forged_mac_does_not_move_window() {
    for suite in BOTH {
        let (mut si, mut sr) = Net::new(3).pair(vec![suite]);
        let d = si.seal_datagram(b"payload").unwrap();
        for pos in [24usize, 39, 40, d.len() - 1, 16] {
            let mut f = d.clone();
            f[pos] ^= 1;
            assert_eq!(sr.open_datagram(&f).unwrap_err(), SessionError::BadMac);
        }
        assert_eq!(sr.counters().bad_mac, 5);
        assert_eq!(SessionError::BadMac.error_code(), ErrorCode::MacInvalid);
        // A forged frame with a huge seq must not slide the window.
        let mut f = d.clone();
        f[16..24].copy_from_slice(&1_000_000u64.to_le_bytes());
        assert_eq!(sr.open_datagram(&f).unwrap_err(), SessionError::BadMac);
        assert_eq!(sr.recv_window().highest(), None);
        assert_eq!(sr.open_datagram(&d).unwrap(), b"payload");
        // Reflection: a node's own datagram sent back to it fails (the
        // direction byte is in the MAC).
        let (_, mut fresh) = Net::new(30).pair(vec![suite]);
        let own = fresh.seal_datagram(b"r").unwrap();
        assert_eq!(fresh.open_datagram(&own).unwrap_err(), SessionError::BadMac);
        drop(si);
    }
}

#[test]
fn truncated_oversized_unknown_session() {
    let (mut si, mut sr) = Net::new(4).pair(vec![SessionSuite::Blake3]);
    let d = si.seal_datagram(b"abc").unwrap();
    for n in [0usize, 1, 16, 39] {
        assert_eq!(
            sr.open_datagram(&d[..n]).unwrap_err(),
            SessionError::Truncated(n)
        );
    }
    assert_eq!(sr.counters().truncated, 4);
    let big = vec![0u8; DEFAULT_MAX_DATAGRAM + 1];
    let e = sr.open_datagram(&big).unwrap_err();
    assert_eq!(
        e,
        SessionError::Oversized {
            len: DEFAULT_MAX_DATAGRAM + 1,
            max: DEFAULT_MAX_DATAGRAM
        }
    );
    assert_eq!(sr.counters().oversized, 1);
    let mut other = d.clone();
    other[0] ^= 0xff;
    assert_eq!(
        sr.open_datagram(&other).unwrap_err(),
        SessionError::UnknownSession
    );
    assert_eq!(sr.counters().unknown_session, 1);
    // The sender refuses frames that do not fit.
    let frame = vec![0u8; DEFAULT_MAX_DATAGRAM - SESSION_ENVELOPE_LEN + 1];
    assert!(matches!(
        si.seal_datagram(&frame).unwrap_err(),
        SessionError::FrameTooLarge { .. }
    ));
    let frame = vec![0u8; DEFAULT_MAX_DATAGRAM - SESSION_ENVELOPE_LEN];
    let d = si.seal_datagram(&frame).unwrap();
    assert_eq!(d.len(), DEFAULT_MAX_DATAGRAM);
    assert_eq!(sr.open_datagram(&d).unwrap(), frame.as_slice());
}

#[test]
fn rekey_without_loss() {
    let mut net = Net::new(5);
    let cfg = SessionConfig {
        rekey_after_frames: 4,
        ..SessionConfig::default()
    };
    let mut r = Responder::new(
        net.b.clone(),
        ResponderConfig {
            cookie_policy: CookiePolicy::Never,
            session: cfg,
            ..ResponderConfig::default()
        },
        T0,
        &mut net.rng,
    )
    .unwrap();
    let icfg = InitiatorConfig {
        session: cfg,
        ..InitiatorConfig::default()
    };
    let handshake = |net: &mut Net, r: &mut Responder, now: u64| {
        let (hello, w) = InitiatorStart::new(net.a.clone(), "node-b", icfg.clone())
            .unwrap()
            .start(now, &mut net.rng)
            .unwrap();
        let (ack, sr) = accept(r.on_hello(&hello, now, &net.anchors, &mut net.rng).unwrap());
        let si = w
            .on_ack(&ack, now, &net.anchors, &mut SessionCounters::default())
            .unwrap();
        (si, sr)
    };
    let (si, sr) = handshake(&mut net, &mut r, T0);
    let mut a = PeerSessions::new(si, 30);
    let mut b = PeerSessions::new(sr, 30);
    let mut in_flight = Vec::new();
    while !a.current().needs_rekey() {
        in_flight.push(a.seal_datagram(b"old").unwrap());
    }
    assert_eq!(in_flight.len(), 4);
    // Rekey; datagrams sealed under the old session are still in flight.
    let (si2, sr2) = handshake(&mut net, &mut r, T0 + 10);
    let old_id = *a.current().session_id();
    a.install(si2, T0 + 10);
    b.install(sr2, T0 + 10);
    assert_ne!(a.current().session_id(), &old_id);
    let new = a.seal_datagram(b"new").unwrap();
    assert_eq!(b.open_datagram(&new, T0 + 11).unwrap(), b"new");
    for d in &in_flight {
        assert_eq!(b.open_datagram(d, T0 + 12).unwrap(), b"old");
    }
    assert_eq!(b.previous().unwrap().session_id(), &old_id);
    // After the grace period the old session is gone.
    let late = {
        let mut s = in_flight[0].clone();
        s[16..24].copy_from_slice(&99u64.to_le_bytes());
        s
    };
    assert_eq!(
        b.open_datagram(&late, T0 + 41).unwrap_err(),
        SessionError::UnknownSession
    );
    assert!(b.previous().is_none());
    assert_eq!(b.counters().unknown_session, 1);
    // On request too.
    a.current_mut().request_rekey();
    assert!(a.current().needs_rekey());
}

// ------------------------------------------------------------------- FCPC

fn fcpc_pair() -> ((FcpcSender, FcpcReceiver), (FcpcSender, FcpcReceiver)) {
    let (si, sr) = Net::new(6).pair(vec![SessionSuite::HmacSha256]);
    (
        si.fcpc(DEFAULT_MAX_FCPC_FRAME).unwrap(),
        sr.fcpc(DEFAULT_MAX_FCPC_FRAME).unwrap(),
    )
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Ping {
    id: u64,
    note: String,
}

#[test]
fn fcpc_roundtrip_streaming() {
    let ((mut tx_i, mut rx_i), (mut tx_r, mut rx_r)) = fcpc_pair();
    let mut stream = Vec::new();
    for id in 0..5 {
        stream.extend(
            tx_i.seal_value(&Ping {
                id,
                note: "x".repeat(id as usize * 100),
            })
            .unwrap(),
        );
    }
    // Feed one byte at a time.
    let mut got = Vec::new();
    for b in &stream {
        let mut input: &[u8] = std::slice::from_ref(b);
        while !input.is_empty() {
            if let FcpcRead::Message(m) = rx_r.read(&mut input).unwrap() {
                got.push(fcp_core::cbor::from_canonical::<Ping>(&m).unwrap());
            }
        }
        assert!(rx_r.buffered() <= 4 + DEFAULT_MAX_FCPC_FRAME);
    }
    assert_eq!(got.len(), 5);
    assert_eq!(got[4].id, 4);
    // All at once, other direction.
    let mut stream = Vec::new();
    for id in 0..3 {
        stream.extend(
            tx_r.seal_value(&Ping {
                id,
                note: String::new(),
            })
            .unwrap(),
        );
    }
    let mut input: &[u8] = &stream;
    let mut n = 0;
    while let FcpcRead::Message(_) = rx_i.read(&mut input).unwrap() {
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn fcpc_tampered_reordered_and_closed() {
    let ((mut tx, _), (_, mut rx)) = fcpc_pair();
    let f0 = tx.seal_value(&1u8).unwrap();
    let f1 = tx.seal_value(&2u8).unwrap();
    // Out of order (f1 first): wrong nonce, fails, stream closes.
    let e = rx.read(&mut &f1[..]).unwrap_err();
    assert_eq!(e, SessionError::FcpcDecrypt);
    assert_eq!(e.error_code(), ErrorCode::FcpcDecryptFailed);
    assert_eq!(rx.counters().fcpc_decrypt_failed, 1);
    assert_eq!(rx.read(&mut &f0[..]).unwrap_err(), SessionError::FcpcClosed);

    let ((mut tx, _), (_, mut rx)) = fcpc_pair();
    let mut f = tx.seal_value(&1u8).unwrap();
    let last = f.len() - 1;
    f[last] ^= 1;
    assert_eq!(rx.read(&mut &f[..]).unwrap_err(), SessionError::FcpcDecrypt);
}

#[test]
fn fcpc_bounds() {
    let ((mut tx, _), (_, mut rx)) = fcpc_pair();
    // A declared length above the bound is refused before any allocation.
    let hdr = ((DEFAULT_MAX_FCPC_FRAME + 1) as u32).to_le_bytes();
    let e = rx.read(&mut &hdr[..]).unwrap_err();
    assert_eq!(
        e,
        SessionError::FcpcOversized {
            len: DEFAULT_MAX_FCPC_FRAME + 1,
            max: DEFAULT_MAX_FCPC_FRAME
        }
    );
    assert_eq!(rx.counters().fcpc_oversized, 1);
    assert_eq!(rx.buffered(), 4);
    // Too short to hold a tag.
    let ((_, _), (_, mut rx)) = fcpc_pair();
    let e = rx.read(&mut &16u32.to_le_bytes()[..]).unwrap_err();
    assert!(matches!(e, SessionError::FcpcMalformed(_)));
    assert_eq!(rx.counters().fcpc_malformed, 1);
    // Sender side: payload too big, and non-canonical payloads.
    let big = fcp_core::cbor::to_canonical(&serde_bytes_like(DEFAULT_MAX_FCPC_FRAME)).unwrap();
    assert!(matches!(
        tx.seal_cbor(&big).unwrap_err(),
        SessionError::FcpcOversized { .. }
    ));
    assert!(matches!(
        tx.seal_cbor(&[0x18, 0x01]).unwrap_err(),
        SessionError::FcpcMalformed(_)
    ));
    assert!(matches!(
        tx.seal_cbor(&[0x01, 0x01]).unwrap_err(),
        SessionError::FcpcMalformed(_)
    ));
    // Truncated stream: NeedMore, nothing lost.
    let f = tx.seal_value(&7u8).unwrap();
    let mut part: &[u8] = &f[..f.len() - 1];
    let ((_, _), (_, mut rx2)) = fcpc_pair();
    assert_eq!(rx2.read(&mut part).unwrap(), FcpcRead::NeedMore);
}

fn serde_bytes_like(n: usize) -> fcp_core::cbor::Value<'static> {
    fcp_core::cbor::Value::ByteString(vec![0u8; n].into())
}

// --------------------------------------------------------- window model

proptest! {
    /// The window agrees with a simple model: accept iff not seen and
    /// seq > highest - 128.
    #[test]
    fn window_matches_model(seqs in proptest::collection::vec(0u64..400, 1..300)) {
        let mut w = ReplayWindow::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut highest: Option<u64> = None;
        for s in seqs {
            let model_ok = !seen.contains(&s)
                && highest.is_none_or(|h| s > h || h - s < REPLAY_WINDOW);
            let got = w.accept(s).is_ok();
            prop_assert_eq!(got, model_ok);
            if model_ok {
                seen.insert(s);
                highest = Some(highest.map_or(s, |h| h.max(s)));
            }
        }
    }

    /// Any byte string fed to open_datagram is rejected without panicking and
    /// counted under exactly one reason.
    #[test]
    fn random_datagrams_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
        let (_si, mut sr) = Net::new(7).pair(vec![SessionSuite::Blake3]);
        prop_assert!(sr.open_datagram(&bytes).is_err());
        prop_assert_eq!(sr.counters().total_rejections(), 1);
    }

    /// Handshake decoders never panic on arbitrary bytes.
    #[test]
    fn handshake_decode_total(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = MeshSessionHello::decode(&bytes);
        let _ = MeshSessionAck::decode(&bytes);
        let _ = MeshSessionHelloRetry::decode(&bytes);
        let _ = HandshakeMessage::decode(&bytes);
    }
}
