//! Sealing symbols into frames and opening them back (profile §3, §4.2).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use fcp_core::{ObjectId, ZoneId};
use fcp_crypto::{AeadAlgorithm, CryptoError, SymbolKey};
use fcp_wire::envelope::{EnvelopeError, Sealer, SymbolContext, check_context, open_into};
use fcp_wire::frame::{Frame, HEADER_LEN};
use fcp_wire::object::{ObjectDecoder, ObjectEncoder, Progress};

fn ctx(oid: ObjectId) -> SymbolContext {
    SymbolContext {
        object_id: oid,
        zone_id_hash: ZoneId::private().hash(),
        zone_key_id: [7; 8],
        epoch_id: 5_000_000,
        symbol_size: 1024,
    }
}

fn key(alg: AeadAlgorithm, inst: u64) -> SymbolKey {
    SymbolKey::derive(alg, &[9; 32], [7; 8], "node-a", inst).unwrap()
}

fn sealed(alg: AeadAlgorithm, obj: &[u8]) -> (ObjectEncoder, SymbolContext, Vec<Bytes>) {
    let oid = ObjectId::from_unscoped_bytes(obj);
    let enc = ObjectEncoder::new(obj, 1024).unwrap();
    let k = key(alg, 11);
    let mut seq = 100;
    let frames = Sealer::new(&k, ctx(oid))
        .seal(enc.k(), &enc.all_symbols(500), &mut seq)
        .unwrap();
    assert_eq!(seq, 100 + frames.len() as u64);
    (enc, ctx(oid), frames)
}

#[test]
fn round_trip_both_algorithms() {
    for alg in [
        AeadAlgorithm::ChaCha20Poly1305,
        AeadAlgorithm::XChaCha20Poly1305,
    ] {
        let obj: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (enc, c, frames) = sealed(alg, &obj);
        let rk = key(alg, 11);
        let mut dec = ObjectDecoder::new(enc.k(), 1024).unwrap();
        let mut done = false;
        for f in frames.iter().rev() {
            let f = Frame::decode(f.clone()).unwrap();
            check_context(&f, &c).unwrap();
            // Plaintext is not in the frame.
            assert_ne!(&f.as_bytes()[HEADER_LEN + 6..HEADER_LEN + 30], &obj[..24]);
            if open_into(&f, &rk, &mut dec).unwrap() == Progress::Complete {
                done = true;
                break;
            }
        }
        assert!(done);
        assert_eq!(dec.take().unwrap(), obj);
    }
}

fn refix_checksum(mut v: Vec<u8>) -> Bytes {
    let n = v.len() - 8;
    let sum = xxhash_rust::xxh3::xxh3_64(&v[..n]);
    v[n..].copy_from_slice(&sum.to_le_bytes());
    Bytes::from(v)
}

#[test]
fn flipped_ciphertext_bit_is_an_aead_error() {
    let (enc, _, frames) = sealed(AeadAlgorithm::ChaCha20Poly1305, b"secret note");
    let mut v = frames[0].to_vec();
    v[HEADER_LEN + 6 + 3] ^= 0x01;
    let f = Frame::decode(refix_checksum(v)).unwrap();
    let mut dec = ObjectDecoder::new(enc.k(), 1024).unwrap();
    let err = open_into(&f, &key(AeadAlgorithm::ChaCha20Poly1305, 11), &mut dec).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::Crypto(CryptoError::DecryptFailed)),
        "{err:?}"
    );
    assert_eq!(dec.received_unique(), 0);
}

#[test]
fn wrong_key_wrong_instance_or_moved_symbol_fail() {
    let alg = AeadAlgorithm::ChaCha20Poly1305;
    let (enc, c, frames) = sealed(alg, b"another note");
    let f = Frame::decode(frames[0].clone()).unwrap();
    let mut dec = ObjectDecoder::new(enc.k(), 1024).unwrap();
    // Another sender's subkey.
    let other = SymbolKey::derive(alg, &[9; 32], [7; 8], "node-b", 11).unwrap();
    assert!(matches!(
        open_into(&f, &other, &mut dec),
        Err(EnvelopeError::Crypto(_))
    ));
    // Another sender instance.
    assert!(matches!(
        open_into(&f, &key(alg, 12), &mut dec),
        Err(EnvelopeError::ContextMismatch("sender_instance_id"))
    ));
    // The same symbol claimed for another epoch: AAD differs, so the tag fails.
    let mut v = frames[0].to_vec();
    v[90] ^= 1;
    let moved = Frame::decode(refix_checksum(v)).unwrap();
    assert!(matches!(
        open_into(&moved, &key(alg, 11), &mut dec),
        Err(EnvelopeError::Crypto(_))
    ));
    // Context checks.
    let mut wrong = c;
    wrong.zone_key_id = [8; 8];
    assert!(check_context(&f, &wrong).is_err());
}
