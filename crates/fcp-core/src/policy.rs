//! Zone access policy (spec §5.3 as amended by review 000 #4) and time policy
//! (review 000 #5).

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, HasErrorCode};
use crate::glob::{Glob, PatternError};

/// A request to act in a zone (spec §5.3 `AccessRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Principal asking (e.g. `owner`, `tg:12345`).
    pub principal: String,
    /// Connector that would execute (e.g. `fcp.telegram`).
    pub connector: String,
    /// Capability requested (e.g. `telegram.send_message`).
    pub capability: String,
}

/// Why a policy evaluation denied a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyDenial {
    /// The principal matches a deny pattern.
    #[error("principal denied by policy")]
    PrincipalDenied,
    /// The principal matches no allow pattern and the zone is default-deny.
    #[error("principal not in allow list")]
    PrincipalNotAllowed,
    /// The connector matches a deny pattern.
    #[error("connector denied by policy")]
    ConnectorDenied,
    /// The connector matches no `connectors_allow` pattern (always enforced).
    #[error("connector not in allow list")]
    ConnectorNotAllowed,
    /// The capability matches a deny pattern.
    #[error("capability denied by policy")]
    CapabilityDenied,
    /// The capability matches no allow pattern and the zone is default-deny.
    #[error("capability not in allow list")]
    CapabilityNotAllowed,
    /// A request field is empty or not ASCII (fail closed).
    #[error("request field is empty or not ASCII")]
    InvalidSubject,
    /// A pattern in the policy is invalid (fail closed).
    #[error("invalid pattern in policy: {0}")]
    InvalidPattern(PatternError),
}

impl HasErrorCode for PolicyDenial {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::PrincipalDenied | Self::PrincipalNotAllowed | Self::InvalidSubject => {
                ErrorCode::PrincipalNotAllowed
            }
            Self::ConnectorDenied | Self::ConnectorNotAllowed => ErrorCode::ConnectorNotAllowed,
            Self::CapabilityDenied | Self::CapabilityNotAllowed => ErrorCode::CapabilityDenied,
            Self::InvalidPattern(_) => ErrorCode::InvalidPattern,
        }
    }
}

/// Zone access policy (spec §5.3, review 000 #4). Patterns use the normative
/// glob matcher of [`crate::glob`].
///
/// Evaluation order: principal deny, principal allow, connector deny,
/// connector allow, capability deny, capability allow. Deny patterns always
/// win over allow patterns.
///
/// Decisions (spec-decisions):
/// - `connectors_allow` is always enforced: a connector that matches no allow
///   pattern is denied, whatever `default_deny` says; an empty
///   `connectors_allow` therefore denies every connector.
/// - principals and capabilities: a subject matching no allow pattern (an
///   empty list matches nothing) is denied when `default_deny` is true and
///   allowed when it is false.
/// - an invalid pattern or a non-ASCII/empty request field denies (fail closed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZonePolicy {
    /// Allowed principal patterns.
    pub principals_allow: Vec<String>,
    /// Denied principal patterns (override allow).
    pub principals_deny: Vec<String>,
    /// Allowed connector patterns (always enforced).
    pub connectors_allow: Vec<String>,
    /// Denied connector patterns (override allow).
    pub connectors_deny: Vec<String>,
    /// Allowed capability patterns.
    pub cap_allow: Vec<String>,
    /// Denied capability patterns (override allow).
    pub cap_deny: Vec<String>,
    /// Deny subjects that match no allow pattern.
    pub default_deny: bool,
}

impl Default for ZonePolicy {
    /// Deny everything.
    fn default() -> Self {
        Self {
            principals_allow: Vec::new(),
            principals_deny: Vec::new(),
            connectors_allow: Vec::new(),
            connectors_deny: Vec::new(),
            cap_allow: Vec::new(),
            cap_deny: Vec::new(),
            default_deny: true,
        }
    }
}

fn matches_any(patterns: &[String], subject: &str) -> Result<bool, PolicyDenial> {
    for p in patterns {
        let g = Glob::new(p).map_err(PolicyDenial::InvalidPattern)?;
        if g.matches(subject) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl ZonePolicy {
    /// Check every pattern of the policy.
    pub fn validate(&self) -> Result<(), PatternError> {
        for p in self
            .principals_allow
            .iter()
            .chain(&self.principals_deny)
            .chain(&self.connectors_allow)
            .chain(&self.connectors_deny)
            .chain(&self.cap_allow)
            .chain(&self.cap_deny)
        {
            Glob::new(p)?;
        }
        Ok(())
    }

    /// Evaluate an access request (spec §5.3). `Ok(())` means allow.
    pub fn evaluate(&self, req: &AccessRequest) -> Result<(), PolicyDenial> {
        for s in [&req.principal, &req.connector, &req.capability] {
            if s.is_empty() || !s.is_ascii() {
                return Err(PolicyDenial::InvalidSubject);
            }
        }
        self.validate().map_err(PolicyDenial::InvalidPattern)?;
        // Step 1: principal.
        if matches_any(&self.principals_deny, &req.principal)? {
            return Err(PolicyDenial::PrincipalDenied);
        }
        if self.default_deny && !matches_any(&self.principals_allow, &req.principal)? {
            return Err(PolicyDenial::PrincipalNotAllowed);
        }
        // Step 2: connector (review 000 #4: connectors_allow enforced).
        if matches_any(&self.connectors_deny, &req.connector)? {
            return Err(PolicyDenial::ConnectorDenied);
        }
        if !matches_any(&self.connectors_allow, &req.connector)? {
            return Err(PolicyDenial::ConnectorNotAllowed);
        }
        // Step 3: capability.
        if matches_any(&self.cap_deny, &req.capability)? {
            return Err(PolicyDenial::CapabilityDenied);
        }
        if self.default_deny && !matches_any(&self.cap_allow, &req.capability)? {
            return Err(PolicyDenial::CapabilityNotAllowed);
        }
        Ok(())
    }
}

/// Clock-skew policy (review 000 #5), applied to every `iat`/`exp`/timestamp
/// check. Times are Unix seconds supplied by the caller (no clock in core).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimePolicy {
    /// Maximum tolerated skew in seconds (default 120).
    pub max_skew_secs: u64,
}

/// Default `max_skew_secs`.
pub const DEFAULT_MAX_SKEW_SECS: u64 = 120;

impl Default for TimePolicy {
    fn default() -> Self {
        Self {
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
        }
    }
}

/// A failed time check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// A timestamp (or `iat`) lies more than `max_skew_secs` in the future or
    /// (for plain timestamps) in the past.
    #[error("timestamp {ts} outside skew window around {now}")]
    OutOfSkew {
        /// Caller's current time.
        now: u64,
        /// Offending timestamp.
        ts: u64,
    },
    /// `now > exp + max_skew_secs`.
    #[error("expired at {exp} (now {now})")]
    Expired {
        /// Caller's current time.
        now: u64,
        /// Expiry.
        exp: u64,
    },
    /// `iat > exp`: the token window is empty.
    #[error("issued at {iat} after expiry {exp}")]
    IatAfterExp {
        /// Issued-at.
        iat: u64,
        /// Expiry.
        exp: u64,
    },
}

impl HasErrorCode for TimeError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::OutOfSkew { .. } => ErrorCode::TimestampOutOfSkew,
            Self::Expired { .. } => ErrorCode::TokenExpired,
            Self::IatAfterExp { .. } => ErrorCode::InvalidToken,
        }
    }
}

impl TimePolicy {
    /// A plain timestamp (e.g. a handshake's) must satisfy
    /// `|now - ts| <= max_skew_secs`.
    pub fn check_timestamp(&self, now: u64, ts: u64) -> Result<(), TimeError> {
        if now.abs_diff(ts) > self.max_skew_secs {
            return Err(TimeError::OutOfSkew { now, ts });
        }
        Ok(())
    }

    /// Token window (review 000 #5): reject `iat > exp`, reject
    /// `iat > now + skew` (issued in the future), reject `now > exp + skew`
    /// (expired). Boundaries are inclusive: `now == exp + skew` is valid.
    pub fn check_iat_exp(&self, now: u64, iat: u64, exp: u64) -> Result<(), TimeError> {
        if iat > exp {
            return Err(TimeError::IatAfterExp { iat, exp });
        }
        if iat > now.saturating_add(self.max_skew_secs) {
            return Err(TimeError::OutOfSkew { now, ts: iat });
        }
        if now > exp.saturating_add(self.max_skew_secs) {
            return Err(TimeError::Expired { now, exp });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(p: &str, c: &str, cap: &str) -> AccessRequest {
        AccessRequest {
            principal: p.into(),
            connector: c.into(),
            capability: cap.into(),
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    fn policy() -> ZonePolicy {
        ZonePolicy {
            principals_allow: s(&["owner", "tg:*"]),
            principals_deny: s(&["tg:666"]),
            connectors_allow: s(&["fcp.telegram", "fcp.mail*"]),
            connectors_deny: s(&["fcp.mail-legacy"]),
            cap_allow: s(&["telegram.*", "mail.read"]),
            cap_deny: s(&["telegram.delete_*"]),
            default_deny: true,
        }
    }

    #[test]
    fn evaluate_table() {
        let p = policy();
        let cases: &[(&str, &str, &str, Result<(), PolicyDenial>)] = &[
            ("owner", "fcp.telegram", "telegram.send", Ok(())),
            ("tg:1", "fcp.mail", "mail.read", Ok(())),
            (
                "tg:666",
                "fcp.telegram",
                "telegram.send",
                Err(PolicyDenial::PrincipalDenied),
            ),
            (
                "eve",
                "fcp.telegram",
                "telegram.send",
                Err(PolicyDenial::PrincipalNotAllowed),
            ),
            (
                "owner",
                "fcp.mail-legacy",
                "mail.read",
                Err(PolicyDenial::ConnectorDenied),
            ),
            (
                "owner",
                "fcp.slack",
                "telegram.send",
                Err(PolicyDenial::ConnectorNotAllowed),
            ),
            (
                "owner",
                "fcp.telegram",
                "telegram.delete_all",
                Err(PolicyDenial::CapabilityDenied),
            ),
            (
                "owner",
                "fcp.telegram",
                "mail.send",
                Err(PolicyDenial::CapabilityNotAllowed),
            ),
            (
                "",
                "fcp.telegram",
                "telegram.send",
                Err(PolicyDenial::InvalidSubject),
            ),
            (
                "ownér",
                "fcp.telegram",
                "telegram.send",
                Err(PolicyDenial::InvalidSubject),
            ),
        ];
        for (pr, c, cap, want) in cases {
            assert_eq!(&p.evaluate(&req(pr, c, cap)), want, "{pr} {c} {cap}");
        }
    }

    #[test]
    fn connectors_allow_is_enforced_even_without_default_deny() {
        let mut p = policy();
        p.default_deny = false;
        assert_eq!(p.evaluate(&req("eve", "fcp.telegram", "x.y")), Ok(()));
        assert_eq!(
            p.evaluate(&req("eve", "fcp.slack", "x.y")),
            Err(PolicyDenial::ConnectorNotAllowed)
        );
        p.connectors_allow.clear();
        assert_eq!(
            p.evaluate(&req("owner", "fcp.telegram", "telegram.send")),
            Err(PolicyDenial::ConnectorNotAllowed)
        );
        assert_eq!(
            PolicyDenial::ConnectorNotAllowed.error_code(),
            ErrorCode::ConnectorNotAllowed
        );
    }

    #[test]
    fn default_policy_denies_everything() {
        assert!(
            ZonePolicy::default()
                .evaluate(&req("owner", "fcp.x", "a.b"))
                .is_err()
        );
    }

    #[test]
    fn invalid_pattern_fails_closed() {
        let mut p = policy();
        p.cap_deny.push("x".repeat(129));
        assert!(matches!(
            p.evaluate(&req("owner", "fcp.telegram", "telegram.send")),
            Err(PolicyDenial::InvalidPattern(PatternError::TooLong))
        ));
        assert!(p.validate().is_err());
    }

    #[test]
    fn time_checks() {
        let t = TimePolicy::default();
        assert_eq!(t.max_skew_secs, 120);
        let now = 1_000_000;
        assert!(t.check_timestamp(now, now + 120).is_ok());
        assert!(t.check_timestamp(now, now - 120).is_ok());
        assert_eq!(
            t.check_timestamp(now, now + 121).unwrap_err().error_code(),
            ErrorCode::TimestampOutOfSkew
        );
        assert!(t.check_timestamp(now, now - 121).is_err());
        assert!(t.check_timestamp(0, u64::MAX).is_err());
        assert!(t.check_iat_exp(now, now, now + 60).is_ok());
        assert!(t.check_iat_exp(now, now + 120, now + 200).is_ok());
        assert_eq!(
            t.check_iat_exp(now, now + 121, now + 200)
                .unwrap_err()
                .error_code(),
            ErrorCode::TimestampOutOfSkew
        );
        assert!(t.check_iat_exp(now, now - 500, now - 120).is_ok());
        assert_eq!(
            t.check_iat_exp(now, now - 500, now - 121)
                .unwrap_err()
                .error_code(),
            ErrorCode::TokenExpired
        );
        assert_eq!(
            t.check_iat_exp(now, now + 10, now)
                .unwrap_err()
                .error_code(),
            ErrorCode::InvalidToken
        );
        assert!(t.check_iat_exp(u64::MAX, u64::MAX - 1, u64::MAX).is_ok());
    }
}
