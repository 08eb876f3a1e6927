//! Issue 9, restore side, against the real Docker engine: a compose deployment (PostgreSQL in a
//! container with its port not published, an app with its own volume) packed, destroyed
//! (`down -v`, project directory gone) and rebuilt by `restore` in order: project files and
//! volumes, the database service alone, the dump restored into it, then the whole project. A
//! restore whose health check fails removes every container, volume and network it made.
//! Needs the engine and the local images (scripts/docker-engine.sh, scripts/docker-images.sh);
//! skipped, saying so, only when `docker info` fails.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::docker::*;
use common::*;
use restorer::exit;
use serde_json::Value;

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
      - app_storage:/data
volumes:
  db_storage:
  app_storage:
"#;

fn config(t: &Path, p: &Project, name: &str, health: Option<&str>) -> PathBuf {
    let f = p.dir.join("docker-compose.yml");
    let mut text = format!(
        "[bundle]\noutput_dir = \"{out}\"\nname = \"{name}\"\ncompression_level = 1\n\n\
         [[postgres]]\nname = \"app\"\ncompose_service = \"postgres\"\ncompose_file = \"{f}\"\ncompose_project = \"{pr}\"\n\n\
         [[volumes]]\ncompose_file = \"{f}\"\ncompose_project = \"{pr}\"\n\n\
         [[compose]]\nfile = \"{f}\"\nproject = \"{pr}\"\n",
        out = t.join("out").display(),
        f = f.display(),
        pr = p.name
    );
    if let Some(h) = health {
        text += &format!("\n[services]\nhealth = [\"{h}\"]\n");
    }
    let path = t.join(format!("{name}.toml"));
    fs::write(&path, text).unwrap();
    path
}

/// Everything docker has of a project: containers, volumes, networks.
fn docker_objects(project: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (what, args) in [
        ("container", vec!["ps", "-a", "--format", "{{.Names}}"]),
        ("volume", vec!["volume", "ls", "--format", "{{.Name}}"]),
        ("network", vec!["network", "ls", "--format", "{{.Name}}"]),
    ] {
        let o = Command::new("docker").args(&args).output().unwrap();
        for l in String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with(project)) {
            out.push(format!("{what} {l}"));
        }
    }
    out
}

/// Waits until the project's postgres accepts TCP connections as `admin` (the image's init
/// server listens on its socket only).
fn ready(p: &Project) {
    for _ in 0..240 {
        let id = p.container("postgres");
        if !id.is_empty()
            && Command::new("docker")
                .args(["exec", &id, "psql", "-h", "127.0.0.1", "-U", "admin", "-d", "app", "-c", "SELECT 1"])
                .output()
                .unwrap()
                .status
                .success()
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("postgres never answered");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Packed, destroyed, restored onto `/` by the bundle's own restore: the database comes back
/// inside the new postgres container (rows counted there), the app volume with its numeric
/// owners, the project files with their modes, every service running; a second restore of a
/// bundle whose health check fails rolls back and leaves no container, volume, network or
/// project file behind.
#[test]
fn compose_deployment_is_rebuilt_from_a_bundle() {
    if !engine() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let password = format!("pw-{}-restore", std::process::id());
    let p = Project::new(COMPOSE, &format!("POSTGRES_USER=admin\nPOSTGRES_PASSWORD={password}\nPOSTGRES_DB=app\n"));
    p.compose_ok(&["up", "-d"]);
    ready(&p);
    let sql =
        |p: &Project, q: &str| p.sh("postgres", "psql -X -q -t -A -v ON_ERROR_STOP=1 -U admin -d app", q.as_bytes());
    sql(&p, "CREATE ROLE app_owner; CREATE TABLE items (id serial PRIMARY KEY, name text); ALTER TABLE items OWNER TO app_owner;
             INSERT INTO items (name) SELECT 'item ' || i FROM generate_series(1, 41) i;");
    p.sh("app", "mkdir -p /data/sub && echo hello > /data/sub/owned && chown 1000:1000 /data/sub/owned && chmod 640 /data/sub/owned", b"");

    let good = create(&config(t.path(), &p, "good", None));
    let port = free_port();
    let failing = create(&config(t.path(), &p, "failing", Some(&format!("tcp://127.0.0.1:{port}"))));

    // The disk died: everything gone.
    p.compose_ok(&["down", "-v"]);
    let env_before = fs::metadata(p.dir.join(".env")).unwrap().mode() & 0o7777;
    fs::remove_dir_all(&p.dir).unwrap();
    assert!(docker_objects(&p.name).is_empty(), "{:?}", docker_objects(&p.name));

    let run = |bundle: &Path, tag: &str| {
        let x = extract(bundle, &t.path().join(format!("x-{tag}")));
        let out = restore(&x)
            .args(["--yes", "--no-install", "--health-tries", "2", "--checkpoint-dir"])
            .arg(t.path().join(format!("cp-{tag}")))
            .arg("--report")
            .arg(t.path().join(format!("{tag}.json")))
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&fs::read(t.path().join(format!("{tag}.json"))).unwrap_or_default())
            .unwrap_or_default();
        (out, report)
    };

    // The plan, on a host with no PostgreSQL server for it: the Docker order, nothing changed.
    let x = extract(&good, &t.path().join("x-dry"));
    let out = restore(&x).args(["--dry-run", "--no-install"]).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(exit::OK), "{shown}{}", String::from_utf8_lossy(&out.stderr));
    let at = |needle: &str| shown.find(needle).unwrap_or_else(|| panic!("{needle} not in the plan:\n{shown}"));
    assert!(at("Docker:") < at(&format!("volume {}_app_storage", p.name)));
    assert!(at("up -d postgres alone") < at(&format!("up -d the whole project {}", p.name)));
    assert!(docker_objects(&p.name).is_empty() && !p.dir.exists(), "--dry-run changed something");

    // A failing health check: everything the restore made is removed again.
    let (out, report) = run(&failing, "failing");
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(exit::FAILED), "{all}");
    assert_eq!(report["outcome"], "failed_rolled_back", "{report:#}\n{all}");
    assert!(docker_objects(&p.name).is_empty(), "left behind: {:?}\n{all}", docker_objects(&p.name));
    assert!(!p.dir.exists(), "the project directory was left behind");
    assert!(!all.contains(&password), "the password was printed");

    // The good bundle: the deployment comes back whole.
    let (out, report) = run(&good, "good");
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(exit::OK), "{all}");
    assert_eq!(report["outcome"], "restored", "{report:#}\n{all}");
    assert!(!all.contains(&password), "the password was printed");
    let steps: Vec<String> =
        report["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap().to_string()).collect();
    let at = |s: &str| steps.iter().position(|x| x == s).unwrap_or_else(|| panic!("no step {s}: {steps:?}"));
    assert!(at("docker volumes") < at("files") && at("files") < at("start postgres"), "{steps:?}");
    assert!(at("start postgres") < at("postgres app") && at("validate") < at("docker compose up"), "{steps:?}");
    assert!(report["validation"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["check"].as_str().unwrap().contains("postgres app")));

    assert_eq!(fs::metadata(p.dir.join(".env")).unwrap().mode() & 0o7777, env_before);
    assert_eq!(sql(&p, "SELECT count(*) FROM items").trim(), "41");
    // The empty database the image made on the new volume's first start was dropped, not kept
    // aside with a warning.
    assert_eq!(sql(&p, "SELECT count(*) FROM pg_database WHERE datname LIKE '%pre_restore%'").trim(), "0");
    assert!(!all.contains("was kept as"), "{all}");
    assert_eq!(sql(&p, "SELECT tableowner FROM pg_tables WHERE tablename = 'items'").trim(), "app_owner");
    for s in ["postgres", "app"] {
        let running = inspect("container", "{{.State.Running}}", &p.container(s));
        assert_eq!(running, "true", "{s} is not running");
    }
    assert_eq!(p.sh("app", "stat -c '%u:%g %a' /data/sub/owned && cat /data/sub/owned", b""), "1000:1000 640\nhello\n");
}

const SLOW_INIT: &str = r#"services:
  postgres:
    image: n8nbk-postgres:15
    environment:
      - POSTGRES_USER
      - POSTGRES_PASSWORD
      - POSTGRES_DB
    volumes:
      - db_storage:/var/lib/postgresql/data
      - ./slow-init.sh:/docker-entrypoint-initdb.d/slow-init.sh:ro
volumes:
  db_storage:
"#;

/// Guards the wait for a database service's first start on the new host: it is not bounded by
/// `--health-tries` (here 1: one try), so a server whose init outlasts that (an init script
/// bind-mounted from the project directory, packed with it, sleeps 8 s on an empty volume) is
/// waited for and the dump restored into it.
#[test]
fn database_first_start_is_waited_for_beyond_health_tries() {
    if !engine() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let p = Project::new(SLOW_INIT, "POSTGRES_USER=admin\nPOSTGRES_PASSWORD=pw-slow-init\nPOSTGRES_DB=app\n");
    fs::write(p.dir.join("slow-init.sh"), "echo slow init; sleep 8\n").unwrap();
    p.compose_ok(&["up", "-d"]);
    ready(&p);
    let sql =
        |p: &Project, q: &str| p.sh("postgres", "psql -X -q -t -A -v ON_ERROR_STOP=1 -U admin -d app", q.as_bytes());
    sql(&p, "CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 7);");
    let bundle = create(&config(t.path(), &p, "slow", None));
    p.compose_ok(&["down", "-v"]);
    fs::remove_dir_all(&p.dir).unwrap();

    let x = extract(&bundle, &t.path().join("x"));
    let out = restore(&x)
        .args(["--yes", "--no-install", "--health-tries", "1", "--checkpoint-dir"])
        .arg(t.path().join("cp"))
        .output()
        .unwrap();
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(exit::OK), "{all}");
    assert_eq!(fs::read_to_string(p.dir.join("slow-init.sh")).unwrap(), "echo slow init; sleep 8\n");
    let logs = p.compose(&["logs", "postgres"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("slow init"), "the init script did not run on the new host");
    assert_eq!(sql(&p, "SELECT count(*) FROM items").trim(), "7");
}
