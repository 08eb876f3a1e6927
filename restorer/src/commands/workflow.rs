//! `restore workflow ID|NAME`: one n8n workflow back, to a file or into a running n8n.

use std::path::{Path, PathBuf};

use crate::{exit, take, verify, Result};

/// Where the workflow goes.
pub(super) enum To {
    /// A file in `n8n import:workflow` shape.
    File { path: PathBuf, force: bool },
    /// A running n8n, through its public API.
    N8n { url: String, api_key: Option<String>, activate: bool, map_credentials_by_name: bool },
}

/// Takes back workflow `key` of the bundle in `dir`.
pub(super) fn run(dir: &Path, key: &str, to: To, json: bool) -> Result<i32> {
    let m = verify::verify_entries(dir, &[])?;
    let (w, text) = take::workflow(dir, &m, key)?;
    let (url, api_key, activate, map_credentials_by_name) = match to {
        To::File { path, force } => {
            take::write_new(&path, text.as_bytes(), force, 0o600)?;
            println!("wrote workflow {} ({}) to {}", w.id, w.name, path.display());
            return Ok(exit::OK);
        }
        To::N8n { url, api_key, activate, map_credentials_by_name } => {
            (url, api_key, activate, map_credentials_by_name)
        }
    };
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    let date = m.created_at.format("%Y%m%d").to_string();
    let pushed = crate::steps::n8n::push_workflow(
        &url,
        api_key.as_deref().unwrap_or(""),
        &doc,
        &date,
        activate,
        map_credentials_by_name,
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&pushed).expect("serialises"));
        return Ok(exit::OK);
    }
    for (name, kind) in &pushed.missing_credentials {
        println!(
            "missing on the target: credential {name:?} of type {kind} (create it, or use --map-credentials-by-name)"
        );
    }
    for (name, kind, id) in &pushed.mapped_credentials {
        println!("mapped credential {name:?} ({kind}) to the target's {id}");
    }
    let state = if pushed.active { " (active)" } else { " (inactive)" };
    println!("created workflow {} {:?}{state}: {}", pushed.id, pushed.name, pushed.url);
    Ok(exit::OK)
}
