//! What goes into a bundle, read from the source host: PostgreSQL dumps, SQLite copies, files.
//! Each source produces manifest records plus the local files to stream into the archive.

pub mod docker;
pub mod files;
pub mod n8n;
pub mod postgres;
pub mod sqlite;

use std::path::PathBuf;

/// A file to stream into the archive, with what the manifest promises about it. The writer
/// re-hashes while streaming and refuses to finish if the bytes differ from the promise.
#[derive(Debug, Clone)]
pub struct Payload {
    /// Entry name in the bundle.
    pub entry: String,
    /// Local file to read.
    pub source: PathBuf,
    /// Expected size.
    pub size: u64,
    /// Expected sha256.
    pub sha256: String,
    /// mtime for the tar header.
    pub mtime: i64,
    /// `Some(lengths)`: `source` holds the entry's body already compressed (whole gzip members
    /// of these lengths, as a dump is compressed while pg_dump writes it), copied into the
    /// bundle unchanged; `size` and `sha256` are those of the body uncompressed. `None`:
    /// `source` is the entry itself, compressed as it is packed.
    pub gzipped: Option<Vec<u64>>,
    /// `source` is this run's own spool file: the writer removes it as soon as it is in the
    /// bundle, so the spool and the bundle being written never hold the same bytes twice
    /// (peak extra disk stays about the bundle's size).
    pub spooled: bool,
}
