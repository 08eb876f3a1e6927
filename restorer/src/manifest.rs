//! `manifest.json`: the bundle's inventory. Written first in the archive so a bundle's contents
//! can be read from its head; its schema is `docs/BUNDLE-FORMAT.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::layout::{self, FileKind};
use crate::{Error, Result};

/// The whole inventory of one bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Bundle format version ([`layout::FORMAT_VERSION`] when written by this crate).
    pub format_version: u32,
    /// The program that wrote the bundle, e.g. `packer 0.1.0`.
    pub created_by: String,
    /// When the bundle was started (UTC); also the time stamp in the file name.
    pub created_at: DateTime<Utc>,
    /// `[bundle] name` from the configuration.
    pub bundle_name: String,
    /// Short description of the source host (the full one is in metadata/system_info.json).
    pub source_host: SourceHost,
    /// One record per `[[postgres]]` database.
    #[serde(default)]
    pub postgres: Vec<PostgresDb>,
    /// One record per `[[sqlite]]` database.
    #[serde(default)]
    pub sqlite: Vec<SqliteDb>,
    /// Every captured file, directory and symlink.
    #[serde(default)]
    pub files: Vec<FileRecord>,
    /// Entries that support the restore (restore binary, requirements, system info).
    #[serde(default)]
    pub support: Vec<EntryDigest>,
    /// What the restore starts at the end, in order.
    #[serde(default)]
    pub services: Services,
    /// System packages the new host needs (also in requirements.txt).
    #[serde(default)]
    pub requirements: Vec<String>,
    /// Warnings raised while packing (shown by `packer show` and at restore).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// What packing decided on its own, for the reader: a path left out because the bundle holds
    /// it another way, a link's target captured because of the link. Nothing is wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the bundle knows about n8n, when a database has `profile = "n8n"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n8n: Option<crate::n8n::N8nInfo>,
    /// The Docker deployment (compose projects, volumes, saved images), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<crate::docker::DockerInfo>,
}

/// Host facts worth seeing without opening system_info.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceHost {
    /// Host name.
    pub hostname: String,
    /// `PRETTY_NAME` from /etc/os-release.
    pub os: String,
    /// CPU architecture (`x86_64`).
    pub arch: String,
}

/// A PostgreSQL database, dumped with `pg_dump -Fc` inside one exported snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PostgresDb {
    /// The `[[postgres]] name`: names the entry inside the bundle only.
    pub name: String,
    /// Entry name (`databases/<name>.dump`).
    pub entry: String,
    /// The database's real name on the server: the restore recreates it under this name.
    pub database: String,
    /// Owner role of the database.
    pub owner: String,
    /// Encoding (`UTF8`).
    pub encoding: String,
    /// LC_COLLATE of the source database.
    pub collate: String,
    /// LC_CTYPE of the source database.
    pub ctype: String,
    /// `server_version` as the server reports it.
    pub server_version: String,
    /// `server_version_num` (150018 for 15.18): the major version is this / 10000.
    pub server_version_num: u32,
    /// `pg_dump --version` output of the dumping binary.
    pub pg_dump_version: String,
    /// Dump size in bytes.
    pub size: u64,
    /// sha256 of the dump (hex).
    pub sha256: String,
    /// Row count of every table, read inside the snapshot the dump was made from.
    pub tables: Vec<TableCount>,
    /// `pg_dumpall --roles-only` of this database's server (a support entry), when it could be
    /// taken; shared by the databases of one server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_entry: Option<String>,
    /// False when the roles were dumped without passwords (the packing user could not read
    /// them): the restore then says which passwords must be set.
    #[serde(default)]
    pub role_passwords: bool,
    /// The container the database lives in, when it is not a host server: the restore
    /// restores into that (compose) service's container, with the container's own tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<crate::docker::DbContainer>,
    /// How the entry is compressed inside the (gzip-framed) bundle: absent for the plain dump,
    /// `zstd` for a zstd frame of it (`databases/<name>.dump.zst`; `size` and `sha256` are the
    /// entry's, as stored). The restore decodes it before pg_restore reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressed: Option<Codec>,
}

/// A compression inside an entry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// A zstd frame with its content checksum (RFC 8878).
    Zstd,
}

/// A SQLite database copied through the online backup API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SqliteDb {
    /// The `[[sqlite]] name`.
    pub name: String,
    /// Entry name (`databases/<name>.sqlite`).
    pub entry: String,
    /// Where the database lived; the restore puts it back there.
    #[serde(with = "crate::raw_path")]
    pub path: PathBuf,
    /// The Docker named volume it lived in (`path` is then below that volume's mount point in
    /// `docker.volumes`): the restore creates the volume before the copy goes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Ownership and mode of the original file.
    #[serde(flatten)]
    pub meta: FileMeta,
    /// Size of the copy in bytes.
    pub size: u64,
    /// sha256 of the copy.
    pub sha256: String,
    /// Row count of every table in the copy.
    pub tables: Vec<TableCount>,
}

/// Rows in one table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableCount {
    /// Schema (PostgreSQL) or empty (SQLite).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schema: String,
    /// Table name, exactly as in the catalog (case kept).
    pub name: String,
    /// Number of rows.
    pub rows: u64,
}

impl TableCount {
    /// `schema.name` or `name`, for messages.
    pub fn qualified(&self) -> String {
        if self.schema.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }
}

/// Mode, ownership and time of a path on the source host.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileMeta {
    /// Permission bits (`0o640` is stored as 416).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Owner name when the source host knew it; the restore prefers names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group name when the source host knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

/// What a captured path is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FileContent {
    /// A regular file, stored as the entry `entry`.
    File {
        /// Entry name in the bundle.
        entry: String,
        /// Size in bytes.
        size: u64,
        /// sha256 of the content.
        sha256: String,
    },
    /// A directory (created with its mode; no entry in the archive).
    Dir,
    /// A symbolic link, recreated as a link with this target (no entry in the archive: a
    /// link inside the archive could point a later entry outside the extraction directory).
    Symlink {
        /// The link's target, exactly as read (relative or absolute).
        #[serde(with = "crate::raw_path")]
        target: PathBuf,
    },
}

/// One captured path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileRecord {
    /// config, ssl or data.
    pub kind: FileKind,
    /// Original absolute path.
    #[serde(with = "crate::raw_path")]
    pub path: PathBuf,
    /// Mode, owner, mtime.
    #[serde(flatten)]
    pub meta: FileMeta,
    /// File, directory or symlink.
    #[serde(flatten)]
    pub content: FileContent,
}

/// An entry known by name, size and digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryDigest {
    /// Entry name.
    pub entry: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 (hex).
    pub sha256: String,
}

/// Services the restore starts, and how to check them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Services {
    /// Service names, started in this order.
    #[serde(default)]
    pub start: Vec<String>,
    /// Health checks after the start: `http://...` (any 2xx/3xx) or `tcp://host:port`.
    #[serde(default)]
    pub health: Vec<String>,
    /// Where the restored n8n answers (`http://127.0.0.1:5678`): after the start, the restore
    /// asks it, through its public API, for the workflows it serves and compares them with the
    /// bundle's (a content check: `/healthz` answers on an empty database too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n8n_url: Option<String>,
}

impl Manifest {
    /// Parses and checks the format version.
    pub fn from_json(text: &str) -> Result<Manifest> {
        // Look at the version before the full schema, so that a newer bundle gets a clear
        // "too new" message rather than a parse error about some field.
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let v: Version = serde_json::from_str(text)?;
        if v.format_version > layout::FORMAT_VERSION || v.format_version == 0 {
            return Err(Error::Refused(format!(
                "bundle format version {} is not supported by this restore (it reads up to {}); use the restore binary shipped inside that bundle",
                v.format_version,
                layout::FORMAT_VERSION
            )));
        }
        let m: Manifest = serde_json::from_str(text)?;
        m.check()?;
        Ok(m)
    }

    /// Pretty JSON, as written into the bundle.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises")
    }

    /// Every entry this manifest declares (all but itself and `checksums.sha256`): entry name
    /// -> (size, sha256). What a reader accepts in the archive, with the exact size.
    pub fn entries(&self) -> BTreeMap<String, (u64, String)> {
        let mut out = BTreeMap::new();
        for d in &self.postgres {
            out.insert(d.entry.clone(), (d.size, d.sha256.clone()));
        }
        for d in &self.sqlite {
            out.insert(d.entry.clone(), (d.size, d.sha256.clone()));
        }
        for f in &self.files {
            if let FileContent::File { entry, size, sha256 } = &f.content {
                out.insert(entry.clone(), (*size, sha256.clone()));
            }
        }
        for s in &self.support {
            out.insert(s.entry.clone(), (s.size, s.sha256.clone()));
        }
        out
    }

    /// Entry name -> sha256 of every entry the manifest lists (all but itself and the checksums).
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.entries().into_iter().map(|(e, (_, d))| (e, d)).collect()
    }

    /// Structural checks a reader relies on: safe entry names and absolute, normalised target
    /// paths. A manifest that fails here is refused before anything is planned.
    pub fn check(&self) -> Result<()> {
        // Entry names: valid, and each claimed by one record only (a map would silently keep
        // the last of two records naming one entry).
        let mut entries = std::collections::BTreeSet::new();
        let named = self
            .postgres
            .iter()
            .map(|d| &d.entry)
            .chain(self.sqlite.iter().map(|d| &d.entry))
            .chain(self.files.iter().filter_map(|f| match &f.content {
                FileContent::File { entry, .. } => Some(entry),
                _ => None,
            }))
            .chain(self.support.iter().map(|s| &s.entry));
        for entry in named {
            layout::check_entry_name(entry)?;
            if entry == layout::MANIFEST || entry == layout::CHECKSUMS {
                return Err(Error::Unsafe(format!("a record claims the entry {entry}")));
            }
            if !entries.insert(entry.as_str()) {
                return Err(Error::Unsafe(format!("entry {entry} is claimed by two records")));
            }
        }
        // Target paths: absolute, normalised, each restored by one record only, and never below
        // a file or a link the bundle itself restores (writing there would go through the link).
        let mut targets: BTreeMap<&std::path::Path, bool> = BTreeMap::new();
        let paths = self
            .files
            .iter()
            .map(|f| (f.path.as_path(), matches!(f.content, FileContent::Dir)))
            .chain(self.sqlite.iter().map(|s| (s.path.as_path(), false)));
        for (path, is_dir) in paths {
            layout::relative_of_absolute(path)?;
            if path.starts_with(layout::RESTORE_STATE_DIR) {
                return Err(Error::Unsafe(format!(
                    "{} lies in {}, the restore's own checkpoints: a bundle never writes there",
                    path.display(),
                    layout::RESTORE_STATE_DIR
                )));
            }
            if targets.insert(path, is_dir).is_some() {
                return Err(Error::Unsafe(format!("{} is restored by two records", path.display())));
            }
        }
        for path in targets.keys() {
            for anc in path.ancestors().skip(1) {
                if targets.get(anc) == Some(&false) {
                    return Err(Error::Unsafe(format!(
                        "{} lies below {}, which the bundle restores as a file or link",
                        path.display(),
                        anc.display()
                    )));
                }
            }
        }
        for d in &self.postgres {
            layout::check_name("postgres", &d.name)?;
        }
        Ok(())
    }

    /// Total bytes of all entries the manifest lists.
    pub fn payload_size(&self) -> u64 {
        let files: u64 = self
            .files
            .iter()
            .map(|f| match f.content {
                FileContent::File { size, .. } => size,
                _ => 0,
            })
            .sum();
        files
            + self.postgres.iter().map(|d| d.size).sum::<u64>()
            + self.sqlite.iter().map(|d| d.size).sum::<u64>()
            + self.support.iter().map(|d| d.size).sum::<u64>()
    }
}
