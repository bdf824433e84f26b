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
//! sealed straight from it into one buffer holding all of an object's frames.
//! On get a chunk's whole source block except its payload bytes is predicted
//! from the root's header ([`ChunkBlockHead`]), so each source symbol is
//! decrypted straight into its place in the output (the few that overlap the
//! predicted prefix or the padding through one scratch symbol, compared
//! there) and the chunk is hashed there while hot: no per-chunk block, no
//! copy. While the root is opened and parsed (the only serial step), the
//! other core zero-fills the output and starts on the chunks in the order
//! the put path sends them, each one's prefix read from its first symbol; a
//! chunk decoded early is kept only if the manifest lists it at that index
//! and its prefix is the predicted one. A chunk that needs repair symbols,
//! or whose frames or header differ from the prediction, takes the generic
//! path instead (decoded in its own block, header parsed once per payload,
//! checked and copied), which is what decides its errors (decision 61).

use bytes::Bytes;
use fcp_core::{ObjectId, ObjectIdKey, StorageMeta, StoredObject, ZoneIdHash};
use fcp_crypto::SymbolKey;
use rayon::prelude::*;

use crate::chunk::{
    ChunkBlockHead, ChunkError, ChunkParams, ChunkPlan, ChunkedObjectManifest, PayloadMeta,
    PayloadRoot, can_merge, chunk_cv, guess_chunk_split, merged_payload_hash, parse_chunk_content,
    parse_root, raw_chunk_marker,
};
use crate::envelope::{EnvelopeError, Sealer, SymbolContext, check_header, open_ref_into};
use crate::error::WireError;
use crate::frame::{FrameBuilder, FrameRef};
use crate::object::{
    DEFAULT_REPAIR_RATIO_BPS, DEFAULT_SYMBOL_SIZE, ObjectDecoder, ObjectEncoder, Progress,
    repair_count, source_symbol_count,
};

/// Parameters of the symbol path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolParams {
    /// Symbol size `T`.
    pub symbol_size: u16,
    /// Repair symbols in basis points of `k`.
    pub repair_ratio_bps: u16,
    /// Maximum FCPS frame length.
    pub max_frame_len: usize,
    /// Chunking.
    pub chunk: ChunkParams,
}

impl Default for SymbolParams {
    fn default() -> Self {
        Self {
            symbol_size: DEFAULT_SYMBOL_SIZE,
            repair_ratio_bps: DEFAULT_REPAIR_RATIO_BPS,
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

/// Payloads up to this size are hashed in a first pass so that the manifest
/// is built and sealed alongside the chunks (the second read of the payload
/// hits the cache); larger ones do everything for a chunk in one pass and the
/// manifest last.
const OVERLAP_MANIFEST_MAX: usize = 8 << 20;

/// Frames one object of `len` content bytes will need.
pub fn frame_count(len: usize, p: &SymbolParams) -> Result<u64, WireError> {
    let k = source_symbol_count(len, p.symbol_size)?;
    let cap = u64::from(FrameBuilder::capacity_for(p.symbol_size, p.max_frame_len).max(1));
    let n = u64::from(k) + u64::from(repair_count(k, p.repair_ratio_bps));
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
        let repair = enc.repair_symbols(0, repair_count(enc.k(), p.repair_ratio_bps));
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

    /// The fast path of a chunk whose source block is
    /// `prefix || payload || zero padding` with the payload in `dst`: each
    /// source symbol is opened straight into its place in `dst`, the few that
    /// overlap the prefix or the padding through a scratch symbol, where
    /// those bytes must equal the prefix or be zero. The prefix is `known`
    /// (predicted from the root, [`ChunkBlockHead`]; the payload fills
    /// `dst`), or else read from source symbol 0, which must come first
    /// ([`guess_chunk_split`] with `marker`; the payload may be shorter than
    /// `dst`). Returns the prefix and the payload length.
    ///
    /// It runs the same checks, on the same frames in the same order, as
    /// [`Self::decode_frames`] does until it completes, so a result means the
    /// generic path would have rebuilt this very block (as chunk content, if
    /// the prefix is the predicted one). Anything else (a repair symbol
    /// needed, a duplicate, another layout, a frame or symbol that fails a
    /// check) returns `None` with `dst` partly written: the caller then runs
    /// the generic path, which rebuilds what it rebuilds and reports the
    /// errors it reports.
    fn decode_chunk_into(
        &self,
        id: ObjectId,
        k: u16,
        frames: &[Bytes],
        known: Option<&[u8]>,
        marker: &[u8],
        dst: &mut [u8],
    ) -> Option<(Vec<u8>, usize)> {
        let t = self.params.symbol_size;
        let ctx = self.zone.symbols(id, t);
        let t = usize::from(t);
        let room = dst.len();
        let fits = |off: usize, n: usize| n <= room && (off + n).div_ceil(t) == usize::from(k);
        let mut layout = known.map(|p| (p.to_vec(), room));
        if layout.as_ref().is_some_and(|(p, n)| !fits(p.len(), *n)) {
            return None;
        }
        let mut seen = vec![false; usize::from(k)];
        let mut have = 0;
        let mut scratch = vec![0u8; t];
        for f in frames {
            let frame = FrameRef::decode(f).ok()?;
            let h = frame.header();
            if check_header(h, &ctx).is_err()
                || h.sender_instance_id != self.key.sender_instance_id()
            {
                return None;
            }
            for r in frame.records() {
                // A repair symbol or a duplicate leaves the fast path.
                let seen = seen.get_mut(r.esi as usize).filter(|s| !**s)?;
                if r.k != k || r.ciphertext.len() != t {
                    return None;
                }
                let aad = fcp_crypto::symbol_aad(
                    &id,
                    r.esi,
                    k,
                    &ctx.zone_id_hash,
                    &h.zone_key_id,
                    h.epoch_id,
                );
                let open = |buf: &mut [u8]| {
                    buf.copy_from_slice(r.ciphertext);
                    self.key
                        .open_in_place(h.frame_seq, r.esi, &aad, buf, r.tag)
                        .is_ok()
                };
                let at = r.esi as usize * t;
                let opened = match &layout {
                    Some((p, n)) => {
                        let (off, end) = (p.len(), p.len() + n);
                        let dst = dst.get_mut(..*n)?;
                        if at >= off && at + t <= end {
                            dst.get_mut(at - off..at - off + t).is_some_and(open)
                        } else {
                            open(&mut scratch) && place_edge_symbol(&scratch, at, p, dst)
                        }
                    }
                    None => {
                        if r.esi != 0 || !open(&mut scratch) {
                            return None;
                        }
                        let (off, n) = guess_chunk_split(&scratch, marker)?;
                        let p = scratch.get(..off).filter(|_| fits(off, n))?.to_vec();
                        let placed = place_edge_symbol(&scratch, 0, &p, dst.get_mut(..n)?);
                        layout = Some((p, n));
                        placed
                    }
                };
                if !opened {
                    return None;
                }
                *seen = true;
                have += 1;
                if have == usize::from(k) {
                    return layout;
                }
            }
        }
        None
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
        let t = u64::from(self.params.symbol_size);
        let room: u64 = sealed.objects.iter().map(|o| u64::from(o.k) * t).sum();
        // While the root is opened and parsed (serial), the other core
        // indexes the objects, zero-fills the output at the size their blocks
        // suggest, bounded by the bytes their frames really hold (a claimed
        // `k` costs the caller nothing), and starts on the chunks: taken in
        // the order the put path sends them, at its chunk size, each one's
        // layout read from its first symbol. A chunk decoded early is kept
        // only where the manifest then agrees (that object listed at that
        // index, same chunk size and length, the predicted prefix); every
        // other slot is decoded again below.
        let others = sealed.objects.get(1..).unwrap_or_default();
        let guess = others
            .iter()
            .map(|o| (u64::from(o.k) * t).min(o.frames.iter().map(|f| f.len() as u64).sum()))
            .sum::<u64>();
        let cs_guess = self.params.chunk.chunk_size;
        let marker = raw_chunk_marker().ok();
        let (root, (mut out, by_id, early)) = rayon::join(
            || -> Result<_, PipelineError> {
                let root = self.open_object(root_enc.object_id, root_enc.k, &root_enc.frames)?;
                let parsed = parse_root(&root)?;
                Ok((parsed, ChunkBlockHead::for_root(&root.header).ok()))
            },
            || {
                let by_id: std::collections::HashMap<ObjectId, &EncodedObject> =
                    sealed.objects.iter().map(|o| (o.object_id, o)).collect();
                let mut out = zeroed(usize::try_from(guess).unwrap_or_default());
                let early: Vec<Option<EarlyChunk>> = match marker.as_deref() {
                    Some(marker) if cs_guess > 0 => out
                        .par_chunks_mut(cs_guess as usize)
                        .zip(others.par_iter())
                        // One job per chunk: a chunk is ~80 µs of work, and
                        // rayon's default halving leaves runs of several
                        // chunks that the core done with the root cannot take.
                        .with_max_len(1)
                        .enumerate()
                        .map(|(i, (dst, o))| {
                            let (prefix, n) = self.decode_chunk_into(
                                o.object_id,
                                o.k,
                                &o.frames,
                                None,
                                marker,
                                dst,
                            )?;
                            let cv = chunk_cv(dst.get(..n)?, i, cs_guess);
                            Some(EarlyChunk { prefix, cv })
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                (out, by_id, early)
            },
        );
        let (parsed, head) = root?;
        let m = match parsed {
            PayloadRoot::Inline(bytes) => return Ok(bytes),
            PayloadRoot::Manifest(m) => m,
        };
        // The chunks can hold no more than their source blocks: a manifest
        // claiming more is rejected before the output grows to it.
        let out_len = usize::try_from(m.total_len)
            .ok()
            .filter(|_| m.total_len <= room)
            .ok_or(ChunkError::BadManifest("total_len"))?;
        out.resize(out_len, 0);
        let merge = can_merge(m.total_len, m.chunk_size);
        // Chunk `i` of `n` bytes decoded early, with the predicted prefix, in
        // its slot (so the direct path would have accepted it): its cv.
        let early_cv = |i: usize, id: &ObjectId, n: usize| {
            let e = early.get(i)?.as_ref()?;
            let listed = by_id
                .get(id)
                .is_some_and(|o| others.get(i).is_some_and(|x| std::ptr::eq(*o, x)));
            let prefix = head.as_ref()?.block_prefix(n)?;
            (listed && m.chunk_size == cs_guess && e.prefix == prefix).then_some(e.cv)
        };
        // parse_root checked chunk_size > 0 and that the chunk list covers
        // total_len, so the output splits into one slot per chunk.
        let cs =
            usize::try_from(m.chunk_size).map_err(|_| ChunkError::BadManifest("chunk_size"))?;
        let header = std::sync::OnceLock::new();
        // Chunks not kept from the early pass are opened straight into their
        // place in the output when their block is the predicted one, else
        // decoded in their own source block, checked and copied there; then
        // hashed (one subtree of the payload hash) while hot.
        let finish = |(i, (dst, id)): (usize, (&mut [u8], &ObjectId))| {
            if let Some(cv) = early_cv(i, id, dst.len()) {
                return Ok(merge.then_some(cv));
            }
            let o = by_id.get(id).ok_or(PipelineError::IdMismatch(*id))?;
            let direct = head
                .as_ref()
                .and_then(|h| h.block_prefix(dst.len()))
                .and_then(|p| self.decode_chunk_into(*id, o.k, &o.frames, Some(&p), &[], dst))
                .is_some();
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
        };
        // When every chunk was kept (the common case) nothing is left to
        // decode: no second trip to the other core.
        let all_early = m.chunks.iter().enumerate().all(|(i, id)| {
            usize::try_from(m.chunk_len(i)).is_ok_and(|n| early_cv(i, id, n).is_some())
        });
        let cvs: Vec<Option<blake3::hazmat::ChainingValue>> = if all_early {
            out.chunks_mut(cs.max(1))
                .zip(&m.chunks)
                .enumerate()
                .map(finish)
                .collect::<Result<_, PipelineError>>()?
        } else {
            out.par_chunks_mut(cs.max(1))
                .zip(m.chunks.par_iter())
                .with_max_len(1)
                .enumerate()
                .map(finish)
                .collect::<Result<_, PipelineError>>()?
        };
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

/// `n` zero bytes, zero-filled on every core (safe Rust cannot skip the
/// fill; this keeps it off a single core's critical path).
fn zeroed(n: usize) -> Vec<u8> {
    const PAGE: usize = 4096;
    let pages: Vec<[u8; PAGE]> = (0..n.div_ceil(PAGE))
        .into_par_iter()
        .map(|_| [0u8; PAGE])
        .collect();
    let mut out = pages.into_flattened();
    out.truncate(n);
    out
}

/// A chunk decoded before the manifest was read: the bytes its block holds
/// before the payload, and the payload's chaining value at its guessed index.
struct EarlyChunk {
    prefix: Vec<u8>,
    cv: blake3::hazmat::ChainingValue,
}

/// Place a source symbol at block offset `at` that overlaps the predicted
/// `prefix` or the zero padding after `dst` (see
/// [`SymbolPath::decode_chunk_into`]): its prefix bytes must equal `prefix`,
/// its padding bytes must be zero (profile §4.1), its payload bytes go to
/// their place in `dst`.
fn place_edge_symbol(sym: &[u8], at: usize, prefix: &[u8], dst: &mut [u8]) -> bool {
    let (off, end, sym_end) = (prefix.len(), prefix.len() + dst.len(), at + sym.len());
    let head_ok = at >= off || sym.get(..off.min(sym_end) - at) == prefix.get(at..off.min(sym_end));
    let (from, to) = (at.max(off), sym_end.min(end));
    let body_ok = from >= to
        || match (
            dst.get_mut(from - off..to - off),
            sym.get(from - at..to - at),
        ) {
            (Some(d), Some(s)) => {
                d.copy_from_slice(s);
                true
            }
            _ => false,
        };
    let pad_ok = sym
        .get(end.max(at) - at..)
        .is_none_or(|pad| pad.iter().all(|b| *b == 0));
    head_ok && body_ok && pad_ok
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

    /// The generic path for one chunk: its bytes as chunk `i` of `m`, or an error.
    fn generic_chunk(
        p: &SymbolPath<'_>,
        m: &ChunkedObjectManifest,
        i: usize,
        o: &EncodedObject,
    ) -> Option<Vec<u8>> {
        let (block, range) = p
            .decode_frames(o.object_id, o.k, &o.frames)
            .ok()?
            .take_block()
            .ok()?;
        let content = block.get(range)?;
        let cache = std::sync::OnceLock::new();
        let bytes = parse_chunk_content(content, &cache).ok()?.body(m, i).ok()?;
        Some(bytes.to_vec())
    }

    fn chunked_fixture(
        p: &SymbolPath<'_>,
        meta: &PayloadMeta,
    ) -> (
        Vec<u8>,
        SealedPayload,
        ChunkedObjectManifest,
        ChunkBlockHead,
    ) {
        let payload: Vec<u8> = (0..4 * 65_536 + 999u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let sealed = p.put_payload(&payload, meta, &mut 0).unwrap();
        let root = p
            .open_object(sealed.root, sealed.objects[0].k, &sealed.objects[0].frames)
            .unwrap();
        let PayloadRoot::Manifest(m) = parse_root(&root).unwrap() else {
            panic!("not chunked");
        };
        let head = ChunkBlockHead::for_root(&root.header).unwrap();
        (payload, sealed, m, head)
    }

    /// The predicted block prefix is what the put path writes before each
    /// chunk's bytes, and the chunks the put path seals take the direct path.
    #[test]
    fn predicted_chunk_blocks_are_the_put_paths() {
        let (key, oik, meta) = fixture();
        let p = path(&key, &oik);
        let (payload, sealed, m, head) = chunked_fixture(&p, &meta);
        let plan = ChunkPlan::new(&payload, &meta, &oik, ChunkParams::default()).unwrap();
        for i in 0..plan.count() {
            let mut expected = (plan.content_len(i) as u32).to_le_bytes().to_vec();
            plan.with_content_parts(i, |parts| {
                for part in &parts[..parts.len() - 1] {
                    expected.extend_from_slice(part);
                }
            });
            let len = plan.chunk_bytes(i).len();
            let prefix = head.block_prefix(len).unwrap();
            assert_eq!(prefix, expected);
            let o = &sealed.objects[i + 1];
            let mut dst = vec![0u8; len];
            let known =
                p.decode_chunk_into(o.object_id, o.k, &o.frames, Some(&prefix), &[], &mut dst);
            assert_eq!(known, Some((prefix.clone(), len)));
            assert_eq!(dst, plan.chunk_bytes(i));
            assert_eq!(generic_chunk(&p, &m, i, o).unwrap(), dst);
            // Read from the first symbol instead, into a larger slot.
            let marker = raw_chunk_marker().unwrap();
            let mut slot = vec![0u8; 65_536];
            let learned =
                p.decode_chunk_into(o.object_id, o.k, &o.frames, None, &marker, &mut slot);
            assert_eq!(learned, Some((prefix, len)));
            assert_eq!(&slot[..len], plan.chunk_bytes(i));
        }
        // A lost source frame needs a repair symbol: the generic path
        // rebuilds that chunk and the get still succeeds.
        let mut lossy = sealed.clone();
        lossy.objects[2].frames.remove(3);
        let o = &lossy.objects[2];
        let prefix = head.block_prefix(65_536).unwrap();
        let mut dst = vec![0u8; 65_536];
        let direct = p.decode_chunk_into(o.object_id, o.k, &o.frames, Some(&prefix), &[], &mut dst);
        assert!(direct.is_none());
        assert_eq!(p.get_payload(&lossy).unwrap(), payload);
    }

    /// Chunks decoded before the manifest is read are kept only where it
    /// agrees: reordered objects, another chunk size or another header all
    /// still return the payload (through the direct or generic path).
    #[test]
    fn early_chunks_are_kept_only_where_the_manifest_agrees() {
        let (key, oik, meta) = fixture();
        let p = path(&key, &oik);
        let (payload, sealed, _, _) = chunked_fixture(&p, &meta);
        // Chunks in reverse order: every early slot holds another chunk.
        let mut reversed = sealed.clone();
        reversed.objects[1..].reverse();
        assert_eq!(p.get_payload(&reversed).unwrap(), payload);
        // A chunk sent twice: the early slots after it are shifted.
        let mut dup = sealed.clone();
        dup.objects.insert(3, sealed.objects[3].clone());
        assert_eq!(p.get_payload(&dup).unwrap(), payload);
        // Put with 32 KiB chunks, got with a path expecting 64 KiB ones.
        let mut small = path(&key, &oik);
        small.params.chunk.chunk_size = 32 * 1024;
        let s = small.put_payload(&payload, &meta, &mut 100).unwrap();
        assert_eq!(p.get_payload(&s).unwrap(), payload);
        // Chunks under another header than the root's: the prefix read from
        // each chunk is not the predicted one, the generic path decodes them.
        let later = PayloadMeta {
            created_at: meta.created_at + 7,
            ..meta.clone()
        };
        let other = p.put_payload(&payload, &later, &mut 200).unwrap();
        let mut mixed = sealed.clone();
        for (i, o) in other.objects.iter().enumerate().skip(1) {
            let enc = ObjectEncoder::new(
                &p.open_object(o.object_id, o.k, &o.frames)
                    .unwrap()
                    .content()
                    .unwrap(),
                p.params.symbol_size,
            )
            .unwrap();
            mixed.objects[i] = p
                .seal_encoder(sealed.objects[i].object_id, &enc, 300 + 100 * i as u64)
                .unwrap();
        }
        assert_eq!(p.get_payload(&mixed).unwrap(), payload);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever is done to a chunk's frames (bits flipped anywhere,
        /// frames dropped, repeated or reordered, another chunk's frames,
        /// another length), the direct path never panics, and when it
        /// accepts, the generic path accepts the same bytes.
        #[test]
        fn direct_path_accepts_only_what_the_generic_path_accepts(
            chunk in 0usize..5,
            as_index in 0usize..5,
            flips in proptest::collection::vec((0usize..100, 0usize..1300, 1u8..=255), 0..3),
            drop in proptest::option::of(0usize..100),
            dup in proptest::option::of(0usize..100),
            swap in proptest::option::of((0usize..100, 0usize..100)),
        ) {
            let (key, oik, meta) = fixture();
            let p = path(&key, &oik);
            let (_, sealed, m, head) = chunked_fixture(&p, &meta);
            let mut o = sealed.objects[chunk + 1].clone();
            let n = o.frames.len();
            for (f, b, x) in flips {
                let mut bytes = o.frames[f % n].to_vec();
                let at = b % bytes.len();
                bytes[at] ^= x;
                o.frames[f % n] = Bytes::from(bytes);
            }
            if let Some(d) = dup {
                let f = o.frames[d % n].clone();
                o.frames.insert(d % n, f);
            }
            if let Some((a, b)) = swap {
                let len = o.frames.len();
                o.frames.swap(a % len, b % len);
            }
            if let Some(d) = drop {
                let len = o.frames.len();
                o.frames.remove(d % len);
            }
            let len = usize::try_from(m.chunk_len(as_index)).unwrap();
            let prefix = head.block_prefix(len).unwrap();
            let mut dst = vec![0u8; len];
            let generic = generic_chunk(&p, &m, as_index, &o);
            if p.decode_chunk_into(o.object_id, o.k, &o.frames, Some(&prefix), &[], &mut dst).is_some() {
                proptest::prop_assert_eq!(&generic, &Some(dst));
            }
            // Layout read from the first symbol: kept only with the
            // predicted prefix, then the same bytes as the generic path.
            let marker = raw_chunk_marker().unwrap();
            let mut slot = vec![0u8; 65_536];
            if let Some((learned, n)) = p.decode_chunk_into(o.object_id, o.k, &o.frames, None, &marker, &mut slot)
                && head.block_prefix(n) == Some(learned)
                && n == len
            {
                proptest::prop_assert_eq!(&generic, &Some(slot[..n].to_vec()));
            }
        }

        /// Random bytes as frames and as a prefix never panic the direct path.
        #[test]
        fn direct_path_survives_random_input(
            frames in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1400), 0..4),
            prefix in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1100),
            len in 0usize..3000,
            k in 1u16..6,
        ) {
            let (key, oik, _) = fixture();
            let p = path(&key, &oik);
            let frames: Vec<Bytes> = frames.into_iter().map(Bytes::from).collect();
            let mut dst = vec![0u8; len];
            let id = ObjectId::from_bytes([1; 32]);
            let _ = p.decode_chunk_into(id, k, &frames, Some(&prefix), &[], &mut dst);
            let _ = p.decode_chunk_into(id, k, &frames, None, &prefix, &mut dst);
            let sym: Vec<u8> = prefix.iter().copied().cycle().take(1024).collect();
            for m in [&[][..], &prefix[..prefix.len().min(39)]] {
                let _ = guess_chunk_split(&sym, m);
            }
            for at in [0, 512, 1024, 2048] {
                let _ = place_edge_symbol(&sym, at, &prefix, &mut dst);
            }
        }
    }
}
