//! PostgreSQL connection handling shared by packer and restore: one URL from the operator becomes
//! both our own connection and the environment for `pg_dump`/`pg_restore`, so both always talk to
//! the same server as the same user, with the same TLS choice (`sslmode`, `sslrootcert`:
//! [`crate::pg_tls`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use postgres::config::Host;
use postgres::{Client, Config, GenericClient};

use crate::manifest::TableCount;
use crate::pg_tls::{self, TlsSettings};
use crate::{Error, Result};

/// A server (and database) named by a `postgresql://` URL or a libpq key=value string.
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    tls: TlsSettings,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.write_str(&self.describe())
    }
}

impl PgTarget {
    /// Parses a URL. A missing user falls back to `$PGUSER`, then `$USER`, as libpq does; a
    /// missing password to `$PGPASSWORD`, then the password file (`$PGPASSFILE` or `~/.pgpass`);
    /// `sslmode`/`sslrootcert` to `$PGSSLMODE`/`$PGSSLROOTCERT`, then libpq's defaults.
    pub fn parse(url: &str) -> Result<PgTarget> {
        let (url, mode, root) = pg_tls::split_ssl_params(url)?;
        let tls = TlsSettings::from_values(mode.as_deref(), root.as_deref())?;
        let mut config = Config::from_str(&url).map_err(|e| {
            Error::Other(format!("postgres URL is not valid ({e}); expected postgresql://USER@HOST:PORT/DATABASE"))
        })?;
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "postgres".into());
            config.user(&user);
        }
        if config.get_hosts().is_empty() {
            config.host_path("/var/run/postgresql");
        }
        if config.get_ports().is_empty() {
            config.port(5432);
        }
        if config.get_dbname().is_none() {
            let user = config.get_user().unwrap_or("postgres").to_string();
            config.dbname(&user);
        }
        if config.get_password().is_none() {
            if let Ok(pw) = std::env::var("PGPASSWORD") {
                config.password(pw);
            } else if let Some(pw) = pgpass_lookup(&config) {
                config.password(pw);
            }
        }
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("n8n-backup");
        Ok(PgTarget { config, tls })
    }

    /// A server over TCP from its parts (a container's address and environment): the password
    /// stays in memory, never in a URL or on a command line.
    pub fn from_parts(host: &str, port: u16, user: &str, password: Option<&str>, dbname: &str) -> PgTarget {
        let mut config = Config::new();
        config.host(host).port(port).user(user).dbname(dbname);
        if let Some(pw) = password {
            config.password(pw);
        }
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("n8n-backup");
        // A container the restore found on this host: TLS if it offers it, checked against
        // nothing (the operator's root file and PGSSLMODE are for the server they named).
        let tls = TlsSettings { mode: Some(pg_tls::SslMode::Prefer), root_cert: None, default_root: false };
        PgTarget { config, tls }
    }

    /// The password, when there is one (for `PGPASSWORD` in a child's environment).
    pub fn password(&self) -> Option<String> {
        self.config.get_password().map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// The same server, another database.
    pub fn with_database(&self, db: &str) -> PgTarget {
        let mut config = self.config.clone();
        config.dbname(db);
        PgTarget { config, tls: self.tls.clone() }
    }

    /// The database this target names.
    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or("postgres")
    }

    /// The user this target connects as.
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    /// `host:port` (or the socket directory), for messages.
    pub fn host_port(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        format!("{host}:{}", self.config.get_ports().first().copied().unwrap_or(5432))
    }

    /// `user@host:port/db`, never the password.
    pub fn describe(&self) -> String {
        format!("{}@{}/{}", self.user(), self.host_port(), self.database())
    }

    /// The TLS decision libpq would make for this target (errors when a verifying mode has no
    /// root file, or a named root file is missing).
    pub fn tls_plan(&self) -> Result<pg_tls::TlsPlan> {
        let unix = matches!(self.config.get_hosts().first(), Some(Host::Unix(_)) | None);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        self.tls.plan(unix, home.as_deref()).map_err(|e| Error::Other(format!("{}: {e}", self.describe())))
    }

    /// Connects, with a message that names server, user and database on failure, and says what
    /// to change when TLS is the cause (the server wants it, the certificate does not match).
    pub fn connect(&self) -> Result<Client> {
        let plan = self.tls_plan()?;
        let mut config = self.config.clone();
        config.ssl_mode(plan.driver_mode());
        config.connect(plan.connector()?).map_err(|source| match pg_tls::explain(&source, &plan, &self.host_port()) {
            Some(why) => Error::Other(format!("postgres connecting to {}: {why}", self.describe())),
            None => Error::Postgres { context: format!("connecting to {}", self.describe()), source },
        })
    }

    /// Environment for libpq tools (`pg_dump`, `pg_restore`, `psql`): the password travels in the
    /// environment, never on a command line where `ps` would show it.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => env.push(("PGHOST", h.clone())),
            Some(Host::Unix(p)) => env.push(("PGHOST", p.display().to_string())),
            None => {}
        }
        if let Some(a) = self.config.get_hostaddrs().first() {
            env.push(("PGHOSTADDR", a.to_string()));
        }
        if let Some(p) = self.config.get_ports().first() {
            env.push(("PGPORT", p.to_string()));
        }
        env.push(("PGUSER", self.user().to_string()));
        env.push(("PGDATABASE", self.database().to_string()));
        if let Some(pw) = self.config.get_password() {
            env.push(("PGPASSWORD", String::from_utf8_lossy(pw).into_owned()));
        }
        if let Some(o) = self.config.get_options() {
            env.push(("PGOPTIONS", o.to_string()));
        }
        // The operator's TLS choice, so libpq decides as our own connection did (a container's
        // target sets none: its tools run inside it, over its socket).
        if self.tls.default_root {
            if let Some(m) = self.tls.mode {
                env.push(("PGSSLMODE", m.as_str().to_string()));
            }
            if let Some(r) = &self.tls.root_cert {
                env.push(("PGSSLROOTCERT", r.display().to_string()));
            }
        }
        env
    }
}

fn pgpass_lookup(config: &Config) -> Option<String> {
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        // libpq matches a socket connection against "localhost".
        _ => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let want = [host.as_str(), port.as_str(), config.get_dbname().unwrap_or(""), config.get_user().unwrap_or("")];
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).find_map(|line| {
        let fields = split_pgpass(line);
        if fields.len() != 5 {
            return None;
        }
        let matches = fields[..4].iter().zip(want).all(|(f, w)| f == "*" || f == w);
        matches.then(|| fields[4].clone())
    })
}

/// Splits a .pgpass line on unescaped ':' and removes the `\` escapes.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().unwrap().push(n);
                }
            }
            ':' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// `DROP DATABASE IF EXISTS name`, ending its sessions first (a rollback must not fail on a
/// connection left open to what it removes). `WITH (FORCE)` does both at once but only from
/// PostgreSQL 13 (`server_version_num` 130000); an older server, as a deployment's image may
/// run, gets `pg_terminate_backend` and then a plain DROP.
pub fn drop_database(c: &mut Client, name: &str, server_version_num: u32) -> std::result::Result<(), postgres::Error> {
    if server_version_num >= 130_000 {
        return c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)));
    }
    end_sessions(c, name)?;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(name)))
}

/// Ends every other session on database `name` (a database with open sessions can be neither
/// renamed nor dropped).
pub fn end_sessions(c: &mut Client, name: &str) -> std::result::Result<(), postgres::Error> {
    c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        &[&name],
    )
    .map(|_| ())
}

/// The server's `server_version_num` (150004 for 15.4).
pub fn server_version_num(c: &mut Client) -> std::result::Result<u32, postgres::Error> {
    let v: String = c.query_one("SHOW server_version_num", &[])?.get(0);
    Ok(v.parse().unwrap_or(0))
}

/// Quotes an identifier for SQL (`"user"`, `"createdAt"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Row count of every ordinary and partitioned table outside the system schemas, sorted.
pub fn table_counts(client: &mut impl GenericClient, context: &str) -> Result<Vec<TableCount>> {
    let pe = |source| Error::Postgres { context: context.to_string(), source };
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' ORDER BY 1, 2",
            &[],
        )
        .map_err(pe)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (schema, name): (String, String) = (row.get(0), row.get(1));
        let sql = format!("SELECT count(*) FROM {}.{}", quote_ident(&schema), quote_ident(&name));
        let n: i64 = client
            .query_one(sql.as_str(), &[])
            .map_err(|source| Error::Postgres { context: format!("{context}: counting {schema}.{name}"), source })?
            .get(0);
        out.push(TableCount { schema, name, rows: n as u64 });
    }
    Ok(out)
}

/// Does the database hold any user table? (a restore refuses to overwrite one that does)
pub fn has_user_tables(client: &mut impl GenericClient, context: &str) -> Result<bool> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%'",
            &[],
        )
        .map_err(|source| Error::Postgres { context: context.to_string(), source })?
        .get(0);
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_escapes() {
        assert_eq!(split_pgpass(r"h:5432:db:u:p\:w\\d"), vec!["h", "5432", "db", "u", r"p:w\d"]);
    }

    #[test]
    fn url_defaults_and_description_hide_password() {
        let t = PgTarget::parse("postgresql://n8n:secret@db.example:6543/n8n").unwrap();
        assert_eq!(t.describe(), "n8n@db.example:6543/n8n");
        assert!(!format!("{t:?}").contains("secret"));
        assert_eq!(t.with_database("other").database(), "other");
        let env = t.libpq_env();
        assert!(env.contains(&("PGPASSWORD", "secret".into())));
        assert!(env.contains(&("PGPORT", "6543".into())));
    }

    #[test]
    fn tls_settings_reach_libpq_through_the_environment() {
        let t = PgTarget::parse("postgresql://n8n@db.example/n8n?sslmode=verify-full&sslrootcert=/etc/ca.pem").unwrap();
        let env = t.libpq_env();
        assert!(env.contains(&("PGSSLMODE", "verify-full".into())));
        assert!(env.contains(&("PGSSLROOTCERT", "/etc/ca.pem".into())));
        assert_eq!(t.with_database("x").libpq_env().iter().filter(|(k, _)| k.starts_with("PGSSL")).count(), 2);
        let kv = PgTarget::parse("host=db.example user=n8n dbname=n8n sslmode=require").unwrap();
        assert_eq!(kv.describe(), "n8n@db.example:5432/n8n");
        assert!(kv.libpq_env().contains(&("PGSSLMODE", "require".into())));
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("createdAt"), "\"createdAt\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
