//! `packer show`: the inventory of a bundle, from the catalog when it knows the bundle, else
//! from the bundle's head (manifest.json is the first entry): instant whatever the size.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use restorer::manifest::{FileContent, Manifest};

use crate::config::Config;
use crate::units::human_size;

/// `packer show ID|FILE`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A catalog id, a bundle file name in output_dir, or a path to any bundle file.
    pub bundle: String,
    /// Print the manifest (or, with --workflows/--credentials, those lists) as JSON.
    #[arg(long)]
    pub json: bool,
    /// List n8n workflows (id, active, archived, nodes, updated, tags, name).
    #[arg(long)]
    pub workflows: bool,
    /// With --workflows: only those whose name, id, tag or node type contains TEXT.
    #[arg(long, value_name = "TEXT", requires = "workflows")]
    pub search: Option<String>,
    /// With --workflows: only active ones.
    #[arg(long, requires = "workflows")]
    pub active: bool,
    /// List n8n credentials (id, type, name; never secrets) and the encryption key's status.
    #[arg(long, conflicts_with = "workflows")]
    pub credentials: bool,
}

/// Finds the manifest: a path to a file first, else the catalog of the configuration.
pub fn manifest_of(key: &str, config: &Path) -> Result<Manifest> {
    let p = Path::new(key);
    if p.is_file() {
        return Ok(restorer::unpack::read_manifest(p)?);
    }
    let cfg = Config::load(config)?;
    let (catalog, _) = crate::catalog::Catalog::open(&cfg.bundle.output_dir)?;
    catalog.reconcile()?;
    let row = crate::job::find(&catalog, key)?;
    catalog.manifest(row.id)
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<()> {
    let m = manifest_of(&args.bundle, config)?;
    if args.workflows || args.credentials {
        let info = m
            .n8n
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this bundle has no n8n inventory (no database with profile = \"n8n\")"))?;
        if args.workflows {
            let list = restorer::n8n::filter_workflows(info, args.search.as_deref(), args.active);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", restorer::n8n::render_workflows(&list));
            }
        } else if args.json {
            println!("{}", serde_json::to_string_pretty(&info.credentials)?);
        } else {
            print!("{}", restorer::n8n::render_credentials(info));
        }
        return Ok(());
    }
    if args.json {
        println!("{}", m.to_json());
    } else {
        print!("{}", render(&m));
    }
    Ok(())
}

/// The human inventory.
#[expect(clippy::too_many_lines, reason = "issue 13: render is to be split where a name would explain a part")]
pub fn render(m: &Manifest) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Bundle {} (format {}), created {} by {}",
        m.bundle_name,
        m.format_version,
        m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        m.created_by
    );
    let _ = writeln!(s, "Source host: {} ({}, {})", m.source_host.hostname, m.source_host.os, m.source_host.arch);
    let _ = writeln!(s, "Payload: {}", human_size(m.payload_size()));
    for d in &m.postgres {
        let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
        let _ = writeln!(
            s,
            "\nPostgreSQL {} -> database {} (owner {}, {}), server {}, {}; dump {}: {} tables, {rows} rows",
            d.name,
            d.database,
            d.owner,
            d.encoding,
            d.server_version,
            d.pg_dump_version,
            human_size(d.size),
            d.tables.len()
        );
        if let Some(c) = &d.container {
            let _ = match (&c.project, &c.service) {
                (Some(p), Some(sv)) => {
                    writeln!(s, "  in container {} (compose project {p}, service {sv}), user {}", c.name, c.user)
                }
                _ => writeln!(s, "  in container {}, user {}", c.name, c.user),
            };
        }
        for t in &d.tables {
            let _ = writeln!(s, "  {:<50} {:>12}", t.qualified(), t.rows);
        }
    }
    if let Some(dk) = &m.docker {
        for c in &dk.compose {
            let _ = writeln!(
                s,
                "
Compose project {} ({}), {} services",
                c.project,
                c.directory.display(),
                c.services.len()
            );
            for sv in &c.services {
                let id = sv.image_id.as_deref().unwrap_or("no container");
                let _ = writeln!(s, "  {:<20} {} ({id})", sv.name, sv.image);
            }
        }
        for v in &dk.volumes {
            let _ = writeln!(
                s,
                "
Volume {} ({})",
                v.name,
                v.mountpoint.display()
            );
        }
        for i in &dk.images {
            let _ = writeln!(
                s,
                "
Image {} saved as {} ({})",
                i.references.join(", "),
                i.entry,
                i.id
            );
        }
    }
    for d in &m.sqlite {
        let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
        let place = match &d.volume {
            Some(v) => format!("{}, in volume {v}", d.path.display()),
            None => d.path.display().to_string(),
        };
        let _ = writeln!(
            s,
            "\nSQLite {} ({place}), {}: {} tables, {rows} rows",
            d.name,
            human_size(d.size),
            d.tables.len()
        );
        for t in &d.tables {
            let _ = writeln!(s, "  {:<50} {:>12}", t.qualified(), t.rows);
        }
    }
    if !m.files.is_empty() {
        let _ = writeln!(s, "\nFiles ({}):", m.files.len());
        for f in &m.files {
            let owner = format!(
                "{}:{}",
                f.meta.user.clone().unwrap_or_else(|| f.meta.uid.to_string()),
                f.meta.group.clone().unwrap_or_else(|| f.meta.gid.to_string())
            );
            let what = match &f.content {
                FileContent::File { size, .. } => human_size(*size),
                FileContent::Dir => "dir".into(),
                FileContent::Symlink { target } => format!("-> {}", target.display()),
            };
            let _ = writeln!(
                s,
                "  {:<6} {:04o} {:<18} {:>10}  {}",
                f.kind.folder(),
                f.meta.mode,
                owner,
                what,
                f.path.display()
            );
        }
    }
    if let Some(n) = &m.n8n {
        let _ = writeln!(
            s,
            "\nn8n ({} in {}): {} workflows ({} active), {} credentials; schema {}{}; key {}",
            n.database_kind,
            n.database_entry,
            n.workflows.len(),
            n.workflows.iter().filter(|w| w.active).count(),
            n.credentials.len(),
            n.schema_level.as_deref().unwrap_or("?"),
            n.release.as_ref().map(|r| format!(", release {r}")).unwrap_or_default(),
            match (&n.encryption_key.fingerprint, n.encryption_key.proven) {
                (Some(f), true) => format!("{f} (proven)"),
                (Some(f), false) => format!("{f} (not proven: no credential to test)"),
                _ => "MISSING".into(),
            }
        );
    }
    if !m.services.start.is_empty() {
        let _ = writeln!(s, "\nServices: {}", m.services.start.join(", "));
    }
    if !m.requirements.is_empty() {
        let _ = writeln!(s, "Requirements: {}", m.requirements.join(" "));
    }
    for n in &m.notes {
        let _ = writeln!(s, "note: {n}");
    }
    for w in &m.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}
