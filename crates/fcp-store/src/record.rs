//! Stored record types and their byte layouts (see the crate docs for the
//! tables).

use fcp_core::{ObjectId, RetentionClass, ZoneId};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// Version byte of the symbol-run layout: a run's bytes, inline in the
/// `symbol_runs` table (stores written before decision 63) or in the symbol
/// log.
pub const SYMBOL_LAYOUT_V2: u8 = 2;

/// Version byte of a `symbol_runs` entry that points at a run in the symbol
/// log (decision 63).
pub const SYMBOL_INDEX_V3: u8 = 3;

/// Longest `source_node` / `from_node` the layout holds (one length byte).
pub const MAX_NODE_ID_LEN: usize = 255;

/// Most symbols one run value holds (bounds a value at a few MiB).
pub const MAX_RUN_SYMBOLS: usize = 4096;

/// Most bytes one run holds when it has more than one symbol: a 64 KiB
/// chunk's share (34 symbols, 36 KB) is one run, one index entry and one
/// read (decision 63; the 32 KiB of decision 62 was redb's leaf size, which
/// runs in the symbol log no longer pay).
pub const MAX_RUN_BYTES: usize = 64 * 1024;

/// Bytes a run's value takes before its symbols.
pub(crate) fn run_header_len(first: &SymbolRecord) -> usize {
    1 + 2 + 2 + 32 + 8 + 8 + 8 + 1 + first.source_node.len() + 1 + first.from_node.len() + 4
}

/// Bytes one symbol takes inside a run.
pub(crate) fn run_symbol_len(r: &SymbolRecord) -> usize {
    RUN_SYMBOL_FIXED_LEN + r.ciphertext.len()
}

/// Length of a symbols-table key: `object_id(32) || run_no(4, big-endian)`.
pub(crate) const RUN_KEY_LEN: usize = 36;

/// Fixed part of one symbol inside a run: esi(4) frame_seq(8) tag(16) ct_len(4).
const RUN_SYMBOL_FIXED_LEN: usize = 4 + 8 + 16 + 4;

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
    /// AEAD ciphertext (often a zero-copy slice of the frame it came in).
    pub ciphertext: bytes::Bytes,
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

/// `object_id || run_no_be`: a key range scan yields an object's runs in the
/// order they were written.
pub(crate) fn run_key(object_id: &ObjectId, run_no: u32) -> [u8; RUN_KEY_LEN] {
    let mut k = [0u8; RUN_KEY_LEN];
    k[..32].copy_from_slice(object_id.as_bytes());
    k[32..].copy_from_slice(&run_no.to_be_bytes());
    k
}

/// Split a symbols-table key.
pub(crate) fn parse_run_key(key: &[u8]) -> Result<(ObjectId, u32)> {
    let (id, run) = key
        .split_first_chunk::<32>()
        .ok_or_else(|| StoreError::Corrupt("short symbol run key".into()))?;
    let run: [u8; 4] = run
        .try_into()
        .map_err(|_| StoreError::Corrupt("symbol run key is not 36 bytes".into()))?;
    Ok((ObjectId::from_bytes(*id), u32::from_be_bytes(run)))
}

/// Whether two records share every field a run stores once.
pub(crate) fn same_run(a: &SymbolRecord, b: &SymbolRecord) -> bool {
    a.object_id == b.object_id
        && a.k == b.k
        && a.symbol_size == b.symbol_size
        && a.zone_id_hash == b.zone_id_hash
        && a.zone_key_id == b.zone_key_id
        && a.epoch_id == b.epoch_id
        && a.sender_instance_id == b.sender_instance_id
        && a.source_node == b.source_node
        && a.from_node == b.from_node
}

/// Encode a run (layout v2, crate docs). Every record must satisfy
/// [`same_run`] with the first; the caller groups them.
#[cfg(test)]
pub(crate) fn encode_run(records: &[&SymbolRecord]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_run_into(&mut out, records)?;
    Ok(out)
}

/// A record's node ids fit the run layout (one length byte each).
pub(crate) fn check_node_ids(r: &SymbolRecord) -> Result<()> {
    for (name, v) in [("source_node", &r.source_node), ("from_node", &r.from_node)] {
        if v.len() > MAX_NODE_ID_LEN {
            return Err(StoreError::InvalidRecord(format!(
                "{name} is {} bytes, at most {MAX_NODE_ID_LEN}",
                v.len()
            )));
        }
    }
    Ok(())
}

/// Append a run (layout v2) to `out`; on error `out` may hold a partial run.
pub(crate) fn encode_run_into(out: &mut Vec<u8>, records: &[&SymbolRecord]) -> Result<()> {
    let start = out.len();
    let Some(first) = records.first() else {
        return Err(StoreError::InvalidRecord("empty symbol run".into()));
    };
    if records.len() > MAX_RUN_SYMBOLS {
        return Err(StoreError::InvalidRecord("symbol run too long".into()));
    }
    check_node_ids(first)?;
    let body: usize = records.iter().map(|r| run_symbol_len(r)).sum();
    out.reserve(run_header_len(first) + body);
    out.push(SYMBOL_LAYOUT_V2);
    out.extend_from_slice(&first.k.to_be_bytes());
    out.extend_from_slice(&first.symbol_size.to_be_bytes());
    out.extend_from_slice(&first.zone_id_hash);
    out.extend_from_slice(&first.zone_key_id);
    out.extend_from_slice(&first.epoch_id.to_be_bytes());
    out.extend_from_slice(&first.sender_instance_id.to_be_bytes());
    for v in [&first.source_node, &first.from_node] {
        // Lengths checked above.
        out.push(u8::try_from(v.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for r in records {
        if !same_run(first, r) {
            return Err(StoreError::InvalidRecord(
                "records of one run differ in a shared field".into(),
            ));
        }
        let ct_len = u32::try_from(r.ciphertext.len())
            .map_err(|_| StoreError::InvalidRecord("ciphertext longer than 4 GiB".into()))?;
        out.extend_from_slice(&r.esi.to_be_bytes());
        out.extend_from_slice(&r.frame_seq.to_be_bytes());
        out.extend_from_slice(&r.tag);
        out.extend_from_slice(&ct_len.to_be_bytes());
        out.extend_from_slice(&r.ciphertext);
    }
    // The sizes put_symbols splits runs by are this layout's.
    debug_assert_eq!(out.len() - start, run_header_len(first) + body);
    Ok(())
}

/// Bounds-checked reader over a value.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or_else(|| StoreError::Corrupt("truncated symbol run".into()))?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.take(N)?;
        b.try_into()
            .map_err(|_| StoreError::Corrupt("truncated symbol run".into()))
    }

    fn node_id(&mut self) -> Result<&'a str> {
        let [len] = self.array::<1>()?;
        let b = self.take(usize::from(len))?;
        std::str::from_utf8(b)
            .map_err(|_| StoreError::Corrupt("node id in symbol run is not UTF-8".into()))
    }
}

/// The shared fields of a run and its symbols, borrowed from the value.
pub(crate) struct RunView<'a> {
    pub(crate) k: u16,
    pub(crate) symbol_size: u16,
    pub(crate) zone_id_hash: [u8; 32],
    pub(crate) zone_key_id: [u8; 8],
    pub(crate) epoch_id: u64,
    pub(crate) sender_instance_id: u64,
    pub(crate) source_node: &'a str,
    pub(crate) from_node: &'a str,
    /// `(esi, frame_seq, tag, ciphertext)` in stored order.
    pub(crate) symbols: Vec<(u32, u64, [u8; 16], &'a [u8])>,
}

impl RunView<'_> {
    /// Ciphertext bytes of the run (its quota charge).
    pub(crate) fn bytes(&self) -> u64 {
        self.symbols.iter().map(|s| s.3.len() as u64).sum()
    }

    /// Symbol `i` of the run as a record of `object_id`. With `owner`, the
    /// buffer the run was parsed from, the ciphertext is a slice of it;
    /// otherwise a copy.
    pub(crate) fn record(
        &self,
        i: usize,
        object_id: ObjectId,
        owner: Option<&bytes::Bytes>,
    ) -> Option<SymbolRecord> {
        let &(esi, frame_seq, tag, ct) = self.symbols.get(i)?;
        Some(SymbolRecord {
            object_id,
            esi,
            k: self.k,
            symbol_size: self.symbol_size,
            zone_id_hash: self.zone_id_hash,
            zone_key_id: self.zone_key_id,
            epoch_id: self.epoch_id,
            source_node: self.source_node.to_owned(),
            sender_instance_id: self.sender_instance_id,
            frame_seq,
            ciphertext: match owner {
                Some(b) => b.slice_ref(ct),
                None => bytes::Bytes::copy_from_slice(ct),
            },
            tag,
            from_node: self.from_node.to_owned(),
        })
    }
}

/// Parse a run value (layout v2): version, every length, and that nothing
/// trails. Damage is [`StoreError::Corrupt`], never a panic.
pub(crate) fn parse_run(value: &[u8]) -> Result<RunView<'_>> {
    let mut r = Reader(value);
    let [version] = r.array::<1>()?;
    if version != SYMBOL_LAYOUT_V2 {
        return Err(StoreError::Corrupt(format!(
            "unknown symbol run version {version}"
        )));
    }
    let k = u16::from_be_bytes(r.array()?);
    let symbol_size = u16::from_be_bytes(r.array()?);
    let zone_id_hash = r.array::<32>()?;
    let zone_key_id = r.array::<8>()?;
    let epoch_id = u64::from_be_bytes(r.array()?);
    let sender_instance_id = u64::from_be_bytes(r.array()?);
    let source_node = r.node_id()?;
    let from_node = r.node_id()?;
    let count = u32::from_be_bytes(r.array()?) as usize;
    if count == 0 || count > MAX_RUN_SYMBOLS {
        return Err(StoreError::Corrupt(format!(
            "symbol run of {count} symbols"
        )));
    }
    let mut symbols = Vec::with_capacity(count);
    for _ in 0..count {
        let esi = u32::from_be_bytes(r.array()?);
        let frame_seq = u64::from_be_bytes(r.array()?);
        let tag = r.array::<16>()?;
        let ct_len = u32::from_be_bytes(r.array()?) as usize;
        symbols.push((esi, frame_seq, tag, r.take(ct_len)?));
    }
    if !r.0.is_empty() {
        return Err(StoreError::Corrupt("trailing bytes in symbol run".into()));
    }
    Ok(RunView {
        k,
        symbol_size,
        zone_id_hash,
        zone_key_id,
        epoch_id,
        sender_instance_id,
        source_node,
        from_node,
        symbols,
    })
}

/// A `symbol_runs` entry that points at a run in the symbol log (layout
/// v3, crate docs): where its bytes are and what the index needs without
/// reading them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogRef {
    pub(crate) segment: u32,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    /// XXH3-64 of the run's bytes.
    pub(crate) checksum: u64,
    pub(crate) zone_id_hash: [u8; 32],
    /// Ciphertext bytes of the run (its quota charge).
    pub(crate) bytes: u64,
    /// The run's ESIs in stored order.
    pub(crate) esis: Vec<u32>,
}

impl LogRef {
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let count = u16::try_from(self.esis.len())
            .ok()
            .filter(|&c| c > 0 && usize::from(c) <= MAX_RUN_SYMBOLS)
            .ok_or_else(|| StoreError::InvalidRecord("symbol run size out of range".into()))?;
        let mut out = Vec::with_capacity(LOG_REF_FIXED_LEN + 4 * self.esis.len());
        out.push(SYMBOL_INDEX_V3);
        out.extend_from_slice(&self.segment.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(&self.checksum.to_be_bytes());
        out.extend_from_slice(&self.zone_id_hash);
        out.extend_from_slice(&self.bytes.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        for esi in &self.esis {
            out.extend_from_slice(&esi.to_be_bytes());
        }
        Ok(out)
    }

    fn parse(value: &[u8]) -> Result<Self> {
        let mut r = Reader(value);
        let [version] = r.array::<1>()?;
        if version != SYMBOL_INDEX_V3 {
            return Err(StoreError::Corrupt(format!(
                "unknown symbol index version {version}"
            )));
        }
        let segment = u32::from_be_bytes(r.array()?);
        let offset = u64::from_be_bytes(r.array()?);
        let len = u32::from_be_bytes(r.array()?);
        let checksum = u64::from_be_bytes(r.array()?);
        let zone_id_hash = r.array::<32>()?;
        let bytes = u64::from_be_bytes(r.array()?);
        let count = usize::from(u16::from_be_bytes(r.array()?));
        if count == 0 || count > MAX_RUN_SYMBOLS || r.0.len() != 4 * count {
            return Err(StoreError::Corrupt(format!(
                "symbol index entry of {count} symbols and {} bytes of ESIs",
                r.0.len()
            )));
        }
        let esis =
            r.0.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
        Ok(Self {
            segment,
            offset,
            len,
            checksum,
            zone_id_hash,
            bytes,
            esis,
        })
    }

    /// Check that `view`, parsed from the bytes this entry points at, is the
    /// run the entry describes.
    pub(crate) fn matches(&self, view: &RunView<'_>) -> bool {
        view.zone_id_hash == self.zone_id_hash
            && view.bytes() == self.bytes
            && view.symbols.len() == self.esis.len()
            && view.symbols.iter().zip(&self.esis).all(|(s, e)| s.0 == *e)
    }
}

/// Fixed part of a v3 index entry: version, segment, offset, length,
/// checksum, zone hash, bytes, count.
const LOG_REF_FIXED_LEN: usize = 1 + 4 + 8 + 4 + 8 + 32 + 8 + 2;

/// A `symbol_runs` entry: a run inline (v2) or in the symbol log (v3).
pub(crate) enum RunEntry<'a> {
    Inline(RunView<'a>),
    Log(LogRef),
}

impl RunEntry<'_> {
    /// Parse an entry by its version byte.
    pub(crate) fn parse(value: &[u8]) -> Result<RunEntry<'_>> {
        match value.first() {
            Some(&SYMBOL_INDEX_V3) => LogRef::parse(value).map(RunEntry::Log),
            _ => parse_run(value).map(RunEntry::Inline),
        }
    }

    /// The run's ESIs in stored order.
    pub(crate) fn esis(&self) -> impl Iterator<Item = u32> + '_ {
        let (inline, log) = match self {
            Self::Inline(v) => (Some(&v.symbols), None),
            Self::Log(r) => (None, Some(&r.esis)),
        };
        let inline = inline.into_iter().flatten().map(|s| s.0);
        inline.chain(log.into_iter().flatten().copied())
    }

    /// Number of symbols in the run.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Inline(v) => v.symbols.len(),
            Self::Log(r) => r.esis.len(),
        }
    }

    /// Zone hash and ciphertext bytes (the run's quota charge).
    pub(crate) fn charge(&self) -> ([u8; 32], u64) {
        match self {
            Self::Inline(v) => (v.zone_id_hash, v.bytes()),
            Self::Log(r) => (r.zone_id_hash, r.bytes),
        }
    }
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

/// A symbol record for tests: object `[9; 32]`, ESI `esi`, 64 bytes of
/// ciphertext.
#[cfg(test)]
pub(crate) fn test_record(esi: u32) -> SymbolRecord {
    SymbolRecord {
        object_id: ObjectId::from_bytes([9; 32]),
        esi,
        k: 4,
        symbol_size: 64,
        zone_id_hash: [1; 32],
        zone_key_id: [2; 8],
        epoch_id: 3,
        source_node: "node-a".into(),
        sender_instance_id: 4,
        frame_seq: u64::from(esi),
        ciphertext: vec![esi as u8; 64].into(),
        tag: [5; 16],
        from_node: "node-b".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn rec() -> SymbolRecord {
        SymbolRecord {
            k: 10,
            symbol_size: 1024,
            ciphertext: vec![0xAB; 40].into(),
            ..test_record(0x0102_0304)
        }
    }

    #[test]
    fn run_layout_round_trip_and_golden_prefix() {
        let a = rec();
        let mut b = rec();
        b.esi = 7;
        b.frame_seq = 12;
        b.ciphertext = vec![0xCD; 3].into();
        let key = run_key(&a.object_id, 0x0102_0304);
        assert_eq!(&key[32..], &[1, 2, 3, 4]);
        assert_eq!(parse_run_key(&key).unwrap(), (a.object_id, 0x0102_0304));
        let v = encode_run(&[&a, &b]).unwrap();
        assert_eq!(
            v.len(),
            1 + 2 + 2 + 32 + 8 + 8 + 8 + 7 + 7 + 4 + 2 * RUN_SYMBOL_FIXED_LEN + 40 + 3
        );
        assert_eq!(&v[..5], &[2, 0, 10, 4, 0]);
        let view = parse_run(&v).unwrap();
        assert_eq!(view.bytes(), 43);
        let back: Vec<SymbolRecord> = (0..view.symbols.len())
            .filter_map(|i| view.record(i, a.object_id, None))
            .collect();
        assert_eq!(back, vec![a, b]);
    }

    #[test]
    fn run_layout_rejects_damage() {
        let a = rec();
        let v = encode_run(&[&a]).unwrap();
        for cut in 0..v.len() {
            assert!(matches!(parse_run(&v[..cut]), Err(StoreError::Corrupt(_))));
        }
        let mut long = v.clone();
        long.push(0);
        assert!(parse_run(&long).is_err());
        let mut bad = v.clone();
        bad[0] = 1;
        assert!(parse_run(&bad).is_err());
        assert!(parse_run_key(&run_key(&a.object_id, 0)[..35]).is_err());
        let mut big = rec();
        big.from_node = "x".repeat(256);
        assert!(matches!(
            encode_run(&[&big]),
            Err(StoreError::InvalidRecord(_))
        ));
        let mut other = rec();
        other.epoch_id = 6;
        assert!(encode_run(&[&a, &other]).is_err());
        assert!(encode_run(&[]).is_err());
    }
}
