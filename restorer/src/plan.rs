//! The restore plan: what each manifest item will do to the target, decided from the manifest
//! and what was observed on the target. Pure: no I/O happens here, so every combination of
//! "what the bundle has" and "what the host has" is testable from data.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::manifest::{FileContent, Manifest};
use crate::{layout, Result};

/// What is at a target path now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathState {
    /// Nothing there.
    Absent,
    /// Already exactly what the bundle holds (same digest, same link target, or a directory).
    Identical,
    /// Something else is there (other content, other type).
    Differs,
}

/// What a PostgreSQL database on the target is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbState {
    /// No database of that name.
    Absent,
    /// Exists, holds no table, view or sequence.
    Empty,
    /// Exists and holds data.
    HasData,
}

/// A compose project of the bundle as the host's Docker engine has it now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ComposeState {
    /// Containers of the project (by compose's labels), running or not.
    pub containers: usize,
    /// How many of them run.
    pub running: usize,
}

impl ComposeState {
    /// How the plan shows it (`2 container(s), 2 running`).
    pub fn describe(&self) -> String {
        format!("{} container(s), {} running", self.containers, self.running)
    }
}

/// What the restore will do with one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create it (nothing was there).
    Create,
    /// Already in place: leave the content, (re)apply mode, owner and time.
    Keep,
    /// Move what is there into the checkpoint, then put the bundle's version in place.
    Replace,
    /// Not allowed without `--overwrite`: the restore refuses before changing anything.
    Refuse,
}

/// The kind of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A SQLite database file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
    /// A compose project that already has containers on the host: with `--overwrite` they are
    /// stopped (kept, so a rollback starts them again) before anything else changes.
    Compose,
}

/// One planned item.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Kind of item.
    pub kind: ItemKind,
    /// Index into the manifest's list for that kind (files, sqlite, postgres or
    /// `docker.compose`).
    pub index: usize,
    /// Where it goes: a path on the target, or a database name.
    pub target: String,
    /// What is there now.
    pub state: String,
    /// What will happen.
    pub action: Action,
    /// A database restored under another name (`--database NAME=NEWNAME`, `target` is NEWNAME):
    /// the bundle's NAME.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// Options that change decisions.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Replace existing data (kept aside in the checkpoint).
    pub overwrite: bool,
}

/// Observations of the target, parallel to the manifest's lists.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// One per `manifest.files`.
    pub files: Vec<PathState>,
    /// One per `manifest.sqlite`.
    pub sqlite: Vec<PathState>,
    /// One per `manifest.postgres`.
    pub postgres: Vec<DbState>,
    /// One per `manifest.docker.compose`, when the Docker deployment is rebuilt and the engine
    /// could be asked (empty otherwise: a project with containers is then refused, or stopped
    /// with `--overwrite`, once the engine runs).
    pub compose: Vec<ComposeState>,
    /// Targets that appeared while this restore installed its prerequisites (a package's
    /// default config): replaced (and kept in the checkpoint) without `--overwrite`, since they
    /// were never the operator's data.
    pub installed_defaults: std::collections::HashSet<std::path::PathBuf>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Restore root (`/` for a real restore).
    pub root: PathBuf,
    /// A databases-only restore (`--database`): the items are exactly the databases named, under
    /// their new names; no file, package, account or service is touched.
    pub databases_only: bool,
    /// Every item, in the order the steps apply them.
    pub items: Vec<Item>,
}

impl Plan {
    /// Items the restore refuses to touch without `--overwrite`.
    pub fn refusals(&self) -> Vec<&Item> {
        self.items.iter().filter(|i| i.action == Action::Refuse).collect()
    }

    /// Number of items with the given action.
    pub fn count(&self, action: &Action) -> usize {
        self.items.iter().filter(|i| &i.action == action).count()
    }
}

fn path_action(state: &PathState, installed_default: bool, opts: &PlanOptions) -> Action {
    match state {
        PathState::Absent => Action::Create,
        PathState::Identical => Action::Keep,
        PathState::Differs if opts.overwrite || installed_default => Action::Replace,
        PathState::Differs => Action::Refuse,
    }
}

/// Builds the plan. Compose projects that already have containers come first (they are stopped
/// before anything else changes), then directories (parents before children), files and links,
/// SQLite files, PostgreSQL databases.
pub fn build(manifest: &Manifest, root: &Path, observed: &Observed, opts: &PlanOptions) -> Result<Plan> {
    let mut items = Vec::new();
    let projects = manifest.docker.iter().flat_map(|d| &d.compose);
    for (i, (p, state)) in projects.zip(&observed.compose).enumerate().filter(|(_, (_, s))| s.containers > 0) {
        // A running deployment under a restore would mix two states: like data, replaced only
        // when the operator says so.
        items.push(Item {
            kind: ItemKind::Compose,
            index: i,
            target: p.project.clone(),
            state: state.describe(),
            action: if opts.overwrite { Action::Replace } else { Action::Refuse },
            from: None,
        });
    }
    let mut order: Vec<usize> = (0..manifest.files.len()).collect();
    // Dirs first, each group sorted by path, so a parent directory always precedes its children.
    order.sort_by_key(|&i| {
        let f = &manifest.files[i];
        (!matches!(f.content, FileContent::Dir), f.path.clone())
    });
    for i in order {
        let f = &manifest.files[i];
        let kind = match f.content {
            FileContent::Dir => ItemKind::Dir,
            FileContent::File { .. } => ItemKind::File,
            FileContent::Symlink { .. } => ItemKind::Symlink,
        };
        let state = observed.files.get(i).cloned().unwrap_or(PathState::Absent);
        items.push(Item {
            kind,
            index: i,
            target: layout::target_path(root, &f.path)?.display().to_string(),
            state: format!("{state:?}").to_lowercase(),
            action: path_action(
                &state,
                observed.installed_defaults.contains(&layout::target_path(root, &f.path)?),
                opts,
            ),
            from: None,
        });
    }
    for (i, s) in manifest.sqlite.iter().enumerate() {
        let state = observed.sqlite.get(i).cloned().unwrap_or(PathState::Absent);
        items.push(Item {
            kind: ItemKind::Sqlite,
            index: i,
            target: layout::target_path(root, &s.path)?.display().to_string(),
            state: format!("{state:?}").to_lowercase(),
            action: path_action(
                &state,
                observed.installed_defaults.contains(&layout::target_path(root, &s.path)?),
                opts,
            ),
            from: None,
        });
    }
    for (i, d) in manifest.postgres.iter().enumerate() {
        let state = observed.postgres.get(i).cloned().unwrap_or(DbState::Absent);
        let action = db_action(&state, opts.overwrite);
        items.push(Item {
            kind: ItemKind::Postgres,
            index: i,
            target: d.database.clone(),
            state: match state {
                DbState::Absent => "absent".into(),
                DbState::Empty => "exists, empty".into(),
                DbState::HasData => "exists, has data".into(),
            },
            action,
            from: None,
        });
    }
    Ok(Plan { root: root.to_path_buf(), databases_only: false, items })
}

/// What a restore does with a database given what the server holds under its name.
pub fn db_action(state: &DbState, overwrite: bool) -> Action {
    match state {
        DbState::Absent => Action::Create,
        // An existing database is always renamed aside, never restored into: that keeps
        // rollback a rename, and pg_restore never meets leftover objects.
        DbState::Empty => Action::Replace,
        DbState::HasData if overwrite => Action::Replace,
        DbState::HasData => Action::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FileKind;
    use crate::manifest::*;

    fn manifest() -> Manifest {
        let meta = FileMeta { mode: 0o644, ..Default::default() };
        let file =
            |p: &str, content| FileRecord { kind: FileKind::Config, path: p.into(), meta: meta.clone(), content };
        Manifest {
            format_version: 1,
            created_by: "t".into(),
            created_at: chrono::Utc::now(),
            bundle_name: "n8n".into(),
            source_host: Default::default(),
            postgres: vec![PostgresDb {
                name: "main".into(),
                entry: "databases/main.dump".into(),
                database: "n8n".into(),
                owner: "n8n".into(),
                encoding: "UTF8".into(),
                collate: "C".into(),
                ctype: "C".into(),
                server_version: "15".into(),
                server_version_num: 150000,
                pg_dump_version: "15".into(),
                size: 1,
                sha256: "0".repeat(64),
                tables: vec![],
                roles_entry: None,
                role_passwords: false,
                container: None,
                compressed: None,
            }],
            sqlite: vec![],
            files: vec![
                file(
                    "/etc/app/b.conf",
                    FileContent::File { entry: "config/etc/app/b.conf".into(), size: 1, sha256: "1".repeat(64) },
                ),
                file("/etc/app", FileContent::Dir),
                file("/etc/app/link", FileContent::Symlink { target: "b.conf".into() }),
            ],
            support: vec![],
            services: Default::default(),
            requirements: vec![],
            warnings: vec![],
            notes: vec![],
            n8n: None,
            docker: None,
        }
    }

    /// Directories are planned before the files inside them, whatever the manifest order.
    #[test]
    fn dirs_come_first() {
        let p = build(&manifest(), Path::new("/r"), &Observed::default(), &PlanOptions::default()).unwrap();
        let kinds: Vec<_> = p.items.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, vec![ItemKind::Dir, ItemKind::File, ItemKind::Symlink, ItemKind::Postgres]);
        assert_eq!(p.items[1].target, "/r/etc/app/b.conf");
    }

    /// Existing different data is refused without --overwrite and replaced with it; identical
    /// data is kept; an existing database is always renamed aside, and refused if it holds data.
    /// A package default that appeared during this restore's install is replaced without
    /// --overwrite.
    #[test]
    fn installed_defaults_are_replaced() {
        let mut obs = Observed { files: vec![PathState::Differs; 3], ..Default::default() };
        obs.installed_defaults.insert("/etc/app/b.conf".into());
        let p = build(&manifest(), Path::new("/"), &obs, &PlanOptions::default()).unwrap();
        assert_eq!(p.items[1].action, Action::Replace);
        assert_eq!(p.items[2].action, Action::Refuse, "the link was there before");
    }

    /// A compose project that already has containers on the host is a refusal without
    /// --overwrite and a replacement with it, planned before the files; one without containers
    /// (a new host) is no item at all.
    #[test]
    fn existing_compose_project_is_refused_without_overwrite() {
        let mut m = manifest();
        let project = |name: &str| crate::docker::ComposeProject {
            project: name.into(),
            directory: format!("/opt/{name}").into(),
            files: vec![],
            services: vec![],
        };
        m.docker = Some(crate::docker::DockerInfo {
            compose: vec![project("fresh"), project("running")],
            ..Default::default()
        });
        let obs = Observed {
            compose: vec![ComposeState::default(), ComposeState { containers: 2, running: 1 }],
            ..Default::default()
        };
        for (overwrite, action) in [(false, Action::Refuse), (true, Action::Replace)] {
            let p = build(&m, Path::new("/"), &obs, &PlanOptions { overwrite }).unwrap();
            let compose: Vec<_> = p.items.iter().filter(|i| i.kind == ItemKind::Compose).collect();
            assert_eq!(compose.len(), 1, "{:?}", p.items);
            assert_eq!((compose[0].index, compose[0].target.as_str()), (1, "running"));
            assert_eq!(compose[0].state, "2 container(s), 1 running");
            assert_eq!(compose[0].action, action);
            assert_eq!(p.items[0].kind, ItemKind::Compose, "stopped before anything else changes");
            assert_eq!(p.refusals().len(), usize::from(!overwrite));
        }
        // Not observed (no engine yet): nothing planned, decided once the engine runs.
        let p = build(&m, Path::new("/"), &Observed::default(), &PlanOptions::default()).unwrap();
        assert!(p.items.iter().all(|i| i.kind != ItemKind::Compose));
    }

    #[test]
    fn decisions_table() {
        let cases = [
            (PathState::Absent, DbState::Absent, false, Action::Create, Action::Create),
            (PathState::Identical, DbState::Empty, false, Action::Keep, Action::Replace),
            (PathState::Differs, DbState::HasData, false, Action::Refuse, Action::Refuse),
            (PathState::Differs, DbState::HasData, true, Action::Replace, Action::Replace),
        ];
        for (ps, ds, overwrite, file_action, db_action) in cases {
            let obs = Observed {
                files: vec![ps.clone(); 3],
                sqlite: vec![],
                postgres: vec![ds.clone()],
                ..Default::default()
            };
            let p = build(&manifest(), Path::new("/"), &obs, &PlanOptions { overwrite }).unwrap();
            assert_eq!(p.items[1].action, file_action, "{ps:?} overwrite={overwrite}");
            assert_eq!(p.items[3].action, db_action, "{ds:?} overwrite={overwrite}");
            assert_eq!(p.refusals().len(), if file_action == Action::Refuse { 4 } else { 0 });
        }
    }
}
