//! Data-driven table of the spec §6.2 taint decision rules
//! (`tests/data/taint_cases.json`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fcp_core::provenance::{Provenance, TaintDecision, TaintFlags, TaintReduction};
use fcp_core::{ObjectId, SafetyTier, ZoneId};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    taint: Vec<String>,
    reductions: Vec<Vec<String>>,
    origin_integrity: u8,
    tier: SafetyTier,
    target_integrity: u8,
    expected: TaintDecision,
}

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

fn flags(names: &[String]) -> TaintFlags {
    names.iter().fold(TaintFlags::NONE, |acc, n| {
        acc | match n.as_str() {
            "PUBLIC_INPUT" => TaintFlags::PUBLIC_INPUT,
            "EXTERNAL_INPUT" => TaintFlags::EXTERNAL_INPUT,
            "UNVERIFIED_LINK" => TaintFlags::UNVERIFIED_LINK,
            "USER_SUPPLIED" => TaintFlags::USER_SUPPLIED,
            "PROMPT_SURFACE" => TaintFlags::PROMPT_SURFACE,
            other => panic!("unknown flag {other}"),
        }
    })
}

#[test]
fn taint_decision_table() {
    let text = include_str!("data/taint_cases.json");
    let file: File = serde_json::from_str(text).unwrap();
    assert!(file.cases.len() >= 15);
    for c in &file.cases {
        let mut p = Provenance::new(ZoneId::public(), c.origin_integrity, 10, flags(&c.taint), 0);
        for (i, r) in c.reductions.iter().enumerate() {
            p.taint_reductions.push(TaintReduction {
                clears: flags(r),
                by_attestation: ObjectId::from_bytes([u8::try_from(i).unwrap(); 32]),
                applied_at: 1,
            });
        }
        assert_eq!(
            p.can_invoke(c.tier, c.target_integrity),
            c.expected,
            "case {:?}",
            c.name
        );
    }
}
