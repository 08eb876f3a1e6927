//! `packer show`: the inventory of a bundle, read from its head (manifest.json is the first
//! entry), so it answers instantly whatever the bundle's size.

use std::fmt::Write as _;

use restorer::manifest::{FileContent, Manifest};

fn human_size(n: u64) -> String {
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

/// The human inventory.
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
        for t in &d.tables {
            let _ = writeln!(s, "  {:<50} {:>12}", t.qualified(), t.rows);
        }
    }
    for d in &m.sqlite {
        let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
        let _ = writeln!(
            s,
            "\nSQLite {} ({}), {}: {} tables, {rows} rows",
            d.name,
            d.path.display(),
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
    if !m.services.start.is_empty() {
        let _ = writeln!(s, "\nServices: {}", m.services.start.join(", "));
    }
    if !m.requirements.is_empty() {
        let _ = writeln!(s, "Requirements: {}", m.requirements.join(" "));
    }
    for w in &m.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::human_size(5), "5 B");
        assert_eq!(super::human_size(1536), "1.5 KiB");
    }
}
