//! [`ObjectId`] derivation (spec §3.1, profile §3) tuned for large contents.
//!
//! `ObjectId = BLAKE3_keyed(key, "FCP2-OBJECT-V2" || ZoneIdHash || SchemaHash ||
//! content)`. Hashing that as `update(prefix); update(content)` leaves the
//! BLAKE3 hasher at chunk counter 1 after the first chunk, and from there it
//! may only take subtrees of 1, 2, 4, 8 … chunks, which it hashes one or a few
//! chunks at a time: about twice the cost of hashing an aligned input of the
//! same length on AVX-512. [`object_id`] computes the same BLAKE3 tree with
//! the `hazmat` subtree API instead: the first [`HEAD`] bytes of the stream
//! (prefix and the start of the content) are copied into one buffer, and every
//! other subtree is hashed straight from the content, each as wide as it is.
//! The result is bit-for-bit the same (tested against
//! [`ObjectId::new_with_hashes`]).

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};
use fcp_core::{ObjectId, ObjectIdKey, SchemaHash, ZoneIdHash};

/// Bytes of the stream hashed from a contiguous copy: a power of two of
/// 16 BLAKE3 chunks, one AVX-512 batch.
const HEAD: usize = 16 * 1024;
/// `"FCP2-OBJECT-V2" || ZoneIdHash || SchemaHash`.
const PREFIX_LEN: usize = 14 + 32 + 32;

/// The stream `prefix || content`: its first `HEAD` bytes in `head`, the
/// rest contiguous in `rest`.
struct Stream<'a> {
    head: &'a [u8],
    rest: &'a [u8],
    key: &'a [u8; 32],
}

impl Stream<'_> {
    /// Bytes `start..start + len` of the stream, if they lie in one buffer.
    fn slice(&self, start: usize, len: usize) -> Option<&[u8]> {
        if start + len <= self.head.len() {
            self.head.get(start..start + len)
        } else if start >= HEAD {
            self.rest.get(start - HEAD..start - HEAD + len)
        } else {
            None
        }
    }

    /// Chaining value of the (non-root) subtree `start..start + len`.
    fn subtree(&self, start: usize, len: usize) -> ChainingValue {
        if let Some(bytes) = self.slice(start, len) {
            return blake3::Hasher::new_keyed(self.key)
                .set_input_offset(start as u64)
                .update(bytes)
                .finalize_non_root();
        }
        let left = left_subtree_len(len as u64) as usize;
        let l = self.subtree(start, left);
        let r = self.subtree(start + left, len - left);
        merge_subtrees_non_root(&l, &r, Mode::KeyedHash(self.key))
    }
}

/// `ObjectId::new_with_hashes(content, zone, schema, key)`, computed with full
/// SIMD width over large contents.
pub fn object_id(
    content: &[u8],
    zone: &ZoneIdHash,
    schema: &SchemaHash,
    key: &ObjectIdKey,
) -> ObjectId {
    object_id_split(&[], content, zone, schema, key)
}

/// [`object_id`] of the content `small || big`, without joining them.
pub fn object_id_split(
    small: &[u8],
    big: &[u8],
    zone: &ZoneIdHash,
    schema: &SchemaHash,
    key: &ObjectIdKey,
) -> ObjectId {
    let domain = fcp_core::ids::domain::OBJECT_ID;
    let lead = PREFIX_LEN + small.len();
    let total = lead + big.len();
    if domain.len() + 64 != PREFIX_LEN || total <= 2 * HEAD || lead > HEAD {
        // Small contents gain nothing from the tree split.
        let mut h = blake3::Hasher::new_keyed(key.as_bytes());
        h.update(domain)
            .update(zone.as_bytes())
            .update(schema.as_bytes())
            .update(small)
            .update(big);
        return ObjectId::from_bytes(*h.finalize().as_bytes());
    }
    let mut head = [0u8; HEAD];
    let parts: [&[u8]; 5] = [
        domain,
        zone.as_bytes(),
        schema.as_bytes(),
        small,
        big.get(..HEAD - lead).unwrap_or_default(),
    ];
    let mut at = 0;
    for p in parts {
        if let Some(dst) = head.get_mut(at..at + p.len()) {
            dst.copy_from_slice(p);
        }
        at += p.len();
    }
    let key = key.as_bytes();
    let s = Stream {
        head: &head,
        rest: big.get(HEAD - lead..).unwrap_or_default(),
        key,
    };
    // total > 2 * HEAD > one chunk, so the root is a parent node.
    let left = left_subtree_len(total as u64) as usize;
    let l = s.subtree(0, left);
    let r = s.subtree(left, total - left);
    ObjectId::from_bytes(*merge_subtrees_root(&l, &r, Mode::KeyedHash(key)).as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn same_as_the_plain_derivation() {
        let key = ObjectIdKey::from_bytes([5; 32]);
        let zone = fcp_core::ZoneId::private().hash();
        let schema = fcp_core::SchemaId::parse("fcp.core:RawChunk@1.0.0")
            .unwrap()
            .hash();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 + (i >> 9)) as u8).collect();
        let mut lens: Vec<usize> = vec![
            0, 1, 1023, 1024, 16_305, 16_306, 16_307, 32_690, 32_691, 32_768, 65_536, 65_827,
            131_072, 131_000, 200_001, 300_000,
        ];
        lens.extend((0..40).map(|i| 30_000 + i * 6_907));
        for len in lens {
            let c = &data[..len];
            let plain = ObjectId::new_with_hashes(c, &zone, &schema, &key);
            assert_eq!(object_id(c, &zone, &schema, &key), plain, "len {len}");
            for cut in [0, 1, 300, 16_000, 16_306, 20_000] {
                let cut = cut.min(len);
                let (a, b) = c.split_at(cut);
                assert_eq!(
                    object_id_split(a, b, &zone, &schema, &key),
                    plain,
                    "len {len} cut {cut}"
                );
            }
        }
    }
}
