//! Shared helpers for the session tests (included with `mod`).
#![allow(
    missing_debug_implementations,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;

use fcp_crypto::{NodeSigningKey, SessionSuite};
use fcp_wire::session::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

pub const T0: u64 = 1_800_000_000;

pub struct Net {
    pub rng: StdRng,
    pub a: Arc<LocalIdentity>,
    pub b: Arc<LocalIdentity>,
    pub anchors: MemoryTrustAnchors,
}

impl Net {
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let ka = NodeSigningKey::generate(&mut rng);
        let kb = NodeSigningKey::generate(&mut rng);
        let mut anchors = MemoryTrustAnchors::new();
        anchors.insert("node-a", ka.public_key());
        anchors.insert("node-b", kb.public_key());
        Self {
            rng,
            a: Arc::new(LocalIdentity::new("node-a", ka).unwrap()),
            b: Arc::new(LocalIdentity::new("node-b", kb).unwrap()),
            anchors,
        }
    }

    pub fn responder(&mut self, policy: CookiePolicy, suites: Vec<SessionSuite>) -> Responder {
        let cfg = ResponderConfig {
            suites,
            cookie_policy: policy,
            ..ResponderConfig::default()
        };
        Responder::new(self.b.clone(), cfg, T0, &mut self.rng).unwrap()
    }

    pub fn initiator(&mut self, suites: Vec<SessionSuite>) -> InitiatorStart {
        let cfg = InitiatorConfig {
            suites,
            ..InitiatorConfig::default()
        };
        InitiatorStart::new(self.a.clone(), "node-b", cfg).unwrap()
    }

    /// A full handshake without cookies: (initiator session, responder session).
    pub fn pair(&mut self, suites: Vec<SessionSuite>) -> (Session, Session) {
        let mut r = self.responder(CookiePolicy::Never, suites.clone());
        let (hello, wait) = self.initiator(suites).start(T0, &mut self.rng).unwrap();
        let ResponderOutput::Accept { ack, session } = r
            .on_hello(&hello, T0, &self.anchors, &mut self.rng)
            .unwrap()
        else {
            panic!("expected Ack")
        };
        let mut c = SessionCounters::default();
        let si = wait.on_ack(&ack, T0 + 1, &self.anchors, &mut c).unwrap();
        (si, *session)
    }
}

pub fn accept(out: ResponderOutput) -> (Vec<u8>, Session) {
    match out {
        ResponderOutput::Accept { ack, session } => (ack, *session),
        other => panic!("expected Accept, got {other:?}"),
    }
}

pub fn retry(out: ResponderOutput) -> Vec<u8> {
    match out {
        ResponderOutput::Retry(r) => r,
        other => panic!("expected Retry, got {other:?}"),
    }
}
