//! Disk space: the file system holding the bundles, and an estimate of what the next bundle
//! needs, so a backup that cannot fit fails (or makes room) before it starts writing.

use std::path::Path;

use anyhow::Result;

use crate::config::Config;
use crate::retention::Disk;

/// Size and free space of the file system `path` is on: statvfs on the path itself (or its
/// nearest existing ancestor), so a tmpfs or a bind mount as the output directory reads its own
/// numbers, not those of the mount that holds its mount point.
pub fn disk_of(path: &Path) -> Option<Disk> {
    restorer::space::of(path).map(|s| Disk { total: s.total, free: s.free })
}

fn tree_size(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            std::fs::read_dir(path).map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum()).unwrap_or(0)
        }
        Ok(m) if m.is_file() => m.len(),
        _ => 0,
    }
}

/// Bytes the next `packer create` may need at its peak: the databases twice (the spool, where
/// PostgreSQL dumps are compressed as pg_dump writes them and SQLite copies are plain, and the
/// bundle; both counted at the database's size), files once, and the restore binary (and for a
/// sealed bundle, its encrypted spool once more). Deliberately pessimistic: compression usually
/// makes the bundle much smaller.
pub fn estimate(cfg: &Config) -> Result<u64> {
    let mut dbs = 0u64;
    for p in &cfg.postgres {
        let mut c = crate::sources::postgres::locate(p)?.target.connect()?;
        let n: i64 = c.query_one("SELECT pg_database_size(current_database())", &[])?.get(0);
        dbs += n as u64;
    }
    for s in &cfg.sqlite {
        dbs += tree_size(&s.path);
    }
    let mut files: u64 = cfg.files.iter().flat_map(|f| f.paths.iter()).map(|p| tree_size(p)).sum();
    // Volumes named in the configuration (those found through a compose project are not counted).
    for name in cfg.volumes.iter().flat_map(|v| &v.names) {
        if let Ok(Some(m)) = restorer::container::volume_mountpoint(name) {
            files += tree_size(&m);
        }
    }
    // A sealed bundle exists twice while it is written: the encrypted spool and the bundle.
    let sealed = if cfg.bundle.sealed_to.is_empty() { 0 } else { dbs + files };
    Ok(2 * dbs + files + sealed + 16 * 1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 8): packer's space pre-flight reads the output directory's own file
    /// system. A tmpfs output_dir reported the free space of `/` before.
    #[test]
    fn tmpfs_output_dir_reads_its_own_file_system() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
            .arg(&out)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root and mount rights)");
            return;
        }
        let disk = disk_of(&out);
        let parent = disk_of(t.path());
        let _ = std::process::Command::new("umount").arg(&out).status();
        let disk = disk.unwrap();
        assert_eq!(disk.total, 6 * 1024 * 1024, "{disk:?}");
        assert_ne!(parent.unwrap().total, disk.total);
    }
}
