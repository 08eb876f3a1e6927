//! `packer daemon`: a cycle ([`crate::cycle`]: create, ship, verify when due, prune) on the cron
//! schedule until told to stop, its lines stamped for the journal.
//!
//! SIGTERM/SIGINT set a flag: a bundle being written is finished (or fails cleanly), then the
//! daemon exits 0. A second signal while a bundle is being written exits at once (status 1);
//! the `.partial` it leaves is removed by the next run's housekeeping.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};

use crate::config::Config;
use crate::exit;
use crate::schedule::Cron;
use crate::units::parse_duration;
use restorer::log::Level;
use restorer::progress::Terminal;

/// `packer daemon`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run one cycle (create, ship, verify when due, prune) now and exit: what the systemd timer
    /// runs. Exits 1 when the backup failed.
    #[arg(long)]
    pub once: bool,
    /// The static restore binary to embed (see `packer create --help`).
    #[arg(long, value_name = "PATH")]
    pub restorer: Option<PathBuf>,
}

fn stamp() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The service's stderr (the journal): every line stamped, never a bar; the same threshold as
/// any run off a terminal (what changed, warnings, errors), `-v` for the narrative.
fn service() -> Terminal {
    Terminal::service(super::verbose(), stamp)
}

/// The daemon's own lines (started, the next run, stopping): the record.
fn log(line: &str) {
    service().log(Level::Notice, line);
}

/// One cycle ([`crate::cycle`]), logged to the journal. Returns whether the backup succeeded.
fn cycle(cfg: &Config, restorer: Option<&Path>) -> bool {
    let term = service();
    crate::cycle::cycle(cfg, restorer, &mut |level, line| term.log(level, line))
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    if args.once {
        return Ok(if cycle(&cfg, args.restorer.as_deref()) { exit::OK } else { exit::FAILED });
    }
    let expr =
        cfg.schedule.cron.clone().context(
            "[schedule] cron is not set: add e.g. cron = \"0 2 * * *\" (or use --once from your own scheduler)",
        )?;
    let cron = Cron::parse(&expr)?;
    let jitter = cfg.schedule.jitter.as_deref().map(parse_duration).transpose()?.unwrap_or_else(Duration::zero);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Second signal while the flag is set: exit now.
        signal_hook::flag::register_conditional_shutdown(sig, exit::FAILED, stop.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    log(&format!("daemon started: cron {expr:?} (UTC), jitter {}s, config {}", jitter.num_seconds(), config.display()));
    loop {
        let Some(mut next) = cron.next_after(Utc::now()) else {
            anyhow::bail!("cron {expr:?} never fires");
        };
        if jitter > Duration::zero() {
            let r = RandomState::new().hash_one(Utc::now().timestamp_nanos_opt());
            next += Duration::seconds((r % (jitter.num_seconds().max(1) as u64)) as i64);
        }
        log(&format!("next run at {}", next.format("%Y-%m-%d %H:%M:%S UTC")));
        while Utc::now() < next {
            if stop.load(Ordering::Relaxed) {
                log("stopping on signal");
                return Ok(exit::OK);
            }
            std::thread::sleep(StdDuration::from_millis(200));
        }
        cycle(&cfg, args.restorer.as_deref());
        if stop.load(Ordering::Relaxed) {
            log("stopping on signal (the bundle in progress was finished)");
            return Ok(exit::OK);
        }
    }
}
