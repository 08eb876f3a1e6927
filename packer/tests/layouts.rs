//! Real layouts restore with exit 0: an SQLite database inside a captured directory (n8n's
//! ~/.n8n), listed paths that are symbolic links (Debian's nginx sites, Let's Encrypt's live/),
//! and packer's own output directory inside a captured directory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use common::*;
use predicates::prelude::*;

/// The entry names of a bundle, as `tar tzf` lists them.
fn entries(bundle: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("tzf").arg(bundle).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

/// Extracts `bundle` and restores it under `root` (no packages, no services, no questions).
fn restore_under(bundle: &Path, x: &Path, root: &Path) -> std::process::Output {
    let dir = extract(bundle, x);
    restore(&dir).args(["--yes", "--no-install", "--no-services", "--root"]).arg(root).output().unwrap()
}

/// `root` + an original absolute path.
fn under(root: &Path, original: &Path) -> PathBuf {
    root.join(original.strip_prefix("/").unwrap())
}

/// The validation checks of a restore's report that failed.
fn failed_checks(x: &Path) -> Vec<String> {
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(x.join("restore-report.json")).unwrap()).unwrap();
    report["validation"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] != true)
        .map(|c| format!("{} expected {} got {}", c["check"], c["expected"], c["actual"]))
        .collect()
}

/// An SQLite database in WAL mode inside a captured `[[files]]` directory is packed once, as the
/// consistent copy: the raw file and its -wal/-shm are left out with a note, and the restore
/// exits 0 with every row (those only in the WAL too).
#[test]
fn sqlite_inside_captured_dir_is_packed_once_and_restores() {
    let t = tempfile::tempdir().unwrap();
    let n8n_dir = t.path().join("src/home/node/.n8n");
    fs::create_dir_all(&n8n_dir).unwrap();
    fs::write(n8n_dir.join("config"), "{\"encryptionKey\": \"not-a-real-key\"}\n").unwrap();
    let db_path = n8n_dir.join("database.sqlite");
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA wal_autocheckpoint=0;
         CREATE TABLE workflow_entity (id TEXT PRIMARY KEY, name TEXT);
         INSERT INTO workflow_entity VALUES ('a', 'first'), ('b', 'second'), ('c', 'third');",
    )
    .unwrap();
    // The connection stays open through the packing: these pages live only in the WAL.
    let wal = PathBuf::from(format!("{}-wal", db_path.display()));
    let shm = PathBuf::from(format!("{}-shm", db_path.display()));
    assert!(fs::metadata(&wal).unwrap().len() > 0 && shm.exists(), "the database has WAL content");

    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"n8n\"\n\n[[sqlite]]\nname = \"n8n\"\npath = \"{}\"\n\n[[files]]\nkind = \"config\"\npaths = [\"{}\"]\n",
            t.path().join("out").display(),
            db_path.display(),
            n8n_dir.display()
        ),
    )
    .unwrap();
    let bundle = create(&cfg);

    // Nothing captured twice: one database entry, no raw file, no journal.
    let manifest = restorer::unpack::read_manifest(&bundle).unwrap();
    let paths: Vec<&Path> = manifest.files.iter().map(|f| f.path.as_path()).collect();
    assert!(paths.contains(&n8n_dir.as_path()) && paths.contains(&n8n_dir.join("config").as_path()), "{paths:?}");
    for p in [&db_path, &wal, &shm] {
        assert!(!paths.contains(&p.as_path()), "{} captured as a file too", p.display());
    }
    let names = entries(&bundle);
    let db_entries: Vec<_> = names.iter().filter(|e| e.contains("database.sqlite") || e.ends_with(".sqlite")).collect();
    assert_eq!(db_entries, vec!["databases/n8n.sqlite"], "{names:?}");
    // The manifest says what was left out and why.
    for p in [&db_path, &wal] {
        let shown = p.display().to_string();
        assert!(manifest.notes.iter().any(|n| n.starts_with(&shown) && n.contains("[[sqlite]]")), "{:?}", manifest.notes);
    }
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    packer().arg("show").arg(&bundle).assert().success().stdout(predicate::str::contains("note: "));

    let root = t.path().join("root");
    let x = t.path().join("x");
    let out = restore_under(&bundle, &x, &root);
    assert!(out.status.success(), "restore exited {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stdout));
    assert!(failed_checks(&x).is_empty(), "{:?}", failed_checks(&x));
    let restored = rusqlite::Connection::open(under(&root, &db_path)).unwrap();
    let n: i64 = restored.query_row("SELECT count(*) FROM workflow_entity", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3, "the rows only in the WAL are restored");
    assert_eq!(fs::read(under(&root, &n8n_dir.join("config"))).unwrap(), fs::read(n8n_dir.join("config")).unwrap());
    drop(conn);
}
