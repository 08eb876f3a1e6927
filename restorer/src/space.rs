//! Free space of the file system a path will be written to: `statvfs` on the path itself (or
//! its nearest existing ancestor, when it is yet to be created). Asking the path, not a mount
//! table, is what makes a tmpfs, a bind mount or a separate `/var` read its own numbers.

use std::path::{Path, PathBuf};

/// Size and free space of one file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    /// Total size.
    pub total: u64,
    /// Available to an unprivileged writer (`f_bavail`: what is left after the root reserve).
    pub free: u64,
}

/// The path itself when it exists, else its nearest existing ancestor (a target directory the
/// restore will create lives on its parent's file system).
pub fn nearest_existing(path: &Path) -> Option<PathBuf> {
    let mut p = path.to_path_buf();
    loop {
        if p.symlink_metadata().is_ok() {
            return Some(p);
        }
        p = p.parent()?.to_path_buf();
    }
}

/// The file system `path` will be written to. `None` when nothing of the path exists or statvfs
/// fails (the caller then cannot tell, and says so).
pub fn of(path: &Path) -> Option<FsSpace> {
    let p = nearest_existing(path)?;
    let s = rustix::fs::statvfs(&p).ok()?;
    Some(FsSpace { total: s.f_blocks.saturating_mul(s.f_frsize), free: s.f_bavail.saturating_mul(s.f_frsize) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_yet_to_be_created_reads_its_existing_ancestor() {
        let t = std::env::temp_dir();
        let deep = t.join("no-such-dir-for-space-test/a/b");
        assert_eq!(nearest_existing(&deep).unwrap(), t);
        let s = of(&deep).unwrap();
        assert!(s.total > 0 && s.free <= s.total, "{s:?}");
    }

    /// Regression (issue 8): the restore's space pre-flight reads the file system that will be
    /// written. A small tmpfs mounted below a directory on `/` reports the tmpfs's size, also for
    /// a target path below it that does not exist yet.
    #[test]
    fn a_tmpfs_reads_its_own_free_space() {
        let t = tempfile::tempdir().unwrap();
        let mnt = t.path().join("small");
        std::fs::create_dir(&mnt).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root and mount rights)");
            return;
        }
        let outer = of(t.path()).unwrap();
        let inner = of(&mnt.join("var/lib/not-yet")).unwrap();
        let _ = std::process::Command::new("umount").arg(&mnt).status();
        assert_eq!(inner.total, 4 * 1024 * 1024, "{inner:?}");
        assert!(inner.free <= inner.total && outer.total != inner.total, "{outer:?} vs {inner:?}");
    }
}
