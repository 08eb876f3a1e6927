//! `packer status`: is the unattended path healthy? A monitoring system runs it as a check: exit
//! 0 when healthy, [`crate::exit::WARNING`] when backups succeed but something asks for attention (a
//! failed or missing ship, a rebuilt catalog), [`crate::exit::FAILED`] when the backups are at risk (no
//! success within `[schedule] alert_after` or none yet, the last backup or verification failed,
//! bundles missing from disk).

use std::path::Path;

use anyhow::Result;

use crate::config::Config;
use crate::status::{gather, RunInfo, Status};
use crate::units::{human_duration, human_size};

/// `packer status`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    let s = gather(&cfg, &mut super::logger(false))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_summary(&s);
    }
    Ok(s.severity.exit_code())
}

/// The human summary, one fact a line.
fn print_summary(s: &Status) {
    let ago = |r: &RunInfo| {
        format!(
            "{} ({} ago)",
            r.time.format("%Y-%m-%d %H:%M:%S UTC"),
            human_duration(chrono::Duration::seconds(r.age_seconds))
        )
    };
    println!("{}", if s.healthy { "OK" } else { "ATTENTION" });
    for a in &s.alerts {
        println!("  ! {a}");
    }
    println!("Output directory:  {}", s.output_dir.display());
    match &s.last_success {
        Some(r) => println!("Last success:      {} {}", ago(r), r.bundle.clone().unwrap_or_default()),
        None => println!("Last success:      never"),
    }
    if let Some(r) = &s.last_failure {
        println!("Last failure:      {}: {}", ago(r), r.error.clone().unwrap_or_default());
    }
    match s.next_run {
        Some(t) => println!("Next run:          {}", t.format("%Y-%m-%d %H:%M UTC")),
        None => println!("Next run:          no [schedule] cron"),
    }
    let limit = s.max_total_size.map(|m| format!(" of max {}", human_size(m))).unwrap_or_default();
    println!("Bundles:           {} ({}{limit})", s.bundles, human_size(s.total_size));
    if let (Some(f), Some(t)) = (s.free_space, s.disk_size) {
        println!(
            "Free space:        {} of {} ({:.0}%)",
            human_size(f),
            human_size(t),
            f as f64 * 100.0 / t.max(1) as f64
        );
    }
    if !s.pending_deletions.is_empty() {
        println!("Pending deletion:  {}", s.pending_deletions.join(", "));
    }
    match &s.last_shipped {
        Some(r) => println!("Last shipped:      {} {}", ago(r), r.bundle.clone().unwrap_or_default()),
        None => println!("Last shipped:      never (a backup on the disk that dies is no backup: see [ship])"),
    }
    for r in &s.remote_copies {
        println!(
            "Remote copies:     {} on {} ({}), newest verified: {}",
            r.copies,
            r.destination,
            human_size(r.size),
            match (&r.newest_verified, r.newest_verified_at) {
                (Some(k), Some(t)) => format!("{k} at {}", t.format("%Y-%m-%d %H:%M UTC")),
                _ => "none".into(),
            }
        );
    }
    match &s.last_verification {
        Some(v) => println!(
            "Last verification: {} {} {}",
            ago(v),
            v.bundle.clone().unwrap_or_default(),
            if v.error.is_some() { "FAILED" } else { "ok" }
        ),
        None => println!("Last verification: never"),
    }
}
