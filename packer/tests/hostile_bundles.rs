//! Issue 8, classes 4 and 5: bundles written by an attacker who recomputed every digest. One
//! reader judges every archive (restore verify, restore --from, packer verify agree); nothing a
//! bundle says acts outside the restore root; a refusal leaves nothing behind.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use common::craft::{Crafted, Entry};
use common::*;
use restorer::exit;

/// A real bundle of the sample tree (SQLite and files, no server).
fn real_bundle(t: &Path) -> PathBuf {
    let src = sample_tree(t);
    create(&config(t, &src, &[], None))
}

/// The exit code each archive reader gives a bundle file, after checking that none of them
/// left anything beside it.
fn verdicts(bundle: &Path) -> (i32, i32, i32) {
    let dir = bundle.parent().unwrap();
    let before = tree(dir);
    let code = |c: &mut Command| c.output().unwrap().status.code().unwrap_or(-1);
    let verify = code(Command::new(restorer_path()).arg("verify").arg("--from").arg(bundle));
    let dry =
        code(Command::new(restorer_path()).args(["--dry-run", "--root"]).arg(dir.join("r")).arg("--from").arg(bundle));
    let packer_verify = code(packer().arg("verify").arg(bundle));
    let after: Vec<String> = tree(dir).into_iter().filter(|p| !p.starts_with("r")).collect();
    let before: Vec<String> = before.into_iter().filter(|p| !p.starts_with("r")).collect();
    if verify != 0 {
        assert_eq!(before, after, "a refused bundle left something behind");
    }
    (verify, dry, packer_verify)
}

fn expect_refused(name: &str, bundle: &Path, code: i32) {
    let (v, d, p) = verdicts(bundle);
    assert_eq!(v, code, "{name}: restore verify --from");
    assert_eq!(d, code, "{name}: restore --from --dry-run");
    assert_ne!(p, 0, "{name}: packer verify must refuse it too");
}

/// Directory entries, entries missing from the manifest (even when listed in a recomputed
/// checksum list), duplicate entries, an entry larger than the manifest declares, a corrupt
/// gzip trailer and data behind the archive: refused by every reader, nothing written.
#[test]
fn one_reader_refuses_what_a_bundle_must_not_hold() {
    let t = tempfile::tempdir().unwrap();
    let good = real_bundle(t.path());
    let base = Crafted::read(&good);
    let work = t.path().join("cases");
    fs::create_dir(&work).unwrap();
    let case = |name: &str, f: &dyn Fn(&mut Crafted)| -> PathBuf {
        let mut c = base.clone();
        f(&mut c);
        let p = work.join(format!("{name}.n8n_backup.tar.gz"));
        c.write(&p, None);
        p
    };

    // The crafted writer itself is faithful: an unchanged copy passes everywhere.
    let same = case("same", &|_| {});
    assert_eq!(verdicts(&same), (0, 0, 0));

    let dir_entry = case("dir-entry", &|c| {
        c.entries
            .insert(1, Entry { name: b"files/".to_vec(), kind: tar::EntryType::Directory, data: vec![], link: None })
    });
    expect_refused("directory entry", &dir_entry, exit::REFUSED);

    let unlisted = case("unlisted", &|c| c.entries.push(Entry::file("files/extra", &vec![7u8; 4096])));
    expect_refused("unlisted entry", &unlisted, exit::REFUSED);

    let duplicate = case("duplicate", &|c| {
        let e = c.entries.last().unwrap().clone();
        c.entries.push(e);
    });
    expect_refused("duplicate entry", &duplicate, exit::REFUSED);

    // The manifest promises a few bytes; the archive carries 3 MB under that name (the
    // checksum list agrees with the archive, the manifest's size does not).
    let oversized = case("oversized", &|c| {
        let name = String::from_utf8(c.entries.last().unwrap().name.clone()).unwrap();
        c.entry_mut(&name).data = vec![0x55; 3 << 20];
        let small = c.manifest["files"].as_array().unwrap().iter().position(|f| f["entry"] == name.as_str()).unwrap();
        c.reseal();
        c.manifest["files"][small]["size"] = 10.into();
    });
    expect_refused("oversized entry", &oversized, exit::CORRUPT);

    // gzip's trailer: the CRC32 (8 bytes from the end) and ISIZE (4 bytes from the end).
    for (what, from_end) in [("crc", 8usize), ("isize", 2)] {
        let p = work.join(format!("trailer-{what}.n8n_backup.tar.gz"));
        let mut bytes = fs::read(&same).unwrap();
        let i = bytes.len() - from_end;
        bytes[i] ^= 0x40;
        fs::write(&p, bytes).unwrap();
        expect_refused(&format!("gzip {what}"), &p, exit::CORRUPT);
    }
    let trailing = work.join("trailing.n8n_backup.tar.gz");
    let mut bytes = fs::read(&same).unwrap();
    bytes.extend_from_slice(b"appended after the archive");
    fs::write(&trailing, bytes).unwrap();
    let (v, d, p) = verdicts(&trailing);
    assert!(v != 0 && v == d && p != 0, "data after the gzip stream: {v} {d} {p}");
}

/// A stale `X/` beside a truncated `X.tar.gz` is never trusted: `restore --from X.tar.gz`
/// refuses (the archive is read and judged first), and `X/` is left as it was.
#[test]
fn stale_directory_beside_a_truncated_archive_is_not_trusted() {
    let t = tempfile::tempdir().unwrap();
    let good = real_bundle(t.path());
    let copy = t.path().join("copy.n8n_backup.tar.gz");
    fs::copy(&good, &copy).unwrap();
    let stale = extract(&good, &t.path().join("copy.n8n_backup"));
    let len = fs::metadata(&copy).unwrap().len();
    let bytes = fs::read(&copy).unwrap();
    fs::write(&copy, &bytes[..(len * 2 / 3) as usize]).unwrap();
    let before = tree(&stale);
    let out = Command::new(restorer_path())
        .args(["--dry-run", "--root"])
        .arg(t.path().join("r"))
        .arg("--from")
        .arg(&copy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::CORRUPT), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(tree(&stale), before);

    // An intact archive beside a directory holding another bundle: refused, named.
    let other = t.path().join("other.n8n_backup.tar.gz");
    fs::copy(&good, &other).unwrap();
    let dir = t.path().join("other.n8n_backup");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("manifest.json"), "{}").unwrap();
    fs::write(dir.join("checksums.sha256"), "").unwrap();
    Command::new(restorer_path())
        .args(["--dry-run", "--root"])
        .arg(t.path().join("r"))
        .arg("--from")
        .arg(&other)
        .assert()
        .code(exit::REFUSED)
        .stderr(predicates::str::contains("does not hold the bundle"));
}

/// Two records for one path (a link to an outside file, then a file) are refused before
/// anything changes: with --overwrite the attribute step would otherwise follow the link and
/// chmod the outside file.
#[test]
fn duplicate_target_paths_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let good = real_bundle(t.path());
    let outside = t.path().join("outside.txt");
    fs::write(&outside, "not yours\n").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = Crafted::read(&good);
    let files = c.manifest["files"].as_array_mut().unwrap();
    let file_rec = files.iter().find(|f| f["type"] == "file").unwrap().clone();
    let mut link = file_rec.clone();
    link["type"] = "symlink".into();
    link["target"] = outside.to_str().unwrap().into();
    link.as_object_mut().unwrap().remove("entry");
    files.insert(0, link);
    let bad = t.path().join("dup.n8n_backup.tar.gz");
    c.write(&bad, None);
    let root = t.path().join("root");
    let out = Command::new(restorer_path())
        .args(["--yes", "--overwrite", "--no-install", "--no-services", "--root"])
        .arg(&root)
        .arg("--from")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::REFUSED), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("restored by two records"));
    assert_eq!(fs::metadata(&outside).unwrap().mode() & 0o7777, 0o600);
    assert!(!root.exists());
}

/// A `restore-report.json` that is a symbolic link in the bundle directory (tar xzf creates
/// one when a bundle carries it) is replaced by the report, never written through.
#[test]
fn report_is_never_written_through_a_link() {
    let t = tempfile::tempdir().unwrap();
    let good = real_bundle(t.path());
    let x = extract(&good, &t.path().join("x"));
    let outside = t.path().join("victim.conf");
    fs::write(&outside, "precious\n").unwrap();
    std::os::unix::fs::symlink(&outside, x.join("restore-report.json")).unwrap();
    restore(&x)
        .args(["--yes", "--no-install", "--no-services", "--root"])
        .arg(t.path().join("root"))
        .assert()
        .success();
    assert_eq!(fs::read_to_string(&outside).unwrap(), "precious\n");
    let m = fs::symlink_metadata(x.join("restore-report.json")).unwrap();
    assert!(m.is_file() && m.mode() & 0o777 == 0o600);
}

/// A record below a link the bundle itself restores would be written through that link: the
/// manifest is refused before anything changes.
#[test]
fn records_below_a_restored_link_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let good = real_bundle(t.path());
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let mut c = Crafted::read(&good);
    let files = c.manifest["files"].as_array_mut().unwrap();
    let mut file_rec = files.iter().find(|f| f["type"] == "file").unwrap().clone();
    let mut link = file_rec.clone();
    link["type"] = "symlink".into();
    link["path"] = "/evil".into();
    link["target"] = outside.to_str().unwrap().into();
    link.as_object_mut().unwrap().remove("entry");
    file_rec["path"] = "/evil/planted".into();
    files.retain(|f| f["entry"] != file_rec["entry"]);
    files.push(link);
    files.push(file_rec);
    let bad = t.path().join("below.n8n_backup.tar.gz");
    c.write(&bad, None);
    let out = Command::new(restorer_path())
        .args(["--yes", "--no-install", "--no-services", "--root"])
        .arg(t.path().join("root"))
        .arg("--from")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::REFUSED), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lies below /evil"));
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

/// Found by generated_bundles (its first version, default seed): a restore refused after the
/// archive was unpacked (a target exists and differs, no --overwrite; or a link already on the
/// target leads out of the root) used to leave the whole unpacked `X/` beside `X.tar.gz`,
/// secrets included. A refusal leaves nothing; after a restore that ran, `X/` stays.
#[test]
fn refusal_after_unpacking_leaves_no_unpacked_bundle() {
    let t = tempfile::tempdir().unwrap();
    let good = real_bundle(t.path());
    let m: serde_json::Value =
        serde_json::from_str(&restorer::unpack::read_manifest(&good).unwrap().to_json()).unwrap();
    let file = m["files"].as_array().unwrap().iter().find(|f| f["type"] == "file").unwrap();
    let file = PathBuf::from(file["path"].as_str().unwrap());
    let dir = t.path().join("b");
    fs::create_dir(&dir).unwrap();
    let bundle = dir.join("x.n8n_backup.tar.gz");
    fs::copy(&good, &bundle).unwrap();
    let run = |root: &Path, overwrite: bool| {
        let mut c = Command::new(restorer_path());
        c.args(["--yes", "--no-install", "--no-services", "--root"]).arg(root);
        if overwrite {
            c.arg("--overwrite");
        }
        c.arg("--checkpoint-dir").arg(t.path().join(format!("cp-{overwrite}"))).arg("--from").arg(&bundle);
        c.output().unwrap()
    };

    // A target that exists and differs.
    let root = t.path().join("root");
    let target = root.join(file.strip_prefix("/").unwrap());
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::write(&target, "already here\n").unwrap();
    let out = run(&root, false);
    assert_eq!(out.status.code(), Some(exit::REFUSED), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(tree(&dir), ["x.n8n_backup.tar.gz"], "a refused restore left the unpacked bundle");

    // A link on the way to a target, leading out of the root.
    let root2 = t.path().join("root2");
    let first = file.components().nth(1).unwrap();
    fs::create_dir_all(&root2).unwrap();
    std::os::unix::fs::symlink(t.path().join("elsewhere"), root2.join(first)).unwrap();
    fs::create_dir(t.path().join("elsewhere")).unwrap();
    let out = run(&root2, false);
    assert_eq!(out.status.code(), Some(exit::REFUSED), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(tree(&dir), ["x.n8n_backup.tar.gz"], "a refused restore left the unpacked bundle");
    assert_eq!(fs::read_dir(t.path().join("elsewhere")).unwrap().count(), 0);

    // The restore that runs keeps it (the report is there).
    let out = run(&root, true);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("x.n8n_backup/restore-report.json").is_file());
}

/// Found by generated_bundles (its first version, default seed): a link already on the target at
/// `ROOT/var/lib/n8n-restore` (or any parent of the default checkpoint) leading out of the root
/// used to carry the checkpoint (journal, report copy, every file moved aside) there. The
/// restore now refuses before changing anything; `--checkpoint-dir` names another place.
#[test]
fn default_checkpoint_is_never_written_through_a_link_out_of_the_root() {
    let t = tempfile::tempdir().unwrap();
    let good = real_bundle(t.path());
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    for at in ["var", "var/lib", "var/lib/n8n-restore", "var/lib/n8n-restore/checkpoints"] {
        let root = t.path().join(format!("root-{}", at.replace('/', "-")));
        let link = root.join(at);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let before = tree(&root);
        let out = Command::new(restorer_path())
            .args(["--yes", "--no-install", "--no-services", "--root"])
            .arg(&root)
            .arg("--report")
            .arg(t.path().join("report.json"))
            .arg("--from")
            .arg(&good)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(exit::REFUSED), "{at}: {err}");
        assert!(err.contains("--checkpoint-dir"), "{at}: {err}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{at}: the checkpoint went outside the root");
        assert_eq!(tree(&root), before, "{at}: the root changed");
    }
}

/// Found while adding the default checkpoint to generated_bundles: a bundle that restores a
/// file into the restore's own checkpoint area
/// (`/var/lib/n8n-restore/checkpoints/X/checkpoint.jsonl`) plants a journal the next restore
/// onto that root takes for an interrupted restore and "rolls back": deleting an outside file
/// it names, moving another one into the root. Such records are refused before anything
/// changes, and the next restore never touches what a journal there names outside its root.
#[test]
fn a_bundle_cannot_plant_a_checkpoint_journal_for_the_next_restore() {
    let t = tempfile::tempdir().unwrap();
    let good = real_bundle(t.path());
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret.txt"), "secret\n").unwrap();
    fs::write(outside.join("stolen.txt"), "stolen\n").unwrap();
    let root = t.path().join("root");
    let journal = format!(
        "{}\n{}\n{}\n",
        serde_json::json!({"root": root, "bundle": "x"}),
        serde_json::json!({"change": "created_file", "path": outside.join("secret.txt")}),
        serde_json::json!({"change": "moved_aside", "original": root.join("loot"), "saved": outside.join("stolen.txt")}),
    );
    let mut c = Crafted::read(&good);
    let files = c.manifest["files"].as_array_mut().unwrap();
    let mut rec = files.iter().find(|f| f["type"] == "file").unwrap().clone();
    rec["path"] = "/var/lib/n8n-restore/checkpoints/20000101000000/checkpoint.jsonl".into();
    rec["entry"] = "files/journal".into();
    files.push(rec);
    c.entries.push(Entry::file("files/journal", journal.as_bytes()));
    c.reseal();
    let bad = t.path().join("plant.n8n_backup.tar.gz");
    c.write(&bad, None);
    let restore_from = |bundle: &Path, cp: Option<&str>| {
        let mut cmd = Command::new(restorer_path());
        cmd.args(["--yes", "--no-install", "--no-services", "--root"]).arg(&root);
        if let Some(cp) = cp {
            cmd.arg("--checkpoint-dir").arg(t.path().join(cp));
        }
        cmd.arg("--report").arg(t.path().join("report.json")).arg("--from").arg(bundle).output().unwrap()
    };
    let first = restore_from(&bad, Some("cp1"));
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(exit::REFUSED), "{err}");
    assert!(err.contains("/var/lib/n8n-restore"), "{err}");

    // A journal there anyway (left by anything else): the next restore does not act on what it
    // names outside its root.
    let cp = root.join("var/lib/n8n-restore/checkpoints/20000101000000");
    fs::create_dir_all(&cp).unwrap();
    fs::write(cp.join("checkpoint.jsonl"), &journal).unwrap();
    let second = restore_from(&good, None);
    assert!(matches!(second.status.code(), Some(0) | Some(5)), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(fs::read_to_string(outside.join("secret.txt")).unwrap(), "secret\n");
    assert_eq!(fs::read_to_string(outside.join("stolen.txt")).unwrap(), "stolen\n");
    assert!(!root.join("loot").exists());
}
