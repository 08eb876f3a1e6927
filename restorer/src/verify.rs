//! Verification of an extracted bundle: every entry's sha256 against `checksums.sha256`, and the
//! manifest against the checksums. Nothing is restored before this passes.

use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::digest::{sha256_file, Checksums};
use crate::error::IoContext;
use crate::manifest::Manifest;
use crate::{layout, Error, Result};

/// One thing wrong with one entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The entry at fault.
    pub entry: String,
    /// What is wrong, in words.
    pub problem: String,
    /// The digest the bundle promised, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The digest found, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

/// The outcome of [`verify_dir`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Entries whose digest was computed.
    pub entries_checked: usize,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Everything wrong; empty means the bundle is intact.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The error a restore refuses with, naming the entries at fault.
    pub fn into_error(self) -> Error {
        let list: Vec<String> = self
            .problems
            .iter()
            .map(|p| match (&p.expected, &p.actual) {
                (Some(e), Some(a)) => {
                    format!("{}: {} (expected {e}, actual {a})", p.entry, p.problem)
                }
                _ => format!("{}: {}", p.entry, p.problem),
            })
            .collect();
        Error::Corrupt(format!(
            "{} bad entr{}: {}",
            list.len(),
            if list.len() == 1 { "y" } else { "ies" },
            list.join("; ")
        ))
    }
}

/// Verifies the bundle extracted in `dir`. `progress` is called with each entry name before it
/// is hashed. Fails outright (without a report) when the checksum list or the manifest cannot be
/// read at all; otherwise a report listing every problem found, and the manifest unless its own
/// digest was wrong (an unverified manifest is never returned).
pub fn verify_dir(dir: &Path, mut progress: impl FnMut(&str, u64)) -> Result<(Option<Manifest>, VerifyReport)> {
    let sums_path = dir.join(layout::CHECKSUMS);
    let text = match fs::read_to_string(&sums_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Corrupt(format!(
                "{} is missing from {}: the bundle is truncated or was not fully extracted (it is the last entry)",
                layout::CHECKSUMS,
                dir.display()
            )))
        }
        Err(e) => return Err(Error::io("reading", sums_path, e)),
    };
    let sums = Checksums::parse(&text)?;
    if !sums.0.contains_key(layout::MANIFEST) {
        return Err(Error::Corrupt(format!("{} does not list {}", layout::CHECKSUMS, layout::MANIFEST)));
    }

    let mut report = VerifyReport { entries_checked: 0, bytes_checked: 0, problems: Vec::new() };
    for (entry, expected) in &sums.0 {
        let path = dir.join(entry);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.problems.push(Problem {
                    entry: entry.clone(),
                    problem: "missing".into(),
                    expected: Some(expected.clone()),
                    actual: None,
                });
                continue;
            }
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        if !meta.file_type().is_file() {
            report.problems.push(Problem {
                entry: entry.clone(),
                problem: "is not a regular file".into(),
                expected: Some(expected.clone()),
                actual: None,
            });
            continue;
        }
        progress(entry, meta.len());
        let (actual, len) = sha256_file(&path)?;
        report.entries_checked += 1;
        report.bytes_checked += len;
        if &actual != expected {
            report.problems.push(Problem {
                entry: entry.clone(),
                problem: "digest mismatch".into(),
                expected: Some(expected.clone()),
                actual: Some(actual),
            });
        }
    }

    // The manifest is only trusted once its own digest matched.
    let manifest_text = fs::read_to_string(dir.join(layout::MANIFEST)).ctx("reading", dir.join(layout::MANIFEST));
    if report.problems.iter().any(|p| p.entry == layout::MANIFEST) {
        return Ok((None, report));
    }
    let manifest = Manifest::from_json(&manifest_text?)?;

    // Cross-check: the manifest and the checksum list must describe the same entries.
    let claimed = manifest.digests();
    for (entry, digest) in &claimed {
        match sums.0.get(entry) {
            None => report.problems.push(Problem {
                entry: entry.clone(),
                problem: format!("listed in {} but not in {}", layout::MANIFEST, layout::CHECKSUMS),
                expected: Some(digest.clone()),
                actual: None,
            }),
            Some(listed) if listed != digest => report.problems.push(Problem {
                entry: entry.clone(),
                problem: format!("{} and {} disagree", layout::MANIFEST, layout::CHECKSUMS),
                expected: Some(digest.clone()),
                actual: Some(listed.clone()),
            }),
            Some(_) => {}
        }
    }
    for entry in sums.0.keys() {
        if entry != layout::MANIFEST && !claimed.contains_key(entry) {
            report.problems.push(Problem {
                entry: entry.clone(),
                problem: format!("listed in {} but unknown to {}", layout::CHECKSUMS, layout::MANIFEST),
                expected: None,
                actual: None,
            });
        }
    }
    Ok((Some(manifest), report))
}
