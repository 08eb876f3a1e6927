//! Captured files: walks the configured paths (directories whole, links kept as links, never
//! followed), recording original path, mode, owner, mtime, size and sha256.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use restorer::digest::sha256_file;
use restorer::layout::{self, FileKind};
use restorer::manifest::{FileContent, FileMeta, FileRecord};
use restorer::owners::Accounts;

use super::Payload;
use crate::config::FilesSource;

/// Everything captured from `[[files]]`.
#[derive(Debug, Default)]
pub struct Captured {
    /// Manifest records, sorted by path.
    pub records: Vec<FileRecord>,
    /// Regular files to stream.
    pub payloads: Vec<Payload>,
    /// Things skipped (sockets, FIFOs, devices), for the manifest's warnings.
    pub warnings: Vec<String>,
}

/// Mode, owner (ids and names) and mtime of a path, as the manifest records them.
pub fn meta_of(m: &fs::Metadata, accounts: &Accounts) -> FileMeta {
    FileMeta {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        user: accounts.user_name(m.uid()).map(str::to_string),
        group: accounts.group_name(m.gid()).map(str::to_string),
        mtime: m.mtime(),
    }
}

/// Walks every configured path. A path listed twice (or inside a listed directory) is captured
/// once, under the kind it was first seen with.
pub fn capture(sources: &[FilesSource], mut progress: impl FnMut(&Path)) -> Result<Captured> {
    let accounts = Accounts::system();
    let mut out = Captured::default();
    let mut seen = std::collections::HashSet::new();
    for src in sources {
        for p in &src.paths {
            walk(src.kind, p, &accounts, &mut seen, &mut out, &mut progress)?;
        }
    }
    out.records.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(
    kind: FileKind,
    path: &Path,
    accounts: &Accounts,
    seen: &mut std::collections::HashSet<std::path::PathBuf>,
    out: &mut Captured,
    progress: &mut impl FnMut(&Path),
) -> Result<()> {
    if !seen.insert(path.to_path_buf()) {
        return Ok(());
    }
    let m = fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let meta = meta_of(&m, accounts);
    let ft = m.file_type();
    let content = if ft.is_symlink() {
        FileContent::Symlink {
            target: fs::read_link(path).with_context(|| format!("reading link {}", path.display()))?,
        }
    } else if ft.is_dir() {
        let mut children: Vec<_> = fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("listing {}", path.display()))?;
        children.sort();
        for c in children {
            walk(kind, &c, accounts, seen, out, progress)?;
        }
        FileContent::Dir
    } else if ft.is_file() {
        progress(path);
        let (sha256, size) = sha256_file(path)?;
        let entry = layout::captured_entry(kind, path)?;
        out.payloads.push(Payload {
            entry: entry.clone(),
            source: path.to_path_buf(),
            size,
            sha256: sha256.clone(),
            mtime: meta.mtime,
        });
        FileContent::File { entry, size, sha256 }
    } else {
        out.warnings.push(format!(
            "{} skipped: not a regular file, directory or link (socket, FIFO or device)",
            path.display()
        ));
        return Ok(());
    };
    out.records.push(FileRecord { kind, path: path.to_path_buf(), meta, content });
    Ok(())
}
