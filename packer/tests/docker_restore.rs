//! Issue 9, restore side, against the real Docker engine: a compose deployment (PostgreSQL in a
//! container with its port not published, an app with its own volume) packed, destroyed
//! (`down -v`, project directory gone) and rebuilt by `restore` in order: project files and
//! volumes, the database service alone, the dump restored into it, then the whole project. A
//! restore whose health check fails removes every container, volume and network it made. Onto a
//! deployment that still runs: refused without `--overwrite`; with it, replaced, and a rollback
//! (a failed health check, or `restore rollback` of a killed restore) brings the old one back.
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
/// waited for and the dump restored into it. The dump is a zstd one (`compression = "zstd"`):
/// decoded by the bundle's restore and fed to the container's own pg_restore.
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
    let cfg = config(t.path(), &p, "slow", None);
    let text = fs::read_to_string(&cfg).unwrap().replacen("[bundle]\n", "[bundle]\ncompression = \"zstd\"\n", 1);
    fs::write(&cfg, text).unwrap();
    let bundle = create(&cfg);
    p.compose_ok(&["down", "-v"]);
    fs::remove_dir_all(&p.dir).unwrap();

    let x = extract(&bundle, &t.path().join("x"));
    assert!(x.join("databases/app.dump.zst").exists());
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

/// COMPOSE with a host port published by the app (its own container holds it while it runs:
/// the pre-flight must not take it for another program's), and a marker in the app's
/// environment that a test can change to give the running deployment another configuration.
fn running_compose(mark: &str) -> String {
    COMPOSE.replace(
        "    command: [\"sleep\", \"infinity\"]\n",
        &format!(
            "    command: [\"sleep\", \"infinity\"]\n    environment:\n      - MARK={mark}\n    ports:\n      - \"127.0.0.1:${{APP_PORT}}:80\"\n"
        ),
    )
}

/// A deployment that runs, packed (`good`, and `failing` whose health check nobody answers),
/// then changed: 5 more rows than the bundle's 41, another content in the app volume's file.
struct Running {
    t: tempfile::TempDir,
    p: Project,
    good: PathBuf,
    failing: PathBuf,
}

fn sql(p: &Project, q: &str) -> String {
    p.sh("postgres", "psql -X -q -t -A -v ON_ERROR_STOP=1 -U admin -d app", q.as_bytes()).trim().to_string()
}

fn running_deployment() -> Running {
    let t = tempfile::tempdir().unwrap();
    let env = format!(
        "POSTGRES_USER=admin\nPOSTGRES_PASSWORD=pw-{}-over\nPOSTGRES_DB=app\nAPP_PORT={}\n",
        std::process::id(),
        free_port()
    );
    let p = Project::new(&running_compose("bundle"), &env);
    p.compose_ok(&["up", "-d"]);
    ready(&p);
    sql(&p, "CREATE TABLE items (id serial PRIMARY KEY, name text); INSERT INTO items (name) SELECT 'item ' || i FROM generate_series(1, 41) i;");
    p.sh("app", "mkdir -p /data/sub && echo hello > /data/sub/owned && chown 1000:1000 /data/sub/owned", b"");
    let good = create(&config(t.path(), &p, "good", None));
    let failing = create(&config(t.path(), &p, "failing", Some(&format!("tcp://127.0.0.1:{}", free_port()))));
    sql(&p, "INSERT INTO items (name) SELECT 'new ' || i FROM generate_series(1, 5) i;");
    p.sh("app", "echo changed > /data/sub/owned", b"");
    Running { t, p, good, failing }
}

/// What the tests compare before and after: every docker object of the project, each
/// service's container id and whether it runs, the row count, the app volume's file, the
/// app's marker, and the databases kept aside.
#[derive(Debug, PartialEq)]
struct Seen {
    objects: Vec<String>,
    containers: Vec<(String, String, String)>,
    rows: String,
    file: String,
    mark: String,
    aside: String,
}

fn seen(p: &Project) -> Seen {
    let mut objects = docker_objects(&p.name);
    objects.sort();
    let containers = ["postgres", "app"]
        .iter()
        .map(|s| {
            let id = p.container(s);
            (s.to_string(), id.clone(), inspect("container", "{{.State.Running}}", &id))
        })
        .collect();
    Seen {
        objects,
        containers,
        rows: sql(p, "SELECT count(*) FROM items"),
        file: p.sh("app", "cat /data/sub/owned", b""),
        mark: p.sh("app", "echo $MARK", b""),
        aside: sql(p, "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '%pre_restore%'"),
    }
}

fn output(out: &std::process::Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Guards the refusal of a compose project that already runs on the host, and its replacement
/// with --overwrite: without it, `--dry-run` (text and JSON) shows the project as refused and the
/// restore refuses it (exit 5) naming the project, its containers and what to do, with nothing
/// changed (the same containers running, the same rows and file, no checkpoint). With it, the
/// containers are stopped and the deployment restored on its volumes: the bundle's rows in the
/// container's database, the old database kept as `app_pre_restore_<YYYYMMDDHHMMSS>`, the
/// bundle's file in the volume (the old one kept in the checkpoint), every service running, the
/// app's published port (held by its own container before) no pre-flight blocker.
#[test]
fn running_deployment_is_refused_without_overwrite_and_replaced_with_it() {
    if !engine() {
        return;
    }
    let Running { t, p, good, .. } = running_deployment();
    let before = seen(&p);
    assert_eq!((before.rows.as_str(), before.file.as_str()), ("46", "changed\n"));
    let x = extract(&good, &t.path().join("x"));

    let out = restore(&x).args(["--dry-run", "--no-install"]).output().unwrap();
    let all = output(&out);
    assert_eq!(out.status.code(), Some(exit::REFUSED), "{all}");
    assert!(
        all.contains(&format!("REFUSED: compose project {} already has 2 container(s), 2 running", p.name)),
        "{all}"
    );
    let out = restore(&x).args(["--dry-run", "--no-install", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(exit::REFUSED), "{}", output(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = plan["plan"]["items"].as_array().unwrap();
    let compose: Vec<&Value> = items.iter().filter(|i| i["kind"] == "compose").collect();
    assert_eq!(compose.len(), 1, "{plan:#}");
    assert_eq!(compose[0]["target"], p.name.as_str());
    assert_eq!(compose[0]["state"], "2 container(s), 2 running");
    assert_eq!(compose[0]["action"], "refuse");

    let cp = t.path().join("cp-refused");
    let out = restore(&x).args(["--yes", "--no-install", "--checkpoint-dir"]).arg(&cp).output().unwrap();
    let all = output(&out);
    assert_eq!(out.status.code(), Some(exit::REFUSED), "{all}");
    for needle in
        [format!("compose project {}", p.name), "2 container(s)".into(), "--overwrite stops them".into(), "down".into()]
    {
        assert!(all.contains(&needle), "{needle} not in: {all}");
    }
    assert_eq!(seen(&p), before, "a refused restore changed something\n{all}");
    assert!(!cp.exists(), "a refused restore wrote a checkpoint");

    let out = restore(&x).args(["--dry-run", "--no-install", "--overwrite"]).output().unwrap();
    let all = output(&out);
    assert_eq!(out.status.code(), Some(exit::OK), "{all}");
    assert!(all.contains("REPLACE  compose"), "{all}");

    let cp = t.path().join("cp");
    let out = restore(&x)
        .args(["--yes", "--no-install", "--overwrite", "--health-tries", "2", "--checkpoint-dir"])
        .arg(&cp)
        .arg("--report")
        .arg(t.path().join("r.json"))
        .output()
        .unwrap();
    let all = output(&out);
    assert_eq!(out.status.code(), Some(exit::OK), "{all}");
    let report: Value = serde_json::from_slice(&fs::read(t.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "restored", "{report:#}");
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    let at = |s: &str| steps.iter().position(|x| *x == s).unwrap_or_else(|| panic!("no step {s}: {steps:?}"));
    assert!(at(&format!("stop {}", p.name)) < at("files"), "{steps:?}");

    let after = seen(&p);
    assert_eq!(after.rows, "41");
    assert_eq!(after.file, "hello\n");
    for (s, _, running) in &after.containers {
        assert_eq!(running, "true", "{s} is not running");
    }
    let aside = after.aside.clone();
    let stamp = aside.strip_prefix("app_pre_restore_").unwrap_or_else(|| panic!("kept aside: {aside:?}"));
    assert!(stamp.len() == 14 && stamp.chars().all(|c| c.is_ascii_digit()), "{aside}");
    let kept = p.sh("postgres", &format!("psql -X -q -t -A -U admin -d {aside}"), b"SELECT count(*) FROM items");
    assert_eq!(kept.trim(), "46", "the old database was not kept whole");
    assert!(all.contains(&format!("was kept as {aside}")), "{all}");
    let mountpoint = inspect("volume", "{{.Mountpoint}}", &format!("{}_app_storage", p.name));
    let old = cp.join("files").join(mountpoint.trim_start_matches('/')).join("sub/owned");
    assert_eq!(fs::read_to_string(&old).unwrap(), "changed\n", "the old volume file is not in the checkpoint");
}

/// Guards the rollback of an --overwrite restore onto a running deployment whose health check
/// then fails: the deployment that ran before runs again on its old data (the same database
/// container, the app container made again from the old compose file, since the restore's `up`
/// replaced it for the bundle's configuration), the old rows and volume file, no database left
/// aside, and no container, volume or network other than those that were there.
#[test]
fn failed_overwrite_of_a_running_deployment_rolls_back_to_it() {
    if !engine() {
        return;
    }
    let Running { t, p, failing, .. } = running_deployment();
    // Another configuration than the bundle's: the restore's `up` must replace the app container.
    fs::write(p.dir.join("docker-compose.yml"), running_compose("old")).unwrap();
    p.compose_ok(&["up", "-d"]);
    let before = seen(&p);
    assert_eq!(before.mark, "old\n");
    let x = extract(&failing, &t.path().join("x"));
    let out = restore(&x)
        .args(["--yes", "--no-install", "--overwrite", "--health-tries", "1", "--checkpoint-dir"])
        .arg(t.path().join("cp"))
        .arg("--report")
        .arg(t.path().join("r.json"))
        .output()
        .unwrap();
    let all = output(&out);
    assert_eq!(out.status.code(), Some(exit::FAILED), "{all}");
    let report: Value = serde_json::from_slice(&fs::read(t.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "failed_rolled_back", "{report:#}\n{all}");
    assert!(
        report["steps"].as_array().unwrap().iter().any(|s| s["step"] == "docker compose up" && s["result"] == "ok"),
        "the restore never got as far as starting the whole project: {report:#}"
    );
    let after = seen(&p);
    assert_eq!(after.containers[0], before.containers[0], "the database container is not the old one, running");
    assert_ne!(after.containers[1].1, before.containers[1].1, "the app container was not replaced by the restore");
    assert_eq!(after.containers[1].2, "true", "the app does not run again");
    assert_eq!(Seen { containers: before.containers.clone(), ..after }, before, "\n{all}");
    assert!(fs::read_to_string(p.dir.join("docker-compose.yml")).unwrap().contains("MARK=old"));
}

/// Guards `restore rollback CHECKPOINT` of an --overwrite restore onto a running deployment that
/// was killed after it had restored the database and started the project, the host then
/// rebooted (every container stopped): the old database is put back inside its container
/// (started for that), and the deployment runs again as before on its old data, with nothing
/// of the restore's left.
#[test]
fn interrupted_overwrite_of_a_running_deployment_is_rolled_back_by_hand() {
    if !engine() {
        return;
    }
    let Running { t, p, failing, .. } = running_deployment();
    let before = seen(&p);
    let x = extract(&failing, &t.path().join("x"));
    let cp = t.path().join("cp");
    let mut child = restore(&x)
        .args(["--yes", "--no-install", "--overwrite", "--health-tries", "150", "--checkpoint-dir"])
        .arg(&cp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(300)) {
        let up = line.starts_with("docker compose up");
        log.push(line);
        if up {
            break;
        }
    }
    assert!(log.last().is_some_and(|l| l.starts_with("docker compose up")), "{log:#?}");
    // `up -d` of the whole project has run once the app runs again; the health check waits.
    for _ in 0..120 {
        if !p.container("app").is_empty() && inspect("container", "{{.State.Running}}", &p.container("app")) == "true" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(sql(&p, "SELECT count(*) FROM items"), "41", "the restore was killed before it restored the database");
    let journal = fs::read_to_string(cp.join("checkpoint.jsonl")).unwrap();
    assert!(!journal.contains("\"completed\""), "{journal}");
    // The reboot.
    let ids: Vec<String> = ["postgres", "app"].iter().map(|s| p.container(s)).collect();
    let o = Command::new("docker").arg("stop").args(&ids).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let out = restore(&x).arg("rollback").arg(&cp).output().unwrap();
    let all = output(&out);
    assert_eq!(out.status.code(), Some(exit::OK), "{all}\n{journal}");
    assert_eq!(seen(&p), before, "\n{all}\n{journal}");
}
