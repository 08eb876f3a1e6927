//! `packer catalog rebuild`.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;

use crate::config::Config;

/// Catalog maintenance commands.
#[derive(Subcommand, Debug)]
pub enum CatalogCmd {
    /// Re-index every bundle in output_dir from its head (after a lost or damaged catalog).
    /// Protection and verification results of bundles still present are kept.
    Rebuild,
}

/// Runs the command.
pub fn run(cmd: CatalogCmd, config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    match cmd {
        CatalogCmd::Rebuild => {
            let mut log = super::logger(false);
            let (_lock, mut catalog) = crate::job::open(&cfg, "catalog rebuild", &mut log)?;
            let (n, problems) = catalog.rebuild()?;
            for p in &problems {
                log(restorer::log::Level::Warning, &format!("not indexed: {p}"));
            }
            println!("catalog rebuilt: {n} bundle(s) indexed");
            Ok(if problems.is_empty() { crate::exit::OK } else { crate::exit::FAILED })
        }
    }
}
