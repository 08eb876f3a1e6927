//! Object storage (S3-compatible: AWS, Backblaze B2, Wasabi, MinIO, Ceph, Garage) as a ship
//! destination, `s3://bucket/prefix`, through object_store's S3 client (signing, retries with
//! backoff, multipart uploads), driven from this synchronous code by a runtime of its own.
//!
//! A ship counts as done only once the stored object has been read back: its size and sha256
//! must match the bundle's sidecar (S3's own checksums of a multipart object are checksums of
//! parts, not of the file, and not every compatible server keeps them). An interrupted upload
//! leaves nothing under the final key: a multipart object exists only once completed, and a
//! failed one is aborted. A fetch downloads into a hidden `.partial` and renames it only once the
//! whole-file digest and the bundle's own digests check out.
//!
//! Credentials come from the environment or a credentials file, never from packer.toml, and
//! are never printed: [`Credentials`] has no `Debug` that shows them.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use restorer::digest::HashingWriter;
use restorer::progress::{Progress, Silent};

use crate::config::S3Section;

/// S3's smallest part (every part but the last).
const MIN_PART: u64 = 5 * 1024 * 1024;
/// Default part size: large enough that a 10 GB bundle is ~600 requests, small enough that a
/// retried part costs little.
const DEFAULT_PART: u64 = 16 * 1024 * 1024;
/// S3's largest part count.
const MAX_PARTS: u64 = 10_000;
/// Reads back and downloads go in ranges of this size, each retried on its own.
const RANGE: u64 = 8 * 1024 * 1024;
/// Parts in flight at once.
const CONCURRENCY: usize = 4;

/// `s3://bucket/prefix`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket` or `s3://bucket/some/prefix`.
    pub fn parse(s: &str) -> Result<S3Url> {
        let rest = s.strip_prefix("s3://").with_context(|| format!("{s:?}: expected s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // Bucket names: 3-63 of [a-z0-9.-] (S3's rule; the compatible servers follow it).
        if bucket.len() < 3
            || bucket.len() > 63
            || !bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            bail!("{s:?}: the bucket name must be 3-63 characters of a-z, 0-9, '.' and '-'");
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
            bail!("{s:?}: the prefix may not contain empty, '.' or '..' parts");
        }
        Ok(S3Url { bucket: bucket.into(), prefix: prefix.into() })
    }

    /// The key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// `s3://bucket/key`.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// The keys of a secret in the environment, for the messages that say where secrets go.
const WHERE_SECRETS_GO: &str = "put the keys in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; for the daemon or timer an EnvironmentFile= of its unit, mode 0600) or in a credentials file named by [ship.s3] credentials_file (AWS's format: [default] aws_access_key_id = ... aws_secret_access_key = ..., mode 0600)";

/// Checks `[ship.s3]`: no secret in the clear, a usable endpoint and part size.
pub fn check_section(s: &S3Section) -> Result<()> {
    for (key, v) in [
        ("access_key_id", &s.access_key_id),
        ("secret_access_key", &s.secret_access_key),
        ("session_token", &s.session_token),
    ] {
        if v.is_some() {
            bail!("[ship.s3] {key}: credentials are not read from packer.toml (it is not a secret store, and [[files]] may capture it into bundles); remove it and {WHERE_SECRETS_GO}");
        }
    }
    if let Some(e) = &s.endpoint {
        if !(e.starts_with("https://") || e.starts_with("http://")) {
            bail!("[ship.s3] endpoint = {e:?}: use https://HOST[:PORT] (http:// only for a server on this machine or network)");
        }
        restorer::http::Url::parse(e).with_context(|| format!("[ship.s3] endpoint {e:?}"))?;
    }
    part_size(s)?;
    Ok(())
}

/// The configured part size, checked against S3's limits.
fn part_size(s: &S3Section) -> Result<u64> {
    let Some(text) = &s.part_size else { return Ok(DEFAULT_PART) };
    let n = crate::units::parse_size(text).context("[ship.s3] part_size")?;
    if n < MIN_PART {
        bail!("[ship.s3] part_size = {text:?}: S3 needs at least 5 MiB per part");
    }
    if n > 5 * 1024 * 1024 * 1024 {
        bail!("[ship.s3] part_size = {text:?}: S3 takes at most 5 GiB per part");
    }
    Ok(n)
}

/// The part size for a file of `len` bytes: the configured one, raised so that the upload
/// stays within S3's 10,000 parts.
pub fn part_size_for(configured: u64, len: u64) -> u64 {
    configured.max(len.div_ceil(MAX_PARTS - 1))
}

/// A secret string: shown as `(hidden)` by `Debug`, so no log line or error can carry it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(hidden)")
    }
}

/// S3 credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The access key id (not secret by itself, kept with the rest all the same).
    pub access_key_id: Secret,
    /// The secret key.
    pub secret_access_key: Secret,
    /// A session token (temporary credentials).
    pub session_token: Option<Secret>,
}

/// Reads `profile`'s keys from an AWS shared-credentials file's text (INI: `[profile]` headers,
/// `key = value` lines, `#`/`;` comments). Errors name the profile and key, never a value.
pub fn parse_credentials_file(text: &str, profile: &str) -> Result<Credentials> {
    let mut section = String::new();
    let mut id = None;
    let mut secret = None;
    let mut token = None;
    let mut seen = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            // ~/.aws/config spells non-default sections `[profile NAME]`; accept both.
            section = h.trim().trim_start_matches("profile ").trim().to_string();
            seen |= section == profile;
            continue;
        }
        if section != profile {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = Secret(v.trim().to_string());
        match k.trim() {
            "aws_access_key_id" => id = Some(v),
            "aws_secret_access_key" => secret = Some(v),
            "aws_session_token" => token = Some(v),
            _ => {}
        }
    }
    if !seen {
        bail!("no [{profile}] section");
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => {
            Ok(Credentials { access_key_id, secret_access_key, session_token: token })
        }
        (None, _) => bail!("[{profile}] has no aws_access_key_id"),
        (_, None) => bail!("[{profile}] has no aws_secret_access_key"),
    }
}

/// The credentials: `credentials_file` when set (it must be private: 0600 or stricter), else
/// the environment.
pub fn credentials(s: &S3Section) -> Result<Credentials> {
    if let Some(path) = &s.credentials_file {
        use std::os::unix::fs::PermissionsExt;
        let profile = s.profile.as_deref().unwrap_or("default");
        let meta = fs::metadata(path).with_context(|| format!("[ship.s3] credentials_file {}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "[ship.s3] credentials_file {}: readable by others (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
        let text = fs::read_to_string(path)
            .with_context(|| format!("[ship.s3] credentials_file {}: reading", path.display()))?;
        return parse_credentials_file(&text, profile)
            .with_context(|| format!("[ship.s3] credentials_file {}", path.display()));
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).map(Secret);
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => {
            Ok(Credentials { access_key_id, secret_access_key, session_token: var("AWS_SESSION_TOKEN") })
        }
        _ => bail!("no S3 credentials: {WHERE_SECRETS_GO}"),
    }
}

/// What a ship to object storage stored, once verified.
#[derive(Debug, Clone)]
pub struct Shipped {
    /// Where (as configured).
    pub destination: String,
    /// The bundle's key.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// Its sha256 (read back from the store).
    pub sha256: String,
    /// When the read-back matched.
    pub verified_at: DateTime<Utc>,
}

/// A bucket, reached.
pub struct Remote {
    store: AmazonS3,
    rt: tokio::runtime::Runtime,
    /// The destination.
    pub url: S3Url,
    part_size: u64,
}

/// An object_store error, in words for the operator (the missing object, the refused key).
fn explain(e: object_store::Error, what: &str) -> anyhow::Error {
    let hint = match &e {
        object_store::Error::NotFound { .. } => " (no such object)",
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            " (the credentials were refused: check the keys, their permissions on the bucket, and [ship.s3] region)"
        }
        _ => "",
    };
    anyhow::Error::new(e).context(format!("{what}{hint}"))
}

impl Remote {
    /// Opens the bucket of `url` with `[ship.s3]`'s settings.
    pub fn connect(url: &S3Url, s: &S3Section) -> Result<Remote> {
        // reqwest's rustls takes the process's crypto provider: ring, the workspace's one TLS
        // stack (an error only means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let creds = credentials(s)?;
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&url.bucket)
            .with_region(s.region.as_deref().unwrap_or("us-east-1"))
            .with_access_key_id(creds.access_key_id.expose())
            .with_secret_access_key(creds.secret_access_key.expose())
            .with_virtual_hosted_style_request(!s.path_style)
            .with_retry(RetryConfig { max_retries: 8, retry_timeout: Duration::from_secs(300), ..Default::default() })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(s.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")))
                    .with_connect_timeout(Duration::from_secs(20))
                    .with_timeout(Duration::from_secs(300)),
            );
        if let Some(t) = &creds.session_token {
            b = b.with_token(t.expose());
        }
        if let Some(e) = &s.endpoint {
            let e = e.trim_end_matches('/');
            // object_store takes a virtual-hosted endpoint with the bucket already in it.
            b = b.with_endpoint(if s.path_style {
                e.to_string()
            } else {
                let (scheme, host) = e.split_once("://").unwrap_or(("https", e));
                format!("{scheme}://{}.{host}", url.bucket)
            });
        }
        let store = b.build().with_context(|| format!("setting up the S3 client for {url}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the S3 client's runtime")?;
        Ok(Remote { store, rt, url: url.clone(), part_size: part_size(s)? })
    }

    fn key(key: &str) -> Result<Key> {
        Key::parse(key).with_context(|| format!("{key:?} is not a usable object key"))
    }

    /// Uploads `file` to `key`: one request when it fits in a part, else a multipart upload
    /// (aborted on failure, so no object appears). Returns the sha256 and size of what was sent.
    pub fn upload(&self, file: &Path, key: &str, progress: &dyn Progress) -> Result<(String, u64)> {
        let mut f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
        let len = f.metadata().with_context(|| format!("reading {}", file.display()))?.len();
        let location = Remote::key(key)?;
        let target = self.url.url_of(key);
        let mut hash = HashingWriter::new(std::io::sink());
        progress.begin(&format!("uploading to {target}"), Some(len));
        let result = self.rt.block_on(async {
            if len <= self.part_size {
                let mut buf = Vec::with_capacity(len as usize);
                f.read_to_end(&mut buf).with_context(|| format!("reading {}", file.display()))?;
                hash.write_all(&buf)?;
                let n = buf.len() as u64;
                self.store
                    .put(&location, PutPayload::from(buf))
                    .await
                    .map_err(|e| explain(e, &format!("uploading {target}")))?;
                progress.advance(n);
                return Ok(());
            }
            let part = part_size_for(self.part_size, len) as usize;
            let upload = self
                .store
                .put_multipart(&location)
                .await
                .map_err(|e| explain(e, &format!("starting the upload of {target}")))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, part);
            let mut buf = vec![0u8; part];
            let sent: Result<()> = async {
                loop {
                    let n = read_full(&mut f, &mut buf).with_context(|| format!("reading {}", file.display()))?;
                    if n == 0 {
                        return Ok(());
                    }
                    w.wait_for_capacity(CONCURRENCY)
                        .await
                        .map_err(|e| explain(e, &format!("uploading a part of {target}")))?;
                    hash.write_all(&buf[..n])?;
                    w.write(&buf[..n]);
                    progress.advance(n as u64);
                }
            }
            .await;
            match sent {
                Ok(()) => {
                    w.finish().await.map_err(|e| explain(e, &format!("completing the upload of {target}")))?;
                    Ok(())
                }
                Err(e) => {
                    // Best effort: the parts of an unfinished upload are billed until aborted.
                    let _ = w.abort().await;
                    Err(e)
                }
            }
        });
        progress.end();
        result?;
        let (_, sha, n) = hash.finish();
        Ok((sha, n))
    }

    /// The stored object's size.
    pub fn size(&self, key: &str) -> Result<u64> {
        let location = Remote::key(key)?;
        let meta = self
            .rt
            .block_on(self.store.head(&location))
            .map_err(|e| explain(e, &format!("looking up {}", self.url.url_of(key))))?;
        Ok(meta.size)
    }

    /// Streams the object into `out` range by range (each range retried on its own), returning
    /// its sha256 and size.
    pub fn download(&self, key: &str, out: impl Write, what: &str, progress: &dyn Progress) -> Result<(String, u64)> {
        let len = self.size(key)?;
        let location = Remote::key(key)?;
        let target = self.url.url_of(key);
        let mut out = HashingWriter::new(out);
        progress.begin(&format!("{what} {target}"), Some(len));
        let result = self.rt.block_on(async {
            let mut at = 0;
            while at < len {
                let end = (at + RANGE).min(len);
                let bytes = self
                    .store
                    .get_range(&location, at..end)
                    .await
                    .map_err(|e| explain(e, &format!("reading {target}")))?;
                if bytes.is_empty() {
                    bail!("reading {target}: the object ended at {at} bytes of {len}");
                }
                out.write_all(&bytes).context("writing the download")?;
                at += bytes.len() as u64;
                progress.advance(bytes.len() as u64);
            }
            Ok(())
        });
        progress.end();
        result?;
        let (_, sha, n) = out.finish();
        Ok((sha, n))
    }

    /// A small object (a sidecar), whole.
    pub fn get_small(&self, key: &str) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.download(key, &mut v, "reading", &Silent)?;
        Ok(v)
    }

    /// Deletes an object (an object already gone is not an error: S3 answers the same).
    pub fn delete(&self, key: &str) -> Result<()> {
        let location = Remote::key(key)?;
        match self.rt.block_on(self.store.delete(&location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(explain(e, &format!("deleting {}", self.url.url_of(key)))),
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The digest a sidecar (`sha256sum` format) names.
pub fn sidecar_digest(text: &str) -> Option<String> {
    text.split_whitespace()
        .next()
        .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_lowercase)
}

/// Ships `bundle` and its sidecar to `url`, then reads the stored bundle back: the ship counts
/// only when its size and sha256 match the sidecar.
pub fn ship(bundle: &Path, url: &S3Url, s: &S3Section, progress: &dyn Progress) -> Result<Shipped> {
    let name = bundle.file_name().and_then(|n| n.to_str()).context("bundle has no file name")?;
    let sidecar = bundle.with_file_name(format!("{name}.sha256"));
    let sidecar_text = fs::read_to_string(&sidecar)
        .with_context(|| format!("{} is missing: the stored copy could not be checked", sidecar.display()))?;
    let expected =
        sidecar_digest(&sidecar_text).with_context(|| format!("{}: not a sha256sum line", sidecar.display()))?;
    let remote = Remote::connect(url, s)?;
    let key = url.key(name);
    let (sent, len) = remote.upload(bundle, &key, progress)?;
    if sent != expected {
        bail!(
            "{} differs from its sidecar (read {sent}, the sidecar says {expected}): it changed on this disk since it was written; run `packer verify` on it; the object {} is not counted as a copy",
            bundle.display(),
            url.url_of(&key)
        );
    }
    remote.upload(&sidecar, &format!("{key}.sha256"), &Silent)?;
    let stored = remote.size(&key)?;
    if stored != len {
        bail!("the stored {} has {stored} bytes, the bundle {len}", url.url_of(&key));
    }
    let (back, _) = remote.download(&key, std::io::sink(), "verifying", progress)?;
    if back != expected {
        bail!("the stored {} does not match: its sha256 is {back}, the bundle's {expected}", url.url_of(&key));
    }
    let side = remote.get_small(&format!("{key}.sha256"))?;
    if side != sidecar_text.as_bytes() {
        bail!("the stored {} differs from the local sidecar", url.url_of(&format!("{key}.sha256")));
    }
    Ok(Shipped { destination: url.to_string(), key, size: len, sha256: back, verified_at: Utc::now() })
}

/// A stored object that does not match its digests (the error a fetch returns for it, so the
/// caller can record the copy as bad).
#[derive(Debug)]
pub struct CorruptObject(pub String);

impl std::fmt::Display for CorruptObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CorruptObject {}

/// What a fetch wrote.
#[derive(Debug)]
pub struct Fetched {
    /// The bundle, under its final name.
    pub bundle: PathBuf,
    /// Its sidecar.
    pub sidecar: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// Entries whose digests were checked.
    pub entries: u64,
}

/// Downloads `key` (and its sidecar) from `remote` into `dir`, checks the whole file against the
/// sidecar and every entry against the bundle's own checksums, and only then gives it its
/// final name. On any failure nothing is left but what was there before.
pub fn fetch(remote: &Remote, key: &str, dir: &Path, progress: &dyn Progress) -> Result<Fetched> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = key.rsplit('/').next().unwrap_or(key).to_string();
    restorer::layout::check_name("bundle file name", &name).with_context(|| format!("key {key:?}"))?;
    let url = remote.url.url_of(key);
    let sidecar_text = remote.get_small(&format!("{key}.sha256")).with_context(|| {
        format!("{url}.sha256: the sidecar is needed to check the download (ship the bundle again)")
    })?;
    let expected = sidecar_digest(&String::from_utf8_lossy(&sidecar_text))
        .with_context(|| format!("{url}.sha256: not a sha256sum line"))?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = dir.join(format!(".{name}.partial"));
    let final_path = dir.join(&name);
    let sidecar_path = dir.join(format!("{name}.sha256"));
    let result = (|| -> Result<Fetched> {
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1024 * 1024, f);
        let (actual, _) = remote.download(key, &mut w, "downloading", progress)?;
        let f = w.into_inner().map_err(|e| anyhow!("writing {}: {}", partial.display(), e.error()))?;
        f.sync_all().with_context(|| format!("syncing {}", partial.display()))?;
        if actual != expected {
            return Err(CorruptObject(format!(
                "{url} is corrupt: its sha256 is {actual}, its sidecar {url}.sha256 says {expected}; nothing was kept (fetch another copy, or ship the bundle again)"
            ))
            .into());
        }
        let report = match restorer::verify::verify_archive(&partial, progress) {
            Ok((_, report)) => report,
            Err(e @ (restorer::Error::Corrupt(_) | restorer::Error::Unsafe(_) | restorer::Error::Manifest(_))) => {
                return Err(CorruptObject(format!("{url}: the downloaded bundle cannot be read: {e}")).into())
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("checking the download of {url}"))),
        };
        if !report.ok() {
            return Err(CorruptObject(format!(
                "{url}: the bundle's own digests do not match:\n{}",
                report.render_problems()
            ))
            .into());
        }
        let mut sf = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&sidecar_path)
            .with_context(|| format!("writing {}", sidecar_path.display()))?;
        sf.write_all(&sidecar_text)
            .and_then(|_| sf.sync_all())
            .with_context(|| format!("writing {}", sidecar_path.display()))?;
        fs::rename(&partial, &final_path).with_context(|| format!("renaming to {}", final_path.display()))?;
        crate::writer::sync_dir(dir)?;
        Ok(Fetched {
            bundle: final_path.clone(),
            sidecar: sidecar_path.clone(),
            sha256: actual,
            entries: report.entries_checked as u64,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_keys() {
        let u = S3Url::parse("s3://my-bucket/n8n/prod/").unwrap();
        assert_eq!(u, S3Url { bucket: "my-bucket".into(), prefix: "n8n/prod".into() });
        assert_eq!(u.key("b.tar.gz"), "n8n/prod/b.tar.gz");
        assert_eq!(u.to_string(), "s3://my-bucket/n8n/prod");
        let bare = S3Url::parse("s3://bkt").unwrap();
        assert_eq!(bare.key("b.tar.gz"), "b.tar.gz");
        assert_eq!(bare.url_of("b.tar.gz"), "s3://bkt/b.tar.gz");
        for bad in
            ["s3://", "s3://ab", "s3://Upper/x", "s3://b_b/x", "s3://bucket/a/../b", "s3://bucket/a//b", "user@host:/x"]
        {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn part_sizes_stay_within_s3_limits() {
        assert_eq!(part_size_for(DEFAULT_PART, 1 << 30), DEFAULT_PART);
        let huge = 500 * 1024 * 1024 * 1024u64; // 500 GiB
        let p = part_size_for(DEFAULT_PART, huge);
        assert!(huge.div_ceil(p) < MAX_PARTS);
        let s = |t: &str| S3Section { part_size: Some(t.into()), ..Default::default() };
        assert!(part_size(&s("4MiB")).is_err());
        assert_eq!(part_size(&s("5MiB")).unwrap(), MIN_PART);
    }

    /// A secret in packer.toml is refused with where it belongs instead, and the message never
    /// repeats the value.
    #[test]
    fn secrets_in_the_config_are_refused_without_echoing_them() {
        let s =
            S3Section { secret_access_key: Some(toml::Value::String("hunter2secret".into())), ..Default::default() };
        let e = format!("{:#}", check_section(&s).unwrap_err());
        assert!(e.contains("AWS_SECRET_ACCESS_KEY") && e.contains("credentials_file"), "{e}");
        assert!(!e.contains("hunter2secret"), "{e}");
    }

    #[test]
    fn credentials_files() {
        let text = "# comment\n[default]\naws_access_key_id = AKIAOLD\naws_secret_access_key = s1\n\n[profile backup]\naws_access_key_id=AKIABACKUP\naws_secret_access_key= s2 \naws_session_token = tok\n";
        let d = parse_credentials_file(text, "default").unwrap();
        assert_eq!((d.access_key_id.expose(), d.secret_access_key.expose()), ("AKIAOLD", "s1"));
        assert!(d.session_token.is_none());
        let b = parse_credentials_file(text, "backup").unwrap();
        assert_eq!((b.access_key_id.expose(), b.secret_access_key.expose()), ("AKIABACKUP", "s2"));
        assert_eq!(b.session_token.as_ref().unwrap().expose(), "tok");
        assert!(parse_credentials_file(text, "other").is_err());
        let e = format!("{:#}", parse_credentials_file("[default]\naws_access_key_id = X\n", "default").unwrap_err());
        assert!(e.contains("aws_secret_access_key"), "{e}");
        assert!(!format!("{b:?}").contains("s2"), "Debug hides the secret");
    }

    #[test]
    fn sidecars() {
        let d = "a".repeat(64);
        assert_eq!(sidecar_digest(&format!("{d}  backup_x.tar.gz\n")), Some(d.clone()));
        assert_eq!(sidecar_digest("nothex  x"), None);
        assert_eq!(sidecar_digest(""), None);
    }
}
