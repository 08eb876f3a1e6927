//! The unattended path, driven through the real binary: catalog, retention applied, protection,
//! pending deletion, locks, notifications to a real HTTP server, status, critical space, the
//! daemon and its signals, the systemd timer.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use chrono::{DateTime, Utc};
use common::*;
use packer::catalog::Catalog;
use packer::exit;
use packer::retention::Source;
use predicates::prelude::*;

/// A sample tree and its configuration with extra TOML appended. Returns (config, out dir).
fn setup(t: &Path, extra: &str) -> (PathBuf, PathBuf) {
    let src = sample_tree(t);
    let cfg = config(t, &src, &[], None);
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str(extra);
    fs::write(&cfg, text).unwrap();
    (cfg, t.join("out"))
}

fn packer_cfg(cfg: &Path) -> Command {
    let mut c = packer();
    c.arg("--config").arg(cfg);
    c
}

fn json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Adds copies of a real bundle to the catalog as if made at other times (bundle names have
/// one-second resolution, so a test cannot make dozens of real ones quickly).
fn fake_history(out: &Path, real: &Path, times: &[&str]) -> Vec<i64> {
    let (catalog, _) = Catalog::open(out).unwrap();
    let mut manifest = restorer::unpack::read_manifest(real).unwrap();
    times
        .iter()
        .map(|t| {
            let at: DateTime<Utc> = DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
            let name = restorer::layout::bundle_file_name("test", at);
            fs::copy(real, out.join(&name)).unwrap();
            fs::write(out.join(format!("{name}.sha256")), "x").unwrap();
            manifest.created_at = at;
            catalog.insert(&name, &manifest, 1000, &"0".repeat(64), Source::Scheduled).unwrap()
        })
        .collect()
}

/// Bundles are indexed as they are made; list and show answer from the catalog; a lost or
/// damaged catalog is rebuilt from the bundles; a vanished file is marked missing; leftovers of
/// a crash are removed by the next run.
#[test]
fn catalog_follows_the_bundles() {
    let t = tempfile::tempdir().unwrap();
    let (cfg, out) = setup(t.path(), "");
    let first = create(&cfg);
    let listed = json(packer_cfg(&cfg).args(["list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["source"], "manual");
    assert_eq!(listed[0]["status"], "ok");
    let id = listed[0]["id"].as_i64().unwrap().to_string();
    packer_cfg(&cfg).args(["show", &id]).assert().success().stdout(predicate::str::contains("events"));

    // A crash left these behind: the next create removes them.
    fs::write(out.join("backup_20200101000000.test_backup.tar.gz.partial"), "half").unwrap();
    fs::create_dir(out.join(".packer-spool-abc")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    create(&cfg);
    assert!(!out.join("backup_20200101000000.test_backup.tar.gz.partial").exists());
    assert!(!out.join(".packer-spool-abc").exists());

    // Damaged catalog: rebuilt, reported, nothing lost.
    fs::write(out.join("catalog.sqlite"), vec![0x42; 8192]).unwrap();
    packer_cfg(&cfg)
        .arg("list")
        .assert()
        .success()
        .stderr(predicate::str::contains("rebuilt"))
        .stdout(predicate::str::contains("2 bundle(s)"));
    packer_cfg(&cfg)
        .args(["catalog", "rebuild"])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 bundle(s) indexed"));

    fs::remove_file(&first).unwrap();
    let listed = json(packer_cfg(&cfg).args(["list", "--json"]));
    assert!(listed.as_array().unwrap().iter().any(|b| b["status"] == "missing"));
    packer_cfg(&cfg).arg("status").assert().code(exit::FAILED).stdout(predicate::str::contains("missing"));
}

/// prune --dry-run explains every bundle and changes nothing; --at simulates another time;
/// prune deletes what no rule keeps (file and sidecar), never a protected bundle; delete refuses
/// a protected bundle and needs --yes without a terminal.
#[test]
fn retention_is_previewed_then_applied() {
    let t = tempfile::tempdir().unwrap();
    let (cfg, out) = setup(t.path(), "\n[retention]\nkeep_last = 2\nkeep_monthly = 2\n");
    let real = create(&cfg);
    let ids = fake_history(
        &out,
        &real,
        &["2026-01-05T02:00:00Z", "2026-01-20T02:00:00Z", "2026-02-10T02:00:00Z", "2026-03-01T02:00:00Z"],
    );
    packer_cfg(&cfg).args(["protect", &ids[0].to_string()]).assert().success();

    let before = tree(&out);
    let plan = json(packer_cfg(&cfg).args(["prune", "--dry-run", "--json"]));
    assert_eq!(tree(&out), before, "dry run changes nothing");
    let action = |id: i64| {
        plan.as_array().unwrap().iter().find(|l| l["bundle"]["id"] == id).unwrap()["action"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(action(ids[0]), "keep"); // protected
    assert_eq!(action(ids[1]), "delete"); // January's older one: no rule
    assert_eq!(action(ids[2]), "delete"); // February: keep_monthly 2 = this month (real) + March
    assert_eq!(action(ids[3]), "keep");
    let reasons = plan.as_array().unwrap().iter().find(|l| l["bundle"]["id"] == ids[0]).unwrap()["decision"]["reasons"]
        .to_string();
    assert!(reasons.contains("protected"), "{reasons}");

    // Simulated in 2020: every bundle is newer than the evaluation time, so all are kept.
    let sim = json(packer_cfg(&cfg).args(["prune", "--dry-run", "--json", "--at", "2020-01-01T00:00:00Z"]));
    assert!(sim.as_array().unwrap().iter().all(|l| l["action"] == "keep"));
    packer_cfg(&cfg)
        .args(["prune", "--dry-run", "--at", "yesterday"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("RFC 3339"));

    packer_cfg(&cfg).arg("prune").assert().success().stdout(predicate::str::contains("2 deleted"));
    let names: Vec<String> =
        fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains("20260120") || n.contains("20260210")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("20260105")), "protected kept");
    assert_eq!(json(packer_cfg(&cfg).args(["list", "--json"])).as_array().unwrap().len(), 3);

    packer_cfg(&cfg)
        .args(["delete", &ids[0].to_string(), "--yes"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("protected"));
    packer_cfg(&cfg)
        .args(["delete", &ids[3].to_string()])
        .stdin(Stdio::null())
        .assert()
        .failure()
        .stderr(predicate::str::contains("--yes"));
    packer_cfg(&cfg).args(["delete", &ids[3].to_string(), "--yes"]).assert().success();
    assert!(!fs::read_dir(&out).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("20260301")));
}

/// With notify_before_hours, bundles due for deletion are marked and announced first, deleted
/// once the window has passed; `packer keep` cancels.
#[test]
fn pending_deletion_window() {
    let t = tempfile::tempdir().unwrap();
    let events = t.path().join("events.jsonl");
    let extra = format!(
        "\n[retention]\nkeep_last = 1\nnotify_before_hours = 24\n[notify]\ncommand = \"cat >> {}; echo >> {}\"\nlevel = \"info\"\n",
        events.display(),
        events.display()
    );
    let (cfg, out) = setup(t.path(), &extra);
    let real = create(&cfg);
    let ids = fake_history(&out, &real, &["2026-01-05T02:00:00Z", "2026-01-06T02:00:00Z"]);
    packer_cfg(&cfg).arg("prune").assert().success();
    let listed = json(packer_cfg(&cfg).args(["list", "--json"]));
    assert_eq!(listed.as_array().unwrap().iter().filter(|b| b["status"] == "pending-deletion").count(), 2);
    assert!(fs::read_to_string(&events).unwrap().contains("pending_deletion"));

    packer_cfg(&cfg).args(["keep", &ids[1].to_string()]).assert().success();
    // Two days later: the window has passed for the one still marked.
    let later = (Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    packer_cfg(&cfg).args(["prune", "--at", &later]).assert().success();
    let listed = json(packer_cfg(&cfg).args(["list", "--json"]));
    let ids_left: Vec<i64> = listed.as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert!(!ids_left.contains(&ids[0]) && ids_left.contains(&ids[1]), "{ids_left:?}");
}

/// A minimal real HTTP server on 127.0.0.1 that records request bodies.
fn http_server() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let mut s = stream.unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
            let _ = tx.send(String::from_utf8(body).unwrap());
        }
    });
    (url, rx)
}

/// Success and failure reach a real webhook in the configured shape; a webhook that does not
/// answer never fails the backup.
#[test]
fn notifications_reach_a_real_webhook() {
    let t = tempfile::tempdir().unwrap();
    let (url, rx) = http_server();
    let (cfg, _) = setup(t.path(), &format!("\n[notify]\nwebhook = \"{url}\"\nformat = \"slack\"\nlevel = \"info\"\n"));
    create(&cfg);
    let body: serde_json::Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert!(body["text"].as_str().unwrap().contains("written"), "{body}");

    // A source vanished: the failure is notified with the path in it.
    let text = fs::read_to_string(&cfg).unwrap();
    let src_db = text
        .lines()
        .find(|l| l.starts_with("path = "))
        .unwrap()
        .trim_start_matches("path = ")
        .trim_matches('"')
        .to_string();
    fs::rename(&src_db, format!("{src_db}.moved")).unwrap();
    packer_cfg(&cfg).arg("create").assert().failure();
    let body: serde_json::Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert!(
        body["text"].as_str().unwrap().contains("PROBLEM") && body["text"].as_str().unwrap().contains("app.db"),
        "{body}"
    );
    fs::rename(format!("{src_db}.moved"), &src_db).unwrap();

    // Nobody listening: the backup still succeeds, the failed notification is logged.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    fs::write(&cfg, text.replace(&url, &format!("http://{closed}/hook"))).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    packer_cfg(&cfg).arg("create").assert().success().stderr(predicate::str::contains("notification failed"));
}

/// status: healthy after a success, exit 1 when the last success is older than alert_after,
/// and the last failure is reported.
#[test]
fn status_for_monitoring() {
    let t = tempfile::tempdir().unwrap();
    let (cfg, _) = setup(t.path(), "\n[schedule]\ncron = \"0 2 * * *\"\nalert_after = \"26h\"\n");
    packer_cfg(&cfg).arg("status").assert().failure();
    create(&cfg);
    let s = json(packer_cfg(&cfg).args(["status", "--json"]));
    assert_eq!(s["healthy"], true, "{s}");
    assert_eq!(s["severity"], "ok", "{s}");
    assert_eq!(s["bundles"], 1);
    assert!(s["next_run"].as_str().unwrap().contains("T02:00:00"));
    assert!(s["free_space"].as_u64().unwrap() > 0);

    let text = fs::read_to_string(&cfg).unwrap().replace("alert_after = \"26h\"", "alert_after = \"0s\"");
    fs::write(&cfg, &text).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    packer_cfg(&cfg)
        .arg("status")
        .assert()
        .code(exit::FAILED)
        .stdout(predicate::str::contains("ATTENTION"))
        .stdout(predicate::str::contains("alert_after"));
}

/// A lock held by a live process (flock) stops a second run naming its holder; the record a
/// dead run left behind does not hold anything: the next run goes on, with a warning and a
/// notification that the previous run died.
#[test]
fn locks() {
    let t = tempfile::tempdir().unwrap();
    let events = t.path().join("events.jsonl");
    let (cfg, out) = setup(t.path(), &format!("\n[notify]\ncommand = \"cat >> {}\"\n", events.display()));
    fs::create_dir_all(&out).unwrap();
    let host = sysinfo::System::host_name().unwrap_or_default();
    let lock = |pid: u32| {
        format!("{{\"pid\":{pid},\"host\":\"{host}\",\"started\":\"2026-01-01T00:00:00Z\",\"command\":\"create\"}}")
    };
    // This test process holds the flock, as a running packer would.
    let held =
        fs::File::options().read(true).write(true).create(true).truncate(true).open(out.join(".packer.lock")).unwrap();
    held.try_lock().unwrap();
    fs::write(out.join(".packer.lock"), lock(std::process::id())).unwrap();
    packer_cfg(&cfg)
        .arg("create")
        .assert()
        .code(exit::LOCKED)
        .stderr(predicate::str::contains(format!("pid {}", std::process::id())));
    packer_cfg(&cfg).args(["prune", "--dry-run"]).assert().code(exit::LOCKED);
    drop(held);
    // A dead holder: its record stays, its flock went with it (even a live pid does not matter).
    fs::write(out.join(".packer.lock"), lock(1)).unwrap();
    packer_cfg(&cfg).arg("create").assert().success().stderr(predicate::str::contains("without releasing"));
    assert!(fs::read_to_string(&events).unwrap().contains("stale_lock_taken_over"));
    assert!(!out.join(".packer.lock").exists(), "released");
}

/// Not enough room: stop_and_alert stops before writing and alerts; delete_oldest deletes the
/// oldest unprotected bundles but never the newest good one.
#[test]
fn critical_space() {
    let t = tempfile::tempdir().unwrap();
    let events = t.path().join("events.jsonl");
    // 99.99% of the disk must stay free: never satisfiable, whatever this machine's disk.
    let (cfg, out) = setup(t.path(), &format!("\n[notify]\ncommand = \"cat >> {}\"\n", events.display()));
    let real = create(&cfg);
    let ids = fake_history(&out, &real, &["2026-01-05T02:00:00Z", "2026-01-06T02:00:00Z"]);
    let base = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, format!("{base}\n[retention]\ncritical_free_space_percent = 99.99\n")).unwrap();
    let before = tree(&out);
    packer_cfg(&cfg).arg("create").assert().failure().stderr(predicate::str::contains("not enough space"));
    assert_eq!(tree(&out), before, "stop_and_alert deletes nothing");
    assert!(fs::read_to_string(&events).unwrap().contains("critical_space"));

    fs::write(
        &cfg,
        format!("{base}\n[retention]\ncritical_free_space_percent = 99.99\ncritical_policy = \"delete_oldest\"\n"),
    )
    .unwrap();
    packer_cfg(&cfg).arg("create").assert().failure().stderr(predicate::str::contains("not enough space"));
    let left = json(packer_cfg(&cfg).args(["list", "--json"]));
    let left: Vec<i64> = left.as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(left.len(), 1, "only the newest good bundle is left: {left:?}");
    assert!(!left.contains(&ids[0]) && !left.contains(&ids[1]));
    assert!(real.exists());
}

/// `daemon --once` makes a scheduled bundle and prunes; the long-running daemon stops cleanly on
/// SIGTERM while waiting; the timer units are written for the cron.
#[test]
fn daemon_and_timer() {
    let t = tempfile::tempdir().unwrap();
    let (cfg, out) = setup(
        t.path(),
        "\n[schedule]\ncron = \"30 3 * * *\"\njitter = \"5m\"\nverify_every = 1\nverify_depth = \"deep\"\n[retention]\nkeep_last = 3\n",
    );
    packer_cfg(&cfg)
        .args(["daemon", "--once"])
        .assert()
        .success()
        .stderr(predicate::str::contains("backup ok"))
        .stderr(predicate::str::contains("verification of"));
    let listed = json(packer_cfg(&cfg).args(["list", "--json"]));
    assert_eq!(listed[0]["source"], "scheduled");
    assert_eq!(listed[0]["verify_ok"], true, "verify_every = 1 verified the new bundle");
    assert_eq!(listed[0]["verify_depth"], "deep");

    let mut child = packer_cfg(&cfg).arg("daemon").stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("next run at") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "daemon ended early");
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let start = Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(start.elapsed() < Duration::from_secs(5));
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("stopping on signal"), "{rest}");
    assert!(!tree(&out).iter().any(|p| p.ends_with(".partial") || p.ends_with(".packer.lock")));

    packer_cfg(&cfg)
        .args(["install-timer", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("OnCalendar=*-*-* 3:30:00 UTC"))
        .stdout(predicate::str::contains("RandomizedDelaySec=300"));
    let units = t.path().join("units");
    fs::create_dir(&units).unwrap();
    packer_cfg(&cfg).args(["install-timer", "--unit-dir"]).arg(&units).assert().success();
    let service = fs::read_to_string(units.join("n8n-backup.service")).unwrap();
    assert!(service.contains("daemon --once") && service.contains(cfg.to_str().unwrap()));
    assert!(units.join("n8n-backup.timer").exists());
}

/// `packer verify` streams a bundle without extracting it: a good one passes and is recorded;
/// a damaged copy fails, is recorded as failed, and is notified.
#[test]
fn verify_streams_and_records() {
    let t = tempfile::tempdir().unwrap();
    let events = t.path().join("events.jsonl");
    let (cfg, out) = setup(t.path(), &format!("\n[notify]\ncommand = \"cat >> {}\"\n", events.display()));
    let bundle = create(&cfg);
    let id = json(packer_cfg(&cfg).args(["list", "--json"]))[0]["id"].as_i64().unwrap().to_string();
    packer_cfg(&cfg)
        .args(["verify", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("OK"))
        .stdout(predicate::str::contains("file digest matches"));
    assert_eq!(json(packer_cfg(&cfg).args(["list", "--json"]))[0]["verify_ok"], true);
    assert_eq!(tree(&out).iter().filter(|p| !p.starts_with("catalog")).count(), 2, "nothing extracted");

    let mut bytes = fs::read(&bundle).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(&bundle, bytes).unwrap();
    packer_cfg(&cfg).args(["verify", &id]).assert().code(exit::CORRUPT).stdout(predicate::str::contains("BAD"));
    assert_eq!(json(packer_cfg(&cfg).args(["list", "--json"]))[0]["verify_ok"], false);
    assert!(fs::read_to_string(&events).unwrap().contains("verification_failed"));
    packer_cfg(&cfg).arg("status").assert().code(exit::FAILED).stdout(predicate::str::contains("verification failed"));
}
