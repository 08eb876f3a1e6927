//! Issue 8, class 6: a restore that fails half-way (the target file system runs out of room)
//! rolls back to exactly what was there before: no temporary file, no new directory, and the
//! rollback reports itself complete.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a skipped case says why")]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;
use restorer::exit;

fn snapshot(root: &Path) -> Vec<String> {
    tree(root)
        .into_iter()
        .map(|p| {
            let m = fs::symlink_metadata(root.join(&p)).unwrap();
            format!("{p} {:o} {} {}", m.mode(), m.len(), m.mtime())
        })
        .collect()
}

struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A target file system that fills half-way through the files step: once by bytes (a temporary
/// file is created, then its write fails: the case that used to leave a `.restore-partial`
/// behind and report the rollback incomplete), once by inodes (a create fails). Each time: exit
/// 1, "rolled back", and the target is exactly as before, existing content included, with no
/// temporary file or new directory left.
#[test]
fn full_disk_mid_restore_rolls_back_to_exactly_before() {
    for opts in ["size=6400k,nr_inodes=10000", "size=8m,nr_inodes=60"] {
        full_disk_case(opts);
    }
}

fn full_disk_case(mount_opts: &str) {
    let is_root = fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    if !is_root {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("src/data");
    // 1800 one-line files: a few KB by the pre-flight's count, but a 4 KiB page each on tmpfs:
    // more than 6400k.
    for d in 0..20 {
        let dir = data.join(format!("d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..90 {
            fs::write(dir.join(format!("f{f}")), format!("{d}/{f}\n")).unwrap();
        }
    }
    let cfg = t.path().join("packer.toml");
    fs::write(
        &cfg,
        format!(
            "[bundle]\noutput_dir = \"{}\"\nname = \"full\"\n\n[[files]]\nkind = \"data\"\npaths = [\"{}\"]\n",
            t.path().join("out").display(),
            data.display()
        ),
    )
    .unwrap();
    let bundle = create(&cfg);
    let x = extract(&bundle, &t.path().join("x"));

    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", mount_opts, "tmpfs"]).arg(&root).status().unwrap();
    assert!(st.success(), "mounting a tmpfs failed");
    let _m = Mount(root.clone());
    // Something already there, which must survive untouched. The restored tree starts with
    // the parents of src/data (several new directories), then 20 directories of 90 files.
    fs::create_dir_all(root.join("existing/dir")).unwrap();
    fs::write(root.join("existing/dir/keep.conf"), "keep me\n").unwrap();
    let before = snapshot(&root);

    let out = restore(&x)
        .args(["--yes", "--no-install", "--no-services", "--root"])
        .arg(&root)
        .arg("--checkpoint-dir")
        .arg(t.path().join("cp"))
        .arg("--report")
        .arg(t.path().join("report.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(exit::FAILED), "{mount_opts}: {stdout}\n{stderr}");
    assert!(stderr.contains("No space left") || stdout.contains("No space left"), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&fs::read(t.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "failed_rolled_back", "{report:#}");
    assert_eq!(snapshot(&root), before, "{mount_opts}: the target is not as it was");
}
