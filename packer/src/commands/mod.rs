//! The subcommands: one file each; the doc comment of each variant is its `--help`.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "the subcommands are the CLI's edge: they render")]

pub mod catalog;
pub mod create;
pub mod daemon;
pub mod fetch;
pub mod install_timer;
pub mod list;
pub mod manage;
pub mod prune;
pub mod serve;
pub mod ship;
pub mod show;
pub mod status;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use restorer::log::{Level, Threshold};
use restorer::progress::Terminal;

use crate::exit;

/// Builds bare-metal recovery bundles for self-hosted servers (n8n and any app whose state is
/// PostgreSQL and/or SQLite databases plus config, SSL and data files), keeps them on a
/// schedule with retention, and tells you when something is wrong.
///
/// A bundle is one backup_YYYYMMDDHHMMSS.NAME_backup.tar.gz holding the dumps, the files, a
/// manifest, the sha256 of every entry and a static `restore` binary. On the new host:
/// `tar xzf BUNDLE && ./restore --help`.
///
/// Start with: packer init > packer.toml; edit it; packer --config packer.toml create. From the
/// Debian package: edit /etc/packer/packer.toml (root's default), then `packer create` as root;
/// `systemctl enable --now n8n-backup.timer` runs a cycle on its schedule.
#[derive(Parser, Debug)]
#[command(name = "packer", version, after_help = crate::exit::HELP_TABLE)]
pub struct Cli {
    /// The configuration file. Without --config or PACKER_CONFIG: /etc/packer/packer.toml when
    /// run as root (where the Debian package puts it), ./packer.toml otherwise.
    #[arg(long, short, global = true, value_name = "FILE", env = "PACKER_CONFIG")]
    pub config: Option<PathBuf>,
    /// No progress bars and no narrative on stderr: only warnings, errors and what changed
    /// (deleted, removed, indexed). Off a terminal this is the default.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr (also off a terminal, e.g. in the timer's journal).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// `packer init`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Look at this host and print a configuration for what runs on it, to review (it reads
    /// files only: no database is connected to, no secret is printed).
    #[arg(long)]
    pub detect: bool,
    /// With --detect: look at the host whose / is DIR (a mounted disk, a copy) instead; implies
    /// --detect. Paths in the output are the host's own (without DIR).
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
}

/// Every subcommand.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a commented configuration template (TOML) to stdout; with --detect, one written
    /// from what runs on this host (n8n under compose or systemd, its database, PostgreSQL
    /// clusters, nginx sites and their certificates, enabled services, health URLs), each
    /// choice commented with the file it came from.
    Init(InitArgs),
    /// Create a bundle now: dump every database in one snapshot, copy SQLite safely, capture
    /// files, write manifest and checksums, embed the static restore binary. Written to a
    /// .partial file and published atomically (mode 0600) with a .sha256 sidecar; indexed in the
    /// catalog. Prints the bundle path as the last line of stdout.
    Create(create::Args),
    /// Show a bundle's inventory (databases, tables and row counts, files, versions, creation
    /// time) from the catalog or the bundle's head: instant even for a multi-GB bundle.
    Show(show::Args),
    /// List the bundles in the catalog (newest first) with status, protection and verification.
    List(list::Args),
    /// Apply the [retention] policy: delete (or, with notify_before_hours, mark) the bundles no
    /// rule keeps, and the oldest ones past a limit (max_age_days, max_total_size,
    /// min_free_space_percent). --dry-run prints every bundle with the rules that keep it or why
    /// it goes.
    Prune(prune::Args),
    /// Protect a bundle: retention never removes it.
    Protect(manage::IdArgs),
    /// Remove a bundle's protection.
    Unprotect(manage::IdArgs),
    /// Cancel a pending deletion: the bundle is protected (unprotect to hand it back to retention).
    Keep(manage::IdArgs),
    /// Delete a bundle now (refuses a protected one; asks on a terminal; --yes for scripts).
    Delete(manage::DeleteArgs),
    /// Verify a bundle: every entry's sha256 streamed from the file (nothing extracted) against
    /// its checksum list and manifest, and the file against its .sha256 sidecar. Recorded in
    /// the catalog; exits 3 and notifies on any mismatch. --deep also restores every database
    /// into a throwaway server and compares row counts and n8n workflows (exits 1 when one of
    /// those checks fails on an intact bundle).
    Verify(verify::Args),
    /// Copy a bundle and its sidecar to another machine over ssh (your ssh config, agent and
    /// known_hosts apply; host keys are always checked), verify the copy there with
    /// `sha256sum -c`, optionally unpack it (--extract) and run `./restore ARGS` (--restore -- ARGS).
    /// Or to object storage (s3://bucket/prefix, settings in [ship.s3]): uploaded (in parts when
    /// large, each retried), read back and checked against the sidecar, recorded in the catalog.
    Ship(ship::Args),
    /// Download a bundle and its sidecar from object storage (an s3:// [ship] destination) into
    /// DIR and verify it: the whole file's sha256 against the sidecar, then every entry's digest
    /// (nothing extracted). It gets its final name only once both match; a corrupt object is an
    /// error naming the key and both digests, and leaves nothing behind.
    Fetch(fetch::Args),
    /// Catalog maintenance.
    #[command(subcommand)]
    Catalog(catalog::CatalogCmd),
    /// Last success and its age, last failure and why, next run, bundles, sizes, free space,
    /// pending deletions, missing bundles, last verification, last ship. For monitoring, exits 0
    /// when healthy; 1 when backups are at risk: no success within [schedule] alert_after (or
    /// none yet), the last backup or verification failed, bundles missing from disk; 12 for a
    /// warning: the last ship failed, [ship] destinations set and nothing shipped yet, or the
    /// catalog was damaged and rebuilt.
    Status(status::Args),
    /// Run a cycle on the [schedule] cron until SIGTERM/SIGINT: create, ship to each [ship]
    /// destination, verify when [schedule] verify_every says so, prune (after a failed backup
    /// too). On a signal the bundle being written is finished first; a second signal exits at
    /// once, and the next run removes the .partial it leaves.
    Daemon(daemon::Args),
    /// Write a systemd service + timer pair that runs one scheduled cycle (`packer daemon
    /// --once`), for those who prefer timers to a daemon. --dry-run prints them. With --serve,
    /// the web console's service (`packer serve`) instead.
    InstallTimer(install_timer::Args),
    /// A web console on the same catalog: dashboard, bundles (verify, protect, keep, delete,
    /// download), one bundle's inventory (databases, files, n8n workflows with search, credentials
    /// without secrets) and its restore commands, back up now with live progress, the retention
    /// preview, and JSON under /api/ (the structs of --json).
    ///
    /// Listens on 127.0.0.1:8480 ([serve] listen, --listen); any other address needs TLS
    /// (--tls-cert/--tls-key) or --behind-proxy. Reach it from elsewhere through ssh:
    /// `ssh -L 8480:127.0.0.1:8480 HOST`, then open http://127.0.0.1:8480/.
    ///
    /// First start: `packer serve`, then paste the content of OUTPUT_DIR/console.token (written
    /// 0600 on that start; `sudo cat` it) into the login page. For a password of your own:
    /// `packer serve --hash-password` and put the line it prints in [serve] password_hash.
    /// As a service: `packer install-timer --serve`, then `systemctl enable --now
    /// n8n-backup-console.service`.
    Serve(serve::Args),
    /// Print the completion script for SHELL (bash, zsh, fish, elvish, powershell), e.g.
    /// `packer completions bash > /etc/bash_completion.d/packer`.
    Completions {
        /// The shell.
        shell: restorer::cli_docs::Shell,
    },
    /// Print packer's man page (roff: `packer man | man -l -`); with --dir, write one page per
    /// subcommand there (packer.1, packer-create.1, ...).
    Man {
        /// Write every page into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Where root's configuration lives when no --config is given (the Debian package's conffile).
pub const SYSTEM_CONFIG: &str = "/etc/packer/packer.toml";

/// The configuration file: --config (or PACKER_CONFIG) when given; else /etc/packer/packer.toml
/// for root (a packaged, system-wide install runs as root from the timer) and ./packer.toml for
/// anyone else (as before packaging). Root never falls back to ./packer.toml: which file a root
/// shell acts on must not depend on the directory it stands in.
pub fn config_path(given: Option<PathBuf>, root: bool) -> PathBuf {
    given.unwrap_or_else(|| PathBuf::from(if root { SYSTEM_CONFIG } else { "packer.toml" }))
}

/// `-q` and `-v`, set once from the command line before any command runs.
static VERBOSITY: OnceLock<(bool, bool)> = OnceLock::new();

/// stderr for one command: log lines filtered by the one rule of [`Threshold::new`] (`-q`, `-v`,
/// a terminal or not) and progress bars on a terminal. `quiet` adds the command's own reason
/// to be quiet (JSON on stdout): the narrative and the bars go, warnings and changes stay.
pub fn terminal(quiet: bool) -> Terminal {
    let (q, v) = VERBOSITY.get().copied().unwrap_or_default();
    Terminal::new(Threshold::new(quiet || q, v, Terminal::is_terminal()), quiet || q)
}

/// Whether `-v` was given.
pub fn verbose() -> bool {
    VERBOSITY.get().is_some_and(|v| v.1)
}

/// A log sink over its own [`terminal`], for commands that show no bar.
pub fn logger(quiet: bool) -> impl FnMut(Level, &str) {
    let term = terminal(quiet);
    move |level, line| term.log(level, line)
}

/// Dispatches.
pub fn run(cli: Cli) -> Result<i32> {
    let _ = VERBOSITY.set((cli.quiet, cli.verbose));
    let defaulted = cli.config.is_none();
    let cfg = &config_path(cli.config, rustix::process::geteuid().is_root());
    let result = dispatch(cli.command, cfg);
    // A missing default file: say which default applied and how to choose another, instead of
    // a bare "No such file" about a path the user never typed.
    match result {
        Err(e)
            if defaulted && !cfg.exists() && e.chain().any(|c| c.to_string().starts_with("reading configuration")) =>
        {
            Err(e.context(format!(
                "no --config given and {} does not exist (the default {}); pass --config FILE or set PACKER_CONFIG",
                cfg.display(),
                if cfg == Path::new(SYSTEM_CONFIG) { "when run as root" } else { "for a user other than root" }
            )))
        }
        other => other,
    }
}

fn dispatch(command: Command, cfg: &Path) -> Result<i32> {
    use clap::CommandFactory;
    match command {
        Command::Init(a) => {
            if a.detect || a.from.is_some() {
                let root = a.from.unwrap_or_else(|| PathBuf::from("/"));
                if !root.is_dir() {
                    anyhow::bail!("--from {}: not a directory", root.display());
                }
                print!("{}", crate::detect::detect(&root));
            } else {
                print!("{}", crate::config::TEMPLATE);
            }
            Ok(exit::OK)
        }
        Command::Completions { shell } => {
            restorer::cli_docs::completions(Cli::command(), shell, &mut std::io::stdout().lock())
                .context("writing completions to stdout")?;
            Ok(exit::OK)
        }
        Command::Man { dir } => {
            let pages = restorer::cli_docs::man(Cli::command(), dir.as_deref(), &mut std::io::stdout().lock())
                .with_context(|| {
                    format!("writing man pages to {}", dir.as_deref().unwrap_or(Path::new("stdout")).display())
                })?;
            for p in pages {
                println!("wrote {}", p.display());
            }
            Ok(exit::OK)
        }
        Command::Create(a) => create::run(a, cfg),
        Command::Show(a) => show::run(a, cfg).map(|_| exit::OK),
        Command::List(a) => list::run(a, cfg),
        Command::Prune(a) => prune::run(a, cfg),
        Command::Protect(a) => manage::protect(a, cfg, true),
        Command::Unprotect(a) => manage::protect(a, cfg, false),
        Command::Keep(a) => manage::keep(a, cfg),
        Command::Delete(a) => manage::delete(a, cfg),
        Command::Verify(a) => verify::run(a, cfg),
        Command::Ship(a) => ship::run(a, cfg),
        Command::Fetch(a) => fetch::run(a, cfg),
        Command::Catalog(c) => catalog::run(c, cfg),
        Command::Status(a) => status::run(a, cfg),
        Command::Daemon(a) => daemon::run(a, cfg),
        Command::InstallTimer(a) => install_timer::run(a, cfg),
        Command::Serve(a) => serve::run(a, cfg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root without --config reads the packaged /etc/packer/packer.toml, never ./packer.toml;
    /// other users keep ./packer.toml; a given path always wins.
    #[test]
    fn config_default_depends_on_root_and_a_given_path_wins() {
        assert_eq!(config_path(None, true), Path::new("/etc/packer/packer.toml"));
        assert_eq!(config_path(None, false), Path::new("packer.toml"));
        for root in [true, false] {
            assert_eq!(config_path(Some("/srv/x.toml".into()), root), Path::new("/srv/x.toml"));
        }
    }
}
