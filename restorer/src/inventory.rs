//! The human inventory of a bundle, from its manifest: one renderer for `packer show` and
//! `restore list`, so the two binaries describe a bundle in the same words.

use std::fmt::Write as _;

use crate::manifest::{FileContent, FileMeta, Manifest};

/// `1.5 GiB`-style rendering of a byte count.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The human inventory: what `packer show` and `restore list` print.
pub fn render(m: &Manifest) -> String {
    let mut s = String::new();
    header(&mut s, m);
    postgres(&mut s, m);
    docker(&mut s, m);
    sqlite(&mut s, m);
    files(&mut s, m);
    n8n(&mut s, m);
    trailer(&mut s, m);
    s
}

fn header(s: &mut String, m: &Manifest) {
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
}

fn postgres(s: &mut String, m: &Manifest) {
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
}

fn docker(s: &mut String, m: &Manifest) {
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
}

fn sqlite(s: &mut String, m: &Manifest) {
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
}

fn files(s: &mut String, m: &Manifest) {
    if !m.files.is_empty() {
        let _ = writeln!(s, "\nFiles ({}):", m.files.len());
        for f in &m.files {
            let (owner, what) = (owner(&f.meta), content(&f.content, "->"));
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
}

fn n8n(s: &mut String, m: &Manifest) {
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
}

fn trailer(s: &mut String, m: &Manifest) {
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
}

/// `user:group` of a captured file, by name when the source host knew it, else by id.
pub fn owner(meta: &FileMeta) -> String {
    format!(
        "{}:{}",
        meta.user.clone().unwrap_or_else(|| meta.uid.to_string()),
        meta.group.clone().unwrap_or_else(|| meta.gid.to_string())
    )
}

/// What a captured path holds, in a word: its size, `dir`, or `ARROW target` for a link.
pub fn content(c: &FileContent, arrow: &str) -> String {
    match c {
        FileContent::File { size, .. } => human_size(*size),
        FileContent::Dir => "dir".into(),
        FileContent::Symlink { target } => format!("{arrow} {}", target.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
