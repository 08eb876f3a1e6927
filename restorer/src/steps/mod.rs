//! The restore's steps, each the thin I/O that carries out part of a [`crate::plan::Plan`].

pub mod accounts;
pub mod docker;
pub mod files;
pub mod local_pg;
pub mod n8n;
pub mod postgres;
pub mod preflight;
pub mod roles;
pub mod system;
pub mod validate;

use std::process::Command;

use crate::{Error, Result};

/// True when the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs a command to completion; on failure the error names the command, its exit status and
/// the last lines of its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let name = format!("{:?}", cmd.get_program()).trim_matches('"').to_string();
    let first_arg = cmd.get_args().next().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
    let out =
        cmd.output().map_err(|e| Error::Command { command: format!("{name} {first_arg}"), detail: e.to_string() })?;
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
        Err(Error::Command {
            command: format!("{name} {first_arg}"),
            detail: format!("{} : {}", out.status, tail.join(" | ")),
        })
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
