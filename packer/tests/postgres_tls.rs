//! PostgreSQL over TLS, against a real PostgreSQL with `ssl = on` that takes TCP clients only
//! over TLS (`hostnossl ... reject`), a CA and server certificate made here with the openssl
//! command line: packer and restore with sslmode/sslrootcert, libpq's tools included.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use packer::pg_cluster::{Cluster, PASSWORD};

/// A CA (`NAME.pem`, `NAME.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (pem, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        &key.to_string_lossy(),
        "-out",
        &pem.to_string_lossy(),
    ]);
    pem
}

/// A server certificate for localhost and 127.0.0.1 signed by the CA `ca` (its `.key` beside it).
fn make_server_cert(dir: &Path, ca: &Path) -> (PathBuf, PathBuf) {
    let (crt, key, csr, ext) =
        (dir.join("server.crt"), dir.join("server.key"), dir.join("server.csr"), dir.join("ext"));
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &key.to_string_lossy(),
        "-out",
        &csr.to_string_lossy(),
    ]);
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr.to_string_lossy(),
        "-CA",
        &ca.to_string_lossy(),
        "-CAkey",
        &ca.with_extension("key").to_string_lossy(),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext.to_string_lossy(),
        "-out",
        &crt.to_string_lossy(),
    ]);
    (crt, key)
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Certificates, one TLS-only cluster holding `shop` (500 orders), and a scratch dir.
struct Setup {
    t: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    cert: (PathBuf, PathBuf),
    source: Cluster,
    src: PathBuf,
}

fn setup() -> Setup {
    let t = tempfile::tempdir().unwrap();
    let ca = make_ca(t.path(), "ca");
    let other_ca = make_ca(t.path(), "other-ca");
    let cert = make_server_cert(t.path(), &ca);
    let source = Cluster::start_tls(&cert.0, &cert.1).unwrap();
    source.psql("postgres", "CREATE DATABASE shop").unwrap();
    source
        .psql("shop", "CREATE TABLE orders (id serial PRIMARY KEY, item text); INSERT INTO orders (item) SELECT 'item ' || i FROM generate_series(1, 500) i;")
        .unwrap();
    let src = sample_tree(t.path());
    Setup { t, ca, other_ca, cert, source, src }
}

/// `postgresql://postgres:PW@HOST:PORT/DB?QUERY`.
fn url(host: &str, port: u16, db: &str, query: &str) -> String {
    format!("postgresql://postgres:{PASSWORD}@{host}:{port}/{db}?{query}")
}

/// `packer create` on a config naming `url`; HOME is the scratch dir, so no real
/// ~/.postgresql/root.crt or PGSSL* of the machine takes part.
fn packer_create(s: &Setup, url: &str) -> std::process::Output {
    packer_create_env(s, url, &[])
}

/// The same with PGSSLMODE/PGSSLROOTCERT set to `env`.
fn packer_create_env(s: &Setup, url: &str, env: &[(&str, &str)]) -> std::process::Output {
    let cfg = config(s.t.path(), &s.src, &[("shop", url.to_string())], Some(s.source.bin()));
    packer()
        .args(["create", "--config"])
        .arg(&cfg)
        .env("HOME", s.t.path())
        .env_remove("PGSSLMODE")
        .env_remove("PGSSLROOTCERT")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn bundles(s: &Setup) -> Vec<PathBuf> {
    std::fs::read_dir(s.t.path().join("out"))
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().ends_with(".tar.gz")).collect())
        .unwrap_or_default()
}

/// verify-full with the CA: packer dumps and counts over TLS (pg_dump too: the server refuses
/// plain connections), and the restore with --postgres-url ...sslmode=verify-full restores into
/// another TLS-only server and validates the row counts.
#[test]
fn verify_full_packs_and_restores_over_tls() {
    let s = setup();
    let ca = s.ca.display().to_string();
    let out =
        packer_create(&s, &url("localhost", s.source.port, "shop", &format!("sslmode=verify-full&sslrootcert={ca}")));
    assert!(out.status.success(), "packer create over TLS failed: {}", String::from_utf8_lossy(&out.stderr));
    let bundle = PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().unwrap());
    let shown: serde_json::Value =
        serde_json::from_slice(&packer().args(["show", "--json"]).arg(&bundle).output().unwrap().stdout).unwrap();
    let orders =
        shown["postgres"][0]["tables"].as_array().unwrap().iter().find(|t| t["name"] == "orders").unwrap().clone();
    assert_eq!(orders["rows"], 500);

    let target = Cluster::start_tls(&s.cert.0, &s.cert.1).unwrap();
    let dir = extract(&bundle, &s.t.path().join("x"));
    let root = s.t.path().join("root");
    let out = restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--postgres-url"])
        .arg(url("localhost", target.port, "postgres", &format!("sslmode=verify-full&sslrootcert={ca}")))
        .arg("--root")
        .arg(&root)
        .env("HOME", s.t.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "restore over TLS failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(target.psql("shop", "SELECT count(*) FROM orders").unwrap().trim(), "500");
}

/// sslmode=disable against a server that takes only TLS: the refusal says the server requires
/// TLS and what to add; no bundle is written.
#[test]
fn disable_against_a_tls_only_server_says_to_add_sslmode() {
    let s = setup();
    let out = packer_create(&s, &url("127.0.0.1", s.source.port, "shop", "sslmode=disable"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("server at 127.0.0.1:{} requires TLS", s.source.port)), "{err}");
    assert!(err.contains("sslmode=require"), "{err}");
    assert!(bundles(&s).is_empty());
}

/// verify-full with a CA that did not sign the server's certificate: a certificate error naming
/// the host and the CA file; packer writes no bundle and the restore changes nothing.
#[test]
fn certificate_from_another_ca_is_refused() {
    let s = setup();
    let other = s.other_ca.display().to_string();
    let q = format!("sslmode=verify-full&sslrootcert={other}");
    let out = packer_create(&s, &url("localhost", s.source.port, "shop", &q));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("certificate of localhost not signed by {other}")), "{err}");
    assert!(bundles(&s).is_empty());

    // A good bundle (over the right CA), restored through the wrong one.
    let ca = s.ca.display().to_string();
    let out =
        packer_create(&s, &url("localhost", s.source.port, "shop", &format!("sslmode=verify-full&sslrootcert={ca}")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bundle = PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().unwrap());
    let target = Cluster::start_tls(&s.cert.0, &s.cert.1).unwrap();
    let dir = extract(&bundle, &s.t.path().join("x"));
    let root = s.t.path().join("root");
    let out = restore(&dir)
        .args(["--yes", "--no-install", "--no-services", "--postgres-url"])
        .arg(url("localhost", target.port, "postgres", &q))
        .arg("--root")
        .arg(&root)
        .env("HOME", s.t.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not signed by"), "{err}");
    assert_eq!(target.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'shop'").unwrap().trim(), "0");
    assert!(tree(&root).iter().all(|p| p.starts_with("var")), "restore left files: {:?}", tree(&root));
}

/// sslmode=require without any CA encrypts without checking the certificate (libpq's meaning),
/// so packer works against the TLS-only server; so does a URL without sslmode (libpq's default,
/// prefer). PGSSLMODE/PGSSLROOTCERT apply when the URL says nothing: verify-full with the other
/// CA is refused.
#[test]
fn require_without_a_ca_encrypts_and_pgsslmode_applies() {
    let s = setup();
    let out = packer_create(&s, &url("127.0.0.1", s.source.port, "shop", "sslmode=require"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(bundles(&s).len(), 1);

    let plain = format!("postgresql://postgres:{PASSWORD}@localhost:{}/shop", s.source.port);
    let out = packer_create(&s, &plain);
    assert!(out.status.success(), "default sslmode (prefer): {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(bundles(&s).len(), 2);

    let other = s.other_ca.display().to_string();
    let out = packer_create_env(&s, &plain, &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &other)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not signed by"), "{err}");
    assert_eq!(bundles(&s).len(), 2);
}

/// A host name the certificate does not list (reached through hostaddr): verify-full fails
/// saying which names the certificate is for; verify-ca checks only the chain and passes, for
/// our connection and for pg_dump (PGHOSTADDR and PGSSLMODE reach it).
#[test]
fn host_name_mismatch_fails_verify_full_but_not_verify_ca() {
    let s = setup();
    let ca = s.ca.display().to_string();
    let q = |mode: &str| format!("hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={ca}");
    let out = packer_create(&s, &url("db.wrong.example", s.source.port, "shop", &q("verify-full")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("host name mismatch"), "{err}");
    assert!(
        err.contains("is for localhost, 127.0.0.1, not db.wrong.example"),
        "the names the certificate lists: {err}"
    );
    assert!(bundles(&s).is_empty());

    let out = packer_create(&s, &url("db.wrong.example", s.source.port, "shop", &q("verify-ca")));
    assert!(out.status.success(), "verify-ca: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(bundles(&s).len(), 1);
}
