//! The bundle writer: one pass of tar -> gzip into `<name>.partial` (mode 0600), every entry
//! re-hashed as it streams and compared with what the manifest already promised, then fsync,
//! link to the final name (never replacing an existing bundle), fsync the directory, and the
//! `.sha256` sidecar written the same way. Any failure removes the `.partial`; an earlier
//! bundle is never touched.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use restorer::digest::{Checksums, HashingReader, HashingWriter};
use restorer::layout;
use restorer::manifest::EntryDigest;
use restorer::progress::{Counting, Progress};

use crate::pgzip::{ParallelGz, ReadBackStopped};
use crate::sources::Payload;

/// A finished bundle.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    /// Final path.
    pub path: PathBuf,
    /// Sidecar path.
    pub sidecar: PathBuf,
    /// Compressed size.
    pub size: u64,
    /// sha256 of the bundle file.
    pub sha256: String,
    /// Bytes of entries before compression.
    pub payload_bytes: u64,
}

/// Removes the file on drop unless disarmed: a failed or interrupted write leaves no `.partial`.
struct PartialGuard(Option<PathBuf>);

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// fsync a directory so a rename or link in it survives a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    restorer::sys::sync_dir(dir).with_context(|| format!("syncing directory {}", dir.display()))
}

fn header(size: u64, mode: u32, mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime.max(0) as u64);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Appends each payload, re-hashing it as it streams and comparing with the inventory.
fn append_payloads<W: Write>(
    tar: &mut tar::Builder<ParallelGz<W>>,
    payloads: &[Payload],
    sums: &mut Checksums,
    payload_bytes: &mut u64,
    progress: &dyn Progress,
) -> Result<()> {
    for p in payloads {
        // The entry-name contract holds when writing as well as reading: a name a reader would
        // refuse never makes it into a bundle.
        layout::check_entry_name(&p.entry).with_context(|| format!("packing {}", p.source.display()))?;
        if sums.0.contains_key(&p.entry) || p.entry == layout::CHECKSUMS {
            bail!("two sources map to the bundle entry {} (the second is {})", p.entry, p.source.display());
        }
        progress.item(&p.entry);
        let f = File::open(&p.source).with_context(|| format!("opening {}", p.source.display()))?;
        let now_len = f.metadata().with_context(|| format!("reading {}", p.source.display()))?.len();
        if let Some(members) = &p.gzipped {
            append_gzipped(tar, p, f, now_len, members, progress)?;
            sums.0.insert(p.entry.clone(), p.sha256.clone());
            *payload_bytes += p.size;
            remove_spooled(p)?;
            continue;
        }
        if now_len != p.size {
            bail!("{} changed while the bundle was written (size {} when inventoried, {now_len} now); nothing was kept, run again", p.source.display(), p.size);
        }
        let mode = if p.entry == layout::RESTORE_BIN { layout::RESTORE_BIN_MODE } else { layout::ENTRY_MODE };
        let mut h = header(p.size, mode, p.mtime);
        let mut reader = HashingReader::new(Counting::new(f.take(p.size), progress));
        tar.append_data(&mut h, &p.entry, &mut reader)
            .with_context(|| format!("writing {} ({})", p.entry, p.source.display()))?;
        let (digest, len) = reader.finish();
        if digest != p.sha256 || len != p.size {
            bail!(
                "{} changed while the bundle was written (sha256 {} when inventoried, {digest} while packing); nothing was kept, run again",
                p.source.display(),
                p.sha256
            );
        }
        sums.0.insert(p.entry.clone(), digest);
        *payload_bytes += len;
        remove_spooled(p)?;
    }
    Ok(())
}

/// A spooled payload is in the bundle now: its spool file goes (the sealed bundle's outer
/// archive reads `restore` again, which is never spooled).
fn remove_spooled(p: &Payload) -> Result<()> {
    if p.spooled {
        fs::remove_file(&p.source).with_context(|| format!("removing {} from the spool", p.source.display()))?;
    }
    Ok(())
}

/// Appends an entry whose body was compressed ahead (`f`, gzip members of these lengths): its
/// header (and a long name's extra header, as tar writes them) compressed into the stream, the
/// members copied unchanged, the padding to the next 512-byte record compressed after them. The
/// body was hashed as it was produced; the read-back checks that it decodes to that digest.
fn append_gzipped<W: Write>(
    tar: &mut tar::Builder<ParallelGz<W>>,
    p: &Payload,
    f: File,
    now_len: u64,
    members: &[u64],
    progress: &dyn Progress,
) -> Result<()> {
    let gz_len: u64 = members.iter().sum();
    if now_len != gz_len {
        bail!("{} is {now_len} bytes, {gz_len} were written into it; nothing was kept, run again", p.source.display());
    }
    // tar's own header writer (long names included), into a buffer: appending no data writes
    // the header records alone.
    let mut headers = tar::Builder::new(Vec::new());
    let mut h = header(p.size, layout::ENTRY_MODE, p.mtime);
    headers.append_data(&mut h, &p.entry, std::io::empty()).with_context(|| format!("writing {}", p.entry))?;
    let gz = tar.get_mut();
    let context = || format!("writing {} ({})", p.entry, p.source.display());
    gz.write_all(headers.get_ref()).with_context(context)?;
    gz.append_members(&mut { f }, members).with_context(context)?;
    let pad = (512 - p.size % 512) % 512;
    gz.write_all(&[0; 512][..pad as usize]).with_context(context)?;
    progress.advance(p.size);
    Ok(())
}

/// Writes `manifest.json` first, then each payload in order, then `checksums.sha256`.
pub fn write_bundle(
    dir: &Path,
    file_name: &str,
    manifest_json: &str,
    payloads: &[Payload],
    level: u32,
    progress: &dyn Progress,
) -> Result<Written> {
    write_bundle_to(dir, file_name, manifest_json, payloads, level, &[], progress)
}

/// [`write_bundle`], sealed to `recipients` when there are any (see `restorer::sealed`): the
/// plain bundle is written exactly as above, but age-encrypted as it streams into a spool file
/// beside the bundle (`<file>.payload.partial`: disk, never memory, holds it), which then
/// becomes the payload entry of the sealed bundle's clear archive.
pub fn write_bundle_to(
    dir: &Path,
    file_name: &str,
    manifest_json: &str,
    payloads: &[Payload],
    level: u32,
    recipients: &[restorer::sealed::Recipient],
    progress: &dyn Progress,
) -> Result<Written> {
    let final_path = dir.join(file_name);
    if final_path.exists() {
        bail!("{} already exists; refusing to overwrite an existing bundle", final_path.display());
    }
    let partial = dir.join(format!("{file_name}.partial"));
    let file = create_private(&partial)?;
    let mut guard = PartialGuard(Some(partial.clone()));

    let contents = Contents { manifest_json, payloads, level };
    let (sha256, size, payload_bytes) = if recipients.is_empty() {
        write_plain(file, &partial, &contents, progress)?
    } else {
        write_sealed(file, &partial, (dir, file_name), &contents, recipients, progress)?
    };

    // A hard link is an atomic "rename unless the target exists": two runs in one second can
    // never replace each other's bundle.
    fs::hard_link(&partial, &final_path).with_context(|| format!("publishing {}", final_path.display()))?;
    fs::remove_file(&partial).with_context(|| format!("removing {}", partial.display()))?;
    guard.0 = None;
    sync_dir(dir)?;

    let sidecar = write_sidecar(dir, file_name, &sha256)?;
    Ok(Written { path: final_path, sidecar, size, sha256, payload_bytes })
}

/// What a bundle is made of: its manifest, its payloads in order, and its gzip level.
struct Contents<'a> {
    manifest_json: &'a str,
    payloads: &'a [Payload],
    level: u32,
}

/// The tar stream of a bundle into `gz`: `manifest.json`, each payload in order (re-hashed
/// and compared with the inventory), `checksums.sha256`. Returns the inner writer, the
/// members' lengths and the bytes packed before compression.
fn pack<W: Write>(gz: ParallelGz<W>, contents: &Contents<'_>, progress: &dyn Progress) -> Result<(W, Vec<u64>, u64)> {
    let Contents { manifest_json, payloads, .. } = *contents;
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut sums = Checksums::default();
    let now = chrono::Utc::now().timestamp();

    let manifest_bytes = manifest_json.as_bytes();
    let mut h = header(manifest_bytes.len() as u64, layout::ENTRY_MODE, now);
    let (digest, _) = restorer::digest::sha256_reader(manifest_bytes)?;
    tar.append_data(&mut h, layout::MANIFEST, manifest_bytes).context("writing manifest.json")?;
    sums.0.insert(layout::MANIFEST.to_string(), digest);

    let mut payload_bytes = manifest_bytes.len() as u64;
    // One bar over every byte packed: the payloads' sizes are known before the first is read.
    progress.begin("writing", Some(payloads.iter().map(|p| p.size).sum()));
    let packed = append_payloads(&mut tar, payloads, &mut sums, &mut payload_bytes, progress);
    progress.end();
    packed?;

    let text = sums.to_text();
    let mut h = header(text.len() as u64, layout::ENTRY_MODE, now);
    tar.append_data(&mut h, layout::CHECKSUMS, text.as_bytes()).context("writing checksums.sha256")?;
    let gz = tar.into_inner().context("finishing the archive")?;
    let (inner, members) = gz.finish_members().context("finishing compression")?;
    Ok((inner, members, payload_bytes))
}

/// A plain bundle into `file`, read back while it is written: a second thread follows the
/// file member by member (each announced once it is in the file) through the restore's own
/// reader, so checking costs little more time than writing. Its digest of the file, which it
/// read to the end and found whole, is the bundle's sha256. Returns that, the size and the
/// bytes packed.
fn write_plain(
    file: File,
    partial: &Path,
    contents: &Contents<'_>,
    progress: &dyn Progress,
) -> Result<(String, u64, u64)> {
    let (announce, lengths) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let follower = std::thread::Builder::new()
            .name("read-back".into())
            .spawn_scoped(s, move || read_back(partial, Some(lengths), &restorer::progress::Silent))
            .context("starting the thread that reads the bundle back")?;
        // The members go straight to the file (they are whole 1 MiB blocks, compressed), so
        // each is there to read once announced.
        let gz = ParallelGz::new(file, contents.level, restorer::sys::cores()).announcing(announce);
        // The channel is closed once `pack` returns (the compressor is gone): the follower
        // ends either way. The file goes to disk while the follower finishes.
        let written = pack(gz, contents, progress).and_then(|(file, members, payload_bytes)| {
            file.sync_all().with_context(|| format!("syncing {}", partial.display()))?;
            Ok((members.iter().sum(), payload_bytes))
        });
        let read = follower.join().map_err(|_| anyhow::anyhow!("the thread reading the bundle back panicked"))?;
        let (size, payload_bytes) = match written {
            Ok(written) => written,
            // The read-back refused what it read and stopped; writing stopped at its next
            // member. The refusal is what to tell.
            Err(e) if ReadBackStopped::caused(&e) => return Err(read.err().unwrap_or(e)),
            Err(e) => return Err(e),
        };
        Ok((read?, size, payload_bytes))
    })
}

/// A sealed bundle (`file_name` in `dir`): the plain one age-encrypted into a spool, then the
/// clear archive around it (see [`seal_outer`]), read back once written.
fn write_sealed(
    file: File,
    partial: &Path,
    (dir, file_name): (&Path, &str),
    contents: &Contents<'_>,
    recipients: &[restorer::sealed::Recipient],
    progress: &dyn Progress,
) -> Result<(String, u64, u64)> {
    let Contents { manifest_json, payloads, level } = *contents;
    let spool = dir.join(format!("{file_name}.payload.partial"));
    let f = create_private(&spool)?;
    let _spool_guard = PartialGuard(Some(spool.clone()));
    let sealed = restorer::sealed::seal(recipients, HashingWriter::new(BufWriter::with_capacity(1024 * 1024, f)))
        .context("starting the age encryption")?;
    let gz = ParallelGz::new(sealed, level, restorer::sys::cores());
    let (sealed, _, payload_bytes) = pack(gz, contents, progress)?;
    let (file, sha256, size) = seal_outer(file, sealed, &spool, manifest_json, payloads, level, file_name)?;
    file.sync_all().with_context(|| format!("syncing {}", partial.display()))?;
    drop(file);
    let read = read_back(partial, None::<Vec<u64>>, progress)?;
    if read != sha256 {
        bail!(
            "reading back {} before publishing it: the file's sha256 is {read}, {sha256} was written; nothing was published",
            partial.display()
        );
    }
    Ok((sha256, size, payload_bytes))
}

/// Creates a new file, 0600 (a bundle, or a part of one, is private); never one that exists.
pub(crate) fn create_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Reads the written bundle back through the restore's own reader before publishing it: a
/// bundle that this restorer would refuse (a name, a size, a digest, the gzip trailer) is never
/// published. With the `members`' lengths (a plain bundle), each member is inflated on a core
/// of its own; the verdict is the same. Returns the sha256 of the file as read.
fn read_back(
    partial: &Path,
    members: Option<impl IntoIterator<Item = u64>>,
    progress: &dyn Progress,
) -> Result<String> {
    use restorer::unpack::{read_archive, read_archive_members, Sink};
    let read = match members {
        Some(m) => read_archive_members(partial, m, Sink::Discard, "checking", progress),
        None => read_archive(partial, Sink::Discard, "checking", progress),
    };
    let read = read
        .with_context(|| format!("reading back {} before publishing it; nothing was published", partial.display()))?;
    if !read.report.ok() {
        bail!(
            "reading back {} before publishing it: {}; nothing was published",
            partial.display(),
            read.report.into_error()
        );
    }
    read.file_sha256.with_context(|| format!("reading back {}: no digest of the file", partial.display()))
}

/// Writes `<file>.sha256` (the sha256sum line of the bundle) through a `.partial` renamed into
/// place, and syncs the directory.
fn write_sidecar(dir: &Path, file_name: &str, sha256: &str) -> Result<PathBuf> {
    let sidecar = dir.join(format!("{file_name}.sha256"));
    let sidecar_partial = dir.join(format!("{file_name}.sha256.partial"));
    {
        let mut g = PartialGuard(Some(sidecar_partial.clone()));
        let mut f = create_private(&sidecar_partial)?;
        f.write_all(format!("{sha256}  {file_name}\n").as_bytes())?;
        f.sync_all()?;
        fs::rename(&sidecar_partial, &sidecar).with_context(|| format!("writing {}", sidecar.display()))?;
        g.0 = None;
    }
    sync_dir(dir)?;
    Ok(sidecar)
}

type SealedOut = restorer::sealed::Sealer<HashingWriter<BufWriter<File>>>;

/// Writes a sealed bundle's clear archive into `file`: the envelope, `restore`, `README.txt`,
/// the payload (the spool, stored: ciphertext does not compress) and the checksums of these.
/// Returns the file, its sha256 and size.
fn seal_outer(
    file: File,
    sealed: SealedOut,
    spool: &Path,
    manifest_json: &str,
    payloads: &[Payload],
    level: u32,
    file_name: &str,
) -> Result<(File, String, u64)> {
    let (buf, payload_sha, payload_len) = sealed.finish().context("finishing the age encryption")?.finish();
    buf.into_inner().map_err(|e| e.into_error()).context("flushing the sealed payload")?;
    let manifest = restorer::manifest::Manifest::from_json(manifest_json).context("the manifest to seal")?;
    let readme = restorer::sealed::readme(file_name);
    let (readme_sha, _) = restorer::digest::sha256_reader(readme.as_bytes())?;
    let restore = payloads.iter().find(|p| p.entry == layout::RESTORE_BIN);
    let mut entries: Vec<EntryDigest> = restore
        .map(|p| EntryDigest { entry: p.entry.clone(), size: p.size, sha256: p.sha256.clone() })
        .into_iter()
        .collect();
    entries.push(EntryDigest { entry: layout::README.into(), size: readme.len() as u64, sha256: readme_sha.clone() });
    entries.push(EntryDigest { entry: layout::PAYLOAD.into(), size: payload_len, sha256: payload_sha.clone() });
    let envelope = restorer::sealed::Envelope::new(&manifest, entries).to_json();

    let sink = HashingWriter::new(BufWriter::with_capacity(1024 * 1024, file));
    let threads = restorer::sys::cores();
    let mut tar = tar::Builder::new(ParallelGz::new(sink, level, threads));
    tar.mode(tar::HeaderMode::Deterministic);
    let now = chrono::Utc::now().timestamp();
    let mut sums = Checksums::default();
    let (digest, _) = restorer::digest::sha256_reader(envelope.as_bytes())?;
    tar.append_data(&mut header(envelope.len() as u64, layout::ENTRY_MODE, now), layout::MANIFEST, envelope.as_bytes())
        .context("writing the envelope")?;
    sums.0.insert(layout::MANIFEST.into(), digest);
    if let Some(p) = restore {
        let f = File::open(&p.source).with_context(|| format!("opening {}", p.source.display()))?;
        let mut reader = HashingReader::new(f.take(p.size));
        tar.append_data(&mut header(p.size, layout::RESTORE_BIN_MODE, p.mtime), &p.entry, &mut reader)
            .with_context(|| format!("writing {}", p.entry))?;
        let (digest, len) = reader.finish();
        if digest != p.sha256 || len != p.size {
            bail!("{} changed while the bundle was written; nothing was kept, run again", p.source.display());
        }
        sums.0.insert(p.entry.clone(), digest);
    }
    tar.append_data(&mut header(readme.len() as u64, layout::ENTRY_MODE, now), layout::README, readme.as_bytes())
        .context("writing README.txt")?;
    sums.0.insert(layout::README.into(), readme_sha);
    tar.get_mut().set_level(0).context("compressing the bundle")?;
    let f = File::open(spool).with_context(|| format!("opening {}", spool.display()))?;
    let mut reader = HashingReader::new(f.take(payload_len));
    tar.append_data(&mut header(payload_len, layout::ENTRY_MODE, now), layout::PAYLOAD, &mut reader)
        .context("writing the sealed payload")?;
    let (digest, len) = reader.finish();
    if digest != payload_sha || len != payload_len {
        bail!("{} changed while the bundle was written; nothing was kept, run again", spool.display());
    }
    sums.0.insert(layout::PAYLOAD.into(), digest);
    tar.get_mut().set_level(level).context("compressing the bundle")?;
    let text = sums.to_text();
    tar.append_data(&mut header(text.len() as u64, layout::ENTRY_MODE, now), layout::CHECKSUMS, text.as_bytes())
        .context("writing checksums.sha256")?;
    let sink = tar.into_inner().context("finishing the archive")?.finish().context("finishing compression")?;
    let (buf, sha256, size) = sink.finish();
    let file = buf.into_inner().map_err(|e| e.into_error()).context("flushing the bundle")?;
    Ok((file, sha256, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use restorer::progress::Silent;

    /// An empty `out` directory in `t`, where the bundle is written.
    fn out_dir(t: &tempfile::TempDir) -> PathBuf {
        let out = t.path().join("out");
        fs::create_dir(&out).unwrap();
        out
    }

    fn payload(dir: &Path, content: &[u8]) -> Payload {
        let source = dir.join("f.conf");
        fs::write(&source, content).unwrap();
        let (sha256, size) = restorer::digest::sha256_file(&source).unwrap();
        Payload { entry: "config/etc/f.conf".into(), source, size, sha256, mtime: 0, gzipped: None, spooled: false }
    }

    /// A file whose content changed after it was inventoried (same size, other bytes) aborts the
    /// bundle with its name, and leaves neither a bundle nor a .partial.
    #[test]
    fn file_changed_while_packing_is_reported_and_nothing_is_left() {
        let t = tempfile::tempdir().unwrap();
        let out = out_dir(&t);
        let p = payload(t.path(), b"version one\n");
        fs::write(&p.source, b"version two\n").unwrap();
        let e = write_bundle(&out, "b.tar.gz", "{}", &[p], 1, &Silent).unwrap_err();
        assert!(format!("{e:#}").contains("f.conf changed while the bundle was written"), "{e:#}");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);

        // Grown since the inventory: caught by its size.
        let p = payload(t.path(), b"short\n");
        fs::write(&p.source, b"much longer now\n").unwrap();
        assert!(write_bundle(&out, "b.tar.gz", "{}", &[p], 1, &Silent).is_err());
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
    }

    /// A spooled payload's file is gone as soon as it is packed (the spool and the bundle never
    /// hold the same bytes twice); a captured file is never touched. The stand-in manifest
    /// makes the read-back refuse the bundle, after both were packed: nothing is published.
    #[test]
    fn spooled_payloads_are_removed_once_packed_and_captured_files_kept() {
        let t = tempfile::tempdir().unwrap();
        let spool = t.path().join("spool");
        fs::create_dir(&spool).unwrap();
        let captured = payload(t.path(), b"kept as it is");
        let mut spooled = payload(&spool, b"spooled copy");
        spooled.entry = "databases/app.sqlite".into();
        spooled.spooled = true;
        let out = out_dir(&t);
        let e = write_bundle(&out, "b.tar.gz", "{}", &[captured.clone(), spooled.clone()], 1, &Silent).unwrap_err();
        assert!(format!("{e:#}").contains("reading back"), "{e:#}");
        assert!(!spooled.source.exists(), "the spool file went once packed");
        assert_eq!(fs::read(&captured.source).unwrap(), b"kept as it is");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "nothing published, no .partial left");
    }

    /// A read-back that refuses the bundle while it is written (its writing then stops at the
    /// next member, or ends first: a race) is the error told, never the writer's "the
    /// read-back stopped"; nothing is left.
    #[test]
    fn a_refusing_read_back_is_the_error_told() {
        let t = tempfile::tempdir().unwrap();
        // 8 MiB each: one gzip member per 1 MiB, so the read-back has read the first long
        // before the last is written.
        let big = vec![b'x'; 8 << 20];
        let payloads: Vec<Payload> = (0..4)
            .map(|i| {
                let mut p = payload(t.path(), &big);
                let source = t.path().join(format!("big{i}"));
                fs::rename(&p.source, &source).unwrap();
                p.source = source;
                p.entry = format!("data/big{i}");
                p
            })
            .collect();
        let out = out_dir(&t);
        // "{}" lists no entry: the read-back refuses the first one after manifest.json.
        let e = write_bundle(&out, "b.tar.gz", "{}", &payloads, 1, &Silent).unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("reading back") && !text.contains("read-back of the bundle stopped"), "{text}");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "nothing published, no .partial left");
    }

    /// An existing bundle of the same name is never replaced.
    #[test]
    fn existing_bundle_is_not_replaced() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("b.tar.gz"), b"earlier bundle").unwrap();
        let p = payload(t.path(), b"x");
        assert!(write_bundle(t.path(), "b.tar.gz", "{}", &[p], 1, &Silent).is_err());
        assert_eq!(fs::read(t.path().join("b.tar.gz")).unwrap(), b"earlier bundle");
    }
}
