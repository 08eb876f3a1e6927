//! Carrying out a prepared plan: checkpoint, each step in order, validation, services and health
//! checks; a failed step rolls everything back.

use std::path::Path;
use std::time::Instant;

use chrono::Utc;

use crate::checkpoint::Checkpoint;
use crate::pg::PgTarget;
use crate::plan::{self, Action, ItemKind};
use crate::progress::Progress;
use crate::report::{Outcome, Report, StepResult, StepStatus};
use crate::steps::{self, files::FileWriter};
use crate::{Error, Result};

use super::{check_blockers, check_refusals, Options, Prepared};

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
    /// A step that ran beside others (a database loading while the files were written),
    /// with its own start and end.
    fn record(&mut self, name: &str, started: Instant, ended: Instant, r: std::result::Result<&str, &Error>) {
        let (result, detail) = match r {
            Ok(d) => (StepStatus::Ok, d.to_string()),
            Err(e) => (StepStatus::Failed, e.to_string()),
        };
        let duration_ms = ended.saturating_duration_since(started).as_millis();
        self.list.push(StepResult { step: name.into(), result, duration_ms, detail });
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

/// A database on the host server loading (its pg_restore running) while other steps go on.
struct Loading {
    step: String,
    started: Instant,
    /// `None`: the database is kept as it is. The dump pg_restore reads lives as long.
    running: Option<(crate::sys::Running, crate::zst::PlainDump)>,
    /// The step's detail once it succeeds.
    detail: String,
}

/// A database restored into a container: (database, how to reach its server, container id).
type InContainer = (String, PgTarget, String);

/// One restore under way: what was prepared, the journal every change goes into, the steps so
/// far and the warnings for the report.
struct Run<'a, L: FnMut(&str)> {
    p: &'a Prepared,
    opts: &'a Options,
    cp: Checkpoint,
    steps: Steps<'a>,
    warnings: Vec<String>,
    /// The restore's timestamp: names what it renames aside (NAME_pre_restore_STAMP).
    stamp: String,
    log: L,
    /// Databases restored into containers, once their servers run.
    in_container: Vec<InContainer>,
}

/// Carries out a prepared plan. Returns the report in every case where a report can be written;
/// `Err` only when the restore could not even start (checkpoint not creatable, refusals).
pub fn execute(p: &Prepared, opts: &Options, log: impl FnMut(&str), progress: &dyn Progress) -> Result<Report> {
    check_blockers(p)?;
    check_refusals(&p.plan, &p.manifest)?;
    let started_at = Utc::now();
    let stamp = started_at.format("%Y%m%d%H%M%S").to_string();
    let cp_dir = checkpoint_dir(opts, &stamp)?;
    let cp = Checkpoint::create(&cp_dir, &opts.root, &opts.bundle_dir.display().to_string())?;
    let mut steps = Steps { list: Vec::new(), progress };
    steps.list.push(StepResult {
        step: "verify".into(),
        result: StepStatus::Ok,
        duration_ms: p.verify_ms,
        detail: format!("{} entries, {} bytes, every digest matches", p.verify.entries_checked, p.verify.bytes_checked),
    });
    // A databases-only restore found its containers running already.
    let in_container = p.located.iter().map(|l| (l.database.clone(), l.target.clone(), l.id.clone())).collect();
    let mut run = Run { p, opts, cp, steps, warnings: p.manifest.warnings.clone(), stamp, log, in_container };
    let undo_hint = format!(
        "{} rollback {}{}",
        std::env::current_exe().map(|e| e.display().to_string()).unwrap_or_else(|_| "./restore".into()),
        cp_dir.display(),
        if p.pg.is_some() { " --postgres-url URL" } else { "" }
    );
    let mut health = Vec::new();
    // Services and health checks come after a valid restore; a service that does not start or
    // does not answer fails the restore like any other step (and is rolled back).
    let applied = run.apply_all().and_then(|(validation, n8n_pg)| {
        if validation.iter().all(|c| c.ok) {
            run.start_services(n8n_pg.as_ref(), &mut health)?;
        }
        Ok(validation)
    });
    let (outcome, validation, error) = match applied {
        Ok(validation) => {
            let ok = validation.iter().all(|c| c.ok);
            (if ok { Outcome::Restored } else { Outcome::ValidationFailed }, validation, None)
        }
        Err(e) => (run.roll_back(&e), Vec::new(), Some(e.to_string())),
    };
    if outcome != Outcome::FailedRollbackIncomplete {
        // A finished restore (restored, failed checks, or rolled back) is not resumed later.
        run.cp.complete()?;
    }
    Ok(Report {
        outcome,
        bundle_dir: opts.bundle_dir.clone(),
        bundle_created_at: p.manifest.created_at,
        root: opts.root.clone(),
        databases: p.selection.clone(),
        started_at,
        finished_at: Utc::now(),
        steps: run.steps.list,
        validation,
        health,
        checkpoint: Some(cp_dir),
        undo: if outcome == Outcome::FailedRolledBack { String::new() } else { undo_hint },
        warnings: run.warnings,
        error,
    })
}

/// Where this restore's checkpoint goes: the operator's `--checkpoint-dir`, or a new directory
/// named for `stamp` under the root's checkpoints (unique even for two restores within one
/// second), refused when a link would carry it out of the root.
fn checkpoint_dir(opts: &Options, stamp: &str) -> Result<std::path::PathBuf> {
    if let Some(dir) = &opts.checkpoint_dir {
        // A directory the operator names is theirs to choose.
        return Ok(dir.clone());
    }
    let base = opts.root.join(crate::layout::CHECKPOINTS_DIR);
    let cp_dir = (0..)
        .map(|i| base.join(if i == 0 { stamp.to_string() } else { format!("{stamp}-{i}") }))
        .find(|p| !p.exists())
        .expect("an unused name");
    // The default lies under the root: a link already there (`ROOT/var -> /elsewhere`) must
    // not carry the journal and the files moved aside out of it.
    steps::files::check_inside_root(&cp_dir, &opts.root).map_err(|e| {
        Error::Refused(format!("{e}: the checkpoint would land there. Nothing was changed; pass --checkpoint-dir DIR"))
    })?;
    Ok(cp_dir)
}

impl<L: FnMut(&str)> Run<'_, L> {
    /// Every step up to and including validation, in order; the first failure stops them.
    /// Returns the validation's checks and the server n8n's database is on.
    fn apply_all(&mut self) -> Result<(Vec<steps::validate::Check>, Option<PgTarget>)> {
        self.prerequisites()?;
        // Owners first: files come back owned by name.
        self.accounts()?;
        let projects = if self.p.docker { steps::docker::projects(&self.p.manifest)? } else { Vec::new() };
        self.docker_engine_and_volumes(&projects)?;
        // A databases-only restore writes nothing under the root, not even the root itself.
        let files = !self.opts.databases_only();
        if self.p.docker {
            // Database containers start on the files just restored (volumes, bind mounts).
            if files {
                self.files_and_sqlite()?;
            }
            self.database_containers(&projects)?;
            // Roles before databases, so owners and grants exist when pg_restore needs them.
            self.roles()?;
            let loading = self.start_host_databases()?;
            let in_containers = self.container_databases();
            self.finish_databases(loading, in_containers)?;
        } else {
            // Roles first; then each database loads on its own connections while the files
            // are written (neither needs the other), and both finish before validation. A
            // databases-only restore may go into containers already running (no deployment
            // rebuilt): those load meanwhile, one after the other.
            self.roles()?;
            let loading = self.start_host_databases()?;
            let written = if files { self.files_and_sqlite() } else { Ok(()) };
            let meanwhile = written.and_then(|()| self.container_databases());
            self.finish_databases(loading, meanwhile)?;
        }
        self.validate()
    }

    fn container_of(&self, db: &crate::manifest::PostgresDb) -> Option<&InContainer> {
        self.in_container.iter().find(|c| c.0 == db.database)
    }

    /// Installs the packages the host lacks, or says why not (and warns what is missing).
    fn prerequisites(&mut self) -> Result<()> {
        let (p, opts, m) = (self.p, self.opts, &self.p.manifest);
        match (&p.missing_packages, opts.installs()) {
            (Some(missing), true) => self.steps.run("prerequisites", &mut self.log, || {
                steps::system::install(missing)?;
                let detail = if missing.is_empty() {
                    "all present".to_string()
                } else {
                    format!("installed {}", missing.join(" "))
                };
                Ok(((), detail))
            })?,
            (None, true) if !m.requirements.is_empty() => {
                self.warnings.push(format!(
                    "cannot check packages on this host (no dpkg): make sure these are installed: {}",
                    m.requirements.join(" ")
                ));
                self.steps.skip("prerequisites", "no dpkg on this host");
            }
            (Some(missing), false) if !missing.is_empty() => {
                let why = opts.install_skipped().unwrap_or("--no-install");
                self.warnings.push(format!("{why}; these packages are missing: {}", missing.join(" ")));
                self.steps.skip("prerequisites", why);
            }
            _ => self.steps.skip("prerequisites", opts.install_skipped().unwrap_or("nothing required")),
        }
        Ok(())
    }

    /// The system users and groups that own the bundle's files, created when missing (only a
    /// restore onto / as root creates them; otherwise a warning names them).
    fn accounts(&mut self) -> Result<()> {
        let (users, groups) = steps::accounts::missing(&self.p.manifest, &crate::owners::Accounts::system());
        if users.is_empty() && groups.is_empty() {
            return Ok(());
        }
        let what = format!("users [{}], groups [{}]", users.join(", "), groups.join(", "));
        if self.opts.root == Path::new("/") && crate::sys::is_root() {
            let cp = &mut self.cp;
            self.steps.run("system accounts", &mut self.log, || {
                steps::accounts::create(cp, &users, &groups)?;
                Ok(((), format!("created {what}")))
            })?;
        } else {
            self.warnings.push(format!("these owners do not exist on this host and were not created (only a restore onto / as root creates them): {what}"));
        }
        Ok(())
    }

    /// The Docker engine running, a project that already runs stopped (kept for a rollback),
    /// the bundle's volumes created; or, under another root, a warning that none of it was.
    fn docker_engine_and_volumes(&mut self, projects: &[crate::container::Compose]) -> Result<()> {
        let (opts, m) = (self.opts, &self.p.manifest);
        if !self.p.docker {
            if steps::docker::needed(m) && !opts.databases_only() {
                self.warnings.push(format!(
                    "the bundle holds a Docker deployment; with --root {} its files were put back but no volume, container or database inside one was created (restore onto / for that)",
                    opts.root.display()
                ));
            }
            return Ok(());
        }
        self.steps.run("docker engine", &mut self.log, || Ok(((), steps::docker::ensure_engine()?)))?;
        // Before anything of the deployment changes: a project that already runs is stopped
        // (--overwrite; journaled and kept, a rollback starts it again) or refused (the plan
        // refused it already unless the engine only started just now).
        for pr in projects.iter().filter(|pr| pr.containers().is_ok_and(|c| !c.is_empty())) {
            let cp = &mut self.cp;
            self.steps.run(&format!("stop {}", pr.project), &mut self.log, || {
                let state = steps::docker::stop_existing(cp, pr, opts.overwrite)?;
                let what = state.map(|s| s.describe()).unwrap_or_else(|| "no container".into());
                Ok(((), format!("{what}: stopped, kept for a rollback")))
            })?;
        }
        let cp = &mut self.cp;
        self.steps.run("docker volumes", &mut self.log, || {
            let created = steps::docker::create_volumes(cp, m)?;
            Ok(((), if created.is_empty() { "all exist".into() } else { format!("created {}", created.join(", ")) }))
        })?;
        Ok(())
    }

    /// Files, directories and links, then the SQLite databases, each synced and renamed into
    /// place; the directories whose entries changed are synced at the end of the step.
    fn files_and_sqlite(&mut self) -> Result<()> {
        let (p, opts, m) = (self.p, self.opts, &self.p.manifest);
        let mut writer = FileWriter::new(&opts.bundle_dir, &opts.root)?;
        let file_items: Vec<_> = p
            .plan
            .items
            .iter()
            .filter(|i| matches!(i.kind, ItemKind::Dir | ItemKind::File | ItemKind::Symlink))
            .collect();
        let cp = &mut self.cp;
        if !file_items.is_empty() {
            self.steps.run("files", &mut self.log, || {
                for item in &file_items {
                    writer.apply_record(cp, &m.files[item.index], &item.action)?;
                }
                writer.finish_dirs()?;
                // Each file was synced before its rename; the journal knows every directory
                // whose entries changed, and syncs those (no sync(2): the databases loading
                // beside this step keep their disk to themselves).
                cp.sync()?;
                let replaced = file_items.iter().filter(|i| i.action == Action::Replace).count();
                Ok(((), format!("{} paths ({replaced} replaced, kept in the checkpoint)", file_items.len())))
            })?;
        }
        for item in p.plan.items.iter().filter(|i| i.kind == ItemKind::Sqlite) {
            let db = &m.sqlite[item.index];
            self.steps.run(&format!("sqlite {}", db.name), &mut self.log, || {
                writer.apply_sqlite(cp, db, &item.action)?;
                Ok(((), format!("{} -> {}", db.entry, item.target)))
            })?;
        }
        if !m.sqlite.is_empty() {
            cp.sync()?;
        }
        self.warnings.append(&mut writer.warnings);
        Ok(())
    }

    /// Databases in containers: their services started alone, on the volumes just restored,
    /// before anything that uses them (the app must never start on, or migrate, an empty one).
    fn database_containers(&mut self, projects: &[crate::container::Compose]) -> Result<()> {
        let (opts, m) = (self.opts, &self.p.manifest);
        if m.docker.as_ref().is_some_and(|d| !d.images.is_empty()) {
            self.steps.run("docker images", &mut self.log, || {
                Ok(((), format!("loaded {}", steps::docker::load_images(m, &opts.bundle_dir)?)))
            })?;
        }
        for db in m.postgres.iter().filter(|d| d.container.is_some()) {
            let (project, service) = steps::docker::project_of(projects, db)?;
            let cp = &mut self.cp;
            let (facts, target) = self.steps.run(&format!("start {service}"), &mut self.log, || {
                steps::docker::up(cp, project, &[service.as_str()])?;
                let (facts, target) = steps::docker::database_of(project, &service, steps::docker::DB_READY_TRIES)?;
                let detail = format!("{} accepts connections at {}", facts.name, target.host_port());
                Ok(((facts, target), detail))
            })?;
            self.in_container.push((db.database.clone(), target, facts.id));
        }
        Ok(())
    }

    /// The roles of each server a database goes to, from the bundle's roles dump (once per
    /// dump), warning of memberships not restored and of roles created without passwords.
    fn roles(&mut self) -> Result<()> {
        let (p, opts, m) = (self.p, self.opts, &self.p.manifest);
        let mut roles_done: Vec<&str> = Vec::new();
        for d in &m.postgres {
            let in_c = self.container_of(d).cloned();
            let pg = if d.container.is_some() { in_c.as_ref().map(|c| &c.1) } else { p.pg.as_ref() };
            let (Some(entry), Some(pg)) = (d.roles_entry.as_deref(), pg) else { continue };
            self.cp.set_container_scope(in_c.as_ref().map(|c| c.2.clone()));
            if roles_done.contains(&entry) {
                continue;
            }
            roles_done.push(entry);
            let path = opts.bundle_dir.join(entry);
            let sql = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
            let roles = steps::roles::parse(&sql);
            let (cp, warnings) = (&mut self.cp, &mut self.warnings);
            self.steps.run("postgres roles", &mut self.log, || {
                let (created, grant_warnings) = steps::roles::apply(pg, cp, &roles)?;
                warnings.extend(grant_warnings.into_iter().map(|w| format!("role membership not restored: {w}")));
                if !d.role_passwords && !created.is_empty() {
                    warnings.push(format!(
                        "roles created WITHOUT passwords (the bundle has none): {}; set each with ALTER ROLE name PASSWORD '...'",
                        created.join(", ")
                    ));
                }
                let detail = if created.is_empty() {
                    "all roles already exist".to_string()
                } else {
                    format!("created {}", created.join(", "))
                };
                Ok(((), detail))
            })?;
        }
        self.cp.set_container_scope(None);
        Ok(())
    }

    /// Each planned database on the host server prepared (renamed aside, created, journaled)
    /// and its pg_restore started: they load side by side, and beside the steps that follow,
    /// until [`Run::finish_databases`].
    fn start_host_databases(&mut self) -> Result<Vec<Loading>> {
        let (p, m) = (self.p, &self.p.manifest);
        let mut loading = Vec::new();
        for item in p.plan.items.iter().filter(|i| i.kind == ItemKind::Postgres) {
            let db = &m.postgres[item.index];
            if db.container.is_some() {
                continue;
            }
            let pg = p.pg.clone().expect("planned postgres has a target");
            let step = format!("postgres {}", db.database);
            (self.log)(&format!("{step}..."));
            let started = Instant::now();
            let pg_restore = p.pg_restore.as_deref().unwrap_or(Path::new("pg_restore"));
            let r = steps::postgres::DbRestorer {
                pg: &pg,
                pg_restore,
                bundle_dir: &self.opts.bundle_dir,
                stamp: &self.stamp,
                container: None,
            };
            let from = item.from.as_ref().map(|f| format!(" (the bundle's {f})")).unwrap_or_default();
            let detail = format!("{} -> database {}{from} on {}", db.entry, db.database, pg.host_port());
            match steps::postgres::prepare(&r, &mut self.cp, db, &item.action, &mut self.warnings) {
                Ok(load) => {
                    let running = load.map(|l| (crate::sys::start(l.cmd), l.dump));
                    loading.push(Loading { step, started, running, detail });
                }
                Err(e) => {
                    self.steps.record(&step, started, Instant::now(), Err(&e));
                    // Those already loading end before anything is rolled back.
                    let _ = self.finish_databases(loading, Ok(()));
                    return Err(e);
                }
            }
        }
        Ok(loading)
    }

    /// Waits for every database loading, each recorded as its own step; `meanwhile` is what
    /// ran beside them. The first failure is returned once all of them have ended, so a
    /// rollback never races a pg_restore still writing.
    fn finish_databases(&mut self, loading: Vec<Loading>, meanwhile: Result<()>) -> Result<()> {
        let mut first = meanwhile.err();
        let any = !loading.is_empty();
        if any {
            self.steps.progress.begin(&format!("loading {} database(s)", loading.len()), None);
        }
        for l in loading {
            let (r, ended) = match l.running {
                Some((running, _dump)) => {
                    let (r, ended) = running.wait();
                    (r.map(|_| ()), ended)
                }
                None => (Ok(()), Instant::now()),
            };
            self.steps.record(&l.step, l.started, ended, r.as_ref().map(|()| l.detail.as_str()));
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        if any {
            self.steps.progress.end();
        }
        first.map_or(Ok(()), Err)
    }

    /// Each planned database living in a container restored with that container's pg_restore,
    /// one after the other.
    fn container_databases(&mut self) -> Result<()> {
        let (p, m) = (self.p, &self.p.manifest);
        for item in p.plan.items.iter().filter(|i| i.kind == ItemKind::Postgres) {
            let db = &m.postgres[item.index];
            if db.container.is_none() {
                continue;
            }
            let (pg, container) = match self.container_of(db) {
                Some(c) => (c.1.clone(), c.2.clone()),
                None => {
                    let name = db.container.as_ref().map(|c| c.name.as_str()).unwrap_or("");
                    self.steps.skip(
                        &format!("postgres {}", db.database),
                        &format!("lives in container {name}; not rebuilt here"),
                    );
                    continue;
                }
            };
            let (cp, warnings, opts, stamp) = (&mut self.cp, &mut self.warnings, self.opts, self.stamp.as_str());
            self.steps.run(&format!("postgres {}", db.database), &mut self.log, || {
                restore_database(cp, warnings, opts, p, item, &pg, &container, stamp)
            })?;
        }
        Ok(())
    }

    /// Files against the manifest, every database's tables and row counts, n8n's credentials
    /// against its key.
    fn validate(&mut self) -> Result<(Vec<steps::validate::Check>, Option<PgTarget>)> {
        let (p, opts, m) = (self.p, self.opts, &self.p.manifest);
        let in_container = &self.in_container;
        let container_of = |db: &crate::manifest::PostgresDb| in_container.iter().find(|c| c.0 == db.database);
        self.steps.run("validate", &mut self.log, || {
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

    /// After a valid restore: the Docker deployment up, the services started, the health checks
    /// and n8n's API answering (into `health`); unless services are skipped (a step saying why).
    fn start_services(&mut self, n8n_pg: Option<&PgTarget>, health: &mut Vec<steps::system::Health>) -> Result<()> {
        let (p, opts) = (self.p, self.opts);
        if let Some(why) = opts.services_skipped() {
            self.steps.skip("services", why);
            return Ok(());
        }
        if p.docker {
            // Now the whole deployment: the app starts on its restored database.
            let projects = steps::docker::projects(&p.manifest)?;
            if !projects.is_empty() {
                let cp = &mut self.cp;
                self.steps.run("docker compose up", &mut self.log, || {
                    for pr in &projects {
                        steps::docker::up(cp, pr, &[])?;
                    }
                    let names: Vec<&str> = projects.iter().map(|p| p.project.as_str()).collect();
                    Ok(((), format!("started {}", names.join(", "))))
                })?;
            }
        }
        let svc = &p.manifest.services;
        if !svc.start.is_empty() {
            self.steps.run("services", &mut self.log, || {
                for s in &svc.start {
                    steps::system::start_service(s)?;
                }
                Ok(((), format!("started {}", svc.start.join(", "))))
            })?;
        }
        if svc.health.is_empty() && svc.n8n_url.is_none() {
            return Ok(());
        }
        let pause = std::time::Duration::from_secs(2);
        *health = steps::system::health(&svc.health, opts.health_tries, pause);
        if let Some(url) = &svc.n8n_url {
            // After the plain checks: n8n is ready by then, or given its own tries.
            health.push(steps::n8n::serves_workflows(
                &p.manifest,
                &opts.root,
                n8n_pg,
                url,
                std::env::var("N8N_API_KEY").ok(),
                opts.health_tries,
                pause,
            ));
        }
        let bad: Vec<String> =
            health.iter().filter(|h| !h.ok).map(|h| format!("{} ({})", h.target, h.detail)).collect();
        let detail = format!("{}/{} answered", health.len() - bad.len(), health.len());
        self.steps.run("health checks", &mut self.log, || {
            if bad.is_empty() {
                Ok(((), detail))
            } else {
                Err(Error::Other(format!("not answering after the restore: {}", bad.join(", "))))
            }
        })
    }

    /// A step failed: every change so far undone from the journal, services that were started
    /// on the restored files started again on the old ones. The outcome says whether the
    /// rollback was complete.
    fn roll_back(&mut self, e: &Error) -> Outcome {
        (self.log)(&format!("step failed: {e}; rolling back"));
        let t = Instant::now();
        let failures = self.cp.rollback(self.p.pg.as_ref());
        self.steps.list.push(StepResult {
            step: "rollback".into(),
            result: if failures.is_empty() { StepStatus::Ok } else { StepStatus::Failed },
            duration_ms: t.elapsed().as_millis(),
            detail: if failures.is_empty() {
                format!("{} change(s) undone", self.cp.changes.len())
            } else {
                failures.join("; ")
            },
        });
        if self.opts.starts_services() && self.steps.list.iter().any(|s| s.step == "services") {
            for s in &self.p.manifest.services.start {
                if let Err(e) = steps::system::start_service(s) {
                    self.warnings.push(format!("after the rollback, {s} did not restart: {e}"));
                }
            }
        }
        if failures.is_empty() {
            Outcome::FailedRolledBack
        } else {
            Outcome::FailedRollbackIncomplete
        }
    }
}

/// One planned database restored with pg_restore into `pg`, the server in `container`. A
/// container's server could only be looked at now that it runs: its image made POSTGRES_DB,
/// empty, on first start, which is renamed aside like any existing database, or dropped when
/// every volume of the container was created by this very restore.
#[expect(clippy::too_many_arguments, reason = "the parts of one step, each borrowed from another owner")]
fn restore_database(
    cp: &mut Checkpoint,
    warnings: &mut Vec<String>,
    opts: &Options,
    p: &Prepared,
    item: &plan::Item,
    pg: &PgTarget,
    container: &str,
    stamp: &str,
) -> Result<((), String)> {
    let db = &p.manifest.postgres[item.index];
    let state = steps::postgres::observe(pg, &[db])?.pop().unwrap_or(plan::DbState::Absent);
    // An empty database there is the one its image made on first start, nothing anyone could
    // want kept (a rollback removes the volume anyway).
    let fresh = crate::container::inspect(container).is_ok_and(|f| {
        !f.volumes.is_empty()
            && f.volumes.iter().all(|(v, _)| {
                cp.changes.iter().any(|c| matches!(c, crate::checkpoint::Change::VolumeCreated { name } if name == v))
            })
    });
    let action = if matches!(state, plan::DbState::Empty) && fresh {
        steps::postgres::drop_empty(pg, &db.database)?;
        Action::Create
    } else {
        plan::db_action(&state, opts.overwrite)
    };
    let pg_restore = p.pg_restore.as_deref().unwrap_or(Path::new("pg_restore"));
    let r =
        steps::postgres::DbRestorer { pg, pg_restore, bundle_dir: &opts.bundle_dir, stamp, container: Some(container) };
    cp.set_container_scope(Some(container.to_string()));
    let r = steps::postgres::apply(&r, cp, db, &action, warnings);
    cp.set_container_scope(None);
    r?;
    let name = db.container.as_ref().map(|c| c.name.as_str()).unwrap_or("");
    let from = item.from.as_ref().map(|f| format!(" (the bundle's {f})")).unwrap_or_default();
    Ok(((), format!("{} -> database {}{from} in container {name} ({})", db.entry, db.database, pg.host_port())))
}
