//! Every way a bundle, a configuration or a target can be wrong: each must fail loudly, name
//! what is at fault, and change nothing.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use common::*;
use predicates::prelude::*;
use restorer::exit;

/// A bundle of the sample tree (SQLite and files, no server), extracted.
fn bundle_and_dir(t: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let src = sample_tree(t);
    let bundle = create(&config(t, &src, &[], None));
    let dir = extract(&bundle, &t.join("x"));
    (src, bundle, dir)
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    let i = (at as usize).min(bytes.len() - 1);
    bytes[i] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

fn entry_of(dir: &Path, suffix: &str) -> String {
    let sums = fs::read_to_string(dir.join("checksums.sha256")).unwrap();
    sums.lines().map(|l| l[66..].to_string()).find(|e| e.ends_with(suffix)).unwrap()
}

/// One flipped byte in any entry (config file, SQLite copy, the manifest itself): verify and
/// restore both fail with exit 3, name the entry with expected and actual digests, and write
/// nothing.
#[test]
fn flipped_byte_in_an_entry_is_named_and_nothing_is_written() {
    for suffix in [".env", "app.sqlite", "manifest.json", "big.bin"] {
        let t = tempfile::tempdir().unwrap();
        let (_, _, dir) = bundle_and_dir(t.path());
        let entry = entry_of(&dir, suffix);
        flip_byte(&dir.join(&entry), 10);
        restore(&dir)
            .arg("verify")
            .assert()
            .code(exit::CORRUPT)
            .stdout(predicate::str::contains(format!("BAD  {entry}")))
            .stdout(predicate::str::contains("expected"))
            .stdout(predicate::str::contains("actual"));
        let root = t.path().join("root");
        restore(&dir)
            .args(["--yes", "--no-install", "--no-services", "--root"])
            .arg(&root)
            .assert()
            .code(exit::CORRUPT)
            .stderr(predicate::str::contains(&entry));
        assert!(!root.exists(), "nothing written for a corrupt {entry}");
    }
}

/// The manifest and the checksum list must describe the same entries: a manifest whose digest
/// for a file was changed (and re-listed consistently) is caught by the cross-check.
#[test]
fn manifest_disagreeing_with_checksums_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (_, _, dir) = bundle_and_dir(t.path());
    let entry = entry_of(&dir, "nginx.conf");
    let sums = fs::read_to_string(dir.join("checksums.sha256")).unwrap();
    let real = sums.lines().find(|l| l.ends_with(&entry)).unwrap()[..64].to_string();
    let manifest = fs::read_to_string(dir.join("manifest.json")).unwrap().replace(&real, &"0".repeat(64));
    fs::write(dir.join("manifest.json"), &manifest).unwrap();
    let (new_digest, _) = restorer::digest::sha256_file(&dir.join("manifest.json")).unwrap();
    let old_line = sums.lines().find(|l| l.ends_with("  manifest.json")).unwrap().to_string();
    fs::write(dir.join("checksums.sha256"), sums.replace(&old_line, &format!("{new_digest}  manifest.json"))).unwrap();
    restore(&dir)
        .arg("verify")
        .assert()
        .code(exit::CORRUPT)
        .stdout(predicate::str::contains(&entry))
        .stdout(predicate::str::contains("disagree"));
}

/// A bundle extracted without its last entry (a truncated download) says so.
#[test]
fn missing_checksums_means_truncated() {
    let t = tempfile::tempdir().unwrap();
    let (_, _, dir) = bundle_and_dir(t.path());
    fs::remove_file(dir.join("checksums.sha256")).unwrap();
    restore(&dir).arg("verify").assert().code(exit::CORRUPT).stderr(predicate::str::contains("truncated"));
}

/// A truncated or damaged .tar.gz read directly: exit 3, and the unpack directory is removed.
#[test]
fn truncated_or_damaged_archive_is_refused_without_leftovers() {
    let t = tempfile::tempdir().unwrap();
    let src = sample_tree(t.path());
    let bundle = create(&config(t.path(), &src, &[], None));
    let len = fs::metadata(&bundle).unwrap().len();

    let truncated = t.path().join("trunc.n8n_backup.tar.gz");
    fs::write(&truncated, &fs::read(&bundle).unwrap()[..(len / 2) as usize]).unwrap();
    Command::new(restorer_path()).arg("verify").arg("--from").arg(&truncated).assert().code(exit::CORRUPT);
    assert!(!t.path().join("trunc.n8n_backup").exists());

    let damaged = t.path().join("damaged.n8n_backup.tar.gz");
    fs::copy(&bundle, &damaged).unwrap();
    flip_byte(&damaged, len - 2000);
    Command::new(restorer_path()).arg("verify").arg("--from").arg(&damaged).assert().code(exit::CORRUPT);

    // `packer show` on a file that is not a bundle at all.
    let junk = t.path().join("junk.tar.gz");
    fs::write(&junk, b"not gzip").unwrap();
    packer().arg("show").arg(&junk).assert().failure().stderr(predicate::str::contains("junk.tar.gz"));
}

/// Writes a .tar.gz holding one crafted entry, bypassing the tar crate's own path checks.
fn evil_tar(path: &Path, name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) {
    let mut b =
        tar::Builder::new(flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::fast()));
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    if let Some(l) = link {
        h.as_gnu_mut().unwrap().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

/// Absolute paths, `..`, symlinks, hard links and device nodes inside an archive are refused
/// (exit 5) and nothing is written outside, nor is the unpack directory left behind.
#[test]
fn escaping_tar_entries_are_refused() {
    use tar::EntryType as E;
    let cases: [(&str, E, Option<&str>); 6] = [
        ("/tmp/evil-abs", E::Regular, None),
        ("../evil-dotdot", E::Regular, None),
        ("ok/../../evil-dotdot2", E::Regular, None),
        ("link", E::Symlink, Some("/etc")),
        ("hard", E::Link, Some("/etc/passwd")),
        ("dev", E::Char, None),
    ];
    for (name, kind, link) in cases {
        let t = tempfile::tempdir().unwrap();
        let bundle = t.path().join("evil.n8n_backup.tar.gz");
        evil_tar(&bundle, name, kind, link, if kind == E::Regular { b"pwned" } else { b"" });
        Command::new(restorer_path())
            .arg("verify")
            .arg("--from")
            .arg(&bundle)
            .assert()
            .code(exit::REFUSED)
            .stderr(predicate::str::contains("unsafe bundle entry refused"));
        assert!(!t.path().join("evil.n8n_backup").exists(), "{name}: unpack dir removed");
        assert!(
            !t.path().join("evil-dotdot").exists() && !Path::new("/tmp/evil-abs").exists(),
            "{name}: nothing outside"
        );
        assert_eq!(tree(t.path()), vec!["evil.n8n_backup.tar.gz"], "{name}");
    }
}

/// A symbolic link already on the target that would carry a write outside the restore root is
/// refused before anything changes.
#[test]
fn symlink_on_the_target_cannot_redirect_writes() {
    let t = tempfile::tempdir().unwrap();
    let (src, _, dir) = bundle_and_dir(t.path());
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    // ROOT/<first component of the source path> -> outside
    let first = src.components().nth(1).unwrap().as_os_str().to_owned();
    fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&outside, root.join(&first)).unwrap();
    restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--root"])
        .arg(&root)
        .assert()
        .code(exit::REFUSED)
        .stderr(predicate::str::contains("outside the restore root"));
    assert!(tree(&outside).is_empty());
}

/// Existing different data: refused without --overwrite (naming the path, changing nothing);
/// with it, replaced and kept in the checkpoint, and `restore rollback` puts it back.
#[test]
fn existing_data_needs_overwrite_and_can_be_rolled_back() {
    let t = tempfile::tempdir().unwrap();
    let (src, _, dir) = bundle_and_dir(t.path());
    let root = t.path().join("root");
    let run = |extra: &[&str]| {
        let mut c = restore(&dir);
        c.args(["--yes", "--no-install", "--no-services", "--root"]).arg(&root).args(extra);
        c
    };
    run(&[]).assert().success();
    // The same bundle again: everything is identical, nothing is refused.
    run(&[]).assert().success();

    let env = root.join(src.strip_prefix("/").unwrap()).join("opt/n8n/.env");
    fs::write(&env, "CHANGED ON THE TARGET\n").unwrap();
    run(&[])
        .assert()
        .code(exit::REFUSED)
        .stderr(predicate::str::contains(".env"))
        .stderr(predicate::str::contains("--overwrite"));
    assert_eq!(fs::read_to_string(&env).unwrap(), "CHANGED ON THE TARGET\n");

    let cp = t.path().join("cp");
    run(&["--overwrite", "--checkpoint-dir", cp.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("rollback"));
    assert_eq!(fs::read(&env).unwrap(), fs::read(src.join("opt/n8n/.env")).unwrap());
    Command::new(dir.join("restore")).arg("rollback").arg(&cp).assert().success();
    assert_eq!(fs::read_to_string(&env).unwrap(), "CHANGED ON THE TARGET\n");
}

/// Configuration mistakes: one line naming the key, path or host; nothing written. A file
/// packer cannot read as a configuration exits with packer's exit::CONFIG; a source it names
/// that is missing or unreachable is a failed backup (exit::FAILED).
#[test]
fn configuration_errors_name_the_culprit() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let cases: Vec<(String, &str, i32)> = vec![
        ("[bundle\noutput_dir = 1".into(), "packer.toml", packer::exit::CONFIG),
        (format!("[bundle]\noutput_dir = \"{}\"\ncompresion = 3\n", out.display()), "compresion", packer::exit::CONFIG),
        (format!("[bundle]\noutput_dir = \"{}\"\n[[files]]\nkind = \"config\"\npaths = [\"/nonexistent/.env\"]\n", out.display()), "/nonexistent/.env", packer::exit::FAILED),
        (format!("[bundle]\noutput_dir = \"{}\"\n[[files]]\nkind = \"cfg\"\npaths = []\n", out.display()), "cfg", packer::exit::CONFIG),
        (format!("[bundle]\noutput_dir = \"{}\"\n[[sqlite]]\nname = \"a\"\npath = \"/nonexistent.db\"\n", out.display()), "/nonexistent.db", packer::exit::FAILED),
        (
            format!("[bundle]\noutput_dir = \"{}\"\n[[postgres]]\nname = \"db\"\nurl = \"postgresql://u:p@127.0.0.1:1/db\"\n", out.display()),
            "127.0.0.1:1",
            packer::exit::FAILED,
        ),
        (format!("[bundle]\noutput_dir = \"{}\"\n[schedule]\nverify_depth = \"quick\"\n", out.display()), "verify_depth", packer::exit::CONFIG),
    ];
    for (text, needle, code) in cases {
        let cfg = t.path().join("packer.toml");
        fs::write(&cfg, &text).unwrap();
        packer().args(["create", "--config"]).arg(&cfg).assert().code(code).stderr(predicate::str::contains(needle));
        assert!(tree(&out).is_empty(), "nothing written for {needle}");
    }
}

/// A wrong password fails before anything is written, naming the server and user.
#[test]
fn wrong_password_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let c = packer::pg_cluster::Cluster::start().unwrap();
    let cfg = t.path().join("packer.toml");
    let out = t.path().join("out");
    fs::write(&cfg, format!("[bundle]\noutput_dir = \"{}\"\n[[postgres]]\nname = \"db\"\nurl = \"postgresql://postgres:wrong@127.0.0.1:{}/postgres\"\n", out.display(), c.port)).unwrap();
    packer()
        .args(["create", "--config"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(predicate::str::contains("password authentication failed"))
        .stderr(predicate::str::contains(format!("postgres@127.0.0.1:{}", c.port)))
        .stderr(predicate::str::contains("wrong").not());
    assert!(tree(&out).is_empty());
}

/// packer refuses to embed a dynamically linked restore binary.
#[test]
fn dynamic_restorer_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[], None);
    packer()
        .args(["create", "--restorer", "/bin/ls", "--config"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(predicate::str::contains("dynamically linked"));
    assert!(tree(&t.path().join("out")).is_empty());
}
