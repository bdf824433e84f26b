//! Stored record types and their byte layouts (see the crate docs for the
//! tables).

use fcp_core::{ObjectId, RetentionClass, ZoneId};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// Version byte of the symbol value layout.
pub const SYMBOL_LAYOUT_V1: u8 = 1;

/// Fixed part of a v1 symbol value: version(1) k(2) symbol_size(2)
/// zone_id_hash(32) zone_key_id(8) epoch_id(8) sender_instance_id(8)
/// frame_seq(8) tag(16).
const SYMBOL_FIXED_LEN: usize = 1 + 2 + 2 + 32 + 8 + 8 + 8 + 8 + 16;

/// Longest `source_node` / `from_node` the layout holds (one length byte).
pub const MAX_NODE_ID_LEN: usize = 255;

/// Length of a symbols-table key: `object_id(32) || esi(4, big-endian)`.
pub(crate) const SYMBOL_KEY_LEN: usize = 36;

/// A sealed symbol as received, with everything needed to re-serve it
/// without holding the zone key (spec §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolRecord {
    /// Object the symbol encodes.
    pub object_id: ObjectId,
    /// Encoding symbol id.
    pub esi: u32,
    /// Source symbols needed to decode (RaptorQ K).
    pub k: u16,
    /// Symbol size in bytes.
    pub symbol_size: u16,
    /// Zone id hash from the symbol frame; the store attributes the
    /// ciphertext bytes to this zone's usage.
    pub zone_id_hash: [u8; 32],
    /// Zone key id the symbol was sealed under.
    pub zone_key_id: [u8; 8],
    /// Epoch of the seal.
    pub epoch_id: u64,
    /// The node that sealed it (its per-sender subkey depends on it).
    pub source_node: String,
    /// The sealing node's sender instance id.
    pub sender_instance_id: u64,
    /// Frame sequence number used in the nonce.
    pub frame_seq: u64,
    /// AEAD ciphertext.
    pub ciphertext: Vec<u8>,
    /// AEAD tag.
    pub tag: [u8; 16],
    /// The peer this node received the symbol from.
    pub from_node: String,
}

impl SymbolRecord {
    /// Bytes this record counts against its zone's quota (the ciphertext).
    pub fn quota_bytes(&self) -> u64 {
        self.ciphertext.len() as u64
    }
}

/// `object_id || esi_be`: byte order of keys is (object, ESI) order.
pub(crate) fn symbol_key(object_id: &ObjectId, esi: u32) -> [u8; SYMBOL_KEY_LEN] {
    let mut k = [0u8; SYMBOL_KEY_LEN];
    k[..32].copy_from_slice(object_id.as_bytes());
    k[32..].copy_from_slice(&esi.to_be_bytes());
    k
}

/// Split a symbols-table key.
pub(crate) fn parse_symbol_key(key: &[u8]) -> Result<(ObjectId, u32)> {
    let (id, esi) = key
        .split_first_chunk::<32>()
        .ok_or_else(|| StoreError::Corrupt("short symbol key".into()))?;
    let esi: [u8; 4] = esi
        .try_into()
        .map_err(|_| StoreError::Corrupt("symbol key is not 36 bytes".into()))?;
    Ok((ObjectId::from_bytes(*id), u32::from_be_bytes(esi)))
}

/// Encode the value of a symbol record (layout v1, crate docs).
pub(crate) fn encode_symbol(r: &SymbolRecord) -> Result<Vec<u8>> {
    for (name, v) in [("source_node", &r.source_node), ("from_node", &r.from_node)] {
        if v.len() > MAX_NODE_ID_LEN {
            return Err(StoreError::InvalidRecord(format!(
                "{name} is {} bytes, at most {MAX_NODE_ID_LEN}",
                v.len()
            )));
        }
    }
    let ct_len = u32::try_from(r.ciphertext.len())
        .map_err(|_| StoreError::InvalidRecord("ciphertext longer than 4 GiB".into()))?;
    let mut out = Vec::with_capacity(
        SYMBOL_FIXED_LEN + 2 + r.source_node.len() + r.from_node.len() + 4 + r.ciphertext.len(),
    );
    out.push(SYMBOL_LAYOUT_V1);
    out.extend_from_slice(&r.k.to_be_bytes());
    out.extend_from_slice(&r.symbol_size.to_be_bytes());
    out.extend_from_slice(&r.zone_id_hash);
    out.extend_from_slice(&r.zone_key_id);
    out.extend_from_slice(&r.epoch_id.to_be_bytes());
    out.extend_from_slice(&r.sender_instance_id.to_be_bytes());
    out.extend_from_slice(&r.frame_seq.to_be_bytes());
    out.extend_from_slice(&r.tag);
    for v in [&r.source_node, &r.from_node] {
        // Lengths checked above.
        out.push(u8::try_from(v.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(&ct_len.to_be_bytes());
    out.extend_from_slice(&r.ciphertext);
    Ok(out)
}

/// Bounds-checked reader over a value.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or_else(|| StoreError::Corrupt("truncated symbol record".into()))?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.take(N)?;
        b.try_into()
            .map_err(|_| StoreError::Corrupt("truncated symbol record".into()))
    }

    fn string(&mut self) -> Result<String> {
        let [len] = self.array::<1>()?;
        let b = self.take(usize::from(len))?;
        String::from_utf8(b.to_vec())
            .map_err(|_| StoreError::Corrupt("node id in symbol record is not UTF-8".into()))
    }
}

/// Decode a symbol value (layout v1) together with its key.
pub(crate) fn decode_symbol(key: &[u8], value: &[u8]) -> Result<SymbolRecord> {
    let (object_id, esi) = parse_symbol_key(key)?;
    let mut r = Reader(value);
    let [version] = r.array::<1>()?;
    if version != SYMBOL_LAYOUT_V1 {
        return Err(StoreError::Corrupt(format!(
            "unknown symbol record version {version}"
        )));
    }
    let k = u16::from_be_bytes(r.array()?);
    let symbol_size = u16::from_be_bytes(r.array()?);
    let zone_id_hash = r.array::<32>()?;
    let zone_key_id = r.array::<8>()?;
    let epoch_id = u64::from_be_bytes(r.array()?);
    let sender_instance_id = u64::from_be_bytes(r.array()?);
    let frame_seq = u64::from_be_bytes(r.array()?);
    let tag = r.array::<16>()?;
    let source_node = r.string()?;
    let from_node = r.string()?;
    let ct_len = u32::from_be_bytes(r.array()?);
    let ciphertext = r.take(ct_len as usize)?.to_vec();
    if !r.0.is_empty() {
        return Err(StoreError::Corrupt(
            "trailing bytes in symbol record".into(),
        ));
    }
    Ok(SymbolRecord {
        object_id,
        esi,
        k,
        symbol_size,
        zone_id_hash,
        zone_key_id,
        epoch_id,
        source_node,
        sender_instance_id,
        frame_seq,
        ciphertext,
        tag,
        from_node,
    })
}

/// The zone-id-hash attribution of a symbol value and its ciphertext length
/// (the value is fully decoded, so damage is reported, not miscounted).
pub(crate) fn symbol_zone_and_len(value: &[u8]) -> Result<([u8; 32], u64)> {
    let rec = decode_symbol(&[0u8; SYMBOL_KEY_LEN], value)?;
    Ok((rec.zone_id_hash, rec.quota_bytes()))
}

/// What the store knows about an object it may hold only as symbols
/// (it usually cannot decrypt them). Stored as canonical CBOR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Zone of the object.
    pub zone_id: ZoneId,
    /// RaptorQ K.
    pub k: u16,
    /// Symbol size.
    pub symbol_size: u16,
    /// Node-local retention (spec §3.6).
    pub retention: RetentionClass,
    /// Creation time of the object (Unix seconds).
    pub created_at: u64,
    /// Strong refs (the GC graph, spec §3.7).
    pub refs: Vec<ObjectId>,
    /// Size of the object's content in bytes, if known.
    pub size_hint: u64,
}

/// Result of [`crate::Store::put_symbols`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutSymbols {
    /// Records written.
    pub inserted: usize,
    /// Records ignored because their `(object_id, esi)` was already stored
    /// (or repeated earlier in the same batch).
    pub duplicates: usize,
}

/// Result of [`crate::Store::gc`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Ids whose full [`fcp_core::StoredObject`] was removed (with any symbols
    /// and meta).
    pub removed_objects: u64,
    /// Ids held only as symbols and/or [`ObjectMeta`] that were removed.
    pub removed_symbol_objects: u64,
    /// Body and ciphertext bytes freed (the quota-counted bytes).
    pub bytes_freed: u64,
    /// Ids found live (reachable from a root).
    pub live: u64,
    /// Whether the sweep stopped at its limit with candidates left.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn rec() -> SymbolRecord {
        SymbolRecord {
            object_id: ObjectId::from_bytes([7; 32]),
            esi: 0x0102_0304,
            k: 10,
            symbol_size: 1024,
            zone_id_hash: [1; 32],
            zone_key_id: [2; 8],
            epoch_id: 5,
            source_node: "node-a".into(),
            sender_instance_id: 9,
            frame_seq: 11,
            ciphertext: vec![0xAB; 40],
            tag: [3; 16],
            from_node: "node-b".into(),
        }
    }

    #[test]
    fn symbol_layout_round_trip_and_golden_prefix() {
        let r = rec();
        let key = symbol_key(&r.object_id, r.esi);
        assert_eq!(&key[32..], &[1, 2, 3, 4]);
        let v = encode_symbol(&r).unwrap();
        assert_eq!(v.len(), SYMBOL_FIXED_LEN + 1 + 6 + 1 + 6 + 4 + 40);
        assert_eq!(&v[..5], &[1, 0, 10, 4, 0]);
        assert_eq!(decode_symbol(&key, &v).unwrap(), r);
        assert_eq!(symbol_zone_and_len(&v).unwrap(), ([1; 32], 40));
    }

    #[test]
    fn symbol_layout_rejects_damage() {
        let r = rec();
        let key = symbol_key(&r.object_id, r.esi);
        let v = encode_symbol(&r).unwrap();
        for cut in 0..v.len() {
            assert!(matches!(
                decode_symbol(&key, &v[..cut]),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut long = v.clone();
        long.push(0);
        assert!(decode_symbol(&key, &long).is_err());
        let mut bad = v.clone();
        bad[0] = 2;
        assert!(decode_symbol(&key, &bad).is_err());
        assert!(decode_symbol(&key[..35], &v).is_err());
        let mut big = rec();
        big.from_node = "x".repeat(256);
        assert!(matches!(
            encode_symbol(&big),
            Err(StoreError::InvalidRecord(_))
        ));
    }
}
