//! Recomputation of each vector kind of profile §7 with the project's code.

use bytes::Bytes;
use fcp_core::{ObjectId, ObjectIdKey, SchemaId, ZoneId};
use fcp_crypto::session::EphemeralKeyPair;
use fcp_crypto::token::CapabilityClaims;
use fcp_crypto::{
    AeadAlgorithm, CapabilityToken, Ed25519PublicKey, NodeEncryptionKey, SessionSuite, Share,
    Signature, SymbolKey, WrapPurpose, derive_sender_subkey, derive_session_keys, session_mac,
    symbol_aad, unwrap_key, verify_object,
};
use fcp_wire::frame::{Frame, FrameBuilder, FrameFlags, FrameHeader};
use serde_json::{Value, json};

use crate::case::{Case, expect_eq};

/// Every kind this build can verify, in profile §7 order.
pub const KINDS: &[&str] = &[
    "zone_id_hash",
    "schema_hash",
    "object_id",
    "sender_subkey",
    "symbol_aead",
    "fcps_frame",
    "session_keys",
    "session_mac",
    "session_handshake",
    "key_wrap",
    "capability_token",
    "signature",
    "shamir",
];

/// Recompute one case of `kind`; `Err` says what differed.
pub fn check_case(kind: &str, c: &Case<'_>) -> Result<(), String> {
    match kind {
        "zone_id_hash" => zone_id_hash(c),
        "schema_hash" => schema_hash(c),
        "object_id" => object_id(c),
        "sender_subkey" => sender_subkey(c),
        "symbol_aead" => symbol_aead(c),
        "fcps_frame" => fcps_frame(c),
        "session_keys" => session_keys(c),
        "session_mac" => session_mac_kind(c),
        "session_handshake" => crate::session_handshake::check(c),
        "key_wrap" => key_wrap(c),
        "capability_token" => capability_token(c),
        "signature" => signature(c),
        "shamir" => shamir(c),
        other => Err(format!("unknown vector kind `{other}`")),
    }
}

fn e<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err}")
}

fn zone(c: &Case<'_>) -> Result<ZoneId, String> {
    ZoneId::new(c.str("zone_id")?).map_err(e("zone_id"))
}

fn schema(c: &Case<'_>) -> Result<SchemaId, String> {
    SchemaId::parse(c.str("schema")?).map_err(e("schema"))
}

fn small<T: TryFrom<u64>>(c: &Case<'_>, name: &str) -> Result<T, String> {
    T::try_from(c.u64(name)?).map_err(|_| format!("field `{name}` out of range"))
}

// profile §3: ZoneIdHash = BLAKE3("FCP2-ZONE-ID-V1" || zone_id_utf8)
fn zone_id_hash(c: &Case<'_>) -> Result<(), String> {
    expect_eq("hash", &c.hex("hash")?, zone(c)?.hash().as_bytes())
}

// profile §3: SchemaHash = BLAKE3("FCP2-SCHEMA-V1" || schema_id_bytes)
fn schema_hash(c: &Case<'_>) -> Result<(), String> {
    expect_eq("hash", &c.hex("hash")?, schema(c)?.hash().as_bytes())
}

// profile §3: scoped ObjectId
fn object_id(c: &Case<'_>) -> Result<(), String> {
    let key = ObjectIdKey::from_bytes(c.hex_n::<32>("key")?);
    let id = ObjectId::new(&c.hex("content")?, &zone(c)?, &schema(c)?, &key);
    expect_eq("object_id", &c.hex("object_id")?, id.as_bytes())
}

// profile §3: sender subkey
fn sender_subkey(c: &Case<'_>) -> Result<(), String> {
    let sub = derive_sender_subkey(
        &c.hex_n::<32>("zone_key")?,
        c.hex_n::<8>("zone_key_id")?,
        c.str("node_id")?,
        c.u64("instance_id")?,
    )
    .map_err(e("subkey"))?;
    expect_eq("subkey", &c.hex("subkey")?, sub.as_ref())
}

// profile §3: symbol AEAD, nonce and AAD
fn symbol_aead(c: &Case<'_>) -> Result<(), String> {
    let alg = AeadAlgorithm::from_name(c.str("algorithm")?).ok_or("unknown algorithm")?;
    let key = SymbolKey::derive(
        alg,
        &c.hex_n::<32>("zone_key")?,
        c.hex_n::<8>("zone_key_id")?,
        c.str("node_id")?,
        c.u64("instance_id")?,
    )
    .map_err(e("key"))?;
    let oid = ObjectId::from_bytes(c.hex_n::<32>("object_id")?);
    let (esi, k) = (small::<u32>(c, "esi")?, small::<u16>(c, "k")?);
    let aad = symbol_aad(
        &oid,
        esi,
        k,
        &zone(c)?.hash(),
        &c.hex_n::<8>("zone_key_id")?,
        c.u64("epoch")?,
    );
    let seq = c.u64("frame_seq")?;
    let mut buf = c.hex("plaintext")?;
    let tag = key
        .seal_in_place(seq, esi, &aad, &mut buf)
        .map_err(e("seal"))?;
    expect_eq("ciphertext", &c.hex("ciphertext")?, &buf)?;
    expect_eq("tag", &c.hex("tag")?, &tag)?;
    let mut ct = c.hex("ciphertext")?;
    key.open_in_place(seq, esi, &aad, &mut ct, &c.hex_n::<16>("tag")?)
        .map_err(e("open"))?;
    expect_eq("plaintext", &c.hex("plaintext")?, &ct)
}

// profile §4.2: FCPS frame layout
fn fcps_frame(c: &Case<'_>) -> Result<(), String> {
    let bytes = c.hex("frame")?;
    let f = Frame::decode(Bytes::from(bytes.clone())).map_err(e("decode"))?;
    let h = f.header();
    let want = |name: &str, got: u64| -> Result<(), String> {
        if c.u64(name)? == got {
            Ok(())
        } else {
            Err(format!("`{name}` mismatch: recomputed {got}"))
        }
    };
    expect_eq("magic", &c.hex("magic")?, b"FCPS")?;
    want("version", 1)?;
    want("flags", u64::from(h.flags.bits()))?;
    want("symbol_count", u64::from(f.symbol_count()))?;
    want(
        "payload_len",
        (bytes.len() - fcp_wire::frame::HEADER_LEN - 8) as u64,
    )?;
    expect_eq("object_id", &c.hex("object_id")?, &h.object_id)?;
    want("symbol_size", u64::from(h.symbol_size))?;
    expect_eq("zone_key_id", &c.hex("zone_key_id")?, &h.zone_key_id)?;
    expect_eq("zone_id_hash", &c.hex("zone_id_hash")?, &h.zone_id_hash)?;
    want("epoch_id", h.epoch_id)?;
    want("sender_instance_id", h.sender_instance_id)?;
    want("frame_seq", h.frame_seq)?;
    let checksum = xxhash_rust::xxh3::xxh3_64(bytes.get(..bytes.len() - 8).ok_or("short")?);
    expect_eq("checksum", &c.hex("checksum")?, &checksum.to_le_bytes())?;
    // Rebuild from the listed fields and records: must give the same bytes.
    let header = FrameHeader {
        flags: FrameFlags::from_bits(small(c, "flags")?).map_err(e("flags"))?,
        object_id: c.hex_n("object_id")?,
        symbol_size: small(c, "symbol_size")?,
        zone_key_id: c.hex_n("zone_key_id")?,
        zone_id_hash: c.hex_n("zone_id_hash")?,
        epoch_id: c.u64("epoch_id")?,
        sender_instance_id: c.u64("sender_instance_id")?,
        frame_seq: c.u64("frame_seq")?,
    };
    let mut b = FrameBuilder::new(&header, 65_535).map_err(e("builder"))?;
    let records = c.array("records")?;
    for r in records {
        let r = Case::new(r.as_object().ok_or("record is not an object")?);
        let pushed = b
            .push_sealed(
                small(&r, "esi")?,
                small(&r, "k")?,
                &r.hex("ciphertext")?,
                &r.hex_n("tag")?,
            )
            .map_err(e("record"))?;
        if !pushed {
            return Err("too many records".into());
        }
    }
    let rebuilt = b.finish().map_err(e("finish"))?;
    expect_eq("frame", &bytes, &rebuilt)
}

// profile §4.3: session key schedule
fn session_keys(c: &Case<'_>) -> Result<(), String> {
    let suite = SessionSuite::try_from(small::<u8>(c, "suite")?).map_err(e("suite"))?;
    let ei = EphemeralKeyPair::from_secret_bytes(&c.hex_n::<32>("initiator_eph_secret")?);
    let er = EphemeralKeyPair::from_secret_bytes(&c.hex_n::<32>("responder_eph_secret")?);
    let shared = ei.diffie_hellman(&er.public_key()).map_err(e("x25519"))?;
    let shared_r = er.diffie_hellman(&ei.public_key()).map_err(e("x25519"))?;
    if *shared != *shared_r {
        return Err("X25519 is not symmetric".into());
    }
    let keys = derive_session_keys(
        suite,
        &c.hex_n::<16>("session_id")?,
        &shared,
        c.str("initiator_node_id")?,
        c.str("responder_node_id")?,
        &c.hex_n::<16>("hello_nonce")?,
        &c.hex_n::<16>("ack_nonce")?,
    )
    .map_err(e("derive"))?;
    expect_eq("k_mac_i2r", &c.hex("k_mac_i2r")?, keys.k_mac_i2r())?;
    expect_eq("k_mac_r2i", &c.hex("k_mac_r2i")?, keys.k_mac_r2i())?;
    expect_eq("k_ctx", &c.hex("k_ctx")?, keys.k_ctx())
}

// profile §4.3: per-direction datagram MAC
fn session_mac_kind(c: &Case<'_>) -> Result<(), String> {
    let suite = SessionSuite::try_from(small::<u8>(c, "suite")?).map_err(e("suite"))?;
    let mac = session_mac(
        suite,
        &c.hex_n::<32>("key")?,
        &c.hex_n::<16>("session_id")?,
        small(c, "direction")?,
        c.u64("seq")?,
        &c.hex("frame")?,
    );
    expect_eq("mac", &c.hex("mac")?, &mac)
}

// profile §3: HPKE key wrap
fn key_wrap(c: &Case<'_>) -> Result<(), String> {
    let sk = NodeEncryptionKey::from_bytes(&c.hex_n::<32>("recipient_secret")?);
    let purpose = WrapPurpose::parse(c.str("purpose")?).ok_or("unknown purpose")?;
    let pt = unwrap_key(
        &sk,
        purpose,
        &zone(c)?.hash(),
        &c.hex_n::<8>("key_id")?,
        c.str("recipient_node_id")?,
        &c.hex("sealed")?,
    )
    .map_err(e("unwrap"))?;
    expect_eq("plaintext", &c.hex("plaintext")?, &pt)
}

/// The claims of a token as the `claims` JSON object of profile §7 (claim
/// names of profile §5, byte strings as hex).
pub fn claims_to_json(cl: &CapabilityClaims) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("iss".into(), json!(cl.iss_zone.as_str()));
    m.insert("sub".into(), json!(cl.sub));
    m.insert("aud".into(), json!(cl.aud));
    m.insert("exp".into(), json!(cl.exp));
    m.insert("iat".into(), json!(cl.iat));
    m.insert("cti".into(), json!(hex::encode(cl.jti)));
    m.insert("iss_node".into(), json!(cl.iss_node));
    m.insert(
        "grant_object_ids".into(),
        json!(
            cl.grant_object_ids
                .iter()
                .map(|o| o.to_hex())
                .collect::<Vec<_>>()
        ),
    );
    let caps: Vec<Value> = cl
        .caps
        .iter()
        .map(|g| match &g.operation {
            Some(op) => json!({ "capability": g.capability, "operation": op }),
            None => json!({ "capability": g.capability }),
        })
        .collect();
    m.insert("caps".into(), Value::Array(caps));
    if let Some(a) = &cl.attenuation {
        m.insert("attenuation".into(), json!(hex::encode(a)));
    }
    m.insert("holder_node".into(), json!(cl.holder_node));
    m.insert("rev_head".into(), json!(cl.rev_head.to_hex()));
    m.insert("rev_seq".into(), json!(cl.rev_seq));
    if let Some(b) = &cl.aud_binary {
        m.insert("aud_binary".into(), json!(b.to_hex()));
    }
    if let Some(i) = &cl.instance {
        m.insert("instance".into(), json!(i));
    }
    Value::Object(m)
}

// profile §5: COSE_Sign1 + CWT capability token
fn capability_token(c: &Case<'_>) -> Result<(), String> {
    let pk = Ed25519PublicKey::from_bytes(&c.hex("issuer_public_key")?).map_err(e("public key"))?;
    let token = CapabilityToken::decode_and_verify(&c.hex("token")?, &pk).map_err(e("token"))?;
    expect_eq("kid", &c.hex("kid")?, token.kid().as_bytes())?;
    let claims = claims_to_json(token.claims());
    if &claims != c.get("claims")? {
        return Err(format!("`claims` mismatch: decoded {claims}"));
    }
    Ok(())
}

// profile §3: signature bytes
fn signature(c: &Case<'_>) -> Result<(), String> {
    let cbor = c.hex("cbor")?;
    fcp_core::decode_value(&cbor).map_err(e("cbor"))?;
    let pk = Ed25519PublicKey::from_bytes(&c.hex("public_key")?).map_err(e("public key"))?;
    let sig = Signature::from_bytes(&c.hex("signature")?).map_err(e("signature"))?;
    verify_object(&pk, &schema(c)?.hash(), &cbor, &sig).map_err(e("verify"))
}

// profile §6: Shamir over GF(2^8)
fn shamir(c: &Case<'_>) -> Result<(), String> {
    let t: u8 = small(c, "threshold")?;
    let shares = c
        .array("shares")?
        .iter()
        .map(|s| {
            let h = s.as_str().ok_or("share is not a string")?;
            let b = hex::decode(h).map_err(e("share hex"))?;
            Share::from_bytes(&b).map_err(e("share"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let secret = c.hex("secret")?;
    let first = shares
        .get(..usize::from(t))
        .ok_or("fewer shares than the threshold")?;
    let last = shares
        .get(shares.len() - usize::from(t)..)
        .ok_or("fewer shares than the threshold")?;
    for (what, set) in [
        ("first t shares", first),
        ("last t shares", last),
        ("all shares", &shares[..]),
    ] {
        let got = fcp_crypto::shamir::combine_with_threshold(t, set).map_err(e("combine"))?;
        expect_eq(what, &secret, &got)?;
    }
    Ok(())
}
