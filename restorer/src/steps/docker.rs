//! Docker deployments on the new host, in the order that brings them back whole: the engine, the
//! named volumes (before the files step writes their content), saved images, each database
//! service started alone and waited for, then (after its dumps were restored into it) the whole
//! project. Every container, volume and network the restore creates is journaled so a rollback
//! removes it; a project that already runs is refused, or with `--overwrite` stopped (journaled,
//! kept) and started again by a rollback. Only done on a restore onto `/`: Docker is host-wide.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::checkpoint::{Change, Checkpoint, StoppedContainer};
use crate::container::{self, Compose, ContainerFacts};
use crate::manifest::{Manifest, PostgresDb};
use crate::pg::PgTarget;
use crate::plan::ComposeState;
use crate::sys::run;
use crate::{Error, Result};

/// True when the bundle needs Docker on the new host.
pub fn needed(m: &Manifest) -> bool {
    m.docker.as_ref().is_some_and(|d| !d.compose.is_empty() || !d.volumes.is_empty())
        || m.postgres.iter().any(|d| d.container.is_some())
}

/// The databases that live on a host server (not in a container).
pub fn host_databases(m: &Manifest) -> impl Iterator<Item = &PostgresDb> {
    m.postgres.iter().filter(|d| d.container.is_none())
}

/// Starts the Docker engine when it does not answer: systemd, else the init script, else
/// `dockerd` itself in its own process group (containers, rescue systems). Waits until it answers.
pub fn ensure_engine() -> Result<String> {
    if crate::sys::which("docker").is_none() {
        return Err(Error::Refused(
            "docker is not installed: the bundle's requirements name docker.io (run without --no-install, or install it)"
                .into(),
        ));
    }
    if container::engine_answers() {
        return Ok("the engine was running".into());
    }
    let how = if Path::new("/run/systemd/system").is_dir() {
        run(Command::new("systemctl").args(["start", "docker"])).map(|_| "systemctl start docker")
    } else {
        run(Command::new("service").args(["docker", "start"])).map(|_| "service docker start")
    };
    let how = match how {
        Ok(h) if wait(30, container::engine_answers) => h,
        _ => {
            use std::os::unix::process::CommandExt;
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open("/var/log/dockerd-restore.log")
                .map_err(|e| Error::io("opening", "/var/log/dockerd-restore.log", e))?;
            let err = log.try_clone().map_err(|e| Error::io("opening", "/var/log/dockerd-restore.log", e))?;
            Command::new("dockerd")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .process_group(0)
                .spawn()
                .map_err(|e| Error::Command { command: "dockerd".into(), detail: e.to_string() })?;
            if !wait(60, container::engine_answers) {
                return Err(Error::Other(
                    "the Docker engine did not answer within 60 s (see /var/log/dockerd-restore.log)".into(),
                ));
            }
            "dockerd started (log: /var/log/dockerd-restore.log)"
        }
    };
    Ok(format!("engine started: {how}"))
}

fn wait(seconds: u64, ok: impl Fn() -> bool) -> bool {
    for _ in 0..seconds {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    ok()
}

/// The compose projects of the bundle, as this host runs them.
pub fn projects(m: &Manifest) -> Result<Vec<Compose>> {
    let Some(d) = &m.docker else { return Ok(Vec::new()) };
    if d.compose.is_empty() {
        return Ok(Vec::new());
    }
    let program = container::compose_program().ok_or_else(|| {
        Error::Refused(
            "neither `docker compose` nor `docker-compose` is installed (the bundle requires docker-compose)".into(),
        )
    })?;
    Ok(d.compose
        .iter()
        .map(|p| Compose {
            program: program.clone(),
            project: p.project.clone(),
            directory: p.directory.clone(),
            files: p.files.clone(),
        })
        .collect())
}

/// What the engine has of each project now (parallel to `projects`), and the host ports the
/// running containers of those projects publish: they hold those ports themselves, and free
/// them when `--overwrite` stops them, so the pre-flight must not count them as taken.
pub fn observe(projects: &[Compose]) -> Result<(Vec<ComposeState>, Vec<u16>)> {
    let mut states = Vec::new();
    let mut ports = Vec::new();
    for p in projects {
        let ids = p.containers()?;
        let mut running = 0;
        for id in &ids {
            let f = container::inspect(id)?;
            if f.running {
                running += 1;
                ports.extend(f.published_ports);
            }
        }
        states.push(ComposeState { containers: ids.len(), running });
    }
    Ok((states, ports))
}

/// Why a project that already has containers is refused without `--overwrite`, and what to do.
pub fn refusal(project: &str, directory: &Path, state: &str) -> String {
    format!(
        "compose project {project} already has {state} on this host: restoring under it would mix two deployments. --overwrite stops them (kept, so a rollback starts them again) and replaces the deployment; or stop and remove them yourself (`cd {} && docker compose -p {project} down`, or `docker-compose`) and run the restore again",
        directory.display()
    )
}

/// With `--overwrite`: stops every running container of a project that already has some,
/// journaled first (kept, not removed: a rollback starts them again). Nothing when it has none;
/// refused without `--overwrite` (the plan refuses earlier when the engine already ran then).
/// `docker stop` by id rather than `compose stop`: the journal names exactly the containers that
/// ran, and it works whether or not the host still has the project's files (which the restore
/// is about to replace).
pub fn stop_existing(cp: &mut Checkpoint, p: &Compose, overwrite: bool) -> Result<Option<ComposeState>> {
    let ids = p.containers()?;
    if ids.is_empty() {
        return Ok(None);
    }
    let mut containers = Vec::new();
    for id in ids {
        let f = container::inspect(&id)?;
        let service = f.compose_service().map(|(_, s)| s).unwrap_or_default();
        containers.push(StoppedContainer { id, service, running: f.running });
    }
    let state = ComposeState { containers: containers.len(), running: containers.iter().filter(|c| c.running).count() };
    if !overwrite {
        return Err(Error::Refused(refusal(&p.project, &p.directory, &state.describe())));
    }
    let running: Vec<String> = containers.iter().filter(|c| c.running).map(|c| c.id.clone()).collect();
    cp.record(Change::ComposeStopped {
        program: p.program.clone(),
        project: p.project.clone(),
        directory: p.directory.clone(),
        files: p.files.clone(),
        containers,
    })?;
    if !running.is_empty() {
        run(Command::new("docker").args(["stop", "--"]).args(&running))?;
    }
    Ok(Some(state))
}

/// Creates every volume of the bundle that does not exist yet (journaled), with compose's own
/// labels so compose adopts it. A volume whose mount point is not where the bundle's files go
/// (another Docker data root) is refused.
pub fn create_volumes(cp: &mut Checkpoint, m: &Manifest) -> Result<Vec<String>> {
    let mut created = Vec::new();
    let Some(d) = &m.docker else { return Ok(created) };
    for v in &d.volumes {
        let mountpoint = match container::volume_mountpoint(&v.name)? {
            Some(mp) => mp,
            None => {
                cp.record(Change::VolumeCreated { name: v.name.clone() })?;
                let mut c = Command::new("docker");
                c.args(["volume", "create"]);
                if let Some(p) = &v.project {
                    let short = v.name.strip_prefix(&format!("{p}_")).unwrap_or(&v.name);
                    c.arg("--label").arg(format!("com.docker.compose.project={p}"));
                    c.arg("--label").arg(format!("com.docker.compose.volume={short}"));
                }
                run(c.arg("--").arg(&v.name))?;
                created.push(v.name.clone());
                container::volume_mountpoint(&v.name)?
                    .ok_or_else(|| Error::Other(format!("volume {} was created but has no mount point", v.name)))?
            }
        };
        if mountpoint != v.mountpoint {
            return Err(Error::Refused(format!(
                "volume {} lives at {} on this host, the bundle's files for it at {} (another Docker data root?)",
                v.name,
                mountpoint.display(),
                v.mountpoint.display()
            )));
        }
    }
    Ok(created)
}

/// `docker load`s every image saved in the bundle.
pub fn load_images(m: &Manifest, bundle_dir: &Path) -> Result<usize> {
    let Some(d) = &m.docker else { return Ok(0) };
    for img in &d.images {
        let path = bundle_dir.join(&img.entry);
        run(Command::new("docker").args(["load", "--input"]).arg(&path))?;
    }
    Ok(d.images.len())
}

/// Starts `services` of a project (all of them when empty), journaling the project once.
pub fn up(cp: &mut Checkpoint, p: &Compose, services: &[&str]) -> Result<()> {
    let journaled = cp.changes.iter().any(|c| matches!(c, Change::ComposeUp { project, .. } if *project == p.project));
    if !journaled {
        // What the project already has (a deployment replaced with --overwrite) is what a
        // rollback keeps; everything else of it the restore made.
        cp.record(Change::ComposeUp {
            program: p.program.clone(),
            project: p.project.clone(),
            directory: p.directory.clone(),
            files: p.files.clone(),
            kept: p.containers()?,
            kept_networks: p.networks()?,
        })?;
    }
    let mut args = vec!["up", "-d"];
    args.extend_from_slice(services);
    run(&mut p.command(&args)).map(|_| ())
}

/// How often [`database_of`] tries, 2 s apart: a fresh volume's first start runs initdb and the
/// image's init scripts, which on a loaded host takes a minute or more. Not `--health-tries`:
/// that is for the operator's own checks after everything runs.
pub const DB_READY_TRIES: u32 = 150;

/// Waits until the PostgreSQL server in `service`'s container accepts connections over its
/// network address (the image's init server listens on its socket only, so an answer there is
/// the real server). Returns the container and how to reach it.
pub fn database_of(p: &Compose, service: &str, tries: u32) -> Result<(ContainerFacts, PgTarget)> {
    let mut last = String::from("no container yet");
    for _ in 0..tries.max(1) {
        if let Some(id) = p.container_of(service)? {
            let facts = container::inspect(&id)?;
            match facts.pg_target(Some("postgres")).and_then(|t| t.connect().map(|_| t)) {
                Ok(t) => return Ok((facts, t)),
                Err(e) => last = e.to_string(),
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    Err(Error::Other(format!(
        "the database service {service} of project {} did not accept connections: {last}",
        p.project
    )))
}

/// The compose project a container database belongs to.
pub fn project_of<'a>(projects: &'a [Compose], db: &PostgresDb) -> Result<(&'a Compose, String)> {
    let c = db.container.as_ref().expect("a container database");
    let (Some(project), Some(service)) = (&c.project, &c.service) else {
        return Err(Error::Refused(format!(
            "database {} lived in container {}, which no compose project of the bundle starts: start it yourself and restore with --postgres-url",
            db.database, c.name
        )));
    };
    let p = projects.iter().find(|p| &p.project == project).ok_or_else(|| {
        Error::Refused(format!(
            "database {} lives in service {service} of compose project {project}, whose files are not in the bundle",
            db.database
        ))
    })?;
    Ok((p, service.clone()))
}

/// The Docker part of the plan, in the order it runs (shown by `--dry-run`, in `--json` too).
/// Pure: from the manifest alone, so a host with no Docker and no PostgreSQL can show it.
pub fn plan_lines(m: &Manifest, rebuilt: bool) -> Vec<String> {
    if !needed(m) {
        return Vec::new();
    }
    if !rebuilt {
        return vec!["Docker deployment NOT rebuilt (restore root is not /): files only, no volume, container or database inside one".into()];
    }
    let mut out = vec!["install docker.io and compose when missing (requirements), start the engine".to_string()];
    let d = m.docker.clone().unwrap_or_default();
    for v in &d.volumes {
        let mut line = format!("volume {}: create if missing, its files go to {}", v.name, v.mountpoint.display());
        for db in m.sqlite.iter().filter(|s| s.volume.as_deref() == Some(v.name.as_str())) {
            line += &format!(", SQLite {} into it before any container starts", db.name);
        }
        out.push(line);
    }
    if !d.images.is_empty() {
        out.push(format!("docker load {} saved image(s)", d.images.len()));
    }
    for db in m.postgres.iter().filter(|d| d.container.is_some()) {
        let c = db.container.as_ref().expect("filtered");
        let service = c.service.as_deref().unwrap_or(&c.name);
        out.push(format!(
            "up -d {service} alone (project {}), wait until it accepts connections, restore database {} into it with its own pg_restore, validate row counts there",
            c.project.as_deref().unwrap_or("-"),
            db.database
        ));
    }
    for p in &d.compose {
        out.push(format!(
            "up -d the whole project {} ({}) after validation, then the health checks",
            p.project,
            p.directory.display()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::{ComposeProject, DbContainer, DockerInfo, Volume};

    fn manifest() -> Manifest {
        let mut m: Manifest = serde_json::from_value(serde_json::json!({
            "format_version": 1, "created_by": "t", "created_at": "2026-12-01T00:00:00Z",
            "bundle_name": "t", "source_host": {"hostname": "h", "os": "o", "arch": "x86_64"},
            "postgres": [{"name": "n8n", "entry": "databases/n8n.dump", "database": "n8n", "owner": "n8n",
                "encoding": "UTF8", "collate": "C", "ctype": "C", "server_version": "15.18",
                "server_version_num": 150018, "pg_dump_version": "15", "size": 1, "sha256": "0", "tables": []}]
        }))
        .unwrap();
        m.postgres[0].container = Some(DbContainer {
            name: "n8n-postgres-1".into(),
            project: Some("n8n".into()),
            service: Some("postgres".into()),
            user: "admin".into(),
        });
        m.docker = Some(DockerInfo {
            compose: vec![ComposeProject {
                project: "n8n".into(),
                directory: "/opt/n8n".into(),
                files: vec!["/opt/n8n/docker-compose.yml".into()],
                services: vec![],
            }],
            volumes: vec![Volume {
                name: "n8n_n8n_storage".into(),
                mountpoint: "/var/lib/docker/volumes/n8n_n8n_storage/_data".into(),
                project: Some("n8n".into()),
            }],
            images: vec![],
        });
        m
    }

    /// The plan shows the order that brings a compose deployment back whole: engine, volumes,
    /// the database service alone with its restore, then the whole project; and says plainly
    /// when a restore under another root rebuilds none of it.
    #[test]
    fn plan_puts_the_database_service_before_the_app() {
        let m = manifest();
        assert!(needed(&m));
        assert_eq!(host_databases(&m).count(), 0);
        let lines = plan_lines(&m, true);
        let at = |needle: &str| {
            lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {lines:#?}"))
        };
        assert!(at("start the engine") < at("volume n8n_n8n_storage"));
        assert!(at("volume n8n_n8n_storage") < at("up -d postgres alone"));
        assert!(at("restore database n8n into it") < at("up -d the whole project n8n"));
        assert_eq!(plan_lines(&m, false).len(), 1);
        assert!(plan_lines(&m, false)[0].contains("NOT rebuilt"));
    }
}
