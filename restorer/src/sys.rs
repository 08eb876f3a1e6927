//! Host plumbing both binaries use: who we run as, running a program with an error that says
//! what failed, finding programs (PATH, PostgreSQL's versioned directories). One home, so the
//! restore's steps, the checkpoint and packer all point here and nowhere at each other.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result};

/// How many cores this process may use (at least 1): the parallel gzip's threads, pg_restore's
/// jobs.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// fsyncs a directory, so the entries created, renamed or removed in it survive a power cut.
/// Opened read-only as a directory: fsync is all that is done with it.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECTORY.bits() as i32)
        .open(dir)?
        .sync_all()
}

/// True when the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs a command to completion; on failure the error names the command, its exit status and
/// the last lines of its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let name = command_name(cmd);
    judge(&name, cmd.output())
}

/// A command running on a thread of its own (its output collected there), for a step that
/// overlaps others: a database's pg_restore while the files are written.
pub struct Running {
    name: String,
    handle: std::thread::JoinHandle<(std::io::Result<std::process::Output>, std::time::Instant)>,
}

/// Starts `cmd`; [`Running::wait`] judges it as [`run`] does.
pub fn start(mut cmd: Command) -> Running {
    let name = command_name(&cmd);
    let handle = std::thread::spawn(move || {
        let out = cmd.output();
        (out, std::time::Instant::now())
    });
    Running { name, handle }
}

impl Running {
    /// Waits for the command; returns its stdout and when it ended, or the error [`run`] gives.
    pub fn wait(self) -> (Result<String>, std::time::Instant) {
        match self.handle.join() {
            Ok((out, ended)) => (judge(&self.name, out), ended),
            Err(_) => (
                Err(Error::Command { command: self.name, detail: "the thread waiting for it panicked".into() }),
                std::time::Instant::now(),
            ),
        }
    }
}

/// The program and its first argument, as errors name a command.
fn command_name(cmd: &Command) -> String {
    let name = format!("{:?}", cmd.get_program()).trim_matches('"').to_string();
    let first_arg = cmd.get_args().next().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{name} {first_arg}")
}

/// A finished command's stdout, or an error with its exit status and the telling lines of its
/// stderr.
fn judge(command: &str, out: std::io::Result<std::process::Output>) -> Result<String> {
    let out = out.map_err(|e| Error::Command { command: command.to_string(), detail: e.to_string() })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The server's own words first (pg_restore: "... ERROR:  relation ... already exists"),
        // which a tail of the output often cuts off; then the last lines.
        let errors: Vec<&str> =
            stderr.lines().filter(|l| l.contains("ERROR:") || l.contains("FATAL:")).take(3).collect();
        let tail: Vec<&str> = stderr.lines().rev().filter(|l| !errors.contains(l)).take(8).collect();
        let tail: Vec<&str> = errors.into_iter().chain(tail.into_iter().rev()).collect();
        Err(Error::Command { command: command.to_string(), detail: format!("{} : {}", out.status, tail.join(" | ")) })
    }
}

/// Finds a program on PATH (in-process: `which` is not on every host).
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Major version of a `pg_restore`/`pg_dump` binary (`pg_restore (PostgreSQL) 15.18` -> 15).
pub fn tool_major(bin: &Path) -> Option<u32> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    parse_major(&String::from_utf8_lossy(&out.stdout))
}

/// Parses the major version out of `--version` output.
pub fn parse_major(text: &str) -> Option<u32> {
    let v = text.split_whitespace().find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    v.split('.').next()?.parse().ok()
}

/// Finds a PostgreSQL client tool (`pg_dump`, `pg_restore`) at least as new as the server it
/// works with: in `pg_bin` when given, else Debian's versioned directories (newest first), then
/// PATH. An older tool cannot read (pg_restore) or write (pg_dump) a newer server's format.
pub fn find_pg_tool(tool: &str, pg_bin: Option<&Path>, need_major: u32) -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = pg_bin {
        candidates.push(dir.join(tool));
    } else {
        let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin").join(tool))))
            .collect();
        versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versioned.into_iter().map(|v| v.1));
        candidates.extend(which(tool));
    }
    let mut seen = Vec::new();
    for c in candidates {
        if !c.is_file() {
            continue;
        }
        match tool_major(&c) {
            Some(m) if m >= need_major => return Ok(c),
            Some(m) => seen.push(format!("{} is {m}", c.display())),
            None => seen.push(format!("{} did not report a version", c.display())),
        }
    }
    Err(Error::Refused(format!(
        "no {tool} of PostgreSQL {need_major} or newer found ({}); install postgresql-client-{need_major} or name the directory holding it (--pg-bin)",
        if seen.is_empty() { "none on this host".to_string() } else { seen.join(", ") }
    )))
}

/// A free temporary name beside `target` (same directory, so a rename is atomic). Short and
/// fixed: `.<name>.partial` would not fit beside a 255-byte name.
pub fn temp_beside(target: &Path) -> PathBuf {
    (0u32..)
        .map(|i| target.with_file_name(format!(".restore-partial-{}-{i}", std::process::id())))
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .expect("a free temporary name")
}

/// Writes `bytes` to `path` with `mode`, never half and never through a link: a temporary
/// file created new beside it (O_NOFOLLOW, 0600 while written), synced, given its mode, then
/// renamed over `path` (a rename replaces a link instead of writing through it). On failure
/// the temporary file is removed and `path` is as it was.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = temp_beside(path);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("writing", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_a_link_instead_of_following_it() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        let report = t.path().join("report.json");
        std::os::unix::fs::symlink(&victim, &report).unwrap();
        write_atomically(&report, b"{}", 0o640).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(std::fs::read_to_string(&report).unwrap(), "{}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::symlink_metadata(&report).unwrap().permissions().mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2, "no temporary file left");
        // A directory that refuses the write leaves nothing behind either.
        assert!(write_atomically(&t.path().join("missing/dir/f"), b"x", 0o600).is_err());
    }

    #[test]
    fn parses_tool_versions() {
        assert_eq!(parse_major("pg_restore (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"), Some(15));
        assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("nothing"), None);
    }
}
