//! Shared test helpers: temporary directories and record builders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fcp_core::{
    ObjectHeader, ObjectId, Provenance, RetentionClass, SchemaId, StorageMeta, StoredObject,
    TaintFlags, ZoneId,
};
use fcp_store::{ObjectMeta, SymbolRecord};

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!(
            "fcp-store-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn db(&self) -> PathBuf {
        self.0.join("store.redb")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic bytes from a seed (splitmix64).
pub fn bytes_from(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn oid(n: u64) -> ObjectId {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b[8] = 0xF0;
    ObjectId::from_bytes(b)
}

pub fn zone(i: usize) -> ZoneId {
    [ZoneId::work(), ZoneId::private(), ZoneId::public()][i % 3].clone()
}

pub fn object(
    n: u64,
    zone: &ZoneId,
    refs: Vec<ObjectId>,
    retention: RetentionClass,
    body_len: usize,
) -> StoredObject {
    StoredObject {
        object_id: oid(n),
        header: ObjectHeader {
            schema: SchemaId::parse("fcp.test:Blob@1.0.0").unwrap(),
            zone_id: zone.clone(),
            created_at: 1_700_000_000 + n,
            provenance: Provenance::new(zone.clone(), 60, 70, TaintFlags::NONE, 1_700_000_000),
            refs,
            ttl_secs: None,
            placement: None,
        },
        body: bytes_from(n, body_len),
        storage: StorageMeta { retention },
    }
}

/// Symbols `0..count` of object `n`, each with `ct_len` bytes of ciphertext.
pub fn symbols(n: u64, count: u32, zone: &ZoneId, ct_len: usize) -> Vec<SymbolRecord> {
    (0..count).map(|e| symbol(n, e, zone, ct_len)).collect()
}

pub fn symbol(n: u64, esi: u32, zone: &ZoneId, ct_len: usize) -> SymbolRecord {
    SymbolRecord {
        object_id: oid(n),
        esi,
        k: 4,
        symbol_size: 1024,
        zone_id_hash: *zone.hash().as_bytes(),
        zone_key_id: [7; 8],
        epoch_id: 42,
        source_node: format!("node-{n}"),
        sender_instance_id: n ^ 0x55,
        frame_seq: u64::from(esi) * 3,
        ciphertext: bytes_from(n.wrapping_mul(1000) + u64::from(esi), ct_len).into(),
        tag: [esi as u8; 16],
        from_node: "peer-b".into(),
    }
}

pub fn meta(zone: &ZoneId, refs: Vec<ObjectId>, retention: RetentionClass) -> ObjectMeta {
    ObjectMeta {
        zone_id: zone.clone(),
        k: 4,
        symbol_size: 1024,
        retention,
        created_at: 1_700_000_000,
        refs,
        size_hint: 4096,
    }
}
