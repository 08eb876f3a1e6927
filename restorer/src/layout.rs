//! Where things live inside a bundle (format version 1), and how bundle entry names and
//! original host paths map onto each other. `docs/BUNDLE-FORMAT.md` is the prose of this file.

use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::{Error, Result};

/// The format version this crate writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The format version of a sealed bundle's clear envelope (see [`crate::sealed`]); its payload
/// is a plain bundle of [`FORMAT_VERSION`]. A plain bundle stays version 1.
pub const SEALED_FORMAT_VERSION: u32 = 2;
/// In a sealed bundle: the age-encrypted plain bundle (a `.tar.gz`).
pub const PAYLOAD: &str = "payload.tar.gz.age";
/// In a sealed bundle: how to open it, in clear.
pub const README: &str = "README.txt";
/// First entry: the inventory, readable from the head of the archive alone.
pub const MANIFEST: &str = "manifest.json";
/// Last entry: `sha256sum` lines for every other entry.
pub const CHECKSUMS: &str = "checksums.sha256";
/// The static restore binary.
pub const RESTORE_BIN: &str = "restore";
/// System packages the new host needs, one per line.
pub const REQUIREMENTS: &str = "requirements.txt";
/// OS, kernel, CPU, memory, disks, hostname of the source host.
pub const SYSTEM_INFO: &str = "metadata/system_info.json";
/// n8n workflow summaries (with the n8n profile).
pub const N8N_WORKFLOWS: &str = "metadata/workflows.json";
/// n8n credentials: id, name, type, times; never the encrypted data.
pub const N8N_CREDENTIALS: &str = "metadata/credentials.json";
/// The restore's own state on a target (checkpoints, under `ROOT`): never restored from a
/// bundle, since a journal placed there would be replayed by the next restore.
pub const RESTORE_STATE_DIR: &str = "/var/lib/n8n-restore";
/// Default base of checkpoints, relative to the restore root.
pub const CHECKPOINTS_DIR: &str = "var/lib/n8n-restore/checkpoints";
/// Suffix of every bundle file name.
pub const BUNDLE_SUFFIX: &str = "_backup.tar.gz";

/// Mode of captured files inside the archive. The original mode lives in the manifest; inside the
/// archive everything but the restore binary is owner-only, because an operator's `tar xzf` must
/// never leave a private key or an `.env` world-readable in the extraction directory.
pub const ENTRY_MODE: u32 = 0o600;
/// Mode of the restore binary inside the archive.
pub const RESTORE_BIN_MODE: u32 = 0o755;

/// What a captured path is, which decides its top-level folder in the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Configuration (`.env`, compose files, nginx): `config/`.
    Config,
    /// Certificates and keys: `ssl/`.
    Ssl,
    /// Application data directories: `files/`.
    Data,
}

impl FileKind {
    /// The bundle folder for this kind.
    pub fn folder(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Ssl => "ssl",
            FileKind::Data => "files",
        }
    }
}

/// `backup_YYYYMMDDHHMMSS.<name>_backup.tar.gz` for a bundle created at `at` (UTC).
pub fn bundle_file_name(name: &str, at: DateTime<Utc>) -> String {
    format!("backup_{}.{name}{BUNDLE_SUFFIX}", at.format("%Y%m%d%H%M%S"))
}

/// Entry name of a PostgreSQL dump.
pub fn postgres_entry(name: &str) -> String {
    format!("databases/{name}.dump")
}

/// Entry name of a PostgreSQL dump compressed with zstd (`[bundle] compression = "zstd"`).
pub fn postgres_zstd_entry(name: &str) -> String {
    format!("databases/{name}.dump.zst")
}

/// Entry name of a server's roles (`pg_dumpall --roles-only`).
pub fn roles_entry(name: &str) -> String {
    format!("databases/{name}.roles.sql")
}

/// Entry name of a SQLite copy.
pub fn sqlite_entry(name: &str) -> String {
    format!("databases/{name}.sqlite")
}

/// Folder of the entries whose original path has no plain entry name (see [`captured_entry`]).
pub const ESCAPED_FOLDER: &str = "escaped";

/// Longest entry name written as a readable `<folder>/<path>`: longer paths get an escaped name,
/// so that an extracted bundle's own path (`BUNDLE_DIR/<entry>`) stays well below `PATH_MAX`.
pub const MAX_PLAIN_ENTRY: usize = 1024;

/// Entry name of a captured file: `<folder>/<original absolute path without the leading />`
/// when that is a plain entry name (UTF-8, no control character or backslash, at most
/// [`MAX_PLAIN_ENTRY`] bytes), else `escaped/<sha256 of the path's bytes>`.
///
/// Why not escape the bytes inside the name (sha256sum's `\n`, PAX headers): an entry name is
/// then a plain string in every tool that reads a bundle (`tar tzf`, `sha256sum -c`, our own
/// checksum list), a newline can never split a line and a non-UTF-8 byte can never reach a
/// `String`. The original path, byte-exact, lives in the manifest, which maps every entry back.
pub fn captured_entry(kind: FileKind, original: &Path) -> Result<String> {
    use std::os::unix::ffi::OsStrExt;
    let rel = relative_of_absolute(original)?;
    if let Some(text) = rel.to_str() {
        let plain = format!("{}/{text}", kind.folder());
        if plain.len() <= MAX_PLAIN_ENTRY && check_entry_name(&plain).is_ok() {
            return Ok(plain);
        }
    }
    let (digest, _) = crate::digest::sha256_reader(original.as_os_str().as_bytes()).expect("reading memory");
    Ok(format!("{ESCAPED_FOLDER}/{digest}"))
}

/// Checks that a database or bundle name is usable as part of an entry name.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{what} name {name:?} must be 1-100 characters of letters, digits, '_', '-' or '.' (not starting with '.')"
        )))
    }
}

/// Validates a bundle entry name: relative, no `..`, `.`, empty or root components, no control
/// character (a newline would split a `checksums.sha256` line), no backslash (sha256sum's escape
/// character). Every name written into an archive, read from one or read from
/// `checksums.sha256` goes through here.
pub fn check_entry_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('\\') || name.chars().any(char::is_control) {
        return Err(Error::Unsafe(format!("entry name {name:?} (empty, or a control character or backslash)")));
    }
    if name.starts_with('/') {
        return Err(Error::Unsafe(format!("{name:?} is an absolute path")));
    }
    // Checked on the text, not with Path::components, which silently drops interior "." and
    // would let "a//b" or "a/./b" pass as something they are not.
    for part in name.split('/') {
        match part {
            ".." => return Err(Error::Unsafe(format!("{name:?} contains '..'"))),
            "" | "." => return Err(Error::Unsafe(format!("{name:?} is not a plain relative path"))),
            _ if part.len() > 255 => return Err(Error::Unsafe(format!("{name:?} has a component over 255 bytes"))),
            _ => {}
        }
    }
    Ok(())
}

/// `/etc/nginx/nginx.conf` -> `etc/nginx/nginx.conf`, refusing relative paths and `.`/`..`.
pub fn relative_of_absolute(original: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    let mut comps = original.components();
    if comps.next() != Some(Component::RootDir) {
        return Err(Error::Unsafe(format!("{} is not an absolute path", original.display())));
    }
    for c in comps {
        match c {
            Component::Normal(p) => out.push(p),
            _ => return Err(Error::Unsafe(format!("{} is not a normalised absolute path", original.display()))),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::Unsafe("the root directory itself cannot be a target".into()));
    }
    Ok(out)
}

/// Where an original absolute path lands under `root` (`/` for a real restore).
pub fn target_path(root: &Path, original: &Path) -> Result<PathBuf> {
    Ok(root.join(relative_of_absolute(original)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_refuse_escapes() {
        for bad in ["/etc/passwd", "../x", "a/../../b", "", "a/./b", "./a", "a\\b", "a\nb", "a\tb", "a\u{7f}"] {
            assert!(check_entry_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["manifest.json", "config/etc/nginx/nginx.conf", "databases/n8n.dump"] {
            check_entry_name(good).unwrap();
        }
    }

    #[test]
    fn target_paths_stay_under_root() {
        let root = Path::new("/tmp/r");
        assert_eq!(
            target_path(root, Path::new("/etc/nginx/nginx.conf")).unwrap(),
            Path::new("/tmp/r/etc/nginx/nginx.conf")
        );
        assert!(target_path(root, Path::new("/etc/../../x")).is_err());
        assert!(target_path(root, Path::new("etc/x")).is_err());
        assert!(target_path(root, Path::new("/")).is_err());
    }

    /// Names a checksum line or a `String` cannot carry byte-exactly get an escaped entry name;
    /// plain names stay readable.
    #[test]
    fn odd_paths_get_escaped_entry_names() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(captured_entry(FileKind::Config, Path::new("/etc/a b.conf")).unwrap(), "config/etc/a b.conf");
        assert_eq!(captured_entry(FileKind::Data, Path::new("/srv/-rf")).unwrap(), "files/srv/-rf");
        let odd: Vec<&Path> = vec![
            Path::new("/srv/new\nline"),
            Path::new("/srv/back\\slash"),
            Path::new("/srv/tab\tname"),
            Path::new(std::ffi::OsStr::from_bytes(b"/srv/latin1-\xe9t\xe9")),
        ];
        let long = format!("/srv/{}", "d/".repeat(600));
        let long = Path::new(long.trim_end_matches('/'));
        let mut seen = std::collections::HashSet::new();
        for p in odd.into_iter().chain([long]) {
            let e = captured_entry(FileKind::Data, p).unwrap();
            assert!(e.starts_with("escaped/") && e.len() == 8 + 64, "{p:?} -> {e}");
            check_entry_name(&e).unwrap();
            assert!(seen.insert(e), "two paths, one entry");
        }
    }

    #[test]
    fn bundle_name_has_utc_stamp() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T03:04:05Z").unwrap().with_timezone(&Utc);
        assert_eq!(bundle_file_name("n8n", at), "backup_20261122030405.n8n_backup.tar.gz");
    }

    #[test]
    fn names_are_checked() {
        check_name("database", "n8n").unwrap();
        assert!(check_name("database", "../x").is_err());
        assert!(check_name("database", "a b").is_err());
    }
}
