//! `packer verify --deep` of databases that lived in containers, against the real Docker engine:
//! restored in a throwaway container of the image the service ran (its own pg_restore; no host
//! PostgreSQL needed), counts and n8n workflows compared, a count mismatch caught, nothing left
//! behind; the host cluster used instead when the image is not here, and a clear failed check
//! when neither can work. Needs a running engine and the locally built images
//! (scripts/docker-engine.sh, scripts/docker-images.sh); the Docker tests are skipped, saying
//! so, only when `docker info` fails. Nothing is pulled.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::craft::Crafted;
use common::docker::*;
use common::*;
use packer::pg_cluster::Cluster;
use serde_json::Value;

const COMPOSE: &str = r#"services:
  postgres:
    image: n8nbk-postgres:15-next
    environment:
      - POSTGRES_USER
      - POSTGRES_PASSWORD
      - POSTGRES_DB
    volumes:
      - db_storage:/var/lib/postgresql/data
volumes:
  db_storage:
"#;

/// `packer verify --deep BUNDLE --json` with `env`: exit code and the parsed report.
fn deep_verify(bundle: &Path, env: &[(&str, &Path)]) -> (i32, Value) {
    let mut c = packer();
    c.args(["verify", "--deep", "--json"]).arg(bundle);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("verify printed no JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap(), report)
}

/// The deep checks of a report.
fn checks(report: &Value) -> &Vec<Value> {
    report["deep"].as_array().unwrap_or_else(|| panic!("no deep checks: {report:#}"))
}

/// The check whose name contains `needle`.
fn find<'a>(report: &'a Value, needle: &str) -> &'a Value {
    checks(report)
        .iter()
        .find(|c| c["check"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no check contains {needle:?}: {:#}", report["deep"]))
}

/// The throwaway container a report names (`... (packer-verify-PID-HEX)`), asserted gone.
fn assert_container_removed(report: &Value) {
    let c = find(report, "restored in a throwaway container of image");
    let name = c["check"].as_str().unwrap().rsplit('(').next().unwrap().trim_end_matches(')').to_string();
    assert!(name.starts_with("packer-verify-"), "{c}");
    let o = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter", &format!("name=^/{name}$")])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "", "container {name} is left behind");
}

/// A directory with no PostgreSQL in it, for `PG_BIN`: the host's PostgreSQL out of reach.
fn no_pg_bin(t: &Path) -> PathBuf {
    let d = t.join("no-pg-bin");
    fs::create_dir_all(&d).unwrap();
    d
}

/// The database inside a compose service's container is restored, for `--deep`, in a throwaway
/// container of the image the service ran, with that image's pg_restore: every check passes
/// with the host's PostgreSQL out of reach (`PG_BIN` at an empty directory), row counts and the
/// n8n workflow compared, the check list names the image; a bundle whose manifest claims other
/// row counts than its dump holds (digests consistent) fails on exactly that count; no
/// container is left, also after a Ctrl-C while it runs.
#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn deep_verify_restores_a_container_database_in_its_image() {
    if !engine() {
        return;
    }
    let p = Project::new(COMPOSE, "POSTGRES_USER=n8n\nPOSTGRES_PASSWORD=deep-verify-pw\nPOSTGRES_DB=n8n\n");
    p.compose_ok(&["up", "-d"]);
    p.wait_for_postgres();
    let schema = fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/n8n/schema-2.8.4.sql")).unwrap();
    p.sh("postgres", "psql -X -q -v ON_ERROR_STOP=1 -U n8n -d n8n >/dev/null", &schema);
    p.psql(
        r#"INSERT INTO migrations (id, timestamp, name) VALUES (1, 1587669153312, 'InitialMigration1587669153312');
           INSERT INTO workflow_entity (id, name, active, nodes, connections, settings, "versionId", "isArchived") VALUES
             ('wfDeep0000000001', 'Deep one', false,
              '[{"name":"Start","type":"n8n-nodes-base.manualTrigger","typeVersion":1,"position":[0,0],"parameters":{}}]',
              '{}', '{}', 'aaaaaaaa-0000-0000-0000-000000000001', false);
           CREATE TABLE items (id serial PRIMARY KEY, name text);
           INSERT INTO items (name) SELECT 'item ' || i FROM generate_series(1, 37) i;"#,
    );

    let t = tempfile::tempdir().unwrap();
    let compose_file = p.dir.join("docker-compose.yml");
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{out}\"\nname = \"deep\"\ncompression_level = 1\n\n\
             [[postgres]]\nname = \"n8n\"\ncompose_service = \"postgres\"\ncompose_file = \"{f}\"\ncompose_project = \"{pr}\"\nprofile = \"n8n\"\n\n\
             [[compose]]\nfile = \"{f}\"\nproject = \"{pr}\"\n",
            out = t.path().join("out").display(),
            f = compose_file.display(),
            pr = p.name
        ),
    )
    .unwrap();
    let bundle = create(&cfg);
    let no_pg = no_pg_bin(t.path());

    let (code, report) = deep_verify(&bundle, &[("PG_BIN", &no_pg)]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert!(checks(&report).iter().all(|c| c["ok"] == true), "{:#}", report["deep"]);
    let server = find(&report, "postgres n8n: restored in a throwaway container of image n8nbk-postgres:15-next");
    assert_eq!(server["ok"], true);
    let items = find(&report, "postgres n8n: public.items rows");
    assert_eq!((items["expected"].as_str(), items["actual"].as_str()), (Some("37"), Some("37")));
    let wf = find(&report, "n8n workflow wfDeep0000000001 (Deep one) checksum");
    assert_eq!(wf["ok"], true);
    assert!(!checks(&report).iter().any(|c| c["check"].as_str().unwrap().contains("host's PostgreSQL")));
    assert_container_removed(&report);

    // Ctrl-C while the throwaway container runs: the verify stops, the container goes.
    let mut child = packer()
        .args(["verify", "--deep", "--json"])
        .arg(&bundle)
        .env("PG_BIN", &no_pg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let prefix = format!("packer-verify-{}-", child.id());
    let listed = || {
        let o = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}}", "--filter", &format!("name={prefix}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let mut seen = String::new();
    for _ in 0..600 {
        seen = listed();
        if !seen.is_empty() || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen.starts_with(&prefix), "no throwaway container appeared");
    let st = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "an interrupted verify must not pass");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(listed(), "", "container {seen} is left behind after Ctrl-C");

    // The manifest claims 36 rows in items; every digest is recomputed, so only the restore can tell.
    let mut crafted = Crafted::read(&bundle);
    let tables = crafted.manifest["postgres"][0]["tables"].as_array_mut().unwrap();
    let row = tables.iter_mut().find(|t| t["name"] == "items").unwrap();
    row["rows"] = 36.into();
    let tampered = t.path().join("out/tampered.tar.gz");
    crafted.write(&tampered, None);
    let (code, report) = deep_verify(&tampered, &[("PG_BIN", &no_pg)]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["ok"], false);
    assert!(report["report"]["problems"].as_array().unwrap().is_empty(), "digests must be consistent: {report:#}");
    let items = find(&report, "postgres n8n: public.items rows");
    assert_eq!(
        (items["ok"].as_bool(), items["expected"].as_str(), items["actual"].as_str()),
        (Some(false), Some("36"), Some("37"))
    );
    let failed: Vec<&Value> = checks(&report).iter().filter(|c| c["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "only the altered count fails: {failed:#?}");
    assert_container_removed(&report);
}

/// A bundle made from a host cluster, its manifest rewritten (digests consistent) to say the
/// database lived in compose service `postgres` whose image is `image`.
fn bundle_claiming_image(t: &Path, image: &str) -> PathBuf {
    let source = Cluster::start().unwrap();
    source.psql("postgres", "CREATE DATABASE shop").unwrap();
    source.psql("shop", "CREATE TABLE o (id int); INSERT INTO o SELECT generate_series(1, 11);").unwrap();
    let cfg = t.join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"fallback\"\n[[postgres]]\nname = \"shop\"\nurl = \"{}\"\npg_bin = \"{}\"\n",
            t.join("out").display(),
            source.url("shop"),
            source.bin().display()
        ),
    )
    .unwrap();
    let bundle = create(&cfg);
    let mut crafted = Crafted::read(&bundle);
    crafted.manifest["postgres"][0]["container"] =
        serde_json::json!({"name": "gone-postgres-1", "project": "gone", "service": "postgres", "user": "shop"});
    crafted.manifest["docker"] = serde_json::json!({"compose": [{"project": "gone", "directory": "/opt/gone",
        "files": [], "services": [{"name": "postgres", "image": image}]}]});
    let out = t.join("out/claims-image.tar.gz");
    crafted.write(&out, None);
    out
}

/// When the image a container database ran is not on this host (nor saved in the bundle), the
/// deep checks fall back to the host's throwaway cluster and the check list says so, naming the
/// image and why; with no host PostgreSQL either, one clear failed check names the database,
/// the image and what to install (exit 1, JSON still printed, no panic).
#[test]
fn deep_verify_falls_back_to_the_host_cluster_without_the_image() {
    let t = tempfile::tempdir().unwrap();
    let suffix: String =
        t.path().file_name().unwrap().to_string_lossy().chars().filter(char::is_ascii_alphanumeric).collect();
    let image = format!("n8nbk-absent-{}:1", suffix.to_lowercase());
    let bundle = bundle_claiming_image(t.path(), &image);

    let (code, report) = deep_verify(&bundle, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert!(checks(&report).iter().all(|c| c["ok"] == true), "{:#}", report["deep"]);
    let used = find(&report, "postgres shop: restored in the host's PostgreSQL");
    let text = used["check"].as_str().unwrap();
    assert!(text.contains(&format!("instead of a container of image {image}")), "{text}");
    assert!(
        text.contains("is not on this host") || text.contains("no Docker engine answers"),
        "the reason is given: {text}"
    );
    let rows = find(&report, "postgres shop: public.o rows");
    assert_eq!((rows["expected"].as_str(), rows["actual"].as_str()), (Some("11"), Some("11")));

    let (code, report) = deep_verify(&bundle, &[("PG_BIN", &no_pg_bin(t.path()))]);
    assert_eq!(code, 1, "{report:#}");
    let failed: Vec<&Value> = checks(&report).iter().filter(|c| c["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let f = failed[0];
    assert_eq!(f["check"], "postgres shop: a PostgreSQL server to restore into");
    let actual = f["actual"].as_str().unwrap();
    assert!(actual.contains(&image) && actual.contains("postgresql-15") && actual.contains("Docker"), "{actual}");
}

/// A bundle packed with `include_images = true`, verified on a host that no longer has the
/// database service's image: the image is `docker load`ed from the bundle, the dump restored in
/// it (no host PostgreSQL), and the loaded image removed again afterwards (the engine is left as
/// it was found), as is the container. Ignored by default: the saved image is the whole
/// PostgreSQL image (about 700 MB), which a debug build packs and verifies in about 15 minutes;
/// run it with `cargo test -p packer --test docker_verify -- --ignored` (or `--release`).
#[test]
#[ignore = "packs and verifies a 700 MB image (about 15 min in a debug build); run with --ignored"]
fn deep_verify_loads_the_bundles_image_and_removes_it_again() {
    if !engine() {
        return;
    }
    let mut p = Project::new("", "POSTGRES_USER=n8n\nPOSTGRES_PASSWORD=deep-load-pw\nPOSTGRES_DB=n8n\n");
    // An image of our own (a label on the local postgres image: a new id, shared layers), so it
    // can be removed from the engine before the verify without taking anything from anyone.
    let tag = format!("n8nbk-test-deep-{}:1", p.name);
    let mut build = Command::new("docker")
        .args(["build", "--quiet", "--tag", &tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut build.stdin.take().unwrap(),
        format!("FROM n8nbk-postgres:15\nLABEL n8nbk.test={}\n", p.name).as_bytes(),
    )
    .unwrap();
    let built = build.wait_with_output().unwrap();
    assert!(built.status.success(), "docker build: {}", String::from_utf8_lossy(&built.stderr));
    p.images.push(tag.clone());
    fs::write(p.dir.join("docker-compose.yml"), COMPOSE.replace("n8nbk-postgres:15-next", &tag)).unwrap();
    p.compose_ok(&["up", "-d"]);
    p.wait_for_postgres();
    p.psql("CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 5);");

    let t = tempfile::tempdir().unwrap();
    let compose_file = p.dir.join("docker-compose.yml");
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{out}\"\nname = \"load\"\ncompression_level = 1\n\n\
             [[postgres]]\nname = \"n8n\"\ncompose_service = \"postgres\"\ncompose_file = \"{f}\"\ncompose_project = \"{pr}\"\n\n\
             [[compose]]\nfile = \"{f}\"\nproject = \"{pr}\"\n\n[docker]\ninclude_images = true\n",
            out = t.path().join("out").display(),
            f = compose_file.display(),
            pr = p.name
        ),
    )
    .unwrap();
    let bundle = create(&cfg);
    p.compose_ok(&["down", "-v"]);
    let gone =
        |image: &str| !Command::new("docker").args(["image", "inspect", image]).output().unwrap().status.success();
    let id = inspect("image", "{{.Id}}", &tag);
    let rmi = Command::new("docker").args(["rmi", &tag]).output().unwrap();
    assert!(rmi.status.success(), "{}", String::from_utf8_lossy(&rmi.stderr));
    assert!(gone(&id), "image {id} is still on the engine");

    let (code, report) = deep_verify(&bundle, &[("PG_BIN", &no_pg_bin(t.path()))]);
    assert_eq!(code, 0, "{report:#}");
    assert!(checks(&report).iter().all(|c| c["ok"] == true), "{:#}", report["deep"]);
    let used = find(&report, &format!("restored in a throwaway container of image {tag}"));
    assert!(used["check"].as_str().unwrap().contains("loaded from the bundle"), "{used}");
    let items = find(&report, "postgres n8n: public.items rows");
    assert_eq!((items["expected"].as_str(), items["actual"].as_str()), (Some("5"), Some("5")));
    assert_container_removed(&report);
    assert!(gone(&tag) && gone(&id), "the image loaded for the verify is left on the engine");
}
