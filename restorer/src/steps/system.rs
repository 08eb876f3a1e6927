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
