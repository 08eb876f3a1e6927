//! `packer fetch`: a bundle back from object storage, verified before it gets its name.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::s3::{Remote, S3Url};

/// `packer fetch`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to fetch: a catalog id or bundle file name (its newest verified remote copy, from
    /// the catalog), an object key (under the [ship] s3:// destination, or the bucket's own full
    /// key), or s3://bucket/key.
    pub bundle: String,
    /// The directory to write the bundle and its .sha256 sidecar into (created if missing).
    pub dir: PathBuf,
    /// The s3://bucket/prefix destination to fetch from, when the configuration has several.
    #[arg(long, value_name = "S3_URL")]
    pub from: Option<String>,
}

/// Where the object is: its bucket, its key, and the catalog's record of it when there is one.
struct Source {
    url: S3Url,
    key: String,
    copy: Option<i64>,
}

fn resolve(args: &Args, cfg: Option<&Config>) -> Result<Source> {
    if args.bundle.starts_with("s3://") {
        let u = S3Url::parse(&args.bundle)?;
        if u.prefix.is_empty() {
            bail!("{}: give the object's key after the bucket (s3://bucket/key)", args.bundle);
        }
        return Ok(Source { url: S3Url { bucket: u.bucket, prefix: String::new() }, key: u.prefix, copy: None });
    }
    let cfg = cfg.context("reading the configuration (needed for [ship] destinations and [ship.s3])")?;
    let from = args.from.as_deref().map(S3Url::parse).transpose()?;
    if cfg.bundle.output_dir.is_dir() {
        let (catalog, _) = Catalog::open(&cfg.bundle.output_dir)?;
        let name = match catalog.find(&args.bundle)? {
            Some(row) => row.file_name,
            None => args.bundle.clone(),
        };
        let copy = catalog
            .remote_copies()?
            .into_iter()
            .filter(|c| c.file_name == name && c.verify_ok)
            .find(|c| from.as_ref().is_none_or(|f| f.to_string() == c.destination));
        if let Some(c) = copy {
            return Ok(Source { url: S3Url::parse(&c.destination)?, key: c.key, copy: Some(c.id) });
        }
    }
    let dests: Vec<S3Url> = match from {
        Some(f) => vec![f],
        None => cfg
            .ship
            .destinations
            .iter()
            .filter(|d| d.starts_with("s3://"))
            .map(|d| S3Url::parse(d))
            .collect::<Result<_>>()?,
    };
    let url = match dests.as_slice() {
        [one] => one.clone(),
        [] => bail!("no s3:// destination in [ship] destinations: give --from s3://bucket/prefix or s3://bucket/key"),
        _ => bail!("{} s3:// destinations in [ship]: say which with --from", dests.len()),
    };
    // A name is looked for under the destination's prefix; a key with '/' is the bucket's own.
    let key = if args.bundle.contains('/') { args.bundle.clone() } else { url.key(&args.bundle) };
    Ok(Source { url, key, copy: None })
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    let cfg = Config::load(config);
    // s3://bucket/key works without a configuration file; everything else needs it.
    let cfg = match cfg {
        Ok(c) => Some(c),
        Err(_) if args.bundle.starts_with("s3://") => None,
        Err(e) => return Err(e),
    };
    let src = resolve(&args, cfg.as_ref())?;
    let s3 = cfg.as_ref().map(|c| c.ship.s3.clone()).unwrap_or_default();
    let remote = Remote::connect(&src.url, &s3)?;
    let term = super::terminal(false);
    let result = crate::s3::fetch(&remote, &src.key, &args.dir, &term);
    drop(term);
    if let (Err(e), Some(id), Some(cfg)) = (&result, src.copy, &cfg) {
        // A copy found corrupt no longer counts as verified (remote retention keeps a good one).
        if e.downcast_ref::<crate::s3::CorruptObject>().is_some() {
            if let Ok((catalog, _)) = Catalog::open(&cfg.bundle.output_dir) {
                let _ = catalog.remote_failed(id);
            }
        }
    }
    let f = result?;
    println!(
        "fetched {} into {} ({} entries checked; sha256 {} matches its sidecar)",
        src.url.url_of(&src.key),
        f.bundle.display(),
        f.entries,
        f.sha256
    );
    Ok(0)
}
