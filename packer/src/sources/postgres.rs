//! PostgreSQL: `pg_dump -Fc` run on a snapshot exported from a REPEATABLE READ, READ ONLY
//! transaction, while the row counts for the manifest are read in that same transaction: the
//! dump and the manifest describe the same instant, whatever is written meanwhile.
//!
//! A database in a container (`container` or `compose_service`) is reached from this host at
//! the container's network address, with the credentials of its environment, for the snapshot
//! transaction; the dump is taken by the container's own `pg_dump` (the server's exact version)
//! through `docker exec`, its output streamed into the spool. The password travels in
//! `docker exec`'s environment only, never on a command line.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use postgres::IsolationLevel;
use restorer::container::{self, ContainerFacts};
use restorer::digest::sha256_file;
use restorer::docker::DbContainer;
use restorer::layout;
use restorer::manifest::PostgresDb;
use restorer::pg::{table_counts, PgTarget};
use restorer::sys::find_pg_tool;

use super::Payload;
use crate::config::PostgresSource;

/// Where a configured database is: the target to connect to from this host and, for a
/// database in a container, that container.
pub struct Located {
    /// How this host connects (the url, or the container's address and credentials).
    pub target: PgTarget,
    /// The container the server runs in, with what the manifest records of it.
    pub container: Option<(ContainerFacts, DbContainer)>,
}

/// Finds a configured database: parses its url, or finds its container (the compose
/// service's running container, or the container by name) and reads its address and
/// credentials from `docker inspect`.
pub fn locate(src: &PostgresSource) -> Result<Located> {
    let what = format!("[[postgres]] {}", src.name);
    if let Some(url) = &src.url {
        return Ok(Located { target: PgTarget::parse(url).with_context(|| format!("{what} url"))?, container: None });
    }
    let id = match (&src.container, &src.compose_service) {
        (Some(name), _) => name.clone(),
        (None, Some(service)) => {
            let c = super::docker::project(&src.compose(), &what)?;
            c.container_of(service)
                .with_context(|| format!("{what}: asking compose for the container of service {service}"))?
                .with_context(|| {
                    format!(
                        "{what}: service {service} of compose project {} has no running container; start it (cd {} && {} -p {} up -d {service})",
                        c.project,
                        c.directory.display(),
                        c.program.join(" "),
                        c.project
                    )
                })?
        }
        (None, None) => bail!("{what}: no url, container or compose_service"),
    };
    let facts = container::inspect(&id).with_context(|| format!("{what}: docker inspect {id}"))?;
    if !facts.running {
        bail!("{what}: container {} is not running; start it first", facts.name);
    }
    let target = facts.pg_target(src.database.as_deref()).with_context(|| what.clone())?;
    let (project, service) = facts.compose_service().unzip();
    let user = facts.env.get("POSTGRES_USER").cloned().unwrap_or_else(|| "postgres".into());
    let info = DbContainer { name: facts.name.clone(), project, service, user };
    Ok(Located { target, container: Some((facts, info)) })
}

/// Connects to every configured database once, so a wrong password or an unreachable server
/// fails before any file is written.
pub fn check_reachable(sources: &[PostgresSource]) -> Result<()> {
    for s in sources {
        let l = locate(s)?;
        l.target.connect().with_context(|| format!("[[postgres]] {}", s.name))?;
    }
    Ok(())
}

/// `docker exec` of a PostgreSQL tool in the container, as the container's user over its local
/// socket, the password (if any) in the environment only.
fn in_container(facts: &ContainerFacts, info: &DbContainer, target: &PgTarget, args: &[&str]) -> Command {
    let user = format!("--username={}", info.user);
    let mut all: Vec<&str> = args.to_vec();
    all.insert(1, &user);
    container::exec(&facts.id, target.password().as_deref(), &all)
}

/// `--version` of a tool inside the container.
fn tool_version_in(facts: &ContainerFacts, tool: &str) -> Result<String> {
    let out = container::exec(&facts.id, None, &[tool, "--version"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {tool} --version in container {}", facts.name))?;
    if !out.status.success() {
        bail!("container {}: {tool} --version failed: {}", facts.name, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The version of the pg_dump that dumps: the host's (`host_pg_dump`) or the container's own.
fn pg_dump_version(located: &Located, host_pg_dump: Option<&Path>, what: &str) -> Result<String> {
    Ok(match (host_pg_dump, &located.container) {
        (Some(pg_dump), _) => String::from_utf8_lossy(
            &Command::new(pg_dump)
                .arg("--version")
                .output()
                .with_context(|| format!("running {}", pg_dump.display()))?
                .stdout,
        )
        .trim()
        .to_string(),
        (None, Some((facts, _))) => tool_version_in(facts, "pg_dump").with_context(|| what.to_string())?,
        (None, None) => unreachable!("a host database has a host pg_dump"),
    })
}

/// Starts pg_dump of the exported snapshot (`snapshot_arg`) into `dump_path`: the host's, or
/// the container's own streaming from its stdout straight into the spool file.
fn start_pg_dump(
    located: &Located,
    host_pg_dump: Option<&Path>,
    snapshot_arg: &str,
    dump_path: &Path,
    what: &str,
) -> Result<Child> {
    let target = &located.target;
    // -Z0: the bundle's gzip compresses the dump once; pg_dump's own zlib would be a second
    // deflate pass over the same bytes (and make the bundle's pass useless).
    Ok(match (host_pg_dump, &located.container) {
        (Some(pg_dump), _) => Command::new(pg_dump)
            .args(["--format=custom", "--compress=0", "--no-sync"])
            .arg(snapshot_arg)
            .arg("--file")
            .arg(dump_path)
            .envs(target.libpq_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("{what}: starting {}", pg_dump.display()))?,
        (None, Some((facts, info))) => {
            let out = File::create(dump_path).with_context(|| format!("creating {}", dump_path.display()))?;
            let db = format!("--dbname={}", target.database());
            in_container(facts, info, target, &["pg_dump", "--format=custom", "--compress=0", snapshot_arg, &db])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("{what}: starting docker exec pg_dump in container {}", facts.name))?
        }
        (None, None) => unreachable!("a host database has a host pg_dump"),
    })
}

/// Dumps one database into `spool` and describes it.
pub fn dump(src: &PostgresSource, spool: &Path) -> Result<(PostgresDb, Payload, Option<super::n8n::N8nData>)> {
    let what = format!("[[postgres]] {}", src.name);
    let located = locate(src)?;
    let target = &located.target;
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
    // On this host: a pg_dump of the server's major version; in a container: its own.
    let host_pg_dump = match &located.container {
        None => Some(find_pg_tool("pg_dump", src.pg_bin.as_deref(), major).with_context(|| what.clone())?),
        Some(_) => None,
    };
    let pg_dump_version = pg_dump_version(&located, host_pg_dump.as_deref(), &what)?;

    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .with_context(|| format!("{what}: starting snapshot transaction"))?;
    let snapshot: String =
        tx.query_one("SELECT pg_export_snapshot()", &[]).with_context(|| format!("{what}: exporting snapshot"))?.get(0);

    let dump_path = spool.join(format!("{}.dump", src.name));
    let snapshot_arg = format!("--snapshot={snapshot}");
    let child = start_pg_dump(&located, host_pg_dump.as_deref(), &snapshot_arg, &dump_path, &what)?;
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
            container: located.container.as_ref().map(|(_, info)| info.clone()),
        },
        payload,
        n8n,
    ))
}

/// `pg_dumpall --roles-only` of the server behind `src`, into the spool: with passwords when the
/// packing user may read them, else without (the caller records which). The restore creates the
/// roles it lacks, so ownership and grants come back.
pub fn dump_roles(src: &PostgresSource, spool: &Path, major: u32) -> Result<(PathBuf, bool)> {
    let what = format!("[[postgres]] {}", src.name);
    let located = locate(src)?;
    let target = &located.target;
    let out = spool.join(format!("{}.roles.sql", src.name));
    if let Some((facts, info)) = &located.container {
        // The container's own pg_dumpall, its output streamed into the spool.
        let run = |no_passwords: bool| -> Result<std::process::Output> {
            let file = File::create(&out).with_context(|| format!("creating {}", out.display()))?;
            let db = format!("--database={}", target.database());
            let mut args = vec!["pg_dumpall", "--roles-only", db.as_str()];
            if no_passwords {
                args.push("--no-role-passwords");
            }
            in_container(facts, info, target, &args)
                .stdin(Stdio::null())
                .stdout(file)
                .output()
                .with_context(|| format!("{what}: running pg_dumpall in container {}", facts.name))
        };
        return roles_outcome(&what, &out, run);
    }
    let tool = find_pg_tool("pg_dumpall", src.pg_bin.as_deref(), major).with_context(|| what.clone())?;
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
    roles_outcome(&what, &out, run)
}

/// Runs `run` with passwords, then (when that fails: a user that may not read pg_authid)
/// without; says which worked.
fn roles_outcome(
    what: &str,
    out: &Path,
    run: impl Fn(bool) -> Result<std::process::Output>,
) -> Result<(PathBuf, bool)> {
    let out = out.to_path_buf();
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
