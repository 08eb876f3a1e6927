//! System users and groups that owned packed files but do not exist on the new host (`n8n`,
//! `www-data`, ...) are created as system accounts before the files are written, so owners come
//! back by name. Only on a real restore (root `/`, as root); under `--root` they are listed.

use std::collections::BTreeSet;
use std::process::Command;

use crate::checkpoint::{Change, Checkpoint};
use crate::manifest::Manifest;
use crate::owners::Accounts;
use crate::Result;

/// Users and groups named in the manifest that `accounts` lacks, sorted. A name that is not a
/// valid account name ([`crate::names::is_account`]: it could read as an option to useradd) is
/// never created; its files keep their numeric ids.
pub fn missing(manifest: &Manifest, accounts: &Accounts) -> (Vec<String>, Vec<String>) {
    let metas = manifest.files.iter().map(|f| &f.meta).chain(manifest.sqlite.iter().map(|s| &s.meta));
    let mut users = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for m in metas {
        if let Some(u) = &m.user {
            if accounts.uid(u).is_none() && crate::names::is_account(u) {
                users.insert(u.clone());
            }
        }
        if let Some(g) = &m.group {
            if accounts.gid(g).is_none() && crate::names::is_account(g) {
                groups.insert(g.clone());
            }
        }
    }
    (users.into_iter().collect(), groups.into_iter().collect())
}

/// Creates the missing groups, then the missing users (journaled). A user whose name is also a
/// group gets it as primary group.
pub fn create(cp: &mut Checkpoint, users: &[String], groups: &[String]) -> Result<()> {
    for g in groups {
        cp.record(Change::GroupCreated { group: g.clone() })?;
        crate::sys::run(Command::new("groupadd").args(["--system", "--", g]))?;
    }
    let now = Accounts::system();
    for u in users {
        cp.record(Change::UserCreated { user: u.clone() })?;
        let mut c = Command::new("useradd");
        c.args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]);
        if now.gid(u).is_some() {
            c.args(["--gid", u]);
        } else {
            c.arg("--no-user-group");
        }
        crate::sys::run(c.arg("--").arg(u))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FileKind;
    use crate::manifest::{FileContent, FileMeta, FileRecord};

    #[test]
    fn lists_unknown_owners_once() {
        let accounts = Accounts::from_text(
            "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n",
            "root:x:0:\nwww-data:x:33:\n",
        );
        let rec = |u: &str, g: &str| FileRecord {
            kind: FileKind::Config,
            path: "/etc/x".into(),
            meta: FileMeta { user: Some(u.into()), group: Some(g.into()), ..Default::default() },
            content: FileContent::Dir,
        };
        let mut m: Manifest = serde_json::from_str(
            r#"{"format_version":1,"created_by":"t","created_at":"2026-01-01T00:00:00Z","bundle_name":"n","source_host":{"hostname":"h","os":"o","arch":"a"}}"#,
        )
        .unwrap();
        m.files = vec![rec("n8n", "n8n"), rec("www-data", "ssl-cert"), rec("n8n", "n8n"), rec("root", "root")];
        assert_eq!(missing(&m, &accounts), (vec!["n8n".to_string()], vec!["n8n".to_string(), "ssl-cert".to_string()]));
    }
}
