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

use crate::config::Config;
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
    files: &[restorer::manifest::FileRecord],
    warnings: &mut Vec<String>,
    log: &mut impl FnMut(Level, &str),
) -> Result<restorer::n8n::N8nInfo> {
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
    Ok(restorer::n8n::N8nInfo {
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

/// Builds one bundle with the restore binary that [`check`] returned.
#[expect(clippy::too_many_lines, reason = "issue 13: create is to be split where a name would explain a part")]
pub fn create(
    cfg: &Config,
    restore_bin: &Path,
    mut log: impl FnMut(Level, &str),
    progress: &dyn Progress,
) -> Result<Created> {
    // The output directory exists: job::open made it (0700) and holds its lock.
    let out_dir = &cfg.bundle.output_dir;
    let created_at = Utc::now();
    let file_name = layout::bundle_file_name(&cfg.bundle.name, created_at);
    if out_dir.join(&file_name).exists() {
        anyhow::bail!("{} already exists (two runs within one second?); try again", out_dir.join(&file_name).display());
    }
    // Private spool for dumps and copies, beside the bundles (same file system, same privacy);
    // removed on every exit path by TempDir's drop.
    let spool = tempfile::Builder::new()
        .prefix(".packer-spool-")
        .tempdir_in(out_dir)
        .with_context(|| format!("creating a spool directory in {}", out_dir.display()))?;
    let mut payloads: Vec<Payload> = Vec::new();
    let mut warnings = Vec::new();

    let mut n8n_data = None;
    let mut roles_of_server: Vec<(String, String, bool)> = Vec::new();
    let mut roles_files: Vec<(String, PathBuf)> = Vec::new();
    let mut postgres = Vec::new();
    for src in &cfg.postgres {
        log(Level::Info, &format!("dumping PostgreSQL database {} ...", src.name));
        progress.begin(&format!("dumping {}", src.name), None);
        let t = std::time::Instant::now();
        let dumped = sources::postgres::dump(src, spool.path());
        progress.end();
        let (mut db, payload, n8n) = dumped?;
        log(
            Level::Debug,
            &format!(
                "  pg_dump of {} took {:.1} s, {} bytes spooled",
                src.name,
                t.elapsed().as_secs_f64(),
                payload.size
            ),
        );
        // Roles once per server (the databases of one server share them).
        let server = match (&db.container, &src.url) {
            (Some(c), _) => format!("container {}", c.name),
            (None, Some(url)) => restorer::pg::PgTarget::parse(url)?.host_port(),
            (None, None) => unreachable!("config: a [[postgres]] without url is in a container"),
        };
        match roles_of_server.iter().find(|(s, _, _)| *s == server) {
            Some((_, entry, with_pw)) => {
                db.roles_entry = Some(entry.clone());
                db.role_passwords = *with_pw;
            }
            None => match sources::postgres::dump_roles(src, spool.path(), db.server_version_num / 10000) {
                Ok((path, with_pw)) => {
                    let entry = layout::roles_entry(&src.name);
                    if !with_pw {
                        let w = format!("[[postgres]] {}: roles were saved without passwords (the user may not read them); the restore will list the passwords to set", src.name);
                        log(Level::Warning, &w.to_string());
                        warnings.push(w);
                    }
                    roles_files.push((entry.clone(), path));
                    roles_of_server.push((server, entry.clone(), with_pw));
                    db.roles_entry = Some(entry);
                    db.role_passwords = with_pw;
                }
                Err(e) => {
                    let w = format!(
                        "{}; the restore will recreate objects without their owners' roles",
                        crate::error_text::chain(&e)
                    );
                    log(Level::Warning, &w.to_string());
                    warnings.push(w);
                }
            },
        }
        if let Some(d) = n8n {
            n8n_data = Some((d, db.entry.clone(), "postgres"));
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
        postgres.push(db);
        payloads.push(payload);
    }
    let mut sqlite = Vec::new();
    let mut docker_notes = Vec::new();
    // A database inside a named volume brings the volume: the restore must create it (with
    // compose's labels) before the copy goes back, and its other files (n8n's `config` with
    // the key) belong with the database.
    let mut sqlite_volumes: Vec<(String, String)> = Vec::new();
    let locations = sources::docker::sqlite_locations(&cfg.sqlite)?;
    for loc in &locations {
        let src = &loc.source;
        log(Level::Info, &format!("copying SQLite database {} ({}) ...", src.name, src.path.display()));
        let (mut db, payload, n8n) = sources::sqlite::snapshot(src, spool.path())?;
        if let Some(v) = &loc.volume {
            db.volume = Some(v.clone());
            sqlite_volumes.push((v.clone(), format!("[[sqlite]] {}", src.name)));
            docker_notes.push(format!(
                "[[sqlite]] {} lies in Docker volume {v}: the volume is captured with it (the restore creates it and puts the copy {} back into it)",
                src.name, db.entry
            ));
        }
        if let Some(d) = n8n {
            n8n_data = Some((d, db.entry.clone(), "sqlite"));
        }
        log(
            Level::Info,
            &format!("  {} tables, {} rows", db.tables.len(), db.tables.iter().map(|t| t.rows).sum::<u64>()),
        );
        sqlite.push(db);
        payloads.push(payload);
    }
    // Docker: compose projects (their files join the configuration files), named volumes (their
    // mount points join the data files, owners and modes kept as for any file).
    let mut file_sources = cfg.files.clone();
    let mut docker = restorer::docker::DockerInfo::default();
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
        file_sources.push(crate::config::FilesSource { kind: layout::FileKind::Config, paths });
        if !bind_dirs.is_empty() {
            file_sources.push(crate::config::FilesSource { kind: layout::FileKind::Data, paths: bind_dirs });
        }
        for b in host_binds {
            if !cfg.files.iter().flat_map(|f| &f.paths).any(|p| b.starts_with(p)) {
                docker_notes.push(format!(
                    "compose project {}: {} is bind-mounted from outside the project directory and not packed (list it in [[files]] to pack it)",
                    c.project,
                    b.display()
                ));
            }
        }
        log(Level::Info, &format!("  {} services", project.services.len()));
        docker.compose.push(project);
    }
    for db in &postgres {
        let Some(ct) = &db.container else { continue };
        if let Some(p) = &ct.project {
            if !docker.compose.iter().any(|c| &c.project == p) {
                let w = format!(
                    "[[postgres]] {}: its container belongs to compose project {p}, which no [[compose]] section captures: the restore cannot start it; add [[compose]] with the project's file",
                    db.name
                );
                log(Level::Warning, &w.to_string());
                warnings.push(w);
            }
        }
    }
    let databases: std::collections::BTreeMap<String, String> =
        postgres.iter().filter_map(|d| Some((d.container.as_ref()?.name.clone(), d.name.clone()))).collect();
    if !cfg.volumes.is_empty() || !sqlite_volumes.is_empty() {
        log(Level::Info, "reading Docker volumes ...");
        let mut paths = Vec::new();
        for v in sources::docker::volumes(cfg, &databases, &sqlite_volumes)? {
            match v.skip {
                Some(note) => docker_notes.push(note),
                None => paths.push(v.volume.mountpoint.clone()),
            }
            docker.volumes.push(v.volume);
        }
        if !paths.is_empty() {
            file_sources.push(crate::config::FilesSource { kind: layout::FileKind::Data, paths });
        }
        log(Level::Info, &format!("  {} volumes", docker.volumes.len()));
    }
    let mut images = Vec::new();
    if cfg.docker.include_images {
        let dir = spool.path().join("images");
        fs::create_dir_all(&dir).context("creating the spool's images directory")?;
        let mut ids: Vec<&String> =
            docker.compose.iter().flat_map(|c| &c.services).filter_map(|s| s.image_id.as_ref()).collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            log(Level::Info, &format!("saving image {id} ..."));
            let (saved, path) = sources::docker::save_image(id, &dir).context("[docker] include_images")?;
            images.push((saved.entry.clone(), path));
            docker.images.push(saved);
        }
    }

    log(Level::Info, "reading files ...");
    let sqlite_sources: Vec<_> = locations.into_iter().map(|l| l.source).collect();
    let excluded = sources::files::Exclusions::new(&sqlite_sources, out_dir);
    progress.begin("reading files", None);
    let captured = sources::files::capture(&file_sources, &excluded, |p| progress.item(&p.to_string_lossy()));
    progress.end();
    let mut captured = captured?;
    captured.notes.extend(docker_notes);
    log(Level::Info, &format!("  {} paths, {} files", captured.records.len(), captured.payloads.len()));
    // Each warning is logged once, when it arises (the sources' own are logged here).
    for w in &captured.warnings {
        log(Level::Warning, &w.to_string());
    }
    warnings.extend(captured.warnings.iter().cloned());
    for n in &captured.notes {
        log(Level::Info, &format!("note: {n}"));
    }

    let info = system_info::collect();
    let info_path = spool.path().join("system_info.json");
    fs::write(&info_path, serde_json::to_string_pretty(&info)?).context("writing system_info.json")?;
    let mut support = Vec::new();
    let mut support_payloads = Vec::new();
    let mut add_support = |entry: &str, path: PathBuf, mtime: i64| -> Result<()> {
        let (sha256, size) = sha256_file(&path)?;
        support.push(EntryDigest { entry: entry.to_string(), size, sha256: sha256.clone() });
        support_payloads.push(Payload { entry: entry.to_string(), source: path, size, sha256, mtime });
        Ok(())
    };
    let now = created_at.timestamp();
    add_support(layout::RESTORE_BIN, restore_bin.to_path_buf(), now)?;
    for (entry, path) in &roles_files {
        add_support(entry, path.clone(), now)?;
    }
    for (entry, path) in &images {
        add_support(entry, path.clone(), now)?;
    }

    let n8n = match n8n_data {
        Some((data, entry, kind)) => {
            let info = n8n_metadata(&data, &entry, kind, &captured.records, &mut warnings, &mut log)?;
            // Workflows (summaries and each in import shape) and credentials as entries.
            let wf_dir = spool.path().join("workflows");
            fs::create_dir_all(&wf_dir)?;
            let list: Vec<_> = data.workflows.iter().map(|w| &w.0).collect();
            let p = spool.path().join("workflows.json");
            fs::write(&p, serde_json::to_string_pretty(&list)?)?;
            add_support(layout::N8N_WORKFLOWS, p, now)?;
            for (summary, doc) in &data.workflows {
                let p = wf_dir.join(summary.entry.rsplit('/').next().unwrap_or("w.json"));
                fs::write(&p, serde_json::to_string_pretty(doc)?)?;
                add_support(&summary.entry, p, now)?;
            }
            let p = spool.path().join("credentials.json");
            fs::write(&p, serde_json::to_string_pretty(&data.credentials)?)?;
            add_support(layout::N8N_CREDENTIALS, p, now)?;
            Some(info)
        }
        None => None,
    };

    if let (Some(url), Some(n)) = (&cfg.services.n8n_url, &n8n) {
        // The restore asks n8n for its workflows with a key of the restored database: say now,
        // while one can still be made, that there is none.
        let tables = postgres
            .iter()
            .filter(|d| d.entry == n.database_entry)
            .flat_map(|d| &d.tables)
            .chain(sqlite.iter().filter(|d| d.entry == n.database_entry).flat_map(|d| &d.tables));
        let keys: u64 = tables.filter(|t| t.name == "user_api_keys").map(|t| t.rows).sum();
        if keys == 0 {
            let w = format!("[services] n8n_url {url}: n8n's database holds no API key, so the restore cannot ask n8n for its workflows (create one under Settings > n8n API, or set N8N_API_KEY when restoring)");
            log(Level::Warning, &w.to_string());
            warnings.push(w);
        }
    }

    let mut manifest = Manifest {
        format_version: layout::FORMAT_VERSION,
        created_by: format!("packer {}", env!("CARGO_PKG_VERSION")),
        created_at,
        bundle_name: cfg.bundle.name.clone(),
        source_host: info.short(),
        postgres,
        sqlite,
        files: captured.records,
        support: Vec::new(),
        services: Services {
            start: cfg.services.start.clone(),
            health: cfg.services.health.clone(),
            n8n_url: cfg.services.n8n_url.clone(),
        },
        requirements: Vec::new(),
        warnings,
        notes: captured.notes,
        n8n,
        docker: (docker != restorer::docker::DockerInfo::default()).then_some(docker),
    };
    manifest.requirements = requirements(cfg, &manifest);
    let req_path = spool.path().join("requirements.txt");
    let mut req_text = String::from("# System packages the restored host needs (Debian names), one per line.\n");
    for p in &manifest.requirements {
        req_text.push_str(p);
        req_text.push('\n');
    }
    fs::write(&req_path, req_text).context("writing requirements.txt")?;
    add_support(layout::REQUIREMENTS, req_path, now)?;
    add_support(layout::SYSTEM_INFO, info_path, now)?;
    manifest.support = support;

    // Order: manifest (written by the writer), restore, requirements, system info, databases,
    // then captured files: what a reader needs first comes first.
    let mut ordered = support_payloads;
    ordered.extend(payloads);
    ordered.extend(captured.payloads);

    log(
        Level::Info,
        &format!("writing {} (read back and checked before it is published) ...", out_dir.join(&file_name).display()),
    );
    let recipients = cfg.bundle.parsed_recipients()?;
    if !recipients.is_empty() {
        log(Level::Info, &format!("  sealed to {} recipient(s) with age", recipients.len()));
    }
    let t = std::time::Instant::now();
    let written = writer::write_bundle_to(
        out_dir,
        &file_name,
        &manifest.to_json(),
        &ordered,
        cfg.bundle.compression_level,
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
            cfg.bundle.compression_level,
            t.elapsed().as_secs_f64()
        ),
    );
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
