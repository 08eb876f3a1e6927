//! Pre-flight: what on this host would make the restore fail, found before anything changes and
//! shown by `--dry-run`, each with what to do. The facts are gathered by [`gather`]; the
//! judgement ([`assess`]) is pure and tested from tables.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::manifest::Manifest;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The restore refuses to start while this holds.
    pub blocker: bool,
    /// What is wrong.
    pub what: String,
    /// What to do about it.
    pub fix: String,
}

/// What the host is like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Running as root.
    pub is_root: bool,
    /// Restoring onto `/` (not under `--root`).
    pub real_root: bool,
    /// Free bytes on the file system the files go to (statvfs on the root, or its nearest
    /// existing ancestor).
    pub free_bytes: Option<u64>,
    /// systemd is PID 1.
    pub systemd: bool,
    /// /usr/sbin/policy-rc.d exists and forbids starting services.
    pub policy_rc_d_denies: bool,
    /// Listening TCP ports and the command holding each (when it can be told).
    pub listeners: Vec<(u16, String)>,
    /// Major version of the target PostgreSQL server, when connected.
    pub server_major: Option<u32>,
}

/// What the restore needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Bytes it will write (files, SQLite, and room for the databases).
    pub bytes: u64,
    /// Services it will start (empty with --no-services).
    pub services: Vec<String>,
    /// Newest PostgreSQL major among the dumps restored into the host's server.
    pub dump_major: Option<u32>,
    /// Host ports the compose projects publish: (port, "service S of project P").
    pub published: Vec<(u16, String)>,
}

/// Ports well-known services listen on, and the command names that may hold them.
fn ports_of(service: &str) -> (&'static [u16], &'static [&'static str]) {
    match service {
        "postgresql" => (&[5432], &["postgres", "postmaster"]),
        "nginx" => (&[80, 443], &["nginx"]),
        "apache2" | "httpd" => (&[80, 443], &["apache2", "httpd"]),
        "caddy" => (&[80, 443], &["caddy"]),
        _ => (&[], &[]),
    }
}

/// The judgement, from facts alone.
pub fn assess(f: &HostFacts, n: &Needs) -> Vec<Finding> {
    let mut out = Vec::new();
    if f.real_root && !f.is_root {
        out.push(Finding {
            blocker: true,
            what: "not running as root: files cannot get their owners, services cannot start".into(),
            fix: "run it as root (sudo ./restore), or try it under --root DIR first".into(),
        });
    }
    if let Some(free) = f.free_bytes {
        if free < n.bytes {
            out.push(Finding {
                blocker: true,
                what: format!("not enough free space: the restore needs about {} bytes, {} are free", n.bytes, free),
                fix: "free space on the target file system or restore onto a larger disk".into(),
            });
        }
    }
    if !n.services.is_empty() && !f.systemd && f.policy_rc_d_denies {
        out.push(Finding {
            blocker: true,
            what: "/usr/sbin/policy-rc.d forbids starting services on this host (common in container images)".into(),
            fix: "remove /usr/sbin/policy-rc.d, or restore with --no-services and start them yourself".into(),
        });
    }
    for s in &n.services {
        let (ports, owners) = ports_of(s);
        for p in ports {
            // The holder reads "comm (pid N)" when it could be told.
            let other = |holder: &str| !owners.contains(&holder.split(" (pid").next().unwrap_or(holder));
            if let Some((_, holder)) = f.listeners.iter().find(|(lp, holder)| lp == p && other(holder)) {
                out.push(Finding {
                    blocker: true,
                    what: format!("port {p} is held by {holder}: {s} cannot start"),
                    fix: format!("stop and disable {holder}, or restore with --no-services"),
                });
            }
        }
    }
    for (port, who) in &n.published {
        if let Some((_, holder)) = f.listeners.iter().find(|(lp, _)| lp == port) {
            out.push(Finding {
                blocker: true,
                what: format!("port {port} is held by {holder}: {who} publishes it and could not start"),
                fix: format!("stop and disable {holder}, or restore with --no-services"),
            });
        }
    }
    if let (Some(server), Some(dump)) = (f.server_major, n.dump_major) {
        if server < dump {
            out.push(Finding {
                blocker: true,
                what: format!("the target PostgreSQL server is {server}, the dumps come from {dump}: an older server cannot load them"),
                fix: format!("install postgresql-{dump} (or newer) and point --postgres-url at it"),
            });
        }
    }
    out
}

/// Listening TCP ports from /proc/net/tcp{,6}: (port, socket inode).
pub fn parse_proc_net_tcp(text: &str) -> Vec<(u16, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            Some((port, f[9].parse().ok()?))
        })
        .collect()
}

fn listeners() -> Vec<(u16, String)> {
    let mut socks = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        socks.extend(parse_proc_net_tcp(&std::fs::read_to_string(f).unwrap_or_default()));
    }
    // Which process holds each socket: readable for every process only as root.
    let mut owner = std::collections::HashMap::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default().trim().to_string();
        for fd in std::fs::read_dir(p.path().join("fd")).into_iter().flatten().flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if let Some(inode) =
                    target.to_str().and_then(|t| t.strip_prefix("socket:[")).and_then(|t| t.strip_suffix(']'))
                {
                    owner.insert(inode.to_string(), format!("{comm} (pid {pid})"));
                }
            }
        }
    }
    socks
        .into_iter()
        .map(|(port, inode)| (port, owner.get(&inode.to_string()).cloned().unwrap_or_else(|| "another process".into())))
        .collect()
}

fn policy_rc_d_denies() -> bool {
    let p = Path::new("/usr/sbin/policy-rc.d");
    // policy-rc.d's contract: exit 101 means "action forbidden".
    p.exists() && Command::new(p).args(["nginx", "start"]).status().map(|s| s.code() == Some(101)).unwrap_or(false)
}

/// Gathers the facts and the needs for `manifest` restored under `root`.
pub fn gather(manifest: &Manifest, root: &Path, services: bool, server_major: Option<u32>) -> (HostFacts, Needs) {
    let facts = HostFacts {
        is_root: crate::sys::is_root(),
        real_root: root == Path::new("/"),
        free_bytes: crate::space::of(root).map(|s| s.free),
        systemd: Path::new("/run/systemd/system").is_dir(),
        policy_rc_d_denies: services && policy_rc_d_denies(),
        listeners: if services { listeners() } else { Vec::new() },
        server_major,
    };
    // What is written under the root: captured files and SQLite copies (not the bundle's own
    // support entries: the restore binary, saved images, ... stay in the bundle directory).
    let files: u64 = manifest
        .files
        .iter()
        .map(|f| match f.content {
            crate::manifest::FileContent::File { size, .. } => size,
            _ => 0,
        })
        .sum::<u64>()
        + manifest.sqlite.iter().map(|d| d.size).sum::<u64>();
    // A restored database takes roughly its dump's size again (dumps are uncompressed); the
    // PostgreSQL data directory may live elsewhere, so this is a floor, not a promise.
    // Compose projects start through the Docker engine, not init scripts: policy-rc.d does not
    // apply to them; the ports they publish must be free.
    let is_compose = |s: &String| s.ends_with(".yml") || s.ends_with(".yaml");
    let published = match (&manifest.docker, services && root == Path::new("/")) {
        (Some(d), true) => d
            .compose
            .iter()
            .flat_map(|p| {
                p.services.iter().flat_map(move |s| {
                    s.ports.iter().map(move |port| (*port, format!("service {} of project {}", s.name, p.project)))
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let needs = Needs {
        bytes: files,
        services: if services {
            manifest.services.start.iter().filter(|s| !is_compose(s)).cloned().collect()
        } else {
            Vec::new()
        },
        dump_major: super::docker::host_databases(manifest).map(|d| d.server_version_num / 10000).max(),
        published,
    };
    (facts, needs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_host() -> HostFacts {
        HostFacts { is_root: true, real_root: true, free_bytes: Some(1 << 40), systemd: true, ..Default::default() }
    }

    #[test]
    fn findings_table() {
        let needs = Needs {
            bytes: 1000,
            services: vec!["postgresql".into(), "nginx".into()],
            dump_major: Some(15),
            published: vec![(5678, "service n8n of project n8n".into())],
        };
        let cases: Vec<(HostFacts, Vec<&str>)> = vec![
            (ok_host(), vec![]),
            (HostFacts { is_root: false, ..ok_host() }, vec!["not running as root"]),
            (HostFacts { is_root: false, real_root: false, ..ok_host() }, vec![]),
            (HostFacts { free_bytes: Some(10), ..ok_host() }, vec!["not enough free space"]),
            (HostFacts { systemd: false, policy_rc_d_denies: true, ..ok_host() }, vec!["policy-rc.d"]),
            (HostFacts { systemd: true, policy_rc_d_denies: true, ..ok_host() }, vec![]),
            (
                HostFacts { listeners: vec![(80, "apache2 (pid 7)".into())], ..ok_host() },
                vec!["port 80 is held by apache2"],
            ),
            (
                HostFacts {
                    listeners: vec![(80, "nginx (pid 3)".into()), (5432, "postgres (pid 9)".into())],
                    ..ok_host()
                },
                vec![],
            ),
            // A port a compose service publishes, held by anyone (the project itself has no
            // containers: that is refused on its own).
            (
                HostFacts { listeners: vec![(5678, "node (pid 4)".into())], ..ok_host() },
                vec!["port 5678 is held by node (pid 4): service n8n of project n8n publishes it"],
            ),
            (HostFacts { server_major: Some(13), ..ok_host() }, vec!["server is 13"]),
            (HostFacts { server_major: Some(16), ..ok_host() }, vec![]),
        ];
        for (facts, want) in cases {
            let got = assess(&facts, &needs);
            assert_eq!(got.len(), want.len(), "{facts:?}: {got:?}");
            for (g, w) in got.iter().zip(want) {
                assert!(g.what.contains(w) && g.blocker && !g.fix.is_empty(), "{g:?} vs {w}");
            }
        }
        // Nothing to start: ports and policy-rc.d do not matter.
        let quiet = Needs { services: vec![], published: vec![], ..needs };
        assert!(assess(
            &HostFacts { systemd: false, policy_rc_d_denies: true, listeners: vec![(80, "x".into())], ..ok_host() },
            &quiet
        )
        .is_empty());
    }

    #[test]
    fn parses_listening_sockets() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 31337 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1538 0100007F:C350 01 00000000:00000000 00:00000000 00000000   101        0 4242 1\n";
        assert_eq!(parse_proc_net_tcp(text), vec![(5432, 31337)]);
    }
}
