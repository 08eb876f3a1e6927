//! Helpers shared by the integration tests: the real binaries, real bundles, real clusters.
#![allow(dead_code)]

pub mod craft;
pub mod docker;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use assert_cmd::prelude::*;

/// The static restore binary the tests embed: `$PACKER_RESTORER`, or the musl release build
/// (scripts/test.sh builds it first).
pub fn restorer_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PACKER_RESTORER") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/x86_64-unknown-linux-musl/release/restore");
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build --release -p restorer --target x86_64-unknown-linux-musl` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// `packer` with the static restorer configured.
pub fn packer() -> Command {
    let mut c = Command::cargo_bin("packer").unwrap();
    c.env("PACKER_RESTORER", restorer_path());
    c
}

/// A sample source tree: config, ssl (key 0600, a relative symlink, an absolute one), data, a
/// SQLite database with awkward content. Returns its root.
pub fn sample_tree(base: &Path) -> PathBuf {
    let src = base.join("src");
    for d in ["opt/n8n", "etc/nginx/sites-enabled", "etc/ssl/live/ex", "etc/ssl/archive/ex", "srv/data/sub", "srv/db"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(src.join("opt/n8n/.env"), "N8N_ENCRYPTION_KEY=test-key\nDB_TYPE=postgresdb\n").unwrap();
    fs::set_permissions(src.join("opt/n8n/.env"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(src.join("etc/nginx/nginx.conf"), "events {}\n").unwrap();
    fs::set_permissions(src.join("etc/nginx/nginx.conf"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("/etc/nginx/sites-available/default", src.join("etc/nginx/sites-enabled/default"))
        .unwrap();
    fs::write(src.join("etc/ssl/archive/ex/privkey1.pem"), "-----BEGIN PRIVATE KEY-----\nfixture\n").unwrap();
    fs::set_permissions(src.join("etc/ssl/archive/ex/privkey1.pem"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("../../archive/ex/privkey1.pem", src.join("etc/ssl/live/ex/privkey.pem")).unwrap();
    fs::write(src.join("srv/data/sub/ünï cødé.txt"), "unicode name\n").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    fs::write(src.join("srv/data/big.bin"), big).unwrap();
    fs::write(src.join("srv/data/empty"), "").unwrap();
    // Times in the past, so "same mtime after restore" means something.
    for f in ["opt/n8n/.env", "etc/nginx/nginx.conf", "srv/data/big.bin"] {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        fs::File::options().write(true).open(src.join(f)).unwrap().set_modified(t).unwrap();
    }
    let conn = rusqlite::Connection::open(src.join("srv/db/app.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE \"Mixed Case\" (id INTEGER PRIMARY KEY, name TEXT, data BLOB);
         CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT);
         INSERT INTO \"Mixed Case\" VALUES (1, 'ünïcødé ☃', x'00ff'), (2, NULL, NULL);
         INSERT INTO events (payload) VALUES ('a'), ('b'), ('c');",
    )
    .unwrap();
    // Keep a row only in the WAL: a plain file copy would lose it, the backup API must not.
    conn.execute("INSERT INTO events (payload) VALUES ('only in wal')", []).unwrap();
    std::mem::forget(conn);
    src
}

/// A configuration over `sample_tree` plus optional postgres URLs (name, url).
pub fn config(base: &Path, src: &Path, postgres: &[(&str, String)], pg_bin: Option<&Path>) -> PathBuf {
    let mut t = format!("[bundle]\noutput_dir = \"{}\"\nname = \"test\"\n\n", base.join("out").display());
    for (name, url) in postgres {
        t += &format!("[[postgres]]\nname = \"{name}\"\nurl = \"{url}\"\n");
        if let Some(b) = pg_bin {
            t += &format!("pg_bin = \"{}\"\n", b.display());
        }
    }
    t += &format!("\n[[sqlite]]\nname = \"app\"\npath = \"{}\"\n", src.join("srv/db/app.db").display());
    t += &format!(
        "\n[[files]]\nkind = \"config\"\npaths = [\"{}\", \"{}\", \"{}\"]\n",
        src.join("opt/n8n/.env").display(),
        src.join("etc/nginx/nginx.conf").display(),
        src.join("etc/nginx/sites-enabled").display()
    );
    t += &format!("\n[[files]]\nkind = \"ssl\"\npaths = [\"{}\"]\n", src.join("etc/ssl").display());
    t += &format!("\n[[files]]\nkind = \"data\"\npaths = [\"{}\"]\n", src.join("srv/data").display());
    let p = base.join("packer.toml");
    fs::write(&p, t).unwrap();
    p
}

/// Runs `packer create` and returns the bundle path (the last stdout line).
pub fn create(config: &Path) -> PathBuf {
    let out = packer().args(["create", "--config"]).arg(config).output().unwrap();
    assert!(out.status.success(), "packer create failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().expect("a path on stdout"))
}

/// Extracts a bundle with the system's tar, as an operator would.
pub fn extract(bundle: &Path, dest: &Path) -> PathBuf {
    fs::create_dir_all(dest).unwrap();
    let st = Command::new("tar").arg("xzf").arg(bundle).arg("-C").arg(dest).status().unwrap();
    assert!(st.success());
    dest.to_path_buf()
}

/// The extracted bundle's own `restore` binary.
pub fn restore(dir: &Path) -> Command {
    let mut c = Command::new(dir.join("restore"));
    c.current_dir(dir).env_remove("RESTORE_POSTGRES_URL");
    c
}

/// All paths under `dir`, relative, sorted (to prove nothing was written).
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            out.push(e.path().strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Encrypts like n8n, with the openssl command line (independent of the code under test).
pub fn encrypt(plain: &str, key: &str) -> String {
    let t = tempfile::NamedTempFile::new().unwrap();
    fs::write(t.path(), plain).unwrap();
    // n8n hands the key to crypto-js as latin1 bytes; openssl takes bytes: pass them as such.
    let latin1: Vec<u8> = key.chars().map(|c| c as u32 as u8).collect();
    let pw = tempfile::NamedTempFile::new().unwrap();
    fs::write(pw.path(), &latin1).unwrap();
    let out = Command::new("openssl")
        .args(["enc", "-aes-256-cbc", "-md", "md5", "-a", "-A", "-salt", "-in"])
        .arg(t.path())
        .arg("-pass")
        .arg(format!("file:{}", pw.path().display()))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}
