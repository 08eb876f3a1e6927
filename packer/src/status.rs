//! Is the unattended path healthy? Everything `packer status` (and the console's dashboard)
//! reports, gathered from the catalog, the schedule and the disk, with the alerts it raises and
//! how bad the worst one is: [`Severity::Failed`] when the backups are at risk (no success
//! within `[schedule] alert_after` or none yet, the last backup or verification failed, bundles
//! missing from disk), [`Severity::Warning`] when backups succeed but something asks for
//! attention (a failed or missing ship, a corrupt offsite copy, a rebuilt catalog).

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{BundleRow, BundleStatus, Catalog, RunKind};
use crate::config::Config;
use crate::exit;
use crate::job::Log;
use crate::units::{human_duration, parse_duration, parse_size};

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

impl RunInfo {
    /// A run that finished at `time`, seen at `now`.
    fn at(time: DateTime<Utc>, now: DateTime<Utc>, bundle: Option<String>, error: Option<String>) -> RunInfo {
        RunInfo { time, age_seconds: (now - time).num_seconds(), bundle, error }
    }
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

/// The alerts raised so far, in the order they are reported.
type Alerts = Vec<(Severity, String)>;

/// Gathers the status. The catalog is reconciled with the disk first (what that changes goes to
/// `log`), so bundles that vanished count as missing.
pub fn gather(cfg: &Config, log: Log<'_>) -> Result<Status> {
    let dir = &cfg.bundle.output_dir;
    let now = Utc::now();
    let (catalog, events) = if dir.is_dir() {
        Catalog::open(dir)?
    } else {
        anyhow::bail!("{} does not exist: no backup has run yet", dir.display())
    };
    let mut alerts: Alerts = events.into_iter().map(|(_, e)| (Severity::Warning, e)).collect();
    for (level, e) in catalog.reconcile()? {
        log(level, &e);
    }
    let rows = catalog.list()?;
    let last_success = catalog.last_run(RunKind::Create, true)?.map(|r| {
        let bundle = r.bundle_id.and_then(|id| rows.iter().find(|b| b.id == id)).map(|b| b.file_name.clone());
        RunInfo::at(r.finished, now, bundle, None)
    });
    let last_failure = catalog.last_run(RunKind::Create, false)?.map(|r| RunInfo::at(r.finished, now, None, r.error));
    backup_alerts(cfg, now, last_success.as_ref(), last_failure.as_ref(), &mut alerts)?;
    let present: Vec<_> = rows.iter().filter(|r| r.status != BundleStatus::Missing).collect();
    let missing = names_with(&rows, BundleStatus::Missing);
    if !missing.is_empty() {
        alerts.push((Severity::Failed, format!("{} bundle(s) missing from disk", missing.len())));
    }
    let last_verification = last_verification(&rows, now, &mut alerts);
    let (last_shipped, last_ship_failure) = ships(cfg, &catalog, now, &mut alerts)?;
    let remote_copies = remote_copies(&catalog, &mut alerts)?;
    let disk = crate::space::disk_of(dir);
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
        total_size: present.iter().map(|r| r.size).sum(),
        max_total_size,
        free_space: disk.map(|d| d.free),
        disk_size: disk.map(|d| d.total),
        pending_deletions: names_with(&rows, BundleStatus::PendingDeletion),
        missing,
        last_verification,
        last_shipped,
        last_ship_failure,
        remote_copies,
    })
}

/// The file names of the bundles in `status`.
fn names_with(rows: &[BundleRow], status: BundleStatus) -> Vec<String> {
    rows.iter().filter(|r| r.status == status).map(|r| r.file_name.clone()).collect()
}

/// No success within `[schedule] alert_after` (or none yet), and a last backup that failed.
fn backup_alerts(
    cfg: &Config,
    now: DateTime<Utc>,
    last_success: Option<&RunInfo>,
    last_failure: Option<&RunInfo>,
    alerts: &mut Alerts,
) -> Result<()> {
    if let Some(limit) = cfg.schedule.alert_after.as_deref().map(parse_duration).transpose()? {
        match last_success {
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
    if let Some(f) = last_failure.filter(|f| last_success.is_none_or(|s| f.time > s.time)) {
        alerts.push((Severity::Failed, format!("the last backup failed: {}", f.error.clone().unwrap_or_default())));
    }
    Ok(())
}

/// The newest verification of any bundle; an alert when it failed.
fn last_verification(rows: &[BundleRow], now: DateTime<Utc>, alerts: &mut Alerts) -> Option<RunInfo> {
    let v = rows.iter().filter_map(|r| r.verified_at.map(|t| (t, r))).max_by_key(|(t, _)| *t).map(|(t, r)| {
        let error = (r.verify_ok == Some(false)).then(|| "verification failed".to_string());
        RunInfo::at(t, now, Some(r.file_name.clone()), error)
    });
    if let Some(v) = v.as_ref().filter(|v| v.error.is_some()) {
        alerts.push((
            Severity::Failed,
            format!("the last verification failed ({})", v.bundle.clone().unwrap_or_default()),
        ));
    }
    v
}

/// The last good ship and a failed one after it; alerts for that failure and for destinations
/// configured with nothing shipped yet.
fn ships(
    cfg: &Config,
    catalog: &Catalog,
    now: DateTime<Utc>,
    alerts: &mut Alerts,
) -> Result<(Option<RunInfo>, Option<RunInfo>)> {
    // A good ship's run records where it went in its `error` column (see job::record_ship).
    let last_shipped = catalog.last_run(RunKind::Ship, true)?.map(|r| RunInfo::at(r.finished, now, r.error, None));
    let last_ship_failure = catalog
        .last_run(RunKind::Ship, false)?
        .filter(|f| last_shipped.as_ref().is_none_or(|s| f.finished > s.time))
        .map(|r| RunInfo::at(r.finished, now, None, r.error));
    if let Some(f) = &last_ship_failure {
        alerts.push((Severity::Warning, format!("the last ship failed: {}", f.error.clone().unwrap_or_default())));
    }
    if !cfg.ship.destinations.is_empty() && last_shipped.is_none() {
        alerts
            .push((Severity::Warning, "no bundle has been shipped off this machine yet ([ship] destinations)".into()));
    }
    Ok((last_shipped, last_ship_failure))
}

/// The copies on object storage, summed per destination; an alert for each destination where a
/// fetch found one corrupt.
fn remote_copies(catalog: &Catalog, alerts: &mut Alerts) -> Result<Vec<RemoteSummary>> {
    let mut summaries: Vec<RemoteSummary> = Vec::new();
    // Newest first, so the first verified copy met per destination is its newest.
    for c in catalog.remote_copies()? {
        let i = match summaries.iter().position(|r| r.destination == c.destination) {
            Some(i) => i,
            None => {
                summaries.push(RemoteSummary {
                    destination: c.destination.clone(),
                    copies: 0,
                    size: 0,
                    newest_verified: None,
                    newest_verified_at: None,
                    failed: 0,
                });
                summaries.len() - 1
            }
        };
        let r = &mut summaries[i];
        r.copies += 1;
        r.size += c.size;
        if !c.verify_ok {
            r.failed += 1;
        } else if r.newest_verified.is_none() {
            r.newest_verified = Some(c.key.clone());
            r.newest_verified_at = Some(c.verified_at);
        }
    }
    for r in summaries.iter().filter(|r| r.failed > 0) {
        // A corrupt offsite copy is a warning: the local bundles are intact (a failed backup or
        // verification is what puts the backups themselves at risk).
        alerts
            .push((Severity::Warning, format!("{} copy(ies) on {} found corrupt by a fetch", r.failed, r.destination)));
    }
    Ok(summaries)
}
