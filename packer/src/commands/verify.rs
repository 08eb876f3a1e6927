//! `packer verify`: a bundle file or a catalogued one verified by [`crate::verification`]
//! (every entry's sha256 streamed, the whole file against its sidecar and the catalog, recorded
//! and notified), then the report or `--json` rendered and the exit code given.

use std::path::Path;

use anyhow::Result;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::verification::{verify_file, verify_row};

/// `packer verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Catalog id, bundle file name in output_dir, or a path to any bundle file.
    pub bundle: String,
    /// Also restore every database into a throwaway PostgreSQL server (removed afterwards, even
    /// on failure or Ctrl-C) or open the SQLite copy, and compare every table's row count and
    /// every n8n workflow's recomputed checksum with the manifest. A database that lived in a
    /// compose service's container goes into a throwaway container of that service's image
    /// (by its id, else its tag, else the bundle's saved copy, loaded and removed again; never
    /// pulled) and is restored with the image's own pg_restore: no host PostgreSQL needed.
    /// Others, and a container database whose image is not here or when no Docker engine
    /// answers (the checks say so), go into a throwaway cluster of this host's PostgreSQL
    /// (initdb in a temporary directory, a free port, run as the `postgres` user; server
    /// binaries in /usr/lib/postgresql/*/bin or $PG_BIN, at least the dump's major version).
    #[arg(long)]
    pub deep: bool,
    /// For a sealed (age-encrypted) bundle: the identity file (age-keygen output or an
    /// OpenSSH private key; a protected one asks for its passphrase) of one of its recipients. Without it the ciphertext's digests
    /// are checked; with it every entry inside too. --deep needs it.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<std::path::PathBuf>,
    /// One JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    let p = Path::new(&args.bundle);
    let identity = args.identity.as_deref().map(restorer::sealed::Identity::load).transpose()?;
    let term = super::terminal(args.json);
    let mut log = |level, line: &str| term.log(level, line);
    let outcome = if p.is_file() {
        verify_file(p, None, args.deep, identity.as_ref(), &mut log, &term)?
    } else {
        let cfg = Config::load(config)?;
        let (catalog, _) = Catalog::open(&cfg.bundle.output_dir)?;
        let row = crate::job::find(&catalog, &args.bundle)?;
        verify_row(&cfg, &catalog, &row, args.deep, identity.as_ref(), &mut log, &term)?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", outcome.report.render_problems());
        for c in outcome.deep.iter().flatten() {
            println!(
                "{}  {:<60} expected {:<20} actual {}",
                if c.ok { "PASS" } else { "FAIL" },
                c.check,
                c.expected,
                c.actual
            );
        }
        if !outcome.contents_checked {
            println!("sealed bundle: the ciphertext was checked; its contents need the key (--identity FILE)");
        }
        if outcome.file_digest == Some(false) {
            println!("BAD  the bundle file's sha256 differs from its .sha256 sidecar / the catalog");
        }
        println!(
            "{}: {} entries, {} bytes checked{}{}",
            if outcome.ok { "OK" } else { "CORRUPT" },
            outcome.report.entries_checked,
            outcome.report.bytes_checked,
            match outcome.file_digest {
                Some(true) => ", file digest matches",
                Some(false) => ", FILE DIGEST DIFFERS",
                None => "",
            },
            match &outcome.deep {
                Some(d) => format!("; deep: {}/{} checks passed", d.iter().filter(|c| c.ok).count(), d.len()),
                None => String::new(),
            }
        );
    }
    Ok(outcome.exit_code())
}
