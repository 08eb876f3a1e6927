//! Man pages and shell completions generated from a binary's clap definition (`packer`'s and
//! `restore`'s alike): the page, the completions and `--help` come from one source and cannot
//! drift apart. Used by `packer man|completions` and `restore man|completions`, and by
//! scripts/build-deb.sh to fill the Debian package.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Without `dir`: renders the top-level page (`NAME.1`) to `out`. With `dir`: writes one page
/// per visible subcommand too (`packer.1`, `packer-create.1`, `packer-catalog-rebuild.1`, ...)
/// and returns their paths, sorted.
pub fn man(cmd: clap::Command, dir: Option<&Path>, out: &mut dyn Write) -> std::io::Result<Vec<PathBuf>> {
    // `help` is clap's own subcommand, not one of ours: no page for it.
    let cmd = cmd.disable_help_subcommand(true);
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(out)?;
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd;
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    written.sort();
    Ok(written)
}

/// The page of `cmd` and of each visible subcommand, depth first (what clap_mangen's own
/// generate_to does, keeping the paths).
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    written.push(clap_mangen::Man::new(cmd.clone()).generate_to(dir)?);
    Ok(())
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(mut cmd: clap::Command, shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let name = cmd.get_name().to_string();
    // Rendered in memory first: clap_complete panics on a failed write (`| head`, a full disk),
    // where an io::Error lets the binaries treat a broken pipe as success and report the rest.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    out.write_all(&script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> clap::Command {
        clap::Command::new("tool")
            .version("1.2.3")
            .about("Does things.")
            .subcommand(clap::Command::new("run").about("Runs it.").arg(clap::arg!(--fast "Quickly.")))
            .subcommand(clap::Command::new("secret").hide(true))
            .subcommand(
                clap::Command::new("catalog")
                    .about("Catalog.")
                    .subcommand(clap::Command::new("rebuild").about("Rebuilds.")),
            )
    }

    /// One page per visible (sub)command, named as `man` looks them up; hidden ones and clap's
    /// `help` get none.
    #[test]
    fn man_dir_writes_a_page_per_visible_subcommand() {
        let t = tempfile::tempdir().unwrap();
        let pages = man(sample(), Some(t.path()), &mut std::io::sink()).unwrap();
        let names: Vec<String> = pages.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["tool-catalog-rebuild.1", "tool-catalog.1", "tool-run.1", "tool.1"]);
        let run = std::fs::read_to_string(t.path().join("tool-run.1")).unwrap();
        assert!(run.contains("Runs it."), "{run}");
        assert!(run.contains("fast"), "{run}");
    }

    /// Without a directory the top-level page goes to the writer, as roff.
    #[test]
    fn man_to_stdout_is_the_top_page() {
        let mut out = Vec::new();
        assert!(man(sample(), None, &mut out).unwrap().is_empty());
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(".ie"), "{text}");
        assert!(text.contains(".TH tool 1"), "{text}");
        assert!(text.contains("Does things."), "{text}");
    }

    /// The completion script knows the subcommands and their flags.
    #[test]
    fn completions_name_subcommands_and_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(sample(), shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("run") && text.contains("fast") && text.contains("rebuild"), "{shell}: {text}");
        }
    }
}
