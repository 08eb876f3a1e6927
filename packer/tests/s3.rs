//! Object storage destinations against a real S3 protocol server: moto's (`moto_server`,
//! installed from PyPI by scripts/ensure-tools.sh), started per test on a free loopback port.
//! Uploads (single and multipart), the read-back verification, `packer fetch` and its checks,
//! a corrupted object changed behind the product's back, remote retention, and the secret key
//! never printed (with -v, and on failure).

mod common;

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

/// The secret every test runs with: it must appear in no output, ever.
const SECRET: &str = "s3cr3t-Never-Printed-0b6f9a2e";
const KEY_ID: &str = "AKIAPACKERTEST";
const BUCKET: &str = "packer-test";

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto_server: `$MOTO_SERVER`, the venv ensure-tools.sh makes, or PATH.
fn moto_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return p.into();
    }
    let venv = Path::new("/opt/packer-test-tools/moto/bin/moto_server");
    if venv.is_file() {
        return venv.into();
    }
    "moto_server".into()
}

fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(moto_bin())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (run scripts/ensure-tools.sh test)");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = Moto { child, port };
    m.create_bucket(BUCKET);
    m
}

/// The test's own hands on the bucket, behind packer's back: boto3 (installed with moto, in
/// its venv) through a few lines of Python. `op` is create, put, get or list.
const PY: &str = r#"
import boto3, sys
op, port = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
if op == "create":
    s3.create_bucket(Bucket=sys.argv[3])
elif op == "put":
    s3.put_object(Bucket=sys.argv[3], Key=sys.argv[4], Body=open(sys.argv[5], "rb").read())
elif op == "get":
    try:
        body = s3.get_object(Bucket=sys.argv[3], Key=sys.argv[4])["Body"].read()
    except s3.exceptions.NoSuchKey:
        sys.exit(3)
    open(sys.argv[5], "wb").write(body)
elif op == "list":
    for o in s3.list_objects_v2(Bucket=sys.argv[3]).get("Contents", []):
        print(o["Key"])
"#;

impl Moto {
    fn py(&self, args: &[&str]) -> Output {
        let python = moto_bin().with_file_name("python");
        let python = if python.is_file() { python } else { "python3".into() };
        let out = Command::new(python).arg("-c").arg(PY).args(args).output().expect("python with boto3");
        assert!(
            out.status.success() || out.status.code() == Some(3),
            "s3 helper {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn create_bucket(&self, bucket: &str) {
        self.py(&["create", &self.port.to_string(), bucket]);
    }

    fn put(&self, key: &str, bytes: &[u8]) {
        let f = tempfile::NamedTempFile::new().unwrap();
        fs::write(f.path(), bytes).unwrap();
        self.py(&["put", &self.port.to_string(), BUCKET, key, f.path().to_str().unwrap()]);
    }

    fn object(&self, key: &str) -> Option<Vec<u8>> {
        let f = tempfile::NamedTempFile::new().unwrap();
        let out = self.py(&["get", &self.port.to_string(), BUCKET, key, f.path().to_str().unwrap()]);
        out.status.success().then(|| fs::read(f.path()).unwrap())
    }

    /// Every key in the bucket.
    fn keys(&self) -> Vec<String> {
        let out = self.py(&["list", &self.port.to_string(), BUCKET]);
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
    }
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// A configuration over the sample tree, shipping to `s3://packer-test/n8n/prod` on `m`.
fn s3_config(base: &Path, m: &Moto, extra: &str) -> PathBuf {
    let src = sample_tree(base);
    let cfg = config(base, &src, &[], None);
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[ship]\ndestinations = [\"s3://{BUCKET}/n8n/prod\"]\n[ship.s3]\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\npath_style = true\npart_size = \"5MiB\"\n{extra}",
        m.port
    ));
    fs::write(&cfg, text).unwrap();
    cfg
}

/// Runs packer with the test's credentials in the environment; checks the secret is in
/// neither stdout nor stderr, whatever the outcome.
fn run(cfg: &Path, args: &[&str]) -> Output {
    let out = packer()
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    for (what, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !String::from_utf8_lossy(text).contains(SECRET),
            "packer {args:?} printed the secret key on {what}: {}",
            String::from_utf8_lossy(text)
        );
    }
    out
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A bundle over the multipart threshold (5 MiB parts): an incompressible file in the tree.
fn big_bundle(cfg: &Path, base: &Path) -> PathBuf {
    let mut x = 0x9e3779b97f4a7c15u64;
    let noise: Vec<u8> = (0..12 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(base.join("src/srv/data/noise.bin"), noise).unwrap();
    let out = run(cfg, &["create"]);
    PathBuf::from(ok(&out).lines().last().unwrap())
}

/// A multipart upload read back and recorded; list and status show the copy; fetch brings back
/// the same bytes; an object changed behind packer's back is refused by fetch, naming the key
/// and both digests, leaving no file under the bundle's name nor a partial one; the copy then
/// counts as failed. The secret key is never printed, with -v and on failures.
#[test]
fn ship_fetch_round_trip_and_a_corrupted_object() {
    let t = tempfile::tempdir().unwrap();
    let m = moto();
    let cfg = s3_config(t.path(), &m, "");
    let bundle = big_bundle(&cfg, t.path());
    let name = bundle.file_name().unwrap().to_str().unwrap().to_string();
    let key = format!("n8n/prod/{name}");
    let original = fs::read(&bundle).unwrap();
    assert!(original.len() > 10 * 1024 * 1024, "big enough for three parts");

    let out = ok(&run(&cfg, &["-v", "ship", "1", &format!("s3://{BUCKET}/n8n/prod")]));
    assert!(out.contains("read back"), "{out}");
    assert_eq!(m.object(&key).expect("the bundle is stored"), original);
    let sidecar = fs::read(format!("{}.sha256", bundle.display())).unwrap();
    assert_eq!(m.object(&format!("{key}.sha256")).unwrap(), sidecar);

    let listed = ok(&run(&cfg, &["list"]));
    assert!(listed.contains("Remote copies") && listed.contains(&key), "{listed}");
    let st: serde_json::Value = serde_json::from_slice(&run(&cfg, &["status", "--json"]).stdout).unwrap();
    assert_eq!(st["remote_copies"][0]["copies"], 1, "{st}");
    assert_eq!(st["remote_copies"][0]["newest_verified"], key.as_str(), "{st}");

    // By catalog id, and by key without any configuration at all.
    let back = t.path().join("back");
    let out = ok(&run(&cfg, &["-v", "fetch", "1", back.to_str().unwrap()]));
    assert!(out.contains("matches its sidecar"), "{out}");
    assert_eq!(fs::read(back.join(&name)).unwrap(), original);
    assert_eq!(fs::read(back.join(format!("{name}.sha256"))).unwrap(), sidecar);

    // Same length, one byte changed in the middle: only the digest can tell.
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    m.put(&key, &bad);
    let dir = t.path().join("again");
    let err = failed(&run(&cfg, &["-v", "fetch", &name, dir.to_str().unwrap()]));
    let expected = String::from_utf8_lossy(&sidecar).split_whitespace().next().unwrap().to_string();
    assert!(err.contains(&format!("s3://{BUCKET}/{key}")), "{err}");
    assert!(err.contains(&expected) && err.contains(&sha256_hex(&bad)), "both digests: {err}");
    let left: Vec<_> = fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    let st = ok_status(&cfg);
    assert!(st.contains("found corrupt"), "{st}");

    // Failures print no secret either: a bucket that does not exist, a secret in the config.
    let err = failed(&run(&cfg, &["-v", "ship", "1", "s3://no-such-bucket/x"]));
    assert!(err.contains("no-such-bucket"), "{err}");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("secret_access_key = \"{SECRET}\"\n"));
    let leaky = t.path().join("leaky.toml");
    fs::write(&leaky, text).unwrap();
    let err = failed(&run(&leaky, &["-v", "list"]));
    assert!(err.contains("AWS_SECRET_ACCESS_KEY") && err.contains("credentials_file"), "{err}");
}

fn ok_status(cfg: &Path) -> String {
    // status exits 1 on an alert: only its text matters here.
    String::from_utf8_lossy(&run(cfg, &["status"]).stdout).into_owned()
}

/// Credentials from a 0600 credentials file work (and one readable by others is refused); a
/// single-part upload; fetch by s3:// URL needs no catalog.
#[test]
fn credentials_file_and_fetch_by_url() {
    let t = tempfile::tempdir().unwrap();
    let m = moto();
    let creds = t.path().join("s3-credentials");
    fs::write(&creds, format!("[backup]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&creds, fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = s3_config(t.path(), &m, &format!("credentials_file = \"{}\"\nprofile = \"backup\"\n", creds.display()));
    let bundle = create(&cfg);
    let name = bundle.file_name().unwrap().to_str().unwrap().to_string();
    let no_env = |args: &[&str]| {
        let out = packer().arg("--config").arg(&cfg).args(args).env_remove("AWS_SECRET_ACCESS_KEY").output().unwrap();
        assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET));
        assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
        out
    };
    let err = failed(&no_env(&["ship", &name, &format!("s3://{BUCKET}/n8n/prod")]));
    assert!(err.contains("chmod 600"), "{err}");
    fs::set_permissions(&creds, fs::Permissions::from_mode(0o600)).unwrap();
    ok(&no_env(&["ship", &name, &format!("s3://{BUCKET}/n8n/prod")]));
    let url = format!("s3://{BUCKET}/n8n/prod/{name}");
    let dir = t.path().join("fetched");
    ok(&no_env(&["fetch", &url, dir.to_str().unwrap()]));
    assert_eq!(fs::read(dir.join(&name)).unwrap(), fs::read(&bundle).unwrap());
}

/// The daemon ships each new bundle; with `[retention] remote = true` the copies of the bundles
/// local retention deleted go too, the newest verified copy stays, and a bundle deleted by hand
/// keeps its remote copy.
#[test]
fn daemon_ships_and_remote_retention_follows_local() {
    let t = tempfile::tempdir().unwrap();
    let m = moto();
    let cfg = s3_config(t.path(), &m, "");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[retention]\nkeep_last = 1\nremote = true\n");
    fs::write(&cfg, text).unwrap();
    let mut names = Vec::new();
    for _ in 0..3 {
        // Bundle names carry the second they were made in.
        std::thread::sleep(Duration::from_millis(1100));
        let out = run(&cfg, &["-v", "daemon", "--once"]);
        ok(&out);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("shipped to s3://"), "{err}");
        let listed: serde_json::Value = serde_json::from_slice(&run(&cfg, &["list", "--json"]).stdout).unwrap();
        names.push(listed[0]["file_name"].as_str().unwrap().to_string());
    }
    let bundles: Vec<String> = m
        .keys()
        .into_iter()
        .filter(|k| k.ends_with(".tar.gz"))
        .map(|k| k.trim_start_matches("n8n/prod/").into())
        .collect();
    assert_eq!(bundles, vec![names[2].clone()], "the two older copies went with their local bundles");
    assert_eq!(m.keys().len(), 2, "bundle and sidecar: {:?}", m.keys());

    // Deleted by hand: not retention's doing, so the copy stays (it is the only one left).
    ok(&run(&cfg, &["delete", "3", "--yes"]));
    ok(&run(&cfg, &["prune"]));
    assert_eq!(m.keys().len(), 2, "{:?}", m.keys());
}
