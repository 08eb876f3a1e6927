//! `packer list`: the catalog, newest first.

use std::path::Path;

use anyhow::Result;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::units::human_size;

/// `packer list`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// JSON array instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    let (catalog, events) = Catalog::open(&cfg.bundle.output_dir)?;
    let mut log = super::logger(false);
    for (level, e) in events.into_iter().chain(catalog.reconcile()?) {
        log(level, &e);
    }
    let rows = catalog.list()?;
    let remote = catalog.remote_copies()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(crate::exit::OK);
    }
    println!(
        "{:>4}  {:<20} {:>10}  {:<9} {:<16} {:<4} {:<22}  FILE",
        "ID", "CREATED (UTC)", "SIZE", "SOURCE", "STATUS", "PROT", "VERIFIED"
    );
    for r in &rows {
        let verified = match (r.verified_at, r.verify_ok) {
            (Some(t), Some(ok)) => format!("{} {}", if ok { "ok" } else { "FAILED" }, t.format("%Y-%m-%d %H:%M")),
            _ => "-".into(),
        };
        println!(
            "{:>4}  {:<20} {:>10}  {:<9} {:<16} {:<4} {:<22}  {}",
            r.id,
            r.created.format("%Y-%m-%d %H:%M:%S"),
            human_size(r.size),
            format!("{:?}", r.source).to_lowercase(),
            r.status,
            if r.protected { "yes" } else { "" },
            verified,
            r.file_name
        );
    }
    println!(
        "{} bundle(s), {}",
        rows.len(),
        human_size(rows.iter().filter(|r| r.status != crate::catalog::BundleStatus::Missing).map(|r| r.size).sum())
    );
    if !remote.is_empty() {
        // Copies outlive their local bundle: listed by name, with the local id when there is one.
        println!("\nRemote copies (packer fetch NAME DIR):");
        println!("{:>4}  {:<20} {:>10}  {:<22}  OBJECT", "ID", "CREATED (UTC)", "SIZE", "VERIFIED");
        for c in &remote {
            let id = rows.iter().find(|r| r.file_name == c.file_name).map(|r| r.id.to_string()).unwrap_or("-".into());
            println!(
                "{:>4}  {:<20} {:>10}  {:<22}  s3://{}/{}",
                id,
                c.created.format("%Y-%m-%d %H:%M:%S"),
                human_size(c.size),
                format!("{} {}", if c.verify_ok { "ok" } else { "FAILED" }, c.verified_at.format("%Y-%m-%d %H:%M")),
                crate::s3::S3Url::parse(&c.destination).map(|u| u.bucket).unwrap_or_default(),
                c.key
            );
        }
    }
    Ok(crate::exit::OK)
}
