//! Deep verification: restore every database of a bundle into a throwaway PostgreSQL cluster
//! (or open the SQLite copy), then compare every table's row count and every n8n workflow's
//! recomputed checksum with the manifest. It proves the bundle restores and holds what it
//! claimed when it was made, not that it matches production today.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use restorer::manifest::{Manifest, TableCount};
use restorer::n8n::WorkflowSummary;
use restorer::pg::{table_counts, PgTarget};
use restorer::steps::validate::{compare_counts, Check};

use crate::pg_cluster::Cluster;
use crate::sources::n8n::N8nData;

fn compare_workflows(out: &mut Vec<Check>, expected: &[WorkflowSummary], actual: &N8nData) {
    for w in expected {
        let found = actual.workflows.iter().find(|(s, _)| s.id == w.id);
        let got = found.map(|(s, _)| s.checksum.clone()).unwrap_or_else(|| "workflow missing".into());
        out.push(Check {
            ok: got == w.checksum,
            check: format!("n8n workflow {} ({}) checksum", w.id, w.name),
            expected: w.checksum.clone(),
            actual: got,
        });
    }
    for (s, _) in &actual.workflows {
        if !expected.iter().any(|w| w.id == s.id) {
            out.push(Check {
                ok: false,
                check: format!("n8n workflow {} ({})", s.id, s.name),
                expected: "absent from manifest".into(),
                actual: "present".into(),
            });
        }
    }
}

fn check(out: &mut Vec<Check>, what: String, r: Result<()>) {
    out.push(match r {
        Ok(()) => Check { check: what, expected: "ok".into(), actual: "ok".into(), ok: true },
        Err(e) => Check { check: what, expected: "ok".into(), actual: crate::error_text::chain(&e), ok: false },
    });
}

/// Runs the deep checks of `bundle` (whose digests were verified by the caller).
pub fn verify(bundle: &Path, manifest: &Manifest, log: &mut dyn FnMut(&str)) -> Result<Vec<Check>> {
    // Ctrl-C or SIGTERM must not kill us before the throwaway cluster is torn down: the flag
    // stops us between steps; a running pg_restore gets the terminal's signal itself and fails.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let interrupted = || -> Result<()> {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted; the throwaway cluster is being removed");
        }
        Ok(())
    };
    let parent = bundle.parent().unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".packer-deep-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a work directory in {}", parent.display()))?;
    let dir = work.path().join("x");
    log("extracting the databases ...");
    restorer::unpack::unpack_only(bundle, &dir, |n| n.starts_with("databases/"))?;
    let mut out = Vec::new();
    let n8n = manifest.n8n.as_ref();

    if !manifest.postgres.is_empty() {
        log("starting a throwaway PostgreSQL cluster ...");
        let cluster = Cluster::start()?;
        let bin = cluster.bin().to_path_buf();
        for db in &manifest.postgres {
            interrupted()?;
            log(&format!("restoring {} into the throwaway cluster ...", db.entry));
            // Our own throwaway cluster has no TLS: say so, so an operator's PGSSLMODE (meant for
            // the server packed) does not reach this connection or pg_restore's.
            let target = PgTarget::parse(&format!("{}?sslmode=disable", cluster.url(&db.database)))?;
            let restored = (|| -> Result<()> {
                cluster.psql(
                    "postgres",
                    &format!(
                        "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'",
                        restorer::pg::quote_ident(&db.database)
                    ),
                )?;
                let mut cmd = Command::new(bin.join("pg_restore"));
                cmd.args(["--exit-on-error", "--no-owner", "--no-privileges", "--dbname", &db.database])
                    .arg(dir.join(&db.entry))
                    .envs(target.libpq_env());
                restorer::steps::run(&mut cmd)?;
                Ok(())
            })();
            let ok = restored.is_ok();
            check(&mut out, format!("postgres {}: pg_restore of {}", db.database, db.entry), restored);
            if !ok {
                continue;
            }
            let mut c = target.connect()?;
            let counts: Vec<TableCount> = table_counts(&mut c, &target.describe())?;
            compare_counts(&mut out, &format!("postgres {}", db.database), &db.tables, &counts);
            if let Some(n) = n8n.filter(|n| n.database_entry == db.entry) {
                match crate::sources::n8n::read_postgres(&mut c) {
                    Ok(data) => compare_workflows(&mut out, &n.workflows, &data),
                    Err(e) => check(&mut out, "n8n: reading workflows from the restored database".into(), Err(e)),
                }
            }
        }
    }
    for db in &manifest.sqlite {
        interrupted()?;
        let path = dir.join(&db.entry);
        let prefix = format!("sqlite {}", db.name);
        let opened = restorer::sqlite::open_read_only(&path)
            .and_then(|c| restorer::sqlite::integrity_check(&c, &path).map(|_| c));
        match opened {
            Ok(conn) => {
                check(&mut out, format!("{prefix}: integrity_check"), Ok(()));
                compare_counts(&mut out, &prefix, &db.tables, &restorer::sqlite::table_counts(&conn, &path)?);
                if let Some(n) = n8n.filter(|n| n.database_entry == db.entry) {
                    match crate::sources::n8n::read_sqlite(&conn) {
                        Ok(data) => compare_workflows(&mut out, &n.workflows, &data),
                        Err(e) => check(&mut out, "n8n: reading workflows from the copy".into(), Err(e)),
                    }
                }
            }
            Err(e) => check(&mut out, format!("{prefix}: integrity_check"), Err(e.into())),
        }
    }
    interrupted()?;
    Ok(out)
}
