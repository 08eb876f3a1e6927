//! Sealed bundles (issue 12): `[bundle] recipients` -> `packer create` writes an age-encrypted
//! payload inside a clear envelope -> `tar xzf` and `./restore verify` work without the key ->
//! `./restore --identity` restores with any one recipient's key (X25519 from `age-keygen`,
//! ssh-ed25519 from `ssh-keygen`) -> `age -d` by hand gives the same plain bundle. A wrong or
//! missing key and a tampered payload are refused before anything changes.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use common::*;
use packer::pg_cluster::Cluster;
use predicates::prelude::*;

/// A fresh age X25519 identity (`age-keygen`): the key file and its recipient.
fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let st = Command::new("age-keygen").arg("-o").arg(&key).output().unwrap();
    assert!(st.status.success(), "age-keygen: {}", String::from_utf8_lossy(&st.stderr));
    let out = Command::new("age-keygen").arg("-y").arg(&key).output().unwrap();
    (key, String::from_utf8(out.stdout).unwrap().trim().to_string())
}

/// A fresh unprotected ssh-ed25519 key (`ssh-keygen`): the private key file and its public line.
fn ssh_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@sealed", "-f"])
        .arg(&key)
        .status();
    assert!(st.unwrap().success());
    (key.clone(), fs::read_to_string(key.with_extension("pub")).unwrap().trim().to_string())
}

/// The test configuration with `recipients` added to `[bundle]`.
fn sealed_config(cfg: &Path, recipients: &[&str]) {
    let text = fs::read_to_string(cfg).unwrap();
    let list = recipients.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ");
    let text = text.replacen("name = \"test\"\n", &format!("name = \"test\"\nrecipients = [{list}]\n"), 1);
    fs::write(cfg, text).unwrap();
}

/// Entry names of a bundle, in order, and the bytes of every entry but the restore binary
/// (whose own strings name what it handles).
fn clear_view(bundle: &Path) -> (Vec<String>, Vec<u8>) {
    let gz = flate2::read::MultiGzDecoder::new(fs::File::open(bundle).unwrap());
    let (mut names, mut raw) = (Vec::new(), Vec::new());
    for e in tar::Archive::new(gz).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        if name != "restore" {
            e.read_to_end(&mut raw).unwrap();
        }
        names.push(name);
    }
    (names, raw)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A restore of `dir`'s own binary into `root` and the `target` cluster, with the given args.
fn restore_into(dir: &Path, root: &Path, target: &Cluster) -> Command {
    let mut c = restore(dir);
    c.env_remove("RESTORE_IDENTITY_FILE")
        .args(["--yes", "--no-install", "--no-services", "--root"])
        .arg(root)
        .args(["--postgres-url", &target.url("postgres")]);
    c
}

/// Sealed to an X25519 and an ssh-ed25519 recipient, a bundle shows nothing in clear but its
/// restore, README and checksums; each key alone restores it (from the archive, and from a
/// `tar xzf` directory through RESTORE_IDENTITY_FILE); `age -d` by hand opens the same plain
/// bundle the restore put back; packer verifies its ciphertext without a key, everything with
/// one, and indexes its manifest for show/list.
#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn sealed_round_trip_with_x25519_and_ssh_ed25519() {
    let t = tempfile::tempdir().unwrap();
    let keys = t.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (age_id, age_rcpt) = age_key(&keys, "age.txt");
    let (ssh_id, ssh_rcpt) = ssh_key(&keys, "id_ed25519");
    let (other_id, _) = age_key(&keys, "other.txt");

    let source = Cluster::start().unwrap();
    source.psql("postgres", "CREATE DATABASE shop").unwrap();
    source
        .psql("shop", "CREATE TABLE orders (id int PRIMARY KEY, who text); INSERT INTO orders SELECT i, 'customer-' || i FROM generate_series(1, 500) i;")
        .unwrap();
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[("shop", source.url("shop"))], Some(source.bin()));
    sealed_config(&cfg, &[&age_rcpt, &ssh_rcpt]);
    let bundle = create(&cfg);
    let name = bundle.file_name().unwrap().to_str().unwrap().to_string();

    // In clear: the envelope, the restore, the README, the ciphertext, the checksums; no name
    // or byte of the contents.
    let (names, raw) = clear_view(&bundle);
    assert_eq!(names, ["manifest.json", "restore", "README.txt", "payload.tar.gz.age", "checksums.sha256"]);
    for secret in ["N8N_ENCRYPTION_KEY", "test-key", "privkey1", "customer-42", "orders", "shop", "srv/data", "fixture"]
    {
        assert!(!contains(&raw, secret), "{secret:?} is readable in the sealed bundle");
    }

    // Without a key: tar xzf, sha256sum -c and ./restore verify work.
    let clear = extract(&bundle, &t.path().join("clear"));
    let sums = Command::new("sha256sum").args(["-c", "--quiet", "checksums.sha256"]).current_dir(&clear).status();
    assert!(sums.unwrap().success());
    restore(&clear)
        .env_remove("RESTORE_IDENTITY_FILE")
        .arg("verify")
        .assert()
        .success()
        .stdout(predicate::str::contains("sealed bundle: the ciphertext was checked"));
    restore(&clear)
        .env_remove("RESTORE_IDENTITY_FILE")
        .args(["verify", "--from"])
        .arg(&bundle)
        .assert()
        .success()
        .stdout(predicate::str::contains("OK"));

    // packer: the ciphertext without a key, everything with one; --deep needs the key.
    packer().arg("verify").arg(&bundle).assert().success().stdout(predicate::str::contains("ciphertext was checked"));
    let v: serde_json::Value = serde_json::from_slice(
        &packer().args(["verify", "--json", "--identity"]).arg(&age_id).arg(&bundle).output().unwrap().stdout,
    )
    .unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["contents_checked"], true);
    assert!(v["report"]["entries_checked"].as_u64().unwrap() > 10, "{v}");
    packer()
        .args(["verify", "--deep"])
        .arg(&bundle)
        .assert()
        .failure()
        .stderr(predicate::str::contains("--deep restores its databases, which needs the key"));
    // show and list from the catalog, which indexed the plain manifest at create time.
    packer()
        .args(["show", &name, "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .stdout(predicate::str::contains("orders"))
        .stdout(predicate::str::contains("500"));
    packer().args(["list", "--config"]).arg(&cfg).assert().success().stdout(predicate::str::contains(&name));
    // Without the catalog the file's own head says only that it is sealed.
    packer().arg("show").arg(&bundle).assert().failure().stderr(predicate::str::contains("sealed bundle"));

    // A missing or wrong key: refused (exit 5) before anything changes, nothing left behind.
    let target = Cluster::start().unwrap();
    let root = t.path().join("root");
    restore_into(&clear, &root, &target)
        .arg("--from")
        .arg(&bundle)
        .assert()
        .code(restorer::exit::REFUSED)
        .stderr(predicate::str::contains("--identity"));
    restore_into(&clear, &root, &target)
        .arg("--from")
        .arg(&bundle)
        .arg("--identity")
        .arg(&other_id)
        .assert()
        .code(restorer::exit::REFUSED)
        .stderr(predicate::str::contains("matches none of this bundle's recipients"))
        .stderr(predicate::str::contains("AGE-SECRET-KEY").not());
    restore_into(&clear, &root, &target).env("RESTORE_IDENTITY_FILE", &other_id).assert().code(restorer::exit::REFUSED);
    assert!(!root.exists(), "a refused restore wrote under the root");
    assert!(
        !bundle.with_file_name(name.trim_end_matches(".tar.gz")).exists(),
        "a refused restore left an unpacked bundle"
    );
    assert!(!clear.join("opened").exists());
    assert_eq!(target.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'shop'").unwrap().trim(), "0");

    // The X25519 key alone, from the archive.
    restore_into(&clear, &root, &target)
        .arg("--from")
        .arg(&bundle)
        .arg("--identity")
        .arg(&age_id)
        .assert()
        .success()
        .stdout(predicate::str::contains("RESTORED"));
    assert_eq!(target.psql("shop", "SELECT count(*) FROM orders").unwrap().trim(), "500");

    // The ssh-ed25519 key alone, in the tar xzf directory, through the environment.
    let target2 = Cluster::start().unwrap();
    let root2 = t.path().join("root2");
    restore_into(&clear, &root2, &target2)
        .env("RESTORE_IDENTITY_FILE", &ssh_id)
        .assert()
        .success()
        .stdout(predicate::str::contains("RESTORED"));
    assert_eq!(target2.psql("shop", "SELECT count(*) FROM orders").unwrap().trim(), "500");

    // By hand, as README.txt says: age -d | tar xz gives a plain bundle that verifies, holding
    // exactly the bytes the restore put back.
    let by_hand = t.path().join("by-hand");
    fs::create_dir(&by_hand).unwrap();
    let age =
        Command::new("age").arg("-d").arg("-i").arg(&age_id).arg(clear.join("payload.tar.gz.age")).output().unwrap();
    assert!(age.status.success(), "age -d: {}", String::from_utf8_lossy(&age.stderr));
    let mut tar =
        Command::new("tar").arg("xz").arg("-C").arg(&by_hand).stdin(std::process::Stdio::piped()).spawn().unwrap();
    tar.stdin.take().unwrap().write_all(&age.stdout).unwrap();
    assert!(tar.wait().unwrap().success());
    restore(&by_hand).arg("verify").assert().success().stdout(predicate::str::contains("OK"));
    let manifest: restorer::manifest::Manifest =
        serde_json::from_str(&fs::read_to_string(by_hand.join("manifest.json")).unwrap()).unwrap();
    let mut compared = 0;
    for f in &manifest.files {
        if let restorer::manifest::FileContent::File { entry, .. } = &f.content {
            let restored = root.join(f.path.strip_prefix("/").unwrap());
            assert_eq!(fs::read(by_hand.join(entry)).unwrap(), fs::read(&restored).unwrap(), "{}", f.path.display());
            compared += 1;
        }
    }
    assert!(compared >= 5, "compared {compared} files");
    assert_eq!(fs::read(by_hand.join("manifest.json")).unwrap(), fs::read(clear.join("opened/manifest.json")).unwrap());
}

/// Rewrites a bundle with one byte of the payload's ciphertext flipped; the checksum list stays
/// the original one.
fn tamper(bundle: &Path, out: &Path) {
    let gz = flate2::read::MultiGzDecoder::new(fs::File::open(bundle).unwrap());
    let mut archive = tar::Archive::new(gz);
    let w = flate2::write::GzEncoder::new(fs::File::create(out).unwrap(), flate2::Compression::fast());
    let mut b = tar::Builder::new(w);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if name == "payload.tar.gz.age" {
            let i = data.len() / 2;
            data[i] ^= 0x40;
        }
        b.append_data(&mut h, &name, &data[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

/// One flipped byte in the ciphertext: `restore verify` (no key), `restore --identity` and
/// `packer verify` all refuse it naming the payload entry and its digests; nothing is written.
/// The intact bundle passes `packer verify --deep --identity`.
#[test]
fn tampered_ciphertext_is_refused_naming_the_entry() {
    let t = tempfile::tempdir().unwrap();
    let (id, rcpt) = age_key(t.path(), "k.txt");
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[], None);
    sealed_config(&cfg, &[&rcpt]);
    let good = create(&cfg);
    let bad = t.path().join("backup_20260101000000.test_backup.tar.gz");
    tamper(&good, &bad);
    let clear = extract(&good, &t.path().join("clear"));

    restore(&clear)
        .args(["verify", "--from"])
        .arg(&bad)
        .assert()
        .code(restorer::exit::CORRUPT)
        .stdout(predicate::str::contains("BAD  payload.tar.gz.age: digest mismatch"));
    let root = t.path().join("root");
    restore(&clear)
        .args(["--yes", "--no-install", "--no-services", "--root"])
        .arg(&root)
        .arg("--from")
        .arg(&bad)
        .arg("--identity")
        .arg(&id)
        .assert()
        .code(restorer::exit::CORRUPT)
        .stderr(predicate::str::contains("payload.tar.gz.age: digest mismatch"));
    assert!(!root.exists());
    assert!(!t.path().join("backup_20260101000000.test_backup").exists(), "the refused unpack was left behind");
    packer()
        .arg("verify")
        .arg(&bad)
        .assert()
        .code(packer::exit::CORRUPT)
        .stdout(predicate::str::contains("payload.tar.gz.age"));
    packer()
        .args(["verify", "--identity"])
        .arg(&id)
        .arg(&bad)
        .assert()
        .code(packer::exit::CORRUPT)
        .stdout(predicate::str::contains("payload.tar.gz.age"));
    // The untouched one is fine with the same key, and --deep opens its SQLite copy with it.
    packer().args(["verify", "--identity"]).arg(&id).arg(&good).assert().success();
    packer()
        .args(["verify", "--deep", "--identity"])
        .arg(&id)
        .arg(&good)
        .assert()
        .success()
        .stdout(predicate::str::contains("PASS"))
        .stdout(predicate::str::contains("deep:"));
}

/// A recipient that is no key is refused when the configuration is loaded, naming it.
#[test]
fn bad_recipient_is_named_at_load() {
    let t = tempfile::tempdir().unwrap();
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[], None);
    sealed_config(&cfg, &["age1qqqqnotakey"]);
    packer()
        .args(["create", "--config"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(predicate::str::contains("[bundle] recipients"))
        .stderr(predicate::str::contains("age1qqqqnotakey"));
    assert!(!t.path().join("out").exists() || fs::read_dir(t.path().join("out")).unwrap().count() == 0);
}

/// Runs `cmd` under script(1), on a pseudo-terminal of its own, typing `input`: how a test
/// answers a prompt read from /dev/tty. Returns the exit code and what the terminal showed.
fn on_a_terminal(cmd: &str, input: &str) -> (i32, String) {
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Typed once the prompt is up (the pty drops what arrives while echo is being turned off).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    stdin.write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A passphrase-protected identity (an encrypted OpenSSH key) is asked for on the terminal,
/// echo off; a wrong passphrase and the absence of a terminal are clear refusals.
#[test]
fn passphrase_protected_identity_is_asked_on_the_terminal() {
    let t = tempfile::tempdir().unwrap();
    let key = t.path().join("id_ed25519");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "correct horse", "-C", "t", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let rcpt = fs::read_to_string(key.with_extension("pub")).unwrap();
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[], None);
    sealed_config(&cfg, &[rcpt.trim()]);
    let bundle = create(&cfg);
    let clear = extract(&bundle, &t.path().join("clear"));
    let verify =
        format!("{} verify --from {} --identity {}", clear.join("restore").display(), bundle.display(), key.display());

    // No controlling terminal (a new session): refused, saying what to do.
    let out =
        Command::new("setsid").args(["-w", "sh", "-c", &verify]).stdin(std::process::Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(restorer::exit::REFUSED), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no terminal to ask for its passphrase"));

    let (code, shown) = on_a_terminal(&verify, "correct horse\n");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("passphrase for") && shown.contains("OK"), "{shown}");
    assert!(!shown.contains("correct horse"), "the passphrase was echoed: {shown}");

    let (code, shown) = on_a_terminal(&verify, "wrong\n");
    assert_eq!(code, restorer::exit::REFUSED, "{shown}");
    assert!(shown.contains("wrong passphrase"), "{shown}");
}
