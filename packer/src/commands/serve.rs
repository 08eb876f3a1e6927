//! `packer serve`: flags merged over `[serve]`, then the console (crate::serve).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::serve::settings::DEFAULT_LISTEN;

/// `packer serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address and port [default: [serve] listen, else 127.0.0.1:8480]. Port 0 picks a free one
    /// (the URL is printed on stdout). Anything but loopback needs --tls-cert/--tls-key or
    /// --behind-proxy.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// PEM certificate chain: serve HTTPS [default: [serve] tls_cert].
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [default: [serve] tls_key].
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A reverse proxy (nginx, Caddy) in front terminates TLS: allows a non-loopback address
    /// without --tls-cert [default: [serve] behind_proxy].
    #[arg(long)]
    pub behind_proxy: bool,
    /// The static restore binary "back up now" embeds (as `packer create --restorer`).
    #[arg(long, value_name = "PATH")]
    pub restorer: Option<PathBuf>,
    /// Read a password from stdin, print its argon2 hash for [serve] password_hash, and exit.
    #[arg(long, exclusive = true)]
    pub hash_password: bool,
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    if args.hash_password {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            eprintln!("Type the console password, then Enter (it is echoed; pipe it in to avoid that):");
        }
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        let pw = line.trim_end_matches(['\n', '\r']);
        if pw.len() < 8 {
            anyhow::bail!("the password is shorter than 8 characters; choose a longer one");
        }
        println!("{}", crate::serve::auth::hash_password(pw)?);
        eprintln!("put it in packer.toml as:  [serve] password_hash = \"<the line above>\"");
        return Ok(0);
    }
    let cfg = Config::load(config)?;
    let s = &cfg.serve;
    let listen_text = args.listen.clone().or_else(|| s.listen.clone()).unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen: SocketAddr = listen_text
        .parse()
        .with_context(|| format!("listen address {listen_text:?}: expected ADDR:PORT, e.g. 127.0.0.1:8480"))?;
    let tls = match (
        args.tls_cert.clone().or_else(|| s.tls_cert.clone()),
        args.tls_key.clone().or_else(|| s.tls_key.clone()),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => anyhow::bail!("[serve] tls_cert and tls_key go together: set both or neither"),
    };
    let opts = crate::serve::Options {
        listen,
        tls,
        behind_proxy: args.behind_proxy || s.behind_proxy,
        restorer: args.restorer,
        session: Duration::from_secs(u64::from(s.session_hours.unwrap_or(12).max(1)) * 3600),
        log: |level, line| super::logger(false)(level, line),
    };
    crate::serve::run(cfg, opts)
}
