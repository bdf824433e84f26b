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
use crate::frame::{Frame, FrameBuilder, FrameFlags, FrameHeader, PushError};
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
    pub fn seal<S: AsRef<[u8]>>(
        &self,
        k: u16,
        symbols: &[(u32, S)],
        frame_seq: &mut u64,
    ) -> Result<Vec<Bytes>, EnvelopeError> {
        let mut frames = Vec::new();
        // One allocation for every frame of the object.
        let cap =
            FrameBuilder::capacity_for(self.ctx.symbol_size, self.max_frame_len).max(1) as usize;
        let per_frame = crate::frame::encoded_len(self.ctx.symbol_size, cap);
        let mut buf = bytes::BytesMut::with_capacity(per_frame * symbols.len().div_ceil(cap));
        let mut iter = symbols.iter().peekable();
        while iter.peek().is_some() {
            let header = FrameHeader {
                flags: self.flags,
                object_id: *self.ctx.object_id.as_bytes(),
                symbol_size: self.ctx.symbol_size,
                zone_key_id: self.ctx.zone_key_id,
                zone_id_hash: *self.ctx.zone_id_hash.as_bytes(),
                epoch_id: self.ctx.epoch_id,
                sender_instance_id: self.key.sender_instance_id(),
                frame_seq: *frame_seq,
            };
            let mut b = FrameBuilder::new_in(&header, self.max_frame_len, buf)?;
            while let Some((esi, data)) = iter.peek() {
                let aad = symbol_aad(
                    &self.ctx.object_id,
                    *esi,
                    k,
                    &self.ctx.zone_id_hash,
                    &self.ctx.zone_key_id,
                    self.ctx.epoch_id,
                );
                let pushed = b
                    .push_with(*esi, k, data.as_ref(), |buf| {
                        self.key.seal_in_place(header.frame_seq, *esi, &aad, buf)
                    })
                    .map_err(|e| match e {
                        PushError::Frame(f) => EnvelopeError::Frame(f),
                        PushError::Seal(c) => EnvelopeError::Crypto(c),
                    })?;
                if !pushed {
                    break;
                }
                iter.next();
            }
            let (frame, rest) = b.finish_reuse()?;
            frames.push(frame);
            buf = rest;
            *frame_seq = frame_seq.wrapping_add(1);
        }
        Ok(frames)
    }
}

/// Check that a frame carries symbols of the expected object context.
pub fn check_context(frame: &Frame, ctx: &SymbolContext) -> Result<(), EnvelopeError> {
    let h = frame.header();
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

/// Decrypt every record of `frame` with the sender's key and feed the
/// decoder. `key` must be the subkey of the frame's sender and
/// `sender_instance_id`. A record that fails authentication aborts the frame
/// (the whole datagram is forged or corrupted); records before it stay counted.
pub fn open_into(
    frame: &Frame,
    key: &SymbolKey,
    decoder: &mut ObjectDecoder,
) -> Result<Progress, EnvelopeError> {
    let h = frame.header();
    if key.sender_instance_id() != h.sender_instance_id {
        return Err(EnvelopeError::ContextMismatch("sender_instance_id"));
    }
    let object_id = ObjectId::from_bytes(h.object_id);
    let zone = ZoneIdHash::from_bytes(h.zone_id_hash);
    let mut last = Progress::NeedMore;
    for r in frame.records() {
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
        let aad = symbol_aad(&object_id, r.esi, r.k, &zone, &h.zone_key_id, h.epoch_id);
        // The decoder keeps the plaintext symbol: decrypt into a buffer it takes over.
        let mut buf = Vec::with_capacity(r.ciphertext.len());
        buf.extend_from_slice(r.ciphertext);
        key.open_in_place(h.frame_seq, r.esi, &aad, &mut buf, r.tag)?;
        last = decoder.push_owned(r.esi, r.k, buf)?;
        if last == Progress::Complete {
            return Ok(last);
        }
    }
    Ok(last)
}
