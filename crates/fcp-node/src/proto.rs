//! The node's control-plane messages (spec §9.3): canonical-CBOR objects carried
//! in FCPC frames over the session's TCP stream. Bulk data never travels here:
//! symbols go as FCPS datagrams over UDP, announced and acknowledged by these.

use fcp_core::cbor::Value;
use fcp_core::identity::PeerAnnouncement;
use fcp_core::{ObjectId, ZoneId};
use serde::{Deserialize, Serialize};

/// What a holder needs to know about an object it stores symbols of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Zone of the object.
    pub zone_id: ZoneId,
    /// Source symbols.
    pub k: u16,
    /// Symbol size.
    pub symbol_size: u16,
    /// Creation time.
    pub created_at: u64,
}

/// Who sealed symbols with a given sender instance (the receiver derives the
/// sender subkey from the node id, profile §3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `sender_instance_id` of the frames.
    pub instance: u64,
    /// Node that sealed them.
    pub node_id: String,
}

/// How many datagrams of a holder's last offer of an object arrived
/// ([`Control::OfferReceived`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrived {
    /// The object.
    pub object_id: ObjectId,
    /// Datagrams of the offer that arrived.
    pub count: u32,
}

/// Most offers one [`Control::OfferReceived`] reports on.
pub const MAX_ARRIVED: usize = 1024;

/// Largest ESI list a single message may carry.
pub const MAX_ESIS: usize = 1 << 16;

/// A set of ESIs on the wire: one CBOR byte string of strictly ascending
/// `u32le` values. Reading it is a length check and one scan, where a CBOR
/// array cost a decoded item per ESI, re-encoded again by the strict check
/// (decision 60); the ascending order makes the encoding canonical.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EsiList(Vec<u32>);

impl EsiList {
    /// The set of `esis` (sorted, duplicates dropped).
    pub fn new(mut esis: Vec<u32>) -> Self {
        esis.sort_unstable();
        esis.dedup();
        Self(esis)
    }

    /// The ESIs, ascending.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    /// The ESIs, ascending.
    pub fn into_vec(self) -> Vec<u32> {
        self.0
    }

    /// Number of ESIs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for EsiList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let packed: Vec<u8> = self.0.iter().flat_map(|e| e.to_le_bytes()).collect();
        fcp_core::cbor::bytes::serialize(&packed, s)
    }
}

impl<'de> Deserialize<'de> for EsiList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let packed = fcp_core::cbor::bytes::deserialize(d)?;
        if packed.len() % 4 != 0 {
            return Err(D::Error::custom("ESI list length is not a multiple of 4"));
        }
        if packed.len() / 4 > MAX_ESIS {
            return Err(D::Error::custom("ESI list too long"));
        }
        let esis: Vec<u32> = packed
            .chunks_exact(4)
            .map(|c| c.try_into().map_or(0, u32::from_le_bytes))
            .collect();
        if esis.windows(2).any(|w| w[0] >= w[1]) {
            return Err(D::Error::custom("ESI list not strictly ascending"));
        }
        Ok(Self(esis))
    }
}

/// Control messages between two nodes of one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Signed announcements of peers the sender knows (relayed gossip).
    Peers {
        /// Announcements.
        announcements: Vec<PeerAnnouncement>,
    },
    /// "Store these symbols of this object" (placement, spec §3.6).
    StoreRequest {
        /// The object.
        object_id: ObjectId,
        /// Its metadata.
        meta: Meta,
        /// Who sealed the symbols.
        source: Source,
        /// ESIs that will follow as datagrams.
        esis: EsiList,
        /// The pusher's number for this push, echoed in its StoreAcks so that
        /// a late answer to an earlier push of the object is told apart
        /// (decision 66). 0: unnumbered.
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        push: u64,
    },
    /// All datagrams of a StoreRequest were sent.
    StoreEnd {
        /// The object.
        object_id: ObjectId,
        /// The push (as in its StoreRequest).
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        push: u64,
        /// The session sequence number of this round's last datagram (on
        /// the pusher's current session), so the holder answers once that
        /// datagram, or a later one, is in (decision 75). None: the round
        /// sent nothing, or an older pusher.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seq: Option<u64>,
    },
    /// The holder made the received symbols durable; `missing` were not received.
    StoreAck {
        /// The object.
        object_id: ObjectId,
        /// ESIs still missing.
        missing: EsiList,
        /// The push answered (from the StoreRequest or StoreEnd).
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        push: u64,
    },
    /// The holder did not take this push (a StoreRequest over budget or out
    /// of range) or did not store its symbols (refused by the store, a
    /// failed commit, expired, its session closed, replaced by a newer
    /// push): the pusher stops at once (decision 66).
    StoreRefused {
        /// The object.
        object_id: ObjectId,
        /// The push (as in its StoreRequest or StoreEnd).
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        push: u64,
        /// The FCP error code, `"FCP-xxxx"`.
        code: String,
        /// Why, for the pusher's log.
        message: String,
    },
    /// "Send me up to `want` symbols of this object, except these."
    SymbolRequest {
        /// The object.
        object_id: ObjectId,
        /// ESIs the requester already has.
        have: EsiList,
        /// Most symbols to send (0: every one held). The requester splits
        /// what it still needs over the peers it asks (spec §4.4).
        #[serde(default, skip_serializing_if = "is_zero")]
        want: u32,
        /// Send first the ESIs of part `part` of `parts` (a hash of the
        /// ESI, see the daemon's `esi_part`): the requester
        /// gives each peer its own part so their answers do not overlap
        /// (`parts` 0: no preference).
        #[serde(default, skip_serializing_if = "is_zero")]
        parts: u32,
        /// This peer's part, `< parts`.
        #[serde(default, skip_serializing_if = "is_zero")]
        part: u32,
        /// Send source symbols (ESI below `k`) only: a get's first round
        /// asks every peer for the source symbols it lacks, so it rarely
        /// needs the RaptorQ solver (decision 60).
        #[serde(default, skip_serializing_if = "is_false")]
        sources_only: bool,
    },
    /// What a holder is about to send (count 0: nothing, and no OfferEnd
    /// follows).
    SymbolOffer {
        /// The object.
        object_id: ObjectId,
        /// Metadata, when held.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meta: Option<Meta>,
        /// Sealers of the symbols it holds.
        sources: Vec<Source>,
        /// Datagrams that follow.
        count: u32,
    },
    /// The holder sent every datagram of its offer.
    OfferEnd {
        /// The object.
        object_id: ObjectId,
        /// The session sequence number of the serve's last datagram (on
        /// the holder's current session), so the requester knows that what
        /// is missing once it, or a later one, is in was lost (decision
        /// 80). None: an older holder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seq: Option<u64>,
    },
    /// How many datagrams of the holder's last offers of these objects
    /// arrived, each sent once the requester has waited for them: the
    /// holder's rate follows (spec §4.4 DecodeStatus as pacing feedback,
    /// §8.4; decision 72). At most [`MAX_ARRIVED`].
    OfferReceived {
        /// One per offer.
        arrived: Vec<Arrived>,
    },
    /// Stop sending symbols of this object: it is rebuilt (spec §4.4 SymbolAck).
    SymbolAck {
        /// The object.
        object_id: ObjectId,
    },
    /// Keepalive probe, sent when the session has received nothing for a
    /// while; the peer answers with a [`Control::Pong`] of the same nonce
    /// (decision 59).
    Ping {
        /// Chosen by the sender, echoed in the Pong.
        nonce: u64,
    },
    /// The answer to a [`Control::Ping`].
    Pong {
        /// The Ping's nonce.
        nonce: u64,
    },
}

/// Every message type this node understands: the CBOR map key of each
/// [`Control`] variant ([`Control::kind`]).
pub const KNOWN_KINDS: [&str; 12] = [
    "peers",
    "store_request",
    "store_end",
    "store_ack",
    "store_refused",
    "symbol_request",
    "symbol_offer",
    "offer_end",
    "offer_received",
    "symbol_ack",
    "ping",
    "pong",
];

/// Longest unknown message type kept for a log line.
const MAX_KIND_LEN: usize = 64;

/// Longest message a [`Control::StoreRefused`] carries.
const MAX_REFUSAL_LEN: usize = 1024;

/// One FCPC message, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A message this node understands, within its bounds.
    Known(Control),
    /// A well-formed message of a type this node does not know (a newer
    /// peer's): skipped, the session goes on (decision 59). Holds the type
    /// name, cut to 64 bytes.
    Unknown(String),
}

/// Which of `parts` SymbolRequest parts an ESI belongs to: a multiplicative
/// hash, so strided ESI sets (placement often gives a holder every other
/// ESI) spread over every part (decision 55).
pub fn esi_part(esi: u32, parts: u32) -> u32 {
    (esi.wrapping_mul(0x9E37_79B1) >> 16) % parts.max(1)
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// Decode one FCPC message (profile §4.3 carries canonical CBOR). A known
/// type must decode strictly and stay within [`Control::check_bounds`]; a
/// single-entry map or a text string whose key is no known type is
/// [`Decoded::Unknown`]; anything else is an error (the session closes).
pub fn decode(cbor: &[u8]) -> Result<Decoded, &'static str> {
    if let Ok(c) = fcp_core::cbor::from_canonical_strict::<Control>(cbor) {
        c.check_bounds()?;
        return Ok(Decoded::Known(c));
    }
    let v =
        fcp_core::cbor::decode_value(cbor).map_err(|_| "control message is not canonical CBOR")?;
    let kind = match &v {
        Value::Map(m) if m.len() == 1 => match m.keys().next() {
            Some(Value::TextString(k)) => k.as_ref(),
            _ => return Err("control message without a type"),
        },
        Value::TextString(k) => k.as_ref(),
        _ => return Err("control message without a type"),
    };
    if KNOWN_KINDS.contains(&kind) {
        return Err("malformed control message");
    }
    let mut end = kind.len().min(MAX_KIND_LEN);
    while !kind.is_char_boundary(end) {
        end -= 1;
    }
    Ok(Decoded::Unknown(
        kind.get(..end).unwrap_or_default().to_owned(),
    ))
}

impl Control {
    /// The message type: the CBOR map key the variant is encoded under.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Peers { .. } => "peers",
            Self::StoreRequest { .. } => "store_request",
            Self::StoreEnd { .. } => "store_end",
            Self::StoreAck { .. } => "store_ack",
            Self::StoreRefused { .. } => "store_refused",
            Self::SymbolRequest { .. } => "symbol_request",
            Self::SymbolOffer { .. } => "symbol_offer",
            Self::OfferEnd { .. } => "offer_end",
            Self::OfferReceived { .. } => "offer_received",
            Self::SymbolAck { .. } => "symbol_ack",
            Self::Ping { .. } => "ping",
            Self::Pong { .. } => "pong",
        }
    }

    /// About how many bytes the message takes encoded (within a small
    /// constant): what a queue of messages waiting to be sent is bounded by.
    pub fn approx_len(&self) -> usize {
        const BASE: usize = 128;
        let items = match self {
            Self::StoreRequest { esis, .. } => esis.len().saturating_mul(4),
            Self::StoreAck { missing, .. } => missing.len().saturating_mul(4),
            Self::SymbolRequest { have, .. } => have.len().saturating_mul(4),
            // An announcement is an attestation (keys, signatures), an
            // address and a node signature: well under 1 KiB.
            Self::Peers { announcements } => announcements.len().saturating_mul(1024),
            Self::SymbolOffer { sources, .. } => sources.len().saturating_mul(96),
            Self::OfferReceived { arrived } => arrived.len().saturating_mul(48),
            Self::StoreRefused { code, message, .. } => code.len().saturating_add(message.len()),
            _ => 0,
        };
        BASE.saturating_add(items)
    }

    /// Reject oversized lists before acting on a message.
    pub fn check_bounds(&self) -> Result<(), &'static str> {
        let n = match self {
            Self::StoreRequest { esis, .. } => esis.len(),
            Self::StoreAck { missing, .. } => missing.len(),
            Self::SymbolRequest { have, .. } => have.len(),
            Self::Peers { announcements } => announcements.len().saturating_mul(64),
            Self::OfferReceived { arrived } if arrived.len() > MAX_ARRIVED => {
                return Err("offer report too long");
            }
            Self::StoreRefused { code, message, .. }
                if code.len() > MAX_KIND_LEN || message.len() > MAX_REFUSAL_LEN =>
            {
                return Err("store refusal too long");
            }
            _ => 0,
        };
        if n > MAX_ESIS {
            Err("control message list too long")
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let m = Control::StoreRequest {
            object_id: ObjectId::from_bytes([1; 32]),
            meta: Meta {
                zone_id: ZoneId::private(),
                k: 3,
                symbol_size: 1024,
                created_at: 5,
            },
            source: Source {
                instance: 9,
                node_id: "node-1".into(),
            },
            esis: EsiList::new(vec![0, 2, 4]),
            push: 7,
        };
        let b = fcp_core::to_canonical(&m).unwrap();
        assert_eq!(
            fcp_core::cbor::from_canonical_strict::<Control>(&b).unwrap(),
            m
        );
        assert!(m.check_bounds().is_ok());
        let big = Control::SymbolRequest {
            object_id: ObjectId::from_bytes([1; 32]),
            have: EsiList::new((0..=MAX_ESIS as u32).collect()),
            want: 0,
            parts: 0,
            part: 0,
            sources_only: false,
        };
        assert!(big.check_bounds().is_err());
        let report = |n: usize| Control::OfferReceived {
            arrived: vec![
                Arrived {
                    object_id: ObjectId::from_bytes([1; 32]),
                    count: 1,
                };
                n
            ],
        };
        assert!(report(MAX_ARRIVED).check_bounds().is_ok());
        assert!(report(MAX_ARRIVED + 1).check_bounds().is_err());
        assert!(fcp_core::cbor::from_canonical_strict::<Control>(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn esi_lists_are_packed_ascending_and_strict() {
        let l = EsiList::new(vec![7, 1, 300, 1]);
        assert_eq!(l.as_slice(), &[1, 7, 300]);
        let b = fcp_core::to_canonical(&l).unwrap();
        // One byte string: header 0x4c (12 bytes), then u32le values.
        assert_eq!(
            b,
            [&[0x4c][..], &[1, 0, 0, 0, 7, 0, 0, 0, 44, 1, 0, 0]].concat()
        );
        assert_eq!(
            fcp_core::cbor::from_canonical_strict::<EsiList>(&b).unwrap(),
            l
        );
        let bytes = |v: &[u8]| fcp_core::to_canonical(&serde_bytes_of(v)).unwrap();
        // Not ascending, a repeat, or a torn value: refused.
        for bad in [
            &[7u8, 0, 0, 0, 1, 0, 0, 0][..],
            &[1, 0, 0, 0, 1, 0, 0, 0],
            &[1, 0, 0],
        ] {
            assert!(fcp_core::cbor::from_canonical_strict::<EsiList>(&bytes(bad)).is_err());
        }
        assert!(
            fcp_core::cbor::from_canonical_strict::<EsiList>(&bytes(&[])).unwrap()
                == EsiList::default()
        );
    }

    /// A byte string value (the wire form of an ESI list's bytes).
    fn serde_bytes_of(v: &[u8]) -> Value<'static> {
        Value::ByteString(v.to_vec().into())
    }

    #[test]
    fn symbol_request_need_fields_are_optional() {
        let full = Control::SymbolRequest {
            object_id: ObjectId::from_bytes([2; 32]),
            have: EsiList::new(vec![3, 1, 3]),
            want: 30,
            parts: 2,
            part: 1,
            sources_only: true,
        };
        let b = fcp_core::to_canonical(&full).unwrap();
        assert_eq!(
            fcp_core::cbor::from_canonical_strict::<Control>(&b).unwrap(),
            full
        );
        // Zero means "no limit / no preference" and is not encoded, so a
        // request without a need is the same bytes as before the fields.
        let plain = Control::SymbolRequest {
            object_id: ObjectId::from_bytes([2; 32]),
            have: EsiList::default(),
            want: 0,
            parts: 0,
            part: 0,
            sources_only: false,
        };
        let b = fcp_core::to_canonical(&plain).unwrap();
        let text = format!("{:?}", fcp_core::cbor::decode_value(&b).unwrap());
        assert!(
            !text.contains("want") && !text.contains("parts") && !text.contains("sources_only"),
            "{text}"
        );
        assert_eq!(
            fcp_core::cbor::from_canonical_strict::<Control>(&b).unwrap(),
            plain
        );
    }

    #[test]
    fn esi_parts_spread_strided_sets() {
        for parts in 1..=5u32 {
            for stride in 1..=3u32 {
                let mut count = vec![0u32; parts as usize];
                for i in 0..600u32 {
                    let p = esi_part(i * stride, parts);
                    assert!(p < parts);
                    count[p as usize] += 1;
                }
                let fair = 600 / parts;
                for c in &count {
                    assert!(
                        *c > fair * 2 / 3 && *c < fair * 4 / 3,
                        "{parts} {stride} {count:?}"
                    );
                }
            }
        }
        assert_eq!(esi_part(7, 0), 0);
    }

    #[test]
    fn push_numbers_are_optional_on_the_wire() {
        let oid = ObjectId::from_bytes([3; 32]);
        // Unnumbered (0) is left out, so a message without the field is the
        // canonical encoding of push 0 and still decodes.
        // So is a StoreEnd's last_seq (decision 75): one without it is the
        // StoreEnd older nodes send.
        let end = |push, last_seq| {
            fcp_core::to_canonical(&Control::StoreEnd {
                object_id: oid,
                push,
                last_seq,
            })
            .unwrap()
        };
        let (plain, numbered, with_seq) = (end(0, None), end(5, None), end(5, Some(1 << 40)));
        assert!(numbered.len() > plain.len());
        assert!(with_seq.len() > numbered.len());
        for (bytes, push, seq) in [
            (&plain, 0, None),
            (&numbered, 5, None),
            (&with_seq, 5, Some(1 << 40)),
        ] {
            match decode(bytes).unwrap() {
                Decoded::Known(Control::StoreEnd {
                    object_id,
                    push: p,
                    last_seq,
                }) => {
                    assert_eq!((object_id, p, last_seq), (oid, push, seq));
                }
                other => panic!("{other:?}"),
            }
        }
        let ack = Control::StoreAck {
            object_id: oid,
            missing: EsiList::new(vec![1, 2]),
            push: u64::MAX,
        };
        let b = fcp_core::to_canonical(&ack).unwrap();
        assert!(matches!(decode(&b).unwrap(), Decoded::Known(a) if a == ack));
        // An OfferEnd's last_seq too (decision 80).
        let end = |last_seq| {
            fcp_core::to_canonical(&Control::OfferEnd {
                object_id: oid,
                last_seq,
            })
            .unwrap()
        };
        let (plain, with_seq) = (end(None), end(Some(u64::MAX)));
        assert!(with_seq.len() > plain.len());
        for (bytes, seq) in [(&plain, None), (&with_seq, Some(u64::MAX))] {
            assert_eq!(
                decode(bytes).unwrap(),
                Decoded::Known(Control::OfferEnd {
                    object_id: oid,
                    last_seq: seq
                })
            );
        }
    }

    #[test]
    fn store_refusals_are_bounded() {
        let r = |code: &str, message: String| Control::StoreRefused {
            object_id: ObjectId::from_bytes([4; 32]),
            push: 9,
            code: code.into(),
            message,
        };
        let ok = r("FCP-6001", "QuotaExceeded".into());
        let b = fcp_core::to_canonical(&ok).unwrap();
        assert!(matches!(decode(&b).unwrap(), Decoded::Known(m) if m == ok));
        for long in [
            r("FCP-6001", "x".repeat(MAX_REFUSAL_LEN + 1)),
            r(&"9".repeat(MAX_KIND_LEN + 1), String::new()),
        ] {
            assert!(decode(&fcp_core::to_canonical(&long).unwrap()).is_err());
        }
    }

    /// One message of every type.
    fn samples() -> Vec<Control> {
        let oid = ObjectId::from_bytes([3; 32]);
        vec![
            Control::Peers {
                announcements: vec![],
            },
            Control::StoreRequest {
                object_id: oid,
                meta: Meta {
                    zone_id: ZoneId::private(),
                    k: 1,
                    symbol_size: 1024,
                    created_at: 0,
                },
                source: Source {
                    instance: 1,
                    node_id: "n".into(),
                },
                esis: EsiList::new(vec![0]),
                push: 1,
            },
            Control::StoreEnd {
                object_id: oid,
                push: 1,
                last_seq: Some(7),
            },
            Control::StoreAck {
                object_id: oid,
                missing: EsiList::default(),
                push: 1,
            },
            Control::StoreRefused {
                object_id: oid,
                push: 1,
                code: "FCP-6001".into(),
                message: "zone over quota".into(),
            },
            Control::SymbolRequest {
                object_id: oid,
                have: EsiList::default(),
                want: 0,
                parts: 0,
                part: 0,
                sources_only: false,
            },
            Control::SymbolOffer {
                object_id: oid,
                meta: None,
                sources: vec![],
                count: 0,
            },
            Control::OfferEnd {
                object_id: oid,
                last_seq: Some(9),
            },
            Control::OfferReceived {
                arrived: vec![Arrived {
                    object_id: oid,
                    count: 33,
                }],
            },
            Control::SymbolAck { object_id: oid },
            Control::Ping { nonce: 7 },
            Control::Pong { nonce: u64::MAX },
        ]
    }

    #[test]
    fn every_kind_is_known_and_is_the_encoded_key() {
        let all = samples();
        assert_eq!(all.len(), KNOWN_KINDS.len());
        for c in all {
            let b = fcp_core::to_canonical(&c).unwrap();
            let v = fcp_core::cbor::decode_value(&b).unwrap();
            let m = v.as_map().unwrap();
            assert_eq!(m.len(), 1);
            assert_eq!(m.keys().next().unwrap().as_str().unwrap(), c.kind());
            assert!(KNOWN_KINDS.contains(&c.kind()), "{}", c.kind());
            assert_eq!(decode(&b), Ok(Decoded::Known(c)));
        }
    }

    #[test]
    fn ping_pong_round_trip_and_wire_form() {
        for c in [Control::Ping { nonce: 0 }, Control::Pong { nonce: 1 << 40 }] {
            let b = fcp_core::to_canonical(&c).unwrap();
            assert_eq!(
                fcp_core::cbor::from_canonical_strict::<Control>(&b).unwrap(),
                c
            );
        }
        // {"ping": {"nonce": 5}}: a single-entry map keyed by the type, like
        // every other control message (profile §2).
        let b = fcp_core::to_canonical(&Control::Ping { nonce: 5 }).unwrap();
        assert_eq!(
            b,
            [&[0xa1, 0x64][..], b"ping", &[0xa1, 0x65], b"nonce", &[0x05]].concat()
        );
    }

    #[test]
    fn unknown_types_are_skipped_and_malformed_known_ones_refused() {
        use fcp_core::cbor::encode_value;
        let map = |k: &str, v: Value<'static>| {
            encode_value(&Value::map([(Value::from(k.to_owned()), v)]))
        };
        // A newer peer's message: skipped, whatever its body.
        let b = map("rekey_request", Value::from(1u64));
        assert_eq!(decode(&b), Ok(Decoded::Unknown("rekey_request".into())));
        let b = encode_value(&Value::from("shutdown".to_owned()));
        assert_eq!(decode(&b), Ok(Decoded::Unknown("shutdown".into())));
        // The type name is cut for logs (on a char boundary).
        let long = "é".repeat(100);
        let Ok(Decoded::Unknown(k)) = decode(&map(&long, Value::from(0u64))) else {
            panic!("long unknown type");
        };
        assert_eq!(k.len(), MAX_KIND_LEN);
        // A known type with a bad body, an unknown field or too long a list.
        assert!(decode(&map("ping", Value::from(1u64))).is_err());
        let mut extra = fcp_core::cbor::to_value(&Control::Pong { nonce: 1 }).unwrap();
        extra
            .as_map_mut()
            .unwrap()
            .values_mut()
            .next()
            .unwrap()
            .as_map_mut()
            .unwrap()
            .insert(Value::from("x".to_owned()), Value::from(1u64));
        assert!(decode(&encode_value(&extra)).is_err());
        let big = Control::StoreAck {
            object_id: ObjectId::from_bytes([1; 32]),
            missing: EsiList::new((0..=MAX_ESIS as u32).collect()),
            push: 0,
        };
        assert!(decode(&fcp_core::to_canonical(&big).unwrap()).is_err());
        // No type at all, or not CBOR.
        assert!(decode(&encode_value(&Value::from(5u64))).is_err());
        assert!(
            decode(&encode_value(&Value::map([(
                Value::from(1u64),
                Value::from(1u64)
            )])))
            .is_err()
        );
        assert!(decode(&[0xff, 0x00]).is_err());
        assert!(decode(&[]).is_err());
    }

    proptest::proptest! {
        /// Hostile bytes from a peer (mutated or cut encodings, or junk) never
        /// panic, and whatever decodes as a known message is exactly its
        /// canonical encoding: nothing loose gets through.
        #[test]
        fn decode_is_total_and_strict(
            idx in 0usize..64,
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), 1u8..), 0..4),
            cut in proptest::option::of(proptest::prelude::any::<usize>()),
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96),
        ) {
            let all = samples();
            let mut b = fcp_core::to_canonical(&all[idx % all.len()]).unwrap();
            for (i, x) in flips {
                let n = b.len();
                if let Some(byte) = b.get_mut(i % n.max(1)) {
                    *byte ^= x;
                }
            }
            if let Some(c) = cut {
                b.truncate(c % (b.len() + 1));
            }
            for input in [&b, &junk] {
                if let Ok(Decoded::Known(c)) = decode(input) {
                    proptest::prop_assert_eq!(&fcp_core::to_canonical(&c).unwrap(), input);
                }
            }
        }
    }
}
