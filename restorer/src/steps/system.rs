//! Prerequisites and services. Minimal for now: Debian's dpkg/apt-get and systemctl/service.
//! (The fresh-host work makes these complete: dnf, versioned PostgreSQL, health checks.)

use std::path::Path;
use std::process::Command;

use crate::{Error, Result};

/// Packages from the list that dpkg does not report as installed. `None` when this host has no
/// dpkg (the caller says which packages to install by hand).
pub fn missing_packages(packages: &[String]) -> Option<Vec<String>> {
    super::which("dpkg-query")?;
    Some(
        packages
            .iter()
            .filter(|p| {
                let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
                !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
            })
            .cloned()
            .collect(),
    )
}

/// Installs packages with apt-get (non-interactive).
pub fn install(packages: &[String]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    if super::which("apt-get").is_none() {
        return Err(Error::Refused(format!(
            "no apt-get on this host: install these yourself, then run again with --no-install: {}",
            packages.join(" ")
        )));
    }
    if !super::is_root() {
        return Err(Error::Refused(format!(
            "installing packages needs root: run as root, or install them and use --no-install: {}",
            packages.join(" ")
        )));
    }
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive").args(["install", "-y", "--no-install-recommends"]).args(packages);
    super::run(&mut cmd).map(|_| ())
}

/// Starts (restarts) a service: systemctl when systemd is PID 1, else `service`.
pub fn start_service(name: &str) -> Result<()> {
    let mut cmd = if Path::new("/run/systemd/system").is_dir() {
        let mut c = Command::new("systemctl");
        c.args(["restart", name]);
        c
    } else {
        let mut c = Command::new("service");
        c.args([name, "restart"]);
        c
    };
    super::run(&mut cmd).map(|_| ())
}

/// One health check's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// The URL checked.
    pub target: String,
    /// It answered.
    pub ok: bool,
    /// Tries made.
    pub attempts: u32,
    /// The last answer or error.
    pub detail: String,
}

fn probe(target: &str) -> std::result::Result<String, String> {
    if let Some(addr) = target.strip_prefix("tcp://") {
        use std::net::ToSocketAddrs;
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| format!("{addr}: {e}"))?.collect();
        for a in &addrs {
            if std::net::TcpStream::connect_timeout(a, std::time::Duration::from_secs(3)).is_ok() {
                return Ok(format!("{a} accepts connections"));
            }
        }
        return Err(format!("{addr}: connection refused or timed out"));
    }
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", target])
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match code.parse::<u16>() {
        Ok(c) if (200..400).contains(&c) => Ok(format!("HTTP {c}")),
        Ok(0) | Err(_) => Err("no answer".into()),
        Ok(c) => Err(format!("HTTP {c}")),
    }
}

/// Checks every target, each up to `tries` times `pause` apart (services take a moment).
pub fn health(targets: &[String], tries: u32, pause: std::time::Duration) -> Vec<Health> {
    targets
        .iter()
        .map(|t| {
            let mut last = String::new();
            for attempt in 1..=tries.max(1) {
                match probe(t) {
                    Ok(d) => return Health { target: t.clone(), ok: true, attempts: attempt, detail: d },
                    Err(e) => last = e,
                }
                if attempt < tries {
                    std::thread::sleep(pause);
                }
            }
            Health { target: t.clone(), ok: false, attempts: tries.max(1), detail: last }
        })
        .collect()
}
