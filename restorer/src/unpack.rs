//! Reading bundles straight from the `.tar.gz`: the manifest from the head of the archive, and a
//! safe unpack that refuses anything a bundle must not contain.
//!
//! An operator usually runs `tar xzf` (GNU tar already refuses `..` and strips leading `/`), but
//! `restore --from BUNDLE.tar.gz` and `packer` read archives themselves, and a bundle can come
//! from anywhere: so only regular files and directories with plain relative names are accepted.
//! Links, devices and FIFOs are refused outright: format 1 never writes them (symlinks live in the
//! manifest), so their presence means the archive was not written by packer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use flate2::read::MultiGzDecoder;
use tar::{Archive, EntryType};

use crate::error::IoContext;
use crate::manifest::Manifest;
use crate::{layout, Error, Result};

/// The archive reader over a gzip-compressed bundle file.
pub type BundleArchive = Archive<MultiGzDecoder<BufReader<File>>>;

/// Opens a bundle for sequential reading.
pub fn open(bundle: &Path) -> Result<BundleArchive> {
    let f = File::open(bundle).ctx("opening bundle", bundle)?;
    Ok(Archive::new(MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, f))))
}

/// A damaged archive: gzip or tar could not go on.
pub(crate) fn damaged(bundle: &Path, near: &str, e: io::Error) -> Error {
    Error::Corrupt(format!("{}: archive damaged{near}: {e} (truncated or altered copy?)", bundle.display()))
}

/// Reads `manifest.json` from the first entry of a bundle without reading the rest: this is what
/// makes `packer show` instant on a multi-GB bundle.
pub fn read_manifest(bundle: &Path) -> Result<Manifest> {
    let mut archive = open(bundle)?;
    let mut entries = archive.entries().map_err(|e| damaged(bundle, "", e))?;
    let mut first = match entries.next() {
        Some(e) => e.map_err(|e| damaged(bundle, "", e))?,
        None => return Err(Error::Corrupt(format!("{}: empty archive", bundle.display()))),
    };
    let name = first.path().map_err(|e| damaged(bundle, "", e))?.to_string_lossy().into_owned();
    if name != layout::MANIFEST {
        return Err(Error::Corrupt(format!(
            "{}: first entry is {name:?}, expected {} (not a bundle written by packer?)",
            bundle.display(),
            layout::MANIFEST
        )));
    }
    // A manifest is kilobytes to a few MB; refuse to buffer something absurd.
    const LIMIT: u64 = 256 * 1024 * 1024;
    if first.size() > LIMIT {
        return Err(Error::Corrupt(format!("{}: manifest.json is {} bytes", bundle.display(), first.size())));
    }
    let mut text = String::new();
    first.read_to_string(&mut text).map_err(|e| damaged(bundle, " in manifest.json", e))?;
    Manifest::from_json(&text)
}

/// Unpacks `bundle` into `dest`, which must not exist yet (it is created 0700). On any error
/// the partly written `dest` is removed, so a refused bundle leaves nothing behind.
/// Returns the entry names in archive order.
pub fn unpack(bundle: &Path, dest: &Path) -> Result<Vec<String>> {
    unpack_only(bundle, dest, |_| true)
}

/// Like [`unpack`], writing only the entries `want` accepts (every entry is still read and
/// checked for safety).
pub fn unpack_only(bundle: &Path, dest: &Path, want: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    if dest.exists() {
        return Err(Error::Refused(format!("{} already exists; unpack needs a new directory", dest.display())));
    }
    fs::DirBuilder::new().mode(0o700).recursive(true).create(dest).ctx("creating", dest)?;
    let result = unpack_into(bundle, dest, &want);
    if result.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    result
}

use std::os::unix::fs::DirBuilderExt;

fn unpack_into(bundle: &Path, dest: &Path, want: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut archive = open(bundle)?;
    let mut names = Vec::new();
    for entry in archive.entries().map_err(|e| damaged(bundle, "", e))? {
        let near = names.last().map(|n| format!(" after entry {n}")).unwrap_or_default();
        let mut entry = entry.map_err(|e| damaged(bundle, &near, e))?;
        let raw = entry.path().map_err(|e| damaged(bundle, &near, e))?;
        let name = raw.to_str().ok_or_else(|| Error::Unsafe(format!("non-UTF-8 entry name {raw:?}")))?.to_string();
        let name = name.trim_end_matches('/').to_string();
        layout::check_entry_name(&name)?;
        let target = dest.join(&name);
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous if !want(&name) => {
                io::copy(&mut entry, &mut io::sink()).map_err(|e| damaged(bundle, &format!(" in entry {name}"), e))?;
            }
            EntryType::Regular | EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).ctx("creating", parent)?;
                }
                let mode = if name == layout::RESTORE_BIN { layout::RESTORE_BIN_MODE } else { layout::ENTRY_MODE };
                // create_new: a name seen twice, or a path that already exists, is never overwritten.
                let mut out =
                    OpenOptions::new().write(true).create_new(true).mode(mode).open(&target).map_err(|e| {
                        match e.kind() {
                            io::ErrorKind::AlreadyExists => {
                                Error::Unsafe(format!("{name} appears twice in the archive"))
                            }
                            _ => Error::io("creating", &target, e),
                        }
                    })?;
                io::copy(&mut entry, &mut out).map_err(|e| damaged(bundle, &format!(" in entry {name}"), e))?;
            }
            EntryType::Directory => fs::create_dir_all(&target).ctx("creating", &target)?,
            EntryType::Symlink => return Err(Error::Unsafe(format!("{name} is a symbolic link"))),
            EntryType::Link => return Err(Error::Unsafe(format!("{name} is a hard link"))),
            EntryType::Char | EntryType::Block => return Err(Error::Unsafe(format!("{name} is a device node"))),
            EntryType::Fifo => return Err(Error::Unsafe(format!("{name} is a FIFO"))),
            other => return Err(Error::Unsafe(format!("{name} has unsupported entry type {other:?}"))),
        }
        names.push(name);
    }
    Ok(names)
}
