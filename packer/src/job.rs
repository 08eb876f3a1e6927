//! The unattended path: lock, housekeeping, space preflight, create, catalog, notify; and prune
//! (retention applied, with the optional pending-deletion window). `packer create`, `packer
//! prune` and `packer daemon` all go through here, so they behave the same.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{BundleRow, BundleStatus, Catalog, RunKind, RunRow};
use crate::config::{Config, CriticalPolicy};
use crate::create::{self, Created};
use crate::lock::Lock;
use crate::notify::{self, Event, Kind};
use crate::retention::{self, Decision, Source};
use crate::{space, units};
use restorer::log::Level;
use restorer::progress::Progress;

/// Where a job's log lines go, each with its level (the binary's edge decides what is shown).
pub type Log<'a> = &'a mut dyn FnMut(Level, &str);

/// Sends an event; failed notifications become warnings in the log, never errors.
pub fn notify_and_log(cfg: &Config, event: &Event, log: Log<'_>) {
    for f in notify::send(&cfg.notify, event) {
        log(Level::Warning, &format!("notification failed: {f}"));
    }
}

/// Creates the output directory, takes the lock, opens the catalog and tidies up. Every
/// warning (stale lock, damaged catalog) is logged and notified.
pub fn open(cfg: &Config, command: &str, log: Log<'_>) -> Result<(Lock, Catalog)> {
    let dir = &cfg.bundle.output_dir;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("[bundle] output_dir {}", dir.display()))?;
    let (lock, stale) = Lock::acquire(dir, command)?;
    if let Some(w) = stale {
        log(Level::Warning, &w.to_string());
        let mut e = Event::new(Kind::StaleLockTakenOver, w);
        e.what_to_do = Some("check why the previous run died (its log, dmesg for the OOM killer, a power cut)".into());
        notify_and_log(cfg, &e, log);
    }
    let (catalog, events) = Catalog::open(dir)?;
    for (level, e) in events.into_iter().chain(catalog.housekeeping()?) {
        log(level, &e);
    }
    Ok((lock, catalog))
}

use std::os::unix::fs::DirBuilderExt;

/// The newest bundles retention must never remove (newest, newest verified, protected,
/// unconfirmed checkpoints), by id.
fn safe_ids(rows: &[BundleRow]) -> Vec<i64> {
    let cands: Vec<_> = rows.iter().filter(|r| r.status != BundleStatus::Missing).map(BundleRow::candidate).collect();
    retention::evaluate(&Default::default(), &cands, Utc::now(), None)
        .into_iter()
        .filter(|d| d.safe)
        .map(|d| d.id)
        .collect()
}

/// Deletes a bundle file, its sidecar and its row.
pub fn delete_bundle(cfg: &Config, catalog: &Catalog, row: &BundleRow) -> Result<()> {
    let path = cfg.bundle.output_dir.join(&row.file_name);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("deleting {}", path.display())),
    }
    let _ = fs::remove_file(cfg.bundle.output_dir.join(format!("{}.sha256", row.file_name)));
    catalog.remove(row.id)
}

/// Before a backup: will it fit, and keep `critical_free_space_percent` free? If not, apply the
/// critical-space policy.
fn preflight(cfg: &Config, catalog: &Catalog, log: Log<'_>) -> Result<()> {
    let dir = &cfg.bundle.output_dir;
    let Some(disk) = space::disk_of(dir) else {
        log(Level::Warning, "cannot tell the free space of the output directory; skipping the space check");
        return Ok(());
    };
    let need = space::estimate(cfg)?;
    let floor = cfg.retention.critical_free_space_percent.map(|p| (disk.total as f64 * p / 100.0) as u64).unwrap_or(0);
    let fits = |free: u64| free >= need.saturating_add(floor);
    if fits(disk.free) {
        return Ok(());
    }
    let what = format!(
        "the next bundle may need {} and {} must stay free, but {} has {} free",
        units::human_size(need),
        units::human_size(floor),
        dir.display(),
        units::human_size(disk.free)
    );
    match cfg.retention.critical_policy {
        CriticalPolicy::StopAndAlert => {
            let mut e = Event::new(Kind::CriticalSpace, format!("backup not started: {what}"));
            e.what_to_do = Some(
                "free space on the backup disk, ship old bundles elsewhere, or set critical_policy = \"delete_oldest\""
                    .into(),
            );
            notify_and_log(cfg, &e, log);
            bail!("not enough space: {what}; nothing was deleted (critical_policy = \"stop_and_alert\")");
        }
        CriticalPolicy::DeleteOldest => {
            let rows = catalog.list()?;
            let safe = safe_ids(&rows);
            let mut free = disk.free;
            let mut deleted = Vec::new();
            for row in rows.iter().rev().filter(|r| !safe.contains(&r.id) && r.status != BundleStatus::Missing) {
                if fits(free) {
                    break;
                }
                delete_bundle(cfg, catalog, row)?;
                free += row.size;
                deleted.push(row.file_name.clone());
                log(
                    Level::Warning,
                    &format!("critical space: deleted {} ({})", row.file_name, units::human_size(row.size)),
                );
            }
            let mut e = Event::new(
                Kind::CriticalSpace,
                format!("{what}; deleted {} oldest bundle(s): {}", deleted.len(), deleted.join(", ")),
            );
            if !fits(space::disk_of(dir).map(|d| d.free).unwrap_or(free)) {
                e.summary = format!("backup not started: {what}, and only protected or last good bundles are left");
                e.what_to_do = Some("free space on the backup disk; the newest good bundle was kept".into());
                notify_and_log(cfg, &e, log);
                bail!("not enough space even after deleting every bundle that may go: {what}");
            }
            notify_and_log(cfg, &e, log);
            Ok(())
        }
    }
}

fn notify_failure(cfg: &Config, err: &anyhow::Error, log: Log<'_>) {
    let mut e = Event::new(Kind::BackupFailed, "backup failed; earlier bundles are untouched");
    e.error = Some(crate::error_text::chain(err));
    e.what_to_do =
        Some("read the error, fix the source or the configuration, then run `packer create` by hand to check".into());
    notify_and_log(cfg, &e, log);
}

/// What one backup run produced.
#[derive(Debug, Serialize)]
pub struct Backup {
    /// Catalog id of the new bundle.
    pub id: i64,
    /// The bundle.
    #[serde(flatten)]
    pub created: Created,
}

/// One backup: lock, tidy, check space, create, index, notify. A failure is recorded in the
/// catalog and notified, and never touches an earlier bundle.
pub fn backup(
    cfg: &Config,
    restorer: Option<&Path>,
    source: Source,
    log: Log<'_>,
    progress: &dyn Progress,
) -> Result<Backup> {
    let started = Utc::now();
    // Configuration mistakes fail here, before the output directory is touched.
    let restore_bin = match create::check(cfg, restorer) {
        Ok(p) => p,
        Err(e) => {
            // Still a failed backup: recorded (when the output directory exists, so nothing is
            // created by a mistyped configuration) and notified, never silent.
            if cfg.bundle.output_dir.is_dir() {
                if let Ok((catalog, _)) = Catalog::open(&cfg.bundle.output_dir) {
                    let run = RunRow {
                        started,
                        finished: Utc::now(),
                        kind: RunKind::Create,
                        ok: false,
                        bundle_id: None,
                        error: Some(crate::error_text::chain(&e)),
                    };
                    let _ = catalog.record_run(&run);
                }
            }
            notify_failure(cfg, &e, log);
            return Err(e);
        }
    };
    let (_lock, catalog) = open(cfg, "create", log)?;
    let result = (|| -> Result<Backup> {
        preflight(cfg, &catalog, log)?;
        let created = create::create(cfg, &restore_bin, &mut *log, progress)?;
        let name = created.written.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let id = catalog.insert(&name, &created.manifest, created.written.size, &created.written.sha256, source)?;
        Ok(Backup { id, created })
    })();
    let finished = Utc::now();
    match &result {
        Ok(b) => {
            catalog.record_run(&RunRow {
                started,
                finished,
                kind: RunKind::Create,
                ok: true,
                bundle_id: Some(b.id),
                error: None,
            })?;
            let mut e =
                Event::new(Kind::BackupSucceeded, format!("bundle {} written", b.created.written.path.display()));
            e.bundle = Some(b.created.written.path.display().to_string());
            e.size_bytes = Some(b.created.written.size);
            notify_and_log(cfg, &e, log);
        }
        Err(err) => {
            let run = RunRow {
                started,
                finished,
                kind: RunKind::Create,
                ok: false,
                bundle_id: None,
                error: Some(crate::error_text::chain(err)),
            };
            catalog.record_run(&run)?;
            notify_failure(cfg, err, log);
        }
    }
    result
}

crate::words! {
    /// What prune does to one bundle (`packer prune --json`'s `action`).
    pub enum PruneAction("prune action") {
        /// A rule keeps it.
        Keep = "keep",
        /// No rule keeps it: deleted (or, with --dry-run, would be).
        Delete = "delete",
        /// No rule keeps it: marked pending deletion, deleted after `notify_before_hours`.
        Mark = "mark",
        /// Already marked; the notice period has not passed.
        Wait = "wait",
    }
}

/// One bundle's line in a prune plan.
#[derive(Debug, Serialize)]
pub struct PruneLine {
    /// The bundle.
    pub bundle: BundleRow,
    /// The decision and its reasons.
    pub decision: Decision,
    /// What prune does: keep, delete, mark (pending-deletion window), wait (already marked).
    pub action: PruneAction,
}

/// Evaluates retention at `at` and, unless `dry_run`, applies it.
pub fn prune(
    cfg: &Config,
    catalog: &Catalog,
    at: DateTime<Utc>,
    dry_run: bool,
    log: Log<'_>,
) -> Result<Vec<PruneLine>> {
    let policy = cfg.retention.policy()?;
    let rows: Vec<BundleRow> = catalog.list()?.into_iter().filter(|r| r.status != BundleStatus::Missing).collect();
    let cands: Vec<_> = rows.iter().map(BundleRow::candidate).collect();
    let disk = space::disk_of(&cfg.bundle.output_dir);
    let decisions = retention::evaluate(&policy, &cands, at, disk);
    let window = cfg.retention.notify_before_hours.map(|h| chrono::Duration::hours(h as i64));
    let mut lines = Vec::new();
    let mut marked = Vec::new();
    let mut deleted = Vec::new();
    for (row, decision) in rows.into_iter().zip(decisions) {
        let action = match (decision.keep, window, row.pending_since) {
            (true, _, _) => PruneAction::Keep,
            (false, None, _) => PruneAction::Delete,
            (false, Some(_), None) => PruneAction::Mark,
            (false, Some(w), Some(since)) if at - since >= w => PruneAction::Delete,
            (false, Some(_), Some(_)) => PruneAction::Wait,
        };
        if !dry_run {
            match action {
                PruneAction::Keep if row.status == BundleStatus::PendingDeletion => {
                    catalog.set_status(row.id, BundleStatus::Ok, None)?
                }
                PruneAction::Mark => {
                    catalog.set_status(row.id, BundleStatus::PendingDeletion, Some(at))?;
                    marked.push(row.file_name.clone());
                }
                PruneAction::Delete => {
                    delete_bundle(cfg, catalog, &row)?;
                    catalog.mark_retention_deleted(&row.file_name, at)?;
                    log(Level::Notice, &format!("deleted {} ({})", row.file_name, decision.reasons.join("; ")));
                    deleted.push(row.file_name.clone());
                }
                PruneAction::Keep | PruneAction::Wait => {}
            }
        }
        lines.push(PruneLine { bundle: row, decision, action });
    }
    if cfg.retention.remote {
        let deleting: Vec<&str> =
            lines.iter().filter(|l| l.action == PruneAction::Delete).map(|l| l.bundle.file_name.as_str()).collect();
        prune_remote(cfg, catalog, &deleting, dry_run, &mut *log)?;
    }
    if !marked.is_empty() {
        let hours = cfg.retention.notify_before_hours.unwrap_or(0);
        let mut e = Event::new(
            Kind::PendingDeletion,
            format!("{} bundle(s) will be deleted in {hours} h: {}", marked.len(), marked.join(", ")),
        );
        e.what_to_do = Some("to keep one: packer keep ID".into());
        notify_and_log(cfg, &e, log);
    }
    if !deleted.is_empty() {
        notify_and_log(
            cfg,
            &Event::new(Kind::Pruned, format!("retention deleted {} bundle(s): {}", deleted.len(), deleted.join(", "))),
            log,
        );
    }
    if !dry_run {
        catalog.record_run(&RunRow {
            started: Utc::now(),
            finished: Utc::now(),
            kind: RunKind::Prune,
            ok: true,
            bundle_id: None,
            error: None,
        })?;
    }
    Ok(lines)
}

/// `[retention] remote = true`: deletes the copies on object storage whose bundle local
/// retention deleted (now, `deleting`, or in an earlier run), never the newest verified copy of
/// a destination ([`retention::evaluate_remote`]). A copy that cannot be deleted now is logged
/// and tried again next time; its record stays until it is gone.
fn prune_remote(cfg: &Config, catalog: &Catalog, deleting: &[&str], dry_run: bool, log: Log<'_>) -> Result<()> {
    let copies = catalog.remote_copies()?;
    let cands: Vec<_> = copies
        .iter()
        .map(|c| retention::RemoteCandidate {
            id: c.id,
            destination: c.destination.clone(),
            created: c.created,
            verified_ok: c.verify_ok,
            deleted_by_retention: c.retention_deleted.is_some() || deleting.contains(&c.file_name.as_str()),
        })
        .collect();
    let mut remotes: Vec<(String, Result<crate::s3::Remote>)> = Vec::new();
    for (copy, d) in copies.iter().zip(retention::evaluate_remote(&cands)) {
        if !d.delete {
            continue;
        }
        let url = crate::s3::S3Url::parse(&copy.destination)?;
        if dry_run {
            log(Level::Notice, &format!("would delete the remote copy {} ({})", url.url_of(&copy.key), d.reason));
            continue;
        }
        if !remotes.iter().any(|(dest, _)| dest == &copy.destination) {
            remotes.push((copy.destination.clone(), crate::s3::Remote::connect(&url, &cfg.ship.s3)));
        }
        let remote = match &remotes.iter().find(|(dest, _)| dest == &copy.destination).expect("just added").1 {
            Ok(r) => r,
            Err(e) => {
                log(
                    Level::Warning,
                    &format!("remote retention: cannot reach {}: {}", copy.destination, crate::error_text::chain(e)),
                );
                continue;
            }
        };
        let gone = remote.delete(&copy.key).and_then(|_| remote.delete(&format!("{}.sha256", copy.key)));
        match gone {
            Ok(()) => {
                catalog.remove_remote(copy.id)?;
                log(Level::Notice, &format!("deleted the remote copy {} ({})", url.url_of(&copy.key), d.reason));
            }
            Err(e) => log(
                Level::Warning,
                &format!(
                    "remote retention: could not delete {} (tried again next prune): {}",
                    url.url_of(&copy.key),
                    crate::error_text::chain(&e)
                ),
            ),
        }
    }
    Ok(())
}

/// Records a ship run in the catalog of `cfg` (when its output directory exists). For ship runs
/// the `error` column carries "bundle -> destination", followed by the error when it failed.
pub fn record_ship(cfg: &Config, started: DateTime<Utc>, bundle: &Path, dest: &str, result: &Result<()>) {
    if !cfg.bundle.output_dir.is_dir() {
        return;
    }
    if let Ok((catalog, _)) = Catalog::open(&cfg.bundle.output_dir) {
        let detail = format!("{} -> {dest}", bundle.display());
        let text = match result {
            Ok(()) => detail,
            Err(e) => format!("{detail}: {}", crate::error_text::chain(e)),
        };
        let run = RunRow {
            started,
            finished: Utc::now(),
            kind: RunKind::Ship,
            ok: result.is_ok(),
            bundle_id: None,
            error: Some(text),
        };
        let _ = catalog.record_run(&run);
    }
}

/// Records a verified copy on object storage in the catalog of `cfg` (when its output
/// directory exists), with the bundle's creation time from the catalog or the bundle's head.
pub fn record_remote(cfg: &Config, bundle: &Path, shipped: &crate::s3::Shipped) -> Result<()> {
    if !cfg.bundle.output_dir.is_dir() {
        return Ok(());
    }
    let (catalog, _) = Catalog::open(&cfg.bundle.output_dir)?;
    let name = bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let created = match catalog.find(&name)? {
        Some(row) => row.created,
        None => restorer::unpack::read_manifest(bundle)?.created_at,
    };
    catalog.record_remote(&name, created, shipped)
}

/// Resolves an id or file name to a row, with an error naming what was not found.
pub fn find(catalog: &Catalog, key: &str) -> Result<BundleRow> {
    catalog.find(key)?.ok_or_else(|| anyhow!("no bundle {key:?} in the catalog (see `packer list`)"))
}
