//! A throwaway PostgreSQL cluster: initdb in a temporary directory, a free port on 127.0.0.1, the
//! unix socket inside the directory, run as the `postgres` user when we are root (PostgreSQL
//! refuses to run as root). Stopped and deleted on drop. Used by the tests, and by deep
//! verification.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Password of the `postgres` role over TCP.
pub const PASSWORD: &str = "throwaway-Pw1";

/// A running cluster; dropped = stopped and removed.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
}

/// The directory of PostgreSQL server binaries: `$PG_BIN`, else the newest under
/// /usr/lib/postgresql.
pub fn server_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no PostgreSQL server under /usr/lib/postgresql (install postgresql, or set PG_BIN)")?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().map(|f| f.1).context("no initdb under /usr/lib/postgresql/*/bin")
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Cluster {
    /// initdb + start. Trust authentication on the socket and 127.0.0.1 only.
    pub fn start() -> Result<Cluster> {
        Cluster::start_with(None)
    }

    /// As [`Cluster::start`], with `ssl = on` and the given certificate and key, and a pg_hba.conf
    /// that takes TCP clients only over TLS (`hostssl ... scram-sha-256`, `hostnossl ... reject`),
    /// as managed databases do. The socket keeps trust, for the tests' own psql.
    pub fn start_tls(cert: &Path, key: &Path) -> Result<Cluster> {
        Cluster::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> Result<Cluster> {
        let bin = server_bin()?;
        let as_postgres = restorer::sys::is_root();
        let dir = tempfile::Builder::new().prefix("pgcluster-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        let data = dir.path().join("data");
        let mut c = Cluster { dir, bin, port: free_port()?, as_postgres };
        c.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        )?;
        let mut ssl = "";
        if let Some((cert, key)) = tls {
            // The server reads server.crt/server.key from the data directory and refuses a key
            // that is not its own user's with mode 0600: stage them in the cluster's directory
            // (readable by that user), then copy them in as that user.
            let hba = "local all all trust\n\
                       hostnossl all all 0.0.0.0/0 reject\n\
                       hostssl all all 127.0.0.1/32 scram-sha-256\n";
            let staged = c.dir.path().join("staged");
            for (bytes, name) in
                [(std::fs::read(cert)?, "server.crt"), (std::fs::read(key)?, "server.key"), (hba.into(), "pg_hba.conf")]
            {
                std::fs::write(&staged, bytes)?;
                std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o644))?;
                let to = data.join(name);
                c.run_as_owner("cp", &[&staged.to_string_lossy(), &to.to_string_lossy()])?;
                c.run_as_owner("chmod", &["0600", &to.to_string_lossy()])?;
            }
            std::fs::remove_file(&staged)?;
            ssl = " -c ssl=on";
        }
        // The free port was free when asked for; between that and the server's bind another
        // process (a parallel test, a container) may take it. Such a start is tried again on a
        // new port, a few times; any other failure is reported at once.
        for attempt in 1.. {
            let opts = format!(
                "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off -c max_connections=50{ssl}",
                c.port,
                c.dir.path().display()
            );
            let started = c.run(
                "pg_ctl",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-o",
                    &opts,
                    "-l",
                    &c.dir.path().join("log").to_string_lossy(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            );
            match started {
                Ok(_) => break,
                Err(e) if attempt < 5 && e.to_string().contains("Address already in use") => {
                    let _ = std::fs::remove_file(c.dir.path().join("log"));
                    c.port = free_port()?;
                }
                Err(e) => return Err(e),
            }
        }
        c.psql_socket("postgres", &format!("ALTER USER postgres PASSWORD '{PASSWORD}'"))?;
        Ok(c)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<String> {
        self.run_exe(&self.bin.join(tool), tool, args)
    }

    /// A system command (cp, chmod) as the cluster's owner.
    fn run_as_owner(&self, cmd: &str, args: &[&str]) -> Result<String> {
        self.run_exe(Path::new(cmd), cmd, args)
    }

    fn run_exe(&self, exe: &Path, tool: &str, args: &[&str]) -> Result<String> {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).current_dir(self.dir.path());
        let out = cmd.output().with_context(|| format!("running {}", exe.display()))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            bail!(
                "{tool} failed: {}{}\n{log}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `postgresql://postgres:PASSWORD@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    fn psql_socket(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db, "-c", sql])
            .output()?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The server binaries' directory (pg_dump, psql of the same version).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Runs a SQL script file through psql (meta-commands such as pg_dump's `\restrict` work).
    pub fn psql_file(&self, db: &str, file: &Path) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db, "-f"])
            .arg(file)
            .output()?;
        if !out.status.success() {
            bail!("psql -f {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs SQL through psql against `db`, returning its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        self.psql_socket(db, sql)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.run("pg_ctl", &["-D", &data.to_string_lossy(), "-m", "immediate", "-w", "stop"]);
    }
}
