//! Exit codes of the `restore` binary: defined once, printed in `--help`, used by tests.

/// Restored and validated (or: verification passed, plan printed, rollback done).
pub const OK: i32 = 0;
/// A step failed during the restore; what had been changed was rolled back (the message says so).
pub const FAILED: i32 = 1;
/// The command line was wrong (clap's own code).
pub const USAGE: i32 = 2;
/// The bundle is corrupt: a digest does not match, an entry is missing, or the archive is damaged.
pub const CORRUPT: i32 = 3;
/// The restore ran but the result does not match the manifest (row counts, file digests).
pub const VALIDATION_FAILED: i32 = 4;
/// A safety check refused to go on before anything was changed (existing data, unsafe path,
/// no confirmation, unsupported format version, a sealed bundle without the identity or with one
/// that matches none of its recipients).
pub const REFUSED: i32 = 5;

/// The table shown at the end of `restore --help`.
pub const HELP_TABLE: &str = "\
Exit codes:
  0  restored and validated (verify: every digest matches)
  1  a step failed; every change already made was rolled back (the message says so)
  2  wrong command line
  3  bundle corrupt: a digest, an entry or the archive itself is bad; nothing was changed
  4  restored, but validation against the manifest failed (see restore-report.json)
  5  refused by a safety check before anything was changed (existing data without --overwrite,
     unsafe path in the bundle, no confirmation, unsupported format version, a sealed bundle
     without --identity or with a key that is none of its recipients)";
