//! Symbol placement (spec §3.6 ObjectPlacementPolicy, §19.2): which peers hold
//! which symbols of an object, ranked by highest-random-weight hashing so every
//! node computes the same answer and adding a peer moves few objects.
//!
//! The writer keeps every symbol it produced; placement spreads symbols over
//! the *other* eligible peers so the object survives the writer's loss:
//! `target_coverage` of `k` symbols in total, no peer above `max_node_fraction`
//! of `k`, at least `min_nodes` peers, and together at least `k` (otherwise the
//! object could not be rebuilt without the writer and placement fails).

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
}
