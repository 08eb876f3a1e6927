//! The restore as a whole: verify, observe, plan, then (with consent) checkpoint, install, put
//! files and databases back, validate, start services, report; roll back if a step fails.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;

use crate::checkpoint::Checkpoint;
use crate::manifest::Manifest;
use crate::pg::PgTarget;
use crate::plan::{self, Action, ItemKind, Observed, Plan, PlanOptions};
use crate::progress::Progress;
use crate::report::{Outcome, Report, StepResult, StepStatus};
use crate::select::Rename;
use crate::steps::{self, files::FileWriter};
use crate::verify::{verify_dir, VerifyReport};
use crate::{Error, Result};

/// The default server for a restore: the local socket, as the `postgres` user.
pub const DEFAULT_POSTGRES_URL: &str = "host=/var/run/postgresql user=postgres dbname=postgres";

/// Why a databases-only restore installs, creates, starts and stops nothing.
pub const DATABASES_ONLY: &str =
    "--database: a databases-only restore; no file, package, account or service is touched and the live deployment is left as it is";

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The extracted bundle.
    pub bundle_dir: PathBuf,
    /// Where `/` is (another directory for tests and chroots).
    pub root: PathBuf,
    /// Target PostgreSQL server.
    pub postgres_url: Option<String>,
    /// Replace existing data (kept in the checkpoint).
    pub overwrite: bool,
    /// Install prerequisites (no `--no-install`). Under a `--root` other than `/` only with
    /// `install_packages` as well: see [`Options::installs`].
    pub install: bool,
    /// `--install-packages`: install even under a `--root` other than `/`.
    pub install_packages: bool,
    /// Start services (no `--no-services`). Under a `--root` other than `/` only with
    /// `start_services` as well: see [`Options::starts_services`].
    pub services: bool,
    /// `--start-services`: start services and run health checks even under another `--root`.
    pub start_services: bool,
    /// Checkpoint directory (default under the root's /var/lib/n8n-restore/checkpoints).
    pub checkpoint_dir: Option<PathBuf>,
    /// Directory holding pg_restore.
    pub pg_bin: Option<PathBuf>,
    /// Go on despite an n8n key or version conflict on the target.
    pub force: bool,
    /// Tries of each health check (2 s apart).
    pub health_tries: u32,
    /// Targets that appeared while the prerequisites were installed (package defaults).
    pub installed_defaults: std::collections::HashSet<PathBuf>,
    /// `--database NAME=NEWNAME`: when not empty, a databases-only restore of exactly these
    /// databases, each under its new name ([`crate::select`]).
    pub databases: Vec<Rename>,
    /// With `databases`: the operator named a server (`--postgres-url`), and every named
    /// database goes there, containers or not (a temporary superuser's URL does not count).
    pub databases_to_url: bool,
}

impl Options {
    fn real_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Whether this is a databases-only restore (`--database`).
    pub fn databases_only(&self) -> bool {
        !self.databases.is_empty()
    }

    /// Whether packages are installed: a restore under another root changes nothing of the
    /// host itself unless asked explicitly; a databases-only restore installs nothing.
    pub fn installs(&self) -> bool {
        self.install && (self.real_root() || self.install_packages) && !self.databases_only()
    }

    /// Whether services are started and health-checked (the same rule).
    pub fn starts_services(&self) -> bool {
        self.services && (self.real_root() || self.start_services) && !self.databases_only()
    }

    /// Why packages are not installed, when they are not.
    pub fn install_skipped(&self) -> Option<&'static str> {
        if self.databases_only() {
            Some(DATABASES_ONLY)
        } else if !self.install {
            Some("--no-install")
        } else if !self.installs() {
            Some("--root is not /: nothing is installed on this host without --install-packages")
        } else {
            None
        }
    }

    /// Why services are not started, when they are not.
    pub fn services_skipped(&self) -> Option<&'static str> {
        if self.databases_only() {
            Some(DATABASES_ONLY)
        } else if !self.services {
            Some("--no-services")
        } else if !self.starts_services() {
            Some("--root is not /: no service is started (nor health-checked) without --start-services")
        } else {
            None
        }
    }
}

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

/// Verifies the bundle (refusing on any mismatch), observes the target and builds the plan.
/// Changes nothing.
#[expect(clippy::too_many_lines, reason = "issue 13: prepare is to be split where a name would explain a part")]
pub fn prepare(opts: &Options, progress: &dyn Progress) -> Result<Prepared> {
    let t = Instant::now();
    let (manifest, verify) = verify_dir(&opts.bundle_dir, progress)?;
    let verify_ms = t.elapsed().as_millis();
    let mut manifest = match manifest {
        Some(m) if verify.ok() => m,
        _ => return Err(verify.into_error()),
    };
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
    let mut observed = Observed {
        files: steps::files::observe_files(&manifest, &opts.root)?,
        sqlite: steps::files::observe_sqlite(&manifest, &opts.root)?,
        postgres: Vec::new(),
        compose: Vec::new(),
        installed_defaults: opts.installed_defaults.clone(),
    };
    // Databases that live in containers are restored into them once they run (a fresh host has
    // none yet): only host databases are looked at on a host server now.
    let host_only: Vec<&crate::manifest::PostgresDb> = steps::docker::host_databases(&manifest).collect();
    let (pg, pg_restore) = if host_only.is_empty() {
        (None, None)
    } else {
        let pg = PgTarget::parse(opts.postgres_url.as_deref().unwrap_or(DEFAULT_POSTGRES_URL))?;
        let host_states = steps::postgres::observe(&pg, &host_only).map_err(|e| match e {
            Error::Postgres { .. } => Error::Refused(format!(
                "{e}; the bundle holds PostgreSQL databases: start a server and pass --postgres-url"
            )),
            e => e,
        })?;
        let mut states = host_states.into_iter();
        observed.postgres = manifest
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
        (Some(pg), Some(crate::sys::find_pg_tool("pg_restore", opts.pg_bin.as_deref(), need)?))
    };
    let located = if opts.databases_only() {
        let (located, states) = locate(&manifest, &opts.databases)?;
        let mut states = states.into_iter();
        observed.postgres = manifest
            .postgres
            .iter()
            .zip(std::mem::take(&mut observed.postgres).into_iter().chain(std::iter::repeat(plan::DbState::Absent)))
            .map(|(d, host)| if d.container.is_some() { states.next().unwrap_or(plan::DbState::Absent) } else { host })
            .collect();
        located
    } else {
        Vec::new()
    };
    // A databases-only restore rebuilds no deployment (and so never meets a running project).
    let docker = steps::docker::needed(&manifest) && opts.root == Path::new("/") && !opts.databases_only();
    // A host that already runs a project of the bundle: planned as a refusal (before anything
    // changes), or with --overwrite as containers to stop first.
    let mut own_ports = Vec::new();
    if docker && crate::container::engine_answers() {
        (observed.compose, own_ports) = steps::docker::observe(&steps::docker::projects(&manifest)?)?;
    }
    let server_major = match &pg {
        Some(pg) => {
            let mut c = pg.with_database("postgres").connect()?;
            let v: String = c
                .query_one("SHOW server_version_num", &[])
                .map_err(|source| Error::Postgres {
                    context: format!("asking {} its version", pg.host_port()),
                    source,
                })?
                .get(0);
            v.parse::<u32>().ok().map(|n| n / 10000)
        }
        None => None,
    };
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

struct Steps<'p> {
    list: Vec<StepResult>,
    /// A spinner per step (its time so far) on a terminal.
    progress: &'p dyn Progress,
}

impl Steps<'_> {
    fn run<T>(&mut self, name: &str, log: &mut impl FnMut(&str), f: impl FnOnce() -> Result<(T, String)>) -> Result<T> {
        log(&format!("{name}..."));
        let t = Instant::now();
        self.progress.begin(name, None);
        let r = f();
        self.progress.end();
        let (result, detail) = match &r {
            Ok((_, d)) => (StepStatus::Ok, d.clone()),
            Err(e) => (StepStatus::Failed, e.to_string()),
        };
        self.list.push(StepResult { step: name.into(), result, duration_ms: t.elapsed().as_millis(), detail });
        r.map(|(v, _)| v)
    }
    fn skip(&mut self, name: &str, why: &str) {
        self.list.push(StepResult {
            step: name.into(),
            result: StepStatus::Skipped,
            duration_ms: 0,
            detail: why.into(),
        });
    }
}

/// Carries out a prepared plan. Returns the report in every case where a report can be written;
/// `Err` only when the restore could not even start (checkpoint not creatable, refusals).
#[expect(clippy::too_many_lines, reason = "issue 13: execute is to be split where a name would explain a part")]
pub fn execute(p: &Prepared, opts: &Options, mut log: impl FnMut(&str), progress: &dyn Progress) -> Result<Report> {
    check_blockers(p)?;
    check_refusals(&p.plan, &p.manifest)?;
    let started_at = Utc::now();
    let stamp = started_at.format("%Y%m%d%H%M%S").to_string();
    let cp_dir = opts.checkpoint_dir.clone().unwrap_or_else(|| {
        // Unique even for two restores within one second.
        let base = opts.root.join(crate::layout::CHECKPOINTS_DIR);
        (0..)
            .map(|i| base.join(if i == 0 { stamp.clone() } else { format!("{stamp}-{i}") }))
            .find(|p| !p.exists())
            .unwrap()
    });
    if opts.checkpoint_dir.is_none() {
        // The default lies under the root: a link already there (`ROOT/var -> /elsewhere`) must
        // not carry the journal and the files moved aside out of it. A directory the operator
        // names is theirs to choose.
        steps::files::check_inside_root(&cp_dir, &opts.root).map_err(|e| {
            Error::Refused(format!(
                "{e}: the checkpoint would land there. Nothing was changed; pass --checkpoint-dir DIR"
            ))
        })?;
    }
    let mut cp = Checkpoint::create(&cp_dir, &opts.root, &opts.bundle_dir.display().to_string())?;
    let mut steps = Steps { list: Vec::new(), progress };
    steps.list.push(StepResult {
        step: "verify".into(),
        result: StepStatus::Ok,
        duration_ms: p.verify_ms,
        detail: format!("{} entries, {} bytes, every digest matches", p.verify.entries_checked, p.verify.bytes_checked),
    });
    let mut warnings = p.manifest.warnings.clone();

    let applied = apply_all(p, opts, &mut cp, &mut steps, &mut warnings, &stamp, &mut log);
    let undo_hint = format!(
        "{} rollback {}{}",
        std::env::current_exe().map(|e| e.display().to_string()).unwrap_or_else(|_| "./restore".into()),
        cp_dir.display(),
        if p.pg.is_some() { " --postgres-url URL" } else { "" }
    );
    let mut health = Vec::new();
    // Services and health checks come after a valid restore; a service that does not start or
    // does not answer fails the restore like any other step (and is rolled back).
    let applied = applied.and_then(|(validation, n8n_pg)| {
        if !validation.iter().all(|c| c.ok) {
            return Ok(validation);
        }
        if let Some(why) = opts.services_skipped() {
            steps.skip("services", why);
            return Ok(validation);
        }
        if p.docker {
            // Now the whole deployment: the app starts on its restored database.
            let projects = steps::docker::projects(&p.manifest)?;
            if !projects.is_empty() {
                steps.run("docker compose up", &mut log, || {
                    for pr in &projects {
                        steps::docker::up(&mut cp, pr, &[])?;
                    }
                    Ok((
                        (),
                        format!(
                            "started {}",
                            projects.iter().map(|p| p.project.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    ))
                })?;
            }
        }
        let svc = &p.manifest.services;
        if !svc.start.is_empty() {
            steps.run("services", &mut log, || {
                for s in &svc.start {
                    steps::system::start_service(s)?;
                }
                Ok(((), format!("started {}", svc.start.join(", "))))
            })?;
        }
        if !svc.health.is_empty() || svc.n8n_url.is_some() {
            let pause = std::time::Duration::from_secs(2);
            health = steps::system::health(&svc.health, opts.health_tries, pause);
            if let Some(url) = &svc.n8n_url {
                // After the plain checks: n8n is ready by then, or given its own tries.
                health.push(steps::n8n::serves_workflows(
                    &p.manifest,
                    &opts.root,
                    n8n_pg.as_ref(),
                    url,
                    std::env::var("N8N_API_KEY").ok(),
                    opts.health_tries,
                    pause,
                ));
            }
            let bad: Vec<String> =
                health.iter().filter(|h| !h.ok).map(|h| format!("{} ({})", h.target, h.detail)).collect();
            let detail = format!("{}/{} answered", health.len() - bad.len(), health.len());
            steps.run("health checks", &mut log, || {
                if bad.is_empty() {
                    Ok(((), detail))
                } else {
                    Err(Error::Other(format!("not answering after the restore: {}", bad.join(", "))))
                }
            })?;
        }
        Ok(validation)
    });
    let (outcome, validation, error) = match applied {
        Ok(validation) => {
            let ok = validation.iter().all(|c| c.ok);
            (if ok { Outcome::Restored } else { Outcome::ValidationFailed }, validation, None)
        }
        Err(e) => {
            log(&format!("step failed: {e}; rolling back"));
            let t = Instant::now();
            let failures = cp.rollback(p.pg.as_ref());
            steps.list.push(StepResult {
                step: "rollback".into(),
                result: if failures.is_empty() { StepStatus::Ok } else { StepStatus::Failed },
                duration_ms: t.elapsed().as_millis(),
                detail: if failures.is_empty() {
                    format!("{} change(s) undone", cp.changes.len())
                } else {
                    failures.join("; ")
                },
            });
            // Services that were started on the restored files run on the old ones again.
            if opts.starts_services() && steps.list.iter().any(|s| s.step == "services") {
                for s in &p.manifest.services.start {
                    if let Err(e) = steps::system::start_service(s) {
                        warnings.push(format!("after the rollback, {s} did not restart: {e}"));
                    }
                }
            }
            let outcome =
                if failures.is_empty() { Outcome::FailedRolledBack } else { Outcome::FailedRollbackIncomplete };
            (outcome, Vec::new(), Some(e.to_string()))
        }
    };
    if outcome != Outcome::FailedRollbackIncomplete {
        // A finished restore (restored, failed checks, or rolled back) is not resumed later.
        cp.complete()?;
    }
    Ok(Report {
        outcome,
        bundle_dir: opts.bundle_dir.clone(),
        bundle_created_at: p.manifest.created_at,
        root: opts.root.clone(),
        databases: p.selection.clone(),
        started_at,
        finished_at: Utc::now(),
        steps: steps.list,
        validation,
        health,
        checkpoint: Some(cp_dir),
        undo: if outcome == Outcome::FailedRolledBack { String::new() } else { undo_hint },
        warnings,
        error,
    })
}

#[expect(clippy::too_many_lines, reason = "issue 13: apply_all is to be split where a name would explain a part")]
fn apply_all(
    p: &Prepared,
    opts: &Options,
    cp: &mut Checkpoint,
    steps: &mut Steps,
    warnings: &mut Vec<String>,
    stamp: &str,
    log: &mut impl FnMut(&str),
) -> Result<(Vec<steps::validate::Check>, Option<PgTarget>)> {
    let m = &p.manifest;
    match (&p.missing_packages, opts.installs()) {
        (Some(missing), true) => steps.run("prerequisites", log, || {
            steps::system::install(missing)?;
            Ok((
                (),
                if missing.is_empty() { "all present".to_string() } else { format!("installed {}", missing.join(" ")) },
            ))
        })?,
        (None, true) if !m.requirements.is_empty() => {
            warnings.push(format!(
                "cannot check packages on this host (no dpkg): make sure these are installed: {}",
                m.requirements.join(" ")
            ));
            steps.skip("prerequisites", "no dpkg on this host");
        }
        (Some(missing), false) if !missing.is_empty() => {
            let why = opts.install_skipped().unwrap_or("--no-install");
            warnings.push(format!("{why}; these packages are missing: {}", missing.join(" ")));
            steps.skip("prerequisites", why);
        }
        _ => steps.skip("prerequisites", opts.install_skipped().unwrap_or("nothing required")),
    }

    // Owners first: files come back owned by name.
    let (users, groups) = steps::accounts::missing(m, &crate::owners::Accounts::system());
    if !users.is_empty() || !groups.is_empty() {
        let what = format!("users [{}], groups [{}]", users.join(", "), groups.join(", "));
        if opts.root == Path::new("/") && crate::sys::is_root() {
            steps.run("system accounts", log, || {
                steps::accounts::create(cp, &users, &groups)?;
                Ok(((), format!("created {what}")))
            })?;
        } else {
            warnings.push(format!("these owners do not exist on this host and were not created (only a restore onto / as root creates them): {what}"));
        }
    }
    let projects = if p.docker { steps::docker::projects(m)? } else { Vec::new() };
    if p.docker {
        steps.run("docker engine", log, || Ok(((), steps::docker::ensure_engine()?)))?;
        // Before anything of the deployment changes: a project that already runs is stopped
        // (--overwrite; journaled and kept, a rollback starts it again) or refused (the plan
        // refused it already unless the engine only started just now).
        for pr in projects.iter().filter(|pr| pr.containers().is_ok_and(|c| !c.is_empty())) {
            steps.run(&format!("stop {}", pr.project), log, || {
                let state = steps::docker::stop_existing(cp, pr, opts.overwrite)?;
                let what = state.map(|s| s.describe()).unwrap_or_else(|| "no container".into());
                Ok(((), format!("{what}: stopped, kept for a rollback")))
            })?;
        }
        steps.run("docker volumes", log, || {
            let created = steps::docker::create_volumes(cp, m)?;
            Ok(((), if created.is_empty() { "all exist".into() } else { format!("created {}", created.join(", ")) }))
        })?;
    } else if steps::docker::needed(m) && !opts.databases_only() {
        warnings.push(format!(
            "the bundle holds a Docker deployment; with --root {} its files were put back but no volume, container or database inside one was created (restore onto / for that)",
            opts.root.display()
        ));
    }
    // A databases-only restore writes nothing under the root, not even the root itself.
    if !opts.databases_only() {
        let mut writer = FileWriter::new(&opts.bundle_dir, &opts.root)?;
        let file_items: Vec<_> = p
            .plan
            .items
            .iter()
            .filter(|i| matches!(i.kind, ItemKind::Dir | ItemKind::File | ItemKind::Symlink))
            .collect();
        if !file_items.is_empty() {
            steps.run("files", log, || {
                for item in &file_items {
                    writer.apply_record(cp, &m.files[item.index], &item.action)?;
                }
                writer.finish_dirs()?;
                // One sync for the whole tree instead of one per file: the files were renamed into
                // place, and the journal knows each of them.
                writer.sync_all()?;
                cp.sync()?;
                let replaced = file_items.iter().filter(|i| i.action == Action::Replace).count();
                Ok(((), format!("{} paths ({replaced} replaced, kept in the checkpoint)", file_items.len())))
            })?;
        }
        for item in p.plan.items.iter().filter(|i| i.kind == ItemKind::Sqlite) {
            let db = &m.sqlite[item.index];
            steps.run(&format!("sqlite {}", db.name), log, || {
                writer.apply_sqlite(cp, db, &item.action)?;
                Ok(((), format!("{} -> {}", db.entry, item.target)))
            })?;
        }
        if !m.sqlite.is_empty() {
            writer.sync_all()?;
            cp.sync()?;
        }
        warnings.append(&mut writer.warnings);
    }
    // Databases in containers: their services started alone, on the volumes just restored,
    // before anything that uses them (the app must never start on, or migrate, an empty one).
    // (database, target, container id); a databases-only restore found them running already.
    let mut in_container: Vec<(String, PgTarget, String)> =
        p.located.iter().map(|l| (l.database.clone(), l.target.clone(), l.id.clone())).collect();
    if p.docker {
        if m.docker.as_ref().is_some_and(|d| !d.images.is_empty()) {
            steps.run("docker images", log, || {
                Ok(((), format!("loaded {}", steps::docker::load_images(m, &opts.bundle_dir)?)))
            })?;
        }
        for db in m.postgres.iter().filter(|d| d.container.is_some()) {
            let (project, service) = steps::docker::project_of(&projects, db)?;
            let (facts, target) = steps.run(&format!("start {service}"), log, || {
                steps::docker::up(cp, project, &[service.as_str()])?;
                let (facts, target) = steps::docker::database_of(project, &service, steps::docker::DB_READY_TRIES)?;
                let detail = format!("{} accepts connections at {}", facts.name, target.host_port());
                Ok(((facts, target), detail))
            })?;
            in_container.push((db.database.clone(), target, facts.id));
        }
    }
    let container_of = |db: &crate::manifest::PostgresDb| in_container.iter().find(|c| c.0 == db.database);
    // Roles before databases, so owners and grants exist when pg_restore needs them.
    let mut roles_done: Vec<&str> = Vec::new();
    for d in &m.postgres {
        let in_c = container_of(d);
        let pg = if d.container.is_some() { in_c.map(|c| &c.1) } else { p.pg.as_ref() };
        let (Some(entry), Some(pg)) = (d.roles_entry.as_deref(), pg) else { continue };
        cp.set_container_scope(in_c.map(|c| c.2.clone()));
        if roles_done.contains(&entry) {
            continue;
        }
        roles_done.push(entry);
        let path = opts.bundle_dir.join(entry);
        let sql = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        let roles = steps::roles::parse(&sql);
        steps.run("postgres roles", log, || {
            let (created, grant_warnings) = steps::roles::apply(pg, cp, &roles)?;
            warnings.extend(grant_warnings.into_iter().map(|w| format!("role membership not restored: {w}")));
            if !d.role_passwords && !created.is_empty() {
                warnings.push(format!(
                    "roles created WITHOUT passwords (the bundle has none): {}; set each with ALTER ROLE name PASSWORD '...'",
                    created.join(", ")
                ));
            }
            Ok(((), if created.is_empty() { "all roles already exist".to_string() } else { format!("created {}", created.join(", ")) }))
        })?;
    }
    cp.set_container_scope(None);
    for item in p.plan.items.iter().filter(|i| i.kind == ItemKind::Postgres) {
        let db = &m.postgres[item.index];
        let (pg, container) = match (&db.container, container_of(db)) {
            (None, _) => (p.pg.as_ref().expect("planned postgres has a target"), None),
            (Some(_), Some(c)) => (&c.1, Some(c.2.as_str())),
            (Some(c), None) => {
                steps.skip(
                    &format!("postgres {}", db.database),
                    &format!("lives in container {}; not rebuilt here", c.name),
                );
                continue;
            }
        };
        let pg_restore = p.pg_restore.as_deref().unwrap_or(Path::new("pg_restore"));
        steps.run(&format!("postgres {}", db.database), log, || {
            // A container's server could only be looked at now that it runs (its image made
            // POSTGRES_DB, empty, on first start: renamed aside like any existing database).
            let action = match container {
                Some(id) => {
                    let state = steps::postgres::observe(pg, &[db])?.pop().unwrap_or(plan::DbState::Absent);
                    // Every volume of the container was created by this restore: an empty
                    // database there is the one its image made on first start, nothing anyone
                    // could want kept (a rollback removes the volume anyway).
                    let fresh = crate::container::inspect(id).is_ok_and(|f| {
                        !f.volumes.is_empty()
                            && f.volumes.iter().all(|(v, _)| {
                                cp.changes.iter().any(
                                    |c| matches!(c, crate::checkpoint::Change::VolumeCreated { name } if name == v),
                                )
                            })
                    });
                    if matches!(state, plan::DbState::Empty) && fresh {
                        steps::postgres::drop_empty(pg, &db.database)?;
                        Action::Create
                    } else {
                        plan::db_action(&state, opts.overwrite)
                    }
                }
                None => item.action.clone(),
            };
            let r = steps::postgres::DbRestorer { pg, pg_restore, bundle_dir: &opts.bundle_dir, stamp, container };
            cp.set_container_scope(container.map(str::to_string));
            let r = steps::postgres::apply(&r, cp, db, &action, warnings);
            cp.set_container_scope(None);
            r?;
            let place = match container {
                Some(_) => format!(
                    "in container {} ({})",
                    db.container.as_ref().map(|c| c.name.as_str()).unwrap_or(""),
                    pg.host_port()
                ),
                None => format!("on {}", pg.host_port()),
            };
            let from = item.from.as_ref().map(|f| format!(" (the bundle's {f})")).unwrap_or_default();
            Ok(((), format!("{} -> database {}{from} {place}", db.entry, db.database)))
        })?;
    }
    steps.run("validate", log, || {
        let mut checks = steps::validate::files(m, &opts.root)?;
        checks.extend(steps::validate::postgres_where(m, |db| match &db.container {
            None => p.pg.clone(),
            Some(_) => container_of(db).map(|c| c.1.clone()),
        })?);
        // n8n's database may be one restored into a container.
        let n8n_pg = m
            .n8n
            .as_ref()
            .and_then(|n| m.postgres.iter().find(|d| d.entry == n.database_entry))
            .and_then(|d| if d.container.is_some() { container_of(d).map(|c| c.1.clone()) } else { p.pg.clone() });
        let key_file =
            if opts.databases_only() { p.key_file.clone() } else { steps::n8n::key_file_restored(m, &opts.root) };
        checks.extend(steps::n8n::validate_credentials(m, &opts.root, key_file.as_deref(), n8n_pg.as_ref()));
        let failed = checks.iter().filter(|c| !c.ok).count();
        let detail = format!("{} checks, {failed} failed", checks.len());
        Ok(((checks, n8n_pg), detail))
    })
}

fn checkpoint_base(opts: &Options) -> PathBuf {
    match &opts.checkpoint_dir {
        Some(d) => d.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
        None => opts.root.join(crate::layout::CHECKPOINTS_DIR),
    }
}

/// Checkpoints of interrupted restores on this target: journals of this very root only, and
/// under the default base only when that base lies inside the root (not through a link out).
pub fn interrupted(opts: &Options) -> Vec<Checkpoint> {
    let base = checkpoint_base(opts);
    if opts.checkpoint_dir.is_none() && steps::files::check_inside_root(&base.join("x"), &opts.root).is_err() {
        return Vec::new();
    }
    let same_root = |c: &Checkpoint| match (std::fs::canonicalize(&c.root), std::fs::canonicalize(&opts.root)) {
        (Ok(a), Ok(b)) => a == b,
        _ => c.root == opts.root,
    };
    Checkpoint::interrupted(&base).into_iter().filter(same_root).collect()
}

/// Rolls back every interrupted restore, oldest last-change first. Refuses to go on when one
/// cannot be fully undone.
pub fn roll_back_interrupted(opts: &Options) -> Result<Vec<String>> {
    let pg = match &opts.postgres_url {
        Some(u) => Some(PgTarget::parse(u)?),
        None => PgTarget::parse(DEFAULT_POSTGRES_URL).ok(),
    };
    let mut lines = Vec::new();
    for mut cp in interrupted(opts).into_iter().rev() {
        let n = cp.changes.len();
        let failures = cp.rollback(pg.as_ref());
        if !failures.is_empty() {
            return Err(Error::Refused(format!(
                "an interrupted restore left {} and it could not be fully rolled back: {}. Fix that, then `restore rollback {}`",
                cp.dir.display(),
                failures.join("; "),
                cp.dir.display()
            )));
        }
        lines.push(format!(
            "an interrupted restore left {}: rolled back its {n} change(s) before starting again",
            cp.dir.display()
        ));
    }
    Ok(lines)
}

/// The bundle directory to use when none is given: where this binary sits, if a manifest is
/// there (the operator ran `./restore` from the extracted bundle), else the current directory.
pub fn default_bundle_dir() -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
    match beside {
        Some(d) if d.join(crate::layout::MANIFEST).is_file() => d,
        _ => PathBuf::from("."),
    }
}
