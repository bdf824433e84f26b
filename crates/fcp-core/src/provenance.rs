//! Provenance and taint tracking (spec §6.1, §6.2).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{ObjectId, ZoneId};
use crate::safety::SafetyTier;
use crate::zone::Zone;

/// Compositional taint flags (spec §6.1), merged by OR.
///
/// Wire mapping: a CBOR unsigned integer (the bit set). Decoding rejects
/// bits that are not defined here.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct TaintFlags(u32);

impl TaintFlags {
    /// No taint.
    pub const NONE: Self = Self(0);
    /// E.g. `z:public` messages, web.
    pub const PUBLIC_INPUT: Self = Self(1 << 0);
    /// E.g. paired external identities.
    pub const EXTERNAL_INPUT: Self = Self(1 << 1);
    /// URLs / attachments not scanned.
    pub const UNVERIFIED_LINK: Self = Self(1 << 2);
    /// Direct human input.
    pub const USER_SUPPLIED: Self = Self(1 << 3);
    /// Content interpreted by an LLM.
    pub const PROMPT_SURFACE: Self = Self(1 << 4);
    /// Every defined bit.
    pub const ALL: Self = Self(0b1_1111);

    /// Raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// From raw bits; `None` if an undefined bit is set.
    pub const fn from_bits(bits: u32) -> Option<Self> {
        if bits & !Self::ALL.0 == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Set union.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Remove `other`'s flags.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl std::ops::BitOr for TaintFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for TaintFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        *self = self.union(rhs);
    }
}

impl fmt::Debug for TaintFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 5] = [
            "PUBLIC_INPUT",
            "EXTERNAL_INPUT",
            "UNVERIFIED_LINK",
            "USER_SUPPLIED",
            "PROMPT_SURFACE",
        ];
        if self.0 == 0 {
            return f.write_str("TaintFlags(NONE)");
        }
        let names: Vec<&str> = NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        write!(f, "TaintFlags({})", names.join("|"))
    }
}

impl Serialize for TaintFlags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for TaintFlags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bits = u32::deserialize(d)?;
        Self::from_bits(bits).ok_or_else(|| serde::de::Error::custom("undefined taint bits"))
    }
}

/// Proof-carrying taint reduction (spec §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaintReduction {
    /// Which taints are cleared.
    pub clears: TaintFlags,
    /// Attestation/receipt object justifying the reduction.
    pub by_attestation: ObjectId,
    /// When the reduction was applied (Unix seconds).
    pub applied_at: u64,
}

/// Trust grade of a principal (spec §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustGrade {
    /// Direct owner access.
    Owner,
    /// Cryptographically paired device.
    Paired,
    /// Trusted remote (known identity).
    TrustedRemote,
    /// Untrusted (anonymous/public).
    Untrusted,
}

/// One zone crossing (spec §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneCrossing {
    /// Zone left.
    pub from_zone: ZoneId,
    /// Zone entered.
    pub to_zone: ZoneId,
    /// When (Unix seconds).
    pub crossed_at: u64,
    /// Elevation token, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authorized_by: Option<ObjectId>,
}

/// Origin and taint of a piece of data (spec §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Origin zone.
    pub origin_zone: ZoneId,
    /// Current zone, updated on every crossing.
    pub current_zone: ZoneId,
    /// Integrity label inherited from the origin.
    pub origin_integrity: u8,
    /// Confidentiality label inherited from the origin.
    pub origin_confidentiality: u8,
    /// Principal who introduced the data.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub origin_principal: Option<String>,
    /// Taint flags.
    pub taint: TaintFlags,
    /// Proof-carrying reductions.
    pub taint_reductions: Vec<TaintReduction>,
    /// Crossing audit trail.
    pub zone_crossings: Vec<ZoneCrossing>,
    /// Creation time (Unix seconds).
    pub created_at: u64,
}

/// Outcome of [`Provenance::can_invoke`] (spec §6.2 `TaintDecision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaintDecision {
    /// Proceed.
    Allow,
    /// Proceed only with an elevation approval (spec §6.3).
    RequireElevation,
    /// Forbidden tier: never allowed.
    DenyForbiddenTier,
    /// Public-tainted input driving a Dangerous (or higher) operation.
    DenyPublicDangerous,
}

/// A non-`Allow` [`TaintDecision`] as an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaintError {
    /// Elevation approval required (spec §6.2 rule 2).
    #[error("tainted input requires elevation for this operation")]
    ApprovalRequired,
    /// Never allowed for these inputs (spec §6.2 rule 1, or Forbidden tier).
    #[error("operation forbidden for inputs of this provenance: {0:?}")]
    Forbidden(TaintDecision),
}

impl HasErrorCode for TaintError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::ApprovalRequired => ErrorCode::TaintApprovalRequired,
            Self::Forbidden(_) => ErrorCode::TaintForbidden,
        }
    }
}

impl TaintDecision {
    /// `Allow` -> `Ok(())`, otherwise the matching [`TaintError`].
    pub fn into_result(self) -> Result<(), TaintError> {
        match self {
            Self::Allow => Ok(()),
            Self::RequireElevation => Err(TaintError::ApprovalRequired),
            other => Err(TaintError::Forbidden(other)),
        }
    }
}

/// `merge` of zero inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot merge an empty list of provenances")]
pub struct EmptyMerge;

impl HasErrorCode for EmptyMerge {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidParameter
    }
}

impl Provenance {
    /// Fresh provenance for data entering at `zone` with the given levels.
    pub fn new(
        zone: ZoneId,
        integrity: u8,
        confidentiality: u8,
        taint: TaintFlags,
        created_at: u64,
    ) -> Self {
        Self {
            origin_zone: zone.clone(),
            current_zone: zone,
            origin_integrity: integrity,
            origin_confidentiality: confidentiality,
            origin_principal: None,
            taint,
            taint_reductions: Vec::new(),
            zone_crossings: Vec::new(),
            created_at,
        }
    }

    /// Taint after removing every reduction's `clears` (spec §6.2).
    pub fn effective_taint(&self) -> TaintFlags {
        self.taint_reductions
            .iter()
            .fold(self.taint, |t, r| t.difference(r.clears))
    }

    /// Record a crossing into `target` at `now` (spec §6.2): the crossing's
    /// `from_zone` is the *current* zone, then `current_zone` becomes
    /// `target`. Time is a parameter (no clock in core).
    #[must_use]
    pub fn cross_zone(&self, target: &ZoneId, now: u64, authorized_by: Option<ObjectId>) -> Self {
        let mut new = self.clone();
        new.zone_crossings.push(ZoneCrossing {
            from_zone: self.current_zone.clone(),
            to_zone: target.clone(),
            crossed_at: now,
            authorized_by,
        });
        new.current_zone = target.clone();
        new
    }

    /// Merge the provenance of several inputs (spec §6.2).
    ///
    /// Decision (safer than the spec sketch): `taint` is the OR of every
    /// input's *effective* taint and the result carries no reductions (a
    /// reduction proven for one input must not clear another input's taint);
    /// `origin_integrity` is the minimum and `origin_confidentiality` the
    /// maximum over the inputs; `origin_zone` and `origin_principal` come from
    /// the first input with the minimum integrity; `current_zone` from the
    /// first input; `created_at` is the maximum; crossings are concatenated in
    /// input order.
    pub fn merge(inputs: &[Provenance]) -> Result<Provenance, EmptyMerge> {
        let first = inputs.first().ok_or(EmptyMerge)?;
        let lowest = inputs.iter().fold(first, |lo, p| {
            if p.origin_integrity < lo.origin_integrity {
                p
            } else {
                lo
            }
        });
        let mut out = Provenance {
            origin_zone: lowest.origin_zone.clone(),
            current_zone: first.current_zone.clone(),
            origin_integrity: lowest.origin_integrity,
            origin_confidentiality: 0,
            origin_principal: lowest.origin_principal.clone(),
            taint: TaintFlags::NONE,
            taint_reductions: Vec::new(),
            zone_crossings: Vec::new(),
            created_at: 0,
        };
        for p in inputs {
            out.taint |= p.effective_taint();
            out.origin_confidentiality = out.origin_confidentiality.max(p.origin_confidentiality);
            out.created_at = out.created_at.max(p.created_at);
            out.zone_crossings.extend_from_slice(&p.zone_crossings);
        }
        Ok(out)
    }

    /// May data with this provenance drive an operation of `tier` in a zone of
    /// integrity `target_integrity`? (spec §6.2)
    ///
    /// Rules, in order:
    /// 0. `Forbidden` tier -> `DenyForbiddenTier` (decision: §7.2 says "never
    ///    allowed", so it is denied whatever the taint).
    /// 1. effective taint has `PUBLIC_INPUT` and tier >= `Dangerous` ->
    ///    `DenyPublicDangerous`.
    /// 2. effective taint non-empty, tier >= `Risky`, and
    ///    `target_integrity > origin_integrity` -> `RequireElevation`.
    /// 3. otherwise `Allow`.
    pub fn can_invoke(&self, tier: SafetyTier, target_integrity: u8) -> TaintDecision {
        let effective = self.effective_taint();
        if tier == SafetyTier::Forbidden {
            return TaintDecision::DenyForbiddenTier;
        }
        if effective.contains(TaintFlags::PUBLIC_INPUT) && tier >= SafetyTier::Dangerous {
            return TaintDecision::DenyPublicDangerous;
        }
        if !effective.is_empty()
            && tier >= SafetyTier::Risky
            && target_integrity > self.origin_integrity
        {
            return TaintDecision::RequireElevation;
        }
        TaintDecision::Allow
    }

    /// [`Provenance::can_invoke`] against a [`Zone`].
    pub fn can_invoke_in(&self, tier: SafetyTier, target: &Zone) -> TaintDecision {
        self.can_invoke(tier, target.integrity_level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prov(integrity: u8, taint: TaintFlags) -> Provenance {
        Provenance::new(ZoneId::public(), integrity, 10, taint, 100)
    }

    #[test]
    fn effective_taint_applies_reductions() {
        let mut p = prov(20, TaintFlags::PUBLIC_INPUT | TaintFlags::UNVERIFIED_LINK);
        p.taint_reductions.push(TaintReduction {
            clears: TaintFlags::UNVERIFIED_LINK,
            by_attestation: ObjectId::from_bytes([1; 32]),
            applied_at: 5,
        });
        assert_eq!(p.effective_taint(), TaintFlags::PUBLIC_INPUT);
        assert_eq!(
            p.taint,
            TaintFlags::PUBLIC_INPUT | TaintFlags::UNVERIFIED_LINK
        );
    }

    #[test]
    fn cross_zone_uses_current_zone() {
        let p = prov(20, TaintFlags::NONE);
        let a = p.cross_zone(&ZoneId::community(), 7, None);
        let b = a.cross_zone(&ZoneId::work(), 8, Some(ObjectId::from_bytes([2; 32])));
        assert_eq!(b.origin_zone, ZoneId::public());
        assert_eq!(b.current_zone, ZoneId::work());
        assert_eq!(b.zone_crossings.len(), 2);
        assert_eq!(b.zone_crossings[1].from_zone, ZoneId::community());
        assert_eq!(b.zone_crossings[1].crossed_at, 8);
    }

    #[test]
    fn merge_does_not_leak_reductions() {
        let mut a = prov(80, TaintFlags::UNVERIFIED_LINK);
        a.taint_reductions.push(TaintReduction {
            clears: TaintFlags::UNVERIFIED_LINK,
            by_attestation: ObjectId::from_bytes([1; 32]),
            applied_at: 5,
        });
        let b = prov(20, TaintFlags::UNVERIFIED_LINK);
        let m = Provenance::merge(&[a, b]).unwrap();
        assert_eq!(m.effective_taint(), TaintFlags::UNVERIFIED_LINK);
        assert_eq!(m.origin_integrity, 20);
        assert_eq!(m.origin_zone, ZoneId::public());
        assert_eq!(Provenance::merge(&[]), Err(EmptyMerge));
    }

    #[test]
    fn taint_bits_serde() {
        let enc =
            crate::cbor::to_canonical(&(TaintFlags::PUBLIC_INPUT | TaintFlags::PROMPT_SURFACE))
                .unwrap();
        assert_eq!(enc, vec![0x11]);
        assert!(crate::cbor::from_canonical::<TaintFlags>(&[0x18, 0x20]).is_err());
        assert_eq!(format!("{:?}", TaintFlags::ALL).matches('|').count(), 4);
    }

    #[test]
    fn decision_errors() {
        assert_eq!(TaintDecision::Allow.into_result(), Ok(()));
        assert_eq!(
            TaintDecision::RequireElevation
                .into_result()
                .unwrap_err()
                .error_code(),
            ErrorCode::TaintApprovalRequired
        );
        assert_eq!(
            TaintDecision::DenyPublicDangerous
                .into_result()
                .unwrap_err()
                .error_code(),
            ErrorCode::TaintForbidden
        );
    }
}
