//! SQLite: a consistent copy through the online backup API, checked with `PRAGMA
//! integrity_check`, with per-table row counts read from the copy itself, then compressed into
//! the spool (gzip members the bundle writer copies unchanged) and the plain copy removed: the
//! spool never holds more than the bundle will.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use restorer::layout;
use restorer::manifest::SqliteDb;
use restorer::owners::Accounts;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::Payload;
use crate::config::SqliteSource;
use crate::pgzip::Cores;
use crate::spool::GzSpool;

/// Copies one database into `spool` (compressed at gzip `level` on `cores` it shares with the
/// dumps taken meanwhile) and describes it.
pub fn snapshot(
    src: &SqliteSource,
    spool: &Path,
    level: u32,
    cores: &Cores,
) -> Result<(SqliteDb, Payload, Option<super::n8n::N8nData>)> {
    let what = format!("[[sqlite]] {} ({})", src.name, src.path.display());
    let m = fs::metadata(&src.path).with_context(|| what.clone())?;
    // Read-write without CREATE: a WAL database needs its -shm, and a missing file must be an
    // error, never a new empty database.
    let conn = Connection::open_with_flags(
        &src.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .with_context(|| format!("{what}: opening"))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let copy_path = spool.join(format!("{}.sqlite", src.name));
    let mut copy = Connection::open(&copy_path).with_context(|| format!("creating {}", copy_path.display()))?;
    {
        let backup = Backup::new(&conn, &mut copy).with_context(|| format!("{what}: starting backup"))?;
        // All pages in one step: one read transaction, so the copy is one consistent instant even
        // while the application writes (a writer in between would restart a step-wise backup).
        let mut tries = 0;
        loop {
            match backup.step(-1).with_context(|| format!("{what}: backup"))? {
                StepResult::Done => break,
                StepResult::Busy | StepResult::Locked if tries < 600 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                StepResult::More => continue,
                other => bail!("{what}: backup could not get a read lock for 60 s ({other:?})"),
            }
        }
    }
    restorer::sqlite::integrity_check(&copy, &copy_path)
        .with_context(|| format!("{what}: the copy failed its integrity check"))?;
    let tables = restorer::sqlite::table_counts(&copy, &copy_path)?;
    let n8n = match src.profile {
        Some(crate::config::Profile::N8n) => {
            Some(super::n8n::read_sqlite(&copy).with_context(|| format!("{what}: reading n8n's tables"))?)
        }
        None => None,
    };
    // One file, no -wal beside it: the copy is self-contained.
    copy.pragma_update(None, "journal_mode", "DELETE")?;
    drop(copy);
    let meta = super::files::meta_of(&m, &Accounts::system());
    let entry = layout::sqlite_entry(&src.name);
    let payload = compress_copy(&copy_path, &entry, meta.mtime, level, cores)?;
    let (size, sha256) = (payload.size, payload.sha256.clone());
    Ok((
        SqliteDb { name: src.name.clone(), entry, path: src.path.clone(), volume: None, meta, size, sha256, tables },
        payload,
        n8n,
    ))
}

/// Compresses the copy into gzip members beside it (hashed as they are read: the digest is the
/// copy's) and removes the plain copy.
fn compress_copy(copy_path: &Path, entry: &str, mtime: i64, level: u32, cores: &Cores) -> Result<Payload> {
    let mut gz_path = copy_path.as_os_str().to_owned();
    gz_path.push(".gz");
    let mut spool = GzSpool::create(Path::new(&gz_path), level, cores)?;
    let mut copy = fs::File::open(copy_path).with_context(|| format!("reading {}", copy_path.display()))?;
    std::io::copy(&mut copy, &mut spool).with_context(|| format!("compressing {}", copy_path.display()))?;
    let payload = spool.finish(entry, mtime)?;
    fs::remove_file(copy_path).with_context(|| format!("removing {}", copy_path.display()))?;
    Ok(payload)
}
