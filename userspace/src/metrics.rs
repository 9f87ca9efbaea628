//! Prometheus text exposition of every VE: beancounters, processes, CPU, traffic, block
//! I/O and disk usage. Built from the same [`VeRow`]s and field values vzlist prints, so a
//! scrape and `vzlist -o` agree by construction.
use std::fmt::Write as _;

use crate::{
    list::{Field, Value, VeRow},
    ubc::ALL,
};

/// One VE as a scrape sees it: its vzlist row and the CPU time its cgroup has used.
pub struct Sample {
    pub row: VeRow,
    pub cpu_ns: Option<u64>,
}

/// A metric family: name, type, help, and which vzlist field feeds it (with a factor that
/// makes its unit a base one).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    field: &'static str,
    scale: u64,
}

const PLAIN: &[Family] = &[
    Family { name: "vz_ve_processes", kind: "gauge", help: "Processes in the VE.", field: "nproc", scale: 1 },
    Family {
        name: "vz_net_receive_bytes_total",
        kind: "counter",
        help: "Bytes the VE received.",
        field: "netin",
        scale: 1,
    },
    Family {
        name: "vz_net_receive_packets_total",
        kind: "counter",
        help: "Packets the VE received.",
        field: "netin.p",
        scale: 1,
    },
    Family {
        name: "vz_net_transmit_bytes_total",
        kind: "counter",
        help: "Bytes the VE sent.",
        field: "netout",
        scale: 1,
    },
    Family {
        name: "vz_net_transmit_packets_total",
        kind: "counter",
        help: "Packets the VE sent.",
        field: "netout.p",
        scale: 1,
    },
    Family {
        name: "vz_net_dropped_packets_total",
        kind: "counter",
        help: "Packets dropped for a source address not the VE's.",
        field: "netdrop",
        scale: 1,
    },
    Family {
        name: "vz_net_filtered_packets_total",
        kind: "counter",
        help: "Packets a firewall rule of the VE denied.",
        field: "netfiltered",
        scale: 1,
    },
    Family {
        name: "vz_io_read_bytes_total",
        kind: "counter",
        help: "Bytes the VE read from block devices.",
        field: "ioread",
        scale: 1,
    },
    Family {
        name: "vz_io_written_bytes_total",
        kind: "counter",
        help: "Bytes the VE wrote to block devices.",
        field: "iowrite",
        scale: 1,
    },
    Family {
        name: "vz_io_read_ops_total",
        kind: "counter",
        help: "Block read requests of the VE.",
        field: "ioreadops",
        scale: 1,
    },
    Family {
        name: "vz_io_write_ops_total",
        kind: "counter",
        help: "Block write requests of the VE.",
        field: "iowriteops",
        scale: 1,
    },
    Family {
        name: "vz_disk_used_bytes",
        kind: "gauge",
        help: "Disk space the VE uses (vzlist diskspace, KiB, times 1024).",
        field: "diskspace",
        scale: 1024,
    },
    Family { name: "vz_disk_used_inodes", kind: "gauge", help: "Inodes the VE uses.", field: "diskinodes", scale: 1 },
];

/// The beancounter families: vzlist's `RESOURCE`, `.m`, `.b`, `.l`, `.f` columns, in the
/// row's own unit (pages, bytes or items, as /proc/user_beancounters).
const UBC: &[(&str, &str, char, &str)] = &[
    ("vz_ubc_held", "gauge", 'h', "Beancounter held (as /proc/user_beancounters: pages, bytes or items)."),
    ("vz_ubc_maxheld", "gauge", 'm', "Beancounter maxheld."),
    ("vz_ubc_barrier", "gauge", 'b', "Beancounter barrier."),
    ("vz_ubc_limit", "gauge", 'l', "Beancounter limit."),
    ("vz_ubc_failcnt_total", "counter", 'f', "Beancounter failcnt: refusals at the limit."),
];

/// A label value as the text format wants it.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(row: &VeRow) -> String {
    let name = row.conf.get("NAME").map(str::trim).unwrap_or("");
    format!("veid=\"{}\",name=\"{}\"", row.veid, escape(name))
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The whole exposition.
pub fn render(samples: &[Sample]) -> String {
    let mut out = String::new();
    header(&mut out, "vz_ve_running", "gauge", "1 if the VE runs, 0 if it exists and is stopped.");
    for s in samples {
        let _ = writeln!(out, "vz_ve_running{{{}}} {}", labels(&s.row), u8::from(s.row.status.running));
    }
    header(&mut out, "vz_cpu_seconds_total", "counter", "CPU time the VE's processes used.");
    for s in samples.iter().filter(|s| s.row.status.running) {
        if let Some(ns) = s.cpu_ns {
            let _ = writeln!(
                out,
                "vz_cpu_seconds_total{{{}}} {}.{:09}",
                labels(&s.row),
                ns / 1_000_000_000,
                ns % 1_000_000_000
            );
        }
    }
    for f in PLAIN {
        let Ok(field) = Field::parse(f.field) else { continue };
        header(&mut out, f.name, f.kind, f.help);
        for s in samples {
            if let Value::Num(n) = field.value(&s.row) {
                let _ = writeln!(out, "{}{{{}}} {}", f.name, labels(&s.row), n.saturating_mul(f.scale));
            }
        }
    }
    for (name, kind, col, help) in UBC {
        header(&mut out, name, kind, help);
        for s in samples {
            for r in ALL {
                if let Value::Num(n) = Field::Ubc(r, *col).value(&s.row) {
                    let _ = writeln!(out, "{name}{{{},resource=\"{}\"}} {n}", labels(&s.row), r.name);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list::tests::row;

    fn value(text: &str, series: &str) -> Option<String> {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).map(str::to_string))
    }

    #[test]
    fn series_match_vzlist_fields() {
        let mut running = row(101, true, "NAME=\"we\\\"b\"\n");
        running.nproc = 4;
        let stopped = row(102, false, "");
        let text =
            render(&[Sample { row: running, cpu_ns: Some(1_500_000_001) }, Sample { row: stopped, cpu_ns: None }]);
        let l = "veid=\"101\",name=\"we\\\"b\"";
        assert_eq!(value(&text, &format!("vz_ve_running{{{l}}}")).as_deref(), Some("1"));
        assert_eq!(value(&text, "vz_ve_running{veid=\"102\",name=\"\"}").as_deref(), Some("0"));
        assert_eq!(value(&text, &format!("vz_ve_processes{{{l}}}")).as_deref(), Some("4"));
        assert_eq!(value(&text, &format!("vz_cpu_seconds_total{{{l}}}")).as_deref(), Some("1.500000001"));
        assert_eq!(value(&text, &format!("vz_net_receive_bytes_total{{{l}}}")).as_deref(), Some("1500"));
        assert_eq!(value(&text, &format!("vz_io_read_bytes_total{{{l}}}")).as_deref(), Some("4096"));
        assert_eq!(value(&text, &format!("vz_disk_used_bytes{{{l}}}")).as_deref(), Some("2097152"));
        // Row 9 (numtcpsock) in the sample row: held 3, maxheld 5, failcnt 1, 80:90.
        let t = format!("{l},resource=\"numtcpsock\"");
        assert_eq!(value(&text, &format!("vz_ubc_held{{{t}}}")).as_deref(), Some("3"));
        assert_eq!(value(&text, &format!("vz_ubc_maxheld{{{t}}}")).as_deref(), Some("5"));
        assert_eq!(value(&text, &format!("vz_ubc_barrier{{{t}}}")).as_deref(), Some("80"));
        assert_eq!(value(&text, &format!("vz_ubc_limit{{{t}}}")).as_deref(), Some("90"));
        assert_eq!(value(&text, &format!("vz_ubc_failcnt_total{{{t}}}")).as_deref(), Some("1"));
        // An unmeasured row (18, dcachesize) has its limits but no usage; a stopped VE no
        // usage series at all.
        let d = format!("{l},resource=\"dcachesize\"");
        assert!(value(&text, &format!("vz_ubc_barrier{{{d}}}")).is_some());
        assert!(value(&text, &format!("vz_ubc_held{{{d}}}")).is_none());
        assert!(!text.contains("veid=\"102\",name=\"\",resource"));
        assert!(value(&text, "vz_ve_processes{veid=\"102\",name=\"\"}").is_none());
    }

    #[test]
    fn every_family_has_one_help_and_type() {
        let text = render(&[]);
        for l in text.lines() {
            assert!(l.starts_with("# HELP vz_") || l.starts_with("# TYPE vz_"), "{l}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(types, 2 + PLAIN.len() + UBC.len());
        for l in text.lines().filter(|l| l.contains(" counter")) {
            assert!(l.split(' ').nth(2).is_some_and(|n| n.ends_with("_total")), "{l}");
        }
    }
}
