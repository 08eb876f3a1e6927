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

    /// One `BAD  entry: problem` block per problem (with expected and actual digests), as both
    /// `restore verify` and `packer verify` print them.
    pub fn render_problems(&self) -> String {
        let mut s = String::new();
        for p in &self.problems {
            match (&p.expected, &p.actual) {
                (Some(e), Some(a)) => {
                    s += &format!("BAD  {}: {}\n     expected {e}\n     actual   {a}\n", p.entry, p.problem)
                }
                _ => s += &format!("BAD  {}: {}\n", p.entry, p.problem),
            }
        }
        s
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
    cross_check(&manifest, &sums, &mut report);
    Ok((Some(manifest), report))
}

/// Verifies only the manifest and the named entries of an extracted bundle (a selective
/// restore must not hash gigabytes of dumps it does not use). Returns the manifest.
pub fn verify_entries(dir: &Path, entries: &[&str]) -> Result<Manifest> {
    let sums_path = dir.join(layout::CHECKSUMS);
    let sums = Checksums::parse(&fs::read_to_string(&sums_path).ctx("reading", &sums_path)?)?;
    let mut report = VerifyReport { entries_checked: 0, bytes_checked: 0, problems: Vec::new() };
    for entry in std::iter::once(layout::MANIFEST).chain(entries.iter().copied()) {
        let expected = sums.0.get(entry).cloned();
        let actual = sha256_file(&dir.join(entry)).map(|d| d.0).ok();
        if expected.is_none() || actual != expected {
            report.problems.push(Problem {
                entry: entry.to_string(),
                problem: "digest mismatch or missing".into(),
                expected,
                actual,
            });
        }
    }
    if !report.ok() {
        return Err(report.into_error());
    }
    let manifest = Manifest::from_json(
        &fs::read_to_string(dir.join(layout::MANIFEST)).ctx("reading", dir.join(layout::MANIFEST))?,
    )?;
    cross_check(&manifest, &sums, &mut report);
    if !report.ok() {
        return Err(report.into_error());
    }
    Ok(manifest)
}

/// The manifest and the checksum list must describe the same entries with the same digests.
fn cross_check(manifest: &Manifest, sums: &Checksums, report: &mut VerifyReport) {
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
}

/// Verifies a bundle file without extracting it: every entry is hashed as the archive streams
/// past (no disk space needed), then compared with the checksum list (the last entry) and the
/// manifest (the first). The same rules as [`verify_dir`]; an archive that cannot be read to
/// its end is corrupt.
pub fn verify_archive(bundle: &Path, mut progress: impl FnMut(&str, u64)) -> Result<(Option<Manifest>, VerifyReport)> {
    let mut archive = crate::unpack::open(bundle)?;
    let damaged = |near: &str, e: std::io::Error| crate::unpack::damaged(bundle, near, e);
    let mut computed: std::collections::BTreeMap<String, (String, u64)> = std::collections::BTreeMap::new();
    let mut manifest_text = None;
    let mut sums_text = None;
    let mut last = String::new();
    for entry in archive.entries().map_err(|e| damaged("", e))? {
        let near = if last.is_empty() { String::new() } else { format!(" after entry {last}") };
        let mut entry = entry.map_err(|e| damaged(&near, e))?;
        let name = entry.path().map_err(|e| damaged(&near, e))?.to_string_lossy().into_owned();
        layout::check_entry_name(&name)?;
        if !matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous) {
            return Err(Error::Unsafe(format!("{name} is not a regular file")));
        }
        progress(&name, entry.size());
        let mut hashing = crate::digest::HashingReader::new(&mut entry);
        let mut text = String::new();
        if name == layout::MANIFEST || name == layout::CHECKSUMS {
            std::io::Read::read_to_string(&mut hashing, &mut text).map_err(|e| damaged(&format!(" in {name}"), e))?;
        } else {
            std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| damaged(&format!(" in {name}"), e))?;
        }
        let (digest, len) = hashing.finish();
        if name == layout::MANIFEST {
            manifest_text = Some(text);
        } else if name == layout::CHECKSUMS {
            sums_text = Some(text);
        }
        if computed.insert(name.clone(), (digest, len)).is_some() {
            return Err(Error::Corrupt(format!("{name} appears twice in the archive")));
        }
        last = name;
    }
    let sums_text = sums_text.ok_or_else(|| {
        Error::Corrupt(format!(
            "{}: no {} entry: the bundle is truncated (it is the last entry)",
            bundle.display(),
            layout::CHECKSUMS
        ))
    })?;
    let sums = Checksums::parse(&sums_text)?;
    let mut report = VerifyReport { entries_checked: 0, bytes_checked: 0, problems: Vec::new() };
    for (entry, expected) in &sums.0 {
        match computed.get(entry) {
            None => report.problems.push(Problem {
                entry: entry.clone(),
                problem: "missing".into(),
                expected: Some(expected.clone()),
                actual: None,
            }),
            Some((actual, len)) => {
                report.entries_checked += 1;
                report.bytes_checked += len;
                if actual != expected {
                    report.problems.push(Problem {
                        entry: entry.clone(),
                        problem: "digest mismatch".into(),
                        expected: Some(expected.clone()),
                        actual: Some(actual.clone()),
                    });
                }
            }
        }
    }
    for entry in computed.keys() {
        if entry != layout::CHECKSUMS && !sums.0.contains_key(entry) {
            report.problems.push(Problem {
                entry: entry.clone(),
                problem: format!("not listed in {}", layout::CHECKSUMS),
                expected: None,
                actual: None,
            });
        }
    }
    if report.problems.iter().any(|p| p.entry == layout::MANIFEST) {
        return Ok((None, report));
    }
    let manifest = Manifest::from_json(
        &manifest_text.ok_or_else(|| Error::Corrupt(format!("{}: no {}", bundle.display(), layout::MANIFEST)))?,
    )?;
    cross_check(&manifest, &sums, &mut report);
    Ok((Some(manifest), report))
}
