//! vzlist: fields, sorting and output formats (table, `-1`, JSON). Pure formatting over
//! [`VeRow`]s, unit-tested without root.
use std::{cmp::Ordering, fmt::Write as _};

use vz_common::{VeLimits, VeUsage};

use crate::{config::ConfFile, ubc::Resource, ve::Status};

pub mod collect;
mod json;
pub use json::json;
use json::json_str;

/// Everything vzlist knows about one VE.
#[derive(Debug, Clone)]
pub struct VeRow {
    pub veid: u32,
    pub status: Status,
    pub nproc: usize,
    pub conf: ConfFile,
    pub ubc: Option<(VeUsage, VeLimits)>,
    /// Traffic counters (running VEs with a venet pair).
    pub net: Option<vz_common::NetStats>,
    /// Block I/O the VE submitted, all devices (running VEs, when accounted).
    pub io: Option<crate::io::IoTotals>,
    /// Disk usage (KiB, inodes) of a mounted VE, where the layout measures it.
    pub disk: Option<(u64, u64)>,
    /// Resource ids (bit per id) whose usage has a real source on this host; the others
    /// show their barrier and limit, and "-" for held, maxheld and failcnt.
    pub measured: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListError {
    #[error("unknown field '{0}' (see vzlist -L)")]
    UnknownField(String),
}

/// A value as printed: numbers compare as numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(u64),
    Str(String),
    None,
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Num(n) => n.to_string(),
            Value::Str(s) if !s.is_empty() => s.clone(),
            _ => "-".into(),
        }
    }
    fn json(&self) -> String {
        match self {
            Value::Num(n) => n.to_string(),
            Value::Str(s) => json_str(s),
            Value::None => "null".into(),
        }
    }
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Num(a), Value::Num(b)) => a.cmp(b),
            (Value::None, Value::None) => Ordering::Equal,
            (Value::None, _) => Ordering::Less,
            (_, Value::None) => Ordering::Greater,
            (a, b) => a.text().cmp(&b.text()),
        }
    }
}

/// Plain fields: name, header, width (negative: left-aligned), config key.
const PLAIN: &[(&str, &str, i32, &str)] = &[
    ("ctid", "CTID", 10, ""),
    ("veid", "CTID", 10, ""),
    ("nproc", "NPROC", 10, ""),
    ("status", "STATUS", -9, ""),
    ("ip", "IP_ADDR", -15, "IP_ADDRESS"),
    ("hostname", "HOSTNAME", -20, "HOSTNAME"),
    ("name", "NAME", -10, "NAME"),
    ("ostemplate", "OSTEMPLATE", -20, "OSTEMPLATE"),
    ("onboot", "ONBOOT", -6, "ONBOOT"),
    ("bootorder", "BOOTORDER", 9, "BOOTORDER"),
    ("description", "DESCRIPTION", -20, "DESCRIPTION"),
    ("private", "PRIVATE", -20, "VE_PRIVATE"),
    ("root", "ROOT", -20, "VE_ROOT"),
    // CPU settings (defaults when the config has none: 1000 units, no limit).
    ("cpuunits", "CPUUNITS", 9, "CPUUNITS"),
    ("cpulimit", "CPULIM", 7, "CPULIMIT"),
    // I/O settings (defaults: priority 4, no caps) and what the VE did, as vzstat counts it.
    ("ioprio", "IOPRIO", 6, "IOPRIO"),
    ("iolimit", "IOLIMIT", 10, "IOLIMIT"),
    ("iopslimit", "IOPSLIMIT", 9, "IOPSLIMIT"),
    // Disk: usage of a mounted VE (KiB, inodes) and the configured soft/hard limits.
    ("diskspace", "DQBLOCKS", 10, ""),
    ("diskspace.s", "DQBLOCKS.S", 10, "DISKSPACE"),
    ("diskspace.h", "DQBLOCKS.H", 10, "DISKSPACE"),
    ("diskinodes", "DQINODES", 10, ""),
    ("diskinodes.s", "DQINODES.S", 10, "DISKINODES"),
    ("diskinodes.h", "DQINODES.H", 10, "DISKINODES"),
    ("layout", "LAYOUT", -6, "VE_LAYOUT"),
    ("ioread", "IOREAD", 12, ""),
    ("iowrite", "IOWRITE", 12, ""),
    ("ioreadops", "IOREADOPS", 10, ""),
    ("iowriteops", "IOWRITEOPS", 10, ""),
    // Traffic of a running VE, as vznetstat counts it.
    ("netin", "NETIN", 12, ""),
    ("netin.p", "NETIN.P", 10, ""),
    ("netout", "NETOUT", 12, ""),
    ("netout.p", "NETOUT.P", 10, ""),
    ("netdrop", "NETDROP", 8, ""),
    ("netfiltered", "NETFILT", 8, ""),
];

/// A parsed `-o` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Plain(usize),
    /// Beancounter and which column: 'h'eld, 'm'axheld, 'b'arrier, 'l'imit, 'f'ailcnt.
    Ubc(&'static Resource, char),
}

impl Field {
    pub fn parse(s: &str) -> Result<Self, ListError> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = PLAIN.iter().position(|(n, ..)| *n == lower) {
            return Ok(Field::Plain(i));
        }
        let (base, col) = match lower.rsplit_once('.') {
            Some((b, "m")) => (b, 'm'),
            Some((b, "b")) => (b, 'b'),
            Some((b, "l")) => (b, 'l'),
            Some((b, "f")) => (b, 'f'),
            Some(_) => return Err(ListError::UnknownField(s.into())),
            None => (lower.as_str(), 'h'),
        };
        Resource::by_name(base).map(|r| Field::Ubc(r, col)).map_err(|_| ListError::UnknownField(s.into()))
    }

    pub fn name(&self) -> String {
        match self {
            Field::Plain(i) => PLAIN[*i].0.into(),
            Field::Ubc(r, 'h') => r.name.into(),
            Field::Ubc(r, c) => format!("{}.{c}", r.name),
        }
    }

    fn header(&self) -> String {
        match self {
            Field::Plain(i) => PLAIN[*i].1.into(),
            Field::Ubc(r, 'h') => r.name.to_ascii_uppercase(),
            Field::Ubc(r, c) => format!("{}.{}", r.name.to_ascii_uppercase(), c.to_ascii_uppercase()),
        }
    }

    fn width(&self) -> i32 {
        match self {
            Field::Plain(i) => PLAIN[*i].2,
            Field::Ubc(..) => 12,
        }
    }

    pub fn value(&self, row: &VeRow) -> Value {
        match self {
            Field::Plain(i) => match PLAIN[*i].0 {
                "ctid" | "veid" => Value::Num(u64::from(row.veid)),
                "nproc" if row.status.running => Value::Num(row.nproc as u64),
                "nproc" => Value::None,
                n @ ("netin" | "netin.p" | "netout" | "netout.p" | "netdrop" | "netfiltered") => {
                    match row.net.filter(|_| row.status.running) {
                        Some(s) => Value::Num(match n {
                            "netin" => s.in_bytes,
                            "netin.p" => s.in_packets,
                            "netout" => s.out_bytes,
                            "netout.p" => s.out_packets,
                            "netdrop" => s.drops,
                            _ => s.filtered,
                        }),
                        None => Value::None,
                    }
                }
                n @ ("ioread" | "iowrite" | "ioreadops" | "iowriteops") => {
                    match row.io.filter(|_| row.status.running) {
                        Some(t) => Value::Num(match n {
                            "ioread" => t.read_bytes,
                            "iowrite" => t.write_bytes,
                            "ioreadops" => t.read_ops,
                            _ => t.write_ops,
                        }),
                        None => Value::None,
                    }
                }
                "diskspace" => row.disk.map_or(Value::None, |(kb, _)| Value::Num(kb)),
                "diskinodes" => row.disk.map_or(Value::None, |(_, n)| Value::Num(n)),
                n @ ("diskspace.s" | "diskspace.h" | "diskinodes.s" | "diskinodes.h") => {
                    let l = match row.conf.get(PLAIN[*i].3) {
                        Some(v) if n.starts_with("diskspace") => crate::disk::parse_diskspace(v).ok(),
                        Some(v) => crate::disk::parse_diskinodes(v).ok(),
                        None => None,
                    };
                    l.map_or(Value::None, |l| Value::Num(if n.ends_with(".s") { l.soft } else { l.hard }))
                }
                "layout" => Value::Str(row.conf.get("VE_LAYOUT").unwrap_or("simfs").trim().into()),
                // As OpenVZ's vzlist shows them: the VE's own paths, $VEID expanded.
                "private" | "root" => row.conf.get(PLAIN[*i].3).map_or(Value::None, |v| {
                    Value::Str(crate::config::expand_veid(v.trim(), row.veid).to_string_lossy().into_owned())
                }),
                "ioprio" => Value::Num(
                    row.conf
                        .get("IOPRIO")
                        .and_then(|v| crate::io::parse_prio(v).ok())
                        .unwrap_or(crate::io::DEFAULT_PRIO)
                        .into(),
                ),
                "iolimit" => {
                    Value::Num(row.conf.get("IOLIMIT").and_then(|v| crate::io::parse_limit(v).ok()).unwrap_or(0))
                }
                "iopslimit" => {
                    Value::Num(row.conf.get("IOPSLIMIT").and_then(|v| crate::io::parse_iops(v).ok()).unwrap_or(0))
                }
                "cpuunits" => Value::Num(
                    row.conf
                        .get("CPUUNITS")
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(crate::cpu::DEFAULT_UNITS.into()),
                ),
                "cpulimit" => Value::Num(
                    row.conf.get("CPULIMIT").and_then(|v| v.trim().trim_end_matches('%').parse().ok()).unwrap_or(0),
                ),
                "status" => Value::Str(
                    if row.status.running {
                        "running"
                    } else if row.status.mounted {
                        "mounted"
                    } else {
                        "stopped"
                    }
                    .into(),
                ),
                _ => row.conf.get(PLAIN[*i].3).map_or(Value::None, |v| Value::Str(v.trim().into())),
            },
            Field::Ubc(r, c) => {
                let (u, l) = match &row.ubc {
                    Some((u, l)) if row.status.running => (u.res[r.id as usize], l.res[r.id as usize]),
                    _ => return Value::None,
                };
                if !matches!(c, 'b' | 'l') && row.measured & (1 << r.id) == 0 {
                    return Value::None;
                }
                Value::Num(match c {
                    'm' => u.maxheld,
                    'b' => l.barrier,
                    'l' => l.limit,
                    'f' => u.failcnt,
                    _ => u.held,
                })
            }
        }
    }
}

/// vznetstat's table: OpenVZ's columns (class 0: vzbpf has one traffic class), plus the
/// packets dropped for a spoofed source and those a firewall rule denied.
pub fn netstat_table(rows: &[(u32, vz_common::NetStats)]) -> String {
    let mut out = format!(
        "{:>10} {:>9} {:>14} {:>12} {:>14} {:>12} {:>9} {:>9}\n",
        "VEID", "Net.Class", "Input(bytes)", "Input(pkts)", "Output(bytes)", "Output(pkts)", "Dropped", "Filtered"
    );
    for (veid, s) in rows {
        out.push_str(&format!(
            "{:>10} {:>9} {:>14} {:>12} {:>14} {:>12} {:>9} {:>9}\n",
            veid, 0, s.in_bytes, s.in_packets, s.out_bytes, s.out_packets, s.drops, s.filtered
        ));
    }
    out
}

pub fn parse_fields(list: &str) -> Result<Vec<Field>, ListError> {
    list.split(',').filter(|s| !s.is_empty()).map(Field::parse).collect()
}

pub fn default_fields(show_name: bool) -> Vec<Field> {
    let names: &[&str] = if show_name {
        &["ctid", "nproc", "status", "ip", "name"]
    } else {
        &["ctid", "nproc", "status", "ip", "hostname"]
    };
    names.iter().filter_map(|n| Field::parse(n).ok()).collect()
}

/// Every field `-o` takes, as `vzlist -L` lists them.
pub fn field_names() -> Vec<String> {
    let mut v: Vec<String> = PLAIN.iter().map(|p| p.0.to_string()).collect();
    for r in crate::ubc::ALL {
        v.extend(["", ".m", ".b", ".l", ".f"].map(|c| format!("{}{c}", r.name)));
    }
    v
}

/// `-h`, `-N`, `-d`: whether a VE's `key` (HOSTNAME, NAME, DESCRIPTION) matches a shell
/// pattern; a VE without one matches none.
pub fn matches(conf: &ConfFile, key: &str, pattern: &str) -> bool {
    conf.get(key).is_some_and(|v| crate::glob::matches(pattern, v.trim()))
}

/// Which VEs `vzlist` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Running,
    All,
    Stopped,
}

pub fn filter(rows: Vec<VeRow>, f: Filter) -> Vec<VeRow> {
    rows.into_iter()
        .filter(|r| match f {
            Filter::All => true,
            Filter::Running => r.status.running,
            Filter::Stopped => !r.status.running,
        })
        .collect()
}

/// `-s field` ascending, `-s -field` descending; ties by VEID.
/// `vzlist -s [-]FIELD`: a field to sort by, `-` for descending.
#[derive(Debug, Clone)]
pub struct SortKey {
    pub field: Field,
    pub desc: bool,
}

impl std::str::FromStr for SortKey {
    type Err = ListError;
    fn from_str(key: &str) -> Result<Self, ListError> {
        let (desc, name) = match key.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, key),
        };
        Ok(Self { field: Field::parse(name)?, desc })
    }
}

/// `vzlist -o a,b,c`.
#[derive(Debug, Clone)]
pub struct Fields(pub Vec<Field>);

impl std::str::FromStr for Fields {
    type Err = ListError;
    fn from_str(list: &str) -> Result<Self, ListError> {
        parse_fields(list).map(Fields)
    }
}

pub fn sort(rows: &mut [VeRow], key: &SortKey) {
    let f = &key.field;
    rows.sort_by(|a, b| {
        let o = f.value(a).cmp(&f.value(b)).then(a.veid.cmp(&b.veid));
        if key.desc {
            o.reverse()
        } else {
            o
        }
    });
}

/// A cell as vzlist prints it: a value wider than its column is cut to the column unless
/// it is the last column or `-t` (`trim` false) was given; the addresses of a VE in any
/// column but the last are its first one only (OpenVZ's vzlist).
fn cell(f: &Field, v: Value, last: bool, trim: bool) -> String {
    let text = v.text();
    if last {
        return text;
    }
    let text = match f {
        Field::Plain(i) if PLAIN[*i].0 == "ip" => text.split_whitespace().next().unwrap_or("-").to_string(),
        _ => text,
    };
    let w = f.width().unsigned_abs() as usize;
    if trim && matches!(v, Value::Str(_)) && text.chars().count() > w {
        text.chars().take(w).collect()
    } else {
        text
    }
}

/// The table vzlist prints (`trim`: as without `-t`).
pub fn table(rows: &[VeRow], fields: &[Field], header: bool, trim: bool) -> String {
    let mut out = String::new();
    let line = |cells: Vec<String>| -> String {
        let n = cells.len();
        let mut l = String::new();
        for (i, (c, f)) in cells.iter().zip(fields).enumerate() {
            if i > 0 {
                l.push(' ');
            }
            let w = f.width();
            let last = i + 1 == n;
            let wu = w.unsigned_abs() as usize;
            if last && w < 0 {
                l.push_str(c);
            } else if w < 0 {
                let _ = write!(l, "{c:<wu$}");
            } else {
                let _ = write!(l, "{c:>wu$}");
            }
        }
        l.trim_end().to_string()
    };
    if header {
        out.push_str(&line(fields.iter().map(Field::header).collect()));
        out.push('\n');
    }
    let n = fields.len();
    for r in rows {
        out.push_str(&line(fields.iter().enumerate().map(|(i, f)| cell(f, f.value(r), i + 1 == n, trim)).collect()));
        out.push('\n');
    }
    out
}

/// `vzlist -1`: VEIDs only.
pub fn ids(rows: &[VeRow]) -> String {
    rows.iter().map(|r| format!("{}\n", r.veid)).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;

    pub(crate) fn row(veid: u32, running: bool, conf: &str) -> VeRow {
        let mut usage = VeUsage::default();
        usage.res[9].held = 3;
        usage.res[9].maxheld = 5;
        usage.res[9].failcnt = 1;
        let mut lim = VeLimits::default();
        lim.res[9].barrier = 80;
        lim.res[9].limit = 90;
        VeRow {
            veid,
            status: Status { exist: true, mounted: running, running },
            nproc: if running { 7 } else { 0 },
            conf: ConfFile::parse(conf, Path::new("t")).unwrap(),
            ubc: Some((usage, lim)),
            net: Some(vz_common::NetStats { in_bytes: 1500, in_packets: 3, ..Default::default() }),
            io: Some(crate::io::IoTotals { read_bytes: 4096, write_ops: 2, ..Default::default() }),
            disk: running.then_some((2048, 300)),
            measured: !(1 << 18),
        }
    }

    #[test]
    fn private_and_root_are_the_ves_own_paths() {
        let rows = vec![row(101, true, "VE_PRIVATE=\"/vz/private/$VEID\"\nVE_ROOT=\"/vz/root/${VEID}\"\n")];
        let t = table(&rows, &parse_fields("ctid,private,root").unwrap(), false, true);
        assert_eq!(t.split_whitespace().collect::<Vec<_>>(), ["101", "/vz/private/101", "/vz/root/101"]);
    }

    #[test]
    fn traffic_fields() {
        let rows = vec![row(101, true, ""), row(102, false, "")];
        let f = parse_fields("ctid,netin,netin.p,netout").unwrap();
        let t = table(&rows, &f, true, true);
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["CTID", "NETIN", "NETIN.P", "NETOUT"]);
        assert_eq!(lines[1], ["101", "1500", "3", "0"]);
        // A stopped VE has no traffic figures.
        assert_eq!(lines[2], ["102", "-", "-", "-"]);
    }

    #[test]
    fn netstat_columns() {
        let s =
            vz_common::NetStats { in_bytes: 1500, in_packets: 3, out_bytes: 98, out_packets: 1, drops: 2, filtered: 4 };
        let t = netstat_table(&[(101, s)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "VEID",
                "Net.Class",
                "Input(bytes)",
                "Input(pkts)",
                "Output(bytes)",
                "Output(pkts)",
                "Dropped",
                "Filtered"
            ]
        );
        assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["101", "0", "1500", "3", "98", "1", "2", "4"]);
        assert_eq!(lines[0].len(), lines[1].len());
    }

    #[test]
    fn unmeasured_rows_show_limits_but_no_usage() {
        // dcachesize (18) has no source in this row: its usage is "-", its limits are shown.
        let rows = vec![row(101, true, "")];
        let f = parse_fields("dcachesize,dcachesize.b,dcachesize.f,numtcpsock").unwrap();
        let t = table(&rows, &f, false, true);
        let cols: Vec<&str> = t.split_whitespace().collect();
        assert_eq!(cols, ["-", "9223372036854775807", "-", "3"]);
        assert!(json(&rows, &f).contains("\"held\": null"), "{}", json(&rows, &f));
    }

    #[test]
    fn default_table_matches_vzlist() {
        let rows =
            vec![row(101, true, "HOSTNAME=\"ct101.example.com\"\nIP_ADDRESS=\"10.0.0.1\"\n"), row(1002, true, "")];
        let t = table(&rows, &default_fields(false), true, true);
        assert_eq!(
            t,
            "      CTID      NPROC STATUS    IP_ADDR         HOSTNAME\n\
             \x20      101          7 running   10.0.0.1        ct101.example.com\n\
             \x20     1002          7 running   -               -\n"
        );
        assert!(!table(&rows, &default_fields(false), false, true).contains("CTID"));
    }

    #[test]
    fn long_values_are_cut_to_their_column_unless_last_or_no_trim() {
        let long = "HOSTNAME=\"a-very-long-hostname.example.com\"\nIP_ADDRESS=\"10.0.0.1 10.0.0.2\"\n";
        let rows = vec![row(101, true, long)];
        let f = parse_fields("hostname,ip").unwrap();
        assert_eq!(table(&rows, &f, false, true), "a-very-long-hostname 10.0.0.1 10.0.0.2\n");
        assert_eq!(table(&rows, &f, false, false), "a-very-long-hostname.example.com 10.0.0.1 10.0.0.2\n");
        let f = parse_fields("ip,hostname").unwrap();
        assert_eq!(table(&rows, &f, false, true), "10.0.0.1        a-very-long-hostname.example.com\n");
    }

    #[test]
    fn filters_and_ids() {
        let rows = vec![row(101, true, ""), row(102, false, ""), row(103, true, "")];
        assert_eq!(ids(&filter(rows.clone(), Filter::Running)), "101\n103\n");
        assert_eq!(ids(&filter(rows.clone(), Filter::Stopped)), "102\n");
        assert_eq!(ids(&filter(rows, Filter::All)), "101\n102\n103\n");
    }

    #[test]
    fn ubc_fields_and_suffixes() {
        let r = row(101, true, "");
        let f = parse_fields("ctid,numtcpsock,numtcpsock.m,numtcpsock.b,numtcpsock.l,numtcpsock.f").unwrap();
        let t = table(std::slice::from_ref(&r), &f, true, true);
        let cells: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(cells, ["101", "3", "5", "80", "90", "1"]);
        assert!(t.starts_with("      CTID   NUMTCPSOCK NUMTCPSOCK.M"));
        // A stopped VE has no held values.
        let t = table(&[row(102, false, "")], &f, false, true);
        assert_eq!(t.split_whitespace().collect::<Vec<_>>(), ["102", "-", "-", "-", "-", "-"]);
        assert_eq!(Field::parse("bogus"), Err(ListError::UnknownField("bogus".into())));
        assert_eq!(Field::parse("numtcpsock.x"), Err(ListError::UnknownField("numtcpsock.x".into())));
    }

    #[test]
    fn sorting() {
        let mut rows =
            vec![row(103, true, "HOSTNAME=b\n"), row(101, true, "HOSTNAME=c\n"), row(102, true, "HOSTNAME=a\n")];
        sort(&mut rows, &"hostname".parse().unwrap());
        assert_eq!(ids(&rows), "102\n103\n101\n");
        sort(&mut rows, &"-ctid".parse().unwrap());
        assert_eq!(ids(&rows), "103\n102\n101\n");
        assert!("nope".parse::<SortKey>().is_err());
    }

    #[test]
    fn json_output() {
        let rows = vec![row(101, true, "HOSTNAME=\"h\\\"q\"\n")];
        let f = parse_fields("ctid,status,hostname,ip,numtcpsock.b,numtcpsock").unwrap();
        assert_eq!(
            json(&rows, &f),
            "[\n  {\"ctid\": 101, \"status\": \"running\", \"hostname\": \"h\\\"q\", \"ip\": [], \"numtcpsock\": {\"held\": 3, \"maxheld\": 5, \"barrier\": 80, \"limit\": 90, \"failcnt\": 1}}\n]\n"
        );
        assert_eq!(json(&[], &f), "[]\n");
        // Addresses a list, yes/no a boolean (OpenVZ's vzlist -j).
        let rows = vec![row(102, false, "IP_ADDRESS=\"10.0.0.1 10.0.0.2\"\nONBOOT=\"yes\"\n")];
        let f = parse_fields("ip,onboot").unwrap();
        assert_eq!(json(&rows, &f), "[\n  {\"ip\": [\"10.0.0.1\", \"10.0.0.2\"], \"onboot\": true}\n]\n");
    }
}
