//! `metadata/system_info.json`: what the source host was, so the operator of the new one knows
//! what to rebuild on (OS, kernel, architecture, CPU, memory, disks).

use restorer::manifest::SourceHost;
use serde::Serialize;
use sysinfo::{Disks, System};

/// The facts recorded.
#[derive(Debug, Serialize)]
pub struct SystemInfo {
    /// Host name.
    pub hostname: String,
    /// `PRETTY_NAME` from /etc/os-release.
    pub os: String,
    /// /etc/os-release `ID` and `VERSION_ID`.
    pub os_id: String,
    /// Kernel version.
    pub kernel: String,
    /// CPU architecture.
    pub arch: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// CPU model.
    pub cpu_model: String,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Mounted disks.
    pub disks: Vec<DiskInfo>,
    /// The packer that made the bundle.
    pub packer_version: String,
}

/// One mounted file system.
#[derive(Debug, Serialize)]
pub struct DiskInfo {
    /// Mount point.
    pub mount_point: String,
    /// File system type.
    pub file_system: String,
    /// Size in bytes.
    pub total_bytes: u64,
    /// Free bytes.
    pub available_bytes: u64,
}

fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (get("PRETTY_NAME"), format!("{} {}", get("ID"), get("VERSION_ID")).trim().to_string())
}

/// Reads this host's facts.
pub fn collect() -> SystemInfo {
    let mut sys = System::new();
    sys.refresh_memory();
    sys.refresh_cpu_all();
    let (os, os_id) = os_release();
    let disks = Disks::new_with_refreshed_list()
        .iter()
        .map(|d| DiskInfo {
            mount_point: d.mount_point().display().to_string(),
            file_system: d.file_system().to_string_lossy().into_owned(),
            total_bytes: d.total_space(),
            available_bytes: d.available_space(),
        })
        .collect();
    SystemInfo {
        hostname: System::host_name().unwrap_or_default(),
        os,
        os_id,
        kernel: System::kernel_version().unwrap_or_default(),
        arch: std::env::consts::ARCH.to_string(),
        cpus: sys.cpus().len(),
        cpu_model: sys.cpus().first().map(|c| c.brand().to_string()).unwrap_or_default(),
        memory_bytes: sys.total_memory(),
        disks,
        packer_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

impl SystemInfo {
    /// The short form kept in the manifest.
    pub fn short(&self) -> SourceHost {
        SourceHost { hostname: self.hostname.clone(), os: self.os.clone(), arch: self.arch.clone() }
    }
}
