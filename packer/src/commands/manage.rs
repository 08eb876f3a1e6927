//! `packer protect | unprotect | keep | delete`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Result};

use crate::catalog::BundleStatus;
use crate::config::Config;

/// A bundle by catalog id or file name.
#[derive(clap::Args, Debug)]
pub struct IdArgs {
    /// Catalog id (see `packer list`) or bundle file name.
    pub id: String,
}

/// `packer delete`.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Catalog id (see `packer list`) or bundle file name.
    pub id: String,
    /// Do not ask (required when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

/// Sets or clears protection.
pub fn protect(args: IdArgs, config: &Path, on: bool) -> Result<i32> {
    let cfg = Config::load(config)?;
    let mut log = super::logger(false);
    let (_lock, catalog) = crate::job::open(&cfg, "protect", &mut log)?;
    let row = crate::job::find(&catalog, &args.id)?;
    catalog.set_protected(row.id, on)?;
    println!("{} {} (id {})", if on { "protected" } else { "unprotected" }, row.file_name, row.id);
    Ok(crate::exit::OK)
}

/// Cancels a pending deletion by protecting the bundle.
pub fn keep(args: IdArgs, config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    let mut log = super::logger(false);
    let (_lock, catalog) = crate::job::open(&cfg, "keep", &mut log)?;
    let row = crate::job::find(&catalog, &args.id)?;
    let status = if row.status == BundleStatus::Missing { BundleStatus::Missing } else { BundleStatus::Ok };
    catalog.set_status(row.id, status, None)?;
    catalog.set_protected(row.id, true)?;
    println!(
        "kept {} (id {}): protected from retention; `packer unprotect {}` hands it back",
        row.file_name, row.id, row.id
    );
    Ok(crate::exit::OK)
}

/// Deletes one bundle.
pub fn delete(args: DeleteArgs, config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    let mut log = super::logger(false);
    let (_lock, catalog) = crate::job::open(&cfg, "delete", &mut log)?;
    let row = crate::job::find(&catalog, &args.id)?;
    if row.protected {
        bail!(
            "{} (id {}) is protected; `packer unprotect {}` first if you really mean it",
            row.file_name,
            row.id,
            row.id
        );
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("stdin is not a terminal: pass --yes to delete {} without confirmation", row.file_name);
        }
        eprint!("Delete {} ({} bytes, {})? Type yes: ", row.file_name, row.size, row.created);
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != "yes" {
            bail!("not confirmed; nothing deleted");
        }
    }
    crate::job::delete_bundle(&cfg, &catalog, &row)?;
    println!("deleted {} (id {})", row.file_name, row.id);
    Ok(crate::exit::OK)
}
