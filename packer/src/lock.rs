//! One backup at a time per output directory: `<output_dir>/.packer.lock`, held with flock(2)
//! (`File::try_lock`). The kernel releases the lock when its process ends, however it ends (a
//! crash, kill -9, the OOM killer), so there is no stale take-over to race on and no pid to
//! mistake for a live one. The file also records the holder's pid, host, command and start
//! time, only for the "held by" message and to notice that the previous run died.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Lock file name.
pub const FILE: &str = ".packer.lock";

#[derive(Debug, Serialize, Deserialize)]
struct Owner {
    pid: u32,
    host: String,
    started: DateTime<Utc>,
    command: String,
}

/// Another run holds the lock (the text names it and the lock file): its own type, so packer
/// exits with [`crate::exit::LOCKED`].
#[derive(Debug)]
pub struct Held(pub String);

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Held {}

/// A held lock; released on drop (the file is removed while still locked, then closed).
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    file: File,
}

fn host() -> String {
    sysinfo::System::host_name().unwrap_or_default()
}

fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn describe(text: &str) -> Option<String> {
    let o: Owner = serde_json::from_str(text).ok()?;
    Some(format!("{} (pid {} on {}, since {})", o.command, o.pid, o.host, o.started.format("%Y-%m-%d %H:%M:%S UTC")))
}

impl Lock {
    /// Takes the lock for `command`. Returns the lock and, when the previous holder ended
    /// without releasing it (its record is still in the file), a warning naming that run.
    pub fn acquire(dir: &Path, command: &str) -> Result<(Lock, Option<String>)> {
        let path = dir.join(FILE);
        let me = Owner { pid: std::process::id(), host: host(), started: Utc::now(), command: command.into() };
        // A holder removes the file before closing it; a lock taken on a file that was removed
        // meanwhile is no lock: take it again on the file now at the path.
        for _ in 0..16 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    let who = describe(&text).unwrap_or_else(|| "another packer".into());
                    return Err(Held(format!("{who} holds {}; wait for it to finish", path.display())).into());
                }
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            }
            if !same_file(&file, &path) {
                continue;
            }
            let mut previous = String::new();
            let _ = file.read_to_string(&mut previous);
            let warning = (!previous.trim().is_empty()).then(|| {
                format!(
                    "the previous run, {}, ended without releasing {} (a crash, kill -9 or a power cut); the lock was free",
                    describe(&previous).unwrap_or_else(|| "of unknown origin".into()),
                    path.display()
                )
            });
            file.set_len(0).and_then(|_| file.rewind()).with_context(|| format!("truncating {}", path.display()))?;
            file.write_all(serde_json::to_string(&me)?.as_bytes())
                .and_then(|_| file.sync_data())
                .with_context(|| format!("writing {}", path.display()))?;
            return Ok((Lock { path, file }, warning));
        }
        bail!("could not take {}: it keeps being replaced (another run racing for it)", path.display())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still locked: a run that opens it now finds it gone (same_file) and
        // retries on a new file. The flock itself goes with the descriptor.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second acquire while the lock is held fails naming the holder; once released, the lock
    /// is free again and the file is gone.
    #[test]
    fn second_holder_is_refused_naming_the_first() {
        let t = tempfile::tempdir().unwrap();
        let (held, w) = Lock::acquire(t.path(), "daemon").unwrap();
        assert!(w.is_none());
        let e = Lock::acquire(t.path(), "create").unwrap_err().to_string();
        assert!(e.contains("daemon") && e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(held);
        assert!(!t.path().join(FILE).exists());
        let (_l, w) = Lock::acquire(t.path(), "create").unwrap();
        assert!(w.is_none());
    }

    /// Regression (issue 8): a dead holder's lock is simply free, whatever its recorded pid
    /// (even one that is alive now, as a reused pid would be): no pid check to race on.
    #[test]
    fn a_dead_holders_lock_is_free_even_with_a_live_pid() {
        let t = tempfile::tempdir().unwrap();
        // What a killed run leaves: its record, no flock (pid 1 is always alive).
        fs::write(
            t.path().join(FILE),
            serde_json::to_string(&Owner { pid: 1, host: host(), started: Utc::now(), command: "create".into() })
                .unwrap(),
        )
        .unwrap();
        let (_l, w) = Lock::acquire(t.path(), "create").unwrap();
        let w = w.unwrap();
        assert!(w.contains("pid 1") && w.contains("without releasing"), "{w}");
    }
}
