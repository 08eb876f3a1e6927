//! `restore`: the static binary shipped inside every bundle. Thin: parses arguments, calls the
//! library, renders the result, maps errors to the documented exit codes.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "the binary's edge: it prints")]

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use restorer::checkpoint::Checkpoint;
use restorer::log::{Level, Threshold};
use restorer::pg::PgTarget;
use restorer::plan::Action;
use restorer::progress::Terminal;
use restorer::report::Outcome;
use restorer::restore::{self, Options};
use restorer::{exit, unpack, verify, Error};

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
struct Cli {
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
    databases: Vec<restorer::select::Rename>,
}

fn parse_rename(s: &str) -> Result<restorer::select::Rename, String> {
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
        shell: restorer::cli_docs::Shell,
    },
}

fn main() -> ExitCode {
    restorer::broken_pipe::exit_quietly_on_broken_pipe();
    let cli = Cli::parse();
    // A restore is attended and its narrative is its record (often `| tee restore.log`): the
    // lines stay on whether stderr is a terminal or not; -q leaves what changed and what is wrong.
    let _ = TERM.set(Terminal::new(Threshold::new(cli.quiet, cli.verbose, true), cli.quiet || cli.json));
    let mut unpacked = None;
    let code = match run(cli, &mut unpacked) {
        Ok(code) => code,
        Err(e) if restorer::broken_pipe::is_broken_pipe(&e) => exit::OK,
        Err(e) => {
            eprintln!("restore: error: {e}");
            e.exit_code()
        }
    };
    // A refusal changed nothing, so it leaves nothing either: the bundle this run unpacked
    // beside the archive (the whole of it, secrets included) goes too. After a restore that
    // ran (exit 0, 1, 4) it stays: it holds the default report and a re-run reuses it.
    if let Some(dir) = unpacked.filter(|_| code == exit::CORRUPT || code == exit::REFUSED) {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("restore: could not remove {}: {e}; remove it by hand", dir.display());
        }
    }
    ExitCode::from(code as u8)
}

/// `--from X.tar.gz`: the archive's stem beside it (`X/`).
/// stderr: log lines and progress bars (set once in `main`).
static TERM: std::sync::OnceLock<Terminal> = std::sync::OnceLock::new();

fn term() -> &'static Terminal {
    TERM.get_or_init(|| Terminal::new(Threshold::new(false, false, true), false))
}

/// A narrative line (shown unless -q).
fn say(line: &str) {
    term().log(Level::Info, line);
}

fn archive_stem(from: &Path) -> restorer::Result<Option<PathBuf>> {
    if from.is_dir() {
        return Ok(None);
    }
    let name = from.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let stem = name
        .strip_suffix(".tar.gz")
        .ok_or_else(|| Error::Other(format!("{}: not a directory nor a .tar.gz bundle", from.display())))?;
    Ok(Some(from.with_file_name(stem)))
}

/// The extracted bundle to work from. A `.tar.gz` is verified as it streams and unpacked beside
/// itself; an `X/` already there is used only when it holds the very same bundle (same
/// checksum list), so a stale or foreign directory beside a truncated archive is never trusted.
/// A directory this call unpacks is put in `unpacked`.
fn bundle_dir(
    from: Option<&Path>,
    identity: Option<&Path>,
    unpacked: &mut Option<PathBuf>,
) -> restorer::Result<PathBuf> {
    let Some(from) = from else {
        return opened_dir(restore::default_bundle_dir(), identity, unpacked);
    };
    let Some(dest) = archive_stem(from)? else {
        return opened_dir(from.to_path_buf(), identity, unpacked);
    };
    let id = if unpack::is_sealed(from)? { Some(load_identity(from, identity)?) } else { None };
    if std::fs::symlink_metadata(&dest).is_ok() {
        say(&format!("verifying {} ...", from.display()));
        let read = unpack::read_archive_with(from, unpack::Sink::Discard, id.as_ref(), "verifying", term())?;
        if !same_extraction(read, &dest)? {
            return Err(Error::Refused(format!(
                "{} exists but does not hold the bundle in {} (another or a damaged extraction): remove it, or pass --from {}",
                dest.display(),
                from.display(),
                dest.display()
            )));
        }
        say(&format!("using {} (already unpacked, same bundle)", dest.display()));
    } else {
        say(&format!("unpacking {} into {} (verified as it streams)", from.display(), dest.display()));
        unpack::unpack_only_with(from, &dest, id.as_ref(), |_| true, term())?;
        *unpacked = Some(dest.clone());
    }
    Ok(dest)
}

/// A directory already beside what was just read whole is used only when it holds that very
/// bundle: the read must be clean (its problems are the error) and `dest`'s checksum list must
/// be the one read. `Ok(false)` when `dest` is another or a damaged extraction.
fn same_extraction(read: unpack::ArchiveRead, dest: &Path) -> restorer::Result<bool> {
    if !read.report.ok() {
        return Err(read.report.into_error());
    }
    let there = dest.join(restorer::layout::CHECKSUMS);
    Ok(restorer::digest::sha256_file(&there).map(|d| d.0 == read.checksums_sha256).unwrap_or(false))
}

/// The identity for a sealed bundle: the file named by --identity / RESTORE_IDENTITY_FILE, or a
/// refusal saying so (nothing was changed). The key itself is never printed.
fn load_identity(bundle: &Path, identity: Option<&Path>) -> restorer::Result<restorer::sealed::Identity> {
    let Some(path) = identity else {
        return Err(Error::Refused(format!(
            "{} is a sealed bundle (age-encrypted): pass --identity FILE (or RESTORE_IDENTITY_FILE) with the private key of one of its recipients; `restore verify` checks its ciphertext without it",
            bundle.display()
        )));
    };
    restorer::sealed::Identity::load(path)
}

/// An extracted bundle directory as is, or for a sealed one (extracted by `tar xzf`) its
/// payload opened with the identity into `DIR/opened/` (reused when it holds that very
/// payload, like an archive's `X/`).
fn opened_dir(dir: PathBuf, identity: Option<&Path>, unpacked: &mut Option<PathBuf>) -> restorer::Result<PathBuf> {
    if !unpack::is_sealed_dir(&dir) {
        return Ok(dir);
    }
    let id = load_identity(&dir, identity)?;
    let dest = dir.join(OPENED);
    if std::fs::symlink_metadata(&dest).is_ok() {
        say(&format!("verifying {} ...", dir.display()));
        let read = unpack::read_sealed_dir(&dir, &id, unpack::Sink::Discard)?;
        if !same_extraction(read, &dest)? {
            return Err(Error::Refused(format!(
                "{} exists but does not hold the payload of {} (another or a damaged extraction): remove it",
                dest.display(),
                dir.display()
            )));
        }
        say(&format!("using {} (already opened, same payload)", dest.display()));
    } else {
        say(&format!(
            "opening {} into {} (decrypted and verified as it streams)",
            restorer::layout::PAYLOAD,
            dest.display()
        ));
        unpack::unpack_sealed_dir(&dir, &dest, &id)?;
        *unpacked = Some(dest.clone());
    }
    Ok(dest)
}

/// Where a sealed bundle extracted by hand is opened: `DIR/opened/`.
const OPENED: &str = "opened";

#[expect(clippy::too_many_lines, reason = "issue 13: run is to be split where a name would explain a part")]
fn run(cli: Cli, unpacked: &mut Option<PathBuf>) -> restorer::Result<i32> {
    use clap::CommandFactory;
    // The documentation commands need no bundle.
    match &cli.command {
        Some(Command::Man { dir }) => {
            let pages = restorer::cli_docs::man(Cli::command(), dir.as_deref(), &mut std::io::stdout().lock())
                .map_err(|e| Error::io("writing man pages to", dir.as_deref().unwrap_or(Path::new("stdout")), e))?;
            for p in pages {
                println!("wrote {}", p.display());
            }
            return Ok(exit::OK);
        }
        Some(Command::Completions { shell }) => {
            restorer::cli_docs::completions(Cli::command(), *shell, &mut std::io::stdout().lock())
                .map_err(|e| Error::io("writing completions to", "stdout", e))?;
            return Ok(exit::OK);
        }
        _ => {}
    }
    // `verify --from X.tar.gz` reads the archive itself, extracting nothing.
    let archive = match (&cli.command, cli.from.as_deref()) {
        (Some(Command::Verify), Some(from)) => archive_stem(from)?.map(|_| from.to_path_buf()),
        _ => None,
    };
    let dir = match (&archive, &cli.command) {
        (Some(a), _) => a.clone(),
        // A rollback works from its checkpoint: a --from archive is not unpacked for it.
        (None, Some(Command::Rollback { .. })) => PathBuf::new(),
        // verify reads a sealed directory itself: without the key it checks the ciphertext.
        (None, Some(Command::Verify)) => {
            let dir = cli.from.clone().unwrap_or_else(restore::default_bundle_dir);
            if unpack::is_sealed_dir(&dir) {
                dir
            } else {
                bundle_dir(cli.from.as_deref(), cli.identity.as_deref(), unpacked)?
            }
        }
        (None, _) => bundle_dir(cli.from.as_deref(), cli.identity.as_deref(), unpacked)?,
    };
    match cli.command {
        Some(Command::Verify) => {
            let id = cli.identity.as_deref().map(restorer::sealed::Identity::load).transpose()?;
            let sealed = match &archive {
                Some(a) => unpack::is_sealed(a)?,
                None => unpack::is_sealed_dir(&dir),
            };
            let (manifest, report) = match (&archive, &id) {
                (Some(a), Some(id)) => {
                    let read = unpack::read_archive_with(a, unpack::Sink::Discard, Some(id), "verifying", term())?;
                    (read.manifest, read.report)
                }
                (Some(a), None) => verify::verify_archive(a, term())?,
                (None, Some(id)) if sealed => {
                    let read = unpack::read_sealed_dir(&dir, id, unpack::Sink::Discard)?;
                    (read.manifest, read.report)
                }
                (None, _) => verify::verify_dir(&dir, term())?,
            };
            let contents_checked = !sealed || id.is_some();
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"bundle_dir": dir, "created_at": manifest.map(|m| m.created_at), "ok": report.ok(), "sealed": sealed, "contents_checked": contents_checked, "report": report})
                );
            } else {
                if !contents_checked {
                    println!("sealed bundle: the ciphertext was checked; its contents need the key (--identity FILE)");
                }
                print!("{}", report.render_problems());
                println!(
                    "{}: {} entries, {} bytes checked, {} problem(s)",
                    if report.ok() { "OK" } else { "CORRUPT" },
                    report.entries_checked,
                    report.bytes_checked,
                    report.problems.len()
                );
            }
            Ok(if report.ok() { exit::OK } else { exit::CORRUPT })
        }
        Some(Command::Rollback { checkpoint, postgres_url }) => {
            let mut cp = Checkpoint::load(&checkpoint)?;
            if cp.rolled_back {
                println!("{}: already rolled back", checkpoint.display());
                return Ok(exit::OK);
            }
            let pg = postgres_url.as_deref().map(PgTarget::parse).transpose()?;
            let failures = cp.rollback(pg.as_ref());
            if failures.is_empty() {
                println!("rolled back {} change(s) from {}", cp.changes.len(), checkpoint.display());
                Ok(exit::OK)
            } else {
                for f in &failures {
                    term().log(Level::Warning, &format!("could not undo: {f}"));
                }
                Ok(exit::FAILED)
            }
        }
        Some(Command::List { workflows, search, active, credentials }) => {
            let m = verify::verify_entries(&dir, &[])?;
            if workflows || credentials {
                let info = m.n8n.as_ref().ok_or_else(|| Error::Other("this bundle has no n8n inventory".into()))?;
                let list = restorer::n8n::filter_workflows(info, search.as_deref(), active);
                match (workflows, cli.json) {
                    (true, true) => println!("{}", serde_json::to_string_pretty(&list).expect("serialises")),
                    (true, false) => print!("{}", restorer::n8n::render_workflows(&list)),
                    (false, true) => {
                        println!("{}", serde_json::to_string_pretty(&info.credentials).expect("serialises"))
                    }
                    (false, false) => print!("{}", restorer::n8n::render_credentials(info)),
                }
            } else if cli.json {
                println!("{}", m.to_json());
            } else {
                print!("{}", restorer::inventory::render(&m));
            }
            Ok(exit::OK)
        }
        Some(Command::Workflow { workflow, to_file, to_n8n, api_key, activate, map_credentials_by_name, force }) => {
            let m = verify::verify_entries(&dir, &[])?;
            let w = restorer::steps::n8n::find_workflow(&m, &workflow)?.clone();
            verify::verify_entries(&dir, &[w.entry.as_str()])?;
            let text =
                std::fs::read_to_string(dir.join(&w.entry)).map_err(|e| Error::io("reading", dir.join(&w.entry), e))?;
            if let Some(path) = to_file {
                write_new(&path, text.as_bytes(), force, 0o600)?;
                println!("wrote workflow {} ({}) to {}", w.id, w.name, path.display());
                return Ok(exit::OK);
            }
            let doc: serde_json::Value = serde_json::from_str(&text)?;
            let url = to_n8n.expect("clap requires --to-file or --to-n8n");
            let date = m.created_at.format("%Y%m%d").to_string();
            let pushed = restorer::steps::n8n::push_workflow(
                &url,
                api_key.as_deref().unwrap_or(""),
                &doc,
                &date,
                activate,
                map_credentials_by_name,
            )?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&pushed).expect("serialises"));
            } else {
                for (name, kind) in &pushed.missing_credentials {
                    println!("missing on the target: credential {name:?} of type {kind} (create it, or use --map-credentials-by-name)");
                }
                for (name, kind, id) in &pushed.mapped_credentials {
                    println!("mapped credential {name:?} ({kind}) to the target's {id}");
                }
                println!(
                    "created workflow {} {:?}{}: {}",
                    pushed.id,
                    pushed.name,
                    if pushed.active { " (active)" } else { " (inactive)" },
                    pushed.url
                );
            }
            Ok(exit::OK)
        }
        Some(Command::File { path, to, force }) => {
            let m = verify::verify_entries(&dir, &[])?;
            let rec = m.files.iter().find(|f| f.path == path).ok_or_else(|| {
                Error::Other(format!("{} is not in this bundle (see `restore list`)", path.display()))
            })?;
            match &rec.content {
                restorer::manifest::FileContent::File { entry, .. } => {
                    verify::verify_entries(&dir, &[entry.as_str()])?;
                    let bytes = std::fs::read(dir.join(entry)).map_err(|e| Error::io("reading", dir.join(entry), e))?;
                    write_new(&to, &bytes, force, rec.meta.mode & 0o7777)?;
                    println!("restored {} to {} (mode {:04o})", path.display(), to.display(), rec.meta.mode & 0o7777);
                }
                restorer::manifest::FileContent::Symlink { target } => {
                    std::os::unix::fs::symlink(target, &to).map_err(|e| Error::io("creating link", &to, e))?;
                    println!("restored link {} -> {} at {}", path.display(), target.display(), to.display());
                }
                restorer::manifest::FileContent::Dir => {
                    return Err(Error::Other(format!(
                        "{} is a directory: restore its files one by one, or use the full restore with --root",
                        path.display()
                    )))
                }
            }
            Ok(exit::OK)
        }
        None => restore_run(cli.run, dir, cli.json),
        Some(Command::Man { .. } | Command::Completions { .. }) => unreachable!("handled above"),
    }
}

#[expect(clippy::too_many_lines, reason = "issue 13: restore_run is to be split where a name would explain a part")]
fn restore_run(a: RunArgs, dir: PathBuf, json: bool) -> restorer::Result<i32> {
    let mut opts = Options {
        bundle_dir: dir.clone(),
        root: a.root.clone(),
        postgres_url: a.postgres_url.clone(),
        overwrite: a.overwrite,
        install: !a.no_install,
        install_packages: a.install_packages,
        services: !a.no_services,
        start_services: a.start_services,
        checkpoint_dir: a.checkpoint_dir.clone(),
        pg_bin: a.pg_bin.clone(),
        force: a.force,
        health_tries: a.health_tries,
        installed_defaults: Default::default(),
        databases: a.databases.clone(),
        databases_to_url: a.postgres_url.is_some(),
    };
    // A bare host has no PostgreSQL to reach yet: verify the bundle, then install what it needs
    // before the plan can look at the server (the full prerequisites step then finds nothing).
    let local_pg = opts.postgres_url.is_none() && bundle_has_postgres(&dir) && restorer::sys::is_root();
    if local_pg && !a.dry_run && opts.installs() {
        let (m, report) = verify::verify_dir(&dir, term())?;
        let m = match m {
            Some(m) if report.ok() => m,
            _ => return Err(report.into_error()),
        };
        restorer::names::check(&m)?;
        if let Some(missing) = restorer::steps::system::missing_packages(&m.requirements).filter(|v| !v.is_empty()) {
            if !a.yes {
                confirm(&format!(
                    "Packages must be installed first: {}. Type RESTORE to install them and continue: ",
                    missing.join(" ")
                ))?;
            }
            let targets: Vec<PathBuf> = m
                .files
                .iter()
                .map(|f| f.path.clone())
                .chain(m.sqlite.iter().map(|s| s.path.clone()))
                .filter_map(|p| restorer::layout::target_path(&opts.root, &p).ok())
                .collect();
            let before: Vec<bool> = targets.iter().map(|t| t.symlink_metadata().is_ok()).collect();
            say(&format!("installing prerequisites: {}", missing.join(" ")));
            restorer::steps::system::install(&missing)?;
            // What the packages just put at our targets is theirs, not the operator's data.
            opts.installed_defaults = targets
                .into_iter()
                .zip(before)
                .filter(|(t, was)| !was && t.symlink_metadata().is_ok())
                .map(|(t, _)| t)
                .collect();
        }
    }
    // Fresh host, run as root, no URL given: reach the local cluster through a temporary
    // superuser (peer authentication lets only the OS user postgres in on the socket).
    let _temp_superuser = if local_pg {
        let attempt = || restorer::steps::local_pg::TempSuperuser::create(&a.pg_socket, a.pg_port);
        // A freshly installed cluster may not be running (no systemd, policy-rc.d): start it once.
        let created = attempt().or_else(|e| {
            if a.dry_run || !opts.starts_services() {
                return Err(e);
            }
            term().log(Level::Notice, &format!("the local PostgreSQL does not answer ({e}); starting it"));
            restorer::steps::system::start_postgres().and_then(|_| {
                std::thread::sleep(std::time::Duration::from_secs(2));
                attempt()
            })
        });
        match created {
            Ok(t) => {
                opts.postgres_url = Some(t.url.clone());
                Some(t)
            }
            Err(e) => {
                term().log(
                    Level::Notice,
                    &format!(
                        "note: the local PostgreSQL at {}:{} could not be reached as postgres ({e})",
                        a.pg_socket.display(),
                        a.pg_port
                    ),
                );
                None
            }
        }
    } else {
        None
    };
    // A restore that was interrupted (power cut, kill) is rolled back first, so this run starts
    // from the state the host had before it and never applies a step twice.
    let interrupted = restore::interrupted(&opts);
    if !interrupted.is_empty() {
        if a.dry_run {
            for cp in &interrupted {
                println!("An interrupted restore left {}: it will be rolled back first.", cp.dir.display());
            }
        } else {
            for line in restore::roll_back_interrupted(&opts)? {
                term().log(Level::Notice, &line);
            }
        }
    }
    say(&format!("verifying {} ...", dir.display()));
    let prepared = restore::prepare(&opts, term())?;
    let m = &prepared.manifest;
    if a.dry_run {
        if json {
            println!(
                "{}",
                serde_json::json!({"plan": prepared.plan, "docker": prepared.docker_lines(), "missing_packages": prepared.missing_packages, "install_skipped": opts.install_skipped(), "services_skipped": opts.services_skipped(), "verify": prepared.verify, "preflight": prepared.findings})
            );
        } else {
            print_plan(&prepared, &opts);
        }
        let blocked = prepared.findings.iter().any(|f| f.blocker);
        return Ok(if prepared.plan.refusals().is_empty() && !blocked { exit::OK } else { exit::REFUSED });
    }
    restore::check_blockers(&prepared)?;
    restore::check_refusals(&prepared.plan, &prepared.manifest)?;
    if !a.yes {
        if std::io::stdin().is_terminal() {
            print_plan(&prepared, &opts);
        }
        let what = if a.databases.is_empty() {
            format!("onto {}", a.root.display())
        } else {
            let list: Vec<String> = a.databases.iter().map(|r| format!("{} as {}", r.from, r.to)).collect();
            format!("(databases only: {})", list.join(", "))
        };
        confirm(&format!(
            "\nThis restores the bundle of {} ({}) {what}. Type RESTORE to continue: ",
            m.source_host.hostname,
            m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        ))?;
    }
    let report = restore::execute(&prepared, &opts, say, term())?;
    let report_path = a.report.unwrap_or_else(|| dir.join("restore-report.json"));
    let text = serde_json::to_string_pretty(&report).expect("report serialises");
    write_private(&report_path, &text)?;
    if let Some(cp) = &report.checkpoint {
        let _ = write_private(&cp.join("restore-report.json"), &text);
    }
    if json {
        println!("{text}");
    } else {
        print!("{}", report.human());
        println!("Report: {}", report_path.display());
    }
    Ok(match report.outcome {
        Outcome::Restored => exit::OK,
        Outcome::ValidationFailed => exit::VALIDATION_FAILED,
        Outcome::FailedRolledBack | Outcome::FailedRollbackIncomplete => exit::FAILED,
    })
}

/// Asks the operator to type RESTORE; refuses without a terminal.
fn confirm(prompt: &str) -> restorer::Result<()> {
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

/// Whether the (not yet verified) manifest names PostgreSQL databases.
fn bundle_has_postgres(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(restorer::layout::MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        // Databases in containers need no host server.
        .and_then(|m| {
            m.get("postgres").and_then(|p| p.as_array()).map(|a| a.iter().any(|d| d.get("container").is_none()))
        })
        .unwrap_or(false)
}

/// Writes a new file (refusing an existing one unless `force`), through a temporary name.
fn write_new(path: &Path, bytes: &[u8], force: bool, mode: u32) -> restorer::Result<()> {
    if path.symlink_metadata().is_ok() && !force {
        return Err(Error::Refused(format!("{} exists; --force overwrites it", path.display())));
    }
    restorer::sys::write_atomically(path, bytes, mode)
}

/// Writes a file of the restore's own (the report), mode 0600, never through a link at `path`.
fn write_private(path: &Path, text: &str) -> restorer::Result<()> {
    restorer::sys::write_atomically(path, text.as_bytes(), 0o600)
}

#[expect(clippy::too_many_lines, reason = "issue 13: print_plan is to be split where a name would explain a part")]
fn print_plan(p: &restore::Prepared, opts: &Options) {
    let m = &p.manifest;
    println!(
        "Bundle: {} from {} ({}), created {}",
        m.bundle_name,
        m.source_host.hostname,
        m.source_host.os,
        m.created_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    println!("Verified: {} entries, {} bytes, every digest matches", p.verify.entries_checked, p.verify.bytes_checked);
    if p.plan.databases_only {
        println!(
            "Databases only (--database): only the databases below, under their new names; no file, package, account or service is touched, nothing is started or stopped: the live deployment stays as it is"
        );
    } else {
        println!("Restore root: {}", p.plan.root.display());
    }
    println!("\nPlan:");
    for i in &p.plan.items {
        let action = match i.action {
            Action::Create => "create",
            Action::Keep => "keep",
            Action::Replace => "REPLACE",
            Action::Refuse => "REFUSED",
        };
        let from = i.from.as_ref().map(|f| format!(" (the bundle's {f})")).unwrap_or_default();
        println!("  {action:<8} {:<9} {}{from}  [{}]", format!("{:?}", i.kind).to_lowercase(), i.target, i.state);
    }
    let (users, groups) = restorer::steps::accounts::missing(m, &restorer::owners::Accounts::system());
    if !users.is_empty() || !groups.is_empty() {
        println!("\nSystem accounts to create: users [{}], groups [{}]", users.join(", "), groups.join(", "));
    }
    if let Some(pg) = &p.pg {
        println!(
            "\nPostgreSQL target: {} (pg_restore: {})",
            pg.host_port(),
            p.pg_restore.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    let install_skipped = opts.install_skipped();
    match &p.missing_packages {
        Some(missing) if !missing.is_empty() => match install_skipped {
            Some(why) => println!("Packages missing, NOT installed ({why}): {}", missing.join(" ")),
            None => println!("Packages to install: {}", missing.join(" ")),
        },
        Some(_) => println!("Packages: all required packages present"),
        None if !m.requirements.is_empty() => {
            println!("Packages (cannot check here, no dpkg): {}", m.requirements.join(" "))
        }
        None => {}
    }
    let docker = p.docker_lines();
    if !docker.is_empty() {
        println!("\nDocker:");
        for line in docker {
            println!("  {line}");
        }
    }
    if !m.services.start.is_empty() || !m.services.health.is_empty() || m.services.n8n_url.is_some() {
        match opts.services_skipped() {
            Some(why) => println!(
                "Services NOT started, health checks NOT run ({why}): {}",
                m.services
                    .start
                    .iter()
                    .chain(&m.services.health)
                    .chain(&m.services.n8n_url)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => {
                if !m.services.start.is_empty() {
                    println!("Services to start: {}", m.services.start.join(", "));
                }
                if !m.services.health.is_empty() {
                    println!("Health checks after the start: {}", m.services.health.join(", "));
                }
                if let (Some(url), Some(n)) = (&m.services.n8n_url, &m.n8n) {
                    println!(
                        "Then n8n at {url} must serve the bundle's {} workflow(s) through its API",
                        n.workflows.len()
                    );
                }
            }
        }
    }
    for w in &m.warnings {
        println!("warning (from packing): {w}");
    }
    if !p.findings.is_empty() {
        println!("\nPre-flight:");
        for f in &p.findings {
            println!("  {} {}\n      what to do: {}", if f.blocker { "BLOCKER" } else { "warning" }, f.what, f.fix);
        }
    }
    let (projects, refused): (Vec<_>, Vec<_>) =
        p.plan.refusals().into_iter().partition(|i| i.kind == restorer::plan::ItemKind::Compose);
    for i in projects {
        let dir = m.docker.as_ref().and_then(|d| d.compose.get(i.index)).map(|c| c.directory.as_path());
        println!(
            "\nREFUSED: {}.",
            restorer::steps::docker::refusal(&i.target, dir.unwrap_or(Path::new(".")), &i.state)
        );
    }
    if !refused.is_empty() {
        println!("\n{} item(s) already hold different data and would be refused without --overwrite.", refused.len());
    }
    println!(
        "\n{} to create, {} to keep, {} to replace (kept in a checkpoint).",
        p.plan.count(&Action::Create),
        p.plan.count(&Action::Keep),
        p.plan.count(&Action::Replace)
    );
}
