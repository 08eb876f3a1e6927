//! Verifying a bundle and recording it: every entry's sha256, streamed from the bundle file
//! (nothing extracted), against the checksum list and the manifest, plus the whole file against
//! its sidecar and the catalog; `--deep` adds the restore checks of [`crate::deep`]. A catalogued
//! bundle's result is recorded (retention never removes the newest bundle that passed) and a
//! failure is notified. `packer verify`, the daemon and the console all verify through here.

use std::path::Path;

use anyhow::{Context, Result};
use restorer::progress::{Counting, Progress};
use serde::Serialize;

use crate::catalog::{Catalog, VerifyDepth};
use crate::config::Config;
use crate::job::Log;
use crate::notify::{Event, Kind};

/// The outcome.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The bundle file.
    pub bundle: String,
    /// Every check passed.
    pub ok: bool,
    /// Whole-file digest against the sidecar / catalog, when known.
    pub file_digest: Option<bool>,
    /// The bundle is sealed (age-encrypted).
    pub sealed: bool,
    /// Its contents were checked (always for a plain bundle; with --identity for a sealed one).
    pub contents_checked: bool,
    /// Per-entry report.
    pub report: restorer::verify::VerifyReport,
    /// With --deep: every restore check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deep: Option<Vec<restorer::steps::validate::Check>>,
}

/// The sha256 of the whole bundle file (to compare with its sidecar or the catalog).
fn file_sha256(path: &Path, progress: &dyn Progress) -> Result<String> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    progress.begin("file digest", f.metadata().ok().map(|m| m.len()));
    let digest = restorer::digest::sha256_reader(Counting::new(f, progress));
    progress.end();
    Ok(digest.with_context(|| format!("reading {}", path.display()))?.0)
}

impl Outcome {
    /// [`crate::exit::OK`] when every check passed; [`crate::exit::CORRUPT`] when the bundle
    /// itself is bad (a digest, an entry, the archive, the sidecar); [`crate::exit::FAILED`]
    /// when it is intact but a deep check failed (deep checks run only on an intact bundle).
    pub fn exit_code(&self) -> i32 {
        match (self.ok, &self.deep) {
            (true, _) => crate::exit::OK,
            (false, Some(_)) => crate::exit::FAILED,
            (false, None) => crate::exit::CORRUPT,
        }
    }
}

/// Verifies one bundle file (no catalog involved).
pub fn verify_file(
    path: &Path,
    expected_sha: Option<&str>,
    deep: bool,
    identity: Option<&restorer::sealed::Identity>,
    log: Log<'_>,
    progress: &dyn Progress,
) -> Result<Outcome> {
    // An unreadable head is judged below, by the full read.
    let sealed = restorer::unpack::is_sealed(path).unwrap_or(false);
    if deep && sealed && identity.is_none() {
        anyhow::bail!(
            "{} is sealed (age-encrypted): --deep restores its databases, which needs the key: pass --identity FILE (without --deep the ciphertext is checked without it)",
            path.display()
        );
    }
    let read =
        restorer::unpack::read_archive_with(path, restorer::unpack::Sink::Discard, identity, "verifying", progress);
    let (manifest, report, read_digest) = match read.map(|r| (r.manifest, r.report, r.file_sha256)) {
        Ok(r) => r,
        // A damaged or unsafe archive is a verification result, not an error of the command.
        Err(e @ (restorer::Error::Corrupt(_) | restorer::Error::Unsafe(_) | restorer::Error::Manifest(_))) => {
            let problem = restorer::verify::Problem {
                entry: "(archive)".into(),
                problem: e.to_string(),
                expected: None,
                actual: None,
            };
            (
                None,
                restorer::verify::VerifyReport { entries_checked: 0, bytes_checked: 0, problems: vec![problem] },
                None,
            )
        }
        Err(e) => return Err(e.into()),
    };
    let sidecar = std::fs::read_to_string(format!("{}.sha256", path.display())).ok();
    let expected = expected_sha
        .map(str::to_string)
        .or_else(|| sidecar.and_then(|s| s.split_whitespace().next().map(str::to_string)));
    let file_digest = match expected {
        // The read above hashed the file as it went; a read that stopped early did not.
        Some(e) if e.len() == 64 => Some(match read_digest {
            Some(d) => d == e,
            None => file_sha256(path, progress)? == e,
        }),
        _ => None,
    };
    let contents_checked = !sealed || identity.is_some();
    let ok = report.ok() && (manifest.is_some() || !contents_checked) && file_digest != Some(false);
    let deep = match (deep, ok, &manifest) {
        (true, true, Some(m)) => Some(crate::deep::verify(path, m, identity, log, progress)?),
        _ => None,
    };
    let ok = ok && deep.as_ref().is_none_or(|d| d.iter().all(|c| c.ok));
    Ok(Outcome { bundle: path.display().to_string(), ok, file_digest, sealed, contents_checked, report, deep })
}

/// Verifies a catalogued bundle, records the result in the catalog, and notifies a failure.
pub fn verify_row(
    cfg: &Config,
    catalog: &Catalog,
    row: &crate::catalog::BundleRow,
    deep: bool,
    identity: Option<&restorer::sealed::Identity>,
    log: Log<'_>,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let path = cfg.bundle.output_dir.join(&row.file_name);
    let sha = (row.sha256.len() == 64 && row.sha256 != "0".repeat(64)).then_some(row.sha256.as_str());
    let o = verify_file(&path, sha, deep, identity, &mut *log, progress)?;
    let failed_deep = o.deep.iter().flatten().filter(|c| !c.ok).count();
    let detail = if o.ok {
        if deep { "every digest matches; restored and compared" } else { "every digest matches" }.to_string()
    } else {
        format!("{} problem(s), {failed_deep} failed deep check(s)", o.report.problems.len())
    };
    let depth = if deep { VerifyDepth::Deep } else { VerifyDepth::Digest };
    catalog.record_verification(row.id, depth, o.ok, &detail)?;
    if !o.ok {
        let mut e = Event::new(Kind::VerificationFailed, format!("bundle {} failed verification", o.bundle));
        e.bundle = Some(o.bundle.clone());
        let deep_failures = o
            .deep
            .iter()
            .flatten()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: expected {}, actual {}", c.check, c.expected, c.actual));
        e.error = Some(
            o.report
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.entry, p.problem))
                .chain(deep_failures)
                .collect::<Vec<_>>()
                .join("; "),
        );
        e.what_to_do = Some("do not rely on this bundle: make a new one now and check the disk it sits on".into());
        crate::job::notify_and_log(cfg, &e, log);
    }
    Ok(o)
}
