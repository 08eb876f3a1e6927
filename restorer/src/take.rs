//! Taking back one thing from a bundle instead of restoring it whole: one captured file (by its
//! original path) or one n8n workflow, each verified against its digest before it is written.

use std::path::Path;

use crate::manifest::{FileContent, Manifest};
use crate::n8n::WorkflowSummary;
use crate::{verify, Error, Result};

/// Writes a new file (refusing an existing one unless `force`), through a temporary name.
pub fn write_new(path: &Path, bytes: &[u8], force: bool, mode: u32) -> Result<()> {
    if path.symlink_metadata().is_ok() && !force {
        return Err(Error::Refused(format!("{} exists; --force overwrites it", path.display())));
    }
    crate::sys::write_atomically(path, bytes, mode)
}

/// The captured file at original path `path` of the bundle in `dir`, written to `to` with its
/// mode (a link as a link). Returns the line saying what was done. A directory is refused: its
/// files are taken one by one, or the full restore used with `--root`.
pub fn file(dir: &Path, m: &Manifest, path: &Path, to: &Path, force: bool) -> Result<String> {
    let rec = m
        .files
        .iter()
        .find(|f| f.path == path)
        .ok_or_else(|| Error::Other(format!("{} is not in this bundle (see `restore list`)", path.display())))?;
    match &rec.content {
        FileContent::File { entry, .. } => {
            verify::verify_entries(dir, &[entry.as_str()])?;
            let bytes = std::fs::read(dir.join(entry)).map_err(|e| Error::io("reading", dir.join(entry), e))?;
            let mode = rec.meta.mode & 0o7777;
            write_new(to, &bytes, force, mode)?;
            Ok(format!("restored {} to {} (mode {mode:04o})", path.display(), to.display()))
        }
        FileContent::Symlink { target } => {
            std::os::unix::fs::symlink(target, to).map_err(|e| Error::io("creating link", to, e))?;
            Ok(format!("restored link {} -> {} at {}", path.display(), target.display(), to.display()))
        }
        FileContent::Dir => Err(Error::Other(format!(
            "{} is a directory: restore its files one by one, or use the full restore with --root",
            path.display()
        ))),
    }
}

/// The workflow `key` (id or name) of the bundle in `dir`, and its export as n8n writes it,
/// verified against its digest.
pub fn workflow(dir: &Path, m: &Manifest, key: &str) -> Result<(WorkflowSummary, String)> {
    let w = crate::steps::n8n::find_workflow(m, key)?.clone();
    verify::verify_entries(dir, &[w.entry.as_str()])?;
    let text = std::fs::read_to_string(dir.join(&w.entry)).map_err(|e| Error::io("reading", dir.join(&w.entry), e))?;
    Ok((w, text))
}
