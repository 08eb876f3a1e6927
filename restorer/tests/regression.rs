//! One test per bug found, named for it, with a line saying what it guards (ripgrep's
//! `tests/regression.rs`). Each drives the real `restore` binary or the library against the
//! real system; the commit that fixed the bug is named. Add the next bug here.
//! (Bugs that need a bundle live in packer/tests/regression.rs: packer makes the bundles.)

use std::process::Command;

/// 691ab95: clap rewrapped `restore --help`'s "Typical use" block into one run-on paragraph.
/// Guards: each example command keeps its own line, as written.
#[test]
fn restore_help_keeps_the_typical_use_block_verbatim() {
    let out = Command::new(env!("CARGO_BIN_EXE_restore")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for line in [
        "  ./restore verify              check every entry against checksums.sha256 and the manifest",
        "  ./restore --dry-run           print the plan; change nothing",
        "  ./restore                     restore (asks you to type RESTORE)",
    ] {
        assert!(help.lines().any(|l| l == line), "{line:?} is not a line of:\n{help}");
    }
}

/// 76e1ad1: `--to-n8n https://...` on a host without curl said "n8n does not answer", sending
/// the operator after the wrong problem. Guards: a refusal that says to install curl.
#[test]
fn https_to_n8n_without_curl_says_to_install_curl() {
    let empty = tempfile::tempdir().unwrap();
    // No curl on this PATH: a bare host. This is the only test here that reads PATH.
    std::env::set_var("PATH", empty.path());
    let e = restorer::steps::n8n::http("GET", "https://127.0.0.1:1/api/v1/workflows", "key", None).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, restorer::Error::Refused(_)), "{e:?}");
    assert!(text.contains("apt-get install curl") && !text.contains("does not answer"), "{text}");
}
