//! Issue 8, class 2: every file name Linux allows survives `packer create` -> verify -> restore
//! byte-exactly, with mode, owner and mtime; a bundle is never published that its restore would
//! refuse.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use common::*;

fn set_mtime(p: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
}

/// The hostile-but-legal names: newline, backslash, tab, leading dashes, shell and glob
/// characters, spaces at both ends, a non-UTF-8 (latin-1) name, a 255-byte component, a C1
/// control character, and a path 60 directories deep.
fn odd_tree(data: &Path) -> Vec<PathBuf> {
    fs::create_dir_all(data).unwrap();
    let names: Vec<Vec<u8>> = vec![
        b"new\nline".to_vec(),
        b"back\\slash".to_vec(),
        b"tab\tname".to_vec(),
        b"-rf".to_vec(),
        b"--help".to_vec(),
        b"$(touch pwned) *?[x]".to_vec(),
        b" both ends ".to_vec(),
        b"caf\xe9 latin-1".to_vec(),
        b"c1\xc2\x85control".to_vec(),
        vec![b'x'; 255],
    ];
    let mut files = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let p = data.join(OsStr::from_bytes(n));
        fs::write(&p, format!("content {i}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600 + (i as u32 % 3) * 0o040)).unwrap();
        set_mtime(&p, 1_500_000_000 + i as u64);
        files.push(p);
    }
    // A directory with an odd name, holding a file and a link whose target is odd bytes too.
    let dir = data.join(OsStr::from_bytes(b"dir\nwith\\odd \xff name"));
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("inner"), "inner\n").unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"../caf\xe9 latin-1"), dir.join("link\tto latin-1")).unwrap();
    let mut deep = data.join("deep");
    for i in 0..60 {
        deep.push(format!("level-{i:02}-abcdefghij"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom.txt"), "deep\n").unwrap();
    if is_root() {
        std::os::unix::fs::chown(&files[0], Some(1234), Some(2345)).unwrap();
    }
    files
}

fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Every path under `base`, relative, as raw bytes, with what matters about it.
fn inventory(base: &Path) -> Vec<(Vec<u8>, String)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(Vec<u8>, String)>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().as_os_str().as_bytes().to_vec();
            let what = if m.file_type().is_symlink() {
                format!("link -> {:?}", fs::read_link(&p).unwrap())
            } else if m.is_dir() {
                walk(base, &p, out);
                format!("dir {:o}", m.mode() & 0o7777)
            } else {
                format!(
                    "file {:o} {}:{} mtime {} sha {}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                    m.mtime(),
                    craft::sha256_hex(&fs::read(&p).unwrap())
                )
            };
            out.push((rel, what));
        }
    }
    walk(base, base, &mut out);
    out.sort();
    out
}

/// Any name Linux allows round-trips: create exits 0 and publishes a bundle that `restore
/// verify`, `sha256sum -c` (on the extracted bundle) and the restore all accept, and the restored
/// tree equals the source name for name, byte for byte, mode, owner and mtime included.
#[test]
fn every_file_name_linux_allows_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("src/data");
    odd_tree(&data);
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"names\"\n\n[[files]]\nkind = \"data\"\npaths = [\"{}\"]\n",
            t.path().join("out").display(),
            data.display()
        ),
    )
    .unwrap();
    let bundle = create(&cfg);

    Command::new(restorer_path()).arg("verify").arg("--from").arg(&bundle).assert().success();
    let x = extract(&bundle, &t.path().join("x"));
    restore(&x).arg("verify").assert().success();
    // sha256sum itself reads the checksum list: no entry name can split a line.
    Command::new("sha256sum").args(["-c", "--quiet", "checksums.sha256"]).current_dir(&x).assert().success();

    let root = t.path().join("root");
    restore(&x)
        .args(["--yes", "--no-install", "--no-services", "--root"])
        .arg(&root)
        .arg("--report")
        .arg(t.path().join("report.json"))
        .assert()
        .success();
    let restored = root.join(data.strip_prefix("/").unwrap());
    let (want, got) = (inventory(&data), inventory(&restored));
    assert_eq!(want.len(), got.len());
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w, g, "{:?}", String::from_utf8_lossy(&w.0));
    }
}
