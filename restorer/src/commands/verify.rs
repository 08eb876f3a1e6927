//! `restore verify`: every entry against its digest, nothing extracted from an archive.

use std::path::{Path, PathBuf};

use super::term;
use crate::{exit, open, restore, unpack, Result};

/// Verifies what `from` names; exit 0 only when every digest matched.
pub(super) fn run(
    from: Option<&Path>,
    identity: Option<&Path>,
    unpacked: &mut Option<PathBuf>,
    json: bool,
) -> Result<i32> {
    // An archive is read itself, extracting nothing.
    let archive = match from {
        Some(from) => open::archive_stem(from)?.map(|_| from.to_path_buf()),
        None => None,
    };
    let dir = match &archive {
        Some(a) => a.clone(),
        None => {
            // A sealed directory is read as it is: without the key its ciphertext is checked.
            let dir = from.map(Path::to_path_buf).unwrap_or_else(restore::default_bundle_dir);
            if unpack::is_sealed_dir(&dir) {
                dir
            } else {
                let opened = open::open(from, identity, term(), &mut super::log)?;
                *unpacked = opened.unpacked;
                opened.dir
            }
        }
    };
    let checked = open::check(archive.as_deref(), &dir, identity, term())?;
    let report = &checked.report;
    if json {
        println!(
            "{}",
            serde_json::json!({"bundle_dir": dir, "created_at": checked.manifest.as_ref().map(|m| m.created_at), "ok": report.ok(), "sealed": checked.sealed, "contents_checked": checked.contents_checked, "report": report})
        );
    } else {
        if !checked.contents_checked {
            println!("sealed bundle: the ciphertext was checked; its contents need the key (--identity FILE)");
        }
        print!("{}", report.render_problems());
        println!(
            "{}: {} entries, {} bytes checked, {} problem(s)",
            if report.ok() { "OK" } else { "CORRUPT" },
            report.entries_checked,
            report.bytes_checked,
            report.problems.len()
        );
    }
    Ok(if report.ok() { exit::OK } else { exit::CORRUPT })
}
