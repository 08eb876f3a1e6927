//! Deep verification: restore every database of a bundle into a throwaway PostgreSQL server
//! (or open the SQLite copy), then compare every table's row count and every n8n workflow's
//! recomputed checksum with the manifest. It proves the bundle restores and holds what it
//! claimed when it was made, not that it matches production today.
//!
//! A database of a host server goes into a throwaway cluster of this host's PostgreSQL binaries
//! ([`crate::pg_cluster`]). A database that lived in a container goes into a throwaway container
//! of the image its compose service ran ([`crate::pg_container`]), restored with that image's own
//! `pg_restore`: the host needs no PostgreSQL, nor one as new as the container's. When no Docker
//! engine answers or the image is not here (nothing is pulled), the host cluster is used
//! instead, when it is new enough, and the check list says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use restorer::container;
use restorer::docker::{ComposeService, DbContainer, SavedImage};
use restorer::log::Level;
use restorer::manifest::{Manifest, PostgresDb, SqliteDb, TableCount};
use restorer::n8n::{N8nInfo, WorkflowSummary};
use restorer::pg::{quote_ident, table_counts, PgTarget};
use restorer::progress::Progress;
use restorer::steps::validate::{compare_counts, Check};

use crate::pg_cluster::Cluster;
use crate::pg_container::{LoadedImage, PgContainer};
use crate::sources::n8n::N8nData;

fn compare_workflows(out: &mut Vec<Check>, expected: &[WorkflowSummary], actual: &N8nData) {
    for w in expected {
        let found = actual.workflows.iter().find(|(s, _)| s.id == w.id);
        let got = found.map(|(s, _)| s.checksum.clone()).unwrap_or_else(|| "workflow missing".into());
        out.push(Check {
            ok: got == w.checksum,
            check: format!("n8n workflow {} ({}) checksum", w.id, w.name),
            expected: w.checksum.clone(),
            actual: got,
        });
    }
    for (s, _) in &actual.workflows {
        if !expected.iter().any(|w| w.id == s.id) {
            out.push(Check {
                ok: false,
                check: format!("n8n workflow {} ({})", s.id, s.name),
                expected: "absent from manifest".into(),
                actual: "present".into(),
            });
        }
    }
}

fn check(out: &mut Vec<Check>, what: String, r: Result<()>) {
    out.push(match r {
        Ok(()) => Check { check: what, expected: "ok".into(), actual: "ok".into(), ok: true },
        Err(e) => Check { check: what, expected: "ok".into(), actual: crate::error_text::chain(&e), ok: false },
    });
}

/// Where one database's dump is restored.
#[derive(Debug, Clone, PartialEq)]
enum Server {
    /// The throwaway host cluster: the database lived on a host server.
    Host,
    /// A throwaway container of `run` (an image id or reference this host has, or will have
    /// once `load` is `docker load`ed from the bundle); `shown` names the image for people.
    Container { run: String, shown: String, load: Option<SavedImage> },
    /// The host cluster although the database lived in a container: its image (`image`, when
    /// the manifest knows it) cannot run here, for the reason `why`.
    Fallback { image: Option<String>, why: String },
}

/// The compose service a container database belongs to, when the manifest records its image.
fn service_of<'a>(m: &'a Manifest, c: &DbContainer) -> Option<&'a ComposeService> {
    let (project, service) = (c.project.as_ref()?, c.service.as_ref()?);
    m.docker
        .as_ref()?
        .compose
        .iter()
        .filter(|p| &p.project == project)
        .flat_map(|p| &p.services)
        .find(|s| &s.name == service && (!s.image.is_empty() || s.image_id.is_some()))
}

/// `reference (sha256:0123456789ab)`, for messages.
fn describe(s: &ComposeService) -> String {
    let short = s.image_id.as_deref().map(|id| id.get(..19).unwrap_or(id));
    match (s.image.as_str(), short) {
        ("", Some(id)) => id.to_string(),
        (r, Some(id)) => format!("{r} ({id})"),
        (r, None) => r.to_string(),
    }
}

/// Decides where `db` is restored. Pure: `engine` says whether a Docker engine answers, `local`
/// whether it has an image (by id or reference). The exact image the source ran (its id) comes
/// first, then the configured reference as this host tags it, then the bundle's saved copy,
/// which is loaded only when none of its tags exists here (loading would move such a tag away
/// from the image this host has under it).
fn choose(db: &PostgresDb, m: &Manifest, engine: bool, local: &dyn Fn(&str) -> bool) -> Server {
    let Some(c) = &db.container else { return Server::Host };
    let Some(s) = service_of(m, c) else {
        return Server::Fallback {
            image: None,
            why: format!(
                "the manifest records no image for container {} (only compose services' images are recorded)",
                c.name
            ),
        };
    };
    let shown = describe(s);
    let fallback = |why: String| Server::Fallback { image: Some(shown.clone()), why };
    if !engine {
        return fallback("no Docker engine answers here (`docker info` fails)".into());
    }
    if let Some(id) = s.image_id.as_deref().filter(|id| local(id)) {
        return Server::Container { run: id.to_string(), shown, load: None };
    }
    if !s.image.is_empty() && local(&s.image) {
        let shown = match &s.image_id {
            Some(id) => format!("{} (as tagged on this host; the source ran {})", s.image, id.get(..19).unwrap_or(id)),
            None => s.image.clone(),
        };
        return Server::Container { run: s.image.clone(), shown, load: None };
    }
    let saved = m
        .docker
        .iter()
        .flat_map(|d| &d.images)
        .find(|i| Some(&i.id) == s.image_id.as_ref() || (!s.image.is_empty() && i.references.contains(&s.image)));
    match saved {
        Some(i) if local(&i.id) => Server::Container { run: i.id.clone(), shown, load: None },
        Some(i) => match i.references.iter().find(|r| local(r)) {
            Some(tag) => fallback(format!(
                "the bundle holds image {shown}, but loading it would move tag {tag}, which this host has for another image"
            )),
            None => {
                let shown = format!("{shown}, loaded from the bundle");
                Server::Container { run: i.id.clone(), shown, load: Some(i.clone()) }
            }
        },
        None => fallback(format!(
            "image {shown} is not on this host and the bundle does not hold it (include_images); nothing is pulled: `docker pull {}` to verify in it",
            if s.image.is_empty() { "IMAGE" } else { &s.image }
        )),
    }
}

/// The major version of the PostgreSQL binaries in `bin`.
fn host_major(bin: &Path) -> Result<u32> {
    let exe = bin.join("pg_restore");
    if !exe.is_file() {
        bail!("no PostgreSQL binaries in {} (no pg_restore there)", bin.display());
    }
    let out = Command::new(&exe).arg("--version").output().with_context(|| format!("running {}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    restorer::sys::parse_major(&text)
        .with_context(|| format!("{} --version printed no version ({})", exe.display(), text.trim()))
}

/// The throwaway host cluster, started on first use.
fn host_cluster<'c>(cluster: &'c mut Option<Cluster>, log: &mut dyn FnMut(Level, &str)) -> Result<&'c Cluster> {
    if cluster.is_none() {
        log(Level::Info, "starting a throwaway PostgreSQL cluster ...");
        *cluster = Some(Cluster::start()?);
    }
    Ok(cluster.as_ref().expect("just started"))
}

/// The host cluster for a container database whose image cannot run: only when the host's
/// PostgreSQL is at least the dump's server major (an older pg_restore cannot read a newer dump).
fn fallback_cluster<'c>(
    cluster: &'c mut Option<Cluster>,
    db: &PostgresDb,
    log: &mut dyn FnMut(Level, &str),
) -> Result<&'c Cluster> {
    let bin: PathBuf = match cluster {
        Some(c) => c.bin().to_path_buf(),
        None => crate::pg_cluster::server_bin()?,
    };
    let have = host_major(&bin)?;
    let need = db.server_version_num / 10000;
    if have < need {
        bail!(
            "the host's PostgreSQL {have} ({}) is older than the dump's server {} (an older pg_restore cannot read a newer dump)",
            bin.display(),
            db.server_version
        );
    }
    host_cluster(cluster, log)
}

/// Restores `db` with `restore` (which creates the database and runs pg_restore), then compares
/// the restored database reached through `target` with the manifest.
fn restore_and_compare(
    out: &mut Vec<Check>,
    db: &PostgresDb,
    n8n: Option<&N8nInfo>,
    target: &PgTarget,
    restore: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let restored = restore();
    let ok = restored.is_ok();
    check(out, format!("postgres {}: pg_restore of {}", db.database, db.entry), restored);
    if !ok {
        return Ok(());
    }
    let mut c = target.connect()?;
    let counts: Vec<TableCount> = table_counts(&mut c, &target.describe())?;
    compare_counts(out, &format!("postgres {}", db.database), &db.tables, &counts);
    if let Some(n) = n8n.filter(|n| n.database_entry == db.entry) {
        match crate::sources::n8n::read_postgres(&mut c) {
            Ok(data) => compare_workflows(out, &n.workflows, &data),
            Err(e) => check(out, "n8n: reading workflows from the restored database".into(), Err(e)),
        }
    }
    Ok(())
}

fn create_statement(db: &PostgresDb) -> String {
    format!("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'", quote_ident(&db.database))
}

/// Restores `db` into the host cluster and compares.
fn into_cluster(
    out: &mut Vec<Check>,
    cluster: &Cluster,
    db: &PostgresDb,
    dir: &Path,
    n8n: Option<&N8nInfo>,
) -> Result<()> {
    // Our own throwaway cluster has no TLS: say so, so an operator's PGSSLMODE (meant for the
    // server packed) does not reach this connection or pg_restore's.
    let target = PgTarget::parse(&format!("{}?sslmode=disable", cluster.url(&db.database)))?;
    restore_and_compare(out, db, n8n, &target, || {
        cluster.psql("postgres", &create_statement(db))?;
        let dump = restorer::zst::plain_dump(dir, db)?;
        let mut cmd = Command::new(cluster.bin().join("pg_restore"));
        cmd.args(["--exit-on-error", "--no-owner", "--no-privileges", "--dbname", &db.database])
            .arg(dump.path())
            .envs(target.libpq_env());
        restorer::sys::run(&mut cmd)?;
        Ok(())
    })
}

/// Restores `db` into a throwaway container (the image's own pg_restore) and compares.
fn into_container(
    out: &mut Vec<Check>,
    c: &PgContainer,
    db: &PostgresDb,
    dir: &Path,
    n8n: Option<&N8nInfo>,
) -> Result<()> {
    let target = c.target.with_database(&db.database);
    restore_and_compare(out, db, n8n, &target, || {
        c.target.connect()?.batch_execute(&create_statement(db)).context("creating the database")?;
        c.pg_restore(&db.database, restorer::zst::plain_dump(dir, db)?.path())
    })
}

/// Stops between steps once Ctrl-C or SIGTERM arrived.
fn interrupted(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted; the throwaway servers are being removed");
    }
    Ok(())
}

/// Runs the deep checks of `bundle` (whose digests were verified by the caller).
pub fn verify(
    bundle: &Path,
    manifest: &Manifest,
    identity: Option<&restorer::sealed::Identity>,
    log: &mut dyn FnMut(Level, &str),
    progress: &dyn Progress,
) -> Result<Vec<Check>> {
    // Ctrl-C or SIGTERM must not kill us before the throwaway servers are removed: the flag
    // stops us between steps (and while a container starts); a running pg_restore (or the
    // `docker exec` running one) gets the terminal's signal itself and fails.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let in_containers = manifest.postgres.iter().any(|d| d.container.is_some());
    let engine = in_containers && container::engine_answers();
    let servers: Vec<Server> = manifest
        .postgres
        .iter()
        .map(|db| choose(db, manifest, engine, &|image| container::image_id(image).is_some()))
        .collect();
    let work = extract(bundle, &servers, identity, log, progress)?;
    let dir = work.path().join("x");
    let mut out = Vec::new();
    let n8n = manifest.n8n.as_ref();
    {
        // Dropped (every server removed) before the work directory.
        let mut throwaway =
            Throwaway { cluster: None, containers: BTreeMap::new(), loaded: Vec::new(), dir: &dir, stop: &stop };
        for (db, server) in manifest.postgres.iter().zip(&servers) {
            interrupted(&stop)?;
            throwaway.restore(&mut out, db, server, n8n, log)?;
        }
    }
    for db in &manifest.sqlite {
        interrupted(&stop)?;
        check_sqlite(&mut out, db, &dir, n8n)?;
    }
    interrupted(&stop)?;
    drop(work);
    Ok(out)
}

/// Unpacks the databases (and the saved images some server loads) into a work directory beside
/// the bundle, as `x/` in it.
fn extract(
    bundle: &Path,
    servers: &[Server],
    identity: Option<&restorer::sealed::Identity>,
    log: &mut dyn FnMut(Level, &str),
    progress: &dyn Progress,
) -> Result<tempfile::TempDir> {
    let image_entries: Vec<String> = servers
        .iter()
        .filter_map(|s| match s {
            Server::Container { load: Some(i), .. } => Some(i.entry.clone()),
            _ => None,
        })
        .collect();
    let parent = bundle.parent().unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".packer-deep-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a work directory in {}", parent.display()))?;
    log(
        Level::Info,
        &match image_entries.len() {
            0 => "extracting the databases ...".to_string(),
            n => format!("extracting the databases and {n} saved image(s) ..."),
        },
    );
    restorer::unpack::unpack_only_with(
        bundle,
        &work.path().join("x"),
        identity,
        |n| n.starts_with("databases/") || image_entries.iter().any(|e| e == n),
        progress,
    )?;
    Ok(work)
}

/// The throwaway servers of one deep verification, each started when first needed. Fields drop
/// in declaration order: the cluster, then the containers, then the images they ran.
struct Throwaway<'a> {
    cluster: Option<Cluster>,
    /// Per image to run: the started container, or why it did not start.
    containers: BTreeMap<String, std::result::Result<PgContainer, String>>,
    loaded: Vec<LoadedImage>,
    /// Where the bundle's databases and images were extracted.
    dir: &'a Path,
    stop: &'a AtomicBool,
}

impl Throwaway<'_> {
    /// Restores `db` into the server chosen for it and compares.
    fn restore(
        &mut self,
        out: &mut Vec<Check>,
        db: &PostgresDb,
        server: &Server,
        n8n: Option<&N8nInfo>,
        log: &mut dyn FnMut(Level, &str),
    ) -> Result<()> {
        let prefix = format!("postgres {}", db.database);
        match server {
            Server::Host => {
                let cluster = host_cluster(&mut self.cluster, log)?;
                log(Level::Info, &format!("restoring {} into the throwaway cluster ...", db.entry));
                into_cluster(out, cluster, db, self.dir, n8n)?;
            }
            Server::Container { run, shown, load } => {
                if !self.containers.contains_key(run) {
                    let started = self.start(run, shown, load.as_ref(), log);
                    self.containers.insert(run.clone(), started.map_err(|e| crate::error_text::chain(&e)));
                }
                interrupted(self.stop)?;
                let what = format!("{prefix}: restored in a throwaway container of image {shown}");
                match &self.containers[run] {
                    Ok(c) => {
                        check(out, format!("{what} ({})", c.name), Ok(()));
                        log(Level::Info, &format!("restoring {} into container {} ...", db.entry, c.name));
                        into_container(out, c, db, self.dir, n8n)?;
                    }
                    Err(e) => check(out, what, Err(anyhow::anyhow!("{e}"))),
                }
            }
            Server::Fallback { image, why } => {
                self.fallback(out, db, (image.as_deref().unwrap_or("(unknown)"), why), n8n, log)?;
            }
        }
        Ok(())
    }

    /// Starts a container of `run`, first loading its image from the bundle when `load` says so.
    fn start(
        &mut self,
        run: &str,
        shown: &str,
        load: Option<&SavedImage>,
        log: &mut dyn FnMut(Level, &str),
    ) -> Result<PgContainer> {
        if let Some(i) = load {
            log(Level::Info, &format!("loading image {shown} from the bundle ..."));
            let tar = self.dir.join(&i.entry);
            let image = LoadedImage::load(&tar, &i.references, &i.id);
            // The engine holds it now (or it failed): its tar is not needed again.
            let _ = std::fs::remove_file(&tar);
            self.loaded.push(image?);
        }
        log(Level::Info, &format!("starting a throwaway container of image {shown} ..."));
        PgContainer::start(run, self.stop)
    }

    /// A container database whose image cannot run here: restored into the host's PostgreSQL,
    /// with a warning, or a failed check saying what would make one possible.
    fn fallback(
        &mut self,
        out: &mut Vec<Check>,
        db: &PostgresDb,
        (image, why): (&str, &str),
        n8n: Option<&N8nInfo>,
        log: &mut dyn FnMut(Level, &str),
    ) -> Result<()> {
        let prefix = format!("postgres {}", db.database);
        match fallback_cluster(&mut self.cluster, db, log) {
            Ok(cluster) => {
                let what = format!(
                    "{prefix}: restored in the host's PostgreSQL ({}) instead of a container of image {image}: {why}",
                    cluster.bin().display()
                );
                log(Level::Warning, &what);
                check(out, what, Ok(()));
                into_cluster(out, cluster, db, self.dir, n8n)?;
            }
            Err(e) => {
                let need = db.server_version_num / 10000;
                out.push(Check {
                    check: format!("{prefix}: a PostgreSQL server to restore into"),
                    expected: format!("a container of image {image}, or a host PostgreSQL {need} or newer"),
                    actual: format!(
                        "{why}; and {}: install Docker with image {image} (`docker load` or `docker pull`), or postgresql-{need} (its server binaries; or set PG_BIN)",
                        crate::error_text::chain(&e)
                    ),
                    ok: false,
                });
            }
        }
        Ok(())
    }
}

/// Opens a SQLite copy read-only, checks its integrity, and compares its counts (and n8n's
/// workflows, when it is n8n's database) with the manifest.
fn check_sqlite(out: &mut Vec<Check>, db: &SqliteDb, dir: &Path, n8n: Option<&N8nInfo>) -> Result<()> {
    let path = dir.join(&db.entry);
    let prefix = format!("sqlite {}", db.name);
    let opened =
        restorer::sqlite::open_read_only(&path).and_then(|c| restorer::sqlite::integrity_check(&c, &path).map(|_| c));
    match opened {
        Ok(conn) => {
            check(out, format!("{prefix}: integrity_check"), Ok(()));
            compare_counts(out, &prefix, &db.tables, &restorer::sqlite::table_counts(&conn, &path)?);
            if let Some(n) = n8n.filter(|n| n.database_entry == db.entry) {
                match crate::sources::n8n::read_sqlite(&conn) {
                    Ok(data) => compare_workflows(out, &n.workflows, &data),
                    Err(e) => check(out, "n8n: reading workflows from the copy".into(), Err(e)),
                }
            }
        }
        Err(e) => check(out, format!("{prefix}: integrity_check"), Err(e.into())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use restorer::docker::{ComposeProject, DockerInfo};

    fn manifest(image: &str, image_id: Option<&str>, saved: Option<(&str, &[&str])>) -> Manifest {
        let mut m: Manifest = serde_json::from_value(serde_json::json!({
            "format_version": 1, "created_by": "t", "created_at": "2026-12-01T00:00:00Z",
            "bundle_name": "t", "source_host": {"hostname": "h", "os": "o", "arch": "x86_64"},
            "postgres": [{"name": "n8n", "entry": "databases/n8n.dump", "database": "n8n", "owner": "n8n",
                "encoding": "UTF8", "collate": "C", "ctype": "C", "server_version": "16.4",
                "server_version_num": 160004, "pg_dump_version": "16", "size": 1, "sha256": "0", "tables": []},
                {"name": "host", "entry": "databases/host.dump", "database": "host", "owner": "h",
                "encoding": "UTF8", "collate": "C", "ctype": "C", "server_version": "15.1",
                "server_version_num": 150001, "pg_dump_version": "15", "size": 1, "sha256": "0", "tables": []}]
        }))
        .unwrap();
        m.postgres[0].container = Some(DbContainer {
            name: "n8n-postgres-1".into(),
            project: Some("n8n".into()),
            service: Some("postgres".into()),
            user: "n8n".into(),
        });
        m.docker = Some(DockerInfo {
            compose: vec![ComposeProject {
                project: "n8n".into(),
                directory: "/opt/n8n".into(),
                files: vec![],
                services: vec![ComposeService {
                    name: "postgres".into(),
                    image: image.into(),
                    image_id: image_id.map(str::to_string),
                    repo_digests: vec![],
                    ports: vec![],
                }],
            }],
            volumes: vec![],
            images: saved
                .map(|(id, refs)| SavedImage {
                    references: refs.iter().map(|r| r.to_string()).collect(),
                    id: id.into(),
                    entry: restorer::docker::image_entry(id),
                })
                .into_iter()
                .collect(),
        });
        m
    }

    const ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    /// A manifest, whether an engine answers, which images this host has, and the outcome.
    type Case<'a> = (Manifest, bool, &'a dyn Fn(&str) -> bool, &'a str);

    fn run_of(s: &Server) -> String {
        match s {
            Server::Host => "host".into(),
            Server::Container { run, load, .. } => format!("{run}{}", if load.is_some() { " (load)" } else { "" }),
            Server::Fallback { why, .. } => format!("fallback: {why}"),
        }
    }

    /// Where each database is restored: host databases in the host cluster; a container
    /// database in its image, by the exact id first, then the tag, then the bundle's saved copy
    /// (never loaded over a tag this host has for another image); otherwise the host cluster,
    /// with the reason.
    #[test]
    fn choose_prefers_the_exact_image_then_the_tag_then_the_saved_copy() {
        let none = |_: &str| false;
        let m = manifest("postgres:16", Some(ID), None);
        assert_eq!(choose(&m.postgres[1], &m, true, &none), Server::Host);
        let loaded = format!("{ID} (load)");
        let has = |names: &'static [&'static str]| move |i: &str| names.contains(&i);
        let (id_and_tag, tag, other_tag) = (has(&[ID, "postgres:16"]), has(&["postgres:16"]), has(&["mine:1"]));
        let saved_too: &[&str] = &["postgres:16", "mine:1"];
        let cases: Vec<Case> = vec![
            (manifest("postgres:16", Some(ID), None), true, &id_and_tag, ID),
            (manifest("postgres:16", Some(ID), None), true, &tag, "postgres:16"),
            (manifest("postgres:16", Some(ID), Some((ID, &["postgres:16"]))), true, &none, &loaded),
            (manifest("postgres:16", None, Some((ID, &["postgres:16"]))), true, &none, &loaded),
            (
                manifest("postgres:16", Some(ID), Some((ID, saved_too))),
                true,
                &other_tag,
                "fallback: the bundle holds image postgres:16 (sha256:111111111111), but loading it would move \
                 tag mine:1, which this host has for another image",
            ),
            (
                manifest("postgres:16", Some(ID), None),
                true,
                &none,
                "fallback: image postgres:16 (sha256:111111111111) is not on this host and the bundle does not \
                 hold it (include_images); nothing is pulled: `docker pull postgres:16` to verify in it",
            ),
            (
                manifest("postgres:16", Some(ID), Some((ID, &["postgres:16"]))),
                false,
                &|_| true,
                "fallback: no Docker engine answers here (`docker info` fails)",
            ),
        ];
        for (i, (m, engine, local, want)) in cases.iter().enumerate() {
            assert_eq!(run_of(&choose(&m.postgres[0], m, *engine, *local)), *want, "case {i}");
        }
        // A plain container (no compose service): no image is recorded.
        let mut m = manifest("postgres:16", Some(ID), None);
        m.postgres[0].container.as_mut().unwrap().project = None;
        assert!(run_of(&choose(&m.postgres[0], &m, true, &|_| true))
            .contains("records no image for container n8n-postgres-1"));
    }
}
