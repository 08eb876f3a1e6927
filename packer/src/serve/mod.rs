//! `packer serve`: the web console. The same library and catalog as the CLI behind a small axum
//! app: server-rendered pages (assets embedded in the binary), JSON endpoints returning the very
//! structs of the CLI's `--json`, and long work (back up now, verify) on a background thread
//! whose progress the job page polls. Blocking library calls run on tokio's blocking pool; the
//! catalog is opened per request (SQLite connections are cheap and the CLI may write meanwhile).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a service's edge: its address and its stops go to the journal"
)]

pub mod auth;
pub mod jobs;
pub mod pages;
pub mod settings;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use chrono::{DateTime, Utc};
use restorer::log::Level;
use serde::Deserialize;

use crate::catalog::{BundleRow, BundleStatus, Catalog};
use crate::config::Config;
use crate::retention::Source;
use auth::{Secret, LOGIN_COOKIE, SESSION_COOKIE};
use jobs::{Ended, Jobs};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Failed logins allowed per client address within [`LOGIN_WINDOW`].
const LOGIN_FAILURES: u32 = 5;
/// The login rate limit's window.
const LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// Largest form body read (the CSRF check buffers it).
const FORM_LIMIT: usize = 64 * 1024;

/// How `packer serve` runs (flags merged over `[serve]`).
pub struct Options {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Certificate chain and key, for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A reverse proxy terminates TLS.
    pub behind_proxy: bool,
    /// The restore binary "back up now" embeds (as `packer create --restorer`).
    pub restorer: Option<PathBuf>,
    /// How long a login lasts.
    pub session: Duration,
    /// Where what the status reads changes in the catalog (a bundle indexed, one gone) is logged:
    /// stderr under the CLI's `-q`/`-v`, as `packer status` logs it.
    pub log: fn(Level, &str),
}

/// Everything the handlers share.
struct App {
    cfg: Arc<Config>,
    secret: Secret,
    /// Shown on the login page (the path, never the token).
    token_file: Option<PathBuf>,
    sessions: Mutex<auth::Sessions>,
    limiter: Mutex<auth::RateLimit>,
    jobs: Arc<Jobs>,
    restorer: Option<PathBuf>,
    behind_proxy: bool,
    session_secs: u64,
    /// Answer only requests whose Host is loopback (plain HTTP on loopback, no proxy).
    loopback_only: bool,
    /// [`Options::log`].
    log: fn(Level, &str),
}

type St = Arc<App>;

/// The logged-in session of a request (put there by [`guard`]).
#[derive(Clone)]
struct Authed {
    sid: String,
    csrf: String,
}

/// The client's address, for the login rate limit.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

impl Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

impl Connected<axum::serve::IncomingStream<'_, tls::TlsListener>> for Peer {
    fn connect_info(s: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

/// Reads the secret logins are checked against: `[serve] password_hash`, else the token file
/// (created 0600 on first start). Returns it and the token file's path when that is the one.
pub fn secret(cfg: &Config) -> Result<(Secret, Option<PathBuf>)> {
    if let Some(h) = &cfg.serve.password_hash {
        return Ok((Secret::from_hash(h)?, None));
    }
    let path = cfg.serve.token_file.clone().unwrap_or_else(|| cfg.bundle.output_dir.join(settings::DEFAULT_TOKEN_FILE));
    let (token, created) = auth::token_file(&path)?;
    eprintln!(
        "packer serve: {} the login token {} (mode 0600): log in with its content, e.g. `sudo cat {}`",
        if created { "wrote" } else { "using" },
        path.display(),
        path.display()
    );
    Ok((Secret::Token(token), Some(path)))
}

/// Runs the console until the process is stopped.
pub fn run(cfg: Config, opts: Options) -> Result<i32> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(why) = settings::listen_refusal(opts.listen, opts.tls.is_some(), opts.behind_proxy) {
        anyhow::bail!("not listening on {why}");
    }
    // The token file and the catalog live there; job::open would make it the same way.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.bundle.output_dir)
        .with_context(|| format!("[bundle] output_dir {}", cfg.bundle.output_dir.display()))?;
    let (secret, token_file) = secret(&cfg)?;
    let acceptor = opts.tls.as_ref().map(|(c, k)| tls::acceptor(c, k)).transpose()?;
    let app: St = Arc::new(App {
        cfg: Arc::new(cfg),
        secret,
        token_file,
        sessions: Mutex::new(auth::Sessions::new(opts.session)),
        limiter: Mutex::new(auth::RateLimit::new(LOGIN_FAILURES, LOGIN_WINDOW)),
        jobs: Arc::new(Jobs::default()),
        restorer: opts.restorer,
        behind_proxy: opts.behind_proxy,
        session_secs: opts.session.as_secs(),
        loopback_only: opts.listen.ip().is_loopback() && !opts.behind_proxy && opts.tls.is_none(),
        log: opts.log,
    });
    let jobs = Arc::clone(&app.jobs);
    let router = router(app);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let tcp = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("listening on {}", opts.listen))?;
        let local = tcp.local_addr()?;
        // The URL on stdout (tests and scripts read it; --listen 127.0.0.1:0 picks a free port).
        let service = router.into_make_service_with_connect_info::<Peer>();
        match acceptor {
            Some(acceptor) => {
                println!("packer serve: https://{local}/");
                axum::serve(tls::TlsListener { tcp, acceptor }, service)
                    .with_graceful_shutdown(stop_signal())
                    .await
                    .context("serving")?;
            }
            None => {
                println!("packer serve: http://{local}/");
                axum::serve(tcp, service).with_graceful_shutdown(stop_signal()).await.context("serving")?;
            }
        }
        finish_job(&jobs).await;
        anyhow::Ok(())
    })?;
    Ok(0)
}

/// SIGTERM (systemctl stop) or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// After a stop signal, as `packer daemon` does: a backup being written is finished first (it
/// would otherwise leave a .partial and a run recorded as never ending); a second signal exits at
/// once (the next run removes the .partial).
async fn finish_job(jobs: &Jobs) {
    let v = jobs.view();
    if !v.running {
        return;
    }
    eprintln!("packer serve: stopping once the running {} finishes (a second signal stops at once)", v.kind);
    let second = stop_signal();
    tokio::pin!(second);
    while jobs.view().running {
        tokio::select! {
            _ = &mut second => {
                eprintln!("packer serve: second signal: stopping now; the next run removes what the job left");
                return;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

fn router(app: St) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/healthz", get(|| async { "ok" }))
        .route("/assets/console.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/", get(dashboard))
        .route("/bundles", get(bundles))
        .route("/bundles/{id}", get(bundle))
        .route("/bundles/{id}/download", get(download))
        .route("/bundles/{id}/verify", post(verify))
        .route("/bundles/{id}/protect", post(|s, a, p| set_protected(s, a, p, true)))
        .route("/bundles/{id}/unprotect", post(|s, a, p| set_protected(s, a, p, false)))
        .route("/bundles/{id}/keep", post(keep))
        .route("/bundles/{id}/delete", post(delete))
        .route("/backup", post(backup))
        .route("/job", get(job_page))
        .route("/retention", get(retention))
        .route("/api/status", get(api_status))
        .route("/api/bundles", get(api_bundles))
        .route("/api/bundles/{id}", get(api_manifest))
        .route("/api/bundles/{id}/workflows", get(api_workflows))
        .route("/api/bundles/{id}/credentials", get(api_credentials))
        .route("/api/retention", get(api_retention))
        .route("/api/job", get(api_job))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .layer(middleware::map_response(security_headers))
        .with_state(app)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// No framing, no sniffing, no referrer, scripts only from the console itself, nothing cached
/// (pages name bundles and hosts).
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cache-control", "no-store");
    r
}

fn is_public(path: &str) -> bool {
    path == "/login" || path == "/healthz" || path.starts_with("/assets/")
}

/// Every request but the login page and the assets needs a live session; every POST also needs
/// the session's CSRF token (form field `csrf`, or header X-CSRF-Token for scripts).
async fn guard(State(app): State<St>, req: Request, next: Next) -> Response {
    if app.loopback_only {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !settings::loopback_host(host) {
            let msg = format!("Host {host:?} is not this console's address: open it as http://127.0.0.1 (or localhost) with its port.");
            return (StatusCode::MISDIRECTED_REQUEST, msg).into_response();
        }
    }
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let sid = req
        .headers()
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| auth::cookie(c, SESSION_COOKIE))
        .map(str::to_string);
    let session = sid.as_ref().and_then(|id| {
        let mut s = app.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.get(id, Instant::now()).map(|s| s.csrf.clone())
    });
    let (Some(sid), Some(csrf)) = (sid, session) else {
        return if req.uri().path().starts_with("/api/") {
            (StatusCode::UNAUTHORIZED, Json(serde_json::json!({"error": "log in first (POST /login)"}))).into_response()
        } else if req.method() == Method::GET {
            Redirect::to("/login").into_response()
        } else {
            (StatusCode::FORBIDDEN, Html(pages::layout("Not logged in", None, &[], &pages::error("Log in first."))))
                .into_response()
        };
    };
    let mut req = req;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
        };
        let given = header_token
            .or_else(|| form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned()));
        if !given.is_some_and(|g| auth::same(&g, &csrf)) {
            let body = pages::error("Refused: this form carries no valid CSRF token. Reload the page and try again.");
            return (StatusCode::FORBIDDEN, Html(pages::layout("Refused", Some(&csrf), &[], &body))).into_response();
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(Authed { sid, csrf });
    next.run(req).await
}

/// Runs blocking library work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| anyhow!("console worker failed: {e}"))?
}

/// A page that failed: the error chain (it names files and ids, never a secret).
struct Fail(StatusCode, anyhow::Error);

impl From<anyhow::Error> for Fail {
    fn from(e: anyhow::Error) -> Self {
        Fail(StatusCode::INTERNAL_SERVER_ERROR, e)
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let msg = crate::error_text::chain(&self.1);
        (self.0, Html(pages::layout("Error", None, &[], &pages::error(&msg)))).into_response()
    }
}

/// An API failure, as JSON.
struct ApiFail(anyhow::Error);

impl From<anyhow::Error> for ApiFail {
    fn from(e: anyhow::Error) -> Self {
        ApiFail(e)
    }
}

impl IntoResponse for ApiFail {
    fn into_response(self) -> Response {
        let status = if self.0.to_string().starts_with("no bundle") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        (status, Json(serde_json::json!({"error": crate::error_text::chain(&self.0)}))).into_response()
    }
}

impl App {
    fn flash(&self, sid: &str, ok: bool, msg: impl Into<String>) {
        if let Some(s) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(sid, Instant::now()) {
            s.flash.push((ok, msg.into()));
        }
    }

    fn page(&self, a: &Authed, title: &str, body: &str) -> Html<String> {
        let flash = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&a.sid, Instant::now())
            .map(|s| std::mem::take(&mut s.flash))
            .unwrap_or_default();
        Html(pages::layout(title, Some(&a.csrf), &flash, body))
    }

    /// The client's address: the peer, or behind a proxy the last X-Forwarded-For hop (the one
    /// the proxy itself added).
    fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.behind_proxy {
            if let Some(ip) = headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok())
            {
                return ip;
            }
        }
        peer.ip()
    }
}

fn catalog_rows(cfg: &Config) -> Result<(Catalog, Vec<BundleRow>)> {
    let (catalog, _) = Catalog::open(&cfg.bundle.output_dir)?;
    for (level, e) in catalog.reconcile()? {
        if level >= Level::Warning {
            eprintln!("packer serve: {e}");
        }
    }
    let rows = catalog.list()?;
    Ok((catalog, rows))
}

fn row_of(cfg: &Config, id: i64) -> Result<(Catalog, BundleRow)> {
    let (catalog, _) = Catalog::open(&cfg.bundle.output_dir)?;
    let row = crate::job::find(&catalog, &id.to_string())?;
    Ok((catalog, row))
}

// ---- login ----

async fn login_page(headers: HeaderMap) -> Response {
    let token = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| auth::cookie(c, LOGIN_COOKIE))
        .filter(|t| t.len() >= 32)
        .map(str::to_string)
        .unwrap_or_else(auth::random_token);
    login_response(StatusCode::OK, &token, None, None)
}

fn login_response(status: StatusCode, login_csrf: &str, token_file: Option<&str>, error: Option<&str>) -> Response {
    let body = pages::login(login_csrf, token_file, error);
    (
        status,
        [(header::SET_COOKIE, auth::set_cookie(LOGIN_COOKIE, login_csrf, Some(3600)))],
        Html(pages::layout("Log in", None, &[], &body)),
    )
        .into_response()
}

async fn login(
    State(app): State<St>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| auth::cookie(c, LOGIN_COOKIE))
        .map(str::to_string);
    let token_file = app.token_file.as_ref().map(|p| p.display().to_string());
    // The login form's own CSRF check (double submit): another site cannot log a browser into
    // this console with the attacker's password.
    let fresh = auth::random_token();
    let (Some(cookie), Some(given)) = (cookie, form.get("login_csrf")) else {
        return login_response(
            StatusCode::FORBIDDEN,
            &fresh,
            token_file.as_deref(),
            Some("Refused: no CSRF token; reload the login page."),
        );
    };
    if !auth::same(&cookie, given) {
        return login_response(
            StatusCode::FORBIDDEN,
            &fresh,
            token_file.as_deref(),
            Some("Refused: wrong CSRF token; reload the login page."),
        );
    }
    let ip = app.client(peer, &headers);
    if let Err(wait) = app.limiter.lock().unwrap_or_else(|e| e.into_inner()).check(ip, Instant::now()) {
        let msg = format!("Too many failed logins from {ip}: try again in {} s.", wait.as_secs() + 1);
        let mut r = login_response(StatusCode::TOO_MANY_REQUESTS, &cookie, token_file.as_deref(), Some(&msg));
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs() + 1));
        return r;
    }
    let password = form.get("password").cloned().unwrap_or_default();
    let app2 = Arc::clone(&app);
    let ok = blocking(move || Ok(app2.secret.check(&password))).await.unwrap_or(false);
    if !ok {
        app.limiter.lock().unwrap_or_else(|e| e.into_inner()).failed(ip, Instant::now());
        eprintln!("packer serve: failed login from {ip}");
        return login_response(
            StatusCode::UNAUTHORIZED,
            &cookie,
            token_file.as_deref(),
            Some("Wrong password or token."),
        );
    }
    app.limiter.lock().unwrap_or_else(|e| e.into_inner()).succeeded(ip);
    let sid = app.sessions.lock().unwrap_or_else(|e| e.into_inner()).create(Instant::now());
    let mut r = Redirect::to("/").into_response();
    let h = r.headers_mut();
    for c in
        [auth::set_cookie(SESSION_COOKIE, &sid, Some(app.session_secs)), auth::set_cookie(LOGIN_COOKIE, "", Some(0))]
    {
        h.append(header::SET_COOKIE, HeaderValue::from_str(&c).expect("cookie text is ASCII"));
    }
    r
}

async fn logout(State(app): State<St>, Extension(a): Extension<Authed>) -> Response {
    app.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&a.sid);
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::set_cookie(SESSION_COOKIE, "", Some(0))).expect("cookie text is ASCII"),
    );
    r
}

// ---- pages ----

async fn dashboard(State(app): State<St>, Extension(a): Extension<Authed>) -> Result<Html<String>, Fail> {
    let (cfg, mut log) = (Arc::clone(&app.cfg), app.log);
    let (status, alert_after) = blocking(move || {
        let s = crate::status::gather(&cfg, &mut log)?;
        let limit = cfg.schedule.alert_after.as_deref().map(crate::units::parse_duration).transpose()?;
        Ok((s, limit))
    })
    .await?;
    Ok(app.page(&a, "Dashboard", &pages::dashboard(&status, alert_after, &a.csrf)))
}

async fn bundles(State(app): State<St>, Extension(a): Extension<Authed>) -> Result<Html<String>, Fail> {
    let cfg = Arc::clone(&app.cfg);
    let rows = blocking(move || Ok(catalog_rows(&cfg)?.1)).await?;
    Ok(app.page(&a, "Bundles", &pages::bundles(&rows, &a.csrf)))
}

async fn bundle(
    State(app): State<St>,
    Extension(a): Extension<Authed>,
    UrlPath(id): UrlPath<i64>,
    Query(q): Query<pages::WorkflowQuery>,
) -> Result<Html<String>, Fail> {
    let cfg = Arc::clone(&app.cfg);
    let (row, m) = blocking(move || {
        let (catalog, row) = row_of(&cfg, id)?;
        let m = catalog.manifest(row.id)?;
        Ok((row, m))
    })
    .await
    .map_err(|e| Fail(StatusCode::NOT_FOUND, e))?;
    let out = app.cfg.bundle.output_dir.display().to_string();
    Ok(app.page(&a, &format!("Bundle {}", row.id), &pages::bundle(&row, &m, &q, &out, &a.csrf)))
}

/// The bundle file, streamed (never read into memory), with its sha256 in a header.
async fn download(State(app): State<St>, UrlPath(id): UrlPath<i64>) -> Result<Response, Fail> {
    let cfg = Arc::clone(&app.cfg);
    let row = blocking(move || Ok(row_of(&cfg, id)?.1)).await.map_err(|e| Fail(StatusCode::NOT_FOUND, e))?;
    let path = app.cfg.bundle.output_dir.join(&row.file_name);
    let file = tokio::fs::File::open(&path)
        .await
        .with_context(|| format!("opening {} (status {})", path.display(), row.status))
        .map_err(|e| Fail(StatusCode::NOT_FOUND, e))?;
    let len = file.metadata().await.with_context(|| format!("reading {}", path.display()))?.len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    // Bundle file names are made of [A-Za-z0-9._-] (restorer::layout), safe in a header.
    let disposition = format!("attachment; filename=\"{}\"", row.file_name.replace(['"', '\\'], "_"));
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&row.sha256) {
        h.insert("x-bundle-sha256", v);
    }
    Ok(r)
}

/// The outcome of an action: a redirect with a message on success, the reason on refusal.
fn refused(app: &App, a: &Authed, title: &str, msg: &str) -> Response {
    (StatusCode::CONFLICT, app.page(a, title, &pages::error(msg))).into_response()
}

async fn verify(
    State(app): State<St>,
    Extension(a): Extension<Authed>,
    UrlPath(id): UrlPath<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Fail> {
    let deep = form.get("depth").is_some_and(|d| d == "deep");
    let cfg = Arc::clone(&app.cfg);
    let row = blocking(move || Ok(row_of(&cfg, id)?.1)).await.map_err(|e| Fail(StatusCode::NOT_FOUND, e))?;
    let cfg = Arc::clone(&app.cfg);
    let kind = if deep { "verify --deep" } else { "verify" };
    let started = app.jobs.start(kind, Some(row.file_name.clone()), move |progress, log| {
        let (catalog, row) = row_of(&cfg, id)?;
        let o = crate::verification::verify_row(&cfg, &catalog, &row, deep, None, log, progress)?;
        let outcome = if o.ok {
            format!(
                "{}: OK, {} entries, {} bytes checked",
                row.file_name, o.report.entries_checked, o.report.bytes_checked
            )
        } else {
            format!("{}: CORRUPT, {} problem(s)", row.file_name, o.report.problems.len())
        };
        Ok(Ended { ok: o.ok, outcome, bundle_id: Some(row.id) })
    });
    Ok(match started {
        Ok(_) => {
            app.flash(&a.sid, true, format!("{kind} of {} started", row.file_name));
            Redirect::to("/job").into_response()
        }
        Err(busy) => refused(&app, &a, "Not started", &format!("Not started: {busy}; wait for it to finish.")),
    })
}

/// protect, unprotect, keep and delete take the lock as the CLI does: while a backup runs they
/// are refused with the holder's name.
async fn locked<T: Send + 'static>(
    app: &App,
    what: &'static str,
    f: impl FnOnce(&Config, &Catalog) -> Result<T> + Send + 'static,
) -> Result<T> {
    let cfg = Arc::clone(&app.cfg);
    blocking(move || {
        let mut log = |level: Level, line: &str| {
            if level >= Level::Warning {
                eprintln!("packer serve: {line}");
            }
        };
        let (_lock, catalog) = crate::job::open(&cfg, what, &mut log)?;
        f(&cfg, &catalog)
    })
    .await
}

async fn set_protected(
    State(app): State<St>,
    Extension(a): Extension<Authed>,
    UrlPath(id): UrlPath<i64>,
    on: bool,
) -> Response {
    let r = locked(&app, "serve protect", move |_, catalog| {
        let row = crate::job::find(catalog, &id.to_string())?;
        catalog.set_protected(row.id, on)?;
        Ok(row.file_name)
    })
    .await;
    match r {
        Ok(name) => {
            app.flash(&a.sid, true, format!("{} {name}", if on { "protected" } else { "unprotected" }));
            Redirect::to(&format!("/bundles/{id}")).into_response()
        }
        Err(e) => refused(&app, &a, "Not changed", &crate::error_text::chain(&e)),
    }
}

async fn keep(State(app): State<St>, Extension(a): Extension<Authed>, UrlPath(id): UrlPath<i64>) -> Response {
    let r = locked(&app, "serve keep", move |_, catalog| {
        let row = crate::job::find(catalog, &id.to_string())?;
        let status = if row.status == BundleStatus::Missing { BundleStatus::Missing } else { BundleStatus::Ok };
        catalog.set_status(row.id, status, None)?;
        catalog.set_protected(row.id, true)?;
        Ok(row.file_name)
    })
    .await;
    match r {
        Ok(name) => {
            app.flash(&a.sid, true, format!("kept {name}: protected from retention (unprotect hands it back)"));
            Redirect::to(&format!("/bundles/{id}")).into_response()
        }
        Err(e) => refused(&app, &a, "Not kept", &crate::error_text::chain(&e)),
    }
}

/// Why a delete is refused, or None: protected bundles never go, and the confirmation must be
/// the file name, typed.
pub fn delete_refusal(row: &BundleRow, confirm: &str) -> Option<String> {
    if row.protected {
        return Some(format!("{} is protected: unprotect it first if you really mean to delete it.", row.file_name));
    }
    if confirm.trim() != row.file_name {
        return Some(format!("Not deleted: type the file name {} exactly to confirm.", row.file_name));
    }
    None
}

async fn delete(
    State(app): State<St>,
    Extension(a): Extension<Authed>,
    UrlPath(id): UrlPath<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let confirm = form.get("confirm").cloned().unwrap_or_default();
    let r = locked(&app, "serve delete", move |cfg, catalog| {
        let row = crate::job::find(catalog, &id.to_string())?;
        if let Some(why) = delete_refusal(&row, &confirm) {
            return Ok(Err(why));
        }
        crate::job::delete_bundle(cfg, catalog, &row)?;
        Ok(Ok(row.file_name))
    })
    .await;
    match r {
        Ok(Ok(name)) => {
            app.flash(&a.sid, true, format!("deleted {name}"));
            Redirect::to("/bundles").into_response()
        }
        Ok(Err(why)) => refused(&app, &a, "Not deleted", &why),
        Err(e) => refused(&app, &a, "Not deleted", &crate::error_text::chain(&e)),
    }
}

/// Back up now: refused politely while this console's job or any other run (the timer, a
/// `packer create`) holds the output directory's lock.
async fn backup(State(app): State<St>, Extension(a): Extension<Authed>) -> Response {
    let dir = app.cfg.bundle.output_dir.clone();
    let probe =
        blocking(move || crate::lock::Lock::acquire(&dir, "serve (checking the lock)").map(|(_, stale)| stale)).await;
    let stale = match probe {
        Ok(stale) => stale,
        Err(e) => {
            return refused(&app, &a, "Not started", &format!("Not started: {}.", crate::error_text::chain(&e)));
        }
    };
    let cfg = Arc::clone(&app.cfg);
    let restorer = app.restorer.clone();
    let started = app.jobs.start("backup", None, move |progress, log| {
        if let Some(w) = stale {
            log(Level::Warning, &w);
        }
        let b = crate::job::backup(&cfg, restorer.as_deref(), Source::Manual, log, progress)?;
        Ok(Ended {
            ok: true,
            outcome: format!(
                "bundle {} (id {}): {}, sha256 {}",
                b.created.written.path.display(),
                b.id,
                crate::units::human_size(b.created.written.size),
                b.created.written.sha256
            ),
            bundle_id: Some(b.id),
        })
    });
    match started {
        Ok(_) => {
            app.flash(&a.sid, true, "backup started");
            Redirect::to("/job").into_response()
        }
        Err(busy) => refused(&app, &a, "Not started", &format!("Not started: {busy}; wait for it to finish.")),
    }
}

async fn job_page(State(app): State<St>, Extension(a): Extension<Authed>) -> Html<String> {
    app.page(&a, "Job", &pages::job(&app.jobs.view()))
}

#[derive(Deserialize)]
struct At {
    at: Option<String>,
}

fn parse_at(at: Option<&str>) -> Result<DateTime<Utc>> {
    match at.map(str::trim).filter(|s| !s.is_empty()) {
        Some(t) => Ok(DateTime::parse_from_rfc3339(t)
            .with_context(|| format!("at {t:?}: expected RFC 3339, e.g. 2027-03-01T00:00:00Z"))?
            .with_timezone(&Utc)),
        None => Ok(Utc::now()),
    }
}

/// The simulator behind `prune --dry-run --at`, without the lock (a dry run changes nothing).
fn preview(cfg: &Config, at: DateTime<Utc>) -> Result<Vec<crate::job::PruneLine>> {
    let (catalog, _) = Catalog::open(&cfg.bundle.output_dir)?;
    crate::job::prune(cfg, &catalog, at, true, &mut |_, _| {})
}

async fn retention(
    State(app): State<St>,
    Extension(a): Extension<Authed>,
    Query(q): Query<At>,
) -> Result<Html<String>, Fail> {
    let at = parse_at(q.at.as_deref()).map_err(|e| Fail(StatusCode::BAD_REQUEST, e))?;
    let cfg = Arc::clone(&app.cfg);
    let lines = blocking(move || preview(&cfg, at)).await?;
    Ok(app.page(&a, "Retention", &pages::retention(&app.cfg.retention, &lines, at, q.at.as_deref().unwrap_or(""))))
}

// ---- JSON: the CLI's --json structs ----

async fn api_status(State(app): State<St>) -> Result<Json<crate::status::Status>, ApiFail> {
    let (cfg, mut log) = (Arc::clone(&app.cfg), app.log);
    Ok(Json(blocking(move || crate::status::gather(&cfg, &mut log)).await?))
}

async fn api_bundles(State(app): State<St>) -> Result<Json<Vec<BundleRow>>, ApiFail> {
    let cfg = Arc::clone(&app.cfg);
    Ok(Json(blocking(move || Ok(catalog_rows(&cfg)?.1)).await?))
}

async fn api_manifest(
    State(app): State<St>,
    UrlPath(id): UrlPath<i64>,
) -> Result<Json<restorer::manifest::Manifest>, ApiFail> {
    let cfg = Arc::clone(&app.cfg);
    Ok(Json(
        blocking(move || {
            let (catalog, row) = row_of(&cfg, id)?;
            catalog.manifest(row.id)
        })
        .await?,
    ))
}

fn n8n_of(cfg: &Config, id: i64) -> Result<restorer::n8n::N8nInfo> {
    let (catalog, row) = row_of(cfg, id)?;
    catalog
        .manifest(row.id)?
        .n8n
        .ok_or_else(|| anyhow!("bundle {id} has no n8n inventory (no database with profile = \"n8n\")"))
}

async fn api_workflows(
    State(app): State<St>,
    UrlPath(id): UrlPath<i64>,
    Query(q): Query<pages::WorkflowQuery>,
) -> Result<Json<Vec<restorer::n8n::WorkflowSummary>>, ApiFail> {
    let cfg = Arc::clone(&app.cfg);
    Ok(Json(
        blocking(move || {
            let info = n8n_of(&cfg, id)?;
            Ok(restorer::n8n::filter_workflows(&info, q.text(), q.active_only()).into_iter().cloned().collect())
        })
        .await?,
    ))
}

async fn api_credentials(
    State(app): State<St>,
    UrlPath(id): UrlPath<i64>,
) -> Result<Json<Vec<restorer::n8n::CredentialSummary>>, ApiFail> {
    let cfg = Arc::clone(&app.cfg);
    Ok(Json(blocking(move || Ok(n8n_of(&cfg, id)?.credentials)).await?))
}

async fn api_retention(
    State(app): State<St>,
    Query(q): Query<At>,
) -> Result<Json<Vec<crate::job::PruneLine>>, ApiFail> {
    let at = parse_at(q.at.as_deref())?;
    let cfg = Arc::clone(&app.cfg);
    Ok(Json(blocking(move || preview(&cfg, at)).await?))
}

async fn api_job(State(app): State<St>) -> Json<jobs::JobView> {
    Json(app.jobs.view())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(protected: bool) -> BundleRow {
        BundleRow {
            id: 3,
            file_name: "backup_20260101000000.t_backup.tar.gz".into(),
            created: Utc::now(),
            size: 1,
            sha256: String::new(),
            source: Source::Manual,
            status: BundleStatus::Ok,
            protected,
            pending_since: None,
            confirmed: false,
            verified_at: None,
            verify_depth: None,
            verify_ok: None,
        }
    }

    /// A protected bundle is never deleted, whatever is typed; otherwise only the exact file name
    /// confirms.
    #[test]
    fn delete_needs_the_typed_name_and_no_protection() {
        let name = "backup_20260101000000.t_backup.tar.gz";
        assert!(delete_refusal(&row(true), name).unwrap().contains("protected"));
        assert!(delete_refusal(&row(false), "yes").unwrap().contains("type the file name"));
        assert!(delete_refusal(&row(false), name).is_none());
    }

    /// Only the login page, the health check and the assets are reachable without a session.
    #[test]
    fn public_paths() {
        for p in ["/login", "/healthz", "/assets/console.js"] {
            assert!(is_public(p), "{p}");
        }
        for p in ["/", "/api/status", "/bundles/1/download", "/loginx", "/assets"] {
            assert!(!is_public(p), "{p}");
        }
    }
}
