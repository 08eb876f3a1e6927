//! Shipping bundles off the machine: to object storage (`s3://`, in [`crate::s3`]), or with the
//! system's ssh, so the operator's ssh config, agent and known_hosts apply. Host keys are checked
//! as ssh checks them: nothing here turns checking off. The remote copy is verified (read back,
//! or `sha256sum -c` against the sidecar) before the ship counts as done; every ship is recorded
//! in the catalog, and the daemon's ship to every `[ship]` destination notifies a failure.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use restorer::log::Level;
use restorer::progress::{Counting, Progress, Silent};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::job::{record_remote, record_ship, Log};
use crate::notify::{Event, Kind};

/// `user@host:/path`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `user@host` (or `host`).
    pub host: String,
    /// Remote directory.
    pub path: String,
}

impl Destination {
    /// Parses `user@host:/path`.
    pub fn parse(s: &str) -> Result<Destination> {
        let (host, path) = s.split_once(':').with_context(|| format!("{s:?}: expected user@host:/path"))?;
        if host.is_empty() || path.is_empty() {
            bail!("{s:?}: expected user@host:/path");
        }
        Ok(Destination { host: host.into(), path: path.into() })
    }
}

/// A `[ship]` destination: an ssh one or an object storage one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `user@host:/path`.
    Ssh(Destination),
    /// `s3://bucket/prefix`.
    S3(crate::s3::S3Url),
}

impl Target {
    /// Parses `s3://bucket/prefix` or `user@host:/path`.
    pub fn parse(s: &str) -> Result<Target> {
        if s.starts_with("s3://") {
            Ok(Target::S3(crate::s3::S3Url::parse(s)?))
        } else if s.contains("://") {
            bail!("{s:?}: use user@host:/path (ssh) or s3://bucket/prefix (object storage)")
        } else {
            Ok(Target::Ssh(Destination::parse(s)?))
        }
    }
}

/// How to reach the destination.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// Port.
    pub port: Option<u16>,
    /// Identity file.
    pub identity: Option<std::path::PathBuf>,
    /// Extra `-o KEY=VALUE` options (e.g. UserKnownHostsFile=...).
    pub options: Vec<String>,
    /// Never prompt (for the daemon, and whenever stdin is not a terminal).
    pub batch: bool,
}

/// Quotes a word for the remote shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn common(o: &SshOptions, port_flag: &str) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(p) = o.port {
        a.push(port_flag.to_string());
        a.push(p.to_string());
    }
    if let Some(i) = &o.identity {
        a.push("-i".into());
        a.push(i.display().to_string());
    }
    if o.batch {
        a.push("-o".into());
        a.push("BatchMode=yes".into());
    }
    for opt in &o.options {
        a.push("-o".into());
        a.push(opt.clone());
    }
    a
}

fn explain(stderr: &str) -> String {
    let s = stderr.trim();
    if s.contains("Host key verification failed") || s.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        format!("{s} — the host key is unknown or changed: check it (ssh-keygen -F HOST, ssh HOST once by hand); checking is never turned off")
    } else if s.contains("Permission denied") {
        format!("{s} — the key was refused: check --identity, the agent, and authorized_keys on the destination")
    } else {
        s.to_string()
    }
}

/// Runs a command on the destination, returning its stdout.
pub fn remote(d: &Destination, o: &SshOptions, command: &str) -> Result<String> {
    let out = Command::new("ssh")
        .args(common(o, "-p"))
        .arg(&d.host)
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .context("running ssh (install openssh-client)")?;
    if !out.status.success() {
        bail!("ssh {} failed: {}", d.host, explain(&String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Copies the bundle and its sidecar, then checks the remote copy with `sha256sum -c`.
pub fn ship(bundle: &Path, d: &Destination, o: &SshOptions, progress: &dyn Progress) -> Result<()> {
    let name = bundle.file_name().and_then(|n| n.to_str()).context("bundle has no file name")?;
    let sidecar = bundle.with_file_name(format!("{name}.sha256"));
    if !sidecar.is_file() {
        bail!("{} is missing: the remote copy could not be checked", sidecar.display());
    }
    remote(d, o, &format!("mkdir -p -- {}", sh_quote(&d.path)))?;
    upload(bundle, d, o, name, progress)?;
    upload(&sidecar, d, o, &format!("{name}.sha256"), &Silent)?;
    let check = remote(
        d,
        o,
        &format!("cd -- {} && sha256sum -c -- {}", sh_quote(&d.path), sh_quote(&format!("{name}.sha256"))),
    )
    .with_context(|| format!("the copy on {} does not match the bundle's sha256", d.host))?;
    if !check.contains(": OK") {
        bail!("the copy on {} does not match: {check}", d.host);
    }
    Ok(())
}

/// Streams `file` to `DIR/NAME` on the destination through ssh (`cat` into a hidden `.partial`,
/// renamed when complete): the bytes pass through here, so the bar shows them, and a broken
/// connection never leaves a file under the final name that looks like a bundle. `umask 077`:
/// the copy is 0600 like the original.
fn upload(file: &Path, d: &Destination, o: &SshOptions, name: &str, progress: &dyn Progress) -> Result<()> {
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let dir = d.path.trim_end_matches('/');
    let partial = sh_quote(&format!("{dir}/.{name}.partial"));
    let target = sh_quote(&format!("{dir}/{name}"));
    let mut child = Command::new("ssh")
        .args(common(o, "-p"))
        .arg(&d.host)
        .arg(format!("umask 077 && cat > {partial} && mv -f -- {partial} {target}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ssh (install openssh-client)")?;
    progress.begin(&format!("shipping to {}", d.host), f.metadata().ok().map(|m| m.len()));
    let mut stdin = child.stdin.take().context("ssh stdin")?;
    let copied = std::io::copy(&mut Counting::new(f, progress), &mut stdin);
    drop(stdin);
    progress.end();
    let out = child.wait_with_output().context("waiting for ssh")?;
    if !out.status.success() {
        bail!("copying {name} to {}:{} failed: {}", d.host, d.path, explain(&String::from_utf8_lossy(&out.stderr)));
    }
    copied.with_context(|| format!("sending {} to {}", file.display(), d.host))?;
    Ok(())
}

/// The remote directory a shipped bundle is extracted into.
pub fn extract_dir(d: &Destination, bundle_name: &str) -> String {
    format!("{}/{}", d.path.trim_end_matches('/'), bundle_name.trim_end_matches(".tar.gz"))
}

/// Extracts a shipped bundle on the destination.
pub fn extract(d: &Destination, o: &SshOptions, bundle_name: &str) -> Result<String> {
    let dir = extract_dir(d, bundle_name);
    remote(
        d,
        o,
        &format!(
            "mkdir -p -- {q} && tar xzf {b} -C {q}",
            q = sh_quote(&dir),
            b = sh_quote(&format!("{}/{bundle_name}", d.path.trim_end_matches('/')))
        ),
    )?;
    Ok(dir)
}

/// Runs `./restore ARGS` in the extracted bundle on the destination, its output streamed here.
/// Returns the remote exit code.
pub fn run_restore(d: &Destination, o: &SshOptions, dir: &str, args: &[String]) -> Result<i32> {
    let words: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
    let status = Command::new("ssh")
        .args(common(o, "-p"))
        .arg(&d.host)
        .arg(format!("cd -- {} && ./restore {}", sh_quote(dir), words.join(" ")))
        .status()
        .context("running ssh")?;
    // Killed by a signal: no code to pass on.
    Ok(status.code().unwrap_or(crate::exit::FAILED))
}

/// Resolves a bundle argument to a path (a file, or via the catalog).
pub fn bundle_path(key: &str, config: &Path) -> Result<(PathBuf, Option<Config>)> {
    let p = Path::new(key);
    if p.is_file() {
        return Ok((p.to_path_buf(), Config::load(config).ok()));
    }
    let cfg = Config::load(config)?;
    let (catalog, _) = Catalog::open(&cfg.bundle.output_dir)?;
    let row = crate::job::find(&catalog, key)?;
    Ok((cfg.bundle.output_dir.join(row.file_name), Some(cfg)))
}

/// Ships to object storage and records the verified copy in the catalog of `cfg` (when the
/// output directory exists), besides the `ship` run. `packer ship` and [`ship_all`] ship to
/// object storage through here.
pub fn ship_s3(
    cfg: Option<&Config>,
    s3: &crate::config::S3Section,
    bundle: &Path,
    url: &crate::s3::S3Url,
    destination: &str,
    progress: &dyn restorer::progress::Progress,
) -> Result<crate::s3::Shipped> {
    let started = Utc::now();
    let result = crate::s3::ship(bundle, url, s3, progress);
    if let Some(cfg) = cfg {
        let unit = result.as_ref().map(|_| ()).map_err(|e| anyhow::anyhow!("{e:#}"));
        record_ship(cfg, started, bundle, destination, &unit);
        if let Ok(shipped) = &result {
            record_remote(cfg, bundle, shipped)?;
        }
    }
    result
}

/// Ships a new bundle to every `[ship]` destination, never prompting; each result is logged and
/// recorded, and a failure notified (one destination failing does not stop the others).
pub fn ship_all(cfg: &Config, bundle: &Path, log: Log<'_>) {
    let opts = SshOptions {
        port: cfg.ship.port,
        identity: cfg.ship.identity.clone(),
        options: cfg.ship.ssh_options.clone(),
        batch: true,
    };
    for dest in &cfg.ship.destinations {
        let started = Utc::now();
        let result = match Target::parse(dest) {
            // Recorded (run and remote copy) by ship_s3 itself.
            Ok(Target::S3(url)) => ship_s3(Some(cfg), &cfg.ship.s3, bundle, &url, dest, &Silent).map(|_| ()),
            Ok(Target::Ssh(d)) => {
                let r = ship(bundle, &d, &opts, &Silent);
                record_ship(cfg, started, bundle, dest, &r);
                r
            }
            Err(e) => {
                let r = Err(e);
                record_ship(cfg, started, bundle, dest, &r);
                r
            }
        };
        match &result {
            Ok(()) => log(Level::Notice, &format!("shipped to {dest} (verified)")),
            Err(e) => {
                log(Level::Error, &format!("ship to {dest} FAILED: {}", crate::error_text::chain(e)));
                let mut ev = Event::new(Kind::ShipFailed, format!("bundle not shipped to {dest}"));
                ev.bundle = Some(bundle.display().to_string());
                ev.error = Some(crate::error_text::chain(e));
                ev.what_to_do = Some(if dest.starts_with("s3://") {
                    "check the bucket, [ship.s3] endpoint and region, and the credentials (environment or credentials_file)".into()
                } else {
                    "check ssh access to the destination (keys, known_hosts, disk space there)".into()
                });
                crate::job::notify_and_log(cfg, &ev, log);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_and_quoting() {
        assert_eq!(
            Destination::parse("root@10.0.0.2:/srv/b").unwrap(),
            Destination { host: "root@10.0.0.2".into(), path: "/srv/b".into() }
        );
        assert!(Destination::parse("host-only").is_err());
        assert!(Destination::parse("host:").is_err());
        assert_eq!(sh_quote("it's here"), r"'it'\''s here'");
        assert!(matches!(Target::parse("s3://bucket/p").unwrap(), Target::S3(_)));
        assert!(matches!(Target::parse("root@h:/srv").unwrap(), Target::Ssh(_)));
        assert!(Target::parse("https://bucket/p").is_err());
    }
}
