//! Names from the manifest that reach other programs: packages (apt-get, dpkg-query, dnf),
//! services (systemctl, service, docker compose), system accounts (useradd, groupadd) and
//! PostgreSQL database names (`pg_restore --dbname`, `CREATE DATABASE`). A
//! bundle may have been written by an attacker, so each name is data: checked against the
//! distribution's naming rules before anything changes, and passed after `--` where the program
//! accepts it, so that no entry can ever be read as an option.

use crate::manifest::Manifest;
use crate::{Error, Result};

/// A Debian package name (Debian Policy 5.6.1: lowercase letters, digits, `+`, `-`, `.`; at
/// least two characters, starting with a letter or digit), with an optional `:arch` qualifier.
pub fn is_package(name: &str) -> bool {
    let (pkg, arch) = match name.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (name, None),
    };
    let pkg_ok = pkg.len() >= 2
        && pkg.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && pkg.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    let arch_ok = arch.is_none_or(|a| {
        !a.is_empty()
            && a.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    pkg_ok && arch_ok
}

/// A systemd unit (or SysV service) name: ASCII letters, digits and `:_.@-`, not starting with
/// `-`, at most 255 bytes.
pub fn is_unit(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || ":_.@-".contains(c))
}

/// A compose file given as a service: an absolute, normalised path ending in `.yaml`/`.yml`.
pub fn is_compose_file(name: &str) -> bool {
    (name.ends_with(".yaml") || name.ends_with(".yml"))
        && name.starts_with('/')
        && !name.split('/').any(|c| c == ".." || c == ".")
        && !name.chars().any(|c| c.is_control())
}

/// A user or group name useradd/groupadd may be given: letters, digits, `_`, `.`, `-` (not
/// first), an optional trailing `$`, at most 32 bytes.
pub fn is_account(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    !body.is_empty()
        && name.len() <= 32
        && body.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && body.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A PostgreSQL database name a restore creates and connects to: 1 to 63 bytes (longer names are
/// cut short by the server, so the restore would create one database and fill another), no
/// control character, no `=` and no `postgres://`/`postgresql://` prefix (libpq, and so
/// `pg_restore --dbname`, reads such a name as a connection string: another server, another
/// user). SQL quoting ([`crate::pg::quote_ident`]) takes care of everything else.
pub fn is_database(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.chars().any(|c| c.is_control() || c == '=')
        && !name.starts_with("postgres://")
        && !name.starts_with("postgresql://")
}

/// What [`is_database`] requires, for messages.
pub const DATABASE_RULE: &str = "1 to 63 bytes, no control character, no '=', not a postgres:// or postgresql:// URL";

/// Refuses a manifest whose requirements, services or database names are not valid names, naming every bad
/// entry. Called before anything changes. (Owner names are not refused: a file's owner comes
/// from the source host and restores by id when the name cannot be created; see
/// [`crate::steps::accounts::missing`].)
pub fn check(m: &Manifest) -> Result<()> {
    let mut bad = Vec::new();
    for p in &m.requirements {
        if !is_package(p) {
            bad.push(format!(
                "requirements entry {p:?} is not a Debian package name ([a-z0-9][a-z0-9+.-]+, optional :arch)"
            ));
        }
    }
    for s in &m.services.start {
        if !is_unit(s) && !is_compose_file(s) {
            bad.push(format!(
                "services.start entry {s:?} is neither a service name ([A-Za-z0-9:_.@-]+, not starting with '-') nor an absolute compose file path"
            ));
        }
    }
    for d in &m.postgres {
        if !is_database(&d.database) {
            bad.push(format!("postgres database {:?} is not a database name ({DATABASE_RULE})", d.database));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "the manifest names things no restore passes to a program: {}. Nothing was changed; this bundle was not written by packer as it is",
            bad.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_follow_debian_policy() {
        for ok in ["nginx", "postgresql-15", "libc6:amd64", "g++", "docker.io", "0ad", "python3.11"] {
            assert!(is_package(ok), "{ok}");
        }
        for bad in [
            "-o",
            "--allow-unauthenticated",
            "a",
            "Nginx",
            "nginx ",
            "ng inx",
            "x;rm",
            "pkg:",
            ":amd64",
            "pkg:-x",
            "",
            "a/b",
        ] {
            assert!(!is_package(bad), "{bad}");
        }
    }

    #[test]
    fn unit_names_follow_systemd() {
        for ok in ["nginx", "postgresql@15-main", "getty@tty1.service", "a:b_c.d-e"] {
            assert!(is_unit(ok), "{ok}");
        }
        for bad in ["-H", "--root=/", "", "a b", "x;y", "a/b", "ü"] {
            assert!(!is_unit(bad), "{bad}");
        }
        assert!(is_compose_file("/opt/n8n/docker-compose.yaml"));
        for bad in ["docker-compose.yaml", "/opt/../etc/x.yml", "-f.yaml", "/opt/x.json"] {
            assert!(!is_compose_file(bad), "{bad}");
        }
    }

    /// A database name can never be read as a connection string, nor be cut short by the server.
    #[test]
    fn database_names_cannot_be_connection_strings() {
        for ok in ["n8n", "app_check", "Mixed Case", "ünï", "a-b.c$", &"a".repeat(63)] {
            assert!(is_database(ok), "{ok}");
        }
        for bad in ["", "host=evil", "dbname=x", "postgresql://h/db", "postgres://h", "a\nb", &"a".repeat(64)] {
            assert!(!is_database(bad), "{bad}");
        }
    }

    #[test]
    fn account_names_cannot_be_options() {
        for ok in ["root", "www-data", "_apt", "n8n", "machine$", "Debian-exim"] {
            assert!(is_account(ok), "{ok}");
        }
        for bad in ["-o", "--badname", "", "a b", "a:b", "x/y", &"a".repeat(33)] {
            assert!(!is_account(bad), "{bad}");
        }
    }
}
