//! Owner-rooted enrollment: the happy path and every way a bundle can lie.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;

use fcp_core::{ErrorCode, HasErrorCode, ZoneId};
use fcp_node::NodeError;
use fcp_node::enroll::{self, EnrollmentBundle};
use fcp_node::home::Home;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

struct Mesh {
    _dir: tempfile::TempDir,
    owner: Home,
    n2: Home,
    bundle2: EnrollmentBundle,
}

fn mesh() -> Mesh {
    let dir = tempfile::tempdir().unwrap();
    let owner = Home::at(&dir.path().join("n1"));
    let n2 = Home::at(&dir.path().join("n2"));
    enroll::init(&owner, "node-1", "127.0.0.1:7401", 100, &mut rng(1)).unwrap();
    enroll::owner_init(&owner, 100, &mut rng(2)).unwrap();
    let id2 = enroll::init(&n2, "node-2", "127.0.0.2:7401", 100, &mut rng(3)).unwrap();
    let bundle2 = enroll::owner_enroll(&owner, &id2, &[ZoneId::work()], 101, &mut rng(4)).unwrap();
    Mesh {
        _dir: dir,
        owner,
        n2,
        bundle2,
    }
}

#[test]
fn enrolled_node_holds_exactly_its_zones_keys() {
    let m = mesh();
    let r = enroll::join(&m.n2, &enroll::encode_bundle(&m.bundle2).unwrap()).unwrap();
    assert_eq!(r.zones, vec!["z:work"]);
    assert_eq!(r.peers, vec!["node-1"]);
    let mem = enroll::load_membership(&m.n2).unwrap();
    assert!(mem.zones.contains_key(&ZoneId::work()));
    assert!(
        !mem.zones.contains_key(&ZoneId::private()),
        "not granted, no key"
    );
    // Both sides hold the same z:work key and ObjectIdKey.
    let owner_mem = enroll::load_membership(&m.owner).unwrap();
    assert_eq!(owner_mem.zones.len(), 5);
    let (a, b) = (
        &owner_mem.zones[&ZoneId::work()],
        &mem.zones[&ZoneId::work()],
    );
    assert_eq!(a.zone_key.key_bytes(), b.zone_key.key_bytes());
    assert_eq!(a.object_id_key.as_bytes(), b.object_id_key.as_bytes());
    // No key bytes in Debug output.
    let dbg = format!("{mem:?}");
    assert!(!dbg.contains(&hex::encode(b.zone_key.key_bytes())));
    assert!(!dbg.contains(&hex::encode(b.object_id_key.as_bytes())));
    // Secret files are 0600 in a 0700 directory.
    for f in [
        "keys/node-signing.key",
        "keys/node-encryption.key",
        "keys/node-issuance.key",
    ] {
        let mode = std::fs::metadata(m.n2.path(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let mode = std::fs::metadata(m.owner.path("owner/owner.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let mode = std::fs::metadata(m.owner.path("owner/zones"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
}

fn join_err(m: &Mesh, b: &EnrollmentBundle) -> NodeError {
    enroll::join(&m.n2, &enroll::encode_bundle(b).unwrap()).unwrap_err()
}

#[test]
fn forged_bundles_are_rejected() {
    let m = mesh();
    // A tampered attestation (another zone tag) no longer verifies.
    let mut b = m.bundle2.clone();
    b.attestation.tags.push("tag:fcp-private".into());
    assert_eq!(join_err(&m, &b).error_code(), ErrorCode::EnrollmentRejected);
    // A manifest granting a zone the enrollment does not list.
    let mut b = m.bundle2.clone();
    b.manifests[0].zone_id = ZoneId::private();
    assert_eq!(join_err(&m, &b).error_code(), ErrorCode::EnrollmentRejected);
    // Another owner's key with the same objects.
    let mut b = m.bundle2.clone();
    b.owner_pubkey.0 = fcp_crypto::OwnerSigningKey::generate(&mut rng(9))
        .public_key()
        .to_bytes();
    assert_eq!(join_err(&m, &b).error_code(), ErrorCode::EnrollmentRejected);
    // A bundle made for another node's keys.
    let dir = tempfile::tempdir().unwrap();
    let n3 = Home::at(&dir.path().join("n3"));
    let id3 = enroll::init(&n3, "node-2", "127.0.0.3:7401", 100, &mut rng(5)).unwrap();
    let b3 = enroll::owner_enroll(&m.owner, &id3, &[ZoneId::work()], 102, &mut rng(6)).unwrap();
    assert_eq!(
        join_err(&m, &b3).error_code(),
        ErrorCode::EnrollmentRejected
    );
    // Garbage is a typed error, not a panic.
    let e = enroll::join(&m.n2, b"\xa1\x00garbage").unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::EnrollmentRejected);
    // Nothing was imported by any of these.
    assert!(enroll::load_membership(&m.n2).is_err());
}

#[test]
fn a_node_cannot_switch_owners_and_non_owners_cannot_enroll() {
    let m = mesh();
    enroll::join(&m.n2, &enroll::encode_bundle(&m.bundle2).unwrap()).unwrap();
    // A second, independent owner enrolls the same node: refused.
    let dir = tempfile::tempdir().unwrap();
    let other = Home::at(&dir.path().join("o"));
    enroll::init(&other, "other", "127.0.0.9:7401", 100, &mut rng(7)).unwrap();
    enroll::owner_init(&other, 100, &mut rng(8)).unwrap();
    let id2 = enroll::identity(&m.n2).unwrap();
    let b = enroll::owner_enroll(&other, &id2, &[ZoneId::work()], 103, &mut rng(10)).unwrap();
    assert_eq!(join_err(&m, &b).error_code(), ErrorCode::EnrollmentRejected);
    // A node without the owner key cannot enroll anyone.
    let e = enroll::owner_enroll(&m.n2, &id2, &[ZoneId::work()], 104, &mut rng(11)).unwrap_err();
    assert!(matches!(e, NodeError::NotOwner(_)));
    // Re-running init or owner init does not overwrite keys.
    assert!(matches!(
        enroll::init(&m.n2, "node-2", "127.0.0.2:1", 1, &mut rng(12)),
        Err(NodeError::AlreadyExists(_))
    ));
    assert!(matches!(
        enroll::owner_init(&m.owner, 1, &mut rng(13)),
        Err(NodeError::AlreadyExists(_))
    ));
}

#[test]
fn bad_arguments_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let h = Home::at(dir.path());
    for (id, listen) in [
        ("", "127.0.0.1:1"),
        ("Upper", "127.0.0.1:1"),
        ("ok", "nope"),
        ("-x", "127.0.0.1:1"),
    ] {
        let e = enroll::init(&h, id, listen, 1, &mut rng(1)).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidArgument, "{id} {listen}");
    }
    assert!(matches!(
        enroll::identity(&h),
        Err(NodeError::NotInitialised(_))
    ));
}
