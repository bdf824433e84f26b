//! `session_handshake` vectors (issue 4): complete mesh session handshake
//! transcripts (profile §4.3). Each case fixes every input (signing key seeds,
//! ephemeral secrets (stored clamped), nonces, session id, timestamps, suite lists) and records
//! the exact Hello and Ack message bytes (canonical CBOR, without the UDP
//! `"FCPH" || kind` prefix) and the derived keys. `check` replays the case
//! through the real initiator and responder state machines and compares every
//! field.

use std::sync::Arc;

use fcp_crypto::{EphemeralKeyPair, NodeSigningKey, SessionSuite};
use fcp_wire::session::{
    CookiePolicy, InitiatorConfig, InitiatorStart, LocalIdentity, MemoryTrustAnchors, Responder,
    ResponderConfig, ResponderOutput, ResponderRandomness, SessionCounters,
};
use serde_json::{Value, json};

use crate::Case;
use crate::case::expect_eq;

/// All inputs of one transcript.
struct Inputs {
    initiator_node_id: String,
    responder_node_id: String,
    initiator_signing_seed: [u8; 32],
    responder_signing_seed: [u8; 32],
    initiator_eph_secret: [u8; 32],
    responder_eph_secret: [u8; 32],
    hello_nonce: [u8; 16],
    ack_nonce: [u8; 16],
    session_id: [u8; 16],
    hello_timestamp: u64,
    ack_timestamp: u64,
    initiator_suites: Vec<u8>,
    responder_suites: Vec<u8>,
}

/// Outputs of one transcript.
struct Outputs {
    suite: u8,
    hello: Vec<u8>,
    ack: Vec<u8>,
    k_mac_i2r: [u8; 32],
    k_mac_r2i: [u8; 32],
    k_ctx: [u8; 32],
}

fn suites(v: &[u8]) -> Result<Vec<SessionSuite>, String> {
    v.iter()
        .map(|b| SessionSuite::try_from(*b).map_err(|e| format!("suite {b}: {e}")))
        .collect()
}

fn run(i: &Inputs) -> Result<Outputs, String> {
    let e = |e: fcp_wire::session::SessionError| e.to_string();
    let ik = NodeSigningKey::from_bytes(&i.initiator_signing_seed);
    let rk = NodeSigningKey::from_bytes(&i.responder_signing_seed);
    let mut anchors = MemoryTrustAnchors::new();
    anchors.insert(i.initiator_node_id.clone(), ik.public_key());
    anchors.insert(i.responder_node_id.clone(), rk.public_key());
    let initiator = Arc::new(LocalIdentity::new(i.initiator_node_id.clone(), ik).map_err(e)?);
    let responder = Arc::new(LocalIdentity::new(i.responder_node_id.clone(), rk).map_err(e)?);

    let icfg = InitiatorConfig {
        suites: suites(&i.initiator_suites)?,
        ..InitiatorConfig::default()
    };
    let rcfg = ResponderConfig {
        suites: suites(&i.responder_suites)?,
        cookie_policy: CookiePolicy::Never,
        ..ResponderConfig::default()
    };
    let (hello, wait) = InitiatorStart::new(initiator, i.responder_node_id.clone(), icfg)
        .map_err(e)?
        .start_with(
            i.hello_timestamp,
            EphemeralKeyPair::from_secret_bytes(&i.initiator_eph_secret),
            i.hello_nonce,
        )
        .map_err(e)?;
    let mut r = Responder::with_cookie_key(responder, rcfg, i.ack_timestamp, [0; 32]).map_err(e)?;
    let out = r
        .on_hello_with(
            &hello,
            i.ack_timestamp,
            &anchors,
            ResponderRandomness {
                eph: EphemeralKeyPair::from_secret_bytes(&i.responder_eph_secret),
                nonce: i.ack_nonce,
                session_id: i.session_id,
            },
        )
        .map_err(e)?;
    let ResponderOutput::Accept { ack, session: sr } = out else {
        return Err("responder did not accept".into());
    };
    let si = wait
        .on_ack(
            &ack,
            i.ack_timestamp,
            &anchors,
            &mut SessionCounters::default(),
        )
        .map_err(|r| r.error.to_string())?;
    if si.keys().k_mac_i2r() != sr.keys().k_mac_i2r()
        || si.keys().k_mac_r2i() != sr.keys().k_mac_r2i()
        || si.keys().k_ctx() != sr.keys().k_ctx()
        || si.suite() != sr.suite()
        || si.session_id() != sr.session_id()
    {
        return Err("initiator and responder derived different sessions".into());
    }
    Ok(Outputs {
        suite: si.suite().as_u8(),
        hello,
        ack,
        k_mac_i2r: *si.keys().k_mac_i2r(),
        k_mac_r2i: *si.keys().k_mac_r2i(),
        k_ctx: *si.keys().k_ctx(),
    })
}

/// X25519 clamping (RFC 7748 §5). Vector eph secrets must be stored clamped,
/// so that every bit of the field matters and a flipped nibble is detected.
fn clamp(mut k: [u8; 32]) -> [u8; 32] {
    k[0] &= 0xf8;
    k[31] &= 0x7f;
    k[31] |= 0x40;
    k
}

fn clamped(c: &Case<'_>, name: &str) -> Result<[u8; 32], String> {
    let k: [u8; 32] = c.hex_n(name)?;
    if clamp(k) != k {
        return Err(format!("`{name}` is not a clamped X25519 secret"));
    }
    Ok(k)
}

fn u8_list(c: &Case<'_>, name: &str) -> Result<Vec<u8>, String> {
    c.array(name)?
        .iter()
        .map(|v| {
            v.as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| format!("`{name}` holds a non-u8 entry"))
        })
        .collect()
}

/// Recompute a `session_handshake` case and compare every field.
pub fn check(c: &Case<'_>) -> Result<(), String> {
    let inputs = Inputs {
        initiator_node_id: c.str("initiator_node_id")?.to_owned(),
        responder_node_id: c.str("responder_node_id")?.to_owned(),
        initiator_signing_seed: c.hex_n("initiator_signing_seed")?,
        responder_signing_seed: c.hex_n("responder_signing_seed")?,
        initiator_eph_secret: clamped(c, "initiator_eph_secret")?,
        responder_eph_secret: clamped(c, "responder_eph_secret")?,
        hello_nonce: c.hex_n("hello_nonce")?,
        ack_nonce: c.hex_n("ack_nonce")?,
        session_id: c.hex_n("session_id")?,
        hello_timestamp: c.u64("hello_timestamp")?,
        ack_timestamp: c.u64("ack_timestamp")?,
        initiator_suites: u8_list(c, "initiator_suites")?,
        responder_suites: u8_list(c, "responder_suites")?,
    };
    let out = run(&inputs)?;
    if c.u64("suite")? != u64::from(out.suite) {
        return Err(format!(
            "`suite` mismatch: expected {}, negotiated {}",
            c.u64("suite")?,
            out.suite
        ));
    }
    expect_eq("hello", &c.hex("hello")?, &out.hello)?;
    expect_eq("ack", &c.hex("ack")?, &out.ack)?;
    expect_eq("k_mac_i2r", &c.hex("k_mac_i2r")?, &out.k_mac_i2r)?;
    expect_eq("k_mac_r2i", &c.hex("k_mac_r2i")?, &out.k_mac_r2i)?;
    expect_eq("k_ctx", &c.hex("k_ctx")?, &out.k_ctx)?;
    Ok(())
}

fn pattern<const N: usize>(start: u8, step: u8) -> [u8; N] {
    let mut out = [0u8; N];
    let mut v = start;
    for b in &mut out {
        *b = v;
        v = v.wrapping_add(step);
    }
    out
}

/// Deterministic cases: both suites, short and long (256-byte) node ids.
pub fn generate() -> Vec<Value> {
    let long_id = format!("nodeLONG{}", "x".repeat(248));
    type Spec = (&'static str, String, String, Vec<u8>, Vec<u8>);
    let specs: [Spec; 4] = [
        (
            "suite 1 (HMAC-SHA256), only suite offered",
            "nA1B2C3CNTRL".to_owned(),
            "nD4E5F6CNTRL".to_owned(),
            vec![1],
            vec![1, 2],
        ),
        (
            "suite 2 (BLAKE3) chosen: first of the initiator's list",
            "node-alpha".to_owned(),
            "node-beta".to_owned(),
            vec![2, 1],
            vec![1, 2],
        ),
        (
            "suite 1 chosen by initiator preference; 256-byte initiator node id",
            long_id,
            "responder.tailnet-1234.ts.net".to_owned(),
            vec![1, 2],
            vec![2, 1],
        ),
        (
            "suite 2 only on both sides",
            "a".to_owned(),
            "b".to_owned(),
            vec![2],
            vec![2],
        ),
    ];
    let mut cases = Vec::new();
    for (k, (desc, iid, rid, isu, rsu)) in specs.into_iter().enumerate() {
        let k8 = u8::try_from(k).unwrap_or(0);
        let inputs = Inputs {
            initiator_node_id: iid,
            responder_node_id: rid,
            initiator_signing_seed: pattern(0x10 + k8, 1),
            responder_signing_seed: pattern(0x40 + k8, 3),
            initiator_eph_secret: clamp(pattern(0x70 + k8, 5)),
            responder_eph_secret: clamp(pattern(0xa0 + k8, 7)),
            hello_nonce: pattern(0xc0 + k8, 1),
            ack_nonce: pattern(0xd0 + k8, 2),
            session_id: pattern(0xe0 + k8, 1),
            hello_timestamp: 1_700_000_000 + u64::from(k8) * 1000,
            ack_timestamp: 1_700_000_001 + u64::from(k8) * 1000,
            initiator_suites: isu,
            responder_suites: rsu,
        };
        let Ok(out) = run(&inputs) else {
            continue;
        };
        cases.push(json!({
            "description": desc,
            "suite": out.suite,
            "initiator_node_id": inputs.initiator_node_id,
            "responder_node_id": inputs.responder_node_id,
            "initiator_signing_seed": hex::encode(inputs.initiator_signing_seed),
            "responder_signing_seed": hex::encode(inputs.responder_signing_seed),
            "initiator_eph_secret": hex::encode(inputs.initiator_eph_secret),
            "responder_eph_secret": hex::encode(inputs.responder_eph_secret),
            "hello_nonce": hex::encode(inputs.hello_nonce),
            "ack_nonce": hex::encode(inputs.ack_nonce),
            "session_id": hex::encode(inputs.session_id),
            "hello_timestamp": inputs.hello_timestamp,
            "ack_timestamp": inputs.ack_timestamp,
            "initiator_suites": inputs.initiator_suites,
            "responder_suites": inputs.responder_suites,
            "hello": hex::encode(&out.hello),
            "ack": hex::encode(&out.ack),
            "k_mac_i2r": hex::encode(out.k_mac_i2r),
            "k_mac_r2i": hex::encode(out.k_mac_r2i),
            "k_ctx": hex::encode(out.k_ctx),
        }));
    }
    cases
}
