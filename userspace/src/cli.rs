//! What every binary does with its command line: help and version as clap prints them,
//! any other problem as one line naming it, with OpenVZ's syntax-error exit code.
use std::process::ExitCode;

use clap::{error::ErrorKind, Parser};

/// Parses argv, or returns the exit code after printing help, version or a one-line error.
pub fn parse<T: Parser>(prog: &str) -> Result<T, ExitCode> {
    match T::try_parse() {
        Ok(c) => Ok(c),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("{prog}: {first}");
            Err(ExitCode::from(crate::exit::INVALID_PARAMETER_SYNTAX as u8))
        }
    }
}
