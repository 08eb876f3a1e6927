//! `restore rollback CHECKPOINT`: undo a restore from its journal.

use std::path::Path;

use super::term;
use crate::checkpoint::Checkpoint;
use crate::log::Level;
use crate::pg::PgTarget;
use crate::{exit, Result};

/// Puts back what the restore journaled in `checkpoint`; exit 1 when something could not be undone.
pub(super) fn run(checkpoint: &Path, postgres_url: Option<&str>) -> Result<i32> {
    let mut cp = Checkpoint::load(checkpoint)?;
    if cp.rolled_back {
        println!("{}: already rolled back", checkpoint.display());
        return Ok(exit::OK);
    }
    let pg = postgres_url.map(PgTarget::parse).transpose()?;
    let failures = cp.rollback(pg.as_ref());
    if failures.is_empty() {
        println!("rolled back {} change(s) from {}", cp.changes.len(), checkpoint.display());
        return Ok(exit::OK);
    }
    for f in &failures {
        term().log(Level::Warning, &format!("could not undo: {f}"));
    }
    Ok(exit::FAILED)
}
