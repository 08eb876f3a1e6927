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
        .args(["--yes", "--no-install", "--start-services", "--root"])
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
        .args(["--yes", "--no-install", "--start-services", "--health-tries", "2", "--root"])
        .arg(&root)
        .assert()
        .code(exit::FAILED)
        .stdout(predicate::str::contains("not answering after the restore"))
        .stdout(predicate::str::contains("rolled back"));
    assert!(tree(&root).iter().all(|p| p.starts_with("var")), "only the checkpoint is left: {:?}", tree(&root));
    drop(listener);
}

/// An HTTP server in a thread that answers every request with `status` until the test ends.
fn http_server(status: &'static str) -> String {
    use std::io::{Read, Write};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    url
}

/// Regression (issue 8): an `http://` health check is answered by the restore's own HTTP client,
/// with no curl on PATH (a bare Debian host has none): 200 passes; 500 fails and rolls back.
#[test]
fn http_health_check_needs_no_curl() {
    let t = tempfile::tempdir().unwrap();
    let dir = bundle_with_health(t.path(), &http_server("200 OK"));
    let root = t.path().join("root");
    // PATH without curl: only a directory holding nothing.
    let empty = t.path().join("empty-path");
    fs::create_dir_all(&empty).unwrap();
    restore(&dir)
        .env("PATH", &empty)
        .args(["--yes", "--no-install", "--start-services", "--root"])
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::contains("HTTP 200"));

    let t2 = tempfile::tempdir().unwrap();
    let dir = bundle_with_health(t2.path(), &http_server("500 Internal Server Error"));
    let root = t2.path().join("root");
    restore(&dir)
        .env("PATH", &empty)
        .args(["--yes", "--no-install", "--start-services", "--health-tries", "2", "--root"])
        .arg(&root)
        .assert()
        .code(exit::FAILED)
        .stdout(predicate::str::contains("HTTP 500"))
        .stdout(predicate::str::contains("rolled back"));
}

/// Regression (issue 8): an `https://` health check goes through curl (the restore has no TLS
/// stack), so packer lists curl and ca-certificates in the bundle's requirements.
#[test]
fn https_health_check_requires_curl() {
    let t = tempfile::tempdir().unwrap();
    let dir = bundle_with_health(t.path(), "https://127.0.0.1:1/healthz");
    let req = fs::read_to_string(dir.join("requirements.txt")).unwrap();
    let lines: Vec<&str> = req.lines().collect();
    assert!(lines.contains(&"curl") && lines.contains(&"ca-certificates"), "{req}");
    let m: serde_json::Value = serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(m["requirements"].as_array().unwrap().iter().any(|p| p == "curl"), "{m}");
}

/// A bundle over `sample_tree` with these `[requirements]` and `[services]`.
fn bundle_with(t: &Path, packages: &[&str], start: &[&str], health: &[&str]) -> std::path::PathBuf {
    let src = sample_tree(t);
    let cfg = config(t, &src, &[], None);
    let list = |xs: &[&str]| xs.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(", ");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[requirements]\npackages = [{}]\n\n[services]\nstart = [{}]\nhealth = [{}]\n",
        list(packages),
        list(start),
        list(health)
    ));
    fs::write(&cfg, text).unwrap();
    extract(&create(&cfg), &t.join("x"))
}

/// Rewrites the extracted bundle's manifest.json as an attacker would, recomputing its digest
/// in checksums.sha256 so the bundle still verifies.
fn rewrite_manifest(dir: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut m);
    fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let (digest, _) = restorer::digest::sha256_file(&path).unwrap();
    let sums = fs::read_to_string(dir.join("checksums.sha256")).unwrap();
    let fixed: Vec<String> = sums
        .lines()
        .map(|l| if l.ends_with("  manifest.json") { format!("{digest}  manifest.json") } else { l.to_string() })
        .collect();
    fs::write(dir.join("checksums.sha256"), fixed.join("\n") + "\n").unwrap();
}

/// Regression (issue 8): package and service names from the manifest are data. A bundle whose
/// digests were recomputed around `requirements = ["--allow-unauthenticated"]` and
/// `services.start = ["-H"]` is refused, naming both entries, before anything is written.
#[test]
fn option_like_package_and_service_names_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = bundle_with(t.path(), &[], &[], &[]);
    rewrite_manifest(&dir, |m| {
        m["requirements"] = serde_json::json!(["nginx", "--allow-unauthenticated"]);
        m["services"]["start"] = serde_json::json!(["-H"]);
    });
    restore(&dir).arg("verify").assert().success();
    let root = t.path().join("root");
    for args in [&["--dry-run"][..], &["--yes"][..], &["--yes", "--install-packages", "--start-services"][..]] {
        restore(&dir)
            .args(args)
            .arg("--root")
            .arg(&root)
            .assert()
            .code(exit::REFUSED)
            .stderr(predicate::str::contains("\"--allow-unauthenticated\""))
            .stderr(predicate::str::contains("\"-H\""))
            .stderr(predicate::str::contains("Nothing was changed"));
        assert!(!root.exists(), "nothing written under {}", root.display());
    }
}

/// Regression (issue 8): a restore under a `--root` other than `/` installs no package and
/// starts no service of this host unless asked (`--install-packages`, `--start-services`); the
/// plan says so. The names here do not exist, so any attempt to install or start would fail.
#[test]
fn another_root_installs_and_starts_nothing_unless_asked() {
    let t = tempfile::tempdir().unwrap();
    let down = format!("tcp://{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let dir = bundle_with(t.path(), &["n8n-backup-test-no-such-package"], &["n8n-backup-test-no-such-unit"], &[&down]);
    let root = t.path().join("root");
    restore(&dir)
        .args(["--dry-run", "--root"])
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::contains("NOT installed (--root is not /"))
        .stdout(predicate::str::contains("--install-packages"))
        .stdout(predicate::str::contains("Services NOT started, health checks NOT run (--root is not /"))
        .stdout(predicate::str::contains("--start-services"));
    restore(&dir).args(["--yes", "--health-tries", "1", "--root"]).arg(&root).assert().success();
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("restore-report.json")).unwrap()).unwrap();
    let step = |name: &str| report["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).cloned().unwrap();
    assert_eq!(step("prerequisites")["result"], "skipped", "{report}");
    assert!(step("prerequisites")["detail"].as_str().unwrap().contains("--root is not /"), "{report}");
    assert_eq!(step("services")["result"], "skipped", "{report}");
    assert!(report["health"].as_array().unwrap().is_empty(), "{report}");

    // Asked explicitly: starting is attempted. Either it fails (no such unit) and the restore
    // rolls back, or, on a host whose policy-rc.d forbids starts, the pre-flight refuses: both
    // only happen when the restore means to start the service.
    let root2 = t.path().join("root2");
    let out = restore(&dir)
        .args(["--yes", "--no-install", "--start-services", "--health-tries", "1", "--root"])
        .arg(&root2)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(exit::FAILED) => {
            assert!(text.contains("n8n-backup-test-no-such-unit") && text.contains("rolled back"), "{text}")
        }
        Some(exit::REFUSED) => assert!(text.contains("policy-rc.d forbids starting services"), "{text}"),
        other => panic!("exit {other:?}: {text}"),
    }
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
