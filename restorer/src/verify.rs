//! Verification of an extracted bundle: every entry's sha256 against `checksums.sha256`, and the
//! manifest against the checksums. Nothing is restored before this passes.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::digest::{sha256_file, sha256_reader, Checksums};
use crate::error::IoContext;
use crate::manifest::Manifest;
use crate::progress::{Counting, Progress};
use crate::sealed::Envelope;
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

/// The verdict shared by every reader (the streaming one in [`crate::unpack`] and
/// [`verify_dir`]): `computed` holds the digest and length of every entry found (manifest
/// included, checksum list excluded); `manifest_text` and `sums_text` are the two special
/// entries. Checksum list problems that make judging impossible are errors; everything else is a
/// [`Problem`]. The manifest is returned only when its own digest matched.
pub fn judge(
    manifest_text: &str,
    sums_text: &str,
    computed: &BTreeMap<String, (String, u64)>,
) -> Result<(Option<Manifest>, VerifyReport)> {
    let (sums, mut report) = judge_digests(sums_text, computed)?;
    // The manifest is only trusted once its own digest matched.
    if report.problems.iter().any(|p| p.entry == layout::MANIFEST) {
        return Ok((None, report));
    }
    let manifest = Manifest::from_json(manifest_text)?;
    for (entry, (size, _)) in manifest.entries() {
        if let Some((_, len)) = computed.get(&entry) {
            if *len != size {
                report.problems.push(Problem {
                    entry,
                    problem: format!("{len} bytes, {} says {size}", layout::MANIFEST),
                    expected: None,
                    actual: None,
                });
            }
        }
    }
    cross_check(&manifest, &sums, &mut report);
    Ok((Some(manifest), report))
}

/// The digest half of [`judge`], shared with [`judge_sealed`]: the checksum list parsed and
/// every computed entry compared with it.
fn judge_digests(sums_text: &str, computed: &BTreeMap<String, (String, u64)>) -> Result<(Checksums, VerifyReport)> {
    let sums = Checksums::parse(sums_text)?;
    if !sums.0.contains_key(layout::MANIFEST) {
        return Err(Error::Corrupt(format!("{} does not list {}", layout::CHECKSUMS, layout::MANIFEST)));
    }
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
        if !sums.0.contains_key(entry) {
            report.problems.push(Problem {
                entry: entry.clone(),
                problem: format!("not listed in {}", layout::CHECKSUMS),
                expected: None,
                actual: None,
            });
        }
    }
    Ok((sums, report))
}

/// [`judge`] for a sealed bundle's outer archive: the same digest rules, with the clear
/// envelope in place of the manifest (its entries are the ciphertext's sizes and digests).
/// The envelope is returned only when its own digest matched.
pub fn judge_sealed(
    envelope_text: &str,
    sums_text: &str,
    computed: &BTreeMap<String, (String, u64)>,
) -> Result<(Option<Envelope>, VerifyReport)> {
    let (sums, mut report) = judge_digests(sums_text, computed)?;
    if report.problems.iter().any(|p| p.entry == layout::MANIFEST) {
        return Ok((None, report));
    }
    let envelope = Envelope::from_json(envelope_text)?;
    let declared = envelope.entries();
    for (entry, (size, _)) in &declared {
        if let Some((_, len)) = computed.get(entry) {
            if len != size {
                report.problems.push(Problem {
                    entry: entry.clone(),
                    problem: format!("{len} bytes, {} says {size}", layout::MANIFEST),
                    expected: None,
                    actual: None,
                });
            }
        }
    }
    let claimed = declared.into_iter().map(|(e, (_, d))| (e, d)).collect();
    cross_check_digests(&claimed, &sums, &mut report);
    Ok((Some(envelope), report))
}

/// Verifies the bundle extracted in `dir`. `progress` is called with each entry name before it
/// is hashed. Fails outright (without a report) when the checksum list or the manifest cannot be
/// read at all; otherwise a report listing every problem found, and the manifest unless its own
/// digest was wrong (an unverified manifest is never returned). The rules are [`judge`]'s, as
/// for an archive; other files in `dir` (a report the restore wrote, say) are not bundle entries.
pub fn verify_dir(dir: &Path, progress: &dyn Progress) -> Result<(Option<Manifest>, VerifyReport)> {
    let read = |name: &str| -> Result<String> {
        let path = dir.join(name);
        match fs::read_to_string(&path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Corrupt(format!(
                "{name} is missing from {}: the bundle is truncated or was not fully extracted",
                dir.display()
            ))),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    };
    let sums_text = read(layout::CHECKSUMS)?;
    let sums = Checksums::parse(&sums_text)?;
    let manifest_text = read(layout::MANIFEST)?;
    let mut computed = BTreeMap::new();
    let mut odd = Vec::new();
    let mut found = Vec::new();
    for entry in sums.0.keys() {
        let path = dir.join(entry);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // judged "missing"
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        if !meta.file_type().is_file() {
            odd.push(Problem {
                entry: entry.clone(),
                problem: "is not a regular file".into(),
                expected: sums.0.get(entry).cloned(),
                actual: None,
            });
            continue;
        }
        found.push((entry, path, meta.len()));
    }
    // One bar over every byte hashed: the sizes are known before the first is read.
    progress.begin("verifying", Some(found.iter().map(|f| f.2).sum()));
    let hashed: Result<()> = found.into_iter().try_for_each(|(entry, path, _)| {
        progress.item(entry);
        let f = fs::File::open(&path).ctx("opening", &path)?;
        computed.insert(entry.clone(), sha256_reader(Counting::new(f, progress)).ctx("reading", &path)?);
        Ok(())
    });
    progress.end();
    hashed?;
    // A sealed bundle extracted by hand: its clear entries (the payload's ciphertext) are judged
    // without the key; the contents need the identity (`restore --identity`).
    let (manifest, mut report) = if crate::sealed::is_envelope(&manifest_text) {
        (None, judge_sealed(&manifest_text, &sums_text, &computed)?.1)
    } else {
        judge(&manifest_text, &sums_text, &computed)?
    };
    // "missing" for a non-regular entry says less than what it is.
    report.problems.retain(|p| !odd.iter().any(|o| o.entry == p.entry));
    report.problems.extend(odd);
    Ok((manifest, report))
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
    cross_check_digests(&manifest.digests(), sums, report);
}

/// [`cross_check`] on the digests a manifest or an envelope claims.
fn cross_check_digests(claimed: &BTreeMap<String, String>, sums: &Checksums, report: &mut VerifyReport) {
    for (entry, digest) in claimed {
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
/// past (no disk space needed) through the one reader ([`crate::unpack::read_archive`]), with
/// the same rules as [`verify_dir`].
pub fn verify_archive(bundle: &Path, progress: &dyn Progress) -> Result<(Option<Manifest>, VerifyReport)> {
    let read = crate::unpack::read_archive(bundle, crate::unpack::Sink::Discard, "verifying", progress)?;
    Ok((read.manifest, read.report))
}
