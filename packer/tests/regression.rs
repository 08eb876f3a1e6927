//! One test per bug found, named for it, with a line saying what it guards (ripgrep's
//! `tests/regression.rs`). Each drives the real binaries on real files; the commit that fixed
//! the bug is named where there is one. Add the next bug here.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;
use chrono::{Duration, Utc};
use common::*;
use packer::catalog::Catalog;
use packer::retention::Source;

fn packer_cfg(cfg: &Path) -> Command {
    let mut c = packer();
    c.arg("--config").arg(cfg);
    c
}

/// A configuration over the sample tree with `extra` TOML appended.
fn setup(t: &Path, extra: &str) -> std::path::PathBuf {
    let src = sample_tree(t);
    let cfg = config(t, &src, &[], None);
    let text = fs::read_to_string(&cfg).unwrap() + extra;
    fs::write(&cfg, text).unwrap();
    cfg
}

/// 0b1067c: a keep_<period> rule the retention code did not recognise by its string counted as
/// keep_yearly. Guards: keep_weekly keeps one bundle per ISO week, said by its own name.
#[test]
fn keep_weekly_is_not_counted_as_yearly() {
    let t = tempfile::tempdir().unwrap();
    let cfg = setup(t.path(), "\n[retention]\nkeep_weekly = 3\n");
    let real = create(&cfg);
    let out = t.path().join("out");
    // Copies of the real bundle catalogued 1 to 4 weeks ago: four more ISO weeks, most likely
    // all in this year (a yearly count would keep only the newest of them).
    let (catalog, _) = Catalog::open(&out).unwrap();
    let mut manifest = restorer::unpack::read_manifest(&real).unwrap();
    let mut ids = Vec::new();
    for weeks in 1..=4 {
        let at = Utc::now() - Duration::weeks(weeks);
        let name = restorer::layout::bundle_file_name("test", at);
        fs::copy(&real, out.join(&name)).unwrap();
        manifest.created_at = at;
        ids.push(catalog.insert(&name, &manifest, 1000, &"0".repeat(64), Source::Scheduled).unwrap());
    }
    drop(catalog);
    let run = packer_cfg(&cfg).args(["prune", "--dry-run", "--json"]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let lines: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let line = |id: i64| lines.as_array().unwrap().iter().find(|l| l["bundle"]["id"] == id).unwrap().clone();
    for (id, keep) in [(ids[0], true), (ids[1], true), (ids[2], false), (ids[3], false)] {
        let l = line(id);
        assert_eq!(l["action"], if keep { "keep" } else { "delete" }, "{l}");
        let reasons = l["decision"]["reasons"].to_string();
        assert_eq!(reasons.contains("keep_weekly 3"), keep, "{l}");
        assert!(!reasons.contains("yearly"), "{l}");
    }
}

/// bd77473: restore printed the bundle's creation time with nanoseconds (chrono's default
/// Display). Guards: the plan shows it to the second, in UTC.
#[test]
fn restore_plan_shows_creation_time_to_the_second() {
    let t = tempfile::tempdir().unwrap();
    let bundle = create(&setup(t.path(), ""));
    let dir = extract(&bundle, &t.path().join("x"));
    let out = restore(&dir).args(["--dry-run", "--root"]).arg(t.path().join("root")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("Bundle: ")).unwrap_or_else(|| panic!("{stdout}"));
    let when = line.rsplit_once("created ").unwrap().1;
    assert!(chrono::NaiveDateTime::parse_from_str(when, "%Y-%m-%d %H:%M:%S UTC").is_ok(), "{line}");
}

/// Issue 13: install-timer's own text-level cron converter passed month names through when the
/// weekday was a number ("0 3 * jan 1" became OnCalendar "Mon *-jan-* ...", which systemd
/// rejects). Guards: month names become numbers, through the one cron parser.
#[test]
fn install_timer_converts_month_names() {
    let t = tempfile::tempdir().unwrap();
    let cfg = setup(t.path(), "\n[schedule]\ncron = \"0 3 * jan,jul 1\"\n");
    packer_cfg(&cfg)
        .args(["install-timer", "--dry-run"])
        .assert()
        .success()
        .stdout(predicates::str::contains("\nOnCalendar=Mon *-1,7-* 3:0:00 UTC\n"));
}

/// Issue 13: install-timer wrote a timer for a cron that never fires ("0 0 31 2 *": OnCalendar
/// *-2-31), where the daemon refuses it. Guards: an error naming the expression, nothing written.
#[test]
fn install_timer_refuses_a_cron_that_never_fires() {
    let t = tempfile::tempdir().unwrap();
    let cfg = setup(t.path(), "\n[schedule]\ncron = \"0 0 31 2 *\"\n");
    let units = t.path().join("units");
    fs::create_dir(&units).unwrap();
    packer_cfg(&cfg)
        .args(["install-timer", "--unit-dir"])
        .arg(&units)
        .assert()
        .code(packer::exit::FAILED)
        .stderr(predicates::str::contains("never fires"));
    assert!(tree(&units).is_empty());
}

/// A rollback dropped what it restored with `DROP DATABASE ... WITH (FORCE)`, which servers
/// before PostgreSQL 13 reject (a deployment's image may run one): the rollback itself failed.
/// Guards: the pre-13 way (sessions ended, then a plain DROP) drops a database someone is still
/// connected to, on a real server.
#[test]
fn rollback_drops_a_database_without_force_on_servers_before_13() {
    let cluster = packer::pg_cluster::Cluster::start().unwrap();
    cluster.psql("postgres", "CREATE DATABASE restored_here").unwrap();
    let target = restorer::pg::PgTarget::parse(&cluster.url("postgres")).unwrap();
    // An open session on the database, as an app started on it would hold.
    let mut held = target.with_database("restored_here").connect().unwrap();
    held.batch_execute("CREATE TABLE t (x int)").unwrap();
    let mut admin = target.connect().unwrap();
    restorer::pg::drop_database(&mut admin, "restored_here", 120_000).unwrap();
    let left = cluster.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'restored_here'").unwrap();
    assert_eq!(left.trim(), "0", "the database is gone");
    // Dropping what is already gone is not an error (a rollback may run twice).
    restorer::pg::drop_database(&mut admin, "restored_here", 120_000).unwrap();
    assert!(held.batch_execute("SELECT 1").is_err(), "the session it held was ended");
}

/// Found by scripts/test-deb.sh once create got fast (issue 10): a run within the second of the
/// previous one failed ("already exists (two runs within one second?)"), as when the timer's
/// cycle follows a manual create. Guards: creates back to back each publish their own bundle.
#[test]
fn creates_within_one_second_each_get_their_own_bundle() {
    let t = tempfile::tempdir().unwrap();
    let cfg = setup(t.path(), "");
    let bundles: Vec<_> = (0..3).map(|_| create(&cfg)).collect();
    for b in &bundles {
        assert!(b.exists(), "{}", b.display());
    }
    let mut names: Vec<_> = bundles.iter().map(|b| b.file_name().unwrap().to_owned()).collect();
    names.dedup();
    assert_eq!(names.len(), 3, "three distinct bundles: {names:?}");
}
