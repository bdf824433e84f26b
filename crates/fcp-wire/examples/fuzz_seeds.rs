//! Writes the committed seed corpora of the fuzz targets:
//! `cargo run -p fcp-wire --example fuzz_seeds -- crates/fcp-wire/fuzz/corpus`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{fs, path::Path};

use fcp_wire::frame::{FrameBuilder, FrameFlags, FrameHeader};
use fcp_wire::object::ObjectEncoder;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "crates/fcp-wire/fuzz/corpus".into());
    let dir = Path::new(&dir);
    let frames = dir.join("frame_decode");
    let objects = dir.join("object_decode");
    fs::create_dir_all(&frames).unwrap();
    fs::create_dir_all(&objects).unwrap();
    for (i, (t, n, flags)) in [
        (256u16, 1usize, 0u16),
        (1024, 1, 0x0404),
        (256, 4, 0x0fff),
        (512, 2, 0x0001),
    ]
    .into_iter()
    .enumerate()
    {
        let h = FrameHeader {
            flags: FrameFlags::from_bits(flags).unwrap(),
            object_id: [i as u8; 32],
            symbol_size: t,
            zone_key_id: [1; 8],
            zone_id_hash: [2; 32],
            epoch_id: 3,
            sender_instance_id: 4,
            frame_seq: 5 + i as u64,
        };
        let mut b = FrameBuilder::new(&h, 8192).unwrap();
        for r in 0..n {
            b.push_sealed(r as u32, 7, &vec![r as u8; usize::from(t)], &[9; 16])
                .unwrap();
        }
        // First byte: the target's mode (0 = take the checksum as given).
        let mut seed = vec![0u8];
        seed.extend_from_slice(&b.finish().unwrap());
        fs::write(frames.join(format!("seed-{i}")), seed).unwrap();
    }
    for (i, len) in [0usize, 100, 3000, 20_000].into_iter().enumerate() {
        let obj: Vec<u8> = (0..len).map(|x| x as u8).collect();
        let enc = ObjectEncoder::new(&obj, 256).unwrap();
        let mut seed = Vec::new();
        seed.extend_from_slice(&enc.k().to_le_bytes());
        seed.extend_from_slice(&0u16.to_le_bytes()); // t = 256
        for (esi, data) in enc.all_symbols(500).iter().rev() {
            seed.extend_from_slice(&esi.to_le_bytes());
            seed.extend_from_slice(&enc.k().to_le_bytes());
            seed.extend_from_slice(&(data.len() as u16).to_le_bytes());
            seed.extend_from_slice(data);
        }
        fs::write(objects.join(format!("seed-{i}")), seed).unwrap();
    }
}
