//! What every binary does with its command line: help and version as clap prints them,
//! any other problem as one line naming it, with OpenVZ's syntax-error exit code.
use std::process::ExitCode;

use clap::{error::ErrorKind, Parser};

/// Parses argv, or returns the exit code after printing help, version or a one-line error.
/// Installs the console as where the library's progress and warnings go.
pub fn parse<T: Parser>(prog: &str) -> Result<T, ExitCode> {
    crate::report::install(Box::new(crate::report::Console));
    // Man pages and completions, for the installer (see docs.rs).
    if let Some(what) = std::env::var_os("VZ_GENERATE") {
        return Err(match crate::docs::generate(T::command(), prog, &what.to_string_lossy(), &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{prog}: {e}");
                ExitCode::from(crate::exit::INVALID_PARAMETER_VALUE as u8)
            }
        });
    }
    match T::try_parse() {
        Ok(c) => Ok(c),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            // `vzctl` alone (or with only -v): what it does and its commands, as OpenVZ's
            // prints its usage; still not a command, so not a success.
            eprint!("{}", T::command().render_help());
            Err(ExitCode::from(crate::exit::INVALID_PARAMETER_SYNTAX as u8))
        }
        Err(e) => {
            let (line, code) = error_line(&e);
            eprintln!("{prog}: {line}");
            Err(ExitCode::from(code as u8))
        }
    }
}

/// A command-line error as one line, and its exit code: a value its parser refused is a
/// bad value (OpenVZ's 21), named as the parser said it (control characters escaped, so
/// the line stays one); anything else is bad syntax (20).
fn error_line(e: &clap::Error) -> (String, i32) {
    use clap::error::{ContextKind, ContextValue};
    use std::error::Error as _;
    if e.kind() == ErrorKind::ValueValidation {
        let value = match e.get(ContextKind::InvalidValue) {
            Some(ContextValue::String(v)) => v.escape_default().to_string(),
            _ => String::new(),
        };
        let flag = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(a)) => a.split(' ').next().unwrap_or_default().to_string(),
            _ => String::new(),
        };
        if let Some(why) = e.source() {
            let why = why.to_string().replace('\n', "\\n");
            // A password is never echoed: the parser's own line names the user only.
            let line = if flag == "--userpasswd" || why.contains(&format!("'{value}'")) {
                why
            } else {
                format!("invalid value '{value}' for {flag}: {why}")
            };
            return (line, crate::exit::INVALID_PARAMETER_VALUE);
        }
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
    (first.to_string(), crate::exit::INVALID_PARAMETER_SYNTAX)
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

/// How `vzubc` (and `vzctl ubc`) shows beancounters.
#[derive(Debug, Clone, Copy, Default)]
pub struct UbcView {
    /// `-q` (OpenVZ's quiet): only rows that failed or are near their barrier.
    pub quiet: bool,
    /// `-c` (OpenVZ's color): failed rows red, rows near their barrier yellow.
    pub color: bool,
    /// `-m`: a column naming what counts and refuses each row.
    pub mechanism: bool,
}

/// Prints beancounter rows as /proc/user_beancounters does.
pub fn print_ubc(report: &[(u32, Vec<crate::ve::Row>)], view: UbcView) {
    print!("{}", render_ubc(report, view));
}

fn render_ubc(report: &[(u32, Vec<crate::ve::Row>)], view: UbcView) -> String {
    let shown: Vec<(u32, Vec<&crate::ve::Row>)> = report
        .iter()
        .map(|(v, rows)| (*v, rows.iter().filter(|r| !view.quiet || failed(&r.row) || near(&r.row)).collect()))
        .filter(|(_, r): &(u32, Vec<_>)| !r.is_empty() || !view.quiet)
        .collect();
    let plain: Vec<(u32, Vec<crate::ubc::UbcRow>)> =
        shown.iter().map(|(v, rows)| (*v, rows.iter().map(|r| r.row).collect())).collect();
    let text = crate::ubc::format_report(&plain);
    let mut lines = text.lines();
    let mut out = String::new();
    for _ in 0..2 {
        if let Some(l) = lines.next() {
            out.push_str(l);
            if view.mechanism && l.contains("resource") {
                out.push_str("  mechanism");
            }
            out.push('\n');
        }
    }
    for (l, r) in lines.zip(shown.iter().flat_map(|(_, rows)| rows.iter())) {
        let mut line = l.to_string();
        if view.mechanism {
            line = format!("{line}  {}", r.mechanism.label());
        }
        out.push_str(&if view.color { paint(&line, &r.row) } else { line });
        out.push('\n');
    }
    out
}

/// A row's line in red if it failed, yellow if near its barrier (ANSI, as OpenVZ's vzubc -c).
fn paint(line: &str, r: &crate::ubc::UbcRow) -> String {
    match (failed(r), near(r)) {
        (true, _) => format!("\x1b[31m{line}\x1b[0m"),
        (false, true) => format!("\x1b[33m{line}\x1b[0m"),
        _ => line.to_string(),
    }
}

fn failed(r: &crate::ubc::UbcRow) -> bool {
    r.usage.failcnt > 0
}

/// Held within 10 % of a real barrier.
fn near(r: &crate::ubc::UbcRow) -> bool {
    let b = r.limit.barrier;
    b > 0 && b < vz_common::UB_UNLIMITED && r.usage.held.saturating_mul(10) >= b.saturating_mul(9)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::ve::{Sel, SetOpts, VeRef};

    #[derive(Parser, Debug)]
    struct Set {
        veid: VeRef,
        #[command(flatten)]
        opts: SetOpts,
    }

    fn set(args: &[&str]) -> Result<Set, clap::Error> {
        Set::try_parse_from(std::iter::once("set").chain(args.iter().copied()))
    }

    #[test]
    fn set_values_are_typed_as_they_are_read() {
        let s = set(&[
            "web",
            "--cpuunits",
            "2000",
            "--onboot",
            "no",
            "--ipdel",
            "all",
            "--ipdel",
            "10.0.0.2",
            "--rate",
            "eth0:1:800",
            "--numtcpsock",
            "5:10",
            "--ram",
            "1G",
            "--cpumask",
            "all",
        ])
        .unwrap();
        assert_eq!(s.veid, VeRef::Name("web".into()));
        let o = &s.opts;
        assert_eq!(o.cpuunits, Some(2000));
        assert_eq!(o.onboot, Some(false));
        assert_eq!(o.ipdel, vec![Sel::All, Sel::One("10.0.0.2".parse().unwrap())]);
        let rate = o.rate.as_ref().unwrap();
        assert_eq!((rate.value, rate.text.as_str()), (Some(800), "eth0:1:800"));
        let (r, l) = &o.ubc.0[0];
        assert_eq!((r.name, l.value.barrier, l.value.limit, l.text.as_str()), ("numtcpsock", 5, 10, "5:10"));
        assert_eq!(o.ram, Some(262144));
        assert_eq!(o.cpumask.as_ref().map(|m| m.0.clone()), Some(None));
        assert!(set(&["101"]).unwrap().opts.is_empty());
        // A bare number is bytes: fine when it is a real size; no swap is 0.
        let o = set(&["101", "--ram", "268435456", "--swap", "0"]).unwrap().opts;
        assert_eq!((o.ram, o.swap), (Some(65536), Some(0)));
        assert_eq!(set(&["101", "--swap", "512M"]).unwrap().opts.swap, Some(131072));
    }

    #[test]
    fn a_refused_value_is_one_line_naming_it_with_exit_21() {
        for (args, needle) in [
            (&["101", "--cpuunits", "abc"][..], "'abc'"),
            (&["101", "--kmemsize", "-3"], "'-3'"),
            (&["101", "--numfile", "5:4"], "'5:4'"),
            (&["101", "--ram", "0"], "without a unit is bytes"),
            (&["101", "--ram", "256"], "without a unit is bytes"),
            (&["101", "--ram", "512K"], "at least 1M"),
            (&["101", "--swap", "512"], "without a unit is bytes"),
            (&["101", "--onboot", "maybe"], "'maybe'"),
            (&["101", "--ipadd", "127.0.0.5"], "loopback"),
            (&["101", "--netfilter-rule", "deny in tcp 99999"], "99999"),
            (&["101", "--description", "one\nTWO=\"x\""], "newline"),
            (&["100", "--cpuunits", "100"], "invalid VEID '100'"),
            (&["bad name", "--cpuunits", "100"], "'bad name'"),
        ] {
            let e = set(args).unwrap_err();
            let (line, code) = error_line(&e);
            assert_eq!(code, crate::exit::INVALID_PARAMETER_VALUE, "{args:?}: {line}");
            assert!(line.contains(needle), "{args:?}: {line}");
            assert!(!line.contains('\n'), "{args:?}: {line:?}");
        }
    }

    #[test]
    fn a_bad_command_line_is_a_syntax_error_with_exit_20() {
        let (line, code) = error_line(&set(&["101", "--no-such-flag"]).unwrap_err());
        assert_eq!(code, crate::exit::INVALID_PARAMETER_SYNTAX);
        assert!(line.contains("--no-such-flag"), "{line}");
    }
    #[test]
    fn vzubc_quiet_keeps_failed_and_near_rows_and_color_marks_them() {
        use crate::ubc::{Mechanism, Resource, UbcRow};
        use vz_common::{UbcLimit, UbcUsage};
        let row = |name: &str, held: u64, barrier: u64, failcnt: u64| crate::ve::Row {
            row: UbcRow {
                resource: Resource::by_name(name).unwrap(),
                usage: UbcUsage { held, maxheld: held, failcnt },
                limit: UbcLimit { barrier, limit: barrier },
            },
            mechanism: Mechanism::Pids,
        };
        let report = vec![
            (101, vec![row("numproc", 40, 40, 3), row("numtcpsock", 10, 360, 0), row("numfile", 95, 100, 0)]),
            (102, vec![row("numproc", 1, 40, 0)]),
        ];
        let all = render_ubc(&report, UbcView::default());
        assert_eq!(all.lines().count(), 2 + 4, "{all}");
        assert!(!all.contains('\x1b'), "no color unless asked: {all}");
        let quiet = render_ubc(&report, UbcView { quiet: true, ..Default::default() });
        let names: Vec<&str> = quiet.lines().skip(2).map(|l| l.split_whitespace().rev().nth(5).unwrap()).collect();
        assert_eq!(names, ["numproc", "numfile"], "{quiet}");
        assert!(!quiet.contains("102:"), "a VE with nothing to say is left out: {quiet}");
        let color = render_ubc(&report, UbcView { color: true, mechanism: true, ..Default::default() });
        let lines: Vec<&str> = color.lines().collect();
        assert!(lines[1].ends_with("mechanism") && !lines[1].contains('\x1b'), "{color}");
        assert!(lines[2].starts_with("\x1b[31m") && lines[2].contains("numproc"), "failed: red: {color}");
        assert!(!lines[3].contains('\x1b'), "far from its barrier: plain: {color}");
        assert!(lines[4].starts_with("\x1b[33m") && lines[4].contains("numfile"), "near: yellow: {color}");
    }
}
