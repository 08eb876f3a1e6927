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
use restorer::docker::DbContainer;
use restorer::layout;
use restorer::manifest::PostgresDb;
use restorer::pg::{table_counts, PgTarget};
use restorer::sys::find_pg_tool;

use super::Payload;
use crate::config::Compression;
use crate::config::PostgresSource;
use crate::spool::{GzSpool, Spool, ZstSpool};

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

/// Starts pg_dump of the exported snapshot (`snapshot_arg`), the dump on its stdout: the
/// host's, or the container's own.
fn start_pg_dump(located: &Located, host_pg_dump: Option<&Path>, snapshot_arg: &str, what: &str) -> Result<Child> {
    let target = &located.target;
    // -Z0: the bundle's gzip compresses the dump once; pg_dump's own zlib would be a second
    // deflate pass over the same bytes (and make the bundle's pass useless). On a pipe, pg_dump
    // cannot seek back to note where each table's data starts: pg_restore finds it by reading
    // ahead in the file the restore extracts, parallel jobs included.
    let mut cmd = match (host_pg_dump, &located.container) {
        (Some(pg_dump), _) => {
            let mut c = Command::new(pg_dump);
            c.args(["--format=custom", "--compress=0", "--no-sync"]).arg(snapshot_arg).envs(target.libpq_env());
            c
        }
        (None, Some((facts, info))) => {
            let db = format!("--dbname={}", target.database());
            in_container(facts, info, target, &["pg_dump", "--format=custom", "--compress=0", snapshot_arg, &db])
        }
        (None, None) => unreachable!("a host database has a host pg_dump"),
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| match host_pg_dump {
        Some(p) => format!("{what}: starting {}", p.display()),
        None => format!("{what}: starting docker exec pg_dump"),
    })
}

/// How a dump is compressed while pg_dump writes it.
#[derive(Clone)]
pub struct Compress {
    /// gzip members (the bundle's own compression) or a zstd frame.
    pub codec: Compression,
    /// The level, of that codec.
    pub level: u32,
    /// zstd's worker threads for this dump.
    pub threads: usize,
    /// The cores gzip blocks compress on, shared with the dumps and copies taken meanwhile.
    pub cores: crate::pgzip::Cores,
}

type N8nRead = Option<Result<super::n8n::N8nData>>;

/// Pipe capacity asked for pg_dump's output, and the most read at once: pg_dump writes its
/// gigabytes in small pieces, and the syscalls are what moving them costs (a default 64 KiB
/// pipe read through io::copy's 8 KiB buffer is ~140,000 reads per GB). Linux grants up to
/// `fs.pipe-max-size` (1 MiB by default); a smaller grant only means more reads.
const PIPE_CHUNK: usize = 1 << 20;

/// Copies pg_dump's whole output into the spool, through a 1 MiB pipe and 1 MiB reads (io::copy
/// reads a BufReader through its own buffer).
fn copy_out(stdout: std::process::ChildStdout, mut spool: Spool) -> std::io::Result<Spool> {
    let _ = rustix::pipe::fcntl_setpipe_size(&stdout, PIPE_CHUNK);
    std::io::copy(&mut std::io::BufReader::with_capacity(PIPE_CHUNK, stdout), &mut spool)?;
    Ok(spool)
}

/// pg_dump's output compressed into `spool` on other threads while this one counts the rows and
/// reads n8n's tables, inside the transaction whose snapshot pg_dump uses. A spool that cannot
/// take the dump (a full disk) stops pg_dump.
fn spool_while_counting(
    child: &mut Child,
    spool: Spool,
    tx: &mut postgres::Transaction<'_>,
    src: &PostgresSource,
    target: &PgTarget,
    what: &str,
) -> Result<(Spool, restorer::error::Result<Vec<restorer::manifest::TableCount>>, N8nRead)> {
    let stdout = child.stdout.take().expect("pg_dump's stdout is piped");
    let (spooled, counts, n8n) = std::thread::scope(|s| {
        let copier = s.spawn(move || copy_out(stdout, spool));
        let counts = table_counts(&mut *tx, &target.describe());
        // n8n's workflows and credentials, from the same snapshot as the dump.
        let n8n = src.profile.map(|crate::config::Profile::N8n| {
            super::n8n::read_postgres(&mut *tx).with_context(|| format!("{what}: reading n8n's tables"))
        });
        (copier.join(), counts, n8n)
    });
    match spooled {
        Ok(Ok(spool)) => Ok((spool, counts, n8n)),
        failed => {
            let _ = child.kill();
            let _ = child.wait();
            let e = match failed {
                Ok(Err(e)) => anyhow!(e),
                _ => anyhow!("the thread compressing the dump panicked"),
            };
            Err(e.context(format!("{what}: compressing pg_dump's output into the spool")))
        }
    }
}

/// Dumps one database into `spool`, compressed as pg_dump writes it, and describes it.
pub fn dump(
    src: &PostgresSource,
    spool: &Path,
    compress: Compress,
) -> Result<(PostgresDb, Payload, Option<super::n8n::N8nData>)> {
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

    // The codec decides the entry's name, what the manifest says of it, and the spool.
    let (entry, compressed, to) = match compress.codec {
        Compression::Gzip => {
            let path = spool.join(format!("{}.dump.gz", src.name));
            (
                layout::postgres_entry(&src.name),
                None,
                Spool::Gz(GzSpool::create(&path, compress.level, &compress.cores)?),
            )
        }
        Compression::Zstd => {
            let path = spool.join(format!("{}.dump.zst", src.name));
            let s = ZstSpool::create(&path, compress.level, compress.threads)?;
            (layout::postgres_zstd_entry(&src.name), Some(restorer::manifest::Codec::Zstd), Spool::Zst(s))
        }
    };
    let snapshot_arg = format!("--snapshot={snapshot}");
    let mut child = start_pg_dump(&located, host_pg_dump.as_deref(), &snapshot_arg, &what)?;
    let (spooled, counts, n8n) = spool_while_counting(&mut child, to, &mut tx, src, target, &what)?;
    let out = child.wait_with_output().with_context(|| format!("{what}: waiting for pg_dump"))?;
    tx.commit().with_context(|| format!("{what}: closing snapshot transaction"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("{what}: pg_dump failed ({}): {}", out.status, stderr.trim());
    }
    let tables = counts.map_err(|e| anyhow!(e)).with_context(|| format!("{what}: counting rows"))?;
    let n8n = n8n.transpose()?;
    let payload = spooled.finish(&entry, chrono::Utc::now().timestamp()).with_context(|| what.clone())?;
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
            size: payload.size,
            sha256: payload.sha256.clone(),
            tables,
            roles_entry: None,
            role_passwords: false,
            container: located.container.as_ref().map(|(_, info)| info.clone()),
            compressed,
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
