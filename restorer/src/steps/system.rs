//! Prerequisites and services. Minimal for now: Debian's dpkg/apt-get and systemctl/service.
//! (The fresh-host work makes these complete: dnf, versioned PostgreSQL, health checks.)

use std::path::Path;
use std::process::Command;

use crate::{Error, Result};

/// Packages from the list that dpkg does not report as installed. `None` when this host has no
/// dpkg (the caller says which packages to install by hand).
pub fn missing_packages(packages: &[String]) -> Option<Vec<String>> {
    crate::sys::which("dpkg-query")?;
    Some(
        packages
            .iter()
            .filter(|p| {
                let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", "--", p]).output();
                !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
            })
            .cloned()
            .collect(),
    )
}

/// Versioned PostgreSQL packages (`postgresql-15`, `postgresql-client-15`) become the same
/// major when `available` says the distribution has it, else the nearest newer one (pg_restore
/// reads older dumps; never an older one). Other names pass through.
pub fn resolve_versions(packages: &[String], available: impl Fn(&str) -> bool) -> Vec<String> {
    packages
        .iter()
        .map(|p| {
            let (prefix, major) = match p.rsplit_once('-') {
                Some((pre, v)) if (pre == "postgresql" || pre == "postgresql-client") && v.parse::<u32>().is_ok() => {
                    (pre, v.parse::<u32>().unwrap())
                }
                _ => return p.clone(),
            };
            (major..major + 8).map(|m| format!("{prefix}-{m}")).find(|c| available(c)).unwrap_or_else(|| p.clone())
        })
        .collect()
}

fn apt_has(name: &str) -> bool {
    Command::new("apt-cache")
        .args(["policy", "--", name])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim().starts_with("Candidate:") && !l.contains("(none)"))
        })
        .unwrap_or(false)
}

/// Debian names -> Fedora/RHEL names for dnf.
fn dnf_name(p: &str) -> String {
    if p.starts_with("postgresql-client-") {
        "postgresql".into()
    } else if p.starts_with("postgresql-") && p[11..].parse::<u32>().is_ok() {
        "postgresql-server".into()
    } else {
        p.into()
    }
}

/// Installs packages with apt-get (non-interactive), or dnf as a second choice.
pub fn install(packages: &[String]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    if crate::sys::which("apt-get").is_none() {
        if crate::sys::which("dnf").is_some() && crate::sys::is_root() {
            let names: Vec<String> = packages.iter().map(|p| dnf_name(p)).collect();
            return crate::sys::run(Command::new("dnf").args(["install", "-y", "--"]).args(&names)).map(|_| ());
        }
        return Err(Error::Refused(format!(
            "no apt-get or dnf on this host: install these yourself, then run again with --no-install: {}",
            packages.join(" ")
        )));
    }
    if !crate::sys::is_root() {
        return Err(Error::Refused(format!(
            "installing packages needs root: run as root, or install them and use --no-install: {}",
            packages.join(" ")
        )));
    }
    // The package lists of a fresh host are often empty or stale.
    let _ = crate::sys::run(Command::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").arg("update"));
    let packages = resolve_versions(packages, apt_has);
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends", "--"])
        .args(&packages);
    crate::sys::run(&mut cmd).map(|_| ())
}

/// Starts the local PostgreSQL (a fresh install may leave it stopped): systemctl with systemd,
/// else `service`.
pub fn start_postgres() -> Result<()> {
    let mut cmd = if Path::new("/run/systemd/system").is_dir() {
        let mut c = Command::new("systemctl");
        c.args(["start", "postgresql"]);
        c
    } else {
        let mut c = Command::new("service");
        c.args(["postgresql", "start"]);
        c
    };
    crate::sys::run(&mut cmd).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_versions_resolve_to_same_or_newer() {
        let have = |p: &str| {
            ["postgresql-15", "postgresql-client-15", "postgresql-17", "postgresql-client-17", "nginx"].contains(&p)
        };
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resolve_versions(&v(&["postgresql-15", "postgresql-client-15", "nginx"]), have),
            v(&["postgresql-15", "postgresql-client-15", "nginx"])
        );
        assert_eq!(
            resolve_versions(&v(&["postgresql-16", "postgresql-client-16"]), have),
            v(&["postgresql-17", "postgresql-client-17"])
        );
        // Never older: with nothing newer available the name stays (apt says what is missing).
        assert_eq!(resolve_versions(&v(&["postgresql-18"]), have), v(&["postgresql-18"]));
        assert_eq!(dnf_name("postgresql-15"), "postgresql-server");
        assert_eq!(dnf_name("postgresql-client-15"), "postgresql");
    }
}

/// Starts (restarts) a service: systemctl when systemd is PID 1, else `service`. A name that is
/// a compose file (`/opt/n8n/docker-compose.yaml`) is brought up with `docker compose up -d`.
pub fn start_service(name: &str) -> Result<()> {
    if name.ends_with(".yaml") || name.ends_with(".yml") {
        if crate::sys::which("docker").is_none() {
            return Err(Error::Refused(format!(
                "{name}: docker is not installed (add docker.io and docker-compose to [requirements])"
            )));
        }
        // `docker compose` (v2 plugin), else Debian's `docker-compose` (v1).
        // The name is an absolute path (crate::names::check): never read as an option.
        return crate::sys::run(Command::new("docker").args(["compose", "-f", name, "up", "-d"]))
            .or_else(|_| crate::sys::run(Command::new("docker-compose").args(["-f", name, "up", "-d"])))
            .map(|_| ());
    }
    let mut cmd = if Path::new("/run/systemd/system").is_dir() {
        let mut c = Command::new("systemctl");
        c.args(["restart", "--", name]);
        c
    } else {
        // `service` takes no `--`; the name never starts with '-' (crate::names::check).
        let mut c = Command::new("service");
        c.args([name, "restart"]);
        c
    };
    crate::sys::run(&mut cmd).map(|_| ())
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
    // Plain HTTP natively (a bare host has no curl); https through curl, which packer lists
    // in the bundle's requirements for exactly this.
    match crate::http::fetch("GET", target, &[], None, std::time::Duration::from_secs(5)) {
        Ok(r) if (200..400).contains(&r.status) => Ok(format!("HTTP {}", r.status)),
        Ok(r) if r.status == 0 => Err("no answer".into()),
        Ok(r) => Err(format!("HTTP {}", r.status)),
        Err(e) => Err(e.to_string()),
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
