//! A minimal HTTP/1.1 client over `std::net::TcpStream`, for the two places the restore talks
//! HTTP: `[services] health` checks and `restore workflow --to-n8n`. A bare Debian host has no
//! curl, so plain `http://` is spoken here; there is no TLS stack in the static binary, so
//! `https://` goes through the system's curl when it is installed (packer lists `curl` in the
//! bundle's requirements whenever a health check is https, so a full restore installs it).
//!
//! One request per connection (`Connection: close`), no redirects followed (a 3xx is an answer),
//! no compression asked for. Bodies are read to the end of the stream, `Content-Length` or
//! chunked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// What can go wrong with one exchange. Each message names the URL's host and port.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL could not be understood.
    #[error("{url}: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The host name did not resolve.
    #[error("{addr}: cannot resolve: {source}")]
    Resolve {
        /// host:port.
        addr: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// No address of the host accepted a connection.
    #[error("{addr}: cannot connect: {detail}")]
    Connect {
        /// host:port.
        addr: String,
        /// The last connection error.
        detail: String,
    },
    /// The server accepted but did not answer in time.
    #[error("{addr}: no answer within {secs} s")]
    Timeout {
        /// host:port.
        addr: String,
        /// The time allowed.
        secs: u64,
    },
    /// The connection broke, or the answer was not HTTP.
    #[error("{addr}: {detail}")]
    Protocol {
        /// host:port.
        addr: String,
        /// What went wrong.
        detail: String,
    },
    /// An https:// URL and no curl on this host.
    #[error(
        "{url}: https needs curl, which is not installed on this host: install it (apt-get install curl) and run again"
    )]
    NoCurl {
        /// The URL.
        url: String,
    },
    /// curl ran and failed.
    #[error("{url}: curl: {detail}")]
    Curl {
        /// The URL.
        url: String,
        /// curl's own message.
        detail: String,
    },
}

/// A URL split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https://` (needs curl) rather than `http://`.
    pub secure: bool,
    /// Host name or address; an IPv6 literal without its brackets.
    pub host: String,
    /// Port (80 or 443 when the URL names none).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    /// Parses `http://host[:port][/path]` and `https://...`; IPv6 literals as `[::1]`.
    /// User info (`user:pass@`) is refused: credentials do not belong in a URL here.
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let bad = |why: &str| HttpError::BadUrl { url: url.to_string(), why: why.to_string() };
        let (secure, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad("only http:// and https:// URLs are supported"));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split('#').next().unwrap_or("/");
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
        if authority.contains('@') {
            return Err(bad("user info in the URL is not supported"));
        }
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '[' in the host"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after the IPv6 address"))?),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) || path.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err(bad("spaces or control characters in the URL"));
        }
        let port = match port {
            None | Some("") => default_port,
            Some(p) => p.parse::<u16>().map_err(|_| bad("the port is not a number from 1 to 65535"))?,
        };
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(Url { secure, host: host.to_string(), port, path })
    }

    /// `host:port` as it goes into the Host header and messages (`[::1]:8080` for IPv6).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// Sends one request over plain HTTP and reads the whole answer, all within `timeout` (connect,
/// send and receive together). `headers` go out as given; Host, Connection and Content-Length are
/// added here.
pub fn request(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let addr = url.authority();
    let deadline = Instant::now() + timeout;
    let timed_out = || HttpError::Timeout { addr: addr.clone(), secs: timeout.as_secs().max(1) };
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|source| HttpError::Resolve { addr: addr.clone(), source })?
        .collect();
    let mut last = String::from("no address");
    let mut stream = None;
    for a in &addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        match TcpStream::connect_timeout(a, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let mut stream = stream.ok_or_else(|| HttpError::Connect { addr: addr.clone(), detail: last })?;
    let io_err = |e: std::io::Error| {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            timed_out()
        } else {
            HttpError::Protocol { addr: addr.clone(), detail: e.to_string() }
        }
    };
    let mut head = format!("{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", url.path, addr_for_host(url));
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    if let Some(b) = body {
        head += &format!("Content-Length: {}\r\n", b.len());
    }
    head += "\r\n";
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    stream.set_write_timeout(Some(left)).map_err(io_err)?;
    stream.write_all(head.as_bytes()).map_err(io_err)?;
    if let Some(b) = body {
        stream.write_all(b).map_err(io_err)?;
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        stream.set_read_timeout(Some(left)).map_err(io_err)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                // A server that keeps the connection open despite `Connection: close` has
                // still finished once the body it announced is here.
                if complete(&raw) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
        if raw.len() > 64 * 1024 * 1024 {
            return Err(HttpError::Protocol { addr: addr.clone(), detail: "answer larger than 64 MiB".into() });
        }
    }
    parse_response(&raw).map_err(|detail| HttpError::Protocol { addr: addr.clone(), detail })
}

/// The Host header: the port is left out when it is the scheme's default.
fn addr_for_host(url: &Url) -> String {
    let default = if url.secure { 443 } else { 80 };
    if url.port == default {
        if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        }
    } else {
        url.authority()
    }
}

/// Whether `raw` holds a whole answer: headers and all of a Content-Length or chunked body, or
/// a status that has no body. (Without either, the body ends when the server closes.)
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok()).unwrap_or(0);
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return true;
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return dechunk(&raw[end + 4..]).is_ok();
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => raw.len() >= end + 4 + n,
        None => false,
    }
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    if raw.is_empty() {
        return Err("the connection closed without an answer".into());
    }
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("the answer is not HTTP (no header end)")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("the answer is not HTTP: {status_line:?}"));
    };
    if !version.starts_with("HTTP/") {
        return Err(format!("the answer is not HTTP: {status_line:?}"));
    }
    let status: u16 = code.parse().map_err(|_| format!("bad status line {status_line:?}"))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let rest = &raw[end + 4..];
    let body = if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        dechunk(rest)?
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..n).ok_or("the answer is shorter than its Content-Length")?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = rest.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunked body")?;
        let size_text = String::from_utf8_lossy(&rest[..nl]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(rest.get(..size).ok_or("truncated chunk")?);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

/// One exchange over https through the system's curl. Headers and the body travel on curl's
/// stdin (its `-K -` configuration), never on a command line, so an API key is not visible in
/// `ps`. The body goes through a 0600 temporary file that is removed afterwards.
pub fn curl_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    use std::process::{Command, Stdio};
    if crate::sys::which("curl").is_none() {
        return Err(HttpError::NoCurl { url: url.to_string() });
    }
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut config = format!("url = \"{}\"\nrequest = \"{method}\"\n", quote(url));
    for (k, v) in headers {
        config += &format!("header = \"{}: {}\"\n", quote(k), quote(v));
    }
    let body_file = match body {
        Some(b) => {
            let f = private_temp_file(b)
                .map_err(|e| HttpError::Curl { url: url.to_string(), detail: format!("temporary body file: {e}") })?;
            config += &format!("data-binary = \"@{}\"\n", quote(&f.to_string_lossy()));
            Some(f)
        }
        None => None,
    };
    let secs = timeout.as_secs().max(1).to_string();
    let curl_err = |detail: String| HttpError::Curl { url: url.to_string(), detail };
    let out = Command::new("curl")
        .args(["-sS", "--max-time", &secs, "-K", "-", "-w", "\n%{http_code}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| curl_err(format!("cannot run it: {e}")))
        .and_then(|mut child| {
            child.stdin.take().expect("piped").write_all(config.as_bytes()).map_err(|e| curl_err(e.to_string()))?;
            child.wait_with_output().map_err(|e| curl_err(e.to_string()))
        });
    if let Some(f) = body_file {
        let _ = std::fs::remove_file(f);
    }
    let out = out?;
    if !out.status.success() {
        return Err(curl_err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    let text = out.stdout;
    let split = text.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&text[(split + 1).min(text.len())..]).trim().parse::<u16>().unwrap_or(0);
    Ok(Response { status: code, body: text[..split].to_vec() })
}

/// A new 0600 file in the temporary directory holding `bytes` (never an existing file or link).
fn private_temp_file(bytes: &[u8]) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let path = std::env::temp_dir().join(format!("restore-body-{}-{nanos}.json", std::process::id()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
    if let Err(e) = f.write_all(bytes) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Plain HTTP natively, https through curl: the one entry point for callers.
pub fn fetch(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let parsed = Url::parse(url)?;
    if parsed.secure {
        curl_request(method, url, headers, body, timeout)
    } else {
        request(method, &parsed, headers, body, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls_split_into_host_port_and_path() {
        let u = Url::parse("http://127.0.0.1:5678/healthz").unwrap();
        assert_eq!((u.secure, u.host.as_str(), u.port, u.path.as_str()), (false, "127.0.0.1", 5678, "/healthz"));
        let u = Url::parse("http://example.org").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = Url::parse("https://example.org?x=1#frag").unwrap();
        assert_eq!((u.secure, u.port, u.path.as_str()), (true, 443, "/?x=1"));
        let u = Url::parse("http://[::1]:8080/a/b?c").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("::1", 8080, "/a/b?c"));
        assert_eq!(u.authority(), "[::1]:8080");
        let u = Url::parse("http://[::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        for bad in
            ["ftp://x", "http://", "http://x:99999/", "http://u:p@x/", "http://[::1/", "http://x:0/", "http://a b/"]
        {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    /// A one-shot server in a thread answering `answer` to the first request; returns its URL
    /// and the request it saw.
    fn serve(answer: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).unwrap();
            String::from_utf8_lossy(&req).into_owned()
        });
        (url, h)
    }

    fn get(url: &str) -> Result<Response, HttpError> {
        fetch("GET", url, &[], None, Duration::from_secs(3))
    }

    #[test]
    fn status_200_with_body_and_request_shape() {
        let (url, h) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let r = get(&url).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        let req = h.join().unwrap();
        assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nHost: 127.0.0.1:") && req.contains("\r\nConnection: close\r\n"), "{req}");
    }

    #[test]
    fn status_302_is_an_answer_not_followed() {
        let (url, h) = serve(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(get(&url).unwrap().status, 302);
        h.join().unwrap();
    }

    #[test]
    fn status_500_is_reported() {
        let (url, h) = serve(b"HTTP/1.0 500 Internal Server Error\r\n\r\nboom");
        let r = get(&url).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, &b"boom"[..]));
        h.join().unwrap();
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let (url, h) =
            serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n");
        assert_eq!(get(&url).unwrap().body, b"{\"a\":1}");
        h.join().unwrap();
    }

    /// A server that ignores `Connection: close` and keeps the socket open: the answer is
    /// complete once its Content-Length is read, so the check does not wait for the timeout.
    #[test]
    fn a_kept_alive_connection_ends_with_its_body() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
            // Hold the connection open until the client has its answer.
            let _ = rx.recv();
        });
        let r = fetch("GET", &url, &[], None, Duration::from_secs(30)).unwrap();
        tx.send(()).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        h.join().unwrap();
    }

    #[test]
    fn no_listener_is_a_connect_error() {
        let url = format!("http://{}/", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
        let e = get(&url).unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        // Accepted by the kernel (backlog), never answered.
        let e = fetch("GET", &url, &[], None, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
        drop(l);
    }

    #[test]
    fn a_garbage_answer_is_a_protocol_error() {
        let (url, h) = serve(b"SSH-2.0-OpenSSH_9.2\r\n");
        let e = get(&url).unwrap_err();
        assert!(matches!(e, HttpError::Protocol { .. }), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn ipv6_loopback_when_available() {
        let Ok(l) = TcpListener::bind("[::1]:0") else {
            eprintln!("skipped: no IPv6 loopback here");
            return;
        };
        let url = format!("http://[::1]:{}/", l.local_addr().unwrap().port());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        });
        assert_eq!(get(&url).unwrap().status, 204);
        h.join().unwrap();
    }
}
