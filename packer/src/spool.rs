//! An entry's body compressed while it is produced (a dump, as pg_dump writes it) into a private
//! spool file of whole gzip members, hashed on the way: the bundle writer copies the members
//! into the bundle unchanged. Nothing is spooled uncompressed, and no byte is compressed twice.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use restorer::digest::HashingWriter;

use crate::pgzip::ParallelGz;
use crate::sources::Payload;

/// A `Write` that compresses into a spool file (mode 0600, never one that exists).
pub struct GzSpool {
    path: PathBuf,
    out: HashingWriter<ParallelGz<BufWriter<File>>>,
}

impl GzSpool {
    /// Creates `path`, compressed at `level` on `threads` threads.
    pub fn create(path: &Path, level: u32, threads: usize) -> Result<GzSpool> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        let gz = ParallelGz::new(BufWriter::with_capacity(1024 * 1024, f), level, threads);
        Ok(GzSpool { path: path.to_path_buf(), out: HashingWriter::new(gz) })
    }

    /// Compresses what is left and describes the spooled body as the payload of `entry`.
    pub fn finish(self, entry: &str, mtime: i64) -> Result<Payload> {
        let what = || format!("writing {}", self.path.display());
        let (gz, sha256, size) = self.out.finish();
        let (buf, members) = gz.finish_members().with_context(what)?;
        let file = buf.into_inner().map_err(|e| e.into_error()).with_context(what)?;
        let gz_len = file.metadata().with_context(what)?.len();
        if gz_len != members.iter().sum::<u64>() {
            anyhow::bail!(
                "{} is {gz_len} bytes, not the {} its members were",
                self.path.display(),
                members.iter().sum::<u64>()
            );
        }
        Ok(Payload { entry: entry.to_string(), source: self.path, size, sha256, mtime, gzipped: Some(members) })
    }
}

impl Write for GzSpool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
