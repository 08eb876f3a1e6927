//! sha256 of files and streams, and the `checksums.sha256` list (sha256sum's format, so
//! `sha256sum -c checksums.sha256` works in an extracted bundle without this tool).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::IoContext;
use crate::{layout, Error, Result};

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// sha256 and length of everything read from `r`.
pub fn sha256_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

/// sha256 and length of a file (never follows a symlink at `path`'s last component: the caller
/// decides what a link means).
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let f = File::open(path).ctx("reading", path)?;
    sha256_reader(f).ctx("reading", path)
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), len: 0 }
    }
    /// Hex digest and byte count of what was read so far.
    pub fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// A writer that hashes what passes through it (the whole-bundle digest for the sidecar).
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), len: 0 }
    }
    /// The inner writer, the hex digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `checksums.sha256`: entry name -> hex digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checksums(pub BTreeMap<String, String>);

impl Checksums {
    /// sha256sum text: `<hex>  <entry>` per line, sorted by entry.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (entry, digest) in &self.0 {
            s.push_str(digest);
            s.push_str("  ");
            s.push_str(entry);
            s.push('\n');
        }
        s
    }

    /// Parses sha256sum text, checking every entry name is safe and every digest well-formed.
    pub fn parse(text: &str) -> Result<Checksums> {
        let mut map = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = || Error::Corrupt(format!("{} line {}: {line:?}", layout::CHECKSUMS, i + 1));
            let (digest, rest) = line.split_once(' ').ok_or_else(bad)?;
            // sha256sum writes "  " (text) or " *" (binary) between digest and name.
            let entry = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*')).ok_or_else(bad)?;
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            layout::check_entry_name(entry)?;
            if map.insert(entry.to_string(), digest.to_ascii_lowercase()).is_some() {
                return Err(Error::Corrupt(format!("{} lists {entry} twice", layout::CHECKSUMS)));
            }
        }
        Ok(Checksums(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vector() {
        // FIPS 180-2 test vector "abc".
        let (d, n) = sha256_reader(&b"abc"[..]).unwrap();
        assert_eq!(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(n, 3);
    }

    #[test]
    fn checksums_round_trip_and_refuse_bad_lines() {
        let mut c = Checksums::default();
        c.0.insert("manifest.json".into(), "a".repeat(64));
        c.0.insert("config/etc/x".into(), "b".repeat(64));
        assert_eq!(Checksums::parse(&c.to_text()).unwrap(), c);
        assert!(Checksums::parse(&format!("{}  ../etc/passwd\n", "a".repeat(64))).is_err());
        assert!(Checksums::parse("abc  x\n").is_err());
        assert!(Checksums::parse(&format!("{}  x\n{}  x\n", "a".repeat(64), "b".repeat(64))).is_err());
    }
}
