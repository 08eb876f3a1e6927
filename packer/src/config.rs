//! `packer.toml`: parsed strictly (an unknown key is an error naming it), relative paths resolved
//! against the file's directory, and every source checked to exist before anything is written.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use restorer::layout::{self, FileKind};
use serde::Deserialize;

/// The commented template printed by `packer init`.
pub const TEMPLATE: &str = include_str!("template.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[bundle]`.
    pub bundle: BundleSection,
    /// `[[postgres]]` databases.
    #[serde(default)]
    pub postgres: Vec<PostgresSource>,
    /// `[[sqlite]]` databases.
    #[serde(default)]
    pub sqlite: Vec<SqliteSource>,
    /// `[[files]]` groups.
    #[serde(default)]
    pub files: Vec<FilesSource>,
    /// `[[volumes]]`: Docker named volumes, captured as files.
    #[serde(default)]
    pub volumes: Vec<VolumesSource>,
    /// `[[compose]]`: Docker Compose projects (their files, services and images).
    #[serde(default)]
    pub compose: Vec<ComposeSource>,
    /// `[docker]`.
    #[serde(default)]
    pub docker: DockerSection,
    /// `[services]`.
    #[serde(default)]
    pub services: ServicesSection,
    /// `[requirements]`.
    #[serde(default)]
    pub requirements: RequirementsSection,
    /// `[retention]`.
    #[serde(default)]
    pub retention: RetentionSection,
    /// `[schedule]`.
    #[serde(default)]
    pub schedule: ScheduleSection,
    /// `[notify]`.
    #[serde(default)]
    pub notify: crate::notify::NotifySection,
    /// `[ship]`.
    #[serde(default)]
    pub ship: ShipSection,
    /// `[serve]`: the web console (`packer serve`).
    #[serde(default)]
    pub serve: crate::serve::settings::ServeSection,
}

/// `[ship]`: where the daemon copies each new bundle (a backup on the disk that dies is no
/// backup).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipSection {
    /// `user@host:/path` destinations.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// ssh port.
    #[serde(default)]
    pub port: Option<u16>,
    /// ssh identity file.
    #[serde(default)]
    pub identity: Option<PathBuf>,
    /// Extra ssh `-o` options.
    #[serde(default)]
    pub ssh_options: Vec<String>,
    /// `[ship.s3]`: how to reach the `s3://` destinations.
    #[serde(default)]
    pub s3: S3Section,
}

/// `[ship.s3]`: the S3-compatible service the `s3://bucket/prefix` destinations live on (AWS,
/// Backblaze B2, Wasabi, MinIO, Ceph, Garage). Credentials come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`) or from
/// `credentials_file`; never from this file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    /// The service's URL (`https://s3.eu-central-003.backblazeb2.com`); AWS when unset.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region the requests are signed for (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// `endpoint/bucket/key` requests instead of `bucket.endpoint/key` (MinIO, Garage, Ceph).
    #[serde(default)]
    pub path_style: bool,
    /// An AWS shared-credentials file (`aws_access_key_id`, `aws_secret_access_key`), mode 0600.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Its section (default `default`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Bundles larger than this are uploaded in parts of this size ("16MiB", at least 5 MiB:
    /// S3's smallest part); each part is retried on its own.
    #[serde(default)]
    pub part_size: Option<String>,
    /// Refused: secrets never go into packer.toml (read by anyone who reads the configuration,
    /// and copied into bundles by `[[files]]` that capture /etc/packer). Caught here, rather
    /// than by `deny_unknown_fields`, so the error says where the secret goes instead.
    #[serde(default)]
    pub access_key_id: Option<toml::Value>,
    /// Refused (see `access_key_id`).
    #[serde(default)]
    pub secret_access_key: Option<toml::Value>,
    /// Refused (see `access_key_id`).
    #[serde(default)]
    pub session_token: Option<toml::Value>,
}

/// `[retention]`: restic's keep rules, limits, and what happens when space runs out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Keep the N newest.
    #[serde(default)]
    pub keep_last: u32,
    /// Newest of each of the last N hours.
    #[serde(default)]
    pub keep_hourly: u32,
    /// Newest of each of the last N days.
    #[serde(default)]
    pub keep_daily: u32,
    /// Newest of each of the last N ISO weeks.
    #[serde(default)]
    pub keep_weekly: u32,
    /// Newest of each of the last N months.
    #[serde(default)]
    pub keep_monthly: u32,
    /// Newest of each of the last N years.
    #[serde(default)]
    pub keep_yearly: u32,
    /// Every bundle within this duration of the newest ("14d").
    #[serde(default)]
    pub keep_within: Option<String>,
    /// Remove bundles older than this many days.
    #[serde(default)]
    pub max_age_days: Option<u32>,
    /// Remove oldest bundles until the total is at most this ("100GB").
    #[serde(default)]
    pub max_total_size: Option<String>,
    /// Remove oldest bundles until this much of the disk is free.
    #[serde(default)]
    pub min_free_space_percent: Option<f64>,
    /// Mark bundles due for deletion, notify, delete them this many hours later.
    #[serde(default)]
    pub notify_before_hours: Option<u32>,
    /// Before a backup: the free space (percent) under which the critical policy applies.
    #[serde(default)]
    pub critical_free_space_percent: Option<f64>,
    /// delete_oldest | stop_and_alert.
    #[serde(default)]
    pub critical_policy: CriticalPolicy,
    /// Apply retention to the copies on `s3://` destinations too: a remote copy goes when the
    /// local policy deleted its bundle, never the newest verified copy of a destination.
    #[serde(default)]
    pub remote: bool,
}

/// What to do when a backup would not fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalPolicy {
    /// Stop, and send an emergency notification.
    #[default]
    StopAndAlert,
    /// Delete the oldest unprotected bundles until it fits (never the only good bundle).
    DeleteOldest,
}

impl RetentionSection {
    /// The pure policy, with units parsed.
    pub fn policy(&self) -> Result<crate::retention::Policy> {
        Ok(crate::retention::Policy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self
                .keep_within
                .as_deref()
                .map(crate::units::parse_duration)
                .transpose()
                .context("[retention] keep_within")?,
            max_age: self.max_age_days.map(|d| chrono::Duration::days(d as i64)),
            max_total_size: self
                .max_total_size
                .as_deref()
                .map(crate::units::parse_size)
                .transpose()
                .context("[retention] max_total_size")?,
            min_free_space_percent: self.min_free_space_percent,
        })
    }
}

/// `[schedule]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// Standard 5-field cron expression, UTC.
    #[serde(default)]
    pub cron: Option<String>,
    /// Random delay added to each run, up to this ("10m").
    #[serde(default)]
    pub jitter: Option<String>,
    /// `packer status` fails when the last success is older than this ("26h").
    #[serde(default)]
    pub alert_after: Option<String>,
    /// The daemon verifies the new bundle when this many bundles were made since the last
    /// verification (1: every bundle).
    #[serde(default)]
    pub verify_every: Option<u32>,
    /// `"digest"` (default: every entry's sha256) or `"deep"` (restore into a throwaway
    /// PostgreSQL and compare counts and workflow checksums; needs PostgreSQL server binaries).
    #[serde(default)]
    pub verify_depth: Option<crate::catalog::VerifyDepth>,
}

/// `[bundle]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSection {
    /// Where bundles are written.
    pub output_dir: PathBuf,
    /// Name inside the bundle file name.
    #[serde(default = "default_name")]
    pub name: String,
    /// gzip level 1..9 (libdeflate's levels; 3 by default); with `compression = "zstd"`, the
    /// zstd level of the dumps, 1..19.
    #[serde(default = "default_level")]
    pub compression_level: u32,
    /// How PostgreSQL dumps are compressed: `gzip` (the bundle's own gzip, the default) or
    /// `zstd` (a zstd frame inside the entry, `databases/<name>.dump.zst`, which the bundle's
    /// restore decodes: nothing to install on the new host).
    #[serde(default)]
    pub compression: Compression,
    /// Seal every bundle to these age recipients (`age1...` X25519 keys, `ssh-ed25519 ...`
    /// public keys): each one alone can open it. Empty (and no `recipients_file`): plain bundles.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// A file of recipients, one per line (`#` comments), as `age -R` reads.
    #[serde(default)]
    pub recipients_file: Option<PathBuf>,
    /// Every recipient of `recipients` and `recipients_file`, checked at load.
    #[serde(skip)]
    pub sealed_to: Vec<String>,
}

impl BundleSection {
    /// The level of the bundle's gzip: `compression_level`, unless that is zstd's (then the
    /// default, for the files).
    pub fn gzip_level(&self) -> u32 {
        match self.compression {
            Compression::Gzip => self.compression_level,
            Compression::Zstd => default_level(),
        }
    }

    /// The parsed recipients (checked at load, so parsing cannot fail here).
    pub fn parsed_recipients(&self) -> Result<Vec<restorer::sealed::Recipient>> {
        self.sealed_to.iter().map(|r| restorer::sealed::parse_recipient(r).map_err(anyhow::Error::msg)).collect()
    }
}

/// `[bundle] compression`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Everything through the bundle's gzip.
    #[default]
    Gzip,
    /// PostgreSQL dumps compressed with zstd inside their entries; the rest through gzip.
    Zstd,
}

fn default_name() -> String {
    "n8n".into()
}
/// libdeflate's level 2: on the benchmark's data (pg_dump output, SQLite, small text files)
/// the same size as its level 3 (444.6 MB vs 444.8 MB) for 4-8% less CPU, and a little smaller
/// than pigz -6; level 1 is faster again for 4% more, level 6 1.75 times slower for 2.5% less
/// (measured for issue 10, see README's benchmark).
fn default_level() -> u32 {
    2
}

/// `[[postgres]]`: a database reached by `url`, or living in a container (`container`, or
/// `compose_service` of a compose project), dumped there with the container's own pg_dump.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSource {
    /// Name of the entry in the bundle.
    pub name: String,
    /// Connection URL (a server this host reaches), or a libpq key=value string; TLS through
    /// `sslmode`/`sslrootcert` as libpq (see `restorer::pg_tls`).
    #[serde(default)]
    pub url: Option<String>,
    /// The container the server runs in (name or id).
    #[serde(default)]
    pub container: Option<String>,
    /// The compose service the server runs as (with `compose_file` or `compose_dir`).
    #[serde(default)]
    pub compose_service: Option<String>,
    /// The compose file of `compose_service`'s project.
    #[serde(default)]
    pub compose_file: Option<PathBuf>,
    /// The project directory (instead of `compose_file`).
    #[serde(default)]
    pub compose_dir: Option<PathBuf>,
    /// The project name.
    #[serde(default)]
    pub compose_project: Option<String>,
    /// In a container: the database (default: the container's `POSTGRES_DB`, else its user).
    #[serde(default)]
    pub database: Option<String>,
    /// Directory holding pg_dump.
    #[serde(default)]
    pub pg_bin: Option<PathBuf>,
    /// `"n8n"`: this is n8n's database (workflows and credentials are inventoried).
    #[serde(default)]
    pub profile: Option<Profile>,
}

/// Where a compose project is: its file (the directory is the file's) or its directory
/// (holding compose.yaml / docker-compose.yml), and optionally its name (default
/// `COMPOSE_PROJECT_NAME` from the `.env`, else the directory's name, as compose does).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComposeRef {
    /// The compose file.
    pub file: Option<PathBuf>,
    /// The project directory.
    pub dir: Option<PathBuf>,
    /// The project name.
    pub project: Option<String>,
}

impl ComposeRef {
    /// True when it names a project (a file or a directory).
    pub fn is_set(&self) -> bool {
        self.file.is_some() || self.dir.is_some()
    }
}

/// Checks and resolves the three keys of a compose project; `keys` are their names in this
/// section (`compose_file`, `compose_dir`, `compose_project` or `file`, `dir`, `project`).
fn resolve_compose(
    base: &Path,
    section: &str,
    keys: [&str; 3],
    file: &mut Option<PathBuf>,
    dir: &mut Option<PathBuf>,
    project: &Option<String>,
) -> Result<()> {
    let [kf, kd, kp] = keys;
    if file.is_some() && dir.is_some() {
        bail!("{section}: {kf} and {kd} are both set; give one (the directory of {kf} is the project's)");
    }
    if project.is_some() && file.is_none() && dir.is_none() {
        bail!("{section}: {kp} needs {kf} or {kd}");
    }
    if let Some(f) = file {
        *f = resolve(base, f, &format!("{section} {kf}"))?;
    }
    if let Some(d) = dir {
        *d = resolve(base, d, &format!("{section} {kd}"))?;
    }
    if let Some(p) = project {
        check_project_name(&format!("{section} {kp}"), p)?;
    }
    Ok(())
}

/// A compose project name as compose accepts it: lower-case letters, digits, `-` and `_`.
fn check_project_name(key: &str, p: &str) -> Result<()> {
    let ok = !p.is_empty()
        && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        bail!("{key} = {p:?}: a compose project name is lower-case letters, digits, '-' and '_'");
    }
    Ok(())
}

/// A Docker volume name as `docker volume create` accepts it: letters, digits, `_`, `.`, `-`,
/// starting with a letter or digit.
fn check_volume_name(key: &str, n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        bail!("{key}: {n:?} is not a Docker volume name (letters, digits, '_', '.', '-')");
    }
    Ok(())
}

/// A path inside a volume: relative, its `.` components dropped; `None` when it is absolute,
/// empty or climbs with `..` (it must stay below the volume's mount point).
fn inside_volume(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// `[[volumes]]`: named volumes by name, and/or every named volume the containers of a compose
/// project mount.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumesSource {
    /// Volume names (`docker volume ls`).
    #[serde(default)]
    pub names: Vec<String>,
    /// The compose file of the project whose containers' volumes are captured.
    #[serde(default)]
    pub compose_file: Option<PathBuf>,
    /// The project directory (instead of `compose_file`).
    #[serde(default)]
    pub compose_dir: Option<PathBuf>,
    /// The project name.
    #[serde(default)]
    pub compose_project: Option<String>,
}

impl VolumesSource {
    /// Its compose project.
    pub fn compose(&self) -> ComposeRef {
        ComposeRef {
            file: self.compose_file.clone(),
            dir: self.compose_dir.clone(),
            project: self.compose_project.clone(),
        }
    }
}

/// `[[compose]]`: a compose project: its files (compose file(s), `.env`, the override file) are
/// captured, its services and the images they run recorded.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeSource {
    /// The compose file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The project directory (instead of `file`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The project name (default as compose: `COMPOSE_PROJECT_NAME` in `.env`, else the
    /// directory's name).
    #[serde(default)]
    pub project: Option<String>,
}

impl ComposeSource {
    /// Its compose project.
    pub fn compose(&self) -> ComposeRef {
        ComposeRef { file: self.file.clone(), dir: self.dir.clone(), project: self.project.clone() }
    }
}

/// `[docker]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSection {
    /// `docker save` the images of every `[[compose]]` service into the bundle, so the new host
    /// needs no registry.
    #[serde(default)]
    pub include_images: bool,
}

/// The compose keys of `[[postgres]]` and `[[volumes]]`.
const COMPOSE_KEYS: [&str; 3] = ["compose_file", "compose_dir", "compose_project"];

impl PostgresSource {
    /// Its compose project (set with `compose_service`).
    pub fn compose(&self) -> ComposeRef {
        ComposeRef {
            file: self.compose_file.clone(),
            dir: self.compose_dir.clone(),
            project: self.compose_project.clone(),
        }
    }

    /// True when the database lives in a container.
    pub fn in_container(&self) -> bool {
        self.url.is_none()
    }
}

/// What application a database belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// n8n (PostgreSQL or SQLite).
    N8n,
}

/// `[[sqlite]]`: a database file on this host, or inside a Docker named volume (`volume`, with
/// `path` relative inside it; with `compose_file`/`compose_dir`, `volume` is the name the
/// compose file gives it, as in `n8n_data:/home/node/.n8n`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSource {
    /// Name of the entry in the bundle.
    pub name: String,
    /// The database file (with `volume`: relative inside the volume, `database.sqlite`).
    pub path: PathBuf,
    /// The named volume holding it: its Docker name (`docker volume ls`), or with a compose
    /// project the volume's key in the compose file. Resolved with `docker volume inspect` when
    /// packing; the volume is captured with the database.
    #[serde(default)]
    pub volume: Option<String>,
    /// The compose file of `volume`'s project.
    #[serde(default)]
    pub compose_file: Option<PathBuf>,
    /// The project directory (instead of `compose_file`).
    #[serde(default)]
    pub compose_dir: Option<PathBuf>,
    /// The project name.
    #[serde(default)]
    pub compose_project: Option<String>,
    /// `"n8n"`: this is n8n's database (n8n's default is ~/.n8n/database.sqlite).
    #[serde(default)]
    pub profile: Option<Profile>,
}

impl SqliteSource {
    /// Its compose project (set with `volume`).
    pub fn compose(&self) -> ComposeRef {
        ComposeRef {
            file: self.compose_file.clone(),
            dir: self.compose_dir.clone(),
            project: self.compose_project.clone(),
        }
    }
}

/// `[[files]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSource {
    /// config, ssl or data.
    pub kind: FileKind,
    /// Files and directories.
    pub paths: Vec<PathBuf>,
}

/// `[services]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesSection {
    /// Started by the restore in this order.
    #[serde(default)]
    pub start: Vec<String>,
    /// Checked by the restore after starting them: "http://127.0.0.1:5678/healthz",
    /// "tcp://127.0.0.1:5432".
    #[serde(default)]
    pub health: Vec<String>,
    /// Where the restored n8n answers ("http://127.0.0.1:5678"): the restore asks its public
    /// API, with an API key of the restored database, for the workflows it serves and
    /// compares them with the bundle's.
    #[serde(default)]
    pub n8n_url: Option<String>,
}

/// `[requirements]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementsSection {
    /// System packages.
    #[serde(default)]
    pub packages: Vec<String>,
}

/// Makes `p` absolute against `base` and normalises `.` and `..` lexically (the manifest records
/// one plain absolute path per item; symbolic links in the path are not resolved).
fn resolve(base: &Path, p: &Path, key: &str) -> Result<PathBuf> {
    let joined = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir if !out.pop() => bail!("{key}: {} climbs above /", p.display()),
            _ => {}
        }
    }
    Ok(out)
}

/// A configuration that cannot be used: missing, unreadable or invalid (the text names the
/// file, the key and what to do). Its own type, so that packer exits with
/// [`crate::exit::CONFIG`] however much context is added above it.
#[derive(Debug)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

impl Config {
    /// Parses TOML text; `base` resolves relative paths. Any error is an [`Invalid`].
    pub fn parse(text: &str, base: &Path, origin: &str) -> Result<Config> {
        Config::parse_unmarked(text, base, origin).map_err(|e| Invalid(crate::error_text::chain(&e)).into())
    }

    fn parse_unmarked(text: &str, base: &Path, origin: &str) -> Result<Config> {
        let mut c: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {}", e.to_string().trim_end()))?;
        c.bundle.output_dir = resolve(base, &c.bundle.output_dir, "[bundle] output_dir")?;
        c.serve.resolve(base);
        layout::check_name("[bundle] name", &c.bundle.name)?;
        let (levels, of) = match c.bundle.compression {
            Compression::Gzip => (1..=9, "gzip"),
            Compression::Zstd => (1..=19, "zstd"),
        };
        if !levels.contains(&c.bundle.compression_level) {
            bail!(
                "[bundle] compression_level = {}: must be {}..{} for {of}",
                c.bundle.compression_level,
                levels.start(),
                levels.end()
            );
        }
        c.resolve_recipients(base)?;
        // Entry names of the databases: unique across [[postgres]] and [[sqlite]].
        let mut names = HashSet::new();
        c.check_postgres(base, &mut names)?;
        c.check_volumes(base)?;
        c.check_compose(base)?;
        c.check_sqlite(base, &mut names)?;
        for f in &mut c.files {
            for p in &mut f.paths {
                *p = resolve(base, p, "[[files]] paths")?;
            }
        }
        c.check_services()?;
        c.check_names()?;
        c.check_ship_and_schedule(base)?;
        Ok(c)
    }

    /// `[bundle] recipients` and the lines of `recipients_file`, each parsed: what a bundle is
    /// sealed to.
    fn resolve_recipients(&mut self, base: &Path) -> Result<()> {
        let mut sealed_to = self.bundle.recipients.clone();
        if let Some(f) = &self.bundle.recipients_file {
            let f = resolve(base, f, "[bundle] recipients_file")?;
            let text = fs::read_to_string(&f).with_context(|| format!("[bundle] recipients_file {}", f.display()))?;
            let lines = restorer::sealed::recipients_file_lines(&text);
            if lines.is_empty() {
                bail!(
                    "[bundle] recipients_file {}: no recipient in it (one age1... or ssh-ed25519 ... per line)",
                    f.display()
                );
            }
            sealed_to.extend(lines);
            self.bundle.recipients_file = Some(f);
        }
        for r in &sealed_to {
            restorer::sealed::parse_recipient(r).map_err(|e| anyhow::anyhow!("[bundle] recipients: {e}"))?;
        }
        self.bundle.sealed_to = sealed_to;
        Ok(())
    }

    /// Each `[[postgres]]`: a unique name, one way to reach it, the keys that go with it.
    fn check_postgres(&mut self, base: &Path, names: &mut HashSet<String>) -> Result<()> {
        for p in &mut self.postgres {
            layout::check_name("[[postgres]] name", &p.name)?;
            if !names.insert(format!("{}.dump", p.name)) {
                bail!("[[postgres]] name = {:?} appears twice", p.name);
            }
            let key = format!("[[postgres]] {}", p.name);
            let set = [p.url.is_some(), p.container.is_some(), p.compose_service.is_some()];
            match set.iter().filter(|s| **s).count() {
                0 => bail!("{key}: give url, container or compose_service (with compose_file or compose_dir)"),
                1 => {}
                _ => bail!("{key}: url, container and compose_service are exclusive; give one"),
            }
            resolve_compose(base, &key, COMPOSE_KEYS, &mut p.compose_file, &mut p.compose_dir, &p.compose_project)?;
            if p.compose_service.is_some() && !p.compose().is_set() {
                bail!("{key}: compose_service needs compose_file or compose_dir (where the project is)");
            }
            if p.compose_service.is_none() && (p.compose().is_set() || p.compose_project.is_some()) {
                bail!("{key}: compose_file, compose_dir and compose_project go with compose_service");
            }
            if p.url.is_some() && p.database.is_some() {
                bail!("{key}: database goes with container or compose_service; with url, the url names the database");
            }
            if p.url.is_none() && p.pg_bin.is_some() {
                bail!(
                    "{key}: pg_bin goes with url; a database in a container is dumped with the container's own pg_dump"
                );
            }
        }
        Ok(())
    }

    /// Each `[[volumes]]`: names and/or a compose project.
    fn check_volumes(&mut self, base: &Path) -> Result<()> {
        for (i, v) in self.volumes.iter_mut().enumerate() {
            let key = format!("[[volumes]] #{}", i + 1);
            resolve_compose(base, &key, COMPOSE_KEYS, &mut v.compose_file, &mut v.compose_dir, &v.compose_project)?;
            if v.names.is_empty() && !v.compose().is_set() {
                bail!(
                    "{key}: give names = [...] and/or compose_file (or compose_dir) to capture the project's volumes"
                );
            }
            for n in &v.names {
                check_volume_name(&format!("{key} names"), n)?;
            }
        }
        Ok(())
    }

    /// Each `[[compose]]`: a compose file or project directory.
    fn check_compose(&mut self, base: &Path) -> Result<()> {
        for (i, cs) in self.compose.iter_mut().enumerate() {
            let key = format!("[[compose]] #{}", i + 1);
            if !cs.compose().is_set() {
                bail!("{key}: give file (the compose file) or dir (the project directory)");
            }
            resolve_compose(base, &key, ["file", "dir", "project"], &mut cs.file, &mut cs.dir, &cs.project)?;
        }
        Ok(())
    }

    /// Each `[[sqlite]]`: a unique name, and its path on the host or inside a volume.
    fn check_sqlite(&mut self, base: &Path, names: &mut HashSet<String>) -> Result<()> {
        for s in &mut self.sqlite {
            layout::check_name("[[sqlite]] name", &s.name)?;
            if !names.insert(format!("{}.sqlite", s.name)) {
                bail!("[[sqlite]] name = {:?} appears twice", s.name);
            }
            let key = format!("[[sqlite]] {}", s.name);
            resolve_compose(base, &key, COMPOSE_KEYS, &mut s.compose_file, &mut s.compose_dir, &s.compose_project)?;
            match &s.volume {
                Some(v) => {
                    check_volume_name(&format!("{key} volume"), v)?;
                    s.path = inside_volume(&s.path).ok_or_else(|| {
                        anyhow::anyhow!(
                            "{key}: path = {:?} with volume: give the file's path inside the volume (\"database.sqlite\"), relative, without \"..\"",
                            s.path.display().to_string()
                        )
                    })?;
                }
                None if s.compose().is_set() => {
                    bail!("{key}: compose_file, compose_dir and compose_project go with volume (the compose file's name of the volume holding the database)")
                }
                None => s.path = resolve(base, &s.path, &format!("{key} path"))?,
            }
        }
        Ok(())
    }

    /// `[services]`: health URLs, n8n_url (with the one database of profile n8n it needs).
    fn check_services(&self) -> Result<()> {
        let n8n = self.postgres.iter().filter(|p| p.profile.is_some()).count()
            + self.sqlite.iter().filter(|s| s.profile.is_some()).count();
        if n8n > 1 {
            bail!("profile = \"n8n\" is set on {n8n} databases; a bundle describes one n8n");
        }
        for h in &self.services.health {
            if !(h.starts_with("http://") || h.starts_with("https://") || h.starts_with("tcp://")) {
                bail!("[services] health {h:?}: use http://, https:// or tcp://HOST:PORT");
            }
        }
        for h in self.services.health.iter().filter(|h| h.starts_with("http")) {
            restorer::http::Url::parse(h).with_context(|| format!("[services] health {h:?}"))?;
        }
        if let Some(u) = &self.services.n8n_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!(
                    "[services] n8n_url {u:?}: use http://HOST:PORT (n8n's base URL, as the restored host reaches it)"
                );
            }
            restorer::http::Url::parse(u).with_context(|| format!("[services] n8n_url {u:?}"))?;
            if n8n == 0 {
                bail!("[services] n8n_url is set but no database has profile = \"n8n\": the restore compares n8n's workflows with that database's");
            }
        }
        Ok(())
    }

    /// Package and service names the restore would refuse.
    fn check_names(&self) -> Result<()> {
        // The restore refuses a bundle with other names (restorer::names): say so here, where
        // the name can still be fixed.
        for p in &self.requirements.packages {
            if !restorer::names::is_package(p) {
                bail!(
                    "[requirements] packages {p:?}: not a Debian package name ([a-z0-9][a-z0-9+.-]+, optional :arch)"
                );
            }
        }
        for s in &self.services.start {
            if !restorer::names::is_unit(s) && !restorer::names::is_compose_file(s) {
                bail!("[services] start {s:?}: use a service name ([A-Za-z0-9:_.@-]+, not starting with '-') or a compose file's absolute path");
            }
        }
        Ok(())
    }

    /// `[ship]` destinations and `[ship.s3]`, remote retention, `[retention]`, `[schedule]`.
    fn check_ship_and_schedule(&mut self, base: &Path) -> Result<()> {
        for d in &self.ship.destinations {
            crate::ship::Target::parse(d).context("[ship] destinations")?;
        }
        crate::s3::check_section(&self.ship.s3)?;
        if let Some(f) = &mut self.ship.s3.credentials_file {
            *f = resolve(base, f, "[ship.s3] credentials_file")?;
        }
        if self.retention.remote && !self.ship.destinations.iter().any(|d| d.starts_with("s3://")) {
            bail!("[retention] remote = true, but no [ship] destination is s3://: remote retention applies to object storage copies only");
        }
        self.retention.policy()?;
        if let Some(cron) = &self.schedule.cron {
            crate::schedule::Cron::parse(cron).context("[schedule] cron")?;
        }
        for (key, v) in
            [("[schedule] jitter", &self.schedule.jitter), ("[schedule] alert_after", &self.schedule.alert_after)]
        {
            if let Some(v) = v {
                crate::units::parse_duration(v).context(key)?;
            }
        }
        Ok(())
    }

    /// Reads and parses a configuration file. Any error is an [`Invalid`].
    pub fn load(path: &Path) -> Result<Config> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading configuration {}", path.display()))
            .map_err(|e| Invalid(crate::error_text::chain(&e)))?;
        let base = fs::canonicalize(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        Config::parse(&text, &base, &path.display().to_string())
    }

    /// Checks that every file source exists, naming the key and path of the first that does not.
    pub fn check_sources_exist(&self) -> Result<()> {
        // A database inside a volume is looked for once the volume is found (sources::docker).
        for s in self.sqlite.iter().filter(|s| s.volume.is_none()) {
            if !s.path.is_file() {
                bail!("[[sqlite]] {} path {}: no such file", s.name, s.path.display());
            }
        }
        for f in &self.files {
            for p in &f.paths {
                fs::symlink_metadata(p)
                    .with_context(|| format!("[[files]] kind = {:?}: {}", f.kind.folder(), p.display()))?;
            }
        }
        let compose_refs = self
            .postgres
            .iter()
            .map(|p| (format!("[[postgres]] {}", p.name), p.compose()))
            .chain(self.sqlite.iter().map(|s| (format!("[[sqlite]] {}", s.name), s.compose())))
            .chain(self.volumes.iter().enumerate().map(|(i, v)| (format!("[[volumes]] #{}", i + 1), v.compose())))
            .chain(self.compose.iter().enumerate().map(|(i, c)| (format!("[[compose]] #{}", i + 1), c.compose())));
        for (key, r) in compose_refs {
            if let Some(f) = &r.file {
                if !f.is_file() {
                    bail!("{key}: compose file {}: no such file", f.display());
                }
            }
            if let Some(d) = &r.dir {
                if !d.is_dir() {
                    bail!("{key}: compose directory {}: no such directory", d.display());
                }
            }
        }
        if self.postgres.is_empty()
            && self.sqlite.is_empty()
            && self.files.is_empty()
            && self.volumes.is_empty()
            && self.compose.is_empty()
        {
            bail!("nothing to back up: the configuration has no [[postgres]], [[sqlite]], [[files]], [[volumes]] or [[compose]]");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template printed by `packer init` is itself a valid configuration.
    #[test]
    fn template_parses() {
        let c = Config::parse(TEMPLATE, Path::new("/etc/packer"), "template").unwrap();
        assert_eq!(c.bundle.name, "n8n");
        assert_eq!(c.postgres.len(), 1);
        assert_eq!(c.files[1].kind, FileKind::Ssl);
    }

    /// An unknown key is an error that names it.
    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[bundle]\noutput_dir = \"/x\"\nnmae = \"a\"\n", Path::new("/"), "p.toml").unwrap_err();
        assert!(format!("{e:#}").contains("nmae"), "{e:#}");
    }

    /// `verify_depth` takes only its words; another is an error naming the key and the words.
    #[test]
    fn verify_depth_is_a_word() {
        let parse = |d: &str| {
            Config::parse(
                &format!("[bundle]\noutput_dir = \"/x\"\n[schedule]\nverify_depth = \"{d}\"\n"),
                Path::new("/"),
                "p",
            )
        };
        assert_eq!(parse("deep").unwrap().schedule.verify_depth, Some(crate::catalog::VerifyDepth::Deep));
        assert_eq!(parse("digest").unwrap().schedule.verify_depth, Some(crate::catalog::VerifyDepth::Digest));
        let e = format!("{:#}", parse("quick").unwrap_err());
        assert!(e.contains("verify_depth") && e.contains("quick") && e.contains("digest") && e.contains("deep"), "{e}");
    }

    /// Relative paths resolve against the configuration's directory, `..` lexically.
    #[test]
    fn relative_paths() {
        let c = Config::parse(
            "[bundle]\noutput_dir = \"out\"\n[[files]]\nkind = \"data\"\npaths = [\"./d/x\"]\n",
            Path::new("/etc/p"),
            "p",
        )
        .unwrap();
        assert_eq!(c.bundle.output_dir, Path::new("/etc/p/out"));
        assert_eq!(c.files[0].paths[0], Path::new("/etc/p/d/x"));
        let c = Config::parse("[bundle]\noutput_dir = \"../out\"\n", Path::new("/etc/p"), "p").unwrap();
        assert_eq!(c.bundle.output_dir, Path::new("/etc/out"));
    }

    /// Recipients from the list and the file are checked at load; a bad one is named.
    #[test]
    fn recipients_are_checked_at_load() {
        let t = tempfile::tempdir().unwrap();
        let a = "age1vrzvvmucaj7cr30yr27q4pjksxm3l5xa2kngkw7uejn69xtz0a9qq62kyr";
        let ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOUIukqIBkvmccSCwcvHv8JM2VGHvSRyblhHrAAGTeC/ me@laptop";
        std::fs::write(t.path().join("r.txt"), format!("# team\n{ssh}\n\n")).unwrap();
        let text = format!("[bundle]\noutput_dir = \"/x\"\nrecipients = [\"{a}\"]\nrecipients_file = \"r.txt\"\n");
        let c = Config::parse(&text, t.path(), "p.toml").unwrap();
        assert_eq!(c.bundle.sealed_to, [a, ssh]);
        assert_eq!(c.bundle.parsed_recipients().unwrap().len(), 2);
        let e =
            Config::parse("[bundle]\noutput_dir = \"/x\"\nrecipients = [\"age1nope\"]\n", t.path(), "p").unwrap_err();
        assert!(format!("{e:#}").contains("[bundle] recipients") && format!("{e:#}").contains("age1nope"), "{e:#}");
        std::fs::write(t.path().join("empty.txt"), "# nobody\n").unwrap();
        let e = Config::parse("[bundle]\noutput_dir = \"/x\"\nrecipients_file = \"empty.txt\"\n", t.path(), "p")
            .unwrap_err();
        assert!(format!("{e:#}").contains("no recipient"), "{e:#}");
        assert!(parse("").unwrap().bundle.sealed_to.is_empty(), "no recipients: plain bundles");
    }

    fn parse(extra: &str) -> Result<Config> {
        Config::parse(&format!("[bundle]\noutput_dir = \"/x\"\n{extra}"), Path::new("/etc/p"), "p.toml")
    }

    /// The template's commented [ship] and [ship.s3] blocks, uncommented, are a valid
    /// configuration: every key it documents exists.
    #[test]
    fn template_ship_block_parses_uncommented() {
        let start = TEMPLATE.find("# [ship]\n").expect("template documents [ship]");
        let block: String = TEMPLATE[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("# "))
            // Keys and headers; not prose, nor a comment's continuation line.
            .filter(|l| l.starts_with('[') || (l.contains(" = ") && !l.starts_with([' ', '#'])))
            .map(|l| l.split("  #").next().unwrap().to_string() + "\n")
            .collect();
        let c = parse(&format!("[retention]\nremote = true\n{block}")).unwrap();
        assert_eq!(c.ship.destinations.len(), 2);
        assert!(c.ship.s3.path_style);
        assert_eq!(c.ship.s3.credentials_file.as_deref(), Some(Path::new("/etc/packer/s3-credentials")));
    }

    /// A secret in [ship.s3] is refused with where it goes instead; remote retention needs an
    /// s3:// destination; a destination that is neither ssh nor s3 is refused.
    #[test]
    fn ship_s3_errors_say_what_to_do() {
        let e = format!("{:#}", parse("[ship.s3]\nsecret_access_key = \"wJalrXUtnFEMI\"\n").unwrap_err());
        assert!(e.contains("AWS_SECRET_ACCESS_KEY") && !e.contains("wJalrXUtnFEMI"), "{e}");
        let e = format!("{:#}", parse("[retention]\nremote = true\n").unwrap_err());
        assert!(e.contains("s3://"), "{e}");
        assert!(parse("[ship]\ndestinations = [\"ftp://x/y\"]\n").is_err());
        assert!(parse("[ship]\ndestinations = [\"s3://bucket/n8n\"]\n[ship.s3]\nendpoint = \"s3.example\"\n").is_err());
        let c =
            parse("[ship]\ndestinations = [\"s3://bucket/n8n\"]\n[ship.s3]\ncredentials_file = \"creds\"\n").unwrap();
        assert_eq!(c.ship.s3.credentials_file.as_deref(), Some(Path::new("/etc/p/creds")));
    }

    /// The Docker keys: a database in a compose service or a container, volumes by name or by
    /// project, a compose project, `[docker] include_images`; relative paths resolve.
    #[test]
    fn docker_sources_parse() {
        let c = parse(
            "[[postgres]]\nname = \"n8n\"\ncompose_service = \"postgres\"\ncompose_file = \"n8n/docker-compose.yml\"\ncompose_project = \"n8n\"\nprofile = \"n8n\"\n\
             [[postgres]]\nname = \"other\"\ncontainer = \"pg-1\"\ndatabase = \"shop\"\n\
             [[volumes]]\nnames = [\"n8n_n8n_storage\"]\n[[volumes]]\ncompose_dir = \"n8n\"\n\
             [[compose]]\nfile = \"/opt/n8n/docker-compose.yml\"\nproject = \"n8n\"\n[docker]\ninclude_images = true\n",
        )
        .unwrap();
        assert_eq!(c.postgres[0].compose().file.as_deref(), Some(Path::new("/etc/p/n8n/docker-compose.yml")));
        assert!(c.postgres[0].url.is_none() && c.postgres[0].in_container());
        assert_eq!(c.postgres[1].database.as_deref(), Some("shop"));
        assert_eq!(c.volumes[1].compose().dir.as_deref(), Some(Path::new("/etc/p/n8n")));
        assert_eq!(c.compose[0].compose().project.as_deref(), Some("n8n"));
        assert!(c.docker.include_images);
    }

    /// `[[sqlite]]` inside a volume: `path` stays relative (it is joined to the volume's mount
    /// point when packing), `./` dropped; a compose project resolves against the configuration's
    /// directory. A host path is made absolute as before.
    #[test]
    fn sqlite_in_a_volume_parses() {
        let c = parse(
            "[[sqlite]]\nname = \"n8n\"\nvolume = \"n8n_data\"\npath = \"./database.sqlite\"\ncompose_dir = \"n8n\"\nprofile = \"n8n\"\n\
             [[sqlite]]\nname = \"other\"\nvolume = \"app_db\"\npath = \"sub/app.db\"\n\
             [[sqlite]]\nname = \"host\"\npath = \"data/h.db\"\n",
        )
        .unwrap();
        assert_eq!(c.sqlite[0].path, Path::new("database.sqlite"));
        assert_eq!(c.sqlite[0].volume.as_deref(), Some("n8n_data"));
        assert_eq!(c.sqlite[0].compose().dir.as_deref(), Some(Path::new("/etc/p/n8n")));
        assert_eq!(c.sqlite[1].path, Path::new("sub/app.db"));
        assert!(!c.sqlite[1].compose().is_set());
        assert_eq!(c.sqlite[2].path, Path::new("/etc/p/data/h.db"));
        // Not looked for on the host: the volume is found when packing.
        let mut c = c;
        c.sqlite.retain(|s| s.name == "other");
        c.check_sources_exist().unwrap();
    }

    /// Each wrong combination is a one-line error naming the section and the keys at fault.
    #[test]
    fn docker_source_errors_name_the_key() {
        let cases = [
            ("[[postgres]]\nname = \"a\"\n", "[[postgres]] a: give url, container or compose_service"),
            ("[[postgres]]\nname = \"a\"\nurl = \"postgresql://h/a\"\ncontainer = \"c\"\n", "exclusive"),
            ("[[postgres]]\nname = \"a\"\ncompose_service = \"postgres\"\n", "compose_service needs compose_file or compose_dir"),
            ("[[postgres]]\nname = \"a\"\ncontainer = \"c\"\ncompose_file = \"x.yml\"\n", "go with compose_service"),
            ("[[postgres]]\nname = \"a\"\nurl = \"postgresql://h/a\"\ndatabase = \"b\"\n", "database goes with container"),
            ("[[postgres]]\nname = \"a\"\ncontainer = \"c\"\npg_bin = \"/usr/bin\"\n", "pg_bin goes with url"),
            ("[[postgres]]\nname = \"a\"\ncompose_service = \"p\"\ncompose_file = \"x\"\ncompose_dir = \"y\"\n", "compose_file and compose_dir are both set"),
            ("[[postgres]]\nname = \"a\"\ncompose_service = \"p\"\ncompose_dir = \"y\"\ncompose_project = \"Bad Name\"\n", "compose_project = \"Bad Name\""),
            ("[[volumes]]\n", "[[volumes]] #1: give names"),
            ("[[volumes]]\nnames = [\"../etc\"]\n", "not a Docker volume name"),
            ("[[volumes]]\nnames = [\"v\"]\nsize = 1\n", "size"),
            ("[[compose]]\nproject = \"p\"\n", "[[compose]] #1: give file"),
            ("[[compose]]\nfile = \"a\"\ndir = \"b\"\n", "[[compose]] #1: file and dir are both set"),
            ("[docker]\ninclude_image = true\n", "include_image"),
            ("[[sqlite]]\nname = \"a\"\nvolume = \"v\"\npath = \"/var/lib/a.db\"\n", "[[sqlite]] a: path = \"/var/lib/a.db\" with volume"),
            ("[[sqlite]]\nname = \"a\"\nvolume = \"v\"\npath = \"../a.db\"\n", "without \"..\""),
            ("[[sqlite]]\nname = \"a\"\nvolume = \"../v\"\npath = \"a.db\"\n", "[[sqlite]] a volume: \"../v\" is not a Docker volume name"),
            ("[[sqlite]]\nname = \"a\"\npath = \"a.db\"\ncompose_dir = \"n8n\"\n", "go with volume"),
            ("[[sqlite]]\nname = \"a\"\nvolume = \"v\"\npath = \"a.db\"\ncompose_project = \"p\"\n", "[[sqlite]] a: compose_project needs compose_file or compose_dir"),
        ];
        for (text, want) in cases {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(want), "{text:?}: {e}");
            // The toml crate's own errors (unknown keys) quote the line; ours are one line.
            if !e.contains("unknown field") {
                assert_eq!(e.lines().count(), 1, "{text:?}: {e}");
            }
        }
    }
}
