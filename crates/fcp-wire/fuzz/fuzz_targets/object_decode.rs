//! A hostile symbol set (any k, symbol size, esi, length, order, duplicates)
//! fed to the object decoder and then to stored-object parsing must never panic.
#![no_main]

use fcp_wire::object::{ObjectDecoder, Progress};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Layout: u16le(k) u16le(t) then records of u32le(esi) u16le(k) u16le(len) bytes[len].
    let (Some(kb), Some(tb)) = (data.get(0..2), data.get(2..4)) else { return };
    let k = u16::from_le_bytes([kb[0], kb[1]]) % 300;
    let t = 256 + (u16::from_le_bytes([tb[0], tb[1]]) % 4) * 256;
    let Ok(mut dec) = ObjectDecoder::new(k, t) else { return };
    let mut rest = &data[4..];
    while rest.len() >= 8 {
        let esi = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) % (1 << 25);
        let kk = u16::from_le_bytes([rest[4], rest[5]]);
        let kk = if kk % 8 == 0 { kk } else { k };
        let len = usize::from(u16::from_le_bytes([rest[6], rest[7]]) % 1100);
        rest = &rest[8..];
        let mut sym = rest[..len.min(rest.len())].to_vec();
        rest = &rest[len.min(rest.len())..];
        // Mostly well-sized symbols so the RaptorQ decoder really runs.
        if len % 3 != 0 {
            sym.resize(usize::from(t), sym.first().copied().unwrap_or(0));
        }
        if let Ok(Progress::Complete) = dec.push(esi, kk, &sym) {
            if let Ok(content) = dec.take() {
                let _ = fcp_core::StoredObject::parse_content(&content);
            }
            return;
        }
    }
});
