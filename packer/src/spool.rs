//! An entry's body compressed while it is produced (a dump, as pg_dump writes it) into a private
//! spool file, hashed on the way: whole gzip members, which the bundle writer copies into the
//! bundle unchanged ([`GzSpool`]), or a zstd frame that is the entry itself ([`ZstSpool`]; the
//! bundle's gzip stores it, as it stores anything that would not shrink). Nothing is spooled
//! uncompressed, and no byte is compressed twice.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use restorer::digest::HashingWriter;

use crate::pgzip::{Cores, ParallelGz};
use crate::sources::Payload;
use crate::writer::create_private;

/// A `Write` that compresses into a spool file (mode 0600, never one that exists).
pub struct GzSpool {
    path: PathBuf,
    out: HashingWriter<ParallelGz<BufWriter<File>>>,
}

impl GzSpool {
    /// Creates `path`, compressed at `level` on the `cores` it shares with other spools.
    pub fn create(path: &Path, level: u32, cores: &Cores) -> Result<GzSpool> {
        let f = create_private(path)?;
        let gz = ParallelGz::sharing(BufWriter::with_capacity(1024 * 1024, f), level, cores);
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
        Ok(Payload {
            entry: entry.to_string(),
            source: self.path,
            size,
            sha256,
            mtime,
            gzipped: Some(members),
            spooled: true,
        })
    }
}

/// A `Write` that compresses into a zstd frame (content checksum on) in a spool file; the frame
/// is the entry, hashed as it is written.
pub struct ZstSpool {
    path: PathBuf,
    out: zstd::stream::write::Encoder<'static, HashingWriter<BufWriter<File>>>,
}

impl ZstSpool {
    /// Creates `path`, compressed at zstd `level` on `threads` threads.
    pub fn create(path: &Path, level: u32, threads: usize) -> Result<ZstSpool> {
        let f = create_private(path)?;
        let what = || format!("starting zstd for {}", path.display());
        let sink = HashingWriter::new(BufWriter::with_capacity(1024 * 1024, f));
        let mut out = zstd::stream::write::Encoder::new(sink, level as i32).with_context(what)?;
        out.include_checksum(true).with_context(what)?;
        if threads > 1 {
            out.multithread(threads as u32).with_context(what)?;
        }
        Ok(ZstSpool { path: path.to_path_buf(), out })
    }

    /// Ends the frame and describes the spooled file as the payload of `entry`.
    pub fn finish(self, entry: &str, mtime: i64) -> Result<Payload> {
        let what = || format!("writing {}", self.path.display());
        let (buf, sha256, size) = self.out.finish().with_context(what)?.finish();
        buf.into_inner().map_err(|e| e.into_error()).with_context(what)?;
        Ok(Payload { entry: entry.to_string(), source: self.path, size, sha256, mtime, gzipped: None, spooled: true })
    }
}

impl Write for ZstSpool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Either spool, as `[bundle] compression` chose.
pub enum Spool {
    /// gzip members.
    Gz(GzSpool),
    /// A zstd frame.
    Zst(ZstSpool),
}

impl Spool {
    /// Ends the spool; see [`GzSpool::finish`] and [`ZstSpool::finish`].
    pub fn finish(self, entry: &str, mtime: i64) -> Result<Payload> {
        match self {
            Spool::Gz(s) => s.finish(entry, mtime),
            Spool::Zst(s) => s.finish(entry, mtime),
        }
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Spool::Gz(s) => s.write(buf),
            Spool::Zst(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Spool::Gz(s) => s.flush(),
            Spool::Zst(s) => s.flush(),
        }
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
