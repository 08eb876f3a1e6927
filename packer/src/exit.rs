//! Exit codes of the `packer` binary: defined once, printed at the end of `packer --help` and in
//! the README, used by `main`, every command and the tests (as `restorer::exit` for `restore`).
//!
//! 0 to 3 mean what they mean for `restore` (3: the bundle is corrupt), and 4 and 5 are left to
//! it: `packer ship --restore` ends with the remote `./restore`'s own code. packer's own codes
//! start at 10, as restic's (10: no repository, 11: locked), so a script can tell them apart.

use crate::{config, lock};

/// Success; `status`: healthy.
pub const OK: i32 = 0;
/// The command failed (the message says why), e.g. the backup failed; `status`: an alert that
/// the backups are at risk (no success within `[schedule] alert_after` or none yet, the last
/// backup or verification failed, bundles missing from disk).
pub const FAILED: i32 = 1;
/// The command line was wrong (clap's own code).
pub const USAGE: i32 = 2;
/// `verify`: the bundle is corrupt (a digest, an entry, the archive, or the whole file against
/// its `.sha256` sidecar); as `restore verify`'s 3.
pub const CORRUPT: i32 = 3;
/// The configuration file is missing, unreadable or invalid (the message names the key).
pub const CONFIG: i32 = 10;
/// Another packer run holds the output directory's lock (the message names it): nothing was
/// done; try again when it has finished.
pub const LOCKED: i32 = 11;
/// `status`: backups are succeeding but something asks for attention (the last ship failed,
/// nothing shipped yet to the `[ship] destinations`, the catalog was damaged and rebuilt).
pub const WARNING: i32 = 12;

/// The table shown at the end of `packer --help` (and in the README).
pub const HELP_TABLE: &str = "\
Exit codes:
  0   success; status: healthy
  1   failed (the message says why); status: backups at risk (no success within alert_after,
      the last backup or verification failed, bundles missing)
  2   wrong command line
  3   verify: the bundle is corrupt (a digest, an entry, the archive or the sidecar digest)
  4-5 ship --restore only: once the remote ./restore has run, packer ends with its code,
      whatever it is (see restore --help)
  10  the configuration file is missing, unreadable or invalid
  11  another packer run holds the output directory's lock; nothing was done
  12  status: backups succeed but something needs attention (a failed or missing ship, a
      rebuilt catalog)";

/// The code an error ends packer with: [`CONFIG`] or [`LOCKED`] when the chain holds that kind
/// of error (however much context was added above it), [`FAILED`] otherwise.
pub fn code_of(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<config::Invalid>().is_some() {
        CONFIG
    } else if e.downcast_ref::<lock::Held>().is_some() {
        LOCKED
    } else {
        FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    /// Context added on the way up does not hide the kind of error.
    #[test]
    fn code_of_sees_through_context() {
        let held = anyhow::Error::new(lock::Held("create (pid 1) holds /x/.packer.lock".into()));
        assert_eq!(code_of(&held.context("taking the lock").context("prune")), LOCKED);
        let bad = anyhow::Error::new(config::Invalid("p.toml: unknown field `nmae`".into()));
        assert_eq!(code_of(&bad.context("loading")), CONFIG);
        assert_eq!(code_of(&anyhow::anyhow!("pg_dump failed")), FAILED);
        let e = Err::<(), _>(std::io::Error::other("disk")).context("writing").unwrap_err();
        assert_eq!(code_of(&e), FAILED);
    }

    /// The table lists every code defined above.
    #[test]
    fn help_table_lists_every_code() {
        for code in [OK, FAILED, USAGE, CORRUPT, CONFIG, LOCKED, WARNING] {
            assert!(HELP_TABLE.lines().any(|l| l.trim_start().starts_with(&format!("{code} "))), "{code}");
        }
    }
}
