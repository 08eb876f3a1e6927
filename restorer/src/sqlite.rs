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
