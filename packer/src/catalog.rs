//! The catalog: a SQLite file beside the bundles (`<output_dir>/catalog.sqlite`) recording every
//! bundle, every run and every verification, so `list`, `show`, `status` and retention answer
//! without opening a bundle. It is an index, never the truth: it can always be rebuilt from the
//! bundles' heads, and a damaged catalog is set aside and rebuilt rather than blocking a backup.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use restorer::layout;
use restorer::log::Level;
use restorer::manifest::Manifest;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::retention::{Candidate, Source};

/// A line the catalog's upkeep reports: what it found or did, and how much it matters.
pub type Event = (Level, String);

/// File name of the catalog inside the output directory.
pub const FILE: &str = "catalog.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bundles (
    id INTEGER PRIMARY KEY,
    file_name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    protected INTEGER NOT NULL DEFAULT 0,
    pending_since TEXT,
    confirmed INTEGER NOT NULL DEFAULT 0,
    verified_at TEXT,
    verify_depth TEXT,
    verify_ok INTEGER,
    verify_detail TEXT,
    manifest TEXT NOT NULL
);
-- Verified copies on object storage. Keyed by destination and key, not by bundle id: a copy
-- outlives its local bundle (that is its point), so the row keeps the bundle's name and time.
-- retention_deleted: when local retention deleted the bundle ([retention] remote = true then
-- deletes the copy); a bundle deleted by hand or for space leaves its copies alone.
CREATE TABLE IF NOT EXISTS remote_copies (
    id INTEGER PRIMARY KEY,
    file_name TEXT NOT NULL,
    created TEXT NOT NULL,
    destination TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    verified_at TEXT NOT NULL,
    verify_ok INTEGER NOT NULL DEFAULT 1,
    retention_deleted TEXT,
    UNIQUE (destination, key)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    kind TEXT NOT NULL,
    ok INTEGER NOT NULL,
    bundle_id INTEGER,
    error TEXT
);
";

crate::words! {
    /// A bundle's state in the catalog (`bundles.status`, `--json`'s `status`).
    pub enum BundleStatus("bundle status") {
        /// The file is in the output directory.
        Ok = "ok",
        /// The catalog knows it but the file is gone (`status` alerts).
        Missing = "missing",
        /// Retention marked it; deleted once `notify_before_hours` have passed.
        PendingDeletion = "pending-deletion",
    }
}

crate::words! {
    /// What a run recorded in the catalog did (`runs.kind`).
    pub enum RunKind("run kind") {
        /// A backup (`packer create`, the daemon's cycle).
        Create = "create",
        /// Retention applied.
        Prune = "prune",
        /// A bundle copied to another machine.
        Ship = "ship",
    }
}

crate::words! {
    /// How far a verification went (`[schedule] verify_depth`, `bundles.verify_depth`).
    pub enum VerifyDepth("verify_depth") {
        /// Every entry's sha256 against the checksum list and the manifest.
        Digest = "digest",
        /// Also every database restored into a throwaway server and compared.
        Deep = "deep",
    }
}

/// Stored as their words, read back strictly: an unknown word fails the read with the column's
/// name and the words known, instead of becoming some default.
macro_rules! sql_words {
    ($($t:ty),+) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                v.as_str()?.parse().map_err(|e: crate::words::UnknownWord| FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}
sql_words!(BundleStatus, RunKind, VerifyDepth, Source);

/// One bundle as the catalog knows it.
#[derive(Debug, Clone, Serialize)]
pub struct BundleRow {
    /// Catalog id (what `protect`, `delete`, `show` take).
    pub id: i64,
    /// File name inside the output directory.
    pub file_name: String,
    /// Creation time (UTC).
    pub created: DateTime<Utc>,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the file.
    pub sha256: String,
    /// manual, scheduled or checkpoint.
    pub source: Source,
    /// ok, missing or pending-deletion.
    pub status: BundleStatus,
    /// Never removed automatically.
    pub protected: bool,
    /// When it was marked for deletion.
    pub pending_since: Option<DateTime<Utc>>,
    /// For checkpoints: the restore was confirmed.
    pub confirmed: bool,
    /// Last verification: when.
    pub verified_at: Option<DateTime<Utc>>,
    /// Last verification: digest or deep.
    pub verify_depth: Option<VerifyDepth>,
    /// Last verification: passed.
    pub verify_ok: Option<bool>,
}

impl BundleRow {
    /// What retention needs.
    pub fn candidate(&self) -> Candidate {
        Candidate {
            id: self.id,
            created: self.created,
            size: self.size,
            protected: self.protected,
            verified_ok: self.verify_ok == Some(true),
            source: self.source,
            confirmed: self.confirmed,
        }
    }
}

/// A verified copy of a bundle on object storage.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteCopy {
    /// Row id.
    pub id: i64,
    /// The bundle's file name.
    pub file_name: String,
    /// The bundle's creation time.
    pub created: DateTime<Utc>,
    /// `s3://bucket/prefix`, as configured.
    pub destination: String,
    /// The object's key.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// Its sha256.
    pub sha256: String,
    /// When it was last read back and found matching (or not: `verify_ok`).
    pub verified_at: DateTime<Utc>,
    /// The last read-back matched.
    pub verify_ok: bool,
    /// When local retention deleted its bundle.
    pub retention_deleted: Option<DateTime<Utc>>,
}

/// A finished run (create, prune, verify), for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// Start.
    pub started: DateTime<Utc>,
    /// End.
    pub finished: DateTime<Utc>,
    /// create, prune or ship.
    pub kind: RunKind,
    /// Succeeded.
    pub ok: bool,
    /// The bundle it made.
    pub bundle_id: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// An open catalog.
pub struct Catalog {
    conn: Connection,
    dir: PathBuf,
}

fn parse_time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|t| t.with_timezone(&Utc))
}

/// Whether an error opening the catalog means the file is damaged (and may be rebuilt), as
/// opposed to the disk or the system failing (full, I/O error, locked, not permitted).
fn is_damage(e: &anyhow::Error) -> bool {
    use rusqlite::ErrorCode as C;
    let code = e.chain().find_map(|c| match c.downcast_ref::<rusqlite::Error>() {
        Some(rusqlite::Error::SqliteFailure(f, _)) => Some(f.code),
        _ => None,
    });
    !matches!(
        code,
        Some(
            C::DiskFull
                | C::SystemIoFailure
                | C::DatabaseBusy
                | C::DatabaseLocked
                | C::PermissionDenied
                | C::ReadOnly
                | C::CannotOpen
                | C::OutOfMemory
        )
    ) && !e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some())
}

/// Files SQLite keeps beside the catalog.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// The catalog names every bundle, its digest and its verification history: readable by its
/// owner only (0600), whatever the directory's mode or the umask. Creates the file if missing
/// (an empty file is an empty SQLite database), so SQLite never creates it with the umask's mode.
fn make_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .with_context(|| format!("opening catalog {}", path.display()))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private (0600)", path.display()))
}

impl Catalog {
    /// Opens (creating if needed) the catalog of `dir`. A catalog that SQLite cannot read or
    /// that fails its quick check is moved aside and rebuilt from the bundles; the returned
    /// events say so.
    pub fn open(dir: &Path) -> Result<(Catalog, Vec<Event>)> {
        let path = dir.join(FILE);
        let mut events = Vec::new();
        match Catalog::open_checked(dir) {
            Ok(c) => return Ok((c, events)),
            // A full disk, an I/O error or a lock is not damage: moving the catalog aside
            // would throw away protection marks and history for nothing.
            Err(e) if !is_damage(&e) => return Err(e),
            Err(e) if path.exists() => {
                let aside = dir.join(format!("{FILE}.damaged-{}", Utc::now().format("%Y%m%d%H%M%S")));
                fs::rename(&path, &aside)
                    .with_context(|| format!("moving damaged catalog {} aside", path.display()))?;
                for suffix in SIDECARS {
                    let _ = fs::remove_file(dir.join(format!("{FILE}{suffix}")));
                }
                events.push((
                    Level::Warning,
                    format!(
                        "catalog {} was damaged ({}); kept as {} and rebuilt from the bundles",
                        path.display(),
                        crate::error_text::chain(&e),
                        aside.display()
                    ),
                ));
            }
            Err(e) => return Err(e),
        }
        let mut c = Catalog::open_checked(dir)?;
        let (n, problems) = c.rebuild()?;
        events.push((Level::Notice, format!("catalog rebuilt: {n} bundle(s) indexed")));
        events.extend(problems.into_iter().map(|p| (Level::Warning, format!("not indexed: {p}"))));
        Ok((c, events))
    }

    fn open_checked(dir: &Path) -> Result<Catalog> {
        let path = dir.join(FILE);
        make_private(&path)?;
        let conn = Connection::open(&path).with_context(|| format!("opening catalog {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // SQLite creates its journal, -wal and -shm files with the database's mode; any left
        // from an older, laxer version are tightened as well.
        for suffix in SIDECARS {
            let p = dir.join(format!("{FILE}{suffix}"));
            if p.exists() {
                make_private(&p)?;
            }
        }
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).context("checking catalog")?;
        if check != "ok" {
            bail!("quick_check: {check}");
        }
        conn.execute_batch(SCHEMA).context("creating catalog tables")?;
        Ok(Catalog { conn, dir: dir.to_path_buf() })
    }

    /// Adds a bundle file (its manifest read from the head).
    pub fn insert(&self, file_name: &str, manifest: &Manifest, size: u64, sha256: &str, source: Source) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO bundles (file_name, created, size, sha256, source, status, manifest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(file_name) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, status = excluded.status, manifest = excluded.manifest",
            params![file_name, manifest.created_at.to_rfc3339(), size as i64, sha256, source, BundleStatus::Ok, manifest.to_json()],
        )?;
        Ok(self.conn.query_row("SELECT id FROM bundles WHERE file_name = ?1", [file_name], |r| r.get(0))?)
    }

    /// Every bundle row, newest first.
    pub fn list(&self) -> Result<Vec<BundleRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, file_name, created, size, sha256, source, status, protected, pending_since, confirmed, verified_at, verify_depth, verify_ok
             FROM bundles ORDER BY created DESC, id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(BundleRow {
                id: r.get(0)?,
                file_name: r.get(1)?,
                created: parse_time(r.get(2)?).unwrap_or_default(),
                size: r.get::<_, i64>(3)? as u64,
                sha256: r.get(4)?,
                source: r.get(5)?,
                status: r.get(6)?,
                protected: r.get(7)?,
                pending_since: parse_time(r.get(8)?),
                confirmed: r.get(9)?,
                verified_at: parse_time(r.get(10)?),
                verify_depth: r.get(11)?,
                verify_ok: r.get(12)?,
            })
        })?;
        rows.collect::<Result<_, _>>()
            .with_context(|| format!("reading the bundles of {}", self.dir.join(FILE).display()))
    }

    /// Finds a bundle by id or file name (or full path).
    pub fn find(&self, key: &str) -> Result<Option<BundleRow>> {
        let name = Path::new(key).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(self.list()?.into_iter().find(|b| b.id.to_string() == key || b.file_name == name))
    }

    /// The stored manifest of a bundle.
    pub fn manifest(&self, id: i64) -> Result<Manifest> {
        let text: String = self.conn.query_row("SELECT manifest FROM bundles WHERE id = ?1", [id], |r| r.get(0))?;
        Ok(Manifest::from_json(&text)?)
    }

    /// Sets a bundle's status.
    pub fn set_status(&self, id: i64, status: BundleStatus, pending_since: Option<DateTime<Utc>>) -> Result<()> {
        self.conn.execute(
            "UPDATE bundles SET status = ?2, pending_since = ?3 WHERE id = ?1",
            params![id, status, pending_since.map(|t| t.to_rfc3339())],
        )?;
        Ok(())
    }

    /// Sets or clears the protected flag.
    pub fn set_protected(&self, id: i64, protected: bool) -> Result<()> {
        self.conn.execute("UPDATE bundles SET protected = ?2 WHERE id = ?1", params![id, protected])?;
        Ok(())
    }

    /// Records a verification result.
    pub fn record_verification(&self, id: i64, depth: VerifyDepth, ok: bool, detail: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE bundles SET verified_at = ?2, verify_depth = ?3, verify_ok = ?4, verify_detail = ?5 WHERE id = ?1",
            params![id, Utc::now().to_rfc3339(), depth, ok, detail],
        )?;
        Ok(())
    }

    /// Removes a bundle's row.
    pub fn remove(&self, id: i64) -> Result<()> {
        self.conn.execute("DELETE FROM bundles WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Records a verified copy on object storage (replacing an earlier record of that key).
    pub fn record_remote(&self, file_name: &str, created: DateTime<Utc>, s: &crate::s3::Shipped) -> Result<()> {
        self.conn.execute(
            "INSERT INTO remote_copies (file_name, created, destination, key, size, sha256, verified_at, verify_ok)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)
             ON CONFLICT(destination, key) DO UPDATE SET file_name = excluded.file_name, created = excluded.created,
               size = excluded.size, sha256 = excluded.sha256, verified_at = excluded.verified_at, verify_ok = 1,
               retention_deleted = NULL",
            params![
                file_name,
                created.to_rfc3339(),
                s.destination,
                s.key,
                s.size as i64,
                s.sha256,
                s.verified_at.to_rfc3339()
            ],
        )?;
        Ok(())
    }

    /// Every recorded remote copy, newest bundle first.
    pub fn remote_copies(&self) -> Result<Vec<RemoteCopy>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, file_name, created, destination, key, size, sha256, verified_at, verify_ok, retention_deleted
             FROM remote_copies ORDER BY created DESC, id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RemoteCopy {
                id: r.get(0)?,
                file_name: r.get(1)?,
                created: parse_time(r.get(2)?).unwrap_or_default(),
                destination: r.get(3)?,
                key: r.get(4)?,
                size: r.get::<_, i64>(5)? as u64,
                sha256: r.get(6)?,
                verified_at: parse_time(r.get(7)?).unwrap_or_default(),
                verify_ok: r.get(8)?,
                retention_deleted: parse_time(r.get(9)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a failed read-back of a copy (a fetch that found it corrupt): it no longer
    /// counts as a verified copy.
    pub fn remote_failed(&self, id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE remote_copies SET verify_ok = 0, verified_at = ?2 WHERE id = ?1",
            params![id, Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }

    /// Notes that local retention deleted `file_name`: its remote copies may follow.
    pub fn mark_retention_deleted(&self, file_name: &str, at: DateTime<Utc>) -> Result<()> {
        self.conn.execute(
            "UPDATE remote_copies SET retention_deleted = ?2 WHERE file_name = ?1 AND retention_deleted IS NULL",
            params![file_name, at.to_rfc3339()],
        )?;
        Ok(())
    }

    /// Forgets a remote copy (deleted from the store).
    pub fn remove_remote(&self, id: i64) -> Result<()> {
        self.conn.execute("DELETE FROM remote_copies WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Records a finished run.
    pub fn record_run(&self, run: &RunRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO runs (started, finished, kind, ok, bundle_id, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run.started.to_rfc3339(), run.finished.to_rfc3339(), run.kind, run.ok, run.bundle_id, run.error],
        )?;
        Ok(())
    }

    /// The newest run of `kind` that succeeded (`ok = true`) or failed.
    pub fn last_run(&self, kind: RunKind, ok: bool) -> Result<Option<RunRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT started, finished, kind, ok, bundle_id, error FROM runs WHERE kind = ?1 AND ok = ?2 ORDER BY finished DESC, id DESC LIMIT 1",
                params![kind, ok],
                |r| {
                    Ok(RunRow {
                        started: parse_time(r.get(0)?).unwrap_or_default(),
                        finished: parse_time(r.get(1)?).unwrap_or_default(),
                        kind: r.get(2)?,
                        ok: r.get(3)?,
                        bundle_id: r.get(4)?,
                        error: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    /// Start-up housekeeping, only while holding the lock: removes `.partial` files and spool
    /// directories left by a crash, then [`Catalog::reconcile`]s. Returns what it did.
    pub fn housekeeping(&self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        for e in fs::read_dir(&self.dir).with_context(|| format!("listing {}", self.dir.display()))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("backup_") && name.ends_with(".partial") {
                fs::remove_file(e.path()).with_context(|| format!("removing {}", e.path().display()))?;
                events.push((Level::Notice, format!("removed {name} left by an interrupted run")));
            } else if name.starts_with(".packer-spool-") {
                fs::remove_dir_all(e.path()).with_context(|| format!("removing {}", e.path().display()))?;
                events.push((Level::Notice, format!("removed spool directory {name} left by an interrupted run")));
            }
        }
        events.extend(self.reconcile()?);
        Ok(events)
    }

    /// Makes the catalog match the directory (safe without the lock: it never deletes a file):
    /// indexes bundle files that have no row, marks rows whose file is gone as missing.
    pub fn reconcile(&self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut on_disk = Vec::new();
        for e in fs::read_dir(&self.dir).with_context(|| format!("listing {}", self.dir.display()))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("backup_") && name.ends_with(layout::BUNDLE_SUFFIX) {
                on_disk.push(name);
            }
        }
        let rows = self.list()?;
        for name in &on_disk {
            if !rows.iter().any(|r| &r.file_name == name) {
                match self.index_file(name, Source::Manual) {
                    Ok(id) => events
                        .push((Level::Notice, format!("indexed {name} (id {id}), which the catalog did not know"))),
                    Err(e) => events
                        .push((Level::Warning, format!("could not index {name}: {}", crate::error_text::chain(&e)))),
                }
            }
        }
        for r in rows {
            let exists = self.dir.join(&r.file_name).exists();
            if !exists && r.status != BundleStatus::Missing {
                self.set_status(r.id, BundleStatus::Missing, None)?;
                events.push((
                    Level::Warning,
                    format!("bundle {} (id {}) is missing from {}", r.file_name, r.id, self.dir.display()),
                ));
            } else if exists && r.status == BundleStatus::Missing {
                self.set_status(r.id, BundleStatus::Ok, None)?;
            }
        }
        Ok(events)
    }

    /// Indexes one bundle file from its head (its digest from the sidecar when there is one).
    pub fn index_file(&self, name: &str, source: Source) -> Result<i64> {
        let path = self.dir.join(name);
        // A sealed bundle this catalog did not write is known by its envelope only.
        let manifest = match restorer::unpack::read_head(&path)? {
            restorer::unpack::Head::Plain(m) => *m,
            restorer::unpack::Head::Sealed(e) => e.stub_manifest(),
        };
        let size = fs::metadata(&path)?.len();
        let sidecar = fs::read_to_string(self.dir.join(format!("{name}.sha256"))).ok();
        let sha256 = match sidecar.as_deref().and_then(|s| s.split_whitespace().next()) {
            Some(d) if d.len() == 64 => d.to_string(),
            _ => restorer::digest::sha256_file(&path)?.0,
        };
        self.insert(name, &manifest, size, &sha256, source)
    }

    /// Re-indexes every bundle file in the directory; rows of vanished files are dropped.
    /// Protection, verification and source of files already known are kept. A file whose head
    /// cannot be read is reported in the returned list, not indexed.
    pub fn rebuild(&mut self) -> Result<(usize, Vec<String>)> {
        let known: Vec<String> = self.list()?.into_iter().map(|r| r.file_name).collect();
        let mut n = 0;
        let mut problems = Vec::new();
        for e in fs::read_dir(&self.dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("backup_") && name.ends_with(layout::BUNDLE_SUFFIX) {
                match self.index_file(&name, Source::Manual) {
                    Ok(_) => n += 1,
                    Err(e) => problems.push(format!("{name}: {}", crate::error_text::chain(&e))),
                }
            }
        }
        for name in known {
            if !self.dir.join(&name).exists() {
                self.conn.execute("DELETE FROM bundles WHERE file_name = ?1", [&name])?;
            }
        }
        Ok((n, problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// Rows as catalogs have always stored them (plain words) read back as the enums, and the
    /// enums are written as those same words; a word no variant has fails the read with the
    /// word and the known ones instead of becoming a default (as an unknown source once became
    /// "manual").
    #[test]
    fn stored_words_read_back_and_unknown_words_are_errors() {
        let t = tempfile::tempdir().unwrap();
        let (c, _) = Catalog::open(t.path()).unwrap();
        let row = |name: &str, source: &str, status: &str, depth: &str| {
            c.conn
                .execute(
                    "INSERT INTO bundles (file_name, created, size, sha256, source, status, verify_depth, manifest)
                     VALUES (?1, '2027-01-01T00:00:00+00:00', 1, '', ?2, ?3, ?4, '{}')",
                    params![name, source, status, depth],
                )
                .unwrap();
        };
        row("a", "scheduled", "pending-deletion", "deep");
        row("b", "checkpoint", "missing", "digest");
        let rows = c.list().unwrap();
        let got: Vec<_> = rows.iter().map(|r| (r.source, r.status, r.verify_depth)).collect();
        assert!(got.contains(&(Source::Scheduled, BundleStatus::PendingDeletion, Some(VerifyDepth::Deep))), "{got:?}");
        assert!(got.contains(&(Source::Checkpoint, BundleStatus::Missing, Some(VerifyDepth::Digest))), "{got:?}");
        let a = rows.iter().find(|r| r.file_name == "a").unwrap();
        c.set_status(a.id, BundleStatus::Ok, None).unwrap();
        c.record_verification(a.id, VerifyDepth::Digest, true, "").unwrap();
        let words: (String, String) = c
            .conn
            .query_row("SELECT status, verify_depth FROM bundles WHERE id = ?1", [a.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(words, ("ok".to_string(), "digest".to_string()));
        let json = serde_json::to_value(c.find("a").unwrap().unwrap()).unwrap();
        assert_eq!(
            (&json["status"], &json["source"], &json["verify_depth"]),
            (&"ok".into(), &"scheduled".into(), &"digest".into())
        );

        let now = Utc::now();
        for kind in [RunKind::Create, RunKind::Prune, RunKind::Ship] {
            c.record_run(&RunRow { started: now, finished: now, kind, ok: true, bundle_id: None, error: None })
                .unwrap();
            assert_eq!(c.last_run(kind, true).unwrap().unwrap().kind, kind);
        }
        let stored: Vec<String> = c
            .conn
            .prepare("SELECT kind FROM runs ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(stored, ["create", "prune", "ship"]);

        row("c", "nightly", "ok", "digest");
        let e = crate::error_text::chain(&c.list().unwrap_err());
        assert!(e.contains("bundle source \"nightly\" is not one of manual, scheduled, checkpoint"), "{e}");
        c.conn.execute("UPDATE bundles SET source = 'manual', status = 'gone' WHERE file_name = 'c'", []).unwrap();
        let e = crate::error_text::chain(&c.list().unwrap_err());
        assert!(e.contains("bundle status \"gone\" is not one of ok, missing, pending-deletion"), "{e}");
    }

    /// Regression (issue 8): catalog.sqlite and its -wal/-shm are 0600 in a world-writable
    /// directory, and an existing catalog left 0644 by an older version is tightened on open.
    #[test]
    fn catalog_and_its_wal_are_private_whatever_the_directory() {
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let (c, _) = Catalog::open(t.path()).unwrap();
        c.conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE probe (x); INSERT INTO probe VALUES (1);").unwrap();
        for name in [FILE.to_string(), format!("{FILE}-wal"), format!("{FILE}-shm")] {
            let p = t.path().join(&name);
            assert!(p.exists(), "{name} exists while the connection is open");
            assert_eq!(mode(&p), 0o600, "{name}");
        }
        drop(c);
        fs::set_permissions(t.path().join(FILE), fs::Permissions::from_mode(0o644)).unwrap();
        let (_c, _) = Catalog::open(t.path()).unwrap();
        assert_eq!(mode(&t.path().join(FILE)), 0o600);
    }
}
