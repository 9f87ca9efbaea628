//! What every binary does with its command line: help and version as clap prints them,
//! any other problem as one line naming it, with OpenVZ's syntax-error exit code.
use std::process::ExitCode;

use clap::{error::ErrorKind, Parser};

/// Parses argv, or returns the exit code after printing help, version or a one-line error.
/// Installs the console as where the library's progress and warnings go.
pub fn parse<T: Parser>(prog: &str) -> Result<T, ExitCode> {
    crate::report::install(Box::new(crate::report::Console));
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

/// How a binary ends: success, or its error as one line naming the program, with
/// OpenVZ's exit code for it.
pub fn finish(prog: &str, r: Result<(), crate::Error>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

pub use crate::ubc::UbcArgs;

/// Prints beancounter rows as /proc/user_beancounters does; `mechanism` adds a column
/// naming what counts and refuses each row.
pub fn print_ubc(report: &[(u32, Vec<crate::ve::Row>)], only_problems: bool, mechanism: bool) {
    let rows: Vec<(u32, Vec<crate::ubc::UbcRow>)> = report
        .iter()
        .map(|(v, rows)| (*v, rows.iter().filter(|r| !only_problems || problem(&r.row)).map(|r| r.row).collect()))
        .filter(|(_, r): &(u32, Vec<_>)| !r.is_empty() || !only_problems)
        .collect();
    let text = crate::ubc::format_report(&rows);
    if !mechanism {
        print!("{text}");
        return;
    }
    let mut lines = text.lines();
    if let Some(v) = lines.next() {
        println!("{v}");
    }
    if let Some(h) = lines.next() {
        println!("{h}  mechanism");
    }
    let mechs = report
        .iter()
        .flat_map(|(_, rows)| rows.iter().filter(|r| !only_problems || problem(&r.row)).map(|r| r.mechanism.label()));
    for (l, m) in lines.zip(mechs) {
        println!("{l}  {m}");
    }
}

/// `vzubc -c`: rows that failed or are within 10 % of their barrier.
pub fn problem(r: &crate::ubc::UbcRow) -> bool {
    let b = r.limit.barrier;
    r.usage.failcnt > 0
        || (b > 0 && b < vz_common::UB_UNLIMITED && r.usage.held.saturating_mul(10) >= b.saturating_mul(9))
}
