//! `restore file PATH --to DEST`: one captured file back.

use std::path::Path;

use crate::{exit, take, verify, Result};

/// Writes the bundle's copy of `path` to `to`.
pub(super) fn run(dir: &Path, path: &Path, to: &Path, force: bool) -> Result<i32> {
    let m = verify::verify_entries(dir, &[])?;
    println!("{}", take::file(dir, &m, path, to, force)?);
    Ok(exit::OK)
}
