//! `vzctl set --applyconfig SAMPLE` and `--reset_ub`: settings taken from a config (a
//! sample's, or the VE's own saved beancounters) as if given on the command line, so they
//! are checked and put in force live exactly as `set` does.
use super::*;

/// Keys a sample gives as they are (`KEY` -> `--key`); beancounters are added to these.
const PLAIN: [&str; 11] = [
    "NETFILTER",
    "CPUUNITS",
    "CPULIMIT",
    "CPUS",
    "CPUMASK",
    "IOPRIO",
    "IOLIMIT",
    "IOPSLIMIT",
    "DISKSPACE",
    "DISKINODES",
    "QUOTAUGIDLIMIT",
];
/// Keys holding several values, each given as one flag.
const LISTS: [(&str, &str); 4] =
    [("CAPABILITY", "--capability"), ("DEVNODES", "--devnodes"), ("DEVICES", "--devices"), ("FEATURES", "--features")];

/// The `set` arguments for the settings of `conf`: every beancounter row, and unless
/// `ubc_only` the keys of `PLAIN` and `LISTS`.
pub(super) fn set_args(conf: &ConfFile, ubc_only: bool) -> Vec<String> {
    let mut args = Vec::new();
    for r in crate::ubc::ALL {
        if let Some(v) = conf.get(&r.name.to_ascii_uppercase()) {
            args.extend([format!("--{}", r.name), v.trim().to_string()]);
        }
    }
    if ubc_only {
        return args;
    }
    for k in PLAIN {
        if let Some(v) = conf.get(k) {
            args.extend([format!("--{}", k.to_ascii_lowercase()), v.trim().to_string()]);
        }
    }
    for (k, flag) in LISTS {
        for v in conf.get(k).unwrap_or("").split_whitespace() {
            args.extend([flag.to_string(), v.to_string()]);
        }
    }
    args
}

#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct Given {
    #[command(flatten)]
    opts: SetOpts,
}

impl Vz {
    /// The set options `--applyconfig`/`--reset_ub` stand for, checked as the command line
    /// is (a bad value in the sample is named, with its key).
    pub(super) fn derived_opts(&self, veid: u32, opts: &SetOpts) -> Result<Option<SetOpts>, VeError> {
        let mut args = Vec::new();
        if let Some(name) = &opts.applyconfig {
            let path = self.paths.sample(name);
            if crate::template::check_name(name).is_err() || !path.is_file() {
                return Err(VeError::NoSample { name: name.clone(), path });
            }
            args.extend(set_args(&ConfFile::read(&path)?, false));
        }
        if opts.reset_ub {
            args.extend(set_args(&self.conf(veid)?, true));
        }
        if args.is_empty() {
            return Ok(None);
        }
        use clap::Parser as _;
        let g = Given::try_parse_from(&args).map_err(|e| VeError::BadValue {
            key: "applyconfig",
            value: opts.applyconfig.clone().unwrap_or_else(|| "reset_ub".into()),
            why: match e.kind() {
                clap::error::ErrorKind::ValueValidation => "the sample holds a value vzctl set refuses",
                _ => "the sample holds a setting vzctl set does not take",
            },
        })?;
        Ok(Some(SetOpts { setmode: opts.setmode.clone(), ..g.opts }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_becomes_set_arguments_without_names_or_addresses() {
        let mut c = ConfFile::default();
        for (k, v) in [
            ("NUMPROC", "240:240"),
            ("PHYSPAGES", "0:256M"),
            ("CPUUNITS", "2000"),
            ("CAPABILITY", "NET_ADMIN:off SYS_TIME:off"),
            ("HOSTNAME", "sample.example"),
            ("IP_ADDRESS", "10.0.0.9"),
        ] {
            c.set(k, v);
        }
        let a = set_args(&c, false);
        let has = |flag: &str, v: &str| a.windows(2).any(|w| w[0] == flag && w[1] == v);
        assert!(has("--numproc", "240:240") && has("--physpages", "0:256M") && has("--cpuunits", "2000"));
        assert!(has("--capability", "NET_ADMIN:off") && has("--capability", "SYS_TIME:off"));
        assert!(!a.iter().any(|x| x.contains("sample.example") || x.contains("10.0.0.9")), "{a:?}");
        assert_eq!(set_args(&c, true), ["--numproc", "240:240", "--physpages", "0:256M"]);
        use clap::Parser as _;
        let g = Given::try_parse_from(&a).unwrap();
        assert_eq!(g.opts.cpuunits, Some(2000));
        assert_eq!(g.opts.capability.len(), 2);
    }
}
