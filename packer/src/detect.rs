//! `packer init --detect`: looks at a host (the running one, or a copy of its files under
//! `--from DIR`) and writes a configuration the user only has to review. Every choice carries
//! a comment saying which file it came from. It reads files only: it never connects to a
//! database, runs docker or prints a secret (an `.env` is read for n8n's database settings;
//! passwords and keys are only ever said to be *there*).
//!
//! What it recognises, in the shapes n8n is deployed in:
//! - n8n under Docker Compose (`/opt`, `/srv`, `/root`, `/home` up to three levels): the n8n
//!   service, its database (a compose service, the host's PostgreSQL or SQLite in its data
//!   directory), named volumes and bind mounts, `.env` and `env_file`s, the published port;
//! - n8n as a systemd unit (`User=`, `Environment=`, `EnvironmentFile=`), else a bare `~/.n8n`;
//! - PostgreSQL clusters from `/etc/postgresql/*/*/postgresql.conf` (what `pg_lsclusters`
//!   reads): port and socket directory;
//! - nginx: the sites in use (`nginx.conf`, `conf.d/*.conf`, `sites-enabled/*`) and the
//!   certificates they name, Let's Encrypt's `live/` with its `archive/` and `renewal/`;
//! - the systemd services enabled (`multi-user.target.wants`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// Compose file names, in compose's own order of preference.
const COMPOSE_FILES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];
/// n8n's defaults when its environment says nothing.
const N8N_PORT: u16 = 5678;

/// The host's files, under `root`.
struct Host<'a> {
    root: &'a Path,
}

impl Host<'_> {
    fn at(&self, p: &Path) -> PathBuf {
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }
    fn read(&self, p: &Path) -> Option<String> {
        std::fs::read_to_string(self.at(p)).ok()
    }
    fn is_file(&self, p: &Path) -> bool {
        self.at(p).is_file()
    }
    fn is_dir(&self, p: &Path) -> bool {
        self.at(p).is_dir()
    }
    /// Entries of a directory (host paths), sorted; nothing when unreadable.
    fn list(&self, p: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.at(p))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| p.join(e.file_name())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
    /// A link's target as written.
    fn link(&self, p: &Path) -> Option<PathBuf> {
        std::fs::read_link(self.at(p)).ok()
    }
}

/// `KEY=VALUE` lines of an `.env` / `EnvironmentFile` (`export`, quotes and comments handled).
pub fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("export ").unwrap_or(l);
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_string(), unquote(v.trim())))
        })
        .collect()
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    // An unquoted value ends at a comment.
    v.split(" #").next().unwrap_or(v).trim().to_string()
}

/// `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$VAR` from `vars`, as compose does.
pub fn substitute(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push_str(&rest[i..]);
                return out;
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-").or_else(|| inner.split_once('-')) {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            match (vars.get(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {}
            }
            rest = &body[end + 1..];
        } else if let Some(rest2) = after.strip_prefix('$') {
            out.push('$');
            rest = rest2;
        } else {
            let n = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if n == 0 {
                out.push('$');
            } else if let Some(v) = vars.get(&after[..n]) {
                out.push_str(v);
            }
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    out
}

/// One service of a compose file, as far as detection needs it.
#[derive(Debug, Default, Clone)]
struct Service {
    name: String,
    image: String,
    env: BTreeMap<String, String>,
    /// (source, target): a named volume has no `/` in its source.
    mounts: Vec<(String, String)>,
    /// (host ip, host port, container port).
    ports: Vec<(String, u16, u16)>,
    /// `env_file`s, host paths.
    env_files: Vec<PathBuf>,
}

/// A compose project.
#[derive(Debug, Clone)]
struct Project {
    file: PathBuf,
    dir: PathBuf,
    name: String,
    services: Vec<Service>,
    /// Top-level volumes: (key, the real name when `name:` or `external` says so).
    volumes: Vec<(String, Option<String>)>,
    dotenv: Option<PathBuf>,
}

fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn key<'a>(y: &'a Yaml, k: &str) -> &'a Yaml {
    &y[k]
}

/// Compose's project name rule: lowercase, `[a-z0-9_-]`.
fn project_name(s: &str) -> String {
    s.to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
}

/// Variables from the project's `.env`, for `${VAR}` substitution.
type Vars = BTreeMap<String, String>;

/// A compose file as far as detection needs it, `${VAR}`s filled from the project's `.env`.
fn parse_compose(host: &Host, file: &Path) -> Option<Project> {
    let text = host.read(file)?;
    let doc = YamlLoader::load_from_str(&text).ok()?.into_iter().next()?;
    let dir = file.parent()?.to_path_buf();
    let dotenv_path = dir.join(".env");
    let dotenv = host.is_file(&dotenv_path).then_some(dotenv_path);
    let vars: Vars =
        dotenv.as_ref().and_then(|p| host.read(p)).map(|t| parse_env(&t).into_iter().collect()).unwrap_or_default();
    let sub = |s: String| substitute(&s, &vars);
    let name = vars
        .get("COMPOSE_PROJECT_NAME")
        .cloned()
        .or_else(|| scalar(key(&doc, "name")).map(&sub))
        .unwrap_or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let services = key(&doc, "services")
        .as_hash()
        .into_iter()
        .flatten()
        .map(|(k, v)| parse_service(host, &dir, &vars, k, v))
        .collect();
    let mut volumes = Vec::new();
    if let Some(map) = key(&doc, "volumes").as_hash() {
        for (k, v) in map {
            let Some(k) = scalar(k) else { continue };
            let external = matches!(key(v, "external"), Yaml::Boolean(true));
            let real = scalar(key(v, "name")).map(&sub).or_else(|| external.then(|| k.clone()));
            volumes.push((k, real));
        }
    }
    Some(Project { file: file.to_path_buf(), dir, name: project_name(&name), services, volumes, dotenv })
}

/// One service: its image, environment (env files, then `environment:`), mounts and ports.
fn parse_service(host: &Host, dir: &Path, vars: &Vars, k: &Yaml, v: &Yaml) -> Service {
    let sub = |s: String| substitute(&s, vars);
    let mut s = Service { name: scalar(k).unwrap_or_default(), ..Default::default() };
    s.image = scalar(key(v, "image")).map(&sub).unwrap_or_default();
    let env_files: Vec<String> = match key(v, "env_file") {
        Yaml::Array(a) => a.iter().filter_map(|e| scalar(e).or_else(|| scalar(key(e, "path")))).collect(),
        y => scalar(y).into_iter().collect(),
    };
    for f in env_files {
        let p = dir.join(sub(f));
        if let Some(t) = host.read(&p) {
            s.env.extend(parse_env(&t));
        }
        s.env_files.push(p);
    }
    match key(v, "environment") {
        Yaml::Hash(h) => {
            for (k, v) in h {
                if let (Some(k), Some(v)) = (scalar(k), scalar(v)) {
                    s.env.insert(k, sub(v));
                }
            }
        }
        Yaml::Array(a) => {
            for e in a.iter().filter_map(scalar) {
                if let Some((k, v)) = e.split_once('=') {
                    s.env.insert(k.to_string(), sub(v.to_string()));
                }
            }
        }
        _ => {}
    }
    s.mounts = key(v, "volumes").as_vec().into_iter().flatten().filter_map(|m| mount(m, dir, vars)).collect();
    s.ports = key(v, "ports").as_vec().into_iter().flatten().filter_map(|p| port(p, vars)).collect();
    s
}

/// A `volumes:` entry as (source, target), a relative source made absolute; none for an
/// anonymous volume (nothing to keep).
fn mount(m: &Yaml, dir: &Path, vars: &Vars) -> Option<(String, String)> {
    let sub = |s: String| substitute(&s, vars);
    let (src, dst) = match scalar(m) {
        Some(short) => {
            let short = sub(short);
            let mut parts = short.splitn(3, ':');
            match (parts.next(), parts.next()) {
                (Some(src), Some(dst)) => (src.to_string(), dst.to_string()),
                _ => return None,
            }
        }
        None => scalar(key(m, "source")).zip(scalar(key(m, "target"))).map(|(a, b)| (sub(a), sub(b)))?,
    };
    let src = if src.starts_with("./") || src == "." || src.starts_with("../") {
        dir.join(src).display().to_string()
    } else {
        src
    };
    Some((src, dst))
}

/// A `ports:` entry (short `[IP:]HOST:CONTAINER[/proto]` or long form) as (host ip, host port,
/// container port); none without a published port.
fn port(p: &Yaml, vars: &Vars) -> Option<(String, u16, u16)> {
    if let Some(short) = scalar(p) {
        let short = substitute(&short, vars);
        let short = short.split('/').next().unwrap_or("");
        let parts: Vec<&str> = short.rsplitn(3, ':').collect();
        let parsed = match parts.as_slice() {
            [c, h, ip] => Some((ip.to_string(), h.parse().ok(), c.parse().ok())),
            [c, h] => Some((String::new(), h.parse().ok(), c.parse().ok())),
            _ => None,
        };
        match parsed {
            Some((ip, Some(h), Some(c))) => Some((ip, h, c)),
            _ => None,
        }
    } else {
        let t = scalar(key(p, "target")).and_then(|t| t.parse().ok());
        let h = scalar(key(p, "published")).and_then(|t| substitute(&t, vars).parse().ok());
        Some((scalar(key(p, "host_ip")).unwrap_or_default(), h?, t?))
    }
}

/// Compose files below the usual deployment roots, at most three levels down.
fn compose_files(host: &Host) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs: Vec<(PathBuf, u32)> =
        ["/opt", "/srv", "/root", "/home"].iter().map(|d| (PathBuf::from(d), 0)).collect();
    let mut visited = 0;
    while let Some((d, depth)) = dirs.pop() {
        visited += 1;
        if visited > 5000 {
            break; // a huge tree is not where a deployment is
        }
        if let Some(f) = COMPOSE_FILES.iter().map(|f| d.join(f)).find(|f| host.is_file(f)) {
            found.push(f);
        }
        if depth < 3 {
            for e in host.list(&d) {
                let name = e.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if !name.starts_with('.') && name != "node_modules" && host.is_dir(&e) && host.link(&e).is_none() {
                    dirs.push((e, depth + 1));
                }
            }
        }
    }
    found.sort();
    found
}

/// Where n8n keeps its database, as its environment says.
#[derive(Debug, Clone, PartialEq)]
enum N8nDb {
    /// SQLite at this host path.
    Sqlite(PathBuf),
    /// PostgreSQL as a service of the same compose project.
    Service { service: String, database: String },
    /// PostgreSQL this host reaches.
    Server { host: String, port: u16, database: String, user: String },
}

fn n8n_db(env: &BTreeMap<String, String>, data_dir: Option<PathBuf>, services: &[Service]) -> Option<N8nDb> {
    let get = |k: &str, d: &str| env.get(k).filter(|v| !v.is_empty()).cloned().unwrap_or_else(|| d.to_string());
    match get("DB_TYPE", "sqlite").as_str() {
        "postgresdb" => {
            let host = get("DB_POSTGRESDB_HOST", "localhost");
            let database = get("DB_POSTGRESDB_DATABASE", "n8n");
            if services.iter().any(|s| s.name == host) {
                return Some(N8nDb::Service { service: host, database });
            }
            Some(N8nDb::Server {
                host: if host == "localhost" { "127.0.0.1".into() } else { host },
                port: get("DB_POSTGRESDB_PORT", "5432").parse().unwrap_or(5432),
                database,
                user: get("DB_POSTGRESDB_USER", "postgres"),
            })
        }
        _ => {
            let file = env.get("DB_SQLITE_DATABASE").map(PathBuf::from);
            file.or_else(|| data_dir.map(|d| d.join("database.sqlite"))).map(N8nDb::Sqlite)
        }
    }
}

/// One section of the generated configuration: comments, a header, keys.
struct Section {
    why: Vec<String>,
    header: &'static str,
    keys: Vec<(&'static str, toml::Value)>,
}

fn s(v: impl Into<String>) -> toml::Value {
    toml::Value::String(v.into())
}

fn list(v: impl IntoIterator<Item = impl Into<String>>) -> toml::Value {
    toml::Value::Array(v.into_iter().map(|x| toml::Value::String(x.into())).collect())
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}

/// What was found.
#[derive(Default)]
struct Found {
    sections: Vec<Section>,
    config_files: Vec<(PathBuf, String)>,
    ssl_paths: Vec<(PathBuf, String)>,
    data_paths: Vec<(PathBuf, String)>,
    start: Vec<(String, String)>,
    health: Vec<(String, String)>,
    n8n_url: Option<(String, String)>,
    notes: Vec<String>,
}

impl Found {
    fn config(&mut self, p: PathBuf, why: impl Into<String>) {
        if !self.config_files.iter().any(|c| c.0 == p) {
            self.config_files.push((p, why.into()));
        }
    }
    fn start(&mut self, unit: &str, why: impl Into<String>) {
        if !self.start.iter().any(|s| s.0 == unit) {
            self.start.push((unit.into(), why.into()));
        }
    }
    fn n8n_port(&mut self, port: u16, why: &str) {
        self.health.push((format!("http://127.0.0.1:{port}/healthz"), why.into()));
        self.n8n_url = Some((format!("http://127.0.0.1:{port}"), why.into()));
    }
}

/// The real name of a project's volume key: compose prefixes the project unless `name:` or
/// `external` says otherwise.
fn volume_name(p: &Project, k: &str) -> String {
    p.volumes.iter().find(|v| v.0 == k).and_then(|v| v.1.clone()).unwrap_or_else(|| format!("{}_{k}", p.name))
}

/// The n8n of a compose project, when one of its services runs n8n.
fn from_compose(host: &Host, p: &Project, f: &mut Found) -> bool {
    // The image's name (no registry, no tag) ends in n8n: n8nio/n8n, docker.n8n.io/n8nio/n8n,
    // a local my-n8n; not n8nio/runners, nor a database image whose prefix says n8n.
    let is_n8n = |s: &&Service| {
        let name = s.image.rsplit('/').next().unwrap_or("");
        name.split([':', '@']).next().unwrap_or("").ends_with("n8n")
    };
    let Some(n8n) = p.services.iter().find(is_n8n) else {
        return false;
    };
    let file = shown(&p.file);
    f.notes.push(format!("n8n runs under Docker Compose: service {} of project {} ({file})", n8n.name, p.name));
    let data = n8n.mounts.iter().find(|m| m.1.trim_end_matches('/') == "/home/node/.n8n");
    let data_dir = data.map(|(src, _)| {
        if src.starts_with('/') {
            PathBuf::from(src)
        } else {
            PathBuf::from(format!("/var/lib/docker/volumes/{}/_data", volume_name(p, src)))
        }
    });
    let db = n8n_db(&n8n.env, data_dir.clone(), &p.services);
    database_section(host, p, n8n, db.as_ref(), data, f);
    volumes_section(p, db.as_ref(), data, f);
    f.sections.push(Section {
        why: vec![format!("the compose project itself: {file}, its override and .env, the images its services run")],
        header: "[[compose]]",
        keys: vec![("file", s(file.clone())), ("project", s(p.name.clone()))],
    });
    for m in p.services.iter().flat_map(|s| &s.mounts).filter(|m| m.0.starts_with('/')) {
        let src = PathBuf::from(&m.0);
        if src.starts_with(&p.dir) || f.data_paths.iter().any(|d| d.0 == src) {
            continue; // the project directory is packed with the project
        }
        f.data_paths.push((src, format!("bind-mounted at {} by {file}", m.1)));
    }
    if let Some(env) = &p.dotenv {
        f.config(env.clone(), format!(".env of {file}"));
    }
    for e in &n8n.env_files {
        f.config(e.clone(), format!("env_file of service {}", n8n.name));
    }
    let key_in = if n8n.env.contains_key("N8N_ENCRYPTION_KEY") {
        "N8N_ENCRYPTION_KEY is set in n8n's environment (packed with the project's files)".to_string()
    } else {
        format!(
            "no N8N_ENCRYPTION_KEY in n8n's environment: the key is the `config` file in {}",
            data_dir.as_deref().map(shown).unwrap_or_else(|| "its data directory".into())
        )
    };
    f.notes.push(key_in);
    if let Some((_, h, _)) = n8n.ports.iter().find(|p| p.2 == N8N_PORT) {
        f.n8n_port(*h, &format!("{file} publishes n8n's port {N8N_PORT} on {h}"));
    } else {
        f.notes.push(format!("{file} publishes no port of n8n: add a health check the new host can reach"));
    }
    true
}

/// The section of n8n's database in a compose project: a service of the project (its own
/// pg_dump), a server this host reaches, or SQLite in n8n's data directory (`data`, the mount
/// at /home/node/.n8n).
fn database_section(
    host: &Host,
    p: &Project,
    n8n: &Service,
    db: Option<&N8nDb>,
    data: Option<&(String, String)>,
    f: &mut Found,
) {
    let file = shown(&p.file);
    match db {
        Some(N8nDb::Service { service, database }) => f.sections.push(Section {
            why: vec![format!(
                "n8n's database: DB_TYPE=postgresdb, DB_POSTGRESDB_HOST={service} is a service of {file}; dumped with that container's own pg_dump"
            )],
            header: "[[postgres]]",
            keys: vec![
                ("name", s("n8n")),
                ("compose_service", s(service.clone())),
                ("compose_file", s(file.clone())),
                ("compose_project", s(p.name.clone())),
                ("database", s(database.clone())),
                ("profile", s("n8n")),
            ],
        }),
        Some(server @ N8nDb::Server { .. }) => server_section(host, server, &format!("n8n's environment in {file}"), f),
        Some(N8nDb::Sqlite(path)) => {
            let why = vec![format!(
                "n8n's database: SQLite (DB_TYPE {} in {file}) in its data directory {}; copied with SQLite's online backup",
                n8n.env.get("DB_TYPE").map(String::as_str).unwrap_or("unset"),
                data.map(|m| m.0.as_str()).unwrap_or("?")
            )];
            let keys = match data.filter(|m| !m.0.starts_with('/')) {
                // In a named volume: found through Docker wherever it keeps volumes, and the
                // volume (n8n's `config` with the key) captured with it.
                Some((volume, target)) => {
                    let inside = path.strip_prefix(target).map(shown).unwrap_or_else(|_| "database.sqlite".into());
                    vec![
                        ("name", s("n8n")),
                        ("volume", s(volume.clone())),
                        ("path", s(inside)),
                        ("compose_file", s(file.clone())),
                        ("compose_project", s(p.name.clone())),
                        ("profile", s("n8n")),
                    ]
                }
                None => vec![("name", s("n8n")), ("path", s(shown(path))), ("profile", s("n8n"))],
            };
            f.sections.push(Section { why, header: "[[sqlite]]", keys });
        }
        None => f.notes.push("n8n's data directory (/home/node/.n8n) is not mounted: its SQLite database and key live in the container only and cannot be backed up; mount a volume there".into()),
    }
}

/// `[[volumes]]` for the named volumes the project's services mount, but the one a `[[sqlite]]`
/// in a volume captures itself.
fn volumes_section(p: &Project, db: Option<&N8nDb>, data: Option<&(String, String)>, f: &mut Found) {
    let file = shown(&p.file);
    let named: Vec<String> = p
        .services
        .iter()
        .flat_map(|s| &s.mounts)
        .filter(|m| !m.0.starts_with('/'))
        .map(|m| volume_name(p, &m.0))
        .collect();
    let sqlite_volume = matches!(db, Some(N8nDb::Sqlite(_)))
        .then(|| data.filter(|m| !m.0.starts_with('/')).map(|m| volume_name(p, &m.0)))
        .flatten();
    let named: Vec<String> = named.into_iter().filter(|v| Some(v) != sqlite_volume.as_ref()).collect();
    if named.is_empty() {
        return;
    }
    let db_volume = match db {
        Some(N8nDb::Service { service, .. }) => {
            format!("; the data directory of {service} among them is not copied, its dump stands for it")
        }
        _ => String::new(),
    };
    f.sections.push(Section {
        why: vec![format!(
            "the named volumes {file}'s services mount ({}), with owners and modes{db_volume}",
            named.join(", ")
        )],
        header: "[[volumes]]",
        keys: vec![("compose_file", s(file.clone())), ("compose_project", s(p.name.clone()))],
    });
}

/// `[[postgres]]` for a server this host reaches (n8n's `DB_POSTGRESDB_*`).
fn server_section(host: &Host, db: &N8nDb, source: &str, f: &mut Found) {
    let N8nDb::Server { host: h, port, database, user } = db else { return };
    let local = h == "127.0.0.1" || h == "::1";
    let mut why = vec![format!("n8n's database: DB_TYPE=postgresdb, {user}@{h}:{port}/{database} ({source})")];
    why.push("the password: in ~/.pgpass or PGPASSWORD for packer (DB_POSTGRESDB_PASSWORD is where n8n has it; never in this file)".into());
    if local {
        if let Some(c) = clusters(host).into_iter().find(|c| c.port == *port) {
            why.push(format!("served by the local PostgreSQL {} cluster {} ({})", c.version, c.name, shown(&c.conf)));
            f.start("postgresql", format!("the local cluster {}/{} serves n8n's database", c.version, c.name));
            f.health.push((format!("tcp://127.0.0.1:{port}"), format!("PostgreSQL {}/{}", c.version, c.name)));
        }
    } else {
        why.push(format!("{h} is another host: the restore will not rebuild that server"));
    }
    f.sections.push(Section {
        why,
        header: "[[postgres]]",
        keys: vec![
            ("name", s("n8n")),
            ("url", s(format!("postgresql://{user}@{h}:{port}/{database}"))),
            ("profile", s("n8n")),
        ],
    });
}

/// A PostgreSQL cluster (`/etc/postgresql/VERSION/NAME`).
struct Cluster {
    version: String,
    name: String,
    port: u16,
    conf: PathBuf,
}

fn clusters(host: &Host) -> Vec<Cluster> {
    let mut out = Vec::new();
    for v in host.list(Path::new("/etc/postgresql")) {
        for c in host.list(&v) {
            let conf = c.join("postgresql.conf");
            let Some(text) = host.read(&conf) else { continue };
            let port = text
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter_map(|l| l.strip_prefix("port"))
                .filter_map(|r| r.trim_start().strip_prefix('=').map(|v| v.trim().trim_matches('\'')))
                .find_map(|v| v.parse().ok())
                .unwrap_or(5432);
            let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push(Cluster { version: name(&v), name: name(&c), port, conf });
        }
    }
    out
}

/// n8n as a systemd unit, else a bare `~/.n8n`.
fn from_systemd_or_home(host: &Host, f: &mut Found) -> bool {
    let units: Vec<PathBuf> = ["/etc/systemd/system", "/lib/systemd/system"]
        .iter()
        .flat_map(|d| host.list(Path::new(d)))
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            n.ends_with(".service") && n.contains("n8n")
        })
        .collect();
    let homes = passwd_homes(host);
    let (unit, text) = match units.iter().find_map(|u| Some((u.clone(), host.read(u)?))) {
        Some(x) => x,
        None => {
            // No unit: a ~/.n8n with a config or a database.
            let dirs = std::iter::once(PathBuf::from("/root")).chain(host.list(Path::new("/home")));
            for d in dirs.map(|h| h.join(".n8n")) {
                if host.is_file(&d.join("config")) || host.is_file(&d.join("database.sqlite")) {
                    f.notes
                        .push(format!("n8n's data directory {} (no systemd unit or compose file runs it)", shown(&d)));
                    return n8n_data_dir(host, &d, &BTreeMap::new(), "found on disk", f);
                }
            }
            return false;
        }
    };
    let unit_name = unit.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut env = BTreeMap::new();
    let mut user = "root".to_string();
    for l in text.lines().map(str::trim) {
        if let Some(u) = l.strip_prefix("User=") {
            user = u.trim().to_string();
        } else if let Some(e) = l.strip_prefix("Environment=") {
            for part in split_words(e) {
                if let Some((k, v)) = part.split_once('=') {
                    env.insert(k.to_string(), v.to_string());
                }
            }
        } else if let Some(p) = l.strip_prefix("EnvironmentFile=") {
            let p = PathBuf::from(p.trim().trim_start_matches('-'));
            if let Some(t) = host.read(&p) {
                env.extend(parse_env(&t));
            }
            f.config(p, format!("EnvironmentFile of {unit_name}"));
        }
    }
    f.notes.push(format!("n8n runs as the systemd unit {unit_name} (user {user})"));
    if let Some(exec) = text.lines().find_map(|l| l.trim().strip_prefix("ExecStart=")) {
        f.notes.push(format!(
            "{unit_name} runs `{}`: n8n from npm is no Debian package, so install the same n8n release on the new host before its restore starts the unit",
            exec.trim()
        ));
    }
    f.config(unit.clone(), format!("the unit that runs n8n ({unit_name})"));
    f.start(unit_name.trim_end_matches(".service"), format!("{} runs n8n", shown(&unit)));
    let home = homes.get(&user).cloned().unwrap_or_else(|| {
        PathBuf::from(if user == "root" { "/root" } else { "/home" }).join(if user == "root" { "" } else { &user })
    });
    let folder = env.get("N8N_USER_FOLDER").map(PathBuf::from).unwrap_or(home).join(".n8n");
    n8n_data_dir(host, &folder, &env, &format!("{unit_name}'s environment"), f);
    true
}

/// n8n's data directory and database for a host install.
fn n8n_data_dir(host: &Host, dir: &Path, env: &BTreeMap<String, String>, source: &str, f: &mut Found) -> bool {
    match n8n_db(env, Some(dir.to_path_buf()), &[]) {
        Some(db @ N8nDb::Server { .. }) => server_section(host, &db, source, f),
        Some(N8nDb::Sqlite(path)) => f.sections.push(Section {
            why: vec![format!("n8n's database: SQLite ({source} sets no DB_TYPE=postgresdb), in its data directory")],
            header: "[[sqlite]]",
            keys: vec![("name", s("n8n")), ("path", s(shown(&path))), ("profile", s("n8n"))],
        }),
        _ => {}
    }
    f.data_paths.push((
        dir.to_path_buf(),
        "n8n's data directory: the `config` file with its encryption key, binary data".into(),
    ));
    f.notes.push(if env.contains_key("N8N_ENCRYPTION_KEY") {
        format!("N8N_ENCRYPTION_KEY is set in {source} (packed with it)")
    } else {
        format!("the encryption key is the `config` file in {}", shown(dir))
    });
    let port = env.get("N8N_PORT").and_then(|p| p.parse().ok()).unwrap_or(N8N_PORT);
    f.n8n_port(port, &format!("n8n's port ({})", if env.contains_key("N8N_PORT") { source } else { "n8n's default" }));
    true
}

/// Splits a systemd `Environment=` value into its words (double quotes group).
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn passwd_homes(host: &Host) -> BTreeMap<String, PathBuf> {
    host.read(Path::new("/etc/passwd"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6).then(|| (f[0].to_string(), PathBuf::from(f[5])))
        })
        .collect()
}

/// nginx: the configuration and the certificates the sites in use name.
fn nginx(host: &Host, f: &mut Found) {
    let etc = Path::new("/etc/nginx");
    if !host.is_dir(etc) {
        return;
    }
    let mut confs = vec![etc.join("nginx.conf")];
    confs.extend(host.list(&etc.join("conf.d")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "conf")));
    let enabled = host.list(&etc.join("sites-enabled"));
    confs.extend(enabled.iter().cloned());
    let mut certs = Vec::new();
    let mut proxied = Vec::new();
    for c in &confs {
        let Some(text) = host.read(c) else { continue };
        for l in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()) {
            for d in ["ssl_certificate ", "ssl_certificate_key ", "ssl_trusted_certificate "] {
                if let Some(v) = l.strip_prefix(d) {
                    certs.push((PathBuf::from(v.trim().trim_end_matches(';').trim().trim_matches('"')), shown(c)));
                }
            }
            if let Some(v) = l.strip_prefix("proxy_pass ") {
                proxied.push((v.trim().trim_end_matches(';').to_string(), shown(c)));
            }
        }
    }
    let sites = if enabled.is_empty() {
        String::new()
    } else {
        format!(
            ", sites in use: {}",
            enabled
                .iter()
                .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    f.config(
        etc.to_path_buf(),
        format!("nginx's configuration (links in sites-enabled/ are kept, their targets packed){sites}"),
    );
    f.start("nginx", "nginx serves the sites above");
    for (p, why) in &proxied {
        f.notes.push(format!("nginx proxies to {p} ({why})"));
    }
    for (cert, conf) in certs {
        // Let's Encrypt: live/ holds links into archive/; renewal/ is how certbot renews it.
        let le = Path::new("/etc/letsencrypt/live");
        if let Ok(rest) = cert.strip_prefix(le) {
            let Some(domain) = rest.components().next() else { continue };
            let domain = domain.as_os_str().to_string_lossy().into_owned();
            for (p, what) in [
                (le.join(&domain), "live/ (links)"),
                (Path::new("/etc/letsencrypt/archive").join(&domain), "archive/ (the certificates the links lead to)"),
                (
                    Path::new("/etc/letsencrypt/renewal").join(format!("{domain}.conf")),
                    "renewal/ (certbot renews with it)",
                ),
            ] {
                if !f.ssl_paths.iter().any(|s| s.0 == p)
                    && (host.is_dir(&p) || host.is_file(&p) || what.starts_with("live"))
                {
                    f.ssl_paths.push((p, format!("Let's Encrypt {domain}: {what}, named by {conf}")));
                }
            }
        } else if !f.ssl_paths.iter().any(|s| s.0 == cert) {
            f.ssl_paths.push((cert, format!("named by {conf}")));
        }
    }
}

/// Enabled systemd services (`multi-user.target.wants`).
fn enabled_services(host: &Host) -> Vec<String> {
    host.list(Path::new("/etc/systemd/system/multi-user.target.wants"))
        .iter()
        .filter_map(|p| p.file_name()?.to_string_lossy().strip_suffix(".service").map(str::to_string))
        .collect()
}

/// Looks at the host whose `/` is `root` and returns the configuration text.
pub fn detect(root: &Path) -> String {
    let host = Host { root };
    let mut f = Found::default();
    let projects: Vec<Project> = compose_files(&host).iter().filter_map(|p| parse_compose(&host, p)).collect();
    let in_compose = projects.iter().any(|p| from_compose(&host, p, &mut f));
    if !in_compose && !from_systemd_or_home(&host, &mut f) {
        f.notes.push("no n8n found (no compose file running an n8n image, no n8n systemd unit, no ~/.n8n): add your databases and files below".into());
    }
    nginx(&host, &mut f);
    let enabled = enabled_services(&host);
    // Only what this deployment needs is started, in dependency order; the rest is listed.
    f.start.sort_by_key(|(u, _)| match u.as_str() {
        "postgresql" => 0,
        "nginx" => 2,
        _ => 1,
    });
    render(&f, root, &enabled)
}

fn render(f: &Found, root: &Path, enabled: &[String]) -> String {
    let mut out = String::new();
    let from =
        if root == Path::new("/") { "this host".to_string() } else { format!("the host under {}", root.display()) };
    let _ = writeln!(out, "# packer.toml written by `packer init --detect` from {from}.");
    let _ = writeln!(out, "# Review every line: each choice says where it came from. No secret was read into it.");
    for n in &f.notes {
        let _ = writeln!(out, "#   - {n}");
    }
    out.push('\n');
    let mut sections: Vec<Section> = vec![Section {
        why: vec!["bundles are written here (created 0700); name -> backup_YYYYMMDDHHMMSS.n8n_backup.tar.gz".into()],
        header: "[bundle]",
        keys: vec![("output_dir", s("/var/backups/n8n")), ("name", s("n8n"))],
    }];
    sections.extend(f.sections.iter().map(|x| Section { why: x.why.clone(), header: x.header, keys: x.keys.clone() }));
    for (kind, paths) in [("config", &f.config_files), ("ssl", &f.ssl_paths), ("data", &f.data_paths)] {
        if paths.is_empty() {
            continue;
        }
        sections.push(Section {
            why: paths.iter().map(|(p, why)| format!("{}: {why}", shown(p))).collect(),
            header: "[[files]]",
            keys: vec![("kind", s(kind)), ("paths", list(paths.iter().map(|p| shown(&p.0))))],
        });
    }
    let mut svc = Vec::new();
    let mut why = Vec::new();
    if !f.start.is_empty() {
        why.extend(f.start.iter().map(|(u, w)| format!("start {u}: {w}")));
        svc.push(("start", list(f.start.iter().map(|s| s.0.clone()))));
    }
    if !enabled.is_empty() {
        why.push(format!("enabled on this host: {}", enabled.join(", ")));
    }
    if !f.health.is_empty() {
        why.extend(f.health.iter().map(|(h, w)| format!("{h}: {w}")));
        svc.push(("health", list(f.health.iter().map(|h| h.0.clone()))));
    }
    if let Some((u, w)) = &f.n8n_url {
        why.push(format!("n8n_url {u}: the restore asks n8n there for the bundle's workflows ({w})"));
        svc.push(("n8n_url", s(u.clone())));
    }
    if !svc.is_empty() {
        sections.push(Section { why, header: "[services]", keys: svc });
    }
    for sec in sections {
        for w in &sec.why {
            let _ = writeln!(out, "# {w}");
        }
        let _ = writeln!(out, "{}", sec.header);
        for (k, v) in &sec.keys {
            let _ = writeln!(out, "{k} = {v}");
        }
        out.push('\n');
    }
    out.push_str("# Retention, schedule, notifications and shipping: see `packer init` for every option.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_and_substitution_follow_compose() {
        let env = parse_env("# c\nexport A=1\nB=\"two words\"\nC='x'\nD=plain # note\n\nbad line\n");
        assert_eq!(
            env,
            [("A", "1"), ("B", "two words"), ("C", "x"), ("D", "plain")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .to_vec()
        );
        let vars: BTreeMap<String, String> = env.into_iter().collect();
        assert_eq!(substitute("${A}-${Z:-def}-$C-$$-${Z}-${B-no}", &vars), "1-def-x-$--two words");
    }

    #[test]
    fn systemd_environment_words_group_quotes() {
        assert_eq!(split_words(r#""A=1 2" B=3"#), vec!["A=1 2".to_string(), "B=3".to_string()]);
    }
}
