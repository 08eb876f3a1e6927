//! `packer daemon`: a cycle (create, ship, verify when due, prune) on the cron schedule until
//! told to stop.
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
use crate::retention::Source;
use crate::schedule::Cron;
use crate::units::parse_duration;
use restorer::log::Level;
use restorer::progress::{Silent, Terminal};

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

/// The daemon's own lines (a cycle began, ended, failed): the record.
fn log(line: &str) {
    service().log(Level::Notice, line);
}

fn failed(line: &str) {
    service().log(Level::Error, line);
}

/// One scheduled cycle. Returns whether the backup succeeded.
pub fn cycle(cfg: &Config, restorer: Option<&Path>) -> bool {
    log("backup starting");
    let term = service();
    let mut sink = |level: Level, l: &str| term.log(level, l);
    let ok = match crate::job::backup(cfg, restorer, Source::Scheduled, &mut sink, &Silent) {
        Ok(b) => {
            log(&format!(
                "backup ok: {} ({} bytes, id {})",
                b.created.written.path.display(),
                b.created.written.size,
                b.id
            ));
            ship_all(cfg, &b.created.written.path);
            true
        }
        Err(e) => {
            failed(&format!("backup FAILED: {}", crate::error_text::chain(&e)));
            false
        }
    };
    if ok {
        if let Some(n) = cfg.schedule.verify_every.filter(|n| *n > 0) {
            if let Err(e) = verify_if_due(cfg, n) {
                failed(&format!("verification FAILED to run: {}", crate::error_text::chain(&e)));
            }
        }
    }
    // Retention runs after a failed backup too (it never removes the newest good bundle), so a
    // full disk can recover.
    let pruned = crate::job::open(cfg, "prune", &mut sink)
        .and_then(|(_lock, catalog)| crate::job::prune(cfg, &catalog, Utc::now(), false, &mut sink));
    match pruned {
        Ok(lines) => log(&format!(
            "prune ok: {} kept, {} deleted",
            lines.iter().filter(|l| l.action == crate::job::PruneAction::Keep).count(),
            lines.iter().filter(|l| l.action == crate::job::PruneAction::Delete).count()
        )),
        Err(e) => failed(&format!("prune FAILED: {}", crate::error_text::chain(&e))),
    }
    ok
}

/// Ships a new bundle to every `[ship]` destination; failures are logged, recorded and notified.
fn ship_all(cfg: &Config, bundle: &Path) {
    let opts = crate::ship::SshOptions {
        port: cfg.ship.port,
        identity: cfg.ship.identity.clone(),
        options: cfg.ship.ssh_options.clone(),
        batch: true,
    };
    for dest in &cfg.ship.destinations {
        let started = Utc::now();
        let result = match crate::ship::Target::parse(dest) {
            // Recorded (run and remote copy) by ship_s3 itself.
            Ok(crate::ship::Target::S3(url)) => {
                super::ship::ship_s3(Some(cfg), &cfg.ship.s3, bundle, &url, dest, &Silent).map(|_| ())
            }
            Ok(crate::ship::Target::Ssh(d)) => {
                let r = crate::ship::ship(bundle, &d, &opts, &Silent);
                crate::job::record_ship(cfg, started, bundle, dest, &r);
                r
            }
            Err(e) => {
                let r = Err(e);
                crate::job::record_ship(cfg, started, bundle, dest, &r);
                r
            }
        };
        match &result {
            Ok(()) => log(&format!("shipped to {dest} (verified)")),
            Err(e) => {
                failed(&format!("ship to {dest} FAILED: {}", crate::error_text::chain(e)));
                let mut ev =
                    crate::notify::Event::new(crate::notify::Kind::ShipFailed, format!("bundle not shipped to {dest}"));
                ev.bundle = Some(bundle.display().to_string());
                ev.error = Some(crate::error_text::chain(e));
                ev.what_to_do = Some(if dest.starts_with("s3://") {
                    "check the bucket, [ship.s3] endpoint and region, and the credentials (environment or credentials_file)".into()
                } else {
                    "check ssh access to the destination (keys, known_hosts, disk space there)".into()
                });
                crate::job::notify_and_log(cfg, &ev, &mut |level, l| service().log(level, l));
            }
        }
    }
}

/// Verifies the newest bundle when `n` bundles were made since the last verification.
fn verify_if_due(cfg: &Config, n: u32) -> Result<()> {
    let (catalog, _) = crate::catalog::Catalog::open(&cfg.bundle.output_dir)?;
    let rows: Vec<_> =
        catalog.list()?.into_iter().filter(|r| r.status != crate::catalog::BundleStatus::Missing).collect();
    let last = rows.iter().filter_map(|r| r.verified_at).max();
    let since = rows.iter().filter(|r| last.is_none_or(|t| r.created > t)).count();
    let Some(newest) = rows.first() else { return Ok(()) };
    if since < n as usize {
        return Ok(());
    }
    let mut deep = cfg.schedule.verify_depth == Some(crate::catalog::VerifyDepth::Deep);
    // The key of a sealed bundle is not on this host (by design): its ciphertext is checked.
    if deep && restorer::unpack::is_sealed(&cfg.bundle.output_dir.join(&newest.file_name)).unwrap_or(false) {
        log(&format!("{} is sealed: verifying its ciphertext (a deep verify needs the key: packer verify --deep --identity FILE)", newest.file_name));
        deep = false;
    }
    let o =
        super::verify::verify_row(cfg, &catalog, newest, deep, None, &mut |level, l| service().log(level, l), &Silent)?;
    log(&format!("verification of {}: {}", newest.file_name, if o.ok { "ok" } else { "FAILED" }));
    Ok(())
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
