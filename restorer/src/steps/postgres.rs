//! PostgreSQL databases back from their `pg_dump -Fc` entries: each under its original name,
//! any existing database of that name renamed aside first (so rollback is a rename).
//!
//! Loaded with `default_toast_compression = lz4` where the server has it (PostgreSQL 14 and
//! later, built with lz4 as Debian's and the official images are): large values (n8n's
//! execution data) are compressed on the way into TOAST, and pglz, the default, is the one
//! slow part of loading them (a 1 GB n8n database: 25.7 s with pglz, 7.1 s with lz4, on 2
//! cores). The data read back is the same; only how the server stores it differs, and any
//! column the dump gives its own compression (`SET COMPRESSION`) keeps it.

use std::path::Path;
use std::process::Command;

use crate::checkpoint::{Change, Checkpoint};
use crate::manifest::PostgresDb;
use crate::pg::{end_sessions, has_user_tables, quote_ident, PgTarget};
use crate::plan::{Action, DbState};
use crate::{Error, Result};

fn pe(context: String) -> impl FnOnce(postgres::Error) -> Error {
    move |source| Error::Postgres { context, source }
}

/// What each of `dbs` finds on the server, in order.
pub fn observe(pg: &PgTarget, dbs: &[&PostgresDb]) -> Result<Vec<DbState>> {
    if dbs.is_empty() {
        return Ok(Vec::new());
    }
    let admin = pg.with_database("postgres");
    let mut c = admin.connect()?;
    let mut out = Vec::new();
    for db in dbs {
        let exists = c
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db.database])
            .map_err(pe(format!("looking up database {} on {}", db.database, admin.host_port())))?
            .is_some();
        out.push(if !exists {
            DbState::Absent
        } else {
            let target = pg.with_database(&db.database);
            let mut dc = target.connect()?;
            if has_user_tables(&mut dc, &target.describe())? {
                DbState::HasData
            } else {
                DbState::Empty
            }
        });
    }
    Ok(out)
}

/// Where and with what databases are restored.
pub struct DbRestorer<'a> {
    /// The server.
    pub pg: &'a PgTarget,
    /// The pg_restore binary.
    pub pg_restore: &'a Path,
    /// The extracted bundle.
    pub bundle_dir: &'a Path,
    /// Time stamp used in the names of databases renamed aside.
    pub stamp: &'a str,
    /// The container the server runs in: its own `pg_restore` is used, reading the dump on
    /// stdin (the server's exact version; the host may have none).
    pub container: Option<&'a str>,
}

/// Drops a database that holds no table, view or sequence (checked again here, in the same
/// session, so nothing written meanwhile is lost): the empty database a container image makes on
/// the first start of a new volume.
pub fn drop_empty(pg: &PgTarget, name: &str) -> Result<()> {
    let target = pg.with_database(name);
    let mut dc = target.connect()?;
    if has_user_tables(&mut dc, &target.describe())? {
        return Err(Error::Refused(format!("database {name} is not empty any more; nothing was dropped")));
    }
    drop(dc);
    let mut c = pg.with_database("postgres").connect()?;
    // Plain DROP after ending sessions: WITH (FORCE) needs PostgreSQL 13, images run older ones.
    end_sessions(&mut c, name).map_err(pe(format!("ending sessions on {name}")))?;
    c.batch_execute(&format!("DROP DATABASE {}", quote_ident(name)))
        .map_err(pe(format!("dropping the empty database {name}")))
}

/// Restores one database according to its planned action.
pub fn apply(
    r: &DbRestorer<'_>,
    cp: &mut Checkpoint,
    db: &PostgresDb,
    action: &Action,
    warnings: &mut Vec<String>,
) -> Result<()> {
    match prepare(r, cp, db, action, warnings)? {
        Some(mut load) => crate::sys::run(&mut load.cmd).map(|_| ()),
        None => Ok(()),
    }
}

/// A database ready to load: the pg_restore to run, and the dump it reads (decoded from zstd
/// when the bundle holds it so; removed with this once pg_restore has ended).
pub struct Load {
    /// pg_restore, with its arguments and environment.
    pub cmd: Command,
    /// The plain dump it reads.
    pub dump: crate::zst::PlainDump,
}

/// Everything [`apply`] does before loading the dump (an existing database renamed aside, the
/// new one created, each change journaled first; a zstd dump decoded), and the pg_restore that
/// loads it: run it to finish the step, alone or beside other steps. `None` when the database
/// is kept as it is.
pub fn prepare(
    r: &DbRestorer<'_>,
    cp: &mut Checkpoint,
    db: &PostgresDb,
    action: &Action,
    warnings: &mut Vec<String>,
) -> Result<Option<Load>> {
    let DbRestorer { pg, pg_restore, bundle_dir, stamp, container } = *r;
    let admin = pg.with_database("postgres");
    let mut c = admin.connect()?;
    let name = &db.database;
    match action {
        Action::Refuse => {
            return Err(Error::Refused(format!("database {name} exists and holds data (use --overwrite)")))
        }
        Action::Keep => return Ok(None),
        Action::Replace => {
            let aside = format!("{name}_pre_restore_{stamp}");
            // A database with open sessions cannot be renamed: end them (the operator agreed to
            // replace this database; its content stays intact under the new name).
            end_sessions(&mut c, name).map_err(pe(format!("ending sessions on {name}")))?;
            cp.record(Change::DatabaseRenamed { from: name.clone(), to: aside.clone() })?;
            c.batch_execute(&format!("ALTER DATABASE {} RENAME TO {}", quote_ident(name), quote_ident(&aside)))
                .map_err(pe(format!("renaming database {name} to {aside}")))?;
            warnings
                .push(format!("existing database {name} was kept as {aside}; drop it once the restore is confirmed"));
        }
        Action::Create => {}
    }

    let owner_exists = c
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&db.owner])
        .map_err(pe(format!("looking up role {}", db.owner)))?
        .is_some();
    let mut create = format!(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING '{}'",
        quote_ident(name),
        db.encoding.replace('\'', "")
    );
    if owner_exists {
        create.push_str(&format!(" OWNER {}", quote_ident(&db.owner)));
    }
    cp.record(Change::DatabaseCreated { database: name.clone() })?;
    let with_locale =
        format!("{create} LC_COLLATE '{}' LC_CTYPE '{}'", db.collate.replace('\'', ""), db.ctype.replace('\'', ""));
    if let Err(e) = c.batch_execute(&with_locale) {
        // The source's locale may not exist on a fresh host; the server default still works.
        warnings.push(format!(
            "database {name}: locale {} not available here ({e}); created with the server's default locale",
            db.collate
        ));
        c.batch_execute(&create).map_err(pe(format!("creating database {name}")))?;
    }

    let plain = crate::zst::plain_dump(bundle_dir, db)?;
    let dump = plain.path();
    let lz4 = has_lz4_toast(&mut c);
    let mut cmd = match container {
        Some(id) => {
            // On stdin pg_restore cannot seek in the archive, so no --jobs here: the dump would
            // first have to be copied into the container.
            let f = std::fs::File::open(dump).map_err(|e| Error::io("reading", dump, e))?;
            let lz4_env = [("PGOPTIONS", LZ4_TOAST)];
            let mut c = crate::container::exec_with(
                id,
                pg.password().as_deref(),
                if lz4 { &lz4_env[..] } else { &[] },
                &["pg_restore", "--exit-on-error", "--username", pg.user(), "--dbname", name],
            );
            c.stdin(f);
            c
        }
        None => {
            let mut c = Command::new(pg_restore);
            c.args(["--exit-on-error", "--jobs", &restore_jobs().to_string(), "--dbname", name]);
            let mut env = pg.with_database(name).libpq_env();
            if lz4 {
                with_option(&mut env, LZ4_TOAST);
            }
            c.arg(dump).envs(env);
            c
        }
    };
    if !owner_exists {
        warnings.push(format!(
            "role {} (owner of {name}) does not exist on the target: objects are owned by {}; create the role and run REASSIGN OWNED to fix",
            db.owner,
            pg.user()
        ));
        cmd.args(["--no-owner", "--no-privileges"]);
    }
    Ok(Some(Load { cmd, dump: plain }))
}

/// The load's PGOPTIONS where the server has lz4 (see the module's comment).
const LZ4_TOAST: &str = "-c default_toast_compression=lz4";

/// Whether the server can compress TOAST with lz4 (a setting PostgreSQL 14 added, with lz4
/// among its values when the server was built with it). Any doubt answers no: the server's
/// default then stands, as before.
fn has_lz4_toast(c: &mut postgres::Client) -> bool {
    c.query_opt("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)", &[])
        .is_ok_and(|row| row.is_some())
}

/// Adds `option` to the libpq environment's PGOPTIONS (after the target's own, if any).
fn with_option(env: &mut Vec<(&'static str, String)>, option: &str) {
    match env.iter_mut().find(|(k, _)| *k == "PGOPTIONS") {
        Some((_, v)) => {
            v.push(' ');
            v.push_str(option);
        }
        None => env.push(("PGOPTIONS", option.to_string())),
    }
}

/// How many connections pg_restore loads tables and builds indexes with: one per core. `--jobs`
/// needs the custom-format archive as a file it can seek in (the bundle's entry is one), and
/// rules out `--single-transaction`, which this step never relied on: the database is created
/// by this very restore, and a failure drops it (the checkpoint's DatabaseCreated), so a half
/// loaded database never survives either way.
fn restore_jobs() -> usize {
    crate::sys::cores()
}
