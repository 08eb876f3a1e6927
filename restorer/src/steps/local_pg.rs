//! Reaching the local PostgreSQL as root on a fresh host. Debian's clusters let only the OS user
//! `postgres` in through the socket (peer authentication), and the restore runs as root. So the
//! restore creates a temporary superuser through `runuser -u postgres -- psql` on the socket,
//! with a random password, connects over 127.0.0.1 (scram, Debian's default for TCP), and
//! every session runs as `postgres` (`-c role=postgres`), so nothing is owned by the temporary
//! role and it can be dropped at the end, which [`TempSuperuser`]'s drop does.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result};

/// A temporary superuser; dropped with the value.
#[derive(Debug)]
pub struct TempSuperuser {
    name: String,
    socket_dir: PathBuf,
    port: u16,
    /// Connection string for it (never printed: it holds the password).
    pub url: String,
}

fn psql(socket_dir: &Path, port: u16, sql: &str) -> Result<String> {
    let psql = crate::sys::find_pg_tool("psql", None, 0)?;
    crate::sys::run(
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(socket_dir)
            .args(["-p", &port.to_string(), "-d", "postgres", "-c", sql]),
    )
}

impl TempSuperuser {
    /// Creates the role on the cluster listening at `socket_dir`/`port`.
    pub fn create(socket_dir: &Path, port: u16) -> Result<TempSuperuser> {
        let mut raw = [0u8; 18];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut raw))
            .map_err(|e| Error::io("reading", "/dev/urandom", e))?;
        let password = crate::digest::hex(&raw);
        let name = format!("n8n_restore_tmp_{}", std::process::id());
        psql(socket_dir, port, &format!("CREATE ROLE {name} SUPERUSER LOGIN PASSWORD '{password}'"))?;
        let url = format!(
            "host=127.0.0.1 port={port} user={name} password={password} dbname=postgres options='-c role=postgres'"
        );
        Ok(TempSuperuser { name, socket_dir: socket_dir.to_path_buf(), port, url })
    }
}

impl Drop for TempSuperuser {
    #[allow(
        clippy::print_stderr,
        reason = "a drop cannot return the failure; the operator must hear of a superuser left behind"
    )]
    fn drop(&mut self) {
        if let Err(e) = psql(&self.socket_dir, self.port, &format!("DROP ROLE IF EXISTS {}", self.name)) {
            eprintln!("warning: could not drop the temporary role {}: {e}; drop it by hand", self.name);
        }
    }
}
