//! PostgreSQL roles from `pg_dumpall --roles-only`: the roles a dump's objects belong to are
//! created on the target before the databases, so ownership and grants come back as they were.
//! Only missing roles are created; an existing role is never altered (restoring must not change
//! the password of the target's own `postgres`).

use crate::checkpoint::{Change, Checkpoint};
use crate::pg::PgTarget;
use crate::{Error, Result};

/// One role and the statements that recreate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSpec {
    /// The role's name (unquoted).
    pub name: String,
    /// `CREATE ROLE ...;` and `ALTER ROLE ... WITH ...;`.
    pub statements: Vec<String>,
}

/// Parsed roles file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    /// Roles in file order.
    pub roles: Vec<RoleSpec>,
    /// Membership grants (`GRANT a TO b ...;`), applied when both roles exist.
    pub grants: Vec<String>,
}

/// The role name at the start of `rest` (quoted or bare) and what follows it.
fn take_ident(rest: &str) -> Option<(String, &str)> {
    let rest = rest.trim_start();
    if let Some(q) = rest.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if q[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &q[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = rest.find(|c: char| c == ';' || c.is_whitespace()).unwrap_or(rest.len());
        Some((rest[..end].to_string(), &rest[end..]))
    }
}

/// Parses pg_dumpall's roles output.
pub fn parse(sql: &str) -> Roles {
    let mut out = Roles::default();
    for line in sql.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("CREATE ROLE ") {
            if let Some((name, _)) = take_ident(rest) {
                out.roles.push(RoleSpec { name, statements: vec![line.to_string()] });
            }
        } else if let Some(rest) = line.strip_prefix("ALTER ROLE ") {
            if let Some((name, _)) = take_ident(rest) {
                if let Some(r) = out.roles.iter_mut().find(|r| r.name == name) {
                    r.statements.push(line.to_string());
                }
            }
        } else if line.starts_with("GRANT ") && line.contains(" TO ") {
            out.grants.push(line.to_string());
        }
    }
    out
}

/// Names of the roles in `roles` that do not exist on the server.
pub fn missing(pg: &PgTarget, roles: &Roles) -> Result<Vec<String>> {
    let mut c = pg.with_database("postgres").connect()?;
    let mut out = Vec::new();
    for r in &roles.roles {
        let exists = c
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&r.name])
            .map_err(|source| Error::Postgres { context: format!("looking up role {}", r.name), source })?
            .is_some();
        if !exists {
            out.push(r.name.clone());
        }
    }
    Ok(out)
}

/// Creates the missing roles (journaled), then applies the membership grants that can be.
/// Returns the roles created and warnings.
pub fn apply(pg: &PgTarget, cp: &mut Checkpoint, roles: &Roles) -> Result<(Vec<String>, Vec<String>)> {
    let todo = missing(pg, roles)?;
    let mut c = pg.with_database("postgres").connect()?;
    let mut warnings = Vec::new();
    for r in roles.roles.iter().filter(|r| todo.contains(&r.name)) {
        cp.record(Change::RoleCreated { role: r.name.clone() })?;
        for s in &r.statements {
            c.batch_execute(s)
                .map_err(|source| Error::Postgres { context: format!("creating role {}", r.name), source })?;
        }
    }
    for g in &roles.grants {
        if let Err(e) = c.batch_execute(g) {
            warnings.push(format!("{g}: {}", crate::error::pg_detail(&e)));
        }
    }
    Ok((todo, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pg_dumpall_roles() {
        let sql = r#"
--
-- Roles
--

CREATE ROLE n8n;
ALTER ROLE n8n WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:abc';
CREATE ROLE "Odd ""Name""";
ALTER ROLE "Odd ""Name""" WITH NOLOGIN;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER;
GRANT n8n TO "Odd ""Name""" WITH INHERIT TRUE GRANTED BY postgres;
"#;
        let r = parse(sql);
        let names: Vec<_> = r.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["n8n", "Odd \"Name\"", "postgres"]);
        assert_eq!(r.roles[0].statements.len(), 2);
        assert!(r.roles[0].statements[1].contains("SCRAM-SHA-256"));
        assert_eq!(r.roles[1].statements.len(), 2);
        assert_eq!(r.grants.len(), 1);
    }
}
