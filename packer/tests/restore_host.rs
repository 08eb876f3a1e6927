//! The host side of a restore: health checks after the services start (a failing one rolls the
//! restore back), and an interrupted restore rolled back before the next one starts.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::Path;

use assert_cmd::prelude::*;
use common::*;
use predicates::prelude::*;
use restorer::exit;

fn bundle_with_health(t: &Path, health: &str) -> std::path::PathBuf {
    let src = sample_tree(t);
    let cfg = config(t, &src, &[], None);
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("\n[services]\nstart = []\nhealth = [\"{health}\"]\n"));
    fs::write(&cfg, text).unwrap();
    extract(&create(&cfg), &t.join("x"))
}

/// A health check that answers: the restore passes and reports it. One that does not: the
/// restore fails, everything is rolled back, the report says which check failed.
#[test]
fn health_checks_gate_the_restore() {
    let t = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = format!("tcp://{}", listener.local_addr().unwrap());
    let dir = bundle_with_health(t.path(), &up);
    let root = t.path().join("root");
    restore(&dir)
        .args(["--yes", "--no-install", "--root"])
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::contains("Health checks"))
        .stdout(predicate::str::contains("accepts connections"));
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("restore-report.json")).unwrap()).unwrap();
    assert_eq!(report["health"][0]["ok"], true);

    let t2 = tempfile::tempdir().unwrap();
    let down = format!("tcp://{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()); // closed when dropped
    let dir = bundle_with_health(t2.path(), &down);
    let root = t2.path().join("root");
    restore(&dir)
        .args(["--yes", "--no-install", "--health-tries", "2", "--root"])
        .arg(&root)
        .assert()
        .code(exit::FAILED)
        .stdout(predicate::str::contains("not answering after the restore"))
        .stdout(predicate::str::contains("rolled back"));
    assert!(tree(&root).iter().all(|p| p.starts_with("var")), "only the checkpoint is left: {:?}", tree(&root));
    drop(listener);
}

/// A restore cut short (its journal has no end mark, as after a power cut) is rolled back by the
/// next run, which then restores from a clean state.
#[test]
fn interrupted_restore_is_rolled_back_first() {
    let t = tempfile::tempdir().unwrap();
    let src = sample_tree(t.path());
    let dir = extract(&create(&config(t.path(), &src, &[], None)), &t.path().join("x"));
    let root = t.path().join("root");
    let cp = t.path().join("cps").join("first");
    restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--checkpoint-dir"])
        .arg(&cp)
        .arg("--root")
        .arg(&root)
        .assert()
        .success();
    // Simulate the power cut: drop the end mark, and leave a file the run had half-changed.
    let journal = cp.join("checkpoint.jsonl");
    let text = fs::read_to_string(&journal).unwrap();
    let cut: Vec<&str> = text.lines().filter(|l| !l.contains("\"completed\"")).collect();
    fs::write(&journal, cut.join("\n") + "\n").unwrap();
    let env = root.join(src.strip_prefix("/").unwrap()).join("opt/n8n/.env");
    fs::write(&env, "HALF WRITTEN").unwrap();

    restore(&dir)
        .args(["--dry-run", "--no-install", "--no-services", "--checkpoint-dir"])
        .arg(t.path().join("cps").join("second"))
        .arg("--root")
        .arg(&root)
        .assert()
        .stdout(predicate::str::contains("interrupted restore"));
    restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--checkpoint-dir"])
        .arg(t.path().join("cps").join("second"))
        .arg("--root")
        .arg(&root)
        .assert()
        .success()
        .stderr(predicate::str::contains("interrupted restore"));
    assert_eq!(fs::read(&env).unwrap(), fs::read(src.join("opt/n8n/.env")).unwrap());
    assert!(restorer::checkpoint::Checkpoint::load(&cp).unwrap().rolled_back);
}
