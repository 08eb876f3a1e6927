//! Validation of a restored target against the manifest: file digests and modes on disk, link
//! texts and where the links lead, SQLite integrity and row counts, PostgreSQL row counts per
//! table.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::sha256_file;
use crate::links::{self, Node, Resolved};
use crate::manifest::{FileContent, Manifest, PostgresDb, TableCount};
use crate::pg::{table_counts, PgTarget};
use crate::{layout, sqlite, Result};

/// One check: what was expected, what was found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`postgres n8n: public.workflow_entity rows`, `file /etc/x sha256`).
    pub check: String,
    /// Expected value (from the manifest).
    pub expected: String,
    /// Value found on the target.
    pub actual: String,
    /// Whether they agree.
    pub ok: bool,
}

fn check(out: &mut Vec<Check>, what: String, expected: impl ToString, actual: impl ToString) {
    let (expected, actual) = (expected.to_string(), actual.to_string());
    out.push(Check { ok: expected == actual, check: what, expected, actual });
}

/// Compares row counts table by table, reporting tables missing on either side.
pub fn compare_counts(out: &mut Vec<Check>, prefix: &str, expected: &[TableCount], actual: &[TableCount]) {
    for e in expected {
        let found = actual.iter().find(|a| a.schema == e.schema && a.name == e.name);
        check(
            out,
            format!("{prefix}: {} rows", e.qualified()),
            e.rows,
            found.map(|a| a.rows.to_string()).unwrap_or_else(|| "table missing".into()),
        );
    }
    for a in actual {
        if !expected.iter().any(|e| e.schema == a.schema && e.name == a.name) {
            check(out, format!("{prefix}: {} rows", a.qualified()), "table absent from manifest", a.rows);
        }
    }
}

/// What the manifest records at each path: files and SQLite databases, directories, links.
fn recorded(manifest: &Manifest) -> BTreeMap<PathBuf, Node> {
    let mut out: BTreeMap<PathBuf, Node> = manifest
        .files
        .iter()
        .map(|f| {
            let node = match &f.content {
                FileContent::File { .. } => Node::Other,
                FileContent::Dir => Node::Dir,
                FileContent::Symlink { target } => Node::Link(target.clone()),
            };
            (f.path.clone(), node)
        })
        .collect();
    for db in &manifest.sqlite {
        out.insert(db.path.clone(), Node::Other);
    }
    out
}

/// "path (kind)", the way a link's destination is compared.
fn destination(r: &Resolved) -> String {
    let kind = match r.node {
        Node::Dir => "directory",
        Node::Missing => "missing",
        Node::Other | Node::Link(_) => "file",
    };
    format!("{} ({kind})", r.path.display())
}

/// Where the link at `path` leads among the manifest's own records, when the bundle holds what
/// it points to. A path with records below it counts as a directory.
fn recorded_destination(records: &BTreeMap<PathBuf, Node>, path: &Path) -> Option<String> {
    let mut lookup = |p: &Path| -> std::io::Result<Node> {
        if let Some(n) = records.get(p) {
            return Ok(n.clone());
        }
        let below = records.range(p.to_path_buf()..).next().is_some_and(|(k, _)| k.starts_with(p));
        Ok(if below { Node::Dir } else { Node::Missing })
    };
    let r = links::resolve(path, &mut lookup).ok()?;
    (r.node != Node::Missing).then(|| destination(&r))
}

/// Checks every restored file, link and SQLite database under `root`.
pub fn files(manifest: &Manifest, root: &Path) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    let records = recorded(manifest);
    for f in &manifest.files {
        let target = layout::target_path(root, &f.path)?;
        let shown = f.path.display();
        match &f.content {
            FileContent::File { sha256, .. } => {
                let actual = sha256_file(&target).map(|d| d.0).unwrap_or_else(|e| e.to_string());
                check(&mut out, format!("file {shown} sha256"), sha256, actual);
                let mode = fs::symlink_metadata(&target)
                    .map(|m| format!("{:o}", m.mode() & 0o7777))
                    .unwrap_or_else(|e| e.to_string());
                check(&mut out, format!("file {shown} mode"), format!("{:o}", f.meta.mode & 0o7777), mode);
            }
            FileContent::Dir => {
                let actual = fs::symlink_metadata(&target)
                    .map(|m| if m.is_dir() { "directory" } else { "not a directory" }.to_string())
                    .unwrap_or_else(|e| e.to_string());
                check(&mut out, format!("dir {shown}"), "directory", actual);
            }
            FileContent::Symlink { target: link } => {
                let actual = fs::read_link(&target).map(|p| p.display().to_string()).unwrap_or_else(|e| e.to_string());
                check(&mut out, format!("link {shown} target"), link.display(), actual);
                // When the bundle holds what the link points to, the restored link must lead to
                // the restored object: resolved under the root, never outside it.
                if let Some(expected) = recorded_destination(&records, &f.path) {
                    let actual = match links::resolve(&f.path, &mut links::on_disk(root)) {
                        Ok(r) => destination(&r),
                        Err(e) => e.to_string(),
                    };
                    check(&mut out, format!("link {shown} leads to"), expected, actual);
                }
            }
        }
    }
    for db in &manifest.sqlite {
        let target = layout::target_path(root, &db.path)?;
        let prefix = format!("sqlite {}", db.name);
        match sqlite::open_read_only(&target).and_then(|c| sqlite::integrity_check(&c, &target).map(|_| c)) {
            Ok(conn) => {
                check(&mut out, format!("{prefix}: integrity_check"), "ok", "ok");
                compare_counts(&mut out, &prefix, &db.tables, &sqlite::table_counts(&conn, &target)?);
            }
            Err(e) => check(&mut out, format!("{prefix}: integrity_check"), "ok", e),
        }
    }
    Ok(out)
}

/// Checks the row counts of every restored PostgreSQL database.
pub fn postgres(manifest: &Manifest, pg: &PgTarget) -> Result<Vec<Check>> {
    postgres_where(manifest, |_| Some(pg.clone()))
}

/// Row counts of each database on the server `target_of` names for it (the host server, or the
/// container it was restored into); databases it gives no server for are not checked here.
pub fn postgres_where(manifest: &Manifest, target_of: impl Fn(&PostgresDb) -> Option<PgTarget>) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    for db in &manifest.postgres {
        let Some(pg) = target_of(db) else { continue };
        let target = pg.with_database(&db.database);
        let mut c = target.connect()?;
        let counts = table_counts(&mut c, &target.describe())?;
        compare_counts(&mut out, &format!("postgres {}", db.database), &db.tables, &counts);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, rows: u64) -> TableCount {
        TableCount { schema: "public".into(), name: name.into(), rows }
    }

    /// Differences, missing tables and unexpected tables each fail one check.
    #[test]
    fn count_comparison() {
        let mut out = Vec::new();
        compare_counts(&mut out, "p", &[t("a", 1), t("b", 2), t("c", 3)], &[t("a", 1), t("b", 5), t("d", 0)]);
        let bad: Vec<_> = out.iter().filter(|c| !c.ok).map(|c| c.check.as_str()).collect();
        assert_eq!(bad, vec!["p: public.b rows", "p: public.c rows", "p: public.d rows"]);
    }

    /// A link's destination is known from the manifest when the bundle holds what it points to
    /// (through other recorded links too), and unknown otherwise.
    #[test]
    fn recorded_destinations() {
        let records: BTreeMap<PathBuf, Node> = [
            ("/etc/nginx/sites-available/default", Node::Other),
            ("/etc/nginx/sites-enabled/default", Node::Link("../sites-available/default".into())),
            ("/etc/nginx/conf.d/chain", Node::Link("/etc/nginx/sites-enabled/default".into())),
            ("/etc/le/archive/ex/cert1.pem", Node::Other),
            ("/etc/le/live/ex", Node::Link("../archive/ex".into())),
            ("/etc/nginx/sites-enabled/other", Node::Link("/usr/share/nginx/default".into())),
        ]
        .into_iter()
        .map(|(p, n)| (PathBuf::from(p), n))
        .collect();
        let d = |p: &str| recorded_destination(&records, Path::new(p));
        assert_eq!(d("/etc/nginx/conf.d/chain").as_deref(), Some("/etc/nginx/sites-available/default (file)"));
        assert_eq!(d("/etc/le/live/ex").as_deref(), Some("/etc/le/archive/ex (directory)"));
        assert_eq!(d("/etc/nginx/sites-enabled/other"), None);
    }
}
