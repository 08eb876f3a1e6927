//! Issue 9, "SQLite inside a volume", against the real Docker engine: n8n's simplest Docker setup
//! keeps its SQLite database in a named volume (`n8n_data:/home/node/.n8n`) while the container
//! writes to it. Packed as a consistent copy (online backup) with the volume's other files (the
//! `config` with the key), destroyed (`down -v`, project directory gone), and restored into a
//! volume the restore creates with compose's labels before the app starts, owned by the
//! container's numeric ids. Needs the engine and the local n8nbk-n8n image (its node and n8n's
//! own sqlite3 module write the database from inside the container; scripts/docker-images.sh
//! n8n); skipped, saying so, when `docker info` fails or that image was not built.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a skipped case says why")]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::docker::*;
use common::*;
use restorer::exit;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// The app: n8n's image and volume layout, its process a writer that adds one event per
/// transaction (and bumps a tally in the same transaction) into n8n's WAL-mode database,
/// as uid 1000, without pause. `$` is compose's interpolation character: the script has none.
const COMPOSE: &str = r#"services:
  n8n:
    image: n8nbk-n8n:2.8.4
    stop_signal: SIGKILL
    entrypoint: ["node", "-e"]
    command:
      - |
        const fs = require('fs');
        const sqlite3 = require('/usr/local/lib/n8n/node_modules/sqlite3');
        const file = '/home/node/.n8n/database.sqlite';
        function start() {
          const db = new sqlite3.Database(file);
          db.configure('busyTimeout', 30000);
          db.exec("PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, at TEXT); CREATE TABLE IF NOT EXISTS tally (n INTEGER); INSERT INTO tally SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM tally);", (e) => {
            if (e) { console.error(e); process.exit(1); }
            const step = () => db.exec("BEGIN IMMEDIATE; INSERT INTO events (at) VALUES (datetime('now')); UPDATE tally SET n = n + 1; COMMIT;", (e) => {
              if (e) { console.error(e); process.exit(1); }
              setImmediate(step);
            });
            step();
          });
        }
        (function wait() { fs.existsSync(file + '.ready') ? start() : setTimeout(wait, 100); })();
    volumes:
      - n8n_data:/home/node/.n8n
volumes:
  n8n_data:
"#;

/// The database and key of the n8n fixture (three workflows, two credentials encrypted with the
/// key in `config`; WAL mode).
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/deployment/home/node/.n8n").join(name)
}

fn count(c: &Connection, table: &str) -> u64 {
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

fn open_ro(p: &Path) -> Connection {
    let c = Connection::open_with_flags(p, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
    c
}

/// Waits until the writer has written at least `n` events (read from the host through the
/// volume's mount point, as another SQLite reader).
fn wait_for_events(db: &Path, n: u64, p: &Project) -> u64 {
    for _ in 0..600 {
        if db.is_file() {
            let c = open_ro(db);
            let have: u64 = c.query_row("SELECT coalesce(max(n), 0) FROM tally", [], |r| r.get(0)).unwrap_or(0);
            if have >= n {
                return have;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let logs = p.compose(&["logs", "--tail", "30"]);
    panic!("the writer never reached {n} events: {}", String::from_utf8_lossy(&logs.stdout));
}

fn manifest_of(bundle: &Path) -> Value {
    let o = packer().args(["show", "--json"]).arg(bundle).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn rows(db: &Value, table: &str) -> u64 {
    db["tables"].as_array().unwrap().iter().find(|t| t["name"] == table).unwrap()["rows"].as_u64().unwrap()
}

/// n8n's SQLite in a named volume, written by its container while packing: `volume =` with the
/// compose file's short name finds the volume; the copy is one consistent instant (the tally
/// written in each event's transaction equals the events counted), passes integrity_check, and
/// the manifest records it in the volume with its row counts; the volume's other files come
/// along (the key in `config`, proven against a credential) without the raw database or its
/// journals. The host-path form (`/var/lib/docker/volumes/NAME/_data/database.sqlite`, no
/// `[[volumes]]`) is recognised as the same volume and packed the same way. After `down -v`
/// and the project directory removed, the restore creates the volume with compose's labels,
/// puts the copy back owned by uid/gid 1000 before the app starts, validates integrity, counts
/// and the n8n credential, and the restarted writer goes on writing the restored database.
#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn sqlite_in_a_volume_is_packed_while_written_and_restored_into_it() {
    if !engine() {
        return;
    }
    if !Command::new("docker").args(["image", "inspect", "n8nbk-n8n:2.8.4"]).output().unwrap().status.success() {
        eprintln!("SKIPPED: no image n8nbk-n8n:2.8.4 (scripts/docker-images.sh n8n builds it; nothing is pulled)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let p = Project::new(COMPOSE, "");
    p.compose_ok(&["up", "-d"]);
    let volume = format!("{}_n8n_data", p.name);
    let mountpoint = PathBuf::from(inspect("volume", "{{.Mountpoint}}", &volume));
    let db = mountpoint.join("database.sqlite");
    // n8n's files in the volume, as n8n leaves them: owned by node (1000), `config` 0600.
    for (name, mode) in [("database.sqlite", 0o644), ("config", 0o600)] {
        fs::copy(fixture(name), mountpoint.join(name)).unwrap();
        fs::set_permissions(mountpoint.join(name), fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(mountpoint.join(name), Some(1000), Some(1000)).unwrap();
    }
    fs::write(mountpoint.join("database.sqlite.ready"), "").unwrap();
    let before = wait_for_events(&db, 200, &p);

    let compose_file = p.dir.join("docker-compose.yml");
    let config = |name: &str, sqlite: &str| {
        let text = format!(
            "[bundle]\noutput_dir = \"{out}\"\nname = \"{name}\"\ncompression_level = 1\n\n\
             [[sqlite]]\nname = \"n8n\"\n{sqlite}\nprofile = \"n8n\"\n\n\
             [[compose]]\nfile = \"{f}\"\nproject = \"{pr}\"\n",
            out = t.path().join("out").display(),
            f = compose_file.display(),
            pr = p.name
        );
        let path = t.path().join(format!("{name}.toml"));
        fs::write(&path, text).unwrap();
        path
    };
    let bundle = create(&config(
        "byvolume",
        &format!(
            "volume = \"n8n_data\"\npath = \"database.sqlite\"\ncompose_file = \"{}\"\ncompose_project = \"{}\"",
            compose_file.display(),
            p.name
        ),
    ));
    let host_path = create(&config("hostpath", &format!("path = \"{}\"", db.display())));
    let after = wait_for_events(&db, 0, &p);
    let m = manifest_of(&bundle);

    // The manifest: the database in the volume, its counts those of one instant while it was
    // written; the volume recorded with its project; its files without the raw database.
    let s = &m["sqlite"][0];
    assert_eq!(s["volume"], volume.as_str(), "{s:#}");
    assert_eq!(s["path"], db.display().to_string());
    assert_eq!((s["uid"].as_u64(), s["gid"].as_u64()), (Some(1000), Some(1000)));
    let events = rows(s, "events");
    assert!((before..=after).contains(&events), "{before} <= {events} <= {after}");
    assert_eq!(rows(s, "workflow_entity"), 3);
    assert_eq!(rows(s, "credentials_entity"), 2);
    let vols = m["docker"]["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 1, "{vols:#?}");
    assert_eq!(vols[0]["name"], volume.as_str());
    assert_eq!(vols[0]["project"], p.name.as_str());
    let paths: Vec<&str> = m["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&mountpoint.join("config").to_str().unwrap()), "{paths:#?}");
    assert!(paths.contains(&mountpoint.join("database.sqlite.ready").to_str().unwrap()), "{paths:#?}");
    for raw in ["database.sqlite", "database.sqlite-wal", "database.sqlite-shm"] {
        assert!(!paths.contains(&mountpoint.join(raw).to_str().unwrap()), "{raw} packed raw: {paths:#?}");
    }
    let notes = m["notes"].to_string();
    assert!(notes.contains(&format!("lies in Docker volume {volume}")), "{notes}");
    assert_eq!(m["n8n"]["database_kind"], "sqlite");
    assert_eq!(m["n8n"]["encryption_key"]["proven"], true, "{:#}", m["n8n"]);
    assert_eq!(m["n8n"]["encryption_key"]["found_in"], mountpoint.join("config").display().to_string());
    assert_eq!(m["n8n"]["workflows"].as_array().unwrap().len(), 3);
    assert!(m["requirements"].as_array().unwrap().iter().any(|r| r == "docker.io"));
    let shown = packer().arg("show").arg(&bundle).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(shown.contains(&format!("SQLite n8n ({}, in volume {volume})", db.display())), "{shown}");
    // The copy itself: one consistent instant (the tally is bumped in every event's
    // transaction), self-contained (no WAL), intact.
    let x = extract(&bundle, &t.path().join("x"));
    let copy = open_ro(&x.join("databases/n8n.sqlite"));
    assert_eq!(count(&copy, "events"), events);
    let tally: u64 = copy.query_row("SELECT n FROM tally", [], |r| r.get(0)).unwrap();
    assert_eq!(tally, events, "the copy is not one instant");
    let mode: String = copy.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "delete");
    let ok: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    drop(copy);

    // The host-path form is the same thing: the volume recognised and captured with it.
    let h = manifest_of(&host_path);
    assert_eq!(h["sqlite"][0]["volume"], volume.as_str());
    assert_eq!(h["docker"]["volumes"], m["docker"]["volumes"]);
    assert_eq!(h["n8n"]["encryption_key"]["proven"], true);
    let h_paths: Vec<&str> = h["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(h_paths, paths);

    // The disk died.
    p.compose_ok(&["down", "-v"]);
    fs::remove_dir_all(&p.dir).unwrap();
    let gone = Command::new("docker").args(["volume", "inspect", &volume]).output().unwrap();
    assert!(!gone.status.success(), "the volume survived down -v");

    // The plan names the database going into the volume.
    let out = restore(&x).args(["--dry-run", "--no-install"]).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(exit::OK), "{shown}{}", String::from_utf8_lossy(&out.stderr));
    assert!(shown.contains(&format!("volume {volume}: create if missing")), "{shown}");
    assert!(shown.contains("SQLite n8n into it before any container starts"), "{shown}");

    let report_path = t.path().join("report.json");
    let out = restore(&x)
        .args(["--yes", "--no-install", "--health-tries", "2", "--checkpoint-dir"])
        .arg(t.path().join("cp"))
        .arg("--report")
        .arg(&report_path)
        .output()
        .unwrap();
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&fs::read(&report_path).unwrap_or_default()).unwrap_or_default();
    assert_eq!(out.status.code(), Some(exit::OK), "{all}");
    assert_eq!(report["outcome"], "restored", "{report:#}\n{all}");
    let steps: Vec<String> =
        report["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap().to_string()).collect();
    let at = |s: &str| steps.iter().position(|x| x == s).unwrap_or_else(|| panic!("no step {s}: {steps:?}"));
    assert!(at("docker volumes") < at("files") && at("files") < at("sqlite n8n"), "{steps:?}");
    assert!(at("sqlite n8n") < at("validate") && at("validate") < at("docker compose up"), "{steps:?}");
    let checks = report["validation"].as_array().unwrap();
    let sqlite_checks: Vec<&Value> =
        checks.iter().filter(|c| c["check"].as_str().unwrap().starts_with("sqlite n8n")).collect();
    assert!(sqlite_checks.len() >= 3, "{checks:#?}");
    assert!(sqlite_checks.iter().all(|c| c["ok"] == true), "{sqlite_checks:#?}");
    let cred = checks.iter().find(|c| c["check"].as_str().unwrap().contains("credential decrypts"));
    assert_eq!(cred.map(|c| &c["ok"]), Some(&Value::Bool(true)), "{checks:#?}");

    // The volume: created by the restore with compose's labels, the database in it owned as
    // before; the container (uid 1000) writes on into it.
    assert_eq!(inspect("volume", "{{index .Labels \"com.docker.compose.project\"}}", &volume), p.name);
    assert_eq!(inspect("volume", "{{index .Labels \"com.docker.compose.volume\"}}", &volume), "n8n_data");
    assert_eq!(PathBuf::from(inspect("volume", "{{.Mountpoint}}", &volume)), mountpoint);
    let meta = fs::metadata(&db).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (1000, 1000, 0o644));
    let cfg_meta = fs::metadata(mountpoint.join("config")).unwrap();
    assert_eq!((cfg_meta.uid(), cfg_meta.gid(), cfg_meta.mode() & 0o7777), (1000, 1000, 0o600));
    assert_eq!(inspect("container", "{{.State.Running}}", &p.container("n8n")), "true");
    let later = wait_for_events(&db, events + 50, &p);
    assert!(later > events);
    p.compose_ok(&["stop"]);
    let c = open_ro(&db);
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    assert_eq!(count(&c, "workflow_entity"), 3);
    assert_eq!(count(&c, "credentials_entity"), 2);
    let tally: u64 = c.query_row("SELECT n FROM tally", [], |r| r.get(0)).unwrap();
    assert_eq!(tally, count(&c, "events"));
    // The events the bundle held are the first ones of the restored database.
    let first: u64 = c.query_row("SELECT count(*) FROM events WHERE id <= ?1", [events], |r| r.get(0)).unwrap();
    assert_eq!(first, events);
}

/// A `[[sqlite]] volume` that does not exist, a volume without the file, and a compose project
/// without that volume are one-line errors naming the section (before anything is written); the
/// human `packer show` says which volume a database lives in.
#[test]
fn sqlite_volume_errors_name_the_section() {
    if !engine() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let p = Project::new("services:\n  app:\n    image: n8nbk-base:bookworm\n    command: [\"true\"]\n", "");
    let missing = format!("{}_absent", p.name);
    let present = format!("{}_data", p.name);
    // Compose's labels, so the Project's drop removes it.
    let o = Command::new("docker")
        .args(["volume", "create", "--label"])
        .arg(format!("com.docker.compose.project={}", p.name))
        .args(["--label", "com.docker.compose.volume=data", "--", &present])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = |sqlite: &str| {
        let cfg = t.path().join("p.toml");
        fs::write(
            &cfg,
            format!(
                "[bundle]\noutput_dir = \"{}\"\n[[sqlite]]\nname = \"n8n\"\npath = \"database.sqlite\"\n{sqlite}\n",
                t.path().join("out").display()
            ),
        )
        .unwrap();
        let o = packer().arg("--config").arg(&cfg).arg("create").output().unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let compose =
        format!("compose_file = \"{}\"\ncompose_project = \"{}\"", p.dir.join("docker-compose.yml").display(), p.name);
    for (sqlite, want) in [
        (format!("volume = \"{missing}\""), format!("[[sqlite]] n8n: Docker volume \"{missing}\" does not exist")),
        (format!("volume = \"{present}\""), format!("[[sqlite]] n8n: volume {present} has no file database.sqlite")),
        (
            format!("volume = \"absent\"\n{compose}"),
            format!("[[sqlite]] n8n: compose project {} has no volume absent", p.name),
        ),
    ] {
        let e = run(&sqlite);
        assert!(e.contains(&want), "{sqlite}: {e}");
    }
    // The compose key resolves by compose's labels: the file is then looked for in that volume.
    let e = run(&format!("volume = \"data\"\n{compose}"));
    assert!(e.contains(&format!("volume {present} has no file database.sqlite")), "{e}");
    assert!(!t
        .path()
        .join("out")
        .read_dir()
        .is_ok_and(|mut d| d.any(|e| { e.unwrap().file_name().to_string_lossy().ends_with(".tar.gz") })));
}
