//! Finding the static `restore` binary to embed, and refusing a dynamically linked one: on a
//! fresh host (or another distribution) a dynamic binary may not even start.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where packer looks, in order: `--restorer`, `$PACKER_RESTORER`, `restore` beside the packer
/// binary, and the musl release build of this workspace (`scripts/build-release.sh`).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("PACKER_RESTORER") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating the packer binary")?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut candidates = vec![dir.join("restore")];
    // target/{debug,release}/packer -> target/x86_64-unknown-linux-musl/release/restore
    if let Some(target) = dir.parent() {
        candidates.push(target.join("x86_64-unknown-linux-musl/release/restore"));
    }
    for c in &candidates {
        if c.is_file() && is_static_elf(c).unwrap_or(false) {
            return Ok(c.clone());
        }
    }
    bail!(
        "no static restore binary found (looked at {}); build it with scripts/build-release.sh, or pass --restorer PATH",
        candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// True when `path` is a 64-bit little-endian ELF with no PT_INTERP program header (no dynamic
/// loader: a static or static-pie binary).
pub fn is_static_elf(path: &Path) -> Result<bool> {
    let mut head = Vec::new();
    File::open(path).with_context(|| format!("opening {}", path.display()))?.take(64 * 1024).read_to_end(&mut head)?;
    if head.len() < 64 || &head[..4] != b"\x7fELF" {
        bail!("{} is not an ELF executable", path.display());
    }
    if head[4] != 2 || head[5] != 1 {
        bail!("{} is not a 64-bit little-endian ELF", path.display());
    }
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(head[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > head.len() {
            bail!("{}: program headers beyond the first 64 KiB", path.display());
        }
        const PT_INTERP: u32 = 3;
        if u32::from_le_bytes(head[o..o + 4].try_into().unwrap()) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks the binary is static, with an error that says what to do.
pub fn check(path: &Path) -> Result<()> {
    if !is_static_elf(path)? {
        bail!(
            "{} is dynamically linked (it has an ELF interpreter): it may not run on the new host. Build the static one: scripts/build-release.sh (target x86_64-unknown-linux-musl)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself is dynamically linked (glibc): refused.
    #[test]
    fn dynamic_binary_is_detected() {
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_elf(&me).unwrap());
        assert!(check(&me).is_err());
    }

    #[test]
    fn non_elf_is_an_error() {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), b"#!/bin/sh\necho hi\n").unwrap();
        assert!(is_static_elf(t.path()).is_err());
    }
}
