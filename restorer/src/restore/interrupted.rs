//! Restores that were interrupted (power cut, kill): found by their unfinished journals and
//! rolled back before a new restore starts.

use std::path::{Path, PathBuf};

use crate::checkpoint::Checkpoint;
use crate::pg::PgTarget;
use crate::steps;
use crate::{Error, Result};

use super::{Options, DEFAULT_POSTGRES_URL};

fn checkpoint_base(opts: &Options) -> PathBuf {
    match &opts.checkpoint_dir {
        Some(d) => d.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
        None => opts.root.join(crate::layout::CHECKPOINTS_DIR),
    }
}

/// Checkpoints of interrupted restores on this target: journals of this very root only, and
/// under the default base only when that base lies inside the root (not through a link out).
pub fn interrupted(opts: &Options) -> Vec<Checkpoint> {
    let base = checkpoint_base(opts);
    if opts.checkpoint_dir.is_none() && steps::files::check_inside_root(&base.join("x"), &opts.root).is_err() {
        return Vec::new();
    }
    let same_root = |c: &Checkpoint| match (std::fs::canonicalize(&c.root), std::fs::canonicalize(&opts.root)) {
        (Ok(a), Ok(b)) => a == b,
        _ => c.root == opts.root,
    };
    Checkpoint::interrupted(&base).into_iter().filter(same_root).collect()
}

/// Rolls back every interrupted restore, oldest last-change first. Refuses to go on when one
/// cannot be fully undone.
pub fn roll_back_interrupted(opts: &Options) -> Result<Vec<String>> {
    let pg = match &opts.postgres_url {
        Some(u) => Some(PgTarget::parse(u)?),
        None => PgTarget::parse(DEFAULT_POSTGRES_URL).ok(),
    };
    let mut lines = Vec::new();
    for mut cp in interrupted(opts).into_iter().rev() {
        let n = cp.changes.len();
        let failures = cp.rollback(pg.as_ref());
        if !failures.is_empty() {
            return Err(Error::Refused(format!(
                "an interrupted restore left {} and it could not be fully rolled back: {}. Fix that, then `restore rollback {}`",
                cp.dir.display(),
                failures.join("; "),
                cp.dir.display()
            )));
        }
        lines.push(format!(
            "an interrupted restore left {}: rolled back its {n} change(s) before starting again",
            cp.dir.display()
        ));
    }
    Ok(lines)
}
