//! Valkey's `stringmatchlen`: glob-style matching for KEYS, SCAN MATCH and CONFIG GET.

pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    // Greedy matching with backtracking to the last '*' only: O(len(p) * len(s)) worst case, so hostile
    // patterns such as "*a*a*a*...b" cannot make KEYS or SCAN exponential.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    // Valkey gives up (no match) past 1000 nested '*' groups followed by more pattern; its recursion
    // nests once per such group on the way to a match, as this loop passes them, so the answers agree.
    let mut stars = 0;
    while si < s.len() {
        if pi < pattern.len() && pattern[pi] == b'*' {
            while pi < pattern.len() && pattern[pi] == b'*' {
                pi += 1;
            }
            if pi == pattern.len() {
                return true;
            }
            stars += 1;
            if stars > 1000 {
                return false;
            }
            star = Some((pi, si));
            continue;
        }
        if let Some(next) = match_one(pattern, pi, s[si], nocase) {
            pi = next;
            si += 1;
            continue;
        }
        match star {
            Some((sp, ss)) => {
                pi = sp;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while pi < pattern.len() && pattern[pi] == b'*' {
        pi += 1;
    }
    pi == pattern.len()
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Matches one character `c` against the pattern token at `pi` (not '*'); returns the index after the token.
fn match_one(p: &[u8], mut pi: usize, c: u8, nocase: bool) -> Option<usize> {
    match *p.get(pi)? {
        b'?' => Some(pi + 1),
        b'\\' if pi + 1 < p.len() => eq(p[pi + 1], c, nocase).then_some(pi + 2),
        b'[' => {
            pi += 1;
            let not = p.get(pi) == Some(&b'^');
            if not {
                pi += 1;
            }
            let mut matched = false;
            while pi < p.len() && p[pi] != b']' {
                if p[pi] == b'\\' && pi + 1 < p.len() {
                    pi += 1;
                    matched |= p[pi] == c;
                } else if pi + 2 < p.len() && p[pi + 1] == b'-' {
                    let (mut lo, mut hi) = (p[pi], p[pi + 2]);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    let (lo, hi, cc) = if nocase {
                        (
                            lo.to_ascii_lowercase(),
                            hi.to_ascii_lowercase(),
                            c.to_ascii_lowercase(),
                        )
                    } else {
                        (lo, hi, c)
                    };
                    matched |= cc >= lo && cc <= hi;
                    pi += 2;
                } else {
                    matched |= eq(p[pi], c, nocase);
                }
                pi += 1;
            }
            // An unterminated class ends at the end of the pattern, as in Valkey.
            (matched != not).then_some((pi + 1).min(p.len()))
        }
        t => eq(t, c, nocase).then_some(pi + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn valkey_glob_cases() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("key:*", "key:12", true),
            ("key:*", "ke", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            (
                "*a*a*a*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("", "", true),
            ("a*", "a", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(
                glob_match(p.as_bytes(), s.as_bytes(), false),
                *want,
                "{p} ~ {s}"
            );
        }
        assert!(glob_match(b"MAX*", b"maxmemory", true));
        // Valkey's limit of 1000 nested '*' groups (its keyspace unit's "very long nested loops").
        let key = vec![b'a'; 50_000];
        assert!(!glob_match(&b"*?".repeat(50_000), &key, false));
        assert!(glob_match(&b"*?".repeat(1000), &key, false));
        assert!(!glob_match(&b"*?".repeat(1001), &key, false));
    }
}
