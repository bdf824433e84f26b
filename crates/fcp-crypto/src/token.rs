//! Capability tokens: COSE_Sign1 (RFC 9052) with CWT claims (spec §7.5,
//! review 000 #2, profile §5).
//!
//! ```text
//! token     = #6.18([ protected: bstr, unprotected: {}, payload: bstr, signature: bstr(64) ])
//! protected = canonical_cbor({1: -8, 4: kid[8]})         kid = issuance key id
//! payload   = canonical_cbor(claims map, integer keys)
//! signature = Ed25519(issuance key, canonical_cbor(["Signature1", protected, h'', payload]))
//! ```
//!
//! Claim types (project decisions where the spec/profile leave them open):
//!
//! | key  | claim              | CBOR type | required |
//! |------|--------------------|-----------|----------|
//! | 1    | iss (iss_zone)     | tstr (a valid ZoneId) | yes |
//! | 2    | sub (PrincipalId)  | tstr | yes |
//! | 3    | aud (ConnectorId)  | tstr | yes |
//! | 4    | exp                | uint (unix seconds) | yes |
//! | 6    | iat                | uint (unix seconds) | yes |
//! | 7    | cti (jti)          | bstr, 16 bytes | yes |
//! | 1000 | iss_node           | tstr | yes |
//! | 1001 | grant_object_ids   | array of bstr(32) | yes (may be empty) |
//! | 1002 | caps               | array of `{"capability": tstr, "operation"?: tstr}` | yes |
//! | 1003 | attenuation        | map (CapabilityConstraints, carried as an opaque canonical CBOR map) | no |
//! | 1004 | holder_node        | tstr | yes |
//! | 1005 | rev_head           | bstr, 32 bytes | yes |
//! | 1006 | rev_seq            | uint | yes |
//! | 1007 | aud_binary         | bstr, 32 bytes (ObjectId of the connector binary/manifest) | no |
//! | 1008 | instance           | tstr (InstanceId) | no |
//!
//! Decoding is strict: non-canonical bytes, trailing bytes, a wrong tag, any
//! protected header other than exactly `{1: -8, 4: kid}`, a non-empty
//! unprotected header, unknown claim keys, unknown keys in a cap map, missing
//! required claims, wrong types/lengths and `exp < iat` all give
//! [`CryptoError::InvalidToken`].

use std::collections::BTreeMap;

use fcp_core::ObjectId;
use fcp_core::ZoneId;
use fcp_core::cbor::{Value, decode_value, encode_value};

use crate::error::{CryptoError, Result};
use crate::keys::{Ed25519PublicKey, Ed25519Signer, KeyId, NodeIssuanceKey};
use crate::sign::{Signature, verify_raw};

/// CBOR tag of COSE_Sign1.
pub const COSE_SIGN1_TAG: u64 = 18;
/// COSE algorithm id of EdDSA.
pub const COSE_ALG_EDDSA: i64 = -8;

/// Claim keys (profile §5).
pub mod claim {
    /// iss = iss_zone
    pub const ISS: u64 = 1;
    /// sub
    pub const SUB: u64 = 2;
    /// aud
    pub const AUD: u64 = 3;
    /// exp
    pub const EXP: u64 = 4;
    /// iat
    pub const IAT: u64 = 6;
    /// cti = jti
    pub const CTI: u64 = 7;
    /// iss_node
    pub const ISS_NODE: u64 = 1000;
    /// grant_object_ids
    pub const GRANT_OBJECT_IDS: u64 = 1001;
    /// caps
    pub const CAPS: u64 = 1002;
    /// attenuation
    pub const ATTENUATION: u64 = 1003;
    /// holder_node
    pub const HOLDER_NODE: u64 = 1004;
    /// rev_head
    pub const REV_HEAD: u64 = 1005;
    /// rev_seq
    pub const REV_SEQ: u64 = 1006;
    /// aud_binary
    pub const AUD_BINARY: u64 = 1007;
    /// instance
    pub const INSTANCE: u64 = 1008;
}

/// One granted capability (spec §7.5 `CapabilityGrant`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityGrant {
    /// Capability id.
    pub capability: String,
    /// Optional operation restriction.
    pub operation: Option<String>,
}

/// The claims of a capability token (spec §7.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityClaims {
    /// 1: issuing zone.
    pub iss_zone: ZoneId,
    /// 2: principal.
    pub sub: String,
    /// 3: audience connector.
    pub aud: String,
    /// 4: expiry, unix seconds.
    pub exp: u64,
    /// 6: issued at, unix seconds.
    pub iat: u64,
    /// 7: token id.
    pub jti: [u8; 16],
    /// 1000: issuing node.
    pub iss_node: String,
    /// 1001: authorizing CapabilityObjects.
    pub grant_object_ids: Vec<ObjectId>,
    /// 1002: granted capabilities.
    pub caps: Vec<CapabilityGrant>,
    /// 1003: attenuation, the canonical CBOR encoding of a map (opaque here).
    pub attenuation: Option<Vec<u8>>,
    /// 1004: the only node that may present the token.
    pub holder_node: String,
    /// 1005: revocation head considered by the issuer.
    pub rev_head: ObjectId,
    /// 1006: revocation sequence at `rev_head`.
    pub rev_seq: u64,
    /// 1007: connector binary/manifest binding.
    pub aud_binary: Option<ObjectId>,
    /// 1008: connector instance binding.
    pub instance: Option<String>,
}

fn bad(msg: &'static str) -> CryptoError {
    CryptoError::InvalidToken(msg)
}

impl CapabilityClaims {
    /// The claims as a CBOR map value.
    pub fn to_value(&self) -> Result<Value<'static>> {
        let mut m: BTreeMap<Value<'static>, Value<'static>> = BTreeMap::new();
        m.insert(claim::ISS.into(), self.iss_zone.as_str().to_owned().into());
        m.insert(claim::SUB.into(), self.sub.clone().into());
        m.insert(claim::AUD.into(), self.aud.clone().into());
        m.insert(claim::EXP.into(), self.exp.into());
        m.insert(claim::IAT.into(), self.iat.into());
        m.insert(claim::CTI.into(), self.jti.to_vec().into());
        m.insert(claim::ISS_NODE.into(), self.iss_node.clone().into());
        let grants: Vec<Value<'static>> = self
            .grant_object_ids
            .iter()
            .map(|g| Value::from(g.as_bytes().to_vec()))
            .collect();
        m.insert(claim::GRANT_OBJECT_IDS.into(), grants.into());
        let caps: Vec<Value<'static>> = self
            .caps
            .iter()
            .map(|c| {
                let mut cm: BTreeMap<Value<'static>, Value<'static>> = BTreeMap::new();
                cm.insert("capability".into(), c.capability.clone().into());
                if let Some(op) = &c.operation {
                    cm.insert("operation".into(), op.clone().into());
                }
                Value::from(cm)
            })
            .collect();
        m.insert(claim::CAPS.into(), caps.into());
        if let Some(att) = &self.attenuation {
            let v = decode_value(att).map_err(|_| bad("attenuation is not canonical CBOR"))?;
            if !matches!(v, Value::Map(_)) {
                return Err(bad("attenuation must be a map"));
            }
            m.insert(claim::ATTENUATION.into(), v);
        }
        m.insert(claim::HOLDER_NODE.into(), self.holder_node.clone().into());
        m.insert(
            claim::REV_HEAD.into(),
            self.rev_head.as_bytes().to_vec().into(),
        );
        m.insert(claim::REV_SEQ.into(), self.rev_seq.into());
        if let Some(b) = &self.aud_binary {
            m.insert(claim::AUD_BINARY.into(), b.as_bytes().to_vec().into());
        }
        if let Some(i) = &self.instance {
            m.insert(claim::INSTANCE.into(), i.clone().into());
        }
        Ok(Value::from(m))
    }

    /// Canonical CBOR of the claims (the COSE payload).
    pub fn to_cbor(&self) -> Result<Vec<u8>> {
        Ok(encode_value(&self.to_value()?))
    }

    /// Strictly decode the canonical claims map.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self> {
        let v = decode_value(bytes).map_err(|_| bad("payload is not canonical CBOR"))?;
        let Value::Map(mut m) = v else {
            return Err(bad("payload is not a map"));
        };
        let mut take = |k: u64| m.remove(&Value::from(k));
        let iss = take(claim::ISS);
        let sub = take(claim::SUB);
        let aud = take(claim::AUD);
        let exp = take(claim::EXP);
        let iat = take(claim::IAT);
        let cti = take(claim::CTI);
        let iss_node = take(claim::ISS_NODE);
        let grants = take(claim::GRANT_OBJECT_IDS);
        let caps = take(claim::CAPS);
        let att = take(claim::ATTENUATION);
        let holder = take(claim::HOLDER_NODE);
        let rev_head = take(claim::REV_HEAD);
        let rev_seq = take(claim::REV_SEQ);
        let aud_binary = take(claim::AUD_BINARY);
        let instance = take(claim::INSTANCE);
        if !m.is_empty() {
            return Err(bad("unknown claim"));
        }
        let iss_zone = ZoneId::new(&text(iss, "iss")?).map_err(|_| bad("iss is not a ZoneId"))?;
        let exp = uint(exp, "exp")?;
        let iat = uint(iat, "iat")?;
        if exp < iat {
            return Err(bad("exp before iat"));
        }
        let grant_object_ids = match req(grants, "grant_object_ids")? {
            Value::Array(a) => a
                .into_iter()
                .map(|g| bytes_n::<32>(Some(g), "grant object id").map(ObjectId::from_bytes))
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(bad("grant_object_ids is not an array")),
        };
        let caps = match req(caps, "caps")? {
            Value::Array(a) => a
                .into_iter()
                .map(cap_from_value)
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(bad("caps is not an array")),
        };
        let attenuation = match att {
            None => None,
            Some(v @ Value::Map(_)) => Some(encode_value(&v)),
            Some(_) => return Err(bad("attenuation is not a map")),
        };
        Ok(Self {
            iss_zone,
            sub: text(sub, "sub")?,
            aud: text(aud, "aud")?,
            exp,
            iat,
            jti: bytes_n::<16>(cti, "cti")?,
            iss_node: text(iss_node, "iss_node")?,
            grant_object_ids,
            caps,
            attenuation,
            holder_node: text(holder, "holder_node")?,
            rev_head: ObjectId::from_bytes(bytes_n::<32>(rev_head, "rev_head")?),
            rev_seq: uint(rev_seq, "rev_seq")?,
            aud_binary: match aud_binary {
                None => None,
                v => Some(ObjectId::from_bytes(bytes_n::<32>(v, "aud_binary")?)),
            },
            instance: match instance {
                None => None,
                v => Some(text(v, "instance")?),
            },
        })
    }
}

fn req(v: Option<Value<'static>>, what: &'static str) -> Result<Value<'static>> {
    v.ok_or(CryptoError::InvalidToken(what))
}

fn text(v: Option<Value<'static>>, what: &'static str) -> Result<String> {
    match req(v, what)? {
        Value::TextString(s) => Ok(s.into_owned()),
        _ => Err(bad(what)),
    }
}

fn uint(v: Option<Value<'static>>, what: &'static str) -> Result<u64> {
    match req(v, what)? {
        Value::Unsigned(n) => Ok(n),
        _ => Err(bad(what)),
    }
}

fn bytes_n<const N: usize>(v: Option<Value<'static>>, what: &'static str) -> Result<[u8; N]> {
    match req(v, what)? {
        Value::ByteString(b) => <[u8; N]>::try_from(b.as_ref()).map_err(|_| bad(what)),
        _ => Err(bad(what)),
    }
}

fn cap_from_value(v: Value<'static>) -> Result<CapabilityGrant> {
    let Value::Map(mut m) = v else {
        return Err(bad("cap is not a map"));
    };
    let capability = text(m.remove(&Value::from("capability")), "cap.capability")?;
    let operation = match m.remove(&Value::from("operation")) {
        None => None,
        v => Some(text(v, "cap.operation")?),
    };
    if !m.is_empty() {
        return Err(bad("unknown key in cap"));
    }
    Ok(CapabilityGrant {
        capability,
        operation,
    })
}

/// Canonical encoding of the protected header `{1: -8, 4: kid}`.
pub fn protected_header(kid: &KeyId) -> Vec<u8> {
    let mut m: BTreeMap<Value<'static>, Value<'static>> = BTreeMap::new();
    m.insert(1u64.into(), COSE_ALG_EDDSA.into());
    m.insert(4u64.into(), kid.0.to_vec().into());
    encode_value(&Value::from(m))
}

/// COSE Sig_structure for COSE_Sign1 with empty external AAD (RFC 9052 §4.4).
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let arr: Vec<Value<'static>> = vec![
        "Signature1".into(),
        protected.to_vec().into(),
        Vec::<u8>::new().into(),
        payload.to_vec().into(),
    ];
    encode_value(&Value::from(arr))
}

/// A capability token: its exact bytes and decoded parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityToken {
    bytes: Vec<u8>,
    kid: KeyId,
    protected: Vec<u8>,
    payload: Vec<u8>,
    signature: Signature,
    claims: CapabilityClaims,
}

impl CapabilityToken {
    /// Mint a token signed by the issuer node's issuance key (deterministic).
    pub fn issue(key: &NodeIssuanceKey, claims: &CapabilityClaims) -> Result<Self> {
        let kid = key.kid();
        let protected = protected_header(&kid);
        let payload = claims.to_cbor()?;
        let signature = key.sign_raw(&sig_structure(&protected, &payload));
        let arr: Vec<Value<'static>> = vec![
            protected.clone().into(),
            Value::from(BTreeMap::<Value<'static>, Value<'static>>::new()),
            payload.clone().into(),
            signature.0.to_vec().into(),
        ];
        let bytes = encode_value(&Value::tag(COSE_SIGN1_TAG, Value::from(arr)));
        Ok(Self {
            bytes,
            kid,
            protected,
            payload,
            signature,
            claims: claims.clone(),
        })
    }

    /// Strictly decode the token structure and claims (no signature check).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let v = decode_value(bytes).map_err(|_| bad("not canonical CBOR"))?;
        let Value::Tag(COSE_SIGN1_TAG, inner) = v else {
            return Err(bad("not a COSE_Sign1 (tag 18)"));
        };
        let Value::Array(items) = *inner else {
            return Err(bad("COSE_Sign1 is not an array"));
        };
        let [protected, unprotected, payload, signature]: [Value<'static>; 4] = items
            .try_into()
            .map_err(|_| bad("COSE_Sign1 must have 4 items"))?;
        let Value::ByteString(protected) = protected else {
            return Err(bad("protected is not a bstr"));
        };
        let protected = protected.into_owned();
        let kid = parse_protected(&protected)?;
        match unprotected {
            Value::Map(m) if m.is_empty() => {}
            _ => return Err(bad("unprotected header must be an empty map")),
        }
        let Value::ByteString(payload) = payload else {
            return Err(bad("payload is not a bstr"));
        };
        let payload = payload.into_owned();
        let Value::ByteString(sig) = signature else {
            return Err(bad("signature is not a bstr"));
        };
        let signature =
            Signature(<[u8; 64]>::try_from(sig.as_ref()).map_err(|_| bad("signature length"))?);
        let claims = CapabilityClaims::from_cbor(&payload)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            kid,
            protected,
            payload,
            signature,
            claims,
        })
    }

    /// Check the COSE signature against the attested issuance key: the kid must
    /// match ([`CryptoError::UnknownKeyId`]) and the signature verify strictly
    /// ([`CryptoError::SignatureInvalid`]).
    pub fn verify_signature(&self, issuance_key: &Ed25519PublicKey) -> Result<()> {
        if issuance_key.kid() != self.kid {
            return Err(CryptoError::UnknownKeyId);
        }
        verify_raw(
            issuance_key,
            &sig_structure(&self.protected, &self.payload),
            &self.signature,
        )
    }

    /// [`Self::decode`] then [`Self::verify_signature`].
    pub fn decode_and_verify(bytes: &[u8], issuance_key: &Ed25519PublicKey) -> Result<Self> {
        let t = Self::decode(bytes)?;
        t.verify_signature(issuance_key)?;
        Ok(t)
    }

    /// Time window (profile §5 step 2, review 000 #5): `iat <= now + skew`
    /// else [`CryptoError::TimestampOutOfSkew`]; `now <= exp + skew` else
    /// [`CryptoError::TokenExpired`].
    pub fn check_time(&self, now: u64, max_skew_secs: u64) -> Result<()> {
        check_time_window(self.claims.iat, self.claims.exp, now, max_skew_secs)
    }

    /// The exact token bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The issuance key id from the protected header.
    pub fn kid(&self) -> KeyId {
        self.kid
    }

    /// The claims.
    pub fn claims(&self) -> &CapabilityClaims {
        &self.claims
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The payload bytes (canonical claims).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// The generic `iat`/`exp` window check with skew (see [`CapabilityToken::check_time`]).
pub fn check_time_window(iat: u64, exp: u64, now: u64, max_skew_secs: u64) -> Result<()> {
    if iat > now.saturating_add(max_skew_secs) {
        return Err(CryptoError::TimestampOutOfSkew);
    }
    if now > exp.saturating_add(max_skew_secs) {
        return Err(CryptoError::TokenExpired);
    }
    Ok(())
}

fn parse_protected(protected: &[u8]) -> Result<KeyId> {
    let v = decode_value(protected).map_err(|_| bad("protected header not canonical"))?;
    let Value::Map(mut m) = v else {
        return Err(bad("protected header is not a map"));
    };
    let alg = m.remove(&Value::from(1u64));
    let kid = m.remove(&Value::from(4u64));
    if !m.is_empty() {
        return Err(bad("unexpected protected header parameter"));
    }
    match alg {
        Some(a) if a == Value::from(COSE_ALG_EDDSA) => {}
        _ => return Err(bad("alg must be EdDSA (-8)")),
    }
    Ok(KeyId(bytes_n::<8>(kid, "kid")?))
}
