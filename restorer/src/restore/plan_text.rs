//! The plan as the operator reads it before typing RESTORE (and `--dry-run` prints): the
//! bundle, each item and what happens to it, what is installed, created and started, the
//! pre-flight findings and what would be refused.

use std::fmt::Write;
use std::path::Path;

use crate::plan::{Action, ItemKind};
use crate::steps;

use super::{Options, Prepared};

impl Prepared {
    /// The plan, as text (several lines, each ending in a newline).
    pub fn render_plan(&self, opts: &Options) -> String {
        let mut out = String::new();
        self.render_header(&mut out);
        self.render_items(&mut out);
        self.render_host(&mut out, opts);
        self.render_services(&mut out, opts);
        self.render_findings(&mut out);
        out
    }

    fn render_header(&self, out: &mut String) {
        let m = &self.manifest;
        let _ = writeln!(
            out,
            "Bundle: {} from {} ({}), created {}",
            m.bundle_name,
            m.source_host.hostname,
            m.source_host.os,
            m.created_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        let _ = writeln!(
            out,
            "Verified: {} entries, {} bytes, every digest matches",
            self.verify.entries_checked, self.verify.bytes_checked
        );
        if self.plan.databases_only {
            let _ = writeln!(
                out,
                "Databases only (--database): only the databases below, under their new names; no file, package, account or service is touched, nothing is started or stopped: the live deployment stays as it is"
            );
        } else {
            let _ = writeln!(out, "Restore root: {}", self.plan.root.display());
        }
    }

    fn render_items(&self, out: &mut String) {
        let _ = writeln!(out, "\nPlan:");
        for i in &self.plan.items {
            let action = match i.action {
                Action::Create => "create",
                Action::Keep => "keep",
                Action::Replace => "REPLACE",
                Action::Refuse => "REFUSED",
            };
            let from = i.from.as_ref().map(|f| format!(" (the bundle's {f})")).unwrap_or_default();
            let kind = format!("{:?}", i.kind).to_lowercase();
            let _ = writeln!(out, "  {action:<8} {kind:<9} {}{from}  [{}]", i.target, i.state);
        }
    }

    /// Accounts to create, the PostgreSQL target, the packages, the Docker steps.
    fn render_host(&self, out: &mut String, opts: &Options) {
        let m = &self.manifest;
        let (users, groups) = steps::accounts::missing(m, &crate::owners::Accounts::system());
        if !users.is_empty() || !groups.is_empty() {
            let _ = writeln!(
                out,
                "\nSystem accounts to create: users [{}], groups [{}]",
                users.join(", "),
                groups.join(", ")
            );
        }
        if let Some(pg) = &self.pg {
            let tool = self.pg_restore.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            let _ = writeln!(out, "\nPostgreSQL target: {} (pg_restore: {tool})", pg.host_port());
        }
        match &self.missing_packages {
            Some(missing) if !missing.is_empty() => match opts.install_skipped() {
                Some(why) => {
                    let _ = writeln!(out, "Packages missing, NOT installed ({why}): {}", missing.join(" "));
                }
                None => {
                    let _ = writeln!(out, "Packages to install: {}", missing.join(" "));
                }
            },
            Some(_) => {
                let _ = writeln!(out, "Packages: all required packages present");
            }
            None if !m.requirements.is_empty() => {
                let _ = writeln!(out, "Packages (cannot check here, no dpkg): {}", m.requirements.join(" "));
            }
            None => {}
        }
        let docker = self.docker_lines();
        if !docker.is_empty() {
            let _ = writeln!(out, "\nDocker:");
            for line in docker {
                let _ = writeln!(out, "  {line}");
            }
        }
    }

    fn render_services(&self, out: &mut String, opts: &Options) {
        let (m, svc) = (&self.manifest, &self.manifest.services);
        if svc.start.is_empty() && svc.health.is_empty() && svc.n8n_url.is_none() {
            return;
        }
        if let Some(why) = opts.services_skipped() {
            let all: Vec<String> = svc.start.iter().chain(&svc.health).chain(&svc.n8n_url).cloned().collect();
            let _ = writeln!(out, "Services NOT started, health checks NOT run ({why}): {}", all.join(", "));
            return;
        }
        if !svc.start.is_empty() {
            let _ = writeln!(out, "Services to start: {}", svc.start.join(", "));
        }
        if !svc.health.is_empty() {
            let _ = writeln!(out, "Health checks after the start: {}", svc.health.join(", "));
        }
        if let (Some(url), Some(n)) = (&svc.n8n_url, &m.n8n) {
            let _ = writeln!(
                out,
                "Then n8n at {url} must serve the bundle's {} workflow(s) through its API",
                n.workflows.len()
            );
        }
    }

    /// Packing's warnings, the pre-flight, what is refused, and the counts.
    fn render_findings(&self, out: &mut String) {
        let m = &self.manifest;
        for w in &m.warnings {
            let _ = writeln!(out, "warning (from packing): {w}");
        }
        if !self.findings.is_empty() {
            let _ = writeln!(out, "\nPre-flight:");
            for f in &self.findings {
                let level = if f.blocker { "BLOCKER" } else { "warning" };
                let _ = writeln!(out, "  {level} {}\n      what to do: {}", f.what, f.fix);
            }
        }
        let (projects, refused): (Vec<_>, Vec<_>) =
            self.plan.refusals().into_iter().partition(|i| i.kind == ItemKind::Compose);
        for i in projects {
            let dir = m.docker.as_ref().and_then(|d| d.compose.get(i.index)).map(|c| c.directory.as_path());
            let _ = writeln!(
                out,
                "\nREFUSED: {}.",
                steps::docker::refusal(&i.target, dir.unwrap_or(Path::new(".")), &i.state)
            );
        }
        if !refused.is_empty() {
            let _ = writeln!(
                out,
                "\n{} item(s) already hold different data and would be refused without --overwrite.",
                refused.len()
            );
        }
        let _ = writeln!(
            out,
            "\n{} to create, {} to keep, {} to replace (kept in a checkpoint).",
            self.plan.count(&Action::Create),
            self.plan.count(&Action::Keep),
            self.plan.count(&Action::Replace)
        );
    }
}
