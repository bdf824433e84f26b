//! Operation classification enums (spec §7.2).
//!
//! Wire mapping: every enum here is a CBOR text string holding the
//! snake_case variant name (see `docs/wire-format.md`). Ordering (`Ord`)
//! follows the spec's discriminants.

use serde::{Deserialize, Serialize};

/// Enforcement tier of an operation (spec §7.2). `Safe < Risky < Dangerous < Forbidden`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SafetyTier {
    /// Read-only or non-sensitive.
    Safe = 0,
    /// Private data exposure or public posting.
    Risky = 1,
    /// Destructive or high-blast actions.
    Dangerous = 2,
    /// Never allowed.
    Forbidden = 3,
}

/// Risk level for UI and triage (spec §7.2). `Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Low.
    Low = 0,
    /// Medium.
    Medium = 1,
    /// High.
    High = 2,
    /// Critical.
    Critical = 3,
}

/// Idempotency expectation of an operation (spec §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyClass {
    /// Duplicates may cause repeated side effects.
    None,
    /// Connector attempts dedupe within a short window.
    BestEffort,
    /// Connector MUST enforce dedupe using `idempotency_key`.
    Strict,
}

/// Human-approval requirement of an operation (spec §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// No approval needed.
    None,
    /// Policy-based auto-approval.
    Policy,
    /// Interactive human approval.
    Interactive,
    /// Requires an ApprovalToken (elevation or other scope).
    ApprovalRequired,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::{from_canonical, to_canonical};

    #[test]
    fn ordering_and_mapping() {
        assert!(SafetyTier::Safe < SafetyTier::Risky);
        assert!(SafetyTier::Dangerous < SafetyTier::Forbidden);
        assert!(RiskLevel::High < RiskLevel::Critical);
        assert_eq!(
            to_canonical(&SafetyTier::Dangerous).unwrap(),
            b"\x69dangerous"
        );
        assert_eq!(
            to_canonical(&IdempotencyClass::BestEffort).unwrap(),
            b"\x6bbest_effort"
        );
        assert_eq!(
            from_canonical::<ApprovalMode>(b"\x71approval_required").unwrap(),
            ApprovalMode::ApprovalRequired
        );
        assert!(from_canonical::<SafetyTier>(b"\x64Safe").is_err());
        assert!(from_canonical::<SafetyTier>(b"\x00").is_err());
    }
}
