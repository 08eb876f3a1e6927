//! `packer`: the CLI. Parses arguments, calls the library, prints; the last stdout line of
//! `create` is the bundle's path (or one JSON object with `--json`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use packer::config::{Config, TEMPLATE};
use packer::{create, show};

/// Builds bare-metal recovery bundles for self-hosted servers (n8n and any app whose state is
/// PostgreSQL and/or SQLite databases plus config, SSL and data files).
///
/// A bundle is one backup_YYYYMMDDHHMMSS.NAME_backup.tar.gz holding the dumps, the files, a
/// manifest, the sha256 of every entry and a static `restore` binary. On the new host:
/// `tar xzf BUNDLE && ./restore --help`.
///
/// Start with: packer init > packer.toml; edit it; packer create --config packer.toml
#[derive(Parser, Debug)]
#[command(name = "packer", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print a commented configuration template (TOML) to stdout.
    Init,
    /// Create a bundle: dump every database in one snapshot, copy SQLite safely, capture files,
    /// write manifest and checksums, embed the static restore binary. Written to a .partial
    /// file and published atomically (mode 0600) with a .sha256 sidecar for `sha256sum -c`.
    /// Prints the bundle path as the last line of stdout.
    Create {
        /// The configuration file.
        #[arg(long, short, value_name = "FILE", default_value = "packer.toml")]
        config: PathBuf,
        /// The static restore binary to embed [default: $PACKER_RESTORER, `restore` beside
        /// packer, or target/x86_64-unknown-linux-musl/release/restore].
        #[arg(long, value_name = "PATH")]
        restorer: Option<PathBuf>,
        /// Print one JSON object (path, size, sha256, counts) instead of the path.
        #[arg(long)]
        json: bool,
        /// No progress messages on stderr.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Show a bundle's inventory (databases, tables and row counts, files, versions, creation
    /// time), read from the head of the bundle only: instant even for a multi-GB bundle.
    Show {
        /// The bundle file.
        bundle: PathBuf,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("packer: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Init => {
            print!("{TEMPLATE}");
            Ok(())
        }
        Cmd::Create { config, restorer, json, quiet } => {
            let cfg = Config::load(&config)?;
            let created = create::create(&cfg, restorer.as_deref(), |msg| {
                if !quiet {
                    eprintln!("{msg}");
                }
            })?;
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                eprintln!("bundle: {} bytes, sha256 {}", created.written.size, created.written.sha256);
                println!("{}", created.written.path.display());
            }
            Ok(())
        }
        Cmd::Show { bundle, json } => {
            let m = restorer::unpack::read_manifest(&bundle)?;
            if json {
                println!("{}", m.to_json());
            } else {
                print!("{}", show::render(&m));
            }
            Ok(())
        }
    }
}
