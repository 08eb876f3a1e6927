//! User and group names <-> ids, read from `/etc/passwd` and `/etc/group` directly: the static
//! musl binary has no NSS, and a fresh host's accounts are local files anyway.

use std::collections::HashMap;
use std::fs;

/// Local accounts of this host.
#[derive(Debug, Default, Clone)]
pub struct Accounts {
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
    user_names: HashMap<u32, String>,
    group_names: HashMap<u32, String>,
}

fn parse(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split(':');
            let name = it.next()?;
            let _password = it.next()?;
            let id = it.next()?.parse().ok()?;
            Some((name.to_string(), id))
        })
        .collect()
}

impl Accounts {
    /// Reads this host's `/etc/passwd` and `/etc/group` (missing files give no accounts).
    pub fn system() -> Accounts {
        Accounts::from_text(
            &fs::read_to_string("/etc/passwd").unwrap_or_default(),
            &fs::read_to_string("/etc/group").unwrap_or_default(),
        )
    }

    /// Builds from the two files' text.
    pub fn from_text(passwd: &str, group: &str) -> Accounts {
        let mut a = Accounts::default();
        for (n, id) in parse(passwd) {
            a.user_names.entry(id).or_insert_with(|| n.clone());
            a.users.insert(n, id);
        }
        for (n, id) in parse(group) {
            a.group_names.entry(id).or_insert_with(|| n.clone());
            a.groups.insert(n, id);
        }
        a
    }

    /// uid of a user name.
    pub fn uid(&self, name: &str) -> Option<u32> {
        self.users.get(name).copied()
    }
    /// gid of a group name.
    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups.get(name).copied()
    }
    /// Name of a uid.
    pub fn user_name(&self, uid: u32) -> Option<&str> {
        self.user_names.get(&uid).map(String::as_str)
    }
    /// Name of a gid.
    pub fn group_name(&self, gid: u32) -> Option<&str> {
        self.group_names.get(&gid).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_and_group() {
        let a = Accounts::from_text(
            "root:x:0:0:root:/root:/bin/bash\n# c\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nbroken\n",
            "root:x:0:\nssl-cert:x:103:postgres\n",
        );
        assert_eq!(a.uid("www-data"), Some(33));
        assert_eq!(a.gid("ssl-cert"), Some(103));
        assert_eq!(a.user_name(0), Some("root"));
        assert_eq!(a.uid("nobody-here"), None);
    }
}
