//! Symbol placement (spec §3.6 ObjectPlacementPolicy, §19.2): which peers hold
//! which symbols of an object, ranked by highest-random-weight hashing so every
//! node computes the same answer and adding a peer moves few objects.
//!
//! Placement spreads symbols over the eligible peers other than the writer so
//! the object survives the writer's loss: `target_coverage` of `k` symbols in
//! total, no peer above `max_node_fraction` of `k`, at least `min_nodes`
//! peers, and together at least `k` (otherwise the object could not be rebuilt
//! without the writer and placement fails). The writer keeps what no peer was
//! assigned and just enough of each peer's share that losing that peer still
//! leaves `k + LOSS_MARGIN` distinct symbols ([`writer_keeps`], decision 60).

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

/// Which ESIs each chosen peer stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// `(node, esis)` in HRW order.
    pub assignments: Vec<(String, Vec<u32>)>,
    /// Symbols placed in total (ESIs `0..total`: source, then repair).
    pub total: u32,
}

impl Placement {
    /// Placed symbols per source symbol, in basis points.
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

/// Plan where the symbols of an object of `k` source symbols go.
pub fn plan(
    object: &ObjectId,
    k: u16,
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
    let need = (k.div_ceil(cap) as usize).max(usize::from(policy.min_nodes));
    if n < need {
        return Err(PlacementError::TooFewPeers {
            have: ranked.len(),
            need,
        });
    }
    let total = target.min(cap * n as u64);
    let mut assignments: Vec<(String, Vec<u32>)> = ranked
        .iter()
        .take(n)
        .map(|p| ((*p).to_owned(), Vec::new()))
        .collect();
    // Round-robin: every node gets source and repair symbols alike.
    for esi in 0..total as u32 {
        if let Some((_, v)) = assignments.get_mut(esi as usize % n) {
            v.push(esi);
        }
    }
    Ok(Placement {
        assignments,
        total: total as u32,
    })
}

/// Symbols beyond `k` that must survive the loss of any one holder: RaptorQ
/// decodes from exactly `k` symbols only most of the time (RFC 6330 §4.4.2
/// gives about 1 % failure at `k`, about one in a million at `k + 2`).
pub const LOSS_MARGIN: u32 = 2;

/// ESIs the writer keeps of an object it made `made` symbols of (ESIs
/// `0..made`), placed by `plan`: every ESI no peer was assigned, and of each
/// peer's share the highest ESIs (mostly repair symbols, so a get's request
/// for source symbols rarely finds them twice), as many as losing that peer
/// would otherwise leave missing below `k + LOSS_MARGIN` distinct symbols.
/// Ascending.
pub fn writer_keeps(plan: &Placement, made: u32, k: u16) -> Vec<u32> {
    let assigned: std::collections::HashSet<u32> = plan
        .assignments
        .iter()
        .flat_map(|(_, e)| e.iter().copied())
        .collect();
    let mut keep: Vec<u32> = (0..made).filter(|e| !assigned.contains(e)).collect();
    let need = u32::from(k) + LOSS_MARGIN;
    for (_, esis) in &plan.assignments {
        let mut share: Vec<u32> = esis.iter().copied().filter(|e| *e < made).collect();
        share.sort_unstable();
        let without = made.saturating_sub(share.len() as u32);
        let short = need.saturating_sub(without) as usize;
        keep.extend(share.iter().rev().take(short));
    }
    keep.sort_unstable();
    keep.dedup();
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn two_peers_hold_enough_without_the_writer() {
        let p = plan(
            &ObjectId::from_bytes([1; 32]),
            100,
            &ObjectPlacementPolicy::default(),
            &peers(2),
        )
        .unwrap();
        assert_eq!(p.assignments.len(), 2);
        assert_eq!(p.total, 134);
        for (_, esis) in &p.assignments {
            assert!(esis.len() <= 67, "max_node_fraction 0.67");
        }
        // Either peer alone is not enough, both are.
        let all: std::collections::BTreeSet<u32> = p
            .assignments
            .iter()
            .flat_map(|(_, e)| e.iter().copied())
            .collect();
        assert_eq!(all.len(), 134);
        assert_eq!(p.coverage_bps(100), 13_400);
    }

    #[test]
    fn many_peers_reach_target_coverage_and_hrw_is_stable() {
        let policy = ObjectPlacementPolicy::default();
        let oid = ObjectId::from_bytes([2; 32]);
        let p = plan(&oid, 65, &policy, &peers(6)).unwrap();
        assert_eq!(p.total, 98); // ceil(65 * 1.5)
        assert_eq!(p.assignments.len(), 3); // ceil(98 / 43)
        // Deterministic, and independent of the order candidates are listed in.
        let again = plan(&oid, 65, &policy, &peers(6)).unwrap();
        assert_eq!(p, again);
        let mut shuffled = peers(6);
        shuffled.reverse();
        assert_eq!(plan(&oid, 65, &policy, &shuffled).unwrap(), p);
    }

    #[test]
    fn too_few_peers_is_a_typed_error() {
        let e = plan(
            &ObjectId::from_bytes([3; 32]),
            100,
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
            plan(&ObjectId::from_bytes([3; 32]), 1, &bad, &peers(3)),
            Err(PlacementError::Policy(_))
        ));
    }

    /// Distinct ESIs left when `lost` (a peer's id, or "writer") is gone.
    fn left(p: &Placement, keeps: &[u32], lost: &str) -> usize {
        let mut s: std::collections::BTreeSet<u32> = p
            .assignments
            .iter()
            .filter(|(n, _)| n != lost)
            .flat_map(|(_, e)| e.iter().copied())
            .collect();
        if lost != "writer" {
            s.extend(keeps);
        }
        s.len()
    }

    #[test]
    fn the_writer_keeps_enough_for_any_one_loss_and_little_more() {
        let policy = ObjectPlacementPolicy::default();
        // Three nodes, a 64-symbol chunk with 96 symbols made: the peers hold
        // 42 each; the writer keeps the 12 unplaced and 12 of each share.
        let p = plan(&ObjectId::from_bytes([4; 32]), 64, &policy, &peers(2)).unwrap();
        let keeps = writer_keeps(&p, 96, 64);
        assert_eq!(keeps.len(), 36);
        assert!((84..96).all(|e| keeps.contains(&e)));
        for lost in ["writer", "node-0", "node-1"] {
            assert!(
                left(&p, &keeps, lost) >= 66,
                "{lost}: {}",
                left(&p, &keeps, lost)
            );
        }
        // Copies of a share are its highest ESIs: 2 source symbols of each.
        assert_eq!(keeps.iter().filter(|e| **e < 64).count(), 4);
        // More peers, smaller shares: the writer keeps only a few.
        for (k, made, n) in [(64u16, 96u32, 5usize), (1, 2, 2), (3, 5, 3), (200, 300, 4)] {
            let p = plan(&ObjectId::from_bytes([5; 32]), k, &policy, &peers(n)).unwrap();
            let keeps = writer_keeps(&p, made, k);
            let need = (usize::from(k) + LOSS_MARGIN as usize).min(made as usize);
            for (lost, _) in &p.assignments {
                assert!(left(&p, &keeps, lost) >= need, "k {k} n {n} {lost}");
            }
            assert!(keeps.windows(2).all(|w| w[0] < w[1]));
            assert!(
                keeps.len() < made as usize / 2 || made < 10,
                "k {k}: {keeps:?}"
            );
        }
    }
}
