//! `packer init --detect --from DIR` on hosts shaped like real n8n deployments: the printed
//! configuration is one packer accepts, names what runs there, and never repeats a secret.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::prelude::*;
use packer::config::Config;
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Runs the detection and parses its output with packer's own configuration parser.
fn detect(root: &Path) -> (String, Config) {
    let out = Command::cargo_bin("packer").unwrap().args(["init", "--detect", "--from"]).arg(root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let cfg = Config::parse(&text, Path::new("/"), "detected").unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    (text, cfg)
}

fn paths(cfg: &Config, kind: &str) -> Vec<String> {
    cfg.files
        .iter()
        .filter(|f| format!("{:?}", f.kind).eq_ignore_ascii_case(kind))
        .flat_map(|f| f.paths.iter().map(|p| p.display().to_string()))
        .collect()
}

/// n8n from npm as a systemd unit on the local PostgreSQL behind nginx with Let's Encrypt:
/// the database by URL with n8n's own user, the unit, its EnvironmentFile and data directory,
/// live/ with archive/ and renewal/ of the certificate the enabled site names (not the one of a
/// site that is not enabled), services in dependency order, health and n8n_url.
#[test]
fn n8n_on_postgres_behind_nginx_under_systemd() {
    let (text, cfg) = detect(&fixtures().join("detect/systemd-postgres"));
    assert_eq!(cfg.postgres.len(), 1, "{text}");
    assert_eq!(cfg.postgres[0].url.as_deref(), Some("postgresql://n8n@127.0.0.1:5432/n8n"));
    assert!(cfg.postgres[0].profile.is_some());
    assert_eq!(paths(&cfg, "config"), ["/etc/n8n/n8n.env", "/etc/systemd/system/n8n.service", "/etc/nginx"]);
    assert_eq!(
        paths(&cfg, "ssl"),
        [
            "/etc/letsencrypt/live/n8n.example.org",
            "/etc/letsencrypt/archive/n8n.example.org",
            "/etc/letsencrypt/renewal/n8n.example.org.conf"
        ]
    );
    assert_eq!(paths(&cfg, "data"), ["/var/lib/n8n/.n8n"]);
    assert_eq!(cfg.services.start, ["postgresql", "n8n", "nginx"]);
    assert_eq!(cfg.services.health, ["tcp://127.0.0.1:5432", "http://127.0.0.1:5678/healthz"]);
    assert_eq!(cfg.services.n8n_url.as_deref(), Some("http://127.0.0.1:5678"));
    assert!(text.contains("# served by the local PostgreSQL 15 cluster main (/etc/postgresql/15/main/postgresql.conf)"));
    assert!(!text.contains("not-in-use.pem"), "a site that is not enabled contributes nothing:\n{text}");
    for secret in ["fixture-db-password-7f3a", "fixture-encryption-key-91c2"] {
        assert!(!text.contains(secret), "a secret was printed:\n{text}");
    }
}

/// n8n's own compose example (postgres + n8n services, named volumes, .env): the database as
/// the compose service with the name .env gives it, the volumes and the project by its file,
/// the .env, and the port .env publishes.
#[test]
fn n8n_with_postgres_under_compose() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("opt/n8n-stack");
    fs::create_dir_all(&dir).unwrap();
    for f in ["docker-compose.yml", "init-data.sh"] {
        fs::copy(fixtures().join("compose").join(f), dir.join(f)).unwrap();
    }
    let env = fs::read_to_string(fixtures().join("compose/.env.example")).unwrap();
    fs::write(dir.join(".env"), env.replace("N8N_PUBLISHED_PORT=5678", "N8N_PUBLISHED_PORT=15678")).unwrap();
    let (text, cfg) = detect(t.path());
    let pg = &cfg.postgres[0];
    assert_eq!(pg.compose_service.as_deref(), Some("postgres"), "{text}");
    assert_eq!(pg.compose_file.as_deref(), Some(Path::new("/opt/n8n-stack/docker-compose.yml")));
    assert_eq!((pg.compose_project.as_deref(), pg.database.as_deref()), (Some("n8n-stack"), Some("n8n")));
    assert!(pg.url.is_none() && pg.profile.is_some());
    assert_eq!(cfg.volumes.len(), 1);
    assert_eq!(cfg.compose.len(), 1);
    assert_eq!(paths(&cfg, "config"), ["/opt/n8n-stack/.env"]);
    assert!(paths(&cfg, "data").is_empty(), "init-data.sh is a project file, packed with the project:\n{text}");
    assert_eq!(cfg.services.health, ["http://127.0.0.1:15678/healthz"]);
    assert_eq!(cfg.services.n8n_url.as_deref(), Some("http://127.0.0.1:15678"));
    assert!(cfg.services.start.is_empty(), "the restore starts the compose project itself:\n{text}");
    assert!(text.contains("the key is the `config` file in /var/lib/docker/volumes/n8n-stack_n8n_storage/_data"));
    for secret in ["change-me-admin", "change-me-app"] {
        assert!(!text.contains(secret), "a secret was printed:\n{text}");
    }
}

/// n8n on SQLite under ~/.n8n (bind-mounted into its container) behind nginx: the SQLite
/// database with the n8n profile, the directory as data, Let's Encrypt live/ and archive/.
#[test]
fn n8n_on_sqlite_under_its_home_directory() {
    let (text, cfg) = detect(&fixtures().join("deployment"));
    assert_eq!(cfg.sqlite.len(), 1, "{text}");
    assert_eq!(cfg.sqlite[0].path, Path::new("/home/node/.n8n/database.sqlite"));
    assert!(cfg.sqlite[0].profile.is_some() && cfg.postgres.is_empty());
    assert_eq!(paths(&cfg, "data"), ["/home/node/.n8n"]);
    assert_eq!(paths(&cfg, "ssl"), ["/etc/letsencrypt/live/example.com", "/etc/letsencrypt/archive/example.com"]);
    assert!(paths(&cfg, "config").contains(&"/opt/n8n/.env".to_string()));
    assert_eq!(cfg.services.start, ["nginx"]);
    assert!(!text.contains("fixture-key-0123456789abcdef"), "the key was printed:\n{text}");
}

/// A host with nothing recognisable still gets a configuration packer accepts, saying so; a
/// --from that is not a directory is an error naming it.
#[test]
fn nothing_found_is_said_and_a_bad_root_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let (text, cfg) = detect(t.path());
    assert!(text.contains("no n8n found"), "{text}");
    assert!(cfg.postgres.is_empty() && cfg.sqlite.is_empty() && cfg.files.is_empty());
    let out =
        Command::cargo_bin("packer").unwrap().args(["init", "--from"]).arg(t.path().join("missing")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing: not a directory"));
}

/// n8n's simplest compose deployment, SQLite in its one named volume: `[[sqlite]] volume =`
/// (found through Docker wherever it keeps volumes, the volume captured with it), so no
/// separate `[[volumes]]`.
#[test]
fn n8n_on_sqlite_in_a_named_volume() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("root/n8n");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(fixtures().join("compose/docker-compose.sqlite.yml"), dir.join("compose.yaml")).unwrap();
    let (text, cfg) = detect(t.path());
    let db = &cfg.sqlite[0];
    assert_eq!((db.volume.as_deref(), db.path.as_path()), (Some("n8n_data"), Path::new("database.sqlite")), "{text}");
    assert_eq!(db.compose_file.as_deref(), Some(Path::new("/root/n8n/compose.yaml")));
    assert!(cfg.volumes.is_empty(), "{text}");
    assert_eq!(cfg.compose.len(), 1);
}
