//! The manifest's `docker` section: a deployment run by Docker Compose (or plain containers),
//! whose databases live inside containers and whose data lives in named volumes. A restore on a
//! new host rebuilds it in order: project files and volumes back, the database services started
//! alone, the dumps restored into them, then everything else (so the app never starts on, or
//! migrates, an empty database).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;

/// Everything the bundle knows about the source host's Docker deployment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DockerInfo {
    /// Compose projects whose files the bundle holds.
    #[serde(default)]
    pub compose: Vec<ComposeProject>,
    /// Named volumes captured; their files are `files[]` records below `mountpoint`.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Images saved into the bundle (`include_images = true`), `docker load`ed before start.
    #[serde(default)]
    pub images: Vec<SavedImage>,
}

/// One compose project.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComposeProject {
    /// The project name (`-p`), as compose named its containers, volumes and networks.
    pub project: String,
    /// The project directory (compose's working directory: relative paths, `.env`).
    #[serde(with = "crate::raw_path")]
    pub directory: PathBuf,
    /// The compose files (`-f`, in order), each also a `files[]` record.
    pub files: Vec<PathBuf>,
    /// Every service with the image it ran on the source host.
    #[serde(default)]
    pub services: Vec<ComposeService>,
}

/// A service of a compose project.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComposeService {
    /// Service name.
    pub name: String,
    /// Image reference as configured (`postgres:16`, `docker.n8n.io/n8nio/n8n:2.8.4`).
    pub image: String,
    /// The image id the running container used (`sha256:...`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Repository digests of that image (`repo@sha256:...`), when it came from a registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
    /// Host ports the service publishes (the restore's pre-flight checks they are free).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
}

/// A named volume and where its data lived on the source host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Volume {
    /// Volume name (`n8n_n8n_storage`).
    pub name: String,
    /// Its mount point on the source host (`/var/lib/docker/volumes/<name>/_data`); the restore
    /// writes the volume's records into the new volume's own mount point.
    #[serde(with = "crate::raw_path")]
    pub mountpoint: PathBuf,
    /// The compose project that owns it, when one does (`com.docker.compose.project` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// An image saved with `docker save`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedImage {
    /// The references it is tagged with.
    pub references: Vec<String>,
    /// Image id.
    pub id: String,
    /// The support entry holding the `docker save` tar (`images/<id>.tar`).
    pub entry: String,
}

/// Where a PostgreSQL database lives when it is inside a container (`postgres[].container`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DbContainer {
    /// The container's name on the source host.
    pub name: String,
    /// The compose project and service it belongs to, when it is a compose service: the restore
    /// starts that service alone and restores into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The compose service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The role the container's environment names (`POSTGRES_USER`), used to reach it inside.
    pub user: String,
}

/// Forgets the owner names of the records inside a captured volume, so that they are restored by
/// their numeric ids. Those ids belong to the users of the containers that mount the volume
/// (n8n's `node` is 1000), not to the source host's accounts: restored by name, a uid 1000 that
/// the source host calls `debian` would make the new host create a system account `debian`
/// (another uid, 999) and hand it the files, which the container then cannot read.
pub fn volume_owners_by_id(m: &mut Manifest) {
    let mountpoints: Vec<PathBuf> = m.docker.iter().flat_map(|d| &d.volumes).map(|v| v.mountpoint.clone()).collect();
    let inside = |p: &std::path::Path| mountpoints.iter().any(|mp| p.starts_with(mp));
    let metas = m
        .files
        .iter_mut()
        .filter(|f| inside(&f.path))
        .map(|f| &mut f.meta)
        .chain(m.sqlite.iter_mut().filter(|s| inside(&s.path)).map(|s| &mut s.meta));
    for meta in metas {
        meta.user = None;
        meta.group = None;
    }
}

/// Entry name of a saved image.
pub fn image_entry(id: &str) -> String {
    let hex: String = id.trim_start_matches("sha256:").chars().filter(char::is_ascii_hexdigit).take(64).collect();
    format!("images/{hex}.tar")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FileKind;
    use crate::manifest::{FileContent, FileMeta, FileRecord};
    use crate::owners::Accounts;

    /// Files inside a volume come back with their numeric owners even when the source host had a
    /// name for the id (uid 1000 is a login user on many hosts) that the new host lacks: no
    /// account is created for it and the name is not looked up. Files outside keep their names.
    #[test]
    fn volume_files_keep_numeric_owners() {
        let rec = |path: &str| FileRecord {
            kind: FileKind::Data,
            path: path.into(),
            meta: FileMeta {
                uid: 1000,
                gid: 1000,
                user: Some("debian".into()),
                group: Some("debian".into()),
                ..Default::default()
            },
            content: FileContent::Dir,
        };
        let mut m: Manifest = serde_json::from_str(
            r#"{"format_version":1,"created_by":"t","created_at":"2026-01-01T00:00:00Z","bundle_name":"n","source_host":{"hostname":"h","os":"o","arch":"a"}}"#,
        )
        .unwrap();
        m.files = vec![
            rec("/var/lib/docker/volumes/n8n_n8n_storage/_data"),
            rec("/var/lib/docker/volumes/n8n_n8n_storage/_data/config"),
            rec("/var/lib/docker/volumes/n8n_n8n_storage_other/_data/x"),
            rec("/home/debian/notes"),
        ];
        m.docker = Some(DockerInfo {
            volumes: vec![Volume {
                name: "n8n_n8n_storage".into(),
                mountpoint: "/var/lib/docker/volumes/n8n_n8n_storage/_data".into(),
                project: None,
            }],
            ..Default::default()
        });
        volume_owners_by_id(&mut m);
        let names: Vec<_> = m.files.iter().map(|f| (f.meta.user.as_deref(), f.meta.group.as_deref())).collect();
        assert_eq!(
            names,
            [(None, None), (None, None), (Some("debian"), Some("debian")), (Some("debian"), Some("debian"))]
        );
        assert!(m.files.iter().all(|f| (f.meta.uid, f.meta.gid) == (1000, 1000)));
        m.files.truncate(2);
        let fresh = Accounts::from_text("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n");
        assert_eq!(crate::steps::accounts::missing(&m, &fresh), (vec![], vec![]));
    }
}
