//! `restore --database NAME=NEWNAME`: a bundle's database restored beside the live one, under a
//! new name, on a real server that already runs the live database; nothing else of the bundle
//! (files, the other database) is touched, and `restore rollback` drops exactly the new one.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::prelude::*;
use common::*;
use packer::pg_cluster::Cluster;
use predicates::prelude::*;
use restorer::exit;

/// A bundle of two databases, `app` (500 orders) and `shop`, plus the usual files and SQLite.
fn two_database_bundle(t: &Path, source: &Cluster) -> PathBuf {
    source.psql("postgres", "CREATE DATABASE app").unwrap();
    source.psql("postgres", "CREATE DATABASE shop").unwrap();
    source
        .psql("app", "CREATE TABLE orders (id serial PRIMARY KEY, item text); INSERT INTO orders (item) SELECT 'item ' || i FROM generate_series(1, 500) i;")
        .unwrap();
    source.psql("shop", "CREATE TABLE carts (id int); INSERT INTO carts VALUES (1), (2);").unwrap();
    let src = sample_tree(t);
    let bundle =
        create(&config(t, &src, &[("app", source.url("app")), ("shop", source.url("shop"))], Some(source.bin())));
    extract(&bundle, &t.join("x"))
}

/// The live server: an `app` with other rows than the bundle's.
fn live_target() -> Cluster {
    let target = Cluster::start().unwrap();
    target.psql("postgres", "CREATE DATABASE app").unwrap();
    target.psql("app", "CREATE TABLE live (x int); INSERT INTO live VALUES (7);").unwrap();
    target
}

fn databases(c: &Cluster) -> String {
    c.psql("postgres", "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database").unwrap().trim().into()
}

/// `--database app=app_check` restores the bundle's app as app_check beside the live app: the
/// live app keeps its rows, the other database of the bundle is not restored, no file is
/// written under --root, the plan and the report name app_check, and `restore rollback` drops
/// app_check and nothing else.
#[test]
fn database_is_restored_beside_the_live_one_under_its_new_name() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    let dir = two_database_bundle(t.path(), &source);
    let target = live_target();
    let url = target.url("postgres");
    let before = databases(&target);
    let root = t.path().join("root");
    let cp = t.path().join("cp");

    // The plan says it is databases only and lists exactly app_check.
    let out = restore(&dir)
        .args(["--dry-run", "--json", "--database", "app=app_check", "--postgres-url", &url, "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::OK), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["plan"]["databases_only"], true);
    let items = plan["plan"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!((items[0]["kind"].as_str(), items[0]["target"].as_str()), (Some("postgres"), Some("app_check")));
    assert_eq!((items[0]["from"].as_str(), items[0]["action"].as_str()), (Some("app"), Some("create")));
    restore(&dir)
        .args(["--dry-run", "--database", "app=app_check", "--postgres-url", &url, "--root"])
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::contains("Databases only (--database)"))
        .stdout(predicate::str::contains("postgres  app_check (the bundle's app)"));

    restore(&dir)
        .args(["--yes", "--database", "app=app_check", "--postgres-url", &url, "--checkpoint-dir"])
        .arg(&cp)
        .arg("--root")
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::contains("postgres app_check"))
        .stdout(predicate::str::contains("RESTORED"));
    assert_eq!(target.psql("app_check", "SELECT count(*) FROM orders").unwrap().trim(), "500");
    assert_eq!(target.psql("app", "SELECT x FROM live").unwrap().trim(), "7", "the live app is untouched");
    assert!(target.psql("app", "SELECT to_regclass('orders')").unwrap().trim().is_empty());
    let mut expected: Vec<&str> = before.split(',').chain(["app_check"]).collect();
    expected.sort();
    assert_eq!(databases(&target), expected.join(","), "app_check was added, nothing else");
    assert!(!databases(&target).split(',').any(|d| d == "shop"), "the other database is not restored");
    assert!(!root.exists(), "nothing written under --root: {:?}", tree(&root));

    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("restore-report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "restored");
    assert_eq!(report["databases"][0]["to"], "app_check");
    let checks: Vec<&str> =
        report["validation"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert_eq!(checks, vec!["postgres app_check: public.orders rows"], "only the restored database is validated");
    let steps: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["result"].as_str().unwrap()))
        .collect();
    assert!(steps.contains(&("services", "skipped")), "{steps:?}");
    assert!(!steps.iter().any(|(s, _)| *s == "files" || s.starts_with("sqlite")), "{steps:?}");

    std::process::Command::new(dir.join("restore"))
        .args(["rollback", "--postgres-url", &url])
        .arg(&cp)
        .assert()
        .success();
    assert_eq!(databases(&target), before, "the rollback drops app_check and nothing else");
    assert_eq!(target.psql("app", "SELECT x FROM live").unwrap().trim(), "7");
}

/// A NAME the bundle does not hold is refused listing the bundle's databases; a NEWNAME that
/// holds data is refused without --overwrite (and renamed aside with it); one NEWNAME for two
/// databases is refused; a NEWNAME no database can have is a usage error. Nothing changes.
#[test]
fn unknown_or_taken_database_names_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    let dir = two_database_bundle(t.path(), &source);
    let target = live_target();
    let url = target.url("postgres");
    let before = databases(&target);
    let root = t.path().join("root");
    let run = |args: &[&str]| {
        let mut c = restore(&dir);
        c.args(["--yes", "--postgres-url", &url, "--checkpoint-dir"])
            .arg(t.path().join("cp"))
            .arg("--root")
            .arg(&root)
            .args(args);
        c.assert()
    };

    run(&["--database", "nope=x"])
        .code(exit::REFUSED)
        .stderr(predicate::str::contains("no PostgreSQL database of that name"))
        .stderr(predicate::str::contains("its databases: app, shop"));
    run(&["--database", "app=app"])
        .code(exit::REFUSED)
        .stderr(predicate::str::contains("app (exists, has data)"))
        .stderr(predicate::str::contains("--overwrite"));
    run(&["--database", "app=x", "--database", "shop=x"])
        .code(exit::REFUSED)
        .stderr(predicate::str::contains("two databases cannot be restored under one name"));
    run(&["--database", "app=host=elsewhere"]).code(exit::USAGE).stderr(predicate::str::contains("NEWNAME"));
    assert_eq!(databases(&target), before);
    assert_eq!(target.psql("app", "SELECT x FROM live").unwrap().trim(), "7");
    assert!(!t.path().join("cp").exists() && !root.exists());

    // With --overwrite the existing database of that name is renamed aside, as in a full restore.
    run(&["--overwrite", "--database", "app=app"]).success().stdout(predicate::str::contains("app_pre_restore_"));
    assert_eq!(target.psql("app", "SELECT count(*) FROM orders").unwrap().trim(), "500");
    let aside =
        target.psql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'app_pre_restore_%'").unwrap();
    assert_eq!(target.psql(aside.trim(), "SELECT x FROM live").unwrap().trim(), "7");
    assert!(!databases(&target).split(',').any(|d| d == "shop"));
}

const COMPOSE: &str = r#"services:
  postgres:
    image: n8nbk-postgres:15
    environment:
      - POSTGRES_USER
      - POSTGRES_PASSWORD
      - POSTGRES_DB
    volumes:
      - db_storage:/var/lib/postgresql/data
  app:
    image: n8nbk-base:bookworm
    command: ["sleep", "infinity"]
    stop_signal: SIGKILL
    depends_on:
      - postgres
volumes:
  db_storage:
"#;

/// SQL in the project's postgres container, as `admin`, on `db`.
fn sql_in(p: &common::docker::Project, db: &str, q: &str) -> String {
    p.sh("postgres", &format!("psql -X -q -t -A -v ON_ERROR_STOP=1 -U admin -d {db}"), q.as_bytes()).trim().into()
}

/// Waits until the project's postgres accepts TCP connections as `admin` (the image's init
/// server listens on its socket only).
fn ready(p: &common::docker::Project) {
    for _ in 0..240 {
        let id = p.container("postgres");
        let ok = !id.is_empty()
            && std::process::Command::new("docker")
                .args(["exec", &id, "psql", "-h", "127.0.0.1", "-U", "admin", "-d", "app", "-c", "SELECT 1"])
                .output()
                .unwrap()
                .status
                .success();
        if ok {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("postgres never answered");
}

/// A database that lived in a compose project's container is restored beside the live one
/// inside the same running container: the project keeps running (same containers, never
/// restarted), the live database keeps its rows, validation counts app_check there, and
/// `restore rollback` drops app_check in the container. With the project stopped the restore is
/// refused, saying what to do.
#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn container_database_is_restored_beside_the_live_one_in_its_running_container() {
    use common::docker::{engine, inspect, Project};
    if !engine() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let password = format!("pw-{}-beside", std::process::id());
    let p = Project::new(COMPOSE, &format!("POSTGRES_USER=admin\nPOSTGRES_PASSWORD={password}\nPOSTGRES_DB=app\n"));
    p.compose_ok(&["up", "-d"]);
    ready(&p);
    sql_in(&p, "app", "CREATE TABLE items (id serial PRIMARY KEY, name text); INSERT INTO items (name) SELECT 'item ' || i FROM generate_series(1, 41) i;");
    let f = p.dir.join("docker-compose.yml");
    let config = t.path().join("packer.toml");
    fs::write(
        &config,
        format!(
            "[bundle]\noutput_dir = \"{out}\"\nname = \"beside\"\ncompression_level = 1\n\n\
             [[postgres]]\nname = \"app\"\ncompose_service = \"postgres\"\ncompose_file = \"{f}\"\ncompose_project = \"{pr}\"\n\n\
             [[compose]]\nfile = \"{f}\"\nproject = \"{pr}\"\n",
            out = t.path().join("out").display(),
            f = f.display(),
            pr = p.name
        ),
    )
    .unwrap();
    let dir = extract(&create(&config), &t.path().join("x"));
    // The live deployment moved on after the backup.
    sql_in(&p, "app", "DELETE FROM items WHERE id > 5");
    let containers: Vec<(String, String)> = ["postgres", "app"]
        .iter()
        .map(|s| {
            let id = p.container(s);
            let started = inspect("container", "{{.State.StartedAt}}", &id);
            (id, started)
        })
        .collect();
    let root = t.path().join("root");
    let cp = t.path().join("cp");

    // The plan: into the running container, nothing started or stopped; the running project is
    // no refusal.
    restore(&dir)
        .args(["--dry-run", "--database", "app=app_check", "--root"])
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::contains("database app_check into the running container"))
        .stdout(predicate::str::contains("nothing started or stopped"));
    let out = restore(&dir)
        .args(["--yes", "--database", "app=app_check", "--checkpoint-dir"])
        .arg(&cp)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(exit::OK), "{all}");
    assert!(!all.contains(&password), "the password was printed");
    assert!(all.contains("in container"), "{all}");
    assert_eq!(sql_in(&p, "app_check", "SELECT count(*) FROM items"), "41");
    assert_eq!(sql_in(&p, "app", "SELECT count(*) FROM items"), "5", "the live database is untouched");
    for (id, started) in &containers {
        assert_eq!(inspect("container", "{{.State.Running}} {{.State.StartedAt}}", id), format!("true {started}"));
    }
    assert_eq!(
        [p.container("postgres"), p.container("app")].to_vec(),
        containers.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
        "the same containers still run"
    );
    assert!(!root.exists(), "nothing written under --root");
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("restore-report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "restored");
    assert!(report["validation"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["check"].as_str().unwrap().starts_with("postgres app_check:")));

    std::process::Command::new(dir.join("restore")).arg("rollback").arg(&cp).assert().success();
    assert_eq!(sql_in(&p, "app", "SELECT count(*) FROM pg_database WHERE datname = 'app_check'"), "0");
    assert_eq!(sql_in(&p, "app", "SELECT count(*) FROM items"), "5");

    // The project does not run: nothing to restore into.
    p.compose_ok(&["stop"]);
    restore(&dir)
        .args(["--yes", "--database", "app=app_check", "--root"])
        .arg(&root)
        .assert()
        .code(exit::REFUSED)
        .stderr(predicate::str::contains("no running container"))
        .stderr(predicate::str::contains("--postgres-url"));
    assert!(!root.exists());
}
