//! SQLite facts shared by the packer (counts in the manifest) and the restore (validation).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::manifest::TableCount;
use crate::{Error, Result};

fn err(path: &Path) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |source| Error::Sqlite { path: path.to_path_buf(), source }
}

/// Opens a database read-only (never creates one by accident).
pub fn open_read_only(path: &Path) -> Result<Connection> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(err(path))
}

/// Row count of every user table, sorted by name.
pub fn table_counts(conn: &Connection, path: &Path) -> Result<Vec<TableCount>> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
        .map_err(err(path))?;
    let names: Vec<String> =
        stmt.query_map([], |r| r.get(0)).map_err(err(path))?.collect::<Result<_, _>>().map_err(err(path))?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
        let rows: i64 = conn.query_row(&sql, [], |r| r.get(0)).map_err(err(path))?;
        out.push(TableCount { schema: String::new(), name, rows: rows as u64 });
    }
    Ok(out)
}

/// `PRAGMA integrity_check`: Ok when SQLite answers "ok", else the problems it lists.
pub fn integrity_check(conn: &Connection, path: &Path) -> Result<()> {
    let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(err(path))?;
    let lines: Vec<String> =
        stmt.query_map([], |r| r.get(0)).map_err(err(path))?.collect::<Result<_, _>>().map_err(err(path))?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(())
    } else {
        Err(Error::Validation(format!("{}: integrity_check: {}", path.display(), lines.join("; "))))
    }
}

/// A SQLite error as SQLite itself words it. rusqlite shows the connection's last message,
/// which after a failed backup step or a full disk can be a stale "not an error" next to
/// "Error code 13"; the result code is what happened, so it leads: "database or disk is full".
pub fn describe(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode as C;
    let rusqlite::Error::SqliteFailure(f, msg) = e else { return e.to_string() };
    let what = match f.code {
        C::DiskFull => "database or disk is full".to_string(),
        C::DatabaseBusy => "database is locked".to_string(),
        C::DatabaseLocked => "database table is locked".to_string(),
        C::ReadOnly => "attempt to write a readonly database".to_string(),
        C::CannotOpen => "unable to open database file".to_string(),
        C::DatabaseCorrupt => "database disk image is malformed".to_string(),
        C::NotADatabase => "file is not a database".to_string(),
        C::SystemIoFailure => "disk I/O error".to_string(),
        C::PermissionDenied => "access permission denied".to_string(),
        C::OutOfMemory => "out of memory".to_string(),
        C::ConstraintViolation => "constraint failed".to_string(),
        C::TooBig => "string or blob too big".to_string(),
        C::SchemaChanged => "database schema has changed".to_string(),
        _ => f.to_string(),
    };
    match msg.as_deref() {
        Some(m) if m != "not an error" && m != what && !m.is_empty() => format!("{what}: {m}"),
        _ => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 8): a full disk reads "database or disk is full", never the stale
    /// "not an error" rusqlite can carry next to code 13.
    #[test]
    fn full_disk_reads_as_full_disk() {
        let stale = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(13), Some("not an error".into()));
        assert_eq!(describe(&stale), "database or disk is full");
        let plain = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(13), None);
        assert_eq!(describe(&plain), "database or disk is full");
        let with_msg = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(1), Some("no such table: x".into()));
        assert!(describe(&with_msg).ends_with("no such table: x"), "{}", describe(&with_msg));
    }
}
