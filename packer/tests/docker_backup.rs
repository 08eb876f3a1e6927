//! Backing up a Docker Compose deployment against the real engine: the database inside the
//! postgres container dumped with the container's own pg_dump, named volumes captured with their
//! owners, the compose project's files and images recorded, `docker save` of the images.
//! Needs a running Docker engine and the locally built images (scripts/docker-engine.sh,
//! scripts/docker-images.sh); skipped, saying so, only when `docker info` fails. No registry is
//! used: nothing is pulled.

mod common;

use std::fs;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::docker::*;
use common::*;
use packer::pg_cluster::Cluster;
use serde_json::Value;

/// The key the n8n volume's `config` holds.
const KEY: &str = "volume-key-6f2a9c";

/// A `docker` first in PATH that appends its argv to `log` and runs the real one: proves what
/// packer put on docker's command lines (what `ps` would show).
fn docker_shim(dir: &Path, log: &Path) -> PathBuf {
    let real = String::from_utf8(Command::new("sh").args(["-c", "command -v docker"]).output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let bin = dir.join("shim-bin");
    fs::create_dir_all(&bin).unwrap();
    let shim = bin.join("docker");
    fs::write(&shim, format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{real}' \"$@\"\n", log.display()))
        .unwrap();
    fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
    bin
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
    volumes:
      - app_storage:/home/node/.n8n
volumes:
  db_storage:
  app_storage:
"#;

/// A compose deployment packed from its containers: the dump (taken by the container's pg_dump,
/// port not published) restores with the rows seeded; counts, `postgres[].container`, the
/// requirements (docker, no host PostgreSQL), both volumes, the app volume's files with their
/// numeric owners, the n8n key found in the volume's `config` and proven against a credential,
/// the compose files, `.env` and override captured, every service with its image id; the
/// password is in no docker command line, log or manifest.
#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn compose_deployment_is_packed_from_its_containers() {
    if !engine() {
        return;
    }
    let password = format!("pw-{}-secret", std::process::id());
    let p = Project::new(COMPOSE, &format!("POSTGRES_USER=n8n\nPOSTGRES_PASSWORD={password}\nPOSTGRES_DB=n8n\n"));
    fs::write(
        p.dir.join("docker-compose.override.yml"),
        "services:\n  app:\n    labels:\n      test.override: \"yes\"\n",
    )
    .unwrap();
    p.compose_ok(&["up", "-d"]);
    p.wait_for_postgres();

    // n8n's schema and a credential encrypted with the volume's key; rows of our own.
    let schema = fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/n8n/schema-2.8.4.sql")).unwrap();
    p.sh("postgres", "psql -X -q -v ON_ERROR_STOP=1 -U n8n -d n8n >/dev/null", &schema);
    p.psql(&format!(
        "INSERT INTO migrations (id, timestamp, name) VALUES (1, 1587669153312, 'InitialMigration1587669153312');
         INSERT INTO credentials_entity (id, name, data, type) VALUES ('credHttp00000001', 'Internal API', '{}', 'httpBasicAuth');
         CREATE TABLE items (id serial PRIMARY KEY, name text);
         INSERT INTO items (name) SELECT 'item ' || i FROM generate_series(1, 37) i;",
        encrypt(r#"{"user":"u","password":"p"}"#, KEY)
    ));
    // The app's volume: n8n's config (the key), files owned by ids that exist only in containers.
    p.sh(
        "app",
        "mkdir -p /home/node/.n8n/binaryData && cat > /home/node/.n8n/config && chmod 600 /home/node/.n8n/config \
         && chown -R 1000:1000 /home/node/.n8n && echo data > /home/node/.n8n/binaryData/owned-999 \
         && chown 999:999 /home/node/.n8n/binaryData/owned-999",
        format!("{{\n\t\"encryptionKey\": \"{KEY}\"\n}}").as_bytes(),
    );

    let t = tempfile::tempdir().unwrap();
    let compose_file = p.dir.join("docker-compose.yml");
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{out}\"\nname = \"dock\"\ncompression_level = 1\n\n\
             [[postgres]]\nname = \"n8n\"\ncompose_service = \"postgres\"\ncompose_file = \"{f}\"\ncompose_project = \"{pr}\"\nprofile = \"n8n\"\n\n\
             [[volumes]]\ncompose_file = \"{f}\"\ncompose_project = \"{pr}\"\n\n\
             [[compose]]\nfile = \"{f}\"\nproject = \"{pr}\"\n",
            out = t.path().join("out").display(),
            f = compose_file.display(),
            pr = p.name
        ),
    )
    .unwrap();
    let log = t.path().join("docker-argv.log");
    let shim = docker_shim(t.path(), &log);
    let path = format!("{}:{}", shim.display(), std::env::var("PATH").unwrap());
    let out = packer().env("PATH", &path).args(["create", "--config"]).arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "packer create failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let bundle = PathBuf::from(stdout.lines().last().unwrap());
    let dir = extract(&bundle, &t.path().join("x"));
    let manifest_text = fs::read_to_string(dir.join("manifest.json")).unwrap();
    let m: Value = serde_json::from_str(&manifest_text).unwrap();

    // The password: on no command line packer gave docker, in no log line, not in the manifest.
    let argv = fs::read_to_string(&log).unwrap();
    let dump_line = argv
        .lines()
        .find(|l| l.starts_with("exec ") && l.contains(" pg_dump ") && l.contains("--format=custom"))
        .expect("docker exec pg_dump");
    // The dump runs on the snapshot the counts were read in; the password came by environment.
    assert!(dump_line.contains("-e PGPASSWORD ") && dump_line.contains("--snapshot="), "{dump_line}");
    let shown = packer().arg("--config").arg(&cfg).arg("show").arg(&bundle).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(shown.contains(&format!("(compose project {}, service postgres), user n8n", p.name)), "{shown}");
    assert!(shown.contains(&format!("Volume {}_app_storage", p.name)), "{shown}");
    for (what, text) in [
        ("docker argv", &argv),
        ("packer's output", &stderr),
        ("packer's stdout", &stdout),
        ("manifest", &manifest_text),
    ] {
        assert!(!text.contains(&password), "the password appears in {what}");
    }

    // The database: its container, its counts, and a dump that restores with those rows.
    let db = &m["postgres"][0];
    let pg_name = inspect("container", "{{.Name}}", &p.container("postgres")).trim_start_matches('/').to_string();
    assert_eq!(
        db["container"],
        serde_json::json!({"name": pg_name, "project": p.name, "service": "postgres", "user": "n8n"})
    );
    let rows = |table: &str| {
        db["tables"].as_array().unwrap().iter().find(|t| t["name"] == table).unwrap_or_else(|| panic!("{table}"))
            ["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("items"), 37);
    assert_eq!(rows("credentials_entity"), 1);
    assert!(db["pg_dump_version"].as_str().unwrap().contains("15."), "{}", db["pg_dump_version"]);
    let cluster = Cluster::start().unwrap();
    cluster.psql("postgres", "CREATE DATABASE back").unwrap();
    let restored = Command::new(cluster.bin().join("pg_restore"))
        .args(["--no-owner", "--no-acl", "-h"])
        .arg(cluster.socket_dir())
        .args(["-p", &cluster.port.to_string(), "-U", "postgres", "-d", "back"])
        .arg(dir.join(db["entry"].as_str().unwrap()))
        .output()
        .unwrap();
    assert!(restored.status.success(), "pg_restore: {}", String::from_utf8_lossy(&restored.stderr));
    assert_eq!(cluster.psql("back", "SELECT count(*) FROM items").unwrap().trim(), "37");
    assert!(db["roles_entry"].is_string(), "roles dumped with the container's pg_dumpall");
    let roles = fs::read_to_string(dir.join(db["roles_entry"].as_str().unwrap())).unwrap();
    assert!(roles.contains("CREATE ROLE n8n"), "{roles}");

    // Requirements: Docker and compose; the database brings its own server.
    let req: Vec<&str> = m["requirements"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(req.contains(&"docker.io") && req.contains(&"docker-compose"), "{req:?}");
    assert!(!req.iter().any(|r| r.starts_with("postgresql")), "{req:?}");

    // Volumes: both, with their project; the app volume's files with their numeric owners; the
    // database's data directory recorded but not copied (its dump holds the data).
    let vols = m["docker"]["volumes"].as_array().unwrap();
    let mut names: Vec<&str> = vols.iter().map(|v| v["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, [format!("{}_app_storage", p.name), format!("{}_db_storage", p.name)]);
    assert!(vols.iter().all(|v| v["project"] == p.name.as_str()), "{vols:?}");
    let mount = |name: &str| inspect("volume", "{{.Mountpoint}}", &format!("{}_{name}", p.name));
    let app_mp = mount("app_storage");
    assert!(vols.iter().any(|v| v["mountpoint"] == app_mp.as_str()));
    let files = m["files"].as_array().unwrap();
    let record = |path: &str| files.iter().find(|f| f["path"] == path).unwrap_or_else(|| panic!("no record {path}"));
    let config = record(&format!("{app_mp}/config"));
    assert_eq!(
        (config["kind"].as_str(), config["uid"].as_u64(), config["gid"].as_u64()),
        (Some("data"), Some(1000), Some(1000)),
        "{config}"
    );
    assert_eq!(config["mode"].as_u64(), Some(0o600));
    let owned = record(&format!("{app_mp}/binaryData/owned-999"));
    assert_eq!((owned["uid"].as_u64(), owned["gid"].as_u64()), (Some(999), Some(999)));
    assert_eq!(fs::read_to_string(dir.join(owned["entry"].as_str().unwrap())).unwrap(), "data\n");
    let db_mp = mount("db_storage");
    assert!(!files.iter().any(|f| f["path"].as_str().unwrap().starts_with(&db_mp)), "the data directory was copied");
    assert!(m["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("_db_storage holds the data directory")));

    // The n8n key: found in the volume's config, proven against the credential.
    let key = &m["n8n"]["encryption_key"];
    assert_eq!(key["found_in"], format!("{app_mp}/config").as_str(), "{key}");
    assert_eq!(key["proven"], true);

    // The compose project: its files (and .env) as config records, every service's image id.
    let proj = &m["docker"]["compose"][0];
    assert_eq!(proj["project"], p.name.as_str());
    let override_file = p.dir.join("docker-compose.override.yml");
    assert_eq!(proj["files"], serde_json::json!([compose_file, override_file]));
    for f in [&compose_file, &override_file, &p.dir.join(".env")] {
        let r = record(f.to_str().unwrap());
        assert_eq!(r["kind"], "config");
        assert_eq!(fs::read(dir.join(r["entry"].as_str().unwrap())).unwrap(), fs::read(f).unwrap());
    }
    for (service, image) in [("postgres", "n8nbk-postgres:15"), ("app", "n8nbk-base:bookworm")] {
        let s = proj["services"].as_array().unwrap().iter().find(|s| s["name"] == service).unwrap();
        assert_eq!(s["image"], image);
        assert_eq!(s["image_id"], inspect("container", "{{.Image}}", &p.container(service)).as_str());
    }
    assert!(m["docker"]["images"].as_array().is_none_or(|i| i.is_empty()), "no images without include_images");
}

/// `include_images = true`: each service's image is `docker save`d into the bundle, listed in
/// the manifest under its id and tags, the entry a tar `docker load` reads (its manifest.json
/// names the tag). A service whose container exists but is stopped still gives its image id.
#[test]
fn include_images_saves_each_service_image() {
    if !engine() {
        return;
    }
    let mut p = Project::new("", "");
    // A tiny image of our own (one file), so the saved tar stays small.
    let tag = format!("n8nbk-test-tiny:{}", p.name);
    fs::write(
        p.dir.join("docker-compose.yml"),
        format!("services:\n  tiny:\n    image: {tag}\n    command: [\"/nothing\"]\n"),
    )
    .unwrap();
    let rootfs = p.dir.join("rootfs.tar");
    let st = Command::new("tar").arg("cf").arg(&rootfs).arg("-C").arg(&p.dir).arg(".env").status().unwrap();
    assert!(st.success());
    let imported = Command::new("docker").arg("import").arg(&rootfs).arg(&tag).output().unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    fs::remove_file(&rootfs).unwrap();
    p.images.push(tag.clone());
    p.compose_ok(&["up", "--no-start"]);
    let id = inspect("image", "{{.Id}}", &tag);

    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"img\"\n[[compose]]\ndir = \"{}\"\nproject = \"{}\"\n[docker]\ninclude_images = true\n",
            t.path().join("out").display(),
            p.dir.display(),
            p.name
        ),
    )
    .unwrap();
    let bundle = create(&cfg);
    let dir = extract(&bundle, &t.path().join("x"));
    let m: Value = serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let images = m["docker"]["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0]["id"], id.as_str());
    assert_eq!(images[0]["references"], serde_json::json!([tag]));
    let entry = images[0]["entry"].as_str().unwrap();
    assert_eq!(entry, format!("images/{}.tar", id.trim_start_matches("sha256:")));
    assert!(m["support"].as_array().unwrap().iter().any(|s| s["entry"] == entry));
    let listed = Command::new("tar").arg("xOf").arg(dir.join(entry)).arg("manifest.json").output().unwrap();
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&tag));
    assert_eq!(m["docker"]["compose"][0]["services"][0]["image_id"], id.as_str());
    let req: Vec<&str> = m["requirements"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(req.contains(&"docker.io"), "{req:?}");
}

/// Guards the n8n example's `./init-data.sh`: what a project's containers bind-mount from inside
/// the project directory (a file, a directory) is packed with the project, with its mode, so the
/// restore does not start them on an empty directory Docker makes in its place; a bind-mounted
/// host path outside the directory is not packed and a note names it.
#[test]
fn bind_mounted_project_files_are_packed() {
    if !engine() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside.conf");
    fs::write(&outside, "host file\n").unwrap();
    let compose = format!(
        "services:\n  app:\n    image: n8nbk-base:bookworm\n    command: [\"sleep\", \"infinity\"]\n    stop_signal: SIGKILL\n    volumes:\n      - ./init-data.sh:/docker-entrypoint-initdb.d/init-data.sh:ro\n      - ./local-files:/files\n      - {}:/outside.conf:ro\n",
        outside.display()
    );
    let p = Project::new(&compose, "");
    fs::write(p.dir.join("init-data.sh"), "#!/bin/bash\necho init\n").unwrap();
    fs::set_permissions(p.dir.join("init-data.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::create_dir(p.dir.join("local-files")).unwrap();
    fs::write(p.dir.join("local-files/upload.txt"), "uploaded\n").unwrap();
    p.compose_ok(&["up", "-d"]);

    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"binds\"\n[[compose]]\nfile = \"{}\"\nproject = \"{}\"\n",
            t.path().join("out").display(),
            p.dir.join("docker-compose.yml").display(),
            p.name
        ),
    )
    .unwrap();
    let bundle = create(&cfg);
    let dir = extract(&bundle, &t.path().join("x"));
    let m: Value = serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let record = |path: &Path| {
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path.to_str().unwrap())
            .unwrap_or_else(|| panic!("{} not packed: {:#}", path.display(), m["files"]))
            .clone()
    };
    let init = record(&p.dir.join("init-data.sh"));
    assert_eq!(init["kind"], "config");
    assert_eq!(init["mode"], 0o750);
    assert_eq!(fs::read_to_string(dir.join(init["entry"].as_str().unwrap())).unwrap(), "#!/bin/bash\necho init\n");
    let upload = record(&p.dir.join("local-files/upload.txt"));
    assert_eq!(upload["kind"], "data");
    assert_eq!(fs::read_to_string(dir.join(upload["entry"].as_str().unwrap())).unwrap(), "uploaded\n");
    assert!(
        !m["files"].as_array().unwrap().iter().any(|f| f["path"] == outside.to_str().unwrap()),
        "a host path outside the project was packed"
    );
    let notes: Vec<&str> =
        m["notes"].as_array().map(|n| n.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(
        notes.iter().any(|n| n.contains(outside.to_str().unwrap()) && n.contains("not packed")),
        "no note names {}: {notes:?}",
        outside.display()
    );
}

/// A container removed when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", "-v", &self.0]).output();
    }
}

/// `container = "NAME"`: a plain container (no compose) is dumped the same way; the database
/// defaults to its `POSTGRES_DB`; `postgres[].container` has no project or service.
#[test]
fn plain_container_is_dumped_by_name() {
    if !engine() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let name = format!(
        "pkt-plain-{}",
        t.path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase()
    );
    let o = Command::new("docker")
        .args(["run", "-d", "--name", &name, "-e", "POSTGRES_USER=shop", "-e", "POSTGRES_DB=orders", "-e"])
        .arg("POSTGRES_PASSWORD=plain-container-pw")
        .arg("n8nbk-postgres:15")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _guard = Container(name.clone());
    let psql = |sql: &str| {
        Command::new("docker")
            .args(["exec", &name, "psql", "-X", "-q", "-h", "127.0.0.1", "-U", "shop", "-d", "orders", "-c", sql])
            .output()
            .unwrap()
    };
    for _ in 0..120 {
        if psql("SELECT 1").status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let o = psql("CREATE TABLE o (id int); INSERT INTO o SELECT generate_series(1, 11);");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"plain\"\n[[postgres]]\nname = \"orders\"\ncontainer = \"{name}\"\n",
            t.path().join("out").display()
        ),
    )
    .unwrap();
    let bundle = create(&cfg);
    let dir = extract(&bundle, &t.path().join("x"));
    let m: Value = serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let db = &m["postgres"][0];
    assert_eq!(db["database"], "orders");
    assert_eq!(db["container"], serde_json::json!({"name": name, "user": "shop"}));
    assert_eq!(db["tables"][0]["rows"], 11);
    let listed =
        Command::new("pg_restore").arg("--list").arg(dir.join(db["entry"].as_str().unwrap())).output().unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("TABLE DATA public o"));
}

/// A compose service without a running container fails before anything is written, naming the
/// section, the service and the command that starts it.
#[test]
fn stopped_compose_service_is_a_clear_error() {
    if !engine() {
        return;
    }
    let p = Project::new(COMPOSE, "POSTGRES_USER=n8n\nPOSTGRES_PASSWORD=x\nPOSTGRES_DB=n8n\n");
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\n[[postgres]]\nname = \"n8n\"\ncompose_service = \"postgres\"\ncompose_dir = \"{}\"\ncompose_project = \"{}\"\n",
            t.path().join("out").display(),
            p.dir.display(),
            p.name
        ),
    )
    .unwrap();
    let out = packer().args(["create", "--config"]).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[[postgres]] n8n: service postgres") && err.contains("up -d postgres"), "{err}");
    assert!(tree(&t.path().join("out")).iter().all(|p| !p.ends_with(".tar.gz")), "no bundle written");
}
