//! Shipping over real ssh: an sshd of our own on 127.0.0.1 (its own host key, our own client
//! key and known_hosts), the system's scp and ssh, the copy verified there, unpacked and its
//! restore run remotely; an unknown host key refused; the daemon ships and status says when.

mod common;

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use common::*;
use predicates::prelude::*;

struct Sshd {
    child: Child,
    port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd(dir: &Path) -> Sshd {
    fs::create_dir_all("/run/sshd").unwrap(); // sshd's privilege separation directory
    let keygen = |f: &Path| {
        assert!(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(f)
            .status()
            .unwrap()
            .success())
    };
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("sshd_config");
    fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nLogLevel ERROR\nSubsystem sftp /usr/lib/openssh/sftp-server\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd (openssh-server)");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "sshd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let scan = Command::new("ssh-keyscan").args(["-p", &port.to_string(), "127.0.0.1"]).output().unwrap();
    let known_hosts = dir.join("known_hosts");
    fs::write(&known_hosts, scan.stdout).unwrap();
    Sshd { child, port, key: dir.join("client_key"), known_hosts }
}

fn ship_args(s: &Sshd, known_hosts: &Path) -> Vec<String> {
    vec![
        "--port".into(),
        s.port.to_string(),
        "--identity".into(),
        s.key.display().to_string(),
        "--ssh-option".into(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "--ssh-option".into(),
        "GlobalKnownHostsFile=/dev/null".into(),
    ]
}

/// A bundle shipped, verified on the other side, unpacked and restored from there; an unknown
/// host key is refused (never silently accepted) and the failure recorded.
#[test]
fn ship_verify_extract_restore() {
    let t = tempfile::tempdir().unwrap();
    let s = sshd(t.path());
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[], None);
    let bundle = create(&cfg);
    let remote_dir = t.path().join("remote dir");
    let dest = format!("root@127.0.0.1:{}", remote_dir.display());

    packer()
        .arg("--config")
        .arg(&cfg)
        .arg("ship")
        .arg(&bundle)
        .arg(&dest)
        .args(ship_args(&s, &s.known_hosts))
        .args(["--restore", "--", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("remote copy verified"))
        .stdout(predicate::str::contains("OK: "));
    let name = bundle.file_name().unwrap();
    assert_eq!(fs::read(remote_dir.join(name)).unwrap(), fs::read(&bundle).unwrap());
    assert!(remote_dir.join(name.to_str().unwrap().trim_end_matches(".tar.gz")).join("restore").is_file());

    let empty = t.path().join("empty_known_hosts");
    fs::write(&empty, "").unwrap();
    packer()
        .arg("--config")
        .arg(&cfg)
        .arg("ship")
        .arg(&bundle)
        .arg(format!("root@127.0.0.1:{}", t.path().join("elsewhere").display()))
        .args(ship_args(&s, &empty))
        .stdin(Stdio::null())
        .assert()
        .failure()
        .stderr(predicate::str::contains("Host key verification failed"));
    assert!(!t.path().join("elsewhere").exists());
    // Backups succeed; only the offsite copy failed: a warning for monitoring, not a failure.
    packer()
        .arg("--config")
        .arg(&cfg)
        .arg("status")
        .assert()
        .code(packer::exit::WARNING)
        .stdout(predicate::str::contains("the last ship failed"));
}

/// The daemon ships each new bundle to the [ship] destinations; status shows the last copy.
#[test]
fn daemon_ships_and_status_shows_it() {
    let t = tempfile::tempdir().unwrap();
    let s = sshd(t.path());
    let src = sample_tree(t.path());
    let cfg = config(t.path(), &src, &[], None);
    let remote_dir = t.path().join("offsite");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[ship]\ndestinations = [\"root@127.0.0.1:{}\"]\nport = {}\nidentity = \"{}\"\nssh_options = [\"UserKnownHostsFile={}\", \"GlobalKnownHostsFile=/dev/null\"]\n",
        remote_dir.display(),
        s.port,
        s.key.display(),
        s.known_hosts.display()
    ));
    fs::write(&cfg, text).unwrap();
    packer()
        .arg("--config")
        .arg(&cfg)
        .arg("status")
        .assert()
        .failure()
        .stderr(predicate::str::contains("no backup has run yet"));
    packer()
        .arg("--config")
        .arg(&cfg)
        .args(["daemon", "--once"])
        .assert()
        .success()
        .stderr(predicate::str::contains("shipped to"));
    assert_eq!(fs::read_dir(&remote_dir).unwrap().count(), 2, "bundle and sidecar");
    let st: serde_json::Value =
        serde_json::from_slice(&packer().arg("--config").arg(&cfg).args(["status", "--json"]).output().unwrap().stdout)
            .unwrap();
    assert!(st["last_shipped"]["bundle"].as_str().unwrap().contains("offsite"), "{st}");
}
