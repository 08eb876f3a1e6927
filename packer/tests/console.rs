//! `packer serve` driven over real HTTP (a tiny std client, no mocks) against the real binary and
//! a real catalog: n8n's SQLite fixture deployment, bundles made by `packer create`.
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use common::*;
use serde_json::Value;

/// A running `packer serve`, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(cfg: &Path, extra: &[&str]) -> Server {
    let mut child = Command::cargo_bin("packer")
        .unwrap()
        .env("PACKER_RESTORER", restorer_path())
        .arg("--config")
        .arg(cfg)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line
        .trim()
        .strip_prefix("packer serve: http://127.0.0.1:")
        .and_then(|r| r.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no URL on stdout: {line:?}"));
    Server { child, port }
}

/// A response: status, headers (lower-case names), body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn cookies(&self) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k == "set-cookie").map(|(_, v)| v.as_str()).collect()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// One HTTP/1.1 request (Connection: close) with an optional cookie and form body.
fn http(port: u16, method: &str, path: &str, cookie: Option<&str>, form: Option<&[(&str, &str)]>) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = form
        .map(|f| f.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&"))
        .unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req += &format!("Cookie: {c}\r\n");
    }
    if form.is_some() {
        req += &format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len());
    }
    req += "\r\n";
    req += &body;
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Resp { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// The value of `name="..." value="..."` in a page.
fn hidden(page: &str, name: &str) -> String {
    let at = page.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

/// n8n's SQLite fixture with its key, packed by a configuration in `dir`; returns it.
fn deployment(dir: &Path) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/deployment");
    fs::copy(fixtures.join("home/node/.n8n/database.sqlite"), dir.join("database.sqlite")).unwrap();
    fs::write(dir.join(".env"), "N8N_ENCRYPTION_KEY=fixture-key-0123456789abcdef\n").unwrap();
    let cfg = dir.join("packer.toml");
    fs::write(
        &cfg,
        "[bundle]\noutput_dir = \"out\"\nname = \"n8n\"\n[[sqlite]]\nname = \"n8n\"\npath = \"database.sqlite\"\nprofile = \"n8n\"\n[[files]]\nkind = \"config\"\npaths = [\".env\"]\n[retention]\nkeep_last = 1\n",
    )
    .unwrap();
    cfg
}

/// Logs in with the token file's content; returns the session cookie and the CSRF token.
fn log_in(port: u16, token: &str) -> (String, String) {
    let page = http(port, "GET", "/login", None, None);
    let login = cookie_value(page.cookies()[0]);
    let csrf = hidden(&page.text(), "login_csrf");
    let r = http(port, "POST", "/login", Some(&login), Some(&[("login_csrf", &csrf), ("password", token)]));
    assert_eq!(r.status, 303, "{}", r.text());
    let set = r.cookies().into_iter().find(|c| c.starts_with("packer_session=")).unwrap().to_string();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(set.contains(flag), "{set}");
    }
    let session = cookie_value(&set);
    let home = http(port, "GET", "/", Some(&session), None);
    assert_eq!(home.status, 200);
    (session, hidden(&home.text(), "csrf"))
}

fn wait_job(port: u16, session: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = http(port, "GET", "/api/job", Some(session), None).json();
        if j["running"] == false {
            return j;
        }
        assert!(Instant::now() < deadline, "job still running: {j}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn cli_json(cfg: &Path, args: &[&str]) -> Value {
    let out = packer().arg("--config").arg(cfg).args(args).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The whole console over HTTP: nothing without a login, the token file private, wrong
/// passwords and missing CSRF tokens refused, the CLI's JSON served as is, the bundle page with
/// inventory, workflow search and restore commands and no secret, verify / protect / delete
/// refused while protected / download with its sha256 / back up now with its progress / back
/// up refused while another run holds the lock, the retention preview, the login rate limit.
#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn console_over_http() {
    let t = tempfile::tempdir().unwrap();
    let cfg = deployment(t.path());
    let first = create(&cfg);
    let srv = serve(&cfg, &[]);
    let port = srv.port;

    // Nothing without a login.
    let r = http(port, "GET", "/", None, None);
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    assert_eq!(http(port, "GET", "/api/bundles", None, None).status, 401);
    assert_eq!(http(port, "GET", "/bundles/1/download", None, None).status, 303);
    assert_eq!(http(port, "POST", "/backup", None, Some(&[("csrf", "x")])).status, 403);

    // Another name pointed at 127.0.0.1 (DNS rebinding) is not answered.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.write_all(b"GET /login HTTP/1.1\r\nHost: evil.example:8480\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");

    // The token file: created 0600, never shown.
    let token_path = t.path().join("out/console.token");
    assert_eq!(fs::metadata(&token_path).unwrap().permissions().mode() & 0o777, 0o600);
    let token = fs::read_to_string(&token_path).unwrap().trim().to_string();

    // A wrong password, and a login without its CSRF token, are refused.
    let page = http(port, "GET", "/login", None, None);
    assert!(!page.text().contains(&token));
    let login = cookie_value(page.cookies()[0]);
    let lcsrf = hidden(&page.text(), "login_csrf");
    let r = http(port, "POST", "/login", Some(&login), Some(&[("login_csrf", &lcsrf), ("password", "wrong")]));
    assert_eq!(r.status, 401);
    assert!(r.text().contains("Wrong password") && r.cookies().iter().all(|c| !c.starts_with("packer_session")));
    let r = http(port, "POST", "/login", Some(&login), Some(&[("password", &token)]));
    assert_eq!(r.status, 403);

    let (session, csrf) = log_in(port, &token);
    let s = Some(session.as_str());

    // JSON endpoints return what the CLI's --json prints.
    let bundles = http(port, "GET", "/api/bundles", s, None).json();
    assert_eq!(bundles, cli_json(&cfg, &["list", "--json"]));
    let id = bundles[0]["id"].as_i64().unwrap();
    let name = bundles[0]["file_name"].as_str().unwrap().to_string();
    assert_eq!(first.file_name().unwrap().to_str().unwrap(), name);
    let status = http(port, "GET", "/api/status", s, None).json();
    let cli_status = cli_json(&cfg, &["status", "--json"]);
    for k in ["bundles", "total_size", "healthy", "alerts", "last_success"] {
        assert_eq!(
            status[k].as_object().map(|o| o.keys().collect::<Vec<_>>()),
            cli_status[k].as_object().map(|o| o.keys().collect::<Vec<_>>()),
            "{k}"
        );
    }
    assert_eq!(status["bundles"], cli_status["bundles"]);
    let wf_api = http(port, "GET", &format!("/api/bundles/{id}/workflows?search=slack"), s, None).json();
    assert_eq!(wf_api, cli_json(&cfg, &["show", &id.to_string(), "--workflows", "--search", "slack", "--json"]));
    assert_eq!(
        http(port, "GET", &format!("/api/bundles/{id}/credentials"), s, None).json(),
        cli_json(&cfg, &["show", &id.to_string(), "--credentials", "--json"])
    );
    assert_eq!(
        http(port, "GET", &format!("/api/bundles/{id}"), s, None).json(),
        cli_json(&cfg, &["show", &id.to_string(), "--json"])
    );

    // The bundle page: inventory, search, credentials without secrets, restore commands.
    let page = http(port, "GET", &format!("/bundles/{id}"), s, None).text();
    let env_mode = format!("{:04o}", fs::metadata(t.path().join(".env")).unwrap().permissions().mode() & 0o7777);
    for want in [
        name.as_str(),
        "Daily report ☀",
        "Webhook → Slack",
        "Slack account",
        "slackApi",
        "./restore --dry-run",
        "sha256sum -c",
        "workflow_entity",
        &env_mode,
    ] {
        assert!(page.contains(want), "{want} missing from the bundle page");
    }
    for secret in ["xoxb-fixture", "not-a-real-password", "fixture-key-0123456789abcdef", &token] {
        assert!(!page.contains(secret), "secret {secret} rendered");
    }
    let found = http(port, "GET", &format!("/bundles/{id}?search=webhook"), s, None).text();
    assert!(found.contains("1 workflow(s)") && found.contains("Webhook → Slack") && !found.contains("Daily report ☀"));
    let active = http(port, "GET", &format!("/bundles/{id}?search=&active=on"), s, None).text();
    assert!(active.contains("1 workflow(s)") && active.contains("Daily report ☀"));

    // An action without the CSRF token is refused and changes nothing.
    let r = http(port, "POST", &format!("/bundles/{id}/protect"), s, Some(&[]));
    assert_eq!(r.status, 403);
    let r = http(port, "POST", &format!("/bundles/{id}/protect"), s, Some(&[("csrf", "forged")]));
    assert_eq!(r.status, 403);
    assert_eq!(http(port, "GET", "/api/bundles", s, None).json()[0]["protected"], false);

    // Verify (a background job), then protect.
    let r = http(port, "POST", &format!("/bundles/{id}/verify"), s, Some(&[("csrf", &csrf), ("depth", "digest")]));
    assert_eq!((r.status, r.header("location")), (303, Some("/job")));
    let j = wait_job(port, &session);
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(http(port, "GET", "/api/bundles", s, None).json()[0]["verify_ok"], true);
    // Deep: the SQLite copy opened and its counts and workflow checksums compared.
    let r = http(port, "POST", &format!("/bundles/{id}/verify"), s, Some(&[("csrf", &csrf), ("depth", "deep")]));
    assert_eq!(r.status, 303);
    let j = wait_job(port, &session);
    assert_eq!((j["ok"].clone(), j["kind"].clone()), (Value::Bool(true), Value::from("verify --deep")), "{j}");
    assert_eq!(http(port, "GET", "/api/bundles", s, None).json()[0]["verify_depth"], "deep");
    let r = http(port, "POST", &format!("/bundles/{id}/protect"), s, Some(&[("csrf", &csrf)]));
    assert_eq!(r.status, 303);
    assert_eq!(cli_json(&cfg, &["list", "--json"])[0]["protected"], true);

    // Delete is refused while protected, even with the name typed.
    let r = http(port, "POST", &format!("/bundles/{id}/delete"), s, Some(&[("csrf", &csrf), ("confirm", &name)]));
    assert_eq!(r.status, 409);
    assert!(r.text().contains("is protected"));
    assert!(t.path().join("out").join(&name).is_file());

    // Download: the very bytes, whose sha256 is the sidecar's and the header's.
    let d = http(port, "GET", &format!("/bundles/{id}/download"), s, None);
    assert_eq!(d.status, 200);
    let sum = common::craft::sha256_hex(&d.body);
    let sidecar = fs::read_to_string(t.path().join("out").join(format!("{name}.sha256"))).unwrap();
    assert!(sidecar.starts_with(&sum), "{sum} vs {sidecar}");
    assert_eq!(d.header("x-bundle-sha256"), Some(sum.as_str()));
    assert!(d.header("content-disposition").unwrap().contains(&name));

    // Back up now is refused while another run holds the lock, then runs with its progress.
    {
        let _held = packer::lock::Lock::acquire(&t.path().join("out"), "create").unwrap();
        let r = http(port, "POST", "/backup", s, Some(&[("csrf", &csrf)]));
        assert_eq!(r.status, 409);
        assert!(r.text().contains("holds") && r.text().contains("wait for it to finish"), "{}", r.text());
    }
    let r = http(port, "POST", "/backup", s, Some(&[("csrf", &csrf)]));
    assert_eq!((r.status, r.header("location")), (303, Some("/job")));
    let j = wait_job(port, &session);
    assert_eq!(j["ok"], true, "{j}");
    assert!(!j["log"].as_array().unwrap().is_empty() && j["step"].as_str().is_some());
    let new_id = j["bundle_id"].as_i64().unwrap();
    let list = http(port, "GET", "/api/bundles", s, None).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"].as_i64(), Some(new_id));
    assert_eq!(list[0]["source"], "manual");

    // Retention preview (keep_last = 1): the protected old bundle is kept, and so is the new one.
    let preview = http(port, "GET", "/api/retention", s, None).json();
    assert_eq!(preview, cli_json(&cfg, &["prune", "--dry-run", "--json"]));
    let old = preview.as_array().unwrap().iter().find(|l| l["bundle"]["id"].as_i64() == Some(id)).unwrap();
    assert_eq!(old["action"], "keep");
    let page = http(port, "GET", "/retention?at=2030-01-01T00:00:00Z", s, None).text();
    assert!(page.contains("2030-01-01 00:00:00 UTC") && page.contains("keep"));

    // Unprotected, a wrong confirmation still deletes nothing; the typed name does.
    assert_eq!(http(port, "POST", &format!("/bundles/{id}/unprotect"), s, Some(&[("csrf", &csrf)])).status, 303);
    let r = http(port, "POST", &format!("/bundles/{id}/delete"), s, Some(&[("csrf", &csrf), ("confirm", "yes")]));
    assert_eq!(r.status, 409);
    assert!(t.path().join("out").join(&name).is_file());
    let r = http(port, "POST", &format!("/bundles/{id}/delete"), s, Some(&[("csrf", &csrf), ("confirm", &name)]));
    assert_eq!(r.status, 303);
    assert!(!t.path().join("out").join(&name).exists());

    // Logout ends the session.
    assert_eq!(http(port, "POST", "/logout", s, Some(&[("csrf", &csrf)])).status, 303);
    assert_eq!(http(port, "GET", "/api/bundles", s, None).status, 401);

    // Five wrong passwords lock this address out, even for the right one.
    for _ in 0..5 {
        let p = http(port, "GET", "/login", None, None);
        let c = cookie_value(p.cookies()[0]);
        let l = hidden(&p.text(), "login_csrf");
        http(port, "POST", "/login", Some(&c), Some(&[("login_csrf", &l), ("password", "nope")]));
    }
    let p = http(port, "GET", "/login", None, None);
    let c = cookie_value(p.cookies()[0]);
    let l = hidden(&p.text(), "login_csrf");
    let r = http(port, "POST", "/login", Some(&c), Some(&[("login_csrf", &l), ("password", &token)]));
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
}

/// A non-loopback address without TLS or --behind-proxy is refused before anything listens;
/// a password hash made by --hash-password logs in.
#[test]
fn network_needs_tls_and_a_password_hash_works() {
    let t = tempfile::tempdir().unwrap();
    let cfg = deployment(t.path());
    let out = packer().arg("--config").arg(&cfg).args(["serve", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("behind_proxy"), "{}", String::from_utf8_lossy(&out.stderr));

    let mut c =
        packer().args(["serve", "--hash-password"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(b"a long console password\n").unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"));
    let mut text = fs::read_to_string(&cfg).unwrap();
    text += &format!("[serve]\npassword_hash = \"{hash}\"\n");
    fs::write(&cfg, text).unwrap();
    let srv = serve(&cfg, &[]);
    assert!(!t.path().join("out/console.token").exists(), "no token file when a password is set");
    let (session, _) = log_in(srv.port, "a long console password");
    assert_eq!(http(srv.port, "GET", "/api/bundles", Some(&session), None).json(), Value::Array(vec![]));
}

/// With --tls-cert/--tls-key the console speaks HTTPS (rustls) and may listen beyond loopback;
/// plain HTTP to it gets no page.
#[test]
fn tls_allows_a_network_address() {
    let t = tempfile::tempdir().unwrap();
    let cfg = deployment(t.path());
    let (cert, key) = (t.path().join("cert.pem"), t.path().join("key.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut child = Command::cargo_bin("packer")
        .unwrap()
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--listen", "0.0.0.0:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let srv = Server {
        port: line
            .trim()
            .strip_prefix("packer serve: https://0.0.0.0:")
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap(),
        child,
    };
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "20", "-D", "-"])
        .arg(format!("https://127.0.0.1:{}/login", srv.port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("Log in"), "{text}");
    assert!(text.to_ascii_lowercase().contains("set-cookie: packer_login="));
    let plain = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{}/login", srv.port))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("Log in"));
}

/// SIGTERM while "back up now" writes a bundle: the console stops listening, finishes the bundle
/// (published, indexed, no .partial left) and exits 0, as `packer daemon` does.
#[test]
fn stop_signal_finishes_the_running_backup() {
    let t = tempfile::tempdir().unwrap();
    let cfg = deployment(t.path());
    let mut child = Command::cargo_bin("packer")
        .unwrap()
        .env("PACKER_RESTORER", restorer_path())
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 =
        line.trim().strip_prefix("packer serve: http://127.0.0.1:").unwrap().trim_end_matches('/').parse().unwrap();
    let token = fs::read_to_string(t.path().join("out/console.token")).unwrap();
    let (session, csrf) = log_in(port, token.trim());
    let r = http(port, "POST", "/backup", Some(&session), Some(&[("csrf", &csrf)]));
    assert_eq!(r.status, 303);
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stopping once the running backup finishes"), "{err}");
    let list = cli_json(&cfg, &["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let partial = fs::read_dir(t.path().join("out"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".partial"));
    assert!(!partial);
}
