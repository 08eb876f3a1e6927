//! Docker deployments, read through the Docker CLI (restorer::container): compose projects
//! (their files, services and the images they run), named volumes (captured as files below
//! their mount points) and `docker save` of the images. Values of a container's environment
//! and of `.env` files are secrets: they are read, never printed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use restorer::container::{self, Compose, ContainerFacts};
use restorer::docker::{ComposeProject, ComposeService, SavedImage, Volume};

use crate::config::ComposeRef;

/// Compose's default file names in a project directory, in the order compose prefers them.
const DEFAULT_FILES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

/// The override files compose reads beside the default file.
const OVERRIDE_FILES: [&str; 4] =
    ["compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml", "docker-compose.override.yml"];

/// A compose project on this host, resolved from the configuration: the program to run, its
/// name, directory and files (the main file, then the override beside it, as compose reads
/// them without `-f`).
pub fn project(r: &ComposeRef, section: &str) -> Result<Compose> {
    let (directory, main) = match (&r.file, &r.dir) {
        (Some(f), _) => (f.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/")), f.clone()),
        (None, Some(d)) => {
            let f = DEFAULT_FILES.iter().map(|n| d.join(n)).find(|p| p.is_file()).with_context(|| {
                format!("{section}: no compose file in {} (looked for {})", d.display(), DEFAULT_FILES.join(", "))
            })?;
            (d.clone(), f)
        }
        (None, None) => bail!("{section}: no compose_file or compose_dir"),
    };
    let overrides: Vec<PathBuf> =
        OVERRIDE_FILES.iter().map(|n| directory.join(n)).filter(|p| p.is_file() && *p != main).collect();
    let mut files = vec![main];
    files.extend(overrides);
    let project = match &r.project {
        Some(p) => p.clone(),
        None => {
            env_project_name(&directory.join(".env")).unwrap_or_else(|| container::default_project_name(&directory))
        }
    };
    let program = container::compose_program().with_context(|| {
        format!("{section}: neither `docker compose` nor `docker-compose` runs on this host (install docker.io and docker-compose)")
    })?;
    Ok(Compose { program, project, directory, files })
}

/// `COMPOSE_PROJECT_NAME` from a project's `.env`, when it sets one.
fn env_project_name(env: &Path) -> Option<String> {
    let text = fs::read_to_string(env).ok()?;
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("COMPOSE_PROJECT_NAME=")?.trim().trim_matches(|c| c == '"' || c == '\'');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The files of a project to capture as configuration: its compose files and the `.env`
/// beside them.
pub fn project_files(c: &Compose) -> Vec<PathBuf> {
    let mut out = c.files.clone();
    let env = c.directory.join(".env");
    if env.is_file() {
        out.push(env);
    }
    out
}

/// What a project's containers bind-mount from the host, split by place: the paths inside the
/// project directory are the project's own files (the `./init-data.sh` n8n's example mounts into
/// the postgres image) and are packed with it, or the restore would start the containers with an
/// empty directory Docker makes in their place; the paths outside it belong to the host
/// (`/etc/letsencrypt`, the Docker socket) and are packed only when a `[[files]]` section lists
/// them. Each list sorted, without duplicates.
pub fn bind_sources(c: &Compose, containers: &[ContainerFacts]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    // Compose writes a relative source as the project directory joined with it; the directory
    // may be spelled through a link, the source resolved.
    let dirs: Vec<PathBuf> = std::iter::once(c.directory.clone()).chain(fs::canonicalize(&c.directory).ok()).collect();
    let all: BTreeSet<&PathBuf> = containers.iter().flat_map(|f| &f.binds).collect();
    let (inside, outside): (Vec<&PathBuf>, Vec<&PathBuf>) =
        all.into_iter().partition(|b| dirs.iter().any(|d| b.starts_with(d)));
    (inside.into_iter().cloned().collect(), outside.into_iter().cloned().collect())
}

/// The facts of every container of a project (running or stopped).
pub fn project_containers(c: &Compose, section: &str) -> Result<Vec<ContainerFacts>> {
    let ids = c.containers().with_context(|| format!("{section}: listing the containers of project {}", c.project))?;
    ids.iter().map(|id| container::inspect(id).with_context(|| format!("{section}: docker inspect {id}"))).collect()
}

/// The project as the manifest records it: each service with its configured image (from
/// `compose config`) and, when a container of it exists, the image id it ran and that image's
/// repository digests.
pub fn describe(c: &Compose, containers: &[ContainerFacts], section: &str) -> Result<ComposeProject> {
    let config = restorer::sys::run(&mut c.command(&["config"]))
        .with_context(|| format!("{section}: reading project {} with `compose config`", c.project))?;
    let mut services: Vec<ComposeService> = services_from_config(&config)
        .into_iter()
        .map(|(name, image)| ComposeService {
            name,
            image: image.unwrap_or_default(),
            image_id: None,
            repo_digests: vec![],
            ports: vec![],
        })
        .collect();
    // A running container says more about what runs now than a stopped one.
    let mut containers: Vec<&ContainerFacts> = containers.iter().collect();
    containers.sort_by_key(|f| !f.running);
    for f in containers {
        let Some((_, service)) = f.compose_service() else { continue };
        let Some(s) = services.iter_mut().find(|s| s.name == service) else { continue };
        if s.image_id.is_some() {
            continue;
        }
        if s.image.is_empty() {
            s.image = f.image.clone();
        }
        s.image_id = Some(f.image_id.clone()).filter(|i| !i.is_empty());
        s.repo_digests = container::repo_digests(&f.image_id);
        s.ports = f.published_ports.clone();
    }
    Ok(ComposeProject { project: c.project.clone(), directory: c.directory.clone(), files: c.files.clone(), services })
}

/// Services and their `image:` from the normalised YAML `compose config` prints (two spaces per
/// level, both compose v1 and v2): a service is a key two spaces in under `services:`, its
/// image a key four spaces in. A service that only builds has no image.
pub fn services_from_config(yaml: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut in_services = false;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_services = line.trim_end() == "services:";
            continue;
        }
        if !in_services {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let l = line.trim();
        if indent == 2 {
            if let Some(name) = l.strip_suffix(':') {
                out.push((name.trim_matches(|c| c == '"' || c == '\'').to_string(), None));
            }
        } else if indent == 4 {
            if let (Some(v), Some(last)) = (l.strip_prefix("image:"), out.last_mut()) {
                last.1 = Some(v.trim().trim_matches(|c| c == '"' || c == '\'').to_string());
            }
        }
    }
    out
}

/// A named volume to capture: where it lives and whether its files are packed.
#[derive(Debug, Clone)]
pub struct FoundVolume {
    /// What the manifest records.
    pub volume: Volume,
    /// Why its files are not packed, when they are not (a database server's data directory,
    /// packed as a dump instead).
    pub skip: Option<String>,
}

/// `docker volume inspect` of one volume: its mount point and the compose project that owns it.
pub fn inspect_volume(name: &str, section: &str) -> Result<Volume> {
    let out = Command::new("docker")
        .args(["volume", "inspect", "--format", "{{json .}}", "--"])
        .arg(name)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{section}: running docker volume inspect"))?;
    if !out.status.success() {
        bail!("{section}: Docker volume {name:?} does not exist (docker volume ls lists them)");
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{section}: docker volume inspect {name}: unexpected output"))?;
    let mountpoint = v["Mountpoint"].as_str().unwrap_or_default();
    if mountpoint.is_empty() {
        bail!("{section}: Docker volume {name:?} has no mount point on this host (a volume driver other than local?)");
    }
    Ok(Volume {
        name: name.to_string(),
        mountpoint: PathBuf::from(mountpoint),
        project: v["Labels"]["com.docker.compose.project"].as_str().map(str::to_string),
    })
}

/// A `[[sqlite]]` database as packing reads it: the configured source with `path` made the
/// file's absolute path on this host, and the named volume it lies in, when it does.
#[derive(Debug, Clone)]
pub struct SqliteLocation {
    /// The source, `path` absolute.
    pub source: crate::config::SqliteSource,
    /// The volume holding the file (a `volume =` key, or a host path below a volume's mount
    /// point): the volume is captured with it, so the restore creates it and puts the copy there.
    pub volume: Option<String>,
}

/// Where each `[[sqlite]]` database is. `volume = "NAME"` is found through `docker volume
/// inspect` (its mount point joined with `path`), wherever Docker's data root is; with a compose
/// project, `volume` is the compose file's key, found by compose's labels on the volume. A host
/// path below a volume's mount point (`/var/lib/docker/volumes/NAME/_data/database.sqlite`) is
/// recognised as lying in that volume. A file that is not there is an error naming the section.
pub fn sqlite_locations(sources: &[crate::config::SqliteSource]) -> Result<Vec<SqliteLocation>> {
    sources
        .iter()
        .map(|s| {
            let section = format!("[[sqlite]] {}", s.name);
            let Some(key) = &s.volume else {
                return Ok(SqliteLocation { source: s.clone(), volume: volume_holding(&s.path) });
            };
            let name = if s.compose().is_set() {
                compose_volume(&project(&s.compose(), &section)?, key, &section)?
            } else {
                key.clone()
            };
            let v = inspect_volume(&name, &section)?;
            let mut source = s.clone();
            source.path = v.mountpoint.join(&s.path);
            if !source.path.is_file() {
                bail!(
                    "{section}: volume {name} has no file {} (looked at {}); path is relative inside the volume",
                    s.path.display(),
                    source.path.display()
                );
            }
            Ok(SqliteLocation { source, volume: Some(name) })
        })
        .collect()
}

/// The Docker name of volume `key` of a compose project: the one compose labelled with the
/// project and that key (whatever `name:` the compose file gave it), else `<project>_<key>`
/// (compose's default name) when such a volume exists.
fn compose_volume(c: &Compose, key: &str, section: &str) -> Result<String> {
    let out = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label=com.docker.compose.project={}", c.project))
        .arg("--filter")
        .arg(format!("label=com.docker.compose.volume={key}"))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{section}: running docker volume ls"))?;
    let found: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
    match found.as_slice() {
        [one] => return Ok(one.clone()),
        [] => {}
        many => {
            bail!("{section}: compose project {} has several volumes labelled {key}: {}", c.project, many.join(", "))
        }
    }
    let default = format!("{}_{key}", c.project);
    if container::volume_mountpoint(&default).ok().flatten().is_some() {
        return Ok(default);
    }
    bail!(
        "{section}: compose project {} has no volume {key} (neither labelled so nor named {default}); is the project up? `docker volume ls --filter label=com.docker.compose.project={}` lists its volumes",
        c.project,
        c.project
    )
}

/// The volume whose mount point holds `path`, when the path lies below
/// `…/volumes/NAME/_data` and Docker knows a volume NAME mounted exactly there. Quiet when
/// Docker is not installed or no such volume exists: the path is then an ordinary host file.
fn volume_holding(path: &Path) -> Option<String> {
    let data = path.ancestors().skip(1).find(|a| {
        a.file_name().is_some_and(|n| n == "_data")
            && a.parent().and_then(Path::parent).and_then(Path::file_name).is_some_and(|n| n == "volumes")
    })?;
    let name = data.parent()?.file_name()?.to_str()?;
    match container::volume_mountpoint(name) {
        Ok(Some(mp)) if mp == data => Some(name.to_string()),
        _ => None,
    }
}

/// Every volume the configuration names or its compose projects' containers mount, once each.
/// `databases` maps a container name to the `[[postgres]]` dumped from it: the volume holding
/// that server's data directory is recorded (the restore creates it) but its files are not
/// packed: a copy of a running server's files is not consistent, and the dump holds the data.
/// `extra` are (volume, section) pairs found elsewhere (the volumes holding `[[sqlite]]`
/// databases).
pub fn volumes(
    cfg: &crate::config::Config,
    databases: &BTreeMap<String, String>,
    extra: &[(String, String)],
) -> Result<Vec<FoundVolume>> {
    let mut names: Vec<(String, String)> = Vec::new();
    for (i, v) in cfg.volumes.iter().enumerate() {
        let section = format!("[[volumes]] #{}", i + 1);
        names.extend(v.names.iter().map(|n| (n.clone(), section.clone())));
        if v.compose().is_set() {
            let c = project(&v.compose(), &section)?;
            let containers = project_containers(&c, &section)?;
            if containers.is_empty() {
                bail!(
                    "{section}: project {} has no containers, so its volumes cannot be found; start it (`{} -p {} up -d`) or list the volumes in names = [...]",
                    c.project,
                    c.program.join(" "),
                    c.project
                );
            }
            for f in containers {
                names.extend(f.volumes.iter().map(|(n, _)| (n.clone(), section.clone())));
            }
        }
    }
    names.extend_from_slice(extra);
    let mut data_dirs: BTreeMap<String, String> = BTreeMap::new();
    for (container_name, db) in databases {
        let f = container::inspect(container_name).with_context(|| format!("[[postgres]] {db}: docker inspect"))?;
        let pgdata = f.env.get("PGDATA").cloned().unwrap_or_else(|| "/var/lib/postgresql/data".into());
        for (vol, dest) in &f.volumes {
            let dest = dest.trim_end_matches('/');
            if Path::new(&pgdata).starts_with(dest) || Path::new(dest).starts_with(&pgdata) {
                data_dirs.insert(vol.clone(), db.clone());
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (name, section) in names {
        if !seen.insert(name.clone()) {
            continue;
        }
        let volume = inspect_volume(&name, &section)?;
        let skip = data_dirs.get(&name).map(|db| {
            format!(
                "volume {name} holds the data directory of [[postgres]] {db}, packed as its dump: its files are not captured (a copy of a running server's files is not consistent); the restore creates the volume empty and restores the dump into the container"
            )
        });
        out.push(FoundVolume { volume, skip });
    }
    Ok(out)
}

/// `docker save` of one image (by its tags, so `docker load` brings them back; by id when it
/// has none) into `dir`: the file is written by docker itself, never held in memory.
pub fn save_image(id: &str, dir: &Path) -> Result<(SavedImage, PathBuf)> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{json .RepoTags}}", "--"])
        .arg(id)
        .stdin(Stdio::null())
        .output()
        .context("running docker image inspect")?;
    if !out.status.success() {
        bail!("image {id}: docker image inspect failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let references: Vec<String> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let entry = restorer::docker::image_entry(id);
    let path = dir.join(entry.rsplit('/').next().unwrap_or("image.tar"));
    let mut c = Command::new("docker");
    c.args(["save", "--output"]).arg(&path).arg("--");
    if references.is_empty() {
        c.arg(id);
    } else {
        c.args(&references);
    }
    restorer::sys::run(c.stdin(Stdio::null())).with_context(|| format!("docker save of image {id}"))?;
    Ok((SavedImage { references, id: id.to_string(), entry }, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Services and images are read from compose's normalised output; nested keys named
    /// `image` (a label, an environment variable) are not taken for the service's image.
    #[test]
    fn services_from_normalised_config() {
        let yaml = "networks:\n  default: {}\nservices:\n  app:\n    build:\n      context: /x\n    environment:\n      image: not-this\n  postgres:\n    environment:\n      POSTGRES_USER: n8n\n    image: n8nbk-postgres:15\n  'n8n':\n    image: \"docker.n8n.io/n8nio/n8n:2.8.4\"\nvolumes:\n  db_storage: {}\n";
        assert_eq!(
            services_from_config(yaml),
            vec![
                ("app".to_string(), None),
                ("postgres".to_string(), Some("n8nbk-postgres:15".to_string())),
                ("n8n".to_string(), Some("docker.n8n.io/n8nio/n8n:2.8.4".to_string())),
            ]
        );
    }
}
