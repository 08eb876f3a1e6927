//! `packer create`: inventory every source (dumps and copies into a private spool directory next
//! to the bundles), write the manifest, stream everything into the bundle, publish it atomically.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::Utc;
use restorer::digest::sha256_file;
use restorer::layout;
use restorer::log::Level;
use restorer::manifest::{EntryDigest, Manifest, Services};
use restorer::progress::Progress;

use restorer::docker::DockerInfo;
use restorer::manifest::{FileRecord, PostgresDb, SqliteDb};
use restorer::n8n::N8nInfo;

use crate::config::{Config, FilesSource, PostgresSource, SqliteSource};
use crate::job::Log;
use crate::pgzip::Cores;
use crate::sources::docker::SqliteLocation;
use crate::sources::files::Captured;
use crate::sources::n8n::N8nData;
use crate::sources::{self, Payload};
use crate::writer::{self, Written};
use crate::{restorer_bin, system_info};

/// What `create` reports.
#[derive(Debug, serde::Serialize)]
pub struct Created {
    /// The bundle written.
    #[serde(flatten)]
    pub written: Written,
    /// Time stamp of the bundle (UTC).
    pub created_at: chrono::DateTime<Utc>,
    /// Databases and files in it.
    pub postgres: usize,
    /// SQLite databases.
    pub sqlite: usize,
    /// Captured paths.
    pub files: usize,
    /// Warnings from packing.
    pub warnings: Vec<String>,
    /// The manifest written (the catalog indexes it: a sealed bundle's is not readable from
    /// the file without the key).
    #[serde(skip)]
    pub manifest: Manifest,
}

/// The n8n section: the encryption key looked for in every packed file (a `.env`, a compose
/// file, n8n's own `config`), fingerprinted and proven against a real credential.
fn n8n_metadata(
    data: &sources::n8n::N8nData,
    entry: &str,
    kind: &str,
    files: &[FileRecord],
    warnings: &mut Vec<String>,
    log: Log<'_>,
) -> Result<N8nInfo> {
    use restorer::manifest::FileContent;
    use restorer::n8n::{decrypt_credential, find_key, fingerprint, release_from_compose, KeyInfo};
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut release = None;
    for f in files {
        let FileContent::File { size, .. } = f.content else { continue };
        if size > 1024 * 1024 {
            continue;
        }
        let Ok(text) = fs::read_to_string(&f.path) else { continue };
        if let Some(k) = find_key(&text) {
            keys.push((f.path.display().to_string(), k));
        }
        if release.is_none() {
            release = release_from_compose(&text);
        }
    }
    let mut distinct: Vec<&String> = keys.iter().map(|k| &k.1).collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() > 1 {
        let w = format!(
            "different N8N_ENCRYPTION_KEY values in {} (fingerprints {}): n8n refuses to start with mismatching keys",
            keys.iter().map(|k| k.0.as_str()).collect::<Vec<_>>().join(", "),
            keys.iter().map(|k| fingerprint(&k.1)).collect::<Vec<_>>().join(", ")
        );
        log(Level::Warning, &w.to_string());
        warnings.push(w);
    }
    let mut key_info = KeyInfo::default();
    match (keys.first(), &data.sample_credential) {
        (Some((path, key)), Some((id, name, ciphertext))) => {
            decrypt_credential(ciphertext, key).map_err(|e| {
                anyhow::anyhow!(
                    "N8N_ENCRYPTION_KEY from {path} (fingerprint {}) does not decrypt credential {id} ({name}): {e}. A bundle with this key cannot bring credentials back; pack the key n8n really uses",
                    fingerprint(key)
                )
            })?;
            key_info = KeyInfo { found_in: Some(path.clone()), fingerprint: Some(fingerprint(key)), proven: true };
        }
        (Some((path, key)), None) => {
            key_info = KeyInfo { found_in: Some(path.clone()), fingerprint: Some(fingerprint(key)), proven: false }
        }
        (None, _) if !data.credentials.is_empty() => {
            let w = format!(
                "N8N_ENCRYPTION_KEY IS NOT IN THIS BUNDLE: after a restore, all {} credentials will be unreadable. Add the file that holds it (.env, docker-compose.yaml or ~/.n8n/config) to [[files]]",
                data.credentials.len()
            );
            log(Level::Warning, &w.to_string());
            warnings.push(w);
        }
        (None, _) => {}
    }
    Ok(N8nInfo {
        database_entry: entry.to_string(),
        database_kind: kind.to_string(),
        schema_level: data.schema_level.clone(),
        migrations: data.migrations,
        release,
        encryption_key: key_info,
        workflows: data.workflows.iter().map(|w| w.0.clone()).collect(),
        credentials: data.credentials.clone(),
    })
}

/// The requirements: the configured packages plus what the sources imply.
fn requirements(cfg: &Config, manifest: &Manifest) -> Vec<String> {
    let mut out = cfg.requirements.packages.clone();
    // A database in a container brings its own server and tools: nothing to install for it.
    if let Some(major) =
        manifest.postgres.iter().filter(|d| d.container.is_none()).map(|d| d.server_version_num / 10000).max()
    {
        // The restore needs a pg_restore at least as new as the dumps' server.
        // The server to restore into and a pg_restore at least as new as the dumps' server.
        out.push(format!("postgresql-{major}"));
        out.push(format!("postgresql-client-{major}"));
    }
    let docker = manifest.docker.is_some() || manifest.postgres.iter().any(|d| d.container.is_some());
    if docker || cfg.services.start.iter().any(|s| s.ends_with(".yaml") || s.ends_with(".yml")) {
        // A compose file among the services: the new host needs docker and compose.
        out.push("docker.io".into());
        out.push("docker-compose".into());
    }
    if cfg.services.health.iter().chain(&cfg.services.n8n_url).any(|h| h.starts_with("https://")) {
        // The restore speaks plain HTTP itself and has no HTTPS client (its TLS is for
        // PostgreSQL only, without the system CA list): https checks go through
        // curl, which a bare host lacks (and ca-certificates, to trust the server's chain).
        out.push("curl".into());
        out.push("ca-certificates".into());
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// Everything that can be checked without writing a byte: sources exist, databases answer
/// (with the right password), the static restore binary is there. Returns that binary.
pub fn check(cfg: &Config, restorer: Option<&Path>) -> Result<PathBuf> {
    cfg.check_sources_exist()?;
    sources::docker::sqlite_locations(&cfg.sqlite)?;
    sources::postgres::check_reachable(&cfg.postgres)?;
    let restore_bin = restorer_bin::locate(restorer)?;
    restorer_bin::check(&restore_bin)?;
    Ok(restore_bin)
}

/// What the sources put in the spool and the manifest, gathered source by source (each
/// warning in the order it arose).
struct Gathered {
    postgres: Vec<PostgresDb>,
    sqlite: Vec<SqliteDb>,
    /// The dumps and copies, streamed after the support entries.
    payloads: Vec<Payload>,
    /// Each server's roles: (entry, file in the spool).
    roles_files: Vec<(String, PathBuf)>,
    /// n8n's data, its database's entry and kind (the last database holding it wins).
    n8n: Option<(N8nData, String, &'static str)>,
    /// Docker volumes holding a SQLite database: (volume, the section that needs it).
    sqlite_volumes: Vec<(String, String)>,
    docker: DockerInfo,
    /// `[[files]]` plus what Docker adds (compose files, bind mounts, volume mount points).
    file_sources: Vec<FilesSource>,
    /// Docker's notes for the manifest (captured with the files' notes).
    docker_notes: Vec<String>,
    /// Saved images: (entry, file in the spool).
    images: Vec<(String, PathBuf)>,
    warnings: Vec<String>,
}

impl Gathered {
    fn new(cfg: &Config) -> Gathered {
        Gathered {
            postgres: Vec::new(),
            sqlite: Vec::new(),
            payloads: Vec::new(),
            roles_files: Vec::new(),
            n8n: None,
            sqlite_volumes: Vec::new(),
            docker: DockerInfo::default(),
            file_sources: cfg.files.clone(),
            docker_notes: Vec::new(),
            images: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Logs a warning and keeps it for the manifest.
    fn warn(&mut self, w: String, log: Log<'_>) {
        log(Level::Warning, &w);
        self.warnings.push(w);
    }
}

/// The support entries (restore binary, roles, images, n8n's exports, requirements, system
/// info): their digests for the manifest and their payloads, streamed first.
struct Support {
    digests: Vec<EntryDigest>,
    payloads: Vec<Payload>,
    /// Their modification time: the bundle's.
    mtime: i64,
    /// The spool: what lies in it is removed once written into the bundle.
    spool: PathBuf,
}

impl Support {
    fn add(&mut self, entry: &str, path: PathBuf) -> Result<()> {
        let (sha256, size) = sha256_file(&path)?;
        self.digests.push(EntryDigest { entry: entry.to_string(), size, sha256: sha256.clone() });
        self.payloads.push(Payload {
            entry: entry.to_string(),
            size,
            sha256,
            mtime: self.mtime,
            gzipped: None,
            spooled: path.starts_with(&self.spool),
            source: path,
        });
        Ok(())
    }
}

/// The bundle's time stamp and file name. Names have one-second resolution, and a bundle can now
/// be written in less than that: a run right after another (a manual create, then the timer's
/// cycle) waits for the next second instead of failing. The lock rules out two runs at once;
/// the writer still never replaces a file of that name.
fn unused_name(out_dir: &Path, name: &str) -> Result<(chrono::DateTime<Utc>, String)> {
    for _ in 0..3 {
        let at = Utc::now();
        let file_name = layout::bundle_file_name(name, at);
        if !out_dir.join(&file_name).exists() {
            return Ok((at, file_name));
        }
        let rest = 1000 - u64::from(at.timestamp_subsec_millis().min(999));
        std::thread::sleep(std::time::Duration::from_millis(rest + 10));
    }
    anyhow::bail!(
        "{}: a bundle of this name and second keeps appearing; is another packer writing here without the lock?",
        out_dir.display()
    )
}

/// Builds one bundle with the restore binary that [`check`] returned.
pub fn create(
    cfg: &Config,
    restore_bin: &Path,
    mut log: impl FnMut(Level, &str),
    progress: &dyn Progress,
) -> Result<Created> {
    let log: Log<'_> = &mut log;
    // The output directory exists: job::open made it (0700) and holds its lock.
    let out_dir = &cfg.bundle.output_dir;
    let (created_at, file_name) = unused_name(out_dir, &cfg.bundle.name)?;
    // Private spool for dumps and copies, beside the bundles (same file system, same privacy);
    // removed on every exit path by TempDir's drop.
    let spool = tempfile::Builder::new()
        .prefix(".packer-spool-")
        .tempdir_in(out_dir)
        .with_context(|| format!("creating a spool directory in {}", out_dir.display()))?;
    let mut g = Gathered::new(cfg);
    let locations = databases(cfg, spool.path(), &mut g, log, progress)?;
    read_compose(cfg, &mut g, log)?;
    warn_uncaptured_projects(&mut g, log);
    read_volumes(cfg, &mut g, log)?;
    save_images(cfg, spool.path(), &mut g, log)?;
    let sqlite_sources: Vec<_> = locations.into_iter().map(|l| l.source).collect();
    let captured = capture_files(&sqlite_sources, out_dir, &mut g, log, progress)?;

    let info = system_info::collect();
    let info_path = spool.path().join("system_info.json");
    fs::write(&info_path, serde_json::to_string_pretty(&info)?).context("writing system_info.json")?;
    let mut support = Support {
        digests: Vec::new(),
        payloads: Vec::new(),
        mtime: created_at.timestamp(),
        spool: spool.path().to_path_buf(),
    };
    support.add(layout::RESTORE_BIN, restore_bin.to_path_buf())?;
    for (entry, path) in g.roles_files.iter().chain(&g.images) {
        support.add(entry, path.clone())?;
    }
    let n8n = match g.n8n.take() {
        Some(found) => Some(n8n_section(found, spool.path(), &captured.records, &mut g, &mut support, log)?),
        None => None,
    };
    if let (Some(url), Some(n)) = (&cfg.services.n8n_url, &n8n) {
        warn_without_api_key(url, n, &mut g, log);
    }
    let mut manifest = Manifest {
        format_version: layout::FORMAT_VERSION,
        created_by: format!("packer {}", env!("CARGO_PKG_VERSION")),
        created_at,
        bundle_name: cfg.bundle.name.clone(),
        source_host: info.short(),
        postgres: g.postgres,
        sqlite: g.sqlite,
        files: captured.records,
        support: Vec::new(),
        services: Services {
            start: cfg.services.start.clone(),
            health: cfg.services.health.clone(),
            n8n_url: cfg.services.n8n_url.clone(),
        },
        requirements: Vec::new(),
        warnings: g.warnings,
        notes: captured.notes,
        n8n,
        docker: (g.docker != DockerInfo::default()).then_some(g.docker),
    };
    manifest.requirements = requirements(cfg, &manifest);
    support.add(layout::REQUIREMENTS, write_requirements(&manifest.requirements, spool.path())?)?;
    support.add(layout::SYSTEM_INFO, info_path)?;
    manifest.support = support.digests;

    // Order: manifest (written by the writer), restore, requirements, system info, databases,
    // then captured files: what a reader needs first comes first.
    let mut ordered = support.payloads;
    ordered.extend(g.payloads);
    ordered.extend(captured.payloads);
    let written = write(cfg, &file_name, &manifest, &ordered, log, progress)?;
    drop(spool);
    Ok(Created {
        written,
        created_at,
        postgres: manifest.postgres.len(),
        sqlite: manifest.sqlite.len(),
        files: manifest.files.len(),
        warnings: manifest.warnings.clone(),
        manifest,
    })
}

/// Every database into the spool: the SQLite copies are taken while the dumps run (a dump is
/// mostly its server's work and leaves a core partly idle, which the copy, its integrity check
/// and its compression use; both compress on the same [`Cores`]). Returns where each SQLite
/// database was found.
fn databases(
    cfg: &Config,
    spool: &Path,
    g: &mut Gathered,
    log: Log<'_>,
    progress: &dyn Progress,
) -> Result<Vec<SqliteLocation>> {
    let locations = sources::docker::sqlite_locations(&cfg.sqlite)?;
    let cores = Cores::new(restorer::sys::cores());
    let copies = std::thread::scope(|s| {
        let copying = s.spawn(|| snapshot_sqlite(cfg, &locations, spool, &cores));
        let dumped = dump_postgres(cfg, spool, &cores, g, log, progress);
        let copies = copying.join().map_err(|_| anyhow::anyhow!("the thread copying the SQLite databases panicked"));
        dumped.and(copies.and_then(|c| c))
    })?;
    copy_sqlite(&locations, copies, g, log)?;
    Ok(locations)
}

/// Dumps every `[[postgres]]` database into the spool, several at once (up to one per core: a
/// dump is mostly its server backend's work, and its output is compressed on the same cores
/// meanwhile), and each server's roles once. Logs and the manifest keep the configured order.
fn dump_postgres(
    cfg: &Config,
    spool: &Path,
    gz_cores: &Cores,
    g: &mut Gathered,
    log: Log<'_>,
    progress: &dyn Progress,
) -> Result<()> {
    // The servers whose roles are dumped: (server, roles entry, with passwords).
    let mut servers: Vec<(String, String, bool)> = Vec::new();
    let cores = restorer::sys::cores();
    for batch in cfg.postgres.chunks(cores) {
        // The cores shared among the dumps running at once: gzip blocks take whichever core is
        // free (one dump waiting on its server leaves its share to the others); zstd's workers
        // are fixed per frame, so they are split.
        let compress = sources::postgres::Compress {
            codec: cfg.bundle.compression,
            level: cfg.bundle.compression_level,
            threads: (cores / batch.len()).max(1),
            cores: gz_cores.clone(),
        };
        let names: Vec<&str> = batch.iter().map(|s| s.name.as_str()).collect();
        for name in &names {
            log(Level::Info, &format!("dumping PostgreSQL database {name} ..."));
        }
        progress.begin(&format!("dumping {}", names.join(", ")), None);
        let dumped: Vec<_> = std::thread::scope(|s| {
            let running: Vec<_> = batch
                .iter()
                .map(|src| {
                    let compress = compress.clone();
                    s.spawn(move || {
                        let t = std::time::Instant::now();
                        (sources::postgres::dump(src, spool, compress), t.elapsed())
                    })
                })
                .collect();
            running.into_iter().map(|h| h.join()).collect()
        });
        progress.end();
        for (src, dumped) in batch.iter().zip(dumped) {
            let Ok((dumped, took)) = dumped else {
                anyhow::bail!("[[postgres]] {}: the thread dumping it panicked", src.name);
            };
            let (mut db, payload, n8n) = dumped?;
            log(
                Level::Debug,
                &format!(
                    "  pg_dump of {} took {:.1} s, {} bytes compressed into {} in the spool",
                    src.name,
                    took.as_secs_f64(),
                    payload.size,
                    payload.gzipped.as_ref().map_or(payload.size, |m| m.iter().sum())
                ),
            );
            roles(src, spool, &mut db, &mut servers, g, log)?;
            if let Some(d) = n8n {
                g.n8n = Some((d, db.entry.clone(), "postgres"));
            }
            log(
                Level::Info,
                &format!(
                    "  {} tables, {} rows, {} bytes",
                    db.tables.len(),
                    db.tables.iter().map(|t| t.rows).sum::<u64>(),
                    db.size
                ),
            );
            g.postgres.push(db);
            g.payloads.push(payload);
        }
    }
    Ok(())
}

/// Points `db` at its server's roles (the databases of one server share them), dumped with the
/// server's first database. A server whose roles cannot be read is a warning, not a failure.
fn roles(
    src: &PostgresSource,
    spool: &Path,
    db: &mut PostgresDb,
    servers: &mut Vec<(String, String, bool)>,
    g: &mut Gathered,
    log: Log<'_>,
) -> Result<()> {
    let server = match (&db.container, &src.url) {
        (Some(c), _) => format!("container {}", c.name),
        (None, Some(url)) => restorer::pg::PgTarget::parse(url)?.host_port(),
        (None, None) => unreachable!("config: a [[postgres]] without url is in a container"),
    };
    if let Some((_, entry, with_pw)) = servers.iter().find(|(s, _, _)| *s == server) {
        db.roles_entry = Some(entry.clone());
        db.role_passwords = *with_pw;
        return Ok(());
    }
    match sources::postgres::dump_roles(src, spool, db.server_version_num / 10000) {
        Ok((path, with_pw)) => {
            let entry = layout::roles_entry(&src.name);
            if !with_pw {
                g.warn(format!("[[postgres]] {}: roles were saved without passwords (the user may not read them); the restore will list the passwords to set", src.name), log);
            }
            g.roles_files.push((entry.clone(), path));
            servers.push((server, entry.clone(), with_pw));
            db.roles_entry = Some(entry);
            db.role_passwords = with_pw;
        }
        Err(e) => g.warn(
            format!("{}; the restore will recreate objects without their owners' roles", crate::error_text::chain(&e)),
            log,
        ),
    }
    Ok(())
}

/// One `[[sqlite]]` database's copy in the spool: its inventory, payload and n8n's tables.
type SqliteCopy = (SqliteDb, Payload, Option<N8nData>);

/// Copies every `[[sqlite]]` database into the spool, compressed (see `sources::sqlite`), one
/// after the other; the first failure ends it.
fn snapshot_sqlite(cfg: &Config, locations: &[SqliteLocation], spool: &Path, cores: &Cores) -> Result<Vec<SqliteCopy>> {
    locations.iter().map(|loc| sources::sqlite::snapshot(&loc.source, spool, cfg.bundle.gzip_level(), cores)).collect()
}

/// Records every `[[sqlite]]` copy. A database inside a named volume brings the volume: the
/// restore must create it (with compose's labels) before the copy goes back, and its other
/// files (n8n's `config` with the key) belong with the database.
fn copy_sqlite(locations: &[SqliteLocation], copies: Vec<SqliteCopy>, g: &mut Gathered, log: Log<'_>) -> Result<()> {
    for (loc, (mut db, payload, n8n)) in locations.iter().zip(copies) {
        let src = &loc.source;
        log(Level::Info, &format!("copied SQLite database {} ({})", src.name, src.path.display()));
        if let Some(v) = &loc.volume {
            db.volume = Some(v.clone());
            g.sqlite_volumes.push((v.clone(), format!("[[sqlite]] {}", src.name)));
            g.docker_notes.push(format!(
                "[[sqlite]] {} lies in Docker volume {v}: the volume is captured with it (the restore creates it and puts the copy {} back into it)",
                src.name, db.entry
            ));
        }
        if let Some(d) = n8n {
            g.n8n = Some((d, db.entry.clone(), "sqlite"));
        }
        log(
            Level::Info,
            &format!("  {} tables, {} rows", db.tables.len(), db.tables.iter().map(|t| t.rows).sum::<u64>()),
        );
        g.sqlite.push(db);
        g.payloads.push(payload);
    }
    Ok(())
}

/// Docker compose projects: their files join the configuration files, their bind-mounted
/// directories the data files (owners and modes kept as for any file).
fn read_compose(cfg: &Config, g: &mut Gathered, log: Log<'_>) -> Result<()> {
    for (i, cs) in cfg.compose.iter().enumerate() {
        let section = format!("[[compose]] #{}", i + 1);
        let c = sources::docker::project(&cs.compose(), &section)?;
        log(Level::Info, &format!("reading compose project {} ({}) ...", c.project, c.directory.display()));
        let containers = sources::docker::project_containers(&c, &section)?;
        let project = sources::docker::describe(&c, &containers, &section)?;
        let (binds, host_binds) = sources::docker::bind_sources(&c, &containers);
        let (bind_dirs, bind_files): (Vec<PathBuf>, Vec<PathBuf>) =
            binds.into_iter().filter(|b| b.exists()).partition(|b| b.is_dir());
        let mut paths = sources::docker::project_files(&c);
        for b in bind_files {
            if !paths.contains(&b) {
                paths.push(b);
            }
        }
        g.file_sources.push(FilesSource { kind: layout::FileKind::Config, paths });
        if !bind_dirs.is_empty() {
            g.file_sources.push(FilesSource { kind: layout::FileKind::Data, paths: bind_dirs });
        }
        for b in host_binds {
            if !cfg.files.iter().flat_map(|f| &f.paths).any(|p| b.starts_with(p)) {
                g.docker_notes.push(format!(
                    "compose project {}: {} is bind-mounted from outside the project directory and not packed (list it in [[files]] to pack it)",
                    c.project,
                    b.display()
                ));
            }
        }
        log(Level::Info, &format!("  {} services", project.services.len()));
        g.docker.compose.push(project);
    }
    Ok(())
}

/// A database container of a compose project no `[[compose]]` captures: the restore could not
/// start it.
fn warn_uncaptured_projects(g: &mut Gathered, log: Log<'_>) {
    let uncaptured: Vec<String> = g
        .postgres
        .iter()
        .filter_map(|db| {
            let p = db.container.as_ref()?.project.as_ref()?;
            (!g.docker.compose.iter().any(|c| &c.project == p)).then(|| format!(
                "[[postgres]] {}: its container belongs to compose project {p}, which no [[compose]] section captures: the restore cannot start it; add [[compose]] with the project's file",
                db.name
            ))
        })
        .collect();
    for w in uncaptured {
        g.warn(w, log);
    }
}

/// Named volumes (`[[volumes]]` and those holding a SQLite database): their mount points join
/// the data files, except those a database's dump already covers.
fn read_volumes(cfg: &Config, g: &mut Gathered, log: Log<'_>) -> Result<()> {
    if cfg.volumes.is_empty() && g.sqlite_volumes.is_empty() {
        return Ok(());
    }
    let databases: std::collections::BTreeMap<String, String> =
        g.postgres.iter().filter_map(|d| Some((d.container.as_ref()?.name.clone(), d.name.clone()))).collect();
    log(Level::Info, "reading Docker volumes ...");
    let mut paths = Vec::new();
    for v in sources::docker::volumes(cfg, &databases, &g.sqlite_volumes)? {
        match v.skip {
            Some(note) => g.docker_notes.push(note),
            None => paths.push(v.volume.mountpoint.clone()),
        }
        g.docker.volumes.push(v.volume);
    }
    if !paths.is_empty() {
        g.file_sources.push(FilesSource { kind: layout::FileKind::Data, paths });
    }
    log(Level::Info, &format!("  {} volumes", g.docker.volumes.len()));
    Ok(())
}

/// With `[docker] include_images`: every compose service's image saved into the spool, once.
fn save_images(cfg: &Config, spool: &Path, g: &mut Gathered, log: Log<'_>) -> Result<()> {
    if !cfg.docker.include_images {
        return Ok(());
    }
    let dir = spool.join("images");
    fs::create_dir_all(&dir).context("creating the spool's images directory")?;
    let mut ids: Vec<String> =
        g.docker.compose.iter().flat_map(|c| &c.services).filter_map(|s| s.image_id.clone()).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        log(Level::Info, &format!("saving image {id} ..."));
        let (saved, path) = sources::docker::save_image(&id, &dir).context("[docker] include_images")?;
        g.images.push((saved.entry.clone(), path));
        g.docker.images.push(saved);
    }
    Ok(())
}

/// Captures the files (the databases and the bundles themselves left out), with Docker's notes.
fn capture_files(
    sqlite_sources: &[SqliteSource],
    out_dir: &Path,
    g: &mut Gathered,
    log: Log<'_>,
    progress: &dyn Progress,
) -> Result<Captured> {
    log(Level::Info, "reading files ...");
    let excluded = sources::files::Exclusions::new(sqlite_sources, out_dir);
    progress.begin("reading files", None);
    let captured = sources::files::capture(&g.file_sources, &excluded, |p| progress.item(&p.to_string_lossy()));
    progress.end();
    let mut captured = captured?;
    captured.notes.append(&mut g.docker_notes);
    log(Level::Info, &format!("  {} paths, {} files", captured.records.len(), captured.payloads.len()));
    // Each warning is logged once, when it arises (the sources' own are logged here).
    for w in &captured.warnings {
        log(Level::Warning, w);
    }
    g.warnings.extend(captured.warnings.iter().cloned());
    for n in &captured.notes {
        log(Level::Info, &format!("note: {n}"));
    }
    Ok(captured)
}

/// The n8n section, and its workflows (summaries and each in import shape) and credentials as
/// support entries.
fn n8n_section(
    (data, entry, kind): (N8nData, String, &'static str),
    spool: &Path,
    files: &[FileRecord],
    g: &mut Gathered,
    support: &mut Support,
    log: Log<'_>,
) -> Result<N8nInfo> {
    let info = n8n_metadata(&data, &entry, kind, files, &mut g.warnings, log)?;
    let wf_dir = spool.join("workflows");
    fs::create_dir_all(&wf_dir)?;
    let list: Vec<_> = data.workflows.iter().map(|w| &w.0).collect();
    let p = spool.join("workflows.json");
    fs::write(&p, serde_json::to_string_pretty(&list)?)?;
    support.add(layout::N8N_WORKFLOWS, p)?;
    for (summary, doc) in &data.workflows {
        let p = wf_dir.join(summary.entry.rsplit('/').next().unwrap_or("w.json"));
        fs::write(&p, serde_json::to_string_pretty(doc)?)?;
        support.add(&summary.entry, p)?;
    }
    let p = spool.join("credentials.json");
    fs::write(&p, serde_json::to_string_pretty(&data.credentials)?)?;
    support.add(layout::N8N_CREDENTIALS, p)?;
    Ok(info)
}

/// The restore asks n8n (at `[services] n8n_url`) for its workflows with a key of the restored
/// database: say now, while one can still be made, that there is none.
fn warn_without_api_key(url: &str, n: &N8nInfo, g: &mut Gathered, log: Log<'_>) {
    let tables = g
        .postgres
        .iter()
        .filter(|d| d.entry == n.database_entry)
        .flat_map(|d| &d.tables)
        .chain(g.sqlite.iter().filter(|d| d.entry == n.database_entry).flat_map(|d| &d.tables));
    let keys: u64 = tables.filter(|t| t.name == "user_api_keys").map(|t| t.rows).sum();
    if keys == 0 {
        g.warn(format!("[services] n8n_url {url}: n8n's database holds no API key, so the restore cannot ask n8n for its workflows (create one under Settings > n8n API, or set N8N_API_KEY when restoring)"), log);
    }
}

/// `requirements.txt` in the spool: one Debian package a line.
fn write_requirements(packages: &[String], spool: &Path) -> Result<PathBuf> {
    let path = spool.join("requirements.txt");
    let mut text = String::from("# System packages the restored host needs (Debian names), one per line.\n");
    for p in packages {
        text.push_str(p);
        text.push('\n');
    }
    fs::write(&path, text).context("writing requirements.txt")?;
    Ok(path)
}

/// Writes the bundle (sealed when `[bundle] recipients` are set), read back before it is
/// published.
fn write(
    cfg: &Config,
    file_name: &str,
    manifest: &Manifest,
    ordered: &[Payload],
    log: Log<'_>,
    progress: &dyn Progress,
) -> Result<Written> {
    let out_dir = &cfg.bundle.output_dir;
    log(
        Level::Info,
        &format!("writing {} (read back and checked before it is published) ...", out_dir.join(file_name).display()),
    );
    let recipients = cfg.bundle.parsed_recipients()?;
    if !recipients.is_empty() {
        log(Level::Info, &format!("  sealed to {} recipient(s) with age", recipients.len()));
    }
    let t = std::time::Instant::now();
    let written = writer::write_bundle_to(
        out_dir,
        file_name,
        &manifest.to_json(),
        ordered,
        cfg.bundle.gzip_level(),
        &recipients,
        progress,
    )?;
    log(
        Level::Debug,
        &format!(
            "  {} entries, {} bytes packed into {} bytes (gzip level {}) in {:.1} s, read back included",
            ordered.len() + 2,
            written.payload_bytes,
            written.size,
            cfg.bundle.gzip_level(),
            t.elapsed().as_secs_f64()
        ),
    );
    Ok(written)
}
