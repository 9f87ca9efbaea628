//! Man pages and shell completions, made from the clap definitions the binaries parse
//! their command lines with, so they never drift from the commands. `VZ_GENERATE=man:DIR
//! PROG` writes PROG.8 (and PROG-SUB.8 for each command of vzctl) into DIR;
//! `VZ_GENERATE=bash|zsh|fish PROG` prints a completion script; `cargo xtask run` installs
//! both. Bash and fish complete VEIDs and VE names (from `vzlist -a`) where a VE goes.
use std::{io::Write, path::Path};

use clap::Command;

/// Generates what `what` asks for `cmd` (the binary `prog`), onto `out`.
pub fn generate(mut cmd: Command, prog: &str, what: &str, out: &mut dyn Write) -> Result<(), String> {
    if let Some(dir) = what.strip_prefix("man:") {
        for path in man_pages(&cmd, prog, Path::new(dir)).map_err(|e| format!("man pages into {dir}: {e}"))? {
            writeln!(out, "{}", path.display()).map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let shell: clap_complete::Shell =
        what.parse().map_err(|_| format!("VZ_GENERATE='{what}': man:DIR, bash, zsh or fish"))?;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, prog, &mut script);
    out.write_all(&script).map_err(|e| e.to_string())?;
    let veids = match (shell, veid_position(prog)) {
        (clap_complete::Shell::Bash, Some(first)) => bash_veids(prog, first),
        (clap_complete::Shell::Fish, Some(first)) => fish_veids(prog, first),
        _ => String::new(),
    };
    out.write_all(veids.as_bytes()).map_err(|e| e.to_string())?;
    Ok(())
}

/// From which word on a command line of `prog` a VE may be named.
fn veid_position(prog: &str) -> Option<usize> {
    match prog {
        "vzlist" | "vzubc" => Some(1),
        // vzctl VERB VEID; vzmigrate DEST VEID.
        "vzctl" | "vzmigrate" => Some(2),
        _ => None,
    }
}

/// clap's bash completion plus the VEIDs and names of this node's VEs.
fn bash_veids(prog: &str, first: usize) -> String {
    format!(
        r#"
# VEIDs and VE names, where a VE may be named (vzbpf).
_vzbpf_veids() {{
    vzlist -a -H -o ctid,name 2>/dev/null | awk '{{print $1; if ($2 != "-") print $2}}'
}}
_vzbpf_{prog}() {{
    _{prog} "$@"
    local cur="${{COMP_WORDS[COMP_CWORD]}}"
    if [[ "$cur" != -* ]] && (( COMP_CWORD >= {first} )); then
        COMPREPLY+=( $(compgen -W "$(_vzbpf_veids)" -- "$cur") )
    fi
}}
complete -F _vzbpf_{prog} -o bashdefault -o default {prog}
"#
    )
}

/// clap's fish completion plus the VEIDs and names of this node's VEs, once `first` words
/// are typed.
fn fish_veids(prog: &str, first: usize) -> String {
    format!(
        r#"
# VEIDs and VE names, where a VE may be named (vzbpf).
function __vzbpf_veids
    vzlist -a -H -o ctid,name 2>/dev/null | awk '{{print $1; if ($2 != "-") print $2}}'
end
complete -c {prog} -n 'test (count (commandline -opc)) -ge {first}' -a '(__vzbpf_veids)'
"#
    )
}

/// PROG.8 and, for each visible subcommand, PROG-SUB.8 (as git's pages are split).
fn man_pages(cmd: &Command, prog: &str, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut made = Vec::new();
    let mut write = |name: String, c: Command| -> std::io::Result<()> {
        let mut page = Vec::new();
        clap_mangen::Man::new(c.name(name.clone())).section("8").render(&mut page)?;
        let path = dir.join(format!("{name}.8"));
        let tmp = dir.join(format!(".{name}.8.tmp"));
        std::fs::write(&tmp, page)?;
        std::fs::rename(&tmp, &path)?;
        made.push(path);
        Ok(())
    };
    write(prog.to_string(), cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write(format!("{prog}-{}", sub.get_name()), sub.clone())?;
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veids_complete_after_the_verb_of_vzctl_and_first_for_vzlist() {
        assert_eq!(veid_position("vzctl"), Some(2));
        assert_eq!(veid_position("vzlist"), Some(1));
        assert_eq!(veid_position("vzpkg"), None);
        let s = bash_veids("vzctl", 2);
        assert!(s.contains("_vzctl \"$@\"") && s.contains("COMP_CWORD >= 2") && s.contains("complete -F _vzbpf_vzctl"));
    }

    #[test]
    fn an_unknown_kind_is_refused_naming_it() {
        let e = generate(Command::new("x"), "x", "pdf", &mut Vec::new()).unwrap_err();
        assert!(e.contains("'pdf'"), "{e}");
    }
}
