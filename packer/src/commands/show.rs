//! `packer show`: the inventory of a bundle, from the catalog when it knows the bundle, else
//! from the bundle's head (manifest.json is the first entry): instant whatever the size.

use std::path::Path;

use anyhow::Result;
use restorer::manifest::Manifest;

use crate::config::Config;

/// `packer show ID|FILE`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A catalog id, a bundle file name in output_dir, or a path to any bundle file.
    pub bundle: String,
    /// Print the manifest (or, with --workflows/--credentials, those lists) as JSON.
    #[arg(long)]
    pub json: bool,
    /// List n8n workflows (id, active, archived, nodes, updated, tags, name).
    #[arg(long)]
    pub workflows: bool,
    /// With --workflows: only those whose name, id, tag or node type contains TEXT.
    #[arg(long, value_name = "TEXT", requires = "workflows")]
    pub search: Option<String>,
    /// With --workflows: only active ones.
    #[arg(long, requires = "workflows")]
    pub active: bool,
    /// List n8n credentials (id, type, name; never secrets) and the encryption key's status.
    #[arg(long, conflicts_with = "workflows")]
    pub credentials: bool,
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
    if args.workflows || args.credentials {
        let info = m
            .n8n
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this bundle has no n8n inventory (no database with profile = \"n8n\")"))?;
        if args.workflows {
            let list = restorer::n8n::filter_workflows(info, args.search.as_deref(), args.active);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", restorer::n8n::render_workflows(&list));
            }
        } else if args.json {
            println!("{}", serde_json::to_string_pretty(&info.credentials)?);
        } else {
            print!("{}", restorer::n8n::render_credentials(info));
        }
        return Ok(());
    }
    if args.json {
        println!("{}", m.to_json());
    } else {
        print!("{}", restorer::inventory::render(&m));
    }
    Ok(())
}
