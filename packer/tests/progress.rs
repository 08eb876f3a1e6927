//! Progress and log lines as a person and a log see them (issue 11): a bar with bytes, rate and
//! ETA on a real terminal (a pseudo-terminal from util-linux `script`) for create, verify and
//! the restore; nothing of it off a terminal or with `-q`; `-v` brings the narrative into a log;
//! and one level rule, so a line the daemon's filter used to drop reaches the journal.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

/// Quotes a word for `sh -c`.
fn sh(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Runs `program args` on a fresh pseudo-terminal (stdin, stdout and stderr all on it) and
/// returns everything the terminal received, escape sequences included, and the exit code.
fn on_terminal(program: &Path, args: &[&str], env: &[(&str, &Path)]) -> (String, Option<i32>) {
    let mut line: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", sh(&v.to_string_lossy()))).collect();
    line.push(sh(&program.to_string_lossy()));
    line.extend(args.iter().map(|a| sh(a)));
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(line.join(" "))
        .arg("/dev/null")
        .env("TERM", "xterm")
        .env("COLUMNS", "160")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux script (bsdutils) runs");
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.code())
}

fn packer_bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("packer")
}

/// A bar's line: bytes done of the total, a rate and the time left.
fn has_bar(text: &str, what: &str) -> bool {
    text.contains(what) && text.contains("ETA") && text.contains("/s")
}

fn piped(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// A sample deployment with a few MB of incompressible data, so writing takes long enough for
/// the bar to be drawn more than once.
fn deployment(base: &Path) -> std::path::PathBuf {
    let src = sample_tree(base);
    let noise: Vec<u8> = (0..6_000_000u64).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).collect();
    fs::write(src.join("srv/data/noise.bin"), noise).unwrap();
    config(base, &src, &[], None)
}

#[test]
fn bars_on_a_terminal_and_nothing_of_them_elsewhere() {
    let t = tempfile::tempdir().unwrap();
    let cfg = deployment(t.path());
    let restorer = restorer_path();
    let env = [("PACKER_RESTORER", restorer.as_path())];
    let cfg_s = cfg.to_str().unwrap();

    // On a terminal: the bundle's bar, and the path on stdout as always.
    let (text, code) = on_terminal(&packer_bin(), &["--config", cfg_s, "create"], &env);
    assert_eq!(code, Some(0), "{text}");
    assert!(has_bar(&text, "writing"), "no progress bar on a terminal: {text:?}");
    let bundle = text
        .lines()
        .map(|l| l.trim().trim_start_matches("\u{1b}[2K").trim())
        .rfind(|l| l.ends_with(".tar.gz"))
        .map(|l| l.rsplit('\r').next().unwrap().trim().to_string())
        .expect("the bundle path printed");
    assert!(Path::new(&bundle).is_file(), "{bundle:?}");

    // -q on a terminal: no bar.
    let (text, code) = on_terminal(&packer_bin(), &["--config", cfg_s, "create", "-q"], &env);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("ETA"), "-q still drew a bar: {text:?}");

    // Off a terminal: neither bars nor escape sequences, and no narrative unless -v.
    let out = piped(packer().args(["--config", cfg_s, "create"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("ETA") && !stderr.contains('\u{1b}'), "a bar in a log: {stderr:?}");
    assert!(!stderr.contains("reading files"), "the narrative in a log without -v: {stderr}");
    let out = piped(packer().args(["--config", cfg_s, "-v", "create"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("reading files"), "-v off a terminal: {stderr}");
    assert!(stderr.contains("bytes packed into"), "-v without the detail: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "-v drew a bar in a log: {stderr:?}");

    // packer verify and the restore's own verify: a bar over the bundle file's bytes.
    let (text, code) = on_terminal(&packer_bin(), &["--config", cfg_s, "verify", &bundle], &env);
    assert_eq!(code, Some(0), "{text}");
    assert!(has_bar(&text, "verifying") && text.contains("OK:"), "packer verify: {text:?}");
    let (text, code) = on_terminal(&restorer, &["verify", "--from", &bundle], &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(has_bar(&text, "verifying") && text.contains("OK:"), "restore verify: {text:?}");
    let out = piped(Command::new(&restorer).args(["verify", "--from", &bundle]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains('\u{1b}'), "restore verify in a log: {stderr:?}");
}

/// Regression (issue 11): the daemon's filter matched line prefixes and dropped a catalog
/// warning that had none ("bundle ... is missing from ..."); one level rule now shows it in
/// the journal, stamped like every daemon line.
#[test]
fn the_daemon_logs_a_bundle_gone_missing() {
    let t = tempfile::tempdir().unwrap();
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[], None);
    let bundle = create(&cfg);
    fs::remove_file(&bundle).unwrap();
    let name = bundle.file_name().unwrap().to_string_lossy().into_owned();
    let out = piped(packer().arg("--config").arg(&cfg).args(["daemon", "--once"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr.lines().find(|l| l.contains(&name) && l.contains("is missing")).unwrap_or_else(|| {
        panic!("the daemon did not log the missing bundle: {stderr}");
    });
    assert!(line.contains("warning: "), "not a warning: {line}");
    assert!(line.starts_with("20"), "not stamped: {line}");
}
