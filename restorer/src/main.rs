//! `restore`: the static binary shipped inside every bundle. Thin: parses the command line and
//! hands it to [`restorer::commands`]; prints the error and exits with its code from
//! [`restorer::exit`].
#![allow(clippy::print_stderr, reason = "the binary's edge: it prints")]

use std::process::ExitCode;

use clap::Parser;
use restorer::exit;

fn main() -> ExitCode {
    restorer::broken_pipe::exit_quietly_on_broken_pipe();
    let mut unpacked = None;
    let code = match restorer::commands::run(restorer::commands::Cli::parse(), &mut unpacked) {
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
