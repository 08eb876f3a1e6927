//! Finding and opening the bundle the operator pointed at: an extracted directory, a `.tar.gz`
//! (verified as it streams and unpacked safely beside itself), or a sealed one (its payload
//! decrypted with the identity). A directory already there is used only when it holds that very
//! bundle, so a stale or foreign extraction beside a truncated archive is never trusted.

use std::path::{Path, PathBuf};

use crate::log::Level;
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::sealed::Identity;
use crate::unpack::{self, ArchiveRead, Sink};
use crate::verify::{self, VerifyReport};
use crate::{Error, Result};

/// Where a sealed bundle extracted by hand is opened: `DIR/opened/`.
pub const OPENED: &str = "opened";

/// The bundle directory worked from, and whether this call unpacked it (a refusal later removes
/// what it unpacked: a refused run leaves nothing behind, secrets included).
#[derive(Debug)]
pub struct Opened {
    /// The extracted (and, for a sealed bundle, opened) bundle.
    pub dir: PathBuf,
    /// The directory this call created, if it created one.
    pub unpacked: Option<PathBuf>,
}

/// `X.tar.gz`: the archive's stem beside it (`X/`); `None` for a directory. Anything else is
/// refused, naming it.
pub fn archive_stem(from: &Path) -> Result<Option<PathBuf>> {
    if from.is_dir() {
        return Ok(None);
    }
    let name = from.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let stem = name
        .strip_suffix(".tar.gz")
        .ok_or_else(|| Error::Other(format!("{}: not a directory nor a .tar.gz bundle", from.display())))?;
    Ok(Some(from.with_file_name(stem)))
}

/// Opens what `from` names (default: [`crate::restore::default_bundle_dir`]). `log` hears what
/// is verified, unpacked or reused; `progress` draws the long reads.
pub fn open(
    from: Option<&Path>,
    identity: Option<&Path>,
    progress: &dyn Progress,
    log: &mut dyn FnMut(Level, &str),
) -> Result<Opened> {
    let Some(from) = from else {
        return opened_dir(crate::restore::default_bundle_dir(), identity, log);
    };
    let Some(dest) = archive_stem(from)? else {
        return opened_dir(from.to_path_buf(), identity, log);
    };
    let id = if unpack::is_sealed(from)? { Some(load_identity(from, identity)?) } else { None };
    if std::fs::symlink_metadata(&dest).is_err() {
        log(Level::Info, &format!("unpacking {} into {} (verified as it streams)", from.display(), dest.display()));
        unpack::unpack_only_with(from, &dest, id.as_ref(), |_| true, progress)?;
        return Ok(Opened { dir: dest.clone(), unpacked: Some(dest) });
    }
    log(Level::Info, &format!("verifying {} ...", from.display()));
    let read = unpack::read_archive_with(from, Sink::Discard, id.as_ref(), "verifying", progress)?;
    if !same_extraction(read, &dest)? {
        return Err(Error::Refused(format!(
            "{} exists but does not hold the bundle in {} (another or a damaged extraction): remove it, or pass --from {}",
            dest.display(),
            from.display(),
            dest.display()
        )));
    }
    log(Level::Info, &format!("using {} (already unpacked, same bundle)", dest.display()));
    Ok(Opened { dir: dest, unpacked: None })
}

/// A directory already beside what was just read whole is used only when it holds that very
/// bundle: the read must be clean (its problems are the error) and `dest`'s checksum list must
/// be the one read. `Ok(false)` when `dest` is another or a damaged extraction.
fn same_extraction(read: ArchiveRead, dest: &Path) -> Result<bool> {
    if !read.report.ok() {
        return Err(read.report.into_error());
    }
    let there = dest.join(crate::layout::CHECKSUMS);
    Ok(crate::digest::sha256_file(&there).map(|d| d.0 == read.checksums_sha256).unwrap_or(false))
}

/// The identity for a sealed bundle: the file named by --identity / RESTORE_IDENTITY_FILE, or a
/// refusal saying so (nothing was changed). The key itself is never printed.
pub fn load_identity(bundle: &Path, identity: Option<&Path>) -> Result<Identity> {
    let Some(path) = identity else {
        return Err(Error::Refused(format!(
            "{} is a sealed bundle (age-encrypted): pass --identity FILE (or RESTORE_IDENTITY_FILE) with the private key of one of its recipients; `restore verify` checks its ciphertext without it",
            bundle.display()
        )));
    };
    Identity::load(path)
}

/// An extracted bundle directory as is, or for a sealed one (extracted by `tar xzf`) its
/// payload opened with the identity into `DIR/opened/` (reused when it holds that very
/// payload, like an archive's `X/`).
fn opened_dir(dir: PathBuf, identity: Option<&Path>, log: &mut dyn FnMut(Level, &str)) -> Result<Opened> {
    if !unpack::is_sealed_dir(&dir) {
        return Ok(Opened { dir, unpacked: None });
    }
    let id = load_identity(&dir, identity)?;
    let dest = dir.join(OPENED);
    if std::fs::symlink_metadata(&dest).is_err() {
        let what = format!(
            "opening {} into {} (decrypted and verified as it streams)",
            crate::layout::PAYLOAD,
            dest.display()
        );
        log(Level::Info, &what);
        unpack::unpack_sealed_dir(&dir, &dest, &id)?;
        return Ok(Opened { dir: dest.clone(), unpacked: Some(dest) });
    }
    log(Level::Info, &format!("verifying {} ...", dir.display()));
    let read = unpack::read_sealed_dir(&dir, &id, Sink::Discard)?;
    if !same_extraction(read, &dest)? {
        return Err(Error::Refused(format!(
            "{} exists but does not hold the payload of {} (another or a damaged extraction): remove it",
            dest.display(),
            dir.display()
        )));
    }
    log(Level::Info, &format!("using {} (already opened, same payload)", dest.display()));
    Ok(Opened { dir: dest, unpacked: None })
}

/// What `restore verify` found.
#[derive(Debug)]
pub struct Checked {
    /// The manifest, when its own digest matched.
    pub manifest: Option<Manifest>,
    /// Every problem found.
    pub report: VerifyReport,
    /// The bundle is sealed.
    pub sealed: bool,
    /// Its contents were checked (not sealed, or opened with the identity); otherwise only
    /// the ciphertext was.
    pub contents_checked: bool,
}

/// `restore verify`: an archive read as it streams (nothing extracted), or an extracted
/// directory; a sealed one is checked to its ciphertext without an identity, whole with one.
pub fn check(archive: Option<&Path>, dir: &Path, identity: Option<&Path>, progress: &dyn Progress) -> Result<Checked> {
    let id = identity.map(Identity::load).transpose()?;
    let sealed = match archive {
        Some(a) => unpack::is_sealed(a)?,
        None => unpack::is_sealed_dir(dir),
    };
    let (manifest, report) = match (archive, &id) {
        (Some(a), Some(id)) => {
            let read = unpack::read_archive_with(a, Sink::Discard, Some(id), "verifying", progress)?;
            (read.manifest, read.report)
        }
        (Some(a), None) => verify::verify_archive(a, progress)?,
        (None, Some(id)) if sealed => {
            let read = unpack::read_sealed_dir(dir, id, Sink::Discard)?;
            (read.manifest, read.report)
        }
        (None, _) => verify::verify_dir(dir, progress)?,
    };
    Ok(Checked { manifest, report, sealed, contents_checked: !sealed || id.is_some() })
}
