//! One-time generator of the known-answer vectors (profile §7).
//!
//! `cargo run -p fcp-conformance --example gen_vectors -- conformance/vectors`
//!
//! Writes `<dir>/<kind>.json` for each kind whose file does not exist yet and never
//! overwrites one: vectors are data, and a changed vector is a wire-format change
//! that needs a reason in `docs/spec-decisions.md`. Inputs are deterministic
//! (BLAKE3 XOF of a label), so a rerun into an empty directory gives the same files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{fs, path::Path};

use fcp_core::{ObjectId, ObjectIdKey, SchemaId, ZoneId};
use fcp_crypto::session::EphemeralKeyPair;
use fcp_crypto::token::{CapabilityClaims, CapabilityGrant};
use fcp_crypto::{
    AeadAlgorithm, CapabilityToken, NodeEncryptionKey, NodeIssuanceKey, NodeSigningKey,
    OwnerSigningKey, SessionSuite, SymbolKey, WrapPurpose, derive_sender_subkey,
    derive_session_keys, session_mac, sign_object, symbol_aad,
};
use fcp_wire::frame::{Frame, FrameBuilder, FrameFlags, FrameHeader};
use serde_json::{Value, json};

/// `n` deterministic bytes for `label`.
fn det(label: &str, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    blake3::Hasher::new()
        .update(b"FCP2-VECTOR-GEN")
        .update(label.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn det32(label: &str) -> [u8; 32] {
    det(label, 32).try_into().unwrap()
}

fn h(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn write_kind(dir: &Path, kind: &str, cases: Vec<Value>) {
    let path = dir.join(format!("{kind}.json"));
    if path.exists() {
        eprintln!(
            "keep  {} (exists; vectors are never regenerated)",
            path.display()
        );
        return;
    }
    let body = serde_json::to_string_pretty(&json!({ kind: cases })).unwrap();
    fs::write(&path, body + "\n").unwrap();
    eprintln!("wrote {} ({} cases)", path.display(), cases_len(&path));
}

fn cases_len(path: &Path) -> usize {
    let v: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    v.as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

const LONG_ZONE: &str = "z:abcdefghijklmnopqrstuvwxyz0123456789_-abcdefghijklmnopqrstuvwx";

fn zone_id_hash() -> Vec<Value> {
    assert_eq!(LONG_ZONE.len(), 64);
    ["z:owner", "z:private", "z:public", "a", LONG_ZONE]
        .iter()
        .map(|z| json!({ "zone_id": z, "hash": h(ZoneId::new(z).unwrap().hash().as_bytes()) }))
        .collect()
}

fn schema_hash() -> Vec<Value> {
    [
        "fcp.core:CapabilityObject@1.0.0",
        "fcp.mesh:MeshSessionHello@1.0.0",
        "fcp.mesh:MeshSessionAck@1.0.0",
        "fcp.core:RawChunk@1.0.0",
        "x:y@0.0.0",
        "fcp.core:ZoneKeyManifest@12.345.6789",
    ]
    .iter()
    .map(|s| json!({ "schema": s, "hash": h(SchemaId::parse(s).unwrap().hash().as_bytes()) }))
    .collect()
}

fn object_id() -> Vec<Value> {
    let cases: [(&str, &str, Vec<u8>); 4] = [
        ("z:private", "fcp.core:CapabilityObject@1.0.0", Vec::new()),
        ("z:work", "fcp.core:RawChunk@1.0.0", b"hello, mesh".to_vec()),
        (
            LONG_ZONE,
            "fcp.core:ZoneKeyManifest@1.0.0",
            det("object_id/1k", 1024),
        ),
        (
            "z:owner",
            "fcp.core:AuditEvent@2.1.0",
            det("object_id/4k", 4096),
        ),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(i, (z, s, content))| {
            let key = det32(&format!("object_id/key/{i}"));
            let id = ObjectId::new(
                content,
                &ZoneId::new(z).unwrap(),
                &SchemaId::parse(s).unwrap(),
                &ObjectIdKey::from_bytes(key),
            );
            json!({ "key": h(key), "zone_id": z, "schema": s, "content": h(content), "object_id": h(id.as_bytes()) })
        })
        .collect()
}

fn det_n<const N: usize>(label: &str) -> [u8; N] {
    det(label, N).try_into().unwrap()
}

const LONG_NODE: &str = "node-with-a-rather-long-tailscale-hostname.example-tailnet.ts.net";

fn sender_subkey() -> Vec<Value> {
    [("node-a", 0u64), ("node-b", 1), (LONG_NODE, u64::MAX), ("n", 0x0123_4567_89ab_cdef)]
        .iter()
        .enumerate()
        .map(|(i, (node, inst))| {
            let zk = det32(&format!("subkey/zone_key/{i}"));
            let kid = det_n::<8>(&format!("subkey/kid/{i}"));
            let sub = derive_sender_subkey(&zk, kid, node, *inst).unwrap();
            json!({ "zone_key": h(zk), "zone_key_id": h(kid), "node_id": node, "instance_id": inst, "subkey": h(*sub) })
        })
        .collect()
}

fn symbol_aead() -> Vec<Value> {
    let cases = [
        ("chacha20poly1305", 1024usize, "z:private", 0u32, 1u16, 0u64),
        ("xchacha20poly1305", 1024, "z:work", 5, 3, 1),
        ("chacha20poly1305", 0, "z:owner", 7, 9, u64::MAX),
        ("xchacha20poly1305", 0, LONG_ZONE, 0, 1, 42),
        ("chacha20poly1305", 16384, "z:public", 70_000, 65, 1 << 40),
        ("xchacha20poly1305", 16384, "z:community", 1 << 23, 56403, 7),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(i, (alg, len, z, esi, k, seq))| {
            let zk = det32(&format!("aead/zone_key/{i}"));
            let kid = det_n::<8>(&format!("aead/kid/{i}"));
            let inst = u64::from_le_bytes(det_n::<8>(&format!("aead/inst/{i}")));
            let node = if i % 2 == 0 { "node-a" } else { LONG_NODE };
            let oid = ObjectId::from_bytes(det32(&format!("aead/oid/{i}")));
            let epoch = 5_900_000 + i as u64;
            let pt = det(&format!("aead/pt/{i}"), *len);
            let key = SymbolKey::derive(AeadAlgorithm::from_name(alg).unwrap(), &zk, kid, node, inst).unwrap();
            let aad = symbol_aad(&oid, *esi, *k, &ZoneId::new(z).unwrap().hash(), &kid, epoch);
            let mut ct = pt.clone();
            let tag = key.seal_in_place(*seq, *esi, &aad, &mut ct).unwrap();
            json!({
                "algorithm": alg, "zone_key": h(zk), "zone_key_id": h(kid), "node_id": node,
                "instance_id": inst, "zone_id": z, "object_id": h(oid.as_bytes()), "esi": esi, "k": k,
                "epoch": epoch, "frame_seq": seq, "plaintext": h(&pt), "ciphertext": h(&ct), "tag": h(tag),
            })
        })
        .collect()
}

fn fcps_frame() -> Vec<Value> {
    let cases: [(u16, u16, usize); 4] = [
        (0x0404, 1024, 1),
        (0x0404, 256, 4),
        (0x0fff, 256, 2),
        (0x0000, 16384, 1),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(i, (flags, t, n))| {
            let header = FrameHeader {
                flags: FrameFlags::from_bits(*flags).unwrap(),
                object_id: det32(&format!("frame/oid/{i}")),
                symbol_size: *t,
                zone_key_id: det_n(&format!("frame/kid/{i}")),
                zone_id_hash: *ZoneId::private().hash().as_bytes(),
                epoch_id: 5_900_000 + i as u64,
                sender_instance_id: u64::from_le_bytes(det_n(&format!("frame/inst/{i}"))),
                frame_seq: 1000 * i as u64,
            };
            let mut b = FrameBuilder::new(&header, 65_535).unwrap();
            let mut records = Vec::new();
            for r in 0..*n {
                let ct = det(&format!("frame/ct/{i}/{r}"), usize::from(*t));
                let tag = det_n::<16>(&format!("frame/tag/{i}/{r}"));
                let (esi, k) = (r as u32 * 3, 40u16);
                assert!(b.push_sealed(esi, k, &ct, &tag).unwrap());
                records.push(json!({ "esi": esi, "k": k, "ciphertext": h(&ct), "tag": h(tag) }));
            }
            let frame = b.finish().unwrap();
            let f = Frame::decode(frame.clone()).unwrap();
            let hd = f.header();
            json!({
                "frame": h(&frame), "magic": h(b"FCPS"), "version": 1, "flags": hd.flags.bits(),
                "symbol_count": f.symbol_count(), "payload_len": frame.len() - 122,
                "object_id": h(hd.object_id), "symbol_size": hd.symbol_size, "zone_key_id": h(hd.zone_key_id),
                "zone_id_hash": h(hd.zone_id_hash), "epoch_id": hd.epoch_id,
                "sender_instance_id": hd.sender_instance_id, "frame_seq": hd.frame_seq,
                "checksum": h(&frame[frame.len() - 8..]), "records": records,
            })
        })
        .collect()
}

fn session_keys() -> Vec<Value> {
    [(1u8, "node-a", "node-b"), (2, "node-a", "node-b"), (1, LONG_NODE, "n"), (2, "laptop", LONG_NODE)]
        .iter()
        .enumerate()
        .map(|(i, (suite, ini, resp))| {
            let (ei, er) = (det32(&format!("sk/ei/{i}")), det32(&format!("sk/er/{i}")));
            let sid = det_n::<16>(&format!("sk/sid/{i}"));
            let (hn, an) = (det_n::<16>(&format!("sk/hn/{i}")), det_n::<16>(&format!("sk/an/{i}")));
            let a = EphemeralKeyPair::from_secret_bytes(&ei);
            let b = EphemeralKeyPair::from_secret_bytes(&er);
            let shared = a.diffie_hellman(&b.public_key()).unwrap();
            let keys = derive_session_keys(SessionSuite::try_from(*suite).unwrap(), &sid, &shared, ini, resp, &hn, &an).unwrap();
            json!({
                "suite": suite, "session_id": h(sid), "initiator_eph_secret": h(ei), "responder_eph_secret": h(er),
                "initiator_node_id": ini, "responder_node_id": resp, "hello_nonce": h(hn), "ack_nonce": h(an),
                "k_mac_i2r": h(keys.k_mac_i2r()), "k_mac_r2i": h(keys.k_mac_r2i()), "k_ctx": h(keys.k_ctx()),
            })
        })
        .collect()
}

fn session_mac_cases() -> Vec<Value> {
    [(1u8, 0u8, 0u64, 1usize), (2, 1, 1, 1192), (1, 1, u64::MAX, 1192), (2, 0, 1 << 33, 64)]
        .iter()
        .enumerate()
        .map(|(i, (suite, dir, seq, len))| {
            let key = det32(&format!("mac/key/{i}"));
            let sid = det_n::<16>(&format!("mac/sid/{i}"));
            let frame = det(&format!("mac/frame/{i}"), *len);
            let mac = session_mac(SessionSuite::try_from(*suite).unwrap(), &key, &sid, *dir, *seq, &frame);
            json!({ "suite": suite, "key": h(key), "session_id": h(sid), "direction": dir, "seq": seq, "frame": h(&frame), "mac": h(mac) })
        })
        .collect()
}

fn key_wrap() -> Vec<Value> {
    [
        (WrapPurpose::ZoneKey, "z:private", "node-a", 32usize),
        (WrapPurpose::ObjectIdKey, "z:work", LONG_NODE, 32),
        (WrapPurpose::SecretShare, LONG_ZONE, "n", 33),
        (WrapPurpose::ZoneKey, "z:owner", "laptop", 32),
    ]
    .iter()
    .enumerate()
    .map(|(i, (purpose, z, node, len))| {
        let sk = det32(&format!("wrap/sk/{i}"));
        let recipient = NodeEncryptionKey::from_bytes(&sk);
        let kid = det_n::<8>(&format!("wrap/kid/{i}"));
        let pt = det(&format!("wrap/pt/{i}"), *len);
        let sealed = fcp_crypto::wrap::wrap_key_with_ephemeral_ikm(
            &det32(&format!("wrap/ikm/{i}")),
            &recipient.public_key(),
            *purpose,
            &ZoneId::new(z).unwrap().hash(),
            &kid,
            node,
            &pt,
        )
        .unwrap();
        json!({
            "recipient_secret": h(sk), "purpose": purpose.as_str(), "zone_id": z, "key_id": h(kid),
            "recipient_node_id": node, "sealed": h(&sealed), "plaintext": h(&pt),
        })
    })
    .collect()
}

fn capability_token() -> Vec<Value> {
    let base = |i: usize| CapabilityClaims {
        iss_zone: ZoneId::work(),
        sub: "agent:claude".into(),
        aud: "connector:gmail".into(),
        exp: 1_800_000_300,
        iat: 1_800_000_000,
        jti: det_n(&format!("tok/jti/{i}")),
        iss_node: "node-a".into(),
        grant_object_ids: vec![ObjectId::from_bytes(det32(&format!("tok/grant/{i}")))],
        caps: vec![CapabilityGrant {
            capability: "gmail.read".into(),
            operation: None,
        }],
        attenuation: None,
        holder_node: "node-b".into(),
        rev_head: ObjectId::from_bytes(det32(&format!("tok/rev/{i}"))),
        rev_seq: 17,
        aud_binary: None,
        instance: None,
    };
    let mut c1 = base(1);
    c1.iss_zone = ZoneId::private();
    c1.caps = vec![
        CapabilityGrant {
            capability: "gmail.send".into(),
            operation: Some("send_message".into()),
        },
        CapabilityGrant {
            capability: "gmail.read".into(),
            operation: None,
        },
    ];
    c1.grant_object_ids
        .push(ObjectId::from_bytes(det32("tok/grant/1b")));
    c1.attenuation = Some(
        fcp_core::to_canonical(&std::collections::BTreeMap::from([("max_recipients", 3u8)]))
            .unwrap(),
    );
    c1.aud_binary = Some(ObjectId::from_bytes(det32("tok/bin/1")));
    c1.instance = Some("gmail-1".into());
    let mut c2 = base(2);
    c2.grant_object_ids.clear();
    c2.caps.clear();
    c2.exp = u64::MAX;
    c2.iat = 0;
    c2.holder_node = LONG_NODE.into();
    [base(0), c1, c2]
        .iter()
        .enumerate()
        .map(|(i, claims)| {
            let key = NodeIssuanceKey::from_bytes(&det32(&format!("tok/key/{i}")));
            let tok = CapabilityToken::issue(&key, claims).unwrap();
            json!({
                "token": h(tok.as_bytes()), "issuer_public_key": h(key.public_key().to_bytes()),
                "kid": h(tok.kid().as_bytes()), "claims": fcp_conformance::claims_to_json(claims),
            })
        })
        .collect()
}

fn signature() -> Vec<Value> {
    let bodies: [(&str, Value); 3] = [
        (
            "fcp.core:NodeKeyAttestation@1.0.0",
            json!({ "node_id": "node-a", "issued_at": 1_800_000_000u64, "tags": ["tag:fcp-private"] }),
        ),
        ("fcp.mesh:MeshSessionHello@1.0.0", json!({})),
        (
            "fcp.core:ZoneKeyManifest@1.0.0",
            json!({ "zone_id": LONG_ZONE, "n": -5, "list": [1, 2, 3], "nested": { "a": true, "b": null } }),
        ),
    ];
    bodies
        .iter()
        .enumerate()
        .map(|(i, (schema, body))| {
            let cbor = fcp_core::to_canonical(body).unwrap();
            let schema_hash = SchemaId::parse(schema).unwrap().hash();
            let (pk, sig) = if i == 0 {
                let k = OwnerSigningKey::from_bytes(&det32(&format!("sig/key/{i}")));
                (k.public_key(), sign_object(&k, &schema_hash, &cbor))
            } else {
                let k = NodeSigningKey::from_bytes(&det32(&format!("sig/key/{i}")));
                (k.public_key(), sign_object(&k, &schema_hash, &cbor))
            };
            json!({ "schema": schema, "cbor": h(&cbor), "public_key": h(pk.to_bytes()), "signature": h(sig.0) })
        })
        .collect()
}

fn shamir() -> Vec<Value> {
    [
        (1u8, 1u8, 32usize),
        (3, 5, 32),
        (5, 9, 32),
        (2, 3, 1),
        (255, 255, 2),
    ]
    .iter()
    .enumerate()
    .map(|(i, (t, n, len))| {
        let secret = det(&format!("shamir/secret/{i}"), *len);
        let coeffs = det(&format!("shamir/coeffs/{i}"), len * usize::from(t - 1));
        let shares = fcp_crypto::shamir::split_with_coefficients(*t, *n, &secret, &coeffs).unwrap();
        let shares: Vec<String> = shares.iter().map(|s| h(&*s.to_bytes())).collect();
        json!({ "threshold": t, "shares": shares, "secret": h(&secret) })
    })
    .collect()
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "conformance/vectors".into());
    let dir = Path::new(&dir);
    fs::create_dir_all(dir).unwrap();
    write_kind(dir, "zone_id_hash", zone_id_hash());
    write_kind(dir, "schema_hash", schema_hash());
    write_kind(dir, "object_id", object_id());
    write_kind(dir, "sender_subkey", sender_subkey());
    write_kind(dir, "symbol_aead", symbol_aead());
    write_kind(dir, "fcps_frame", fcps_frame());
    write_kind(dir, "session_keys", session_keys());
    write_kind(dir, "session_mac", session_mac_cases());
    write_kind(
        dir,
        "session_handshake",
        fcp_conformance::session_handshake::generate(),
    );
    write_kind(dir, "key_wrap", key_wrap());
    write_kind(dir, "capability_token", capability_token());
    write_kind(dir, "signature", signature());
    write_kind(dir, "shamir", shamir());
}
