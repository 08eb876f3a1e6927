//! The whole path: real PostgreSQL (two databases, awkward data), real SQLite (a row only in the
//! WAL), real files (modes, links, unicode names) -> `packer create` -> `tar xzf` -> the
//! embedded static `./restore` into a second cluster and a temporary root -> every table's
//! content, every sequence and every file equal to the source.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use assert_cmd::prelude::*;
use common::*;
use packer::pg_cluster::Cluster;
use predicates::prelude::*;

const AWKWARD: &str = r#"
CREATE TABLE "MixedCase" (id serial PRIMARY KEY, "camelCol" text, j json, jb jsonb, b bytea, big text);
INSERT INTO "MixedCase" ("camelCol", j, jb, b, big)
  SELECT 'ünïcødé ☃ ' || i, json_build_object('i', i, 'f', 2.0, 's', 'x"y'), jsonb_build_object('k', i, 'arr', jsonb_build_array(1, 'two', null)),
         decode(md5(i::text), 'hex'), CASE WHEN i % 500 = 0 THEN repeat('large row ', 50000) END
  FROM generate_series(1, 2000) i;
CREATE INDEX ON "MixedCase" ("camelCol");
CREATE TABLE "user" (id bigint PRIMARY KEY, "createdAt" timestamptz DEFAULT '2026-01-01T00:00:00Z', name text);
INSERT INTO "user" VALUES (1, DEFAULT, 'Zoë'), (2, DEFAULT, NULL);
CREATE SCHEMA "Other Schema";
CREATE TABLE "Other Schema".t (k text PRIMARY KEY, v numeric(20, 6));
INSERT INTO "Other Schema".t VALUES ('π', 3.141593), ('e', 2.718282);
CREATE SEQUENCE counter START 42;
SELECT nextval('counter'), nextval('counter'), nextval('counter');
CREATE VIEW recent AS SELECT id, "camelCol" FROM "MixedCase" WHERE id > 1990;
CREATE TABLE empty_one (x int);
"#;

fn table_digests(c: &Cluster, db: &str) -> String {
    let tables = c
        .psql(db, "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema') ORDER BY 1")
        .unwrap();
    let mut out = String::new();
    for t in tables.lines() {
        let d = c.psql(db, &format!("SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '-') FROM {t} x")).unwrap();
        out += &format!("{t} {d}");
    }
    out
}

fn sequences(c: &Cluster, db: &str) -> String {
    c.psql(db, "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2").unwrap()
}

/// A bundle made from real sources restores into a fresh cluster and a fresh root with every
/// table, sequence, view and file identical to the source.
#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn round_trip_postgres_sqlite_files() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    source.psql("postgres", "CREATE DATABASE \"Weird-Db\"").unwrap();
    source.psql("postgres", "CREATE DATABASE n8n").unwrap();
    source.psql("Weird-Db", AWKWARD).unwrap();
    source.psql("n8n", "CREATE TABLE workflow_entity (id varchar(36) PRIMARY KEY, name text); INSERT INTO workflow_entity VALUES ('a', 'first'), ('b', 'second');").unwrap();

    let src = sample_tree(t.path());
    let cfg =
        config(t.path(), &src, &[("weird", source.url("Weird-Db")), ("n8n", source.url("n8n"))], Some(source.bin()));
    let bundle = create(&cfg);

    // Published with its sidecar, private, named as promised.
    let name = bundle.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("backup_") && name.ends_with(".test_backup.tar.gz"), "{name}");
    assert_eq!(fs::metadata(&bundle).unwrap().mode() & 0o777, 0o600);
    let sidecar = fs::read_to_string(bundle.with_file_name(format!("{name}.sha256"))).unwrap();
    let (actual, _) = restorer::digest::sha256_file(&bundle).unwrap();
    assert_eq!(sidecar, format!("{actual}  {name}\n"));
    assert!(!fs::read_dir(bundle.parent().unwrap()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("partial")));

    // `packer show` reads the inventory from the head.
    packer()
        .arg("show")
        .arg(&bundle)
        .assert()
        .success()
        .stdout(predicate::str::contains("Weird-Db"))
        .stdout(predicate::str::contains("public.MixedCase"))
        .stdout(predicate::str::contains("2000"));
    let shown: serde_json::Value =
        serde_json::from_slice(&packer().args(["show", "--json"]).arg(&bundle).output().unwrap().stdout).unwrap();
    assert_eq!(shown["postgres"][0]["database"], "Weird-Db");
    let events =
        shown["sqlite"][0]["tables"].as_array().unwrap().iter().find(|t| t["name"] == "events").unwrap().clone();
    assert_eq!(events["rows"], 4, "the row only in the WAL is in the copy");

    // Entry order: manifest first, checksums last.
    let list = std::process::Command::new("tar").arg("tzf").arg(&bundle).output().unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert_eq!(list.lines().next(), Some("manifest.json"));
    assert_eq!(list.lines().last(), Some("checksums.sha256"));

    let dir = extract(&bundle, &t.path().join("x"));
    assert!(packer::restorer_bin::is_static_elf(&dir.join("restore")).unwrap(), "embedded restore is static");
    restore(&dir).arg("verify").assert().success().stdout(predicate::str::contains("OK"));
    let sums = std::process::Command::new("sha256sum")
        .args(["-c", "--quiet", "checksums.sha256"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(sums.success(), "sha256sum -c agrees with the checksum list");

    let target = Cluster::start().unwrap();
    let root = t.path().join("root");
    // The dry run changes nothing and names what it would do.
    restore(&dir)
        .args(["--dry-run", "--no-install", "--no-services", "--root"])
        .arg(&root)
        .args(["--postgres-url", &target.url("postgres")])
        .assert()
        .success()
        .stdout(predicate::str::contains("Weird-Db"))
        .stdout(predicate::str::contains("privkey1.pem"));
    assert!(!root.exists());

    // Without --yes and without a terminal: refused.
    restore(&dir)
        .args(["--no-install", "--no-services", "--root"])
        .arg(&root)
        .args(["--postgres-url", &target.url("postgres")])
        .assert()
        .code(restorer::exit::REFUSED)
        .stderr(predicate::str::contains("--yes"));
    assert!(!root.exists());

    restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--root"])
        .arg(&root)
        .args(["--postgres-url", &target.url("postgres")])
        .assert()
        .success()
        .stdout(predicate::str::contains("RESTORED"));

    for db in ["Weird-Db", "n8n"] {
        assert_eq!(table_digests(&source, db), table_digests(&target, db), "tables of {db}");
        assert_eq!(sequences(&source, db), sequences(&target, db), "sequences of {db}");
    }
    assert_eq!(target.psql("Weird-Db", "SELECT count(*) FROM recent").unwrap().trim(), "10");
    assert!(target
        .psql("Weird-Db", "SELECT indexdef FROM pg_indexes WHERE tablename = 'MixedCase'")
        .unwrap()
        .contains("camelCol"));

    // Files: same bytes, mode and mtime; links are links with the same target.
    let restored = |p: &Path| root.join(p.strip_prefix("/").unwrap());
    let mut checked = 0;
    for rel in tree(&src) {
        if rel.starts_with("srv/db") {
            continue; // the SQLite database: checked through SQLite below
        }
        let (a, b) = (src.join(&rel), restored(&src.join(&rel)));
        let (ma, mb) = (
            fs::symlink_metadata(&a).unwrap(),
            fs::symlink_metadata(&b).unwrap_or_else(|e| panic!("{}: {e}", b.display())),
        );
        if ma.file_type().is_symlink() {
            assert_eq!(fs::read_link(&a).unwrap(), fs::read_link(&b).unwrap(), "{rel}");
        } else if ma.is_file() {
            assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{rel}");
            assert_eq!(ma.mode() & 0o7777, mb.mode() & 0o7777, "mode of {rel}");
            assert_eq!(ma.mtime(), mb.mtime(), "mtime of {rel}");
            checked += 1;
        } else if ma.is_dir() && rel.contains('/') {
            assert_eq!(ma.mode() & 0o7777, mb.mode() & 0o7777, "mode of dir {rel}");
        }
    }
    assert!(checked >= 5, "compared {checked} files");
    let app = rusqlite::Connection::open(restored(&src.join("srv/db/app.db"))).unwrap();
    let n: i64 = app.query_row("SELECT count(*) FROM events WHERE payload = 'only in wal'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);

    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("restore-report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "restored");
    assert!(report["validation"].as_array().unwrap().iter().all(|c| c["ok"] == true));
    assert_eq!(fs::metadata(dir.join("restore-report.json")).unwrap().mode() & 0o777, 0o600);
}
