//! `fcp bench symbols`: the put and get symbol paths against the raw limit of the
//! same work (review 000 #10).
//!
//! put = chunk + RaptorQ encode + seal + frame; get = parse + open + decode +
//! reassemble (payload hash checked). The limit does only RaptorQ + AEAD over
//! the same chunk sizes, on the same cores, so `ratio_*` says how much the
//! protocol's framing and object layers cost.
//!
//! The limit uses the same RaptorQ wrappers as the real path
//! (`ObjectEncoder`, `ObjectDecoder`), so an improvement there speeds up both
//! sides alike, and it decrypts each symbol straight into the decoder's
//! buffer and takes the decoded block without shifting it, as the get path
//! does: neither side pays a copy the other avoids. What separates the two is
//! the protocol's own work — per chunk a keyed-BLAKE3 ObjectId and a BLAKE3
//! payload-hash subtree on each side, object headers, framing and the XXH3
//! frame checksum, the manifest, and the get path's contiguous output.

use std::time::Instant;

use fcp_core::object::{RetentionClass, StorageMeta};
use fcp_core::provenance::TaintFlags;
use fcp_core::{ErrorCode, FcpError, HasErrorCode, ObjectId, ObjectIdKey, Provenance, ZoneId};
use fcp_crypto::{AeadAlgorithm, SymbolKey, symbol_aad};
use fcp_wire::chunk::PayloadMeta;
use fcp_wire::object::{ObjectDecoder, ObjectEncoder, Progress};
use fcp_wire::pipeline::{SymbolParams, SymbolPath, ZoneContext};
use rayon::prelude::*;

/// Figures of one `fcp bench symbols` run.
#[derive(Debug, serde::Serialize)]
pub struct SymbolsReport {
    size: usize,
    iterations: usize,
    put_p50_ms: f64,
    put_p99_ms: f64,
    get_p50_ms: f64,
    get_p99_ms: f64,
    put_mib_s: f64,
    get_mib_s: f64,
    limit_put_mib_s: f64,
    limit_get_mib_s: f64,
    ratio_put: f64,
    ratio_get: f64,
    threads: usize,
}

fn err<E: HasErrorCode + std::fmt::Display>(e: E) -> FcpError {
    FcpError::from_err(&e)
}

/// An error of the limit's decode loop (AEAD or symbol layer).
struct LimitError(FcpError);

impl From<fcp_wire::WireError> for LimitError {
    fn from(e: fcp_wire::WireError) -> Self {
        Self(err(e))
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or(0.0)
}

fn mib_s(size: usize, ms: f64) -> f64 {
    if ms <= 0.0 {
        return 0.0;
    }
    size as f64 / (1024.0 * 1024.0) / (ms / 1000.0)
}

fn time_ms<T>(f: impl FnOnce() -> Result<T, FcpError>) -> Result<(f64, T), FcpError> {
    let t = Instant::now();
    let out = f()?;
    Ok((t.elapsed().as_secs_f64() * 1000.0, out))
}

/// Iterations for a payload size: enough samples for a p99 on small sizes,
/// bounded work on large ones.
fn iterations(size: usize) -> usize {
    match size {
        0..=65_536 => 200,
        65_537..=2_097_152 => 100,
        2_097_153..=16_777_216 => 12,
        _ => 5,
    }
}

/// The limit: RaptorQ + AEAD only, over the same chunk sizes, in parallel.
fn limit_once(payload: &[u8], key: &SymbolKey, p: &SymbolParams) -> Result<(f64, f64), FcpError> {
    let chunk = if payload.len() > p.chunk.max_chunk_threshold as usize {
        p.chunk.chunk_size as usize
    } else {
        payload.len().max(1)
    };
    let zone = ZoneId::private().hash();
    let pieces: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(chunk).collect()
    };
    let (put_ms, sealed) = time_ms(|| {
        pieces
            .par_iter()
            .enumerate()
            .map(|(i, piece)| {
                let oid = ObjectId::from_bytes([i as u8; 32]);
                let enc = ObjectEncoder::new(piece, p.symbol_size).map_err(err)?;
                let mut syms = enc.all_symbols(p.repair_ratio_bps);
                let mut tags = Vec::with_capacity(syms.len());
                for (esi, data) in syms.iter_mut() {
                    let aad = symbol_aad(&oid, *esi, enc.k(), &zone, &[0; 8], 1);
                    tags.push(key.seal_in_place(i as u64, *esi, &aad, data).map_err(err)?);
                }
                Ok((oid, enc.k(), syms, tags))
            })
            .collect::<Result<Vec<_>, FcpError>>()
    })?;
    let (get_ms, _) = time_ms(|| {
        sealed
            .par_iter()
            .enumerate()
            .map(|(i, (oid, k, syms, tags))| {
                let mut dec = ObjectDecoder::new(*k, p.symbol_size).map_err(err)?;
                for ((esi, data), tag) in syms.iter().zip(tags) {
                    let aad = symbol_aad(oid, *esi, *k, &zone, &[0; 8], 1);
                    // Decrypt straight into the decoder's buffer, as the get path does.
                    let progress = dec
                        .push_fill(*esi, *k, data.len(), |buf| {
                            buf.copy_from_slice(data);
                            key.open_in_place(i as u64, *esi, &aad, buf, tag)
                                .map_err(|e| LimitError(err(e)))
                        })
                        .map_err(|e: LimitError| e.0)?;
                    if progress == Progress::Complete {
                        break;
                    }
                }
                // The decoded source block and where the object lies in it (as
                // the get path takes it, without shifting the bytes).
                dec.take_block().map_err(err)
            })
            .collect::<Result<Vec<_>, FcpError>>()
    })?;
    Ok((put_ms, get_ms))
}

/// Run the symbols benchmark for a payload of `size` bytes.
pub fn symbols(size: usize) -> Result<SymbolsReport, FcpError> {
    if size > 1 << 30 {
        return Err(FcpError::new(
            ErrorCode::InvalidArgument,
            "--size is limited to 1 GiB",
        ));
    }
    let payload: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect();
    let key = SymbolKey::derive(
        AeadAlgorithm::ChaCha20Poly1305,
        &[7; 32],
        [1; 8],
        "bench-node",
        1,
    )
    .map_err(err)?;
    let oik = ObjectIdKey::from_bytes([9; 32]);
    let storage = StorageMeta {
        retention: RetentionClass::Ephemeral,
    };
    let params = SymbolParams::default();
    let path = SymbolPath {
        key: &key,
        object_id_key: &oik,
        zone: ZoneContext {
            zone_id_hash: ZoneId::private().hash(),
            zone_key_id: [1; 8],
            epoch_id: 1,
        },
        params,
        storage,
    };
    let meta = PayloadMeta {
        zone_id: ZoneId::private(),
        created_at: 1_800_000_000,
        provenance: Provenance::new(ZoneId::private(), 80, 80, TaintFlags::NONE, 1_800_000_000),
        storage,
    };
    let n = iterations(size);
    let (mut put, mut get, mut lput, mut lget) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut seq = 0u64;
    // One warm-up round (RaptorQ caches its encoding plans per k).
    for round in 0..=n {
        let (pm, sealed) = time_ms(|| path.put_payload(&payload, &meta, &mut seq).map_err(err))?;
        let (gm, back) = time_ms(|| path.get_payload(&sealed).map_err(err))?;
        if back != payload {
            return Err(FcpError::new(
                ErrorCode::Internal,
                "get returned different bytes",
            ));
        }
        let (lp, lg) = limit_once(&payload, &key, &params)?;
        if round > 0 {
            put.push(pm);
            get.push(gm);
            lput.push(lp);
            lget.push(lg);
        }
    }
    for v in [&mut put, &mut get, &mut lput, &mut lget] {
        v.sort_by(f64::total_cmp);
    }
    let (put_p50, get_p50) = (percentile(&put, 0.5), percentile(&get, 0.5));
    let (put_mib_s, get_mib_s) = (mib_s(size, put_p50), mib_s(size, get_p50));
    let limit_put_mib_s = mib_s(size, percentile(&lput, 0.5));
    let limit_get_mib_s = mib_s(size, percentile(&lget, 0.5));
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Ok(SymbolsReport {
        size,
        iterations: n,
        put_p50_ms: put_p50,
        put_p99_ms: percentile(&put, 0.99),
        get_p50_ms: get_p50,
        get_p99_ms: percentile(&get, 0.99),
        put_mib_s,
        get_mib_s,
        limit_put_mib_s,
        limit_get_mib_s,
        ratio_put: ratio(put_mib_s, limit_put_mib_s),
        ratio_get: ratio(get_mib_s, limit_get_mib_s),
        threads: rayon::current_num_threads(),
    })
}

impl SymbolsReport {
    /// Human-readable lines.
    pub fn text(&self) -> String {
        format!(
            "symbols bench: {} bytes, {} iterations, {} threads\n  put  p50 {:.3} ms  p99 {:.3} ms  {:.1} MiB/s  (limit {:.1} MiB/s, ratio {:.2})\n  get  p50 {:.3} ms  p99 {:.3} ms  {:.1} MiB/s  (limit {:.1} MiB/s, ratio {:.2})",
            self.size,
            self.iterations,
            self.threads,
            self.put_p50_ms,
            self.put_p99_ms,
            self.put_mib_s,
            self.limit_put_mib_s,
            self.ratio_put,
            self.get_p50_ms,
            self.get_p99_ms,
            self.get_mib_s,
            self.limit_get_mib_s,
            self.ratio_get,
        )
    }
}
