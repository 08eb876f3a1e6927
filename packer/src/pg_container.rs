//! A throwaway PostgreSQL container for deep verification: started from the image a database
//! service ran, under a unique name, on no published port, with a generated password (handed to
//! `docker run` through its environment, never on a command line); reached at its network
//! address as the restore reaches a database container. Removed with its anonymous volumes
//! (`docker rm -f -v`) when dropped, also after an error or Ctrl-C.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use restorer::container;
use restorer::pg::PgTarget;

/// The label every throwaway container carries, so an operator can find one a killed packer
/// left behind: `docker ps -a --filter label=n8n-backup.deep-verify`.
pub const LABEL: &str = "n8n-backup.deep-verify";

/// How long a container may take to accept connections: a first start runs initdb and the
/// image's init scripts, a minute or more on a loaded host.
const READY_WITHIN: Duration = Duration::from_secs(300);

/// A container's name; dropped = the container removed, with its anonymous volumes.
struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "--force", "--volumes", "--"]).arg(&self.0).output();
    }
}

/// A running throwaway container; dropped = removed, with its anonymous volumes.
pub struct PgContainer {
    /// Its name (`packer-verify-<pid>-<random>`).
    pub name: String,
    _removed: Removed,
    /// The image it runs, as given to `docker run` (an id or a reference).
    pub image: String,
    /// How to reach its server: its address, user `postgres`, the generated password.
    pub target: PgTarget,
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl PgContainer {
    /// Starts a container of `image` and waits until its server accepts connections over its
    /// network address (the official image's init server listens on its socket only, so an
    /// answer there is the real server). `stop` (Ctrl-C) ends the wait.
    pub fn start(image: &str, stop: &AtomicBool) -> Result<PgContainer> {
        let name = format!("packer-verify-{}-{}", std::process::id(), random_hex(4)?);
        let password = random_hex(16)?;
        // Not `--rm`: a container that exits during its start must stay until its log is read;
        // Drop removes it (`rm -f -v`) in every case.
        let mut run = Command::new("docker");
        run.args(["run", "--detach", "--name", &name, "--label", LABEL, "--env", "POSTGRES_USER=postgres"])
            .args(["--env", "POSTGRES_PASSWORD"])
            .env("POSTGRES_PASSWORD", &password)
            .arg("--")
            .arg(image)
            .stdin(Stdio::null());
        // The container may exist even when `docker run` failed late: removed on every path.
        let removed = Removed(name.clone());
        restorer::sys::run(&mut run).with_context(|| format!("starting a container of image {image}"))?;
        let since = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted while container {name} was starting; it is being removed");
            }
            let facts = container::inspect(&name)?;
            if !facts.running {
                bail!("container {name} of image {image} exited while starting: {}", log_tail(&name));
            }
            let last = match facts.pg_target(Some("postgres")).and_then(|t| t.connect().map(|_| t)) {
                Ok(target) => return Ok(PgContainer { name, _removed: removed, image: image.to_string(), target }),
                Err(e) => e,
            };
            if since.elapsed() > READY_WITHIN {
                bail!(
                    "container {name} of image {image} did not accept connections within {} s ({last}): {}",
                    READY_WITHIN.as_secs(),
                    log_tail(&name)
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// `pg_restore` inside the container, the dump on its stdin, over 127.0.0.1 with the password
    /// in the environment of `docker exec` (never on its command line). Owners and privileges
    /// are not restored: the roles of the source server do not exist here, and the checks
    /// compare content only.
    pub fn pg_restore(&self, database: &str, dump: &std::path::Path) -> Result<()> {
        let f = std::fs::File::open(dump).with_context(|| format!("reading {}", dump.display()))?;
        let mut cmd = container::exec(
            &self.name,
            self.target.password().as_deref(),
            &[
                "pg_restore",
                "--exit-on-error",
                "--no-owner",
                "--no-privileges",
                "--host",
                "127.0.0.1",
                "--username",
                self.target.user(),
                "--dbname",
                database,
            ],
        );
        cmd.stdin(f);
        restorer::sys::run(&mut cmd)?;
        Ok(())
    }
}

/// The last lines of a container's log, for an error message.
fn log_tail(name: &str) -> String {
    match Command::new("docker").args(["logs", "--tail", "8", "--"]).arg(name).output() {
        Ok(o) => {
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            format!("its log ends: {}", lines.join(" | "))
        }
        Err(e) => format!("docker logs failed: {e}"),
    }
}

/// An image `docker load`ed from the bundle because this host did not have it: removed again
/// (each tag it brought, or its id) when dropped, after the containers that ran it, so the
/// engine is left as it was found. Loading only happens when none of its tags exists here, so
/// removing them takes nothing away from the host.
pub struct LoadedImage {
    names: Vec<String>,
}

impl LoadedImage {
    /// `docker load --input TAR` of an image saved with `references` and `id`.
    pub fn load(tar: &std::path::Path, references: &[String], id: &str) -> Result<LoadedImage> {
        let names = if references.is_empty() { vec![id.to_string()] } else { references.to_vec() };
        let loaded = LoadedImage { names };
        restorer::sys::run(Command::new("docker").args(["load", "--quiet", "--input"]).arg(tar).stdin(Stdio::null()))
            .with_context(|| format!("docker load of the bundle's image {id}"))?;
        if container::image_id(id).is_none() {
            bail!("docker load of {} did not bring image {id}", tar.display());
        }
        Ok(loaded)
    }
}

impl Drop for LoadedImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "--"]).args(&self.names).output();
    }
}
