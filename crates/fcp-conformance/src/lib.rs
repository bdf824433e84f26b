//! Known-answer vectors (profile §7).
//!
//! The vectors under `conformance/vectors/` were generated once by
//! `examples/gen_vectors.rs` and are only read afterwards. This crate recomputes
//! every case with the project's own code: the conformance test, the
//! `fcp conformance verify [DIR]` command and any other implementation's CI can
//! use the same files.
#![forbid(unsafe_code)]

mod case;
mod kinds;
pub mod session_handshake;

use std::{fmt, fs, path::Path};

pub use case::Case;
pub use kinds::{KINDS, check_case, claims_to_json};

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// One case that did not recompute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// File the case came from.
    pub file: String,
    /// Vector kind (the top-level key).
    pub kind: String,
    /// Index of the case in its array (`None` when the whole file or kind failed).
    pub index: Option<usize>,
    /// Why it failed.
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{} {}[{}]: {}", self.file, self.kind, i, self.reason),
            None => write!(f, "{} {}: {}", self.file, self.kind, self.reason),
        }
    }
}

/// Outcome of verifying one or more vector files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Cases that recomputed byte for byte.
    pub passed: usize,
    /// Cases (or unreadable files / unknown kinds) that did not.
    pub failed: usize,
    /// Details of each failure.
    pub failures: Vec<Failure>,
    /// Number of cases per kind seen, passed or not.
    pub per_kind: std::collections::BTreeMap<String, usize>,
}

impl Report {
    fn fail(&mut self, file: &str, kind: &str, index: Option<usize>, reason: String) {
        self.failed += 1;
        self.failures.push(Failure {
            file: file.to_owned(),
            kind: kind.to_owned(),
            index,
            reason,
        });
    }

    /// Merge another report into this one.
    pub fn absorb(&mut self, other: Report) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.failures.extend(other.failures);
        for (k, n) in other.per_kind {
            *self.per_kind.entry(k).or_default() += n;
        }
    }

    /// The closing line, `N passed, M failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

/// Errors reading a vector directory (as opposed to cases that fail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConformanceError {
    /// The directory could not be read.
    #[error("cannot read vector directory {path}: {source}")]
    ReadDir {
        /// The directory.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The directory holds no `*.json` file.
    #[error("no *.json vector files in {0}")]
    Empty(String),
}

/// Verify one vector file's text (profile §7 layout: `{kind: [case, ...], ...}`).
pub fn verify_text(file: &str, text: &str) -> Report {
    let mut report = Report::default();
    let root: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            report.fail(file, "-", None, format!("not JSON: {e}"));
            return report;
        }
    };
    let Some(obj) = root.as_object() else {
        report.fail(file, "-", None, "top level is not an object".into());
        return report;
    };
    for (kind, cases) in obj {
        let Some(cases) = cases.as_array() else {
            report.fail(file, kind, None, "cases are not an array".into());
            continue;
        };
        *report.per_kind.entry(kind.clone()).or_default() += cases.len();
        for (i, case) in cases.iter().enumerate() {
            let outcome = match case.as_object() {
                Some(map) => check_case(kind, &Case::new(map)),
                None => Err("case is not an object".into()),
            };
            match outcome {
                Ok(()) => report.passed += 1,
                Err(reason) => report.fail(file, kind, Some(i), reason),
            }
        }
    }
    report
}

/// Verify every `*.json` file of a directory.
pub fn verify_dir(dir: &Path) -> Result<Report, ConformanceError> {
    let rd = fs::read_dir(dir).map_err(|source| ConformanceError::ReadDir {
        path: dir.display().to_string(),
        source,
    })?;
    let mut paths: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(ConformanceError::Empty(dir.display().to_string()));
    }
    let mut report = Report::default();
    for p in paths {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match fs::read_to_string(&p) {
            Ok(text) => report.absorb(verify_text(&name, &text)),
            Err(e) => report.fail(&name, "-", None, format!("unreadable: {e}")),
        }
    }
    Ok(report)
}

/// Verify the vectors compiled into this binary.
pub fn verify_embedded() -> Report {
    let mut report = Report::default();
    for (name, text) in EMBEDDED {
        report.absorb(verify_text(name, text));
    }
    report
}
