//! Restoring PostgreSQL databases onto a server that already has something: existing data is
//! refused without --overwrite and renamed aside with it; a step that fails midway rolls back
//! every change, files included.

mod common;

use std::fs;

use assert_cmd::prelude::*;
use common::*;
use packer::pg_cluster::{Cluster, PASSWORD};
use predicates::prelude::*;
use restorer::exit;

fn source_bundle(t: &std::path::Path, source: &Cluster) -> (std::path::PathBuf, std::path::PathBuf) {
    source.psql("postgres", "CREATE DATABASE shop").unwrap();
    source.psql("shop", "CREATE TABLE orders (id serial PRIMARY KEY, item text); INSERT INTO orders (item) SELECT 'item ' || i FROM generate_series(1, 500) i;").unwrap();
    let src = sample_tree(t);
    let bundle = create(&config(t, &src, &[("shop", source.url("shop"))], Some(source.bin())));
    (src, extract(&bundle, &t.join("x")))
}

/// A database that already holds data is refused without --overwrite (nothing changes); with it,
/// the old database is kept as shop_pre_restore_*, and `restore rollback` brings it back.
#[test]
fn existing_database_is_refused_then_renamed_aside() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    let (_, dir) = source_bundle(t.path(), &source);
    let target = Cluster::start().unwrap();
    target.psql("postgres", "CREATE DATABASE shop").unwrap();
    target.psql("shop", "CREATE TABLE precious (x int); INSERT INTO precious VALUES (7);").unwrap();
    let root = t.path().join("root");
    let url = target.url("postgres");

    restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--postgres-url", &url, "--root"])
        .arg(&root)
        .assert()
        .code(exit::REFUSED)
        .stderr(predicate::str::contains("shop"));
    assert!(!root.exists());
    assert_eq!(target.psql("shop", "SELECT x FROM precious").unwrap().trim(), "7");

    let cp = t.path().join("cp");
    restore(&dir)
        .args(["--yes", "--overwrite", "--no-install", "--no-services", "--postgres-url", &url, "--checkpoint-dir"])
        .arg(&cp)
        .arg("--root")
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::contains("shop_pre_restore_"));
    assert_eq!(target.psql("shop", "SELECT count(*) FROM orders").unwrap().trim(), "500");
    let aside =
        target.psql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'shop_pre_restore_%'").unwrap();
    assert_eq!(target.psql(aside.trim(), "SELECT x FROM precious").unwrap().trim(), "7");

    std::process::Command::new(dir.join("restore"))
        .args(["rollback", "--postgres-url", &url])
        .arg(&cp)
        .assert()
        .success();
    assert_eq!(target.psql("shop", "SELECT x FROM precious").unwrap().trim(), "7");
    assert!(target
        .psql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'shop_pre%'")
        .unwrap()
        .trim()
        .is_empty());
    assert!(
        tree(&root).iter().all(|p| p.starts_with("var")),
        "restored files removed by the rollback: {:?}",
        tree(&root)
    );
}

/// A real failure after the files were written (the target role may not create databases):
/// the restore rolls everything back, says so, and exits 1.
#[test]
fn failure_midway_rolls_back_everything() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    let (src, dir) = source_bundle(t.path(), &source);
    let target = Cluster::start().unwrap();
    target.psql("postgres", &format!("CREATE ROLE weak LOGIN PASSWORD '{PASSWORD}'")).unwrap();
    let url = format!("postgresql://weak:{PASSWORD}@127.0.0.1:{}/postgres", target.port);
    let root = t.path().join("root");
    // Something already on the target that the restore replaces, then must put back.
    let env = root.join(src.strip_prefix("/").unwrap()).join("opt/n8n/.env");
    fs::create_dir_all(env.parent().unwrap()).unwrap();
    fs::write(&env, "ORIGINAL ON TARGET\n").unwrap();
    let before = tree(&root);

    restore(&dir)
        .args(["--yes", "--overwrite", "--no-install", "--no-services", "--postgres-url", &url, "--root"])
        .arg(&root)
        .assert()
        .code(exit::FAILED)
        .stdout(predicate::str::contains("permission denied to create database"))
        .stdout(predicate::str::contains("rolled back"));
    assert_eq!(fs::read_to_string(&env).unwrap(), "ORIGINAL ON TARGET\n");
    let after: Vec<_> = tree(&root).into_iter().filter(|p| !p.starts_with("var")).collect();
    assert_eq!(after, before, "only the checkpoint remains");
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("restore-report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "failed_rolled_back");
}
