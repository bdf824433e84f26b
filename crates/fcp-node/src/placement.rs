//! Symbol placement (spec §3.6 ObjectPlacementPolicy, §19.2): which peers hold
//! which symbols of an object, ranked by highest-random-weight hashing so every
//! node computes the same answer and adding a peer moves few objects.
//!
//! Placement spreads an object's symbols over the writer and its eligible
//! peers, each ESI on exactly one node (decision 61, amends 37 and 60): every
//! node but one together hold `k + LOSS_MARGIN` distinct symbols, so losing
//! any one node, writer or holder, still leaves enough for RaptorQ; all nodes
//! together hold at least `target_coverage` of `k`; no peer holds more than
//! `max_node_fraction` of `k`; at least `min_nodes` peers are used, and the
//! peers alone hold at least `k` (otherwise the object could not be rebuilt
//! without the writer and placement fails). The peers hold every source
//! symbol, so a get without the writer needs no RaptorQ solve; the writer
//! keeps repair symbols. With three nodes and k = 65 the two peers hold 34
//! each and the writer 33.

use fcp_core::{ErrorCode, HasErrorCode, ObjectId, ObjectPlacementPolicy};

/// HRW score of `node` for `object` (higher ranks first).
pub fn hrw_score(object: &ObjectId, node: &str) -> [u8; 32] {
    *blake3::Hasher::new()
        .update(b"FCP2-HRW-V1")
        .update(object.as_bytes())
        .update(node.as_bytes())
        .finalize()
        .as_bytes()
}

/// Candidates ranked by HRW score for `object`, best first (ties by node id).
pub fn rank<'a>(object: &ObjectId, nodes: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<(&str, [u8; 32])> = nodes
        .into_iter()
        .map(|n| (n, hrw_score(object, n)))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.dedup_by(|a, b| a.0 == b.0);
    v.into_iter().map(|(n, _)| n).collect()
}

/// Which ESIs each chosen peer stores, and which the writer keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// `(node, esis)` in HRW order, each ascending.
    pub assignments: Vec<(String, Vec<u32>)>,
    /// The writer's own share, ascending.
    pub writer: Vec<u32>,
    /// Symbols placed in total, the writer's share included (ESIs
    /// `0..total`: source, then repair).
    pub total: u32,
}

impl Placement {
    /// Placed symbols per source symbol, the writer's share included, in
    /// basis points.
    pub fn coverage_bps(&self, k: u16) -> u32 {
        if k == 0 {
            return 0;
        }
        (u64::from(self.total) * 10_000 / u64::from(k)) as u32
    }
}

/// Placement failures.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// Too few eligible peers for the policy.
    #[error("{have} eligible peers, the placement policy needs {need}")]
    TooFewPeers {
        /// Eligible peers.
        have: usize,
        /// Needed.
        need: usize,
    },
    /// The policy is out of range.
    #[error("invalid placement policy: {0}")]
    Policy(String),
}

impl HasErrorCode for PlacementError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::TooFewPeers { .. } => ErrorCode::InsufficientPeers,
            Self::Policy(_) => ErrorCode::InvalidParameter,
        }
    }
}

/// Symbols beyond `k` that must survive the loss of any one node: RaptorQ
/// decodes from exactly `k` symbols only most of the time (RFC 6330 §4.4.2
/// gives about 1 % failure at `k`, about one in a million at `k + 2`).
pub const LOSS_MARGIN: u32 = 2;

/// Repair symbols a writer makes beyond `target_coverage` so that an even
/// spread over itself and two peers can hold `k + LOSS_MARGIN` after any
/// one loss: 1.5 · (k + 2) is 1.5 · k + 3 (see [`plan`]).
pub const EXTRA_REPAIR: u16 = 3;

/// Plan where the `made` symbols (ESIs `0..made`) of an object of `k` source
/// symbols go: `n` peers (HRW order) get `p` each and the writer `w`, where
///
/// - `p = min(cap, max(ceil((k + 2) / n), ceil(target / (n + 1))))`: the
///   peers alone hold `k + 2` after the writer's loss, and the spread is even;
/// - `w = max(k + 2 - (n - 1) · p, target - n · p)`: the writer and the other
///   peers hold `k + 2` after a peer's loss, and all reach `target`;
///
/// with `cap = max_node_fraction · k` and `target = target_coverage · k`.
/// ESIs `0..n · p` go round-robin over the peers, so they hold every source
/// symbol (`n · p ≥ k`), and the writer keeps the rest, repair symbols only.
/// Fewer than `n · p + w` made symbols are placed the same way as far as
/// they go (the writer's share shrinks first).
pub fn plan(
    object: &ObjectId,
    k: u16,
    made: u32,
    policy: &ObjectPlacementPolicy,
    peers: &[String],
) -> Result<Placement, PlacementError> {
    policy
        .validate()
        .map_err(|e| PlacementError::Policy(e.to_string()))?;
    let ranked = rank(object, peers.iter().map(String::as_str));
    let k = u64::from(k.max(1));
    // No peer above max_node_fraction of k (at least one symbol each).
    let cap = (k * u64::from(policy.max_node_fraction_bps) / 10_000).max(1);
    let target = (k * u64::from(policy.target_coverage_bps))
        .div_ceil(10_000)
        .max(k);
    let wanted_nodes = (target.div_ceil(cap) as usize).max(usize::from(policy.min_nodes));
    let n = wanted_nodes.min(ranked.len());
    // Without the writer the placed symbols alone must rebuild the object.
    let need_nodes = (k.div_ceil(cap) as usize).max(usize::from(policy.min_nodes));
    if n < need_nodes {
        return Err(PlacementError::TooFewPeers {
            have: ranked.len(),
            need: need_nodes,
        });
    }
    let nodes = n as u64;
    let need = k + u64::from(LOSS_MARGIN);
    let p = need
        .div_ceil(nodes)
        .max(target.div_ceil(nodes + 1))
        .min(cap);
    let w = need
        .saturating_sub((nodes - 1) * p)
        .max(target.saturating_sub(nodes * p));
    let total = (nodes * p + w).min(u64::from(made));
    // The peers take ESIs 0..n·p round-robin in HRW order. n·p ≥ k always
    // (p ≥ (k + 2) / n, or p = cap with n ≥ k / cap), so the peers hold every
    // source symbol and a get after the writer's loss needs no RaptorQ
    // solve; the writer keeps the highest ESIs, repair symbols only.
    let peer_total = (nodes * p).min(total) as u32;
    let mut shares: Vec<Vec<u32>> = vec![Vec::new(); n];
    for esi in 0..peer_total {
        if let Some(s) = shares.get_mut(esi as usize % n) {
            s.push(esi);
        }
    }
    let writer: Vec<u32> = (peer_total..total as u32).collect();
    Ok(Placement {
        assignments: ranked
            .iter()
            .take(n)
            .map(|p| (*p).to_owned())
            .zip(shares)
            .collect(),
        writer,
        total: total as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    /// Symbols a writer makes for `k` (the put path's ratio plus the extra).
    fn made(k: u16) -> u32 {
        u32::from(k) + u32::from(k).div_ceil(2) + u32::from(EXTRA_REPAIR)
    }

    /// Distinct ESIs left when `lost` (a peer's id, or "writer") is gone.
    fn left(p: &Placement, lost: &str) -> usize {
        let mut s: std::collections::BTreeSet<u32> = p
            .assignments
            .iter()
            .filter(|(n, _)| n != lost)
            .flat_map(|(_, e)| e.iter().copied())
            .collect();
        if lost != "writer" {
            s.extend(&p.writer);
        }
        s.len()
    }

    /// Every ESI `0..total` on exactly one node, each share ascending.
    fn assert_partition(p: &Placement) {
        let mut all: Vec<u32> = p
            .assignments
            .iter()
            .flat_map(|(_, e)| e.iter().copied())
            .chain(p.writer.iter().copied())
            .collect();
        for share in p.assignments.iter().map(|(_, e)| e).chain([&p.writer]) {
            assert!(share.windows(2).all(|w| w[0] < w[1]), "{share:?}");
        }
        all.sort_unstable();
        assert_eq!(all, (0..p.total).collect::<Vec<_>>());
    }

    #[test]
    fn three_nodes_share_evenly_and_survive_any_one_loss() {
        let policy = ObjectPlacementPolicy::default();
        // A 64 KiB chunk: k = 65, 101 symbols made, 34 + 34 on the peers
        // and 33 on the writer, where decision 60 stored 43 + 43 + 36.
        let p = plan(
            &ObjectId::from_bytes([4; 32]),
            65,
            made(65),
            &policy,
            &peers(2),
        )
        .unwrap();
        assert_partition(&p);
        assert_eq!(p.total, 101);
        let sizes: Vec<usize> = p.assignments.iter().map(|(_, e)| e.len()).collect();
        assert_eq!(sizes, [34, 34]);
        assert_eq!(p.writer.len(), 33);
        for lost in ["writer", "node-0", "node-1"] {
            assert!(left(&p, lost) >= 67, "{lost}: {}", left(&p, lost));
        }
        // The peers hold every source symbol, about half each, so a get
        // without the writer needs no RaptorQ solve; the writer holds only
        // repair symbols.
        for (_, share) in &p.assignments {
            let sources = share.iter().filter(|e| **e < 65).count();
            assert!((32..=33).contains(&sources), "{sources}");
        }
        assert!(p.writer.iter().all(|e| *e >= 65), "{:?}", p.writer);
        assert!(p.coverage_bps(65) >= policy.target_coverage_bps);
    }

    #[test]
    fn two_peers_hold_enough_without_the_writer() {
        let p = plan(
            &ObjectId::from_bytes([1; 32]),
            100,
            made(100),
            &ObjectPlacementPolicy::default(),
            &peers(2),
        )
        .unwrap();
        assert_partition(&p);
        assert_eq!(p.assignments.len(), 2);
        assert_eq!(p.total, 153);
        for (_, esis) in &p.assignments {
            assert!(esis.len() <= 67, "max_node_fraction 0.67");
        }
        assert!(left(&p, "writer") >= 102);
        assert_eq!(p.coverage_bps(100), 15_300);
    }

    #[test]
    fn many_peers_reach_target_coverage_and_hrw_is_stable() {
        let policy = ObjectPlacementPolicy::default();
        let oid = ObjectId::from_bytes([2; 32]);
        let p = plan(&oid, 65, made(65), &policy, &peers(6)).unwrap();
        assert_partition(&p);
        assert_eq!(p.total, 98); // ceil(65 * 1.5)
        assert_eq!(p.assignments.len(), 3); // ceil(98 / 43)
        assert_eq!(p.writer.len(), 23);
        for (lost, _) in &p.assignments {
            assert!(left(&p, lost) >= 67);
        }
        // Deterministic, and independent of the order candidates are listed in.
        let again = plan(&oid, 65, made(65), &policy, &peers(6)).unwrap();
        assert_eq!(p, again);
        let mut shuffled = peers(6);
        shuffled.reverse();
        assert_eq!(plan(&oid, 65, made(65), &policy, &shuffled).unwrap(), p);
    }

    #[test]
    fn any_one_loss_leaves_the_margin_whenever_the_cap_allows() {
        let policy = ObjectPlacementPolicy::default();
        for k in [1u16, 2, 3, 10, 63, 64, 65, 200, 1000] {
            for n in 2..=6 {
                let p = plan(
                    &ObjectId::from_bytes([5; 32]),
                    k,
                    made(k),
                    &policy,
                    &peers(n),
                )
                .unwrap();
                assert_partition(&p);
                let need = usize::from(k) + LOSS_MARGIN as usize;
                // The peers alone rebuild the object: k always, k + 2 unless
                // max_node_fraction caps them (tiny k).
                let cap = (usize::from(k) * 6700 / 10_000).max(1);
                let peers_only = left(&p, "writer");
                assert!(peers_only >= usize::from(k), "k {k} n {n}");
                assert!(
                    peers_only >= need || p.assignments.iter().all(|(_, e)| e.len() == cap),
                    "k {k} n {n}: {peers_only}"
                );
                for (lost, esis) in &p.assignments {
                    assert!(esis.len() <= cap, "k {k} n {n}");
                    assert!(left(&p, lost) >= need, "k {k} n {n} {lost}");
                }
                assert!(p.total as usize >= usize::from(k) * 3 / 2, "k {k} n {n}");
                assert!(p.writer.iter().all(|e| *e >= u32::from(k)), "k {k} n {n}");
            }
        }
        // Fewer symbols made than planned: spread as far as they go.
        let p = plan(&ObjectId::from_bytes([6; 32]), 65, 70, &policy, &peers(2)).unwrap();
        assert_partition(&p);
        assert_eq!(p.total, 70);
    }

    #[test]
    fn too_few_peers_is_a_typed_error() {
        let e = plan(
            &ObjectId::from_bytes([3; 32]),
            100,
            made(100),
            &ObjectPlacementPolicy::default(),
            &peers(1),
        )
        .unwrap_err();
        assert_eq!(e, PlacementError::TooFewPeers { have: 1, need: 2 });
        assert_eq!(e.error_code(), ErrorCode::InsufficientPeers);
        let bad = ObjectPlacementPolicy {
            max_node_fraction_bps: 0,
            ..Default::default()
        };
        assert!(matches!(
            plan(&ObjectId::from_bytes([3; 32]), 1, 4, &bad, &peers(3)),
            Err(PlacementError::Policy(_))
        ));
    }
}
