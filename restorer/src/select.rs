//! `restore --database NAME=NEWNAME`: a databases-only restore. Which of the bundle's PostgreSQL
//! databases it restores, under which names, and the manifest of that restore: only those
//! databases, each under its new name, and nothing else (no file, package, account, service or
//! Docker deployment), so the live deployment stays exactly as it is. Pure: no I/O here.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::manifest::{FileContent, Manifest};
use crate::names::{is_database, DATABASE_RULE};
use crate::{Error, Result};

/// One `--database NAME=NEWNAME`: the bundle's database `from`, restored as `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rename {
    /// The bundle's database: its name on the source server (`postgres[].database`), or the
    /// `[[postgres]] name` of its entry.
    pub from: String,
    /// The name it gets on the target server.
    pub to: String,
}

impl FromStr for Rename {
    type Err = String;

    /// `NAME=NEWNAME`, split at the first `=` (a database name never holds one).
    fn from_str(s: &str) -> std::result::Result<Rename, String> {
        let (from, to) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=NEWNAME"))?;
        if from.is_empty() {
            return Err(format!("{s:?}: NAME is empty (expected NAME=NEWNAME)"));
        }
        if !is_database(to) {
            return Err(format!("{s:?}: NEWNAME {to:?} is not a database name ({DATABASE_RULE})"));
        }
        Ok(Rename { from: from.into(), to: to.into() })
    }
}

/// The bundle's databases as the refusals list them: `app (entry main)`.
fn listing(m: &Manifest) -> String {
    if m.postgres.is_empty() {
        return "none: this bundle holds no PostgreSQL database".into();
    }
    m.postgres
        .iter()
        .map(|d| if d.name == d.database { d.database.clone() } else { format!("{} (entry {})", d.database, d.name) })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index of the bundle's database `name` names: by its database name, else by its entry's
/// `[[postgres]] name` (the only unique one when two servers each had a database of that name).
fn find(m: &Manifest, name: &str) -> Result<usize> {
    let by_db: Vec<usize> = (0..m.postgres.len()).filter(|&i| m.postgres[i].database == name).collect();
    let hits =
        if by_db.is_empty() { (0..m.postgres.len()).filter(|&i| m.postgres[i].name == name).collect() } else { by_db };
    match hits[..] {
        [i] => Ok(i),
        [] => {
            let sqlite = m.sqlite.iter().find(|s| s.name == name || s.path == Path::new(name));
            Err(Error::Refused(match sqlite {
                Some(s) => format!(
                    "--database {name}: that is a SQLite database of the bundle; --database restores PostgreSQL databases only. Its copy is the file {} in the bundle directory: copy it wherever you want to inspect it (sqlite3 FILE), or restore it with the full restore under --root DIR. Nothing was changed",
                    s.entry
                ),
                None => format!(
                    "--database {name}: the bundle has no PostgreSQL database of that name; its databases: {}. Nothing was changed",
                    listing(m)
                ),
            }))
        }
        _ => Err(Error::Refused(format!(
            "--database {name}: several databases of the bundle have that name ({}); name one by its entry. Nothing was changed",
            hits.iter().map(|&i| format!("entry {}", m.postgres[i].name)).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The manifest of a databases-only restore: the named databases, in the order given, each under
/// its new name; no file, SQLite database, package, service or Docker volume or image. Compose
/// projects stay (a database that lived in a container is restored into that project's running
/// container); with `to_server` (an explicit `--postgres-url`) every named database goes to that
/// server instead, containers or not. n8n's inventory stays when its database is among them (the
/// credential check then reads the new name). Refuses an unknown name (listing the bundle's
/// databases), a SQLite database, a database named twice and two databases given one new name.
pub fn select(m: &Manifest, renames: &[Rename], to_server: bool) -> Result<Manifest> {
    let mut picked: Vec<usize> = Vec::new();
    for (n, r) in renames.iter().enumerate() {
        let i = find(m, &r.from)?;
        if picked.contains(&i) {
            return Err(Error::Refused(format!(
                "--database {}: database {} of the bundle is named twice; restore it under one name at a time. Nothing was changed",
                r.from, m.postgres[i].database
            )));
        }
        if let Some(other) = renames[..n].iter().find(|o| o.to == r.to) {
            return Err(Error::Refused(format!(
                "--database {}={} and --database {}={}: two databases cannot be restored under one name. Nothing was changed",
                other.from, other.to, r.from, r.to
            )));
        }
        picked.push(i);
    }
    let mut out = m.clone();
    out.postgres = picked
        .iter()
        .zip(renames)
        .map(|(&i, r)| {
            let mut d = m.postgres[i].clone();
            d.database = r.to.clone();
            if to_server {
                d.container = None;
            }
            d
        })
        .collect();
    out.sqlite.clear();
    out.files.clear();
    out.requirements.clear();
    out.services = Default::default();
    let in_containers = out.postgres.iter().any(|d| d.container.is_some());
    out.docker = m.docker.clone().filter(|_| in_containers).map(|mut d| {
        d.volumes.clear();
        d.images.clear();
        d
    });
    let n8n_db = |e: &str| out.postgres.iter().any(|d| d.entry == e);
    out.n8n = m.n8n.clone().filter(|n| n.database_kind != "sqlite" && n8n_db(&n.database_entry));
    Ok(out)
}

/// Where the bundle itself holds the file with n8n's encryption key (a databases-only restore
/// writes no file, so the credential check reads the key from the bundle's copy).
pub fn key_file_in_bundle(m: &Manifest, bundle_dir: &Path) -> Option<PathBuf> {
    let found_in = m.n8n.as_ref()?.encryption_key.found_in.as_deref()?;
    m.files.iter().find(|f| f.path == Path::new(found_in)).and_then(|f| match &f.content {
        FileContent::File { entry, .. } => Some(bundle_dir.join(entry)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let db = |name: &str, database: &str| {
            serde_json::json!({"name": name, "entry": format!("databases/{name}.dump"), "database": database,
                "owner": "o", "encoding": "UTF8", "collate": "C", "ctype": "C", "server_version": "15",
                "server_version_num": 150000, "pg_dump_version": "15", "size": 1, "sha256": "0", "tables": []})
        };
        serde_json::from_value(serde_json::json!({
            "format_version": 1, "created_by": "t", "created_at": "2026-12-01T00:00:00Z",
            "bundle_name": "t", "source_host": {"hostname": "h", "os": "o", "arch": "x86_64"},
            "postgres": [db("main", "app"), db("other", "shop"), db("a2", "dup"), db("b2", "dup")],
            "sqlite": [{"name": "cache", "entry": "databases/cache.sqlite", "path": "/srv/cache.db",
                "owner": "root", "group": "root", "uid": 0, "gid": 0, "mode": 384, "mtime": 0,
                "size": 0, "sha256": "", "tables": []}],
            "requirements": ["postgresql-client-15"],
        }))
        .unwrap()
    }

    fn r(s: &str) -> Rename {
        s.parse().unwrap()
    }

    /// NAME=NEWNAME parses at the first '='; a NEWNAME that is no database name is refused.
    #[test]
    fn parses_name_pairs() {
        assert_eq!(r("app=app_check"), Rename { from: "app".into(), to: "app_check".into() });
        for bad in ["app", "=x", "app=", "app=host=evil", "app=postgresql://h/x"] {
            assert!(bad.parse::<Rename>().is_err(), "{bad}");
        }
    }

    /// Only the named databases remain, under their new names, in the order given; nothing else
    /// of the bundle is restored.
    #[test]
    fn keeps_only_the_named_databases_renamed() {
        let m = select(&manifest(), &[r("shop=shop_b"), r("main=main_copy")], false).unwrap();
        let names: Vec<(&str, &str)> = m.postgres.iter().map(|d| (d.name.as_str(), d.database.as_str())).collect();
        assert_eq!(names, vec![("other", "shop_b"), ("main", "main_copy")]);
        assert!(m.files.is_empty() && m.sqlite.is_empty() && m.requirements.is_empty() && m.docker.is_none());
    }

    /// An unknown name lists the bundle's databases; a SQLite database says where its copy is;
    /// an ambiguous name asks for the entry; a database named twice and one new name given twice
    /// are refused.
    #[test]
    fn refusals_say_what_to_do() {
        let m = manifest();
        let err = |args: &[&str]| {
            let rs: Vec<Rename> = args.iter().map(|a| r(a)).collect();
            select(&m, &rs, false).unwrap_err().to_string()
        };
        let e = err(&["nope=x"]);
        assert!(e.contains("app (entry main), shop (entry other)"), "{e}");
        assert!(err(&["cache=x"]).contains("databases/cache.sqlite"));
        assert!(err(&["dup=x"]).contains("entry a2, entry b2"));
        assert_eq!(select(&m, &[r("a2=x")], false).unwrap().postgres[0].name, "a2");
        assert!(err(&["app=x", "main=y"]).contains("named twice"));
        assert!(err(&["app=x", "shop=x"]).contains("under one name"));
    }
}
