//! What the node's integration tests share.

/// Seeded pseudo-random bytes (not compressible, not all alike).
pub fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// The peers a node's `status()` lists as connected.
pub fn connected_peers(status: &serde_json::Value) -> Vec<String> {
    status["peers"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["connected"] == true)
                .filter_map(|p| p["node_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
