//! `packer`: parses the command line and hands it to [`packer::commands`]; prints the whole
//! error chain on failure.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match packer::commands::run(packer::commands::Cli::parse()) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("packer: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
