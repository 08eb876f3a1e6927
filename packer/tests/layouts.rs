//! Real layouts restore with exit 0: an SQLite database inside a captured directory (n8n's
//! ~/.n8n), listed paths that are symbolic links (Debian's nginx sites, Let's Encrypt's live/),
//! and packer's own output directory inside a captured directory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use common::*;
use predicates::prelude::*;

/// The entry names of a bundle, as `tar tzf` lists them.
fn entries(bundle: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("tzf").arg(bundle).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

/// Extracts `bundle` and restores it under `root` (no packages, no services, no questions).
fn restore_under(bundle: &Path, x: &Path, root: &Path) -> std::process::Output {
    let dir = extract(bundle, x);
    restore(&dir).args(["--yes", "--no-install", "--no-services", "--root"]).arg(root).output().unwrap()
}

/// `root` + an original absolute path.
fn under(root: &Path, original: &Path) -> PathBuf {
    root.join(original.strip_prefix("/").unwrap())
}

/// The validation checks of a restore's report that failed.
fn failed_checks(x: &Path) -> Vec<String> {
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(x.join("restore-report.json")).unwrap()).unwrap();
    report["validation"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] != true)
        .map(|c| format!("{} expected {} got {}", c["check"], c["expected"], c["actual"]))
        .collect()
}

/// An SQLite database in WAL mode inside a captured `[[files]]` directory is packed once, as the
/// consistent copy: the raw file and its -wal/-shm are left out with a note, and the restore
/// exits 0 with every row (those only in the WAL too).
#[test]
fn sqlite_inside_captured_dir_is_packed_once_and_restores() {
    let t = tempfile::tempdir().unwrap();
    let n8n_dir = t.path().join("src/home/node/.n8n");
    fs::create_dir_all(&n8n_dir).unwrap();
    fs::write(n8n_dir.join("config"), "{\"encryptionKey\": \"not-a-real-key\"}\n").unwrap();
    let db_path = n8n_dir.join("database.sqlite");
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA wal_autocheckpoint=0;
         CREATE TABLE workflow_entity (id TEXT PRIMARY KEY, name TEXT);
         INSERT INTO workflow_entity VALUES ('a', 'first'), ('b', 'second'), ('c', 'third');",
    )
    .unwrap();
    // The connection stays open through the packing: these pages live only in the WAL.
    let wal = PathBuf::from(format!("{}-wal", db_path.display()));
    let shm = PathBuf::from(format!("{}-shm", db_path.display()));
    assert!(fs::metadata(&wal).unwrap().len() > 0 && shm.exists(), "the database has WAL content");

    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"n8n\"\n\n[[sqlite]]\nname = \"n8n\"\npath = \"{}\"\n\n[[files]]\nkind = \"config\"\npaths = [\"{}\"]\n",
            t.path().join("out").display(),
            db_path.display(),
            n8n_dir.display()
        ),
    )
    .unwrap();
    let bundle = create(&cfg);

    // Nothing captured twice: one database entry, no raw file, no journal.
    let manifest = restorer::unpack::read_manifest(&bundle).unwrap();
    let paths: Vec<&Path> = manifest.files.iter().map(|f| f.path.as_path()).collect();
    assert!(paths.contains(&n8n_dir.as_path()) && paths.contains(&n8n_dir.join("config").as_path()), "{paths:?}");
    for p in [&db_path, &wal, &shm] {
        assert!(!paths.contains(&p.as_path()), "{} captured as a file too", p.display());
    }
    let names = entries(&bundle);
    let db_entries: Vec<_> = names.iter().filter(|e| e.contains("database.sqlite") || e.ends_with(".sqlite")).collect();
    assert_eq!(db_entries, vec!["databases/n8n.sqlite"], "{names:?}");
    // The manifest says what was left out and why.
    for p in [&db_path, &wal] {
        let shown = p.display().to_string();
        assert!(
            manifest.notes.iter().any(|n| n.starts_with(&shown) && n.contains("[[sqlite]]")),
            "{:?}",
            manifest.notes
        );
    }
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    packer().arg("show").arg(&bundle).assert().success().stdout(predicate::str::contains("note: "));

    let root = t.path().join("root");
    let x = t.path().join("x");
    let out = restore_under(&bundle, &x, &root);
    assert!(out.status.success(), "restore exited {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stdout));
    assert!(failed_checks(&x).is_empty(), "{:?}", failed_checks(&x));
    let restored = rusqlite::Connection::open(under(&root, &db_path)).unwrap();
    let n: i64 = restored.query_row("SELECT count(*) FROM workflow_entity", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3, "the rows only in the WAL are restored");
    assert_eq!(fs::read(under(&root, &n8n_dir.join("config"))).unwrap(), fs::read(n8n_dir.join("config")).unwrap());
    drop(conn);
}

/// A Debian-like layout: nginx's sites-enabled/default -> ../sites-available/default, a chain of
/// links, Let's Encrypt's live/ pointing into archive/ (relative and absolute links, to files and
/// to a directory), a cycle and a dangling link.
struct Debian {
    src: PathBuf,
    site: PathBuf,
    enabled: PathBuf,
    chain: PathBuf,
    live: PathBuf,
    archive: PathBuf,
}

fn debian_layout(base: &Path) -> Debian {
    use std::os::unix::fs::symlink;
    let src = base.join("src");
    let ng = src.join("etc/nginx");
    let le = src.join("etc/letsencrypt");
    for d in ["sites-available", "sites-enabled", "conf.d"] {
        fs::create_dir_all(ng.join(d)).unwrap();
    }
    for d in ["archive/ex.com", "archive/other.org", "live/ex.com"] {
        fs::create_dir_all(le.join(d)).unwrap();
    }
    fs::create_dir_all(src.join("etc/loop")).unwrap();
    let site = ng.join("sites-available/default");
    fs::write(&site, "server { listen 80; root /srv/www/the-real-site; }\n").unwrap();
    fs::write(ng.join("sites-available/other"), "server { listen 81; }\n").unwrap();
    let enabled = ng.join("sites-enabled/default");
    symlink("../sites-available/default", &enabled).unwrap();
    symlink("../sites-available/gone", ng.join("sites-enabled/gone")).unwrap();
    // A link to a link: conf.d/chain.conf -> ../sites-enabled/default -> ../sites-available/default.
    let chain = ng.join("conf.d/chain.conf");
    symlink("../sites-enabled/default", &chain).unwrap();
    fs::write(le.join("archive/ex.com/cert1.pem"), "CERT ex.com\n").unwrap();
    fs::write(le.join("archive/ex.com/privkey1.pem"), "KEY ex.com\n").unwrap();
    fs::write(le.join("archive/other.org/cert1.pem"), "CERT other.org\n").unwrap();
    symlink("../../archive/ex.com/cert1.pem", le.join("live/ex.com/cert.pem")).unwrap();
    symlink(le.join("archive/ex.com/privkey1.pem"), le.join("live/ex.com/privkey.pem")).unwrap();
    // A link to a directory, absolute.
    symlink(le.join("archive/other.org"), le.join("live/other.org")).unwrap();
    symlink("b", src.join("etc/loop/a")).unwrap();
    symlink("a", src.join("etc/loop/b")).unwrap();
    // As Debian's /etc/mtab: a link into a kernel file system, whose bytes change as they are read.
    symlink("/proc/self/mounts", src.join("etc/loop/mtab")).unwrap();
    // As /etc/alternatives/*: a link into the packages' own tree is packed as a link only.
    symlink("/usr/bin/env", src.join("etc/loop/alternative")).unwrap();
    Debian { src, site, enabled, chain, live: le.join("live"), archive: le.join("archive") }
}

/// Listed symbolic links are packed with what they point to (links to links, links to
/// directories, relative and absolute, each target once and with a note); cycles and dangling
/// links are warnings. The restore under a temporary root exits 0, the site is there, and each
/// restored link is validated to lead to its restored target.
#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn listed_links_are_packed_with_their_targets_and_validated() {
    let t = tempfile::tempdir().unwrap();
    let d = debian_layout(t.path());
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"web\"\n\n[[files]]\nkind = \"config\"\npaths = [\"{}\", \"{}\", \"{}\", \"{}\"]\n\n[[files]]\nkind = \"ssl\"\npaths = [\"{}\", \"{}\"]\n",
            t.path().join("out").display(),
            d.enabled.display(),
            d.chain.display(),
            d.src.join("etc/nginx/sites-enabled/gone").display(),
            d.src.join("etc/loop").display(),
            d.live.display(),
            // Already captured as listed: what live/ex.com/cert.pem points to is not taken twice.
            d.archive.join("ex.com").display(),
        ),
    )
    .unwrap();
    let bundle = create(&cfg);
    let m = restorer::unpack::read_manifest(&bundle).unwrap();
    let paths: Vec<PathBuf> = m.files.iter().map(|f| f.path.clone()).collect();
    let mut unique = paths.clone();
    unique.dedup();
    assert_eq!(paths, unique, "a path captured twice");
    for p in [
        d.site.clone(),
        d.archive.join("other.org"),
        d.archive.join("other.org/cert1.pem"),
        d.archive.join("ex.com/cert1.pem"),
        d.archive.join("ex.com/privkey1.pem"),
    ] {
        assert!(paths.contains(&p), "{} not packed: {paths:?}", p.display());
    }
    assert!(!paths.contains(&d.src.join("etc/nginx/sites-available/other")), "only what a link points to");
    let note = |target: &Path, link: &Path| {
        m.notes.iter().any(|n| n.starts_with(&target.display().to_string()) && n.contains(&link.display().to_string()))
    };
    assert!(note(&d.site, &d.enabled), "{:?}", m.notes);
    assert!(note(&d.archive.join("other.org"), &d.live.join("other.org")), "{:?}", m.notes);
    assert!(
        !m.notes.iter().any(|n| n.starts_with(&d.archive.join("ex.com").display().to_string())),
        "listed targets need no note: {:?}",
        m.notes
    );
    let warned = |what: &str| m.warnings.iter().any(|w| w.contains(what));
    assert!(warned("sites-enabled/gone") && warned("does not exist"), "{:?}", m.warnings);
    assert!(warned("etc/loop/a") && warned("cycle"), "{:?}", m.warnings);
    assert!(paths.iter().all(|p| !p.starts_with("/proc") && !p.starts_with("/usr")), "{paths:?}");
    assert!(m.notes.iter().any(|n| n.contains("etc/loop/alternative") && n.contains("packages own")), "{:?}", m.notes);
    assert!(m.notes.iter().any(|n| n.contains("etc/loop/mtab") && n.contains("kernel file system")), "{:?}", m.notes);
    // Captured entries are unique too.
    let names = entries(&bundle);
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(names.len(), unique.len(), "{names:?}");

    let root = t.path().join("root");
    let x = t.path().join("x");
    let out = restore_under(&bundle, &x, &root);
    assert!(out.status.success(), "restore exited {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stdout));
    assert!(failed_checks(&x).is_empty(), "{:?}", failed_checks(&x));
    // The site is there, reached through the restored relative link.
    assert_eq!(fs::read(under(&root, &d.enabled)).unwrap(), fs::read(&d.site).unwrap());
    assert_eq!(fs::read(under(&root, &d.chain)).unwrap(), fs::read(&d.site).unwrap());
    assert_eq!(
        fs::read(under(&root, &d.archive.join("other.org/cert1.pem"))).unwrap(),
        b"CERT other.org\n",
        "the directory behind live/other.org"
    );
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(x.join("restore-report.json")).unwrap()).unwrap();
    let leads = |link: &Path| {
        report["validation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == format!("link {} leads to", link.display()) && c["ok"] == true)
    };
    for l in [&d.enabled, &d.chain, &d.live.join("other.org"), &d.live.join("ex.com/privkey.pem")] {
        assert!(leads(l), "no passing destination check for {}", l.display());
    }

    // After the restore, a link retargeted, and a link whose text is unchanged but whose target
    // directory was swapped for a link elsewhere: validation fails, naming each link.
    let enabled = under(&root, &d.enabled);
    fs::remove_file(&enabled).unwrap();
    std::os::unix::fs::symlink("../sites-available/other", &enabled).unwrap();
    fs::write(under(&root, &d.src.join("etc/nginx/sites-available/other")), "server { listen 81; }\n").unwrap();
    let other = under(&root, &d.archive.join("other.org"));
    fs::rename(&other, other.with_file_name("moved")).unwrap();
    std::os::unix::fs::symlink("ex.com", &other).unwrap();
    let checks = restorer::steps::validate::files(&m, &root).unwrap();
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.check.as_str()).collect();
    for want in [
        format!("link {} target", d.enabled.display()),
        format!("link {} leads to", d.enabled.display()),
        format!("link {} leads to", d.chain.display()),
        format!("link {} leads to", d.live.join("other.org").display()),
    ] {
        assert!(failed.contains(&want.as_str()), "{want} did not fail: {failed:?}");
    }
    assert!(
        !failed.contains(&format!("link {} target", d.live.join("other.org").display()).as_str()),
        "its text is unchanged: only where it leads differs"
    );
}

/// packer's own output directory inside a captured directory (named through a link, so only its
/// real location can tell): the second bundle holds no earlier bundle, sidecar, catalog, lock or
/// spool, and the manifest says the directory was left out.
#[test]
fn output_dir_inside_captured_dir_is_left_out() {
    let t = tempfile::tempdir().unwrap();
    let app = t.path().join("src/srv/app");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("settings.ini"), "[app]\nport = 8080\n").unwrap();
    // The output directory is spelled through a link to the captured directory.
    let alias = t.path().join("alias");
    std::os::unix::fs::symlink(&app, &alias).unwrap();
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"app\"\n\n[[files]]\nkind = \"data\"\npaths = [\"{}\"]\n",
            alias.join("backups").display(),
            app.display()
        ),
    )
    .unwrap();
    let first = create(&cfg);
    // Bundle names carry the second: the next run must not share it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = create(&cfg);
    assert_ne!(first, second);
    assert!(
        app.join("backups").join(first.file_name().unwrap()).is_file(),
        "the first bundle is inside the captured dir"
    );

    let names = entries(&second);
    let leaked: Vec<&String> = names
        .iter()
        .filter(|e| {
            e.contains("backups")
                || e.ends_with(".tar.gz")
                || e.ends_with(".sha256") && e.as_str() != "checksums.sha256"
                || e.contains("catalog.sqlite")
                || e.contains(".packer.lock")
                || e.contains(".packer-spool")
        })
        .collect();
    assert!(leaked.is_empty(), "packer's own output packed: {leaked:?}");
    assert!(names.contains(&format!("files{}", app.join("settings.ini").display())), "{names:?}");
    let m = restorer::unpack::read_manifest(&second).unwrap();
    assert!(m.files.iter().all(|f| !f.path.starts_with(app.join("backups"))), "{:?}", m.files);
    assert!(
        m.notes.iter().any(|n| n.starts_with(&app.join("backups").display().to_string()) && n.contains("output_dir")),
        "{:?}",
        m.notes
    );
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    assert!(size(&second) < size(&first) * 2, "the second bundle does not hold the first");

    let root = t.path().join("root");
    let out = restore_under(&second, &t.path().join("x"), &root);
    assert!(out.status.success(), "restore exited {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stdout));
    assert!(!under(&root, &app.join("backups")).exists());
}
