//! One object <-> RaptorQ symbols (profile §4.1, spec §4.1, RFC 6330).
//!
//! One object is one source block, so `(esi, k)` identify a symbol. The source
//! data is `u32le(len(object_bytes)) || object_bytes`, zero-padded to `k * T`.
//! Source symbols carry ESIs `0..k`, repair symbols `k..`.
//!
//! The `raptorq` decoder asserts on malformed input, so [`ObjectDecoder`] checks
//! every symbol's `esi`, `k` and length before handing it over.

use raptorq::{
    EncodingPacket, ObjectTransmissionInformation, PayloadId, SourceBlockDecoder,
    SourceBlockEncoder,
};

use crate::error::WireError;

/// Smallest symbol size a frame may carry (profile §4.2).
pub const MIN_SYMBOL_SIZE: u16 = 256;
/// Largest symbol size a frame may carry (profile §4.2).
pub const MAX_SYMBOL_SIZE: u16 = 16384;
/// Default symbol size: one symbol per 1280-byte-MTU datagram (profile §4.2).
pub const DEFAULT_SYMBOL_SIZE: u16 = 1024;
/// Largest number of source symbols of one RFC 6330 source block.
pub const MAX_K: u16 = 56403;
/// RFC 6330 ESIs are 24 bits.
pub const MAX_ESI: u32 = (1 << 24) - 1;
/// Default repair overhead in basis points (review 000 #1: 500 = 5 %).
pub const DEFAULT_REPAIR_RATIO_BPS: u16 = 500;
/// Length prefix of the source data.
const LEN_PREFIX: usize = 4;

/// Check a symbol size against profile §4.2.
pub fn check_symbol_size(t: u16) -> Result<(), WireError> {
    if (MIN_SYMBOL_SIZE..=MAX_SYMBOL_SIZE).contains(&t) {
        Ok(())
    } else {
        Err(WireError::SymbolSize(t))
    }
}

/// Number of source symbols for an object of `len` bytes at symbol size `t`.
pub fn source_symbol_count(len: usize, t: u16) -> Result<u16, WireError> {
    check_symbol_size(t)?;
    let total = len
        .checked_add(LEN_PREFIX)
        .ok_or(WireError::ObjectTooLarge(len))?;
    let k = total.div_ceil(usize::from(t));
    u16::try_from(k)
        .ok()
        .filter(|k| *k <= MAX_K)
        .ok_or(WireError::ObjectTooLarge(len))
}

/// Repair symbols to send for `k` source symbols at `ratio_bps` (at least one).
pub fn repair_count(k: u16, ratio_bps: u16) -> u32 {
    (u32::from(k) * u32::from(ratio_bps))
        .div_ceil(10_000)
        .max(1)
}

fn oti(k: u16, t: u16) -> ObjectTransmissionInformation {
    // One source block, one sub-block, alignment 1 (profile §4.1).
    ObjectTransmissionInformation::new(u64::from(k) * u64::from(t), t, 1, 1, 1)
}

/// Encodes one object into RaptorQ symbols.
pub struct ObjectEncoder {
    k: u16,
    symbol_size: u16,
    inner: SourceBlockEncoder,
}

impl std::fmt::Debug for ObjectEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectEncoder")
            .field("k", &self.k)
            .field("symbol_size", &self.symbol_size)
            .finish_non_exhaustive()
    }
}

impl ObjectEncoder {
    /// Prepare `object` for symbol size `t` (profile §4.1 source data layout).
    pub fn new(object: &[u8], t: u16) -> Result<Self, WireError> {
        Self::with_content(object.len(), t, |buf| buf.copy_from_slice(object))
    }

    /// Prepare an object whose content the caller writes straight into the
    /// source block (saves a copy on the put path): `fill` receives the
    /// `len(content)` bytes after the length prefix.
    pub fn with_content(
        len: usize,
        t: u16,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Self, WireError> {
        let k = source_symbol_count(len, t)?;
        let n = u32::try_from(len).map_err(|_| WireError::ObjectTooLarge(len))?;
        let mut data = vec![0u8; usize::from(k) * usize::from(t)];
        if let Some(prefix) = data.get_mut(..LEN_PREFIX) {
            prefix.copy_from_slice(&n.to_le_bytes());
        }
        if let Some(body) = data.get_mut(LEN_PREFIX..LEN_PREFIX + len) {
            fill(body);
        }
        let inner = SourceBlockEncoder::new(0, &oti(k, t), &data);
        Ok(Self {
            k,
            symbol_size: t,
            inner,
        })
    }

    /// Source symbols `k`.
    pub fn k(&self) -> u16 {
        self.k
    }

    /// Symbol size `T`.
    pub fn symbol_size(&self) -> u16 {
        self.symbol_size
    }

    /// The `k` source symbols, ESIs `0..k`.
    pub fn source_symbols(&self) -> Vec<(u32, Vec<u8>)> {
        self.inner
            .source_packets()
            .into_iter()
            .map(|p| {
                let (id, data) = p.split();
                (id.encoding_symbol_id(), data)
            })
            .collect()
    }

    /// `count` repair symbols starting at ESI `k + offset`.
    pub fn repair_symbols(&self, offset: u32, count: u32) -> Vec<(u32, Vec<u8>)> {
        self.inner
            .repair_packets(offset, count)
            .into_iter()
            .map(|p| {
                let (id, data) = p.split();
                (id.encoding_symbol_id(), data)
            })
            .collect()
    }

    /// Source symbols plus `repair_count(k, ratio_bps)` repair symbols.
    pub fn all_symbols(&self, ratio_bps: u16) -> Vec<(u32, Vec<u8>)> {
        let mut out = self.source_symbols();
        out.extend(self.repair_symbols(0, repair_count(self.k, ratio_bps)));
        out
    }
}

/// What a pushed symbol did to the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// New symbol stored; more are needed.
    NeedMore,
    /// The symbol was already seen (or arrived after completion); ignored.
    Duplicate,
    /// The object is rebuilt; call [`ObjectDecoder::take`].
    Complete,
}

/// Rebuilds one object from symbols in any order from any source.
pub struct ObjectDecoder {
    k: u16,
    symbol_size: u16,
    inner: SourceBlockDecoder,
    seen: Vec<u64>,
    seen_repair: std::collections::HashSet<u32>,
    received_unique: u32,
    result: Option<Vec<u8>>,
}

impl std::fmt::Debug for ObjectDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectDecoder")
            .field("k", &self.k)
            .field("symbol_size", &self.symbol_size)
            .field("received_unique", &self.received_unique)
            .field("complete", &self.result.is_some())
            .finish_non_exhaustive()
    }
}

/// Repair symbols accepted beyond `k` before a decoder gives up taking more:
/// bounds memory against a peer that floods distinct repair ESIs.
const MAX_EXTRA_REPAIR: u32 = 1024;

impl ObjectDecoder {
    /// A decoder for an object of `k` source symbols of size `t`.
    pub fn new(k: u16, t: u16) -> Result<Self, WireError> {
        check_symbol_size(t)?;
        if k == 0 || k > MAX_K {
            return Err(WireError::BadK(k));
        }
        let inner = SourceBlockDecoder::new(0, &oti(k, t), u64::from(k) * u64::from(t));
        Ok(Self {
            k,
            symbol_size: t,
            inner,
            seen: vec![0; usize::from(k).div_ceil(64)],
            seen_repair: std::collections::HashSet::new(),
            received_unique: 0,
            result: None,
        })
    }

    /// Source symbols `k` of the object.
    pub fn k(&self) -> u16 {
        self.k
    }

    /// Unique symbols received so far (DecodeStatus `received_unique`, spec §4.4).
    pub fn received_unique(&self) -> u32 {
        self.received_unique
    }

    /// Symbols needed to decode (DecodeStatus `required`): `k`.
    pub fn required(&self) -> u32 {
        u32::from(self.k)
    }

    /// Whether the object is rebuilt.
    pub fn is_complete(&self) -> bool {
        self.result.is_some()
    }

    /// ESIs `0..k` not yet received, as a bitmap (bit `i` of byte `i / 8` set when
    /// source symbol `i` is missing) — the compact `missing_hint` of spec §4.4.
    pub fn missing_source_bitmap(&self) -> Vec<u8> {
        let k = usize::from(self.k);
        let mut out = vec![0u8; k.div_ceil(8)];
        for i in 0..k {
            let have = self
                .seen
                .get(i / 64)
                .is_some_and(|w| w & (1u64 << (i % 64)) != 0);
            if let (false, Some(b)) = (have, out.get_mut(i / 8)) {
                *b |= 1 << (i % 8);
            }
        }
        out
    }

    /// Offer one symbol. Validates `k`, `esi` and length before the RaptorQ
    /// decoder sees it; decodes as soon as enough symbols are in.
    pub fn push(&mut self, esi: u32, k: u16, data: &[u8]) -> Result<Progress, WireError> {
        self.push_with(esi, k, data.len(), || data.to_vec())
    }

    /// [`ObjectDecoder::push`] taking ownership of the symbol (saves a copy).
    pub fn push_owned(&mut self, esi: u32, k: u16, data: Vec<u8>) -> Result<Progress, WireError> {
        self.push_with(esi, k, data.len(), move || data)
    }

    fn push_with(
        &mut self,
        esi: u32,
        k: u16,
        len: usize,
        data: impl FnOnce() -> Vec<u8>,
    ) -> Result<Progress, WireError> {
        if k != self.k {
            return Err(WireError::KMismatch {
                expected: self.k,
                got: k,
            });
        }
        if esi > MAX_ESI {
            return Err(WireError::BadEsi(esi));
        }
        if len != usize::from(self.symbol_size) {
            return Err(WireError::SymbolLength {
                expected: self.symbol_size,
                got: len,
            });
        }
        if self.result.is_some() {
            return Ok(Progress::Duplicate);
        }
        if esi < u32::from(self.k) {
            let i = esi as usize;
            let Some(word) = self.seen.get_mut(i / 64) else {
                return Err(WireError::BadEsi(esi));
            };
            let bit = 1u64 << (i % 64);
            if *word & bit != 0 {
                return Ok(Progress::Duplicate);
            }
            *word |= bit;
        } else {
            if self.seen_repair.contains(&esi) {
                return Ok(Progress::Duplicate);
            }
            if self.seen_repair.len() as u32 >= u32::from(self.k) + MAX_EXTRA_REPAIR {
                return Err(WireError::TooManySymbols);
            }
            self.seen_repair.insert(esi);
        }
        self.received_unique += 1;
        let packet = EncodingPacket::new(PayloadId::new(0, esi), data());
        if let Some(block) = self.inner.decode([packet]) {
            self.result = Some(block);
            return Ok(Progress::Complete);
        }
        Ok(Progress::NeedMore)
    }

    /// The rebuilt object bytes (strips and checks the length prefix).
    pub fn take(&mut self) -> Result<Vec<u8>, WireError> {
        let block = self.result.take().ok_or(WireError::Incomplete {
            received: self.received_unique,
            required: self.required(),
        })?;
        unpad(block)
    }
}

/// Strip `u32le(len) || bytes || zero padding` (profile §4.1).
fn unpad(mut block: Vec<u8>) -> Result<Vec<u8>, WireError> {
    let prefix: [u8; 4] = block
        .get(..LEN_PREFIX)
        .and_then(|p| p.try_into().ok())
        .ok_or(WireError::BadLengthPrefix)?;
    let len = u32::from_le_bytes(prefix) as usize;
    if len > block.len() - LEN_PREFIX {
        return Err(WireError::BadLengthPrefix);
    }
    // Padding must be zero: anything else means a corrupted or forged symbol set.
    if block
        .get(LEN_PREFIX + len..)
        .is_some_and(|pad| pad.iter().any(|b| *b != 0))
    {
        return Err(WireError::BadLengthPrefix);
    }
    block.truncate(LEN_PREFIX + len);
    block.drain(..LEN_PREFIX);
    Ok(block)
}

/// Decode an object from a full symbol set in one call (tests, tools).
pub fn decode_all<'a>(
    k: u16,
    t: u16,
    symbols: impl IntoIterator<Item = (u32, &'a [u8])>,
) -> Result<Vec<u8>, WireError> {
    let mut dec = ObjectDecoder::new(k, t)?;
    for (esi, data) in symbols {
        if dec.push(esi, k, data)? == Progress::Complete {
            return dec.take();
        }
    }
    dec.take()
}
