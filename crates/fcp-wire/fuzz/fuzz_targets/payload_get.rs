//! A sealed chunked payload whose frames a hostile holder mutated (bytes
//! flipped, frames dropped, repeated, moved between objects, objects
//! reordered, `k` changed) goes through the whole-payload get path: it must
//! never panic, and whatever it returns must be the original payload, because
//! the root id binds the payload hash (decision 58).
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use fcp_core::object::{RetentionClass, StorageMeta};
use fcp_core::provenance::TaintFlags;
use fcp_core::{ObjectIdKey, Provenance, ZoneId};
use fcp_crypto::{AeadAlgorithm, SymbolKey};
use fcp_wire::chunk::PayloadMeta;
use fcp_wire::pipeline::{SealedPayload, SymbolParams, SymbolPath, ZoneContext};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    key: SymbolKey,
    oik: ObjectIdKey,
    payload: Vec<u8>,
    sealed: SealedPayload,
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

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = SymbolKey::derive(AeadAlgorithm::ChaCha20Poly1305, &[1; 32], [2; 8], "n", 7)
            .expect("key");
        let oik = ObjectIdKey::from_bytes([3; 32]);
        let meta = PayloadMeta {
            zone_id: ZoneId::private(),
            created_at: 1,
            provenance: Provenance::new(ZoneId::private(), 80, 80, TaintFlags::NONE, 1),
            storage: StorageMeta {
                retention: RetentionClass::Ephemeral,
            },
        };
        // Four full chunks and a short one (chunked above 256 KiB).
        let payload: Vec<u8> = (0..4 * 65_536 + 999u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let sealed = path(&key, &oik)
            .put_payload(&payload, &meta, &mut 0)
            .expect("seal");
        Fixture {
            key,
            oik,
            payload,
            sealed,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut s = f.sealed.clone();
    // Each 4-byte op: kind, object, frame, argument.
    for op in data.chunks_exact(4) {
        let n = s.objects.len();
        if n == 0 {
            break;
        }
        let o = usize::from(op[1]) % n;
        let frames = s.objects[o].frames.len();
        let i = if frames == 0 { 0 } else { usize::from(op[2]) % frames };
        match op[0] % 7 {
            0 if frames > 0 => {
                // Flip one byte of a frame.
                let mut b = s.objects[o].frames[i].to_vec();
                let at = usize::from(op[3]) * 7 % b.len().max(1);
                if let Some(x) = b.get_mut(at) {
                    *x ^= op[3] | 1;
                }
                s.objects[o].frames[i] = Bytes::from(b);
            }
            1 if frames > 0 => {
                s.objects[o].frames.remove(i);
            }
            2 if frames > 0 => {
                let dup = s.objects[o].frames[i].clone();
                s.objects[o].frames.insert(usize::from(op[3]) % (frames + 1), dup);
            }
            3 if frames > 0 => {
                // Move a frame to another object.
                let f = s.objects[o].frames.remove(i);
                let to = usize::from(op[3]) % n;
                s.objects[to].frames.push(f);
            }
            4 => s.objects.swap(o, usize::from(op[3]) % n),
            5 => s.objects[o].k = s.objects[o].k.wrapping_add(u16::from(op[3] % 3)).wrapping_sub(1),
            6 if frames > 0 => s.objects[o].frames.swap(i, usize::from(op[3]) % frames),
            _ => {}
        }
    }
    if let Ok(got) = path(&f.key, &f.oik).get_payload(&s) {
        assert!(got == f.payload, "get returned bytes other than the payload");
    }
});
