//! `restore` itself: verify, prepare a bare host, plan, confirm, execute, report.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::{confirm, say, term, RunArgs};
use crate::log::Level;
use crate::report::Outcome;
use crate::restore::{self, host, Options};
use crate::{exit, Result};

fn options(a: &RunArgs, dir: PathBuf) -> Options {
    Options {
        bundle_dir: dir,
        root: a.root.clone(),
        postgres_url: a.postgres_url.clone(),
        overwrite: a.overwrite,
        install: !a.no_install,
        install_packages: a.install_packages,
        services: !a.no_services,
        start_services: a.start_services,
        checkpoint_dir: a.checkpoint_dir.clone(),
        pg_bin: a.pg_bin.clone(),
        force: a.force,
        health_tries: a.health_tries,
        installed_defaults: Default::default(),
        databases: a.databases.clone(),
        databases_to_url: a.postgres_url.is_some(),
    }
}

/// Restores the bundle in `dir` as `a` asks; the exit code says how it ended.
pub(super) fn run(a: RunArgs, dir: PathBuf, json: bool) -> Result<i32> {
    let mut opts = options(&a, dir.clone());
    say(&format!("verifying {} ...", dir.display()));
    let verified = restore::verify(&dir, term())?;
    // A bare host has no PostgreSQL to reach yet: install what the bundle needs before the plan
    // can look at the server (the full prerequisites step then finds nothing).
    let local_pg = host::uses_local_postgres(&opts, &verified);
    if local_pg && !a.dry_run && opts.installs() {
        let ask = |missing: &[String]| {
            if a.yes {
                return Ok(());
            }
            confirm(&format!(
                "Packages must be installed first: {}. Type RESTORE to install them and continue: ",
                missing.join(" ")
            ))
        };
        host::install_first(&mut opts, &verified, ask, &mut super::log)?;
    }
    let may_start = !a.dry_run && opts.starts_services();
    let _temp_superuser = if local_pg {
        host::reach_local_postgres(&mut opts, &a.pg_socket, a.pg_port, may_start, &mut super::log)
    } else {
        None
    };
    // A restore that was interrupted (power cut, kill) is rolled back first, so this run starts
    // from the state the host had before it and never applies a step twice.
    let interrupted = restore::interrupted(&opts);
    if a.dry_run {
        for cp in &interrupted {
            println!("An interrupted restore left {}: it will be rolled back first.", cp.dir.display());
        }
    } else if !interrupted.is_empty() {
        for line in restore::roll_back_interrupted(&opts)? {
            term().log(Level::Notice, &line);
        }
    }
    let prepared = restore::prepare(&opts, verified)?;
    if a.dry_run {
        return Ok(dry_run(&prepared, &opts, json));
    }
    restore::check_blockers(&prepared)?;
    restore::check_refusals(&prepared.plan, &prepared.manifest)?;
    if !a.yes {
        if std::io::stdin().is_terminal() {
            print!("{}", prepared.render_plan(&opts));
        }
        let what = if a.databases.is_empty() {
            format!("onto {}", a.root.display())
        } else {
            let list: Vec<String> = a.databases.iter().map(|r| format!("{} as {}", r.from, r.to)).collect();
            format!("(databases only: {})", list.join(", "))
        };
        let m = &prepared.manifest;
        confirm(&format!(
            "\nThis restores the bundle of {} ({}) {what}. Type RESTORE to continue: ",
            m.source_host.hostname,
            m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        ))?;
    }
    let report = restore::execute(&prepared, &opts, say, term())?;
    let report_path = a.report.unwrap_or_else(|| dir.join("restore-report.json"));
    let text = serde_json::to_string_pretty(&report).expect("report serialises");
    // A file of the restore's own, mode 0600, never written through a link at its path.
    crate::sys::write_atomically(&report_path, text.as_bytes(), 0o600)?;
    if let Some(cp) = &report.checkpoint {
        let _ = crate::sys::write_atomically(&cp.join("restore-report.json"), text.as_bytes(), 0o600);
    }
    if json {
        println!("{text}");
    } else {
        print!("{}", report.human());
        println!("Report: {}", report_path.display());
    }
    Ok(match report.outcome {
        Outcome::Restored => exit::OK,
        Outcome::ValidationFailed => exit::VALIDATION_FAILED,
        Outcome::FailedRolledBack | Outcome::FailedRollbackIncomplete => exit::FAILED,
    })
}

/// `--dry-run`: the plan, as text or JSON; exit 2 when something would be refused.
fn dry_run(prepared: &restore::Prepared, opts: &Options, json: bool) -> i32 {
    if json {
        println!(
            "{}",
            serde_json::json!({"plan": prepared.plan, "docker": prepared.docker_lines(), "missing_packages": prepared.missing_packages, "install_skipped": opts.install_skipped(), "services_skipped": opts.services_skipped(), "verify": prepared.verify, "preflight": prepared.findings})
        );
    } else {
        print!("{}", prepared.render_plan(opts));
    }
    let blocked = prepared.findings.iter().any(|f| f.blocker);
    if prepared.plan.refusals().is_empty() && !blocked {
        exit::OK
    } else {
        exit::REFUSED
    }
}
