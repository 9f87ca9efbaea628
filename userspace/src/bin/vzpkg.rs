//! vzpkg: the OS template cache (TEMPLATE/cache/NAME.tar.{gz,zst}).
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use vz::{config::Paths, template};

#[derive(Parser, Debug)]
#[command(name = "vzpkg", version, about = "List, create and remove cached OS templates")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    /// From the host's static busybox: no network, seconds.
    Busybox,
    /// Debian 12 (bookworm) minbase with systemd, by debootstrap (needs Debian's mirror;
    /// about a minute).
    Debian,
    /// Debian 12 minbase with sysvinit.
    DebianSysvinit,
    /// Ubuntu 22.04 (jammy) minbase with systemd (needs Ubuntu's archive).
    Ubuntu,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List cached templates.
    List,
    /// Build a template cache.
    Create {
        /// Template name (default: busybox; debian-12-systemd, debian-12-minbase or
        /// ubuntu-22.04-systemd for the other types).
        name: Option<String>,
        #[arg(long = "type", value_enum, default_value = "busybox")]
        kind: Kind,
    },
    /// Remove a template cache.
    Remove { name: String },
}

fn main() -> ExitCode {
    let cli: Cli = match vz::cli::parse("vzpkg") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vzpkg: {e}");
            ExitCode::from(47)
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let paths = Paths::load()?;
    match cli.cmd {
        Cmd::List => {
            for t in template::list(&paths) {
                println!("{:<30} {:>12}  {}", t.name, t.size, t.path.display());
            }
        }
        Cmd::Create { name, kind } => {
            let path = match kind {
                Kind::Busybox => {
                    template::create_busybox(&paths, name.as_deref().unwrap_or(template::DEFAULT_TEMPLATE))?
                }
                Kind::Debian | Kind::DebianSysvinit | Kind::Ubuntu => {
                    let d = match kind {
                        Kind::Debian => template::DEBIAN_SYSTEMD,
                        Kind::DebianSysvinit => template::DEBIAN_SYSVINIT,
                        _ => template::UBUNTU,
                    };
                    template::create_distro(&paths, &d, name.as_deref().unwrap_or(d.template), &mut std::io::stderr())?
                }
            };
            println!("Created template cache {}", path.display());
        }
        Cmd::Remove { name } => {
            template::remove(&paths, &name)?;
            println!("Removed template {name}");
        }
    }
    Ok(())
}
