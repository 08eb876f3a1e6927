//! The manifest's `docker` section: a deployment run by Docker Compose (or plain containers),
//! whose databases live inside containers and whose data lives in named volumes. A restore on a
//! new host rebuilds it in order: project files and volumes back, the database services started
//! alone, the dumps restored into them, then everything else (so the app never starts on, or
//! migrates, an empty database).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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

/// Entry name of a saved image.
pub fn image_entry(id: &str) -> String {
    let hex: String = id.trim_start_matches("sha256:").chars().filter(char::is_ascii_hexdigit).take(64).collect();
    format!("images/{hex}.tar")
}
