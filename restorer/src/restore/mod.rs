//! The restore as a whole: verify, observe, plan, then (with consent) checkpoint, install, put
//! files and databases back, validate, start services, report; roll back if a step fails.

mod execute;
pub mod host;
mod interrupted;
mod options;
mod plan_text;
mod prepare;

use std::path::{Path, PathBuf};

pub use execute::execute;
pub use interrupted::{interrupted, roll_back_interrupted};
pub use options::Options;
pub use prepare::{check_blockers, check_refusals, prepare, verify, Located, Prepared, Verified};

/// The default server for a restore: the local socket, as the `postgres` user.
pub const DEFAULT_POSTGRES_URL: &str = "host=/var/run/postgresql user=postgres dbname=postgres";

/// Why a databases-only restore installs, creates, starts and stops nothing.
pub const DATABASES_ONLY: &str =
    "--database: a databases-only restore; no file, package, account or service is touched and the live deployment is left as it is";

/// The bundle directory to use when none is given: where this binary sits, if a manifest is
/// there (the operator ran `./restore` from the extracted bundle), else the current directory.
pub fn default_bundle_dir() -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
    match beside {
        Some(d) if d.join(crate::layout::MANIFEST).is_file() => d,
        _ => PathBuf::from("."),
    }
}
