//! The one streaming reader of a bundle `.tar.gz`. `restore verify` on an archive, `restore
//! --from X.tar.gz`, `packer verify` and `packer verify --deep` all read through
//! [`read_archive`], so they give one verdict on every bundle.
//!
//! The archive is judged while it streams, before an entry's bytes are written anywhere: the
//! first entry must be `manifest.json`; every later entry must be a regular file with a valid
//! name, seen once, declared by that manifest with exactly the size the manifest gives (so no
//! entry can write more than it declares), or be `checksums.sha256`, which must come last. After
//! the tar end the gzip stream is read to its end, so its CRC32/ISIZE trailer is checked and
//! nothing hides behind the archive. Digests are compared at the end (the checksum list is the
//! last entry) by [`crate::verify`]'s rules; an unpack that fails any of this removes what it
//! wrote. Links, devices, FIFOs and directories are refused outright: format 1 never writes them
//! (symlinks and directories live in the manifest).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use tar::{Archive, EntryType};

use crate::digest::HashingReader;
use crate::error::IoContext;
use crate::manifest::Manifest;
use crate::progress::{Counting, Progress, Silent};
use crate::sealed::{self, Envelope, Identity};
use crate::verify::{self, VerifyReport};
use crate::{layout, Error, Result};

/// The archive reader over a gzip-compressed bundle file.
pub type BundleArchive = Archive<MultiGzDecoder<BufReader<File>>>;

/// Largest `manifest.json` a reader buffers (kilobytes to a few MB in practice).
pub const MANIFEST_LIMIT: u64 = 256 * 1024 * 1024;
/// Largest `checksums.sha256` a reader buffers.
pub const CHECKSUMS_LIMIT: u64 = 256 * 1024 * 1024;

/// Opens a bundle for sequential reading.
pub fn open(bundle: &Path) -> Result<BundleArchive> {
    let f = File::open(bundle).ctx("opening bundle", bundle)?;
    Ok(Archive::new(MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, f))))
}

/// A damaged archive: gzip or tar could not go on.
pub(crate) fn damaged(bundle: &Path, near: &str, e: io::Error) -> Error {
    Error::Corrupt(format!("{}: archive damaged{near}: {e} (truncated or altered copy?)", bundle.display()))
}

/// Reads `manifest.json` from the first entry of a bundle without reading the rest: this is what
/// makes `packer show` instant on a multi-GB bundle. The manifest is not verified (its digest is
/// in the last entry): fine for browsing, never for restoring. A sealed bundle's manifest is
/// encrypted: that is a refusal naming the way in (see [`read_head`]).
pub fn read_manifest(bundle: &Path) -> Result<Manifest> {
    match read_head(bundle)? {
        Head::Plain(m) => Ok(*m),
        Head::Sealed(_) => Err(Error::Refused(format!(
            "{} is a sealed bundle (age-encrypted): its manifest can be read only with the identity (restore --identity FILE, packer verify --identity FILE; packer show reads it from the catalog)",
            bundle.display()
        ))),
    }
}

/// What the head of a bundle says it is.
#[derive(Debug)]
pub enum Head {
    /// A plain bundle (format 1) and its manifest (unverified).
    Plain(Box<Manifest>),
    /// A sealed bundle (format 2) and its clear envelope (unverified).
    Sealed(Envelope),
}

/// Reads the first entry of a bundle: the manifest of a plain bundle, or a sealed bundle's
/// envelope. Unverified, as [`read_manifest`].
pub fn read_head(bundle: &Path) -> Result<Head> {
    let mut archive = open(bundle)?;
    let mut entries = archive.entries().map_err(|e| damaged(bundle, "", e))?;
    let first = match entries.next() {
        Some(e) => e.map_err(|e| damaged(bundle, "", e))?,
        None => return Err(Error::Corrupt(format!("{}: empty archive", bundle.display()))),
    };
    let (text, _) = read_manifest_entry(bundle, first)?;
    if sealed::is_envelope(&text) {
        return Ok(Head::Sealed(Envelope::from_json(&text)?));
    }
    Ok(Head::Plain(Box::new(Manifest::from_json(&text)?)))
}

/// The first entry, which must be a regular `manifest.json` of sane size: its text and digest.
fn read_manifest_entry<R: Read>(bundle: &Path, mut first: tar::Entry<R>) -> Result<(String, (String, u64))> {
    let name = entry_name(bundle, &first, "")?;
    check_regular(&name, first.header().entry_type())?;
    if name != layout::MANIFEST {
        return Err(Error::Corrupt(format!(
            "{}: first entry is {name:?}, expected {} (not a bundle written by packer?)",
            bundle.display(),
            layout::MANIFEST
        )));
    }
    if first.size() > MANIFEST_LIMIT {
        return Err(Error::Corrupt(format!("{}: manifest.json is {} bytes", bundle.display(), first.size())));
    }
    let mut hashing = HashingReader::new(&mut first);
    let mut text = String::new();
    hashing.read_to_string(&mut text).map_err(|e| damaged(bundle, " in manifest.json", e))?;
    Ok((text, hashing.finish()))
}

/// An entry's name, which must be UTF-8 and pass [`layout::check_entry_name`].
fn entry_name<R: Read>(bundle: &Path, entry: &tar::Entry<R>, near: &str) -> Result<String> {
    let raw = entry.path_bytes();
    let name = std::str::from_utf8(&raw).map_err(|_| {
        Error::Unsafe(format!("{}: non-UTF-8 entry name {:?}{near}", bundle.display(), String::from_utf8_lossy(&raw)))
    })?;
    layout::check_entry_name(name)?;
    Ok(name.to_string())
}

fn check_regular(name: &str, t: EntryType) -> Result<()> {
    let what = match t {
        EntryType::Regular | EntryType::Continuous => return Ok(()),
        EntryType::Directory => "a directory entry",
        EntryType::Symlink => "a symbolic link",
        EntryType::Link => "a hard link",
        EntryType::Char | EntryType::Block => "a device node",
        EntryType::Fifo => "a FIFO",
        _ => "of an unsupported entry type",
    };
    Err(Error::Unsafe(format!("{name} is {what}; bundles hold only regular files")))
}

/// Where the bytes of each entry go while the archive is judged.
pub enum Sink<'a> {
    /// Nowhere: verification only (no disk space needed).
    Discard,
    /// Into files under a directory [`read_archive`] may write (created by the caller, empty);
    /// `want` picks the entries written (every entry is still read and judged).
    Dir {
        /// The directory.
        dest: &'a Path,
        /// Which entries to write.
        want: &'a dyn Fn(&str) -> bool,
    },
}

/// The verdict on a whole archive.
#[derive(Debug)]
pub struct ArchiveRead {
    /// The manifest, when its own digest matched (of a sealed bundle: the payload's manifest,
    /// when it was opened with the identity).
    pub manifest: Option<Manifest>,
    /// Every digest problem found (of a sealed bundle opened with the identity: the outer
    /// archive's and the payload's).
    pub report: VerifyReport,
    /// sha256 of the `checksums.sha256` entry (identifies the bundle's content; of a sealed
    /// bundle opened with the identity, the payload's, which is what the sink received).
    pub checksums_sha256: String,
    /// A sealed bundle's envelope, when its own digest matched.
    pub envelope: Option<Envelope>,
    /// sha256 of the whole bundle file, hashed in the same pass (for its `.sha256` sidecar or
    /// the catalog: no second read of a multi-GB file); `None` for an extracted directory.
    pub file_sha256: Option<String>,
}

/// What the entries of one tar stream gave, before judging.
struct Entries {
    manifest_text: String,
    sums_text: Option<String>,
    computed: BTreeMap<String, (String, u64)>,
    /// The first entry was a sealed bundle's envelope.
    sealed: bool,
    /// The payload, opened with the identity.
    opened: Option<Box<Entries>>,
    /// Why the payload did not open; judged once the ciphertext's digest is known.
    payload_error: Option<Error>,
}

/// Reads the whole archive once, judging every entry as it streams (see the module comment).
/// `Err` for anything that stops the reading (damage, an entry a bundle must not hold); `Ok`
/// with a report listing digest problems otherwise. With [`Sink::Dir`] the caller removes what
/// was written unless the result is `Ok` with an empty report. A sealed bundle is judged on its
/// ciphertext only (see [`read_archive_with`] to open it). `progress` sees one step, `what`,
/// measured in bytes of the bundle file read (the size known ahead), and each entry.
pub fn read_archive(bundle: &Path, sink: Sink, what: &str, progress: &dyn Progress) -> Result<ArchiveRead> {
    read_archive_with(bundle, sink, None, what, progress)
}

/// [`read_archive`], opening a sealed bundle's payload with `identity` as it streams: the
/// payload (a plain bundle) is judged by the same rules, entry by entry, and its entries, not
/// the envelope's, go to the sink. An identity matching no recipient is a refusal before the
/// sink received anything (the payload is read before any of its entries); a tampered
/// payload is reported by its ciphertext digest. `identity` is ignored for a plain bundle.
pub fn read_archive_with(
    bundle: &Path,
    sink: Sink,
    identity: Option<&Identity>,
    what: &str,
    progress: &dyn Progress,
) -> Result<ArchiveRead> {
    let f = File::open(bundle).ctx("opening bundle", bundle)?;
    progress.begin(what, f.metadata().ok().map(|m| m.len()));
    let file = Counting::new(HashingReader::new(f), progress);
    let decoder = MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, file));
    // check_end read the gzip stream to the end of the file: every byte has been hashed.
    judge_stream(bundle, decoder, &sink, identity, progress, |d| {
        Ok(d.into_inner().into_inner().into_inner().finish().0)
    })
}

/// [`read_archive`] of a plain bundle whose gzip members' compressed lengths are known (the
/// packer, reading back what it writes): the same verdict, each member inflated on a thread
/// of its own ([`crate::gunzip`]); bytes after the last member are damage. The lengths may
/// come while the file is being written (each once its member is in the file): the file is
/// read no further than they say until they end, which must be when the file is complete.
pub fn read_archive_members(
    bundle: &Path,
    members: impl IntoIterator<Item = u64>,
    sink: Sink,
    what: &str,
    progress: &dyn Progress,
) -> Result<ArchiveRead> {
    let f = File::open(bundle).ctx("opening bundle", bundle)?;
    progress.begin(what, f.metadata().ok().map(|m| m.len()));
    // Reading ahead of the lengths is harmless: the file only ever grows, and what a read
    // returns was written for good.
    let file = Counting::new(HashingReader::new(BufReader::with_capacity(256 * 1024, f)), progress);
    let decoder = crate::gunzip::ParallelGunzip::new(file, members, crate::sys::cores());
    judge_stream(bundle, decoder, &sink, None, progress, |d| {
        let mut file = d.into_inner();
        if file.read(&mut [0u8; 1]).map_err(|e| damaged(bundle, " at its end", e))? != 0 {
            return Err(Error::Unsafe(format!("{}: data after the last gzip member", bundle.display())));
        }
        Ok(file.into_inner().finish().0)
    })
}

/// The entries of the tar stream `decoder` yields, judged, then the gzip stream read to its end
/// and `file_digest` asked for the sha256 of the whole file.
fn judge_stream<D: Read>(
    bundle: &Path,
    decoder: D,
    sink: &Sink,
    identity: Option<&Identity>,
    progress: &dyn Progress,
    file_digest: impl FnOnce(D) -> Result<String>,
) -> Result<ArchiveRead> {
    let mut archive = Archive::new(decoder);
    let read = read_entries(bundle, &mut archive, sink, identity, true, progress).and_then(|read| {
        let mut rest = archive.into_inner();
        check_end(bundle, &mut rest, "")?;
        Ok((read, file_digest(rest)?))
    });
    progress.end();
    let (read, file_sha256) = read?;
    let mut read = conclude(bundle, read)?;
    read.file_sha256 = Some(file_sha256);
    Ok(read)
}

/// Past the tar end: the rest of the gzip stream must be zero padding, and reading it to its
/// end checks every member's CRC32 and ISIZE (a corrupt or truncated trailer is damage).
fn check_end(bundle: &Path, mut rest: impl Read, of: &str) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rest.read(&mut buf).map_err(|e| damaged(bundle, &format!(" at the end of the archive{of}"), e))?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(Error::Unsafe(format!("{}: data after the end of the tar archive{of}", bundle.display())));
        }
    }
}

/// `checksums.sha256`, bounded in size, into `sink`: its text and its own digest.
fn read_checksums_entry<R: Read>(
    bundle: &Path,
    entry: &mut tar::Entry<R>,
    sink: &Sink,
) -> Result<(String, (String, u64))> {
    let (name, size) = (layout::CHECKSUMS, entry.size());
    if size > CHECKSUMS_LIMIT {
        return Err(Error::Corrupt(format!("{name} is {size} bytes")));
    }
    let mut hashing = HashingReader::new(entry);
    let mut text = String::new();
    hashing.read_to_string(&mut text).map_err(|e| damaged(bundle, &format!(" in {name}"), e))?;
    write_entry(sink, name, text.as_bytes())?;
    Ok((text, hashing.finish()))
}

/// The entries the (not yet trusted: its digest is checked at the end) manifest or envelope
/// declares, with their sizes: only what it declares is read at all.
fn declared_sizes(bundle: &Path, text: &str, sealed: bool) -> Result<BTreeMap<String, u64>> {
    let as_corrupt = |e| match e {
        Error::Manifest(e) => Error::Corrupt(format!("{}: {} cannot be read: {e}", bundle.display(), layout::MANIFEST)),
        e => e,
    };
    let listed = if sealed {
        Envelope::from_json(text).map_err(as_corrupt)?.entries()
    } else {
        Manifest::from_json(text).map_err(as_corrupt)?.entries()
    };
    Ok(listed.into_iter().map(|(entry, (size, _))| (entry, size)).collect())
}

/// The entries of one tar stream (the bundle, or a sealed bundle's payload when `outer` is
/// false), judged as they stream.
fn read_entries<R: Read>(
    bundle: &Path,
    archive: &mut Archive<R>,
    sink: &Sink,
    identity: Option<&Identity>,
    outer: bool,
    progress: &dyn Progress,
) -> Result<Entries> {
    let mut computed: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut sums_text = None;
    let manifest_text;
    let declared;
    let mut opened = None;
    let mut payload_error = None;
    let sealed;
    {
        let mut entries = archive.entries().map_err(|e| damaged(bundle, "", e))?;
        let first = match entries.next() {
            Some(e) => e.map_err(|e| damaged(bundle, "", e))?,
            None => return Err(Error::Corrupt(format!("{}: empty archive", bundle.display()))),
        };
        let (text, digest) = read_manifest_entry(bundle, first)?;
        // A payload holds a plain bundle only: an envelope inside one is not read as such.
        sealed = outer && sealed::is_envelope(&text);
        declared = declared_sizes(bundle, &text, sealed)?;
        // Opened with the identity, the sink receives the payload's plain bundle, not the
        // envelope and the ciphertext (two manifest.json cannot share one directory).
        let own_sink = if sealed && identity.is_some() { &Sink::Discard } else { sink };
        manifest_text = text;
        write_entry(own_sink, layout::MANIFEST, manifest_text.as_bytes())?;
        computed.insert(layout::MANIFEST.to_string(), digest);
        let mut last = layout::MANIFEST.to_string();
        for entry in entries {
            let near = format!(" after entry {last}");
            let mut entry = entry.map_err(|e| damaged(bundle, &near, e))?;
            let name = entry_name(bundle, &entry, &near)?;
            if sums_text.is_some() {
                return Err(Error::Unsafe(format!(
                    "{name} follows {}, which must be the last entry",
                    layout::CHECKSUMS
                )));
            }
            check_regular(&name, entry.header().entry_type())?;
            if computed.contains_key(&name) {
                return Err(Error::Unsafe(format!("{name} appears twice in the archive")));
            }
            let size = entry.size();
            if name == layout::CHECKSUMS {
                let (text, digest) = read_checksums_entry(bundle, &mut entry, own_sink)?;
                computed.insert(name.clone(), digest);
                sums_text = Some(text);
            } else {
                let Some(&want_size) = declared.get(&name) else {
                    return Err(Error::Unsafe(format!(
                        "{name} is not listed in {}: refused before anything was written",
                        layout::MANIFEST
                    )));
                };
                if size != want_size {
                    return Err(Error::Corrupt(format!(
                        "{name} is {size} bytes in the archive, {want_size} in {}",
                        layout::MANIFEST
                    )));
                }
                progress.item(&name);
                let mut hashing = HashingReader::new((&mut entry).take(want_size));
                match identity.filter(|_| sealed && name == layout::PAYLOAD) {
                    Some(identity) => {
                        match open_payload(bundle, &mut hashing, identity, sink, progress) {
                            Ok(inner) => opened = Some(Box::new(inner)),
                            // The wrong key: one clear refusal, at once.
                            Err(e @ Error::Refused(_)) => return Err(e),
                            Err(e) => payload_error = Some(e),
                        }
                        // What the payload left (all of it after a failure) is still hashed:
                        // the ciphertext's digest is what names a tampered payload.
                        io::copy(&mut hashing, &mut io::sink())
                            .map_err(|e| damaged(bundle, &format!(" in entry {name}"), e))?;
                    }
                    None => copy_entry(own_sink, &name, &mut hashing).map_err(|e| match e {
                        CopyError::Read(e) => damaged(bundle, &format!(" in entry {name}"), e),
                        CopyError::Write(e) => e,
                    })?,
                }
                let (digest, len) = hashing.finish();
                if len != want_size {
                    return Err(damaged(bundle, &format!(" in entry {name}"), io::ErrorKind::UnexpectedEof.into()));
                }
                computed.insert(name.clone(), (digest, len));
            }
            last = name;
        }
    }
    Ok(Entries { manifest_text, sums_text, computed, sealed, opened, payload_error })
}

/// Opens a sealed payload with the identity and reads the plain bundle inside it, entry by
/// entry, into `sink`. Takes `&mut dyn Read` so that the reader's types stay finite.
fn open_payload(
    bundle: &Path,
    ciphertext: &mut dyn Read,
    identity: &Identity,
    sink: &Sink,
    progress: &dyn Progress,
) -> Result<Entries> {
    let plain = identity.open(ciphertext).map_err(|e| match e {
        sealed::OpenError::WrongKey(m) => Error::Refused(format!("{}: {m}", bundle.display())),
        sealed::OpenError::Damaged(m) => {
            Error::Corrupt(format!("{}: {} does not open: {m}", bundle.display(), layout::PAYLOAD))
        }
    })?;
    let mut inner = Archive::new(MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, plain)));
    let read = read_entries(bundle, &mut inner, sink, None, false, progress)?;
    check_end(bundle, inner.into_inner(), &format!(" in {}", layout::PAYLOAD))?;
    Ok(read)
}

/// The digests of what [`read_entries`] found, judged by [`crate::verify`]'s rules.
fn conclude(bundle: &Path, read: Entries) -> Result<ArchiveRead> {
    let Entries { manifest_text, sums_text, mut computed, sealed, opened, payload_error } = read;
    let sums_text = sums_text.ok_or_else(|| {
        Error::Corrupt(format!(
            "{}: no {} entry: the bundle is truncated (it is the last entry)",
            bundle.display(),
            layout::CHECKSUMS
        ))
    })?;
    let checksums_sha256 = computed.get(layout::CHECKSUMS).map(|d| d.0.clone()).unwrap_or_default();
    computed.remove(layout::CHECKSUMS);
    if !sealed {
        let (manifest, report) = verify::judge(&manifest_text, &sums_text, &computed)?;
        return Ok(ArchiveRead { manifest, report, checksums_sha256, envelope: None, file_sha256: None });
    }
    let (envelope, mut report) = verify::judge_sealed(&manifest_text, &sums_text, &computed)?;
    if let Some(e) = payload_error {
        // A payload whose ciphertext digest is wrong was tampered with or damaged: the report
        // names it with both digests. One that matches its digest yet does not open was
        // sealed wrong, or re-sealed with recomputed digests: the error says why.
        if report.problems.iter().any(|p| p.entry == layout::PAYLOAD) {
            return Ok(ArchiveRead { manifest: None, report, checksums_sha256, envelope, file_sha256: None });
        }
        return Err(e);
    }
    let Some(inner) = opened else {
        return Ok(ArchiveRead { manifest: None, report, checksums_sha256, envelope, file_sha256: None });
    };
    let inner = conclude(bundle, *inner)?;
    report.entries_checked += inner.report.entries_checked;
    report.bytes_checked += inner.report.bytes_checked;
    report.problems.extend(inner.report.problems);
    Ok(ArchiveRead {
        manifest: inner.manifest,
        report,
        checksums_sha256: inner.checksums_sha256,
        envelope,
        file_sha256: None,
    })
}

enum CopyError {
    Read(io::Error),
    Write(Error),
}

fn target_of(dest: &Path, name: &str) -> Result<std::path::PathBuf> {
    let target = dest.join(name);
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).ctx("creating", parent)?;
    }
    Ok(target)
}

/// Opens a new file for an entry: never an existing path, never through a link.
fn create_entry_file(target: &Path, name: &str) -> Result<File> {
    let mode = if name == layout::RESTORE_BIN { layout::RESTORE_BIN_MODE } else { layout::ENTRY_MODE };
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(mode)
        .open(target)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::Unsafe(format!("{name}: {} already exists", target.display())),
            _ => Error::io("creating", target, e),
        })
}

fn write_entry(sink: &Sink, name: &str, bytes: &[u8]) -> Result<()> {
    copy_entry(sink, name, &mut &bytes[..]).map_err(|e| match e {
        CopyError::Read(e) => Error::Other(e.to_string()),
        CopyError::Write(e) => e,
    })
}

fn copy_entry(sink: &Sink, name: &str, from: &mut impl Read) -> std::result::Result<(), CopyError> {
    let mut out = match sink {
        Sink::Dir { dest, want } if want(name) => {
            let target = target_of(dest, name).map_err(CopyError::Write)?;
            Some((create_entry_file(&target, name).map_err(CopyError::Write)?, target))
        }
        _ => None,
    };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = from.read(&mut buf).map_err(CopyError::Read)?;
        if n == 0 {
            return Ok(());
        }
        if let Some((f, target)) = &mut out {
            f.write_all(&buf[..n]).map_err(|e| CopyError::Write(Error::io("writing", target.as_path(), e)))?;
        }
    }
}

/// Unpacks `bundle` into `dest`, which must not exist yet (it is created 0700), verifying every
/// entry as it streams. On any refusal or digest problem the partly written `dest` is removed,
/// so a refused bundle leaves nothing behind.
pub fn unpack(bundle: &Path, dest: &Path, progress: &dyn Progress) -> Result<ArchiveRead> {
    unpack_only(bundle, dest, |_| true, progress)
}

/// Like [`unpack`], writing only the entries `want` accepts (every entry is still read and
/// judged). `manifest.json` and `checksums.sha256` are always written.
pub fn unpack_only(
    bundle: &Path,
    dest: &Path,
    want: impl Fn(&str) -> bool,
    progress: &dyn Progress,
) -> Result<ArchiveRead> {
    unpack_only_with(bundle, dest, None, want, progress)
}

/// [`unpack_only`], opening a sealed bundle with `identity` (see [`read_archive_with`]): `dest`
/// then holds the payload's plain bundle.
pub fn unpack_only_with(
    bundle: &Path,
    dest: &Path,
    identity: Option<&Identity>,
    want: impl Fn(&str) -> bool,
    progress: &dyn Progress,
) -> Result<ArchiveRead> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(Error::Refused(format!("{} already exists; unpack needs a new directory", dest.display())));
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new().recursive(true).create(parent).ctx("creating", parent)?;
    }
    fs::DirBuilder::new().mode(0o700).create(dest).ctx("creating", dest)?;
    let want = |n: &str| n == layout::MANIFEST || n == layout::CHECKSUMS || want(n);
    kept_only_if_clean(
        dest,
        read_archive_with(bundle, Sink::Dir { dest, want: &want }, identity, "unpacking", progress),
    )
}

/// What an unpack into the new directory `dest` leaves: everything when the read was clean,
/// nothing (the directory removed) on a refusal or any digest problem.
fn kept_only_if_clean(dest: &Path, result: Result<ArchiveRead>) -> Result<ArchiveRead> {
    match result {
        Ok(read) if read.report.ok() => Ok(read),
        Ok(read) => {
            let _ = fs::remove_dir_all(dest);
            Err(read.report.into_error())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(dest);
            Err(e)
        }
    }
}

/// True when the bundle's first entry is a sealed bundle's envelope (reads only that entry).
pub fn is_sealed(bundle: &Path) -> Result<bool> {
    Ok(matches!(read_head(bundle)?, Head::Sealed(_)))
}

/// True when the extracted bundle in `dir` is sealed (its `manifest.json` is an envelope).
pub fn is_sealed_dir(dir: &Path) -> bool {
    fs::read_to_string(dir.join(layout::MANIFEST)).is_ok_and(|t| sealed::is_envelope(&t))
}

/// A sealed bundle extracted by hand (`tar xzf`) in `dir`: its clear entries are verified
/// against its checksums first (as `restore verify` there does), then the payload file is
/// opened with `identity` and read into `sink` by the rules of [`read_archive_with`].
pub fn read_sealed_dir(dir: &Path, identity: &Identity, sink: Sink) -> Result<ArchiveRead> {
    let (_, outer) = verify::verify_dir(dir, &Silent)?;
    let envelope_path = dir.join(layout::MANIFEST);
    let envelope = Envelope::from_json(&fs::read_to_string(&envelope_path).ctx("reading", &envelope_path)?)?;
    if !outer.ok() {
        return Ok(ArchiveRead {
            manifest: None,
            report: outer,
            checksums_sha256: String::new(),
            envelope: Some(envelope),
            file_sha256: None,
        });
    }
    let payload = dir.join(layout::PAYLOAD);
    let mut f = BufReader::with_capacity(256 * 1024, File::open(&payload).ctx("opening", &payload)?);
    let inner = open_payload(&payload, &mut f, identity, &sink, &Silent)?;
    let mut read = conclude(&payload, inner)?;
    read.report.entries_checked += outer.entries_checked;
    read.report.bytes_checked += outer.bytes_checked;
    read.envelope = Some(envelope);
    Ok(read)
}

/// Opens the sealed bundle extracted in `dir` into `dest` (a new directory, created 0700), which
/// then holds its plain bundle; on any refusal or digest problem `dest` is removed.
pub fn unpack_sealed_dir(dir: &Path, dest: &Path, identity: &Identity) -> Result<ArchiveRead> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(Error::Refused(format!("{} already exists; unpack needs a new directory", dest.display())));
    }
    fs::DirBuilder::new().mode(0o700).create(dest).ctx("creating", dest)?;
    let all = |_: &str| true;
    kept_only_if_clean(dest, read_sealed_dir(dir, identity, Sink::Dir { dest, want: &all }))
}
