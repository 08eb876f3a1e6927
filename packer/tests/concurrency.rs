//! Writes keep landing in PostgreSQL and SQLite while `packer create` runs: the bundle still
//! verifies, and the row counts in the manifest equal what the dump and the copy really hold
//! (one snapshot for dump and manifest; one read transaction for the SQLite copy).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use assert_cmd::prelude::*;
use common::*;
use packer::pg_cluster::Cluster;

#[test]
fn counts_match_the_dump_under_concurrent_writes() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    source.psql("postgres", "CREATE DATABASE busy").unwrap();
    // Enough data that the dump takes a moment, so the writers really overlap it.
    source
        .psql("busy", "CREATE TABLE log (id bigserial PRIMARY KEY, msg text); CREATE TABLE other (id bigserial PRIMARY KEY, n int);
                       INSERT INTO log (msg) SELECT repeat(md5(i::text), 20) FROM generate_series(1, 200000) i;")
        .unwrap();
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[("busy", source.url("busy"))], Some(source.bin()));

    let stop = Arc::new(AtomicBool::new(false));
    let url = source.url("busy");
    let pg_writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = restorer::pg::PgTarget::parse(&url).unwrap().connect().unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Two tables in one transaction: a dump that saw one without the other would
                // disagree with counts taken at a single instant.
                c.batch_execute(
                    "BEGIN; INSERT INTO log (msg) VALUES ('during'); INSERT INTO other (n) VALUES (1); COMMIT;",
                )
                .unwrap();
                n += 1;
            }
            n
        })
    };
    let db_path = src.join("srv/db/app.db");
    let sqlite_writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(db_path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                c.execute("INSERT INTO events (payload) VALUES ('during')", []).unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let bundle = create(&cfg);
    stop.store(true, Ordering::Relaxed);
    let (pg_writes, sqlite_writes) = (pg_writer.join().unwrap(), sqlite_writer.join().unwrap());
    assert!(pg_writes > 0 && sqlite_writes > 0, "writers ran ({pg_writes}, {sqlite_writes})");

    let dir = extract(&bundle, &t.path().join("x"));
    restore(&dir).arg("verify").assert().success();
    let manifest =
        restorer::manifest::Manifest::from_json(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();

    // What the dump holds, restored into a fresh cluster, against what the manifest claims.
    let target = Cluster::start().unwrap();
    restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--postgres-url", &target.url("postgres"), "--root"])
        .arg(t.path().join("root"))
        .assert()
        .success();
    let claimed = &manifest.postgres[0].tables;
    for table in ["log", "other"] {
        let in_dump: u64 =
            target.psql("busy", &format!("SELECT count(*) FROM {table}")).unwrap().trim().parse().unwrap();
        let in_manifest = claimed.iter().find(|t| t.name == table).unwrap().rows;
        assert_eq!(in_dump, in_manifest, "{table}");
    }
    let log = claimed.iter().find(|t| t.name == "log").unwrap().rows;
    let other = claimed.iter().find(|t| t.name == "other").unwrap().rows;
    assert_eq!(log - 200_000, other, "both tables from one instant");

    let copy = rusqlite::Connection::open(dir.join("databases/app.sqlite")).unwrap();
    let rows: u64 = copy.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, manifest.sqlite[0].tables.iter().find(|t| t.name == "events").unwrap().rows);
}
