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

/// A real failure (the target role may not create databases): the restore rolls everything
/// back, says so, and exits 1.
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

/// Roles come along: the owner of a database and a role granted on it are created on a target
/// that lacks them (with the same password), ownership and grants are as on the source, and a
/// rollback removes the roles it created.
#[test]
fn roles_are_recreated_with_ownership_and_passwords() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    source.psql("postgres", "CREATE ROLE app_owner LOGIN PASSWORD 'Owner-pw1'; CREATE ROLE reader NOLOGIN;").unwrap();
    source.psql("postgres", "CREATE DATABASE shop2 OWNER app_owner").unwrap();
    source
        .psql("shop2", "SET ROLE app_owner; CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a'); GRANT SELECT ON items TO reader;")
        .unwrap();
    let src = sample_tree(t.path());
    let bundle = create(&config(t.path(), &src, &[("shop2", source.url("shop2"))], Some(source.bin())));
    let dir = extract(&bundle, &t.path().join("x"));
    let m = restorer::manifest::Manifest::from_json(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(m.postgres[0].role_passwords, "the superuser could read the passwords");

    let target = Cluster::start().unwrap();
    let cp = t.path().join("cp");
    restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--postgres-url", &target.url("postgres"), "--checkpoint-dir"])
        .arg(&cp)
        .arg("--root")
        .arg(t.path().join("root"))
        .assert()
        .success()
        .stdout(predicate::str::contains("created app_owner"));
    assert_eq!(
        target
            .psql("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop2'")
            .unwrap()
            .trim(),
        "app_owner"
    );
    assert_eq!(
        target.psql("shop2", "SELECT tableowner FROM pg_tables WHERE tablename = 'items'").unwrap().trim(),
        "app_owner"
    );
    assert_eq!(target.psql("shop2", "SELECT has_table_privilege('reader', 'items', 'SELECT')").unwrap().trim(), "t");
    // The password hash came along: app_owner logs in over TCP with its password.
    let login =
        restorer::pg::PgTarget::parse(&format!("postgresql://app_owner:Owner-pw1@127.0.0.1:{}/shop2", target.port))
            .unwrap();
    let mut c = login.connect().expect("app_owner logs in with its password");
    let n: i64 = c.query_one("SELECT count(*) FROM items", &[]).unwrap().get(0);
    assert_eq!(n, 1);
    drop(c);

    std::process::Command::new(dir.join("restore"))
        .args(["rollback", "--postgres-url", &target.url("postgres")])
        .arg(&cp)
        .assert()
        .success();
    assert!(target
        .psql("postgres", "SELECT rolname FROM pg_roles WHERE rolname IN ('app_owner', 'reader')")
        .unwrap()
        .trim()
        .is_empty());
}

/// As root with no --postgres-url, the restore reaches the local cluster through its socket as
/// the `postgres` user, works through a temporary superuser, and leaves no trace of it; the
/// restored objects belong to their real owners.
#[test]
fn local_cluster_without_url_via_temporary_superuser() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    let (_, dir) = source_bundle(t.path(), &source);
    let target = Cluster::start().unwrap();
    restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--pg-port", &target.port.to_string(), "--pg-socket"])
        .arg(target.socket_dir())
        .arg("--root")
        .arg(t.path().join("root"))
        .assert()
        .success();
    assert_eq!(target.psql("shop", "SELECT count(*) FROM orders").unwrap().trim(), "500");
    assert_eq!(
        target.psql("shop", "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'").unwrap().trim(),
        "postgres"
    );
    assert!(target
        .psql("postgres", "SELECT rolname FROM pg_roles WHERE rolname LIKE 'n8n_restore_tmp_%'")
        .unwrap()
        .trim()
        .is_empty());
}

/// A dump is compressed while pg_dump writes it, and its members copied into the bundle after a
/// header the writer makes itself: under the longest name a `[[postgres]]` may have (its entry
/// needs tar's long-name header), with tables spanning many compression blocks, GNU tar extracts
/// it, the digests match, and pg_restore's parallel jobs (reading ahead in a dump written to a
/// pipe) bring back every row.
#[test]
fn dump_compressed_while_written_round_trips_under_a_long_name() {
    let (t, source) = shop_with(
        "CREATE TABLE a (id int PRIMARY KEY, body text); CREATE TABLE b (id int PRIMARY KEY, n bigint); \
         INSERT INTO a SELECT i, repeat(md5(i::text), 20) FROM generate_series(1, 20000) i; \
         INSERT INTO b SELECT i, i * 7 FROM generate_series(1, 200000) i;",
    );
    let name = "n".repeat(100);
    let src = sample_tree(t.path());
    let bundle = create(&config(t.path(), &src, &[(&name, source.url("shop"))], Some(source.bin())));
    let dir = extract(&bundle, &t.path().join("x"));
    let dump = dir.join(format!("databases/{name}.dump"));
    assert!(fs::metadata(&dump).unwrap().len() > 8 << 20, "the dump spans many 1 MiB blocks");
    let target = restore_into_new_cluster(&dir, &t.path().join("root"));
    same_answer(&source, &target, "SELECT count(*), sum(length(body)) FROM a");
    same_answer(&source, &target, "SELECT count(*), sum(n) FROM b");
}

/// A temporary directory and a new cluster whose database `shop` holds what `sql` makes.
fn shop_with(sql: &str) -> (tempfile::TempDir, Cluster) {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    source.psql("postgres", "CREATE DATABASE shop").unwrap();
    source.psql("shop", sql).unwrap();
    (t, source)
}

/// Restores the extracted bundle `dir` onto a new cluster (files under `root`), successfully.
fn restore_into_new_cluster(dir: &std::path::Path, root: &std::path::Path) -> Cluster {
    let target = Cluster::start().unwrap();
    restore(dir)
        .args(["--yes", "--no-install", "--no-services", "--postgres-url", &target.url("postgres"), "--root"])
        .arg(root)
        .assert()
        .success();
    target
}

/// `q` on database `shop` gives the same answer on both clusters.
fn same_answer(source: &Cluster, target: &Cluster, q: &str) {
    assert_eq!(target.psql("shop", q).unwrap(), source.psql("shop", q).unwrap(), "{q}");
}

/// Databases load side by side while the files are written: when one pg_restore fails (a table
/// in a tablespace the target lacks) after another database loaded and the files were written,
/// every one of them is rolled back, the file the restore replaced is back, and the report says
/// which database failed.
#[test]
fn failed_load_beside_others_rolls_back_all_of_them() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    let space = t.path().join("space");
    fs::create_dir(&space).unwrap();
    let owner = std::process::Command::new("id").args(["-u", "postgres"]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&owner.stdout).trim().parse().unwrap();
    std::os::unix::fs::chown(&space, Some(uid), None).unwrap();
    source.psql("postgres", &format!("CREATE TABLESPACE elsewhere LOCATION '{}'", space.display())).unwrap();
    source.psql("postgres", "CREATE DATABASE good").unwrap();
    source.psql("good", "CREATE TABLE g AS SELECT i FROM generate_series(1, 100000) i").unwrap();
    source.psql("postgres", "CREATE DATABASE bad").unwrap();
    source.psql("bad", "CREATE TABLE b (x int) TABLESPACE elsewhere; INSERT INTO b VALUES (1)").unwrap();
    let src = sample_tree(t.path());
    let dbs = [("good", source.url("good")), ("bad", source.url("bad"))];
    let dir = extract(&create(&config(t.path(), &src, &dbs, Some(source.bin()))), &t.path().join("x"));
    let target = Cluster::start().unwrap();
    let root = t.path().join("root");
    let env = root.join(src.strip_prefix("/").unwrap()).join("opt/n8n/.env");
    fs::create_dir_all(env.parent().unwrap()).unwrap();
    fs::write(&env, "ORIGINAL ON TARGET\n").unwrap();
    let before = tree(&root);

    restore(&dir)
        .args(["--yes", "--overwrite", "--no-install", "--no-services", "--postgres-url", &target.url("postgres")])
        .arg("--root")
        .arg(&root)
        .assert()
        .code(exit::FAILED)
        .stdout(predicate::str::contains("elsewhere"))
        .stdout(predicate::str::contains("rolled back"));
    assert_eq!(fs::read_to_string(&env).unwrap(), "ORIGINAL ON TARGET\n");
    let after: Vec<_> = tree(&root).into_iter().filter(|p| !p.starts_with("var")).collect();
    assert_eq!(after, before, "only the checkpoint remains");
    let left = target.psql("postgres", "SELECT datname FROM pg_database WHERE datname IN ('good', 'bad')").unwrap();
    assert!(left.trim().is_empty(), "both databases dropped: {left}");
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("restore-report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "failed_rolled_back");
    let steps = report["steps"].as_array().unwrap();
    let step = |name: &str| steps.iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("{name}: {steps:?}"));
    assert_eq!(step("postgres bad")["result"], "failed");
    assert_eq!(step("files")["result"], "ok");
}

/// `[bundle] compression = "zstd"`: the dump is a zstd frame in `databases/<name>.dump.zst`
/// (the bundle still opens with `tar xzf`); the deep verification and the bundle's own restore
/// decode it (no zstd program involved), every row comes back, and the decoded file is gone
/// afterwards. A level zstd lacks is refused when the configuration is read.
#[test]
fn zstd_dumps_round_trip_through_the_bundles_own_restore() {
    let (t, source) = shop_with(
        "CREATE TABLE a (id int PRIMARY KEY, body text); INSERT INTO a SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, 30000) i;",
    );
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[("shop", source.url("shop"))], Some(source.bin()));
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, text.replacen("[bundle]\n", "[bundle]\ncompression = \"zstd\"\ncompression_level = 25\n", 1))
        .unwrap();
    packer()
        .arg("--config")
        .arg(&cfg)
        .arg("create")
        .assert()
        .failure()
        .stderr(predicate::str::contains("1..19 for zstd"));
    fs::write(&cfg, text.replacen("[bundle]\n", "[bundle]\ncompression = \"zstd\"\n", 1)).unwrap();
    let bundle = create(&cfg);
    packer().arg("--config").arg(&cfg).args(["verify", "--deep"]).arg(&bundle).assert().success();

    let dir = extract(&bundle, &t.path().join("x"));
    let frame = fs::read(dir.join("databases/shop.dump.zst")).unwrap();
    assert_eq!(&frame[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    assert!(!dir.join("databases/shop.dump").exists());
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["postgres"][0]["compressed"], "zstd");
    assert_eq!(manifest["postgres"][0]["size"], frame.len());

    let target = restore_into_new_cluster(&dir, &t.path().join("root"));
    same_answer(&source, &target, "SELECT count(*), sum(length(body)) FROM a");
    assert!(!dir.join("databases/shop.dump").exists(), "the decoded dump is removed");
}

/// Large values (n8n's execution data) load through lz4 TOAST compression where the server
/// has it (pglz is the slow part of loading them): every value reads back the same, the
/// restored ones are stored with lz4, and a column the source gave its own compression keeps
/// it, as the dump says.
#[test]
fn large_values_load_with_lz4_and_read_back_the_same() {
    let (t, source) = shop_with(
        "CREATE TABLE execution_data (id int PRIMARY KEY, data text, pinned text COMPRESSION pglz); \
         INSERT INTO execution_data SELECT i, repeat('{\"node\":\"' || md5(i::text) || '\"},', 200), repeat(md5(i::text), 100) FROM generate_series(1, 300) i;",
    );
    let lz4_here = source
        .psql(
            "shop",
            "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)",
        )
        .unwrap();
    assert_eq!(lz4_here.trim(), "1", "the test's PostgreSQL has lz4 (Debian's is built with it)");
    assert_eq!(
        source.psql("shop", "SELECT DISTINCT pg_column_compression(data) FROM execution_data").unwrap().trim(),
        "pglz",
        "the source stores them with the server's default"
    );
    let src = sample_tree(t.path());
    let bundle = create(&config(t.path(), &src, &[("shop", source.url("shop"))], Some(source.bin())));
    let dir = extract(&bundle, &t.path().join("x"));
    let target = restore_into_new_cluster(&dir, &t.path().join("root"));
    same_answer(
        &source,
        &target,
        "SELECT count(*), md5(string_agg(data || pinned, ',' ORDER BY id)) FROM execution_data",
    );
    let q = |sql: &str| target.psql("shop", sql).unwrap().trim().to_string();
    assert_eq!(q("SELECT DISTINCT pg_column_compression(data) FROM execution_data"), "lz4");
    assert_eq!(q("SELECT DISTINCT pg_column_compression(pinned) FROM execution_data"), "pglz");
    assert_eq!(q("SHOW default_toast_compression"), "pglz", "the server's own default is untouched");
}
