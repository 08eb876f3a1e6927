//! The checkpoint: a journal of every change a restore makes, plus whatever was at a target path
//! before, moved aside. A failed restore replays it backwards; `restore rollback DIR` does the
//! same by hand.
//!
//! The journal is append-only JSON lines (a header line, then one line per change, recorded
//! *before* the change is made), so recording stays cheap for a data directory of thousands of
//! files. Changes that destroy or hide data (moving aside, renaming or creating a database) are
//! fsynced at once; file creations are fsynced at the end of each step ([`Checkpoint::sync`]):
//! after a power cut the journal may miss a just-created file, never something moved aside.
//! The journal also knows every directory whose entries a change touched, so the same
//! [`Checkpoint::sync`] fsyncs exactly those directories: the restore never needs a sync(2),
//! which would flush the whole machine's dirty pages (the extracted bundle, PostgreSQL loading
//! beside the files) and stall everything else.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::pg::{drop_database, quote_ident, server_version_num, PgTarget};
use crate::{Error, Result};

/// Name of the journal inside a checkpoint directory.
pub const JOURNAL: &str = "checkpoint.jsonl";

/// One change made to the target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// `original` was moved to `saved` inside the checkpoint.
    MovedAside {
        /// Where it was.
        #[serde(with = "crate::raw_path")]
        original: PathBuf,
        /// Where it is now.
        #[serde(with = "crate::raw_path")]
        saved: PathBuf,
    },
    /// A file or link was created where nothing was.
    CreatedFile {
        /// The new path.
        #[serde(with = "crate::raw_path")]
        path: PathBuf,
    },
    /// A directory was created where nothing was.
    CreatedDir {
        /// The new directory.
        #[serde(with = "crate::raw_path")]
        path: PathBuf,
    },
    /// An existing directory's mode and owner were changed.
    DirAttrs {
        /// The directory.
        #[serde(with = "crate::raw_path")]
        path: PathBuf,
        /// Its previous mode.
        mode: u32,
        /// Its previous owner.
        uid: u32,
        /// Its previous group.
        gid: u32,
    },
    /// A database was created.
    DatabaseCreated {
        /// Its name.
        database: String,
    },
    /// A system user was created.
    UserCreated {
        /// Its name.
        user: String,
    },
    /// A system group was created.
    GroupCreated {
        /// Its name.
        group: String,
    },
    /// A role was created.
    RoleCreated {
        /// Its name.
        role: String,
    },
    /// An existing database was renamed aside.
    DatabaseRenamed {
        /// Original name.
        from: String,
        /// Name it was kept under.
        to: String,
    },
    /// A Docker volume was created.
    VolumeCreated {
        /// Its name.
        name: String,
    },
    /// Services of a compose project were started by the restore. On a project that had no
    /// container before, undone with `down` (which removes the containers and networks it made;
    /// volumes are undone by their own entries). On one that had (`kept` not empty), `down`
    /// would remove the very containers a rollback must start again: undone by removing only the
    /// containers and networks not listed here and stopping the kept ones (a
    /// [`Change::ComposeStopped`] journaled earlier starts those that ran).
    ComposeUp {
        /// `docker compose` or `docker-compose`.
        program: Vec<String>,
        /// Project name.
        project: String,
        /// Project directory.
        #[serde(with = "crate::raw_path")]
        directory: PathBuf,
        /// Compose files.
        files: Vec<PathBuf>,
        /// Ids of the project's containers that existed before this start (empty on a new host).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<String>,
        /// Ids of the project's networks that existed before this start.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept_networks: Vec<String>,
    },
    /// The containers of a compose project that already ran on the host were stopped (with
    /// `--overwrite`), kept so that a rollback can start them again on their old data.
    ComposeStopped {
        /// `docker compose` or `docker-compose`: recreates a service whose container compose
        /// replaced during the restore (another configuration), from the project's files as the
        /// rollback put them back.
        program: Vec<String>,
        /// Project name.
        project: String,
        /// Project directory.
        #[serde(with = "crate::raw_path")]
        directory: PathBuf,
        /// Compose files.
        files: Vec<PathBuf>,
        /// Every container of the project as it was before the stop.
        containers: Vec<StoppedContainer>,
    },
    /// A change made inside a container's PostgreSQL (roles, databases): undone there, and
    /// nothing to undo once the container itself is gone.
    InContainer {
        /// Container id.
        container: String,
        /// The change.
        inner: Box<Change>,
    },
}

/// A container of a project that existed before the restore ([`Change::ComposeStopped`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoppedContainer {
    /// Container id.
    pub id: String,
    /// Its compose service.
    pub service: String,
    /// Whether it ran (a rollback starts only those).
    pub running: bool,
}

/// The journal's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    #[serde(with = "crate::raw_path")]
    root: PathBuf,
    bundle: String,
}

/// The journal's last line once a rollback completed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RolledBack {
    rolled_back: bool,
}

/// The journal's last line once the restore finished (however it ended).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Completed {
    completed: bool,
}

/// A checkpoint being written or read back.
#[derive(Debug)]
pub struct Checkpoint {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// The restore root the changes were made under.
    pub root: PathBuf,
    /// The bundle that was being restored.
    pub bundle: String,
    /// Changes in the order they were made.
    pub changes: Vec<Change>,
    /// True once a rollback has completed.
    pub rolled_back: bool,
    /// True once the restore that wrote it finished; false means it was interrupted.
    pub completed: bool,
    journal: File,
    /// While set, recorded changes happened inside this container ([`Change::InContainer`]).
    scope: Option<String>,
    /// Host directories whose entries recorded changes created, renamed or moved since the last
    /// [`Checkpoint::sync`]: fsynced there, so a rename survives a power cut.
    unsynced_dirs: BTreeSet<PathBuf>,
}

impl Checkpoint {
    /// Records the following changes as made inside `container` (None: on the host).
    pub fn set_container_scope(&mut self, container: Option<String>) {
        self.scope = container;
    }

    /// Creates a new checkpoint directory (0700: it may hold private keys moved aside).
    pub fn create(dir: &Path, root: &Path, bundle: &str) -> Result<Checkpoint> {
        if fs::symlink_metadata(dir).is_ok() {
            return Err(Error::Refused(format!("checkpoint directory {} already exists", dir.display())));
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).ctx("creating checkpoint", parent)?;
        }
        // mkdir of the last component never follows a link; the journal is created new, never
        // through one: a restore never writes its own records where a bundle pointed.
        fs::DirBuilder::new().mode(0o700).create(dir).ctx("creating checkpoint", dir)?;
        let path = dir.join(JOURNAL);
        let journal = {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .append(true)
                .create_new(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .mode(0o600)
                .open(&path)
                .ctx("creating", &path)?
        };
        let mut cp = Checkpoint {
            dir: dir.to_path_buf(),
            root: root.to_path_buf(),
            bundle: bundle.to_string(),
            changes: Vec::new(),
            rolled_back: false,
            completed: false,
            journal,
            scope: None,
            unsynced_dirs: BTreeSet::new(),
        };
        let header = Header { root: root.to_path_buf(), bundle: bundle.to_string() };
        cp.append(&serde_json::to_string(&header).expect("serialises"), true)?;
        Ok(cp)
    }

    /// Reads a checkpoint back from its directory.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(JOURNAL);
        let text = fs::read_to_string(&path).ctx("reading", &path)?;
        let bad = |i: usize, e: serde_json::Error| Error::Other(format!("{} line {}: {e}", path.display(), i + 1));
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let (i, first) = lines.next().ok_or_else(|| Error::Other(format!("{} is empty", path.display())))?;
        let header: Header = serde_json::from_str(first).map_err(|e| bad(i, e))?;
        let mut changes = Vec::new();
        let mut rolled_back = false;
        let mut completed = false;
        for (i, line) in lines {
            if let Ok(r) = serde_json::from_str::<RolledBack>(line) {
                rolled_back = r.rolled_back;
            } else if let Ok(c) = serde_json::from_str::<Completed>(line) {
                completed = c.completed;
            } else {
                changes.push(serde_json::from_str(line).map_err(|e| bad(i, e))?);
            }
        }
        for c in &changes {
            check_change(c, &header.root, dir).map_err(|why| {
                Error::Unsafe(format!("{}: {why}: not a journal this restore wrote, refused", path.display()))
            })?;
        }
        let journal = fs::OpenOptions::new().append(true).open(&path).ctx("opening", &path)?;
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            root: header.root,
            bundle: header.bundle,
            changes,
            rolled_back,
            completed,
            journal,
            scope: None,
            unsynced_dirs: BTreeSet::new(),
        })
    }

    fn append(&mut self, line: &str, durable: bool) -> Result<()> {
        let path = self.dir.join(JOURNAL);
        self.journal.write_all(format!("{line}\n").as_bytes()).ctx("writing", &path)?;
        if durable {
            self.journal.sync_data().ctx("syncing", &path)?;
        }
        Ok(())
    }

    /// Makes every recorded change durable: the journal, then each directory whose entries the
    /// changes touched (the files' own bytes and attributes are the writer's to fsync). A
    /// directory that is gone since (removed by a later change) has nothing left to sync.
    pub fn sync(&mut self) -> Result<()> {
        let path = self.dir.join(JOURNAL);
        self.journal.sync_data().ctx("syncing", path)?;
        for dir in std::mem::take(&mut self.unsynced_dirs) {
            match crate::sys::sync_dir(&dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                r => r.ctx("syncing directory", &dir)?,
            }
        }
        Ok(())
    }

    /// Notes the directories whose entries `change` touches (on the host only: a change inside
    /// a container is that container's file system).
    fn note_dirs(&mut self, change: &Change) {
        let parent = |p: &Path| p.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
        match change {
            Change::CreatedFile { path } | Change::CreatedDir { path } => self.unsynced_dirs.extend(parent(path)),
            Change::MovedAside { original, saved } => {
                self.unsynced_dirs.extend(parent(original));
                // The directories made inside the checkpoint to hold it gained entries too.
                let held: Vec<PathBuf> =
                    saved.ancestors().skip(1).take_while(|a| a.starts_with(&self.dir)).map(Path::to_path_buf).collect();
                self.unsynced_dirs.extend(held);
            }
            _ => {}
        }
    }

    /// Marks the restore as finished: a later restore will not take it for an interrupted one.
    pub fn complete(&mut self) -> Result<()> {
        self.completed = true;
        self.append(&serde_json::to_string(&Completed { completed: true }).expect("serialises"), true)
    }

    /// Checkpoints under `base` whose restore was interrupted (not completed, not rolled back),
    /// oldest first.
    pub fn interrupted(base: &Path) -> Vec<Checkpoint> {
        let mut dirs: Vec<PathBuf> = fs::read_dir(base)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join(JOURNAL).is_file())
            .collect();
        dirs.sort();
        dirs.into_iter().filter_map(|d| Checkpoint::load(&d).ok()).filter(|c| !c.completed && !c.rolled_back).collect()
    }

    /// Records a change before the caller makes it.
    pub fn record(&mut self, change: Change) -> Result<()> {
        let change = match &self.scope {
            Some(c) => Change::InContainer { container: c.clone(), inner: Box::new(change) },
            None => change,
        };
        let durable = !matches!(change, Change::CreatedFile { .. } | Change::CreatedDir { .. });
        self.append(&serde_json::to_string(&change).expect("serialises"), durable)?;
        self.note_dirs(&change);
        self.changes.push(change);
        Ok(())
    }

    /// Moves whatever is at `original` into the checkpoint and records it.
    pub fn move_aside(&mut self, original: &Path) -> Result<()> {
        let rel = original.strip_prefix("/").unwrap_or(original);
        let saved = self.dir.join("files").join(rel);
        if let Some(p) = saved.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(p).ctx("creating", p)?;
        }
        self.record(Change::MovedAside { original: original.to_path_buf(), saved: saved.clone() })?;
        move_path(original, &saved)
    }

    /// Undoes every change, newest first. Database changes need `pg` (the server they were made
    /// on). Returns what could not be undone; an empty list means the target is as it was.
    pub fn rollback(&mut self, pg: Option<&PgTarget>) -> Vec<String> {
        let mut failures = Vec::new();
        let created: Vec<String> = self
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::VolumeCreated { name } => Some(name.clone()),
                _ => None,
            })
            .collect();
        for change in self.changes.clone().into_iter().rev() {
            if let Err(e) = undo(&change, pg, &created) {
                failures.push(format!("{change:?}: {e}"));
            }
        }
        if failures.is_empty() {
            self.rolled_back = true;
            let _ = self.append(&serde_json::to_string(&RolledBack { rolled_back: true }).expect("serialises"), true);
        }
        failures
    }
}

/// A journal names only paths below its own root (plain components) and keeps what it moved
/// aside inside its own directory, as a restore writes it; anything else would let a journal
/// placed on the target steer a rollback outside the root.
fn check_change(change: &Change, root: &Path, dir: &Path) -> std::result::Result<(), String> {
    let below_root = |p: &Path| {
        p.strip_prefix(root)
            .map(|rel| rel.components().all(|c| matches!(c, std::path::Component::Normal(_))))
            .unwrap_or(false)
    };
    let paths = match change {
        Change::MovedAside { original, saved } => {
            // What was moved aside lives in `dir/files/...`; judged by where it really is,
            // since the operator may name the checkpoint directory another way.
            if let (Ok(d), Some(Ok(s))) = (fs::canonicalize(dir), saved.parent().map(fs::canonicalize)) {
                if !s.starts_with(d.join("files")) {
                    return Err(format!("{} is not inside the checkpoint", saved.display()));
                }
            }
            vec![original]
        }
        Change::CreatedFile { path } | Change::CreatedDir { path } | Change::DirAttrs { path, .. } => vec![path],
        // Undone by running the program: only ever compose itself, on ids and service names
        // only (nothing a docker option could be made of).
        Change::ComposeUp { program, kept, kept_networks, .. } => {
            check_program(program)?;
            check_ids(kept.iter().chain(kept_networks))?;
            vec![]
        }
        Change::ComposeStopped { program, containers, .. } => {
            check_program(program)?;
            check_ids(containers.iter().map(|c| &c.id))?;
            if let Some(c) = containers.iter().find(|c| !crate::names::is_unit(&c.service)) {
                return Err(format!("{:?} is not a compose service name", c.service));
            }
            vec![]
        }
        Change::InContainer { inner, .. } => return check_change(inner, root, dir),
        _ => vec![],
    };
    match paths.into_iter().find(|p| !below_root(p)) {
        Some(p) => Err(format!("{} is not below the restore root {}", p.display(), root.display())),
        None => Ok(()),
    }
}

fn check_program(program: &[String]) -> std::result::Result<(), String> {
    let p = || program.iter().map(String::as_str);
    if !(p().eq(["docker", "compose"]) || p().eq(["docker-compose"])) {
        return Err(format!("it would run {program:?}, which is not docker compose"));
    }
    Ok(())
}

fn check_ids<'a>(mut ids: impl Iterator<Item = &'a String>) -> std::result::Result<(), String> {
    match ids.find(|id| id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit())) {
        Some(id) => Err(format!("{id:?} is not a Docker id")),
        None => Ok(()),
    }
}

/// How often a rollback tries to reach the server of a stopped container it started again, 2 s
/// apart (a server that was stopped cleanly answers in seconds; one that was killed replays its
/// WAL first).
const STOPPED_SERVER_TRIES: u32 = 60;

fn undo(change: &Change, pg: Option<&PgTarget>, created_volumes: &[String]) -> Result<()> {
    match change {
        Change::InContainer { container, inner } => undo_in_container(container, inner, created_volumes),
        Change::VolumeCreated { name } => {
            if crate::container::volume_mountpoint(name)?.is_none() {
                return Ok(());
            }
            crate::sys::run(std::process::Command::new("docker").args(["volume", "rm", "--"]).arg(name)).map(|_| ())
        }
        Change::ComposeUp { program, project, directory, files, kept, kept_networks } => {
            undo_compose_up(&compose_of(program, project, directory, files), kept, kept_networks)
        }
        Change::ComposeStopped { program, project, directory, files, containers } => {
            undo_compose_stopped(&compose_of(program, project, directory, files), containers)
        }
        Change::MovedAside { original, saved } => {
            // Recorded before the move: if the move never happened, there is nothing to undo
            // (and `original` must not be removed).
            if fs::symlink_metadata(saved).is_err() {
                return Ok(());
            }
            remove_any(original)?;
            move_path(saved, original)
        }
        Change::CreatedFile { path } => remove_any(path),
        Change::CreatedDir { path } => match fs::remove_dir(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing directory", path, e)),
        },
        Change::DirAttrs { path, mode, uid, gid } => {
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).ctx("setting mode of", path)?;
            if crate::sys::is_root() {
                std::os::unix::fs::lchown(path, Some(*uid), Some(*gid)).ctx("changing owner of", path)?;
            }
            Ok(())
        }
        Change::DatabaseCreated { database } => {
            let pg = pg.ok_or_else(|| Error::Other("no PostgreSQL server given (--postgres-url)".into()))?;
            let mut c = pg.with_database("postgres").connect()?;
            let context = || format!("dropping database {database}");
            let version =
                server_version_num(&mut c).map_err(|source| Error::Postgres { context: context(), source })?;
            drop_database(&mut c, database, version).map_err(|source| Error::Postgres { context: context(), source })
        }
        Change::UserCreated { user } => crate::sys::run(std::process::Command::new("userdel").arg(user)).map(|_| ()),
        Change::GroupCreated { group } => {
            crate::sys::run(std::process::Command::new("groupdel").arg(group)).map(|_| ())
        }
        Change::RoleCreated { role } => {
            let pg = pg.ok_or_else(|| Error::Other("no PostgreSQL server given (--postgres-url)".into()))?;
            let mut c = pg.with_database("postgres").connect()?;
            c.batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(role)))
                .map_err(|source| Error::Postgres { context: format!("dropping role {role}"), source })
        }
        Change::DatabaseRenamed { from, to } => {
            let pg = pg.ok_or_else(|| Error::Other("no PostgreSQL server given (--postgres-url)".into()))?;
            let mut c = pg.with_database("postgres").connect()?;
            // Two statements: DROP DATABASE cannot run inside the implicit transaction of a
            // multi-statement query.
            let context = || format!("dropping restored database {from}");
            let version =
                server_version_num(&mut c).map_err(|source| Error::Postgres { context: context(), source })?;
            drop_database(&mut c, from, version).map_err(|source| Error::Postgres { context: context(), source })?;
            c.batch_execute(&format!("ALTER DATABASE {} RENAME TO {}", quote_ident(to), quote_ident(from)))
                .map_err(|source| Error::Postgres { context: format!("renaming database {to} back to {from}"), source })
        }
    }
}

/// The compose project a journal entry names.
fn compose_of(program: &[String], project: &str, directory: &Path, files: &[PathBuf]) -> crate::container::Compose {
    crate::container::Compose {
        program: program.to_vec(),
        project: project.to_string(),
        directory: directory.to_path_buf(),
        files: files.to_vec(),
    }
}

/// Undoes `inner` inside the container it was made in, which may have to be started first.
fn undo_in_container(container: &str, inner: &Change, created_volumes: &[String]) -> Result<()> {
    // The container went (a later `down` of a project the restore started): whatever
    // was made inside went with it.
    let Ok(facts) = crate::container::inspect(container) else { return Ok(()) };
    if !facts.running {
        // Stopped (a reboot during an interrupted restore): on volumes this restore
        // created there is nothing to undo, they go with their own entries. On a volume
        // that was there before (a deployment replaced with --overwrite) the old database
        // is still renamed aside in it: start the container to put it back (the
        // project's own entries stop or remove it afterwards).
        if facts.volumes.iter().all(|(v, _)| created_volumes.contains(v)) {
            return Ok(());
        }
        crate::sys::run(std::process::Command::new("docker").args(["start", "--"]).arg(container))?;
        let target = crate::container::wait_for_server(container, STOPPED_SERVER_TRIES)?;
        return undo(inner, Some(&target), created_volumes);
    }
    undo(inner, Some(&facts.pg_target(Some("postgres"))?), created_volumes)
}

/// Undoes a `compose up` of the restore: `down`, or for a project that ran before, only what
/// the restore made (see the comment inside).
fn undo_compose_up(compose: &crate::container::Compose, kept: &[String], kept_networks: &[String]) -> Result<()> {
    if kept.is_empty() {
        return crate::sys::run(&mut compose.command(&["down"])).map(|_| ());
    }
    // The project ran before the restore: `down` would remove its containers, which a
    // rollback must start again on their old data (they are the deployment, with their
    // configuration and anything written into them). So undoing `up` is: remove what
    // the restore made (containers it created, or recreated for another configuration,
    // and networks that were not there), stop the kept containers it started. The
    // `ComposeStopped` entry, older, is undone later and starts those that ran before,
    // once the files (project files, volume contents) are back.
    let docker = |args: &[&str], ids: &[String]| {
        crate::sys::run(std::process::Command::new("docker").args(args).arg("--").args(ids)).map(|_| ())
    };
    let (old, new): (Vec<String>, Vec<String>) = compose.containers()?.into_iter().partition(|c| kept.contains(c));
    let running: Vec<String> =
        old.into_iter().filter(|id| crate::container::inspect(id).is_ok_and(|f| f.running)).collect();
    if !new.is_empty() {
        docker(&["rm", "-f"], &new)?;
    }
    if !running.is_empty() {
        docker(&["stop"], &running)?;
    }
    let networks: Vec<String> = compose.networks()?.into_iter().filter(|n| !kept_networks.contains(n)).collect();
    if !networks.is_empty() {
        docker(&["network", "rm"], &networks)?;
    }
    Ok(())
}

/// Undoes a project stopped by the restore: its containers that ran started again, those
/// compose replaced made again from the project's files (put back by then).
fn undo_compose_stopped(compose: &crate::container::Compose, containers: &[StoppedContainer]) -> Result<()> {
    let mut start = Vec::new();
    let mut recreate: Vec<&StoppedContainer> = Vec::new();
    for c in containers {
        match crate::container::inspect(&c.id) {
            Ok(f) if c.running && !f.running => start.push(c.id.clone()),
            Ok(_) => {}
            Err(_) => recreate.push(c),
        }
    }
    if !start.is_empty() {
        crate::sys::run(std::process::Command::new("docker").args(["start", "--"]).args(&start))?;
    }
    // A container compose replaced during the restore (the bundle's configuration
    // differed) is gone: made again from the project's files, which the rollback has put
    // back by now (they were changed after this entry was journaled).
    for (running, args) in [(true, ["up", "-d", "--no-deps"]), (false, ["up", "--no-start", "--no-deps"])] {
        let services: Vec<&str> =
            recreate.iter().filter(|c| c.running == running).map(|c| c.service.as_str()).collect();
        if !services.is_empty() {
            let mut all: Vec<&str> = args.to_vec();
            all.extend(services);
            crate::sys::run(&mut compose.command(&all)).map_err(|e| {
                Error::Other(format!(
                    "project {}: containers replaced during the restore could not be made again from its files in {} ({e}); run `docker-compose -p {} up -d` there",
                    compose.project,
                    compose.directory.display(),
                    compose.project
                ))
            })?;
        }
    }
    Ok(())
}

/// Removes a file, link or directory tree; absence is fine.
fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("inspecting", path, e)),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).ctx("removing", path),
        Ok(_) => fs::remove_file(path).ctx("removing", path),
    }
}

/// rename, or copy and remove across file systems (a checkpoint on /var, a target on /etc).
fn move_path(from: &Path, to: &Path) -> Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: copy then remove. Only files and links are moved aside (directories are
            // never replaced), so a plain copy suffices.
            let meta = fs::symlink_metadata(from).ctx("inspecting", from)?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(from).ctx("reading link", from)?;
                std::os::unix::fs::symlink(target, to).ctx("creating link", to)?;
            } else {
                fs::copy(from, to).ctx("copying", from)?;
                File::open(to).and_then(|f| f.sync_all()).ctx("syncing", to)?;
            }
            fs::remove_file(from).ctx("removing", from)
        }
        Err(e) => Err(Error::io("moving", from, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal of a restore onto a host that already ran the project (kept containers, the
    /// stopped ones with their services) reads back as written, and one from before these
    /// fields existed still loads (a `compose_up` without `kept` is a new host's).
    #[test]
    fn compose_entries_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cp");
        let changes = [
            Change::ComposeStopped {
                program: vec!["docker-compose".into()],
                project: "n8n".into(),
                directory: t.path().join("opt/n8n"),
                files: vec![t.path().join("opt/n8n/docker-compose.yml")],
                containers: vec![
                    StoppedContainer { id: "0123abcd".into(), service: "postgres".into(), running: true },
                    StoppedContainer { id: "4567ef".into(), service: "n8n".into(), running: false },
                ],
            },
            Change::ComposeUp {
                program: vec!["docker".into(), "compose".into()],
                project: "n8n".into(),
                directory: t.path().join("opt/n8n"),
                files: vec![],
                kept: vec!["0123abcd".into(), "4567ef".into()],
                kept_networks: vec!["89ab".into()],
            },
        ];
        let mut cp = Checkpoint::create(&dir, t.path(), "b").unwrap();
        for c in &changes {
            cp.record(c.clone()).unwrap();
        }
        cp.append(
            r#"{"change":"compose_up","program":["docker-compose"],"project":"old","directory":"/x","files":[]}"#,
            true,
        )
        .unwrap();
        let back = Checkpoint::load(&dir).unwrap();
        assert_eq!(back.changes[..2], changes);
        assert!(
            matches!(&back.changes[2], Change::ComposeUp { kept, kept_networks, .. } if kept.is_empty() && kept_networks.is_empty())
        );
    }

    /// A moved-aside file comes back and a created one disappears on rollback.
    /// The checkpoint's sync covers exactly the directories whose entries changed: the
    /// targets' parents, and the checkpoint's own directories that received what was moved
    /// aside (never a container's paths); a directory removed since is skipped, not an error.
    #[test]
    fn sync_covers_the_directories_the_changes_touched() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("etc/nginx")).unwrap();
        let existing = t.path().join("etc/nginx/site.conf");
        fs::write(&existing, "old").unwrap();
        let cp_dir = t.path().join("cp");
        let mut cp = Checkpoint::create(&cp_dir, t.path(), "b").unwrap();
        cp.move_aside(&existing).unwrap();
        cp.record(Change::CreatedDir { path: t.path().join("data/new") }).unwrap();
        cp.record(Change::CreatedFile { path: t.path().join("gone/file") }).unwrap();
        cp.set_container_scope(Some("c1".into()));
        cp.record(Change::CreatedFile { path: "/inside/the/container".into() }).unwrap();
        cp.set_container_scope(None);

        let saved_parent = cp_dir.join("files").join(t.path().strip_prefix("/").unwrap()).join("etc/nginx");
        let mut expected: BTreeSet<PathBuf> =
            [t.path().join("etc/nginx"), t.path().join("data"), t.path().join("gone")].into();
        expected.extend(saved_parent.ancestors().take_while(|a| a.starts_with(&cp_dir)).map(Path::to_path_buf));
        assert_eq!(cp.unsynced_dirs, expected);
        assert!(!cp.unsynced_dirs.iter().any(|d| d.starts_with("/inside")));

        fs::create_dir_all(t.path().join("data")).unwrap();
        cp.sync().expect("a directory that never came to be is skipped");
        assert!(cp.unsynced_dirs.is_empty());
    }

    #[test]
    fn rollback_restores_files() {
        let t = tempfile::tempdir().unwrap();
        let existing = t.path().join("a.conf");
        fs::write(&existing, "old").unwrap();
        let mut cp = Checkpoint::create(&t.path().join("cp"), t.path(), "b").unwrap();
        cp.move_aside(&existing).unwrap();
        fs::write(&existing, "new").unwrap();
        let created = t.path().join("new.conf");
        cp.record(Change::CreatedFile { path: created.clone() }).unwrap();
        fs::write(&created, "x").unwrap();

        let mut back = Checkpoint::load(&t.path().join("cp")).unwrap();
        assert!(back.rollback(None).is_empty());
        assert_eq!(fs::read_to_string(&existing).unwrap(), "old");
        assert!(!created.exists());
        assert!(Checkpoint::load(&t.path().join("cp")).unwrap().rolled_back);
    }

    /// A journal that names a path outside its own root, climbs out of it, keeps something
    /// "moved aside" outside its own directory, would run anything but compose to undo a
    /// compose start, or hands docker anything but ids and service names (an option) was not
    /// written by a restore: load refuses it, so no rollback acts on it.
    #[test]
    fn journals_reaching_outside_their_root_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let (root, outside) = (t.path().join("root"), t.path().join("outside"));
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "s").unwrap();
        let bad = [
            Change::CreatedFile { path: outside.join("secret") },
            Change::CreatedDir { path: root.join("../outside") },
            Change::MovedAside { original: root.join("loot"), saved: outside.join("secret") },
            Change::ComposeUp {
                program: vec!["rm".into(), "-rf".into()],
                project: "p".into(),
                directory: root.clone(),
                files: vec![],
                kept: vec![],
                kept_networks: vec![],
            },
            Change::ComposeUp {
                program: vec!["docker-compose".into()],
                project: "p".into(),
                directory: root.clone(),
                files: vec![],
                kept: vec!["--all".into()],
                kept_networks: vec![],
            },
            Change::ComposeStopped {
                program: vec!["docker".into(), "compose".into()],
                project: "p".into(),
                directory: root.clone(),
                files: vec![],
                containers: vec![StoppedContainer { id: "abc123".into(), service: "-d".into(), running: true }],
            },
        ];
        for (i, change) in bad.into_iter().enumerate() {
            let dir = root.join(format!("cp{i}"));
            let mut cp = Checkpoint::create(&dir, &root, "b").unwrap();
            cp.record(change.clone()).unwrap();
            let err = Checkpoint::load(&dir).unwrap_err().to_string();
            assert!(err.contains("not a journal this restore wrote"), "{change:?}: {err}");
        }
        assert!(outside.join("secret").exists());
    }
}
