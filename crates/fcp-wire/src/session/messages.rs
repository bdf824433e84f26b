//! Handshake messages (spec §4.2 + review 000 #5, profile §4.3).
//!
//! Each message is a canonical-CBOR map keyed by its snake_case field names
//! (profile §2); byte arrays are byte strings, `suites` is an array of
//! unsigned integers in the initiator's preference order, `cookie` is omitted
//! when absent. Hello and Ack are signed with profile §3's signature bytes
//! (`"FCP2-SIGN-V1" || SchemaHash || canonical_cbor(message without
//! "signature")`) under `fcp.mesh:MeshSessionHello@1.0.0` and
//! `fcp.mesh:MeshSessionAck@1.0.0`. The HelloRetry is unsigned (stateless,
//! like DTLS HelloVerifyRequest / QUIC Retry).
//!
//! On UDP a handshake packet is `"FCPH" || u8(kind) || message` (see
//! [`HandshakeMessage`]), so a driver can tell it from a session datagram.
//!
//! Decoding is bounded ([`MAX_HANDSHAKE_LEN`]), strictly canonical
//! (`from_canonical_strict`: unknown fields, explicit nulls and non-canonical
//! encodings are rejected) and never panics.

use fcp_core::cbor::{byte_array, from_canonical_strict, to_canonical};
use fcp_core::{SchemaHash, SchemaId};
use fcp_crypto::{Ed25519PublicKey, NodeSigningKey, Signature, sign_object, verify_object};
use serde::{Deserialize, Serialize, Serializer};

use super::{Result, SessionError};

/// Upper bound of one handshake message (bytes).
pub const MAX_HANDSHAKE_LEN: usize = 4096;
/// Upper bound of a node id in a handshake message (UTF-8 bytes).
pub const MAX_NODE_ID_LEN: usize = 256;
/// Upper bound of the `suites` list.
pub const MAX_SUITES: usize = 16;
/// Schema of the signed Hello.
pub const HELLO_SCHEMA: &str = "fcp.mesh:MeshSessionHello@1.0.0";
/// Schema of the signed Ack.
pub const ACK_SCHEMA: &str = "fcp.mesh:MeshSessionAck@1.0.0";
/// Magic of a handshake packet on UDP.
pub const HANDSHAKE_MAGIC: [u8; 4] = *b"FCPH";

fn schema_hash(id: &str) -> Result<SchemaHash> {
    let sid = SchemaId::parse(id).map_err(|_| SessionError::InvalidConfig("schema id"))?;
    Ok(sid.hash())
}

/// Initiator → responder (spec §4.2, review 000 #5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshSessionHello {
    /// Initiator node id.
    pub from: String,
    /// Responder node id.
    pub to: String,
    /// Initiator's ephemeral X25519 public key.
    #[serde(with = "byte_array")]
    pub eph_pubkey: [u8; 32],
    /// Random 16-byte nonce (profile §4.3).
    #[serde(with = "byte_array")]
    pub nonce: [u8; 16],
    /// Unix seconds.
    pub timestamp: u64,
    /// Supported suites, initiator's preference order (signed: no downgrade).
    pub suites: Vec<u8>,
    /// The HelloRetry cookie, when the responder demanded one.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_array32")]
    pub cookie: Option<[u8; 32]>,
    /// Node signature (profile §3).
    #[serde(with = "byte_array")]
    pub signature: [u8; 64],
}

#[derive(Serialize)]
struct HelloTbs<'a> {
    from: &'a str,
    to: &'a str,
    #[serde(serialize_with = "ser_ref_array")]
    eph_pubkey: &'a [u8; 32],
    #[serde(serialize_with = "ser_ref_array")]
    nonce: &'a [u8; 16],
    timestamp: u64,
    suites: &'a [u8],
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_ref_array"
    )]
    cookie: Option<&'a [u8; 32]>,
}

/// Responder → initiator when a cookie is demanded (review 000 #5). Unsigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshSessionHelloRetry {
    /// Responder node id.
    pub from: String,
    /// Initiator node id.
    pub to: String,
    /// The Hello's nonce, echoed (this message's 16-byte nonce; see DECISIONS).
    #[serde(with = "byte_array")]
    pub hello_nonce: [u8; 16],
    /// `HMAC-SHA256(cookie_key, lp(from) || lp(to) || eph_pubkey || hello_nonce ||
    /// u64le(hello.timestamp))` (profile §4.3), over the Hello's fields.
    #[serde(with = "byte_array")]
    pub cookie: [u8; 32],
    /// Responder's clock (unix seconds), informational.
    pub timestamp: u64,
}

/// Responder → initiator (spec §4.2, profile §4.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshSessionAck {
    /// Responder node id.
    pub from: String,
    /// Initiator node id.
    pub to: String,
    /// Responder's ephemeral X25519 public key.
    #[serde(with = "byte_array")]
    pub eph_pubkey: [u8; 32],
    /// Random 16-byte nonce.
    #[serde(with = "byte_array")]
    pub nonce: [u8; 16],
    /// The Hello's nonce: binds the transcript (profile §4.3).
    #[serde(with = "byte_array")]
    pub hello_nonce: [u8; 16],
    /// Random session id chosen by the responder.
    #[serde(with = "byte_array")]
    pub session_id: [u8; 16],
    /// Selected suite: the first of the Hello's suites the responder supports.
    pub suite: u8,
    /// The responder's supported suites, so the initiator can check the choice.
    pub suites: Vec<u8>,
    /// Unix seconds.
    pub timestamp: u64,
    /// Node signature (profile §3).
    #[serde(with = "byte_array")]
    pub signature: [u8; 64],
}

#[derive(Serialize)]
struct AckTbs<'a> {
    from: &'a str,
    to: &'a str,
    #[serde(serialize_with = "ser_ref_array")]
    eph_pubkey: &'a [u8; 32],
    #[serde(serialize_with = "ser_ref_array")]
    nonce: &'a [u8; 16],
    #[serde(serialize_with = "ser_ref_array")]
    hello_nonce: &'a [u8; 16],
    #[serde(serialize_with = "ser_ref_array")]
    session_id: &'a [u8; 16],
    suite: u8,
    suites: &'a [u8],
    timestamp: u64,
}

fn ser_ref_array<S: Serializer, const N: usize>(v: &&[u8; N], s: S) -> Result<S::Ok, S::Error> {
    byte_array::serialize(v, s)
}

fn ser_opt_ref_array<S: Serializer, const N: usize>(
    v: &Option<&[u8; N]>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(a) => byte_array::serialize(a, s),
        None => s.serialize_none(),
    }
}

mod opt_array32 {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => fcp_core::cbor::byte_array::serialize(a, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        fcp_core::cbor::byte_array::deserialize(d).map(Some)
    }
}

fn check_node_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_NODE_ID_LEN {
        return Err(SessionError::HandshakeMalformed(format!(
            "node id length {} outside 1..={MAX_NODE_ID_LEN}",
            id.len()
        )));
    }
    Ok(())
}

fn check_suites(s: &[u8]) -> Result<()> {
    if s.is_empty() || s.len() > MAX_SUITES {
        return Err(SessionError::HandshakeMalformed(format!(
            "suite list length {} outside 1..={MAX_SUITES}",
            s.len()
        )));
    }
    Ok(())
}

fn decode_strict<T>(bytes: &[u8]) -> Result<T>
where
    T: serde::de::DeserializeOwned + Serialize,
{
    if bytes.len() > MAX_HANDSHAKE_LEN {
        return Err(SessionError::HandshakeOversized(bytes.len()));
    }
    from_canonical_strict(bytes).map_err(|e| SessionError::HandshakeMalformed(e.to_string()))
}

fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>> {
    let out = to_canonical(v).map_err(|_| SessionError::InvalidConfig("unencodable message"))?;
    if out.len() > MAX_HANDSHAKE_LEN {
        return Err(SessionError::InvalidConfig(
            "handshake message above MAX_HANDSHAKE_LEN",
        ));
    }
    Ok(out)
}

/// The signing, encoding and decoding shared by Hello and Ack: both sign
/// their `tbs()` view under their schema (profile §3) and carry `from`, `to`
/// and `suites`.
macro_rules! signed_message {
    ($ty:ty, $schema:expr) => {
        impl $ty {
            /// The canonical CBOR the signature covers (the message without `signature`).
            pub fn signed_bytes(&self) -> Result<Vec<u8>> {
                encode(&self.tbs())
            }

            /// Set `signature` with `key` (profile §3).
            pub fn sign(&mut self, key: &NodeSigningKey) -> Result<()> {
                self.signature = sign_tbs(key, $schema, &self.signed_bytes()?)?;
                Ok(())
            }

            /// Verify `signature` against `key`.
            pub fn verify(&self, key: &Ed25519PublicKey) -> Result<()> {
                verify_tbs(key, $schema, &self.signed_bytes()?, &self.signature)
            }

            /// Canonical CBOR bytes.
            pub fn encode(&self) -> Result<Vec<u8>> {
                encode(self)
            }

            /// Bounded, strict decode; checks node id and suite list bounds.
            pub fn decode(bytes: &[u8]) -> Result<Self> {
                let m: Self = decode_strict(bytes)?;
                check_node_id(&m.from)?;
                check_node_id(&m.to)?;
                check_suites(&m.suites)?;
                Ok(m)
            }
        }
    };
}

impl MeshSessionHello {
    fn tbs(&self) -> HelloTbs<'_> {
        HelloTbs {
            from: &self.from,
            to: &self.to,
            eph_pubkey: &self.eph_pubkey,
            nonce: &self.nonce,
            timestamp: self.timestamp,
            suites: &self.suites,
            cookie: self.cookie.as_ref(),
        }
    }
}

signed_message!(MeshSessionHello, HELLO_SCHEMA);

/// Profile §3 signature over a message's to-be-signed bytes under `schema`.
fn sign_tbs(key: &NodeSigningKey, schema: &str, tbs: &[u8]) -> Result<[u8; 64]> {
    Ok(sign_object(key, &schema_hash(schema)?, tbs).to_bytes())
}

/// Check a [`sign_tbs`] signature; any failure is `BadSignature`.
fn verify_tbs(key: &Ed25519PublicKey, schema: &str, tbs: &[u8], sig: &[u8; 64]) -> Result<()> {
    verify_object(key, &schema_hash(schema)?, tbs, &Signature(*sig))
        .map_err(|_| SessionError::BadSignature)
}

impl MeshSessionHelloRetry {
    /// Canonical CBOR bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        encode(self)
    }

    /// Bounded, strict decode.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let m: Self = decode_strict(bytes)?;
        check_node_id(&m.from)?;
        check_node_id(&m.to)?;
        Ok(m)
    }
}

impl MeshSessionAck {
    fn tbs(&self) -> AckTbs<'_> {
        AckTbs {
            from: &self.from,
            to: &self.to,
            eph_pubkey: &self.eph_pubkey,
            nonce: &self.nonce,
            hello_nonce: &self.hello_nonce,
            session_id: &self.session_id,
            suite: self.suite,
            suites: &self.suites,
            timestamp: self.timestamp,
        }
    }
}

signed_message!(MeshSessionAck, ACK_SCHEMA);

/// Kind byte of a handshake packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeKind {
    /// `1`: [`MeshSessionHello`].
    Hello = 1,
    /// `2`: [`MeshSessionHelloRetry`].
    HelloRetry = 2,
    /// `3`: [`MeshSessionAck`].
    Ack = 3,
}

/// A decoded handshake packet `"FCPH" || u8(kind) || canonical_cbor(message)`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeMessage {
    /// A Hello.
    Hello(MeshSessionHello),
    /// A HelloRetry.
    HelloRetry(MeshSessionHelloRetry),
    /// An Ack.
    Ack(MeshSessionAck),
}

impl HandshakeMessage {
    /// Whether `datagram` starts with the handshake magic.
    pub fn is_handshake(datagram: &[u8]) -> bool {
        datagram.starts_with(&HANDSHAKE_MAGIC)
    }

    /// Frame message bytes as a UDP handshake packet.
    pub fn frame(kind: HandshakeKind, message: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + message.len());
        out.extend_from_slice(&HANDSHAKE_MAGIC);
        out.push(kind as u8);
        out.extend_from_slice(message);
        out
    }

    /// Split a handshake packet into its kind and message bytes (not decoded).
    pub fn split(packet: &[u8]) -> Result<(HandshakeKind, &[u8])> {
        if packet.len() > MAX_HANDSHAKE_LEN + 5 {
            return Err(SessionError::HandshakeOversized(packet.len()));
        }
        let Some((head, body)) = packet.split_at_checked(5) else {
            return Err(SessionError::HandshakeMalformed("short packet".into()));
        };
        if head[..4] != HANDSHAKE_MAGIC {
            return Err(SessionError::HandshakeMalformed("bad magic".into()));
        }
        let kind = match head[4] {
            1 => HandshakeKind::Hello,
            2 => HandshakeKind::HelloRetry,
            3 => HandshakeKind::Ack,
            _ => return Err(SessionError::HandshakeMalformed("unknown kind".into())),
        };
        Ok((kind, body))
    }

    /// Decode a whole handshake packet.
    pub fn decode(packet: &[u8]) -> Result<Self> {
        let (kind, body) = Self::split(packet)?;
        Ok(match kind {
            HandshakeKind::Hello => Self::Hello(MeshSessionHello::decode(body)?),
            HandshakeKind::HelloRetry => Self::HelloRetry(MeshSessionHelloRetry::decode(body)?),
            HandshakeKind::Ack => Self::Ack(MeshSessionAck::decode(body)?),
        })
    }

    /// Encode as a handshake packet.
    pub fn encode(&self) -> Result<Vec<u8>> {
        Ok(match self {
            Self::Hello(m) => Self::frame(HandshakeKind::Hello, &m.encode()?),
            Self::HelloRetry(m) => Self::frame(HandshakeKind::HelloRetry, &m.encode()?),
            Self::Ack(m) => Self::frame(HandshakeKind::Ack, &m.encode()?),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fcp_core::cbor::{Value, decode_value, encode_value};

    fn hello() -> MeshSessionHello {
        MeshSessionHello {
            from: "node-a".into(),
            to: "node-b".into(),
            eph_pubkey: [1; 32],
            nonce: [2; 16],
            timestamp: 1_700_000_000,
            suites: vec![2, 1],
            cookie: Some([3; 32]),
            signature: [4; 64],
        }
    }

    /// The signed bytes are exactly canonical_cbor(message minus "signature").
    #[test]
    fn signed_bytes_are_message_without_signature() {
        for cookie in [None, Some([3u8; 32])] {
            let mut h = hello();
            h.cookie = cookie;
            let full = decode_value(&h.encode().unwrap()).unwrap();
            let Value::Map(m) = full else { unreachable!() };
            let stripped: std::collections::BTreeMap<_, _> = m
                .into_iter()
                .filter(|(k, _)| *k != Value::from("signature"))
                .collect();
            assert_eq!(
                encode_value(&Value::Map(stripped)),
                h.signed_bytes().unwrap()
            );
        }
    }

    #[test]
    fn roundtrip_and_strict() {
        let h = hello();
        let b = h.encode().unwrap();
        assert_eq!(MeshSessionHello::decode(&b).unwrap(), h);
        let p = HandshakeMessage::Hello(h.clone()).encode().unwrap();
        assert_eq!(
            HandshakeMessage::decode(&p).unwrap(),
            HandshakeMessage::Hello(h)
        );
        assert!(matches!(
            MeshSessionHello::decode(&vec![0u8; MAX_HANDSHAKE_LEN + 1]),
            Err(SessionError::HandshakeOversized(_))
        ));
    }
}
