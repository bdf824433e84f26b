//! The node's control-plane messages (spec §9.3): canonical-CBOR objects carried
//! in FCPC frames over the session's TCP stream. Bulk data never travels here:
//! symbols go as FCPS datagrams over UDP, announced and acknowledged by these.

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

/// Largest ESI list a single message may carry.
pub const MAX_ESIS: usize = 1 << 16;

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
        esis: Vec<u32>,
    },
    /// All datagrams of a StoreRequest were sent.
    StoreEnd {
        /// The object.
        object_id: ObjectId,
    },
    /// The holder made the received symbols durable; `missing` were not received.
    StoreAck {
        /// The object.
        object_id: ObjectId,
        /// ESIs still missing.
        missing: Vec<u32>,
    },
    /// "Send me up to `want` symbols of this object, except these."
    SymbolRequest {
        /// The object.
        object_id: ObjectId,
        /// ESIs the requester already has.
        have: Vec<u32>,
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
    },
    /// What a holder is about to send (count 0: it holds nothing).
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
    },
    /// Stop sending symbols of this object: it is rebuilt (spec §4.4 SymbolAck).
    SymbolAck {
        /// The object.
        object_id: ObjectId,
    },
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

impl Control {
    /// Reject oversized lists before acting on a message.
    pub fn check_bounds(&self) -> Result<(), &'static str> {
        let n = match self {
            Self::StoreRequest { esis, .. } => esis.len(),
            Self::StoreAck { missing, .. } => missing.len(),
            Self::SymbolRequest { have, .. } => have.len(),
            Self::Peers { announcements } => announcements.len().saturating_mul(64),
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
            esis: vec![0, 2, 4],
        };
        let b = fcp_core::to_canonical(&m).unwrap();
        assert_eq!(
            fcp_core::cbor::from_canonical_strict::<Control>(&b).unwrap(),
            m
        );
        assert!(m.check_bounds().is_ok());
        let big = Control::SymbolRequest {
            object_id: ObjectId::from_bytes([1; 32]),
            have: vec![0; MAX_ESIS + 1],
            want: 0,
            parts: 0,
            part: 0,
        };
        assert!(big.check_bounds().is_err());
        assert!(fcp_core::cbor::from_canonical_strict::<Control>(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn symbol_request_need_fields_are_optional() {
        let full = Control::SymbolRequest {
            object_id: ObjectId::from_bytes([2; 32]),
            have: vec![1, 3],
            want: 30,
            parts: 2,
            part: 1,
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
            have: vec![],
            want: 0,
            parts: 0,
            part: 0,
        };
        let b = fcp_core::to_canonical(&plain).unwrap();
        let text = format!("{:?}", fcp_core::cbor::decode_value(&b).unwrap());
        assert!(!text.contains("want") && !text.contains("parts"), "{text}");
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
}
