//! Files, directories, symlinks and SQLite databases back to their original paths (under the
//! restore root), with mode, owner and mtime; what was there before goes into the checkpoint.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::checkpoint::{Change, Checkpoint};
use crate::digest::sha256_file;
use crate::error::IoContext;
use crate::manifest::{FileContent, FileMeta, FileRecord, Manifest, SqliteDb};
use crate::owners::Accounts;
use crate::plan::{Action, PathState};
use crate::{layout, Error, Result};

/// Opens what is at `path` for setting its attributes, refusing a symbolic link (O_NOFOLLOW)
/// and anything but a regular file (or a directory when `dir`).
fn open_nofollow(path: &Path, dir: bool) -> Result<File> {
    use rustix::fs::OFlags;
    let mut flags = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if dir {
        flags |= OFlags::DIRECTORY;
    }
    let f = OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(path).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            Error::Unsafe(format!("{} became a symbolic link while it was restored", path.display()))
        } else {
            Error::io("opening", path, e)
        }
    })?;
    let ft = f.metadata().ctx("inspecting", path)?.file_type();
    if (dir && !ft.is_dir()) || (!dir && !ft.is_file()) {
        return Err(Error::Unsafe(format!("{} is no longer what the restore wrote there", path.display())));
    }
    Ok(f)
}

/// What is at each file record's target now.
pub fn observe_files(manifest: &Manifest, root: &Path) -> Result<Vec<PathState>> {
    manifest.files.iter().map(|f| observe_record(f, root)).collect()
}

/// What is at each SQLite database's target now.
pub fn observe_sqlite(manifest: &Manifest, root: &Path) -> Result<Vec<PathState>> {
    manifest.sqlite.iter().map(|s| observe_regular(&layout::target_path(root, &s.path)?, &s.sha256)).collect()
}

/// Pre-flight: every target's nearest existing ancestor must resolve inside the restore root, so
/// a symbolic link already on the target (say `ROOT/etc -> /elsewhere`) cannot carry a write
/// outside it. Checked before anything changes; the writer checks again as it goes.
pub fn check_targets_inside(manifest: &Manifest, root: &Path) -> Result<()> {
    let paths = manifest.files.iter().map(|f| &f.path).chain(manifest.sqlite.iter().map(|s| &s.path));
    for p in paths {
        check_inside_root(&layout::target_path(root, p)?, root)?;
    }
    Ok(())
}

/// `path` (below `root`) would be created or written inside the root: its nearest existing
/// ancestor resolves there. Nothing exists yet under a missing root, so anything is inside it.
pub fn check_inside_root(path: &Path, root: &Path) -> Result<()> {
    let canonical_root = match fs::canonicalize(root) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("resolving", root, e)),
    };
    let mut anc = path.parent();
    while let Some(a) = anc {
        if fs::symlink_metadata(a).is_ok() {
            let real = fs::canonicalize(a).ctx("resolving", a)?;
            if !real.starts_with(&canonical_root) {
                return Err(Error::Unsafe(format!(
                    "{} would be written through {} which resolves to {}, outside the restore root {}",
                    path.display(),
                    a.display(),
                    real.display(),
                    root.display()
                )));
            }
            break;
        }
        anc = a.parent();
    }
    Ok(())
}

fn observe_record(f: &FileRecord, root: &Path) -> Result<PathState> {
    let target = layout::target_path(root, &f.path)?;
    match &f.content {
        FileContent::File { sha256, .. } => observe_regular(&target, sha256),
        FileContent::Dir => Ok(match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => PathState::Identical,
            Ok(_) => PathState::Differs,
            Err(_) => PathState::Absent,
        }),
        FileContent::Symlink { target: link } => Ok(match fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() && fs::read_link(&target).ok().as_ref() == Some(link) => {
                PathState::Identical
            }
            Ok(_) => PathState::Differs,
            Err(_) => PathState::Absent,
        }),
    }
}

fn observe_regular(target: &Path, sha256: &str) -> Result<PathState> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PathState::Absent),
        Err(e) => Err(Error::io("inspecting", target, e)),
        Ok(m) if m.is_file() => {
            Ok(if sha256_file(target)?.0 == sha256 { PathState::Identical } else { PathState::Differs })
        }
        Ok(_) => Ok(PathState::Differs),
    }
}

/// Shared state of the file steps.
pub struct FileWriter<'a> {
    /// The extracted bundle.
    pub bundle_dir: &'a Path,
    /// The restore root.
    pub root: PathBuf,
    canonical_root: PathBuf,
    accounts: Accounts,
    as_root: bool,
    /// Directories whose attributes are applied last (children change a directory's mtime).
    dirs: Vec<(PathBuf, FileMeta)>,
    /// Warnings for the report (missing users, owners not restored, ...).
    pub warnings: Vec<String>,
}

impl<'a> FileWriter<'a> {
    /// Prepares to write under `root` (created if missing).
    pub fn new(bundle_dir: &'a Path, root: &Path) -> Result<FileWriter<'a>> {
        fs::create_dir_all(root).ctx("creating restore root", root)?;
        let canonical_root = fs::canonicalize(root).ctx("resolving", root)?;
        let as_root = crate::sys::is_root();
        let mut warnings = Vec::new();
        if !as_root {
            warnings.push("not running as root: file owners were not restored (modes and times were)".into());
        }
        Ok(FileWriter {
            bundle_dir,
            root: root.to_path_buf(),
            canonical_root,
            accounts: Accounts::system(),
            as_root,
            dirs: Vec::new(),
            warnings,
        })
    }

    /// Creates missing parents of `target` (journaled), then checks that the parent resolves
    /// inside the restore root: a symlink on the way must not carry a write outside it.
    fn prepare_parent(&self, cp: &mut Checkpoint, target: &Path) -> Result<()> {
        let parent = target.parent().ok_or_else(|| Error::Unsafe(format!("{} has no parent", target.display())))?;
        let rel = parent
            .strip_prefix(&self.root)
            .map_err(|_| Error::Unsafe(format!("{} is outside {}", target.display(), self.root.display())))?;
        let mut cur = self.root.clone();
        for c in rel.components() {
            let Component::Normal(c) = c else {
                return Err(Error::Unsafe(format!("{}", target.display())));
            };
            cur.push(c);
            if fs::symlink_metadata(&cur).is_err() {
                cp.record(Change::CreatedDir { path: cur.clone() })?;
                fs::DirBuilder::new().mode(0o755).create(&cur).ctx("creating directory", &cur)?;
            }
        }
        self.check_inside(target)
    }

    /// `target`'s parent must resolve inside the restore root.
    fn check_inside(&self, target: &Path) -> Result<()> {
        let parent = target.parent().ok_or_else(|| Error::Unsafe(format!("{} has no parent", target.display())))?;
        let real = fs::canonicalize(parent).ctx("resolving", parent)?;
        if !real.starts_with(&self.canonical_root) {
            return Err(Error::Unsafe(format!(
                "{} resolves to {} outside the restore root {} (a symbolic link on the way?)",
                target.display(),
                real.display(),
                self.root.display()
            )));
        }
        Ok(())
    }

    /// Applies one file record according to its planned action.
    pub fn apply_record(&mut self, cp: &mut Checkpoint, rec: &FileRecord, action: &Action) -> Result<()> {
        let target = layout::target_path(&self.root, &rec.path)?;
        self.prepare_parent(cp, &target)?;
        match (&rec.content, action) {
            (_, Action::Refuse) => {
                Err(Error::Refused(format!("{} exists and differs (use --overwrite)", target.display())))
            }
            // A directory an earlier step of this restore made (a Docker volume's mount point):
            // kept, with the bundle's attributes.
            (FileContent::Dir, Action::Create) if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) => {
                self.apply_record(cp, rec, &Action::Keep)
            }
            (FileContent::Dir, Action::Create) => {
                cp.record(Change::CreatedDir { path: target.clone() })?;
                fs::DirBuilder::new().mode(0o700).create(&target).ctx("creating directory", &target)?;
                self.dirs.push((target, rec.meta.clone()));
                Ok(())
            }
            (FileContent::Dir, Action::Keep) => {
                let m = fs::symlink_metadata(&target).ctx("inspecting", &target)?;
                cp.record(Change::DirAttrs {
                    path: target.clone(),
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                })?;
                self.dirs.push((target, rec.meta.clone()));
                Ok(())
            }
            (FileContent::Dir, Action::Replace) => {
                cp.move_aside(&target)?;
                cp.record(Change::CreatedDir { path: target.clone() })?;
                fs::DirBuilder::new().mode(0o700).create(&target).ctx("creating directory", &target)?;
                self.dirs.push((target, rec.meta.clone()));
                Ok(())
            }
            (FileContent::File { entry, .. }, _) => {
                if *action == Action::Keep {
                    return self.keep_regular(&target, &rec.meta);
                }
                if *action == Action::Replace {
                    cp.move_aside(&target)?;
                }
                self.write_regular(cp, &self.bundle_dir.join(entry), &target, &rec.meta)
            }
            (FileContent::Symlink { target: link }, _) => {
                if *action != Action::Keep {
                    if *action == Action::Replace {
                        cp.move_aside(&target)?;
                    }
                    cp.record(Change::CreatedFile { path: target.clone() })?;
                    std::os::unix::fs::symlink(link, &target).ctx("creating link", &target)?;
                }
                self.chown_link(&target, &rec.meta)
            }
        }
    }

    /// Puts a SQLite database back; stale `-wal`/`-shm`/`-journal` files beside the target are
    /// moved into the checkpoint too, since SQLite would replay them over the restored file.
    pub fn apply_sqlite(&mut self, cp: &mut Checkpoint, db: &SqliteDb, action: &Action) -> Result<()> {
        let target = layout::target_path(&self.root, &db.path)?;
        self.prepare_parent(cp, &target)?;
        match action {
            Action::Refuse => {
                return Err(Error::Refused(format!("{} exists and differs (use --overwrite)", target.display())))
            }
            Action::Keep => return self.keep_regular(&target, &db.meta),
            Action::Replace => cp.move_aside(&target)?,
            Action::Create => {}
        }
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut side = target.clone().into_os_string();
            side.push(suffix);
            let side = PathBuf::from(side);
            if fs::symlink_metadata(&side).is_ok() {
                cp.move_aside(&side)?;
            }
        }
        self.write_regular(cp, &self.bundle_dir.join(&db.entry), &target, &db.meta)
    }

    /// A file already as the bundle has it: its attributes set on it, open, and synced.
    fn keep_regular(&mut self, target: &Path, meta: &FileMeta) -> Result<()> {
        let f = open_nofollow(target, false)?;
        self.apply_meta(&f, target, meta)?;
        f.sync_all().ctx("syncing", target)
    }

    /// Copies `from` to a temporary name beside `target`, sets its attributes on the open file
    /// (never through a path), fsyncs it and only then renames it into place: a crash never
    /// leaves a half-written file, or one with the wrong owner or mode, under the real name.
    /// Both names are journaled before they exist, so a rollback (a full disk half-way, say)
    /// removes the temporary file too; the directory's new entry is the checkpoint's to sync.
    fn write_regular(&mut self, cp: &mut Checkpoint, from: &Path, target: &Path, meta: &FileMeta) -> Result<()> {
        let tmp = crate::sys::temp_beside(target);
        let mut src = File::open(from).ctx("reading", from)?;
        cp.record(Change::CreatedFile { path: tmp.clone() })?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .mode(0o600)
            .open(&tmp)
            .ctx("creating", &tmp)?;
        io::copy(&mut src, &mut out).ctx("writing", &tmp)?;
        self.apply_meta(&out, target, meta)?;
        out.sync_all().ctx("syncing", &tmp)?;
        cp.record(Change::CreatedFile { path: target.to_path_buf() })?;
        fs::rename(&tmp, target).ctx("renaming into place", target)
    }

    /// The owner a record asks for: by name when this host knows it, else the recorded ids.
    fn owner_of(&mut self, path: &Path, meta: &FileMeta) -> (u32, u32) {
        let uid = match meta.user.as_deref() {
            Some(n) => self.accounts.uid(n).unwrap_or_else(|| {
                self.warnings.push(format!(
                    "user {n} does not exist here: {} owned by uid {}",
                    path.display(),
                    meta.uid
                ));
                meta.uid
            }),
            None => meta.uid,
        };
        let gid = match meta.group.as_deref() {
            Some(n) => self.accounts.gid(n).unwrap_or_else(|| {
                self.warnings.push(format!(
                    "group {n} does not exist here: {} owned by gid {}",
                    path.display(),
                    meta.gid
                ));
                meta.gid
            }),
            None => meta.gid,
        };
        (uid, gid)
    }

    /// Owner of a symbolic link itself (lchown never follows).
    fn chown_link(&mut self, path: &Path, meta: &FileMeta) -> Result<()> {
        if !self.as_root {
            return Ok(());
        }
        let (uid, gid) = self.owner_of(path, meta);
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).ctx("changing owner of", path)
    }

    /// Times, owner and mode on an open file or directory: no path is looked up, so nothing
    /// that replaced `path` since (a link, say) can receive them.
    fn apply_meta(&mut self, f: &File, path: &Path, meta: &FileMeta) -> Result<()> {
        // Times first; then owner; then mode, since chown clears setuid/setgid bits.
        let mtime = UNIX_EPOCH + Duration::from_secs(meta.mtime.max(0) as u64);
        f.set_times(fs::FileTimes::new().set_modified(mtime).set_accessed(mtime)).ctx("setting time of", path)?;
        if self.as_root {
            let (uid, gid) = self.owner_of(path, meta);
            std::os::unix::fs::fchown(f, Some(uid), Some(gid)).ctx("changing owner of", path)?;
        }
        f.set_permissions(fs::Permissions::from_mode(meta.mode & 0o7777)).ctx("setting mode of", path)
    }

    /// Applies directory modes, owners and times, deepest first, after everything inside them
    /// was written, and syncs each (its entries are the checkpoint's to sync).
    pub fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (path, meta) in dirs {
            // The parent may have changed since the directory was made: check it again, then
            // open the directory itself without following a link.
            self.check_inside(&path)?;
            let d = open_nofollow(&path, true)?;
            self.apply_meta(&d, &path, &meta)?;
            d.sync_all().ctx("syncing", &path)?;
        }
        Ok(())
    }
}
