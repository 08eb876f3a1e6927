//! The library's error type. Each variant says what failed and on which entry, path or database,
//! and maps to one exit code, so the binary never has to guess how bad an error is.

use std::path::PathBuf;

use crate::exit;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, verifying or restoring a bundle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "creating", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bundle is damaged or incomplete: the message names the entry.
    #[error("bundle corrupt: {0}")]
    Corrupt(String),
    /// The bundle holds something a restore must never write (absolute path, `..`, link, device).
    #[error("unsafe bundle entry refused: {0}")]
    Unsafe(String),
    /// A safety check refused the operation before anything changed.
    #[error("refused: {0}")]
    Refused(String),
    /// The restored data does not match the manifest.
    #[error("validation failed: {0}")]
    Validation(String),
    /// A PostgreSQL operation failed.
    #[error("postgres {context}: {}", pg_detail(source))]
    Postgres {
        /// Which server / database / statement.
        context: String,
        /// The driver's error.
        source: postgres::Error,
    },
    /// A SQLite operation failed.
    #[error("sqlite {path}: {}", crate::sqlite::describe(source))]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        source: rusqlite::Error,
    },
    /// An external command (pg_restore, apt-get, systemctl, ...) failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// The program and its main argument.
        command: String,
        /// Exit status and the tail of its stderr.
        detail: String,
    },
    /// manifest.json could not be parsed.
    #[error("manifest.json: {0}")]
    Manifest(#[from] serde_json::Error),
    /// Anything else, with its context already in the message.
    #[error("{0}")]
    Other(String),
}

/// The server's own words (severity, message, detail, hint) for a database error, or the
/// driver's error with its causes: `postgres::Error`'s Display alone says only "db error".
pub fn pg_detail(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s += &format!(" (detail: {d})");
        }
        if let Some(h) = db.hint() {
            s += &format!(" (hint: {h})");
        }
        return s;
    }
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s += &format!(": {text}");
        }
        cur = c.source();
    }
    s
}

impl Error {
    /// An [`Error::Io`] with the path and the action that failed.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { action, path: path.into(), source }
    }

    /// The `restore` exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Corrupt(_) | Error::Manifest(_) => exit::CORRUPT,
            Error::Unsafe(_) | Error::Refused(_) => exit::REFUSED,
            Error::Validation(_) => exit::VALIDATION_FAILED,
            _ => exit::FAILED,
        }
    }
}

/// Adds the path and action to an `io::Result`.
pub trait IoContext<T> {
    /// Maps an `io::Error` into [`Error::Io`] naming `path`.
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
