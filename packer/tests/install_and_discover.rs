//! Install and discover (issue 11): completions and man pages generated from the clap
//! definitions of both binaries, the configuration file packer reads without --config, and the
//! systemd units the Debian package ships. The package itself is tested on fresh hosts by
//! scripts/test-deb.sh.

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::*;

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `packer completions SHELL` prints a script for each packaged shell that knows the
/// subcommands and their flags (from the clap definition, not a hand-written copy).
#[test]
fn packer_completions_know_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let text = stdout_of(packer().args(["completions", shell]));
        for word in ["install-timer", "rebuild", "--dry-run", "--config"] {
            assert!(text.contains(word), "packer completions {shell} lacks {word}");
        }
    }
}

/// `packer man` prints packer.1 as roff; `--dir` writes one page per subcommand, nested ones
/// included, each carrying its subcommand's --help text.
#[test]
fn packer_man_pages_come_from_the_help_texts() {
    let page = stdout_of(packer().arg("man"));
    assert!(page.contains(".TH packer 1"), "{page}");
    assert!(page.contains("/etc/packer/packer.toml"), "the --config default is documented: {page}");
    let t = tempfile::tempdir().unwrap();
    let listed = stdout_of(packer().args(["man", "--dir"]).arg(t.path()));
    for name in ["packer.1", "packer-create.1", "packer-catalog-rebuild.1", "packer-install-timer.1"] {
        assert!(t.path().join(name).is_file(), "no {name} in {listed}");
    }
    assert!(!t.path().join("packer-help.1").exists(), "clap's help subcommand gets no page");
    let create = fs::read_to_string(t.path().join("packer-create.1")).unwrap();
    assert!(create.contains("embed the static restore binary"), "{create}");
}

/// `restore man` and `restore completions` work anywhere, with no bundle around (they used to
/// be impossible: restore's clap definition lives in its binary).
#[test]
fn restore_man_and_completions_need_no_bundle() {
    let t = tempfile::tempdir().unwrap();
    let restore = || {
        let mut c = Command::new(restorer_path());
        c.current_dir(t.path());
        c
    };
    let page = stdout_of(restore().arg("man"));
    assert!(page.contains(".TH restore 1") && page.contains("Typical use"), "{page}");
    let pages = t.path().join("pages");
    stdout_of(restore().args(["man", "--dir"]).arg(&pages));
    for name in ["restore.1", "restore-verify.1", "restore-rollback.1"] {
        assert!(pages.join(name).is_file(), "no {name}");
    }
    assert!(!pages.join("restore-man.1").exists(), "the hidden commands get no page");
    for shell in ["bash", "zsh", "fish"] {
        let text = stdout_of(restore().args(["completions", shell]));
        assert!(text.contains("rollback") && text.contains("--dry-run"), "restore completions {shell}");
    }
    let help = stdout_of(restore().arg("--help"));
    assert!(!help.contains("completions"), "hidden from restore --help: {help}");
}

/// Regression: `packer completions bash | head -0` exits 0 quietly (clap_complete panics on a
/// failed write; the script is rendered first, then written).
#[test]
fn completions_to_a_closed_stdout_do_not_panic() {
    for mut cmd in [packer(), Command::new(restorer_path())] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = cmd.args(["completions", "bash"]).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{cmd:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{cmd:?}: {stderr}");
    }
}

/// Without --config or PACKER_CONFIG, root reads /etc/packer/packer.toml (never ./packer.toml,
/// even when there is one) and any other user ./packer.toml; a missing default names itself
/// and the ways to choose another.
#[test]
fn without_config_root_reads_etc_packer_and_others_the_current_directory() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("packer.toml"), "this is = = not toml").unwrap();
    let out = packer().arg("list").current_dir(t.path()).env_remove("PACKER_CONFIG").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let root = rustix::process::geteuid().is_root();
    let system = std::path::Path::new("/etc/packer/packer.toml");
    if !root {
        // ./packer.toml was read: its syntax error is the failure.
        assert!(!out.status.success() && stderr.contains("packer.toml") && !stderr.contains("/etc/packer"), "{stderr}");
    } else if system.exists() {
        // An installed package: the system file was read, not the broken ./packer.toml.
        assert!(!stderr.contains("not toml") && !stderr.contains("TOML parse"), "{stderr}");
    } else {
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("/etc/packer/packer.toml does not exist"), "{stderr}");
        assert!(stderr.contains("--config FILE or set PACKER_CONFIG"), "{stderr}");
    }
    // A given path wins for everyone.
    let out = packer()
        .arg("list")
        .arg("--config")
        .arg(t.path().join("packer.toml"))
        .env_remove("PACKER_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(&t.path().join("packer.toml").display().to_string()), "{stderr}");
    assert_eq!(out.status.code(), Some(packer::exit::CONFIG), "{stderr}");
    assert!(!stderr.contains("/etc/packer"), "{stderr}");
}

/// The units the Debian package ships (`install-timer --for-package`) run /usr/bin/packer on
/// /etc/packer/packer.toml, on the template's schedule: the same text install-timer writes.
#[test]
fn packaged_units_run_the_installed_packer_on_the_system_config() {
    let t = tempfile::tempdir().unwrap();
    stdout_of(packer().args(["install-timer", "--for-package", "--unit-dir"]).arg(t.path()));
    let service = fs::read_to_string(t.path().join("n8n-backup.service")).unwrap();
    let timer = fs::read_to_string(t.path().join("n8n-backup.timer")).unwrap();
    assert!(
        service.contains("\nExecStart=/usr/bin/packer --config /etc/packer/packer.toml daemon --once\n"),
        "{service}"
    );
    assert!(timer.contains("\nOnCalendar=*-*-* 2:0:00 UTC\n"), "the template's cron 0 2 * * *: {timer}");
    assert!(timer.contains("WantedBy=timers.target"), "{timer}");
}

/// Regression (help audit): `restore rollback DIR --from X.tar.gz` reads only the checkpoint;
/// it used to unpack (or refuse) the archive first, which a rollback never uses.
#[test]
fn rollback_does_not_unpack_a_from_archive() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("junk.tar.gz"), b"not a bundle").unwrap();
    let out = Command::new(restorer_path())
        .current_dir(t.path())
        .args(["rollback", "no-such-checkpoint", "--from", "junk.tar.gz"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no-such-checkpoint"), "the error is about the checkpoint: {stderr}");
    assert!(!stderr.contains("junk"), "the archive was not touched: {stderr}");
    assert!(!t.path().join("junk").exists(), "nothing unpacked");
}
