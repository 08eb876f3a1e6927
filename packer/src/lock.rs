//! One backup at a time per output directory: `<output_dir>/.packer.lock` holds the owner's pid,
//! host and start time. A lock whose process is gone (a crash, a power cut) is taken over with a
//! warning, never a silent stop; a live one makes the second run fail with who holds it.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
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

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

fn host() -> String {
    sysinfo::System::host_name().unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Lock {
    /// Takes the lock for `command`. Returns the lock and, when a stale lock was taken over, a
    /// warning describing it.
    pub fn acquire(dir: &Path, command: &str) -> Result<(Lock, Option<String>)> {
        let path = dir.join(FILE);
        let me = Owner { pid: std::process::id(), host: host(), started: Utc::now(), command: command.into() };
        let mut warning = None;
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(serde_json::to_string(&me)?.as_bytes())
                        .with_context(|| format!("writing {}", path.display()))?;
                    return Ok((Lock { path }, warning));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let text = fs::read_to_string(&path).unwrap_or_default();
                    match serde_json::from_str::<Owner>(&text) {
                        Ok(o) if o.host == me.host && alive(o.pid) && o.pid != me.pid => bail!(
                            "another packer ({}, pid {}, since {}) holds {}; wait for it to finish",
                            o.command,
                            o.pid,
                            o.started.format("%Y-%m-%d %H:%M:%S UTC"),
                            path.display()
                        ),
                        Ok(o) if o.host != me.host => bail!(
                            "{} is held by host {} (pid {}, since {}); is the output directory shared? Remove the file if that host is gone",
                            path.display(),
                            o.host,
                            o.pid,
                            o.started
                        ),
                        Ok(o) => {
                            warning = Some(format!(
                                "took over a stale lock {} left by {} (pid {}, since {}), whose process is gone",
                                path.display(),
                                o.command,
                                o.pid,
                                o.started.format("%Y-%m-%d %H:%M:%S UTC")
                            ))
                        }
                        Err(_) => warning = Some(format!("took over an unreadable lock file {}", path.display())),
                    }
                    fs::remove_file(&path).with_context(|| format!("removing stale lock {}", path.display()))?;
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        bail!("could not take {} (another run raced for it)", path.display())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_stale_lock_taken_over() {
        let t = tempfile::tempdir().unwrap();
        let (held, w) = Lock::acquire(t.path(), "create").unwrap();
        assert!(w.is_none());
        // Same pid counts as us: simulate another live process with pid 1 (always alive).
        fs::write(
            t.path().join(FILE),
            serde_json::to_string(&Owner { pid: 1, host: host(), started: Utc::now(), command: "daemon".into() })
                .unwrap(),
        )
        .unwrap();
        let e = Lock::acquire(t.path(), "create").unwrap_err();
        assert!(e.to_string().contains("pid 1"), "{e}");
        // A pid that cannot exist: stale.
        fs::write(
            t.path().join(FILE),
            serde_json::to_string(&Owner {
                pid: u32::MAX - 1,
                host: host(),
                started: Utc::now(),
                command: "daemon".into(),
            })
            .unwrap(),
        )
        .unwrap();
        let (_l, w) = Lock::acquire(t.path(), "create").unwrap();
        assert!(w.unwrap().contains("stale"));
        drop(held);
    }
}
