//! Before anything changes: verify, observe the target, build the plan, find what would make
//! the restore fail.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::manifest::Manifest;
use crate::pg::PgTarget;
use crate::plan::{self, ItemKind, Observed, Plan, PlanOptions};
use crate::progress::Progress;
use crate::select::Rename;
use crate::steps;
use crate::verify::{verify_dir, VerifyReport};
use crate::{Error, Result};

use super::{Options, DEFAULT_POSTGRES_URL};

/// Everything decided before anything changes.
pub struct Prepared {
    /// The verified manifest.
    pub manifest: Manifest,
    /// The digest check.
    pub verify: VerifyReport,
    /// How long the digest check took.
    pub verify_ms: u128,
    /// What will happen.
    pub plan: Plan,
    /// The PostgreSQL server, when the bundle has databases.
    pub pg: Option<PgTarget>,
    /// pg_restore to use, when the bundle has databases.
    pub pg_restore: Option<PathBuf>,
    /// Packages the host lacks (None: cannot tell without dpkg).
    pub missing_packages: Option<Vec<String>>,
    /// What on this host would make the restore fail, with what to do.
    pub findings: Vec<steps::preflight::Finding>,
    /// The Docker deployment is rebuilt (the bundle has one and the root is `/`).
    pub docker: bool,
    /// `--database`: the databases restored and their new names (empty: a full restore). The
    /// manifest above is then that restore's own ([`crate::select::select`]).
    pub selection: Vec<Rename>,
    /// A databases-only restore: the running containers the databases that lived in one go into.
    pub located: Vec<Located>,
    /// A databases-only restore: the bundle's copy of the file holding n8n's key (no file is
    /// written, so the credential check reads the key there).
    pub key_file: Option<PathBuf>,
}

/// The running container a databases-only restore restores a container database into.
#[derive(Debug, Clone)]
pub struct Located {
    /// The database's (new) name.
    pub database: String,
    /// How to reach the container's server.
    pub target: PgTarget,
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Its compose project.
    pub project: String,
}

impl Prepared {
    /// The Docker part of the plan, in the order it runs (shown by `--dry-run`, in `--json` too).
    pub fn docker_lines(&self) -> Vec<String> {
        if self.selection.is_empty() {
            return steps::docker::plan_lines(&self.manifest, self.docker);
        }
        self.located
            .iter()
            .map(|l| {
                format!(
                    "database {} into the running container {} (project {}, {}), beside what it holds; nothing started or stopped",
                    l.database,
                    l.name,
                    l.project,
                    l.target.host_port()
                )
            })
            .collect()
    }
}

/// A databases-only restore: the running container each container database of `m` goes into
/// (a compose service's, found by compose's labels; a plain container, by its name), and what
/// it holds under the database's new name. `renames` is parallel to `m.postgres` (the bundle's
/// names, for messages). Refuses when the engine does not answer or the container does not
/// run, saying what to do. Starts nothing.
fn locate(m: &Manifest, renames: &[Rename]) -> Result<(Vec<Located>, Vec<plan::DbState>)> {
    let dbs: Vec<(&crate::manifest::PostgresDb, &str)> =
        m.postgres.iter().zip(renames.iter().map(|r| r.from.as_str())).filter(|(d, _)| d.container.is_some()).collect();
    let Some((first, first_name)) = dbs.first() else { return Ok((Vec::new(), Vec::new())) };
    let what_to_do = "start it, or restore it with --postgres-url to another server";
    if !crate::container::engine_answers() {
        return Err(Error::Refused(format!(
            "the bundle's database {first_name} (as {}) lived in a container and no Docker engine answers here: {what_to_do}. Nothing was changed",
            first.database
        )));
    }
    let (mut located, mut states) = (Vec::new(), Vec::new());
    for (db, from) in dbs {
        let c = db.container.as_ref().expect("filtered");
        let (id, project) = match (&c.project, &c.service) {
            // The live project's container, by compose's labels: neither compose nor the
            // project's files are needed for that.
            (Some(project), Some(service)) => {
                let id = crate::container::running_service(project, service)?.ok_or_else(|| {
                    let dir = m.docker.iter().flat_map(|d| &d.compose).find(|p| &p.project == project);
                    let dir = dir.map(|p| format!(" in {}", p.directory.display())).unwrap_or_default();
                    Error::Refused(format!(
                        "the bundle's database {from} (as {}) lives in service {service} of compose project {project}, which has no running container here: {what_to_do} (`docker compose -p {project} up -d {service}`{dir}). Nothing was changed",
                        db.database
                    ))
                })?;
                (id, project.clone())
            }
            // A plain container: the live one of the same name.
            _ => match crate::container::inspect(&c.name) {
                Ok(f) if f.running => (f.id, "-".to_string()),
                _ => {
                    return Err(Error::Refused(format!(
                        "the bundle's database {from} (as {}) lived in container {}, which does not run here: {what_to_do} (`docker start {}`). Nothing was changed",
                        db.database, c.name, c.name
                    )))
                }
            },
        };
        let facts = crate::container::inspect(&id)?;
        let target = facts.pg_target(Some("postgres"))?;
        states.push(steps::postgres::observe(&target, &[db])?.pop().unwrap_or(plan::DbState::Absent));
        located.push(Located { database: db.database.clone(), target, id: facts.id, name: facts.name, project });
    }
    Ok((located, states))
}

/// A bundle whose every entry matched its digest: what [`prepare`] plans from.
pub struct Verified {
    /// The verified manifest.
    pub manifest: Manifest,
    /// The digest check.
    pub report: VerifyReport,
    /// How long it took.
    pub ms: u128,
}

impl Verified {
    /// Whether the bundle holds PostgreSQL databases for a host server (those that lived in
    /// containers need none): a bare host then needs a local cluster reached first.
    pub fn needs_host_postgres(&self) -> bool {
        steps::docker::host_databases(&self.manifest).next().is_some()
    }
}

/// Verifies every entry of the extracted bundle against its digest, refusing on any mismatch
/// with each bad entry named. Changes nothing.
pub fn verify(bundle_dir: &Path, progress: &dyn Progress) -> Result<Verified> {
    let t = Instant::now();
    let (manifest, report) = verify_dir(bundle_dir, progress)?;
    let ms = t.elapsed().as_millis();
    match manifest {
        Some(manifest) if report.ok() => Ok(Verified { manifest, report, ms }),
        _ => Err(report.into_error()),
    }
}

/// Observes the target and builds the plan for a verified bundle. Changes nothing.
pub fn prepare(opts: &Options, verified: Verified) -> Result<Prepared> {
    let Verified { manifest, report: verify, ms: verify_ms } = verified;
    let (manifest, key_file) = checked_manifest(opts, manifest)?;
    let mut observed = Observed {
        files: steps::files::observe_files(&manifest, &opts.root)?,
        sqlite: steps::files::observe_sqlite(&manifest, &opts.root)?,
        postgres: Vec::new(),
        compose: Vec::new(),
        installed_defaults: opts.installed_defaults.clone(),
    };
    let (pg, pg_restore) = observe_host_postgres(opts, &manifest, &mut observed)?;
    let located = if opts.databases_only() { observe_located(opts, &manifest, &mut observed)? } else { Vec::new() };
    // A databases-only restore rebuilds no deployment (and so never meets a running project).
    let docker = steps::docker::needed(&manifest) && opts.root == Path::new("/") && !opts.databases_only();
    // A host that already runs a project of the bundle: planned as a refusal (before anything
    // changes), or with --overwrite as containers to stop first.
    let mut own_ports = Vec::new();
    if docker && crate::container::engine_answers() {
        (observed.compose, own_ports) = steps::docker::observe(&steps::docker::projects(&manifest)?)?;
    }
    let server_major = pg.as_ref().map(server_major).transpose()?.flatten();
    let (facts, mut needs) = steps::preflight::gather(&manifest, &opts.root, opts.starts_services(), server_major);
    // Ports the project's own running containers hold are freed when they are stopped (and
    // without --overwrite the project is refused anyway, saying why).
    needs.published.retain(|(port, _)| !own_ports.contains(port));
    let findings = steps::preflight::assess(&facts, &needs);
    let mut plan = plan::build(&manifest, &opts.root, &observed, &PlanOptions { overwrite: opts.overwrite })?;
    if opts.databases_only() {
        plan.databases_only = true;
        for i in plan.items.iter_mut().filter(|i| i.kind == ItemKind::Postgres) {
            i.from = opts.databases.get(i.index).map(|r| r.from.clone());
        }
    }
    let missing_packages =
        if opts.databases_only() { None } else { steps::system::missing_packages(&manifest.requirements) };
    Ok(Prepared {
        manifest,
        verify,
        verify_ms,
        plan,
        pg,
        pg_restore,
        missing_packages,
        findings,
        docker,
        selection: opts.databases.clone(),
        located,
        key_file,
    })
}

/// The verified manifest made ready to plan from: refused when a target would land outside the
/// root, a name is unsafe, or the target's n8n conflicts (without --force); for a
/// databases-only restore narrowed to its selection, with the bundle's copy of n8n's key file.
fn checked_manifest(opts: &Options, mut manifest: Manifest) -> Result<(Manifest, Option<PathBuf>)> {
    crate::docker::volume_owners_by_id(&mut manifest);
    steps::files::check_targets_inside(&manifest, &opts.root)?;
    crate::names::check(&manifest)?;
    // A databases-only restore: from here on, the manifest of what it restores.
    let mut key_file = None;
    if opts.databases_only() {
        key_file = crate::select::key_file_in_bundle(&manifest, &opts.bundle_dir);
        manifest = crate::select::select(&manifest, &opts.databases, opts.databases_to_url)?;
    }
    // A key or version conflict concerns the files and the app; a databases-only restore
    // touches neither.
    let conflicts = if opts.databases_only() { Vec::new() } else { steps::n8n::conflicts(&manifest, &opts.root) };
    if !conflicts.is_empty() && !opts.force {
        return Err(Error::Refused(format!("{}. Nothing was changed; --force goes on anyway", conflicts.join("; "))));
    }
    Ok((manifest, key_file))
}

/// The host server's side: what it holds of each host database (into `observed`), the server
/// and the pg_restore able to read the dumps. `(None, None)` when no database is for a host
/// server. Databases that live in containers are restored into them once they run (a fresh
/// host has none yet): only host databases are looked at on a host server now.
fn observe_host_postgres(
    opts: &Options,
    manifest: &Manifest,
    observed: &mut Observed,
) -> Result<(Option<PgTarget>, Option<PathBuf>)> {
    let host_only: Vec<&crate::manifest::PostgresDb> = steps::docker::host_databases(manifest).collect();
    if host_only.is_empty() {
        return Ok((None, None));
    }
    let pg = PgTarget::parse(opts.postgres_url.as_deref().unwrap_or(DEFAULT_POSTGRES_URL))?;
    let host_states = steps::postgres::observe(&pg, &host_only).map_err(|e| match e {
        Error::Postgres { .. } => Error::Refused(format!(
            "{e}; the bundle holds PostgreSQL databases: start a server and pass --postgres-url"
        )),
        e => e,
    })?;
    let mut states = host_states.into_iter();
    observed.postgres =
        manifest
            .postgres
            .iter()
            .map(|d| {
                if d.container.is_none() {
                    states.next().unwrap_or(plan::DbState::Absent)
                } else {
                    plan::DbState::Absent
                }
            })
            .collect();
    let need = host_only.iter().map(|d| d.server_version_num / 10000).max().unwrap_or(0);
    let pg_restore = crate::sys::find_pg_tool("pg_restore", opts.pg_bin.as_deref(), need)?;
    Ok((Some(pg), Some(pg_restore)))
}

/// A databases-only restore: the running containers its container databases go into, and what
/// each holds under its new name (into `observed`, beside the host databases' states).
fn observe_located(opts: &Options, manifest: &Manifest, observed: &mut Observed) -> Result<Vec<Located>> {
    let (located, states) = locate(manifest, &opts.databases)?;
    let mut states = states.into_iter();
    observed.postgres = manifest
        .postgres
        .iter()
        .zip(std::mem::take(&mut observed.postgres).into_iter().chain(std::iter::repeat(plan::DbState::Absent)))
        .map(|(d, host)| if d.container.is_some() { states.next().unwrap_or(plan::DbState::Absent) } else { host })
        .collect();
    Ok(located)
}

/// The server's major version (15 for 15.4), for the pre-flight's version check.
fn server_major(pg: &PgTarget) -> Result<Option<u32>> {
    let mut c = pg.with_database("postgres").connect()?;
    let v = crate::pg::server_version_num(&mut c)
        .map_err(|source| Error::Postgres { context: format!("asking {} its version", pg.host_port()), source })?;
    Ok(Some(v / 10000).filter(|_| v > 0))
}

/// Refuses when the pre-flight found a blocker, naming each with what to do.
pub fn check_blockers(p: &Prepared) -> Result<()> {
    let blockers: Vec<String> =
        p.findings.iter().filter(|f| f.blocker).map(|f| format!("{} (what to do: {})", f.what, f.fix)).collect();
    if blockers.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!("pre-flight: {}. Nothing was changed", blockers.join("; "))))
    }
}

/// Refuses a plan that would overwrite data or a running deployment without `--overwrite`,
/// naming each item.
pub fn check_refusals(plan: &Plan, manifest: &Manifest) -> Result<()> {
    let (projects, refused): (Vec<&plan::Item>, Vec<&plan::Item>) =
        plan.refusals().into_iter().partition(|i| i.kind == ItemKind::Compose);
    let mut parts: Vec<String> = projects
        .iter()
        .map(|i| {
            let dir = manifest.docker.as_ref().and_then(|d| d.compose.get(i.index)).map(|c| c.directory.as_path());
            steps::docker::refusal(&i.target, dir.unwrap_or(Path::new(".")), &i.state)
        })
        .collect();
    if !refused.is_empty() {
        let list: Vec<String> = refused.iter().take(20).map(|i| format!("{} ({})", i.target, i.state)).collect();
        parts.push(format!(
            "{} target(s) already hold different data: {}{}. Re-run with --overwrite to replace them (the current versions are kept in a checkpoint and can be put back with `restore rollback`)",
            refused.len(),
            list.join(", "),
            if refused.len() > 20 { ", ..." } else { "" }
        ));
    }
    if parts.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!("{}. Nothing was changed", parts.join(". "))))
}
