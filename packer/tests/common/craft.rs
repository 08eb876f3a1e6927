//! Hand-made bundles for the tests that play the attacker: read a real bundle into memory, change
//! anything (the manifest as raw JSON, entries, names, types, sizes), recompute every digest so
//! the result is self-consistent (an attacker who rewrote the bundle and its checksums), and
//! write it with raw tar headers, bypassing the tar crate's own path checks.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use tar::EntryType;

/// One archive entry.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Raw name bytes.
    pub name: Vec<u8>,
    /// Tar type.
    pub kind: EntryType,
    /// Content.
    pub data: Vec<u8>,
    /// Link target for link entries.
    pub link: Option<Vec<u8>>,
}

impl Entry {
    /// A regular file entry.
    pub fn file(name: &str, data: &[u8]) -> Entry {
        Entry { name: name.as_bytes().to_vec(), kind: EntryType::Regular, data: data.to_vec(), link: None }
    }
}

/// A bundle in memory: the manifest (raw JSON) and the entries between it and the checksums.
#[derive(Clone, Debug)]
pub struct Crafted {
    /// manifest.json, to be changed at will.
    pub manifest: serde_json::Value,
    /// Every entry but manifest.json and checksums.sha256, in order.
    pub entries: Vec<Entry>,
    /// Entries written after checksums.sha256 (a bundle must end with it): empty unless a test
    /// adds some.
    pub after: Vec<Entry>,
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

impl Crafted {
    /// Reads a real bundle.
    pub fn read(bundle: &Path) -> Crafted {
        let gz = flate2::read::MultiGzDecoder::new(fs::File::open(bundle).unwrap());
        let mut archive = tar::Archive::new(gz);
        let mut manifest = None;
        let mut entries = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path_bytes().to_vec();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            match &name[..] {
                b"manifest.json" => manifest = Some(serde_json::from_slice(&data).unwrap()),
                b"checksums.sha256" => {}
                _ => entries.push(Entry { name, kind: EntryType::Regular, data, link: None }),
            }
        }
        Crafted { manifest: manifest.unwrap(), entries, after: Vec::new() }
    }

    /// The entry with this name.
    pub fn entry_mut(&mut self, name: &str) -> &mut Entry {
        self.entries.iter_mut().find(|e| e.name == name.as_bytes()).unwrap()
    }

    /// Recomputes `size` and `sha256` of every manifest record that names an entry present here
    /// (the first entry of that name), as an attacker rewriting the bundle would.
    pub fn reseal(&mut self) {
        let entries = self.entries.clone();
        let fix = |rec: &mut serde_json::Value| {
            let Some(name) = rec.get("entry").and_then(|n| n.as_str()).map(str::to_string) else { return };
            if let Some(e) = entries.iter().find(|e| e.name == name.as_bytes()) {
                rec["size"] = e.data.len().into();
                rec["sha256"] = sha256_hex(&e.data).into();
            }
        };
        for list in ["files", "sqlite", "postgres", "support"] {
            if let Some(a) = self.manifest.get_mut(list).and_then(|l| l.as_array_mut()) {
                a.iter_mut().for_each(fix);
            }
        }
    }

    /// Writes the archive: manifest first, the entries, then a `checksums.sha256` listing every
    /// regular entry with its true digest (unless `sums` replaces that text).
    pub fn write(&self, path: &Path, sums: Option<&str>) {
        let manifest = serde_json::to_vec_pretty(&self.manifest).unwrap();
        let mut lines = vec![format!("{}  manifest.json\n", sha256_hex(&manifest))];
        for e in &self.entries {
            if e.kind == EntryType::Regular {
                lines.push(format!("{}  {}\n", sha256_hex(&e.data), String::from_utf8_lossy(&e.name)));
            }
        }
        lines[1..].sort_by(|a, b| a[66..].cmp(&b[66..]));
        let text = sums.map(str::to_string).unwrap_or_else(|| lines.concat());
        let gz = flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        append_raw(&mut b, &Entry::file("manifest.json", &manifest));
        for e in &self.entries {
            append_raw(&mut b, e);
        }
        append_raw(&mut b, &Entry::file("checksums.sha256", text.as_bytes()));
        for e in &self.after {
            append_raw(&mut b, e);
        }
        b.into_inner().unwrap().finish().unwrap().flush().unwrap();
    }
}

/// Appends an entry with raw header fields (GNU long names for names over 100 bytes).
pub fn append_raw<W: Write>(b: &mut tar::Builder<W>, e: &Entry) {
    if e.name.len() > 100 {
        let mut long = e.name.clone();
        long.push(0);
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(EntryType::GNULongName);
        h.set_size(long.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &long[..]).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    let n = e.name.len().min(100);
    h.as_gnu_mut().unwrap().name[..n].copy_from_slice(&e.name[..n]);
    h.set_entry_type(e.kind);
    h.set_mode(0o600);
    h.set_mtime(1_600_000_000);
    h.set_size(e.data.len() as u64);
    if let Some(l) = &e.link {
        h.as_gnu_mut().unwrap().linkname[..l.len()].copy_from_slice(l);
    }
    h.set_cksum();
    b.append(&h, &e.data[..]).unwrap();
}
