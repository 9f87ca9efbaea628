//! vzlist's JSON (`-j`): every row an object, beancounters as objects of their five
//! columns, addresses a list and yes/no settings booleans, as OpenVZ's vzlist prints them.
use std::{collections::HashSet, fmt::Write as _};

pub(crate) use crate::json::json_str;

use super::{Field, VeRow};

/// `vzlist -j`: a JSON array of objects. Beancounters are objects with held, maxheld,
/// barrier, limit and failcnt, whichever of their columns was asked for.
/// A plain field in JSON, typed as OpenVZ's `vzlist -j` types it: the addresses a list,
/// yes/no settings booleans.
fn plain_json(f: &Field, r: &VeRow) -> String {
    match f.name().as_str() {
        "ip" => {
            let ips = r.conf.get("IP_ADDRESS").unwrap_or("");
            format!("[{}]", ips.split_whitespace().map(json_str).collect::<Vec<_>>().join(", "))
        }
        "onboot" => match r.conf.get("ONBOOT").map(str::trim) {
            Some("yes") => "true".into(),
            Some("no") => "false".into(),
            _ => "null".into(),
        },
        _ => f.value(r).json(),
    }
}

pub fn json(rows: &[VeRow], fields: &[Field]) -> String {
    let mut out = String::from("[");
    for (i, r) in rows.iter().enumerate() {
        out.push_str(if i == 0 { "\n  {" } else { ",\n  {" });
        let mut seen = HashSet::new();
        let mut first = true;
        for f in fields {
            let (key, val) = match f {
                Field::Plain(_) => (f.name(), plain_json(f, r)),
                Field::Ubc(res, _) => {
                    if !seen.insert(res.name) {
                        continue;
                    }
                    let cols = ['h', 'm', 'b', 'l', 'f'];
                    let names = ["held", "maxheld", "barrier", "limit", "failcnt"];
                    let obj: Vec<String> = cols
                        .iter()
                        .zip(names)
                        .map(|(c, n)| format!("\"{n}\": {}", Field::Ubc(res, *c).value(r).json()))
                        .collect();
                    (res.name.to_string(), format!("{{{}}}", obj.join(", ")))
                }
            };
            if !first {
                out.push_str(", ");
            }
            first = false;
            let _ = write!(out, "{}: {val}", json_str(&key));
        }
        out.push('}');
    }
    out.push_str(if rows.is_empty() { "]\n" } else { "\n]\n" });
    out
}
