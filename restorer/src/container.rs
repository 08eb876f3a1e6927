//! The Docker CLI, for packer (dumping a database inside a container, reading volumes) and for
//! the restore (starting the engine, volumes, compose services, restoring into a container).
//! Only the `docker` client and compose (`docker compose` or v1 `docker-compose`) are run;
//! on a fresh host the restore installs them first (`docker.io`, `docker-compose`).
//!
//! Secrets: a container's `POSTGRES_PASSWORD` is read from `docker inspect` into memory and
//! handed to children through their environment (`docker exec -e PGPASSWORD`, which copies the
//! variable from the client's own environment): never on a command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pg::PgTarget;
use crate::sys::run;
use crate::{Error, Result};

/// How to run compose on this host: `docker compose` (plugin) or `docker-compose` (v1).
pub fn compose_program() -> Option<Vec<String>> {
    let plugin = Command::new("docker").args(["compose", "version"]).output();
    if matches!(plugin, Ok(o) if o.status.success()) {
        return Some(vec!["docker".into(), "compose".into()]);
    }
    crate::sys::which("docker-compose").map(|_| vec!["docker-compose".into()])
}

/// A compose project on this host: its name, directory and files.
#[derive(Debug, Clone)]
pub struct Compose {
    /// The program (`docker compose` or `docker-compose`).
    pub program: Vec<String>,
    /// Project name (`-p`).
    pub project: String,
    /// Project directory (`--project-directory`, and the working directory).
    pub directory: PathBuf,
    /// Compose files (`-f`).
    pub files: Vec<PathBuf>,
}

impl Compose {
    /// A compose command for this project: `<program> -p P -f F... ARGS`, run in its directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program[0]);
        c.args(&self.program[1..]).arg("-p").arg(&self.project);
        for f in &self.files {
            c.arg("-f").arg(f);
        }
        c.args(args).current_dir(&self.directory);
        c
    }

    /// The id of the container running `service`, if there is one. Asked of the engine by
    /// compose's labels, so it works before the project's files exist (and with any compose).
    pub fn container_of(&self, service: &str) -> Result<Option<String>> {
        running_service(&self.project, service)
    }

    /// Full ids of every container of the project (running or not), by compose's labels.
    pub fn containers(&self) -> Result<Vec<String>> {
        self.ids(&["ps", "-a", "-q", "--no-trunc"])
    }

    /// Full ids of the project's networks, by compose's labels.
    pub fn networks(&self) -> Result<Vec<String>> {
        self.ids(&["network", "ls", "-q", "--no-trunc"])
    }

    fn ids(&self, list: &[&str]) -> Result<Vec<String>> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let out = run(Command::new("docker").args(list).args(["--filter", &label]))?;
        Ok(out.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
    }
}

/// The id of the running container of compose service `service` of `project`, if there is one:
/// asked of the engine by compose's labels (no compose program, no project files needed).
pub fn running_service(project: &str, service: &str) -> Result<Option<String>> {
    let out = run(Command::new("docker").args([
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
    ]))?;
    Ok(out.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string))
}

/// What `docker inspect` says about a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerFacts {
    /// Full id.
    pub id: String,
    /// Name, without the leading `/`.
    pub name: String,
    /// Configured image reference.
    pub image: String,
    /// Image id (`sha256:...`).
    pub image_id: String,
    /// Environment (values may be secrets: never print them).
    pub env: BTreeMap<String, String>,
    /// Labels (`com.docker.compose.project`, `com.docker.compose.service`, ...).
    pub labels: BTreeMap<String, String>,
    /// Its addresses on its networks.
    pub addresses: Vec<String>,
    /// Whether it is running.
    pub running: bool,
    /// Named volumes mounted: (volume name, mount point inside the container).
    pub volumes: Vec<(String, String)>,
    /// Bind mounts: the host paths mounted into the container (a project's `./init-data.sh`).
    pub binds: Vec<PathBuf>,
    /// Host ports its configuration publishes (`HostConfig.PortBindings`).
    pub published_ports: Vec<u16>,
}

impl ContainerFacts {
    /// The compose project and service, when compose made this container.
    pub fn compose_service(&self) -> Option<(String, String)> {
        Some((
            self.labels.get("com.docker.compose.project")?.clone(),
            self.labels.get("com.docker.compose.service")?.clone(),
        ))
    }

    /// How to reach the PostgreSQL server inside from this host: its first network address,
    /// port 5432, the official image's `POSTGRES_USER` (default `postgres`), `POSTGRES_PASSWORD`
    /// and `POSTGRES_DB` (default: the user), unless `database` says otherwise.
    pub fn pg_target(&self, database: Option<&str>) -> Result<PgTarget> {
        let host = self
            .addresses
            .first()
            .ok_or_else(|| Error::Other(format!("container {} has no network address (is it running?)", self.name)))?;
        let user = self.env.get("POSTGRES_USER").map(String::as_str).unwrap_or("postgres");
        let db = database.or(self.env.get("POSTGRES_DB").map(String::as_str)).unwrap_or(user);
        Ok(PgTarget::from_parts(host, 5432, user, self.env.get("POSTGRES_PASSWORD").map(String::as_str), db))
    }
}

/// `docker inspect` of one container.
pub fn inspect(container: &str) -> Result<ContainerFacts> {
    let out = run(Command::new("docker").args(["inspect", "--type", "container", "--"]).arg(container))?;
    let v: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| Error::Other(format!("docker inspect {container}: unexpected output ({e})")))?;
    let c = v.get(0).ok_or_else(|| Error::Other(format!("docker inspect {container}: no such container")))?;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let env = c["Config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str()?.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let labels = c["Config"]["Labels"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), s(v))).collect();
    let addresses = c["NetworkSettings"]["Networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, n)| s(&n["IPAddress"]))
        .filter(|a| !a.is_empty())
        .collect();
    let volumes = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["Type"] == "volume")
        .map(|m| (s(&m["Name"]), s(&m["Destination"])))
        .collect();
    let binds = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["Type"] == "bind")
        .map(|m| PathBuf::from(s(&m["Source"])))
        .collect();
    let mut published_ports: Vec<u16> = c["HostConfig"]["PortBindings"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, b)| b.as_array().into_iter().flatten())
        .filter_map(|b| b["HostPort"].as_str()?.parse().ok())
        .collect();
    published_ports.sort_unstable();
    published_ports.dedup();
    Ok(ContainerFacts {
        published_ports,
        id: s(&c["Id"]),
        name: s(&c["Name"]).trim_start_matches('/').to_string(),
        image: s(&c["Config"]["Image"]),
        image_id: s(&c["Image"]),
        env,
        labels,
        addresses,
        running: c["State"]["Running"].as_bool().unwrap_or(false),
        volumes,
        binds,
    })
}

/// Waits until the PostgreSQL server in `container` accepts connections over its network
/// address (`tries`, 2 s apart), and says how to reach it.
pub fn wait_for_server(container: &str, tries: u32) -> Result<PgTarget> {
    let mut last = String::new();
    for i in 0..tries.max(1) {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        match inspect(container).and_then(|f| f.pg_target(Some("postgres"))).and_then(|t| t.connect().map(|_| t)) {
            Ok(t) => return Ok(t),
            Err(e) => last = e.to_string(),
        }
    }
    Err(Error::Other(format!("the PostgreSQL server in container {container} did not accept connections: {last}")))
}

/// The mount point of a named volume, `None` when it does not exist.
pub fn volume_mountpoint(name: &str) -> Result<Option<PathBuf>> {
    let out = Command::new("docker")
        .args(["volume", "inspect", "--format", "{{.Mountpoint}}", "--"])
        .arg(name)
        .output()
        .map_err(|e| Error::Command { command: "docker volume inspect".into(), detail: e.to_string() })?;
    if !out.status.success() {
        return Ok(None);
    }
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((!p.is_empty()).then(|| PathBuf::from(p)))
}

/// Repository digests of an image (`repo@sha256:...`), empty for a locally built one.
pub fn repo_digests(image: &str) -> Vec<String> {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{json .RepoDigests}}", "--"])
        .arg(image)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<Vec<String>>(&o.stdout).ok())
        .unwrap_or_default()
}

/// `docker exec -i [-e PGPASSWORD] CONTAINER ARGS...`: runs a tool inside a container; the
/// password, when given, travels in the environment only.
pub fn exec(container: &str, password: Option<&str>, args: &[&str]) -> Command {
    exec_with(container, password, &[], args)
}

/// [`exec`] with more variables passed into the container (`(name, value)`): set on the
/// docker client's environment and named with `-e NAME`, so no value is on a command line.
pub fn exec_with(container: &str, password: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(["exec", "-i"]);
    let pw = password.map(|pw| ("PGPASSWORD", pw));
    for (name, value) in pw.iter().chain(env) {
        c.env(name, value).args(["-e", name]);
    }
    c.arg(container).args(args);
    c
}

/// True when the engine answers.
pub fn engine_answers() -> bool {
    Command::new("docker").arg("info").output().map(|o| o.status.success()).unwrap_or(false)
}

/// A volume name compose gives `volume` of `project` (`<project>_<volume>`).
pub fn compose_volume_name(project: &str, volume: &str) -> String {
    format!("{project}_{volume}")
}

/// The directory compose uses as a project's default name: its last component, lower-cased,
/// with characters compose drops removed.
pub fn default_project_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .collect()
}

/// The id of a local image (`sha256:...`) named by id or reference, `None` when the engine has
/// no such image (nothing is pulled).
pub fn image_id(image: &str) -> Option<String> {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", "--"])
        .arg(image)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|id| !id.is_empty())
}
