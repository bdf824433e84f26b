//! The committed vectors recompute with the project's code, every required kind
//! has at least three cases, and every byte field matters (a flipped nibble in any
//! top-level hex field makes its case fail, so the checks cannot pass vacuously).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use fcp_conformance::{Case, check_case, verify_dir, verify_embedded};

fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance/vectors")
}

/// The kinds the foundation issue requires (profile §7).
const REQUIRED: &[&str] = &[
    "zone_id_hash",
    "schema_hash",
    "object_id",
    "sender_subkey",
    "symbol_aead",
    "session_keys",
    "session_mac",
    "session_handshake",
    "key_wrap",
    "capability_token",
    "signature",
    "shamir",
];

#[test]
fn committed_vectors_recompute() {
    let report = verify_dir(&vector_dir()).unwrap();
    for f in &report.failures {
        eprintln!("FAIL {f}");
    }
    assert_eq!(report.failed, 0, "{}", report.summary());
    assert!(report.passed > 0);
    for kind in REQUIRED {
        let n = report.per_kind.get(*kind).copied().unwrap_or(0);
        assert!(n >= 3, "kind {kind} has {n} cases, need >= 3");
    }
}

#[test]
fn embedded_vectors_match_the_directory() {
    let dir = verify_dir(&vector_dir()).unwrap();
    let emb = verify_embedded();
    assert_eq!(dir, emb, "the binary embeds a different set of vectors");
}

fn is_hex(s: &str) -> bool {
    s.len() >= 2
        && s.len().is_multiple_of(2)
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn every_hex_field_is_checked() {
    let mut mutated = 0usize;
    for entry in std::fs::read_dir(vector_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let root: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (kind, cases) in root.as_object().unwrap() {
            for (i, case) in cases.as_array().unwrap().iter().enumerate() {
                let obj = case.as_object().unwrap();
                check_case(kind, &Case::new(obj)).unwrap();
                for (field, value) in obj {
                    let Some(s) = value.as_str() else { continue };
                    if !is_hex(s) {
                        continue;
                    }
                    // Flip one nibble in the middle of the field.
                    let mut chars: Vec<char> = s.chars().collect();
                    let pos = chars.len() / 2;
                    chars[pos] = if chars[pos] == '0' { '1' } else { '0' };
                    let mut bad = obj.clone();
                    bad.insert(field.clone(), chars.into_iter().collect::<String>().into());
                    assert!(
                        check_case(kind, &Case::new(&bad)).is_err(),
                        "{kind}[{i}] still passes with field `{field}` changed"
                    );
                    mutated += 1;
                }
            }
        }
    }
    assert!(mutated > 30, "only {mutated} fields mutated");
}

#[test]
fn unknown_kinds_and_bad_files_fail_loudly() {
    let r = fcp_conformance::verify_text("x.json", r#"{"no_such_kind": [{}]}"#);
    assert_eq!((r.passed, r.failed), (0, 1));
    let r = fcp_conformance::verify_text("x.json", "not json");
    assert_eq!(r.failed, 1);
    let r = fcp_conformance::verify_text(
        "x.json",
        r#"{"zone_id_hash": [{"zone_id": "z:owner", "hash": "00"}]}"#,
    );
    assert_eq!((r.passed, r.failed), (0, 1));
    let r = fcp_conformance::verify_text(
        "x.json",
        r#"{"zone_id_hash": [{"zone_id": "Z:BAD", "hash": "00"}]}"#,
    );
    assert_eq!(r.failed, 1);
    assert!(verify_dir(std::path::Path::new("/nonexistent/fcp-vectors")).is_err());
}
