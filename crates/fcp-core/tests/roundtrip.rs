//! Property tests: canonical CBOR round-trips for every core type, and the
//! decoders never panic on arbitrary bytes (profile §2).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fcp_core::cbor::{self, CborError, Value};
use fcp_core::object::{
    ObjectHeader, ObjectPlacementPolicy, RetentionClass, StorageMeta, StoredObject,
};
use fcp_core::policy::{AccessRequest, TimePolicy, ZonePolicy};
use fcp_core::provenance::{
    Provenance, TaintDecision, TaintFlags, TaintReduction, TrustGrade, ZoneCrossing,
};
use fcp_core::safety::{ApprovalMode, IdempotencyClass, RiskLevel, SafetyTier};
use fcp_core::zone::{StandardZone, Zone};
use fcp_core::{EpochId, ObjectId, ObjectIdKey, SchemaHash, SchemaId, ZoneId, ZoneIdHash};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// encode -> strict decode == original; encoding is stable and canonical.
fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let a = cbor::to_canonical(v).unwrap();
    let back: T = cbor::from_canonical_strict(&a).unwrap();
    assert_eq!(&back, v);
    assert_eq!(cbor::to_canonical(&back).unwrap(), a, "encoding not stable");
    assert_eq!(cbor::encode_value(&cbor::decode_value(&a).unwrap()), a);
}

fn zone_id() -> impl Strategy<Value = ZoneId> {
    "[a-z0-9:_-]{1,64}".prop_map(|s| ZoneId::new(&s).unwrap())
}

fn schema_id() -> impl Strategy<Value = SchemaId> {
    (
        "[a-z0-9._-]{1,20}",
        "[A-Za-z0-9_.-]{1,20}",
        any::<(u32, u32, u32)>(),
    )
        .prop_map(|(ns, n, v)| SchemaId::new(&ns, &n, v).unwrap())
}

fn object_id() -> impl Strategy<Value = ObjectId> {
    any::<[u8; 32]>().prop_map(ObjectId::from_bytes)
}

fn taint() -> impl Strategy<Value = TaintFlags> {
    (0u32..32).prop_map(|b| TaintFlags::from_bits(b).unwrap())
}

fn tier() -> impl Strategy<Value = SafetyTier> {
    prop_oneof![
        Just(SafetyTier::Safe),
        Just(SafetyTier::Risky),
        Just(SafetyTier::Dangerous),
        Just(SafetyTier::Forbidden)
    ]
}

fn provenance() -> impl Strategy<Value = Provenance> {
    (
        zone_id(),
        zone_id(),
        any::<(u8, u8)>(),
        proptest::option::of("[ -~]{0,20}"),
        taint(),
        proptest::collection::vec((taint(), object_id(), any::<u64>()), 0..3),
        proptest::collection::vec(
            (
                zone_id(),
                zone_id(),
                any::<u64>(),
                proptest::option::of(object_id()),
            ),
            0..3,
        ),
        any::<u64>(),
    )
        .prop_map(|(oz, cz, (i, c), pr, t, reds, xs, at)| Provenance {
            origin_zone: oz,
            current_zone: cz,
            origin_integrity: i,
            origin_confidentiality: c,
            origin_principal: pr,
            taint: t,
            taint_reductions: reds
                .into_iter()
                .map(|(clears, by_attestation, applied_at)| TaintReduction {
                    clears,
                    by_attestation,
                    applied_at,
                })
                .collect(),
            zone_crossings: xs
                .into_iter()
                .map(
                    |(from_zone, to_zone, crossed_at, authorized_by)| ZoneCrossing {
                        from_zone,
                        to_zone,
                        crossed_at,
                        authorized_by,
                    },
                )
                .collect(),
            created_at: at,
        })
}

fn placement() -> impl Strategy<Value = ObjectPlacementPolicy> {
    (
        any::<u8>(),
        any::<u32>(),
        proptest::collection::vec("[ -~]{0,12}", 0..3),
        proptest::collection::vec("[ -~]{0,12}", 0..3),
        any::<u32>(),
    )
        .prop_map(|(min_nodes, f, preferred_devices, excluded_devices, c)| {
            ObjectPlacementPolicy {
                min_nodes,
                max_node_fraction_bps: f,
                preferred_devices,
                excluded_devices,
                target_coverage_bps: c,
            }
        })
}

fn retention() -> impl Strategy<Value = RetentionClass> {
    prop_oneof![
        Just(RetentionClass::Pinned),
        Just(RetentionClass::Ephemeral),
        any::<u64>().prop_map(|expires_at| RetentionClass::Lease { expires_at }),
    ]
}

fn header() -> impl Strategy<Value = ObjectHeader> {
    (
        schema_id(),
        zone_id(),
        any::<u64>(),
        provenance(),
        proptest::collection::vec(object_id(), 0..4),
        proptest::option::of(any::<u64>()),
        proptest::option::of(placement()),
    )
        .prop_map(
            |(schema, zone_id, created_at, provenance, refs, ttl_secs, placement)| ObjectHeader {
                schema,
                zone_id,
                created_at,
                provenance,
                refs,
                ttl_secs,
                placement,
            },
        )
}

fn patterns() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[a-z.*?]{0,10}", 0..3)
}

proptest! {
    #[test]
    fn ids_roundtrip(z in zone_id(), s in schema_id(), o in object_id(), e in any::<u64>(), h in any::<[u8; 32]>()) {
        check(&z);
        check(&s);
        check(&o);
        check(&EpochId::new(e));
        check(&ZoneIdHash::from_bytes(h));
        check(&SchemaHash::from_bytes(h));
        prop_assert_eq!(z.to_string().parse::<ZoneId>().unwrap(), z.clone());
        prop_assert_eq!(SchemaId::parse(&s.to_string()).unwrap(), s.clone());
        prop_assert_eq!(o.to_string().parse::<ObjectId>().unwrap(), o);
    }

    #[test]
    fn provenance_roundtrip(p in provenance()) {
        check(&p);
        check(&p.taint);
    }

    #[test]
    fn header_and_stored_object_roundtrip(h in header(), r in retention(), body in proptest::collection::vec(any::<u8>(), 0..64), key in any::<[u8; 32]>()) {
        check(&h);
        check(&r);
        check(&StorageMeta { retention: r });
        let key = ObjectIdKey::from_bytes(key);
        let mut b = h.schema.hash().as_bytes().to_vec();
        b.extend_from_slice(&body);
        let so = StoredObject {
            object_id: StoredObject::derive_id(&h, &b, &key).unwrap(),
            header: h,
            body: b,
            storage: StorageMeta { retention: r },
        };
        check(&so);
        prop_assert!(so.verify_id(&key).is_ok());
    }

    #[test]
    fn policy_and_enums_roundtrip(
        pa in patterns(), pd in patterns(), ca in patterns(), cd in patterns(), ka in patterns(), kd in patterns(),
        dd in any::<bool>(), skew in any::<u64>(), t in tier(), who in "[ -~]{1,10}",
    ) {
        let zp = ZonePolicy { principals_allow: pa, principals_deny: pd, connectors_allow: ca, connectors_deny: cd, cap_allow: ka, cap_deny: kd, default_deny: dd };
        check(&zp);
        check(&TimePolicy { max_skew_secs: skew });
        check(&AccessRequest { principal: who.clone(), connector: who.clone(), capability: who });
        check(&t);
        for r in [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High, RiskLevel::Critical] { check(&r); }
        for i in [IdempotencyClass::None, IdempotencyClass::BestEffort, IdempotencyClass::Strict] { check(&i); }
        for a in [ApprovalMode::None, ApprovalMode::Policy, ApprovalMode::Interactive, ApprovalMode::ApprovalRequired] { check(&a); }
        for g in [TrustGrade::Owner, TrustGrade::Paired, TrustGrade::TrustedRemote, TrustGrade::Untrusted] { check(&g); }
        for d in [TaintDecision::Allow, TaintDecision::RequireElevation, TaintDecision::DenyForbiddenTier, TaintDecision::DenyPublicDangerous] { check(&d); }
        let mut z = Zone::standard(StandardZone::Work, [1; 8], 1, 2);
        z.policy = zp;
        check(&z);
        for s in StandardZone::ALL { check(&s); }
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = cbor::decode_value(&bytes);
        let _ = cbor::from_canonical::<ObjectHeader>(&bytes);
        let _ = cbor::from_canonical_strict::<StoredObject>(&bytes);
        let _ = cbor::from_canonical::<Provenance>(&bytes);
        let _ = cbor::from_canonical::<ZonePolicy>(&bytes);
    }

    #[test]
    fn decoded_values_are_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(v) = cbor::decode_value(&bytes) {
            prop_assert_eq!(cbor::encode_value(&v), bytes);
        }
    }

    #[test]
    fn mutated_canonical_never_panics(h in header(), idx in any::<usize>(), byte in any::<u8>()) {
        let mut enc = cbor::to_canonical(&h).unwrap();
        let i = idx % enc.len();
        enc[i] = byte;
        let _ = cbor::from_canonical_strict::<ObjectHeader>(&enc);
        enc.truncate(i);
        prop_assert!(cbor::from_canonical::<ObjectHeader>(&enc).is_err());
    }

    #[test]
    fn glob_star_matches_everything(t in "[ -~]{0,40}") {
        prop_assert!(fcp_core::glob::glob_match("*", &t).unwrap());
        prop_assert!(fcp_core::glob::glob_match(&t.replace(['*', '?'], "x"), &t.replace(['*', '?'], "x")).unwrap_or(true));
    }
}

#[test]
fn header_known_map_keys() {
    // Struct = map keyed by snake_case field names; None fields omitted (profile §2).
    let h = ObjectHeader {
        schema: SchemaId::parse("fcp.core:X@1.0.0").unwrap(),
        zone_id: ZoneId::private(),
        created_at: 1,
        provenance: Provenance::new(ZoneId::private(), 80, 90, TaintFlags::NONE, 1),
        refs: vec![],
        ttl_secs: None,
        placement: None,
    };
    let v = cbor::decode_value(&cbor::to_canonical(&h).unwrap()).unwrap();
    let m = v.as_map().unwrap();
    let keys: Vec<&str> = m.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["refs", "schema", "zone_id", "created_at", "provenance"]
    );
    assert_eq!(v.get("schema").unwrap(), &Value::from("fcp.core:X@1.0.0"));
}

#[test]
fn non_canonical_header_rejected() {
    let h = ObjectHeader {
        schema: SchemaId::parse("fcp.core:X@1.0.0").unwrap(),
        zone_id: ZoneId::private(),
        created_at: 1,
        provenance: Provenance::new(ZoneId::private(), 80, 90, TaintFlags::NONE, 1),
        refs: vec![],
        ttl_secs: None,
        placement: None,
    };
    let enc = cbor::to_canonical(&h).unwrap();
    // Widen the map header a5 -> b8 05 (non-shortest length).
    assert_eq!(enc[0], 0xa5);
    let mut bad = vec![0xb8, 0x05];
    bad.extend_from_slice(&enc[1..]);
    assert_eq!(
        cbor::from_canonical::<ObjectHeader>(&bad),
        Err(CborError::NonCanonical)
    );
    let mut trailing = enc.clone();
    trailing.push(0);
    assert_eq!(
        cbor::from_canonical::<ObjectHeader>(&trailing),
        Err(CborError::TrailingBytes)
    );
}
