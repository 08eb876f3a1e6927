//! TLS for our own PostgreSQL connections, with libpq's names and meaning: `sslmode` (disable,
//! prefer, require, verify-ca, verify-full) and `sslrootcert`, from the URL, the key=value string
//! or `PGSSLMODE`/`PGSSLROOTCERT`. The same two settings go to `pg_dump`/`pg_restore`/`psql`
//! through their environment, so libpq and we make the same choice.
//!
//! rustls (ring provider) does the TLS; this module is the small `MakeTlsConnect` that
//! tokio-postgres needs, and the three verifiers libpq's modes amount to.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::Socket;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{Error, Result};

/// libpq's `sslmode`. `allow` is left out: it tries plain text first, which no server that
/// wants TLS accepts and no operator asking for TLS wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, else plain text (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate is checked only when a root file exists.
    Require,
    /// TLS, and the server's certificate chain must lead to the root file; any host name.
    VerifyCa,
    /// As verify-ca, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The name libpq uses (and `PGSSLMODE` carries).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(Error::Other(
                    "sslmode=allow is not supported: use prefer (TLS when offered) or disable".into(),
                ))
            }
            other => {
                return Err(Error::Other(format!(
                    "sslmode={other} is not a mode: use disable, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }
}

/// What the operator asked for; resolved into a [`TlsPlan`] at connect time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// `None`: libpq's default, prefer.
    pub mode: Option<SslMode>,
    /// `sslrootcert`, when given.
    pub root_cert: Option<PathBuf>,
    /// Whether `~/.postgresql/root.crt` counts when no `sslrootcert` is given (libpq's default
    /// location). Off for containers the restore itself found: their certificate is not the one
    /// the operator's root file is for.
    pub default_root: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings { mode: None, root_cert: None, default_root: true }
    }
}

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Any certificate: encryption without authentication (libpq's require/prefer without a root file).
    Nothing,
    /// The chain must lead to the root file; the host name is not compared (verify-ca).
    Chain,
    /// Chain and host name (verify-full).
    Full,
}

/// The resolved choice for one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPlan {
    /// The mode in force.
    pub mode: SslMode,
    /// How the certificate is checked (meaningless for disable).
    pub verify: Verify,
    /// The root file used, when certificates are checked.
    pub root: Option<PathBuf>,
}

impl TlsSettings {
    /// Settings from the string's values, falling back to `PGSSLMODE`/`PGSSLROOTCERT` as libpq does.
    pub fn from_values(mode: Option<&str>, root: Option<&str>) -> Result<TlsSettings> {
        let env_mode = std::env::var("PGSSLMODE").ok().filter(|s| !s.is_empty());
        let env_root = std::env::var("PGSSLROOTCERT").ok().filter(|s| !s.is_empty());
        let mode = match mode.map(str::to_string).or(env_mode) {
            Some(m) => Some(m.parse::<SslMode>()?),
            None => None,
        };
        let root_cert = root.map(str::to_string).or(env_root).map(PathBuf::from);
        if root_cert.as_deref() == Some(Path::new("system")) {
            return Err(Error::Other(
                "sslrootcert=system is not supported (pg_dump 15 would read it as a file name): \
                 name the CA file, e.g. sslrootcert=/etc/ssl/certs/ca-certificates.crt"
                    .into(),
            ));
        }
        Ok(TlsSettings { mode, root_cert, default_root: true })
    }

    /// libpq's decision for a connection. Over a Unix socket libpq never uses TLS, whatever the
    /// mode. A root file turns require (and prefer) into verify-ca, as libpq does; verify-ca and
    /// verify-full without one are refused, naming the file libpq looks for. Unlike libpq, an
    /// `sslrootcert` that does not exist is refused in every mode: libpq would silently stop
    /// checking, and a typo must not turn verification off.
    pub fn plan(&self, unix_socket: bool, home: Option<&Path>) -> Result<TlsPlan> {
        let mode = self.mode.unwrap_or(SslMode::Prefer);
        if unix_socket || mode == SslMode::Disable {
            return Ok(TlsPlan { mode: SslMode::Disable, verify: Verify::Nothing, root: None });
        }
        let root = match &self.root_cert {
            Some(p) if p.is_file() => Some(p.clone()),
            Some(p) => {
                return Err(Error::Other(format!(
                    "sslrootcert {}: no such file; name the PEM file of the CA that signed the server's certificate",
                    p.display()
                )))
            }
            None if self.default_root => home.map(|h| h.join(".postgresql/root.crt")).filter(|p| p.is_file()),
            None => None,
        };
        let verify = match (mode, &root) {
            (SslMode::VerifyFull, Some(_)) => Verify::Full,
            (_, Some(_)) => Verify::Chain,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                let looked = home.map(|h| h.join(".postgresql/root.crt").display().to_string());
                return Err(Error::Other(format!(
                    "sslmode={} needs the CA's certificate: add sslrootcert=/path/ca.pem{}, or use \
                     sslmode=require to encrypt without checking the server",
                    mode.as_str(),
                    looked.map(|l| format!(" (or put it at {l})")).unwrap_or_default()
                )));
            }
            (_, None) => Verify::Nothing,
        };
        Ok(TlsPlan { mode, verify, root })
    }
}

impl TlsPlan {
    /// tokio-postgres' own mode: it knows only disable/prefer/require; verification is ours.
    pub fn driver_mode(&self) -> postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        }
    }

    /// The connector for this plan (reads and parses the root file).
    pub fn connector(&self) -> Result<MakeRustls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Other(format!("TLS setup: {e}")))?;
        let config = match (&self.root, self.verify) {
            (Some(root), Verify::Full | Verify::Chain) => {
                let store = read_roots(root)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                    .build()
                    .map_err(|e| Error::Other(format!("sslrootcert {}: {e}", root.display())))?;
                if self.verify == Verify::Full {
                    builder.with_webpki_verifier(webpki).with_no_client_auth()
                } else {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                        .with_no_client_auth()
                }
            }
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
        };
        Ok(MakeRustls(tokio_rustls::TlsConnector::from(Arc::new(config))))
    }
}

/// The certificates of a PEM file, as a root store; errors name the file.
fn read_roots(path: &Path) -> Result<RootCertStore> {
    let pem = std::fs::read(path).map_err(|e| Error::io("reading sslrootcert", path, e))?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert
            .map_err(|e| Error::Other(format!("sslrootcert {}: not a PEM certificate file ({e})", path.display())))?;
        store.add(cert).map_err(|e| {
            Error::Other(format!("sslrootcert {}: a certificate there is not usable ({e})", path.display()))
        })?;
    }
    if store.is_empty() {
        return Err(Error::Other(format!("sslrootcert {}: holds no PEM certificate", path.display())));
    }
    Ok(store)
}

/// verify-ca: the chain must lead to the root file, the name may be anything (libpq's meaning).
/// webpki checks the chain before the name, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// require/prefer without a root file: any certificate is accepted, which is exactly what libpq
/// does in these modes (encryption against eavesdroppers, no protection against a server in the
/// middle; the docs say so). The handshake signatures are still checked, so the session keys
/// belong to whoever holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// tokio-postgres' connector factory over rustls.
#[derive(Clone)]
pub struct MakeRustls(tokio_rustls::TlsConnector);

impl fmt::Debug for MakeRustls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MakeRustls")
    }
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        // An IP address becomes an IP server name (checked against the certificate's IP
        // entries under verify-full, and no SNI is sent, as libpq does).
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("host {domain:?}: {e}")))?;
        Ok(RustlsConnect { connector: self.0.clone(), name })
    }
}

/// One connection's TLS handshake.
pub struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move { self.connector.connect(self.name, stream).await.map(RustlsStream) })
    }
}

/// The encrypted stream. No channel binding: SCRAM works without it (the server asks for it
/// only when the client offers it), and computing it needs an X.509 parser we do not carry.
pub struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl AsyncRead for RustlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// An operator's sentence for a failed connection when TLS is the cause, else `None` (the
/// driver's own error then speaks). `host` is `host:port`.
pub fn explain(e: &postgres::Error, plan: &TlsPlan, host: &str) -> Option<String> {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    if let Some(db) = e.as_db_error() {
        // pg_hba.conf's `hostnossl ... reject` or no `host`/`hostnossl` line: "no encryption".
        if plan.mode == SslMode::Disable && db.message().contains("no encryption") {
            return Some(format!(
                "server at {host} requires TLS: add sslmode=require (or sslmode=verify-full with \
                 sslrootcert=/path/ca.pem) to the PostgreSQL URL; the server said: {}",
                db.message()
            ));
        }
        return None;
    }
    let text = e.to_string();
    if text.contains("server does not support TLS") {
        return Some(format!(
            "server at {host} does not offer TLS (ssl = off in its postgresql.conf?) but sslmode={} requires it",
            plan.mode.as_str()
        ));
    }
    let root = plan.root.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let tls = rustls_error(e)?;
    Some(match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "certificate of {name} not signed by {root} (sslmode={}): check that sslrootcert names the \
             CA that signed the server's certificate",
            plan.mode.as_str()
        ),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. }) => format!(
            "host name mismatch: certificate of {host} is for {}, not {name}: connect by one of those names, \
             or use sslmode=verify-ca to check the chain only",
            presented.iter().map(|n| plain_name(n)).collect::<Vec<_>>().join(", ")
        ),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => format!(
            "host name mismatch: the certificate of {host} does not name {name}: connect by a name it lists, \
             or use sslmode=verify-ca to check the chain only"
        ),
        rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
            format!("certificate of {host} has expired")
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => {
            format!("certificate of {host} is not valid yet (is this host's clock right?)")
        }
        other => format!("TLS with {host} failed (sslmode={}): {other}", plan.mode.as_str()),
    })
}

/// `DnsName("db.example")` / `IpAddress(10.0.0.5)` (how rustls lists a certificate's names) as
/// the bare name.
fn plain_name(presented: &str) -> &str {
    for prefix in ["DnsName(\"", "IpAddress("] {
        if let Some(rest) = presented.strip_prefix(prefix) {
            return rest.trim_end_matches(')').trim_end_matches('"');
        }
    }
    presented
}

/// The rustls error under a driver error (tokio-rustls wraps it in an `io::Error`, whose
/// `source()` skips it, so the chain is walked by hand).
fn rustls_error(e: &postgres::Error) -> Option<&rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = c.downcast_ref::<io::Error>() {
            if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(r);
            }
        }
        cur = c.source();
    }
    None
}

/// Removes `sslmode` and `sslrootcert` from a URL (`?sslmode=...`) or key=value string, which
/// tokio-postgres would refuse (it knows neither verify-ca/verify-full nor sslrootcert), and
/// returns them. The rest goes to the driver unchanged.
pub fn split_ssl_params(conn: &str) -> Result<(String, Option<String>, Option<String>)> {
    let (mut mode, mut root) = (None, None);
    if conn.starts_with("postgresql://") || conn.starts_with("postgres://") {
        let Some((base, query)) = conn.split_once('?') else {
            return Ok((conn.to_string(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => mode = Some(percent_decode(v)),
                "sslrootcert" => root = Some(percent_decode(v)),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((rest, mode, root));
    }
    let mut kept = Vec::new();
    for (k, v) in key_values(conn)? {
        match k.as_str() {
            "sslmode" => mode = Some(v),
            "sslrootcert" => root = Some(v),
            _ => kept.push(format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))),
        }
    }
    Ok((kept.join(" "), mode, root))
}

/// `%2F` → `/` in a URL's query value.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(n) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(n);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's key=value syntax: `key = value` pairs separated by spaces, a value in single quotes
/// with `\'` and `\\` escapes, or bare up to the next space.
fn key_values(s: &str) -> Result<Vec<(String, String)>> {
    let bad = || Error::Other("postgres connection string is not valid: expected key=value pairs".into());
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return Err(bad());
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next().ok_or_else(bad)? {
                    '\'' => break,
                    '\\' => value.push(chars.next().ok_or_else(bad)?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.push(chars.next().ok_or_else(bad)?);
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_ssl_params_are_taken_out_and_the_rest_kept() {
        let (rest, mode, root) = split_ssl_params(
            "postgresql://u@db.example:5432/n8n?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u@db.example:5432/n8n?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (rest, mode, _) = split_ssl_params("postgresql://u@h/db?sslmode=require").unwrap();
        assert_eq!((rest.as_str(), mode.as_deref()), ("postgresql://u@h/db", Some("require")));
    }

    #[test]
    fn key_value_ssl_params_are_taken_out_and_quotes_kept() {
        let (rest, mode, root) = split_ssl_params(
            "host=db.example user=n8n sslmode = verify-ca sslrootcert='/a b/ca.pem' password='it\\'s'",
        )
        .unwrap();
        assert_eq!(rest, "host='db.example' user='n8n' password='it\\'s'");
        assert_eq!(mode.as_deref(), Some("verify-ca"));
        assert_eq!(root.as_deref(), Some("/a b/ca.pem"));
        let c = postgres::Config::from_str(&rest).unwrap();
        assert_eq!(c.get_password(), Some(&b"it's"[..]));
        assert!(split_ssl_params("host='unterminated").is_err());
    }

    #[test]
    fn plans_follow_libpq() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let s = |mode: Option<SslMode>, root: Option<&Path>| TlsSettings {
            mode,
            root_cert: root.map(Path::to_path_buf),
            default_root: true,
        };
        let home = Some(dir.path());
        // Default prefer, no root file: TLS if offered, nothing checked.
        assert_eq!(s(None, None).plan(false, home).unwrap().verify, Verify::Nothing);
        // require with a root file behaves as verify-ca.
        let p = s(Some(SslMode::Require), Some(&ca)).plan(false, home).unwrap();
        assert_eq!((p.verify, p.root.as_deref()), (Verify::Chain, Some(ca.as_path())));
        assert_eq!(s(Some(SslMode::VerifyFull), Some(&ca)).plan(false, home).unwrap().verify, Verify::Full);
        // verify-full without a root file names where libpq looks.
        let e = s(Some(SslMode::VerifyFull), None).plan(false, home).unwrap_err().to_string();
        assert!(e.contains(".postgresql/root.crt"), "{e}");
        // ~/.postgresql/root.crt is that default.
        std::fs::create_dir(dir.path().join(".postgresql")).unwrap();
        std::fs::write(dir.path().join(".postgresql/root.crt"), "x").unwrap();
        assert_eq!(s(Some(SslMode::VerifyFull), None).plan(false, home).unwrap().verify, Verify::Full);
        // A Unix socket never uses TLS; a missing sslrootcert is refused, not ignored.
        assert_eq!(s(Some(SslMode::VerifyFull), Some(&ca)).plan(true, home).unwrap().mode, SslMode::Disable);
        let missing = dir.path().join("nope.pem");
        assert!(s(Some(SslMode::Require), Some(&missing)).plan(false, home).is_err());
        assert!("allow".parse::<SslMode>().is_err());
    }

    #[test]
    fn certificate_names_read_bare() {
        assert_eq!(plain_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("other"), "other");
    }
}
