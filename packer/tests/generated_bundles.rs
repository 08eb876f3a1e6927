//! Issue 8, section 8: generated hostile bundles. One real bundle of a small tree is rewritten
//! into hundreds of bundles an attacker could write (random paths, kinds and link targets,
//! duplicate and nested records, odd names, extra entries, wrong sizes; mostly with every digest
//! recomputed), each restored as a user would under a temporary `--root` next to an `outside/`
//! tree holding what an attacker wants to reach. Whatever the restore decides, nothing outside
//! the root changes, it never panics, a refusal or a rollback leaves the root exactly as it was,
//! and a success writes only the paths the manifest names.
//!
//! `GENERATED_CASES` sets the number of cases (default [`DEFAULT_CASES`]), `GENERATED_SEED` the
//! seed (printed with every failure), `GENERATED_ONLY` runs one case number of that seed.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a skipped case says why")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::craft::{sha256_hex, Crafted, Entry};
use common::*;
use restorer::exit;
use serde_json::{json, Value};
use tar::EntryType;

/// Cases per run when `GENERATED_CASES` is not set.
const DEFAULT_CASES: u64 = 300;
/// Seed when `GENERATED_SEED` is not set (fixed: CI runs the same cases every time).
const DEFAULT_SEED: u64 = 0x8_2026_1201;

/// splitmix64: small, deterministic, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with probability `pct` percent.
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        let v = v.trim();
        let parsed = match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        };
        parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

const A64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (restorer/src/raw_path.rs reads it).
fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A path as the manifest writes it: a string when UTF-8, else `{"base64": ...}`.
fn path_json(raw: &[u8]) -> Value {
    match std::str::from_utf8(raw) {
        Ok(s) => s.into(),
        Err(_) => json!({ "base64": base64(raw) }),
    }
}

/// The raw bytes of a manifest path (either form). `None` for a form the restore refuses anyway.
fn path_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Object(o) => {
            let text = o.get("base64")?.as_str()?;
            let val = |c: u8| A64.iter().position(|x| *x == c).map(|p| p as u32);
            let mut out = Vec::new();
            let clean: Vec<u8> = text.bytes().filter(|c| *c != b'=').collect();
            for chunk in clean.chunks(4) {
                let mut n = 0u32;
                for (i, c) in chunk.iter().enumerate() {
                    n |= val(*c)? << (18 - 6 * i);
                }
                for i in 0..chunk.len().saturating_sub(1) {
                    out.push((n >> (16 - 8 * i)) as u8);
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// Components a path is made of: mostly plain, some that a careless reader mishandles.
fn component(rng: &mut Rng) -> Vec<u8> {
    const PLAIN: &[&str] = &["etc", "srv", "app", "conf.d", "a", "b", "data", "-dash", "sp ace", "ünï", "x.conf"];
    if rng.chance(78) {
        return rng.pick(PLAIN).as_bytes().to_vec();
    }
    match rng.below(11) {
        0 => b"..".to_vec(),
        1 => b".".to_vec(),
        2 => Vec::new(),
        3 => vec![b'L'; 255],
        4 => vec![b'M'; 256],
        5 => b"new\nline".to_vec(),
        6 => b"tab\there".to_vec(),
        7 => b"back\\slash".to_vec(),
        8 => b"lat\xe9n-\xff".to_vec(),
        9 => b"outside".to_vec(),
        _ => b"restore-report.json".to_vec(),
    }
}

/// A random target path: usually absolute, one to four components.
fn random_path(rng: &mut Rng) -> Vec<u8> {
    let mut p = Vec::new();
    if rng.chance(96) {
        p.push(b'/');
    }
    let depth = 1 + rng.below(4);
    for i in 0..depth {
        if i > 0 {
            p.push(b'/');
        }
        p.extend(component(rng));
    }
    if rng.chance(3) {
        p.push(b'/');
    }
    p
}

/// What the attacker wants to touch: files, a directory and links with known content, modes and
/// times, next to the restore root.
fn make_outside(dir: &Path) {
    fs::create_dir_all(dir.join("dir/sub")).unwrap();
    fs::write(dir.join("secret.txt"), "secret\n").unwrap();
    fs::write(dir.join("dir/inner.conf"), "inner\n").unwrap();
    fs::write(dir.join("dir/sub/deep"), "deep\n").unwrap();
    std::os::unix::fs::symlink("secret.txt", dir.join("link")).unwrap();
    fs::set_permissions(dir.join("secret.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(dir.join("dir/inner.conf"), fs::Permissions::from_mode(0o640)).unwrap();
    let old = UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    for f in ["secret.txt", "dir/inner.conf", "dir/sub/deep"] {
        fs::File::options().write(true).open(dir.join(f)).unwrap().set_modified(old).unwrap();
    }
    for d in ["dir/sub", "dir", ""] {
        fs::File::open(dir.join(d)).unwrap().set_modified(old).unwrap();
    }
}

/// Everything observable about one path, without following links.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Content digest (files) or link text (links).
    what: String,
    /// mtime of a non-directory, (s, ns).
    mtime: (i64, i64),
    /// mtime of a directory (changes with its entries).
    dir_mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Every path under `dir` (itself included as ""), by raw name bytes.
fn snapshot(dir: &Path) -> BTreeMap<Vec<u8>, Node> {
    fn walk(base: &Path, p: &Path, out: &mut BTreeMap<Vec<u8>, Node>) {
        let Ok(m) = fs::symlink_metadata(p) else { return };
        let ft = m.file_type();
        let (kind, what) = if ft.is_symlink() {
            ("link", String::from_utf8_lossy(fs::read_link(p).unwrap().as_os_str().as_bytes()).into_owned())
        } else if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_file() {
            ("file", sha256_hex(&fs::read(p).unwrap()))
        } else {
            ("other", String::new())
        };
        let t = (m.mtime(), m.mtime_nsec());
        let rel = p.strip_prefix(base).unwrap().as_os_str().as_bytes().to_vec();
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
                what,
                mtime: if ft.is_dir() { (0, 0) } else { t },
                dir_mtime: if ft.is_dir() { t } else { (0, 0) },
                ctime: (m.ctime(), m.ctime_nsec()),
            },
        );
        if ft.is_dir() {
            let mut names: Vec<_> = fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
            names.sort();
            for n in names {
                walk(base, &n, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What differs between two snapshots, for a failure message (`strict`: times of directories
/// and change times too).
fn differences(before: &BTreeMap<Vec<u8>, Node>, after: &BTreeMap<Vec<u8>, Node>, strict: bool) -> Vec<String> {
    let show = |p: &[u8]| format!("{:?}", String::from_utf8_lossy(p));
    let mut out = Vec::new();
    for (p, a) in before {
        match after.get(p) {
            None => out.push(format!("{} disappeared", show(p))),
            Some(b) => {
                let (mut a, mut b) = (a.clone(), b.clone());
                if !strict {
                    a.dir_mtime = (0, 0);
                    b.dir_mtime = (0, 0);
                    a.ctime = (0, 0);
                    b.ctime = (0, 0);
                }
                if a != b {
                    out.push(format!("{} changed: {a:?} -> {b:?}", show(p)));
                }
            }
        }
    }
    for p in after.keys().filter(|p| !before.contains_key(*p)) {
        out.push(format!("{} appeared", show(p)));
    }
    out
}

/// The small real bundle every case starts from, and the source paths it holds.
fn base_bundle(t: &Path) -> PathBuf {
    let src = t.join("src");
    fs::create_dir_all(src.join("etc/app/conf.d")).unwrap();
    fs::create_dir_all(src.join("srv/data")).unwrap();
    fs::create_dir_all(src.join("srv/db")).unwrap();
    fs::write(src.join("etc/app/app.conf"), "listen = 8080\n").unwrap();
    fs::set_permissions(src.join("etc/app/app.conf"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(src.join("etc/app/conf.d/10-a.conf"), "a = 1\n").unwrap();
    std::os::unix::fs::symlink("conf.d/10-a.conf", src.join("etc/app/current")).unwrap();
    fs::write(src.join("srv/data/blob.bin"), (0..2048u32).map(|i| (i * 7) as u8).collect::<Vec<_>>()).unwrap();
    let conn = rusqlite::Connection::open(src.join("srv/db/app.db")).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('one'), ('two');")
        .unwrap();
    drop(conn);
    let cfg = format!(
        "[bundle]\noutput_dir = \"{}\"\nname = \"gen\"\n\n[[sqlite]]\nname = \"app\"\npath = \"{}\"\n\n\
         [[files]]\nkind = \"config\"\npaths = [\"{}\"]\n\n[[files]]\nkind = \"data\"\npaths = [\"{}\"]\n",
        t.join("out").display(),
        src.join("srv/db/app.db").display(),
        src.join("etc/app").display(),
        src.join("srv/data").display()
    );
    let p = t.join("packer.toml");
    fs::write(&p, cfg).unwrap();
    create(&p)
}

/// One generated case: the bundle to write, what to plant in the root first, the flags.
struct Case {
    bundle: Crafted,
    /// The text of `checksums.sha256` (`None`: the true list).
    sums: Option<String>,
    /// (path under root, what): planted before the restore.
    plant: Vec<(Vec<u8>, Plant)>,
    overwrite: bool,
    /// No `--checkpoint-dir`: the checkpoint goes to its default under the root.
    default_checkpoint: bool,
    /// `--root`, `--checkpoint-dir` and `--from` spelled relative to the case directory.
    relative: bool,
    /// After a success, restore the untouched base bundle onto the same root (default
    /// checkpoint, --overwrite): what the first bundle left must not steer the next restore.
    second: bool,
    /// What the generator did, for the failure message.
    log: Vec<String>,
}

#[derive(Debug, Clone)]
enum Plant {
    Link(Vec<u8>),
    File(Vec<u8>),
    Dir,
}

fn files(c: &mut Crafted) -> &mut Vec<Value> {
    c.manifest["files"].as_array_mut().unwrap()
}

fn show(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

/// The default checkpoint base under the root, and its parents.
const CHECKPOINTS: &str = "var/lib/n8n-restore/checkpoints";
const CHECKPOINTS_PARENTS: [&str; 3] = ["var", "var/lib", "var/lib/n8n-restore"];

/// Whether `p` (relative to the root) is the default checkpoint, inside it, or one of its parents.
fn is_checkpoint_path(p: &[u8]) -> bool {
    CHECKPOINTS_PARENTS.iter().any(|c| p == c.as_bytes())
        || p == CHECKPOINTS.as_bytes()
        || p.starts_with(format!("{CHECKPOINTS}/").as_bytes())
}

/// Targets the attacker's links point at.
fn link_target(rng: &mut Rng, outside: &Path) -> Vec<u8> {
    let o = outside.as_os_str().as_bytes();
    let join = |s: &str| [o, s.as_bytes()].concat();
    match rng.below(10) {
        0 => o.to_vec(),
        1 => join("/secret.txt"),
        2 => join("/dir"),
        3 => join("/missing"),
        4 => b"../../../outside".to_vec(),
        5 => [b"../".repeat(1 + rng.below(12)), b"outside/dir".to_vec()].concat(),
        6 => b"conf.d/10-a.conf".to_vec(),
        7 => b"/".to_vec(),
        8 => b"lat\xe9n\n".to_vec(),
        _ => random_path(rng),
    }
}

#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn generate(seed: u64, case: u64, base: &Crafted, outside: &Path) -> Case {
    let mut rng = Rng(seed ^ case.wrapping_mul(0xa076_1d64_78bd_642f));
    rng.next();
    let mut c = base.clone();
    let mut log = Vec::new();
    let mut plant = Vec::new();
    let templates = files(&mut c).clone();
    let tpl = |kind: &str| templates.iter().find(|f| f["type"] == kind).unwrap().clone();
    let (file_tpl, dir_tpl, link_tpl) = (tpl("file"), tpl("dir"), tpl("symlink"));
    let mut fresh = 0;
    let mut new_entry = |c: &mut Crafted, rng: &mut Rng| -> String {
        fresh += 1;
        let name = format!("files/gen/{fresh}");
        let len = rng.below(300);
        c.entries.push(Entry::file(&name, &vec![b'g'; len]));
        name
    };
    let ops = 1 + rng.below(5);
    for _ in 0..ops {
        let n = files(&mut c).len();
        match rng.below(13) {
            0 => {
                let i = rng.below(n);
                let p = random_path(&mut rng);
                log.push(format!("files[{i}].path = {}", show(&p)));
                files(&mut c)[i]["path"] = path_json(&p);
            }
            1 => {
                let p = random_path(&mut rng);
                let mut r = dir_tpl.clone();
                r["path"] = path_json(&p);
                log.push(format!("dir record {}", show(&p)));
                files(&mut c).push(r);
            }
            2 => {
                let p = if rng.chance(20) {
                    let at = *rng.pick(&[CHECKPOINTS_PARENTS[1], CHECKPOINTS_PARENTS[2], CHECKPOINTS]);
                    format!("/{at}").into_bytes()
                } else {
                    random_path(&mut rng)
                };
                let target = link_target(&mut rng, outside);
                let mut r = link_tpl.clone();
                r["path"] = path_json(&p);
                r["target"] = path_json(&target);
                log.push(format!("link record {} -> {}", show(&p), show(&target)));
                files(&mut c).push(r);
            }
            3 => {
                let p = if rng.chance(10) {
                    // A journal for the next restore to "roll back".
                    b"/var/lib/n8n-restore/checkpoints/20000101000000/checkpoint.jsonl".to_vec()
                } else {
                    random_path(&mut rng)
                };
                let mut r = file_tpl.clone();
                r["path"] = path_json(&p);
                let entry = match rng.below(4) {
                    0 => {
                        // An entry another record already claims.
                        let other =
                            files(&mut c).iter().filter_map(|f| f["entry"].as_str()).next().unwrap().to_string();
                        other
                    }
                    1 => "files/missing/entry".to_string(),
                    2 => rng
                        .pick(&["files/../escape", "files//x", "/abs/entry", "files/a\\b", "manifest.json"])
                        .to_string(),
                    _ => new_entry(&mut c, &mut rng),
                };
                r["entry"] = entry.clone().into();
                log.push(format!("file record {} entry {entry:?}", show(&p)));
                files(&mut c).push(r);
            }
            4 => {
                // Two records for one path, maybe of different kinds.
                let i = rng.below(n);
                let mut r = rng.pick(&[file_tpl.clone(), dir_tpl.clone(), link_tpl.clone()]).clone();
                r["path"] = files(&mut c)[i]["path"].clone();
                if r["type"] == "file" && rng.chance(70) {
                    r["entry"] = new_entry(&mut c, &mut rng).into();
                }
                if r["type"] == "symlink" {
                    r["target"] = path_json(&link_target(&mut rng, outside));
                }
                log.push(format!("second {} record for files[{i}] {}", r["type"], r["path"]));
                files(&mut c).push(r);
            }
            5 => {
                // A record below another record.
                let i = rng.below(n);
                let Some(mut p) = path_bytes(&files(&mut c)[i]["path"]) else { continue };
                p.push(b'/');
                p.extend(component(&mut rng));
                let mut r = rng.pick(&[file_tpl.clone(), dir_tpl.clone()]).clone();
                r["path"] = path_json(&p);
                if r["type"] == "file" {
                    r["entry"] = new_entry(&mut c, &mut rng).into();
                }
                log.push(format!("{} record {} below files[{i}] ({})", r["type"], show(&p), files(&mut c)[i]["type"]));
                files(&mut c).push(r);
            }
            6 => {
                // A link out, and a record through it.
                let p = random_path(&mut rng);
                let target = link_target(&mut rng, outside);
                let mut l = link_tpl.clone();
                l["path"] = path_json(&p);
                l["target"] = path_json(&target);
                let mut below = p.clone();
                below.extend_from_slice(b"/planted");
                let mut r = file_tpl.clone();
                r["path"] = path_json(&below);
                r["entry"] = new_entry(&mut c, &mut rng).into();
                log.push(format!("link {} -> {} and a file record below it", show(&p), show(&target)));
                let list = files(&mut c);
                if rng.chance(50) {
                    list.push(l);
                    list.push(r);
                } else {
                    list.insert(0, r);
                    list.push(l);
                }
            }
            7 => {
                let existing = c.entries[rng.below(c.entries.len())].clone();
                let o = outside.as_os_str().as_bytes().to_vec();
                let e = match rng.below(7) {
                    0 => Entry::file("files/unlisted", b"unlisted\n"),
                    1 => existing.clone(),
                    2 => Entry { name: b"files/".to_vec(), kind: EntryType::Directory, data: vec![], link: None },
                    3 => Entry { name: b"files/sym".to_vec(), kind: EntryType::Symlink, data: vec![], link: Some(o) },
                    4 => Entry {
                        name: b"files/hard".to_vec(),
                        kind: EntryType::Link,
                        data: vec![],
                        link: Some(existing.name.clone()),
                    },
                    5 => Entry {
                        name: b"files/lat\xe9n".to_vec(),
                        kind: EntryType::Regular,
                        data: b"x".to_vec(),
                        link: None,
                    },
                    _ => {
                        log.push("an entry after checksums.sha256".into());
                        c.after.push(Entry::file("files/late", b"late\n"));
                        continue;
                    }
                };
                log.push(format!("extra {:?} entry {}", e.kind, show(&e.name)));
                let at = rng.below(c.entries.len() + 1);
                c.entries.insert(at, e);
            }
            8 => {
                // Plant a link out of the root on the way to (or at) a record's target.
                let i = rng.below(n);
                let Some(p) = path_bytes(&files(&mut c)[i]["path"]) else { continue };
                let Some(rel) = normalise(&p) else { continue };
                let comps: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
                let k = 1 + rng.below(comps.len());
                let at = comps[..k].join(&b'/');
                let what = match rng.below(4) {
                    0 => Plant::Link(link_target(&mut rng, outside)),
                    1 => Plant::Link(outside.join("secret.txt").as_os_str().as_bytes().to_vec()),
                    2 => Plant::File(b"already here\n".to_vec()),
                    _ => Plant::Dir,
                };
                log.push(format!("plant {what:?} at {}", show(&at)));
                plant.push((at, what));
            }
            9 => {
                let p = if rng.chance(50) {
                    random_path(&mut rng)
                } else {
                    let i = rng.below(n);
                    path_bytes(&files(&mut c)[i]["path"]).unwrap_or_default()
                };
                log.push(format!("sqlite[0].path = {}", show(&p)));
                c.manifest["sqlite"][0]["path"] = path_json(&p);
            }
            10 => {
                let i = rng.below(n);
                let mode = *rng.pick(&[0o4755u32, 0o2755, 0o1777, 0o777, 0o600, 0o700, 0o100644, 0o7777]);
                log.push(format!("files[{i}].mode = {mode:o}"));
                files(&mut c)[i]["mode"] = mode.into();
            }
            11 => {
                let i = rng.below(n);
                log.push(format!("files[{i}] user/group root"));
                files(&mut c)[i]["user"] = "root".into();
                files(&mut c)[i]["uid"] = 4_000_000_000u32.into();
            }
            _ => {
                // A record's kind changed in place.
                let i = rng.below(n);
                let kind = *rng.pick(&["file", "dir", "symlink"]);
                log.push(format!("files[{i}].type = {kind}"));
                let r = &mut files(&mut c)[i];
                r["type"] = kind.into();
                if kind == "symlink" && r.get("target").is_none() {
                    r["target"] = path_json(&link_target(&mut rng, outside));
                }
            }
        }
    }
    let mut sums = None;
    if rng.chance(88) {
        c.reseal();
    } else {
        log.push("not resealed".into());
    }
    if rng.chance(6) {
        let i = rng.below(c.entries.len());
        let e = &mut c.entries[i];
        if rng.chance(50) {
            e.data.push(b'!');
        } else {
            e.data.pop();
        }
        log.push(format!("entry {} size changed after sealing", show(&e.name)));
    }
    if rng.chance(3) {
        log.push("checksum list replaced".into());
        sums = Some(format!("{}  manifest.json\n", "0".repeat(64)));
    }
    let default_checkpoint = rng.chance(25);
    if default_checkpoint && rng.chance(60) {
        // Where the default checkpoint goes, made a link out by an attacker beforehand.
        let at = *rng.pick(&[CHECKPOINTS_PARENTS[0], CHECKPOINTS_PARENTS[1], CHECKPOINTS_PARENTS[2], CHECKPOINTS]);
        let depth = at.matches('/').count() + 1;
        let target = match rng.below(3) {
            0 => outside.as_os_str().as_bytes().to_vec(),
            1 => outside.join("dir").as_os_str().as_bytes().to_vec(),
            _ => [b"../".repeat(depth), b"outside".to_vec()].concat(),
        };
        log.push(format!("plant link at {at} -> {}", show(&target)));
        plant.push((at.as_bytes().to_vec(), Plant::Link(target)));
    }
    let overwrite = rng.chance(50);
    let second = rng.chance(30);
    let relative = rng.chance(20);
    Case { bundle: c, sums, plant, overwrite, default_checkpoint, relative, second, log }
}

/// `/a/./b/` -> `a/b`, as the restore reads an absolute path; `None` for what it refuses.
fn normalise(p: &[u8]) -> Option<Vec<u8>> {
    let path = Path::new(OsStr::from_bytes(p));
    let mut comps = path.components();
    if comps.next() != Some(Component::RootDir) {
        return None;
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for c in comps {
        match c {
            Component::Normal(n) => out.push(n.as_bytes()),
            _ => return None,
        }
    }
    (!out.is_empty()).then(|| out.join(&b'/'))
}

fn plant_in(root: &Path, at: &[u8], what: &Plant) {
    let p = root.join(OsStr::from_bytes(at));
    if fs::symlink_metadata(&p).is_ok() {
        return;
    }
    // Parents that already hold a planted file or link are left alone: the plant is skipped.
    if let Some(parent) = p.parent() {
        if fs::create_dir_all(parent).is_err()
            || !fs::canonicalize(parent).map(|r| r.starts_with(root)).unwrap_or(false)
        {
            return;
        }
    }
    let _ = match what {
        Plant::Link(t) => std::os::unix::fs::symlink(OsStr::from_bytes(t), &p),
        Plant::File(d) => fs::write(&p, d),
        Plant::Dir => fs::create_dir(&p),
    };
}

/// Every path the manifest restores, and their parents, relative to the root.
fn named_paths(manifest: &Value) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    let records =
        manifest["files"].as_array().into_iter().flatten().chain(manifest["sqlite"].as_array().into_iter().flatten());
    for r in records {
        let Some(rel) = path_bytes(&r["path"]).and_then(|p| normalise(&p)) else { continue };
        let mut cur = Vec::new();
        for (i, c) in rel.split(|b| *b == b'/').enumerate() {
            if i > 0 {
                cur.push(b'/');
            }
            cur.extend_from_slice(c);
            out.insert(cur.clone());
        }
    }
    out
}

/// Runs the restore with a time limit (a hang is a failure, not a stuck CI job).
fn run_restore(args: &mut Command) -> (Option<i32>, String) {
    let mut child = args.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Some(_st) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            return (out.status.code(), text);
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            return (None, format!("killed after 120 s\n{}", String::from_utf8_lossy(&out.stderr)));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs one case in its own directory; returns the exit code, or what went wrong.
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn run_case(seed: u64, n: u64, base: &Crafted, base_file: &Path, work: &Path) -> Result<i32, String> {
    let dir = work.join(format!("case{n}"));
    let (root, outside, cp) = (dir.join("root"), dir.join("outside"), dir.join("cp"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&cp).unwrap();
    make_outside(&outside);
    let case = generate(seed, n, base, &outside);
    for (at, what) in &case.plant {
        plant_in(&root, at, what);
    }
    let bundle = dir.join("case.n8n_backup.tar.gz");
    case.bundle.write(&bundle, case.sums.as_deref());
    let report = dir.join("report.json");
    let (outside_before, root_before, dir_before) = (snapshot(&outside), snapshot(&root), names(&dir));
    let spell = |p: &Path| if case.relative { p.strip_prefix(&dir).unwrap().to_path_buf() } else { p.to_path_buf() };
    let mut cmd = Command::new(restorer_path());
    cmd.args(["--yes", "--no-install", "--no-services", "--root"]).arg(spell(&root));
    if case.overwrite {
        cmd.arg("--overwrite");
    }
    if !case.default_checkpoint {
        cmd.arg("--checkpoint-dir").arg(spell(&cp.join("c")));
    }
    cmd.arg("--report").arg(spell(&report)).arg("--from").arg(spell(&bundle));
    cmd.env_remove("RESTORE_POSTGRES_URL").current_dir(&dir);
    let (code, output) = run_restore(&mut cmd);

    let mut problems = Vec::new();
    let code = match code {
        None => {
            problems.push("ended by a signal or hung".to_string());
            -1
        }
        Some(c) => c,
    };
    if code == 101 {
        problems.push("panicked".into());
    }
    if ![exit::OK, exit::FAILED, exit::CORRUPT, exit::VALIDATION_FAILED, exit::REFUSED].contains(&code) {
        problems.push(format!("unexpected exit code {code}"));
    }
    let moved = differences(&outside_before, &snapshot(&outside), true);
    if !moved.is_empty() {
        problems.push(format!("outside/ changed: {}", moved.join("; ")));
    }
    let refused = code == exit::CORRUPT || code == exit::REFUSED;
    let mut root_after = snapshot(&root);
    if refused {
        let d = differences(&root_before, &root_after, true);
        if !d.is_empty() {
            problems.push(format!("refused (exit {code}) but the root changed: {}", d.join("; ")));
        }
    }
    if !refused && case.default_checkpoint {
        // The checkpoint (and the parents made for it) is what a restore that ran leaves in the
        // root by design; it is judged with the rest when it was already there.
        root_after.retain(|p, _| !is_checkpoint_path(p) || root_before.contains_key(p));
    }
    if code == exit::FAILED {
        // A rollback puts back every name, kind, content, mode, owner and file time; it cannot
        // give a directory back the mtime its listing had (creating and removing an entry moves it).
        let d = differences(&root_before, &root_after, false);
        if !d.is_empty() {
            problems.push(format!("rolled back (exit 1) but the root differs: {}", d.join("; ")));
        }
    }
    if code == exit::OK || code == exit::VALIDATION_FAILED {
        let named = named_paths(&case.bundle.manifest);
        let extra: Vec<String> = root_after
            .keys()
            .filter(|p| !p.is_empty() && !named.contains(*p) && !root_before.contains_key(*p))
            .map(|p| show(p))
            .collect();
        if !extra.is_empty() {
            problems.push(format!("restored paths no record names: {}", extra.join(", ")));
        }
    }
    // Beside the bundle: the unpacked bundle, the report and the checkpoint only once the
    // restore ran; after a refusal nothing at all.
    let dir_after = names(&dir);
    let new: Vec<&String> = dir_after.iter().filter(|p| !dir_before.contains(*p)).collect();
    let allowed: &[&str] = if refused { &[] } else { &["case.n8n_backup", "report.json"] };
    let stray: Vec<&&String> = new.iter().filter(|p| !allowed.contains(&p.as_str())).collect();
    if !stray.is_empty() {
        problems.push(format!("left beside the bundle after exit {code}: {stray:?}"));
    }
    if refused && fs::read_dir(&cp).unwrap().next().is_some() {
        problems.push(format!("a checkpoint was left after a refusal (exit {code})"));
    }
    if problems.is_empty() && code == exit::OK && case.second {
        let before = snapshot(&outside);
        let mut cmd = Command::new(restorer_path());
        cmd.args(["--yes", "--no-install", "--no-services", "--overwrite", "--root"]).arg(&root);
        cmd.arg("--report").arg(dir.join("report2.json")).arg("--from").arg(base_file);
        let (code2, out2) = run_restore(cmd.env_remove("RESTORE_POSTGRES_URL").current_dir(&dir));
        if !matches!(code2, Some(0 | 1 | 3 | 4 | 5)) {
            problems.push(format!("the next restore onto that root ended with {code2:?}: {out2}"));
        }
        let moved = differences(&before, &snapshot(&outside), true);
        if !moved.is_empty() {
            problems.push(format!("the next restore onto that root changed outside/: {}", moved.join("; ")));
        }
    }
    if problems.is_empty() {
        let _ = fs::remove_dir_all(&dir);
        return Ok(code);
    }
    Err(format!(
        "case {n} (replay: GENERATED_SEED={seed:#x} GENERATED_ONLY={n}), overwrite={}, default checkpoint={}, relative={}:\n  generated: {}\n  problems: {}\n  restore said: {}",
        case.overwrite,
        case.default_checkpoint,
        case.relative,
        case.log.join("; "),
        problems.join("\n            "),
        output.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n    ")
    ))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Hundreds of hostile but self-consistent bundles, restored under a temporary root: nothing
/// outside the root changes, no panic, a refusal or rollback leaves the root as it was, and a
/// success writes only the paths the manifest names.
#[test]
fn generated_hostile_bundles_never_act_outside_the_root() {
    let t = tempfile::tempdir().unwrap();
    let mut base = Crafted::read(&base_bundle(t.path()));
    // The restore under test runs from $PACKER_RESTORER; the 6 MB copy of it inside the bundle
    // would only be hashed and compressed again for every case (seconds each in a debug build).
    let bin = restorer::layout::RESTORE_BIN;
    base.entries.retain(|e| e.name != bin.as_bytes());
    base.manifest["support"].as_array_mut().unwrap().retain(|s| s["entry"] != bin);
    let seed = env_u64("GENERATED_SEED").unwrap_or(DEFAULT_SEED);
    let cases: Vec<u64> = match env_u64("GENERATED_ONLY") {
        Some(n) => vec![n],
        None => (0..env_u64("GENERATED_CASES").unwrap_or(DEFAULT_CASES)).collect(),
    };
    let work = t.path().join("cases");
    let base_file = t.path().join("base.n8n_backup.tar.gz");
    base.write(&base_file, None);
    let started = Instant::now();
    let mut codes: BTreeMap<i32, u32> = BTreeMap::new();
    let mut failures = Vec::new();
    for &n in &cases {
        match run_case(seed, n, &base, &base_file, &work) {
            Ok(code) => *codes.entry(code).or_default() += 1,
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "{} generated cases (seed {seed:#x}) in {:.1} s: exit codes {codes:?}, {} failed",
        cases.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} case(s) broke an assertion:\n{}", failures.len(), failures.join("\n\n"));
    if cases.len() >= 100 {
        // The generator must keep reaching both sides: restores that go through, and refusals.
        for code in [exit::OK, exit::REFUSED] {
            assert!(codes.get(&code).copied().unwrap_or(0) >= 5, "too few cases ended with exit {code}: {codes:?}");
        }
    }
}
