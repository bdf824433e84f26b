//! Zone hierarchy and definition (spec §5.1, §5.2).

use serde::{Deserialize, Serialize};

use crate::ids::{IdError, ZoneId};
use crate::policy::ZonePolicy;

/// Integrity and confidentiality labels of a zone, each 0..=100 (spec §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ZoneLevels {
    /// Higher = more trusted inputs.
    pub integrity: u8,
    /// Higher = more secret data.
    pub confidentiality: u8,
}

/// The five standard zones (spec §3.4, §5.1), highest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StandardZone {
    /// `z:owner` — integrity 100, confidentiality 100.
    Owner,
    /// `z:private` — 80 / 90.
    Private,
    /// `z:work` — 60 / 70.
    Work,
    /// `z:community` — 40 / 40.
    Community,
    /// `z:public` — 20 / 10.
    Public,
}

impl StandardZone {
    /// All five, highest integrity first.
    pub const ALL: [StandardZone; 5] = [
        Self::Owner,
        Self::Private,
        Self::Work,
        Self::Community,
        Self::Public,
    ];

    /// The zone id text, e.g. `z:private`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "z:owner",
            Self::Private => "z:private",
            Self::Work => "z:work",
            Self::Community => "z:community",
            Self::Public => "z:public",
        }
    }

    /// The zone id.
    pub fn zone_id(self) -> ZoneId {
        match self {
            Self::Owner => ZoneId::owner(),
            Self::Private => ZoneId::private(),
            Self::Work => ZoneId::work(),
            Self::Community => ZoneId::community(),
            Self::Public => ZoneId::public(),
        }
    }

    /// Levels from the spec §5.1 lattice.
    pub const fn levels(self) -> ZoneLevels {
        let (integrity, confidentiality) = match self {
            Self::Owner => (100, 100),
            Self::Private => (80, 90),
            Self::Work => (60, 70),
            Self::Community => (40, 40),
            Self::Public => (20, 10),
        };
        ZoneLevels {
            integrity,
            confidentiality,
        }
    }

    /// Tailscale tag, e.g. `tag:fcp-private`.
    pub const fn tailscale_tag(self) -> &'static str {
        match self {
            Self::Owner => "tag:fcp-owner",
            Self::Private => "tag:fcp-private",
            Self::Work => "tag:fcp-work",
            Self::Community => "tag:fcp-community",
            Self::Public => "tag:fcp-public",
        }
    }

    /// The standard zone with this id, if any.
    pub fn from_zone_id(id: &ZoneId) -> Option<Self> {
        Self::ALL.into_iter().find(|z| z.as_str() == id.as_str())
    }
}

/// Standard levels for a zone id, if it is one of the five standard zones.
pub fn standard_levels(id: &ZoneId) -> Option<ZoneLevels> {
    StandardZone::from_zone_id(id).map(StandardZone::levels)
}

/// Zone definition (spec §5.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    /// Zone identifier.
    pub id: ZoneId,
    /// Human-readable name.
    pub name: String,
    /// Integrity level 0..=100.
    pub integrity_level: u8,
    /// Confidentiality level 0..=100.
    pub confidentiality_level: u8,
    /// Active zone key id.
    #[serde(with = "crate::cbor::byte_array")]
    pub active_zone_key_id: [u8; 8],
    /// Tailscale ACL tag.
    pub tailscale_tag: String,
    /// Parent zone.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent: Option<ZoneId>,
    /// Access policy.
    pub policy: ZonePolicy,
    /// Port for symbol frames (port-gating).
    pub symbol_port: u16,
    /// Port for control-plane traffic (port-gating).
    pub control_port: u16,
}

impl Zone {
    /// A standard zone with its spec levels and tag, a deny-all policy, the
    /// given key id and ports, and its parent in the §5.1 chain.
    pub fn standard(
        which: StandardZone,
        active_zone_key_id: [u8; 8],
        symbol_port: u16,
        control_port: u16,
    ) -> Self {
        let levels = which.levels();
        let parent = match which {
            StandardZone::Owner => None,
            StandardZone::Private => Some(ZoneId::owner()),
            StandardZone::Work => Some(ZoneId::private()),
            StandardZone::Community => Some(ZoneId::work()),
            StandardZone::Public => Some(ZoneId::community()),
        };
        Self {
            id: which.zone_id(),
            name: which.as_str().trim_start_matches("z:").to_owned(),
            integrity_level: levels.integrity,
            confidentiality_level: levels.confidentiality,
            active_zone_key_id,
            tailscale_tag: which.tailscale_tag().to_owned(),
            parent,
            policy: ZonePolicy::default(),
            symbol_port,
            control_port,
        }
    }

    /// Levels of this zone.
    pub fn levels(&self) -> ZoneLevels {
        ZoneLevels {
            integrity: self.integrity_level,
            confidentiality: self.confidentiality_level,
        }
    }

    /// Check levels are within 0..=100 and the tag matches the id mapping.
    pub fn validate(&self) -> Result<(), IdError> {
        if self.integrity_level > 100 || self.confidentiality_level > 100 {
            return Err(IdError::InvalidZoneId("levels must be 0..=100"));
        }
        if self.id.to_tailscale_tag()? != self.tailscale_tag {
            return Err(IdError::TailscaleTag(
                "tailscale_tag does not match zone id",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lattice_matches_spec() {
        let want = [
            ("z:owner", 100, 100, "tag:fcp-owner"),
            ("z:private", 80, 90, "tag:fcp-private"),
            ("z:work", 60, 70, "tag:fcp-work"),
            ("z:community", 40, 40, "tag:fcp-community"),
            ("z:public", 20, 10, "tag:fcp-public"),
        ];
        for (z, (id, i, c, tag)) in StandardZone::ALL.into_iter().zip(want) {
            assert_eq!(z.as_str(), id);
            assert_eq!(z.zone_id().as_str(), id);
            assert_eq!(
                z.levels(),
                ZoneLevels {
                    integrity: i,
                    confidentiality: c
                }
            );
            assert_eq!(z.tailscale_tag(), tag);
            assert_eq!(z.zone_id().to_tailscale_tag().unwrap(), tag);
            assert_eq!(StandardZone::from_zone_id(&z.zone_id()), Some(z));
            let zone = Zone::standard(z, [0; 8], 7001, 7002);
            assert!(zone.validate().is_ok());
        }
        assert_eq!(standard_levels(&ZoneId::new("z:other").unwrap()), None);
    }
}
