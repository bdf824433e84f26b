//! Symbol envelopes: RaptorQ symbols sealed with a per-sender subkey and packed
//! into FCPS frames (spec §4.1, §4.3; profile §3, §4.2).
//!
//! The nonce is never stored: it is `frame_seq || esi` (ChaCha20-Poly1305) or
//! `sender_instance_id || frame_seq || esi` (XChaCha20-Poly1305), and the AAD
//! binds object id, esi, k, zone, zone key id and epoch (profile §3).

use bytes::Bytes;
use fcp_core::{ErrorCode, HasErrorCode, ObjectId, ZoneIdHash};
use fcp_crypto::{CryptoError, SymbolKey, symbol_aad};

use crate::error::{FrameError, WireError};
use crate::frame::{
    CHECKSUM_LEN, Frame, FrameBuilder, FrameFlags, FrameHeader, FrameRef, HEADER_LEN,
    RECORD_OVERHEAD, RecordRef, checksum,
};
use crate::object::{ObjectDecoder, Progress};

/// Where a sealed symbol belongs: the frame header fields that are the same for
/// every symbol of one object from one sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolContext {
    /// The object.
    pub object_id: ObjectId,
    /// Zone of the object.
    pub zone_id_hash: ZoneIdHash,
    /// Zone key that encrypts.
    pub zone_key_id: [u8; 8],
    /// Encryption epoch.
    pub epoch_id: u64,
    /// Symbol size `T`.
    pub symbol_size: u16,
}

/// Envelope failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// AEAD failure (tampered symbol, wrong key, wrong context).
    #[error("symbol decryption failed: {0}")]
    Crypto(#[from] CryptoError),
    /// Frame problem.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Symbol-layer problem.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The frame belongs to another object, zone, key or symbol size.
    #[error("frame does not match the expected object context ({0})")]
    ContextMismatch(&'static str),
}

impl HasErrorCode for EnvelopeError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Crypto(e) => e.error_code(),
            Self::Frame(e) => e.error_code(),
            Self::Wire(e) => e.error_code(),
            Self::ContextMismatch(_) => ErrorCode::SymbolInvalid,
        }
    }
}

/// Seals the symbols of one object into frames for one sender.
#[derive(Debug)]
pub struct Sealer<'a> {
    key: &'a SymbolKey,
    ctx: SymbolContext,
    flags: FrameFlags,
    max_frame_len: usize,
}

impl<'a> Sealer<'a> {
    /// A sealer with the default frame size (one 1024-byte symbol per 1232-byte datagram).
    pub fn new(key: &'a SymbolKey, ctx: SymbolContext) -> Self {
        Self {
            key,
            ctx,
            flags: FrameFlags::ENCRYPTED.union(FrameFlags::RAPTORQ),
            max_frame_len: FrameBuilder::DEFAULT_MAX_FRAME,
        }
    }

    /// Override the maximum frame length (bytes of the FCPS frame alone).
    #[must_use]
    pub fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Add flags (e.g. `RESPONSE`).
    #[must_use]
    pub fn with_flags(mut self, flags: FrameFlags) -> Self {
        self.flags = self.flags.union(flags);
        self
    }

    /// Seal `symbols` (`(esi, plaintext)`) of an object of `k` source symbols
    /// into as few frames as fit. Each frame takes the next `frame_seq`.
    ///
    /// Every frame of the object is written into one buffer sized up front
    /// (the same bytes [`FrameBuilder`] produces), each symbol encrypted in
    /// place there; the frames are zero-copy slices of it.
    pub fn seal<S: AsRef<[u8]>>(
        &self,
        k: u16,
        symbols: &[(u32, S)],
        frame_seq: &mut u64,
    ) -> Result<Vec<Bytes>, EnvelopeError> {
        let t = self.ctx.symbol_size;
        if !(crate::object::MIN_SYMBOL_SIZE..=crate::object::MAX_SYMBOL_SIZE).contains(&t) {
            return Err(FrameError::BadSymbolSize(t).into());
        }
        let cap = FrameBuilder::capacity_for(t, self.max_frame_len) as usize;
        if cap == 0 {
            return Err(FrameError::FrameTooSmall(self.max_frame_len).into());
        }
        let ts = usize::from(t);
        let frames = symbols.len().div_ceil(cap);
        let total = frames * (HEADER_LEN + CHECKSUM_LEN) + symbols.len() * (RECORD_OVERHEAD + ts);
        let mut buf: Vec<u8> = Vec::with_capacity(total);
        let mut ends = Vec::with_capacity(frames);
        let mut header = FrameHeader {
            flags: self.flags,
            object_id: *self.ctx.object_id.as_bytes(),
            symbol_size: t,
            zone_key_id: self.ctx.zone_key_id,
            zone_id_hash: *self.ctx.zone_id_hash.as_bytes(),
            epoch_id: self.ctx.epoch_id,
            sender_instance_id: self.key.sender_instance_id(),
            frame_seq: *frame_seq,
        };
        for group in symbols.chunks(cap) {
            let start = buf.len();
            header.frame_seq = *frame_seq;
            buf.extend_from_slice(&header.encode(group.len() as u32));
            for (esi, data) in group {
                let data = data.as_ref();
                if data.len() != ts {
                    return Err(FrameError::BadSymbolSize(
                        u16::try_from(data.len()).unwrap_or(u16::MAX),
                    )
                    .into());
                }
                buf.extend_from_slice(&esi.to_le_bytes());
                buf.extend_from_slice(&k.to_le_bytes());
                let at = buf.len();
                buf.extend_from_slice(data);
                let aad = symbol_aad(
                    &self.ctx.object_id,
                    *esi,
                    k,
                    &self.ctx.zone_id_hash,
                    &self.ctx.zone_key_id,
                    self.ctx.epoch_id,
                );
                let ct = buf.get_mut(at..).ok_or(FrameError::Truncated(at))?;
                let tag = self.key.seal_in_place(*frame_seq, *esi, &aad, ct)?;
                buf.extend_from_slice(&tag);
            }
            let sum = checksum(buf.get(start..).unwrap_or_default());
            buf.extend_from_slice(&sum);
            ends.push(buf.len());
            *frame_seq = frame_seq.wrapping_add(1);
        }
        let all = Bytes::from(buf);
        let mut out = Vec::with_capacity(frames);
        let mut start = 0;
        for end in ends {
            out.push(all.slice(start..end));
            start = end;
        }
        Ok(out)
    }
}

/// Check that a frame carries symbols of the expected object context.
pub fn check_context(frame: &Frame, ctx: &SymbolContext) -> Result<(), EnvelopeError> {
    check_header(frame.header(), ctx)
}

/// [`check_context`] on a frame's header.
pub fn check_header(h: &FrameHeader, ctx: &SymbolContext) -> Result<(), EnvelopeError> {
    if h.object_id != *ctx.object_id.as_bytes() {
        return Err(EnvelopeError::ContextMismatch("object_id"));
    }
    if h.zone_id_hash != *ctx.zone_id_hash.as_bytes() {
        return Err(EnvelopeError::ContextMismatch("zone"));
    }
    if h.zone_key_id != ctx.zone_key_id {
        return Err(EnvelopeError::ContextMismatch("zone_key_id"));
    }
    if h.symbol_size != ctx.symbol_size {
        return Err(EnvelopeError::ContextMismatch("symbol_size"));
    }
    Ok(())
}

/// `key` is the subkey of the sender that sealed under `h`.
pub fn check_sealer(h: &FrameHeader, key: &SymbolKey) -> Result<(), EnvelopeError> {
    if key.sender_instance_id() != h.sender_instance_id {
        return Err(EnvelopeError::ContextMismatch("sender_instance_id"));
    }
    Ok(())
}

/// Decrypt every record of `frame` with the sender's key and feed the
/// decoder. `key` must be the subkey of the frame's sender and
/// `sender_instance_id`. A record that fails authentication aborts the frame
/// (the whole datagram is forged or corrupted); records before it stay counted.
pub fn open_into(
    frame: &Frame,
    key: &SymbolKey,
    decoder: &mut ObjectDecoder,
) -> Result<Progress, EnvelopeError> {
    open_records_into(frame.header(), frame.records(), key, decoder)
}

/// [`open_into`] for a borrowed frame.
pub fn open_ref_into(
    frame: &FrameRef<'_>,
    key: &SymbolKey,
    decoder: &mut ObjectDecoder,
) -> Result<Progress, EnvelopeError> {
    open_records_into(frame.header(), frame.records(), key, decoder)
}

/// Decrypt record `r`, sealed under frame header `h`, into `buf` (its
/// ciphertext is copied there and opened in place; profile §3 nonce and
/// AAD). `buf` must be the record's length. `key` must be the sender's
/// subkey; the caller checks `h` against its context.
pub fn open_record(
    key: &SymbolKey,
    h: &FrameHeader,
    r: &RecordRef<'_>,
    buf: &mut [u8],
) -> Result<(), EnvelopeError> {
    if buf.len() != r.ciphertext.len() {
        return Err(WireError::SymbolLength {
            expected: h.symbol_size,
            got: buf.len(),
        }
        .into());
    }
    let aad = symbol_aad(
        &ObjectId::from_bytes(h.object_id),
        r.esi,
        r.k,
        &ZoneIdHash::from_bytes(h.zone_id_hash),
        &h.zone_key_id,
        h.epoch_id,
    );
    buf.copy_from_slice(r.ciphertext);
    key.open_in_place(h.frame_seq, r.esi, &aad, buf, r.tag)
        .map_err(EnvelopeError::from)
}

/// [`open_into`] for records held apart from their frame (a node's stored
/// symbols): `h` carries the frame header fields they were sealed under.
pub fn open_records_into<'r>(
    h: &FrameHeader,
    records: impl Iterator<Item = RecordRef<'r>>,
    key: &SymbolKey,
    decoder: &mut ObjectDecoder,
) -> Result<Progress, EnvelopeError> {
    check_sealer(h, key)?;
    let mut last = Progress::NeedMore;
    for r in records {
        if decoder.is_complete() {
            return Ok(Progress::Duplicate);
        }
        if r.k != decoder.k() {
            return Err(WireError::KMismatch {
                expected: decoder.k(),
                got: r.k,
            }
            .into());
        }
        // Decrypt straight into the buffer the decoder keeps (for a source
        // symbol, its place in the source block).
        last = decoder.push_fill(r.esi, r.k, r.ciphertext.len(), |buf| {
            open_record(key, h, &r, buf)
        })?;
        if last == Progress::Complete {
            return Ok(last);
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fcp_crypto::AeadAlgorithm;

    /// The sealer writes exactly the frames a [`FrameBuilder`] builds.
    #[test]
    fn sealer_matches_frame_builder() {
        for alg in [
            AeadAlgorithm::ChaCha20Poly1305,
            AeadAlgorithm::XChaCha20Poly1305,
        ] {
            let key = SymbolKey::derive(alg, &[7; 32], [1; 8], "node", 3).unwrap();
            for (t, max, n) in [(1024u16, 1192usize, 5usize), (256, 1192, 9), (512, 4000, 1)] {
                let ctx = SymbolContext {
                    object_id: ObjectId::from_bytes([4; 32]),
                    zone_id_hash: ZoneIdHash::from_bytes([5; 32]),
                    zone_key_id: [6; 8],
                    epoch_id: 9,
                    symbol_size: t,
                };
                let symbols: Vec<(u32, Vec<u8>)> = (0..n as u32)
                    .map(|e| (e * 3, vec![e as u8; usize::from(t)]))
                    .collect();
                let mut seq = 77;
                let sealer = Sealer::new(&key, ctx).with_max_frame_len(max);
                let frames = sealer.seal(4, &symbols, &mut seq).unwrap();
                let mut expected = Vec::new();
                let mut s2 = 77u64;
                let mut it = symbols.iter().peekable();
                while it.peek().is_some() {
                    let header = FrameHeader {
                        flags: sealer.flags,
                        object_id: [4; 32],
                        symbol_size: t,
                        zone_key_id: [6; 8],
                        zone_id_hash: [5; 32],
                        epoch_id: 9,
                        sender_instance_id: key.sender_instance_id(),
                        frame_seq: s2,
                    };
                    let mut b = FrameBuilder::new(&header, max).unwrap();
                    while let Some((esi, data)) = it.peek() {
                        let aad =
                            symbol_aad(&ctx.object_id, *esi, 4, &ctx.zone_id_hash, &[6; 8], 9);
                        let pushed = b
                            .push_with(*esi, 4, data, |buf| key.seal_in_place(s2, *esi, &aad, buf))
                            .unwrap();
                        if !pushed {
                            break;
                        }
                        it.next();
                    }
                    expected.push(b.finish().unwrap());
                    s2 += 1;
                }
                assert_eq!(frames, expected);
                assert_eq!(seq, s2);
            }
        }
    }
}
