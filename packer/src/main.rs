//! `packer`: parses the command line and hands it to [`packer::commands`]; prints the whole
//! error chain on failure and exits with its code from [`packer::exit`].
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "the binary's edge: it prints")]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    restorer::broken_pipe::exit_quietly_on_broken_pipe();
    match packer::commands::run(packer::commands::Cli::parse()) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) if restorer::broken_pipe::is_broken_pipe(e.as_ref()) => ExitCode::from(packer::exit::OK as u8),
        Err(e) => {
            eprintln!("packer: error: {}", packer::error_text::chain(&e));
            ExitCode::from(packer::exit::code_of(&e) as u8)
        }
    }
}
