//! Checks on the library's shape that rustc does not make: no import circle between its
//! top-level modules (`crate::a` naming `crate::b` and back, at any length), no file
//! over `MAX_LINES` lines unless its first lines say why, and no `unsafe` outside `sys/`
//! (tests included: they go through `sys` too).
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

use anyhow::{bail, Result};

pub const MAX_LINES: usize = 600;
/// A file may pass `MAX_LINES` when its top comment holds this phrase and a reason.
pub const LONG_FILE_MARK: &str = "Longer than 600 lines because";

/// The top-level module a source file belongs to (`ve/start.rs` -> `ve`), or None for
/// binaries and the crate root.
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "bin" | "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// Code of a file without comments and its `#[cfg(test)]` module (tests may use anything).
fn non_test(text: &str) -> String {
    let code = text.find("#[cfg(test)]\nmod tests").map_or(text, |i| &text[..i]);
    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Names following `crate::` and inside `use crate::{...}` groups.
pub fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| {
        s.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect::<String>()
    };
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find("};").unwrap_or(group.len());
            // Only the first path segment of each item names a module of the crate.
            let mut depth = 0usize;
            let mut at_item_start = true;
            let g = &group[..end];
            let mut j = 0;
            while j < g.len() {
                let c = g.as_bytes()[j] as char;
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => at_item_start = true,
                    c if at_item_start && (c.is_ascii_lowercase() || c == '_') => {
                        let name = ident(&g[j..]);
                        j += name.len();
                        out.insert(name);
                        at_item_start = false;
                        continue;
                    }
                    c if !c.is_whitespace() => at_item_start = false,
                    _ => {}
                }
                j += 1;
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            rs_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// The module graph of the crate whose sources are under `src`.
pub fn module_graph(src: &Path) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rs_files(src, &mut files)?;
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        if let Some(m) = module_of(f.strip_prefix(src)?) {
            graph.entry(m).or_default();
        }
    }
    for f in &files {
        let Some(m) = module_of(f.strip_prefix(src)?) else { continue };
        let refs = crate_refs(&non_test(&fs::read_to_string(f)?));
        let deps: Vec<String> = refs.into_iter().filter(|r| *r != m && graph.contains_key(r)).collect();
        graph.entry(m).or_default().extend(deps);
    }
    Ok(graph)
}

/// Every import circle of the graph, each as the path that closes it.
pub fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        u: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        state.insert(u.to_string(), 1);
        stack.push(u.to_string());
        for v in graph.get(u).into_iter().flatten() {
            match state.get(v.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == v).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(v.clone());
                    found.push(c);
                }
                Some(_) => {}
                None => visit(v, graph, state, stack, found),
            }
        }
        stack.pop();
        state.insert(u.to_string(), 2);
    }
    let (mut state, mut found) = (BTreeMap::new(), Vec::new());
    for m in graph.keys() {
        if !state.contains_key(m.as_str()) {
            visit(m, graph, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// Files over `MAX_LINES` lines whose first 10 lines do not say why.
pub fn long_files(src: &Path) -> Result<Vec<(String, usize)>> {
    let mut files = Vec::new();
    rs_files(src, &mut files)?;
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f)?;
        let n = text.lines().count();
        let head: String = text.lines().take(10).collect::<Vec<_>>().join("\n");
        if n > MAX_LINES && !head.contains(LONG_FILE_MARK) {
            out.push((f.display().to_string(), n));
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `code` (comments already gone) uses `unsafe`, as a whole word.
pub fn uses_unsafe(code: &str) -> bool {
    code.match_indices("unsafe").any(|(i, _)| {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let before = code[..i].chars().next_back().is_none_or(|c| !word(c));
        let after = code[i + "unsafe".len()..].chars().next().is_none_or(|c| !word(c));
        before && after
    })
}

/// Files outside `sys/` (binaries included) with an `unsafe` block or fn.
pub fn unsafe_outside_sys(src: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    rs_files(src, &mut files)?;
    let mut out = Vec::new();
    for f in files {
        if f.strip_prefix(src)?.starts_with("sys") {
            continue;
        }
        let text = fs::read_to_string(&f)?;
        let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        if uses_unsafe(&code) {
            out.push(f.display().to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// Every check over the library's sources; the error names every offence.
pub fn check(src: &Path) -> Result<()> {
    let mut problems = Vec::new();
    for c in circles(&module_graph(src)?) {
        problems.push(format!("import circle: {}", c.join(" -> ")));
    }
    for (f, n) in long_files(src)? {
        problems.push(format!("{f}: {n} lines, over {MAX_LINES}, and its top does not say \"{LONG_FILE_MARK} ...\""));
    }
    for f in unsafe_outside_sys(src)? {
        problems.push(format!("{f}: unsafe outside src/sys/ (put the system call behind a safe function there)"));
    }
    if !problems.is_empty() {
        bail!("layout:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_come_from_paths_and_use_groups() {
        let text = "use crate::{config::Paths, ns::{self, x}, ubc};\nlet a = crate::net::host_ifname(1);\n";
        let r: Vec<String> = crate_refs(text).into_iter().collect();
        assert_eq!(r, ["config", "net", "ns", "ubc"]);
    }

    #[test]
    fn unsafe_is_found_as_a_word_only() {
        assert!(uses_unsafe("let x = unsafe { f() };"));
        assert!(uses_unsafe("unsafe fn g() {}"));
        assert!(!uses_unsafe("let not_unsafe_here = 1; let unsafely = 2;"));
    }

    #[test]
    fn a_circle_of_three_is_found_and_a_tree_has_none() {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")] {
            g.entry(a.into()).or_default().insert(b.into());
            g.entry(b.into()).or_default();
        }
        let c = circles(&g);
        assert_eq!(c, vec![vec!["a".to_string(), "b".into(), "c".into(), "a".into()]]);
        g.get_mut("c").map(|s| s.remove("a"));
        assert!(circles(&g).is_empty());
    }
}
