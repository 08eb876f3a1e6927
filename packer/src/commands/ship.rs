//! `packer ship`: a bundle to another machine over ssh, or to object storage (`s3://`),
//! verified there.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::Utc;

use crate::ship::{self, bundle_path, ship_s3, Destination, SshOptions, Target};

/// `packer ship`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Catalog id, bundle file name in output_dir, or a path to a bundle file.
    pub bundle: String,
    /// Where: user@host:/path (the directory is created), or s3://bucket/prefix (the service,
    /// region and credentials from [ship.s3]; the credentials from the environment or a
    /// credentials file).
    pub destination: String,
    /// ssh port.
    #[arg(long)]
    pub port: Option<u16>,
    /// ssh identity file.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Extra ssh option, repeatable (e.g. --ssh-option UserKnownHostsFile=/root/.ssh/known_hosts2).
    #[arg(long = "ssh-option", value_name = "KEY=VALUE")]
    pub ssh_options: Vec<String>,
    /// Unpack it there, next to the copy.
    #[arg(long)]
    pub extract: bool,
    /// Then run `./restore ARGS` there (implies --extract), streaming its output; ARGS follow
    /// `--`, e.g. `packer ship 12 root@new:/srv --restore -- --yes`.
    #[arg(long)]
    pub restore: bool,
    /// Arguments for the remote `./restore` (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub restore_args: Vec<String>,
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    let (bundle, cfg) = bundle_path(&args.bundle, config)?;
    if let Target::S3(url) = Target::parse(&args.destination)? {
        if args.extract
            || args.restore
            || args.port.is_some()
            || args.identity.is_some()
            || !args.ssh_options.is_empty()
        {
            anyhow::bail!(
                "--extract, --restore and the ssh options are for ssh destinations, not {}",
                args.destination
            );
        }
        let s3 = cfg.as_ref().map(|c| c.ship.s3.clone()).unwrap_or_default();
        let term = super::terminal(false);
        let shipped = ship_s3(cfg.as_ref(), &s3, &bundle, &url, &args.destination, &term);
        drop(term);
        let shipped = shipped?;
        println!(
            "shipped {} to {} ({} bytes; the stored object read back, its sha256 matches the sidecar)",
            bundle.display(),
            url.url_of(&shipped.key),
            shipped.size
        );
        return Ok(0);
    }
    let dest = Destination::parse(&args.destination)?;
    let opts = SshOptions {
        port: args.port,
        identity: args.identity.clone(),
        options: args.ssh_options.clone(),
        batch: !std::io::stdin().is_terminal(),
    };
    let started = Utc::now();
    let term = super::terminal(false);
    let result = ship::ship(&bundle, &dest, &opts, &term);
    drop(term);
    if let Some(cfg) = &cfg {
        crate::job::record_ship(cfg, started, &bundle, &args.destination, &result);
    }
    result?;
    println!("shipped {} to {} (remote copy verified with sha256sum -c)", bundle.display(), args.destination);
    let name = bundle.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    if args.extract || args.restore {
        let dir = ship::extract(&dest, &opts, &name)?;
        println!("extracted into {}:{dir}", dest.host);
        if args.restore {
            return ship::run_restore(&dest, &opts, &dir, &args.restore_args);
        }
    }
    Ok(crate::exit::OK)
}
