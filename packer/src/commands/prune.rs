//! `packer prune`: retention, previewed or applied.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::job::PruneAction;
use crate::units::human_size;

/// `packer prune`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print what would happen to every bundle and why; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Evaluate the policy as if it were this time (RFC 3339, e.g. 2027-03-01T00:00:00Z): a
    /// simulator for a policy change with --dry-run; without it, what the policy decides at TIME
    /// is applied now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    let at = match &args.at {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .with_context(|| format!("--at {t:?}: expected RFC 3339, e.g. 2027-03-01T00:00:00Z"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let mut log = super::logger(args.json);
    let (_lock, catalog) = crate::job::open(&cfg, "prune", &mut log)?;
    let lines = crate::job::prune(&cfg, &catalog, at, args.dry_run, &mut log)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(crate::exit::OK);
    }
    let verb = if args.dry_run { "would" } else { "will" };
    println!(
        "Retention at {} ({}):",
        at.format("%Y-%m-%d %H:%M:%S UTC"),
        if args.dry_run { "dry run, nothing changed" } else { "applied" }
    );
    for l in &lines {
        let action = match l.action {
            PruneAction::Keep => "keep".to_string(),
            PruneAction::Delete if args.dry_run => "DELETE".to_string(),
            PruneAction::Delete => "DELETED".to_string(),
            PruneAction::Mark => format!("MARK ({verb} be deleted after the notice period)"),
            PruneAction::Wait => "pending deletion".to_string(),
        };
        println!(
            "  {:>4}  {}  {:>10}  {:<10} {}",
            l.bundle.id,
            l.bundle.created.format("%Y-%m-%d %H:%M"),
            human_size(l.bundle.size),
            action,
            l.decision.reasons.join("; ")
        );
    }
    let gone = lines.iter().filter(|l| l.action == PruneAction::Delete).count();
    println!(
        "{} kept, {} {}",
        lines.iter().filter(|l| l.action == PruneAction::Keep).count(),
        gone,
        if args.dry_run { "would be deleted" } else { "deleted" }
    );
    Ok(crate::exit::OK)
}
