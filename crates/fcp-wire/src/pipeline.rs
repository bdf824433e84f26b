//! The whole symbol path for a payload: chunk -> RaptorQ -> seal -> frame (put),
//! and parse -> open -> decode -> reassemble (get). Chunks are independent, so
//! both directions run them in parallel on every core.
//!
//! Still sans-IO: frames come in and go out as `Bytes`; the node decides where
//! they travel.
//!
//! Cost model (`fcp bench symbols` compares this path with RaptorQ + AEAD
//! alone): beyond that work, put hashes every byte twice with BLAKE3 (the
//! chunk's keyed ObjectId and its subtree of the payload hash), get once (the
//! payload hash; chunk ids only to name a chunk after it fails, decision 58),
//! and both XXH3 every frame; everything else is kept off the per-byte path. Each
//! chunk's content is written once into its source block, source symbols are
//! sealed straight from it into one buffer holding all of an object's frames,
//! and on get each source symbol is decrypted into its place in the decoded
//! block, checked there (header parsed once per payload), hashed and copied
//! once into the output.

use bytes::Bytes;
use fcp_core::{ObjectId, ObjectIdKey, StorageMeta, StoredObject, ZoneIdHash};
use fcp_crypto::SymbolKey;
use rayon::prelude::*;

use crate::chunk::{
    ChunkError, ChunkParams, ChunkPlan, ChunkedObjectManifest, PayloadMeta, PayloadRoot, can_merge,
    chunk_cv, merged_payload_hash, parse_chunk_content, parse_root,
};
use crate::envelope::{EnvelopeError, Sealer, SymbolContext, open_ref_into};
use crate::error::WireError;
use crate::frame::{FrameBuilder, FrameHeader, FrameRef};
use crate::object::{
    DEFAULT_REPAIR_RATIO_BPS, DEFAULT_SYMBOL_SIZE, LEN_PREFIX, ObjectDecoder, ObjectEncoder,
    Progress, repair_count, source_symbol_count,
};

/// Parameters of the symbol path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolParams {
    /// Symbol size `T`.
    pub symbol_size: u16,
    /// Repair symbols in basis points of `k`.
    pub repair_ratio_bps: u16,
    /// Repair symbols made beyond the ratio's count (a placement's loss
    /// margin; 0 by default).
    pub extra_repair: u16,
    /// Maximum FCPS frame length.
    pub max_frame_len: usize,
    /// Chunking.
    pub chunk: ChunkParams,
}

impl SymbolParams {
    /// Repair symbols made for an object of `k` source symbols.
    pub fn repair_for(&self, k: u16) -> u32 {
        repair_count(k, self.repair_ratio_bps).saturating_add(u32::from(self.extra_repair))
    }
}

impl Default for SymbolParams {
    fn default() -> Self {
        Self {
            symbol_size: DEFAULT_SYMBOL_SIZE,
            repair_ratio_bps: DEFAULT_REPAIR_RATIO_BPS,
            extra_repair: 0,
            max_frame_len: FrameBuilder::DEFAULT_MAX_FRAME,
            chunk: ChunkParams::default(),
        }
    }
}

/// Zone-level context shared by every object of a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneContext {
    /// Zone hash.
    pub zone_id_hash: ZoneIdHash,
    /// Zone key id.
    pub zone_key_id: [u8; 8],
    /// Epoch.
    pub epoch_id: u64,
}

impl ZoneContext {
    fn symbols(&self, object_id: ObjectId, t: u16) -> SymbolContext {
        SymbolContext {
            object_id,
            zone_id_hash: self.zone_id_hash,
            zone_key_id: self.zone_key_id,
            epoch_id: self.epoch_id,
            symbol_size: t,
        }
    }
}

/// One object's sealed frames.
#[derive(Clone, Debug)]
pub struct EncodedObject {
    /// The object.
    pub object_id: ObjectId,
    /// Source symbols.
    pub k: u16,
    /// Its frames, source symbols first.
    pub frames: Vec<Bytes>,
}

/// Path failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Chunking or reassembly.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// Sealing or opening.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// RaptorQ.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Object encoding.
    #[error(transparent)]
    Object(#[from] fcp_core::object::ObjectError),
    /// Rebuilt content does not hash to the requested id.
    #[error("rebuilt object does not match id {0}")]
    IdMismatch(ObjectId),
}

impl fcp_core::HasErrorCode for PipelineError {
    fn error_code(&self) -> fcp_core::ErrorCode {
        match self {
            Self::Chunk(e) => e.error_code(),
            Self::Envelope(e) => e.error_code(),
            Self::Wire(e) => e.error_code(),
            Self::Object(e) => e.error_code(),
            Self::IdMismatch(_) => fcp_core::ErrorCode::ObjectIdMismatch,
        }
    }
}

/// Payloads up to this size stay in cache. On put they are hashed in a first
/// pass so that the manifest is built and sealed alongside the chunks (the
/// second read of the payload hits the cache); larger ones do everything for
/// a chunk in one pass and the manifest last. On get their output is
/// zero-filled on every core ([`zeroed`]).
const OVERLAP_MANIFEST_MAX: usize = 8 << 20;

/// Frames one object of `len` content bytes will need.
pub fn frame_count(len: usize, p: &SymbolParams) -> Result<u64, WireError> {
    let k = source_symbol_count(len, p.symbol_size)?;
    let cap = u64::from(FrameBuilder::capacity_for(p.symbol_size, p.max_frame_len).max(1));
    let n = u64::from(k) + u64::from(p.repair_for(k));
    Ok(n.div_ceil(cap))
}

/// Keys and parameters of one sender's symbol path for one zone.
#[derive(Debug, Clone, Copy)]
pub struct SymbolPath<'a> {
    /// The sender's symbol key (sealing) or the key of the sender being read.
    pub key: &'a SymbolKey,
    /// The zone's ObjectIdKey.
    pub object_id_key: &'a ObjectIdKey,
    /// Zone hash, key id and epoch.
    pub zone: ZoneContext,
    /// Symbol and chunk parameters.
    pub params: SymbolParams,
    /// Storage policy given to rebuilt objects.
    pub storage: StorageMeta,
}

/// A payload sealed for the mesh: the root id and every object's frames.
#[derive(Clone, Debug)]
pub struct SealedPayload {
    /// Root object (RawChunk or manifest).
    pub root: ObjectId,
    /// Root first, then chunks in order.
    pub objects: Vec<EncodedObject>,
}

impl SymbolPath<'_> {
    fn seal_encoder(
        &self,
        id: ObjectId,
        enc: &ObjectEncoder,
        mut seq: u64,
    ) -> Result<EncodedObject, PipelineError> {
        let p = &self.params;
        // Source symbols straight from the encoder's source block, then repair.
        let repair = enc.repair_symbols(0, p.repair_for(enc.k()));
        let symbols: Vec<(u32, &[u8])> = enc
            .source_slices()
            .chain(repair.iter().map(|(esi, d)| (*esi, d.as_slice())))
            .collect();
        let frames = Sealer::new(self.key, self.zone.symbols(id, p.symbol_size))
            .with_max_frame_len(p.max_frame_len)
            .seal(enc.k(), &symbols, &mut seq)?;
        Ok(EncodedObject {
            object_id: id,
            k: enc.k(),
            frames,
        })
    }

    /// Reserve disjoint, contiguous frame_seq ranges for objects of these
    /// content lengths, so parallel sealing never reuses a nonce.
    fn reserve_seqs(
        &self,
        lens: impl Iterator<Item = usize>,
        frame_seq: &mut u64,
    ) -> Result<Vec<u64>, PipelineError> {
        let mut starts = Vec::new();
        for len in lens {
            starts.push(*frame_seq);
            *frame_seq = frame_seq.wrapping_add(frame_count(len, &self.params)?);
        }
        Ok(starts)
    }

    /// Encode and seal many objects' contents in parallel. Frame sequence
    /// numbers are assigned in order from `*frame_seq` without gaps or reuse.
    pub fn seal_objects(
        &self,
        objects: &[(ObjectId, Vec<u8>)],
        frame_seq: &mut u64,
    ) -> Result<Vec<EncodedObject>, PipelineError> {
        let starts = self.reserve_seqs(objects.iter().map(|(_, c)| c.len()), frame_seq)?;
        objects
            .par_iter()
            .zip(starts.par_iter())
            .map(|((id, content), start)| {
                let enc = ObjectEncoder::new(content, self.params.symbol_size)?;
                self.seal_encoder(*id, &enc, *start)
            })
            .collect()
    }

    /// The put path: plan the chunks (Appendix B), then write each chunk's
    /// content straight into its RaptorQ source block, encode and seal, all
    /// chunks in parallel, and the manifest (if any): for payloads that stay
    /// in cache the chunk ids and payload hash are computed first so the
    /// manifest is built alongside the chunks, otherwise it comes last. Frame
    /// sequence numbers go to the chunks in order, then to the manifest.
    pub fn put_payload(
        &self,
        payload: &[u8],
        meta: &PayloadMeta,
        frame_seq: &mut u64,
    ) -> Result<SealedPayload, PipelineError> {
        // One trip into the thread pool for the whole path.
        let overlap = payload.len() <= OVERLAP_MANIFEST_MAX;
        rayon::scope(|_| self.put_payload_in_pool(payload, meta, frame_seq, overlap))
    }

    fn put_payload_in_pool(
        &self,
        payload: &[u8],
        meta: &PayloadMeta,
        frame_seq: &mut u64,
        overlap: bool,
    ) -> Result<SealedPayload, PipelineError> {
        let plan = ChunkPlan::new(payload, meta, self.object_id_key, self.params.chunk)?;
        let starts =
            self.reserve_seqs((0..plan.count()).map(|i| plan.content_len(i)), frame_seq)?;
        let t = self.params.symbol_size;
        // Chunk `i`'s content goes straight into its source block, then encode and seal.
        let seal_chunk = |i: usize, start: u64, id: Option<ObjectId>| {
            let enc = plan.with_content_parts(i, |parts| ObjectEncoder::from_parts(parts, t))?;
            let id = id.unwrap_or_else(|| plan.chunk_id(enc.object()));
            self.seal_encoder(id, &enc, start)
        };
        if !plan.is_chunked() {
            let chunk = seal_chunk(0, starts.first().copied().unwrap_or_default(), None)?;
            return Ok(SealedPayload {
                root: chunk.object_id,
                objects: vec![chunk],
            });
        }
        let merge = can_merge(plan.payload_len(), plan.chunk_size());
        if overlap {
            // The payload stays in cache: hash every chunk first (ids and
            // payload-hash subtrees), then build and seal the manifest on one
            // core while the chunks are encoded and sealed on the others.
            let hashes: Vec<(ObjectId, Option<blake3::hazmat::ChainingValue>)> = (0..plan.count())
                .into_par_iter()
                .map(|i| plan.chunk_hashes(i, merge))
                .collect();
            let ids: Vec<ObjectId> = hashes.iter().map(|(id, _)| *id).collect();
            let cvs: Vec<_> = hashes.iter().filter_map(|(_, cv)| *cv).collect();
            let hash = merged_payload_hash(&cvs, plan.payload_len(), plan.chunk_size())
                .unwrap_or_else(|| crate::chunk::payload_hash(payload));
            let (root, content) = plan.manifest_content(ids.clone(), hash)?;
            let mstart = self.reserve_seqs(std::iter::once(content.len()), frame_seq)?;
            let (manifest, chunks) = rayon::join(
                || -> Result<EncodedObject, PipelineError> {
                    let enc = ObjectEncoder::new(&content, t)?;
                    self.seal_encoder(root, &enc, mstart.first().copied().unwrap_or_default())
                },
                || {
                    starts
                        .par_iter()
                        .zip(ids.par_iter())
                        .enumerate()
                        .map(|(i, (start, id))| seal_chunk(i, *start, Some(*id)))
                        .collect::<Result<Vec<_>, PipelineError>>()
                },
            );
            let mut objects = vec![manifest?];
            objects.extend(chunks?);
            return Ok(SealedPayload { root, objects });
        }
        // Large payloads: one pass per chunk while it is hot (id, payload-hash
        // subtree, encode, seal), the manifest last.
        let sealed: Vec<(EncodedObject, Option<blake3::hazmat::ChainingValue>)> = starts
            .par_iter()
            .enumerate()
            .map(|(i, start)| {
                let cv = merge.then(|| chunk_cv(plan.chunk_bytes(i), i, plan.chunk_size()));
                Ok((seal_chunk(i, *start, None)?, cv))
            })
            .collect::<Result<_, PipelineError>>()?;
        let cvs: Vec<_> = sealed.iter().filter_map(|(_, cv)| *cv).collect();
        let chunks: Vec<EncodedObject> = sealed.into_iter().map(|(o, _)| o).collect();
        let ids = chunks.iter().map(|c| c.object_id).collect();
        let hash = merged_payload_hash(&cvs, plan.payload_len(), plan.chunk_size())
            .unwrap_or_else(|| crate::chunk::payload_hash(payload));
        let (root, content) = plan.manifest_content(ids, hash)?;
        let mstart = self.reserve_seqs(std::iter::once(content.len()), frame_seq)?;
        let enc = ObjectEncoder::new(&content, t)?;
        let mut objects =
            vec![self.seal_encoder(root, &enc, mstart.first().copied().unwrap_or_default())?];
        objects.extend(chunks);
        Ok(SealedPayload { root, objects })
    }

    /// Parse, check and open frames of object `id` until its decoder completes.
    fn decode_frames(
        &self,
        id: ObjectId,
        k: u16,
        frames: &[Bytes],
    ) -> Result<ObjectDecoder, PipelineError> {
        let t = self.params.symbol_size;
        let ctx = self.zone.symbols(id, t);
        let mut dec = ObjectDecoder::new(k, t)?;
        for f in frames {
            let frame = FrameRef::decode(f).map_err(WireError::from)?;
            crate::envelope::check_header(frame.header(), &ctx)?;
            if open_ref_into(&frame, self.key, &mut dec)? == Progress::Complete {
                break;
            }
        }
        Ok(dec)
    }

    /// Parse the object header at the start of `o`'s first source symbol
    /// into `cache`, if it holds one: [`Self::decode_chunk_into`] needs it
    /// before any chunk is decoded. A hint only: any failure leaves `cache`
    /// empty, and the cache is a pure function of the header bytes, whichever
    /// object they came from.
    fn learn_chunk_header(
        &self,
        o: &EncodedObject,
        cache: &std::sync::OnceLock<crate::chunk::ChunkHeaderCache>,
    ) {
        let t = self.params.symbol_size;
        let ctx = self.zone.symbols(o.object_id, t);
        let Some(frame) = o.frames.first().and_then(|f| FrameRef::decode(f).ok()) else {
            return;
        };
        let h = frame.header();
        let Some(r) = frame.records().next().filter(|r| r.esi == 0 && r.k == o.k) else {
            return;
        };
        let mut first = vec![0u8; r.ciphertext.len()];
        if crate::envelope::check_header(h, &ctx).is_err()
            || crate::envelope::check_sealer(h, self.key).is_err()
            || crate::envelope::open_record(self.key, h, &r, &mut first).is_err()
        {
            return;
        }
        let len = first
            .get(..LEN_PREFIX)
            .and_then(|p| <[u8; 4]>::try_from(p).ok())
            .map_or(0, |p| u32::from_le_bytes(p) as usize);
        let end = LEN_PREFIX.saturating_add(len).min(first.len());
        if let Some(content) = first.get(LEN_PREFIX..end) {
            let _ = parse_chunk_content(content, cache);
        }
    }

    /// Decode a chunk's bytes straight into `dst`, when its frames carry
    /// every source symbol before any repair symbol and its content is
    /// `prefix || dst` (`prefix`: what a chunk with the payload's chunk
    /// header and `dst.len()` bytes starts with, see
    /// [`crate::chunk::ChunkHeaderCache::raw_chunk_prefix`]). A source
    /// symbol wholly inside the chunk's bytes is decrypted in place in `dst`;
    /// one across an edge is decrypted aside, and its bytes outside must be
    /// the length prefix, `prefix` and zero padding. That is the decoder's
    /// and [`parse_chunk_content`]'s checks without the source block and its
    /// copy (decision 64). `Ok(false)`: the chunk is not of that shape (a
    /// symbol missing or repeated, a repair symbol first, other content);
    /// `dst` is then unspecified and the caller decodes as usual. Frame,
    /// context and AEAD failures are the errors the decoder would give.
    fn decode_chunk_into(
        &self,
        id: ObjectId,
        k: u16,
        frames: &[Bytes],
        prefix: &[u8],
        dst: &mut [u8],
    ) -> Result<bool, PipelineError> {
        let t = usize::from(self.params.symbol_size);
        let kk = usize::from(k);
        // Block: u32le(content length) || prefix || dst || zero padding.
        let start = LEN_PREFIX + prefix.len();
        let end = start + dst.len();
        let Ok(content_len) = u32::try_from(end - LEN_PREFIX) else {
            return Ok(false);
        };
        if k == 0 || k > crate::object::MAX_K || end > kk * t {
            return Ok(false);
        }
        let mut head = content_len.to_le_bytes().to_vec();
        head.extend_from_slice(prefix);
        let ctx = self.zone.symbols(id, self.params.symbol_size);
        // The source symbols with their frames' headers.
        let mut source: Vec<Option<(FrameHeader, crate::frame::RecordRef<'_>)>> = vec![None; kk];
        let mut have = 0;
        'frames: for f in frames {
            // Like the decoder, nothing after the last source symbol is read.
            if have == kk {
                break;
            }
            let frame = FrameRef::decode(f).map_err(WireError::from)?;
            let h = frame.header();
            crate::envelope::check_header(h, &ctx)?;
            crate::envelope::check_sealer(h, self.key)?;
            for r in frame.records() {
                if have == kk {
                    break 'frames;
                }
                if r.k != k {
                    return Err(WireError::KMismatch {
                        expected: k,
                        got: r.k,
                    }
                    .into());
                }
                match source.get_mut(r.esi as usize) {
                    Some(slot @ None) if r.ciphertext.len() == t => {
                        *slot = Some((*h, r));
                        have += 1;
                    }
                    _ => return Ok(false),
                }
            }
        }
        if have < kk {
            return Ok(false);
        }
        let mut aside = vec![0u8; t];
        for (j, s) in source.iter().enumerate() {
            let Some((h, r)) = s else {
                return Ok(false);
            };
            let at = j * t;
            if let Some(buf) = at
                .checked_sub(start)
                .filter(|_| at + t <= end)
                .and_then(|d| dst.get_mut(d..d + t))
            {
                crate::envelope::open_record(self.key, h, r, buf)?;
                continue;
            }
            crate::envelope::open_record(self.key, h, r, &mut aside)?;
            // The symbol's parts: head [at, h_end), chunk bytes [h_end, b_end)
            // and padding [b_end, at + t); start <= end keeps them in order.
            let (h_end, b_end) = (start.clamp(at, at + t), end.clamp(at, at + t));
            let head_ok = h_end == at || aside.get(..h_end - at) == head.get(at..h_end);
            let pad_ok = aside
                .get(b_end - at..)
                .is_some_and(|pad| pad.iter().all(|b| *b == 0));
            if !(head_ok && pad_ok) {
                return Ok(false);
            }
            if b_end > h_end {
                let (Some(d), Some(s)) = (
                    dst.get_mut(h_end - start..b_end - start),
                    aside.get(h_end - at..b_end - at),
                ) else {
                    return Ok(false);
                };
                d.copy_from_slice(s);
            }
        }
        Ok(true)
    }

    /// Decode one object from its frames (any order, any subset holding at
    /// least `k` symbols) and check its id.
    pub fn open_object(
        &self,
        id: ObjectId,
        k: u16,
        frames: &[Bytes],
    ) -> Result<StoredObject, PipelineError> {
        let content = self.decode_frames(id, k, frames)?.take()?;
        let obj = StoredObject::from_content_vec(content, self.storage, self.object_id_key)?;
        if obj.object_id != id {
            return Err(PipelineError::IdMismatch(id));
        }
        Ok(obj)
    }

    /// The get path for a sealed payload: decode the root, then every chunk in
    /// parallel, and reassemble with the payload hash checked.
    ///
    /// Each chunk's content is checked for shape (RawChunk schema, canonical
    /// body, length) but its ObjectId is derived only if the payload hash
    /// fails, to name the chunk: the root's id binds the manifest and so its
    /// `payload_hash`, which binds every returned byte (decision 58).
    pub fn get_payload(&self, sealed: &SealedPayload) -> Result<Vec<u8>, PipelineError> {
        // One trip into the thread pool for the whole path.
        rayon::scope(|_| self.get_payload_in_pool(sealed))
    }

    fn get_payload_in_pool(&self, sealed: &SealedPayload) -> Result<Vec<u8>, PipelineError> {
        let root_enc = sealed
            .objects
            .first()
            .filter(|o| o.object_id == sealed.root)
            .ok_or(PipelineError::IdMismatch(sealed.root))?;
        // The only serial step: on one side the root is opened and parsed,
        // and the chunks' header learned from the first symbol of the first
        // other object (so every chunk can decode in place); on the other the
        // output is zero-filled ([`zeroed`]), which takes longer, at the most
        // the chunk objects can hold: each no more than its source block and
        // no more than its frames' bytes, so a claimed `k` costs nothing here.
        let t = u64::from(self.params.symbol_size);
        let bound: u64 = sealed
            .objects
            .iter()
            .filter(|o| o.object_id != sealed.root)
            .map(|o| (u64::from(o.k) * t).min(o.frames.iter().map(|f| f.len() as u64).sum()))
            .sum();
        let header = std::sync::OnceLock::<crate::chunk::ChunkHeaderCache>::new();
        let (root, mut out) = rayon::join(
            || {
                let root = self.open_object(root_enc.object_id, root_enc.k, &root_enc.frames)?;
                let parsed = parse_root(&root)?;
                if let (PayloadRoot::Manifest(_), Some(o)) = (&parsed, sealed.objects.get(1)) {
                    self.learn_chunk_header(o, &header);
                }
                Ok::<_, PipelineError>(parsed)
            },
            || zeroed(usize::try_from(bound).unwrap_or(0)),
        );
        let m = match root? {
            PayloadRoot::Inline(bytes) => return Ok(bytes),
            PayloadRoot::Manifest(m) => m,
        };
        // The chunks can hold no more than their source blocks: a manifest
        // claiming more is rejected before the output grows to it.
        let room: u64 = sealed.objects.iter().map(|o| u64::from(o.k) * t).sum();
        let out_len = usize::try_from(m.total_len)
            .ok()
            .filter(|_| m.total_len <= room)
            .ok_or(ChunkError::BadManifest("total_len"))?;
        out.resize(out_len, 0);
        let by_id: std::collections::HashMap<ObjectId, &EncodedObject> =
            sealed.objects.iter().map(|o| (o.object_id, o)).collect();
        let merge = can_merge(m.total_len, m.chunk_size);
        // parse_root checked chunk_size > 0 and that the chunk list covers
        // total_len, so the output splits into one slot per chunk.
        let cs =
            usize::try_from(m.chunk_size).map_err(|_| ChunkError::BadManifest("chunk_size"))?;
        // Each chunk is decoded in its own source block, checked, hashed (one
        // subtree of the payload hash) and copied to its place while hot.
        let cvs: Vec<Option<blake3::hazmat::ChainingValue>> = out
            .par_chunks_mut(cs.max(1))
            .zip(m.chunks.par_iter())
            .enumerate()
            .map(|(i, (dst, id))| {
                let o = by_id.get(id).ok_or(PipelineError::IdMismatch(*id))?;
                // Once a chunk's header is parsed, the others that carry it
                // and all their source symbols decrypt straight into place.
                let direct = match header.get().and_then(|h| h.raw_chunk_prefix(dst.len())) {
                    Some(prefix) => self.decode_chunk_into(*id, o.k, &o.frames, &prefix, dst)?,
                    None => false,
                };
                if !direct {
                    let (block, range) = self.decode_frames(*id, o.k, &o.frames)?.take_block()?;
                    let content = block.get(range).unwrap_or_default();
                    let bytes = parse_chunk_content(content, &header)?.body(&m, i)?;
                    if bytes.len() != dst.len() {
                        return Err(ChunkError::BadManifest("total_len").into());
                    }
                    dst.copy_from_slice(bytes);
                }
                Ok(merge.then(|| chunk_cv(dst, i, m.chunk_size)))
            })
            .collect::<Result<_, PipelineError>>()?;
        if cvs.len() != m.chunks.len() {
            return Err(ChunkError::BadManifest("total_len").into());
        }
        // Same check as the streaming `reassemble`.
        let cvs: Vec<_> = cvs.into_iter().flatten().collect();
        let hash = merged_payload_hash(&cvs, m.total_len, m.chunk_size)
            .unwrap_or_else(|| crate::chunk::payload_hash(&out));
        if hash != m.payload_hash {
            return Err(self.blame_chunk(&m, &by_id));
        }
        Ok(out)
    }

    /// After a payload-hash mismatch: the error of the first listed chunk
    /// whose rebuilt content does not derive its listed id, else the
    /// mismatch itself (the manifest's hash does not match its own chunks).
    /// Each distinct id is checked once, on every core.
    fn blame_chunk(
        &self,
        m: &ChunkedObjectManifest,
        by_id: &std::collections::HashMap<ObjectId, &EncodedObject>,
    ) -> PipelineError {
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<&ObjectId> = m.chunks.iter().filter(|id| seen.insert(**id)).collect();
        ids.par_iter()
            .find_map_first(|id| {
                let o = by_id.get(*id)?;
                self.open_object(**id, o.k, &o.frames).err()
            })
            .unwrap_or_else(|| ChunkError::PayloadHash.into())
    }
}

/// `n` zero bytes. Safe Rust cannot skip the fill: for a payload that stays
/// in cache it is filled (and page-faulted) on every core, as it was the
/// longest serial step of a 1 MiB get, rayon's collect writing the bytes
/// straight into the result in 64 KiB runs (one pass; collecting 4 KiB
/// arrays wrote each page twice). A larger one is left to the allocator,
/// whose fresh pages are zero already and fault in as the chunks are written.
fn zeroed(n: usize) -> Vec<u8> {
    if n > OVERLAP_MANIFEST_MAX {
        return vec![0u8; n];
    }
    (0..n)
        .into_par_iter()
        .with_min_len(64 * 1024)
        .map(|_| 0u8)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use fcp_core::object::RetentionClass;
    use fcp_core::provenance::TaintFlags;
    use fcp_core::{Provenance, ZoneId};
    use fcp_crypto::AeadAlgorithm;

    fn fixture() -> (SymbolKey, ObjectIdKey, PayloadMeta) {
        let key =
            SymbolKey::derive(AeadAlgorithm::ChaCha20Poly1305, &[1; 32], [2; 8], "n", 7).unwrap();
        let storage = StorageMeta {
            retention: RetentionClass::Ephemeral,
        };
        let meta = PayloadMeta {
            zone_id: ZoneId::private(),
            created_at: 1,
            provenance: Provenance::new(ZoneId::private(), 80, 80, TaintFlags::NONE, 1),
            storage,
        };
        (key, ObjectIdKey::from_bytes([3; 32]), meta)
    }

    fn path<'a>(key: &'a SymbolKey, oik: &'a ObjectIdKey) -> SymbolPath<'a> {
        SymbolPath {
            key,
            object_id_key: oik,
            zone: ZoneContext {
                zone_id_hash: ZoneId::private().hash(),
                zone_key_id: [2; 8],
                epoch_id: 1,
            },
            params: SymbolParams::default(),
            storage: StorageMeta {
                retention: RetentionClass::Ephemeral,
            },
        }
    }

    /// The manifest the put path writes is the one `ChunkPlan::manifest`
    /// builds (same content bytes, same id), and every chunk id is the
    /// StoredObject id of its chunk.
    #[test]
    fn put_objects_match_the_generic_builders() {
        let (key, oik, meta) = fixture();
        let payload: Vec<u8> = (0..700_001u32)
            .map(|i| (i * 13 + (i >> 10)) as u8)
            .collect();
        let p = path(&key, &oik);
        let sealed = p.put_payload(&payload, &meta, &mut 0).unwrap();
        let chunked =
            crate::chunk::chunk_payload(&payload, &meta, &oik, ChunkParams::default()).unwrap();
        assert_eq!(sealed.root, chunked.root.object_id);
        let ids: Vec<ObjectId> = sealed.objects.iter().skip(1).map(|o| o.object_id).collect();
        let expected: Vec<ObjectId> = chunked.chunks.iter().map(|c| c.object_id).collect();
        assert_eq!(ids, expected);
        let root = p.open_object(sealed.root, sealed.objects[0].k, &sealed.objects[0].frames);
        assert_eq!(root.unwrap(), chunked.root);
    }

    /// Both put strategies write the same frames.
    #[test]
    fn put_strategies_agree() {
        let (key, oik, meta) = fixture();
        let p = path(&key, &oik);
        let payload: Vec<u8> = (0..400_000u32).map(|i| (i * 7 + (i >> 12)) as u8).collect();
        let (mut s1, mut s2) = (5u64, 5u64);
        let a = p
            .put_payload_in_pool(&payload, &meta, &mut s1, true)
            .unwrap();
        let b = p
            .put_payload_in_pool(&payload, &meta, &mut s2, false)
            .unwrap();
        assert_eq!(s1, s2);
        assert_eq!(a.root, b.root);
        assert_eq!(a.objects.len(), b.objects.len());
        for (x, y) in a.objects.iter().zip(&b.objects) {
            assert_eq!((x.object_id, x.k, &x.frames), (y.object_id, y.k, &y.frames));
        }
        assert_eq!(p.get_payload(&b).unwrap(), payload);
    }

    /// Chunks of identical content share an id; a corrupted or foreign
    /// object in the speculative slot is ignored unless the manifest lists it.
    #[test]
    fn get_ignores_unlisted_objects_and_catches_bad_chunks() {
        let (key, oik, meta) = fixture();
        let p = path(&key, &oik);
        let payload = vec![9u8; 5 * 65_536 + 17];
        let sealed = p.put_payload(&payload, &meta, &mut 0).unwrap();
        assert_eq!(p.get_payload(&sealed).unwrap(), payload);

        // A stranger object at index 1 (before the real chunks).
        let other = p.put_payload(&[1u8; 300_000], &meta, &mut 1000).unwrap();
        let mut with_stranger = sealed.clone();
        with_stranger.objects.insert(1, other.objects[1].clone());
        assert_eq!(p.get_payload(&with_stranger).unwrap(), payload);

        // The same stranger with a broken frame: still unused, still fine.
        let mut broken = other.objects[1].clone();
        let mut f = broken.frames[0].to_vec();
        f[200] ^= 1;
        broken.frames[0] = Bytes::from(f);
        let mut with_broken = sealed.clone();
        with_broken.objects.insert(1, broken);
        assert_eq!(p.get_payload(&with_broken).unwrap(), payload);

        // A listed chunk with a flipped bit fails (frame checksum).
        let payload: Vec<u8> = (0..5 * 65_536 + 17u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let sealed = p.put_payload(&payload, &meta, &mut 0).unwrap();
        assert_eq!(p.get_payload(&sealed).unwrap(), payload);
        let mut bad = sealed.clone();
        let mut f = bad.objects[2].frames[0].to_vec();
        f[300] ^= 1;
        bad.objects[2].frames[0] = Bytes::from(f);
        assert!(p.get_payload(&bad).is_err());

        // A listed chunk replaced by another object under its id fails the id check.
        let mut swapped = p.put_payload(&payload, &meta, &mut 5000).unwrap();
        let id = swapped.objects[1].object_id;
        swapped.objects[1] = EncodedObject {
            object_id: id,
            ..other.objects[1].clone()
        };
        assert!(p.get_payload(&swapped).is_err());
    }

    /// Decision 64: a chunk with every source symbol first and the learned
    /// header decodes in place; anything else is declined (`Ok(false)`) so
    /// the decoder takes it, and the whole get still returns the payload.
    /// A forged symbol is still an AEAD error.
    #[test]
    fn chunks_decode_in_place_or_decline() {
        let (key, oik, meta) = fixture();
        let p = path(&key, &oik);
        let payload: Vec<u8> = (0..5 * 65_536 + 999u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let sealed = p.put_payload(&payload, &meta, &mut 0).unwrap();
        let header = std::sync::OnceLock::new();
        p.learn_chunk_header(&sealed.objects[1], &header);
        let h = header.get().expect("the first chunk's header is learned");
        let get = |o: &EncodedObject, len: usize| {
            let mut dst = vec![0u8; len];
            let prefix = h.raw_chunk_prefix(len).unwrap();
            p.decode_chunk_into(o.object_id, o.k, &o.frames, &prefix, &mut dst)
                .map(|ok| ok.then_some(dst))
        };
        // Every chunk, the short last one too, decodes in place.
        for (i, o) in sealed.objects[1..].iter().enumerate() {
            let want = &payload[i * 65_536..payload.len().min((i + 1) * 65_536)];
            assert_eq!(
                get(o, want.len()).unwrap().as_deref(),
                Some(want),
                "chunk {i}"
            );
        }
        let chunk = &sealed.objects[2];
        // Another length than the content's: declined.
        assert_eq!(get(chunk, 65_535).unwrap(), None);
        // A source symbol missing, repeated, or after a repair symbol: declined.
        let variants: [fn(&mut Vec<Bytes>); 3] = [
            |f| {
                f.remove(5);
            },
            |f| {
                let first = f[0].clone();
                f.insert(1, first);
            },
            |f| {
                let last = f.len() - 1;
                f.swap(0, last);
            },
        ];
        for (n, change) in variants.iter().enumerate() {
            let mut o = chunk.clone();
            change(&mut o.frames);
            assert_eq!(get(&o, 65_536).unwrap(), None, "variant {n}");
            let mut s = sealed.clone();
            s.objects[2] = o;
            assert_eq!(p.get_payload(&s).unwrap(), payload, "variant {n}");
        }
        // Frames after the last source symbol are not read, as by the decoder.
        // (One record per frame: frame k holds the first repair symbol.)
        let mut o = chunk.clone();
        let next = usize::from(o.k);
        let mut f = o.frames[next].to_vec();
        f[10] ^= 1;
        o.frames[next] = Bytes::from(f);
        assert!(get(&o, 65_536).unwrap().is_some());
        // A flipped ciphertext bit (checksum recomputed): AEAD error.
        let mut o = chunk.clone();
        let mut f = o.frames[9].to_vec();
        f[crate::frame::HEADER_LEN + 20] ^= 1;
        let body = f.len() - crate::frame::CHECKSUM_LEN;
        let sum = crate::frame::checksum(&f[..body]);
        f[body..].copy_from_slice(&sum);
        o.frames[9] = Bytes::from(f);
        assert!(matches!(get(&o, 65_536), Err(PipelineError::Envelope(_))));
    }

    /// Decision 58: a zone member who seals other bytes under a listed
    /// chunk's id passes AEAD and the shape checks; the payload hash catches
    /// it and the error names that chunk. Same bytes under another header
    /// are the committed payload and are returned.
    #[test]
    fn forged_chunk_content_is_caught_by_the_payload_hash_and_named() {
        let (key, oik, meta) = fixture();
        let p = path(&key, &oik);
        let payload: Vec<u8> = (0..4 * 65_536 + 100u32).map(|i| (i % 251) as u8).collect();
        let sealed = p.put_payload(&payload, &meta, &mut 0).unwrap();
        let target = sealed.objects[2].clone();
        let reseal = |content: Vec<u8>, seq: u64| {
            let enc = ObjectEncoder::new(&content, p.params.symbol_size).unwrap();
            p.seal_encoder(target.object_id, &enc, seq).unwrap()
        };

        // Other bytes of the same length, sealed under the listed id.
        let mut other = payload.clone();
        other[65_536 + 5] ^= 0x55;
        let o = p.put_payload(&other, &meta, &mut 10_000).unwrap();
        let forged_obj = p
            .open_object(o.objects[2].object_id, o.objects[2].k, &o.objects[2].frames)
            .unwrap();
        let mut forged = sealed.clone();
        forged.objects[2] = reseal(forged_obj.content().unwrap(), 20_000);
        match p.get_payload(&forged) {
            Err(PipelineError::IdMismatch(id)) => assert_eq!(id, target.object_id),
            other => panic!("expected IdMismatch of the forged chunk, got {other:?}"),
        }

        // The same bytes under another header (created_at differs): the
        // payload is what the root commits to, so it is returned.
        let later = PayloadMeta {
            created_at: meta.created_at + 1,
            ..meta
        };
        let l = p.put_payload(&payload, &later, &mut 30_000).unwrap();
        let same_bytes = p
            .open_object(l.objects[2].object_id, l.objects[2].k, &l.objects[2].frames)
            .unwrap();
        assert_ne!(same_bytes.object_id, target.object_id);
        let mut rewrapped = sealed.clone();
        rewrapped.objects[2] = reseal(same_bytes.content().unwrap(), 40_000);
        assert_eq!(p.get_payload(&rewrapped).unwrap(), payload);
    }
}
