//! `packer create`.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::Config;
use crate::retention::Source;

/// `packer create`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The static restore binary to embed [default: $PACKER_RESTORER, `restore` beside
    /// packer, or target/x86_64-unknown-linux-musl/release/restore].
    #[arg(long, value_name = "PATH")]
    pub restorer: Option<PathBuf>,
    /// Print one JSON object (id, path, size, sha256, counts) instead of the path.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    let term = super::terminal(args.json);
    let b = crate::job::backup(&cfg, args.restorer.as_deref(), Source::Manual, &mut |l, s| term.log(l, s), &term)?;
    if args.json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        term.log(
            restorer::log::Level::Info,
            &format!(
                "bundle {} (id {}): {} bytes, sha256 {}",
                b.created.written.path.display(),
                b.id,
                b.created.written.size,
                b.created.written.sha256
            ),
        );
        println!("{}", b.created.written.path.display());
    }
    Ok(crate::exit::OK)
}
