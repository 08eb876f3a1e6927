//! PostgreSQL: `pg_dump -Fc` run on a snapshot exported from a REPEATABLE READ, READ ONLY
//! transaction, while the row counts for the manifest are read in that same transaction: the
//! dump and the manifest describe the same instant, whatever is written meanwhile.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use postgres::IsolationLevel;
use restorer::digest::sha256_file;
use restorer::layout;
use restorer::manifest::PostgresDb;
use restorer::pg::{table_counts, PgTarget};
use restorer::steps::postgres::find_pg_tool;

use super::Payload;
use crate::config::PostgresSource;

/// Connects to every configured database once, so a wrong password or an unreachable server
/// fails before any file is written.
pub fn check_reachable(sources: &[PostgresSource]) -> Result<()> {
    for s in sources {
        let t = PgTarget::parse(&s.url).with_context(|| format!("[[postgres]] {} url", s.name))?;
        t.connect().with_context(|| format!("[[postgres]] {}", s.name))?;
    }
    Ok(())
}

/// Dumps one database into `spool` and describes it.
pub fn dump(src: &PostgresSource, spool: &Path) -> Result<(PostgresDb, Payload, Option<super::n8n::N8nData>)> {
    let what = format!("[[postgres]] {}", src.name);
    let target = PgTarget::parse(&src.url).with_context(|| format!("{what} url"))?;
    let mut client = target.connect().with_context(|| what.clone())?;
    let row = client
        .query_one(
            "SELECT current_database()::text, pg_get_userbyid(d.datdba)::text, pg_encoding_to_char(d.encoding)::text, \
             d.datcollate::text, d.datctype::text, current_setting('server_version'), current_setting('server_version_num')::int \
             FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .with_context(|| format!("{what}: reading database facts"))?;
    let server_version_num: i32 = row.get(6);
    let major = server_version_num as u32 / 10000;
    let pg_dump = find_pg_tool("pg_dump", src.pg_bin.as_deref(), major).with_context(|| what.clone())?;
    let pg_dump_version = String::from_utf8_lossy(
        &Command::new(&pg_dump)
            .arg("--version")
            .output()
            .with_context(|| format!("running {}", pg_dump.display()))?
            .stdout,
    )
    .trim()
    .to_string();

    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .with_context(|| format!("{what}: starting snapshot transaction"))?;
    let snapshot: String =
        tx.query_one("SELECT pg_export_snapshot()", &[]).with_context(|| format!("{what}: exporting snapshot"))?.get(0);

    let dump_path = spool.join(format!("{}.dump", src.name));
    // -Z0: the bundle's gzip compresses the dump once; pg_dump's own zlib would be a second
    // deflate pass over the same bytes (and make the bundle's pass useless).
    let child = Command::new(&pg_dump)
        .args(["--format=custom", "--compress=0", "--no-sync"])
        .arg(format!("--snapshot={snapshot}"))
        .arg("--file")
        .arg(&dump_path)
        .envs(target.libpq_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{what}: starting {}", pg_dump.display()))?;
    // Counted while pg_dump runs, inside the transaction whose snapshot it uses.
    let counts = table_counts(&mut tx, &target.describe());
    // n8n's workflows and credentials, from the same snapshot as the dump.
    let n8n = src.profile.map(|crate::config::Profile::N8n| {
        super::n8n::read_postgres(&mut tx).with_context(|| format!("{what}: reading n8n's tables"))
    });
    let out = child.wait_with_output().with_context(|| format!("{what}: waiting for pg_dump"))?;
    tx.commit().with_context(|| format!("{what}: closing snapshot transaction"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("{what}: pg_dump failed ({}): {}", out.status, stderr.trim());
    }
    let tables = counts.map_err(|e| anyhow!(e)).with_context(|| format!("{what}: counting rows"))?;
    let n8n = n8n.transpose()?;
    let (sha256, size) = sha256_file(&dump_path)?;
    let entry = layout::postgres_entry(&src.name);
    let mtime = chrono::Utc::now().timestamp();
    let payload = Payload { entry: entry.clone(), source: dump_path, size, sha256: sha256.clone(), mtime };
    Ok((
        PostgresDb {
            name: src.name.clone(),
            entry,
            database: row.get(0),
            owner: row.get(1),
            encoding: row.get(2),
            collate: row.get(3),
            ctype: row.get(4),
            server_version: row.get(5),
            server_version_num: server_version_num as u32,
            pg_dump_version,
            size,
            sha256,
            tables,
            roles_entry: None,
            role_passwords: false,
            container: None,
        },
        payload,
        n8n,
    ))
}

/// `pg_dumpall --roles-only` of the server behind `src`, into the spool: with passwords when the
/// packing user may read them, else without (the caller records which). The restore creates the
/// roles it lacks, so ownership and grants come back.
pub fn dump_roles(src: &PostgresSource, spool: &Path, major: u32) -> Result<(std::path::PathBuf, bool)> {
    let what = format!("[[postgres]] {}", src.name);
    let target = PgTarget::parse(&src.url).with_context(|| format!("{what} url"))?;
    let tool = find_pg_tool("pg_dumpall", src.pg_bin.as_deref(), major).with_context(|| what.clone())?;
    let out = spool.join(format!("{}.roles.sql", src.name));
    let run = |no_passwords: bool| -> Result<std::process::Output> {
        let mut c = Command::new(&tool);
        c.args(["--roles-only", "--file"])
            .arg(&out)
            .envs(target.libpq_env())
            .arg(format!("--database={}", target.database()));
        if no_passwords {
            c.arg("--no-role-passwords");
        }
        c.stdin(Stdio::null()).output().with_context(|| format!("{what}: running {}", tool.display()))
    };
    let first = run(false)?;
    if first.status.success() {
        return Ok((out, true));
    }
    // A user that may not read pg_authid: names and attributes only.
    let second = run(true)?;
    if second.status.success() {
        return Ok((out, false));
    }
    bail!("{what}: pg_dumpall --roles-only failed: {}", String::from_utf8_lossy(&second.stderr).trim())
}
