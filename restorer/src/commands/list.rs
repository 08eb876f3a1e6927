//! `restore list`: what the bundle holds, from its verified manifest.

use std::path::Path;

use crate::{exit, verify, Error, Result};

/// What to list.
pub(super) struct What {
    pub(super) workflows: bool,
    pub(super) search: Option<String>,
    pub(super) active: bool,
    pub(super) credentials: bool,
}

/// Prints the inventory, or the n8n workflows (filtered) or credentials (never secrets).
pub(super) fn run(dir: &Path, what: What, json: bool) -> Result<i32> {
    let m = verify::verify_entries(dir, &[])?;
    if !what.workflows && !what.credentials {
        if json {
            println!("{}", m.to_json());
        } else {
            print!("{}", crate::inventory::render(&m));
        }
        return Ok(exit::OK);
    }
    let info = m.n8n.as_ref().ok_or_else(|| Error::Other("this bundle has no n8n inventory".into()))?;
    let list = crate::n8n::filter_workflows(info, what.search.as_deref(), what.active);
    match (what.workflows, json) {
        (true, true) => println!("{}", serde_json::to_string_pretty(&list).expect("serialises")),
        (true, false) => print!("{}", crate::n8n::render_workflows(&list)),
        (false, true) => println!("{}", serde_json::to_string_pretty(&info.credentials).expect("serialises")),
        (false, false) => print!("{}", crate::n8n::render_credentials(info)),
    }
    Ok(exit::OK)
}
