//! Small things that erode trust (issue 8, section 7), each pinned by the real binaries: a
//! closed stdout, a full disk under the catalog, a PostgreSQL error shown once, a warning
//! printed once.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a skipped case says why")]

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use packer::pg_cluster::Cluster;

/// Runs `cmd` with a stdout pipe whose reader is already gone, as `| head -0` leaves it.
fn with_closed_stdout(cmd: &mut Command) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer).stderr(Stdio::piped()).output().unwrap()
}

/// Regression (issue 8): `packer init | head -0` and `packer --help | head -0` exit 0 quietly,
/// instead of panicking with exit 101.
#[test]
fn packer_with_a_closed_stdout_does_not_panic() {
    for args in [&["init"][..], &["--help"][..]] {
        let out = with_closed_stdout(packer().args(args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "packer {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "packer {args:?}: {stderr}");
    }
}

/// Regression (issue 8): `restore --help | head -0` and `restore list | head -0` exit 0
/// quietly, instead of panicking with exit 101.
#[test]
fn restore_with_a_closed_stdout_does_not_panic() {
    let t = tempfile::tempdir().unwrap();
    let src = sample_tree(t.path());
    let dir = extract(&create(&config(t.path(), &src, &[], None)), &t.path().join("x"));
    for args in [&["--help"][..], &["list"][..], &["verify"][..]] {
        let out = with_closed_stdout(restore(&dir).args(args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "restore {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "restore {args:?}: {stderr}");
    }
}

/// Mounts a tmpfs of `size` at `dir`; false (with the reason printed) when this host cannot.
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs at {} (needs root and mount rights)", dir.display());
    }
    ok
}

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct Mounted<'a>(&'a Path);
impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

/// Regression (issue 8): when the disk under the catalog is full, the error says "database or
/// disk is full" (not "not an error: Error code 13"), and the catalog is not mistaken for a
/// damaged one (nothing is moved aside).
#[test]
fn full_disk_under_the_catalog_reads_as_full() {
    let t = tempfile::tempdir().unwrap();
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[], None);
    let out = t.path().join("out");
    if !mount_tmpfs(&out, "64k") {
        return;
    }
    let _m = Mounted(&out);
    // Fill it, then give back two pages: room for the lock file, not for the catalog's
    // journal and tables.
    let filler = out.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let len = fs::metadata(&filler).unwrap().len();
    f.set_len(len.saturating_sub(8192)).unwrap();
    drop(f);
    let res = packer().args(["create", "--config"]).arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "{stderr}");
    assert!(stderr.contains("database or disk is full"), "{stderr}");
    assert!(!stderr.contains("not an error") && !stderr.contains("Error code 13"), "{stderr}");
    assert!(!fs::read_dir(&out).unwrap().flatten().any(|e| e.file_name().to_string_lossy().contains("damaged")));
}

/// Regression (issue 8): PostgreSQL's message is shown once, not once per layer of the error
/// ("db error: FATAL: ...: FATAL: ...").
#[test]
fn postgres_errors_show_the_servers_message_once() {
    let t = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\n[[postgres]]\nname = \"db\"\nurl = \"{}\"\n",
            t.path().join("out").display(),
            c.url("no_such_database")
        ),
    )
    .unwrap();
    let res = packer().args(["create", "--config"]).arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert_eq!(stderr.matches("\"no_such_database\" does not exist").count(), 1, "{stderr}");
    assert!(!stderr.contains("db error"), "{stderr}");
}

/// Regression (issue 8): "roles were saved without passwords" is printed once per run.
#[test]
fn roles_without_passwords_warning_is_printed_once() {
    let t = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    // A packing user that may not read pg_authid: its role dump has no passwords.
    c.psql("postgres", "CREATE ROLE packer_user LOGIN PASSWORD 'Packer-pw1'").unwrap();
    c.psql("postgres", "CREATE DATABASE app OWNER packer_user").unwrap();
    let url = format!("postgresql://packer_user:Packer-pw1@127.0.0.1:{}/app", c.port);
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[("app", url)], Some(c.bin()));
    let res = packer().args(["create", "--config"]).arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert_eq!(stderr.matches("roles were saved without passwords").count(), 1, "{stderr}");
}

/// Regression: `packer create -q` silences progress, never a warning (its help promised that;
/// the logger dropped warnings too). A FIFO in a captured directory is skipped with a warning.
#[test]
fn quiet_create_still_prints_warnings() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "a\n").unwrap();
    let st = Command::new("mkfifo").arg(data.join("pipe")).status().unwrap();
    assert!(st.success());
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"quiet\"\n\n[[files]]\nkind = \"data\"\npaths = [\"{}\"]\n",
            t.path().join("out").display(),
            data.display()
        ),
    )
    .unwrap();
    let out = packer().args(["create", "-q", "--config"]).arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning") && stderr.contains("pipe"), "no warning with -q: {stderr:?}");
    assert!(!stderr.contains("writing "), "progress shown with -q: {stderr}");
}
