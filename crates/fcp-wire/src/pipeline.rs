//! The whole symbol path for a payload: chunk -> RaptorQ -> seal -> frame (put),
//! and parse -> open -> decode -> reassemble (get). Chunks are independent, so
//! both directions run them in parallel on every core.
//!
//! Still sans-IO: frames come in and go out as `Bytes`; the node decides where
//! they travel.

use bytes::Bytes;
use fcp_core::{ObjectId, ObjectIdKey, StorageMeta, StoredObject, ZoneIdHash};
use fcp_crypto::SymbolKey;
use rayon::prelude::*;

use crate::chunk::{
    ChunkError, ChunkParams, ChunkPlan, PayloadMeta, PayloadRoot, can_merge, chunk_cv,
    merged_payload_hash, parse_root,
};
use crate::envelope::{EnvelopeError, Sealer, SymbolContext, open_into};
use crate::error::WireError;
use crate::frame::{Frame, FrameBuilder};
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
        let symbols = enc.all_symbols(p.repair_ratio_bps);
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
    /// chunks in parallel; the manifest (if any) last.
    pub fn put_payload(
        &self,
        payload: &[u8],
        meta: &PayloadMeta,
        frame_seq: &mut u64,
    ) -> Result<SealedPayload, PipelineError> {
        let plan = ChunkPlan::new(payload, meta, self.object_id_key, self.params.chunk)?;
        let starts =
            self.reserve_seqs((0..plan.count()).map(|i| plan.content_len(i)), frame_seq)?;
        let merge = plan.is_chunked() && can_merge(plan.payload_len(), plan.chunk_size());
        let sealed: Vec<(EncodedObject, Option<blake3::hazmat::ChainingValue>)> = starts
            .par_iter()
            .enumerate()
            .map(|(i, start)| {
                let mut id = ObjectId::from_bytes([0; 32]);
                let enc = ObjectEncoder::with_content(
                    plan.content_len(i),
                    self.params.symbol_size,
                    |buf| {
                        id = plan.write_content(i, buf);
                    },
                )?;
                // The payload hash, one subtree per chunk while it is hot.
                let cv = merge.then(|| chunk_cv(plan.chunk_bytes(i), i, plan.chunk_size()));
                Ok((self.seal_encoder(id, &enc, *start)?, cv))
            })
            .collect::<Result<_, PipelineError>>()?;
        let cvs: Vec<_> = sealed.iter().filter_map(|(_, cv)| *cv).collect();
        let chunks: Vec<EncodedObject> = sealed.into_iter().map(|(o, _)| o).collect();
        if !plan.is_chunked() {
            let root = chunks
                .first()
                .map(|c| c.object_id)
                .ok_or(ChunkError::Params("no chunk"))?;
            return Ok(SealedPayload {
                root,
                objects: chunks,
            });
        }
        let ids = chunks.iter().map(|c| c.object_id).collect();
        let manifest = match merged_payload_hash(&cvs, plan.payload_len(), plan.chunk_size()) {
            Some(h) => plan.manifest_with_hash(ids, h)?,
            None => plan.manifest(ids)?,
        };
        let content = manifest
            .content()
            .map_err(fcp_core::object::ObjectError::from)?;
        let mut objects = self.seal_objects(&[(manifest.object_id, content)], frame_seq)?;
        objects.extend(chunks);
        Ok(SealedPayload {
            root: manifest.object_id,
            objects,
        })
    }

    /// Decode one object from its frames (any order, any subset holding at
    /// least `k` symbols) and check its id.
    pub fn open_object(
        &self,
        id: ObjectId,
        k: u16,
        frames: &[Bytes],
    ) -> Result<StoredObject, PipelineError> {
        let t = self.params.symbol_size;
        let ctx = self.zone.symbols(id, t);
        let mut dec = ObjectDecoder::new(k, t)?;
        for f in frames {
            let frame = Frame::decode(f.clone()).map_err(WireError::from)?;
            crate::envelope::check_context(&frame, &ctx)?;
            if open_into(&frame, self.key, &mut dec)? == Progress::Complete {
                break;
            }
        }
        let content = dec.take()?;
        let obj = StoredObject::from_content_vec(content, self.storage, self.object_id_key)?;
        if obj.object_id != id {
            return Err(PipelineError::IdMismatch(id));
        }
        Ok(obj)
    }

    /// The get path for a sealed payload: decode the root, then every chunk in
    /// parallel, and reassemble with the payload hash checked.
    pub fn get_payload(&self, sealed: &SealedPayload) -> Result<Vec<u8>, PipelineError> {
        let open = |o: &EncodedObject| self.open_object(o.object_id, o.k, &o.frames);
        let root_enc = sealed
            .objects
            .first()
            .filter(|o| o.object_id == sealed.root)
            .ok_or(PipelineError::IdMismatch(sealed.root))?;
        match parse_root(&open(root_enc)?)? {
            PayloadRoot::Inline(bytes) => Ok(bytes),
            PayloadRoot::Manifest(m) => {
                let by_id: std::collections::HashMap<ObjectId, &EncodedObject> =
                    sealed.objects.iter().map(|o| (o.object_id, o)).collect();
                let merge = can_merge(m.total_len, m.chunk_size);
                let chunks: Vec<(StoredObject, Option<blake3::hazmat::ChainingValue>)> = m
                    .chunks
                    .par_iter()
                    .enumerate()
                    .map(|(i, id)| {
                        let obj = open(by_id.get(id).ok_or(PipelineError::IdMismatch(*id))?)?;
                        // Checked and hashed (one subtree of the payload hash) while hot.
                        let cv = {
                            let bytes = crate::chunk::check_chunk(&m, i, &obj)?;
                            merge.then(|| chunk_cv(bytes, i, m.chunk_size))
                        };
                        Ok((obj, cv))
                    })
                    .collect::<Result<_, PipelineError>>()?;
                let mut out = Vec::with_capacity(usize::try_from(m.total_len).unwrap_or(0));
                for (i, (c, _)) in chunks.iter().enumerate() {
                    out.extend_from_slice(crate::chunk::check_chunk(&m, i, c)?);
                }
                if out.len() as u64 != m.total_len {
                    return Err(ChunkError::BadManifest("total_len").into());
                }
                // Same check as the streaming `reassemble`.
                let cvs: Vec<_> = chunks.iter().filter_map(|(_, cv)| *cv).collect();
                let hash = merged_payload_hash(&cvs, m.total_len, m.chunk_size)
                    .unwrap_or_else(|| crate::chunk::payload_hash(&out));
                if hash != m.payload_hash {
                    return Err(ChunkError::PayloadHash.into());
                }
                Ok(out)
            }
        }
    }
}
