//! Disk space: the file system holding the bundles, and an estimate of what the next bundle
//! needs, so a backup that cannot fit fails (or makes room) before it starts writing.

use std::path::Path;

use anyhow::Result;

use crate::config::Config;
use crate::retention::Disk;

/// Size and free space of the file system holding `path` (the mount with the longest matching
/// mount point).
pub fn disk_of(path: &Path) -> Option<Disk> {
    let real = std::fs::canonicalize(path).ok()?;
    let disks = sysinfo::Disks::new_with_refreshed_list();
    disks
        .iter()
        .filter(|d| real.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| Disk { total: d.total_space(), free: d.available_space() })
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

/// Bytes the next `packer create` may need at its peak: the database dumps twice (the spool and
/// the bundle; a dump without compression is about the database's size), files once, and the
/// restore binary. Deliberately pessimistic: compression usually makes the bundle much smaller.
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
    Ok(2 * dbs + files + 16 * 1024 * 1024)
}
