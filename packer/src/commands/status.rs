//! `packer status`: is the unattended path healthy? A monitoring system runs it as a check: exit
//! 0 when healthy, [`exit::WARNING`] when backups succeed but something asks for attention (a
//! failed or missing ship, a rebuilt catalog), [`exit::FAILED`] when the backups are at risk (no
//! success within `[schedule] alert_after` or none yet, the last backup or verification failed,
//! bundles missing from disk).

use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{BundleStatus, Catalog, RunKind};
use crate::config::Config;
use crate::exit;
use crate::units::{human_duration, human_size, parse_duration, parse_size};

/// `packer status`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

crate::words! {
    /// How bad the worst alert is (`--json`'s `severity`; it decides the exit code).
    pub enum Severity("severity") {
        /// Nothing calls for attention.
        Ok = "ok",
        /// Backups succeed, but something asks for attention (offsite copies, the catalog).
        Warning = "warning",
        /// The backups are at risk: none recent, the last one or its verification failed,
        /// bundles gone.
        Failed = "failed",
    }
}

impl Severity {
    /// The exit code `packer status` ends with.
    pub fn exit_code(self) -> i32 {
        match self {
            Severity::Ok => exit::OK,
            Severity::Warning => exit::WARNING,
            Severity::Failed => exit::FAILED,
        }
    }

    /// The worse of two.
    fn max(self, other: Severity) -> Severity {
        let rank = |s: Severity| match s {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Failed => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// A run, for status.
#[derive(Debug, Serialize)]
pub struct RunInfo {
    /// When it finished.
    pub time: DateTime<Utc>,
    /// Seconds since.
    pub age_seconds: i64,
    /// The bundle it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything `status` reports.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Where the bundles are.
    pub output_dir: PathBuf,
    /// True when nothing calls for attention.
    pub healthy: bool,
    /// The worst alert's severity: ok, warning or failed.
    pub severity: Severity,
    /// Why not, when not.
    pub alerts: Vec<String>,
    /// The last successful backup.
    pub last_success: Option<RunInfo>,
    /// The last failed backup.
    pub last_failure: Option<RunInfo>,
    /// The next scheduled run (UTC), when a cron is set.
    pub next_run: Option<DateTime<Utc>>,
    /// Bundles on disk.
    pub bundles: usize,
    /// Their total size.
    pub total_size: u64,
    /// `[retention] max_total_size`.
    pub max_total_size: Option<u64>,
    /// Free bytes on the output directory's file system.
    pub free_space: Option<u64>,
    /// Size of that file system.
    pub disk_size: Option<u64>,
    /// Bundles marked for deletion.
    pub pending_deletions: Vec<String>,
    /// Bundles missing from disk.
    pub missing: Vec<String>,
    /// The last verification of any bundle.
    pub last_verification: Option<RunInfo>,
    /// The last copy shipped off the machine (`bundle` names source and destination).
    pub last_shipped: Option<RunInfo>,
    /// The last failed ship, when after the last good one.
    pub last_ship_failure: Option<RunInfo>,
    /// Verified copies on object storage, per destination.
    pub remote_copies: Vec<RemoteSummary>,
}

/// The copies on one object storage destination.
#[derive(Debug, Serialize)]
pub struct RemoteSummary {
    /// `s3://bucket/prefix`.
    pub destination: String,
    /// Copies recorded there (verified when shipped).
    pub copies: usize,
    /// Their total size.
    pub size: u64,
    /// The newest copy whose last read-back matched: its key.
    pub newest_verified: Option<String>,
    /// When that copy was verified.
    pub newest_verified_at: Option<DateTime<Utc>>,
    /// Copies found corrupt by a later fetch.
    pub failed: usize,
}

/// Gathers the status.
#[expect(clippy::too_many_lines, reason = "issue 13: gather is to be split where a name would explain a part")]
pub fn gather(cfg: &Config) -> Result<Status> {
    let dir = &cfg.bundle.output_dir;
    let now = Utc::now();
    let mut alerts: Vec<(Severity, String)> = Vec::new();
    let (catalog, events) = if dir.is_dir() {
        Catalog::open(dir)?
    } else {
        anyhow::bail!("{} does not exist: no backup has run yet", dir.display())
    };
    alerts.extend(events.into_iter().map(|(_, e)| (Severity::Warning, e)));
    let mut log = super::logger(false);
    for (level, e) in catalog.reconcile()? {
        log(level, &e);
    }
    let rows = catalog.list()?;
    let info = |t: DateTime<Utc>| (t, (now - t).num_seconds());
    let last_success = catalog.last_run(RunKind::Create, true)?.map(|r| {
        let (time, age) = info(r.finished);
        let bundle = r.bundle_id.and_then(|id| rows.iter().find(|b| b.id == id)).map(|b| b.file_name.clone());
        RunInfo { time, age_seconds: age, bundle, error: None }
    });
    let last_failure = catalog.last_run(RunKind::Create, false)?.map(|r| {
        let (time, age) = info(r.finished);
        RunInfo { time, age_seconds: age, bundle: None, error: r.error }
    });
    if let Some(limit) = cfg.schedule.alert_after.as_deref().map(parse_duration).transpose()? {
        match &last_success {
            None => alerts.push((Severity::Failed, "no successful backup yet".into())),
            Some(s) if s.age_seconds > limit.num_seconds() => alerts.push((
                Severity::Failed,
                format!(
                    "the last successful backup is {} old (alert_after {})",
                    human_duration(now - s.time),
                    human_duration(limit)
                ),
            )),
            _ => {}
        }
    }
    if let (Some(f), Some(s)) = (&last_failure, &last_success) {
        if f.time > s.time {
            alerts.push((Severity::Failed, format!("the last backup failed: {}", f.error.clone().unwrap_or_default())));
        }
    } else if let (Some(f), None) = (&last_failure, &last_success) {
        alerts.push((Severity::Failed, format!("the last backup failed: {}", f.error.clone().unwrap_or_default())));
    }
    let present: Vec<_> = rows.iter().filter(|r| r.status != BundleStatus::Missing).collect();
    let missing: Vec<String> =
        rows.iter().filter(|r| r.status == BundleStatus::Missing).map(|r| r.file_name.clone()).collect();
    if !missing.is_empty() {
        alerts.push((Severity::Failed, format!("{} bundle(s) missing from disk", missing.len())));
    }
    let last_verification =
        rows.iter().filter_map(|r| r.verified_at.map(|t| (t, r))).max_by_key(|(t, _)| *t).map(|(t, r)| {
            let (time, age) = info(t);
            RunInfo {
                time,
                age_seconds: age,
                bundle: Some(r.file_name.clone()),
                error: (r.verify_ok == Some(false)).then(|| "verification failed".to_string()),
            }
        });
    if let Some(v) = &last_verification {
        if v.error.is_some() {
            alerts.push((
                Severity::Failed,
                format!("the last verification failed ({})", v.bundle.clone().unwrap_or_default()),
            ));
        }
    }
    let last_shipped = catalog.last_run(RunKind::Ship, true)?.map(|r| {
        let (time, age) = info(r.finished);
        RunInfo { time, age_seconds: age, bundle: r.error, error: None }
    });
    let last_ship_failure = catalog
        .last_run(RunKind::Ship, false)?
        .filter(|f| last_shipped.as_ref().is_none_or(|s| f.finished > s.time))
        .map(|r| {
            let (time, age) = info(r.finished);
            RunInfo { time, age_seconds: age, bundle: None, error: r.error }
        });
    if let Some(f) = &last_ship_failure {
        alerts.push((Severity::Warning, format!("the last ship failed: {}", f.error.clone().unwrap_or_default())));
    }
    if !cfg.ship.destinations.is_empty() && last_shipped.is_none() {
        alerts
            .push((Severity::Warning, "no bundle has been shipped off this machine yet ([ship] destinations)".into()));
    }
    let mut remote_copies: Vec<RemoteSummary> = Vec::new();
    // Newest first, so the first verified copy met per destination is its newest.
    for c in catalog.remote_copies()? {
        let i = match remote_copies.iter().position(|r| r.destination == c.destination) {
            Some(i) => i,
            None => {
                remote_copies.push(RemoteSummary {
                    destination: c.destination.clone(),
                    copies: 0,
                    size: 0,
                    newest_verified: None,
                    newest_verified_at: None,
                    failed: 0,
                });
                remote_copies.len() - 1
            }
        };
        let r = &mut remote_copies[i];
        r.copies += 1;
        r.size += c.size;
        if !c.verify_ok {
            r.failed += 1;
        } else if r.newest_verified.is_none() {
            r.newest_verified = Some(c.key.clone());
            r.newest_verified_at = Some(c.verified_at);
        }
    }
    for r in remote_copies.iter().filter(|r| r.failed > 0) {
        // A corrupt offsite copy is a warning: the local bundles are intact (a failed backup or
        // verification is what puts the backups themselves at risk).
        alerts
            .push((Severity::Warning, format!("{} copy(ies) on {} found corrupt by a fetch", r.failed, r.destination)));
    }
    let disk = crate::space::disk_of(dir);
    let total_size = present.iter().map(|r| r.size).sum();
    let max_total_size = cfg.retention.max_total_size.as_deref().map(parse_size).transpose()?;
    let next_run = match &cfg.schedule.cron {
        Some(c) => crate::schedule::Cron::parse(c)?.next_after(now),
        None => None,
    };
    Ok(Status {
        output_dir: dir.clone(),
        healthy: alerts.is_empty(),
        severity: alerts.iter().fold(Severity::Ok, |worst, (s, _)| worst.max(*s)),
        alerts: alerts.into_iter().map(|(_, a)| a).collect(),
        last_success,
        last_failure,
        next_run,
        bundles: present.len(),
        total_size,
        max_total_size,
        free_space: disk.map(|d| d.free),
        disk_size: disk.map(|d| d.total),
        pending_deletions: rows
            .iter()
            .filter(|r| r.status == BundleStatus::PendingDeletion)
            .map(|r| r.file_name.clone())
            .collect(),
        missing,
        last_verification,
        last_shipped,
        last_ship_failure,
        remote_copies,
    })
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    let s = gather(&cfg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
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
    Ok(s.severity.exit_code())
}
