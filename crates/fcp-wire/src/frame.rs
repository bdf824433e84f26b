//! The FCPS data-plane frame (profile §4.2, spec §4.3-4.4).
//!
//! ```text
//! 0   magic "FCPS"          48  symbol_size u16le       98  sender_instance_id u64le
//! 4   version u16le = 1     50  zone_key_id [8]        106  frame_seq u64le
//! 6   flags u16le           58  ZoneIdHash [32]        114  records...
//! 8   symbol_count u32le    90  epoch_id u64le         last 8: XXH3-64 (seed 0)
//! 12  payload_len u32le
//! 16  object_id [32]
//! record = u32le(esi) || u16le(k) || ciphertext[symbol_size] || tag[16]
//! ```
//!
//! Decoding is zero-copy over [`Bytes`]: a [`Frame`] keeps the datagram and hands
//! out record slices. Every length is checked before use; unknown flag bits,
//! trailing bytes and checksum mismatches are typed errors.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::FrameError;
use crate::object::{MAX_SYMBOL_SIZE, MIN_SYMBOL_SIZE};

/// XXH3-64 (profile §4.2 frame checksum). twox-hash picks AVX2 at run time;
/// the tests check it against the xxhash-rust reference.
fn xxh3_64(b: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(b)
}

/// `"FCPS"`.
pub const MAGIC: [u8; 4] = *b"FCPS";
/// Frame format version of profile §4.2.
pub const VERSION: u16 = 1;
/// Fixed header length.
pub const HEADER_LEN: usize = 114;
/// Checksum trailer length.
pub const CHECKSUM_LEN: usize = 8;
/// Per-record overhead: esi (4) + k (2) + tag (16).
pub const RECORD_OVERHEAD: usize = 22;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Upper bound on records per frame (a frame is one datagram; 64 KiB / 278 < 256).
pub const MAX_SYMBOLS_PER_FRAME: u32 = 256;
/// Session envelope: `session_id[16] || u64le(seq) || mac[16]` (profile §4.3).
pub const SESSION_ENVELOPE_LEN: usize = 40;
/// Default maximum datagram: 1232 bytes including the session envelope, so it fits
/// a 1280-byte path MTU (Tailscale) after IPv6 + UDP headers.
pub const DEFAULT_MAX_DATAGRAM: usize = 1232;

/// Frame flags (spec §4.4). Bits 12..=15 are unassigned and rejected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FrameFlags(u16);

impl FrameFlags {
    /// Requires acknowledgment.
    pub const REQUIRES_ACK: Self = Self(1 << 0);
    /// zstd compressed.
    pub const COMPRESSED: Self = Self(1 << 1);
    /// Zone-encrypted symbols.
    pub const ENCRYPTED: Self = Self(1 << 2);
    /// Response to a request.
    pub const RESPONSE: Self = Self(1 << 3);
    /// Error response.
    pub const ERROR: Self = Self(1 << 4);
    /// Part of a stream.
    pub const STREAMING: Self = Self(1 << 5);
    /// Final frame of a stream.
    pub const STREAM_END: Self = Self(1 << 6);
    /// Carries a capability token.
    pub const HAS_CAP_TOKEN: Self = Self(1 << 7);
    /// Zone transition.
    pub const ZONE_CROSSING: Self = Self(1 << 8);
    /// High priority.
    pub const PRIORITY: Self = Self(1 << 9);
    /// RaptorQ encoded (the default).
    pub const RAPTORQ: Self = Self(1 << 10);
    /// Control-plane object.
    pub const CONTROL_PLANE: Self = Self(1 << 11);
    /// Every defined bit.
    pub const ALL: Self = Self(0x0fff);

    /// Parse, rejecting unknown bits (profile §4.2).
    pub fn from_bits(bits: u16) -> Result<Self, FrameError> {
        if bits & !Self::ALL.0 != 0 {
            Err(FrameError::UnknownFlags(bits))
        } else {
            Ok(Self(bits))
        }
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// The fixed header fields of a frame (everything but counts and lengths).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Flags.
    pub flags: FrameFlags,
    /// Object the symbols belong to.
    pub object_id: [u8; 32],
    /// Bytes of every symbol's ciphertext.
    pub symbol_size: u16,
    /// Zone key that encrypted the symbols.
    pub zone_key_id: [u8; 8],
    /// `ZoneIdHash` of the object's zone.
    pub zone_id_hash: [u8; 32],
    /// Epoch of the encryption.
    pub epoch_id: u64,
    /// Sender process instance (profile §3: nonce and subkey input).
    pub sender_instance_id: u64,
    /// Per-sender monotonic frame sequence.
    pub frame_seq: u64,
}

/// One record of a decoded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Encoding symbol id.
    pub esi: u32,
    /// Source symbols of the object.
    pub k: u16,
    /// Encrypted symbol (`symbol_size` bytes).
    pub ciphertext: &'a [u8],
    /// AEAD tag.
    pub tag: &'a [u8; TAG_LEN],
}

/// A decoded, checksum-verified frame over its datagram bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    header: FrameHeader,
    symbol_count: u32,
    bytes: Bytes,
}

/// Encoded length of a frame of `count` records of `symbol_size` bytes.
pub const fn encoded_len(symbol_size: u16, count: usize) -> usize {
    HEADER_LEN + count * (RECORD_OVERHEAD + symbol_size as usize) + CHECKSUM_LEN
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

fn arr_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        a.copy_from_slice(s);
    }
    a
}

/// Check one frame's bytes (exactly one frame) and read its header.
fn parse(b: &[u8]) -> Result<(FrameHeader, u32), FrameError> {
    if b.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(FrameError::Truncated(b.len()));
    }
    if b.get(0..4) != Some(&MAGIC[..]) {
        return Err(FrameError::BadMagic);
    }
    let version = u16_at(b, 4);
    if version != VERSION {
        return Err(FrameError::BadVersion(version));
    }
    let flags = FrameFlags::from_bits(u16_at(b, 6))?;
    let symbol_count = u32_at(b, 8);
    if symbol_count == 0 || symbol_count > MAX_SYMBOLS_PER_FRAME {
        return Err(FrameError::BadSymbolCount(symbol_count));
    }
    let payload_len = u32_at(b, 12) as usize;
    let symbol_size = u16_at(b, 48);
    if !(MIN_SYMBOL_SIZE..=MAX_SYMBOL_SIZE).contains(&symbol_size) {
        return Err(FrameError::BadSymbolSize(symbol_size));
    }
    let expected_payload = symbol_count as usize * (RECORD_OVERHEAD + usize::from(symbol_size));
    if payload_len != expected_payload {
        return Err(FrameError::LengthMismatch {
            declared: payload_len,
            expected: expected_payload,
        });
    }
    let total = HEADER_LEN + payload_len + CHECKSUM_LEN;
    if b.len() < total {
        return Err(FrameError::Truncated(b.len()));
    }
    if b.len() > total {
        return Err(FrameError::TrailingBytes(b.len() - total));
    }
    let body = b
        .get(..total - CHECKSUM_LEN)
        .ok_or(FrameError::Truncated(b.len()))?;
    if xxh3_64(body) != u64_at(b, total - CHECKSUM_LEN) {
        return Err(FrameError::Checksum);
    }
    let header = FrameHeader {
        flags,
        object_id: arr_at(b, 16),
        symbol_size,
        zone_key_id: arr_at(b, 50),
        zone_id_hash: arr_at(b, 58),
        epoch_id: u64_at(b, 90),
        sender_instance_id: u64_at(b, 98),
        frame_seq: u64_at(b, 106),
    };
    Ok((header, symbol_count))
}

/// Records of a checked frame's bytes.
fn records_of(
    bytes: &[u8],
    symbol_size: u16,
    count: u32,
) -> impl Iterator<Item = RecordRef<'_>> + '_ {
    let t = usize::from(symbol_size);
    let stride = RECORD_OVERHEAD + t;
    let payload = bytes
        .get(HEADER_LEN..HEADER_LEN + count as usize * stride)
        .unwrap_or_default();
    payload.chunks_exact(stride).filter_map(move |r| {
        Some(RecordRef {
            esi: u32_at(r, 0),
            k: u16_at(r, 4),
            ciphertext: r.get(6..6 + t)?,
            tag: r.get(6 + t..stride)?.try_into().ok()?,
        })
    })
}

/// A decoded, checksum-verified frame borrowing its datagram bytes (the
/// same checks as [`Frame::decode`], without taking a `Bytes` handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef<'a> {
    header: FrameHeader,
    symbol_count: u32,
    bytes: &'a [u8],
}

/// The ESI of a frame's first record, read at its fixed offset without
/// parsing or checking the frame: only for frames this node has just built
/// (a writer indexing its own sealed output), never for received bytes.
pub fn first_esi_of_own_frame(frame: &[u8]) -> Option<u32> {
    let esi = frame.get(HEADER_LEN..HEADER_LEN + 4)?;
    Some(u32::from_le_bytes(esi.try_into().ok()?))
}

impl<'a> FrameRef<'a> {
    /// Decode and verify one frame. `bytes` must hold exactly one frame.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let (header, symbol_count) = parse(bytes)?;
        Ok(Self {
            header,
            symbol_count,
            bytes,
        })
    }

    /// The header fields.
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// Number of records.
    pub fn symbol_count(&self) -> u32 {
        self.symbol_count
    }

    /// Iterate the records (lengths were checked by [`FrameRef::decode`]).
    pub fn records(&self) -> impl Iterator<Item = RecordRef<'a>> + 'a {
        records_of(self.bytes, self.header.symbol_size, self.symbol_count)
    }
}

impl Frame {
    /// Decode and verify one frame. `bytes` must hold exactly one frame.
    pub fn decode(bytes: Bytes) -> Result<Self, FrameError> {
        let (header, symbol_count) = parse(&bytes)?;
        Ok(Self {
            header,
            symbol_count,
            bytes,
        })
    }

    /// The header fields.
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// Number of records.
    pub fn symbol_count(&self) -> u32 {
        self.symbol_count
    }

    /// This frame over its own copy of its bytes: a frame sliced from a
    /// larger buffer (a receive of many datagrams) keeps all of it alive.
    pub fn detached(&self) -> Self {
        Self {
            header: self.header,
            symbol_count: self.symbol_count,
            bytes: Bytes::copy_from_slice(&self.bytes),
        }
    }

    /// The whole frame.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Iterate the records (lengths were checked by [`Frame::decode`]).
    pub fn records(&self) -> impl Iterator<Item = RecordRef<'_>> + '_ {
        records_of(&self.bytes, self.header.symbol_size, self.symbol_count)
    }

    /// A zero-copy handle to the ciphertext of record `i`.
    pub fn ciphertext_bytes(&self, i: u32) -> Option<Bytes> {
        if i >= self.symbol_count {
            return None;
        }
        let t = usize::from(self.header.symbol_size);
        let start = HEADER_LEN + i as usize * (RECORD_OVERHEAD + t) + 6;
        (start + t <= self.bytes.len()).then(|| self.bytes.slice(start..start + t))
    }
}

impl FrameHeader {
    /// The fixed header of a frame of `count` records, as
    /// [`FrameBuilder::finish`] writes it.
    pub fn encode(&self, count: u32) -> [u8; HEADER_LEN] {
        let payload_len = count as usize * (RECORD_OVERHEAD + usize::from(self.symbol_size));
        let mut h = [0u8; HEADER_LEN];
        let parts: [&[u8]; 12] = [
            &MAGIC,
            &VERSION.to_le_bytes(),
            &self.flags.bits().to_le_bytes(),
            &count.to_le_bytes(),
            &(payload_len as u32).to_le_bytes(),
            &self.object_id,
            &self.symbol_size.to_le_bytes(),
            &self.zone_key_id,
            &self.zone_id_hash,
            &self.epoch_id.to_le_bytes(),
            &self.sender_instance_id.to_le_bytes(),
            &self.frame_seq.to_le_bytes(),
        ];
        let mut at = 0;
        for p in parts {
            if let Some(dst) = h.get_mut(at..at + p.len()) {
                dst.copy_from_slice(p);
            }
            at += p.len();
        }
        h
    }
}

/// The XXH3-64 trailer of a frame whose bytes before the trailer are `body`.
pub fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    xxh3_64(body).to_le_bytes()
}

/// Packs as many records as fit `max_frame_len` into one frame, encrypting each
/// symbol in place in the output buffer.
#[derive(Debug)]
pub struct FrameBuilder {
    buf: BytesMut,
    symbol_size: u16,
    count: u32,
    capacity: u32,
}

impl FrameBuilder {
    /// Records of `symbol_size` that fit a frame of at most `max_frame_len` bytes.
    pub fn capacity_for(symbol_size: u16, max_frame_len: usize) -> u32 {
        let per = RECORD_OVERHEAD + usize::from(symbol_size);
        let n = max_frame_len.saturating_sub(HEADER_LEN + CHECKSUM_LEN) / per;
        (n as u32).min(MAX_SYMBOLS_PER_FRAME)
    }

    /// Frame size that fits [`DEFAULT_MAX_DATAGRAM`] with the session envelope.
    pub const DEFAULT_MAX_FRAME: usize = DEFAULT_MAX_DATAGRAM - SESSION_ENVELOPE_LEN;

    /// Start a frame. Fails if not even one record fits or the symbol size is bad.
    pub fn new(header: &FrameHeader, max_frame_len: usize) -> Result<Self, FrameError> {
        Self::new_in(header, max_frame_len, BytesMut::new())
    }

    /// Start a frame in `buf` (which must be empty); with spare capacity the
    /// frames of a whole object share one allocation (see [`FrameBuilder::finish_reuse`]).
    pub fn new_in(
        header: &FrameHeader,
        max_frame_len: usize,
        mut buf: BytesMut,
    ) -> Result<Self, FrameError> {
        let t = header.symbol_size;
        if !(MIN_SYMBOL_SIZE..=MAX_SYMBOL_SIZE).contains(&t) {
            return Err(FrameError::BadSymbolSize(t));
        }
        let capacity = Self::capacity_for(t, max_frame_len);
        if capacity == 0 {
            return Err(FrameError::FrameTooSmall(max_frame_len));
        }
        buf.clear();
        buf.reserve(encoded_len(t, capacity as usize));
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&header.flags.bits().to_le_bytes());
        buf.extend_from_slice(&[0u8; 8]); // count and payload length, set in finish
        buf.extend_from_slice(&header.object_id);
        buf.extend_from_slice(&t.to_le_bytes());
        buf.extend_from_slice(&header.zone_key_id);
        buf.extend_from_slice(&header.zone_id_hash);
        buf.extend_from_slice(&header.epoch_id.to_le_bytes());
        buf.extend_from_slice(&header.sender_instance_id.to_le_bytes());
        buf.extend_from_slice(&header.frame_seq.to_le_bytes());
        Ok(Self {
            buf,
            symbol_size: t,
            count: 0,
            capacity,
        })
    }

    /// Whether another record fits.
    pub fn has_room(&self) -> bool {
        self.count < self.capacity
    }

    /// Records so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Append a record: `plaintext` is copied into the frame and `seal` encrypts it
    /// in place, returning the tag. Returns `Ok(false)` when the frame is full.
    pub fn push_with<E>(
        &mut self,
        esi: u32,
        k: u16,
        plaintext: &[u8],
        seal: impl FnOnce(&mut [u8]) -> Result<[u8; TAG_LEN], E>,
    ) -> Result<bool, PushError<E>> {
        if !self.has_room() {
            return Ok(false);
        }
        if plaintext.len() != usize::from(self.symbol_size) {
            return Err(PushError::Frame(FrameError::BadSymbolSize(
                u16::try_from(plaintext.len()).unwrap_or(u16::MAX),
            )));
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(&esi.to_le_bytes());
        self.buf.extend_from_slice(&k.to_le_bytes());
        self.buf.extend_from_slice(plaintext);
        let ct_range = start + 6..start + 6 + plaintext.len();
        let tag = match self.buf.get_mut(ct_range) {
            Some(ct) => seal(ct).map_err(PushError::Seal)?,
            None => return Err(PushError::Frame(FrameError::Truncated(start))),
        };
        self.buf.extend_from_slice(&tag);
        self.count += 1;
        Ok(true)
    }

    /// Append an already encrypted record.
    pub fn push_sealed(
        &mut self,
        esi: u32,
        k: u16,
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<bool, FrameError> {
        self.push_with(esi, k, ciphertext, |_| Ok::<_, FrameError>(*tag))
            .map_err(|e| match e {
                PushError::Frame(f) | PushError::Seal(f) => f,
            })
    }

    /// Finish: write counts and the checksum. Fails on an empty frame.
    pub fn finish(self) -> Result<Bytes, FrameError> {
        self.finish_reuse().map(|(frame, _)| frame)
    }

    /// Finish and hand back the rest of the buffer for the next frame.
    pub fn finish_reuse(mut self) -> Result<(Bytes, BytesMut), FrameError> {
        if self.count == 0 {
            return Err(FrameError::BadSymbolCount(0));
        }
        let payload_len = (self.buf.len() - HEADER_LEN) as u32;
        if let Some(s) = self.buf.get_mut(8..12) {
            s.copy_from_slice(&self.count.to_le_bytes());
        }
        if let Some(s) = self.buf.get_mut(12..16) {
            s.copy_from_slice(&payload_len.to_le_bytes());
        }
        let sum = xxh3_64(&self.buf);
        self.buf.put_u64_le(sum);
        let frame = self.buf.split().freeze();
        Ok((frame, self.buf))
    }
}

/// Failure appending a record: a frame problem or the sealing closure's error.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError<E> {
    /// The record does not fit the frame's shape.
    Frame(FrameError),
    /// The sealing closure failed.
    Seal(E),
}
