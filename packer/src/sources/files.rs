//! Captured files: walks the configured paths (directories whole, links kept as links, never
//! followed while reading), recording original path, mode, owner, mtime, size and sha256.
//! What a captured link points to is captured as well (Debian's configuration is made of
//! links: a site listed through `sites-enabled/` lives in `sites-available/`), with a note. What
//! another part of the bundle already holds (a `[[sqlite]]` database and its journals) and
//! packer's own output directory are left out, with a note saying why.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use restorer::digest::sha256_file;
use restorer::layout::{self, FileKind};
use restorer::links;
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
    /// What was left out or added on purpose, for the manifest's notes.
    pub notes: Vec<String>,
}

/// File systems the kernel makes up: a link into them (`/etc/mtab`) is packed as a link only.
const KERNEL_FS: [&str; 4] = ["/proc", "/sys", "/dev", "/run"];

/// Trees the distribution's packages own: a link into them (`/etc/alternatives/*`, a CA bundle
/// under `/usr/share`) is packed as a link only. Packing the target would make the restore
/// refuse, without `--overwrite`, every binary that differs on the new host's newer packages;
/// the requirements install them instead. `/usr/local` is the administrator's, and followed.
const SYSTEM_TREES: [&str; 8] = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot"];

/// Journal files SQLite keeps beside a database; a raw copy of them is never consistent with
/// the online copy, and a stale one beside the restored database would be replayed over it.
const SQLITE_SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// What the files capture leaves out because the bundle holds it another way. Compared by
/// device and inode, never by the path's text: a database reached through another spelling of
/// its path (a link, `//`, a bind mount of the same file system) is still recognised.
#[derive(Debug, Default)]
pub struct Exclusions {
    /// `[[sqlite]]` databases: (dev, ino) of the file, its name and bundle entry.
    sqlite: Vec<((u64, u64), String, String)>,
    /// packer's own output directory (bundles, sidecars, catalog, lock, spool): its (dev, ino)
    /// and canonical path. Inside a captured directory, every bundle would otherwise hold all
    /// the earlier ones.
    output_dir: Option<((u64, u64), PathBuf)>,
}

impl Exclusions {
    /// The `[[sqlite]]` databases of the configuration (those that exist) and the output
    /// directory (when it exists).
    pub fn new(sqlite: &[crate::config::SqliteSource], output_dir: &Path) -> Exclusions {
        let sqlite = sqlite
            .iter()
            .filter_map(|s| {
                let m = fs::metadata(&s.path).ok()?;
                Some(((m.dev(), m.ino()), s.name.clone(), layout::sqlite_entry(&s.name)))
            })
            .collect();
        let output_dir =
            fs::canonicalize(output_dir).and_then(|c| fs::metadata(&c).map(|m| ((m.dev(), m.ino()), c))).ok();
        Exclusions { sqlite, output_dir }
    }

    /// Why a directory met while walking is left out, when it is the output directory.
    fn output_dir_reason(&self, path: &Path, m: &fs::Metadata) -> Option<String> {
        let (id, out) = self.output_dir.as_ref()?;
        (*id == (m.dev(), m.ino())).then(|| {
            format!(
                "{} not captured: it is packer's own output_dir ({}), holding the bundles, the catalog and the lock",
                path.display(),
                out.display()
            )
        })
    }

    /// Why a path to start a walk from (a listed path, a link's target) is left out, when it lies
    /// inside the output directory: its real location is compared, whatever its spelling.
    fn inside_output_dir(&self, path: &Path) -> Option<String> {
        let (_, out) = self.output_dir.as_ref()?;
        // The parent's real location: `path` itself may be a link, which is not followed.
        let real = fs::canonicalize(path.parent()?).ok()?.join(path.file_name()?);
        (real.starts_with(out)).then(|| {
            format!(
                "{} not captured: it lies inside packer's own output_dir ({}), holding the bundles, the catalog and the lock",
                path.display(),
                out.display()
            )
        })
    }

    /// Why a regular file is left out, when it is a `[[sqlite]]` database or one of its
    /// journal files.
    fn sqlite_reason(&self, path: &Path, m: &fs::Metadata) -> Option<String> {
        let find = |id: (u64, u64)| self.sqlite.iter().find(|(i, _, _)| *i == id);
        if let Some((_, name, entry)) = find((m.dev(), m.ino())) {
            return Some(format!(
                "{} not captured as a file: it is the [[sqlite]] database {name}, packed once as the consistent copy {entry}",
                path.display()
            ));
        }
        let file_name = path.file_name()?.as_bytes();
        for suffix in SQLITE_SIDECARS {
            let Some(stem) = file_name.strip_suffix(suffix.as_bytes()) else { continue };
            if stem.is_empty() {
                continue;
            }
            // The database beside it, by the same rule SQLite names its journals.
            let db = path.with_file_name(std::ffi::OsStr::from_bytes(stem));
            let Ok(dm) = fs::metadata(&db) else { continue };
            if let Some((_, name, entry)) = find((dm.dev(), dm.ino())) {
                return Some(format!(
                    "{} not captured: it is a journal file of the [[sqlite]] database {name}, whose copy {entry} is self-contained",
                    path.display()
                ));
            }
        }
        None
    }
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
/// once, under the kind it was first seen with; what `excluded` names is left out with a note.
pub fn capture(sources: &[FilesSource], excluded: &Exclusions, mut progress: impl FnMut(&Path)) -> Result<Captured> {
    let mut w = Walker {
        accounts: Accounts::system(),
        excluded,
        seen: std::collections::HashSet::new(),
        links: Vec::new(),
        out: Captured::default(),
        progress: &mut progress,
    };
    for src in sources {
        for p in &src.paths {
            w.walk_from(src.kind, p)?;
        }
    }
    // Every path listed is seen first, so a target inside another captured path is not taken
    // twice. Links found inside a captured target join the queue.
    let mut next = 0;
    while next < w.links.len() {
        let (kind, link) = w.links[next].clone();
        next += 1;
        w.follow(kind, &link)?;
    }
    let mut out = w.out;
    out.records.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// One capture's state: what was seen, what was found.
struct Walker<'a> {
    accounts: Accounts,
    excluded: &'a Exclusions,
    seen: std::collections::HashSet<std::path::PathBuf>,
    /// Every link captured, in the order met: each is followed once the listed paths are done.
    links: Vec<(FileKind, PathBuf)>,
    out: Captured,
    progress: &'a mut dyn FnMut(&Path),
}

impl Walker<'_> {
    /// [`Walker::walk`] from a path that is not inside one already walked (a listed path, a
    /// link's target): nothing inside the output directory is taken, whatever the spelling.
    fn walk_from(&mut self, kind: FileKind, path: &Path) -> Result<bool> {
        if let Some(note) = self.excluded.inside_output_dir(path) {
            if self.seen.insert(path.to_path_buf()) {
                self.out.notes.push(note);
            }
            return Ok(false);
        }
        self.walk(kind, path)
    }

    /// Captures `path` (a directory whole). True when it was recorded now.
    fn walk(&mut self, kind: FileKind, path: &Path) -> Result<bool> {
        if !self.seen.insert(path.to_path_buf()) {
            return Ok(false);
        }
        if path.starts_with(layout::RESTORE_STATE_DIR) {
            // The restore refuses a bundle writing there (the next restore would replay a
            // journal from it); its checkpoints belong to this host, not to a backup.
            self.out.notes.push(format!(
                "{} not captured: it is the restore's own state ({})",
                path.display(),
                layout::RESTORE_STATE_DIR
            ));
            return Ok(false);
        }
        let m = fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
        let meta = meta_of(&m, &self.accounts);
        let ft = m.file_type();
        let content = if ft.is_symlink() {
            self.links.push((kind, path.to_path_buf()));
            FileContent::Symlink {
                target: fs::read_link(path).with_context(|| format!("reading link {}", path.display()))?,
            }
        } else if ft.is_dir() {
            if let Some(note) = self.excluded.output_dir_reason(path, &m) {
                self.out.notes.push(note);
                return Ok(false);
            }
            let mut children: Vec<_> = fs::read_dir(path)
                .with_context(|| format!("listing {}", path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()
                .with_context(|| format!("listing {}", path.display()))?;
            children.sort();
            for c in children {
                self.walk(kind, &c)?;
            }
            FileContent::Dir
        } else if ft.is_file() {
            if let Some(note) = self.excluded.sqlite_reason(path, &m) {
                self.out.notes.push(note);
                return Ok(false);
            }
            (self.progress)(path);
            let (sha256, size) = sha256_file(path)?;
            let entry = layout::captured_entry(kind, path)?;
            self.out.payloads.push(Payload {
                entry: entry.clone(),
                source: path.to_path_buf(),
                size,
                sha256: sha256.clone(),
                mtime: meta.mtime,
                gzipped: None,
                spooled: false,
            });
            FileContent::File { entry, size, sha256 }
        } else {
            self.out.warnings.push(format!(
                "{} skipped: not a regular file, directory or link (socket, FIFO or device)",
                path.display()
            ));
            return Ok(false);
        };
        self.out.records.push(FileRecord { kind, path: path.to_path_buf(), meta, content });
        Ok(true)
    }

    /// Captures what a captured link leads to: the links on the way (a link to a link) as links,
    /// the object at the end (a directory whole), unless already captured. The link is resolved
    /// on this host one component at a time, as the kernel would; a missing target, a cycle or a
    /// target that cannot be read is a warning, never a failure.
    fn follow(&mut self, kind: FileKind, link: &Path) -> Result<()> {
        let shown = link.display();
        let text = fs::read_link(link).map(|t| t.display().to_string()).unwrap_or_default();
        let r = match links::resolve(link, &mut links::on_disk(Path::new("/"))) {
            Ok(r) => r,
            Err(e) => {
                self.out.warnings.push(format!(
                    "link {shown} -> {text} not followed: {e}; the link is packed, what it points to is not"
                ));
                return Ok(());
            }
        };
        if let Some(k) = r.links.iter().chain([&r.path]).find(|p| KERNEL_FS.iter().any(|k| p.starts_with(k))) {
            // /etc/mtab -> ../proc/self/mounts: nothing there is data to restore, and its bytes
            // change as they are read.
            self.out.notes.push(format!(
                "link {shown} -> {text} leads into {}, a kernel file system: only the link is packed",
                k.display()
            ));
            return Ok(());
        }
        let system = |p: &&PathBuf| SYSTEM_TREES.iter().any(|k| p.starts_with(k)) && !p.starts_with("/usr/local");
        if let Some(k) = r.links.iter().chain([&r.path]).find(system) {
            self.out.notes.push(format!(
                "link {shown} -> {text} leads into {}, which the system's packages own: only the link is packed",
                k.display()
            ));
            return Ok(());
        }
        if let Some(above) = r.links.iter().find(|l| link.starts_with(l) && l.as_path() != link) {
            // The restore recreates the listed path's directories as directories, so a link
            // among them would not lead to the same place on the new host.
            self.out.warnings.push(format!(
                "link {shown}: the directory {} above it is itself a link; the restore recreates it as a directory, so list the real path {} instead",
                above.display(),
                r.path.display()
            ));
            return Ok(());
        }
        if r.climbed_above_root {
            self.out
                .warnings
                .push(format!("link {shown} -> {text} climbs above / (the kernel stops at /, and so did packing)"));
        }
        for l in r.links.iter().filter(|l| l.as_path() != link) {
            if self.walk_from(kind, l)? {
                self.out.notes.push(format!("link {} captured because the link {shown} leads through it", l.display()));
            }
        }
        match r.node {
            links::Node::Missing => self.out.warnings.push(format!(
                "link {shown} -> {text} points to {}, which does not exist; the link is packed as it is",
                r.path.display()
            )),
            _ if r.path == Path::new("/") => self
                .out
                .warnings
                .push(format!("link {shown} -> {text} points to the root directory; only the link is packed")),
            _ => {
                if self.walk_from(kind, &r.path)? {
                    self.out.notes.push(format!("{} captured because the link {shown} points to it", r.path.display()));
                }
            }
        }
        Ok(())
    }
}
