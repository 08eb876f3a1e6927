//! `restore`: the static binary shipped inside every bundle. Thin: parses arguments, calls the
//! library, renders the result, maps errors to the documented exit codes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use restorer::checkpoint::Checkpoint;
use restorer::pg::PgTarget;
use restorer::plan::Action;
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
#[command(name = "restore", version, after_long_help = exit::HELP_TABLE, after_help = exit::HELP_TABLE)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
    /// The bundle: an extracted bundle directory or a .tar.gz (unpacked safely next to it).
    /// Default: the directory this binary is in, when it holds manifest.json, else the current one.
    #[arg(long, global = true, value_name = "PATH")]
    from: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of the human summary.
    #[arg(long, global = true)]
    json: bool,
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
    /// Password from the URL, PGPASSWORD or ~/.pgpass.
    #[arg(long, value_name = "URL", env = "RESTORE_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    /// Replace files and databases that already hold different data. What is replaced is kept in
    /// the checkpoint (databases renamed to NAME_pre_restore_TIMESTAMP).
    #[arg(long)]
    overwrite: bool,
    /// Do not install system packages; only report which are missing.
    #[arg(long)]
    no_install: bool,
    /// Do not start services.
    #[arg(long)]
    no_services: bool,
    /// Where to keep the checkpoint [default: ROOT/var/lib/n8n-restore/checkpoints/TIMESTAMP].
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Directory holding pg_restore [default: newest under /usr/lib/postgresql, then PATH].
    #[arg(long, value_name = "DIR")]
    pg_bin: Option<PathBuf>,
    /// Where to write the JSON report [default: BUNDLE_DIR/restore-report.json].
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check every entry's sha256 against checksums.sha256 and the manifest; exit 0 only if all
    /// match, 3 otherwise, naming each bad entry with expected and actual digest.
    Verify,
    /// Undo a restore from its checkpoint directory (files moved back, created ones removed,
    /// databases dropped or renamed back).
    Rollback {
        /// The checkpoint directory named in the restore's report.
        checkpoint: PathBuf,
        /// PostgreSQL server the restore wrote to (needed when it restored databases).
        #[arg(long, value_name = "URL", env = "RESTORE_POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("restore: error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn bundle_dir(from: Option<&Path>) -> restorer::Result<PathBuf> {
    let Some(from) = from else {
        return Ok(restore::default_bundle_dir());
    };
    if from.is_dir() {
        return Ok(from.to_path_buf());
    }
    let name = from.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let stem = name
        .strip_suffix(".tar.gz")
        .ok_or_else(|| Error::Other(format!("{}: not a directory nor a .tar.gz bundle", from.display())))?;
    let dest = from.with_file_name(stem);
    if dest.join(restorer::layout::MANIFEST).is_file() {
        eprintln!("using {} (already unpacked)", dest.display());
    } else {
        eprintln!("unpacking {} into {}", from.display(), dest.display());
        unpack::unpack(from, &dest)?;
    }
    Ok(dest)
}

fn progress(entry: &str, size: u64) {
    if size > 16 * 1024 * 1024 {
        eprintln!("  hashing {entry} ({} MiB)", size / (1024 * 1024));
    }
}

fn run(cli: Cli) -> restorer::Result<i32> {
    let dir = bundle_dir(cli.from.as_deref())?;
    match cli.command {
        Some(Command::Verify) => {
            let (manifest, report) = verify::verify_dir(&dir, progress)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"bundle_dir": dir, "created_at": manifest.map(|m| m.created_at), "ok": report.ok(), "report": report})
                );
            } else {
                for p in &report.problems {
                    match (&p.expected, &p.actual) {
                        (Some(e), Some(a)) => {
                            println!("BAD  {}: {}\n     expected {e}\n     actual   {a}", p.entry, p.problem)
                        }
                        _ => println!("BAD  {}: {}", p.entry, p.problem),
                    }
                }
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
                    eprintln!("could not undo: {f}");
                }
                Ok(exit::FAILED)
            }
        }
        None => restore_run(cli.run, dir, cli.json),
    }
}

fn restore_run(a: RunArgs, dir: PathBuf, json: bool) -> restorer::Result<i32> {
    let opts = Options {
        bundle_dir: dir.clone(),
        root: a.root.clone(),
        postgres_url: a.postgres_url.clone(),
        overwrite: a.overwrite,
        install: !a.no_install,
        services: !a.no_services,
        checkpoint_dir: a.checkpoint_dir.clone(),
        pg_bin: a.pg_bin.clone(),
    };
    eprintln!("verifying {} ...", dir.display());
    let prepared = restore::prepare(&opts, progress)?;
    let m = &prepared.manifest;
    if a.dry_run {
        if json {
            println!(
                "{}",
                serde_json::json!({"plan": prepared.plan, "missing_packages": prepared.missing_packages, "verify": prepared.verify})
            );
        } else {
            print_plan(&prepared);
        }
        return Ok(if prepared.plan.refusals().is_empty() { exit::OK } else { exit::REFUSED });
    }
    restore::check_refusals(&prepared.plan)?;
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Refused(
                "stdin is not a terminal and --yes was not given: refusing to restore without confirmation".into(),
            ));
        }
        print_plan(&prepared);
        eprint!(
            "\nThis restores the bundle of {} ({}) onto {}. Type RESTORE to continue: ",
            m.source_host.hostname,
            m.created_at,
            a.root.display()
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| Error::io("reading", "stdin", e))?;
        if line.trim() != "RESTORE" {
            return Err(Error::Refused("not confirmed (you did not type RESTORE); nothing was changed".into()));
        }
    }
    let report = restore::execute(&prepared, &opts, |s| eprintln!("{s}"))?;
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

fn write_private(path: &Path, text: &str) -> restorer::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("writing", path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| Error::io("writing", path, e))
}

fn print_plan(p: &restore::Prepared) {
    let m = &p.manifest;
    println!(
        "Bundle: {} from {} ({}), created {}",
        m.bundle_name, m.source_host.hostname, m.source_host.os, m.created_at
    );
    println!("Verified: {} entries, {} bytes, every digest matches", p.verify.entries_checked, p.verify.bytes_checked);
    println!("Restore root: {}", p.plan.root.display());
    println!("\nPlan:");
    for i in &p.plan.items {
        let action = match i.action {
            Action::Create => "create",
            Action::Keep => "keep",
            Action::Replace => "REPLACE",
            Action::Refuse => "REFUSED",
        };
        println!("  {action:<8} {:<9} {}  [{}]", format!("{:?}", i.kind).to_lowercase(), i.target, i.state);
    }
    if let Some(pg) = &p.pg {
        println!(
            "\nPostgreSQL target: {} (pg_restore: {})",
            pg.host_port(),
            p.pg_restore.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    match &p.missing_packages {
        Some(missing) if !missing.is_empty() => {
            println!("Packages to install: {}", missing.join(" "))
        }
        Some(_) => println!("Packages: all required packages present"),
        None if !m.requirements.is_empty() => {
            println!("Packages (cannot check here, no dpkg): {}", m.requirements.join(" "))
        }
        None => {}
    }
    if !m.services.start.is_empty() {
        println!("Services to start: {}", m.services.start.join(", "));
    }
    for w in &m.warnings {
        println!("warning (from packing): {w}");
    }
    let refused = p.plan.refusals();
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
