//! Session benches (issue 4 §7): complete handshakes per second on one core,
//! and MAC seal/verify of a 1232-byte datagram for both suites.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    missing_debug_implementations
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fcp_crypto::{NodeSigningKey, SessionSuite};
use fcp_wire::frame::{DEFAULT_MAX_DATAGRAM, SESSION_ENVELOPE_LEN};
use fcp_wire::session::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const T0: u64 = 1_800_000_000;

struct Setup {
    rng: StdRng,
    a: Arc<LocalIdentity>,
    b: Arc<LocalIdentity>,
    anchors: MemoryTrustAnchors,
}

fn setup() -> Setup {
    let mut rng = StdRng::seed_from_u64(7);
    let ka = NodeSigningKey::generate(&mut rng);
    let kb = NodeSigningKey::generate(&mut rng);
    let mut anchors = MemoryTrustAnchors::new();
    anchors.insert("node-a", ka.public_key());
    anchors.insert("node-b", kb.public_key());
    Setup {
        rng,
        a: Arc::new(LocalIdentity::new("node-a", ka).unwrap()),
        b: Arc::new(LocalIdentity::new("node-b", kb).unwrap()),
        anchors,
    }
}

fn pair(s: &mut Setup, suite: SessionSuite) -> (Session, Session) {
    let mut r = Responder::new(
        s.b.clone(),
        ResponderConfig {
            suites: vec![suite],
            cookie_policy: CookiePolicy::Never,
            ..ResponderConfig::default()
        },
        T0,
        &mut s.rng,
    )
    .unwrap();
    let (hello, w) = InitiatorStart::new(
        s.a.clone(),
        "node-b",
        InitiatorConfig {
            suites: vec![suite],
            ..InitiatorConfig::default()
        },
    )
    .unwrap()
    .start(T0, &mut s.rng)
    .unwrap();
    let ResponderOutput::Accept { ack, session } =
        r.on_hello(&hello, T0, &s.anchors, &mut s.rng).unwrap()
    else {
        panic!()
    };
    let si = w
        .on_ack(&ack, T0, &s.anchors, &mut SessionCounters::default())
        .unwrap();
    (si, *session)
}

fn handshakes(c: &mut Criterion) {
    let mut g = c.benchmark_group("session_handshake");
    g.throughput(Throughput::Elements(1));
    for suite in [SessionSuite::HmacSha256, SessionSuite::Blake3] {
        let mut s = setup();
        // One long-lived responder with a big replay cache; time moves so the
        // cache ages out and never fills.
        let mut r = Responder::new(
            s.b.clone(),
            ResponderConfig {
                suites: vec![suite],
                cookie_policy: CookiePolicy::Never,
                replay_cache_capacity: 1 << 22,
                ..ResponderConfig::default()
            },
            T0,
            &mut s.rng,
        )
        .unwrap();
        let icfg = InitiatorConfig {
            suites: vec![suite],
            ..InitiatorConfig::default()
        };
        g.bench_function(format!("complete_suite{}", suite.as_u8()), |bch| {
            bch.iter(|| {
                let (hello, w) = InitiatorStart::new(s.a.clone(), "node-b", icfg.clone())
                    .unwrap()
                    .start(T0, &mut s.rng)
                    .unwrap();
                let ResponderOutput::Accept { ack, session } =
                    r.on_hello(&hello, T0, &s.anchors, &mut s.rng).unwrap()
                else {
                    panic!()
                };
                let si = w
                    .on_ack(&ack, T0, &s.anchors, &mut SessionCounters::default())
                    .unwrap();
                black_box((si, session));
            })
        });
    }
    g.finish();
}

fn datagram_mac(c: &mut Criterion) {
    let mut g = c.benchmark_group("session_datagram_1232");
    let frame = vec![0x5au8; DEFAULT_MAX_DATAGRAM - SESSION_ENVELOPE_LEN];
    g.throughput(Throughput::Bytes(DEFAULT_MAX_DATAGRAM as u64));
    for suite in [SessionSuite::HmacSha256, SessionSuite::Blake3] {
        let mut s = setup();
        let (mut si, mut sr) = pair(&mut s, suite);
        let mut out = Vec::with_capacity(DEFAULT_MAX_DATAGRAM);
        g.bench_function(format!("seal_suite{}", suite.as_u8()), |b| {
            b.iter(|| {
                out.clear();
                si.seal_datagram_into(black_box(&frame), &mut out).unwrap();
                black_box(&out);
            })
        });
        // Verify (full open_datagram: bounds, session id, window, MAC): each
        // input is freshly sealed outside the timed section, so the window
        // always accepts it.
        g.bench_function(format!("verify_suite{}", suite.as_u8()), |b| {
            b.iter_batched(
                || si.seal_datagram(&frame).unwrap(),
                |d| {
                    assert_eq!(sr.open_datagram(black_box(&d)).unwrap().len(), frame.len());
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, handshakes, datagram_mac);
criterion_main!(benches);
