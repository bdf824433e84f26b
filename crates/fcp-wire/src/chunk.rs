//! Chunked objects (spec Appendix B, profile §4.1).
//!
//! A payload of at most `max_chunk_threshold` bytes is stored as one `RawChunk`
//! object. A larger payload becomes `RawChunk` objects of `chunk_size` bytes (the
//! last may be shorter) and a `ChunkedObjectManifest` that lists them in order,
//! holds strong refs to them (so GC keeps them alive) and the BLAKE3 hash of the
//! whole payload. Both are ordinary StoredObjects with their own schemas.
//!
//! Reassembly streams chunk by chunk, so memory is bounded by a chunk, not by
//! the payload; a byte range fetches only the chunks it overlaps.

use std::io::Write;

use fcp_core::object::ObjectError;
use fcp_core::{
    ErrorCode, HasErrorCode, ObjectHeader, ObjectId, ObjectIdKey, Provenance, SchemaId,
    StorageMeta, StoredObject, ZoneId,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// BLAKE3 of a whole payload, hashed on every core for large inputs.
pub fn payload_hash(payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    if payload.len() >= 1 << 20 {
        h.update_rayon(payload);
    } else {
        h.update(payload);
    }
    *h.finalize().as_bytes()
}

/// Schema of a raw chunk.
pub const RAW_CHUNK_SCHEMA: &str = "fcp.core:RawChunk@1.0.0";
/// Schema of a chunk manifest.
pub const MANIFEST_SCHEMA: &str = "fcp.core:ChunkedObjectManifest@1.0.0";
/// Default `max_chunk_threshold` (Appendix B): 256 KiB.
pub const DEFAULT_MAX_CHUNK_THRESHOLD: u32 = 256 * 1024;
/// Default `chunk_size` (Appendix B): 64 KiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest payload accepted (Appendix B `max_object_size` is 64 MB; we allow
/// larger files but bound the manifest: 2^20 chunks of 64 KiB = 64 GiB).
pub const MAX_CHUNKS: usize = 1 << 20;

/// Chunking parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkParams {
    /// Payloads above this many bytes are chunked.
    pub max_chunk_threshold: u32,
    /// Bytes per chunk (except the last).
    pub chunk_size: u32,
}

impl Default for ChunkParams {
    fn default() -> Self {
        Self {
            max_chunk_threshold: DEFAULT_MAX_CHUNK_THRESHOLD,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// Body of a `RawChunk` object: `{"bytes": bstr}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawChunk {
    /// The chunk's bytes.
    #[serde(with = "fcp_core::cbor::bytes")]
    pub bytes: Vec<u8>,
}

impl RawChunk {
    /// `{"bytes": h'...'}` map header: map(1), text(5) "bytes".
    const PREFIX: [u8; 7] = [0xa1, 0x65, b'b', b'y', b't', b'e', b's'];

    /// Canonical CBOR of `{"bytes": bytes}` written directly (profile §2): the
    /// shape is fixed, so this is the serde encoding without its copies. A test
    /// checks it against the generic encoder.
    pub fn encode_cbor(bytes: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&Self::PREFIX);
        let (head, n) = bstr_head(bytes.len() as u64);
        out.extend_from_slice(head.get(..n).unwrap_or_default());
        out.extend_from_slice(bytes);
    }

    /// Parse canonical `{"bytes": h'...'}` and borrow the bytes; anything else
    /// (other keys, non-shortest lengths, trailing bytes) is rejected.
    pub fn decode_cbor(cbor: &[u8]) -> Result<&[u8], ChunkError> {
        let bad = ChunkError::Object(ObjectError::Cbor(fcp_core::CborError::TypeMismatch(
            "not a canonical RawChunk body".into(),
        )));
        let rest = cbor
            .strip_prefix(&Self::PREFIX[..])
            .ok_or_else(|| bad_clone(&bad))?;
        let (&ib, rest) = rest.split_first().ok_or_else(|| bad_clone(&bad))?;
        let (len, rest, min) = match ib {
            0x40..=0x57 => (u64::from(ib - 0x40), rest, 0u64),
            0x58 => {
                let (b, r) = rest
                    .split_first_chunk::<1>()
                    .ok_or_else(|| bad_clone(&bad))?;
                (u64::from(b[0]), r, 24)
            }
            0x59 => {
                let (b, r) = rest
                    .split_first_chunk::<2>()
                    .ok_or_else(|| bad_clone(&bad))?;
                (u64::from(u16::from_be_bytes(*b)), r, 0x100)
            }
            0x5a => {
                let (b, r) = rest
                    .split_first_chunk::<4>()
                    .ok_or_else(|| bad_clone(&bad))?;
                (u64::from(u32::from_be_bytes(*b)), r, 0x1_0000)
            }
            0x5b => {
                let (b, r) = rest
                    .split_first_chunk::<8>()
                    .ok_or_else(|| bad_clone(&bad))?;
                (u64::from_be_bytes(*b), r, 0x1_0000_0000)
            }
            _ => return Err(bad),
        };
        if len < min || len != rest.len() as u64 {
            return Err(bad);
        }
        Ok(rest)
    }
}

fn bad_clone(e: &ChunkError) -> ChunkError {
    match e {
        ChunkError::Object(o) => ChunkError::Object(o.clone()),
        _ => ChunkError::BadManifest("raw chunk"),
    }
}

/// The bytes of a RawChunk object (schema checked, body parsed without copies).
pub fn raw_chunk_bytes(obj: &StoredObject) -> Result<&[u8], ChunkError> {
    let s = obj.header.schema.to_string();
    if s != RAW_CHUNK_SCHEMA {
        return Err(ChunkError::NotAPayload(s));
    }
    let cbor = fcp_core::object::split_body(&obj.header.schema.hash(), &obj.body)?;
    RawChunk::decode_cbor(cbor)
}

/// Body of a `ChunkedObjectManifest` (Appendix B).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkedObjectManifest {
    /// Total payload length.
    pub total_len: u64,
    /// Bytes per chunk except the last.
    pub chunk_size: u32,
    /// Chunk object ids in order.
    pub chunks: Vec<ObjectId>,
    /// BLAKE3 of the whole payload.
    #[serde(with = "fcp_core::cbor::byte_array")]
    pub payload_hash: [u8; 32],
}

/// Chunking and reassembly failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// Object construction or decoding failed.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// Parameters out of range.
    #[error("invalid chunk parameters: {0}")]
    Params(&'static str),
    /// Payload too large for one manifest.
    #[error("payload of {0} bytes needs more than {MAX_CHUNKS} chunks")]
    TooLarge(u64),
    /// The root object is neither a RawChunk nor a manifest.
    #[error("object schema {0} is not a payload root")]
    NotAPayload(String),
    /// The manifest is internally inconsistent.
    #[error("inconsistent manifest: {0}")]
    BadManifest(&'static str),
    /// A chunk has the wrong id, schema or length.
    #[error("chunk {index} is invalid: {why}")]
    BadChunk {
        /// Chunk index.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// The reassembled payload does not hash to `payload_hash`.
    #[error("payload hash mismatch")]
    PayloadHash,
    /// Range outside the payload.
    #[error("range {start}..{end} outside payload of {len} bytes")]
    Range {
        /// Start.
        start: u64,
        /// End (exclusive).
        end: u64,
        /// Payload length.
        len: u64,
    },
    /// Fetching a chunk failed.
    #[error("fetching chunk {index}: {message}")]
    Fetch {
        /// Chunk index.
        index: usize,
        /// The fetcher's message.
        message: String,
        /// The fetcher's code.
        code: ErrorCode,
    },
    /// Writing the output failed.
    #[error("writing payload: {0}")]
    Io(#[from] std::io::Error),
}

impl HasErrorCode for ChunkError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Object(e) => e.error_code(),
            Self::Params(_) | Self::Range { .. } => ErrorCode::InvalidArgument,
            Self::TooLarge(_) => ErrorCode::ResourceLimit,
            Self::NotAPayload(_) => ErrorCode::SchemaHashMismatch,
            Self::BadManifest(_) | Self::BadChunk { .. } | Self::PayloadHash => {
                ErrorCode::ObjectCorrupt
            }
            Self::Fetch { code, .. } => *code,
            Self::Io(_) => ErrorCode::Internal,
        }
    }
}

fn schema(s: &str) -> Result<SchemaId, ChunkError> {
    SchemaId::parse(s).map_err(|_| ChunkError::Params("built-in schema id"))
}

/// What every object of one payload shares.
#[derive(Clone, Debug)]
pub struct PayloadMeta {
    /// Zone of the payload.
    pub zone_id: ZoneId,
    /// Creation time (unix seconds; a parameter, not read from a clock).
    pub created_at: u64,
    /// Provenance of the payload.
    pub provenance: Provenance,
    /// Storage policy for every object.
    pub storage: StorageMeta,
}

impl PayloadMeta {
    fn header(&self, schema: SchemaId, refs: Vec<ObjectId>) -> ObjectHeader {
        ObjectHeader {
            schema,
            zone_id: self.zone_id.clone(),
            created_at: self.created_at,
            provenance: self.provenance.clone(),
            refs,
            ttl_secs: None,
            placement: None,
        }
    }
}

/// A payload as objects: the root (what a user's ObjectId names) and its chunks.
#[derive(Clone, Debug)]
pub struct ChunkedPayload {
    /// RawChunk (small payload) or ChunkedObjectManifest.
    pub root: StoredObject,
    /// The chunks in order (empty for a small payload).
    pub chunks: Vec<StoredObject>,
}

/// BLAKE3 chaining value of chunk `index` of a payload, as a subtree of the
/// payload's BLAKE3 tree (`chunk_size` a power of two >= 1024), so the payload
/// hash can be computed chunk by chunk on every core while each chunk is hot.
pub fn chunk_cv(bytes: &[u8], index: usize, chunk_size: u32) -> blake3::hazmat::ChainingValue {
    use blake3::hazmat::HasherExt;
    blake3::Hasher::new()
        .set_input_offset(index as u64 * u64::from(chunk_size))
        .update(bytes)
        .finalize_non_root()
}

/// Whether [`merged_payload_hash`] applies: more than one chunk, power-of-two
/// chunks of at least one BLAKE3 chunk.
pub fn can_merge(total_len: u64, chunk_size: u32) -> bool {
    chunk_size.is_power_of_two() && chunk_size >= 1024 && total_len > u64::from(chunk_size)
}

/// BLAKE3 of the whole payload from its chunks' chaining values (same result
/// as [`payload_hash`]; `None` when [`can_merge`] is false or `cvs` do not
/// cover `total_len`).
pub fn merged_payload_hash(
    cvs: &[blake3::hazmat::ChainingValue],
    total_len: u64,
    chunk_size: u32,
) -> Option<[u8; 32]> {
    use blake3::hazmat::{Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};
    if !can_merge(total_len, chunk_size)
        || total_len.div_ceil(u64::from(chunk_size)) != cvs.len() as u64
    {
        return None;
    }
    let cs = u64::from(chunk_size);
    // The left subtree of any range longer than one chunk is a power of two
    // >= chunk_size, so every split falls on a chunk boundary.
    fn subtree(
        cvs: &[blake3::hazmat::ChainingValue],
        first: usize,
        len: u64,
        cs: u64,
    ) -> Option<blake3::hazmat::ChainingValue> {
        if len <= cs {
            return cvs.get(first).copied();
        }
        let left = left_subtree_len(len);
        let l = subtree(cvs, first, left, cs)?;
        let r = subtree(cvs, first + (left / cs) as usize, len - left, cs)?;
        Some(merge_subtrees_non_root(&l, &r, Mode::Hash))
    }
    let left = left_subtree_len(total_len);
    let l = subtree(cvs, 0, left, cs)?;
    let r = subtree(cvs, (left / cs) as usize, total_len - left, cs)?;
    Some(*merge_subtrees_root(&l, &r, Mode::Hash).as_bytes())
}

/// The layout of a payload's RawChunk objects, computed once: every chunk
/// shares one header, so its canonical CBOR is encoded once and each chunk's
/// content (profile §3) can be written straight into whatever buffer needs it
/// (a StoredObject body, or a RaptorQ source block on the put path).
#[derive(Debug)]
pub struct ChunkPlan<'a> {
    payload: &'a [u8],
    meta: &'a PayloadMeta,
    key: &'a ObjectIdKey,
    params: ChunkParams,
    raw_hash: fcp_core::SchemaHash,
    zone_hash: fcp_core::ZoneIdHash,
    chunk_header: ObjectHeader,
    header_cbor: Vec<u8>,
}

/// Shortest-form CBOR head of a byte string of `n` bytes (RFC 8949 §4.2.1).
fn bstr_head(n: u64) -> ([u8; 9], usize) {
    let mut h = [0u8; 9];
    let len = match n {
        0..=23 => {
            h[0] = 0x40 | n as u8;
            1
        }
        24..=0xff => {
            h[0] = 0x58;
            h[1] = n as u8;
            2
        }
        0x100..=0xffff => {
            h[0] = 0x59;
            h[1..3].copy_from_slice(&(n as u16).to_be_bytes());
            3
        }
        0x1_0000..=0xffff_ffff => {
            h[0] = 0x5a;
            h[1..5].copy_from_slice(&(n as u32).to_be_bytes());
            5
        }
        _ => {
            h[0] = 0x5b;
            h[1..9].copy_from_slice(&n.to_be_bytes());
            9
        }
    };
    (h, len)
}

impl<'a> ChunkPlan<'a> {
    /// Plan the objects of `payload` (Appendix B).
    pub fn new(
        payload: &'a [u8],
        meta: &'a PayloadMeta,
        key: &'a ObjectIdKey,
        params: ChunkParams,
    ) -> Result<Self, ChunkError> {
        if params.chunk_size == 0 || params.chunk_size > params.max_chunk_threshold {
            return Err(ChunkError::Params(
                "need 0 < chunk_size <= max_chunk_threshold",
            ));
        }
        if payload.len().div_ceil(params.chunk_size as usize) > MAX_CHUNKS {
            return Err(ChunkError::TooLarge(payload.len() as u64));
        }
        let raw = schema(RAW_CHUNK_SCHEMA)?;
        let chunk_header = meta.header(raw.clone(), Vec::new());
        let header_cbor = fcp_core::to_canonical(&chunk_header).map_err(ObjectError::from)?;
        Ok(Self {
            payload,
            meta,
            key,
            params,
            raw_hash: raw.hash(),
            zone_hash: meta.zone_id.hash(),
            chunk_header,
            header_cbor,
        })
    }

    /// Chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.params.chunk_size
    }

    /// Payload length.
    pub fn payload_len(&self) -> u64 {
        self.payload.len() as u64
    }

    /// Whether the payload needs a manifest (it exceeds `max_chunk_threshold`).
    pub fn is_chunked(&self) -> bool {
        self.payload.len() as u64 > u64::from(self.params.max_chunk_threshold)
    }

    /// Number of RawChunk objects (one for an unchunked payload).
    pub fn count(&self) -> usize {
        if self.is_chunked() {
            self.payload.len().div_ceil(self.params.chunk_size as usize)
        } else {
            1
        }
    }

    /// Payload bytes of chunk `i`.
    pub fn chunk_bytes(&self, i: usize) -> &'a [u8] {
        if !self.is_chunked() {
            return self.payload;
        }
        let cs = self.params.chunk_size as usize;
        let start = (i * cs).min(self.payload.len());
        let end = (start + cs).min(self.payload.len());
        self.payload.get(start..end).unwrap_or_default()
    }

    /// Length of chunk `i`'s content.
    pub fn content_len(&self, i: usize) -> usize {
        self.with_content_parts(i, |parts| parts.iter().map(|p| p.len()).sum())
    }

    /// Chunk `i`'s content as its pieces, `"FCP2-OBJECT-V1" || cbor(header) ||
    /// SchemaHash || {"bytes": bstr}` (profile §3), handed to `f`; the last
    /// piece is the chunk's payload bytes.
    pub fn with_content_parts<R>(&self, i: usize, f: impl FnOnce(&[&[u8]]) -> R) -> R {
        let bytes = self.chunk_bytes(i);
        let (head, hl) = bstr_head(bytes.len() as u64);
        f(&[
            fcp_core::ids::domain::OBJECT_CONTENT,
            &self.header_cbor,
            self.raw_hash.as_bytes(),
            &RawChunk::PREFIX,
            head.get(..hl).unwrap_or_default(),
            bytes,
        ])
    }

    /// Chunk `i`'s ObjectId and (with `cv`) its payload-hash chaining value,
    /// hashed straight from the payload without building its content.
    pub fn chunk_hashes(
        &self,
        i: usize,
        cv: bool,
    ) -> (ObjectId, Option<blake3::hazmat::ChainingValue>) {
        self.with_content_parts(i, |parts| {
            let (bytes, head): (&[u8], &[&[u8]]) = match parts.split_last() {
                Some((b, h)) => (b, h),
                None => (&[], parts),
            };
            let id = crate::objectid::object_id_split(
                &head.concat(),
                bytes,
                &self.zone_hash,
                &self.raw_hash,
                self.key,
            );
            (id, cv.then(|| chunk_cv(bytes, i, self.params.chunk_size)))
        })
    }

    /// ObjectId of a RawChunk of this plan from its content bytes.
    pub fn chunk_id(&self, content: &[u8]) -> ObjectId {
        crate::objectid::object_id(content, &self.zone_hash, &self.raw_hash, self.key)
    }

    /// Write chunk `i`'s content into `out` (`out.len() == content_len(i)`)
    /// and return its ObjectId.
    pub fn write_content(&self, i: usize, out: &mut [u8]) -> ObjectId {
        let at = self.with_content_parts(i, |parts| {
            let mut at = 0;
            for p in parts {
                if let Some(dst) = out.get_mut(at..at + p.len()) {
                    dst.copy_from_slice(p);
                }
                at += p.len();
            }
            at
        });
        self.chunk_id(out.get(..at).unwrap_or_default())
    }

    /// Chunk `i` as a StoredObject.
    pub fn chunk_object(&self, i: usize) -> StoredObject {
        let mut content = vec![0u8; self.content_len(i)];
        let object_id = self.write_content(i, &mut content);
        let body_at = content.len() - (self.content_len(i) - self.header_len());
        StoredObject {
            object_id,
            header: self.chunk_header.clone(),
            body: content.split_off(body_at),
            storage: self.meta.storage,
        }
    }

    fn header_len(&self) -> usize {
        fcp_core::ids::domain::OBJECT_CONTENT.len() + self.header_cbor.len()
    }

    /// The manifest over chunks with these ids (chunked payloads only).
    pub fn manifest(&self, ids: Vec<ObjectId>) -> Result<StoredObject, ChunkError> {
        self.manifest_with_hash(ids, payload_hash(self.payload))
    }

    /// The manifest's content bytes (profile §3) and ObjectId, encoded once:
    /// the same bytes and id as `manifest_with_hash(ids, payload_hash)`
    /// gives through [`StoredObject::content`].
    pub fn manifest_content(
        &self,
        ids: Vec<ObjectId>,
        payload_hash: [u8; 32],
    ) -> Result<(ObjectId, Vec<u8>), ChunkError> {
        let manifest = ChunkedObjectManifest {
            total_len: self.payload.len() as u64,
            chunk_size: self.params.chunk_size,
            chunks: ids,
            payload_hash,
        };
        let schema = schema(MANIFEST_SCHEMA)?;
        let schema_hash = schema.hash();
        let body = fcp_core::object::encode_body(&schema, &manifest).map_err(ObjectError::from)?;
        let header = self.meta.header(schema, manifest.chunks);
        let content = StoredObject::canonical_bytes(&header, &body).map_err(ObjectError::from)?;
        let id = crate::objectid::object_id(&content, &self.zone_hash, &schema_hash, self.key);
        Ok((id, content))
    }

    /// [`ChunkPlan::manifest`] with a payload hash the caller computed (e.g.
    /// merged from per-chunk chaining values).
    pub fn manifest_with_hash(
        &self,
        ids: Vec<ObjectId>,
        payload_hash: [u8; 32],
    ) -> Result<StoredObject, ChunkError> {
        let manifest = ChunkedObjectManifest {
            total_len: self.payload.len() as u64,
            chunk_size: self.params.chunk_size,
            chunks: ids.clone(),
            payload_hash,
        };
        Ok(StoredObject::from_value(
            self.meta.header(schema(MANIFEST_SCHEMA)?, ids),
            &manifest,
            self.meta.storage,
            self.key,
        )?)
    }
}

/// Split a payload into objects per Appendix B.
pub fn chunk_payload(
    payload: &[u8],
    meta: &PayloadMeta,
    key: &ObjectIdKey,
    params: ChunkParams,
) -> Result<ChunkedPayload, ChunkError> {
    let plan = ChunkPlan::new(payload, meta, key, params)?;
    if !plan.is_chunked() {
        return Ok(ChunkedPayload {
            root: plan.chunk_object(0),
            chunks: Vec::new(),
        });
    }
    // Chunks are independent: build (and hash) them on every core.
    let chunks: Vec<StoredObject> = (0..plan.count())
        .into_par_iter()
        .map(|i| plan.chunk_object(i))
        .collect();
    let root = plan.manifest(chunks.iter().map(|c| c.object_id).collect())?;
    Ok(ChunkedPayload { root, chunks })
}

/// What a payload root object holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadRoot {
    /// The whole payload (small).
    Inline(Vec<u8>),
    /// A manifest of chunks.
    Manifest(ChunkedObjectManifest),
}

/// Interpret a root object, checking the manifest's internal consistency.
pub fn parse_root(root: &StoredObject) -> Result<PayloadRoot, ChunkError> {
    let s = root.header.schema.to_string();
    if s == RAW_CHUNK_SCHEMA {
        return Ok(PayloadRoot::Inline(raw_chunk_bytes(root)?.to_vec()));
    }
    if s != MANIFEST_SCHEMA {
        return Err(ChunkError::NotAPayload(s));
    }
    let m: ChunkedObjectManifest = root.decode_body()?;
    if m.chunk_size == 0 {
        return Err(ChunkError::BadManifest("chunk_size is 0"));
    }
    if m.chunks.len() > MAX_CHUNKS {
        return Err(ChunkError::BadManifest("too many chunks"));
    }
    if m.total_len.div_ceil(u64::from(m.chunk_size)) != m.chunks.len() as u64 {
        return Err(ChunkError::BadManifest(
            "chunk count does not match total_len",
        ));
    }
    if root.header.refs != m.chunks {
        return Err(ChunkError::BadManifest(
            "header refs differ from chunk list",
        ));
    }
    Ok(PayloadRoot::Manifest(m))
}

impl ChunkedObjectManifest {
    /// Expected length of chunk `i`.
    pub fn chunk_len(&self, i: usize) -> u64 {
        let start = i as u64 * u64::from(self.chunk_size);
        self.total_len
            .saturating_sub(start)
            .min(u64::from(self.chunk_size))
    }
}

/// Check one fetched chunk against the manifest (id, schema, length) and
/// borrow its bytes.
pub fn check_chunk<'o>(
    m: &ChunkedObjectManifest,
    index: usize,
    obj: &'o StoredObject,
) -> Result<&'o [u8], ChunkError> {
    if m.chunks.get(index) != Some(&obj.object_id) {
        return Err(ChunkError::BadChunk {
            index,
            why: "object id differs from the manifest",
        });
    }
    let bytes = raw_chunk_bytes(obj).map_err(|_| ChunkError::BadChunk {
        index,
        why: "not a canonical RawChunk",
    })?;
    if bytes.len() as u64 != m.chunk_len(index) {
        return Err(ChunkError::BadChunk {
            index,
            why: "wrong length",
        });
    }
    Ok(bytes)
}

/// The parsed object header of a payload's chunks, shared by every chunk that
/// carries the same header bytes (a payload's chunks normally all do), so the
/// canonical CBOR header is parsed and checked once per payload, not per chunk.
#[derive(Clone, Debug)]
pub struct ChunkHeaderCache {
    /// The header's canonical CBOR, as it appears in the content.
    cbor: Vec<u8>,
    zone_hash: fcp_core::ZoneIdHash,
    schema_hash: fcp_core::SchemaHash,
    is_raw_chunk: bool,
}

/// A rebuilt chunk's parsed content: its header hashes and body.
#[derive(Clone, Copy, Debug)]
pub struct ChunkContent<'c> {
    /// The whole content (profile §3 content bytes), for [`Self::object_id`].
    content: &'c [u8],
    zone_hash: fcp_core::ZoneIdHash,
    schema_hash: fcp_core::SchemaHash,
    /// The CBOR body (after the schema hash prefix).
    cbor: &'c [u8],
    is_raw_chunk: bool,
}

/// Parse a rebuilt object's content (profile §3 content bytes) without
/// building a StoredObject: the same checks as [`StoredObject::from_content`]
/// (canonical header, schema hash prefix). The ObjectId is derived only on
/// request ([`ChunkContent::object_id`]): a whole-payload get checks the
/// payload hash instead (decision 58).
///
/// `cache` holds the first parsed header; content whose header bytes equal it
/// reuses the parse (parsing is a function of those bytes), any other header
/// is parsed in full.
pub fn parse_chunk_content<'c>(
    content: &'c [u8],
    cache: &std::sync::OnceLock<ChunkHeaderCache>,
) -> Result<ChunkContent<'c>, ChunkError> {
    let domain = fcp_core::ids::domain::OBJECT_CONTENT;
    let after_domain = content.strip_prefix(domain);
    let hit = cache
        .get()
        .filter(|c| after_domain.is_some_and(|r| r.starts_with(&c.cbor)));
    let fresh;
    let (hdr, body) = match hit {
        Some(c) => {
            let body = after_domain
                .and_then(|r| r.get(c.cbor.len()..))
                .ok_or(ChunkError::BadManifest("chunk header"))?;
            (c, body)
        }
        None => {
            let (header, body) = StoredObject::parse_content(content)?;
            let cbor_len = content.len() - body.len() - domain.len();
            fresh = ChunkHeaderCache {
                cbor: content
                    .get(domain.len()..domain.len() + cbor_len)
                    .unwrap_or_default()
                    .to_vec(),
                zone_hash: header.zone_id.hash(),
                schema_hash: header.schema.hash(),
                is_raw_chunk: header.schema.to_string() == RAW_CHUNK_SCHEMA,
            };
            let _ = cache.set(fresh.clone());
            (&fresh, body)
        }
    };
    let cbor = fcp_core::object::split_body(&hdr.schema_hash, body)?;
    Ok(ChunkContent {
        content,
        zone_hash: hdr.zone_hash,
        schema_hash: hdr.schema_hash,
        cbor,
        is_raw_chunk: hdr.is_raw_chunk,
    })
}

impl ChunkHeaderCache {
    /// The content bytes before a RawChunk's `len` bytes when the chunk
    /// carries this header: content domain, header CBOR, schema hash,
    /// `{"bytes":` and the byte string's head. `None` if this header is not
    /// a RawChunk's.
    pub fn raw_chunk_prefix(&self, len: usize) -> Option<Vec<u8>> {
        if !self.is_raw_chunk {
            return None;
        }
        let domain = fcp_core::ids::domain::OBJECT_CONTENT;
        let (head, n) = bstr_head(len as u64);
        let mut out = Vec::with_capacity(domain.len() + self.cbor.len() + 32 + 7 + n);
        out.extend_from_slice(domain);
        out.extend_from_slice(&self.cbor);
        out.extend_from_slice(self.schema_hash.as_bytes());
        out.extend_from_slice(&RawChunk::PREFIX);
        out.extend_from_slice(head.get(..n)?);
        Some(out)
    }
}

impl<'c> ChunkContent<'c> {
    /// The ObjectId of this content under the zone's ObjectIdKey.
    pub fn object_id(&self, key: &ObjectIdKey) -> ObjectId {
        crate::objectid::object_id(self.content, &self.zone_hash, &self.schema_hash, key)
    }

    /// The chunk's bytes, checked as chunk `index` of `m`: RawChunk schema,
    /// canonical body, length per the manifest. Not its id: see
    /// [`Self::object_id`].
    pub fn body(&self, m: &ChunkedObjectManifest, index: usize) -> Result<&'c [u8], ChunkError> {
        let bad = || ChunkError::BadChunk {
            index,
            why: "not a canonical RawChunk",
        };
        if !self.is_raw_chunk {
            return Err(bad());
        }
        let bytes = RawChunk::decode_cbor(self.cbor).map_err(|_| bad())?;
        if bytes.len() as u64 != m.chunk_len(index) {
            return Err(ChunkError::BadChunk {
                index,
                why: "wrong length",
            });
        }
        Ok(bytes)
    }
}

/// A chunk fetcher: returns the verified StoredObject with this id (its id must
/// have been checked against its content with the zone's ObjectIdKey).
pub trait FetchChunk {
    /// The fetcher's error.
    type Error: HasErrorCode + std::fmt::Display;
    /// Fetch one chunk object.
    fn fetch(&mut self, id: &ObjectId) -> Result<StoredObject, Self::Error>;
}

impl<E, F> FetchChunk for F
where
    F: FnMut(&ObjectId) -> Result<StoredObject, E>,
    E: HasErrorCode + std::fmt::Display,
{
    type Error = E;
    fn fetch(&mut self, id: &ObjectId) -> Result<StoredObject, E> {
        self(id)
    }
}

fn fetch_checked<F: FetchChunk>(
    m: &ChunkedObjectManifest,
    index: usize,
    fetch: &mut F,
) -> Result<Vec<u8>, ChunkError> {
    let id = m
        .chunks
        .get(index)
        .ok_or(ChunkError::BadManifest("chunk index"))?;
    let obj = fetch.fetch(id).map_err(|e| ChunkError::Fetch {
        index,
        message: e.to_string(),
        code: e.error_code(),
    })?;
    check_chunk(m, index, &obj).map(<[u8]>::to_vec)
}

/// Stream the whole payload into `out`, one chunk in memory at a time, and
/// verify `payload_hash` at the end. Returns the bytes written.
///
/// On a hash mismatch the bytes already written must be discarded by the caller
/// (write to a temporary file and rename on success).
pub fn reassemble<F: FetchChunk, W: Write>(
    m: &ChunkedObjectManifest,
    fetch: &mut F,
    out: &mut W,
) -> Result<u64, ChunkError> {
    let mut hasher = blake3::Hasher::new();
    let mut written = 0u64;
    for i in 0..m.chunks.len() {
        let bytes = fetch_checked(m, i, fetch)?;
        hasher.update(&bytes);
        out.write_all(&bytes)?;
        written += bytes.len() as u64;
    }
    if written != m.total_len {
        return Err(ChunkError::BadManifest("total_len"));
    }
    if hasher.finalize().as_bytes() != &m.payload_hash {
        return Err(ChunkError::PayloadHash);
    }
    Ok(written)
}

/// Read bytes `start..end` of the payload, fetching only the chunks that overlap
/// it. Each chunk is authenticated by its object id; the whole-payload hash is
/// not checked (it needs every chunk).
pub fn read_range<F: FetchChunk>(
    m: &ChunkedObjectManifest,
    start: u64,
    end: u64,
    fetch: &mut F,
) -> Result<Vec<u8>, ChunkError> {
    if start > end || end > m.total_len {
        return Err(ChunkError::Range {
            start,
            end,
            len: m.total_len,
        });
    }
    let cs = u64::from(m.chunk_size);
    let mut out = Vec::with_capacity((end - start) as usize);
    if start == end {
        return Ok(out);
    }
    let first = (start / cs) as usize;
    let last = ((end - 1) / cs) as usize;
    for i in first..=last {
        let bytes = fetch_checked(m, i, fetch)?;
        let base = i as u64 * cs;
        let from = start.saturating_sub(base) as usize;
        let to = ((end - base).min(bytes.len() as u64)) as usize;
        out.extend_from_slice(
            bytes
                .get(from..to)
                .ok_or(ChunkError::BadManifest("range"))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fcp_core::object::RetentionClass;
    use fcp_core::provenance::TaintFlags;

    fn meta(created_at: u64) -> PayloadMeta {
        PayloadMeta {
            zone_id: ZoneId::private(),
            created_at,
            provenance: Provenance::new(ZoneId::private(), 80, 80, TaintFlags::NONE, 1),
            storage: StorageMeta {
                retention: RetentionClass::Ephemeral,
            },
        }
    }

    #[test]
    fn manifest_content_is_the_stored_manifest() {
        let key = ObjectIdKey::from_bytes([8; 32]);
        let payload: Vec<u8> = (0..600_000u32).map(|i| (i >> 3) as u8).collect();
        let m = meta(5);
        let plan = ChunkPlan::new(&payload, &m, &key, ChunkParams::default()).unwrap();
        let ids: Vec<ObjectId> = (0..plan.count())
            .map(|i| plan.chunk_object(i).object_id)
            .collect();
        let stored = plan.manifest(ids.clone()).unwrap();
        let (id, content) = plan.manifest_content(ids, payload_hash(&payload)).unwrap();
        assert_eq!(id, stored.object_id);
        assert_eq!(content, stored.content().unwrap());
    }

    #[test]
    fn parsed_chunk_content_agrees_with_stored_objects() {
        let key = ObjectIdKey::from_bytes([8; 32]);
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 3 + (i >> 11)) as u8).collect();
        let (m1, m2) = (meta(5), meta(6));
        let p1 = ChunkPlan::new(&payload, &m1, &key, ChunkParams::default()).unwrap();
        let p2 = ChunkPlan::new(&payload, &m2, &key, ChunkParams::default()).unwrap();
        let cache = std::sync::OnceLock::new();
        let chunked = chunk_payload(&payload, &m1, &key, ChunkParams::default()).unwrap();
        let PayloadRoot::Manifest(man) = parse_root(&chunked.root).unwrap() else {
            panic!("not chunked");
        };
        for i in 0..p1.count() {
            let obj = p1.chunk_object(i);
            let content = obj.content().unwrap();
            // Twice: the first parse fills the cache, the second hits it.
            for _ in 0..2 {
                let c = parse_chunk_content(&content, &cache).unwrap();
                assert_eq!(c.object_id(&key), obj.object_id);
                assert_eq!(
                    c.body(&man, i).unwrap(),
                    check_chunk(&man, i, &obj).unwrap()
                );
            }
            // Another header (cache miss): parsed in full, its own id.
            let other = p2.chunk_object(i);
            let other_content = other.content().unwrap();
            let c = parse_chunk_content(&other_content, &cache).unwrap();
            assert_eq!(c.object_id(&key), other.object_id);
            assert_ne!(c.object_id(&key), man.chunks[i]);
            // Same bytes, so the body checks pass: only the id (or the
            // payload hash, decision 58) tells the headers apart.
            assert_eq!(
                c.body(&man, i).unwrap(),
                check_chunk(&man, i, &obj).unwrap()
            );
            // Wrong index: the length differs for the last chunk, the id for all.
            let j = (i + 1) % p1.count();
            let c = parse_chunk_content(&content, &cache).unwrap();
            assert_ne!(c.object_id(&key), man.chunks[j]);
            assert_eq!(
                c.body(&man, j).is_ok(),
                man.chunk_len(i) == man.chunk_len(j)
            );
        }
    }
}
