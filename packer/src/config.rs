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
    pub notify: NotifySection,
    /// `[ship]`.
    #[serde(default)]
    pub ship: ShipSection,
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
    pub verify_depth: Option<String>,
}

/// `[notify]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// URL to POST events to.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Shape of the webhook body.
    #[serde(default)]
    pub format: crate::notify::Format,
    /// Command run with the event as JSON on stdin (`sh -c`).
    #[serde(default)]
    pub command: Option<String>,
    /// error: only failures and warnings; info: every event.
    #[serde(default)]
    pub level: crate::notify::Level,
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
    /// gzip level 1..9.
    #[serde(default = "default_level")]
    pub compression_level: u32,
}

fn default_name() -> String {
    "n8n".into()
}
fn default_level() -> u32 {
    6
}

/// `[[postgres]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSource {
    /// Name of the entry in the bundle.
    pub name: String,
    /// Connection URL.
    pub url: String,
    /// Directory holding pg_dump.
    #[serde(default)]
    pub pg_bin: Option<PathBuf>,
    /// `"n8n"`: this is n8n's database (workflows and credentials are inventoried).
    #[serde(default)]
    pub profile: Option<Profile>,
}

/// What application a database belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// n8n (PostgreSQL or SQLite).
    N8n,
}

/// `[[sqlite]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSource {
    /// Name of the entry in the bundle.
    pub name: String,
    /// The database file.
    pub path: PathBuf,
    /// `"n8n"`: this is n8n's database (n8n's default is ~/.n8n/database.sqlite).
    #[serde(default)]
    pub profile: Option<Profile>,
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

impl Config {
    /// Parses TOML text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path, origin: &str) -> Result<Config> {
        let mut c: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {}", e.to_string().trim_end()))?;
        c.bundle.output_dir = resolve(base, &c.bundle.output_dir, "[bundle] output_dir")?;
        layout::check_name("[bundle] name", &c.bundle.name)?;
        if !(1..=9).contains(&c.bundle.compression_level) {
            bail!("[bundle] compression_level = {}: must be 1..9", c.bundle.compression_level);
        }
        let mut names = HashSet::new();
        for p in &c.postgres {
            layout::check_name("[[postgres]] name", &p.name)?;
            if !names.insert(format!("{}.dump", p.name)) {
                bail!("[[postgres]] name = {:?} appears twice", p.name);
            }
        }
        for s in &mut c.sqlite {
            layout::check_name("[[sqlite]] name", &s.name)?;
            if !names.insert(format!("{}.sqlite", s.name)) {
                bail!("[[sqlite]] name = {:?} appears twice", s.name);
            }
            s.path = resolve(base, &s.path, &format!("[[sqlite]] {} path", s.name))?;
        }
        for f in &mut c.files {
            for p in &mut f.paths {
                *p = resolve(base, p, "[[files]] paths")?;
            }
        }
        let n8n = c.postgres.iter().filter(|p| p.profile.is_some()).count()
            + c.sqlite.iter().filter(|s| s.profile.is_some()).count();
        if n8n > 1 {
            bail!("profile = \"n8n\" is set on {n8n} databases; a bundle describes one n8n");
        }
        for h in &c.services.health {
            if !(h.starts_with("http://") || h.starts_with("https://") || h.starts_with("tcp://")) {
                bail!("[services] health {h:?}: use http://, https:// or tcp://HOST:PORT");
            }
        }
        for h in c.services.health.iter().filter(|h| h.starts_with("http")) {
            restorer::http::Url::parse(h).with_context(|| format!("[services] health {h:?}"))?;
        }
        // The restore refuses a bundle with other names (restorer::names): say so here, where
        // the name can still be fixed.
        for p in &c.requirements.packages {
            if !restorer::names::is_package(p) {
                bail!(
                    "[requirements] packages {p:?}: not a Debian package name ([a-z0-9][a-z0-9+.-]+, optional :arch)"
                );
            }
        }
        for s in &c.services.start {
            if !restorer::names::is_unit(s) && !restorer::names::is_compose_file(s) {
                bail!("[services] start {s:?}: use a service name ([A-Za-z0-9:_.@-]+, not starting with '-') or a compose file's absolute path");
            }
        }
        for d in &c.ship.destinations {
            crate::ship::Destination::parse(d).context("[ship] destinations")?;
        }
        c.retention.policy()?;
        if let Some(cron) = &c.schedule.cron {
            crate::schedule::Cron::parse(cron).context("[schedule] cron")?;
        }
        if let Some(d) = &c.schedule.verify_depth {
            if d != "digest" && d != "deep" {
                bail!("[schedule] verify_depth = {d:?}: use \"digest\" or \"deep\"");
            }
        }
        for (key, v) in [("[schedule] jitter", &c.schedule.jitter), ("[schedule] alert_after", &c.schedule.alert_after)]
        {
            if let Some(v) = v {
                crate::units::parse_duration(v).context(key)?;
            }
        }
        Ok(c)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = fs::read_to_string(path).with_context(|| format!("reading configuration {}", path.display()))?;
        let base = fs::canonicalize(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        Config::parse(&text, &base, &path.display().to_string())
    }

    /// Checks that every file source exists, naming the key and path of the first that does not.
    pub fn check_sources_exist(&self) -> Result<()> {
        for s in &self.sqlite {
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
        if self.postgres.is_empty() && self.sqlite.is_empty() && self.files.is_empty() {
            bail!("nothing to back up: the configuration has no [[postgres]], [[sqlite]] or [[files]]");
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
}
