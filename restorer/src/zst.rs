//! Dumps compressed with zstd inside the bundle (`[bundle] compression = "zstd"`): pg_restore
//! reads the plain custom-format archive, and its parallel jobs need a file they can seek in,
//! so the entry is decoded into a file beside it first (by this static binary: a bare host has
//! no zstd program), and that file is removed once the database is restored.

use std::fs::{self, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::manifest::{Codec, PostgresDb};
use crate::{Error, Result};

/// The dump of a database as pg_restore reads it: the entry itself, or a zstd entry decoded
/// beside it, removed when this is dropped.
#[derive(Debug)]
pub struct PlainDump {
    path: PathBuf,
    decoded: bool,
}

impl PlainDump {
    /// The plain custom-format archive.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PlainDump {
    fn drop(&mut self) {
        if self.decoded {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The dump of `db` in the extracted bundle `dir`, decoded first when the bundle holds it
/// compressed: `<entry>` without `.zst`, written through `.partial` (mode 0600; `create_new`
/// never follows a link left there), its frame's checksum checked while decoding.
pub fn plain_dump(dir: &Path, db: &PostgresDb) -> Result<PlainDump> {
    let entry = dir.join(&db.entry);
    let Some(Codec::Zstd) = db.compressed else {
        return Ok(PlainDump { path: entry, decoded: false });
    };
    let Some(stem) = db.entry.strip_suffix(".zst") else {
        return Err(Error::Corrupt(format!("{}: a zstd dump's entry must end in .zst", db.entry)));
    };
    let plain = dir.join(stem);
    let partial = PathBuf::from(format!("{}.partial", plain.display()));
    let decode = || -> std::io::Result<()> {
        let _ = fs::remove_file(&partial);
        let out = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial)?;
        let mut out = BufWriter::with_capacity(1024 * 1024, out);
        zstd::stream::copy_decode(BufReader::with_capacity(1024 * 1024, fs::File::open(&entry)?), &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.flush()?;
        fs::rename(&partial, &plain)
    };
    decode().map_err(|e| {
        let _ = fs::remove_file(&partial);
        Error::io("decoding the zstd dump", &entry, e)
    })?;
    Ok(PlainDump { path: plain, decoded: true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn db(entry: &str, compressed: Option<Codec>) -> PostgresDb {
        let mut m: PostgresDb = serde_json::from_value(serde_json::json!({
            "name": "shop", "entry": entry, "database": "shop", "owner": "o", "encoding": "UTF8",
            "collate": "C", "ctype": "C", "server_version": "15", "server_version_num": 150000,
            "pg_dump_version": "15", "size": 1, "sha256": "0", "tables": []
        }))
        .unwrap();
        m.compressed = compressed;
        m
    }

    /// A zstd entry is decoded beside itself and the plain file removed on drop; a plain entry
    /// is used as it is; a damaged frame is an error naming the entry, leaving nothing behind.
    #[test]
    fn decodes_beside_the_entry_and_cleans_up() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("databases")).unwrap();
        let body: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 977).to_le_bytes()).collect();
        // As packer writes it: with the frame's content checksum.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_checksum(true).unwrap();
        enc.write_all(&body).unwrap();
        let frame = enc.finish().unwrap();
        fs::write(t.path().join("databases/shop.dump.zst"), &frame).unwrap();

        let plain = plain_dump(t.path(), &db("databases/shop.dump.zst", Some(Codec::Zstd))).unwrap();
        assert_eq!(plain.path(), t.path().join("databases/shop.dump"));
        assert!(fs::read(plain.path()).unwrap() == body);
        drop(plain);
        assert!(!t.path().join("databases/shop.dump").exists());

        let as_is = plain_dump(t.path(), &db("databases/other.dump", None)).unwrap();
        assert_eq!(as_is.path(), t.path().join("databases/other.dump"));
        drop(as_is);

        let mut damaged = frame.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 0x55;
        fs::write(t.path().join("databases/shop.dump.zst"), &damaged).unwrap();
        let e = plain_dump(t.path(), &db("databases/shop.dump.zst", Some(Codec::Zstd))).unwrap_err();
        assert!(e.to_string().contains("shop.dump.zst"), "{e}");
        let left: Vec<_> = fs::read_dir(t.path().join("databases")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("shop.dump.zst")]);
    }
}
