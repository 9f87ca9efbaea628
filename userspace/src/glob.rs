//! Shell wildcards (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`) as vzlist's `-h`, `-N` and `-d`
//! take them (OpenVZ matched with fnmatch(3)).

/// Whether all of `text` matches `pattern`. A `[` without its `]` is a plain character.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative, with one backtrack point for the last `*`: linear in practice, never
    // exponential on a pattern of many stars.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        // How much of the pattern matches t[ti] here, if it does.
        let here = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class(&p[pi..], t[ti]),
            Some(c) if *c == t[ti] => Some(1),
            _ => None,
        };
        if let Some(n) = here {
            pi += n;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // The last star takes one more character.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A `[...]` class at the start of `p` against `c`: Some(length of the class) if it
/// matches, None if not; a `[` with no `]` matches itself only (Some(1)).
fn class(p: &[char], c: char) -> Option<usize> {
    let Some(end) = p.iter().skip(2).position(|x| *x == ']').map(|i| i + 2) else {
        return (c == '[').then_some(1);
    };
    let body = &p[1..end];
    let (negate, body) = match body.first() {
        Some('!') | Some('^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut hit = false;
    let mut i = 0;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1] == '-' {
            hit |= (body[i]..=body[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= body[i] == c;
            i += 1;
        }
    }
    (hit != negate).then_some(end + 1)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_match_as_a_shell_would() {
        for (p, t) in [
            ("*", ""),
            ("*", "web1.example.com"),
            ("web*", "web1"),
            ("*.example.com", "a.example.com"),
            ("w?b", "web"),
            ("db[0-9]", "db7"),
            ("db[!0-9]", "dbx"),
            ("[ab]*", "beta"),
            ("a*b*c", "aXXbYYc"),
            ("a[", "a["),
            ("]", "]"),
        ] {
            assert!(matches(p, t), "{p} should match {t}");
        }
        for (p, t) in [
            ("web*", "db1"),
            ("w?b", "wb"),
            ("db[0-9]", "dbx"),
            ("db[!0-9]", "db1"),
            ("*.example.com", "example.org"),
            ("a*b*c", "aXXbYY"),
            ("", "x"),
            ("abc", "ab"),
        ] {
            assert!(!matches(p, t), "{p} should not match {t}");
        }
    }

    #[test]
    fn many_stars_backtrack_to_the_last_one_only() {
        // Exponential backtracking would not end on this one.
        assert!(!matches(&("*a".repeat(30) + "b"), &"a".repeat(200)));
        assert!(matches(&("*a".repeat(30) + "b"), &("a".repeat(200) + "b")));
    }
}
