//! `[serve]`: where the console listens and how it authenticates, and the rule that keeps it off
//! the network unless TLS protects it (its own, or a reverse proxy's).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where `packer serve` listens without `--listen` or `[serve] listen`: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8480";

/// The token file's name in the output directory when `[serve] token_file` is not set.
pub const DEFAULT_TOKEN_FILE: &str = "console.token";

/// `[serve]` in packer.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Address and port [default: 127.0.0.1:8480].
    pub listen: Option<String>,
    /// An argon2 PHC string (`packer serve --hash-password` prints one). Without it the console
    /// accepts the token in `token_file` instead.
    pub password_hash: Option<String>,
    /// Where the login token lives when no password_hash is set (created 0600 on first start)
    /// [default: OUTPUT_DIR/console.token].
    pub token_file: Option<PathBuf>,
    /// PEM certificate chain: the console speaks HTTPS itself.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for tls_cert.
    pub tls_key: Option<PathBuf>,
    /// A reverse proxy in front terminates TLS: allows a non-loopback listen address without
    /// tls_cert, and takes the client address for login rate limiting from X-Forwarded-For.
    #[serde(default)]
    pub behind_proxy: bool,
    /// A login lasts this many hours [default: 12].
    pub session_hours: Option<u32>,
}

impl ServeSection {
    /// Relative paths are relative to the configuration file's directory, as everywhere else.
    pub fn resolve(&mut self, base: &Path) {
        for p in [&mut self.token_file, &mut self.tls_cert, &mut self.tls_key].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// Why the console may not listen on `addr`, or None when it may: anything but a loopback
/// address carries the login password and the session cookie over the network, so it needs TLS
/// (`tls` set) or a statement that a reverse proxy terminates it (`behind_proxy`).
pub fn listen_refusal(addr: SocketAddr, tls: bool, behind_proxy: bool) -> Option<String> {
    if addr.ip().is_loopback() || tls || behind_proxy {
        return None;
    }
    Some(format!(
        "{addr} is not a loopback address: passwords and session cookies would cross the network in clear. \
         Set [serve] tls_cert and tls_key (or --tls-cert/--tls-key), or, when a reverse proxy terminates TLS, \
         [serve] behind_proxy = true (or --behind-proxy); or listen on 127.0.0.1"
    ))
}

/// Whether a request's Host header names a loopback address or `localhost` (any port: an
/// `ssh -L` forward may use another). A console on loopback answers only those, so a web page
/// whose name an attacker pointed at 127.0.0.1 (DNS rebinding) cannot talk to it.
pub fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => match host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    /// Loopback names with or without a port pass; any other name (a rebinding attacker's) does not.
    #[test]
    fn only_loopback_hosts() {
        for ok in ["127.0.0.1:8480", "127.0.0.1", "localhost:9000", "LOCALHOST", "[::1]:8480", "127.1.2.3:1"] {
            assert!(super::loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example:8480", "evil.example", "192.168.1.2:8480", "", "[::2]:80", "127.0.0.1.evil.example"] {
            assert!(!super::loopback_host(bad), "{bad}");
        }
    }

    use super::*;

    /// Loopback is always allowed; any other address only with TLS or behind a proxy.
    #[test]
    fn non_loopback_needs_tls_or_a_proxy() {
        let lo: SocketAddr = "127.0.0.1:8480".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8480".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8480".parse().unwrap();
        let lan: SocketAddr = "192.168.1.5:443".parse().unwrap();
        for (addr, tls, proxy, ok) in [
            (lo, false, false, true),
            (lo6, false, false, true),
            (any, false, false, false),
            (lan, false, false, false),
            (any, true, false, true),
            (lan, false, true, true),
        ] {
            assert_eq!(listen_refusal(addr, tls, proxy).is_none(), ok, "{addr} tls={tls} proxy={proxy}");
        }
        assert!(listen_refusal(any, false, false).unwrap().contains("behind_proxy"));
    }

    /// Relative paths resolve against the configuration's directory; absolute ones stay.
    #[test]
    fn paths_resolve_against_the_config_dir() {
        let mut s = ServeSection {
            token_file: Some("tok".into()),
            tls_cert: Some("/etc/ssl/c.pem".into()),
            ..Default::default()
        };
        s.resolve(Path::new("/etc/packer"));
        assert_eq!(s.token_file.unwrap(), Path::new("/etc/packer/tok"));
        assert_eq!(s.tls_cert.unwrap(), Path::new("/etc/ssl/c.pem"));
    }
}
