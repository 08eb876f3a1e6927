//! What the operator asked for, and the rules that follow from it (what a restore under another
//! root or a databases-only restore leaves alone).

use std::path::{Path, PathBuf};

use crate::select::Rename;

use super::DATABASES_ONLY;

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The extracted bundle.
    pub bundle_dir: PathBuf,
    /// Where `/` is (another directory for tests and chroots).
    pub root: PathBuf,
    /// Target PostgreSQL server.
    pub postgres_url: Option<String>,
    /// Replace existing data (kept in the checkpoint).
    pub overwrite: bool,
    /// Install prerequisites (no `--no-install`). Under a `--root` other than `/` only with
    /// `install_packages` as well: see [`Options::installs`].
    pub install: bool,
    /// `--install-packages`: install even under a `--root` other than `/`.
    pub install_packages: bool,
    /// Start services (no `--no-services`). Under a `--root` other than `/` only with
    /// `start_services` as well: see [`Options::starts_services`].
    pub services: bool,
    /// `--start-services`: start services and run health checks even under another `--root`.
    pub start_services: bool,
    /// Checkpoint directory (default under the root's /var/lib/n8n-restore/checkpoints).
    pub checkpoint_dir: Option<PathBuf>,
    /// Directory holding pg_restore.
    pub pg_bin: Option<PathBuf>,
    /// Go on despite an n8n key or version conflict on the target.
    pub force: bool,
    /// Tries of each health check (2 s apart).
    pub health_tries: u32,
    /// Targets that appeared while the prerequisites were installed (package defaults).
    pub installed_defaults: std::collections::HashSet<PathBuf>,
    /// `--database NAME=NEWNAME`: when not empty, a databases-only restore of exactly these
    /// databases, each under its new name ([`crate::select`]).
    pub databases: Vec<Rename>,
    /// With `databases`: the operator named a server (`--postgres-url`), and every named
    /// database goes there, containers or not (a temporary superuser's URL does not count).
    pub databases_to_url: bool,
}

impl Options {
    fn real_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Whether this is a databases-only restore (`--database`).
    pub fn databases_only(&self) -> bool {
        !self.databases.is_empty()
    }

    /// Whether packages are installed: a restore under another root changes nothing of the
    /// host itself unless asked explicitly; a databases-only restore installs nothing.
    pub fn installs(&self) -> bool {
        self.install && (self.real_root() || self.install_packages) && !self.databases_only()
    }

    /// Whether services are started and health-checked (the same rule).
    pub fn starts_services(&self) -> bool {
        self.services && (self.real_root() || self.start_services) && !self.databases_only()
    }

    /// Why packages are not installed, when they are not.
    pub fn install_skipped(&self) -> Option<&'static str> {
        if self.databases_only() {
            Some(DATABASES_ONLY)
        } else if !self.install {
            Some("--no-install")
        } else if !self.installs() {
            Some("--root is not /: nothing is installed on this host without --install-packages")
        } else {
            None
        }
    }

    /// Why services are not started, when they are not.
    pub fn services_skipped(&self) -> Option<&'static str> {
        if self.databases_only() {
            Some(DATABASES_ONLY)
        } else if !self.services {
            Some("--no-services")
        } else if !self.starts_services() {
            Some("--root is not /: no service is started (nor health-checked) without --start-services")
        } else {
            None
        }
    }
}
