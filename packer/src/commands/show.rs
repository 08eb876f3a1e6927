//! `packer show`: the inventory of a bundle, from the catalog when it knows the bundle, else
//! from the bundle's head (manifest.json is the first entry): instant whatever the size.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use restorer::manifest::{FileContent, Manifest};

use crate::config::Config;
use crate::units::human_size;

/// `packer show ID|FILE`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A catalog id, a bundle file name in output_dir, or a path to any bundle file.
    pub bundle: String,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Finds the manifest: a path to a file first, else the catalog of the configuration.
pub fn manifest_of(key: &str, config: &Path) -> Result<Manifest> {
    let p = Path::new(key);
    if p.is_file() {
        return Ok(restorer::unpack::read_manifest(p)?);
    }
    let cfg = Config::load(config)?;
    let (catalog, _) = crate::catalog::Catalog::open(&cfg.bundle.output_dir)?;
    catalog.reconcile()?;
    let row = crate::job::find(&catalog, key)?;
    catalog.manifest(row.id)
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<()> {
    let m = manifest_of(&args.bundle, config)?;
    if args.json {
        println!("{}", m.to_json());
    } else {
        print!("{}", render(&m));
    }
    Ok(())
}

/// The human inventory.
pub fn render(m: &Manifest) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Bundle {} (format {}), created {} by {}",
        m.bundle_name,
        m.format_version,
        m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        m.created_by
    );
    let _ = writeln!(s, "Source host: {} ({}, {})", m.source_host.hostname, m.source_host.os, m.source_host.arch);
    let _ = writeln!(s, "Payload: {}", human_size(m.payload_size()));
    for d in &m.postgres {
        let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
        let _ = writeln!(
            s,
            "\nPostgreSQL {} -> database {} (owner {}, {}), server {}, {}; dump {}: {} tables, {rows} rows",
            d.name,
            d.database,
            d.owner,
            d.encoding,
            d.server_version,
            d.pg_dump_version,
            human_size(d.size),
            d.tables.len()
        );
        for t in &d.tables {
            let _ = writeln!(s, "  {:<50} {:>12}", t.qualified(), t.rows);
        }
    }
    for d in &m.sqlite {
        let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
        let _ = writeln!(
            s,
            "\nSQLite {} ({}), {}: {} tables, {rows} rows",
            d.name,
            d.path.display(),
            human_size(d.size),
            d.tables.len()
        );
        for t in &d.tables {
            let _ = writeln!(s, "  {:<50} {:>12}", t.qualified(), t.rows);
        }
    }
    if !m.files.is_empty() {
        let _ = writeln!(s, "\nFiles ({}):", m.files.len());
        for f in &m.files {
            let owner = format!(
                "{}:{}",
                f.meta.user.clone().unwrap_or_else(|| f.meta.uid.to_string()),
                f.meta.group.clone().unwrap_or_else(|| f.meta.gid.to_string())
            );
            let what = match &f.content {
                FileContent::File { size, .. } => human_size(*size),
                FileContent::Dir => "dir".into(),
                FileContent::Symlink { target } => format!("-> {}", target.display()),
            };
            let _ = writeln!(
                s,
                "  {:<6} {:04o} {:<18} {:>10}  {}",
                f.kind.folder(),
                f.meta.mode,
                owner,
                what,
                f.path.display()
            );
        }
    }
    if !m.services.start.is_empty() {
        let _ = writeln!(s, "\nServices: {}", m.services.start.join(", "));
    }
    if !m.requirements.is_empty() {
        let _ = writeln!(s, "Requirements: {}", m.requirements.join(" "));
    }
    for w in &m.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}
