//! Where a symbolic link leads, resolved one component at a time inside a root, the way the
//! kernel would (at most 40 links, `..` at the root stays at the root). The packer resolves the
//! links it captures on the source host (root `/`) to capture what they point to as well; the
//! validation after a restore resolves the restored links under `--root` (an absolute link text
//! starts at that root, never at the host's `/`), and against the manifest's own records to know
//! where each link must lead.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// What a lookup finds at one logical absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Nothing there.
    Missing,
    /// A symbolic link with this text.
    Link(PathBuf),
    /// A directory.
    Dir,
    /// Anything else (regular file, socket, device).
    Other,
}

/// Where a path ends once every link on the way has been followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Logical absolute path of the object reached (no link, `.` or `..` in it). When `node` is
    /// [`Node::Missing`], the first path that does not exist.
    pub path: PathBuf,
    /// What is there: [`Node::Dir`], [`Node::Other`] or [`Node::Missing`], never a link.
    pub node: Node,
    /// Every link followed on the way, in order (logical absolute paths).
    pub links: Vec<PathBuf>,
    /// A `..` tried to climb above the root (it stayed at the root, as the kernel does at `/`).
    pub climbed_above_root: bool,
}

/// Why a path cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Unresolvable {
    /// More than [`MAX_LINKS`] links on the way: a cycle, most likely.
    #[error("more than {MAX_LINKS} symbolic links on the way (a cycle?), last at {0}")]
    TooManyLinks(PathBuf),
    /// A component other than the last is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The lookup failed (permission denied, I/O error).
    #[error("reading {0}: {1}")]
    Io(PathBuf, io::Error),
}

/// Links followed before giving up, as Linux's `MAXSYMLINKS`.
pub const MAX_LINKS: usize = 40;

/// Resolves the absolute logical path `path`, following every link on the way (the last
/// component included), asking `lookup` what each logical path is. `lookup` is only ever asked
/// about paths whose ancestors it reported as directories.
pub fn resolve(path: &Path, lookup: &mut dyn FnMut(&Path) -> io::Result<Node>) -> Result<Resolved, Unresolvable> {
    let mut cur = PathBuf::from("/");
    let mut node = Node::Dir;
    let mut links = Vec::new();
    let mut climbed_above_root = false;
    // A stack: the next component to look at is the last one.
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, path);
    while let Some(c) = todo.pop() {
        match node {
            Node::Dir => {}
            Node::Missing => {
                // Nothing below a missing path exists either.
                return Ok(Resolved { path: cur, node, links, climbed_above_root });
            }
            _ => return Err(Unresolvable::NotADirectory(cur)),
        }
        if c == ".." {
            climbed_above_root |= !cur.pop();
            continue;
        }
        let next = cur.join(&c);
        match lookup(&next).map_err(|e| Unresolvable::Io(next.clone(), e))? {
            Node::Link(text) => {
                links.push(next.clone());
                if links.len() > MAX_LINKS {
                    return Err(Unresolvable::TooManyLinks(next));
                }
                if text.is_absolute() {
                    cur = PathBuf::from("/");
                }
                // A relative text is read from the link's own directory: `cur` stays.
                push_components(&mut todo, &text);
            }
            found => {
                cur = next;
                node = found;
            }
        }
    }
    Ok(Resolved { path: cur, node, links, climbed_above_root })
}

/// Pushes the components of `p` onto the stack so that the first is popped first; `.` and the
/// root are dropped (the caller handles an absolute text), `..` is kept.
fn push_components(todo: &mut Vec<OsString>, p: &Path) {
    let parts: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

/// A lookup on the real file system with `root` standing for `/`: never follows a link itself
/// (the resolver does), so nothing outside `root` is ever reached through one.
pub fn on_disk(root: &Path) -> impl FnMut(&Path) -> io::Result<Node> + '_ {
    move |p: &Path| {
        let rel = p.strip_prefix("/").unwrap_or(p);
        let real = if rel.as_os_str().is_empty() { root.to_path_buf() } else { root.join(rel) };
        match std::fs::symlink_metadata(&real) {
            Ok(m) if m.file_type().is_symlink() => std::fs::read_link(&real).map(Node::Link),
            Ok(m) if m.is_dir() => Ok(Node::Dir),
            Ok(_) => Ok(Node::Other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Node::Missing),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tree(entries: &[(&str, Node)]) -> BTreeMap<PathBuf, Node> {
        entries.iter().map(|(p, n)| (PathBuf::from(p), n.clone())).collect()
    }

    fn run(t: &BTreeMap<PathBuf, Node>, p: &str) -> Result<Resolved, Unresolvable> {
        resolve(Path::new(p), &mut |q: &Path| Ok(t.get(q).cloned().unwrap_or(Node::Missing)))
    }

    fn link(s: &str) -> Node {
        Node::Link(PathBuf::from(s))
    }

    /// Relative texts start at the link's directory, absolute ones at the root; links to links
    /// and links inside the way are followed; `..` above the root stays at the root.
    #[test]
    fn resolves_like_the_kernel() {
        let t = tree(&[
            ("/etc", Node::Dir),
            ("/etc/nginx", Node::Dir),
            ("/etc/nginx/sites-available", Node::Dir),
            ("/etc/nginx/sites-available/default", Node::Other),
            ("/etc/nginx/sites-enabled", Node::Dir),
            ("/etc/nginx/sites-enabled/default", link("../sites-available/default")),
            ("/etc/nginx/sites-enabled/again", link("default")),
            ("/etc/le", Node::Dir),
            ("/etc/le/archive", Node::Dir),
            ("/etc/le/archive/cert1.pem", Node::Other),
            ("/etc/le/live", link("/etc/le/archive")),
            ("/up", link("../../../etc")),
        ]);
        let r = run(&t, "/etc/nginx/sites-enabled/again").unwrap();
        assert_eq!(r.path, Path::new("/etc/nginx/sites-available/default"));
        assert_eq!(r.node, Node::Other);
        assert_eq!(
            r.links,
            vec![PathBuf::from("/etc/nginx/sites-enabled/again"), PathBuf::from("/etc/nginx/sites-enabled/default")]
        );
        let r = run(&t, "/etc/le/live/cert1.pem").unwrap();
        assert_eq!((r.path.as_path(), r.node), (Path::new("/etc/le/archive/cert1.pem"), Node::Other));
        let r = run(&t, "/up").unwrap();
        assert_eq!((r.path.as_path(), r.node, r.climbed_above_root), (Path::new("/etc"), Node::Dir, true));
        let r = run(&t, "/etc/nginx/sites-enabled/nowhere").unwrap();
        assert_eq!((r.path.as_path(), r.node), (Path::new("/etc/nginx/sites-enabled/nowhere"), Node::Missing));
    }

    /// A cycle stops after MAX_LINKS links; a file used as a directory is named.
    #[test]
    fn cycles_and_files_on_the_way_are_errors() {
        let t = tree(&[("/a", link("b")), ("/b", link("/a")), ("/f", Node::Other), ("/g", link("f/x"))]);
        assert!(matches!(run(&t, "/a"), Err(Unresolvable::TooManyLinks(_))));
        match run(&t, "/g") {
            Err(Unresolvable::NotADirectory(p)) => assert_eq!(p, Path::new("/f")),
            other => panic!("{other:?}"),
        }
    }

    /// On disk under a root, an absolute link text starts at that root, not at the host's `/`.
    #[test]
    fn on_disk_stays_under_the_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/site")).unwrap();
        std::fs::write(d.path().join("etc/site/index"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/site", d.path().join("etc/live")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/passwd", d.path().join("etc/pw")).unwrap();
        let r = resolve(Path::new("/etc/live/index"), &mut on_disk(d.path())).unwrap();
        assert_eq!((r.path.as_path(), r.node), (Path::new("/etc/site/index"), Node::Other));
        let r = resolve(Path::new("/etc/pw"), &mut on_disk(d.path())).unwrap();
        assert_eq!((r.path.as_path(), r.node), (Path::new("/etc/passwd"), Node::Missing), "the host's /etc/passwd");
    }
}
