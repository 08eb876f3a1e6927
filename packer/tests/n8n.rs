//! The n8n profile against n8n's real schema (fixtures/n8n/schema-2.8.4.sql, made by n8n's own
//! migrations) in a throwaway PostgreSQL, and against n8n's SQLite tables: inventory, checksums
//! recomputed independently with Node's JSON.stringify, the encryption key proven, deep
//! verification catching altered bundles, one workflow back, and the restore's n8n safety checks.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use assert_cmd::prelude::*;
use common::*;
use packer::pg_cluster::Cluster;
use predicates::prelude::*;
use restorer::exit;
use serde_json::Value;

const KEY: &str = "n8n-test-key-Ünïcødé-0123";

fn seed(c: &Cluster, db: &str) {
    c.psql("postgres", &format!("CREATE DATABASE {db}")).unwrap();
    c.psql_file(db, &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/n8n/schema-2.8.4.sql")).unwrap();
    let slack = encrypt(r#"{"accessToken":"xoxb-test"}"#, KEY);
    let http = encrypt(r#"{"user":"u","password":"p"}"#, KEY);
    let big_nodes: Vec<Value> = (0..60)
        .map(|i| serde_json::json!({"name": format!("Set {i:02}"), "type": "n8n-nodes-base.set", "typeVersion": 3.4, "position": [i * 200, 0.5], "parameters": {"values": {"n": i, "f": 2.0, "big": 1e21}}, "id": format!("n{i}")}))
        .collect();
    let sql = format!(
        r#"
INSERT INTO migrations (id, timestamp, name) VALUES (1, 1587669153312, 'InitialMigration1587669153312'), (2, 1765000000000, 'LatestMigration1765000000000');
INSERT INTO tag_entity (id, name) VALUES ('tagA', 'reports'), ('tagB', 'ops ✓');
INSERT INTO workflow_entity (id, name, active, nodes, connections, settings, "versionId", "isArchived") VALUES
 ('wfActive00000001', 'Daily report ☀ — ünïcødé', true,
  '[{{"name":"Post","type":"n8n-nodes-base.slack","typeVersion":2.0,"position":[220,0],"parameters":{{"text":"hi"}},"credentials":{{"slackApi":{{"id":"credSlack0000001","name":"Slack account"}}}}}},{{"name":"Every day","type":"n8n-nodes-base.scheduleTrigger","typeVersion":1.2,"position":[0,0],"parameters":{{}}}}]',
  '{{"Every day":{{"main":[[{{"node":"Post","type":"main","index":0}}]]}}}}', '{{"executionOrder":"v1"}}', 'aaaaaaaa-0000-0000-0000-000000000001', false),
 ('wfBig00000000002', 'Big one', false, '{big}', '{{}}', '{{}}', 'aaaaaaaa-0000-0000-0000-000000000002', false),
 ('wfArchived000003', 'Archived', false, '[]', '{{}}', NULL, 'aaaaaaaa-0000-0000-0000-000000000003', true);
INSERT INTO workflows_tags VALUES ('wfActive00000001', 'tagA'), ('wfActive00000001', 'tagB'), ('wfBig00000000002', 'tagB');
INSERT INTO credentials_entity (id, name, data, type) VALUES ('credSlack0000001', 'Slack account', '{slack}', 'slackApi'), ('credHttp00000002', 'Internal API', '{http}', 'httpBasicAuth');
"#,
        big = serde_json::to_string(&big_nodes).unwrap().replace('\'', "''"),
    );
    c.psql(db, &sql).unwrap();
}

/// A deployment tree whose .env holds `key`, and a configuration packing the n8n database.
fn deployment(t: &Path, c: &Cluster, key: Option<&str>) -> (PathBuf, PathBuf) {
    let src = t.join("src");
    fs::create_dir_all(src.join("opt/n8n")).unwrap();
    let mut env = String::from("DB_TYPE=postgresdb\n");
    if let Some(k) = key {
        env += &format!("N8N_ENCRYPTION_KEY={k}\n");
    }
    fs::write(src.join("opt/n8n/.env"), env).unwrap();
    fs::write(
        src.join("opt/n8n/docker-compose.yaml"),
        "services:\n  n8n:\n    image: docker.n8n.io/n8nio/n8n:2.8.4\n    env_file: .env\n",
    )
    .unwrap();
    let cfg = t.join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"n8n\"\n[[postgres]]\nname = \"n8n\"\nurl = \"{}\"\npg_bin = \"{}\"\nprofile = \"n8n\"\n[[files]]\nkind = \"config\"\npaths = [\"{}\"]\n",
            t.join("out").display(),
            c.url("n8n"),
            c.bin().display(),
            src.join("opt/n8n").display()
        ),
    )
    .unwrap();
    (cfg, src)
}

/// sha256 of the canonical JSON of {connections, nodes sorted by name}, computed by Node.js.
fn node_checksum(doc: &Value) -> String {
    let script = r#"
const crypto = require('crypto');
let input = ''; process.stdin.on('data', d => input += d).on('end', () => {
  const w = JSON.parse(input);
  const sort = v => Array.isArray(v) ? v.map(sort) : (v && typeof v === 'object')
    ? Object.keys(v).sort().reduce((o, k) => (o[k] = sort(v[k]), o), {}) : v;
  const nodes = [...w.nodes].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const text = JSON.stringify(sort({connections: w.connections, nodes}));
  process.stdout.write(crypto.createHash('sha256').update(text, 'utf8').digest('hex'));
});"#;
    let mut child =
        Command::new("node").args(["-e", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("node");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), doc.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn show_json(cfg: &Path, bundle: &Path, flag: &str) -> Value {
    let out = packer().arg("--config").arg(cfg).arg("show").arg(bundle).args([flag, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The inventory from the real schema: workflows with archived flags and tags, credentials
/// without data, checksums equal to Node's, the key proven; deep verification passes; a
/// restore into a second cluster validates that a credential decrypts; one workflow comes back.
#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn n8n_on_postgres_inventory_verify_restore() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    seed(&source, "n8n");
    let (cfg, src) = deployment(t.path(), &source, Some(KEY));
    let bundle = create(&cfg);

    let wfs = show_json(&cfg, &bundle, "--workflows");
    let wfs = wfs.as_array().unwrap();
    assert_eq!(wfs.len(), 3);
    let active = wfs.iter().find(|w| w["id"] == "wfActive00000001").unwrap();
    assert_eq!(active["name"], "Daily report ☀ — ünïcødé");
    assert_eq!(active["tags"], serde_json::json!(["ops ✓", "reports"]));
    assert_eq!(active["nodes"], 2);
    assert_eq!(wfs.iter().find(|w| w["id"] == "wfArchived000003").unwrap()["archived"], true);
    let creds = show_json(&cfg, &bundle, "--credentials");
    assert_eq!(creds.as_array().unwrap().len(), 2);
    assert!(!creds.to_string().contains("U2FsdGVk"), "no encrypted data in the listing");
    packer()
        .arg("--config")
        .arg(&cfg)
        .arg("show")
        .arg(&bundle)
        .args(["--workflows", "--search", "REPORT", "--active"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1 workflow(s)"));
    packer()
        .arg("--config")
        .arg(&cfg)
        .arg("show")
        .arg(&bundle)
        .arg("--credentials")
        .assert()
        .success()
        .stdout(predicate::str::contains("proven to decrypt"));

    let dir = extract(&bundle, &t.path().join("x"));
    let manifest: Value = serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["n8n"]["schema_level"], "LatestMigration1765000000000");
    assert_eq!(manifest["n8n"]["release"], "2.8.4");
    assert_eq!(manifest["n8n"]["encryption_key"]["proven"], true);
    assert!(
        !fs::read_to_string(dir.join("manifest.json")).unwrap().contains(KEY),
        "the key itself is never in the manifest"
    );
    for w in wfs {
        let doc: Value =
            serde_json::from_str(&fs::read_to_string(dir.join(w["entry"].as_str().unwrap())).unwrap()).unwrap();
        assert_eq!(w["checksum"].as_str().unwrap(), node_checksum(&doc), "checksum of {}", w["id"]);
    }

    packer()
        .arg("--config")
        .arg(&cfg)
        .args(["verify", "--deep"])
        .arg(&bundle)
        .assert()
        .success()
        .stdout(predicate::str::contains("deep:"));

    // Restore into a second cluster and a root: the restored key decrypts a restored credential.
    let target = Cluster::start().unwrap();
    let root = t.path().join("root");
    restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--postgres-url", &target.url("postgres"), "--root"])
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::contains("RESTORED"));
    let report: Value = serde_json::from_str(&fs::read_to_string(dir.join("restore-report.json")).unwrap()).unwrap();
    assert!(report["validation"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["check"].as_str().unwrap().contains("decrypts") && c["ok"] == true));

    // One workflow, by name, to a file in import shape.
    let out = t.path().join("wf.json");
    restore(&dir).args(["workflow", "Daily report ☀ — ünïcødé", "--to-file"]).arg(&out).assert().success();
    let doc: Value = serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["id"], "wfActive00000001");
    assert_eq!(doc["tags"].as_array().unwrap().len(), 2);
    restore(&dir).args(["workflow", "Daily report ☀ — ünïcødé", "--to-file"]).arg(&out).assert().code(exit::REFUSED);
    restore(&dir).args(["list", "--workflows"]).assert().success().stdout(predicate::str::contains("wfBig00000000002"));

    // A target whose .env holds another key: refused before anything changes, --force goes on.
    let root2 = t.path().join("root2");
    let env2 = root2.join(src.strip_prefix("/").unwrap()).join("opt/n8n/.env");
    fs::create_dir_all(env2.parent().unwrap()).unwrap();
    fs::write(&env2, "N8N_ENCRYPTION_KEY=some-other-key\n").unwrap();
    let other = Cluster::start().unwrap();
    let restore_root2 = |extra: &[&str]| {
        let mut c = restore(&dir);
        c.args(["--yes", "--overwrite", "--no-install", "--no-services", "--postgres-url", &other.url("postgres")]);
        c.args(extra).arg("--root").arg(&root2);
        c
    };
    restore_root2(&[]).assert().code(exit::REFUSED).stderr(predicate::str::contains("fingerprint"));
    assert_eq!(fs::read_to_string(&env2).unwrap(), "N8N_ENCRYPTION_KEY=some-other-key\n");
    // An older n8n in the target's compose file is refused too.
    let compose2 = env2.with_file_name("docker-compose.yaml");
    fs::write(&env2, format!("N8N_ENCRYPTION_KEY={KEY}\n")).unwrap();
    fs::write(&compose2, "services:\n  n8n:\n    image: docker.n8n.io/n8nio/n8n:1.100.0\n").unwrap();
    restore_root2(&[]).assert().code(exit::REFUSED).stderr(predicate::str::contains("older"));
    restore_root2(&["--force"]).assert().success();
}

/// `--database n8n=n8n_check` beside a live n8n whose files hold another key: no key or version
/// conflict (no file is touched), nothing is written under --root, and the credential check
/// decrypts a credential of n8n_check with the key of the bundle's own copy of the .env.
#[test]
fn n8n_database_beside_the_live_one_checks_credentials_under_its_new_name() {
    let t = tempfile::tempdir().unwrap();
    let source = Cluster::start().unwrap();
    seed(&source, "n8n");
    let (cfg, src) = deployment(t.path(), &source, Some(KEY));
    let dir = extract(&create(&cfg), &t.path().join("x"));
    let target = Cluster::start().unwrap();
    target.psql("postgres", "CREATE DATABASE n8n").unwrap();
    target.psql("n8n", "CREATE TABLE live (x int); INSERT INTO live VALUES (7);").unwrap();
    let root = t.path().join("root");
    let env = root.join(src.strip_prefix("/").unwrap()).join("opt/n8n/.env");
    fs::create_dir_all(env.parent().unwrap()).unwrap();
    fs::write(&env, "N8N_ENCRYPTION_KEY=the-live-key\n").unwrap();
    let before = tree(&root);

    restore(&dir)
        .args(["--yes", "--database", "n8n=n8n_check", "--postgres-url", &target.url("postgres"), "--checkpoint-dir"])
        .arg(t.path().join("cp"))
        .arg("--root")
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::contains("RESTORED"));
    assert_eq!(tree(&root), before, "no file written under --root");
    assert_eq!(fs::read_to_string(&env).unwrap(), "N8N_ENCRYPTION_KEY=the-live-key\n");
    assert_eq!(target.psql("n8n", "SELECT x FROM live").unwrap().trim(), "7");
    assert_eq!(target.psql("n8n_check", "SELECT count(*) FROM credentials_entity").unwrap().trim(), "2");
    let report: Value = serde_json::from_str(&fs::read_to_string(dir.join("restore-report.json")).unwrap()).unwrap();
    let checks = report["validation"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["check"].as_str().unwrap().contains("decrypts") && c["ok"] == true), "{checks:#?}");
    assert!(checks
        .iter()
        .filter(|c| !c["check"].as_str().unwrap().starts_with("n8n:"))
        .all(|c| c["check"].as_str().unwrap().starts_with("postgres n8n_check: ")));
}

/// A key that does not decrypt the credentials fails the backup with a clear error and leaves
/// no bundle; a missing key is a loud warning recorded in the manifest.
#[test]
fn encryption_key_is_proven_or_flagged() {
    let t = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    seed(&c, "n8n");
    let (cfg, _) = deployment(t.path(), &c, Some("the-wrong-key"));
    packer()
        .arg("--config")
        .arg(&cfg)
        .arg("create")
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not decrypt credential"))
        .stderr(predicate::str::contains("the-wrong-key").not());
    assert!(!fs::read_dir(t.path().join("out")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tar.gz")));

    let t2 = tempfile::tempdir().unwrap();
    let (cfg, _) = deployment(t2.path(), &c, None);
    let out = packer().arg("--config").arg(&cfg).arg("create").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("N8N_ENCRYPTION_KEY IS NOT IN THIS BUNDLE"));
    let bundle = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let m = restorer::unpack::read_manifest(&bundle).unwrap();
    assert!(m.warnings.iter().any(|w| w.contains("2 credentials will be unreadable")));
    assert!(m.n8n.unwrap().encryption_key.fingerprint.is_none());
}

/// Rewrites a bundle's manifest (keeping the checksum list consistent), so the digests pass
/// and only deep verification can tell.
fn tamper(bundle: &Path, t: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    let dir = extract(bundle, &t.join(format!("tamper-{}", rand_suffix())));
    let mut m: Value = serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    edit(&mut m);
    fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let (d, _) = restorer::digest::sha256_file(&dir.join("manifest.json")).unwrap();
    let sums = fs::read_to_string(dir.join("checksums.sha256")).unwrap();
    let sums: String = sums
        .lines()
        .map(|l| if l.ends_with("  manifest.json") { format!("{d}  manifest.json\n") } else { format!("{l}\n") })
        .collect();
    fs::write(dir.join("checksums.sha256"), sums).unwrap();
    repack(bundle, &dir, &t.join(format!("tampered-{}.n8n_backup.tar.gz", rand_suffix())))
}

/// Packs `dir` again with the entries in the order `like` has them (manifest first).
fn repack(like: &Path, dir: &Path, out: &Path) -> PathBuf {
    let entries = String::from_utf8(Command::new("tar").arg("tzf").arg(like).output().unwrap().stdout).unwrap();
    let st = Command::new("tar").arg("czf").arg(out).arg("-C").arg(dir).args(entries.lines()).status().unwrap();
    assert!(st.success());
    out.to_path_buf()
}

fn rand_suffix() -> String {
    format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

/// Deep verification fails, naming the culprit, for a damaged dump, a table the dump lacks, and
/// a workflow whose nodes differ from what the manifest recorded.
#[test]
fn deep_verification_catches_altered_bundles() {
    let t = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    seed(&c, "n8n");
    let (cfg, _) = deployment(t.path(), &c, Some(KEY));
    let bundle = create(&cfg);
    // A deep check failing on an intact bundle is a failure (exit 1); bad digests are corruption (3).
    let verify =
        |b: &Path, code: i32| packer().arg("--config").arg(&cfg).args(["verify", "--deep"]).arg(b).assert().code(code);

    // A table the manifest claims but the dump does not hold.
    let missing = tamper(&bundle, t.path(), |m| {
        m["postgres"][0]["tables"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"schema": "public", "name": "ghost_table", "rows": 5}));
    });
    verify(&missing, packer::exit::FAILED)
        .stdout(predicate::str::contains("FAIL  postgres n8n: public.ghost_table rows"));
    // A workflow whose nodes were altered after the manifest was written.
    let altered = tamper(&bundle, t.path(), |m| {
        m["n8n"]["workflows"][0]["checksum"] = Value::String("0".repeat(64));
    });
    verify(&altered, packer::exit::FAILED).stdout(predicate::str::contains("FAIL  n8n workflow"));
    // A damaged byte in the dump: the digest names it before any restore is tried.
    let dir = extract(&bundle, &t.path().join("dmg"));
    let dump = dir.join("databases/n8n.dump");
    let mut bytes = fs::read(&dump).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&dump, bytes).unwrap();
    let damaged = repack(&bundle, &dir, &t.path().join("damaged.n8n_backup.tar.gz"));
    verify(&damaged, packer::exit::CORRUPT).stdout(predicate::str::contains("BAD  databases/n8n.dump"));
}

/// n8n's SQLite fixture and its key's .env in `dir`; returns the database and a configuration
/// packing both (relative to `dir`).
fn sqlite_deployment(dir: &Path) -> (PathBuf, String) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/deployment");
    let db = dir.join("database.sqlite");
    fs::copy(fixtures.join("home/node/.n8n/database.sqlite"), &db).unwrap();
    fs::write(dir.join(".env"), "N8N_ENCRYPTION_KEY=fixture-key-0123456789abcdef\n").unwrap();
    let text = "[bundle]\noutput_dir = \"out\"\n[[sqlite]]\nname = \"n8n\"\npath = \"database.sqlite\"\nprofile = \"n8n\"\n[[files]]\nkind = \"config\"\npaths = [\".env\"]\n";
    (db, text.to_string())
}

/// n8n's default SQLite database: inventory and deep verification from the copy.
#[test]
fn n8n_on_sqlite() {
    let t = tempfile::tempdir().unwrap();
    let (_, text) = sqlite_deployment(t.path());
    let cfg = t.path().join("packer.toml");
    fs::write(&cfg, text).unwrap();
    let bundle = create(&cfg);
    let wfs = show_json(&cfg, &bundle, "--workflows");
    assert_eq!(wfs.as_array().unwrap().len(), 3);
    assert!(wfs.as_array().unwrap().iter().any(|w| w["archived"] == true && w["name"] == "Old import (archived)"));
    let dir = extract(&bundle, &t.path().join("x"));
    for w in wfs.as_array().unwrap() {
        let doc: Value =
            serde_json::from_str(&fs::read_to_string(dir.join(w["entry"].as_str().unwrap())).unwrap()).unwrap();
        assert_eq!(w["checksum"].as_str().unwrap(), node_checksum(&doc));
    }
    packer().arg("--config").arg(&cfg).args(["verify", "--deep"]).arg(&bundle).assert().success();
}

/// `[services] n8n_url` makes the restore ask n8n for its workflows with a key of the restored
/// database: packer warns while one can still be made when the database holds none, stays quiet
/// when it holds one, and refuses the key without an n8n database.
#[test]
fn n8n_url_warns_when_the_database_holds_no_api_key() {
    let t = tempfile::tempdir().unwrap();
    let (db, text) = sqlite_deployment(t.path());
    let text = text + "[services]\nn8n_url = \"http://127.0.0.1:5678\"\n";
    let cfg = t.path().join("packer.toml");
    fs::write(&cfg, &text).unwrap();
    let manifest = |bundle: &Path| -> Value {
        let dir = extract(bundle, &t.path().join(format!("x{}", rand_suffix())));
        serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
    };
    let m = manifest(&create(&cfg));
    assert_eq!(m["services"]["n8n_url"], "http://127.0.0.1:5678");
    let warned =
        |m: &Value| m["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("holds no API key"));
    assert!(warned(&m), "{}", m["warnings"]);

    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        r#"CREATE TABLE user_api_keys (id TEXT, "apiKey" TEXT); INSERT INTO user_api_keys VALUES ('1', 'k');"#,
    )
    .unwrap();
    drop(c);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new bundle name (seconds)
    let m = manifest(&create(&cfg));
    assert!(!warned(&m), "{}", m["warnings"]);

    fs::write(&cfg, text.replace("profile = \"n8n\"\n", "")).unwrap();
    packer()
        .arg("--config")
        .arg(&cfg)
        .arg("create")
        .assert()
        .failure()
        .stderr(predicates::str::contains("n8n_url is set but no database has profile = \"n8n\""));
}
