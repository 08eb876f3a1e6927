//! A compose project on the real Docker engine for the tests (shared by the backup and the
//! restore tests): created in a temporary directory, taken down with its volumes when dropped.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// True when the engine answers; otherwise prints why the test is skipped.
#[allow(clippy::print_stderr, reason = "a skipped test says why")]
pub fn engine() -> bool {
    let ok = Command::new("docker").arg("info").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED: `docker info` fails (no Docker engine); scripts/docker-engine.sh starts one");
    }
    ok
}

/// A compose project in a temporary directory, taken down with its volumes when dropped.
pub struct Project {
    pub name: String,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
    /// Images the test made, removed at the end.
    pub images: Vec<String>,
}

impl Project {
    pub fn new(compose: &str, env: &str) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let suffix: String =
            tmp.path().file_name().unwrap().to_string_lossy().chars().filter(char::is_ascii_alphanumeric).collect();
        let name = format!("pkt{}", suffix.to_lowercase());
        let dir = tmp.path().join("project");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("docker-compose.yml"), compose).unwrap();
        fs::write(dir.join(".env"), env).unwrap();
        fs::set_permissions(dir.join(".env"), fs::Permissions::from_mode(0o600)).unwrap();
        Project { name, dir, _tmp: tmp, images: Vec::new() }
    }

    /// Compose as the product runs it (`docker compose` when the plugin answers, else v1's
    /// `docker-compose`): scripts/test-compose-v2.sh runs these tests again under v2.
    pub fn compose(&self, args: &[&str]) -> std::process::Output {
        let program = restorer::container::compose_program().expect("docker compose or docker-compose");
        Command::new(&program[0])
            .args(&program[1..])
            .arg("-p")
            .arg(&self.name)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap()
    }

    pub fn compose_ok(&self, args: &[&str]) {
        let o = self.compose(args);
        assert!(o.status.success(), "compose {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// The container of a service.
    pub fn container(&self, service: &str) -> String {
        let o = self.compose(&["ps", "-q", service]);
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }

    /// Runs a shell command in a service's container, `stdin` fed to it.
    pub fn sh(&self, service: &str, script: &str, stdin: &[u8]) -> String {
        let mut c = Command::new("docker")
            .args(["exec", "-i", &self.container(service), "sh", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    /// SQL through the container's own psql (local socket, trust).
    pub fn psql(&self, sql: &str) -> String {
        self.sh("postgres", "psql -X -q -t -A -v ON_ERROR_STOP=1 -U n8n -d n8n", sql.as_bytes())
    }

    /// Waits until the server accepts TCP connections (the image's init server listens on its
    /// socket only; the real one on every address).
    pub fn wait_for_postgres(&self) {
        for _ in 0..120 {
            let id = self.container("postgres");
            if !id.is_empty() {
                let o = Command::new("docker")
                    .args(["exec", &id, "psql", "-h", "127.0.0.1", "-U", "n8n", "-d", "n8n", "-c", "SELECT 1"])
                    .output()
                    .unwrap();
                if o.status.success() {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let logs = self.compose(&["logs", "--tail", "30"]);
        panic!("postgres never accepted connections: {}", String::from_utf8_lossy(&logs.stdout));
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if self.dir.join("docker-compose.yml").is_file() {
            let _ = self.compose(&["down", "-v", "--remove-orphans"]);
        }
        // The project directory may be gone (a test destroyed it): by compose's labels.
        let filter = format!("label=com.docker.compose.project={}", self.name);
        for (list, rm) in [
            (vec!["ps", "-aq", "--filter", &filter], vec!["rm", "-f"]),
            (vec!["network", "ls", "-q", "--filter", &filter], vec!["network", "rm"]),
            (vec!["volume", "ls", "-q", "--filter", &filter], vec!["volume", "rm", "-f"]),
        ] {
            let ids = Command::new("docker").args(&list).output().map(|o| o.stdout).unwrap_or_default();
            for id in String::from_utf8_lossy(&ids).split_whitespace() {
                let _ = Command::new("docker").args(&rm).arg(id).output();
            }
        }
        for i in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

/// `docker inspect --format` of a container or volume.
pub fn inspect(what: &str, format: &str, name: &str) -> String {
    let o = Command::new("docker").args([what, "inspect", "--format", format, name]).output().unwrap();
    assert!(o.status.success(), "docker {what} inspect {name}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}
