//! A bare host before the plan can be made: the packages the bundle needs installed first (its
//! PostgreSQL server among them, so that the plan can look at it), and the local cluster reached
//! through a temporary superuser.

use std::path::{Path, PathBuf};

use crate::log::Level;
use crate::steps::local_pg::TempSuperuser;
use crate::steps::system;
use crate::Result;

use super::{Options, Verified};

/// Whether this restore goes to the local cluster a bare host has (or gets from the bundle's
/// packages): no server named, host databases in the bundle, and run as root (which reaches
/// the cluster as the `postgres` user).
pub fn uses_local_postgres(opts: &Options, verified: &Verified) -> bool {
    opts.postgres_url.is_none() && verified.needs_host_postgres() && crate::sys::is_root()
}

/// Installs the packages the host lacks before anything else (a bare host has no PostgreSQL
/// to plan against yet), after `confirm` agreed to the list; the full prerequisites step then
/// finds nothing to do. What the packages put at the bundle's targets (a package's default
/// config) is recorded in `opts.installed_defaults`: theirs, not the operator's data, so the
/// plan replaces it without `--overwrite`.
pub fn install_first(
    opts: &mut Options,
    verified: &Verified,
    confirm: impl FnOnce(&[String]) -> Result<()>,
    log: &mut dyn FnMut(Level, &str),
) -> Result<()> {
    let m = &verified.manifest;
    crate::names::check(m)?;
    let Some(missing) = system::missing_packages(&m.requirements).filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    confirm(&missing)?;
    let targets: Vec<PathBuf> = m
        .files
        .iter()
        .map(|f| f.path.clone())
        .chain(m.sqlite.iter().map(|s| s.path.clone()))
        .filter_map(|p| crate::layout::target_path(&opts.root, &p).ok())
        .collect();
    let before: Vec<bool> = targets.iter().map(|t| t.symlink_metadata().is_ok()).collect();
    log(Level::Info, &format!("installing prerequisites: {}", missing.join(" ")));
    system::install(&missing)?;
    opts.installed_defaults = targets
        .into_iter()
        .zip(before)
        .filter(|(t, was)| !was && t.symlink_metadata().is_ok())
        .map(|(t, _)| t)
        .collect();
    Ok(())
}

/// Fresh host, run as root, no URL given: the local cluster at `socket`/`port` reached through
/// a temporary superuser (peer authentication lets only the OS user postgres in on the socket),
/// whose URL goes into `opts.postgres_url`; dropped with the returned value. A freshly
/// installed cluster may not be running (no systemd, policy-rc.d): with `may_start` it is
/// started once. `None`, with a notice, when it cannot be reached: the plan then says why.
pub fn reach_local_postgres(
    opts: &mut Options,
    socket: &Path,
    port: u16,
    may_start: bool,
    log: &mut dyn FnMut(Level, &str),
) -> Option<TempSuperuser> {
    let attempt = || TempSuperuser::create(socket, port);
    let created = attempt().or_else(|e| {
        if !may_start {
            return Err(e);
        }
        log(Level::Notice, &format!("the local PostgreSQL does not answer ({e}); starting it"));
        system::start_postgres().and_then(|_| {
            std::thread::sleep(std::time::Duration::from_secs(2));
            attempt()
        })
    });
    match created {
        Ok(t) => {
            opts.postgres_url = Some(t.url.clone());
            Some(t)
        }
        Err(e) => {
            log(
                Level::Notice,
                &format!(
                    "note: the local PostgreSQL at {}:{} could not be reached as postgres ({e})",
                    socket.display(),
                    port
                ),
            );
            None
        }
    }
}
