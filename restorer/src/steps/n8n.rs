//! n8n on restore: safety checks before changing anything (a different encryption key or an
//! older n8n on the target), proof after the restore that the restored key decrypts a restored
//! credential, and taking back one workflow through n8n's public API.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::manifest::{FileContent, Manifest};
use crate::n8n::{
    credential_refs, decrypt_credential, find_key, fingerprint, release_from_compose, version_cmp, WorkflowSummary,
};
use crate::pg::PgTarget;
use crate::steps::validate::Check;
use crate::{layout, Error, Result};

/// Captured config files as they are on the target now (original path, target path).
fn target_configs(manifest: &Manifest, root: &Path) -> Vec<(PathBuf, PathBuf)> {
    manifest
        .files
        .iter()
        .filter(|f| matches!(f.content, FileContent::File { size, .. } if size < 1024 * 1024))
        .filter_map(|f| Some((f.path.clone(), layout::target_path(root, &f.path).ok()?)))
        .collect()
}

/// Reasons the restore must not go on without `--force`: the target already has an n8n key
/// that differs from the bundle's (credentials would not decrypt), or runs an older n8n than
/// the one that wrote the database (n8n's migrations only go forward).
pub fn conflicts(manifest: &Manifest, root: &Path) -> Vec<String> {
    let Some(n8n) = &manifest.n8n else { return Vec::new() };
    let mut out = Vec::new();
    for (original, target) in target_configs(manifest, root) {
        let Ok(text) = std::fs::read_to_string(&target) else { continue };
        if let (Some(key), Some(bundle_fp)) = (find_key(&text), &n8n.encryption_key.fingerprint) {
            let fp = fingerprint(&key);
            if &fp != bundle_fp {
                out.push(format!(
                    "{} on the target holds an n8n encryption key (fingerprint {fp}) different from the bundle's ({bundle_fp}): the restored credentials would not decrypt with it, and n8n refuses to start with mismatching keys",
                    original.display()
                ));
            }
        }
        if let (Some(theirs), Some(ours)) = (release_from_compose(&text), &n8n.release) {
            if version_cmp(&theirs, ours) == std::cmp::Ordering::Less {
                out.push(format!(
                    "{} on the target runs n8n {theirs}, older than the bundle's {ours}: n8n cannot run a database migrated by a newer release",
                    original.display()
                ));
            }
        }
    }
    out
}

/// Where a restore under `root` put the file holding n8n's encryption key.
pub fn key_file_restored(manifest: &Manifest, root: &Path) -> Option<std::path::PathBuf> {
    let found_in = manifest.n8n.as_ref()?.encryption_key.found_in.as_ref()?;
    layout::target_path(root, Path::new(found_in)).ok()
}

/// After the restore: the key in `key_file` (the restored file, or the bundle's copy of it)
/// decrypts a credential of the database restored under `root` (SQLite) or on `pg`. `None` when
/// the bundle has no n8n or no credential.
pub fn validate_credentials(
    manifest: &Manifest,
    root: &Path,
    key_file: Option<&Path>,
    pg: Option<&PgTarget>,
) -> Option<Check> {
    let n8n = manifest.n8n.as_ref()?;
    if n8n.credentials.is_empty() {
        return None;
    }
    let what = "n8n: a restored credential decrypts with the restored key".to_string();
    let fail = |actual: String| Some(Check { check: what.clone(), expected: "decrypts".into(), actual, ok: false });
    let key = key_file.and_then(|p| std::fs::read_to_string(p).ok()).and_then(|t| find_key(&t));
    let Some(key) = key else { return fail("no key in the restored files".into()) };
    let data = query_restored(manifest, root, pg, "SELECT data FROM credentials_entity ORDER BY id LIMIT 1").and_then(
        |rows| rows.into_iter().next().and_then(|r| r.into_iter().next().flatten()).ok_or("no credential".into()),
    );
    match data.map(|d| decrypt_credential(&d, &key)) {
        Ok(Ok(_)) => Some(Check { check: what, expected: "decrypts".into(), actual: "decrypts".into(), ok: true }),
        Ok(Err(e)) => fail(e),
        Err(e) => fail(e),
    }
}

/// Runs `sql` (text columns only) on the restored n8n database, SQLite or PostgreSQL (on `pg`,
/// which may be a container's server). Rows of optional strings; the error is a message.
fn query_restored(
    manifest: &Manifest,
    root: &Path,
    pg: Option<&PgTarget>,
    sql: &str,
) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    let n8n = manifest.n8n.as_ref().ok_or("the bundle has no n8n")?;
    match n8n.database_kind.as_str() {
        "sqlite" => {
            let s = manifest.sqlite.iter().find(|s| s.entry == n8n.database_entry).ok_or("database not in manifest")?;
            let p = layout::target_path(root, &s.path).map_err(|e| e.to_string())?;
            let c = crate::sqlite::open_read_only(&p).map_err(|e| e.to_string())?;
            let mut st = c.prepare(sql).map_err(|e| e.to_string())?;
            let n = st.column_count();
            let rows = st
                .query_map([], |r| (0..n).map(|i| r.get::<_, Option<String>>(i)).collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| e.to_string())?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| e.to_string())
        }
        _ => {
            let d =
                manifest.postgres.iter().find(|d| d.entry == n8n.database_entry).ok_or("database not in manifest")?;
            let pg = pg.ok_or("no PostgreSQL target")?;
            let mut c = pg.with_database(&d.database).connect().map_err(|e| e.to_string())?;
            let rows = c.query(sql, &[]).map_err(|e| crate::error::pg_detail(&e))?;
            Ok(rows.iter().map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect()).collect())
        }
    }
}

/// The public-API keys of the restored database, the likeliest to list workflows first (made
/// for the public API, scopes absent or with `workflow:list`, newest). n8n stores each key as
/// the JWT it hands out, signed with a secret derived from the encryption key: a key the
/// restored n8n accepts proves it runs with the bundle's key, too.
fn restored_api_keys(
    manifest: &Manifest,
    root: &Path,
    pg: Option<&PgTarget>,
) -> std::result::Result<Vec<String>, String> {
    // `audience` and `scopes` came with later n8n releases: older schemas get the plain query.
    let rows = query_restored(
        manifest,
        root,
        pg,
        r#"SELECT "apiKey", CAST(scopes AS TEXT), audience FROM user_api_keys ORDER BY "createdAt" DESC"#,
    )
    .or_else(|_| query_restored(manifest, root, pg, r#"SELECT "apiKey" FROM user_api_keys"#))?;
    let mut keys: Vec<(u8, String)> = rows
        .into_iter()
        .filter_map(|r| {
            let mut it = r.into_iter();
            let key = it.next().flatten()?;
            let scopes = it.next().flatten();
            let audience = it.next().flatten();
            let public = audience.as_deref().is_none_or(|a| a == "public-api");
            let lists = scopes.as_deref().is_none_or(|s| s == "null" || s.contains("workflow:list"));
            Some((u8::from(!public) * 2 + u8::from(!lists), key))
        })
        .collect();
    keys.sort_by_key(|k| k.0); // stable: newest first within a rank
    Ok(keys.into_iter().map(|k| k.1).collect())
}

/// What n8n answered to a listing of its workflows.
enum Listing {
    /// Every workflow id, all pages.
    Served(Vec<String>),
    /// The key was rejected (401/403).
    Rejected,
    /// 404/502/503: n8n answers `/healthz/readiness` a moment before it mounts the public API.
    NotYet(u16),
}

/// Lists the workflows of the n8n at `api` (`…/api/v1`), all pages.
fn served_workflows(api: &str, key: &str) -> Result<Listing> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{api}/workflows?limit=250&cursor={c}"),
            None => format!("{api}/workflows?limit=250"),
        };
        match http("GET", &url, key, None)? {
            (200, body) => {
                let page = body.get("data").and_then(Value::as_array).ok_or_else(|| {
                    Error::Other(format!("{api}/workflows answered without a data list; is this n8n's URL?"))
                })?;
                ids.extend(page.iter().filter_map(|w| w.get("id").and_then(Value::as_str)).map(str::to_string));
                cursor = body.get("nextCursor").and_then(Value::as_str).map(str::to_string);
                if cursor.is_none() {
                    return Ok(Listing::Served(ids));
                }
            }
            (401 | 403, _) => return Ok(Listing::Rejected),
            (code @ (404 | 502 | 503), _) if cursor.is_none() => return Ok(Listing::NotYet(code)),
            (code, _) => return Err(Error::Other(format!("{api}/workflows answered HTTP {code}"))),
        }
    }
}

/// Compares the ids n8n serves with the bundle's workflows. Archived workflows may or may not
/// be listed by the API (it changed between releases): they are neither required nor extra.
pub fn compare_served(expected: &[WorkflowSummary], served: &[String]) -> std::result::Result<String, String> {
    let required: Vec<&WorkflowSummary> = expected.iter().filter(|w| w.archived != Some(true)).collect();
    let missing: Vec<String> =
        required.iter().filter(|w| !served.contains(&w.id)).map(|w| format!("{} ({})", w.id, w.name)).collect();
    let extra: Vec<&String> = served.iter().filter(|id| !expected.iter().any(|w| &w.id == *id)).collect();
    let shown = |v: &[String]| {
        let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 5 {
            s.push_str(&format!(" and {} more", v.len() - 5));
        }
        s
    };
    match (missing.is_empty(), extra.is_empty()) {
        (true, true) => Ok(format!("serves the bundle's {} workflow(s)", required.len())),
        (false, _) => Err(format!(
            "serves {} workflow(s); {} of the bundle's {} are missing: {}",
            served.len(),
            missing.len(),
            required.len(),
            shown(&missing)
        )),
        (true, false) => Err(format!(
            "serves {} workflow(s) the bundle does not hold: {}",
            extra.len(),
            shown(&extra.into_iter().cloned().collect::<Vec<_>>())
        )),
    }
}

/// The content check of `[services] n8n_url`: once n8n is ready (`/healthz/readiness`, tried
/// `tries` times `pause` apart: it migrates first), it must serve exactly the bundle's
/// workflows through its public API. The API key is `operator_key` (the restore's
/// `N8N_API_KEY`), else one of the restored database's own; none there is a failure that says
/// what to do, not a pass on `/healthz` alone.
pub fn serves_workflows(
    manifest: &Manifest,
    root: &Path,
    pg: Option<&PgTarget>,
    base: &str,
    operator_key: Option<String>,
    tries: u32,
    pause: std::time::Duration,
) -> crate::steps::system::Health {
    let base = base.trim_end_matches('/');
    let target = format!("{base} (n8n's workflows)");
    let mut attempts = 0;
    let result = (|| -> std::result::Result<String, String> {
        let expected = &manifest.n8n.as_ref().ok_or("the bundle has no n8n inventory")?.workflows;
        let ready = format!("{base}/healthz/readiness");
        // The plain health check's own retries (a 2xx, tried `tries` times `pause` apart).
        let probe = crate::steps::system::health(std::slice::from_ref(&ready), tries, pause).remove(0);
        attempts = probe.attempts;
        if !probe.ok {
            return Err(format!("{ready} not ready after {attempts} tries: {}", probe.detail));
        }
        let keys = match operator_key.filter(|k| !k.is_empty()) {
            Some(k) => vec![k],
            None => restored_api_keys(manifest, root, pg)
                .map_err(|e| format!("reading the API keys of the restored database: {e}"))?,
        };
        if keys.is_empty() {
            return Err("the restored database holds no n8n API key to ask n8n with: create one in n8n (Settings > n8n API) before the next backup, or set N8N_API_KEY for the restore".into());
        }
        let api = format!("{base}/api/v1");
        // A few keys at most: each rejected one is an answer, not a reason to try them all.
        for key in keys.iter().take(5) {
            loop {
                match served_workflows(&api, key).map_err(|e| e.to_string())? {
                    Listing::Served(served) => return compare_served(expected, &served),
                    Listing::Rejected => break,
                    Listing::NotYet(_) if attempts < tries.max(1) => {
                        attempts += 1;
                        std::thread::sleep(pause);
                    }
                    Listing::NotYet(code) => {
                        return Err(format!("{api}/workflows still answers HTTP {code} after {attempts} tries"))
                    }
                }
            }
        }
        Err(format!(
            "n8n rejected {} API key(s) of the restored database: it does not run with the bundle's encryption key (the keys are signed with it), or the keys lack the workflow:list scope",
            keys.len().min(5)
        ))
    })();
    match result {
        Ok(detail) => crate::steps::system::Health { target, ok: true, attempts, detail },
        Err(detail) => crate::steps::system::Health { target, ok: false, attempts, detail },
    }
}

/// Finds a workflow by id, else by exact name, else by case-insensitive name; an ambiguous
/// name is an error listing the candidates.
pub fn find_workflow<'a>(manifest: &'a Manifest, key: &str) -> Result<&'a WorkflowSummary> {
    let n8n = manifest
        .n8n
        .as_ref()
        .ok_or_else(|| Error::Other("this bundle has no n8n inventory (no database with profile = \"n8n\")".into()))?;
    if let Some(w) = n8n.workflows.iter().find(|w| w.id == key) {
        return Ok(w);
    }
    let exact: Vec<_> = n8n.workflows.iter().filter(|w| w.name == key).collect();
    let loose: Vec<_> = n8n.workflows.iter().filter(|w| w.name.to_lowercase() == key.to_lowercase()).collect();
    let found = if exact.is_empty() { loose } else { exact };
    match found.as_slice() {
        [w] => Ok(w),
        [] => Err(Error::Other(format!(
            "no workflow with id or name {key:?} in this bundle (see `restore list --workflows`)"
        ))),
        many => Err(Error::Other(format!(
            "{} workflows are named {key:?}: {}; use the id",
            many.len(),
            many.iter().map(|w| w.id.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// One exchange with n8n's public API: plain HTTP natively, https through the system's curl
/// (the restore has no TLS stack). The API key travels only in a request header (on curl's
/// stdin for https), never on a command line, and no message here repeats it.
pub fn http(method: &str, url: &str, api_key: &str, body: Option<&Value>) -> Result<(u16, Value)> {
    let body = body.map(|b| serde_json::to_vec(b).expect("serialises"));
    let mut headers = vec![("X-N8N-API-KEY", api_key), ("Accept", "application/json")];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let r = crate::http::fetch(method, url, &headers, body.as_deref(), std::time::Duration::from_secs(30)).map_err(
        |e| match e {
            crate::http::HttpError::NoCurl { .. } => Error::Refused(e.to_string()),
            e => Error::Other(format!("n8n does not answer: {e}")),
        },
    )?;
    let text = String::from_utf8_lossy(&r.body);
    Ok((r.status, serde_json::from_str(&text).unwrap_or(Value::String(text.into_owned()))))
}

/// What `restore workflow --to-n8n` did.
#[derive(Debug, serde::Serialize)]
pub struct Pushed {
    /// The new workflow's id on the target.
    pub id: String,
    /// Its name there.
    pub name: String,
    /// Its editor URL.
    pub url: String,
    /// Activated.
    pub active: bool,
    /// Credentials the workflow references that the target lacks: (name, type).
    pub missing_credentials: Vec<(String, String)>,
    /// Credential references re-pointed by name: (name, type, target id).
    pub mapped_credentials: Vec<(String, String, String)>,
}

/// Creates the workflow `doc` (import shape) in the n8n at `base` under
/// `{name}_backup_{YYYYMMDD}`, inactive unless `activate`.
pub fn push_workflow(
    base: &str,
    api_key: &str,
    doc: &Value,
    date: &str,
    activate: bool,
    map_by_name: bool,
) -> Result<Pushed> {
    let base = base.trim_end_matches('/');
    let api = format!("{base}/api/v1");
    match http("GET", &format!("{api}/workflows?limit=1"), api_key, None)? {
        (200, _) => {}
        (401 | 403, _) => {
            return Err(Error::Refused(format!(
                "the n8n at {base} rejected the API key (create one under Settings > n8n API)"
            )))
        }
        (code, body) => {
            return Err(Error::Other(format!("{api}/workflows answered {code}: {body}; is this n8n's URL?")))
        }
    }
    let (target, listed) = target_credentials(&api, api_key)?;
    let mut nodes = doc.get("nodes").cloned().unwrap_or(Value::Array(vec![]));
    let (mut missing, mapped) = map_credentials(&mut nodes, &target, map_by_name);
    if !listed {
        // What the target lacks cannot be told.
        missing.clear();
    }
    let name = format!("{}_backup_{date}", doc.get("name").and_then(Value::as_str).unwrap_or("workflow"));
    // The public API accepts only these fields on create.
    let mut body = serde_json::json!({
        "name": name,
        "nodes": nodes,
        "connections": doc.get("connections").cloned().unwrap_or(serde_json::json!({})),
        "settings": doc.get("settings").filter(|s| s.is_object()).cloned().unwrap_or(serde_json::json!({})),
    });
    if let Some(sd) = doc.get("staticData").filter(|v| !v.is_null()) {
        body["staticData"] = sd.clone();
    }
    let (code, created) = http("POST", &format!("{api}/workflows"), api_key, Some(&body))?;
    if !(200..300).contains(&code) {
        return Err(Error::Other(format!("creating the workflow in {base} failed ({code}): {created}")));
    }
    let id = created.get("id").and_then(Value::as_str).unwrap_or("").to_string();
    let mut active = false;
    if activate {
        let (code, body) = http("POST", &format!("{api}/workflows/{id}/activate"), api_key, None)?;
        if !(200..300).contains(&code) {
            return Err(Error::Other(format!("workflow {id} was created but activating it failed ({code}): {body}")));
        }
        active = true;
    }
    Ok(Pushed {
        url: format!("{base}/workflow/{id}"),
        id,
        name,
        active,
        missing_credentials: missing,
        mapped_credentials: mapped,
    })
}

/// A credential of the target n8n: (id, name, type).
type TargetCredential = (String, String, String);

/// The target's credentials (id, name, type), every page, and whether all of them were listed
/// (an API key may not be allowed to).
fn target_credentials(api: &str, api_key: &str) -> Result<(Vec<TargetCredential>, bool)> {
    let mut target = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{api}/credentials?limit=250&cursor={c}"),
            None => format!("{api}/credentials?limit=250"),
        };
        let (code, body) = http("GET", &url, api_key, None)?;
        if code != 200 {
            return Ok((target, false));
        }
        for c in body.get("data").and_then(Value::as_array).into_iter().flatten() {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            target.push((s("id"), s("name"), s("type")));
        }
        cursor = body.get("nextCursor").and_then(Value::as_str).map(str::to_string);
        if cursor.is_none() {
            return Ok((target, true));
        }
    }
}

/// The workflow's credential references the target lacks, (name, type); with `map_by_name`
/// those that have a same-named credential of the same type there are re-pointed at it in
/// `nodes` instead, (name, type, target id).
#[expect(clippy::type_complexity, reason = "the two lists of Pushed, as they are reported")]
fn map_credentials(
    nodes: &mut Value,
    target: &[TargetCredential],
    map_by_name: bool,
) -> (Vec<(String, String)>, Vec<(String, String, String)>) {
    let mut missing = Vec::new();
    let mut mapped = Vec::new();
    for (kind, id, name) in credential_refs(nodes) {
        if target.iter().any(|t| t.0 == id && t.2 == kind) {
            continue;
        }
        let same_name = target.iter().find(|t| t.1 == name && t.2 == kind);
        match (map_by_name, same_name) {
            (true, Some(t)) => {
                for node in nodes.as_array_mut().into_iter().flatten() {
                    if let Some(r) = node.get_mut("credentials").and_then(|c| c.get_mut(&kind)) {
                        if r.get("id").and_then(Value::as_str) == Some(id.as_str()) {
                            r["id"] = Value::String(t.0.clone());
                        }
                    }
                }
                mapped.push((name, kind, t.0.clone()));
            }
            _ => missing.push((name, kind)),
        }
    }
    (missing, mapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A scripted n8n stand-in on a real socket: answers the i-th request with `answers[i]`
    /// (status, JSON body) and hands back every request it read (head and body).
    fn scripted(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 8192];
                // Head, then as many body bytes as Content-Length says.
                loop {
                    let n = s.read(&mut buf).unwrap();
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .map(|v| v.trim().parse::<usize>().unwrap())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                seen.push(String::from_utf8_lossy(&req).into_owned());
                let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                s.write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        (base, h)
    }

    /// --to-n8n over http:// needs no curl: the workflow is created through n8n's public API
    /// with the key in the X-N8N-API-KEY header, under NAME_backup_DATE.
    #[test]
    fn pushes_a_workflow_over_plain_http() {
        let (base, h) = scripted(vec![
            (200, r#"{"data":[]}"#),
            (200, r#"{"data":[],"nextCursor":null}"#),
            (200, r#"{"id":"new1","name":"Flow_backup_20260101"}"#),
        ]);
        let doc = serde_json::json!({"name": "Flow", "nodes": [], "connections": {}});
        let pushed = push_workflow(&base, "secret-key-123", &doc, "20260101", false, false).unwrap();
        assert_eq!((pushed.id.as_str(), pushed.name.as_str()), ("new1", "Flow_backup_20260101"));
        let seen = h.join().unwrap();
        assert!(seen[0].starts_with("GET /api/v1/workflows?limit=1 HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(seen.iter().all(|r| r.contains("\r\nX-N8N-API-KEY: secret-key-123\r\n")), "{seen:?}");
        assert!(seen[2].starts_with("POST /api/v1/workflows HTTP/1.1\r\n"), "{}", seen[2]);
        assert!(
            seen[2].contains("Content-Type: application/json") && seen[2].contains(r#""name":"Flow_backup_20260101""#)
        );
    }

    fn n8n_manifest(root: &Path, workflows: &[(&str, Option<bool>)]) -> Manifest {
        let wf: Vec<Value> = workflows
            .iter()
            .map(|(id, archived)| {
                serde_json::json!({"id": id, "name": format!("W {id}"), "active": false, "archived": archived,
                    "created_at": "", "updated_at": "", "nodes": 0, "node_types": [], "tags": [],
                    "checksum": "", "entry": format!("n8n/workflows/{id}.json")})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "format_version": crate::layout::FORMAT_VERSION, "created_by": "test", "created_at": "2026-01-01T00:00:00Z",
            "bundle_name": "t", "source_host": {"hostname": "h", "os": "o", "arch": "a"},
            "sqlite": [{"name": "n8n", "entry": "databases/n8n.sqlite", "path": "/n8n/database.sqlite",
                "owner": "root", "group": "root", "uid": 0, "gid": 0, "mode": 384, "mtime": 0,
                "size": 0, "sha256": "", "tables": []}],
            "n8n": {"database_entry": "databases/n8n.sqlite", "database_kind": "sqlite",
                "encryption_key": {}, "workflows": wf, "credentials": []},
        }))
        .map(|mut m: Manifest| {
            // A real SQLite database where the restore put it, holding one API key.
            let path = root.join("n8n/database.sqlite");
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                r#"CREATE TABLE user_api_keys (id TEXT, "userId" TEXT, label TEXT, "apiKey" TEXT, "createdAt" TEXT,
                       scopes TEXT, audience TEXT);
                   INSERT INTO user_api_keys VALUES ('1', 'u', 'mcp', 'key-mcp', '2026-02-01', NULL, 'mcp-server-api');
                   INSERT INTO user_api_keys VALUES ('2', 'u', 'old', 'key-old', '2025-01-01', '["workflow:list"]', 'public-api');
                   INSERT INTO user_api_keys VALUES ('3', 'u', 'ro', 'key-creds', '2026-01-01', '["credential:list"]', 'public-api');"#,
            )
            .unwrap();
            m.services.n8n_url = Some("x".into());
            m
        })
        .unwrap()
    }

    /// The content check asks n8n with the restored database's own public-API key that can list
    /// workflows (not a newer MCP key, nor one without the scope), follows the cursor, and passes
    /// when n8n serves the bundle's workflows; an archived one may be absent.
    #[test]
    fn n8n_check_lists_workflows_with_the_restored_databases_key() {
        let root = tempfile::tempdir().unwrap();
        let m = n8n_manifest(root.path(), &[("a", None), ("b", Some(false)), ("z", Some(true))]);
        let (base, h) = scripted(vec![
            (503, r#"{"status":"error"}"#),
            (200, r#"{"status":"ok"}"#),
            (404, r#"{"message":"not found"}"#),
            (200, r#"{"data":[{"id":"a"}],"nextCursor":"c1"}"#),
            (200, r#"{"data":[{"id":"b"}],"nextCursor":null}"#),
        ]);
        let r = serves_workflows(&m, root.path(), None, &base, None, 4, std::time::Duration::ZERO);
        let seen = h.join().unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!(r.detail, "serves the bundle's 2 workflow(s)");
        assert!(seen[0].starts_with("GET /healthz/readiness "), "{}", seen[0]);
        // The 404 of a public API not mounted yet is waited out, not a failure.
        assert!(
            seen[3].starts_with("GET /api/v1/workflows?limit=250 ") && seen[3].contains("X-N8N-API-KEY: key-old\r\n")
        );
        assert!(seen[4].starts_with("GET /api/v1/workflows?limit=250&cursor=c1 "), "{}", seen[4]);
    }

    /// A workflow of the bundle that n8n does not serve fails the check and is named; so does
    /// one n8n serves that the bundle never held.
    #[test]
    fn n8n_check_fails_on_a_missing_or_foreign_workflow() {
        let root = tempfile::tempdir().unwrap();
        let m = n8n_manifest(root.path(), &[("a", None), ("b", None)]);
        let (base, h) = scripted(vec![(200, "{}"), (200, r#"{"data":[{"id":"a"}]}"#)]);
        let r = serves_workflows(&m, root.path(), None, &base, Some("op-key".into()), 1, std::time::Duration::ZERO);
        let seen = h.join().unwrap();
        assert!(!r.ok && r.detail.contains("1 of the bundle's 2 are missing: b (W b)"), "{r:?}");
        assert!(seen[1].contains("X-N8N-API-KEY: op-key\r\n"), "the operator's key goes first: {}", seen[1]);
        let wf = &m.n8n.as_ref().unwrap().workflows;
        let e = compare_served(wf, &["a".into(), "b".into(), "x".into()]).unwrap_err();
        assert!(e.contains("1 workflow(s) the bundle does not hold: x"), "{e}");
    }

    /// Every key rejected (n8n signs them with its encryption key): a failure that says so,
    /// never repeating a key; and n8n never ready is a failure after the tries, not a pass.
    #[test]
    fn n8n_check_fails_when_every_key_is_rejected_or_n8n_never_gets_ready() {
        let root = tempfile::tempdir().unwrap();
        let m = n8n_manifest(root.path(), &[("a", None)]);
        let (base, h) = scripted(vec![(200, "{}"), (401, "{}"), (401, "{}"), (401, "{}")]);
        let r = serves_workflows(&m, root.path(), None, &base, None, 1, std::time::Duration::ZERO);
        h.join().unwrap();
        assert!(!r.ok && r.detail.contains("rejected 3 API key(s)") && r.detail.contains("encryption key"), "{r:?}");
        assert!(!r.detail.contains("key-old") && !r.detail.contains("key-mcp"), "{r:?}");
        let (base, h) = scripted(vec![(503, "{}"), (503, "{}")]);
        let r = serves_workflows(&m, root.path(), None, &base, None, 2, std::time::Duration::ZERO);
        h.join().unwrap();
        assert!(!r.ok && r.attempts == 2 && r.detail.contains("not ready after 2 tries: HTTP 503"), "{r:?}");
    }

    /// A rejected key is refused with what to do, and the key itself never appears in the error.
    #[test]
    fn rejected_key_is_named_but_never_printed() {
        let (base, h) = scripted(vec![(401, r#"{"message":"unauthorized"}"#)]);
        let doc = serde_json::json!({"name": "Flow"});
        let e = push_workflow(&base, "secret-key-123", &doc, "20260101", false, false).unwrap_err().to_string();
        h.join().unwrap();
        assert!(e.contains("rejected the API key") && !e.contains("secret-key-123"), "{e}");
    }
}
