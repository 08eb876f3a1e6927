//! One unattended cycle, what `packer daemon` runs on its schedule (and `--once` from a timer):
//! create, ship to every `[ship]` destination, verify when `[schedule] verify_every` says so,
//! prune (after a failed backup too), each step's outcome logged and every failure notified.

use std::path::Path;

use anyhow::Result;
use chrono::Utc;
use restorer::log::Level;
use restorer::progress::Silent;

use crate::catalog::{BundleStatus, Catalog, VerifyDepth};
use crate::config::Config;
use crate::job::{Log, PruneAction};
use crate::retention::Source;

/// One scheduled cycle. Returns whether the backup succeeded.
pub fn cycle(cfg: &Config, restorer: Option<&Path>, log: Log<'_>) -> bool {
    log(Level::Notice, "backup starting");
    let ok = match crate::job::backup(cfg, restorer, Source::Scheduled, log, &Silent) {
        Ok(b) => {
            log(
                Level::Notice,
                &format!(
                    "backup ok: {} ({} bytes, id {})",
                    b.created.written.path.display(),
                    b.created.written.size,
                    b.id
                ),
            );
            crate::ship::ship_all(cfg, &b.created.written.path, log);
            true
        }
        Err(e) => {
            log(Level::Error, &format!("backup FAILED: {}", crate::error_text::chain(&e)));
            false
        }
    };
    if ok {
        if let Some(n) = cfg.schedule.verify_every.filter(|n| *n > 0) {
            if let Err(e) = verify_if_due(cfg, n, log) {
                log(Level::Error, &format!("verification FAILED to run: {}", crate::error_text::chain(&e)));
            }
        }
    }
    // Retention runs after a failed backup too (it never removes the newest good bundle), so a
    // full disk can recover.
    prune(cfg, log);
    ok
}

/// Applies retention and logs what it kept and deleted.
fn prune(cfg: &Config, log: Log<'_>) {
    let pruned = crate::job::open(cfg, "prune", log)
        .and_then(|(_lock, catalog)| crate::job::prune(cfg, &catalog, Utc::now(), false, log));
    match pruned {
        Ok(lines) => log(
            Level::Notice,
            &format!(
                "prune ok: {} kept, {} deleted",
                lines.iter().filter(|l| l.action == PruneAction::Keep).count(),
                lines.iter().filter(|l| l.action == PruneAction::Delete).count()
            ),
        ),
        Err(e) => log(Level::Error, &format!("prune FAILED: {}", crate::error_text::chain(&e))),
    }
}

/// Verifies the newest bundle when `n` bundles were made since the last verification.
fn verify_if_due(cfg: &Config, n: u32, log: Log<'_>) -> Result<()> {
    let (catalog, _) = Catalog::open(&cfg.bundle.output_dir)?;
    let rows: Vec<_> = catalog.list()?.into_iter().filter(|r| r.status != BundleStatus::Missing).collect();
    let last = rows.iter().filter_map(|r| r.verified_at).max();
    let since = rows.iter().filter(|r| last.is_none_or(|t| r.created > t)).count();
    let Some(newest) = rows.first() else { return Ok(()) };
    if since < n as usize {
        return Ok(());
    }
    let mut deep = cfg.schedule.verify_depth == Some(VerifyDepth::Deep);
    // The key of a sealed bundle is not on this host (by design): its ciphertext is checked.
    if deep && restorer::unpack::is_sealed(&cfg.bundle.output_dir.join(&newest.file_name)).unwrap_or(false) {
        log(Level::Notice, &format!("{} is sealed: verifying its ciphertext (a deep verify needs the key: packer verify --deep --identity FILE)", newest.file_name));
        deep = false;
    }
    let o = crate::verification::verify_row(cfg, &catalog, newest, deep, None, log, &Silent)?;
    log(Level::Notice, &format!("verification of {}: {}", newest.file_name, if o.ok { "ok" } else { "FAILED" }));
    Ok(())
}
