//! The console's pages: plain functions from the library's data to HTML, every value escaped.
//! No secret reaches them: the manifest holds none (credentials are id, name and type), and the
//! configuration is shown only through the retention policy's numbers.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use restorer::manifest::Manifest;
use restorer::n8n::{N8nInfo, WorkflowSummary};

use super::jobs::JobView;
use crate::catalog::{BundleRow, BundleStatus, VerifyDepth};
use crate::config::RetentionSection;
use crate::job::{PruneAction, PruneLine};
use crate::status::{RunInfo, Status};
use crate::units::{human_duration, human_size};

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A POST form of one button; every action form carries the session's CSRF token.
pub fn button(action: &str, label: &str, csrf: &str, extra: &str, class: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{extra}<button class=\"{class}\">{}</button></form>",
        esc(action),
        esc(csrf),
        esc(label)
    )
}

/// The page around a body: navigation, the logout form, messages.
pub fn layout(title: &str, csrf: Option<&str>, flash: &[(bool, String)], body: &str) -> String {
    let nav = match csrf {
        Some(c) => format!(
            "<nav><a href=\"/\">Dashboard</a><a href=\"/bundles\">Bundles</a><a href=\"/retention\">Retention</a><a href=\"/job\">Job</a>{}</nav>",
            button("/logout", "Log out", c, "", "link")
        ),
        None => String::new(),
    };
    let mut msgs = String::new();
    for (ok, m) in flash {
        let _ = write!(msgs, "<p class=\"flash {}\" role=\"status\">{}</p>", if *ok { "ok" } else { "bad" }, esc(m));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · packer</title><link rel=\"stylesheet\" href=\"/assets/console.css\"><script src=\"/assets/console.js\" defer></script></head>\
         <body><header><strong>packer</strong> console{nav}</header><main><h1>{}</h1>{msgs}{body}</main></body></html>\n",
        esc(title),
        esc(title)
    )
}

/// The login form; `login_csrf` is echoed from its cookie.
pub fn login(login_csrf: &str, token_file: Option<&str>, error: Option<&str>) -> String {
    let hint = match token_file {
        Some(p) => format!("<p class=\"hint\">Log in with the token in <code>{}</code> (readable by root only), or set <code>[serve] password_hash</code>.</p>", esc(p)),
        None => "<p class=\"hint\">Log in with the console password (<code>[serve] password_hash</code>).</p>".into(),
    };
    let err = error.map(|e| format!("<p class=\"flash bad\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default();
    format!(
        "{err}<form method=\"post\" action=\"/login\" class=\"login\"><input type=\"hidden\" name=\"login_csrf\" value=\"{}\">\
         <label>Password or token <input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"current-password\" autofocus required></label>\
         <button id=\"login\">Log in</button></form>{hint}",
        esc(login_csrf)
    )
}

fn ago(r: &RunInfo) -> String {
    format!("{} ({} ago)", time(r.time), human_duration(chrono::Duration::seconds(r.age_seconds)))
}

/// The dashboard: what `packer status` says, and the back-up-now button.
pub fn dashboard(s: &Status, alert_after: Option<chrono::Duration>, csrf: &str) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<p class=\"health {}\" id=\"health\">{}</p>",
        if s.healthy { "ok" } else { "bad" },
        if s.healthy { "OK: nothing needs attention" } else { "ATTENTION" }
    );
    if !s.alerts.is_empty() {
        b.push_str("<ul class=\"alerts\">");
        for a in &s.alerts {
            let _ = write!(b, "<li>{}</li>", esc(a));
        }
        b.push_str("</ul>");
    }
    b.push_str(&button("/backup", "Back up now", csrf, "", "primary"));
    b.push_str("<table class=\"kv\">");
    let mut row = |k: &str, v: String, class: &str| {
        let _ = write!(b, "<tr><th>{}</th><td class=\"{class}\">{v}</td></tr>", esc(k));
    };
    match &s.last_success {
        Some(r) => {
            let late = alert_after.is_some_and(|l| r.age_seconds > l.num_seconds());
            row(
                "Last success",
                format!("{} {}", esc(&ago(r)), esc(r.bundle.as_deref().unwrap_or(""))),
                if late { "bad" } else { "ok" },
            )
        }
        None => row("Last success", "never".into(), "bad"),
    }
    if let Some(r) = &s.last_failure {
        row("Last failure", format!("{}: {}", esc(&ago(r)), esc(r.error.as_deref().unwrap_or(""))), "bad");
    }
    row("Next run", s.next_run.map(time).unwrap_or_else(|| "no [schedule] cron".into()), "");
    let limit = s.max_total_size.map(|m| format!(" of max {}", human_size(m))).unwrap_or_default();
    row("Bundles", format!("<a href=\"/bundles\">{}</a> ({}{limit})", s.bundles, human_size(s.total_size)), "");
    if let (Some(f), Some(t)) = (s.free_space, s.disk_size) {
        row(
            "Free space",
            format!("{} of {} ({:.0}%)", human_size(f), human_size(t), f as f64 * 100.0 / t.max(1) as f64),
            "",
        );
    }
    row(
        "Pending deletion",
        if s.pending_deletions.is_empty() { "none".into() } else { esc(&s.pending_deletions.join(", ")) },
        if s.pending_deletions.is_empty() { "" } else { "warn" },
    );
    if !s.missing.is_empty() {
        row("Missing from disk", esc(&s.missing.join(", ")), "bad");
    }
    match &s.last_verification {
        Some(v) => row(
            "Last verification",
            format!(
                "{} {} {}",
                esc(&ago(v)),
                esc(v.bundle.as_deref().unwrap_or("")),
                if v.error.is_some() { "FAILED" } else { "ok" }
            ),
            if v.error.is_some() { "bad" } else { "ok" },
        ),
        None => row("Last verification", "never".into(), ""),
    }
    match &s.last_shipped {
        Some(r) => row("Last shipped", format!("{} {}", esc(&ago(r)), esc(r.bundle.as_deref().unwrap_or(""))), ""),
        None => row("Last shipped", "never (see [ship])".into(), ""),
    }
    row("Output directory", format!("<code>{}</code>", esc(&s.output_dir.display().to_string())), "");
    b.push_str("</table>");
    b
}

fn verified(r: &BundleRow) -> String {
    match (r.verified_at, r.verify_ok) {
        (Some(t), Some(ok)) => format!(
            "<span class=\"{}\">{} {}</span> {}",
            if ok { "ok" } else { "bad" },
            if ok { "ok" } else { "FAILED" },
            esc(r.verify_depth.map(VerifyDepth::as_str).unwrap_or("")),
            t.format("%Y-%m-%d %H:%M")
        ),
        _ => "-".into(),
    }
}

fn source(r: &BundleRow) -> String {
    format!("{:?}", r.source).to_lowercase()
}

/// The bundles, newest first, with their actions.
pub fn bundles(rows: &[BundleRow], csrf: &str) -> String {
    let mut b = String::new();
    b.push_str(&button("/backup", "Back up now", csrf, "", "primary"));
    b.push_str("<table class=\"list\" id=\"bundles\"><thead><tr><th>ID</th><th>Created (UTC)</th><th>Size</th><th>Source</th><th>Status</th><th>Protected</th><th>Verified</th><th>File</th><th>Actions</th></tr></thead><tbody>");
    for r in rows {
        let id = r.id;
        let mut actions = String::new();
        if r.status != BundleStatus::Missing {
            actions += &button(
                &format!("/bundles/{id}/verify"),
                "Verify",
                csrf,
                "<input type=\"hidden\" name=\"depth\" value=\"digest\">",
                "",
            );
            actions += &if r.protected {
                button(&format!("/bundles/{id}/unprotect"), "Unprotect", csrf, "", "")
            } else {
                button(&format!("/bundles/{id}/protect"), "Protect", csrf, "", "")
            };
            if r.status == BundleStatus::PendingDeletion {
                actions += &button(&format!("/bundles/{id}/keep"), "Keep", csrf, "", "");
            }
            let _ = write!(actions, "<a class=\"button\" href=\"/bundles/{id}/download\">Download</a>");
        }
        let _ = write!(
            b,
            "<tr data-id=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td><a href=\"/bundles/{id}\">{}</a></td><td>{actions}</td></tr>",
            r.created.format("%Y-%m-%d %H:%M:%S"),
            human_size(r.size),
            source(r),
            if r.status == BundleStatus::Ok { "" } else { "warn" },
            esc(r.status.as_str()),
            if r.protected { "yes" } else { "" },
            verified(r),
            esc(&r.file_name),
        );
    }
    let total: u64 = rows.iter().filter(|r| r.status != BundleStatus::Missing).map(|r| r.size).sum();
    let _ = write!(b, "</tbody></table><p>{} bundle(s), {}</p>", rows.len(), human_size(total));
    b
}

/// What the workflow search on a bundle's page asked for.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct WorkflowQuery {
    /// Name, id, tag or node type contains this.
    #[serde(default)]
    pub search: Option<String>,
    /// Only active ones ("on" from the checkbox).
    #[serde(default)]
    pub active: Option<String>,
}

impl WorkflowQuery {
    /// The search text, None when empty.
    pub fn text(&self) -> Option<&str> {
        self.search.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    /// The active filter.
    pub fn active_only(&self) -> bool {
        self.active.as_deref().is_some_and(|a| !a.is_empty() && a != "false")
    }
}

/// A word for a POSIX shell: as is when it is made of safe characters, else single-quoted.
fn sh(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@=,".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The commands that restore this bundle on a new host, from its file on this one.
pub fn restore_commands(out_dir: &str, file_name: &str, id: i64) -> String {
    let stem = file_name.trim_end_matches(".tar.gz");
    let out_dir = sh(out_dir.trim_end_matches('/'));
    format!(
        "# on this host: copy the bundle and its checksum to the new host\n\
         scp {out_dir}/{file_name} {out_dir}/{file_name}.sha256 root@NEW-HOST:/root/\n\
         # (or in one step, checked there: packer ship {id} root@NEW-HOST:/root/restore --extract)\n\
         # on the new host, as root\n\
         cd /root && sha256sum -c {file_name}.sha256\n\
         mkdir {stem} && tar xzf {file_name} -C {stem} && cd {stem}\n\
         ./restore verify      # every entry's digest\n\
         ./restore --dry-run   # the plan; changes nothing\n\
         ./restore             # asks you to type RESTORE (--yes for scripts)\n"
    )
}

/// One bundle: its row, actions, restore commands and inventory.
pub fn bundle(r: &BundleRow, m: &Manifest, q: &WorkflowQuery, out_dir: &str, csrf: &str) -> String {
    let id = r.id;
    let mut b = String::new();
    b.push_str("<table class=\"kv\" id=\"summary\">");
    for (k, v) in [
        ("File", format!("<code>{}</code>", esc(&r.file_name))),
        ("Created", time(r.created)),
        ("Size", format!("{} ({} bytes)", human_size(r.size), r.size)),
        ("sha256", format!("<code id=\"sha256\">{}</code>", esc(&r.sha256))),
        ("Source", source(r)),
        ("Status", esc(r.status.as_str())),
        (
            "Protected",
            if r.protected {
                "<span id=\"protected\">yes</span>".into()
            } else {
                "<span id=\"protected\">no</span>".into()
            },
        ),
        ("Verified", format!("<span id=\"verified\">{}</span>", verified(r))),
        ("Host", esc(&format!("{} ({}, {})", m.source_host.hostname, m.source_host.os, m.source_host.arch))),
        ("Made by", esc(&m.created_by)),
    ] {
        let _ = write!(b, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    b.push_str("</table><section class=\"actions\"><h2>Actions</h2>");
    if r.status != BundleStatus::Missing {
        b += &button(
            &format!("/bundles/{id}/verify"),
            "Verify digests",
            csrf,
            "<input type=\"hidden\" name=\"depth\" value=\"digest\">",
            "",
        );
        b += &button(
            &format!("/bundles/{id}/verify"),
            "Verify deep (restore into a throwaway server)",
            csrf,
            "<input type=\"hidden\" name=\"depth\" value=\"deep\">",
            "",
        );
        b += &if r.protected {
            button(&format!("/bundles/{id}/unprotect"), "Unprotect", csrf, "", "")
        } else {
            button(&format!("/bundles/{id}/protect"), "Protect", csrf, "", "")
        };
        if r.status == BundleStatus::PendingDeletion {
            b += &button(&format!("/bundles/{id}/keep"), "Keep (cancel the pending deletion)", csrf, "", "");
        }
        let _ = write!(
            b,
            "<a class=\"button\" id=\"download\" href=\"/bundles/{id}/download\">Download ({})</a>",
            human_size(r.size)
        );
    }
    let field = format!(
        "<label>Type the file name to delete it: <input name=\"confirm\" id=\"confirm\" data-expected=\"{}\" autocomplete=\"off\"></label>",
        esc(&r.file_name)
    );
    b += &button(&format!("/bundles/{id}/delete"), "Delete", csrf, &field, "danger");
    if r.protected {
        b.push_str("<p class=\"hint\">Protected: delete is refused until you unprotect it.</p>");
    }
    let _ = write!(
        b,
        "</section><section><h2>Restore on a new host</h2><pre id=\"restore\">{}</pre></section>",
        esc(&restore_commands(out_dir, &r.file_name, id))
    );
    inventory(&mut b, m, q, id);
    b
}

/// The bundle's inventory: databases, files, n8n, and services, requirements and notes.
fn inventory(b: &mut String, m: &Manifest, q: &WorkflowQuery, id: i64) {
    databases(b, m);
    files(b, m);
    if let Some(n) = &m.n8n {
        n8n(b, n, q, id);
    }
    notes(b, m);
}

fn databases(b: &mut String, m: &Manifest) {
    b.push_str("<section><h2>Databases</h2>");
    if m.postgres.is_empty() && m.sqlite.is_empty() {
        b.push_str("<p>none</p>");
    }
    for d in &m.postgres {
        let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
        let _ = write!(
            b,
            "<h3>PostgreSQL {} → database {}</h3><p>owner {}, {}, server {}, {}; dump {}: {} tables, {rows} rows</p>",
            esc(&d.name),
            esc(&d.database),
            esc(&d.owner),
            esc(&d.encoding),
            esc(&d.server_version),
            esc(&d.pg_dump_version),
            human_size(d.size),
            d.tables.len()
        );
        tables(b, d.tables.iter().map(|t| (t.qualified(), t.rows)));
    }
    for d in &m.sqlite {
        let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
        let _ = write!(
            b,
            "<h3>SQLite {}</h3><p><code>{}</code>, {}: {} tables, {rows} rows</p>",
            esc(&d.name),
            esc(&d.path.display().to_string()),
            human_size(d.size),
            d.tables.len()
        );
        tables(b, d.tables.iter().map(|t| (t.qualified(), t.rows)));
    }
    b.push_str("</section>");
}

fn files(b: &mut String, m: &Manifest) {
    let _ = write!(b, "<section><h2>Files ({})</h2>", m.files.len());
    if !m.files.is_empty() {
        b.push_str("<table class=\"list\"><thead><tr><th>Kind</th><th>Mode</th><th>Owner</th><th>Size</th><th>Path</th></tr></thead><tbody>");
        for f in &m.files {
            let (owner, what) = (restorer::inventory::owner(&f.meta), restorer::inventory::content(&f.content, "→"));
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{:04o}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                f.kind.folder(),
                f.meta.mode,
                esc(&owner),
                esc(&what),
                esc(&f.path.display().to_string())
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");
}

/// n8n's facts, its workflows (searchable) and its credentials (names and types only).
fn n8n(b: &mut String, n: &N8nInfo, q: &WorkflowQuery, id: i64) {
    let key = match (&n.encryption_key.fingerprint, n.encryption_key.proven) {
        (Some(f), true) => format!("{} (proven)", esc(f)),
        (Some(f), false) => format!("{} (not proven: no credential to test)", esc(f)),
        _ => "<span class=\"bad\">MISSING: credentials will not be readable after a restore</span>".into(),
    };
    let _ = write!(
        b,
        "<section id=\"n8n\"><h2>n8n</h2><table class=\"kv\"><tr><th>Database</th><td>{} in {}</td></tr><tr><th>Schema</th><td>{} ({} migrations)</td></tr>\
         <tr><th>Release</th><td>{}</td></tr><tr><th>Encryption key fingerprint</th><td id=\"key\">{key}</td></tr>\
         <tr><th>Workflows</th><td>{} ({} active)</td></tr><tr><th>Credentials</th><td>{}</td></tr></table>",
        esc(&n.database_kind),
        esc(&n.database_entry),
        esc(n.schema_level.as_deref().unwrap_or("?")),
        n.migrations,
        esc(n.release.as_deref().unwrap_or("unknown")),
        n.workflows.len(),
        n.workflows.iter().filter(|w| w.active).count(),
        n.credentials.len()
    );
    let list = restorer::n8n::filter_workflows(n, q.text(), q.active_only());
    let _ = write!(
        b,
        "<h3>Workflows</h3><form method=\"get\" action=\"/bundles/{id}#n8n\" class=\"search\"><input type=\"search\" name=\"search\" id=\"search\" value=\"{}\" placeholder=\"name, id, tag or node type\">\
         <label><input type=\"checkbox\" name=\"active\" id=\"active\" {}> active only</label><button id=\"search-button\">Search</button></form>",
        esc(q.text().unwrap_or("")),
        if q.active_only() { "checked" } else { "" }
    );
    workflows(b, &list);
    b.push_str("<h3>Credentials</h3><p class=\"hint\">Names and types only: the encrypted data is never shown.</p><table class=\"list\" id=\"credentials\"><thead><tr><th>ID</th><th>Name</th><th>Type</th><th>Updated</th></tr></thead><tbody>");
    for c in &n.credentials {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.id),
            esc(&c.name),
            esc(&c.kind),
            esc(&c.updated_at)
        );
    }
    b.push_str("</tbody></table></section>");
}

fn notes(b: &mut String, m: &Manifest) {
    if !m.services.start.is_empty() || !m.requirements.is_empty() || !m.notes.is_empty() || !m.warnings.is_empty() {
        b.push_str("<section><h2>Services, requirements, notes</h2><ul>");
        if !m.services.start.is_empty() {
            let _ = write!(b, "<li>Services: {}</li>", esc(&m.services.start.join(", ")));
        }
        if !m.requirements.is_empty() {
            let _ = write!(b, "<li>Requirements: {}</li>", esc(&m.requirements.join(" ")));
        }
        for n in &m.notes {
            let _ = write!(b, "<li>note: {}</li>", esc(n));
        }
        for w in &m.warnings {
            let _ = write!(b, "<li class=\"warn\">warning: {}</li>", esc(w));
        }
        b.push_str("</ul></section>");
    }
}

fn tables(b: &mut String, rows: impl Iterator<Item = (String, u64)>) {
    b.push_str("<table class=\"list\"><thead><tr><th>Table</th><th>Rows</th></tr></thead><tbody>");
    for (t, n) in rows {
        let _ = write!(b, "<tr><td>{}</td><td class=\"num\">{n}</td></tr>", esc(&t));
    }
    b.push_str("</tbody></table>");
}

fn workflows(b: &mut String, list: &[&WorkflowSummary]) {
    let _ = write!(
        b,
        "<p id=\"workflow-count\">{} workflow(s)</p><table class=\"list\" id=\"workflows\"><thead><tr><th>ID</th><th>Name</th><th>Active</th><th>Nodes</th><th>Node types</th><th>Tags</th><th>Updated</th></tr></thead><tbody>",
        list.len()
    );
    for w in list {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"wf-name\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.id),
            esc(&w.name),
            if w.active { "yes" } else { "" },
            w.nodes,
            esc(&w.node_types.join(", ")),
            esc(&w.tags.join(", ")),
            esc(&w.updated_at)
        );
    }
    b.push_str("</tbody></table>");
}

/// The retention policy and what it would do at `at`.
pub fn retention(policy: &RetentionSection, lines: &[PruneLine], at: DateTime<Utc>, at_text: &str) -> String {
    let mut b = String::from("<h2>Policy ([retention])</h2><table class=\"kv\" id=\"policy\">");
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for (k, v) in [
        ("keep_last", policy.keep_last.to_string()),
        ("keep_hourly", policy.keep_hourly.to_string()),
        ("keep_daily", policy.keep_daily.to_string()),
        ("keep_weekly", policy.keep_weekly.to_string()),
        ("keep_monthly", policy.keep_monthly.to_string()),
        ("keep_yearly", policy.keep_yearly.to_string()),
        ("keep_within", opt(policy.keep_within.clone())),
        ("max_age_days", opt(policy.max_age_days.map(|d| d.to_string()))),
        ("max_total_size", opt(policy.max_total_size.clone())),
        ("min_free_space_percent", opt(policy.min_free_space_percent.map(|p| p.to_string()))),
        ("notify_before_hours", opt(policy.notify_before_hours.map(|h| h.to_string()))),
    ] {
        let _ = write!(b, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    let _ = write!(
        b,
        "</table><h2>Preview</h2><form method=\"get\" action=\"/retention\" class=\"search\"><label>As if it were (RFC 3339) <input name=\"at\" id=\"at\" value=\"{}\" placeholder=\"2027-03-01T00:00:00Z\"></label><button>Preview</button></form>\
         <p>What <code>packer prune</code> would do at {} (nothing is changed here):</p>\
         <table class=\"list\" id=\"preview\"><thead><tr><th>ID</th><th>Created</th><th>Size</th><th>Protected</th><th>Action</th><th>Why</th></tr></thead><tbody>",
        esc(at_text),
        time(at)
    );
    for l in lines {
        let class = if l.action == PruneAction::Keep { "ok" } else { "bad" };
        let _ = write!(
            b,
            "<tr data-id=\"{}\"><td><a href=\"/bundles/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=\"action {class}\">{}</td><td>{}</td></tr>",
            l.bundle.id,
            l.bundle.id,
            l.bundle.id,
            l.bundle.created.format("%Y-%m-%d %H:%M"),
            human_size(l.bundle.size),
            if l.bundle.protected { "yes" } else { "" },
            esc(l.action.as_str()),
            esc(&l.decision.reasons.join("; "))
        );
    }
    let gone = lines.iter().filter(|l| l.action != PruneAction::Keep).count();
    let _ = write!(b, "</tbody></table><p>{} kept, {gone} would go</p>", lines.len() - gone);
    b
}

/// The job page: filled and refreshed by console.js from /api/job.
pub fn job(v: &JobView) -> String {
    let state = if v.id == 0 {
        "no job started from this console yet".to_string()
    } else if v.running {
        format!("{} running", v.kind)
    } else if v.ok == Some(true) {
        format!("{} finished: ok", v.kind)
    } else {
        format!("{} FAILED", v.kind)
    };
    let link = match (v.running, v.bundle_id) {
        (false, Some(id)) => format!("<a href=\"/bundles/{id}\" id=\"job-bundle\">open bundle {id}</a>"),
        _ => String::new(),
    };
    format!(
        "<section id=\"job\" data-running=\"{}\"><p id=\"job-state\">{}</p><p id=\"job-step\">{}</p><progress id=\"job-bar\" max=\"100\" value=\"0\"></progress>\
         <p id=\"job-outcome\">{}</p><p id=\"job-link\">{link}</p><pre id=\"job-log\">{}</pre></section>",
        v.running,
        esc(&state),
        esc(if v.running { &v.step } else { "" }),
        esc(v.outcome.as_deref().unwrap_or("")),
        esc(&v.log.join("\n"))
    )
}

/// An error page's body.
pub fn error(message: &str) -> String {
    format!("<p class=\"flash bad\" role=\"alert\">{}</p><p><a href=\"/\">Back to the dashboard</a></p>", esc(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Markup in data (a workflow named like a script) comes out inert.
    #[test]
    fn escapes_everything_that_could_be_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        let page = layout("<b>", Some("tok\"en"), &[(false, "<i>bad</i>".into())], "");
        assert!(!page.contains("<b>") && !page.contains("<i>bad") && page.contains("tok&quot;en"));
    }

    /// Every action form carries the CSRF token.
    #[test]
    fn forms_carry_the_csrf_token() {
        let f = button("/bundles/3/protect", "Protect", "T0KEN", "", "");
        assert!(f.contains("method=\"post\"") && f.contains("name=\"csrf\" value=\"T0KEN\""));
    }

    /// The restore commands name the bundle, check its sidecar and stop at a dry run first.
    #[test]
    fn restore_commands_check_then_dry_run() {
        let c = restore_commands("/var/backups/n8n", "backup_20260101000000.x_backup.tar.gz", 4);
        let check = c.find("sha256sum -c backup_20260101000000.x_backup.tar.gz.sha256").unwrap();
        let dry = c.find("./restore --dry-run").unwrap();
        assert!(check < dry && c.contains("packer ship 4 ") && c.contains("mkdir backup_20260101000000.x_backup &&"));
        // An output directory with a space or a quote stays one word.
        let c = restore_commands("/srv/my backups/it's", "b.tar.gz", 1);
        assert!(c.contains("scp '/srv/my backups/it'\\''s'/b.tar.gz "), "{c}");
    }

    /// The checkbox's "on" means active only; an empty search means none.
    #[test]
    fn workflow_query() {
        let q = WorkflowQuery { search: Some("  ".into()), active: Some("on".into()) };
        assert!(q.text().is_none() && q.active_only());
        assert!(!WorkflowQuery::default().active_only());
    }
}
