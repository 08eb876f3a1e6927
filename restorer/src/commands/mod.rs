//! The `restore` binary's commands: parse (clap), call the library, render, map to the exit
//! codes of [`crate::exit`]. One file per subcommand; the restore itself is [`run`].
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "the binary's edge: it prints")]

mod file;
mod list;
mod rollback;
mod run;
mod verify;
mod workflow;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::{Parser, Subcommand};

use crate::log::{Level, Threshold};
use crate::progress::Terminal;
use crate::{exit, Error, Result};

/// Brings a host back from an n8n_backup bundle: verifies every digest, shows the plan, then puts
/// files, SSL material, SQLite and PostgreSQL databases back, validates them against the manifest
/// and starts the services. Anything it replaces is kept in a checkpoint and can be put back.
///
/// Typical use on the new host, inside the extracted bundle:
///
///   ./restore verify              check every entry against checksums.sha256 and the manifest
///   ./restore --dry-run           print the plan; change nothing
///   ./restore                     restore (asks you to type RESTORE)
///   ./restore --yes --root /tmp/t restore under another directory, without asking
#[derive(Parser, Debug)]
#[command(name = "restore", version, verbatim_doc_comment, after_long_help = exit::HELP_TABLE, after_help = exit::HELP_TABLE)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
    /// The bundle: an extracted bundle directory or a .tar.gz (unpacked safely next to it).
    /// Default: the directory this binary is in, when it holds manifest.json, else the current one.
    /// (rollback reads its checkpoint, not a bundle.)
    #[arg(long, global = true, value_name = "PATH")]
    from: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of the human summary: the restore's report,
    /// the --dry-run plan, verify, list, workflow --to-n8n (file and rollback print text).
    #[arg(long, global = true)]
    json: bool,
    /// For a sealed (age-encrypted) bundle: the identity file holding the private key of one of
    /// its recipients (`age-keygen` output, or an OpenSSH ed25519/RSA private key; a
    /// passphrase-protected one asks for its passphrase on the terminal). The payload is
    /// decrypted as it streams; `verify` without it checks the ciphertext only.
    #[arg(long, global = true, value_name = "FILE", env = "RESTORE_IDENTITY_FILE")]
    identity: Option<PathBuf>,
    /// No progress bars; only warnings, errors and what changed on stderr.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// More detail on stderr (commands run, timings).
    #[arg(long, short, global = true)]
    verbose: bool,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Verify and print the plan: each step, target path and database, what exists already.
    /// Changes nothing.
    #[arg(long)]
    dry_run: bool,
    /// Restore under this directory instead of / (original absolute paths are placed below it).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// PostgreSQL server to restore into [default: the local socket as user postgres].
    /// Password from the URL, PGPASSWORD or ~/.pgpass. TLS as libpq:
    /// ?sslmode=disable|prefer|require|verify-ca|verify-full&sslrootcert=CA.pem (or PGSSLMODE,
    /// PGSSLROOTCERT).
    #[arg(long, value_name = "URL", env = "RESTORE_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    /// Replace files and databases that already hold different data. What is replaced is kept in
    /// the checkpoint (databases renamed to NAME_pre_restore_TIMESTAMP).
    #[arg(long)]
    overwrite: bool,
    /// Do not install system packages; only report which are missing.
    #[arg(long)]
    no_install: bool,
    /// With a --root other than /: install the bundle's packages on this host anyway. Without
    /// it, a restore under another root installs nothing (the plan lists what is missing).
    #[arg(long, conflicts_with = "no_install")]
    install_packages: bool,
    /// Do not start services.
    #[arg(long)]
    no_services: bool,
    /// With a --root other than /: start the bundle's services on this host and run its health
    /// checks anyway. Without it, a restore under another root starts nothing.
    #[arg(long, conflicts_with = "no_services")]
    start_services: bool,
    /// Where to keep the checkpoint [default: ROOT/var/lib/n8n-restore/checkpoints/TIMESTAMP].
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Directory holding pg_restore [default: the newest /usr/lib/postgresql/*/bin, then PATH;
    /// it must be at least the dumped server's major version].
    #[arg(long, value_name = "DIR")]
    pg_bin: Option<PathBuf>,
    /// Go on although the target holds a different n8n encryption key or an older n8n.
    #[arg(long)]
    force: bool,
    /// Without --postgres-url, as root: the local cluster's socket directory (reached as the
    /// `postgres` user to create a temporary superuser, dropped at the end).
    #[arg(long, value_name = "DIR", default_value = "/var/run/postgresql")]
    pg_socket: PathBuf,
    /// Without --postgres-url: the local cluster's port.
    #[arg(long, value_name = "PORT", default_value_t = 5432)]
    pg_port: u16,
    /// How many times each [services] health check is tried, 2 s apart.
    #[arg(long, value_name = "N", default_value_t = 30)]
    health_tries: u32,
    /// Where to write the JSON report [default: BUNDLE_DIR/restore-report.json].
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Restore only the bundle's PostgreSQL database NAME, as NEWNAME, beside the live one (to
    /// inspect or compare before switching); repeatable. Nothing else is touched: no file,
    /// package, account or service, no container started or stopped. NAME is the database's
    /// name (or its [[postgres]] entry name); a database that lived in a compose container goes
    /// into that project's running container, unless --postgres-url names a server for all.
    #[arg(
        long = "database",
        value_name = "NAME=NEWNAME",
        value_parser = parse_rename,
        conflicts_with_all = ["install_packages", "start_services"]
    )]
    databases: Vec<crate::select::Rename>,
}

fn parse_rename(s: &str) -> std::result::Result<crate::select::Rename, String> {
    s.parse()
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check every entry's sha256 against checksums.sha256 and the manifest; exit 0 only if all
    /// match, 3 otherwise, naming each bad entry with expected and actual digest.
    Verify,
    /// List what the bundle holds: its inventory, or n8n workflows / credentials.
    List {
        /// n8n workflows.
        #[arg(long)]
        workflows: bool,
        /// With --workflows: only those whose name, id, tag or node type contains TEXT.
        #[arg(long, value_name = "TEXT", requires = "workflows")]
        search: Option<String>,
        /// With --workflows: only active ones.
        #[arg(long, requires = "workflows")]
        active: bool,
        /// n8n credentials (never secrets).
        #[arg(long, conflicts_with = "workflows")]
        credentials: bool,
    },
    /// Take back one n8n workflow: to a file in `n8n import:workflow` shape, or straight into a
    /// running n8n through its public API, named NAME_backup_YYYYMMDD (the bundle's date).
    Workflow {
        /// Workflow id or name (see `restore list --workflows`).
        workflow: String,
        /// Write it to this file.
        #[arg(long, value_name = "FILE", required_unless_present = "to_n8n", conflicts_with = "to_n8n")]
        to_file: Option<PathBuf>,
        /// Create it in the n8n at this URL (e.g. http://127.0.0.1:5678).
        #[arg(long, value_name = "URL", requires = "api_key")]
        to_n8n: Option<String>,
        /// n8n API key (Settings > n8n API).
        #[arg(long, value_name = "KEY", env = "N8N_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Activate it after creating it (new workflows are inactive).
        #[arg(long, requires = "to_n8n")]
        activate: bool,
        /// Point credential references the target lacks at its same-named credentials of the
        /// same type.
        #[arg(long, requires = "to_n8n")]
        map_credentials_by_name: bool,
        /// Overwrite --to-file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Take back one captured file (by its original path) to DEST.
    File {
        /// The original absolute path, as `restore list` shows it.
        path: PathBuf,
        /// Where to write it.
        #[arg(long, value_name = "DEST")]
        to: PathBuf,
        /// Overwrite DEST if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Undo a restore from its checkpoint directory (files moved back, created ones removed,
    /// databases dropped or renamed back).
    Rollback {
        /// The checkpoint directory named in the restore's report.
        checkpoint: PathBuf,
        /// PostgreSQL server the restore wrote to (needed when it restored databases).
        #[arg(long, value_name = "URL", env = "RESTORE_POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<String>,
    },
    /// Print the man page (roff; `restore man | man -l -`); with --dir, write restore*.1 there.
    /// Hidden: read at recovery time, `--help` lists only what a restore needs.
    #[command(hide = true)]
    Man {
        /// Write the pages into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the completion script for SHELL (bash, zsh, fish, elvish, powershell). Hidden, as
    /// `man`.
    #[command(hide = true)]
    Completions {
        /// The shell.
        shell: crate::cli_docs::Shell,
    },
}

/// stderr: log lines and progress bars (set once, from the first [`run`]'s flags).
static TERM: OnceLock<Terminal> = OnceLock::new();

fn term() -> &'static Terminal {
    TERM.get_or_init(|| Terminal::new(Threshold::new(false, false, true), false))
}

/// A narrative line (shown unless -q).
fn say(line: &str) {
    term().log(Level::Info, line);
}

/// A log sink for the library: the terminal's lines.
fn log(level: Level, line: &str) {
    term().log(level, line);
}

/// Runs what `cli` asks; a directory this run unpacked is put in `unpacked` (the caller removes
/// it after a refusal). Returns the exit code.
pub fn run(cli: Cli, unpacked: &mut Option<PathBuf>) -> Result<i32> {
    // A restore is attended and its narrative is its record (often `| tee restore.log`): the
    // lines stay on whether stderr is a terminal or not; -q leaves what changed and what is wrong.
    let _ = TERM.set(Terminal::new(Threshold::new(cli.quiet, cli.verbose, true), cli.quiet || cli.json));
    match cli.command {
        Some(Command::Man { dir }) => return man(dir.as_deref()),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            crate::cli_docs::completions(Cli::command(), shell, &mut std::io::stdout().lock())
                .map_err(|e| Error::io("writing completions to", "stdout", e))?;
            return Ok(exit::OK);
        }
        Some(Command::Rollback { checkpoint, postgres_url }) => {
            // A rollback works from its checkpoint: a --from archive is not unpacked for it.
            return rollback::run(&checkpoint, postgres_url.as_deref());
        }
        Some(Command::Verify) => return verify::run(cli.from.as_deref(), cli.identity.as_deref(), unpacked, cli.json),
        _ => {}
    }
    let opened = crate::open::open(cli.from.as_deref(), cli.identity.as_deref(), term(), &mut log)?;
    *unpacked = opened.unpacked;
    let dir = opened.dir;
    match cli.command {
        Some(Command::List { workflows, search, active, credentials }) => {
            list::run(&dir, list::What { workflows, search, active, credentials }, cli.json)
        }
        Some(Command::Workflow { workflow, to_file, to_n8n, api_key, activate, map_credentials_by_name, force }) => {
            let to = match (to_file, to_n8n) {
                (Some(path), _) => workflow::To::File { path, force },
                (None, Some(url)) => workflow::To::N8n { url, api_key, activate, map_credentials_by_name },
                (None, None) => unreachable!("clap requires --to-file or --to-n8n"),
            };
            workflow::run(&dir, &workflow, to, cli.json)
        }
        Some(Command::File { path, to, force }) => file::run(&dir, &path, &to, force),
        None => run::run(cli.run, dir, cli.json),
        Some(Command::Man { .. } | Command::Completions { .. } | Command::Rollback { .. } | Command::Verify) => {
            unreachable!("handled above")
        }
    }
}

/// `restore man`: the man pages, on stdout or into a directory.
fn man(dir: Option<&Path>) -> Result<i32> {
    use clap::CommandFactory;
    let pages = crate::cli_docs::man(Cli::command(), dir, &mut std::io::stdout().lock())
        .map_err(|e| Error::io("writing man pages to", dir.unwrap_or(Path::new("stdout")), e))?;
    for p in pages {
        println!("wrote {}", p.display());
    }
    Ok(exit::OK)
}

/// Asks the operator to type RESTORE; refuses without a terminal.
fn confirm(prompt: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Refused(
            "stdin is not a terminal and --yes was not given: refusing to go on without confirmation".into(),
        ));
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Error::io("reading", "stdin", e))?;
    if line.trim() != "RESTORE" {
        return Err(Error::Refused("not confirmed (you did not type RESTORE); nothing was changed".into()));
    }
    Ok(())
}
